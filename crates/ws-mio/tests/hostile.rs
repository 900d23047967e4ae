//! The hostile-peer suite over real sockets against ws-mio: one test per
//! attack, against our server (the attacker is a raw TCP client) and
//! against our client (the attacker is a raw TCP server). Each asserts the
//! close code or HTTP status and that memory stayed bounded
//! (`Ctx::retained_bytes`, `Ctx::buffered_amount`); server tests check that
//! a well-behaved client is still served afterwards. The attacks live in
//! `ws_testkit::attacker` (shared with every driver's suite); this file
//! implements the kit's `Victim` (our server) and `ClientDriver` (our
//! client) for ws-mio. docs/limits.md lists every attack with its outcome.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{on_loop, WAIT};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use ws_mio::{tls, ConnId, ConnectOptions, Ctx, Decision, Handler, LoopGroup, Options};
use ws_proto::{Bytes, Closed, Message, MessageKind, OpenInfo, UpgradeRequest};
use ws_testkit::alloc::{heap_peak, heap_reset};
use ws_testkit::attacker::*;
use ws_testkit::wait::wait_until;

ws_testkit::counting_allocator!();

/// Most payload bytes the flooding application hands to `send` in total.
const FLOOD_CAP: usize = 32 << 20;

fn end_of(c: &Closed) -> End {
    End {
        code: c.code.as_u16(),
        clean: c.clean,
        detail: format!("{:?}", c.error),
    }
}

// ----- the server under attack ----------------------------------------------

#[derive(Default)]
struct Shared {
    paths: Mutex<HashMap<ConnId, String>>,
    ends: Mutex<Vec<(String, End)>>,
    floods: Mutex<HashMap<ConnId, Flood>>,
    peak: AtomicUsize,
}

/// The application: echo; on `flood`, send 16 KiB messages until refused,
/// and again after each drain (at most `FLOOD_CAP` in all).
struct App {
    sh: Arc<Shared>,
}

impl App {
    fn sample(&self, ctx: &Ctx<'_>, id: ConnId) {
        if let Some(n) = ctx.retained_bytes(id) {
            self.sh.peak.fetch_max(n, Ordering::SeqCst);
        }
    }

    fn flood_more(&self, ctx: &mut Ctx<'_>, id: ConnId) {
        let mut floods = self.sh.floods.lock().unwrap();
        let Some(f) = floods.get_mut(&id) else {
            return;
        };
        let chunk = Bytes::from(vec![0xABu8; 16 << 10]);
        while f.accepted < FLOOD_CAP {
            match ctx.send(id, MessageKind::Binary, chunk.clone()) {
                Ok(()) => f.accepted += chunk.len(),
                Err(e) => {
                    f.stopped_by = if e.is_backpressure() {
                        "backpressure".into()
                    } else {
                        e.to_string()
                    };
                    break;
                }
            }
            f.max_buffered = f.max_buffered.max(ctx.buffered_amount(id).unwrap_or(0));
        }
    }
}

impl Handler for App {
    fn on_upgrade(&mut self, _: &mut Ctx<'_>, id: ConnId, req: &UpgradeRequest) -> Decision {
        self.sh.paths.lock().unwrap().insert(id, req.path.clone());
        Decision::accept()
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        self.sample(ctx, id);
        if m.as_text() == Some("flood") {
            self.sh.floods.lock().unwrap().insert(id, Flood::default());
            self.flood_more(ctx, id);
        } else {
            let _ = ctx.send(id, m.kind, m.data);
        }
    }
    fn on_ping(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &Bytes) {
        self.sample(ctx, id);
    }
    fn on_drain(&mut self, ctx: &mut Ctx<'_>, id: ConnId) {
        self.flood_more(ctx, id);
    }
    fn on_close(&mut self, _: &mut Ctx<'_>, id: ConnId, c: &Closed) {
        let path = self
            .sh
            .paths
            .lock()
            .unwrap()
            .remove(&id)
            .unwrap_or_default();
        self.sh.ends.lock().unwrap().push((path, end_of(c)));
    }
}

struct MioVictim {
    group: Option<LoopGroup>,
    addr: SocketAddr,
    sh: Arc<Shared>,
}

impl MioVictim {
    fn start(options: Options, tls: Option<Arc<rustls::ServerConfig>>) -> MioVictim {
        let sh = Arc::new(Shared::default());
        let s = sh.clone();
        let any = "127.0.0.1:0".parse().unwrap();
        let b = LoopGroup::builder().loops(1).options(options);
        let b = match tls {
            Some(t) => b.listen_tls(any, t),
            None => b.listen(any),
        };
        let group = b.spawn(move |_| App { sh: s.clone() }).unwrap();
        let addr = group.local_addr().unwrap();
        // Measure the loop thread's heap growth from here on.
        on_loop(group.handle(), 0, |_| heap_reset());
        MioVictim {
            group: Some(group),
            addr,
            sh,
        }
    }

    fn new() -> MioVictim {
        Self::start(Options::default().config(config()), None)
    }
}

impl Drop for MioVictim {
    fn drop(&mut self) {
        if let Some(g) = self.group.take() {
            g.shutdown(Duration::from_millis(200));
            let _ = g.join();
        }
    }
}

impl Victim for MioVictim {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn sample(&self) {
        let handle = self.group.as_ref().unwrap().handle().clone();
        let peak = on_loop(&handle, 0, |ctx| {
            ctx.connection_ids()
                .into_iter()
                .filter_map(|id| ctx.retained_bytes(id))
                .max()
                .unwrap_or(0)
        });
        self.sh.peak.fetch_max(peak, Ordering::SeqCst);
    }
    fn peak(&self) -> usize {
        self.sh.peak.load(Ordering::SeqCst)
    }
    fn heap_peak(&self) -> usize {
        on_loop(self.group.as_ref().unwrap().handle(), 0, |_| heap_peak())
    }
    fn end(&self, path: &str) -> End {
        let find = || {
            let ends = self.sh.ends.lock().unwrap();
            ends.iter().find(|(p, _)| p == path).map(|(_, e)| e.clone())
        };
        assert!(wait_until(WAIT, || find().is_some()), "{path} did not end");
        find().unwrap()
    }
    fn flood(&self, _path: &str) -> Flood {
        let find = || {
            let f = self.sh.floods.lock().unwrap();
            f.values().find(|f| !f.stopped_by.is_empty()).cloned()
        };
        assert!(wait_until(WAIT, || find().is_some()), "no refusal");
        // Let the socket buffers fill up while the peer reads nothing.
        std::thread::sleep(Duration::from_millis(1500));
        find().unwrap()
    }
}

fn test_tls() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let server = tls::server_config(vec![ck.cert.der().clone()], key).unwrap();
    let client = tls::client_config_trusting(&[ck.cert.der().clone()]).unwrap();
    (server, client)
}

mod server {
    use super::*;
    use ws_testkit::attacker::server as attack;

    ws_testkit::server_attacks!(MioVictim::new);

    /// The send queue refuses at its limit while the peer reads nothing;
    /// the connection stays usable: once the peer reads, the data arrives
    /// and the close is normal.
    #[test]
    fn peer_stops_reading() {
        let v = MioVictim::new();
        let (mut s, report) = attack::peer_stops_reading(&v);
        assert_eq!(report.stopped_by, "backpressure", "{report:?}");
        assert!(report.max_buffered <= MAX_SEND_QUEUE, "{report:?}");
        assert!(report.accepted < FLOOD_CAP, "{report:?}");
        assert_eq!(close_normally(&mut s, true), NORMAL);
        still_serves(&v);
    }

    #[test]
    fn failed_tls_handshake() {
        let (server_tls, client_tls) = test_tls();
        let v = MioVictim::start(Options::default().config(config()), Some(server_tls));
        attack::failed_tls_handshake(v.addr());
        // A real TLS client is still served.
        let (tx, rx) = mpsc::channel();
        let client = ClientApp::spawn(tx, false);
        let url = format!("wss://localhost:{}/probe", v.addr().port());
        let opts = ConnectOptions::default()
            .tls(client_tls)
            .addr(v.addr())
            .config(config());
        let id = common::connect(client.handle(), &url, opts);
        match rx.recv_timeout(WAIT).unwrap() {
            ClientEv::Open(i) => assert_eq!(i, id),
            ClientEv::End(e, ..) => panic!("{e:?}"),
            ClientEv::Flood(f) => panic!("{f:?}"),
        }
        client.shutdown(Duration::from_millis(200));
        client.join().unwrap();
    }

    #[test]
    fn origin_allow_list() {
        let v = MioVictim::start(
            Options::default()
                .config(config())
                .allow_origins(["https://app.example"]),
            None,
        );
        attack::origin_allow_list(&v, "https://app.example");
        attack::origin_allow_list(&v, "https://APP.example");
    }
}

// ----- the client under attack ----------------------------------------------

enum ClientEv {
    Open(ConnId),
    /// The flood's report, sent when the send queue refused.
    Flood(FloodRun),
    /// The end, the peak retained bytes seen and the loop thread's peak
    /// heap growth.
    End(Closed, usize, usize),
}

/// A client application: samples its memory at every event, reports open
/// and close; with `flood`, sends 16 KiB messages on open until refused and
/// reports that.
struct ClientApp {
    tx: Sender<ClientEv>,
    peak: usize,
    flood: bool,
}

impl ClientApp {
    fn spawn(tx: Sender<ClientEv>, flood: bool) -> LoopGroup {
        LoopGroup::builder()
            .loops(1)
            .options(Options::default().config(config()))
            .spawn(move |_| ClientApp {
                tx: tx.clone(),
                peak: 0,
                flood,
            })
            .unwrap()
    }
    fn sample(&mut self, ctx: &Ctx<'_>, id: ConnId) {
        self.peak = self.peak.max(ctx.retained_bytes(id).unwrap_or(0));
    }
}

impl Handler for ClientApp {
    fn on_start(&mut self, _: &mut Ctx<'_>) {
        heap_reset();
    }
    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &OpenInfo) {
        let _ = self.tx.send(ClientEv::Open(id));
        if self.flood {
            let chunk = Bytes::from(vec![7u8; 16 << 10]);
            let mut run = FloodRun {
                accepted: 0,
                max_buffered: 0,
                refusal: None,
                heap_growth: None,
            };
            for _ in 0..4096 {
                match ctx.send(id, MessageKind::Binary, chunk.clone()) {
                    Ok(()) => run.accepted += chunk.len(),
                    Err(ws_mio::Error::Command(ws_proto::Error::Backpressure {
                        buffered_amount,
                        limit,
                    })) => {
                        run.refusal = Some(Refusal::Backpressure {
                            buffered: buffered_amount,
                            limit,
                        });
                        break;
                    }
                    Err(e) => {
                        run.refusal = Some(Refusal::Other(e.to_string()));
                        break;
                    }
                }
                run.max_buffered = run.max_buffered.max(ctx.buffered_amount(id).unwrap_or(0));
            }
            run.heap_growth = Some(heap_peak());
            let _ = self.tx.send(ClientEv::Flood(run));
        }
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: Message) {
        self.sample(ctx, id);
    }
    fn on_ping(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &Bytes) {
        self.sample(ctx, id);
    }
    fn on_close(&mut self, _: &mut Ctx<'_>, _: ConnId, c: &Closed) {
        let _ = self
            .tx
            .send(ClientEv::End(c.clone(), self.peak, heap_peak()));
    }
}

/// ws-mio's client under the kit's client attacks: a one-loop group whose
/// handler ([`ClientApp`]) reports to this thread. Sends made in a callback
/// are written after it returns.
struct MioClient;

impl MioClient {
    /// Starts a client group and connects it to `url` at `addr`.
    fn start(addr: SocketAddr, url: &str, flood: bool) -> (LoopGroup, mpsc::Receiver<ClientEv>) {
        let (tx, rx) = mpsc::channel();
        let group = ClientApp::spawn(tx, flood);
        let mut opts = ConnectOptions::default().config(config()).addr(addr);
        if url.starts_with("wss:") {
            opts = opts.tls(test_tls().1);
        }
        common::connect(group.handle(), url, opts);
        (group, rx)
    }

    fn stop(group: LoopGroup) {
        group.shutdown(Duration::from_millis(200));
        group.join().unwrap();
    }
}

impl ClientDriver for MioClient {
    const WRITES_WHILE_SENDING: bool = false;

    fn run(addr: SocketAddr, url: &str) -> ClientRun {
        let start = Instant::now();
        let (group, rx) = Self::start(addr, url, false);
        let mut opened = false;
        let run = loop {
            match rx.recv_timeout(WAIT).expect("the client did not end") {
                ClientEv::Open(_) => opened = true,
                ClientEv::Flood(_) => {}
                ClientEv::End(c, peak, grew) => {
                    break ClientRun {
                        opened,
                        code: c.code.as_u16(),
                        clean: c.clean,
                        failure: c.error.as_ref().map(Failure::of),
                        peak_retained: peak,
                        heap_growth: Some(grew),
                        took: start.elapsed(),
                        detail: format!("{c:?}"),
                    };
                }
            }
        };
        Self::stop(group);
        run
    }

    fn flood(addr: SocketAddr, url: &str, release_peer: &dyn Fn()) -> FloodRun {
        let (group, rx) = Self::start(addr, url, true);
        let run = loop {
            match rx.recv_timeout(WAIT).expect("no flood report") {
                ClientEv::Open(_) => {}
                ClientEv::Flood(run) => break run,
                ClientEv::End(c, ..) => panic!("ended before the flood: {c:?}"),
            }
        };
        release_peer();
        Self::stop(group);
        run
    }
}

mod client {
    use super::*;

    ws_testkit::client_attacks!(MioClient);
}
