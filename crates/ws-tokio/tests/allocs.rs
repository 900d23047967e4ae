//! Zero heap allocations per message in steady state through a ws-tokio echo server. The
//! server runs on a current-thread tokio runtime on its own thread, and a counting global
//! allocator counts every `alloc`/`realloc` made on that thread while counting is on: the
//! runtime, the driver and the core together. A client (the core over a blocking socket, on
//! the test thread, not counted) keeps a window of messages in flight; after a warm-up, the
//! next messages must cost the server thread nothing.
//!
//! Two echo loops are measured: `send` (a write per message) and `feed` (the echoes of one
//! read go out together when the stream next waits for input).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ws_proto::{
    Bytes, ClientRequest, Config, Connection, DeflateConfig, Event, MessageKind, Transmit,
};

struct Counting;

/// Counting is on (set by the test around the measured part).
static ON: AtomicBool = AtomicBool::new(false);
/// Allocations made on a counted thread while `ON`.
static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread runs the server under test.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if ON.load(Ordering::Relaxed) && COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the wrapper only bumps
// an atomic counter (no allocation).
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

#[derive(Clone, Copy, Debug)]
enum Mode {
    Send,
    Feed,
}

/// Starts a one-connection echo server on a counted thread running a current-thread runtime.
fn echo_server(cfg: Config, mode: Mode) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        COUNTED.with(|c| c.set(true));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let mut ws = ws_tokio::accept_with(tcp, cfg, |_| ws_tokio::Decision::accept())
                .await
                .unwrap();
            let serve = async {
                while let Some(Ok(m)) = ws.next().await {
                    let r = match mode {
                        Mode::Send => ws.send(m).await,
                        Mode::Feed => ws.feed(m).await,
                    };
                    if r.is_err() {
                        return;
                    }
                }
            };
            // Bounded: the client closes long before this.
            let _ = tokio::time::timeout(Duration::from_secs(120), serve).await;
        });
    });
    (rx.recv().unwrap(), t)
}

/// A client: the core over a blocking socket.
struct Client {
    conn: Connection,
    sock: TcpStream,
    out: Vec<u8>,
    inp: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr, cfg: Config) -> Client {
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.set_nodelay(true).unwrap();
        let conn = Connection::client(cfg, &ClientRequest::new("127.0.0.1", "/"), Instant::now())
            .expect("a valid request");
        let mut c = Client {
            conn,
            sock,
            out: vec![0; 256 << 10],
            inp: vec![0; 256 << 10],
        };
        c.flush();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !c.conn.is_open() {
            assert!(Instant::now() < deadline, "handshake timed out");
            c.read_some();
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
    fn echo(&mut self, count: usize, window: usize, kind: MessageKind, payload: &Bytes) {
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
    fn close(mut self) {
        self.conn.close(ws_proto::CloseCode::NORMAL, "").unwrap();
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

/// Allocations on the server thread while `n` messages are echoed after `warm_up` of them.
#[allow(clippy::too_many_arguments)]
fn server_allocations(
    cfg: Config,
    mode: Mode,
    size: usize,
    kind: MessageKind,
    warm_up: usize,
    n: usize,
) -> u64 {
    let (addr, t) = echo_server(cfg.clone(), mode);
    let mut c = Client::connect(addr, cfg);
    let payload: Bytes = (0..size)
        .map(|i| b"abcdefghij klmnopqrstuvwxyz 0123456789\n"[(i * 7 + i / 13) % 39])
        .collect::<Vec<u8>>()
        .into();
    let window = if size >= 64 << 10 { 4 } else { 16 };
    // The warm-up keeps a wider window in flight, so the bursts the server reads at once
    // during the measurement are no larger than seen before.
    c.echo(warm_up, 4 * window, kind, &payload);
    ALLOCS.store(0, Ordering::SeqCst);
    ON.store(true, Ordering::SeqCst);
    c.echo(n, window, kind, &payload);
    ON.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    c.close();
    t.join().unwrap();
    allocs
}

/// The instrument itself: accepting a connection allocates (buffers, the core).
fn the_counter_sees_the_server_allocating() {
    ALLOCS.store(0, Ordering::SeqCst);
    ON.store(true, Ordering::SeqCst);
    let (addr, t) = echo_server(Config::default(), Mode::Send);
    let c = Client::connect(addr, Config::default());
    ON.store(false, Ordering::SeqCst);
    c.close();
    t.join().unwrap();
    assert!(ALLOCS.load(Ordering::SeqCst) > 0);
}

// One test function: the counter is global to this test binary.
#[test]
fn ws_tokio_echo_server_allocates_nothing_per_message() {
    the_counter_sees_the_server_allocating();
    let mut report = Vec::new();
    for deflate in [false, true] {
        // Buffers are kept for reuse while a connection is busy and freed after
        // `release_buffers_after` of quiet: a scheduling pause on a loaded machine must not
        // count as quiet here.
        let cfg = Config::default()
            .deflate(deflate.then(DeflateConfig::default))
            .release_buffers_after(Duration::from_secs(3600));
        for mode in [Mode::Send, Mode::Feed] {
            for (size, warm_up, n) in [(16, 2000, 3000), (1024, 2000, 3000), (64 << 10, 300, 300)] {
                for kind in [MessageKind::Binary, MessageKind::Text] {
                    let a = server_allocations(cfg.clone(), mode, size, kind, warm_up, n);
                    report.push((size, kind, deflate, mode, a, n));
                }
            }
        }
    }
    eprintln!("allocations (size, kind, deflate, echo loop, total, messages): {report:?}");
    let bad: Vec<_> = report.iter().filter(|r| r.4 > 0).collect();
    assert!(
        bad.is_empty(),
        "allocations on the server thread in steady state \
         (size, kind, deflate, echo loop, total, messages): {bad:?} (all: {report:?})"
    );
}
