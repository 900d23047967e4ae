//! The hostile-peer suite over real sockets against ws-std: one test per
//! attack, against our server (the attacker is a raw TCP client) and
//! against our client (the attacker is a raw TCP server). Each asserts the
//! close code or HTTP status the attacker gets and that memory stayed
//! bounded (`WebSocket::retained_bytes`, `buffered_amount`), and server
//! tests check that a well-behaved client is still served afterwards.
//! The attacks themselves live in `common/attacker.rs` (shared with ws-mio).
//! docs/limits.md lists every attack with its outcome.
#![allow(clippy::unwrap_used)]

#[path = "common/attacker.rs"]
mod attacker;
mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attacker::*;
use common::{classify, listener, test_cert, tls_options, wait_until};
use ws_proto::deflate::Role;
use ws_std::{
    connect, serve, ClientOptions, Error, Received, ServeOptions, ServerHandle, ServerOptions,
    WebSocket, WebSocketClient, WsWriter,
};

// ----- the server under attack ----------------------------------------------

#[derive(Default)]
struct Shared {
    writers: Mutex<Vec<WsWriter>>,
    ends: Mutex<Vec<(String, End)>>,
    floods: Mutex<Vec<(String, Flood)>>,
    peak: AtomicUsize,
    heap: AtomicUsize,
}

struct StdVictim {
    server: Option<ServerHandle>,
    shared: Arc<Shared>,
}

fn end_of(r: &Result<Received, Error>) -> Option<End> {
    match r {
        Ok(Received::Closed(c)) => Some(End {
            code: c.code.as_u16(),
            clean: c.clean,
            detail: format!("{c:?}"),
        }),
        Ok(_) => None,
        Err(e) => Some(End {
            code: match e {
                Error::Protocol(p) => p.close_code().as_u16(),
                _ => ABNORMAL,
            },
            clean: false,
            detail: classify(e),
        }),
    }
}

/// The application: echo; on `flood`, send 16 KiB messages until refused.
fn app(mut ws: WebSocket, shared: &Shared) {
    heap::reset();
    let path = ws.request().map(|r| r.path.clone()).unwrap_or_default();
    shared.writers.lock().unwrap().push(ws.writer());
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let r = ws.recv();
        shared.peak.fetch_max(ws.retained_bytes(), Ordering::SeqCst);
        shared.heap.fetch_max(heap::peak(), Ordering::SeqCst);
        if let Some(end) = end_of(&r) {
            shared.ends.lock().unwrap().push((path, end));
            return;
        }
        if let Ok(Received::Message(m)) = r {
            if m.as_text() == Some("flood") {
                let mut report = Flood::default();
                let chunk = vec![0xABu8; 16 << 10];
                for _ in 0..4096 {
                    match ws.send_binary(chunk.clone()) {
                        Ok(()) => report.accepted += chunk.len(),
                        Err(e) => {
                            report.stopped_by = classify(&e);
                            break;
                        }
                    }
                    report.max_buffered = report.max_buffered.max(ws.buffered_amount());
                }
                shared.heap.fetch_max(heap::peak(), Ordering::SeqCst);
                shared.floods.lock().unwrap().push((path.clone(), report));
            } else if ws.send(m.kind, m.data).is_err() {
                continue;
            }
        }
    }
}

impl StdVictim {
    fn start(options: ServerOptions) -> StdVictim {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let server = serve(
            listener(),
            ServeOptions::default().server(options),
            move |ws| app(ws, &s),
        )
        .unwrap();
        StdVictim {
            server: Some(server),
            shared,
        }
    }

    fn new() -> StdVictim {
        Self::start(
            ServerOptions::default()
                .config(config())
                .write_timeout(Some(Duration::from_millis(500))),
        )
    }
}

impl Drop for StdVictim {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

impl Victim for StdVictim {
    fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }
    fn sample(&self) {
        for w in self.shared.writers.lock().unwrap().iter() {
            self.shared
                .peak
                .fetch_max(w.retained_bytes(), Ordering::SeqCst);
        }
    }
    fn peak(&self) -> usize {
        self.shared.peak.load(Ordering::SeqCst)
    }
    fn heap_peak(&self) -> usize {
        self.shared.heap.load(Ordering::SeqCst)
    }
    fn end(&self, path: &str) -> End {
        let find = || {
            let ends = self.shared.ends.lock().unwrap();
            ends.iter().find(|(p, _)| p == path).map(|(_, e)| e.clone())
        };
        assert!(
            wait_until(Duration::from_secs(5), || find().is_some()),
            "{path} did not end"
        );
        find().unwrap()
    }
    fn flood(&self, path: &str) -> Flood {
        let find = || {
            let f = self.shared.floods.lock().unwrap();
            f.iter().find(|(p, _)| p == path).map(|(_, f)| f.clone())
        };
        assert!(
            wait_until(Duration::from_secs(10), || find().is_some()),
            "no flood report"
        );
        find().unwrap()
    }
}

macro_rules! server_attack {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                attacker::$name(&StdVictim::new());
            }
        )*
    };
}

mod server {
    use super::*;

    server_attack!(
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

    /// The blocking `send` waits for the socket; with a write timeout it
    /// fails once the peer has stopped reading for that long, and the
    /// connection ends. Nothing piles up meanwhile.
    #[test]
    fn peer_stops_reading() {
        let v = StdVictim::new();
        let (s, report) = attacker::peer_stops_reading(&v);
        // The send that hit the write timeout, or the next one, fails.
        assert!(
            ["timeout:Write", "other:the connection is closing or closed"]
                .contains(&report.stopped_by.as_str()),
            "{report:?}"
        );
        assert!(report.max_buffered <= MAX_SEND_QUEUE, "{report:?}");
        let end = v.end("/flood");
        assert_eq!((end.code, end.detail.as_str()), (ABNORMAL, "timeout:Write"));
        drop(s);
        still_serves(&v);
    }

    #[test]
    fn failed_tls_handshake() {
        let cert = test_cert();
        let v = StdVictim::start(tls_options(&cert).config(config()));
        attacker::failed_tls_handshake(v.addr());
        // A real TLS client is still served.
        let tls = ws_std::TlsClientOptions::default().add_root_der(cert.cert_der.clone());
        let url = format!("wss://localhost:{}/probe", v.addr().port());
        let mut ws = connect(&url, &ClientOptions::default().tls(tls)).unwrap();
        ws.send_text("over tls").unwrap();
        match ws.recv().unwrap() {
            Received::Message(m) => assert_eq!(m.as_text(), Some("over tls")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn origin_allow_list() {
        let v = StdVictim::start(
            ServerOptions::default()
                .config(config())
                .allow_origins(["https://app.example"]),
        );
        attacker::origin_allow_list(&v, "https://app.example");
        // The comparison ignores ASCII case, like origins do.
        attacker::origin_allow_list(&v, "https://APP.example");
    }
}

// ----- the client under attack ----------------------------------------------

mod client {
    use super::*;

    fn options() -> ClientOptions {
        ClientOptions::default().config(config())
    }

    /// Connects our client to a raw server that answers 101 (with
    /// permessage-deflate when `deflate`) and then runs `attack`; the client
    /// reads until the end. Returns the client's end, its peak retained
    /// bytes, and what the attack returned.
    fn attacked<T: Send + 'static>(
        deflate: bool,
        attack: impl FnOnce(&mut std::net::TcpStream) -> T + Send + 'static,
    ) -> (End, usize, T) {
        let (addr, h) = raw_server(move |mut s| {
            answer_101(
                &mut s,
                if deflate {
                    "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                } else {
                    ""
                },
            );
            attack(&mut s)
        });
        let mut ws = connect(&format!("ws://{addr}/"), &options()).unwrap();
        heap::reset();
        let mut peak = 0;
        let mut end = None;
        for _ in 0..1_000_000 {
            let r = ws.recv();
            peak = peak.max(ws.retained_bytes());
            if let Some(e) = end_of(&r) {
                end = Some(e);
                break;
            }
        }
        let grew = heap::peak();
        assert!(grew <= HEAP_BOUND, "heap grew by {grew}");
        (end.expect("no end"), peak, h.join().unwrap())
    }

    fn protocol_error(bytes: Vec<u8>, want: u16) {
        let (end, peak, got) = attacked(false, move |s| {
            send(s, &bytes);
            await_close(s)
        });
        assert_eq!(got, want, "close code the attacker got");
        assert_eq!(end.code, want, "{end:?}");
        assert!(peak <= MEMORY_BOUND);
    }

    #[test]
    fn masked_server_frame() {
        protocol_error(frame(FIN | TEXT, true, b"masked"), PROTOCOL_ERROR);
    }

    #[test]
    fn length_2_pow_63() {
        protocol_error(header(FIN | BINARY, false, 1 << 63), PROTOCOL_ERROR);
    }

    #[test]
    fn length_just_over_frame_limit() {
        let mut bytes = header(FIN | BINARY, false, MAX_FRAME as u64 + 1);
        bytes.extend_from_slice(&vec![0u8; MAX_FRAME / 2]);
        protocol_error(bytes, TOO_BIG);
    }

    #[test]
    fn reserved_opcode() {
        protocol_error(frame(FIN | 0xB, false, b""), PROTOCOL_ERROR);
    }

    #[test]
    fn rsv_bits_without_extension() {
        protocol_error(frame(FIN | RSV2 | TEXT, false, b"x"), PROTOCOL_ERROR);
    }

    #[test]
    fn control_frame_over_125() {
        protocol_error(frame(FIN | PING, false, &[1; 126]), PROTOCOL_ERROR);
    }

    #[test]
    fn continuation_without_start() {
        protocol_error(frame(FIN | CONT, false, b"x"), PROTOCOL_ERROR);
    }

    #[test]
    fn invalid_close_code() {
        protocol_error(close_frame(false, 1005, b""), PROTOCOL_ERROR);
    }

    #[test]
    fn close_reason_invalid_utf8() {
        protocol_error(close_frame(false, NORMAL, &[0xc3, 0x28]), INVALID_PAYLOAD);
    }

    #[test]
    fn decompression_bomb() {
        let (end, peak, got) = attacked(true, |s| {
            send(
                s,
                &frame(FIN | RSV1 | BINARY, false, &bomb(64 << 20, Role::Server)),
            );
            await_close(s)
        });
        assert_eq!((got, end.code), (TOO_BIG, TOO_BIG), "{end:?}");
        assert!(peak <= MEMORY_BOUND, "retained {peak}");
    }

    #[test]
    fn compressed_control_frame() {
        let (end, _, got) = attacked(true, |s| {
            send(s, &frame(FIN | RSV1 | PING, false, &bomb(10, Role::Server)));
            await_close(s)
        });
        assert_eq!((got, end.code), (PROTOCOL_ERROR, PROTOCOL_ERROR), "{end:?}");
    }

    #[test]
    fn ping_flood_unread_pongs() {
        let count = 40_000;
        let (end, peak, (pongs, code)) = attacked(false, move |s| {
            ping_flood(s, false, count, Duration::from_millis(1500), || {})
        });
        assert_eq!(code, NORMAL);
        assert!(end.clean, "{end:?}");
        assert!(!pongs.is_empty() && pongs.len() as u64 <= count);
        assert_eq!(*pongs.last().unwrap(), count - 1);
        assert!(peak <= MEMORY_BOUND);
    }

    #[test]
    fn peer_vanishes_mid_frame() {
        let (end, _, ()) = attacked(false, |s| {
            send(s, &header(FIN | BINARY, false, 1000));
            send(s, &[1; 10]);
            s.shutdown(std::net::Shutdown::Both).unwrap();
        });
        assert_eq!((end.code, end.clean), (ABNORMAL, false), "{end:?}");
        assert_eq!(end.detail, "lost");
    }

    #[test]
    fn tcp_reset() {
        let (end, _, ()) = attacked(false, |s| {
            // Our client answers the ping; the unread pong makes the close a RST.
            reset(s.try_clone().unwrap(), false);
        });
        assert_eq!((end.code, end.clean), (ABNORMAL, false), "{end:?}");
        assert_eq!(end.detail, "lost");
    }

    /// Each bad answer to the upgrade fails `connect` with a handshake
    /// error, within the handshake timeout.
    #[test]
    fn bad_101_answers() {
        let key_of = |s: &mut std::net::TcpStream| read_request_accept(s);
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
                let a = key_of(&mut s);
                send(&mut s, answer(a).as_bytes());
                await_end(&mut s, Duration::from_secs(3));
            });
            let start = Instant::now();
            let err = connect(&format!("ws://{addr}/"), &options()).unwrap_err();
            let c = classify(&err);
            assert!(
                c.starts_with("handshake:") || c.starts_with("status:200"),
                "{what}: {c}"
            );
            assert!(start.elapsed() < HANDSHAKE_TIMEOUT, "{what}: slow");
            h.join().unwrap();
        }
    }

    #[test]
    fn handshake_never_answered() {
        let (addr, h) = raw_server(|mut s| {
            let _ = read_request_accept(&mut s);
            await_end(&mut s, Duration::from_secs(5));
        });
        let start = Instant::now();
        let err = connect(&format!("ws://{addr}/"), &options()).unwrap_err();
        assert_eq!(classify(&err), "timeout:Handshake");
        let took = start.elapsed();
        assert!(
            took >= HANDSHAKE_TIMEOUT.mul_f32(0.8) && took < HANDSHAKE_TIMEOUT * 3,
            "{took:?}"
        );
        h.join().unwrap();
    }

    /// The event client's send queue refuses past its limit while the peer
    /// reads nothing.
    #[test]
    fn peer_stops_reading() {
        // The peer reads nothing until the test is over (bounded).
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let (addr, h) = raw_server(move |mut s| {
            answer_101(&mut s, "");
            let _ = done_rx.recv_timeout(Duration::from_secs(20));
            drop(s);
        });
        let client = WebSocketClient::builder(format!("ws://{addr}/"))
            .config(config())
            .keepalive(false)
            .max_buffered(MAX_SEND_QUEUE)
            .on_message(|_, _| {})
            .build()
            .unwrap();
        client.open().unwrap();
        assert!(wait_until(Duration::from_secs(3), || client.is_open()));
        let chunk = vec![7u8; 16 << 10];
        let mut accepted = 0usize;
        let mut refused = None;
        for _ in 0..4096 {
            match client.send_binary(chunk.clone()) {
                Ok(()) => accepted += chunk.len(),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
            assert!(client.buffered_amount() <= MAX_SEND_QUEUE);
        }
        match refused {
            Some(Error::QueueFull { buffered, limit }) => {
                assert_eq!(limit, MAX_SEND_QUEUE);
                assert!(buffered <= MAX_SEND_QUEUE);
            }
            other => panic!("{other:?} after {accepted} bytes"),
        }
        assert!(accepted < 64 << 20);
        done_tx.send(()).unwrap();
        h.join().unwrap();
    }

    #[test]
    fn failed_tls_handshake() {
        let (addr, h) = raw_server(|mut s| {
            // Not TLS: an HTTP answer to the ClientHello.
            send(&mut s, b"HTTP/1.1 400 Bad Request\r\n\r\n");
            await_end(&mut s, Duration::from_secs(3));
        });
        let start = Instant::now();
        let url = format!("wss://localhost:{}/", addr.port());
        let err = connect(&url, &options()).unwrap_err();
        assert!(
            matches!(err, Error::Tls(_) | Error::ConnectionLost { .. }),
            "{err:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(3));
        h.join().unwrap();
        let _ = std::io::sink().flush();
    }
}
