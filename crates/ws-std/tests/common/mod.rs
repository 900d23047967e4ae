//! Helpers shared by the loopback tests. Every wait is bounded.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ws_proto::{CloseCode, HandshakeError};
use ws_std::{
    serve, ClientBuilder, Error, Received, ServeOptions, ServerHandle, ServerOptions, WebSocket,
};
use ws_testkit::attacker::wire;

/// Binds a listener on 127.0.0.1 with an OS-chosen port.
pub fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

#[allow(unused_imports, reason = "not every test binary waits")]
pub use ws_testkit::wait::wait_until;

/// Echoes every message until the connection ends.
pub fn echo(mut ws: WebSocket) {
    for _ in 0..10_000 {
        match ws.recv() {
            Ok(Received::Message(m)) => {
                if ws.send(m.kind, m.data).is_err() {
                    return;
                }
            }
            Ok(Received::Closed(_)) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Server options presenting `cert` over TLS.
pub fn tls_options(cert: &TestCert) -> ServerOptions {
    let config =
        ws_std::server_config_from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    ServerOptions::default().tls(config)
}

/// A thread-per-connection echo server on 127.0.0.1.
pub fn echo_server(options: ServerOptions) -> ServerHandle {
    serve(listener(), ServeOptions::default().server(options), echo).unwrap()
}

/// `ws://127.0.0.1:PORT/path`.
pub fn ws_url(addr: SocketAddr, path: &str) -> String {
    format!("ws://{addr}{path}")
}

/// A self-signed certificate for `ws.test` and `localhost`, made now.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

pub fn test_cert() -> TestCert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["ws.test".to_string(), "localhost".to_string()])
            .unwrap();
    TestCert {
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
        cert_der: ck.cert.der().to_vec(),
    }
}

/// A raw server that answers one upgrade request correctly (the kit's
/// [`wire::raw_server`] and [`wire::answer_101`]), then runs `after` on the
/// socket (to misbehave), with a 2 s read timeout.
pub fn raw_upgrade_server(
    after: impl FnOnce(TcpStream) + Send + 'static,
) -> (SocketAddr, std::thread::JoinHandle<()>) {
    wire::raw_server(move |mut s| {
        wire::answer_101(&mut s, "");
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        after(s)
    })
}

/// What an event client reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Open(Option<String>),
    Text(String),
    Binary(Vec<u8>),
    Segment(Vec<u8>),
    Fragment {
        data: Vec<u8>,
        first: bool,
        fin: bool,
    },
    Closed(u16, String),
    Error(String),
}

/// Records every callback of an event client, and whether the client still
/// holds the callbacks [`attach`](Recorder::attach) installed.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<(Mutex<Rec>, Condvar)>,
}

#[derive(Default)]
struct Rec {
    events: Vec<Ev>,
    /// Callback sets installed by `attach` and not dropped yet.
    attached: usize,
}

/// Shared by the callbacks of one `attach`: dropped with the last of them,
/// it tells the recorder that they are gone.
struct Attached(Recorder);

impl Drop for Attached {
    fn drop(&mut self) {
        let (m, cv) = &*self.0.inner;
        let mut g = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.attached -= 1;
        cv.notify_all();
    }
}

/// A short classification of an error, for assertions.
pub fn classify(e: &Error) -> String {
    match e {
        Error::Resolve { .. } => "resolve".into(),
        Error::Connect { source, .. } => format!("connect:{:?}", source.kind()),
        Error::Tls(_) => "tls".into(),
        Error::Handshake(HandshakeError::Status { status, body, .. }) => {
            format!("status:{status}:{}", String::from_utf8_lossy(body))
        }
        Error::Handshake(h) => format!("handshake:{h:?}"),
        Error::Timeout(t) => format!("timeout:{t:?}"),
        Error::ConnectionLost { .. } => "lost".into(),
        Error::Protocol(p) => format!("protocol:{}", p.close_code()),
        Error::CallbackPanicked(m) => format!("panicked:{m}"),
        other => format!("other:{other}"),
    }
}

impl Recorder {
    pub fn push(&self, ev: Ev) {
        let (m, cv) = &*self.inner;
        m.lock().unwrap().events.push(ev);
        cv.notify_all();
    }

    /// Installs every callback (incomplete frames only with `fragments`).
    /// The recorder knows when the client has dropped them all
    /// ([`wait_released`](Self::wait_released)); a callback replaced later
    /// on the builder just leaves the set.
    pub fn attach(&self, b: ClientBuilder, fragments: bool) -> ClientBuilder {
        self.inner.0.lock().unwrap().attached += 1;
        let token = Arc::new(Attached(self.clone()));
        let (r1, r2, r3, r4, r5, r6) = (
            (self.clone(), token.clone()),
            (self.clone(), token.clone()),
            (self.clone(), token.clone()),
            (self.clone(), token.clone()),
            (self.clone(), token.clone()),
            (self.clone(), token.clone()),
        );
        let b = b
            .on_open(move |_, info| r1.0.push(Ev::Open(info.protocol.clone())))
            .on_message(move |_, t| r2.0.push(Ev::Text(t.to_string())))
            .on_binary(move |_, b| r3.0.push(Ev::Binary(b.to_vec())))
            .on_binary_segment(move |_, s| r4.0.push(Ev::Segment(s.to_vec())))
            .on_closed(move |_, code, reason| {
                r5.0.push(Ev::Closed(code.as_u16(), reason.to_string()))
            })
            .on_error(move |_, e| r6.0.push(Ev::Error(classify(e))));
        if fragments {
            let r = (self.clone(), token);
            b.on_incomplete_frame(move |_, f| {
                r.0.push(Ev::Fragment {
                    data: f.data.to_vec(),
                    first: f.first,
                    fin: f.fin,
                })
            })
        } else {
            b
        }
    }

    pub fn events(&self) -> Vec<Ev> {
        self.inner.0.lock().unwrap().events.clone()
    }

    /// Waits (at most `limit`) until `pred` holds for the events so far.
    pub fn wait(&self, limit: Duration, mut pred: impl FnMut(&[Ev]) -> bool) -> bool {
        self.wait_state(limit, |r| pred(&r.events))
    }

    /// Waits (at most `limit`) until the client has dropped every callback
    /// `attach` installed. The event client drops its callbacks right after
    /// the terminal one, once its sender thread has ended: from then on no
    /// callback can fire.
    pub fn wait_released(&self, limit: Duration) -> bool {
        self.wait_state(limit, |r| r.attached == 0)
    }

    fn wait_state(&self, limit: Duration, mut pred: impl FnMut(&Rec) -> bool) -> bool {
        let (m, cv) = &*self.inner;
        let end = Instant::now() + limit;
        let mut g = m.lock().unwrap();
        loop {
            if pred(&g) {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = cv.wait_timeout(g, left).unwrap().0;
        }
    }

    /// Waits for the terminal callback and returns it.
    pub fn wait_terminal(&self, limit: Duration) -> Option<Ev> {
        self.wait(limit, |e| e.iter().any(is_terminal));
        self.events().into_iter().find(is_terminal)
    }

    /// How many on_closed and on_error calls there were.
    pub fn terminal_counts(&self) -> (usize, usize) {
        let ev = self.events();
        (
            ev.iter().filter(|e| matches!(e, Ev::Closed(..))).count(),
            ev.iter().filter(|e| matches!(e, Ev::Error(..))).count(),
        )
    }
}

pub fn is_terminal(e: &Ev) -> bool {
    matches!(e, Ev::Closed(..) | Ev::Error(..))
}

/// Waits (at most `limit`) for the terminal callback, then for the client
/// to drop its callbacks (after which nothing can fire), and checks that
/// exactly one terminal callback fired: a late duplicate would be counted.
pub fn terminal_within(rec: &Recorder, limit: Duration) -> Ev {
    let ev = rec.wait_terminal(limit).expect("no terminal callback");
    assert!(
        rec.wait_released(limit),
        "the client still holds its callbacks after the terminal one: {:?}",
        rec.events()
    );
    let (closed, errors) = rec.terminal_counts();
    assert_eq!(
        closed + errors,
        1,
        "on_closed {closed} times, on_error {errors} times: {:?}",
        rec.events()
    );
    ev
}

/// The scheduler state (`R`, `S`, `D`...) of this process's thread named
/// `name` (Linux: `/proc/self/task/*/stat`; elsewhere, or when no such
/// thread lives, `None`).
pub fn thread_state(name: &str) -> Option<char> {
    let dir = std::fs::read_dir("/proc/self/task").ok()?;
    dir.filter_map(|t| {
        let path = t.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).ok()?;
        if comm.trim() != name {
            return None;
        }
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        // "tid (comm) S ...": the state follows the last ')'.
        stat.rsplit(')').next()?.trim_start().chars().next()
    })
    .next()
}

/// The names of this process's live threads starting with `prefix`
/// (Linux: `/proc/self/task/*/comm`; elsewhere always empty).
pub fn threads_named(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// An echo server that reports, per connection, the close it received:
/// `(code, reason)`, or `(0, error)` when the connection failed.
pub fn reporting_echo_server() -> (ServerHandle, std::sync::mpsc::Receiver<(u16, String)>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    // Echoes in frames of 4 bytes: messages of more reach a client's
    // incomplete-frame handlers.
    let mut opts = ServeOptions::default();
    opts.server.config = opts.server.config.clone().fragment_size(4);
    let server = serve(listener(), opts, move |mut ws| {
        let end = loop {
            match ws.recv() {
                Ok(Received::Message(m)) => {
                    let _ = ws.send(m.kind, m.data);
                }
                Ok(Received::Closed(c)) => break (c.code.as_u16(), c.reason),
                Ok(_) => {}
                Err(e) => break (0, e.to_string()),
            }
        };
        let _ = tx.lock().unwrap().send(end);
    })
    .unwrap();
    (server, rx)
}

/// Attaches `rec` to the builder (see [`Recorder::attach`]), builds the
/// client and opens it.
pub fn open_recorded(rec: &Recorder, b: ClientBuilder, fragments: bool) -> ws_std::WebSocketClient {
    let client = build_recorded(rec, b, fragments);
    client.open().unwrap();
    client
}

/// Attaches `rec` to the builder and builds the client, not opened yet.
pub fn build_recorded(
    rec: &Recorder,
    b: ClientBuilder,
    fragments: bool,
) -> ws_std::WebSocketClient {
    rec.attach(b, fragments).build().unwrap()
}

/// Server side: hands everything received to `f` until the connection
/// ends (at most 10,000 receives).
pub fn recv_each(ws: &mut WebSocket, mut f: impl FnMut(&mut WebSocket, Received)) {
    for _ in 0..10_000 {
        match ws.recv() {
            Ok(r) => f(ws, r),
            Err(_) => return,
        }
    }
}

/// Whether this build's permessage-deflate is real (not the stub).
pub fn deflate_available() -> bool {
    !ws_proto::deflate::client_offer_header(&ws_proto::DeflateConfig::default()).is_empty()
}

/// The close code used by tests that close normally.
pub const NORMAL: CloseCode = CloseCode::NORMAL;
