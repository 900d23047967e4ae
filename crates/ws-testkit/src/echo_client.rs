//! The client of the zero-allocation tests of every driver's echo server:
//! the core `Connection` over a blocking socket, on the test thread (not
//! the thread measured), keeping a window of messages in flight and
//! checking every echo. [`steady_state_allocations`] is the measurement
//! itself: a warm-up, then the allocation calls the server's (watched)
//! thread makes while more messages are echoed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ws_proto::{ClientRequest, CloseCode, Config, Connection, Event, MessageKind, Transmit};

use crate::alloc::watched_allocations;

/// The core as a client over a blocking socket.
pub struct EchoClient {
    conn: Connection,
    sock: TcpStream,
    out: Vec<u8>,
    inp: Vec<u8>,
}

impl std::fmt::Debug for EchoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoClient").finish_non_exhaustive()
    }
}

impl EchoClient {
    /// Connects to `addr` and completes the opening handshake (bounded).
    pub fn connect(addr: SocketAddr, cfg: Config) -> EchoClient {
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.set_nodelay(true).unwrap();
        let conn = Connection::client(cfg, &ClientRequest::new("127.0.0.1", "/"), Instant::now())
            .expect("a valid request");
        let mut c = EchoClient {
            conn,
            sock,
            out: vec![0; 256 << 10],
            inp: vec![0; 256 << 10],
        };
        c.flush();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !c.conn.is_open() {
            assert!(Instant::now() < deadline, "handshake timed out");
            assert!(c.read_some(), "server closed during the handshake");
            while c.conn.poll_event().is_some() {}
        }
        c
    }

    fn flush(&mut self) {
        while let Some(t) = self.conn.poll_transmit(Instant::now(), &mut self.out) {
            match t {
                Transmit::Data(n) => self.sock.write_all(&self.out[..n]).unwrap(),
                Transmit::Shutdown => self.sock.shutdown(std::net::Shutdown::Write).unwrap(),
            }
        }
    }

    /// Reads once and feeds the core; `false` at the end of the stream.
    fn read_some(&mut self) -> bool {
        let n = self.sock.read(&mut self.inp).unwrap();
        if n == 0 {
            self.conn.handle_eof(Instant::now());
            return false;
        }
        self.conn.handle_input(Instant::now(), &self.inp[..n]);
        true
    }

    /// Sends `count` messages keeping `window` in flight; checks every echo.
    pub fn echo(&mut self, count: usize, window: usize, kind: MessageKind, payload: &Bytes) {
        let (mut sent, mut got) = (0, 0);
        let deadline = Instant::now() + Duration::from_secs(60);
        while got < count {
            assert!(Instant::now() < deadline, "echo stalled at {got}/{count}");
            while sent < count && sent - got < window {
                self.conn.send(kind, payload.clone()).unwrap();
                sent += 1;
            }
            self.flush();
            assert!(self.read_some(), "server closed the connection");
            while let Some(e) = self.conn.poll_event() {
                match e {
                    Event::Message(m) => {
                        assert_eq!(m.kind, kind);
                        assert!(m.data == *payload, "echo differs");
                        got += 1;
                    }
                    Event::Closed(c) => panic!("closed: {c:?}"),
                    _ => {}
                }
            }
            self.flush();
        }
    }

    /// Closes and waits for the end (bounded).
    pub fn close(mut self) {
        self.conn.close(CloseCode::NORMAL, "").unwrap();
        self.flush();
        for _ in 0..1000 {
            if !self.read_some() {
                break;
            }
            let mut closed = false;
            while let Some(e) = self.conn.poll_event() {
                closed |= matches!(e, Event::Closed(_));
            }
            self.flush();
            if closed {
                break;
            }
        }
    }
}

/// A `size`-byte payload of printable ASCII (valid UTF-8, compressible but
/// not trivially).
pub fn payload(size: usize) -> Bytes {
    (0..size)
        .map(|i| b"abcdefghij klmnopqrstuvwxyz 0123456789\n"[(i * 7 + i / 13) % 39])
        .collect::<Vec<u8>>()
        .into()
}

/// The measurement of a zero-allocation test: connects to the echo server
/// at `addr` (whose thread called
/// [`watch_this_thread`](crate::alloc::watch_this_thread)), echoes
/// `warm_up` messages of `size` bytes, then returns the allocation calls the
/// watched thread made while `n` more were echoed, and closes.
///
/// The warm-up keeps a wider window in flight (4 times the measured one),
/// so the bursts the server reads at once during the measurement are no
/// larger than seen before.
///
/// On a busy machine the server can still be held off the CPU long enough
/// to meet a larger burst than in its warm-up, and grow a buffer once (a
/// receive buffer that rotates with one more allocation, a write queue that
/// doubles). That is growth, not a cost per message: when a window of `n`
/// messages saw allocations, up to [`EXTRA_WINDOWS`] more windows of `n`
/// are measured on the same connection, and the first that saw none is
/// returned (the ones before are reported on stderr). A cost per message
/// (or every few messages) shows in every window and is returned.
pub fn steady_state_allocations(
    addr: SocketAddr,
    cfg: Config,
    size: usize,
    kind: MessageKind,
    warm_up: usize,
    n: usize,
) -> u64 {
    let mut c = EchoClient::connect(addr, cfg);
    let payload = payload(size);
    let window = if size >= 64 << 10 { 4 } else { 16 };
    c.echo(warm_up, 4 * window, kind, &payload);
    let mut grew = Vec::new();
    let mut allocs = 0;
    for _ in 0..=EXTRA_WINDOWS {
        let before = watched_allocations();
        c.echo(n, window, kind, &payload);
        allocs = watched_allocations() - before;
        if allocs == 0 {
            break;
        }
        grew.push(allocs);
    }
    if !grew.is_empty() {
        eprintln!(
            "steady_state_allocations({size} B, {kind:?}): windows of {n} messages that \
             allocated: {grew:?}; last window: {allocs}"
        );
    }
    c.close();
    allocs
}

/// Windows measured again by [`steady_state_allocations`] after one that
/// allocated (one-time growth on a busy machine).
pub const EXTRA_WINDOWS: usize = 2;
