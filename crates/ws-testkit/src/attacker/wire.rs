//! The attacker's wire: the limits and configuration of the side under
//! attack, hand-built frames and HTTP heads, and raw `std::net` sockets
//! with read and write timeouts (a wait that passes its limit fails the
//! test; nothing can hang).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ws_proto::deflate::{Compressor, DeflateParams, Role};
use ws_proto::{Config, DeflateConfig, Limits};

/// Longest single socket wait of the attacker.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

// The limits the side under attack runs with (small, so attacks are quick).

/// `max_frame_payload` of the side under attack.
pub const MAX_FRAME: usize = 64 << 10;
/// `max_message_size` of the side under attack.
pub const MAX_MESSAGE: usize = 128 << 10;
/// `max_fragments` of the side under attack.
pub const MAX_FRAGMENTS: usize = 64;
/// `max_handshake_bytes` of the side under attack.
pub const MAX_HEAD: usize = 4 << 10;
/// `max_headers` of the side under attack.
pub const MAX_HEADERS: usize = 16;
/// `max_send_queue` of the side under attack.
pub const MAX_SEND_QUEUE: usize = 256 << 10;
/// Heap growth the side under attack may show on its own thread during one
/// attack: `MEMORY_BOUND` for the core's receive buffers, the send queue,
/// and 512 KiB for the driver's fixed buffers (read, scratch and TLS
/// buffers, the wire queue, the loop's pool segments) and one
/// permessage-deflate context pair (about 400 KiB of zlib state at 15-bit
/// windows). Without the limits the attacks below would make it allocate
/// 64 MiB or more.
pub const HEAP_BOUND: usize = MEMORY_BOUND + MAX_SEND_QUEUE + (512 << 10);

/// Why a heap bound cannot be checked: the suite's binary does not count.
pub const NO_METER: &str =
    "the heap is not measured: declare `ws_testkit::counting_allocator!();` in the suite";

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

// ----- close codes (RFC 6455 §7.4.1) ---------------------------------------

/// Normal closure.
pub const NORMAL: u16 = 1000;
/// Protocol error.
pub const PROTOCOL_ERROR: u16 = 1002;
/// Invalid frame payload data (not UTF-8 where text is required).
pub const INVALID_PAYLOAD: u16 = 1007;
/// Policy violation.
pub const POLICY: u16 = 1008;
/// Message too big.
pub const TOO_BIG: u16 = 1009;
/// Abnormal closure: the transport ended without a closing handshake (never
/// on the wire).
pub const ABNORMAL: u16 = 1006;

// ----- opcodes and first-byte bits -----------------------------------------

/// The FIN bit.
pub const FIN: u8 = 0x80;
/// The RSV1 bit (permessage-deflate's "compressed").
pub const RSV1: u8 = 0x40;
/// The RSV2 bit.
pub const RSV2: u8 = 0x20;
/// The RSV3 bit.
pub const RSV3: u8 = 0x10;
/// Continuation frame.
pub const CONT: u8 = 0x0;
/// Text frame.
pub const TEXT: u8 = 0x1;
/// Binary frame.
pub const BINARY: u8 = 0x2;
/// Close frame.
pub const CLOSE: u8 = 0x8;
/// Ping frame.
pub const PING: u8 = 0x9;
/// Pong frame.
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
    /// The first byte: FIN, RSV bits, opcode.
    pub b0: u8,
    /// Whether it came masked.
    pub masked: bool,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The opcode (low four bits of the first byte).
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

/// Leaves unread bytes in our receive buffer and closes: the kernel then
/// answers with a RST instead of a FIN. The bytes are the pong to a ping
/// sent here: `peek` waits (at most [`IO_TIMEOUT`]) until they arrive,
/// without taking them.
pub fn reset(mut s: TcpStream, masked: bool) {
    s.write_all(&frame(FIN | PING, masked, b"answer me"))
        .unwrap();
    let _ = s.peek(&mut [0u8; 1]);
    drop(s);
}
