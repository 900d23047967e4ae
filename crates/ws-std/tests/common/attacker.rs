//! A hostile peer over a raw `std::net` socket, shared by the hostile-peer
//! suites of ws-std (`crates/ws-std/tests/hostile.rs`) and ws-mio
//! (`crates/ws-mio/tests/hostile.rs`, which includes this file by path).
//!
//! It writes hand-built HTTP heads and frames, and reads back the HTTP
//! status or the close code. Every socket has read and write timeouts, so a
//! bug cannot hang a test: a wait that passes its limit fails the test.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ws_proto::deflate::{Compressor, DeflateParams, Role};
use ws_proto::{Config, DeflateConfig, Limits};

/// Longest single socket wait of the attacker.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The limits the side under attack runs with (small, so attacks are quick).
pub const MAX_FRAME: usize = 64 << 10;
pub const MAX_MESSAGE: usize = 128 << 10;
pub const MAX_FRAGMENTS: usize = 64;
pub const MAX_HEAD: usize = 4 << 10;
pub const MAX_HEADERS: usize = 16;
pub const MAX_SEND_QUEUE: usize = 256 << 10;
/// Heap growth the side under attack may show on its own thread during one
/// attack: `MEMORY_BOUND` for the core's receive buffers, the send queue,
/// and 512 KiB for the driver's fixed buffers (read, scratch and TLS
/// buffers, the wire queue, the loop's pool segments) and one
/// permessage-deflate context pair (about 400 KiB of zlib state at 15-bit
/// windows). Without the limits the attacks below would make it allocate
/// 64 MiB or more.
pub const HEAP_BOUND: usize = MEMORY_BOUND + MAX_SEND_QUEUE + (512 << 10);

/// The handshake timeout of the side under attack.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(1000);

/// What the side under attack may retain for one connection whatever the
/// peer sends: the receive buffer (one frame plus a read) and the
/// reassembly buffer (one message, with growth slack).
pub const MEMORY_BOUND: usize = 2 * MAX_MESSAGE + MAX_FRAME + (64 << 10);

/// The limits above.
pub fn limits() -> Limits {
    Limits::default()
        .max_frame_payload(MAX_FRAME)
        .max_message_size(MAX_MESSAGE)
        .max_fragments(MAX_FRAGMENTS)
        .max_handshake_bytes(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .max_send_queue(MAX_SEND_QUEUE)
}

/// The configuration of the side under attack: the limits above, a short
/// handshake timeout, permessage-deflate accepted/offered.
pub fn config() -> Config {
    Config::default()
        .limits(limits())
        .handshake_timeout(HANDSHAKE_TIMEOUT)
        .close_timeout(Duration::from_secs(1))
        .deflate(Some(DeflateConfig::default()))
}

// ----- heap meter ------------------------------------------------------------

/// A global allocator that counts, per thread, the bytes allocated minus the
/// bytes freed, and the peak of that balance. The side under attack runs on
/// its own threads (ws-std: the connection thread, ws-mio: the loop
/// thread), so its peak is what the attack made it hold, whatever the
/// attacker threads allocate meanwhile.
pub mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static CUR: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn add(n: isize) {
        let _ = CUR.try_with(|c| {
            let v = c.get() + n;
            c.set(v);
            let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
        });
    }

    /// The counting allocator (over `System`).
    pub struct Meter;

    // SAFETY: every call is forwarded to `System` unchanged; the counters
    // are const-initialised thread-locals without destructors, which never
    // allocate.
    unsafe impl GlobalAlloc for Meter {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            let p = unsafe { System.alloc(l) };
            if !p.is_null() {
                add(l.size() as isize);
            }
            p
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            let p = unsafe { System.alloc_zeroed(l) };
            if !p.is_null() {
                add(l.size() as isize);
            }
            p
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { System.dealloc(p, l) };
            add(-(l.size() as isize));
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            // SAFETY: forwarded with the caller's guarantees.
            let q = unsafe { System.realloc(p, l, new) };
            if !q.is_null() {
                add(new as isize - l.size() as isize);
            }
            q
        }
    }

    /// Starts measuring this thread's heap growth from now.
    pub fn reset() {
        CUR.with(|c| c.set(0));
        PEAK.with(|p| p.set(0));
    }

    /// The largest heap growth of this thread since `reset` (or its start).
    pub fn peak() -> usize {
        PEAK.with(|p| p.get().max(0) as usize)
    }
}

#[global_allocator]
static METER: heap::Meter = heap::Meter;

// ----- close codes (RFC 6455 §7.4.1) ---------------------------------------

pub const NORMAL: u16 = 1000;
pub const PROTOCOL_ERROR: u16 = 1002;
pub const INVALID_PAYLOAD: u16 = 1007;
pub const POLICY: u16 = 1008;
pub const TOO_BIG: u16 = 1009;
pub const ABNORMAL: u16 = 1006;

// ----- opcodes and first-byte bits -----------------------------------------

pub const FIN: u8 = 0x80;
pub const RSV1: u8 = 0x40;
pub const RSV2: u8 = 0x20;
pub const RSV3: u8 = 0x10;
pub const CONT: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A sample `Sec-WebSocket-Key` (RFC 6455 §1.3).
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A frame header: first byte `b0` (FIN, RSV, opcode), mask bit, declared
/// length (any `u64`, even one with the top bit set).
pub fn header(b0: u8, masked: bool, len: u64) -> Vec<u8> {
    let m = if masked { 0x80 } else { 0 };
    let mut f = vec![b0];
    if len < 126 {
        f.push(m | len as u8);
    } else if len <= 0xffff {
        f.push(m | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(m | 127);
        f.extend_from_slice(&len.to_be_bytes());
    }
    if masked {
        f.extend_from_slice(&MASK);
    }
    f
}

/// A whole frame, masked (as a client sends) or not (as a server sends).
pub fn frame(b0: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = header(b0, masked, payload.len() as u64);
    if masked {
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// A close frame with `code` and `reason` bytes.
pub fn close_frame(masked: bool, code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    frame(FIN | CLOSE, masked, &p)
}

/// A permessage-deflate payload of `n` zero bytes (a few hundred bytes on
/// the wire per MiB): the body of a decompression bomb.
pub fn bomb(n: usize, role: Role) -> Vec<u8> {
    let mut c = Compressor::new(&DeflateParams::default(), role, 9);
    let mut out = BytesMut::new();
    c.compress(&vec![0u8; n], &mut out);
    out.to_vec()
}

/// Sets the attacker's socket timeouts.
pub fn arm(s: &TcpStream) {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
}

/// A raw TCP connection to `addr`.
pub fn dial(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    arm(&s);
    s
}

/// A valid upgrade request for `path` with `extra` header lines (each
/// ending in CRLF).
pub fn request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Reads an HTTP head (up to the blank line, at most 64 KiB); returns what
/// arrived before the end of the stream if it ends first.
pub fn read_head(s: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 << 10 {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => break,
            Err(e) if is_reset(&e) => break,
            Err(e) => panic!("reading an HTTP head: {e} (after {head:?})"),
        }
    }
    head
}

/// The status code of an HTTP head, `None` if the stream ended without one.
pub fn status_of(head: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(head);
    let line = text.lines().next()?;
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Sends `bytes` (an HTTP head, possibly hostile) and returns the status of
/// the answer (`None`: the connection ended without one).
pub fn http_status(addr: SocketAddr, bytes: &[u8]) -> Option<u16> {
    let mut s = dial(addr);
    // The server may answer and close before reading everything: a failed
    // write is fine, the answer is what counts.
    let _ = s.write_all(bytes);
    status_of(&read_head(&mut s))
}

/// Connects and upgrades (asserting 101); `extra` adds header lines.
pub fn upgrade(addr: SocketAddr, path: &str, extra: &str) -> TcpStream {
    let mut s = dial(addr);
    s.write_all(request(path, extra).as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert_eq!(
        status_of(&head),
        Some(101),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// Connects and upgrades with permessage-deflate (asserting it was agreed).
pub fn upgrade_deflate(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = dial(addr);
    s.write_all(request(path, "Sec-WebSocket-Extensions: permessage-deflate\r\n").as_bytes())
        .unwrap();
    let head = read_head(&mut s);
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 101"), "{text}");
    assert!(text.contains("permessage-deflate"), "{text}");
    s
}

/// Whether an IO error means the peer reset or dropped the connection.
pub fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// One frame read from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub b0: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn opcode(&self) -> u8 {
        self.b0 & 0x0f
    }
}

/// Reads one frame (unmasking it); `None` at the end of the stream (EOF or
/// reset). A read that times out fails the test.
pub fn read_frame(s: &mut TcpStream) -> Option<Frame> {
    fn exact(s: &mut TcpStream, buf: &mut [u8]) -> Option<()> {
        match s.read_exact(buf) {
            Ok(()) => Some(()),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof || is_reset(&e) => None,
            Err(e) => panic!("reading a frame: {e}"),
        }
    }
    let mut h = [0u8; 2];
    exact(s, &mut h)?;
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            exact(s, &mut b)?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            exact(s, &mut b)?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    assert!(
        len <= 64 << 20,
        "frame of {len} bytes from the side under attack"
    );
    let masked = h[1] & 0x80 != 0;
    let mut key = [0u8; 4];
    if masked {
        exact(s, &mut key)?;
    }
    let mut payload = vec![0u8; len as usize];
    exact(s, &mut payload)?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Some(Frame {
        b0: h[0],
        masked,
        payload,
    })
}

/// Reads frames until a close frame and returns its code (1005 for an empty
/// one); other frames are skipped. Fails the test if the stream ends first.
pub fn await_close(s: &mut TcpStream) -> u16 {
    for _ in 0..1_000_000 {
        match read_frame(s) {
            Some(f) if f.opcode() == CLOSE => {
                return match f.payload.as_slice() {
                    [a, b, ..] => u16::from_be_bytes([*a, *b]),
                    _ => 1005,
                };
            }
            Some(_) => {}
            None => panic!("the connection ended without a close frame"),
        }
    }
    panic!("no close frame in a million frames")
}

/// Reads until the end of the stream (EOF or reset), discarding data, and
/// returns how long that took. Fails the test after `limit`.
pub fn await_end(s: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e) if is_reset(&e) => return start.elapsed(),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(
            start.elapsed() < limit,
            "the connection was not cut within {limit:?}"
        );
    }
}

/// Sends a close frame (1000) and reads until the peer's close; returns
/// its code.
pub fn close_normally(s: &mut TcpStream, masked: bool) -> u16 {
    s.write_all(&close_frame(masked, NORMAL, b"")).unwrap();
    await_close(s)
}

// ----- the attacker as a server (against our clients) ----------------------

/// A raw listener on 127.0.0.1 that runs `f` on the first connection.
pub fn raw_server<T: Send + 'static>(
    f: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<T>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        l.set_nonblocking(true).unwrap();
        let start = Instant::now();
        let s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(start.elapsed() < IO_TIMEOUT, "no client came");
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("{e}"),
            }
        };
        s.set_nonblocking(false).unwrap();
        arm(&s);
        f(s)
    });
    (addr, h)
}

/// Reads the client's upgrade request and returns its `Sec-WebSocket-Accept`
/// answer.
pub fn read_request_accept(s: &mut TcpStream) -> String {
    let head = read_head(s);
    let text = String::from_utf8_lossy(&head).to_string();
    let key = text
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no key in {text:?}"));
    ws_proto::handshake::accept_key(key.as_bytes())
}

/// Reads the upgrade request and answers 101 with `extra` header lines.
pub fn answer_101(s: &mut TcpStream, extra: &str) {
    let accept = read_request_accept(s);
    let resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
    );
    s.write_all(resp.as_bytes()).unwrap();
}

/// Writes `bytes`, ignoring a failure (the side under attack may already
/// have closed).
pub fn send(s: &mut TcpStream, bytes: &[u8]) {
    let _ = s.write_all(bytes);
}

/// A ping flood from a peer that does not read: a second thread writes
/// `count` pings (payload: their index as 8 bytes) then a close frame,
/// while this thread reads nothing for `stall`, then `sample` is called
/// (to look at the victim's memory), then everything is read. Returns the
/// payloads of the pongs received, in order, and the close code.
pub fn ping_flood(
    s: &TcpStream,
    masked: bool,
    count: u64,
    stall: Duration,
    sample: impl FnOnce(),
) -> (Vec<u64>, u16) {
    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let writer = std::thread::spawn(move || {
        let mut batch = Vec::new();
        for i in 0..count {
            batch.extend_from_slice(&frame(FIN | PING, masked, &i.to_be_bytes()));
            if batch.len() > 16 << 10 {
                w.write_all(&batch).unwrap();
                batch.clear();
            }
        }
        batch.extend_from_slice(&close_frame(masked, NORMAL, b""));
        w.write_all(&batch).unwrap();
    });
    std::thread::sleep(stall);
    sample();
    let mut r = s.try_clone().unwrap();
    let mut pongs = Vec::new();
    let code = loop {
        let f = read_frame(&mut r).expect("the connection ended during the ping flood");
        match f.opcode() {
            PONG => pongs.push(u64::from_be_bytes(f.payload[..8].try_into().unwrap())),
            CLOSE => break u16::from_be_bytes([f.payload[0], f.payload[1]]),
            op => panic!("unexpected opcode {op}"),
        }
    };
    writer.join().unwrap();
    (pongs, code)
}

// ----- attacks on a server --------------------------------------------------

/// How a connection ended on the side under attack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// The close code it reported (1006 when the transport ended first).
    pub code: u16,
    /// Whether both close frames were exchanged.
    pub clean: bool,
    /// Detail for failure messages.
    pub detail: String,
}

/// What the side under attack did when asked to send to a peer that does
/// not read.
#[derive(Debug, Clone, Default)]
pub struct Flood {
    /// Payload bytes the application managed to hand to `send`.
    pub accepted: usize,
    /// The largest `buffered_amount` seen while sending.
    pub max_buffered: usize,
    /// How the sending was stopped (the refusal or error).
    pub stopped_by: String,
}

/// A server under attack. Its application echoes messages; on the text
/// message `flood` it sends 16 KiB binary messages until refused.
pub trait Victim {
    /// Where it listens.
    fn addr(&self) -> SocketAddr;
    /// Samples the retained bytes of each of its connections now.
    fn sample(&self);
    /// The largest retained bytes of one connection sampled so far (the
    /// application also samples after each event).
    fn peak(&self) -> usize;
    /// The largest heap growth of its connection or loop thread so far
    /// (see [`heap`]).
    fn heap_peak(&self) -> usize;
    /// Waits (bounded) for the end of the connection that asked for `path`.
    fn end(&self, path: &str) -> End;
    /// Waits (bounded) for the report of a `flood` on `path`.
    fn flood(&self, path: &str) -> Flood;
}

/// Asserts that the victim still serves a well-behaved client (an echo and
/// a clean close) and that its retained memory stayed bounded.
pub fn still_serves(v: &dyn Victim) {
    let mut s = upgrade(v.addr(), "/probe", "");
    s.write_all(&frame(FIN | TEXT, true, b"still there?"))
        .unwrap();
    let f = read_frame(&mut s).expect("no echo for the probe");
    assert_eq!(
        (f.opcode(), f.payload.as_slice()),
        (TEXT, &b"still there?"[..])
    );
    assert_eq!(close_normally(&mut s, true), NORMAL);
    v.sample();
    assert!(
        v.peak() <= MEMORY_BOUND,
        "retained {} > bound {MEMORY_BOUND}",
        v.peak()
    );
    assert!(
        v.heap_peak() <= HEAP_BOUND,
        "heap grew by {} > bound {HEAP_BOUND}",
        v.heap_peak()
    );
}

/// Sends `bytes` after upgrading on `path` and returns the close code the
/// server answered with.
pub fn frames_get_close(v: &dyn Victim, path: &str, bytes: &[u8]) -> u16 {
    let mut s = upgrade(v.addr(), path, "");
    send(&mut s, bytes);
    v.sample();
    await_close(&mut s)
}

pub fn oversized_request_line(v: &dyn Victim) {
    let path = format!("/{}", "a".repeat(MAX_HEAD + 10));
    assert_eq!(
        http_status(v.addr(), request(&path, "").as_bytes()),
        Some(414)
    );
    still_serves(v);
}

pub fn oversized_headers(v: &dyn Victim) {
    let big = format!("Cookie: {}\r\n", "c".repeat(MAX_HEAD));
    assert_eq!(
        http_status(v.addr(), request("/", &big).as_bytes()),
        Some(431)
    );
    still_serves(v);
}

pub fn too_many_headers(v: &dyn Victim) {
    let many: String = (0..MAX_HEADERS + 1)
        .map(|i| format!("X-H{i}: v\r\n"))
        .collect();
    assert!(
        many.len() + 200 < MAX_HEAD,
        "the head must fit the byte limit"
    );
    assert_eq!(
        http_status(v.addr(), request("/", &many).as_bytes()),
        Some(431)
    );
    still_serves(v);
}

/// The handshake timeout must cut the connection: no 101, and the end
/// comes after about the timeout (not at once, not much later).
fn assert_cut_by_handshake_timeout(s: &mut TcpStream, start: Instant) {
    let head = read_head(s);
    let took = start.elapsed();
    assert!(
        head.is_empty() || status_of(&head) == Some(408),
        "answered {:?}",
        String::from_utf8_lossy(&head)
    );
    assert!(
        took >= HANDSHAKE_TIMEOUT.mul_f32(0.8) && took < HANDSHAKE_TIMEOUT + Duration::from_secs(3),
        "cut after {took:?} (handshake timeout {HANDSHAKE_TIMEOUT:?})"
    );
}

pub fn handshake_never_finished(v: &dyn Victim) {
    let mut s = dial(v.addr());
    let start = Instant::now();
    let req = request("/", "");
    s.write_all(&req.as_bytes()[..req.len() - 2]).unwrap();
    assert_cut_by_handshake_timeout(&mut s, start);
    still_serves(v);
}

pub fn handshake_one_byte_a_second(v: &dyn Victim) {
    let s = dial(v.addr());
    let start = Instant::now();
    let mut w = s.try_clone().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = std::thread::spawn(move || {
        let req = request("/", "");
        let mut sent = 0;
        for b in req.as_bytes().iter().take(10) {
            if stop2.load(std::sync::atomic::Ordering::SeqCst) || w.write_all(&[*b]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_secs(1));
        }
        sent
    });
    let mut r = s;
    assert_cut_by_handshake_timeout(&mut r, start);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent = writer.join().unwrap();
    assert!(sent <= 4, "{sent} bytes went in before the cut");
    still_serves(v);
}

pub fn bad_key(v: &dyn Victim) {
    let req = request("/", "").replace(KEY, "not-a-base64-16-byte-nonce");
    assert_eq!(http_status(v.addr(), req.as_bytes()), Some(400));
    still_serves(v);
}

pub fn wrong_version(v: &dyn Victim) {
    let mut s = dial(v.addr());
    let req = request("/", "").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
    s.write_all(req.as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert_eq!(status_of(&head), Some(426));
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(text.contains("sec-websocket-version: 13"), "{text}");
    still_serves(v);
}

pub fn length_2_pow_63(v: &dyn Victim) {
    let mut bytes = header(FIN | BINARY, true, 1 << 63);
    bytes.extend_from_slice(&[0u8; 64]);
    assert_eq!(frames_get_close(v, "/attack", &bytes), PROTOCOL_ERROR);
    assert_eq!(v.end("/attack").code, PROTOCOL_ERROR);
    still_serves(v);
}

pub fn length_just_over_frame_limit(v: &dyn Victim) {
    let mut s = upgrade(v.addr(), "/attack", "");
    send(&mut s, &header(FIN | BINARY, true, MAX_FRAME as u64 + 1));
    // The payload follows; none of it may be buffered.
    send(&mut s, &vec![0x55; MAX_FRAME / 2]);
    v.sample();
    assert_eq!(await_close(&mut s), TOO_BIG);
    assert_eq!(v.end("/attack").code, TOO_BIG);
    assert!(
        v.peak() < MAX_FRAME,
        "retained {} for a refused frame",
        v.peak()
    );
    still_serves(v);
}

pub fn empty_fragment_flood(v: &dyn Victim) {
    let mut bytes = frame(TEXT, true, b"");
    for _ in 0..10 * MAX_FRAGMENTS {
        bytes.extend_from_slice(&frame(CONT, true, b""));
    }
    assert_eq!(frames_get_close(v, "/attack", &bytes), TOO_BIG);
    assert_eq!(v.end("/attack").code, TOO_BIG);
    still_serves(v);
}

pub fn continuation_without_start(v: &dyn Victim) {
    let bytes = frame(FIN | CONT, true, b"orphan");
    assert_eq!(frames_get_close(v, "/attack", &bytes), PROTOCOL_ERROR);
    still_serves(v);
}

pub fn data_frame_inside_fragmented_message(v: &dyn Victim) {
    let mut bytes = frame(TEXT, true, b"first half, ");
    bytes.extend_from_slice(&frame(FIN | BINARY, true, b"a new message"));
    assert_eq!(frames_get_close(v, "/attack", &bytes), PROTOCOL_ERROR);
    still_serves(v);
}

pub fn ping_flood_unread_pongs(v: &dyn Victim) {
    let s = upgrade(v.addr(), "/attack", "");
    let count = 40_000;
    let (pongs, code) = ping_flood(&s, true, count, Duration::from_millis(1500), || v.sample());
    assert_eq!(code, NORMAL, "the flood is legal: the close must be normal");
    assert!(!pongs.is_empty() && pongs.len() as u64 <= count);
    assert!(pongs.windows(2).all(|w| w[0] < w[1]), "pongs out of order");
    assert_eq!(
        *pongs.last().unwrap(),
        count - 1,
        "the latest ping must be answered"
    );
    still_serves(v);
}

pub fn control_frame_over_125(v: &dyn Victim) {
    let bytes = frame(FIN | PING, true, &[7u8; 126]);
    assert_eq!(frames_get_close(v, "/attack", &bytes), PROTOCOL_ERROR);
    still_serves(v);
}

pub fn fragmented_control_frame(v: &dyn Victim) {
    let bytes = frame(PING, true, b"no FIN");
    assert_eq!(frames_get_close(v, "/attack", &bytes), PROTOCOL_ERROR);
    still_serves(v);
}

pub fn reserved_opcodes(v: &dyn Victim) {
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        let bytes = frame(FIN | op, true, b"x");
        assert_eq!(
            frames_get_close(v, "/attack", &bytes),
            PROTOCOL_ERROR,
            "opcode {op:#x}"
        );
    }
    still_serves(v);
}

pub fn rsv_bits_without_extension(v: &dyn Victim) {
    for rsv in [RSV1, RSV2, RSV3] {
        let bytes = frame(FIN | rsv | TEXT, true, b"x");
        assert_eq!(
            frames_get_close(v, "/attack", &bytes),
            PROTOCOL_ERROR,
            "rsv {rsv:#x}"
        );
    }
    still_serves(v);
}

pub fn unmasked_client_frame(v: &dyn Victim) {
    let bytes = frame(FIN | TEXT, false, b"unmasked");
    assert_eq!(frames_get_close(v, "/attack", &bytes), PROTOCOL_ERROR);
    still_serves(v);
}

pub fn invalid_close_codes(v: &dyn Victim) {
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2999, 5000, 65535,
    ] {
        let bytes = close_frame(true, code, b"");
        assert_eq!(
            frames_get_close(v, "/attack", &bytes),
            PROTOCOL_ERROR,
            "code {code}"
        );
    }
    still_serves(v);
}

pub fn one_byte_close_payload(v: &dyn Victim) {
    let bytes = frame(FIN | CLOSE, true, &[0x03]);
    assert_eq!(frames_get_close(v, "/attack", &bytes), PROTOCOL_ERROR);
    still_serves(v);
}

pub fn close_reason_invalid_utf8(v: &dyn Victim) {
    let bytes = close_frame(true, NORMAL, &[b'o', b'k', 0xff, 0xfe]);
    assert_eq!(frames_get_close(v, "/attack", &bytes), INVALID_PAYLOAD);
    still_serves(v);
}

pub fn decompression_bomb(v: &dyn Victim) {
    let mut s = upgrade_deflate(v.addr(), "/attack");
    // 64 MiB of zeros in a few KiB: 512 times the message limit.
    let payload = bomb(64 << 20, Role::Client);
    assert!(payload.len() < MAX_FRAME, "bomb of {} bytes", payload.len());
    send(&mut s, &frame(FIN | RSV1 | BINARY, true, &payload));
    v.sample();
    assert_eq!(await_close(&mut s), TOO_BIG);
    assert_eq!(v.end("/attack").code, TOO_BIG);
    still_serves(v);
}

pub fn compressed_control_frame(v: &dyn Victim) {
    let mut s = upgrade_deflate(v.addr(), "/attack");
    send(
        &mut s,
        &frame(FIN | RSV1 | PING, true, &bomb(10, Role::Client)),
    );
    assert_eq!(await_close(&mut s), PROTOCOL_ERROR);
    still_serves(v);
}

/// The peer asks for a flood and reads nothing for a while; returns the
/// victim's report. The victim's memory must stay bounded meanwhile.
pub fn peer_stops_reading(v: &dyn Victim) -> (TcpStream, Flood) {
    let mut s = upgrade(v.addr(), "/flood", "");
    s.write_all(&frame(FIN | TEXT, true, b"flood")).unwrap();
    let report = v.flood("/flood");
    v.sample();
    assert!(
        report.accepted < 64 << 20,
        "all 64 MiB were accepted for a peer that reads nothing"
    );
    assert!(v.peak() <= MEMORY_BOUND, "retained {}", v.peak());
    assert!(
        v.heap_peak() <= HEAP_BOUND,
        "heap grew by {}",
        v.heap_peak()
    );
    (s, report)
}

pub fn peer_vanishes_mid_frame(v: &dyn Victim) {
    let mut s = upgrade(v.addr(), "/attack", "");
    send(&mut s, &header(FIN | BINARY, true, 1000));
    send(&mut s, &[1u8; 100]);
    std::thread::sleep(Duration::from_millis(50));
    v.sample();
    drop(s);
    let end = v.end("/attack");
    assert_eq!((end.code, end.clean), (ABNORMAL, false), "{end:?}");
    still_serves(v);
}

/// Leaves unread bytes in our receive buffer and closes: the kernel then
/// answers with a RST instead of a FIN.
pub fn reset(mut s: TcpStream, masked: bool) {
    s.write_all(&frame(FIN | PING, masked, b"answer me"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(s);
}

pub fn tcp_reset(v: &dyn Victim) {
    let s = upgrade(v.addr(), "/attack", "");
    reset(s, true);
    let end = v.end("/attack");
    assert_eq!((end.code, end.clean), (ABNORMAL, false), "{end:?}");
    still_serves(v);
}

/// A plaintext upgrade request to a TLS port: the server must drop it
/// quickly (answering at most a TLS alert), and keep serving.
pub fn failed_tls_handshake(addr: SocketAddr) {
    let mut s = dial(addr);
    s.write_all(request("/", "").as_bytes()).unwrap();
    let mut first = [0u8; 1];
    let start = Instant::now();
    match s.read(&mut first) {
        Ok(0) => {}
        Ok(_) => assert_eq!(first[0], 0x15, "expected a TLS alert record"),
        Err(e) if is_reset(&e) => {}
        Err(e) => panic!("{e}"),
    }
    await_end(&mut s, Duration::from_secs(3));
    assert!(start.elapsed() < Duration::from_secs(3));
}

pub fn origin_allow_list(v: &dyn Victim, allowed: &str) {
    let with = |o: &str| format!("Origin: {o}\r\n");
    assert_eq!(
        http_status(
            v.addr(),
            request("/", &with("https://evil.example")).as_bytes()
        ),
        Some(403)
    );
    assert_eq!(
        http_status(v.addr(), request("/", "").as_bytes()),
        Some(403),
        "no Origin"
    );
    let mut s = upgrade(v.addr(), "/ok", &with(allowed));
    assert_eq!(close_normally(&mut s, true), NORMAL);
}
