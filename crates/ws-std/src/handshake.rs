//! Opening a connection, both ways: [`connect`] (URL, request validation,
//! name resolution, TCP, TLS, HTTP upgrade) and [`accept`] (TLS, the upgrade
//! request, the application's decision), up to the open [`WebSocket`].
//! `Config::handshake_timeout` bounds each of them as a whole.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ws_net::proxy::{
    ProxyError, ProxyHandshake, ProxyScheme, ProxyStep, ProxyUrl, MAX_HTTP_ANSWER,
};
use ws_net::url::WsUrl;
use ws_proto::{Connection, Event, OpenInfo, UpgradeRequest};

use crate::driver::{Reader, Shared};
use crate::error::{Error, Timeout};
use crate::logctx::{wslog, ConnId};
use crate::options::{ClientOptions, ServerOptions, UpgradeResponse};
use crate::tls;
use crate::websocket::WebSocket;

/// Connects to a `ws://` or `wss://` URL and completes the opening
/// handshake.
///
/// Before anything is resolved or connected, the URL is parsed
/// ([`ws_net::url::WsUrl`]) and the upgrade request assembled and validated
/// ([`ws_net::request::RequestOptions::build`]): a bad URL is
/// [`Error::InvalidUrl`], a header, origin, subprotocol or path that could
/// add a header line or break the request line is [`Error::Command`] with
/// [`ws_proto::Error::InvalidRequest`] naming the field
/// ([`Error::invalid_request`]).
///
/// The proxy is chosen by [`RequestOptions::proxy`](ws_net::request::RequestOptions::proxy)
/// (default: the environment, as curl reads it; see docs/connecting.md), and
/// redirects are followed up to
/// [`max_redirects`](ws_net::request::RequestOptions::max_redirects) (default 5),
/// each attempt bounded by `handshake_timeout`.
///
/// Then fails with [`Error::Proxy`], [`Error::Redirect`], [`Error::Resolve`], [`Error::Connect`], [`Error::Tls`],
/// [`Error::Handshake`] (e.g. [`HandshakeError::Status`](ws_proto::HandshakeError::Status)
/// for a 401), [`Error::Timeout`] or [`Error::ConnectionLost`].
pub fn connect(url: &str, options: &ClientOptions) -> Result<WebSocket, Error> {
    let url = WsUrl::parse(url)?;
    connect_url(&url, options, ConnId::next())
}

/// Accepts a WebSocket connection on an accepted `TcpStream`: the TLS
/// handshake (when `options.tls` is set), then the HTTP upgrade, decided by
/// `options.on_upgrade`.
///
/// A rejected upgrade returns `Err(Error::Handshake(HandshakeError::Rejected(status)))`
/// once the response has been sent.
pub fn accept(stream: TcpStream, options: &ServerOptions) -> Result<WebSocket, Error> {
    accept_with_id(stream, options, ConnId::next(), &|_| {}, log::Level::Info)
}

/// The client side of [`connect`], with a chosen id (the event client logs
/// under its own id from the start): one attempt per URL of the redirect
/// chain ([`ws_net::Attempts`]: the request built again, the hook run again,
/// credentials only on the first origin, the proxy chosen per URL).
pub(crate) fn connect_url(
    url: &WsUrl,
    options: &ClientOptions,
    id: ConnId,
) -> Result<WebSocket, Error> {
    let mut attempts = ws_net::Attempts::new(url.clone(), options.request.clone());
    // Bounded: `redirected` answers true at most `max_redirects` times.
    loop {
        match connect_attempt(&attempts, options, id) {
            Err(Error::Handshake(e)) => {
                if !attempts.redirected(&e)? {
                    return Err(Error::Handshake(e));
                }
                wslog!(Info, id, "redirected to {}", attempts.url());
            }
            other => return other,
        }
    }
}

/// One attempt of [`connect_url`]: the URL [`ws_net::Attempts::url`] names.
fn connect_attempt(
    attempts: &ws_net::Attempts,
    options: &ClientOptions,
    id: ConnId,
) -> Result<WebSocket, Error> {
    let url = attempts.url();
    let start = Instant::now();
    let deadline = start + options.config.handshake_timeout;
    // Everything that can be refused locally is refused before a socket
    // exists. The core's handshake timer starts with the attempt, so
    // `handshake_timeout` bounds connect + proxy + TLS + upgrade together.
    let request = attempts.request()?;
    let conn = Connection::client(options.config.clone(), &request, start)?;
    let connect_to = options.connect_to.filter(|_| attempts.on_first_origin());
    let proxy = attempts
        .proxy(connect_to.is_some())
        .map_err(|error| proxy_error(None, error))?;
    let tls_config = if url.is_secure() {
        Some(options.tls.build()?)
    } else {
        None
    };
    let addrs = match (&proxy, connect_to) {
        (Some(p), _) => {
            if p.scheme() == ProxyScheme::Https {
                return Err(proxy_error(
                    Some(p),
                    ProxyError::Unsupported(
                        "TLS to the proxy (https:// proxy URLs) is not supported by ws-std yet; use an http:// or socks5:// proxy".into(),
                    ),
                ));
            }
            wslog!(Debug, id, "connecting to {url} through proxy {p}");
            resolve(p.host(), p.ip(), p.port())?
        }
        (None, Some(a)) => vec![a],
        (None, None) => {
            wslog!(Debug, id, "connecting to {url}");
            resolve(url.host(), url.ip(), url.port())?
        }
    };
    let sock = connect_tcp(&addrs, options.connect_timeout, deadline)?;
    wslog!(
        Debug,
        id,
        "TCP connected to {}",
        sock.peer_addr()
            .map_or_else(|e| e.to_string(), |a| a.to_string())
    );
    sock.set_nodelay(true).map_err(Error::Io)?;
    if let Some(p) = &proxy {
        proxy_handshake(&sock, p, url, deadline)?;
        wslog!(Debug, id, "proxy tunnel to {} open", url.host_header());
    }
    let tls = match tls_config {
        Some(config) => {
            let mut session = tls::client_session(config, url.host())?;
            tls::handshake(&sock, &mut session, deadline)?;
            wslog!(Debug, id, "TLS established");
            Some(session)
        }
        None => None,
    };
    sock.set_write_timeout(options.write_timeout)
        .map_err(Error::Io)?;
    let mut opening = Opening::start(id, sock, conn, tls)?;
    match opening.next_event() {
        Some(Event::Open(info)) => Ok(opening.open(*info, None)),
        other => Err(opening.handshake_failed(other, log::Level::Info)),
    }
}

fn proxy_error(proxy: Option<&ProxyUrl>, error: ProxyError) -> Error {
    Error::Proxy {
        proxy: error.proxy_label(proxy),
        error,
    }
}

/// Runs the proxy handshake ([`ProxyHandshake`], written once in ws-net) on
/// `sock` until the tunnel to `url` is open, the proxy fails it, or
/// `deadline` passes. Socket timeouts are restored to none afterwards.
fn proxy_handshake(
    sock: &TcpStream,
    proxy: &ProxyUrl,
    url: &WsUrl,
    deadline: Instant,
) -> Result<(), Error> {
    let fail = |e| proxy_error(Some(proxy), e);
    let mut hs = ProxyHandshake::new(proxy, url.host(), url.port()).map_err(fail)?;
    let remaining = || tls::time_left(deadline, Timeout::Proxy);
    let io_error = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            Error::Timeout(Timeout::Proxy)
        }
        _ => Error::from_io(e),
    };
    let mut io: &TcpStream = sock;
    let mut buf = [0u8; 1024];
    // Every read brings at least a byte of an answer that is bounded
    // (MAX_HTTP_ANSWER), or ends the handshake; the deadline bounds the time.
    for _ in 0..=MAX_HTTP_ANSWER + 1 {
        while let Some(out) = hs.transmit() {
            sock.set_write_timeout(Some(remaining()?))
                .map_err(Error::Io)?;
            io.write_all(&out).map_err(io_error)?;
        }
        sock.set_read_timeout(Some(remaining()?))
            .map_err(Error::Io)?;
        let n = match io.read(&mut buf) {
            Ok(0) => return Err(fail(hs.eof())),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(e)),
        };
        if hs.receive(&buf[..n]).map_err(fail)? == ProxyStep::Done {
            sock.set_read_timeout(None)
                .and_then(|()| sock.set_write_timeout(None))
                .map_err(Error::Io)?;
            return Ok(());
        }
    }
    Err(fail(ProxyError::AnswerTooLarge))
}

/// The server side of [`accept`]; `register` sees the connection's shared
/// state as soon as it exists (the server helper uses it for shutdown).
/// `outcome` is the level of the lines saying that the upgrade was rejected
/// or failed (the server helper's rejections at its connection limit log
/// them at `Debug` and rate-limit their own line).
pub(crate) fn accept_with_id(
    stream: TcpStream,
    options: &ServerOptions,
    id: ConnId,
    register: &dyn Fn(&Arc<Shared>),
    outcome: log::Level,
) -> Result<WebSocket, Error> {
    let start = Instant::now();
    let deadline = start + options.config.handshake_timeout;
    wslog!(
        Debug,
        id,
        "accepted from {}",
        stream
            .peer_addr()
            .map_or_else(|e| e.to_string(), |a| a.to_string())
    );
    stream.set_nodelay(true).map_err(Error::Io)?;
    let tls = match &options.tls {
        Some(config) => {
            let mut session = tls::server_session(config.clone())?;
            tls::handshake(&stream, &mut session, deadline)?;
            wslog!(Debug, id, "TLS established");
            Some(session)
        }
        None => None,
    };
    stream
        .set_write_timeout(options.write_timeout)
        .map_err(Error::Io)?;
    let conn = Connection::server(options.config.clone(), start);
    let mut opening = Opening::start(id, stream, conn, tls)?;
    register(&opening.shared);
    let ev = opening.next_event();
    let Some(Event::UpgradeRequest(req)) = ev else {
        return Err(opening.handshake_failed(ev, outcome));
    };
    wslog!(
        Debug,
        id,
        "upgrade request for {:?} from origin {:?}",
        req.path,
        req.origin
    );
    let decision = if !ws_net::origin::origin_allowed(
        options.allowed_origins.as_deref(),
        req.origin.as_deref(),
    ) {
        wslog!(Info, id, "origin {:?} not in the allow-list", req.origin);
        UpgradeResponse::reject(403, "origin not allowed")
    } else {
        match &options.on_upgrade {
            Some(f) => f(&req),
            None => UpgradeResponse::accept(),
        }
    };
    let shared = opening.shared.clone();
    let answered = match decision {
        UpgradeResponse::Accept(a) => shared.step(true, |stack, _| stack.conn.accept(a)),
        UpgradeResponse::Reject {
            status,
            headers,
            body,
        } => {
            log::log!(target: "ws_std", outcome, "{id} rejecting the upgrade with {status}");
            shared.step(true, |stack, _| stack.conn.reject(status, &headers, &body))
        }
    };
    if let Err(e) = answered {
        // The application's answer was invalid (unoffered subprotocol, bad
        // header or status): refuse with 500 and report its mistake.
        wslog!(Warn, id, "invalid upgrade answer: {e}");
        let _ = shared.step(true, |stack, _| {
            stack.conn.reject(500, &[], b"Internal Server Error")
        });
        let _ = opening.next_event();
        shared.finish(Duration::ZERO);
        return Err(Error::Command(e));
    }
    match opening.next_event() {
        Some(Event::Open(info)) => Ok(opening.open(*info, Some(*req))),
        other => Err(opening.handshake_failed(other, outcome)),
    }
}

/// A connection during its opening handshake: the driver's state and the
/// reading side, which become a [`WebSocket`] once the core reports it open.
struct Opening {
    shared: Arc<Shared>,
    reader: Reader,
    tls_server_name: Option<String>,
}

impl Opening {
    fn start(
        id: ConnId,
        sock: TcpStream,
        conn: Connection,
        tls: Option<rustls::Connection>,
    ) -> Result<Opening, Error> {
        let write_half = sock.try_clone().map_err(Error::Io)?;
        let shared = Arc::new(Shared::new(id, write_half, conn, tls));
        let tls_server_name = shared.stack().tls_server_name();
        // Send the request (client) and hand over any plaintext that
        // arrived with the TLS handshake.
        shared.step(true, |stack, now| stack.pull_plaintext(now));
        Ok(Opening {
            shared,
            reader: Reader::new(sock),
            tls_server_name,
        })
    }

    /// The next event, reading the socket as needed.
    fn next_event(&mut self) -> Option<Event> {
        self.reader.next_event(&self.shared)
    }

    fn open(self, info: OpenInfo, request: Option<UpgradeRequest>) -> WebSocket {
        wslog!(
            Info,
            self.shared.id,
            "open (subprotocol {:?}, extensions {:?})",
            info.protocol,
            info.extensions
        );
        WebSocket::new(
            self.shared,
            self.reader,
            info,
            request,
            self.tls_server_name,
        )
    }

    /// The error for a handshake that ended with `ev` instead of `Open`
    /// (logged at `level`).
    fn handshake_failed(&mut self, ev: Option<Event>, level: log::Level) -> Error {
        // Drain to the terminal event if it has not come yet.
        let mut ev = ev;
        for _ in 0..4 {
            match ev {
                Some(Event::Closed(_)) | None => break,
                _ => ev = self.next_event(),
            }
        }
        let shared = &self.shared;
        let detail = shared.stack().take_failure();
        shared.finish(Duration::from_millis(100));
        let err = match ev {
            Some(Event::Closed(c)) => Error::from_closed(&c, detail),
            _ => detail,
        };
        let err = err.unwrap_or(Error::ConnectionLost { source: None });
        log::log!(target: "ws_std", level, "{} handshake failed: {err}", shared.id);
        err
    }
}

/// Resolves a host (the URL's or the proxy's). Names in the `.invalid`
/// top-level domain fail at once, without asking the resolver (RFC 6761 §6.4).
fn resolve(host: &str, ip: Option<IpAddr>, port: u16) -> Result<Vec<SocketAddr>, Error> {
    if let Some(ip) = ip {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let fail = |source| Error::Resolve {
        host: host.to_string(),
        source,
    };
    let name = host.trim_end_matches('.');
    if name == "invalid" || name.ends_with(".invalid") {
        return Err(fail(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "names under .invalid never resolve (RFC 6761)",
        )));
    }
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(fail)?.collect();
    if addrs.is_empty() {
        return Err(fail(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no addresses",
        )));
    }
    Ok(addrs)
}

/// Tries each address in turn until one connects or the deadline passes.
fn connect_tcp(
    addrs: &[SocketAddr],
    limit: Option<Duration>,
    deadline: Instant,
) -> Result<TcpStream, Error> {
    let mut last = None;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout(Timeout::Connect));
        }
        let t = limit.map_or(left, |l| l.min(left));
        match TcpStream::connect_timeout(addr, t) {
            Ok(s) => return Ok(s),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                last = Some(Error::Timeout(Timeout::Connect));
            }
            Err(e) => {
                last = Some(Error::Connect {
                    addr: *addr,
                    source: e,
                })
            }
        }
    }
    Err(last.unwrap_or(Error::Timeout(Timeout::Connect)))
}
