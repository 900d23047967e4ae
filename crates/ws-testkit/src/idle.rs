//! The idle-memory tests of the server drivers: a hand-written client that
//! opens a WebSocket connection without leaving state on the server
//! thread's heap ([`open_raw`]), and the readings of the server thread's
//! heap balance ([`HeapProbe`]).
//!
//! The server thread publishes after every turn of its loop
//! ([`HeapProbe::publish`]); the test thread reads
//! ([`HeapProbe::measure`], [`HeapProbe::settle`]). Atomics only: a channel
//! would allocate on one thread and free on the other, moving the balance
//! being measured.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::alloc::heap_balance;

/// What the server thread publishes.
#[derive(Default)]
pub struct HeapProbe {
    /// The server thread's heap balance at its last turn.
    balance: AtomicIsize,
    /// Connections the server held at its last turn.
    held: AtomicUsize,
    /// Turns so far: a reading newer than a given turn is fresh.
    turns: AtomicUsize,
    stop: AtomicBool,
}

impl HeapProbe {
    /// Called by the server thread after every turn: its heap balance and
    /// the connections it holds.
    pub fn publish(&self, held: usize) {
        self.held.store(held, Ordering::SeqCst);
        self.balance.store(heap_balance(), Ordering::SeqCst);
        self.turns.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether the test asked the server thread to stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Asks the server thread to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// A reading (balance, connections held) taken after at least one whole
    /// turn from now (bounded: fails if the server does not turn for 60 s).
    pub fn measure(&self) -> (isize, usize) {
        let after = self.turns.load(Ordering::SeqCst) + 1;
        let end = Instant::now() + Duration::from_secs(60);
        while self.turns.load(Ordering::SeqCst) <= after {
            assert!(Instant::now() < end, "the server thread does not turn");
            std::thread::sleep(Duration::from_millis(5));
        }
        (
            self.balance.load(Ordering::SeqCst),
            self.held.load(Ordering::SeqCst),
        )
    }

    /// Waits (at most 60 s) until the server holds `n` connections and
    /// `done` accepts its heap balance; returns the last reading.
    pub fn settle(&self, n: usize, done: &dyn Fn(isize) -> bool) -> (isize, usize) {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let (balance, held) = self.measure();
            if (held == n && done(balance)) || Instant::now() > end {
                return (balance, held);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl HeapProbe {
    /// The whole measurement, against a server that publishes here: `warm_up`
    /// connections opened with `open` and closed (what is made once per
    /// server is then not counted), the baseline, `n` connections opened and
    /// held until their heap per connection is at most `max` (or 60 s
    /// passed), the checks (every one held; at least `min` bytes each, or
    /// the measure is not real; at most `max`), then every connection closed
    /// and gone. Returns the heap bytes per idle connection.
    pub fn per_idle_connection(
        &self,
        n: usize,
        warm_up: usize,
        open: &dyn Fn() -> TcpStream,
        min: isize,
        max: isize,
    ) -> isize {
        for _ in 0..warm_up {
            drop(open());
        }
        let (_, held) = self.settle(0, &|_| true);
        assert_eq!(held, 0, "the warm-up connections are gone");
        let (base, _) = self.measure();
        let clients: Vec<TcpStream> = (0..n).map(|_| open()).collect();
        let per_connection = |balance: isize| (balance - base) / n as isize;
        let (balance, held) = self.settle(n, &|b| per_connection(b) <= max);
        let per = per_connection(balance);
        eprintln!("heap per idle connection: {per} bytes ({n} connections)");
        assert_eq!(held, n, "every connection is held while measured");
        assert!(
            per >= min,
            "{per} bytes per connection is too little to be real"
        );
        assert!(
            per <= max,
            "{per} bytes of heap per idle connection (bound {max})"
        );
        drop(clients);
        let (_, held) = self.settle(0, &|_| true);
        assert_eq!(held, 0, "every connection closed");
        per
    }
}

/// Opens a WebSocket connection to `addr` with a hand-written request (no
/// client state on the heap of any thread that matters) and reads the 101.
pub fn open_raw(addr: SocketAddr) -> TcpStream {
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

/// Sends one masked text message ("hi") on a connection from [`open_raw`]
/// and reads its echo.
pub fn echo_hi(s: &mut TcpStream) {
    // FIN + text, masked, 2 bytes, mask 1 2 3 4: "hi".
    let mask = [1u8, 2, 3, 4];
    let frame = [
        0x81,
        0x82,
        mask[0],
        mask[1],
        mask[2],
        mask[3],
        b'h' ^ mask[0],
        b'i' ^ mask[1],
    ];
    s.write_all(&frame).unwrap();
    let mut echo = [0u8; 4];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(echo, [0x81, 0x02, b'h', b'i'], "the echo of \"hi\"");
}
