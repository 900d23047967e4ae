//! The hostile-peer suite over real sockets against ws-std: one test per
//! attack, against our server (the attacker is a raw TCP client) and
//! against our client (the attacker is a raw TCP server). Each asserts the
//! close code or HTTP status the attacker gets and that memory stayed
//! bounded (`WebSocket::retained_bytes`, `buffered_amount`), and server
//! tests check that a well-behaved client is still served afterwards.
//! The attacks themselves live in `ws_testkit::attacker` (shared with every
//! driver's suite); this file implements the kit's `Victim` (our server)
//! and `ClientDriver` (our clients) for ws-std.
//! docs/limits.md lists every attack with its outcome.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{classify, listener, test_cert, tls_options, wait_until};
use ws_std::{
    connect, serve, ClientOptions, Error, Received, ServeOptions, ServerHandle, ServerOptions,
    WebSocket, WebSocketClient, WsWriter,
};
use ws_testkit::alloc::{heap_peak, heap_reset};
use ws_testkit::attacker::*;

ws_testkit::counting_allocator!();

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
    heap_reset();
    let path = ws.request().map(|r| r.path.clone()).unwrap_or_default();
    shared.writers.lock().unwrap().push(ws.writer());
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let r = ws.recv();
        shared.peak.fetch_max(ws.retained_bytes(), Ordering::SeqCst);
        shared.heap.fetch_max(heap_peak(), Ordering::SeqCst);
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
                shared.heap.fetch_max(heap_peak(), Ordering::SeqCst);
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

mod server {
    use super::*;
    use ws_testkit::attacker::server as attack;

    ws_testkit::server_attacks!(StdVictim::new);

    /// The blocking `send` waits for the socket; with a write timeout it
    /// fails once the peer has stopped reading for that long, and the
    /// connection ends. Nothing piles up meanwhile.
    #[test]
    fn peer_stops_reading() {
        let v = StdVictim::new();
        let (s, report) = attack::peer_stops_reading(&v);
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
        attack::failed_tls_handshake(v.addr());
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
        attack::origin_allow_list(&v, "https://app.example");
        // The comparison ignores ASCII case, like origins do.
        attack::origin_allow_list(&v, "https://APP.example");
    }
}

// ----- the client under attack ----------------------------------------------

/// ws-std's clients under the kit's client attacks: the blocking client
/// (`connect`, then `recv` on this thread) for every run, the event client
/// for the flood (the blocking client's `send` waits for the socket instead
/// of refusing).
struct StdClient;

/// The kit's view of how a ws-std connection ended.
fn failure_of(e: &Error) -> Failure {
    match e {
        Error::Protocol(p) => Failure::Protocol(p.close_code().as_u16()),
        Error::Handshake(_) => Failure::Handshake,
        Error::Timeout(ws_std::Timeout::Handshake) => Failure::HandshakeTimeout,
        Error::Tls(_) => Failure::Tls,
        Error::ConnectionLost { .. } => Failure::Lost,
        other => Failure::Other(classify(other)),
    }
}

impl ClientDriver for StdClient {
    const WRITES_WHILE_SENDING: bool = true;

    fn run(_addr: SocketAddr, url: &str) -> ClientRun {
        let start = Instant::now();
        let mut ws = match connect(url, &ClientOptions::default().config(config())) {
            Ok(ws) => ws,
            Err(e) => return ClientRun::failed(failure_of(&e), start.elapsed(), classify(&e)),
        };
        // This thread runs the connection: measure its heap from the open on.
        heap_reset();
        let mut peak = 0;
        for _ in 0..1_000_000 {
            let r = ws.recv();
            peak = peak.max(ws.retained_bytes());
            let (code, clean, failure, detail) = match &r {
                Ok(Received::Closed(c)) => (
                    c.code.as_u16(),
                    c.clean,
                    c.error.as_ref().map(Failure::of),
                    format!("{c:?}"),
                ),
                Ok(_) => continue,
                Err(e) => (
                    match e {
                        Error::Protocol(p) => p.close_code().as_u16(),
                        _ => ABNORMAL,
                    },
                    false,
                    Some(failure_of(e)),
                    classify(e),
                ),
            };
            return ClientRun {
                opened: true,
                code,
                clean,
                failure,
                peak_retained: peak,
                heap_growth: Some(heap_peak()),
                took: start.elapsed(),
                detail,
            };
        }
        panic!("no end in a million receives");
    }

    fn flood(_addr: SocketAddr, url: &str, release_peer: &dyn Fn()) -> FloodRun {
        let client = WebSocketClient::builder(url)
            .config(config())
            .keepalive(false)
            .max_buffered(MAX_SEND_QUEUE)
            .on_message(|_, _| {})
            .build()
            .unwrap();
        client.open().unwrap();
        assert!(wait_until(Duration::from_secs(3), || client.is_open()));
        let chunk = vec![7u8; 16 << 10];
        let mut run = FloodRun {
            accepted: 0,
            max_buffered: 0,
            refusal: None,
            // The event client's threads are its own: not measured.
            heap_growth: None,
        };
        for _ in 0..4096 {
            match client.send_binary(chunk.clone()) {
                Ok(()) => run.accepted += chunk.len(),
                Err(Error::QueueFull { buffered, limit }) => {
                    run.refusal = Some(Refusal::Backpressure { buffered, limit });
                    break;
                }
                Err(e) => {
                    run.refusal = Some(Refusal::Other(classify(&e)));
                    break;
                }
            }
            run.max_buffered = run.max_buffered.max(client.buffered_amount());
        }
        release_peer();
        run
    }
}

mod client {
    use super::*;

    ws_testkit::client_attacks!(StdClient);
}
