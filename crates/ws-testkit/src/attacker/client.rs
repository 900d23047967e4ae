//! The attacks on a client, written once for every client driver: the
//! attacker is a raw TCP server ([`raw_server`]), the client under attack
//! is reached through [`ClientDriver`], which each driver's hostile suite
//! implements for its own API. [`client_attacks!`](crate::client_attacks)
//! makes one test per attack for a driver.
//!
//! Each attack asserts the close code the attacker got, how the client
//! ended (code, cleanliness, cause), and that the client's retained memory
//! and the heap growth of the thread running its connection stayed bounded.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ws_proto::deflate::Role;

use super::wire::*;

/// What ended a client connection, in terms every driver can report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The peer broke the protocol: the client closed with this code.
    Protocol(u16),
    /// The answer to the upgrade request was refused (not 101, bad accept
    /// key, unasked extension, head too large...).
    Handshake,
    /// No answer to the upgrade request within the handshake timeout.
    HandshakeTimeout,
    /// TLS failed (for drivers that tell it apart from a lost transport).
    Tls,
    /// The transport ended or failed before the closing handshake (EOF,
    /// reset, or another transport error the driver reported).
    Lost,
    /// Anything else (its description).
    Other(String),
}

impl Failure {
    /// The failure the core reports in `Closed::error`. A transport error
    /// (`ConnectionError::Io`: the driver's report of a reset, a failed read
    /// or a failed TLS record) counts as [`Failure::Lost`].
    pub fn of(e: &ws_proto::ConnectionError) -> Failure {
        use ws_proto::ConnectionError as E;
        match e {
            E::Protocol(p) => Failure::Protocol(p.close_code().as_u16()),
            E::Handshake(_) => Failure::Handshake,
            E::HandshakeTimeout => Failure::HandshakeTimeout,
            E::ConnectionLost | E::Io(_) => Failure::Lost,
            other => Failure::Other(other.to_string()),
        }
    }
}

/// What one client connection did, from the start of connecting to its
/// end.
#[derive(Debug, Clone)]
pub struct ClientRun {
    /// Whether the connection opened (the upgrade succeeded).
    pub opened: bool,
    /// The close code the client reported: the peer's or its own, 1006 when
    /// the transport ended first or the connection never opened.
    pub code: u16,
    /// Whether both close frames were exchanged.
    pub clean: bool,
    /// What went wrong, `None` for a closing handshake without error.
    pub failure: Option<Failure>,
    /// The largest `retained_bytes` of the connection sampled (at least
    /// after each message or ping received).
    pub peak_retained: usize,
    /// The largest heap growth of the thread that ran the connection
    /// ([`heap_peak`](crate::alloc::heap_peak)), `None` when the driver
    /// does not measure it for this run (ws-std's blocking client measures
    /// from the open on, so not for a connection that failed to open).
    pub heap_growth: Option<usize>,
    /// From the start of connecting to the end.
    pub took: Duration,
    /// More detail for failure messages.
    pub detail: String,
}

impl ClientRun {
    /// A connection that failed to open: 1006, not clean.
    pub fn failed(failure: Failure, took: Duration, detail: String) -> ClientRun {
        ClientRun {
            opened: false,
            code: ABNORMAL,
            clean: false,
            failure: Some(failure),
            peak_retained: 0,
            heap_growth: None,
            took,
            detail,
        }
    }
}

/// Why a client stopped sending to a peer that reads nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The send queue was full: `buffered` bytes were waiting and the
    /// message would have taken it past `limit`.
    Backpressure {
        /// Bytes waiting when the send was refused.
        buffered: usize,
        /// The limit the driver reported.
        limit: usize,
    },
    /// Any other error (its description).
    Other(String),
}

/// What a client did when it sent to a peer that reads nothing.
#[derive(Debug, Clone)]
pub struct FloodRun {
    /// Payload bytes `send` took.
    pub accepted: usize,
    /// The largest buffered amount seen after each send.
    pub max_buffered: usize,
    /// What stopped the sending (`None`: the driver took every message it
    /// was given).
    pub refusal: Option<Refusal>,
    /// The heap growth of the thread that ran the connection, when the
    /// driver measures it.
    pub heap_growth: Option<usize>,
}

/// A client driver under attack. Implemented by each driver's hostile
/// suite (ws-std, ws-mio; ws-tokio when it lands) for its own API, so that
/// one suite (the functions of this module, instantiated by
/// [`client_attacks!`](crate::client_attacks)) runs against all of them.
///
/// Every connection uses [`config`] (the small limits, the short handshake
/// timeout, permessage-deflate offered). Every wait is bounded by the
/// implementation.
pub trait ClientDriver {
    /// Whether the driver writes to the socket while the application is
    /// still sending (a writer thread that empties the send queue
    /// meanwhile, like ws-std's event client). Then a flood also fills the
    /// kernel's socket buffers and may take more than [`MAX_SEND_QUEUE`];
    /// otherwise (ws-mio: sends made in a callback are written after it
    /// returns) it takes at most that.
    const WRITES_WHILE_SENDING: bool;

    /// Connects to `url` (`ws://` or `wss://`, whose host is `addr` on
    /// 127.0.0.1), receives (answering pings) until the connection ends,
    /// and reports the run. A connection that fails to open is a run too
    /// ([`ClientRun::failed`]).
    fn run(addr: SocketAddr, url: &str) -> ClientRun;

    /// Connects to `url` (whose host is `addr`) with a send queue of
    /// [`MAX_SEND_QUEUE`]; once open, sends 16 KiB binary messages without
    /// waiting (at most 4,096 of them) until the driver refuses one, then
    /// calls `release_peer` (the peer, which has read nothing so far, then
    /// drops its socket), then ends the connection and reports.
    fn flood(addr: SocketAddr, url: &str, release_peer: &dyn Fn()) -> FloodRun;
}

/// Asserts the heap growth bound when the run measured it.
fn assert_heap(growth: Option<usize>) {
    if let Some(g) = growth {
        assert!(crate::alloc::installed(), "{NO_METER}");
        assert!(g <= HEAP_BOUND, "heap grew by {g} > bound {HEAP_BOUND}");
    }
}

/// Runs the client `D` against a raw server that answers 101 (with
/// permessage-deflate when `deflate`) and then runs `attack`; returns the
/// client's run (its heap growth checked) and what the attack returned.
pub fn attacked<D: ClientDriver, T: Send + 'static>(
    deflate: bool,
    attack: impl FnOnce(&mut TcpStream) -> T + Send + 'static,
) -> (ClientRun, T) {
    let (addr, h) = raw_server(move |mut s| {
        let ext = if deflate {
            "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        } else {
            ""
        };
        answer_101(&mut s, ext);
        attack(&mut s)
    });
    let run = D::run(addr, &format!("ws://{addr}/"));
    assert!(run.opened, "{run:?}");
    assert_heap(run.heap_growth);
    (run, h.join().unwrap())
}

/// Sends `bytes` to the client `D` and asserts the close code `want` on
/// both sides, and the client's retained memory bounded.
pub fn protocol_error<D: ClientDriver>(bytes: Vec<u8>, want: u16) {
    let (run, got) = attacked::<D, _>(false, move |s| {
        send(s, &bytes);
        await_close(s)
    });
    assert_eq!(got, want, "close code the attacker got");
    assert_eq!(run.code, want, "{run:?}");
    assert!(run.peak_retained <= MEMORY_BOUND, "{run:?}");
}

/// A masked frame from a server: 1002.
pub fn masked_server_frame<D: ClientDriver>() {
    protocol_error::<D>(frame(FIN | TEXT, true, b"masked"), PROTOCOL_ERROR);
}

/// A frame declaring 2^63 bytes: 1002.
pub fn length_2_pow_63<D: ClientDriver>() {
    protocol_error::<D>(header(FIN | BINARY, false, 1 << 63), PROTOCOL_ERROR);
}

/// A frame declaring one byte over the frame limit, half its payload sent:
/// 1009.
pub fn length_just_over_frame_limit<D: ClientDriver>() {
    let mut bytes = header(FIN | BINARY, false, MAX_FRAME as u64 + 1);
    bytes.extend_from_slice(&vec![0u8; MAX_FRAME / 2]);
    protocol_error::<D>(bytes, TOO_BIG);
}

/// A reserved opcode: 1002.
pub fn reserved_opcode<D: ClientDriver>() {
    protocol_error::<D>(frame(FIN | 0xB, false, b""), PROTOCOL_ERROR);
}

/// RSV2 without an extension that owns it: 1002.
pub fn rsv_bits_without_extension<D: ClientDriver>() {
    protocol_error::<D>(frame(FIN | RSV2 | TEXT, false, b"x"), PROTOCOL_ERROR);
}

/// A ping of 126 bytes: 1002.
pub fn control_frame_over_125<D: ClientDriver>() {
    protocol_error::<D>(frame(FIN | PING, false, &[1; 126]), PROTOCOL_ERROR);
}

/// A continuation frame without a started message: 1002.
pub fn continuation_without_start<D: ClientDriver>() {
    protocol_error::<D>(frame(FIN | CONT, false, b"x"), PROTOCOL_ERROR);
}

/// A close frame with code 1005 (may not be sent): 1002.
pub fn invalid_close_code<D: ClientDriver>() {
    protocol_error::<D>(close_frame(false, 1005, b""), PROTOCOL_ERROR);
}

/// A close reason that is not UTF-8: 1007.
pub fn close_reason_invalid_utf8<D: ClientDriver>() {
    protocol_error::<D>(close_frame(false, NORMAL, &[0xc3, 0x28]), INVALID_PAYLOAD);
}

/// 64 MiB of zeros compressed into one small frame: 1009 on both sides,
/// retained memory bounded.
pub fn decompression_bomb<D: ClientDriver>() {
    let (run, got) = attacked::<D, _>(true, |s| {
        send(
            s,
            &frame(FIN | RSV1 | BINARY, false, &bomb(64 << 20, Role::Server)),
        );
        await_close(s)
    });
    assert_eq!((got, run.code), (TOO_BIG, TOO_BIG), "{run:?}");
    assert!(
        run.peak_retained <= MEMORY_BOUND,
        "retained {}",
        run.peak_retained
    );
}

/// A compressed ping: 1002 on both sides.
pub fn compressed_control_frame<D: ClientDriver>() {
    let (run, got) = attacked::<D, _>(true, |s| {
        send(s, &frame(FIN | RSV1 | PING, false, &bomb(10, Role::Server)));
        await_close(s)
    });
    assert_eq!((got, run.code), (PROTOCOL_ERROR, PROTOCOL_ERROR), "{run:?}");
}

/// 40,000 pings from a server that reads no pong for 1.5 s, then a close:
/// the pongs come in order with the latest answered, the close is normal
/// and clean, retained memory bounded.
pub fn ping_flood_unread_pongs<D: ClientDriver>() {
    let count = 40_000;
    let (run, (pongs, code)) = attacked::<D, _>(false, move |s| {
        ping_flood(s, false, count, Duration::from_millis(1500), || {})
    });
    assert_eq!(code, NORMAL);
    assert!(run.clean, "{run:?}");
    assert!(!pongs.is_empty() && pongs.len() as u64 <= count);
    assert_eq!(*pongs.last().unwrap(), count - 1);
    assert!(run.peak_retained <= MEMORY_BOUND, "{run:?}");
}

/// The server closes TCP in the middle of a frame: 1006, not clean, the
/// connection lost.
pub fn peer_vanishes_mid_frame<D: ClientDriver>() {
    let (run, ()) = attacked::<D, _>(false, |s| {
        send(s, &header(FIN | BINARY, false, 1000));
        send(s, &[1; 10]);
        s.shutdown(std::net::Shutdown::Both).unwrap();
    });
    assert_eq!((run.code, run.clean), (ABNORMAL, false), "{run:?}");
    assert_eq!(run.failure, Some(Failure::Lost), "{run:?}");
}

/// The server resets the connection (our client's pong to its ping left
/// unread): 1006, not clean, the connection lost.
pub fn tcp_reset<D: ClientDriver>() {
    let (run, ()) = attacked::<D, _>(false, |s| reset(s.try_clone().unwrap(), false));
    assert_eq!((run.code, run.clean), (ABNORMAL, false), "{run:?}");
    assert_eq!(run.failure, Some(Failure::Lost), "{run:?}");
}

/// Each bad answer to the upgrade fails the connection with a handshake
/// error, well within the handshake timeout.
pub fn bad_101_answers<D: ClientDriver>() {
    type Answer = fn(String) -> String;
    let cases: [(&str, Answer); 6] = [
        ("wrong accept", |_| {
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n".into()
        }),
        ("no upgrade", |a| {
            format!("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {a}\r\n\r\n")
        }),
        ("200", |_| {
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".into()
        }),
        ("garbage", |_| "SSH-2.0-OpenSSH_9.6\r\n\r\n".into()),
        ("unasked extension", |a| {
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {a}\r\nSec-WebSocket-Extensions: x-unknown\r\n\r\n")
        }),
        ("oversized head", |a| {
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {a}\r\nX: {}\r\n\r\n", "x".repeat(MAX_HEAD))
        }),
    ];
    for (what, answer) in cases {
        let (addr, h) = raw_server(move |mut s| {
            let a = read_request_accept(&mut s);
            send(&mut s, answer(a).as_bytes());
            await_end(&mut s, Duration::from_secs(3));
        });
        let run = D::run(addr, &format!("ws://{addr}/"));
        assert!(!run.opened, "{what}: {run:?}");
        assert_eq!(run.code, ABNORMAL, "{what}: {run:?}");
        assert_eq!(run.failure, Some(Failure::Handshake), "{what}: {run:?}");
        assert!(run.took < HANDSHAKE_TIMEOUT, "{what}: took {:?}", run.took);
        assert_heap(run.heap_growth);
        h.join().unwrap();
    }
}

/// The server reads the request and never answers: the handshake timeout
/// ends the connection after about its length.
pub fn handshake_never_answered<D: ClientDriver>() {
    let (addr, h) = raw_server(|mut s| {
        let _ = read_request_accept(&mut s);
        await_end(&mut s, Duration::from_secs(5));
    });
    let run = D::run(addr, &format!("ws://{addr}/"));
    assert!(!run.opened, "{run:?}");
    assert_eq!(run.failure, Some(Failure::HandshakeTimeout), "{run:?}");
    assert!(
        run.took >= HANDSHAKE_TIMEOUT.mul_f32(0.8) && run.took < HANDSHAKE_TIMEOUT * 3,
        "{:?}",
        run.took
    );
    assert_heap(run.heap_growth);
    h.join().unwrap();
}

/// The server reads nothing: the send queue refuses at its limit, and the
/// client's buffered amount never passes it.
pub fn peer_stops_reading<D: ClientDriver>() {
    // The peer reads nothing until the client is done (bounded).
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let (addr, h) = raw_server(move |mut s| {
        answer_101(&mut s, "");
        let _ = done_rx.recv_timeout(Duration::from_secs(20));
        drop(s);
    });
    let run = D::flood(addr, &format!("ws://{addr}/"), &|| {
        let _ = done_tx.send(());
    });
    let _ = done_tx.send(());
    h.join().unwrap();
    match &run.refusal {
        Some(Refusal::Backpressure { buffered, limit }) => {
            assert_eq!(*limit, MAX_SEND_QUEUE, "{run:?}");
            assert!(*buffered <= MAX_SEND_QUEUE && *buffered > 0, "{run:?}");
        }
        other => panic!("{other:?} after {} bytes", run.accepted),
    }
    assert!(run.max_buffered <= MAX_SEND_QUEUE, "{run:?}");
    assert!(
        run.accepted < 64 << 20,
        "all 64 MiB were accepted for a peer that reads nothing"
    );
    if !D::WRITES_WHILE_SENDING {
        assert!(run.accepted <= MAX_SEND_QUEUE, "{run:?}");
    }
    assert_heap(run.heap_growth);
}

/// A `wss://` connection to a server that answers the ClientHello in
/// plain HTTP: the connection fails quickly, as TLS or a lost transport.
pub fn failed_tls_handshake<D: ClientDriver>() {
    let (addr, h) = raw_server(|mut s| {
        // Not TLS: an HTTP answer to the ClientHello.
        send(&mut s, b"HTTP/1.1 400 Bad Request\r\n\r\n");
        await_end(&mut s, Duration::from_secs(3));
    });
    let run = D::run(addr, &format!("wss://localhost:{}/", addr.port()));
    assert!(!run.opened, "opened over a failed TLS handshake: {run:?}");
    assert_eq!((run.code, run.clean), (ABNORMAL, false), "{run:?}");
    assert!(
        matches!(run.failure, Some(Failure::Tls | Failure::Lost)),
        "{run:?}"
    );
    assert!(run.took < Duration::from_secs(3), "took {:?}", run.took);
    assert_heap(run.heap_growth);
    h.join().unwrap();
}

/// Declares one `#[test]` per attack on a client, each running the
/// driver `$driver` (a type implementing [`ClientDriver`]). The tests take
/// the attacks' names: write it inside `mod client` to get
/// `client::masked_server_frame` and so on. A new attack added to this
/// module is added to the list here, and so runs against every driver.
#[macro_export]
macro_rules! client_attacks {
    ($driver:ty) => {
        $crate::client_attacks!(
            $driver;
            masked_server_frame,
            length_2_pow_63,
            length_just_over_frame_limit,
            reserved_opcode,
            rsv_bits_without_extension,
            control_frame_over_125,
            continuation_without_start,
            invalid_close_code,
            close_reason_invalid_utf8,
            decompression_bomb,
            compressed_control_frame,
            ping_flood_unread_pongs,
            peer_vanishes_mid_frame,
            tcp_reset,
            bad_101_answers,
            handshake_never_answered,
            peer_stops_reading,
            failed_tls_handshake,
        );
    };
    ($driver:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::attacker::client::$name::<$driver>();
            }
        )*
    };
}
