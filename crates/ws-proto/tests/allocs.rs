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
