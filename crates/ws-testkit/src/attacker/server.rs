//! The attacks on a server: the attacker is a raw TCP client, the server
//! under attack is a [`Victim`]. Each attack asserts the HTTP status or the
//! close code it gets, and (through [`still_serves`]) that the victim still
//! serves a well-behaved client with its memory bounded.
//! [`server_attacks!`](crate::server_attacks) makes one test per attack.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ws_proto::deflate::Role;

use super::wire::*;

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
    /// (see [`heap_peak`](crate::alloc::heap_peak)).
    fn heap_peak(&self) -> usize;
    /// Waits (bounded) for the end of the connection that asked for `path`.
    fn end(&self, path: &str) -> End;
    /// Waits (bounded) for the report of a `flood` on `path`.
    fn flood(&self, path: &str) -> Flood;
}

/// Asserts that the victim still serves a well-behaved client (an echo and
/// a clean close) and that its retained memory stayed bounded.
pub fn still_serves(v: &dyn Victim) {
    assert!(crate::alloc::installed(), "{NO_METER}");
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

/// A request line longer than the head limit: 414.
pub fn oversized_request_line(v: &dyn Victim) {
    let path = format!("/{}", "a".repeat(MAX_HEAD + 10));
    assert_eq!(
        http_status(v.addr(), request(&path, "").as_bytes()),
        Some(414)
    );
    still_serves(v);
}

/// A header block longer than the head limit: 431.
pub fn oversized_headers(v: &dyn Victim) {
    let big = format!("Cookie: {}\r\n", "c".repeat(MAX_HEAD));
    assert_eq!(
        http_status(v.addr(), request("/", &big).as_bytes()),
        Some(431)
    );
    still_serves(v);
}

/// More header lines than allowed (within the byte limit): 431.
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

/// A request without its final blank line: cut by the handshake timeout.
pub fn handshake_never_finished(v: &dyn Victim) {
    let mut s = dial(v.addr());
    let start = Instant::now();
    let req = request("/", "");
    s.write_all(&req.as_bytes()[..req.len() - 2]).unwrap();
    assert_cut_by_handshake_timeout(&mut s, start);
    still_serves(v);
}

/// A slow loris sending its request a byte a second: cut by the handshake
/// timeout after a few bytes.
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

/// A `Sec-WebSocket-Key` that is not a base64 16-byte nonce: 400.
pub fn bad_key(v: &dyn Victim) {
    let req = request("/", "").replace(KEY, "not-a-base64-16-byte-nonce");
    assert_eq!(http_status(v.addr(), req.as_bytes()), Some(400));
    still_serves(v);
}

/// `Sec-WebSocket-Version: 8`: 426 naming version 13.
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

/// A frame declaring 2^63 bytes (the top bit set): 1002.
pub fn length_2_pow_63(v: &dyn Victim) {
    let mut bytes = header(FIN | BINARY, true, 1 << 63);
    bytes.extend_from_slice(&[0u8; 64]);
    assert_eq!(frames_get_close(v, "/attack", &bytes), PROTOCOL_ERROR);
    assert_eq!(v.end("/attack").code, PROTOCOL_ERROR);
    still_serves(v);
}

/// A frame declaring one byte over the frame limit: 1009, decided before
/// any of its payload is buffered.
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

/// Ten times the fragment limit of empty continuation frames: 1009.
pub fn empty_fragment_flood(v: &dyn Victim) {
    let mut bytes = frame(TEXT, true, b"");
    for _ in 0..10 * MAX_FRAGMENTS {
        bytes.extend_from_slice(&frame(CONT, true, b""));
    }
    assert_eq!(frames_get_close(v, "/attack", &bytes), TOO_BIG);
    assert_eq!(v.end("/attack").code, TOO_BIG);
    still_serves(v);
}

/// A continuation frame without a started message: 1002.
pub fn continuation_without_start(v: &dyn Victim) {
    let bytes = frame(FIN | CONT, true, b"orphan");
    assert_eq!(frames_get_close(v, "/attack", &bytes), PROTOCOL_ERROR);
    still_serves(v);
}

/// A new data frame while a fragmented message is unfinished: 1002.
pub fn data_frame_inside_fragmented_message(v: &dyn Victim) {
    let mut bytes = frame(TEXT, true, b"first half, ");
    bytes.extend_from_slice(&frame(FIN | BINARY, true, b"a new message"));
    assert_eq!(frames_get_close(v, "/attack", &bytes), PROTOCOL_ERROR);
    still_serves(v);
}

/// 40,000 pings from a peer that does not read the pongs for 1.5 s: the
/// pongs are coalesced (in order, the latest answered) and the close is
/// normal.
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

/// A ping of 126 bytes: 1002.
pub fn control_frame_over_125(v: &dyn Victim) {
    let bytes = frame(FIN | PING, true, &[7u8; 126]);
    assert_eq!(frames_get_close(v, "/attack", &bytes), PROTOCOL_ERROR);
    still_serves(v);
}

/// A ping without FIN: 1002.
pub fn fragmented_control_frame(v: &dyn Victim) {
    let bytes = frame(PING, true, b"no FIN");
    assert_eq!(frames_get_close(v, "/attack", &bytes), PROTOCOL_ERROR);
    still_serves(v);
}

/// Each reserved opcode: 1002.
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

/// Each RSV bit without an extension that owns it: 1002.
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

/// An unmasked frame from a client: 1002.
pub fn unmasked_client_frame(v: &dyn Victim) {
    let bytes = frame(FIN | TEXT, false, b"unmasked");
    assert_eq!(frames_get_close(v, "/attack", &bytes), PROTOCOL_ERROR);
    still_serves(v);
}

/// Close frames with codes that may not be sent: 1002.
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

/// A close frame with a one-byte payload: 1002.
pub fn one_byte_close_payload(v: &dyn Victim) {
    let bytes = frame(FIN | CLOSE, true, &[0x03]);
    assert_eq!(frames_get_close(v, "/attack", &bytes), PROTOCOL_ERROR);
    still_serves(v);
}

/// A close reason that is not UTF-8: 1007.
pub fn close_reason_invalid_utf8(v: &dyn Victim) {
    let bytes = close_frame(true, NORMAL, &[b'o', b'k', 0xff, 0xfe]);
    assert_eq!(frames_get_close(v, "/attack", &bytes), INVALID_PAYLOAD);
    still_serves(v);
}

/// 64 MiB of zeros compressed into one small frame: 1009, memory bounded.
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

/// A ping with RSV1 (compressed) on a deflate connection: 1002.
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

/// The peer closes TCP in the middle of a frame: the victim ends with 1006,
/// not clean.
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

/// The peer resets the connection: the victim ends with 1006, not clean.
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

/// A victim that allows only `allowed` (and origins equal to it but for
/// ASCII case): 403 for another origin and for none, 101 for `allowed`.
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

/// Declares one `#[test]` per attack on a server (every attack that takes
/// only the victim), each against a fresh victim made by `$victim` (an
/// expression, for example `MioVictim::new`, called with no argument). The
/// tests take the attacks' names: write it inside `mod server` to get
/// `server::bad_key` and so on. Attacks that need more than a victim
/// (`peer_stops_reading`, `failed_tls_handshake`, `origin_allow_list`) are
/// written out by each suite.
#[macro_export]
macro_rules! server_attacks {
    ($victim:expr) => {
        $crate::server_attacks!(
            $victim;
            oversized_request_line,
            oversized_headers,
            too_many_headers,
            handshake_never_finished,
            handshake_one_byte_a_second,
            bad_key,
            wrong_version,
            length_2_pow_63,
            length_just_over_frame_limit,
            empty_fragment_flood,
            continuation_without_start,
            data_frame_inside_fragmented_message,
            ping_flood_unread_pongs,
            control_frame_over_125,
            fragmented_control_frame,
            reserved_opcodes,
            rsv_bits_without_extension,
            unmasked_client_frame,
            invalid_close_codes,
            one_byte_close_payload,
            close_reason_invalid_utf8,
            decompression_bomb,
            compressed_control_frame,
            peer_vanishes_mid_frame,
            tcp_reset,
        );
    };
    ($victim:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::attacker::server::$name(&($victim)());
            }
        )*
    };
}
