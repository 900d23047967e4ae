//! The client-reach tests (issue 19) of every client driver, written once: through real
//! proxies ([`pproxy`], the `pproxy` package from PyPI installed into the interop virtualenv
//! and started here on 127.0.0.1), through hostile fake proxies ([`FakeProxy`]), and redirects
//! from a small local server ([`Site`]). A driver implements [`ReachClient`] and
//! [`reach_tests!`](crate::reach_tests) makes one test per case.
//!
//! Nothing here skips: a missing python3 or `pproxy` fails the test saying what to install.
//! Every wait is on an event (a line from the proxy, an accepted connection, a channel),
//! bounded by a limit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ws_net::proxy::{ProxyMode, ProxyUrl};
use ws_net::request::RequestOptions;
use ws_proto::{Accept, Config, Connection, Event, Transmit};

/// The longest any step of these tests may take.
pub const LIMIT: Duration = Duration::from_secs(20);

/// One connection a [`ReachClient`] makes: to `url` with `request` (its proxy and redirect
/// limit too), trusting `ca_pem` in addition for `wss://` (and an `https://` proxy), within
/// `timeout` (the handshake timeout).
#[derive(Debug)]
pub struct Try<'a> {
    /// The URL.
    pub url: &'a str,
    /// The request options (proxy, redirects, headers, hook).
    pub request: &'a RequestOptions,
    /// PEM certificates to trust besides the defaults (empty: none).
    pub ca_pem: &'a [u8],
    /// The handshake timeout.
    pub timeout: Duration,
}

/// A client driver under test.
pub trait ReachClient {
    /// Makes the connection `t` describes, sends the text `"hello"`, and returns the text
    /// echoed back, or the error's message (`Display`).
    fn echo(t: &Try<'_>) -> Result<String, String>;
}

/// A request received by a [`Site`]: its path (with the query) and its headers.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Path and query.
    pub target: String,
    /// The request's headers.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a [`Site`] answers on a path.
#[derive(Clone, Debug)]
pub enum Route {
    /// Accept, and echo every message back.
    Echo,
    /// Refuse with this status and `Location`.
    Redirect(u16, String),
}

/// A small WebSocket server on 127.0.0.1 (optionally TLS, with a certificate for
/// `127.0.0.1`): per path, echo or redirect. Records every request it gets.
pub struct Site {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    routes: Arc<Mutex<Vec<(String, Route)>>>,
    tls: Option<Arc<rustls::ServerConfig>>,
    ca_pem: Vec<u8>,
}

impl Site {
    /// A plain (`ws://`) site.
    pub fn plain() -> Site {
        Site::start(None)
    }

    /// A TLS (`wss://`) site with a fresh self-signed certificate for 127.0.0.1 (see
    /// [`ca_pem`](Self::ca_pem)).
    pub fn tls() -> Site {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let cfg = ws_net::tls::server_config_from_pem(
            ck.cert.pem().as_bytes(),
            ck.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap();
        let mut site = Site::start(Some(cfg));
        site.ca_pem = ck.cert.pem().into_bytes();
        site
    }

    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let site = Site {
            addr,
            seen: Arc::default(),
            routes: Arc::default(),
            tls,
            ca_pem: Vec::new(),
        };
        let (seen, routes, tls) = (site.seen.clone(), site.routes.clone(), site.tls.clone());
        std::thread::spawn(move || {
            for sock in listener.incoming().take(1000) {
                let Ok(sock) = sock else { continue };
                let (seen, routes, tls) = (seen.clone(), routes.clone(), tls.clone());
                std::thread::spawn(move || serve(sock, tls, &seen, &routes));
            }
        });
        site
    }

    /// Answers `path` with `route`.
    pub fn route(&self, path: &str, route: Route) -> &Site {
        self.routes.lock().unwrap().push((path.to_string(), route));
        self
    }

    /// `ws://127.0.0.1:PORT` (or `wss://`), without a path.
    pub fn base(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}", self.addr)
    }

    /// The site's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate of a TLS site (PEM), to trust; empty for a plain one.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A site connection: plain, or TLS (which ends with `close_notify`).
enum SiteIo {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl SiteIo {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            SiteIo::Plain(s) => s.read(buf),
            SiteIo::Tls(s) => s.read(buf),
        }
    }

    fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            SiteIo::Plain(s) => s.write_all(data),
            SiteIo::Tls(s) => s.write_all(data).and_then(|()| s.flush()),
        }
    }

    /// Ends the write side; TLS says `close_notify` first (a client may count a TLS stream
    /// cut without it as an error).
    fn close(&mut self) {
        match self {
            SiteIo::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            SiteIo::Tls(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
                let _ = s.sock.shutdown(Shutdown::Write);
            }
        }
    }
}

fn serve(
    sock: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    seen: &Mutex<Vec<Seen>>,
    routes: &Mutex<Vec<(String, Route)>>,
) {
    let _ = sock.set_read_timeout(Some(LIMIT));
    let raw = sock.try_clone().unwrap();
    let mut io = match tls {
        Some(cfg) => {
            let conn = rustls::ServerConnection::new(cfg).unwrap();
            SiteIo::Tls(Box::new(rustls::StreamOwned::new(conn, sock)))
        }
        None => SiteIo::Plain(sock),
    };
    let mut conn = Connection::server(Config::default(), Instant::now());
    let mut buf = vec![0u8; 16 << 10];
    let mut out = vec![0u8; 16 << 10];
    // Bounded: at most 1,000 reads per connection, each bounded by the read timeout.
    for _ in 0..1000 {
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::UpgradeRequest(req) => {
                    let target = match &req.query {
                        Some(q) => format!("{}?{q}", req.path),
                        None => req.path.clone(),
                    };
                    seen.lock().unwrap().push(Seen {
                        target: target.clone(),
                        headers: req.headers.clone(),
                    });
                    let route = routes
                        .lock()
                        .unwrap()
                        .iter()
                        .find(|(p, _)| *p == target || *p == req.path)
                        .map(|(_, r)| r.clone())
                        .unwrap_or(Route::Redirect(404, String::new()));
                    let _ = match route {
                        Route::Echo => conn.accept(Accept::new()),
                        Route::Redirect(404, _) => conn.reject(404, &[], b"no such path"),
                        Route::Redirect(status, location) => {
                            conn.reject(status, &[("Location".to_string(), location)], b"")
                        }
                    };
                }
                Event::Message(m) => {
                    let _ = conn.send(m.kind, m.data);
                }
                Event::Closed(_) => {
                    flush(&mut conn, &mut io, &mut out);
                    io.close();
                    let _ = raw.shutdown(Shutdown::Both);
                    return;
                }
                _ => {}
            }
        }
        if !flush(&mut conn, &mut io, &mut out) {
            return;
        }
        match io.read(&mut buf) {
            Ok(0) | Err(_) => {
                conn.handle_eof(Instant::now());
            }
            Ok(n) => conn.handle_input(Instant::now(), &buf[..n]),
        }
    }
}

fn flush(conn: &mut Connection, io: &mut SiteIo, out: &mut [u8]) -> bool {
    while let Some(t) = conn.poll_transmit(Instant::now(), out) {
        match t {
            Transmit::Data(n) => {
                if io.send(&out[..n]).is_err() {
                    return false;
                }
            }
            Transmit::Shutdown => {
                io.close();
                return false;
            }
        }
    }
    true
}

/// A `pproxy` process serving one protocol on 127.0.0.1 (stopped when dropped).
pub struct PProxy {
    child: Child,
    url: String,
    ca_pem: Vec<u8>,
    /// Its certificate files (an HTTPS proxy), removed when dropped.
    dir: Option<std::path::PathBuf>,
}

impl PProxy {
    /// The proxy's URL (`http://127.0.0.1:PORT` or `socks5://...`), without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The certificate of an HTTPS proxy (PEM), to trust; empty otherwise.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// The proxy's URL with `user:password@`.
    pub fn url_with(&self, user: &str, password: &str) -> String {
        self.url
            .replacen("://", &format!("://{user}:{password}@"), 1)
    }

    /// [`ProxyMode::Url`] of [`url_with`](Self::url_with) (or of [`url`](Self::url) when
    /// `creds` is `None`).
    pub fn mode(&self, creds: Option<(&str, &str)>) -> ProxyMode {
        let u = match creds {
            Some((user, pw)) => self.url_with(user, pw),
            None => self.url.clone(),
        };
        ProxyMode::Url(ProxyUrl::parse(&u).unwrap())
    }
}

impl Drop for PProxy {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The interop virtualenv's python, with `pproxy` installed into it (once). Fails the test,
/// saying what to install, when that is not possible.
fn pproxy_python() -> std::path::PathBuf {
    static READY: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    READY
        .get_or_init(|| {
            let py = crate::interop::python();
            let has = |py: &std::path::Path| {
                Command::new(py)
                    .args(["-c", "import pproxy"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !has(&py) {
                let out = Command::new(&py)
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "pproxy>=2.7,<3",
                    ])
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
                if !out.status.success() || !has(&py) {
                    return Err(format!(
                        "the proxy tests need the Python package `pproxy` (>=2.7,<3) in the \
                         interop virtualenv ({}); pip could not install it. Install it with \
                         `{} -m pip install 'pproxy>=2.7,<3'`. pip said:\n{}",
                        py.display(),
                        py.display(),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
            Ok(py)
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Starts `pproxy` on 127.0.0.1 (an ephemeral port) speaking `scheme` (`http` or `socks5`),
/// requiring `user:password` when given; returns once it says it is serving.
pub fn pproxy(scheme: &str, creds: Option<(&str, &str)>) -> PProxy {
    start_pproxy(scheme, scheme, creds, &[])
}

/// An HTTPS proxy: `pproxy` serving HTTP `CONNECT` over TLS with a fresh certificate for
/// 127.0.0.1 (its PEM is [`PProxy::ca_pem`]); the URL is `https://127.0.0.1:PORT`.
pub fn pproxy_tls() -> PProxy {
    static N: AtomicUsize = AtomicUsize::new(0);
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "ws-reach-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let ssl = format!("{},{}", cert.display(), key.display());
    let mut px = start_pproxy("http+ssl", "https", None, &["--ssl", &ssl]);
    px.ca_pem = ck.cert.pem().into_bytes();
    px.dir = Some(dir);
    px
}

fn start_pproxy(listen: &str, scheme: &str, creds: Option<(&str, &str)>, extra: &[&str]) -> PProxy {
    let py = pproxy_python();
    let auth = creds.map(|(u, p)| format!("#{u}:{p}")).unwrap_or_default();
    let mut child = Command::new(py)
        .args(["-u", "-m", "pproxy", "-v", "--auth=-1"])
        .args(extra)
        .arg("-l")
        .arg(format!("{listen}://127.0.0.1:0{auth}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start pproxy: {e}"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        // "Serving on ipv? 127.0.0.1:PORT by http"
        for line in lines.by_ref().take(100) {
            let Ok(line) = line else { return };
            if let Some(rest) = line.split("127.0.0.1:").nth(1) {
                let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let _ = tx.send(port);
                break;
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        for _ in lines {}
    });
    let port = match rx.recv_timeout(LIMIT) {
        Ok(p) => p,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pproxy did not say it was serving within {LIMIT:?}");
        }
    };
    PProxy {
        child,
        url: format!("{scheme}://127.0.0.1:{port}"),
        ca_pem: Vec::new(),
        dir: None,
    }
}

/// What a [`FakeProxy`] does with each connection.
#[derive(Clone, Debug)]
pub enum Fake {
    /// Reads the request, sends these bytes, and closes.
    Answer(Vec<u8>),
    /// Reads the request, then sends an answer head that never ends (header lines without
    /// end, up to 1 MiB or until the client goes away).
    Endless,
    /// Reads the request and never answers (holds the connection until the client goes).
    Silent,
    /// Reads the request, then answers a byte at a time, one every 20 ms, a head that never
    /// ends (until the client goes, at most [`LIMIT`]).
    Trickle,
}

/// A hostile proxy on 127.0.0.1 (see [`Fake`]); counts the connections it took.
pub struct FakeProxy {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    first_bytes: mpsc::Receiver<Vec<u8>>,
}

impl FakeProxy {
    /// Starts one behaving as `fake`.
    pub fn start(fake: Fake) -> FakeProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, first_bytes) = mpsc::channel();
        let count = accepted.clone();
        std::thread::spawn(move || {
            for sock in listener.incoming().take(100) {
                let Ok(mut sock) = sock else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let (fake, tx) = (fake.clone(), tx.clone());
                std::thread::spawn(move || {
                    let _ = sock.set_read_timeout(Some(LIMIT));
                    let mut buf = [0u8; 2048];
                    let n = sock.read(&mut buf).unwrap_or(0);
                    let _ = tx.send(buf[..n].to_vec());
                    match fake {
                        Fake::Answer(bytes) => {
                            let _ = sock.write_all(&bytes);
                            let _ = sock.shutdown(Shutdown::Write);
                            // Until the client closes (bounded by the read timeout).
                            let _ = sock.read(&mut buf);
                        }
                        Fake::Endless => {
                            let _ = sock.write_all(b"HTTP/1.1 200 OK\r\nX-Pad: ");
                            let chunk = [b'a'; 1024];
                            for _ in 0..1024 {
                                if sock.write_all(&chunk).is_err() {
                                    break;
                                }
                            }
                        }
                        Fake::Silent => {
                            // Holds the connection until the client closes it.
                            let _ = sock.read(&mut buf);
                        }
                        Fake::Trickle => {
                            let head = b"HTTP/1.1 200 OK\r\nX-Slow: ";
                            let bytes = head.iter().chain(std::iter::repeat(&b'a'));
                            let steps = LIMIT.as_millis() / 20;
                            for b in bytes.take(usize::try_from(steps).unwrap_or(1000)) {
                                // The peer's pace, not a wait of the test.
                                std::thread::sleep(Duration::from_millis(20));
                                if sock.write_all(&[*b]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        FakeProxy {
            addr,
            accepted,
            first_bytes,
        }
    }

    /// `scheme://127.0.0.1:PORT` as a proxy mode.
    pub fn mode(&self, scheme: &str) -> ProxyMode {
        ProxyMode::Url(ProxyUrl::parse(&format!("{scheme}://{}", self.addr)).unwrap())
    }

    /// Connections taken so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The first bytes the first client sent (waits for them, at most [`LIMIT`]).
    pub fn first_request(&self) -> Vec<u8> {
        self.first_bytes.recv_timeout(LIMIT).unwrap_or_default()
    }
}

/// A request option set with no proxy from the environment and `max` redirects.
pub fn request(max_redirects: usize) -> RequestOptions {
    RequestOptions::default()
        .no_proxy()
        .max_redirects(max_redirects)
}

/// The cases, one function each; [`reach_tests!`](crate::reach_tests) makes them tests.
pub mod cases {
    use super::*;

    fn ok<C: ReachClient>(url: &str, r: &RequestOptions, ca: &[u8]) -> String {
        let t = Try {
            url,
            request: r,
            ca_pem: ca,
            timeout: LIMIT,
        };
        C::echo(&t).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn err<C: ReachClient>(url: &str, r: &RequestOptions, ca: &[u8], timeout: Duration) -> String {
        let t = Try {
            url,
            request: r,
            ca_pem: ca,
            timeout,
        };
        match C::echo(&t) {
            Ok(echo) => panic!("{url}: connected and echoed {echo:?}; expected an error"),
            Err(e) => e,
        }
    }

    fn echo_site() -> Site {
        let site = Site::plain();
        site.route("/echo", Route::Echo);
        site
    }

    /// Echo through an HTTP CONNECT proxy (pproxy).
    pub fn http_proxy<C: ReachClient>() {
        let site = echo_site();
        let px = pproxy("http", None);
        let r = request(0).proxy_mode(px.mode(None));
        assert_eq!(ok::<C>(&format!("{}/echo", site.base()), &r, &[]), "hello");
        assert_eq!(site.seen().len(), 1);
    }

    /// Echo through an authenticating HTTP proxy; a wrong password is a clear error.
    pub fn http_proxy_auth<C: ReachClient>() {
        let site = echo_site();
        let px = pproxy("http", Some(("alice", "s3cret")));
        let url = format!("{}/echo", site.base());
        let r = request(0).proxy_mode(px.mode(Some(("alice", "s3cret"))));
        assert_eq!(ok::<C>(&url, &r, &[]), "hello");
        let r = request(0).proxy_mode(px.mode(Some(("alice", "wrong"))));
        let e = err::<C>(&url, &r, &[], LIMIT);
        assert!(e.contains("407") && e.contains("credentials"), "{e}");
        assert!(!e.contains("wrong"), "the password is never shown: {e}");
        let r = request(0).proxy_mode(px.mode(None));
        let e = err::<C>(&url, &r, &[], LIMIT);
        assert!(e.contains("requires authentication"), "{e}");
    }

    /// Echo through a SOCKS5 proxy, with and without username/password.
    pub fn socks5_proxy<C: ReachClient>() {
        let site = echo_site();
        let url = format!("{}/echo", site.base());
        let px = pproxy("socks5", None);
        assert_eq!(
            ok::<C>(&url, &request(0).proxy_mode(px.mode(None)), &[]),
            "hello"
        );
        let px = pproxy("socks5", Some(("bob", "pw")));
        let r = request(0).proxy_mode(px.mode(Some(("bob", "pw"))));
        assert_eq!(ok::<C>(&url, &r, &[]), "hello");
        let r = request(0).proxy_mode(px.mode(Some(("bob", "nope"))));
        let e = err::<C>(&url, &r, &[], LIMIT);
        assert!(
            e.contains("SOCKS5 proxy refused the user name and password"),
            "{e}"
        );
    }

    /// `wss://` through an HTTP proxy: TLS runs inside the tunnel.
    pub fn wss_through_proxy<C: ReachClient>() {
        let site = Site::tls();
        site.route("/echo", Route::Echo);
        let px = pproxy("http", None);
        let r = request(0).proxy_mode(px.mode(None));
        let url = format!("{}/echo", site.base());
        assert_eq!(ok::<C>(&url, &r, site.ca_pem()), "hello");
    }

    /// Through an `https://` proxy (TLS to the proxy): `ws://`, and `wss://` with the server's
    /// TLS inside the proxy's.
    pub fn https_proxy<C: ReachClient>() {
        let plain = echo_site();
        let tls = Site::tls();
        tls.route("/echo", Route::Echo);
        let px = pproxy_tls();
        let r = request(0).proxy_mode(px.mode(None));
        let url = format!("{}/echo", plain.base());
        assert_eq!(ok::<C>(&url, &r, px.ca_pem()), "hello");
        let both = [px.ca_pem(), tls.ca_pem()].concat();
        let url = format!("{}/echo", tls.base());
        assert_eq!(ok::<C>(&url, &r, &both), "hello");
        assert_eq!((plain.seen().len(), tls.seen().len()), (1, 1));
        // The proxy's certificate is checked like a server's.
        let e = err::<C>(&format!("{}/echo", plain.base()), &r, &[], LIMIT);
        assert!(e.contains("add its CA certificate (PEM)"), "{e}");
    }

    /// A driver without TLS to proxies says so, before connecting anything.
    pub fn https_proxy_unsupported<C: ReachClient>() {
        let site = echo_site();
        let px = FakeProxy::start(Fake::Silent);
        let e = err::<C>(
            &format!("{}/echo", site.base()),
            &request(0).proxy_mode(px.mode("https")),
            &[],
            LIMIT,
        );
        assert!(e.contains("https:// proxy URLs) is not supported"), "{e}");
        assert_eq!(px.accepted(), 0);
    }

    /// Hostile proxies: garbage, an endless answer, silence, a refusal, an early close,
    /// SOCKS5 garbage; each a clear error, never a hang or a panic.
    pub fn hostile_proxies<C: ReachClient>() {
        let url = "ws://127.0.0.1:9/echo";
        let cases: Vec<(Fake, &str, &str)> = vec![
            (
                Fake::Answer(b"SSH-2.0-OpenSSH_9\r\n\r\n".to_vec()),
                "http",
                "malformed proxy answer",
            ),
            (Fake::Endless, "http", "exceeds 8192 bytes"),
            (
                Fake::Answer(b"HTTP/1.1 502 Bad Gateway\r\n\r\n".to_vec()),
                "http",
                "502 Bad Gateway",
            ),
            (
                Fake::Answer(b"HTTP/1.1 200 OK\r\n".to_vec()),
                "http",
                "closed the connection before answering",
            ),
            (
                Fake::Answer(b"HTTP/1.1 200 OK\r\n\r\nEXTRA".to_vec()),
                "http",
                "sent data after its answer",
            ),
            (
                Fake::Answer(vec![5, 0xff]),
                "socks5",
                "SOCKS5 proxy requires authentication",
            ),
            (
                Fake::Answer(vec![4, 90, 0, 0]),
                "socks5",
                "malformed proxy answer",
            ),
        ];
        for (fake, scheme, want) in cases {
            let px = FakeProxy::start(fake.clone());
            let r = request(0).proxy_mode(px.mode(scheme));
            let e = err::<C>(url, &r, &[], LIMIT);
            assert!(e.contains(want), "{fake:?}: {e:?} does not say {want:?}");
            assert_eq!(px.accepted(), 1, "{fake:?}");
        }
        // The CONNECT request names the target and nothing else.
        let px = FakeProxy::start(Fake::Answer(b"HTTP/1.1 403 No\r\n\r\n".to_vec()));
        let _ = err::<C>(url, &request(0).proxy_mode(px.mode("http")), &[], LIMIT);
        let req = String::from_utf8_lossy(&px.first_request()).into_owned();
        assert_eq!(
            req,
            "CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n"
        );
        // A silent proxy, and one that answers a byte every 20 ms: the handshake timeout ends
        // both.
        for fake in [Fake::Silent, Fake::Trickle] {
            let px = FakeProxy::start(fake.clone());
            let start = Instant::now();
            let r = request(0).proxy_mode(px.mode("http"));
            let e = err::<C>(url, &r, &[], Duration::from_millis(500));
            assert!(e.to_lowercase().contains("timed out"), "{fake:?}: {e}");
            assert!(
                start.elapsed() < LIMIT,
                "{fake:?}: took {:?}",
                start.elapsed()
            );
        }
    }

    /// A certificate no trusted root signed: the error says how to add a root.
    pub fn untrusted_certificate<C: ReachClient>() {
        let site = Site::tls();
        site.route("/echo", Route::Echo);
        let e = err::<C>(&format!("{}/echo", site.base()), &request(0), &[], LIMIT);
        assert!(e.contains("add its CA certificate (PEM)"), "{e}");
    }

    /// One redirect, then a chain of three, with the request hook run per attempt.
    pub fn redirects<C: ReachClient>() {
        let site = echo_site();
        site.route("/one", Route::Redirect(301, "/echo".into()))
            .route("/a", Route::Redirect(302, "/b".into()))
            .route(
                "/b",
                Route::Redirect(303, format!("http://{}/c", site.addr())),
            )
            .route("/c", Route::Redirect(307, "/d?x=1".into()))
            .route("/d?x=1", Route::Redirect(308, "echo".into()));
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let r = request(5).request_hook(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(ok::<C>(&format!("{}/one", site.base()), &r, &[]), "hello");
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the hook runs per attempt");
        assert_eq!(ok::<C>(&format!("{}/a", site.base()), &r, &[]), "hello");
        let targets: Vec<String> = site.seen().into_iter().map(|s| s.target).collect();
        assert_eq!(
            targets,
            ["/one", "/echo", "/a", "/b", "/c", "/d?x=1", "/echo"]
        );
        // Off: the 3xx is the error.
        let e = err::<C>(&format!("{}/one", site.base()), &request(0), &[], LIMIT);
        assert!(e.contains("301"), "{e}");
        // Over the limit: the chain is named.
        let e = err::<C>(&format!("{}/a", site.base()), &request(2), &[], LIMIT);
        assert!(
            e.contains("more than 2 redirects") && e.contains("/a -> ") && e.contains("/d?x=1"),
            "{e}"
        );
    }

    /// A loop is an error naming the chain.
    pub fn redirect_loop<C: ReachClient>() {
        let site = Site::plain();
        site.route("/x", Route::Redirect(302, "/y".into()))
            .route("/y", Route::Redirect(302, "/x".into()));
        let e = err::<C>(&format!("{}/x", site.base()), &request(5), &[], LIMIT);
        let base = site.base();
        assert!(
            e.contains(&format!("redirect loop: {base}/x -> {base}/y -> {base}/x")),
            "{e}"
        );
        assert_eq!(site.seen().len(), 2);
    }

    /// `wss://` is never followed to `ws://`.
    pub fn redirect_downgrade<C: ReachClient>() {
        let plain = echo_site();
        let tls = Site::tls();
        tls.route(
            "/down",
            Route::Redirect(301, format!("{}/echo", plain.base())),
        );
        let e = err::<C>(
            &format!("{}/down", tls.base()),
            &request(5),
            tls.ca_pem(),
            LIMIT,
        );
        assert!(e.contains("downgrade"), "{e}");
        assert!(plain.seen().is_empty(), "nothing went to the ws:// URL");
    }

    /// The URL's credentials become `Authorization: Basic`; a caller's `Authorization` wins.
    pub fn url_credentials<C: ReachClient>() {
        let site = echo_site();
        let url = format!("ws://alice:s%40cret@{}/echo", site.addr());
        assert_eq!(ok::<C>(&url, &request(0), &[]), "hello");
        let r = request(0).header("Authorization", "Bearer t");
        assert_eq!(ok::<C>(&url, &r, &[]), "hello");
        let seen = site.seen();
        assert_eq!(
            seen[0].header("authorization"),
            Some("Basic YWxpY2U6c0BjcmV0")
        );
        assert_eq!(seen[1].header("authorization"), Some("Bearer t"));
    }

    /// The URL's credentials become `Authorization: Basic` on its origin and are not sent to
    /// another.
    pub fn credentials_stay_home<C: ReachClient>() {
        let other = echo_site();
        let site = Site::plain();
        site.route(
            "/start",
            Route::Redirect(302, format!("{}/echo", other.base())),
        );
        site.route("/echo", Route::Echo);
        let url = format!("ws://alice:s%40cret@{}/echo", site.addr());
        assert_eq!(ok::<C>(&url, &request(5), &[]), "hello");
        let url = format!("ws://alice:s%40cret@{}/start", site.addr());
        let r = request(5).header("Cookie", "session=1");
        assert_eq!(ok::<C>(&url, &r, &[]), "hello");
        let seen = site.seen();
        assert_eq!(
            seen[0].header("authorization"),
            Some("Basic YWxpY2U6c0BjcmV0")
        );
        assert_eq!(
            seen[1].header("authorization"),
            Some("Basic YWxpY2U6c0BjcmV0")
        );
        assert_eq!(seen[1].header("cookie"), Some("session=1"));
        let away = other.seen();
        assert_eq!(away.len(), 1);
        assert_eq!(away[0].header("authorization"), None, "{away:?}");
        assert_eq!(away[0].header("cookie"), None, "{away:?}");
    }
}

/// One test per [`cases`] function for a [`ReachClient`].
#[macro_export]
macro_rules! reach_tests {
    ($client:ty) => {
        mod reach_cases {
            use super::*;
            #[test]
            fn http_proxy() {
                $crate::reach::cases::http_proxy::<$client>();
            }
            #[test]
            fn http_proxy_auth() {
                $crate::reach::cases::http_proxy_auth::<$client>();
            }
            #[test]
            fn socks5_proxy() {
                $crate::reach::cases::socks5_proxy::<$client>();
            }
            #[test]
            fn wss_through_proxy() {
                $crate::reach::cases::wss_through_proxy::<$client>();
            }
            #[test]
            fn hostile_proxies() {
                $crate::reach::cases::hostile_proxies::<$client>();
            }
            #[test]
            fn redirects() {
                $crate::reach::cases::redirects::<$client>();
            }
            #[test]
            fn redirect_loop() {
                $crate::reach::cases::redirect_loop::<$client>();
            }
            #[test]
            fn redirect_downgrade() {
                $crate::reach::cases::redirect_downgrade::<$client>();
            }
            #[test]
            fn untrusted_certificate() {
                $crate::reach::cases::untrusted_certificate::<$client>();
            }
            #[test]
            fn url_credentials() {
                $crate::reach::cases::url_credentials::<$client>();
            }
            #[test]
            fn credentials_stay_home() {
                $crate::reach::cases::credentials_stay_home::<$client>();
            }
        }
    };
}
