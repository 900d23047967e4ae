//! Heap held per idle open connection by a ws-mio server loop.
//!
//! The loop runs on its own thread; the kit's counting global allocator
//! keeps that thread's heap balance (bytes allocated minus bytes freed,
//! [`heap_balance`]). After a warm-up connection (lazy statics, the read
//! pool, the work lists), the balance is read, [`CONNECTIONS`] clients
//! open a WebSocket connection each and go quiet, and the balance is read
//! again once the loop has had the time to free what an idle connection
//! does not need (the buffers and queue allocations, freed
//! `release_buffers_after` after the last input). The difference divided
//! by the connections is what each idle connection costs on the heap: the
//! boxed session with the protocol core, its slot in the session table and
//! the work lists, its deadline in the timer heap. The goal is under 1 KiB
//! of memory per idle connection in all (`scripts/mio-scale.sh` measures
//! the process's resident memory, which adds the allocator's own overhead).
//!
//! Nothing here depends on timing: every wait is for a condition, bounded
//! only to fail instead of hanging.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ws_mio::{ConnId, Ctx, EventLoop, Handler, Options};
use ws_proto::Message;
use ws_testkit::alloc::{heap_balance, installed};

ws_testkit::counting_allocator!();

/// Idle connections held at once: one client and one server socket each,
/// well under a default open-file limit of 1,024.
const CONNECTIONS: usize = 400;

/// The bound on heap bytes per idle connection. Measured at 829 (the
/// session box with the core, 728 bytes; its slot in the session
/// table, room in the work lists and notices, and its timer heap entries,
/// amortised); the margin is for the amortised growth of the tables, which
/// depends on how the connections arrive. (It was 3,270 before the core
/// and the session were slimmed down.)
const MAX_HEAP_PER_IDLE_CONNECTION: isize = 960;

/// The server: accepts every upgrade, does nothing with messages.
struct Quiet;

impl Handler for Quiet {
    fn on_message(&mut self, _: &mut Ctx<'_>, _: ConnId, _: Message) {}
}

/// What the loop thread publishes after every turn (atomics: a channel
/// would allocate on one thread and free on the other, moving the balance
/// being measured).
#[derive(Default)]
struct Shared {
    /// The loop thread's heap balance.
    balance: AtomicIsize,
    /// Connections held.
    held: AtomicUsize,
    /// Turns so far: a reading newer than a given turn is fresh.
    turns: AtomicUsize,
    stop: AtomicBool,
}

/// Opens a WebSocket connection with a hand-written request (no client
/// state on the heap of any thread that matters) and reads the 101.
fn open(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 4096, "no end of the response head");
        assert_eq!(s.read(&mut byte).unwrap(), 1, "server closed the handshake");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

#[test]
fn an_idle_open_connection_holds_about_1_kib_of_heap_on_the_loop() {
    assert!(installed(), "the counting allocator is this binary's");
    let (addr_tx, addr_rx) = mpsc::channel();
    let shared = Arc::new(Shared::default());
    let sh = shared.clone();
    let server = std::thread::spawn(move || {
        let mut ev = EventLoop::new(Options::default(), Quiet).unwrap();
        addr_tx
            .send(ev.listen("127.0.0.1:0".parse().unwrap()).unwrap())
            .unwrap();
        let end = Instant::now() + Duration::from_secs(300);
        while !sh.stop.load(Ordering::SeqCst) && Instant::now() < end {
            ev.turn(Some(Duration::from_millis(10))).unwrap();
            sh.held.store(ev.stats().connections, Ordering::SeqCst);
            sh.balance.store(heap_balance(), Ordering::SeqCst);
            sh.turns.fetch_add(1, Ordering::SeqCst);
        }
    });
    let addr = addr_rx.recv().unwrap();
    // A reading taken after at least one whole turn from now.
    let measure = || {
        let after = shared.turns.load(Ordering::SeqCst) + 1;
        let end = Instant::now() + Duration::from_secs(60);
        while shared.turns.load(Ordering::SeqCst) <= after {
            assert!(Instant::now() < end, "the loop does not turn");
            std::thread::sleep(Duration::from_millis(5));
        }
        (
            shared.balance.load(Ordering::SeqCst),
            shared.held.load(Ordering::SeqCst),
        )
    };
    // Waits (bounded) until the loop holds `n` connections and `done`
    // accepts its heap balance; returns the last reading.
    let settle = |n: usize, done: &dyn Fn(isize) -> bool| {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let (balance, held) = measure();
            if (held == n && done(balance)) || Instant::now() > end {
                return (balance, held);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // Warm-up: one connection in and out, so that what is made once per
    // loop (the read pool's first segment, the work lists, lazy statics)
    // is not counted against the idle connections.
    drop(open(addr));
    let (_, held) = settle(0, &|_| true);
    assert_eq!(held, 0);
    let (base, _) = measure();

    let clients: Vec<TcpStream> = (0..CONNECTIONS).map(|_| open(addr)).collect();
    let per_connection = |balance: isize| (balance - base) / CONNECTIONS as isize;
    let (balance, held) = settle(CONNECTIONS, &|b| {
        per_connection(b) <= MAX_HEAP_PER_IDLE_CONNECTION
    });
    let per = per_connection(balance);
    eprintln!("heap per idle connection: {per} bytes ({CONNECTIONS} connections)");
    assert_eq!(held, CONNECTIONS, "every connection is held while measured");
    // The measure is real: a connection costs at least its session.
    assert!(
        per >= 256,
        "{per} bytes per connection is too little to be real"
    );
    assert!(
        per <= MAX_HEAP_PER_IDLE_CONNECTION,
        "{per} bytes of heap per idle connection (bound {MAX_HEAP_PER_IDLE_CONNECTION})"
    );

    drop(clients);
    let (_, held) = settle(0, &|_| true);
    assert_eq!(held, 0, "every connection closed");
    shared.stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
}
