//! Zero heap allocations per message in steady state, through an in-memory
//! client/server pair (no sockets, `ws_testkit::pair`): the kit's counting
//! global allocator counts every `alloc` and `realloc` made on the test's
//! thread while messages are echoed
//! (client sends masked, server receives and sends the same bytes back,
//! client receives), after a warm-up.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::time::Instant;

use ws_proto::{Bytes, ClientRequest, Config, Connection, DeflateConfig, Event, MessageKind};
use ws_testkit::alloc::count;
use ws_testkit::pair::{open_pair, pump};

ws_testkit::counting_allocator!();

fn open(deflate: bool) -> (Connection, Connection, Instant) {
    let d = deflate.then(DeflateConfig::default);
    let (c, s, now) = open_pair(Config::default().deflate(d));
    assert!(c.is_open() && s.is_open());
    assert_eq!(c.deflate_params().is_some(), deflate);
    (c, s, now)
}

/// One echo round: client → server → client. Returns the bytes the client
/// got back (checked by the caller outside the counted section too).
fn round(
    c: &mut Connection,
    s: &mut Connection,
    now: Instant,
    buf: &mut [u8],
    kind: MessageKind,
    payload: &Bytes,
) -> usize {
    c.send(kind, payload.clone()).unwrap();
    pump(c, s, now, buf);
    while let Some(e) = s.poll_event() {
        if let Event::Message(m) = e {
            s.send(m.kind, m.data).unwrap();
        }
    }
    pump(s, c, now, buf);
    let mut got = 0;
    while let Some(e) = c.poll_event() {
        if let Event::Message(m) = e {
            assert_eq!(m.kind, kind);
            assert_eq!(m.data.len(), payload.len());
            assert!(m.data == *payload, "echo differs");
            got += 1;
        }
    }
    got
}

/// Echoes `warm_up` messages (buffers grow to fit the traffic: with
/// compression the frame sizes vary from message to message, so the receive
/// buffer settles after a few size records), then counts the allocations of
/// the next `n` echoes.
fn allocations_per_echo(
    size: usize,
    kind: MessageKind,
    deflate: bool,
    warm_up: usize,
    n: usize,
) -> u64 {
    let (mut c, mut s, now) = open(deflate);
    // Compressible but not trivial, valid UTF-8 for text.
    let payload: Bytes = (0..size)
        .map(|i| b"abcdefghij klmnopqrstuvwxyz 0123456789\n"[(i * 7 + i / 13) % 39])
        .collect::<Vec<u8>>()
        .into();
    let mut buf = vec![0u8; 64 << 10];
    for _ in 0..warm_up {
        assert_eq!(round(&mut c, &mut s, now, &mut buf, kind, &payload), 1);
    }
    let (allocs, got) = count(|| {
        let mut got = 0;
        for _ in 0..n {
            got += round(&mut c, &mut s, now, &mut buf, kind, &payload);
        }
        got
    });
    assert_eq!(got, n, "every echo came back");
    assert_eq!(s.stats().messages_in, (warm_up + n) as u64);
    allocs
}

#[test]
fn echo_through_an_in_memory_pair_allocates_nothing_per_message() {
    let mut report = Vec::new();
    for deflate in [false, true] {
        for (size, warm_up, n) in [
            (16, 100, 1000),
            (1024, 100, 1000),
            (64 << 10, 100, 300),
            (1 << 20, 30, 20),
        ] {
            for kind in [MessageKind::Binary, MessageKind::Text] {
                let a = allocations_per_echo(size, kind, deflate, warm_up, n);
                report.push((size, kind, deflate, a));
            }
        }
    }
    let bad: Vec<_> = report.iter().filter(|r| r.3 != 0).collect();
    assert!(
        bad.is_empty(),
        "allocations in steady state (size, kind, deflate, total over the run): {bad:?}"
    );
}

#[test]
fn the_counter_sees_allocations() {
    // The instrument itself: a fresh connection allocates.
    let (n, _c) = count(|| {
        Connection::client(
            Config::default(),
            &ClientRequest::new("h", "/"),
            Instant::now(),
        )
        .expect("a valid request")
    });
    assert!(n > 0);
}

/// A server reading large frames into the lent room while the application
/// holds the last `window` messages (an echo not yet written): the receive
/// buffer alternates between two allocations instead of making new ones.
#[test]
fn reading_large_messages_into_the_lent_room_allocates_nothing_while_a_window_is_held() {
    for (size, window) in [(1 << 20, 4), (64 << 10, 16), (300_000, 2)] {
        let cfg = Config::default().limits(ws_proto::Limits::default().max_message_size(4 << 20));
        let (mut c, mut s, now) = open_pair(cfg.fragment_size(usize::MAX));
        // Eight frames on the wire, fed again and again.
        let payload = Bytes::from(vec![3u8; size]);
        let mut wire = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        for _ in 0..8 {
            c.send_binary(payload.clone()).unwrap();
            while let Some(ws_proto::Transmit::Data(n)) = c.poll_transmit(now, &mut buf) {
                wire.extend_from_slice(&buf[..n]);
            }
        }
        let mut held = std::collections::VecDeque::with_capacity(window + 1);
        let feed = |s: &mut Connection, held: &mut std::collections::VecDeque<Bytes>| {
            let mut pos = 0;
            let mut got = 0;
            while pos < wire.len() {
                let room = s.receive_buffer(256 << 10);
                let k = room.len().min(wire.len() - pos).min(200_000);
                room[..k].copy_from_slice(&wire[pos..pos + k]);
                s.handle_received(now, k);
                pos += k;
                while let Some(e) = s.poll_event() {
                    if let Event::Message(m) = e {
                        if held.len() == window {
                            held.pop_front();
                        }
                        held.push_back(m.data);
                        got += 1;
                    }
                }
            }
            got
        };
        // Warm-up: the read size and the allocations settle.
        for _ in 0..12 {
            assert_eq!(feed(&mut s, &mut held), 8);
        }
        let (n, got) = count(|| (0..6).map(|_| feed(&mut s, &mut held)).sum::<usize>());
        assert_eq!(got, 48);
        assert_eq!(
            n, 0,
            "{n} allocations for 48 messages of {size} B, {window} held"
        );
        assert!(s.is_open());
    }
}
