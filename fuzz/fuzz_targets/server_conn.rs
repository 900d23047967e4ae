//! A server connection fed arbitrary bytes in arbitrary chunks, after a valid
//! upgrade request (half the time with permessage-deflate): no panic, exactly
//! one Closed at most and always last, memory within the limits.
#![no_main]
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ws_proto::{Accept, Config, Connection, DeflateConfig, Event, Limits};

#[derive(Arbitrary, Debug)]
struct Input {
    deflate: bool,
    raw_request: bool,
    streaming: bool,
    chunks: Vec<(u16, u8)>,
    data: Vec<u8>,
}

const REQ: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

fuzz_target!(|input: Input| {
    let limits = Limits::default()
        .max_frame_payload(4096)
        .max_message_size(8192)
        .max_fragments(16)
        .max_handshake_bytes(1024);
    let cfg = Config::default()
        .limits(limits)
        .rng_seed([7; 32])
        .streaming(input.streaming)
        .deflate(input.deflate.then(DeflateConfig::default));
    let mut now = Instant::now();
    let mut conn = Connection::server(cfg, now);
    let mut stream = if input.raw_request { Vec::new() } else { REQ.to_vec() };
    stream.extend_from_slice(&input.data);
    let mut pos = 0;
    let mut chunks = input.chunks.iter().cycle();
    let mut closed = 0;
    let mut buf = [0u8; 1024];
    let mut steps = 0;
    while pos < stream.len() && steps < 10_000 {
        steps += 1;
        let (len, dt) = chunks.next().copied().unwrap_or((u16::MAX, 0));
        let n = (usize::from(len) % 2048 + 1).min(stream.len() - pos);
        let piece = &stream[pos..pos + n];
        if dt % 2 == 1 {
            // The zero-copy paths: read into the lent room (a read may fill
            // less than the room), hand large payloads out.
            let room = conn.receive_buffer(usize::from(len) % 4096);
            let k = room.len().min(n);
            room[..k].copy_from_slice(&piece[..k]);
            conn.handle_received(now, k);
            pos += k;
            while conn.poll_transmit_vectored(now, &mut buf).is_some() {}
        } else {
            conn.handle_input(now, piece);
            pos += n;
        }
        now += Duration::from_millis(u64::from(dt));
        conn.handle_timeout(now);
        // Nothing due is left behind: a deadline at or before `now` after
        // handle_timeout(now) would make a driver's timer spin.
        assert!(conn.poll_timeout().is_none_or(|t| t > now), "a deadline stays due");
        while conn.poll_transmit(now, &mut buf).is_some() {}
        while let Some(e) = conn.poll_event() {
            assert_eq!(closed, 0, "event after Closed");
            match e {
                Event::UpgradeRequest(_) => {
                    let _ = conn.accept(Accept::new());
                }
                Event::Closed(_) => closed += 1,
                _ => {}
            }
        }
        assert!(conn.retained_bytes() <= 4 * 8192 + 4 * 4096 + 64 * 1024, "{}", conn.retained_bytes());
    }
    conn.handle_eof(now);
    conn.handle_timeout(now + Duration::from_secs(60));
    while conn.poll_transmit(now, &mut buf).is_some() {}
    while let Some(e) = conn.poll_event() {
        if matches!(e, Event::Closed(_)) {
            closed += 1;
        }
    }
    assert!(closed <= 1);
});
