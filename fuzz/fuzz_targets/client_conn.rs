//! A client connection: a valid 101 for its own key, then arbitrary bytes in
//! arbitrary chunks (or arbitrary bytes from the start). No panic, at most
//! one Closed, bounded memory.
#![no_main]
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ws_proto::{handshake, ClientRequest, Config, Connection, DeflateConfig, Event, Limits, Transmit};

#[derive(Arbitrary, Debug)]
struct Input {
    deflate: bool,
    raw_response: bool,
    chunks: Vec<u16>,
    data: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let limits = Limits::default().max_frame_payload(4096).max_message_size(8192).max_fragments(16);
    let cfg = Config::default()
        .limits(limits)
        .rng_seed([3; 32])
        .deflate(input.deflate.then(DeflateConfig::default));
    let now = Instant::now();
    let mut conn = Connection::client(cfg, &ClientRequest::new("h", "/"), now).expect("a valid request");
    let mut buf = [0u8; 2048];
    let mut request = Vec::new();
    while let Some(Transmit::Data(n)) = conn.poll_transmit(now, &mut buf) {
        request.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&request).to_string();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap_or_default()
        .to_string();
    let mut stream = Vec::new();
    if !input.raw_response {
        let ext = if input.deflate { "Sec-WebSocket-Extensions: permessage-deflate\r\n" } else { "" };
        stream.extend_from_slice(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{ext}\r\n",
                handshake::accept_key(key.as_bytes())
            )
            .as_bytes(),
        );
    }
    stream.extend_from_slice(&input.data);
    let mut pos = 0;
    let mut chunks = input.chunks.iter().cycle();
    let mut closed = 0;
    let mut steps = 0;
    while pos < stream.len() && steps < 10_000 {
        steps += 1;
        let len = chunks.next().copied().unwrap_or(u16::MAX);
        let n = (usize::from(len) % 2048 + 1).min(stream.len() - pos);
        if len % 2 == 1 {
            // The zero-copy paths: read into the lent room (a read may fill
            // less than the room).
            let room = conn.receive_buffer(usize::from(len) % 4096);
            let k = room.len().min(n);
            room[..k].copy_from_slice(&stream[pos..pos + k]);
            conn.handle_received(now, k);
            pos += k;
            while conn.poll_transmit_vectored(now, &mut buf).is_some() {}
        } else {
            conn.handle_input(now, &stream[pos..pos + n]);
            pos += n;
        }
        while conn.poll_transmit(now, &mut buf).is_some() {}
        while let Some(e) = conn.poll_event() {
            assert_eq!(closed, 0, "event after Closed");
            if let Event::Message(m) = &e {
                let _ = conn.send(m.kind, m.data.clone());
            }
            if matches!(e, Event::Closed(_)) {
                closed += 1;
            }
        }
        assert!(conn.retained_bytes() <= 4 * 8192 + 4 * 4096 + 64 * 1024);
    }
    conn.handle_timeout(now + Duration::from_secs(3600));
    while conn.poll_transmit(now, &mut buf).is_some() {}
    while let Some(e) = conn.poll_event() {
        if matches!(e, Event::Closed(_)) {
            closed += 1;
        }
    }
    assert!(closed <= 1);
});
