//! Taking connections in: listening sockets and accepting from them (with
//! the 503 refusal over `max_connections`), opening client connections, and
//! the one door both go through into the session table
//! ([`LoopState::admit`]).

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::Interest;
use ws_net::proxy::{ProxyError, ProxyHandshake, ProxyScheme};
use ws_net::url::WsUrl;
use ws_proto::{Bytes, Closed, Connection, ConnectionError, TransportError};

use crate::error::Error;
use crate::id::{listener_token, ConnId};
use crate::net::{self, Listener};
use crate::options::ConnectOptions;
use crate::sessions::{Follow, ProxyPhase, Session};
use crate::state::{LoopState, RunState};
use crate::tls;
use crate::transport::Transport;

/// How long to wait before accepting again after an accept error such as
/// running out of file descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// `Retry-After` (seconds) of the 503 answer to a connection over
/// `max_connections`.
const RETRY_AFTER_SECS: &str = "1";

impl LoopState {
    /// Takes a session into the table: counted, its work lists given room,
    /// its deadline and poll interest set.
    fn admit(&mut self, sess: Session) -> Result<ConnId, Error> {
        let id = self.sessions.insert(sess)?;
        self.stats.connections = self.sessions.held();
        // Room for the notices too (see `Sessions::insert`).
        let want = 2 * self.sessions.live();
        self.notices.reserve_total(want);
        self.after_drive(id);
        Ok(id)
    }

    /// Adds a listening socket.
    pub(crate) fn add_listener(
        &mut self,
        listener: std::net::TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<SocketAddr> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut sock = TcpListener::from_std(listener);
        let index = self.listeners.len();
        self.poll
            .registry()
            .register(&mut sock, listener_token(index), Interest::READABLE)?;
        self.listeners.push(Some(Listener {
            sock,
            tls,
            retry_at: None,
            carry: false,
        }));
        Ok(addr)
    }

    /// Stops accepting: closes every listening socket.
    pub(crate) fn close_listeners(&mut self) {
        for l in self.listeners.iter_mut() {
            if let Some(mut l) = l.take() {
                if let Err(e) = self.poll.registry().deregister(&mut l.sock) {
                    log::debug!("ws-mio: deregistering a listener failed: {e}");
                }
            }
        }
    }

    /// Whether listener `index` has accepting left over (its budget ran out,
    /// or an accept error's retry time has come).
    pub(crate) fn accept_due(&mut self, index: usize) -> bool {
        let now = self.now;
        match self.listeners.get_mut(index) {
            Some(Some(l)) if l.carry => true,
            Some(Some(l)) if l.retry_at.is_some_and(|t| t <= now) => {
                l.retry_at = None;
                true
            }
            _ => false,
        }
    }

    /// Accepts from listener `index`, at most `accept_budget` connections.
    pub(crate) fn accept_from(&mut self, index: usize) {
        for _ in 0..self.options.accept_budget {
            let Some(Some(l)) = self.listeners.get_mut(index) else {
                return;
            };
            l.carry = false;
            match l.sock.accept() {
                Ok((stream, _peer)) => {
                    let tls = l.tls.clone();
                    self.add_accepted(stream, tls);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    let now = self.now;
                    l.retry_at = Some(now + ACCEPT_RETRY);
                    ws_net::log_limited!(
                        self.log.accept,
                        now,
                        log::Level::Warn,
                        "ws-mio: accept failed: {e}; retrying in {ACCEPT_RETRY:?}"
                    );
                    return;
                }
            }
        }
        if let Some(Some(l)) = self.listeners.get_mut(index) {
            l.carry = true;
        }
    }

    /// Takes in an accepted socket as a server connection. Over
    /// `max_connections` the connection is still taken in, but only so that
    /// the core can answer its upgrade request with 503 and `Retry-After`
    /// (at most [`Options::max_refusing`](crate::Options::max_refusing) such
    /// answers at a time; beyond that, and while shutting down, the socket
    /// is closed at once). Either way the client hears at once, and the
    /// next connection after a slot frees is served.
    fn add_accepted(&mut self, stream: TcpStream, tls: Option<Arc<rustls::ServerConfig>>) {
        self.stats.accepted += 1;
        let Some(refusing) = self.over_limit() else {
            return;
        };
        if self.options.nodelay {
            if let Err(e) = stream.set_nodelay(true) {
                log::debug!("ws-mio: TCP_NODELAY failed: {e}");
            }
        }
        let Some(transport) = self.server_transport(stream, tls, refusing) else {
            return;
        };
        let config = if refusing {
            &self.refusal_config
        } else {
            &self.config
        };
        let conn = Connection::server(Arc::clone(config), self.now);
        let mut sess = Session::new(conn, transport, false);
        sess.f.refusing = refusing;
        if let Err(e) = self.admit(sess) {
            log::debug!("ws-mio: connection refused: {e}");
            if !refusing {
                self.stats.refused += 1;
            }
        }
    }

    /// Whether an accepted connection is taken in (`Some`), and then
    /// whether only to be refused with 503 (`Some(true)`); `None` when it is
    /// closed at once (shutting down, or too many refusals under way).
    fn over_limit(&mut self) -> Option<bool> {
        if self.run != RunState::Running {
            self.stats.refused += 1;
            return None;
        }
        let refusing = self.sessions.held() >= self.options.max_connections;
        if refusing {
            self.stats.refused += 1;
            let (max, now) = (self.options.max_connections, self.now);
            if self.sessions.refusing() >= self.options.max_refusing {
                ws_net::log_limited!(
                    self.log.refused,
                    now,
                    log::Level::Warn,
                    "ws-mio: at max_connections ({max}) with {} refusals under way: \
                     closing new connections at once",
                    self.sessions.refusing()
                );
                return None;
            }
            ws_net::log_limited!(
                self.log.refused,
                now,
                log::Level::Warn,
                "ws-mio: at max_connections ({max}): answering 503 to new connections"
            );
        }
        Some(refusing)
    }

    /// The transport of an accepted socket: plain, or a TLS server session
    /// (`None` when rustls refuses to start one).
    fn server_transport(
        &mut self,
        stream: TcpStream,
        tls: Option<Arc<rustls::ServerConfig>>,
        refusing: bool,
    ) -> Option<Transport> {
        let Some(cfg) = tls else {
            return Some(Transport::Plain(stream));
        };
        match rustls::ServerConnection::new(cfg) {
            Ok(c) => Some(Transport::tls(stream, rustls::Connection::Server(c))),
            Err(e) => {
                let now = self.now;
                ws_net::log_limited!(
                    self.log.tls,
                    now,
                    log::Level::Warn,
                    "ws-mio: TLS server session failed: {e}"
                );
                if !refusing {
                    self.stats.refused += 1;
                }
                None
            }
        }
    }

    /// Answers the upgrade request of a connection taken in over
    /// `max_connections`: 503 with `Retry-After` (the core writes the
    /// response and closes).
    pub(crate) fn refuse(&mut self, id: ConnId) {
        let headers = [("Retry-After".to_string(), RETRY_AFTER_SECS.to_string())];
        let body = b"server at its connection limit; retry later";
        if let Some((sess, lists)) = self.sessions.get_mut(id) {
            if let Err(e) = sess.conn.reject(503, &headers, body) {
                log::debug!("ws-mio: refusing {id}: {e}");
            }
            lists.mark_dirty(id, sess);
        }
    }

    /// Opens a client connection (`ws://` or `wss://`).
    pub(crate) fn connect(&mut self, url: &str, opts: ConnectOptions) -> Result<ConnId, Error> {
        if self.run != RunState::Running || self.want_stop || self.want_shutdown.is_some() {
            return Err(Error::ShuttingDown);
        }
        if self.sessions.held() >= self.options.max_connections {
            return Err(Error::TooManyConnections);
        }
        // Everything that can be refused locally is refused before a name
        // is resolved or a socket exists: the URL, then the request
        // (assembled, edited by the hook and validated by
        // `RequestOptions::build`, and checked again by the core).
        let url = WsUrl::parse(url)?;
        let attempts = ws_net::Attempts::new(url, opts.request.clone());
        let (conn, transport, phase) = self.open_attempt(&attempts, &opts)?;
        let mut session = Session::new(conn, transport, true);
        session.f.proxying = phase.is_some();
        let id = self.admit(session)?;
        // Both entries go when the connection opens or ends (dispatch).
        if let Some(phase) = phase {
            self.proxies.insert(id, phase);
        }
        if opts.request.max_redirects > 0 {
            self.follows.insert(id, Box::new(Follow { attempts, opts }));
        }
        Ok(id)
    }

    /// One attempt of a client connection ([`ws_net::Attempts`], shared by
    /// every driver: the request of the current URL, its proxy): the core's
    /// connection, the transport (TCP connect started) and the proxy
    /// handshake to run first, if any. Name resolution blocks the loop
    /// (pass [`ConnectOptions::addr`] or an IP URL to avoid it).
    fn open_attempt(
        &mut self,
        attempts: &ws_net::Attempts,
        opts: &ConnectOptions,
    ) -> Result<(Connection, Transport, Option<Box<ProxyPhase>>), Error> {
        let url = attempts.url();
        let request = attempts.request()?;
        let addr_given = opts.addr.filter(|_| attempts.on_first_origin());
        let proxy = attempts
            .proxy(addr_given.is_some())
            .map_err(|error| Error::Proxy {
                proxy: error.proxy_label(None),
                error,
            })?;
        let phase = match proxy {
            Some(p) if p.scheme() == ProxyScheme::Https => {
                return Err(Error::Proxy {
                    proxy: p.to_string(),
                    error: ProxyError::Unsupported(
                        "TLS to the proxy (https:// proxy URLs) is not supported by ws-mio yet; use an http:// or socks5:// proxy".into(),
                    ),
                });
            }
            Some(p) => {
                let hs = ProxyHandshake::new(&p, url.host(), url.port()).map_err(|error| {
                    Error::Proxy {
                        proxy: p.to_string(),
                        error,
                    }
                })?;
                Some(Box::new(ProxyPhase {
                    proxy: p,
                    hs,
                    out: Vec::new(),
                    tcp_done: false,
                }))
            }
            None => None,
        };
        let config = opts
            .config
            .clone()
            .map_or_else(|| Arc::clone(&self.config), Arc::new);
        let conn = Connection::client(config, &request, self.now)?;
        let tls = match (url.is_secure(), &opts.tls) {
            (false, _) => None,
            (true, Some(cfg)) => Some(cfg.clone()),
            (true, None) => Some(self.default_client_tls()?),
        };
        let tls = match tls {
            Some(cfg) => Some(ws_net::tls::client_connection(cfg, url.host())?),
            None => None,
        };
        let addr = match &phase {
            Some(p) => resolve(p.proxy.host(), p.proxy.ip(), p.proxy.port(), None)?,
            None => resolve(url.host(), url.ip(), url.port(), addr_given)?,
        };
        let stream = net::start_connect(addr, opts.bind)?;
        if self.options.nodelay {
            if let Err(e) = stream.set_nodelay(true) {
                log::debug!("ws-mio: TCP_NODELAY failed: {e}");
            }
        }
        let transport = match tls {
            Some(c) => Transport::tls(stream, rustls::Connection::Client(c)),
            None => Transport::Plain(stream),
        };
        Ok((conn, transport, phase))
    }

    /// A client connection ended with `closed`: when that is a redirect to
    /// follow ([`ws_net::Attempts::redirected`], the one policy of every
    /// driver), the same connection id starts its next attempt and `None`
    /// is returned (the application sees nothing but the final outcome);
    /// otherwise the `Closed` to deliver (a redirect that must not be
    /// followed, or a next attempt that cannot start, becomes its error).
    pub(crate) fn follow_redirect(&mut self, id: ConnId, mut closed: Closed) -> Option<Closed> {
        let Some(mut follow) = self.follows.remove(&id) else {
            return Some(closed);
        };
        let Some(ConnectionError::Handshake(h)) = &closed.error else {
            return Some(closed);
        };
        let fail = |m: String| {
            Some(ConnectionError::Io(TransportError::new(
                io::ErrorKind::Other,
                m,
            )))
        };
        match follow.attempts.redirected(h) {
            Ok(false) => return Some(closed),
            Err(e) => {
                closed.error = fail(e.to_string());
                return Some(closed);
            }
            Ok(true) => {}
        }
        let next = self.open_attempt(&follow.attempts, &follow.opts);
        let (conn, transport, phase) = match next {
            Ok(parts) => parts,
            Err(e) => {
                closed.error = fail(format!("redirect to {}: {e}", follow.attempts.url()));
                return Some(closed);
            }
        };
        log::debug!("ws-mio: {id} redirected to {}", follow.attempts.url());
        let registry = self.poll.registry();
        let Some((sess, lists)) = self.sessions.get_mut(id) else {
            return Some(closed);
        };
        if sess.interest.take().is_some() {
            if let Err(e) = registry.deregister(sess.transport.socket_mut()) {
                log::debug!("ws-mio: deregister failed: {e}");
            }
        }
        sess.conn = conn;
        sess.transport = transport;
        sess.pending = None;
        sess.pending_payload = Bytes::new();
        sess.f.connecting = true;
        sess.f.eof = false;
        sess.f.write_blocked = false;
        sess.f.proxying = phase.is_some();
        lists.mark_dirty(id, sess);
        if let Some(phase) = phase {
            self.proxies.insert(id, phase);
        }
        self.follows.insert(id, follow);
        None
    }

    /// The default client TLS configuration, built once per loop.
    fn default_client_tls(&mut self) -> Result<Arc<rustls::ClientConfig>, Error> {
        if let Some(c) = &self.client_tls {
            return Ok(c.clone());
        }
        let c = tls::default_client_config()?;
        self.client_tls = Some(c.clone());
        Ok(c)
    }
}

/// The address to connect to: the one given, the host's IP, or the first
/// the host (the URL's or the proxy's) resolves to (blocking).
fn resolve(
    host: &str,
    ip: Option<IpAddr>,
    port: u16,
    given: Option<SocketAddr>,
) -> Result<SocketAddr, Error> {
    if let Some(a) = given {
        return Ok(a);
    }
    if let Some(ip) = ip {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        Error::Io(io::Error::new(
            io::ErrorKind::NotFound,
            format!("host {host:?} resolves to no address"),
        ))
    })
}
