//! The hostile-peer suite over real sockets against ws-mio: one test per
//! attack, against our server (the attacker is a raw TCP client) and
//! against our client (the attacker is a raw TCP server). Each asserts the
//! close code or HTTP status and that memory stayed bounded
//! (`Ctx::retained_bytes`, `Ctx::buffered_amount`); server tests check that
//! a well-behaved client is still served afterwards. The attacks live in
//! ws-std's `tests/common/attacker.rs`, shared by path with that crate's
//! suite; docs/limits.md lists every attack with its outcome.
#![allow(clippy::unwrap_used)]

#[path = "../../ws-std/tests/common/attacker.rs"]
mod attacker;
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attacker::*;
use common::{on_loop, WAIT};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use ws_mio::{tls, ConnId, ConnectOptions, Ctx, Decision, Handler, LoopGroup, Options};
use ws_proto::deflate::Role;
use ws_proto::{Bytes, Closed, Message, MessageKind, OpenInfo, UpgradeRequest};

/// Most payload bytes the flooding application hands to `send` in total.
const FLOOD_CAP: usize = 32 << 20;

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

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
        on_loop(group.handle(), 0, |_| heap::reset());
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
        on_loop(self.group.as_ref().unwrap().handle(), 0, |_| heap::peak())
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

macro_rules! server_attack {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                attacker::$name(&MioVictim::new());
            }
        )*
    };
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

    /// The send queue refuses at its limit while the peer reads nothing;
    /// the connection stays usable: once the peer reads, the data arrives
    /// and the close is normal.
    #[test]
    fn peer_stops_reading() {
        let v = MioVictim::new();
        let (mut s, report) = attacker::peer_stops_reading(&v);
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
        attacker::failed_tls_handshake(v.addr());
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
        attacker::origin_allow_list(&v, "https://app.example");
        attacker::origin_allow_list(&v, "https://APP.example");
    }
}

// ----- the client under attack ----------------------------------------------

enum ClientEv {
    Open(ConnId),
    /// The end, the peak retained bytes seen and the loop thread's peak
    /// heap growth.
    End(End, usize, usize),
}

/// A client application: samples its memory at every event, reports open
/// and close; with `flood`, sends 16 KiB messages on open until refused.
struct ClientApp {
    tx: Sender<ClientEv>,
    peak: usize,
    flood: bool,
    refused: Option<(usize, usize)>,
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
                refused: None,
            })
            .unwrap()
    }
    fn sample(&mut self, ctx: &Ctx<'_>, id: ConnId) {
        self.peak = self.peak.max(ctx.retained_bytes(id).unwrap_or(0));
    }
}

impl Handler for ClientApp {
    fn on_start(&mut self, _: &mut Ctx<'_>) {
        heap::reset();
    }
    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &OpenInfo) {
        let _ = self.tx.send(ClientEv::Open(id));
        if self.flood {
            let chunk = Bytes::from(vec![7u8; 16 << 10]);
            let mut accepted = 0;
            for _ in 0..4096 {
                match ctx.send(id, MessageKind::Binary, chunk.clone()) {
                    Ok(()) => accepted += chunk.len(),
                    Err(e) => {
                        assert!(e.is_backpressure(), "{e}");
                        break;
                    }
                }
            }
            self.refused = Some((accepted, ctx.buffered_amount(id).unwrap_or(0)));
        }
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: Message) {
        self.sample(ctx, id);
    }
    fn on_ping(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &Bytes) {
        self.sample(ctx, id);
    }
    fn on_close(&mut self, _: &mut Ctx<'_>, _: ConnId, c: &Closed) {
        let mut end = end_of(c);
        if let Some((accepted, buffered)) = self.refused {
            end.detail = format!("refused after {accepted} bytes, {buffered} buffered");
        }
        let _ = self.tx.send(ClientEv::End(end, self.peak, heap::peak()));
    }
}

mod client {
    use super::*;

    /// Connects our client to `addr` and returns its end and peak memory.
    fn run_client(addr: SocketAddr, flood: bool, url: &str) -> (End, usize, Duration) {
        let (tx, rx): (Sender<ClientEv>, Receiver<ClientEv>) = mpsc::channel();
        let group = ClientApp::spawn(tx, flood);
        let start = Instant::now();
        let opts = ConnectOptions::default().config(config()).addr(addr);
        common::connect(group.handle(), url, opts);
        let out = loop {
            match rx.recv_timeout(WAIT).expect("the client did not end") {
                ClientEv::Open(_) => {}
                ClientEv::End(e, peak, grew) => {
                    assert!(grew <= HEAP_BOUND, "heap grew by {grew}");
                    break (e, peak, start.elapsed());
                }
            }
        };
        group.shutdown(Duration::from_millis(200));
        group.join().unwrap();
        out
    }

    /// Our client against a raw server that answers 101 (with deflate when
    /// `deflate`) and then runs `attack`.
    fn attacked<T: Send + 'static>(
        deflate: bool,
        attack: impl FnOnce(&mut std::net::TcpStream) -> T + Send + 'static,
    ) -> (End, usize, T) {
        let (addr, h) = raw_server(move |mut s| {
            let ext = if deflate {
                "Sec-WebSocket-Extensions: permessage-deflate\r\n"
            } else {
                ""
            };
            answer_101(&mut s, ext);
            attack(&mut s)
        });
        let (end, peak, _) = run_client(addr, false, &format!("ws://{addr}/"));
        (end, peak, h.join().unwrap())
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
    }

    #[test]
    fn tcp_reset() {
        let (end, _, ()) = attacked(false, |s| reset(s.try_clone().unwrap(), false));
        assert_eq!((end.code, end.clean), (ABNORMAL, false), "{end:?}");
    }

    /// Each bad answer to the upgrade ends the client with a handshake
    /// error, well within the handshake timeout.
    #[test]
    fn bad_101_answers() {
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
            let (end, _, took) = run_client(addr, false, &format!("ws://{addr}/"));
            assert_eq!(end.code, ABNORMAL, "{what}: {end:?}");
            assert!(end.detail.contains("Handshake("), "{what}: {end:?}");
            assert!(took < HANDSHAKE_TIMEOUT, "{what}: took {took:?}");
            h.join().unwrap();
        }
    }

    #[test]
    fn handshake_never_answered() {
        let (addr, h) = raw_server(|mut s| {
            let _ = read_request_accept(&mut s);
            await_end(&mut s, Duration::from_secs(5));
        });
        let (end, _, took) = run_client(addr, false, &format!("ws://{addr}/"));
        assert!(end.detail.contains("HandshakeTimeout"), "{end:?}");
        assert!(
            took >= HANDSHAKE_TIMEOUT.mul_f32(0.8) && took < HANDSHAKE_TIMEOUT * 3,
            "{took:?}"
        );
        h.join().unwrap();
    }

    /// The send queue refuses at its limit while the peer reads nothing.
    #[test]
    fn peer_stops_reading() {
        let (addr, h) = raw_server(|mut s| {
            answer_101(&mut s, "");
            std::thread::sleep(Duration::from_millis(500));
            drop(s);
        });
        let (end, _, _) = run_client(addr, true, &format!("ws://{addr}/"));
        let nums: Vec<usize> = end
            .detail
            .split(' ')
            .filter_map(|w| w.parse().ok())
            .collect();
        let [accepted, buffered] = nums[..] else {
            panic!("{end:?}")
        };
        assert!(buffered <= MAX_SEND_QUEUE && buffered > 0, "{end:?}");
        assert!(accepted <= MAX_SEND_QUEUE, "{end:?}");
        h.join().unwrap();
    }

    #[test]
    fn failed_tls_handshake() {
        let (_, client_tls) = test_tls();
        let (addr, h) = raw_server(|mut s| {
            send(&mut s, b"HTTP/1.1 400 Bad Request\r\n\r\n");
            await_end(&mut s, Duration::from_secs(3));
        });
        let (tx, rx) = mpsc::channel();
        let group = ClientApp::spawn(tx, false);
        let url = format!("wss://localhost:{}/", addr.port());
        let opts = ConnectOptions::default()
            .tls(client_tls)
            .addr(addr)
            .config(config());
        let start = Instant::now();
        common::connect(group.handle(), &url, opts);
        match rx.recv_timeout(WAIT).unwrap() {
            ClientEv::End(e, ..) => assert_eq!((e.code, e.clean), (ABNORMAL, false), "{e:?}"),
            ClientEv::Open(_) => panic!("opened over a failed TLS handshake"),
        }
        assert!(start.elapsed() < Duration::from_secs(3));
        group.shutdown(Duration::from_millis(200));
        group.join().unwrap();
        h.join().unwrap();
    }
}
