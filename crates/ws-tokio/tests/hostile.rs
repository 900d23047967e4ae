//! The hostile-peer suite over real sockets against ws-tokio: one test per attack, against our
//! server (the attacker is a raw TCP client) and against our client (the attacker is a raw
//! TCP server). The attacks live in `ws_testkit::attacker`, shared with ws-std's and ws-mio's
//! suites, with the same bounds; this file implements the kit's `Victim` (a server running
//! `accept_with`) and `ClientDriver` (a client using `connect_with`) for ws-tokio.
//!
//! The side under attack runs on a current-thread tokio runtime on a thread of its own, so the
//! kit's counting allocator (per thread) measures its heap growth: the runtime, the driver and
//! the core together. Retained bytes are the core's `retained_bytes`, sampled at every wake-up
//! of the connection and whenever the attacker asks. Every wait is bounded and waits on an
//! event (a channel, a condition variable), never on a sleep.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::Instant;

use common::WAIT;
use futures_sink::Sink;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use ws_net::{DriverError, ErrorKind};
use ws_proto::{Bytes, Closed, Message};
use ws_testkit::alloc::{heap_peak, heap_reset};
use ws_testkit::attacker::*;
use ws_tokio::{ConnectOptions, Decision, Error, TlsOptions, WebSocketWriter};

ws_testkit::counting_allocator!();

/// A current-thread runtime (time and I/O on) for the thread it is built on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn end_of(c: &Closed) -> End {
    End {
        code: c.code.as_u16(),
        clean: c.clean,
        detail: format!("{c:?}"),
    }
}

/// A self-signed certificate for `localhost`: the server configuration presenting it and the
/// certificate to trust (both through ws-net's builders).
fn test_tls() -> (
    Arc<rustls::ServerConfig>,
    rustls::pki_types::CertificateDer<'static>,
) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let server = ws_net::tls::server_config_from_pem(
        ck.cert.pem().as_bytes(),
        ck.signing_key.serialize_pem().as_bytes(),
    )
    .unwrap();
    (server, ck.cert.der().clone())
}

// ----- the server under attack ----------------------------------------------

/// Reads the retained bytes of one live connection, from any thread.
type Probe = Arc<dyn Fn() -> usize + Send + Sync>;

#[derive(Default)]
struct State {
    /// The live connections, by a number of ours.
    live: HashMap<u64, Probe>,
    ends: Vec<(String, End)>,
    floods: Vec<(String, Flood)>,
    next_id: u64,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when an end or a flood report is recorded.
    changed: Condvar,
    peak: AtomicUsize,
}

impl Shared {
    fn note(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
        self.changed.notify_all();
    }

    /// Waits (at most `WAIT`) until `find` finds something.
    fn wait_for<T>(&self, what: &str, mut find: impl FnMut(&State) -> Option<T>) -> T {
        let g = self.state.lock().unwrap();
        let (g, _) = self
            .changed
            .wait_timeout_while(g, WAIT, |s| find(s).is_none())
            .unwrap();
        find(&g).unwrap_or_else(|| panic!("{what}: nothing within {WAIT:?}"))
    }
}

/// Sends one message through a writer half shared with the probe: the lock is held only
/// inside each poll.
async fn send_via<S: AsyncRead + AsyncWrite + Unpin>(
    w: &Mutex<WebSocketWriter<S>>,
    m: Message,
) -> Result<(), Error> {
    let mut m = Some(m);
    poll_fn(|cx| {
        let mut g = w.lock().unwrap();
        let mut sink = Pin::new(&mut *g);
        if m.is_some() {
            ready!(sink.as_mut().poll_ready(cx))?;
            if let Some(m) = m.take() {
                sink.as_mut().start_send(m)?;
            }
        }
        sink.poll_flush(cx)
    })
    .await
}

/// Sends 16 KiB binary messages without waiting until the sink is not ready (the queue holds
/// `MAX_SEND_QUEUE` bytes the socket does not take: the high water is set to the queue
/// limit) or refuses; at most 4,096 of them.
fn flood<S: AsyncRead + AsyncWrite + Unpin>(w: &Mutex<WebSocketWriter<S>>) -> Flood {
    let mut g = w.lock().unwrap();
    g.set_send_high_water(MAX_SEND_QUEUE);
    let chunk = Bytes::from(vec![0xABu8; 16 << 10]);
    let mut cx = Context::from_waker(Waker::noop());
    let mut report = Flood::default();
    for _ in 0..4096 {
        let mut sink = Pin::new(&mut *g);
        match sink.as_mut().poll_ready(&mut cx) {
            Poll::Pending => {
                report.stopped_by = "backpressure".into();
                break;
            }
            Poll::Ready(Err(e)) => {
                report.stopped_by = e.to_string();
                break;
            }
            Poll::Ready(Ok(())) => match sink.start_send(ws_tokio::binary(chunk.clone())) {
                Ok(()) => report.accepted += chunk.len(),
                Err(e) => {
                    report.stopped_by = e.to_string();
                    break;
                }
            },
        }
        let queued = g.with_connection(|c| c.buffered_amount());
        report.max_buffered = report.max_buffered.max(queued);
    }
    report
}

/// One connection of the victim: `accept_with` (refusing an origin off the allow-list with
/// 403), then echo; on the text `flood`, a flood. Records the end under the request's path.
async fn serve<S>(io: S, sh: Arc<Shared>, allow: Option<Arc<[String]>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut path = String::new();
    let decide = |req: &ws_tokio::UpgradeRequest| {
        path = req.path.clone();
        match ws_net::origin::origin_allowed(allow.as_deref(), req.origin.as_deref()) {
            true => Decision::accept(),
            false => Decision::reject(403, "origin not allowed"),
        }
    };
    let Ok(ws) = ws_tokio::accept_with(io, config(), decide).await else {
        return;
    };
    let (mut reader, writer) = ws.split();
    let writer = Arc::new(Mutex::new(writer));
    let probe: Probe = {
        let w = Arc::clone(&writer);
        Arc::new(move || w.lock().unwrap().with_connection(|c| c.retained_bytes()))
    };
    let id = {
        let mut s = sh.state.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        s.live.insert(id, Arc::clone(&probe));
        id
    };
    // Bounded: each round takes a message or ends the connection.
    for _ in 0..1_000_000 {
        let next = poll_fn(|cx| {
            let r = reader.poll_next_unpin(cx);
            sh.peak.fetch_max(probe(), Ordering::SeqCst);
            r
        })
        .await;
        match next {
            Some(Ok(m)) if m.as_text() == Some("flood") => {
                let report = flood(&writer);
                sh.note(|s| s.floods.push((path.clone(), report)));
            }
            Some(Ok(m)) => {
                let _ = send_via(&writer, m).await;
            }
            // An abnormal end is yielded once, then the stream ends.
            Some(Err(_)) => {}
            None => break,
        }
    }
    let end = reader
        .close_info()
        .map(|c| end_of(&c))
        .unwrap_or_else(|| End {
            code: ABNORMAL,
            clean: false,
            detail: "still open after a million messages".into(),
        });
    // The connection's memory is freed here, on the runtime's thread.
    drop((reader, probe));
    sh.note(|s| {
        s.live.remove(&id);
        s.ends.push((path, end));
    });
}

/// Our server: a current-thread runtime on its own thread accepting on 127.0.0.1, each
/// connection in a task running [`serve`].
struct TokioVictim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TokioVictim {
    fn start(tls: Option<Arc<rustls::ServerConfig>>, allow: Option<&[&str]>) -> TokioVictim {
        let shared = Arc::new(Shared::default());
        let sh = Arc::clone(&shared);
        let allow: Option<Arc<[String]>> = allow.map(|a| a.iter().map(|s| s.to_string()).collect());
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = runtime();
            rt.block_on(async move {
                // Measure this thread's heap growth from here on.
                heap_reset();
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                ready_tx
                    .send((addr, tokio::runtime::Handle::current()))
                    .unwrap();
                let accept = async move {
                    while let Ok((tcp, _)) = listener.accept().await {
                        let _ = tcp.set_nodelay(true);
                        let (sh, allow, tls) = (Arc::clone(&sh), allow.clone(), tls.clone());
                        tokio::spawn(async move {
                            match tls {
                                None => serve(tcp, sh, allow).await,
                                Some(config) => {
                                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                                    let handshake = acceptor.accept(tcp);
                                    if let Ok(Ok(tls)) =
                                        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await
                                    {
                                        serve(tls, sh, allow).await;
                                    }
                                }
                            }
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        let (addr, handle) = ready_rx.recv_timeout(WAIT).unwrap();
        TokioVictim {
            addr,
            shared,
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn new() -> TokioVictim {
        Self::start(None, None)
    }

    /// Runs `f` on the runtime's thread and returns what it returned.
    fn on_thread<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(f());
        });
        rx.recv_timeout(WAIT).unwrap()
    }
}

impl Drop for TokioVictim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Victim for TokioVictim {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn sample(&self) {
        let probes: Vec<Probe> = self
            .shared
            .state
            .lock()
            .unwrap()
            .live
            .values()
            .cloned()
            .collect();
        for p in probes {
            self.shared.peak.fetch_max(p(), Ordering::SeqCst);
        }
    }
    fn peak(&self) -> usize {
        self.shared.peak.load(Ordering::SeqCst)
    }
    fn heap_peak(&self) -> usize {
        self.on_thread(heap_peak)
    }
    fn end(&self, path: &str) -> End {
        self.shared.wait_for(&format!("the end of {path}"), |s| {
            s.ends
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, e)| e.clone())
        })
    }
    fn flood(&self, path: &str) -> Flood {
        self.shared
            .wait_for(&format!("the flood report of {path}"), |s| {
                s.floods
                    .iter()
                    .find(|(p, _)| p == path)
                    .map(|(_, f)| f.clone())
            })
    }
}

mod server {
    use super::*;
    use ws_testkit::attacker::server as attack;

    ws_testkit::server_attacks!(TokioVictim::new);

    /// The sink stops being ready at the queue limit while the peer reads nothing, with the
    /// memory bounded; the connection stays usable: once the peer reads, everything queued
    /// arrives and the close is normal.
    #[test]
    fn peer_stops_reading() {
        let v = TokioVictim::new();
        let (mut s, report) = attack::peer_stops_reading(&v);
        assert_eq!(report.stopped_by, "backpressure", "{report:?}");
        assert!(report.max_buffered <= MAX_SEND_QUEUE, "{report:?}");
        assert_eq!(close_normally(&mut s, true), NORMAL);
        assert_eq!(v.end("/flood").code, NORMAL);
        still_serves(&v);
    }

    /// A plaintext request to the TLS port is dropped quickly; a real TLS client (our
    /// `connect_with` over `wss://`) is still served.
    #[test]
    fn failed_tls_handshake() {
        let (server_tls, cert) = test_tls();
        let v = TokioVictim::start(Some(server_tls), None);
        attack::failed_tls_handshake(v.addr());
        let url = format!("wss://localhost:{}/probe", v.addr().port());
        let options = ConnectOptions::default()
            .config(config())
            .tls(TlsOptions::default().add_root_der(cert.to_vec()))
            .connect_to(v.addr());
        runtime().block_on(async {
            use futures_util::SinkExt;
            let mut ws = common::bounded("connect", ws_tokio::connect_with(&url, &options))
                .await
                .unwrap();
            ws.send(ws_tokio::text("over tls")).await.unwrap();
            let echo = common::bounded("echo", ws.next()).await.unwrap().unwrap();
            assert_eq!(echo.as_text(), Some("over tls"));
            ws.close().await.unwrap();
            assert!(common::bounded("end", ws.next()).await.is_none());
        });
        assert_eq!(v.end("/probe").code, NORMAL);
    }

    #[test]
    fn origin_allow_list() {
        let v = TokioVictim::start(None, Some(&["https://app.example"]));
        attack::origin_allow_list(&v, "https://app.example");
        // The comparison ignores ASCII case, like origins do.
        attack::origin_allow_list(&v, "https://APP.example");
    }
}

// ----- the client under attack ----------------------------------------------

/// ws-tokio's client under the kit's client attacks: `connect_with` on a current-thread
/// runtime on a thread of its own, then the stream read until it ends. The sink's
/// `poll_ready` drives the connection, so a flood writes to the socket while it sends.
struct TokioClient;

fn options(addr: SocketAddr) -> ConnectOptions {
    ConnectOptions::default().config(config()).connect_to(addr)
}

/// The kit's view of why a connection failed: the core's reason when it has one, else the
/// error's `DriverError` kind.
fn failure_of(e: &Error) -> Failure {
    match e {
        Error::Connection(c) => Failure::of(c),
        other => match other.kind() {
            ErrorKind::Tls => Failure::Tls,
            ErrorKind::Io => Failure::Lost,
            _ => Failure::Other(format!("{other:?}")),
        },
    }
}

async fn run_client(addr: SocketAddr, url: &str) -> ClientRun {
    heap_reset();
    let start = Instant::now();
    let mut ws = match ws_tokio::connect_with(url, &options(addr)).await {
        Ok(ws) => ws,
        Err(e) => {
            let mut run = ClientRun::failed(failure_of(&e), start.elapsed(), format!("{e:?}"));
            run.heap_growth = Some(heap_peak());
            return run;
        }
    };
    let mut peak = 0;
    // Bounded: each round takes a message or ends.
    for _ in 0..1_000_000 {
        let next = poll_fn(|cx| {
            let r = ws.poll_next_unpin(cx);
            peak = peak.max(ws.with_connection(|c| c.retained_bytes()));
            r
        })
        .await;
        if next.is_none() {
            break;
        }
    }
    let c = ws.close_info().expect("the stream ended without a close");
    ClientRun {
        opened: true,
        code: c.code.as_u16(),
        clean: c.clean,
        failure: c.error.as_ref().map(Failure::of),
        peak_retained: peak,
        heap_growth: Some(heap_peak()),
        took: start.elapsed(),
        detail: format!("{c:?}"),
    }
}

impl ClientDriver for TokioClient {
    const WRITES_WHILE_SENDING: bool = true;

    fn run(addr: SocketAddr, url: &str) -> ClientRun {
        let url = url.to_string();
        let t = std::thread::spawn(move || {
            runtime().block_on(async {
                match tokio::time::timeout(WAIT, run_client(addr, &url)).await {
                    Ok(run) => run,
                    Err(_) => panic!("the client did not end within {WAIT:?}"),
                }
            })
        });
        t.join().unwrap()
    }

    fn flood(addr: SocketAddr, url: &str, release_peer: &dyn Fn()) -> FloodRun {
        let url = url.to_string();
        let (report_tx, report_rx) = mpsc::channel();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let t = std::thread::spawn(move || {
            runtime().block_on(async move {
                heap_reset();
                let mut ws =
                    common::bounded("connect", ws_tokio::connect_with(&url, &options(addr)))
                        .await
                        .unwrap();
                let limit = config().limits.max_send_queue;
                // The sink is ready below the high water: at the queue limit here.
                ws.set_send_high_water(limit);
                let chunk = Bytes::from(vec![7u8; 16 << 10]);
                let mut cx = Context::from_waker(Waker::noop());
                let mut run = FloodRun {
                    accepted: 0,
                    max_buffered: 0,
                    refusal: None,
                    heap_growth: None,
                };
                for _ in 0..4096 {
                    match Pin::new(&mut ws).poll_ready(&mut cx) {
                        // Not ready: the queue is at its limit and the socket takes nothing.
                        Poll::Pending => {
                            run.refusal = Some(Refusal::Backpressure {
                                buffered: ws.with_connection(|c| c.buffered_amount()),
                                limit,
                            });
                            break;
                        }
                        Poll::Ready(Err(e)) => {
                            run.refusal = Some(Refusal::Other(e.to_string()));
                            break;
                        }
                        Poll::Ready(Ok(())) => {
                            match Pin::new(&mut ws).start_send(ws_tokio::binary(chunk.clone())) {
                                Ok(()) => run.accepted += chunk.len(),
                                Err(e) => {
                                    run.refusal = Some(Refusal::Other(e.to_string()));
                                    break;
                                }
                            }
                        }
                    }
                    let queued = ws.with_connection(|c| c.buffered_amount());
                    run.max_buffered = run.max_buffered.max(queued);
                }
                run.heap_growth = Some(heap_peak());
                report_tx.send(run).unwrap();
                // Holds the connection until the peer has been released.
                let _ = tokio::time::timeout(WAIT, done_rx).await;
                drop(ws);
            });
        });
        let run = report_rx.recv_timeout(WAIT).expect("no flood report");
        release_peer();
        let _ = done_tx.send(());
        t.join().unwrap();
        run
    }
}

mod client {
    use super::*;

    ws_testkit::client_attacks!(TokioClient);
}
