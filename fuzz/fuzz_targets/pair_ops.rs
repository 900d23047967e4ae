//! A structured sequence of operations on an in-memory client/server pair:
//! send, fragment, ping, close, advance time, deliver in pieces, cut the link.
//! Invariants: no panic; at most one Closed per side, always last; while the
//! link is intact and nobody closed, every message arrives exactly as sent;
//! after every operation each side's retained receive memory and its send
//! queue stay within the configured limits.
#![no_main]
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ws_proto::{
    Accept, ClientRequest, CloseCode, Config, Connection, DeflateConfig, Event, Limits, MessageKind, VectoredTransmit,
};

/// Limits of both sides. A message of at most `BIG` bytes never exceeds the
/// frame or message limit (even expanded by deflate), and the fragment count
/// is not limited: `send` splits a message into `len / fragment_size` frames,
/// and a fragment size of 1 is legal. (`server_conn` and `client_conn`
/// exercise the fragment limit.)
fn limits() -> Limits {
    Limits::default()
        .max_frame_payload(256 << 10)
        .max_message_size(256 << 10)
        .max_fragments(usize::MAX)
        .max_send_queue(64 << 10)
}

/// Larger messages may break the limits above: they count as disturbing.
const BIG: usize = 64 << 10;

/// What a side may retain: the receive buffer (a frame plus a read's worth)
/// and the reassembly buffer (a message, doubled for growth slack).
const RETAINED_BOUND: usize = 2 * (256 << 10) + (256 << 10) + (64 << 10);

#[derive(Arbitrary, Debug)]
enum Op {
    Send { from_client: bool, text: bool, data: Vec<u8> },
    Fragment { from_client: bool, data: Vec<u8>, fin: bool },
    Ping { from_client: bool, data: Vec<u8> },
    Close { from_client: bool, code: u16 },
    Deliver { to_server: bool, max: u16 },
    Advance { ms: u16 },
    Cut,
}

#[derive(Arbitrary, Debug)]
struct Input {
    deflate: bool,
    frag: u16,
    ops: Vec<Op>,
}

struct Side {
    conn: Connection,
    wire_out: Vec<u8>,
    eof_out: bool,
    closed: usize,
    received: Vec<(MessageKind, Vec<u8>)>,
}

fuzz_target!(|input: Input| {
    let mut now = Instant::now();
    let d = input.deflate.then(DeflateConfig::default);
    let cfg = |seed| {
        Config::default()
            .rng_seed([seed; 32])
            .limits(limits())
            .deflate(d.clone())
            .fragment_size(usize::from(input.frag) + 1)
            .ping_interval(Some(Duration::from_millis(500)))
    };
    let mut c = Side {
        conn: Connection::client(cfg(1), &ClientRequest::new("h", "/"), now).expect("a valid request"),
        wire_out: Vec::new(),
        eof_out: false,
        closed: 0,
        received: Vec::new(),
    };
    let mut s = Side {
        conn: Connection::server(cfg(2), now),
        wire_out: Vec::new(),
        eof_out: false,
        closed: 0,
        received: Vec::new(),
    };
    let mut sent_by_client: Vec<(MessageKind, Vec<u8>)> = Vec::new();
    let mut sent_by_server: Vec<(MessageKind, Vec<u8>)> = Vec::new();
    let mut cut = false;
    let mut disturbed = false;
    let mut buf = [0u8; 777];

    // Not `ws_testkit::pair::pump`: that one delivers each transmit at once,
    // while this target holds a side's output on its wire (`wire_out`) so
    // that `Op::Deliver` can hand it over in pieces of any size, or `Op::Cut`
    // lose it, and it also takes each side's events.
    let pump = |side: &mut Side, now: Instant, buf: &mut [u8]| {
        while let Some(t) = side.conn.poll_transmit_vectored(now, buf) {
            match t {
                VectoredTransmit::Data(n) => side.wire_out.extend_from_slice(&buf[..n]),
                VectoredTransmit::DataThen(n, payload) => {
                    side.wire_out.extend_from_slice(&buf[..n]);
                    side.wire_out.extend_from_slice(&payload);
                }
                VectoredTransmit::Shutdown => side.eof_out = true,
            }
        }
        while let Some(e) = side.conn.poll_event() {
            assert_eq!(side.closed, 0, "event after Closed");
            match e {
                Event::UpgradeRequest(_) => {
                    let _ = side.conn.accept(Accept::new());
                }
                Event::Message(m) => side.received.push((m.kind, m.data.to_vec())),
                Event::Closed(_) => side.closed += 1,
                _ => {}
            }
        }
    };

    // A send into an empty queue is always taken, so the queue may pass its
    // limit by at most one message (the largest one given to `send`).
    let largest = input
        .ops
        .iter()
        .map(|op| match op {
            Op::Send { data, .. } | Op::Fragment { data, .. } => data.len(),
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    for op in input.ops.iter().take(200) {
        match op {
            Op::Send { from_client, text, data } => {
                let (side, log) = if *from_client { (&mut c, &mut sent_by_client) } else { (&mut s, &mut sent_by_server) };
                let kind = if *text { MessageKind::Text } else { MessageKind::Binary };
                let data = if *text { String::from_utf8_lossy(data).into_owned().into_bytes() } else { data.clone() };
                let big = data.len() > BIG;
                if side.conn.send(kind, data.clone()).is_ok() {
                    log.push((kind, data));
                    disturbed |= big;
                }
            }
            Op::Fragment { from_client, data, fin } => {
                let side = if *from_client { &mut c } else { &mut s };
                if side.conn.send_fragment(MessageKind::Binary, data.clone(), *fin).is_ok() {
                    disturbed = true;
                }
            }
            Op::Ping { from_client, data } => {
                let side = if *from_client { &mut c } else { &mut s };
                let _ = side.conn.ping(data.clone());
            }
            Op::Close { from_client, code } => {
                let side = if *from_client { &mut c } else { &mut s };
                if let Ok(code) = CloseCode::new(*code) {
                    if side.conn.close(code, "bye").is_ok() {
                        disturbed = true;
                    }
                }
            }
            Op::Deliver { to_server, max } => {
                let (from, to) = if *to_server { (&mut c, &mut s) } else { (&mut s, &mut c) };
                pump(from, now, &mut buf);
                if !cut {
                    let n = usize::from(*max).min(from.wire_out.len());
                    let piece: Vec<u8> = from.wire_out.drain(..n).collect();
                    if max % 2 == 1 {
                        // Read into the lent room, in as many reads as it takes.
                        let mut at = 0;
                        while at < piece.len() {
                            let room = to.conn.receive_buffer(usize::from(*max) % 700);
                            let k = room.len().min(piece.len() - at);
                            room[..k].copy_from_slice(&piece[at..at + k]);
                            to.conn.handle_received(now, k);
                            at += k;
                            if k == 0 {
                                break;
                            }
                        }
                    } else {
                        to.conn.handle_input(now, &piece);
                    }
                    if from.eof_out && from.wire_out.is_empty() {
                        to.conn.handle_eof(now);
                    }
                }
                pump(to, now, &mut buf);
            }
            Op::Advance { ms } => {
                now += Duration::from_millis(u64::from(*ms));
                c.conn.handle_timeout(now);
                s.conn.handle_timeout(now);
                disturbed |= *ms > 0 && cut;
            }
            Op::Cut => {
                cut = true;
                disturbed = true;
            }
        }
        pump(&mut c, now, &mut buf);
        pump(&mut s, now, &mut buf);
        for side in [&c, &s] {
            assert!(side.conn.retained_bytes() <= RETAINED_BOUND, "retained {}", side.conn.retained_bytes());
            assert!(side.conn.buffered_amount() <= limits().max_send_queue + largest, "queued {}", side.conn.buffered_amount());
        }
    }
    // Settle: deliver everything (bounded).
    for _ in 0..1000 {
        pump(&mut c, now, &mut buf);
        pump(&mut s, now, &mut buf);
        if cut || (c.wire_out.is_empty() && s.wire_out.is_empty()) {
            break;
        }
        let a: Vec<u8> = c.wire_out.drain(..).collect();
        s.conn.handle_input(now, &a);
        let b: Vec<u8> = s.wire_out.drain(..).collect();
        c.conn.handle_input(now, &b);
    }
    assert!(c.closed <= 1 && s.closed <= 1);
    if !disturbed && c.closed == 0 && s.closed == 0 {
        assert_eq!(s.received, sent_by_client);
        assert_eq!(c.received, sent_by_server);
    }
});
