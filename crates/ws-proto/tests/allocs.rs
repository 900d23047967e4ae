//! Zero heap allocations per message in steady state, through an in-memory
//! client/server pair (no sockets): a counting global allocator counts every
//! `alloc` and `realloc` made on the test's thread while messages are echoed
//! (client sends masked, server receives and sends the same bytes back,
//! client receives), after a warm-up.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use ws_proto::{
    Accept, Bytes, ClientRequest, Config, Connection, DeflateConfig, Event, MessageKind, Transmit,
};

struct Counting;

thread_local! {
    /// Allocations counted on this thread while `COUNTING` is on.
    static COUNT: Cell<u64> = const { Cell::new(0) };
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    // `try_with`: never touch a thread-local that is being torn down.
    let on = COUNTING.try_with(Cell::get).unwrap_or(false);
    if on {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// wrapper only bumps a const-initialised thread-local counter (no allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn count<R>(f: impl FnOnce() -> R) -> (u64, R) {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (COUNT.with(Cell::get), r)
}

fn pump(from: &mut Connection, to: &mut Connection, now: Instant, buf: &mut [u8]) {
    while let Some(t) = from.poll_transmit(now, buf) {
        match t {
            Transmit::Data(n) => to.handle_input(now, &buf[..n]),
            Transmit::Shutdown => to.handle_eof(now),
        }
    }
}

fn open(deflate: bool) -> (Connection, Connection, Instant) {
    let now = Instant::now();
    let d = deflate.then(DeflateConfig::default);
    let cfg = Config::default().deflate(d);
    let mut c = Connection::client(cfg.clone(), &ClientRequest::new("h", "/"), now)
        .expect("a valid request");
    let mut s = Connection::server(cfg, now);
    let mut buf = vec![0u8; 64 << 10];
    pump(&mut c, &mut s, now, &mut buf);
    while let Some(e) = s.poll_event() {
        if matches!(e, Event::UpgradeRequest(_)) {
            s.accept(Accept::new()).unwrap();
        }
    }
    pump(&mut s, &mut c, now, &mut buf);
    while c.poll_event().is_some() {}
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
