//! The blocking API: [`connect`], [`accept`], and [`WebSocket`] with its
//! [`split`](WebSocket::split) halves.

use std::fmt;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::ServerConfig;
use ws_proto::{
    Accept, ClientRequest, CloseCode, Closed, Config, Connection, DeflateConfig, Event, Fragment,
    Message, MessageKind, OpenInfo, State, Stats, UpgradeRequest,
};

use crate::driver::{Reader, Shared};
use crate::logctx::{wslog, ConnId};
use crate::tls::{self, TlsClientOptions};
use crate::{Error, Timeout};
use ws_net::url::WsUrl;

/// How long a split reader (or the event client's IO thread) waits on the
/// socket at most before looking at deadlines another thread may have set.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// A hook that edits the upgrade request before it is sent.
pub type RequestHook = Arc<dyn Fn(&mut ClientRequest) + Send + Sync>;

/// How a client connects: protocol configuration, what goes into the
/// upgrade request, TLS, and socket timeouts.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The protocol core's configuration (limits, fragment size, timers,
    /// permessage-deflate). `handshake_timeout` bounds the whole connection
    /// attempt: TCP connect, TLS handshake and HTTP upgrade.
    pub config: Config,
    /// The `Origin` header (visible ASCII, e.g. `https://app.example`).
    pub origin: Option<String>,
    /// Subprotocols offered, in order of preference (each a token).
    pub protocols: Vec<String>,
    /// Extra request headers: token names, values without control bytes,
    /// and none the handshake writes itself (`Host`, `Origin`,
    /// `Sec-WebSocket-*`...). An invalid one fails the connection attempt
    /// before any socket is opened.
    pub headers: Vec<(String, String)>,
    /// TLS settings for `wss://`.
    pub tls: TlsClientOptions,
    /// Limit for the TCP connect alone (default: only the handshake
    /// timeout applies).
    pub connect_timeout: Option<Duration>,
    /// Socket write timeout (default none: a write blocks until the peer
    /// reads). When it passes, the connection fails.
    pub write_timeout: Option<Duration>,
    /// Connect to this address instead of resolving the URL's host (the
    /// host still gives the `Host` header, the TLS SNI and the name the
    /// certificate must match).
    pub connect_to: Option<SocketAddr>,
    /// Called with the upgrade request before the connection is made; what
    /// it leaves is validated like the rest.
    pub request_hook: Option<RequestHook>,
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("config", &self.config)
            .field("origin", &self.origin)
            .field("protocols", &self.protocols)
            .field("headers", &self.headers)
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("connect_to", &self.connect_to)
            .field("request_hook", &self.request_hook.is_some())
            .finish()
    }
}

impl ClientOptions {
    /// Sets the protocol configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }
    /// Turns permessage-deflate on (with these parameters) or off.
    pub fn deflate(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.config.deflate = deflate;
        self
    }
    /// Sets the `Origin` header.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }
    /// Offers a subprotocol.
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }
    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Sets the TLS options.
    pub fn tls(mut self, tls: TlsClientOptions) -> Self {
        self.tls = tls;
        self
    }
    /// Limits the TCP connect.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = Some(d);
        self
    }
    /// Sets the socket write timeout.
    pub fn write_timeout(mut self, d: Option<Duration>) -> Self {
        self.write_timeout = d;
        self
    }
    /// Connects to `addr` instead of resolving the host.
    pub fn connect_to(mut self, addr: SocketAddr) -> Self {
        self.connect_to = Some(addr);
        self
    }
    /// Edits the upgrade request just before it is sent (e.g. to add
    /// `Authorization`).
    pub fn request_hook(
        mut self,
        hook: impl Fn(&mut ClientRequest) + Send + Sync + 'static,
    ) -> Self {
        self.request_hook = Some(Arc::new(hook));
        self
    }
}

/// A server's answer to an upgrade request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpgradeResponse {
    /// Accept, with an optional subprotocol and extra headers.
    Accept(Accept),
    /// Refuse with an HTTP status (not 101), headers and a body.
    Reject {
        /// The HTTP status.
        status: u16,
        /// Extra response headers.
        headers: Vec<(String, String)>,
        /// The response body.
        body: Vec<u8>,
    },
}

impl UpgradeResponse {
    /// Accept without a subprotocol.
    pub fn accept() -> Self {
        UpgradeResponse::Accept(Accept::new())
    }
    /// Accept with this subprotocol (it must be one the client offered).
    pub fn accept_protocol(protocol: impl Into<String>) -> Self {
        UpgradeResponse::Accept(Accept::new().protocol(protocol))
    }
    /// Refuse with `status` and `body`.
    pub fn reject(status: u16, body: impl Into<Vec<u8>>) -> Self {
        UpgradeResponse::Reject {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

/// The server application's upgrade decision: inspect path, headers, origin
/// and offered subprotocols, then accept or reject.
pub type UpgradeCallback = Arc<dyn Fn(&UpgradeRequest) -> UpgradeResponse + Send + Sync>;

/// How a server accepts connections.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ServerOptions {
    /// The protocol core's configuration; `handshake_timeout` bounds the TLS
    /// handshake and the HTTP upgrade together.
    pub config: Config,
    /// TLS, when set (see [`server_config_from_pem`](crate::server_config_from_pem)).
    pub tls: Option<Arc<ServerConfig>>,
    /// Socket write timeout (default none).
    pub write_timeout: Option<Duration>,
    /// The upgrade decision (default: accept without a subprotocol).
    pub on_upgrade: Option<UpgradeCallback>,
    /// Origin allow-list (default `None`: every origin, and none, is
    /// accepted). When set, a request whose `Origin` header is missing or
    /// not in the list (compared ASCII case-insensitively) is refused with
    /// 403 before `on_upgrade` runs. Browsers always send `Origin`, so this
    /// stops other sites' pages from opening connections with the user's
    /// cookies (cross-site WebSocket hijacking); non-browser clients can
    /// send any `Origin` and must be authenticated by other means.
    pub allowed_origins: Option<Vec<String>>,
}

impl fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerOptions")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .field("write_timeout", &self.write_timeout)
            .field("on_upgrade", &self.on_upgrade.is_some())
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

impl ServerOptions {
    /// Sets the protocol configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }
    /// Serves TLS with this configuration.
    pub fn tls(mut self, tls: Arc<ServerConfig>) -> Self {
        self.tls = Some(tls);
        self
    }
    /// Sets the socket write timeout.
    pub fn write_timeout(mut self, d: Option<Duration>) -> Self {
        self.write_timeout = d;
        self
    }
    /// Sets the upgrade decision.
    pub fn on_upgrade(
        mut self,
        f: impl Fn(&UpgradeRequest) -> UpgradeResponse + Send + Sync + 'static,
    ) -> Self {
        self.on_upgrade = Some(Arc::new(f));
        self
    }
    /// Accepts only requests whose `Origin` is one of `origins` (e.g.
    /// `"https://app.example"`); others get 403 (see
    /// [`allowed_origins`](Self::allowed_origins)).
    pub fn allow_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }
}

/// What [`WebSocket::recv`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// A whole message.
    Message(Message),
    /// A data frame (only with `Config::streaming`).
    Fragment(Fragment),
    /// A ping (already answered when `Config::auto_pong` is on).
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// The connection ended without error (closing handshake, or the peer's
    /// close frame then TCP close). Later calls return [`Error::Closed`].
    Closed(Closed),
}

/// A WebSocket connection over a `TcpStream`, used like one: `recv` blocks
/// until something arrives, `send` until the bytes are written.
///
/// `recv` also runs the protocol's timers (keepalive pings, idle, close
/// timeouts): their next deadline is the socket's read timeout. A
/// connection that is never read from does not answer pings.
///
/// A connection ends with `Ok(Received::Closed(..))` when it closed without
/// error, or with `Err(e)` saying what went wrong; either way later calls
/// return [`Error::Closed`].
pub struct WebSocket {
    reader: WsReader,
    writer: WsWriter,
    info: OpenInfo,
    request: Option<UpgradeRequest>,
    tls_server_name: Option<String>,
}

/// The reading half of a [`split`](WebSocket::split) connection.
pub struct WsReader {
    shared: Arc<Shared>,
    reader: Reader,
}

/// The writing half of a [`split`](WebSocket::split) connection; clone it to
/// send from several threads.
#[derive(Clone)]
pub struct WsWriter {
    shared: Arc<Shared>,
}

/// Connects to a `ws://` or `wss://` URL and completes the opening
/// handshake.
///
/// Before anything is resolved or connected, the URL is parsed
/// ([`ws_net::url::WsUrl`]) and the upgrade request assembled and validated
/// ([`ws_net::request::client_request`], then the core): a bad URL is
/// [`Error::InvalidUrl`], a header, origin, subprotocol or path that could
/// add a header line or break the request line is [`Error::Command`] with
/// [`ws_proto::Error::InvalidRequest`] naming the field
/// ([`Error::invalid_request`]).
///
/// Then fails with [`Error::Resolve`], [`Error::Connect`], [`Error::Tls`],
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

impl WebSocket {
    /// Waits for the next message, fragment, ping, pong, or the end of the
    /// connection.
    pub fn recv(&mut self) -> Result<Received, Error> {
        self.reader.recv()
    }

    /// Sends a whole message (split into frames of `Config::fragment_size`).
    pub fn send(&self, kind: MessageKind, data: impl Into<Bytes>) -> Result<(), Error> {
        self.writer.send(kind, data)
    }

    /// Sends a text message.
    pub fn send_text(&self, text: &str) -> Result<(), Error> {
        self.writer.send_text(text)
    }

    /// Sends a binary message.
    pub fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.writer.send_binary(data)
    }

    /// Sends one fragment of a message (see
    /// [`Connection::send_fragment`]).
    pub fn send_fragment(
        &self,
        kind: MessageKind,
        data: impl Into<Bytes>,
        fin: bool,
    ) -> Result<(), Error> {
        self.writer.send_fragment(kind, data, fin)
    }

    /// Sends a ping.
    pub fn ping(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.writer.ping(payload)
    }

    /// Sends an unsolicited pong.
    pub fn pong(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.writer.pong(payload)
    }

    /// Starts the closing handshake; keep calling [`recv`](Self::recv) until
    /// it returns the end of the connection.
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.writer.close(code, reason)
    }

    /// Splits the connection into a reader and a writer that can be used
    /// from two threads: a reader blocked in `recv` never holds a lock, so
    /// the writer is never blocked by it. For `wss://` both share one rustls
    /// session behind a lock that is never held during socket IO.
    pub fn split(self) -> (WsReader, WsWriter) {
        let mut reader = self.reader;
        reader.reader.set_tick(Some(TICK));
        (reader, self.writer)
    }

    /// A writer for this connection, usable from other threads while this
    /// one reads (equivalent to the writer of [`split`](Self::split)).
    pub fn writer(&mut self) -> WsWriter {
        self.reader.reader.set_tick(Some(TICK));
        self.writer.clone()
    }

    /// What was agreed in the handshake (subprotocol, extensions, and for a
    /// client the response headers).
    pub fn open_info(&self) -> &OpenInfo {
        &self.info
    }

    /// Server side: the client's upgrade request.
    pub fn request(&self) -> Option<&UpgradeRequest> {
        self.request.as_ref()
    }

    /// Server side over TLS: the SNI name the client asked for.
    pub fn tls_server_name(&self) -> Option<&str> {
        self.tls_server_name.as_deref()
    }

    /// The connection's life-cycle state.
    pub fn state(&self) -> State {
        self.writer.state()
    }

    /// Whether messages can be sent.
    pub fn is_open(&self) -> bool {
        self.writer.is_open()
    }

    /// Payload bytes accepted by `send` and not yet handed to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.writer.buffered_amount()
    }

    /// Bytes of receive memory the core holds for this connection (its
    /// receive and reassembly buffers, [`Connection::retained_bytes`]):
    /// bounded by the [`Limits`](ws_proto::Limits) whatever the peer sends.
    /// The driver adds at most a 16 KiB read buffer and the 64 KiB wire
    /// queue.
    pub fn retained_bytes(&self) -> usize {
        self.writer.retained_bytes()
    }

    /// The latest ping round trip.
    pub fn latency(&self) -> Option<Duration> {
        self.writer.latency()
    }

    /// When the last frame arrived.
    pub fn last_message_received(&self) -> Option<Instant> {
        self.writer.last_message_received()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.writer.stats()
    }

    /// The connection id shown on its log lines (`[ws#N]`).
    pub fn id(&self) -> ConnId {
        self.writer.id()
    }
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("id", &self.id())
            .field("state", &self.state())
            .field("protocol", &self.info.protocol)
            .finish_non_exhaustive()
    }
}

impl WsReader {
    /// Waits for the next message, fragment, ping, pong, or the end of the
    /// connection (see [`WebSocket::recv`]).
    pub fn recv(&mut self) -> Result<Received, Error> {
        // Each round returns unless the core hands out an event this API
        // does not surface (none after the handshake).
        loop {
            let Some(ev) = self.reader.next_event(&self.shared) else {
                return Err(Error::Closed);
            };
            return Ok(match ev {
                Event::Message(m) => Received::Message(m),
                Event::Fragment(f) => Received::Fragment(f),
                Event::Ping(p) => Received::Ping(p),
                Event::Pong(p) => Received::Pong(p),
                Event::Closed(c) => {
                    let detail = self.shared.core().take_failure();
                    self.shared.finish(Duration::from_millis(100));
                    return match Error::from_closed(&c, detail) {
                        Some(e) => Err(e),
                        None => Ok(Received::Closed(c)),
                    };
                }
                _ => continue,
            });
        }
    }

    /// The connection id.
    pub fn id(&self) -> ConnId {
        self.shared.id
    }

    /// Fails the connection after a panic in application code (see
    /// [`Shared::fail`]).
    pub(crate) fn fail(&mut self, limit: Duration) {
        self.shared.fail(&mut self.reader, limit);
    }
}

impl fmt::Debug for WsReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsReader")
            .field("id", &self.shared.id)
            .finish_non_exhaustive()
    }
}

impl WsWriter {
    /// Sends a whole message; returns once it is written (or queued behind
    /// another thread's write).
    pub fn send(&self, kind: MessageKind, data: impl Into<Bytes>) -> Result<(), Error> {
        let data = data.into();
        self.command(|c| c.send(kind, data))
    }

    /// Sends a text message.
    pub fn send_text(&self, text: &str) -> Result<(), Error> {
        self.command(|c| c.send_text(text))
    }

    /// Sends a binary message.
    pub fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        let data = data.into();
        self.command(|c| c.send_binary(data))
    }

    /// Sends one fragment of a message.
    pub fn send_fragment(
        &self,
        kind: MessageKind,
        data: impl Into<Bytes>,
        fin: bool,
    ) -> Result<(), Error> {
        let data = data.into();
        self.command(|c| c.send_fragment(kind, data, fin))
    }

    /// Sends a ping.
    pub fn ping(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        self.command(|c| c.ping(payload))
    }

    /// Sends an unsolicited pong.
    pub fn pong(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        self.command(|c| c.pong(payload))
    }

    /// Starts the closing handshake.
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        wslog!(Debug, self.shared.id, "closing with {code} {reason:?}");
        self.command(|c| c.close(code, reason))
    }

    fn command(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<(), ws_proto::Error>,
    ) -> Result<(), Error> {
        self.shared
            .step(true, |core, _| f(&mut core.conn))
            .map_err(Error::from)
    }

    /// The connection's life-cycle state.
    pub fn state(&self) -> State {
        self.shared.core().conn.state()
    }

    /// Whether messages can be sent.
    pub fn is_open(&self) -> bool {
        self.state() == State::Open
    }

    /// Payload bytes accepted by `send` and not yet handed to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.shared.core().conn.buffered_amount()
    }

    /// Bytes of receive memory the core holds for this connection (see
    /// [`WebSocket::retained_bytes`]).
    pub fn retained_bytes(&self) -> usize {
        self.shared.core().conn.retained_bytes()
    }

    /// The latest ping round trip.
    pub fn latency(&self) -> Option<Duration> {
        self.shared.core().conn.latency()
    }

    /// When the last frame arrived.
    pub fn last_message_received(&self) -> Option<Instant> {
        self.shared.core().conn.last_message_received()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.shared.core().conn.stats()
    }

    /// The connection id.
    pub fn id(&self) -> ConnId {
        self.shared.id
    }

    pub(crate) fn shared_arc(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

impl fmt::Debug for WsWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsWriter")
            .field("id", &self.shared.id)
            .finish_non_exhaustive()
    }
}

// ----- connection set-up ---------------------------------------------------

/// The upgrade request `options` ask for on `url`, assembled and validated
/// by [`ws_net::request::client_request`], then edited by the request hook
/// and checked again by the core: the protocol connection is made here,
/// before any socket exists, so an invalid request never reaches one.
pub(crate) fn client_connection(
    url: &WsUrl,
    options: &ClientOptions,
    start: Instant,
) -> Result<Connection, Error> {
    let mut request = ws_net::request::client_request(
        url,
        options.origin.as_deref(),
        &options.protocols,
        &options.headers,
    )?;
    if let Some(hook) = &options.request_hook {
        hook(&mut request);
    }
    Ok(Connection::client(options.config.clone(), &request, start)?)
}

/// The client side of [`connect`], with a chosen id (the event client logs
/// under its own id from the start).
pub(crate) fn connect_url(
    url: &WsUrl,
    options: &ClientOptions,
    id: ConnId,
) -> Result<WebSocket, Error> {
    let start = Instant::now();
    let deadline = start + options.config.handshake_timeout;
    // Everything that can be refused locally is refused before a socket
    // exists. The core's handshake timer starts with the attempt, so
    // `handshake_timeout` bounds connect + TLS + upgrade together.
    let conn = client_connection(url, options, start)?;
    let tls_config = if url.is_secure() {
        Some(options.tls.build()?)
    } else {
        None
    };
    wslog!(Debug, id, "connecting to {url}");
    let addrs = match options.connect_to {
        Some(a) => vec![a],
        None => resolve(url)?,
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
    let mut halves = Halves::start(id, sock, conn, tls)?;
    match halves.reader.reader.next_event(&halves.writer.shared) {
        Some(Event::Open(info)) => Ok(halves.open(*info, None)),
        other => Err(halves.handshake_failed(other, log::Level::Info)),
    }
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
    let mut halves = Halves::start(id, stream, conn, tls)?;
    register(&halves.writer.shared);
    let ev = halves.reader.reader.next_event(&halves.writer.shared);
    let Some(Event::UpgradeRequest(req)) = ev else {
        return Err(halves.handshake_failed(ev, outcome));
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
    let shared = halves.writer.shared.clone();
    let answered = match decision {
        UpgradeResponse::Accept(a) => shared.step(true, |core, _| core.conn.accept(a)),
        UpgradeResponse::Reject {
            status,
            headers,
            body,
        } => {
            log::log!(target: "ws_std", outcome, "{id} rejecting the upgrade with {status}");
            shared.step(true, |core, _| core.conn.reject(status, &headers, &body))
        }
    };
    if let Err(e) = answered {
        // The application's answer was invalid (unoffered subprotocol, bad
        // header or status): refuse with 500 and report its mistake.
        wslog!(Warn, id, "invalid upgrade answer: {e}");
        let _ = shared.step(true, |core, _| {
            core.conn.reject(500, &[], b"Internal Server Error")
        });
        let _ = halves.reader.reader.next_event(&shared);
        shared.finish(Duration::ZERO);
        return Err(Error::Command(e));
    }
    match halves.reader.reader.next_event(&shared) {
        Some(Event::Open(info)) => Ok(halves.open(*info, Some(*req))),
        other => Err(halves.handshake_failed(other, outcome)),
    }
}

/// A connection during its opening handshake.
struct Halves {
    reader: WsReader,
    writer: WsWriter,
    tls_server_name: Option<String>,
}

impl Halves {
    fn start(
        id: ConnId,
        sock: TcpStream,
        conn: Connection,
        tls: Option<rustls::Connection>,
    ) -> Result<Halves, Error> {
        let write_half = sock.try_clone().map_err(Error::Io)?;
        let shared = Arc::new(Shared::new(id, write_half, conn, tls));
        let tls_server_name = shared.core().tls_server_name();
        // Send the request (client) and hand over any plaintext that
        // arrived with the TLS handshake.
        shared.step(true, |core, now| core.pull_plaintext(now));
        Ok(Halves {
            reader: WsReader {
                shared: shared.clone(),
                reader: Reader::new(sock),
            },
            writer: WsWriter { shared },
            tls_server_name,
        })
    }

    fn open(self, info: OpenInfo, request: Option<UpgradeRequest>) -> WebSocket {
        wslog!(
            Info,
            self.writer.shared.id,
            "open (subprotocol {:?}, extensions {:?})",
            info.protocol,
            info.extensions
        );
        WebSocket {
            reader: self.reader,
            writer: self.writer,
            info,
            request,
            tls_server_name: self.tls_server_name,
        }
    }

    /// The error for a handshake that ended with `ev` instead of `Open`
    /// (logged at `level`).
    fn handshake_failed(&mut self, ev: Option<Event>, level: log::Level) -> Error {
        let shared = &self.writer.shared;
        // Drain to the terminal event if it has not come yet.
        let mut ev = ev;
        for _ in 0..4 {
            match ev {
                Some(Event::Closed(_)) | None => break,
                _ => ev = self.reader.reader.next_event(shared),
            }
        }
        let detail = shared.core().take_failure();
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

/// Resolves the URL's host. Names in the `.invalid` top-level domain fail
/// at once, without asking the resolver (RFC 6761 §6.4).
fn resolve(url: &WsUrl) -> Result<Vec<SocketAddr>, Error> {
    if let Some(ip) = url.ip() {
        return Ok(vec![SocketAddr::new(ip, url.port())]);
    }
    let fail = |source| Error::Resolve {
        host: url.host().to_string(),
        source,
    };
    let name = url.host().trim_end_matches('.');
    if name == "invalid" || name.ends_with(".invalid") {
        return Err(fail(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "names under .invalid never resolve (RFC 6761)",
        )));
    }
    let addrs: Vec<SocketAddr> = (url.host(), url.port())
        .to_socket_addrs()
        .map_err(fail)?
        .collect();
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
