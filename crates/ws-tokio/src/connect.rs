//! The client's way in from a URL: [`connect`] and [`connect_with`], over TCP and, for
//! `wss://`, tokio-rustls.
//!
//! Nothing here is ws-tokio's own: the URL is parsed by [`ws_net::url::WsUrl`], the upgrade
//! request is assembled, edited by the request hook and validated by
//! [`ws_net::request::RequestOptions::build`], and the rustls configuration comes from
//! [`ws_net::tls`] (explicit *ring* provider). This module only resolves, connects, runs the TLS handshake and hands
//! the stream to the same handshake routine as [`client`](crate::client).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use ws_net::proxy::{
    ProxyError, ProxyHandshake, ProxyScheme, ProxyStep, ProxyUrl, MAX_HTTP_ANSWER,
};
use ws_net::url::WsUrl;
use ws_proto::{Config, Connection, ConnectionError, DeflateConfig};

use crate::driver::now;
use crate::{Error, WebSocketStream};

pub use ws_net::request::{RequestHook, RequestOptions};

/// How [`connect_with`] connects: the protocol configuration, what goes into the upgrade
/// request, TLS, and where to connect.
///
/// What goes into the upgrade request (origin, subprotocols, extra headers, the request hook)
/// is the [`RequestOptions`] every driver shares, in [`request`](Self::request); its fields stay
/// reachable as before (`options.origin`, `options.headers`...) through `Deref`.
///
/// ```
/// use ws_tokio::{ConnectOptions, DeflateConfig};
///
/// let options = ConnectOptions::default()
///     .protocol("chat.v2")
///     .header("Authorization", "Bearer t0k3n")
///     .origin("https://app.example")
///     .deflate(Some(DeflateConfig::default()))
///     .request_hook(|req| req.headers.push(("X-Request-Id".into(), "42".into())));
/// # drop(options);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The core's configuration (limits, timers, permessage-deflate). `handshake_timeout`
    /// bounds the whole attempt: name resolution, TCP connect, TLS handshake and upgrade.
    pub config: Config,
    /// The upgrade request's origin, subprotocols, extra headers and hook; checked (what the
    /// hook leaves too) before anything is connected.
    pub request: RequestOptions,
    /// TLS settings for `wss://`.
    pub tls: TlsOptions,
    /// Connect to this address instead of resolving the URL's host (the host still gives the
    /// `Host` header, the TLS server name and the name the certificate must match).
    pub connect_to: Option<SocketAddr>,
}

ws_net::forward_request_options!(ConnectOptions => request);

impl ConnectOptions {
    /// Replaces the core's configuration (set it before [`deflate`](Self::deflate)).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }
    /// Offers permessage-deflate with these parameters, or nothing (the default).
    pub fn deflate(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.config.deflate = deflate;
        self
    }
    /// Sets the TLS options for `wss://`.
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }
    /// Connects to `addr` instead of resolving the host.
    pub fn connect_to(mut self, addr: SocketAddr) -> Self {
        self.connect_to = Some(addr);
        self
    }
}

/// TLS settings of a `wss://` connection: the trusted roots, extra trusted certificates, or a
/// complete rustls [`ClientConfig`].
///
/// By default the platform's trust store is trusted ([`ws_net::tls::platform_roots`]);
/// [`webpki_roots`](Self::webpki_roots) picks the bundled Mozilla roots instead. Configurations are built
/// by [`ws_net::tls::client_config`]: the *ring* provider, TLS 1.2 and 1.3, ALPN `http/1.1`.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TlsOptions {
    /// The root store; `None` (the default) is the platform's trust store.
    pub roots: Option<RootCertStore>,
    /// Certificates trusted in addition to the roots (e.g. a self-signed test certificate).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// A complete configuration; when set, `roots` and `extra_roots` are not used. Build it
    /// with the provider of your choice.
    pub config: Option<Arc<ClientConfig>>,
}

impl TlsOptions {
    /// Trusts the bundled webpki roots (Mozilla's program) instead of the platform's store.
    pub fn webpki_roots(mut self) -> Self {
        self.roots = Some(ws_net::tls::webpki_roots());
        self
    }
    /// Trusts exactly this root store (plus the extra roots) instead of the platform's.
    pub fn root_store(mut self, store: RootCertStore) -> Self {
        self.roots = Some(store);
        self
    }
    /// Also trusts this DER-encoded certificate.
    pub fn add_root_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(CertificateDer::from(der.into()));
        self
    }
    /// Also trusts every `CERTIFICATE` in this PEM text; fails with [`Error::TlsConfig`] when
    /// there is none or the PEM is malformed.
    pub fn add_root_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        self.extra_roots
            .extend(ws_net::tls::certs_from_pem(pem).map_err(Error::from)?);
        Ok(self)
    }
    /// Uses this complete rustls configuration.
    pub fn config(mut self, config: Arc<ClientConfig>) -> Self {
        self.config = Some(config);
        self
    }

    /// The rustls configuration to connect with.
    pub(crate) fn build(&self) -> Result<Arc<ClientConfig>, Error> {
        if let Some(c) = &self.config {
            return Ok(Arc::clone(c));
        }
        match &self.roots {
            Some(r) => Ok(ws_net::tls::client_config(r.clone(), &self.extra_roots)?),
            None => Ok(ws_net::tls::platform_client_config(&self.extra_roots)?),
        }
    }
}

/// The stream under a connection made by [`connect`]: plain TCP for `ws://`, TLS over TCP for
/// `wss://` (through an `http://` or SOCKS5 proxy too: the tunnel is the TCP stream), and
/// through an `https://` proxy, TLS to the proxy under the rest.
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// `ws://` through an `https://` proxy: TLS to the proxy, the tunnel inside.
    ProxyTls(Box<ProxyTlsStream>),
    /// `wss://` through an `https://` proxy: the server's TLS inside the proxy's.
    TlsInProxyTls(Box<tokio_rustls::client::TlsStream<ProxyTlsStream>>),
}

/// TLS to an `https://` proxy (see [`MaybeTlsStream::ProxyTls`]).
pub type ProxyTlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Runs `$e` on whichever stream `$s` (a `&mut MaybeTlsStream`) holds, as `$x: Pin<&mut _>`.
macro_rules! each {
    ($s:expr, $x:ident => $e:expr) => {
        match $s {
            MaybeTlsStream::Plain(s) => {
                let $x = Pin::new(s);
                $e
            }
            MaybeTlsStream::Tls(s) | MaybeTlsStream::ProxyTls(s) => {
                let $x = Pin::new(s.as_mut());
                $e
            }
            MaybeTlsStream::TlsInProxyTls(s) => {
                let $x = Pin::new(s.as_mut());
                $e
            }
        }
    };
}

impl MaybeTlsStream {
    /// The socket of a `ws://` connection without a TLS proxy (see
    /// [`WebSocketStream::wake_on_whole_frames`]).
    pub(crate) fn plain_socket(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match self {
            MaybeTlsStream::Plain(s) => Some(std::os::fd::AsFd::as_fd(s)),
            _ => None,
        }
    }

    /// The TCP stream (for its addresses and socket options).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTlsStream::Plain(s) => s,
            MaybeTlsStream::Tls(s) | MaybeTlsStream::ProxyTls(s) => s.get_ref().0,
            MaybeTlsStream::TlsInProxyTls(s) => s.get_ref().0.get_ref().0,
        }
    }

    /// The TLS session with the server, for `wss://` (negotiated version, ALPN, the server's
    /// certificates); never the proxy's.
    pub fn tls(&self) -> Option<&rustls::ClientConnection> {
        match self {
            MaybeTlsStream::Plain(_) | MaybeTlsStream::ProxyTls(_) => None,
            MaybeTlsStream::Tls(s) => Some(s.get_ref().1),
            MaybeTlsStream::TlsInProxyTls(s) => Some(s.get_ref().1),
        }
    }
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(s) => s.is_write_vectored(),
            MaybeTlsStream::Tls(s) | MaybeTlsStream::ProxyTls(s) => s.is_write_vectored(),
            MaybeTlsStream::TlsInProxyTls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // TLS: sends close_notify, then shuts the TCP write side down.
        each!(self.get_mut(), s => s.poll_shutdown(cx))
    }
}

/// Connects to a `ws://` or `wss://` URL with the default options (no subprotocol, no
/// permessage-deflate, the platform's trust store for `wss://`). See [`connect_with`].
pub async fn connect(url: &str) -> Result<WebSocketStream<MaybeTlsStream>, Error> {
    connect_with(url, &ConnectOptions::default()).await
}

/// Connects to a `ws://` or `wss://` URL: parses it, builds and validates the upgrade request,
/// resolves the host (or uses [`ConnectOptions::connect_to`]), connects over TCP (`TCP_NODELAY`
/// on), runs the TLS handshake for `wss://`, then the opening handshake.
///
/// Everything that can be refused locally is refused **before any name is resolved or socket
/// opened**: an invalid URL is [`Error::InvalidUrl`]; an invalid origin, subprotocol or header,
/// or one the request hook left, is [`Error::Command`] with
/// [`ws_proto::Error::InvalidRequest`] (see [`Error::invalid_request`]); unusable TLS material
/// or a host that is no TLS server name is [`Error::TlsConfig`].
///
/// The proxy is chosen by [`RequestOptions::proxy`](ws_net::request::RequestOptions::proxy)
/// (default: the environment, as curl reads it; see docs/connecting.md) and redirects are
/// followed up to [`max_redirects`](ws_net::request::RequestOptions::max_redirects) (default 5),
/// each attempt bounded by `handshake_timeout`.
///
/// Then: [`Error::Proxy`], [`Error::Redirect`], [`Error::Resolve`], [`Error::Connect`], [`Error::Tls`] (the certificate, an alert, a
/// peer that does not speak TLS), [`Error::Io`], and the handshake's
/// [`Error::Connection`] (the server's refusal as
/// [`HandshakeError::Status`](crate::HandshakeError::Status)). The core's `handshake_timeout`
/// bounds the whole attempt; passing it is
/// [`ConnectionError::HandshakeTimeout`].
pub async fn connect_with(
    url: &str,
    options: &ConnectOptions,
) -> Result<WebSocketStream<MaybeTlsStream>, Error> {
    let url = WsUrl::parse(url)?;
    let mut attempts = ws_net::Attempts::new(url, options.request.clone());
    // Bounded: `redirected` answers true at most `max_redirects` times.
    loop {
        match connect_attempt(&attempts, options).await {
            Err(Error::Connection(ConnectionError::Handshake(e))) => {
                if !attempts.redirected(&e)? {
                    return Err(Error::Connection(ConnectionError::Handshake(e)));
                }
            }
            other => return other,
        }
    }
}

/// One attempt of [`connect_with`]: the URL [`ws_net::Attempts::url`] names.
async fn connect_attempt(
    attempts: &ws_net::Attempts,
    options: &ConnectOptions,
) -> Result<WebSocketStream<MaybeTlsStream>, Error> {
    let start = now();
    let url = attempts.url();
    let deadline = tokio::time::Instant::from_std(start) + options.config.handshake_timeout;
    // The core's handshake timer starts with the attempt.
    let (conn, limit) = client_connection(&attempts.request()?, options, start)?;
    let connect_to = options.connect_to.filter(|_| attempts.on_first_origin());
    let proxy = attempts
        .proxy(connect_to.is_some())
        .map_err(|error| proxy_error(None, error))?;
    let tls = tls_target(url, options)?;
    let route = Route {
        url,
        connect_to,
        proxy: proxy.as_ref(),
        proxy_tls: proxy_tls(proxy.as_ref(), options)?,
    };
    let stream = match tokio::time::timeout_at(deadline, open_route(route, tls)).await {
        Ok(stream) => stream?,
        Err(_) => return Err(Error::Connection(ConnectionError::HandshakeTimeout)),
    };
    let mut ws = crate::client_handshake(stream, conn, limit).await?;
    ws.with_inner(|inner| inner.socket = Some(MaybeTlsStream::plain_socket));
    Ok(ws)
}

/// The core's client connection for an HTTP/1.1 attempt on `url` (the request built, edited
/// by the hook and validated here) and its send-queue limit. The core's handshake timer
/// starts at `start`, with the attempt.
#[cfg(feature = "http2")]
pub(crate) fn http1_connection(
    url: &WsUrl,
    options: &ConnectOptions,
    start: std::time::Instant,
) -> Result<(Box<Connection>, usize), Error> {
    client_connection(&options.request.build(url)?, options, start)
}

/// The core's client connection for `request` (built and validated already) and its
/// send-queue limit. Boxed: it waits across the connect, and inline it would make the
/// connecting future that much larger.
fn client_connection(
    request: &ws_net::request::ClientRequest,
    options: &ConnectOptions,
    start: std::time::Instant,
) -> Result<(Box<Connection>, usize), Error> {
    let config = options.config.clone().streaming(false);
    let limit = config.limits.max_send_queue;
    Ok((Box::new(Connection::client(config, request, start)?), limit))
}

/// For `wss://`: the rustls configuration and the server name to check; `None` for `ws://`.
pub(crate) fn tls_target(
    url: &WsUrl,
    options: &ConnectOptions,
) -> Result<Option<(Arc<ClientConfig>, ServerName<'static>)>, Error> {
    if !url.is_secure() {
        return Ok(None);
    }
    Ok(Some((
        options.tls.build()?,
        ws_net::tls::server_name(url.host())?,
    )))
}

/// Resolves, connects (through the proxy `options` choose for `url`, by the one rule of
/// [`ws_net::Attempts::proxy`]) and (for `wss://`) runs the TLS handshake: the HTTP/2 path's
/// way in (it follows no redirects).
#[cfg(feature = "http2")]
pub(crate) async fn open(
    url: &WsUrl,
    options: &ConnectOptions,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
) -> Result<MaybeTlsStream, Error> {
    let proxy = ws_net::Attempts::new(url.clone(), options.request.clone())
        .proxy(options.connect_to.is_some())
        .map_err(|error| proxy_error(None, error))?;
    let route = Route {
        url,
        connect_to: options.connect_to,
        proxy: proxy.as_ref(),
        proxy_tls: proxy_tls(proxy.as_ref(), options)?,
    };
    open_route(route, tls).await
}

/// The TLS configuration for an `https://` proxy: the client's own (same roots).
fn proxy_tls(
    proxy: Option<&ProxyUrl>,
    options: &ConnectOptions,
) -> Result<Option<Arc<ClientConfig>>, Error> {
    match proxy {
        Some(p) if p.scheme() == ProxyScheme::Https => Ok(Some(options.tls.build()?)),
        _ => Ok(None),
    }
}

/// Where one attempt connects.
struct Route<'a> {
    url: &'a WsUrl,
    connect_to: Option<SocketAddr>,
    proxy: Option<&'a ProxyUrl>,
    /// The TLS configuration for an `https://` proxy (the client's own: same roots).
    proxy_tls: Option<Arc<ClientConfig>>,
}

fn proxy_error(proxy: Option<&ProxyUrl>, error: ProxyError) -> Error {
    Error::Proxy {
        proxy: error.proxy_label(proxy),
        error,
    }
}

/// Resolves, connects (through the proxy's tunnel when there is one, over TLS to an
/// `https://` proxy) and (for `wss://`) runs the TLS handshake with the server.
async fn open_route(
    route: Route<'_>,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
) -> Result<MaybeTlsStream, Error> {
    let url = route.url;
    let addrs = match (route.proxy, route.connect_to) {
        (Some(p), _) => resolve(p.host(), p.ip(), p.port()).await?,
        (None, Some(a)) => vec![a],
        (None, None) => resolve(url.host(), url.ip(), url.port()).await?,
    };
    let mut tcp = connect_tcp(&addrs).await?;
    tcp.set_nodelay(true).map_err(Error::Io)?;
    match (route.proxy, route.proxy_tls) {
        (Some(p), Some(proxy_tls)) if p.scheme() == ProxyScheme::Https => {
            let name = ws_net::tls::server_name(p.host())?;
            let mut outer = tokio_rustls::TlsConnector::from(proxy_tls)
                .connect(name, tcp)
                .await
                .map_err(Error::from_tls_io)?;
            proxy_handshake(&mut outer, p, url).await?;
            let Some((config, name)) = tls else {
                return Ok(MaybeTlsStream::ProxyTls(Box::new(outer)));
            };
            let inner = tokio_rustls::TlsConnector::from(config)
                .connect(name, outer)
                .await
                .map_err(Error::from_tls_io)?;
            return Ok(MaybeTlsStream::TlsInProxyTls(Box::new(inner)));
        }
        (Some(p), _) => proxy_handshake(&mut tcp, p, url).await?,
        (None, _) => {}
    }
    let Some((config, name)) = tls else {
        return Ok(MaybeTlsStream::Plain(tcp));
    };
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(Error::from_tls_io)?;
    Ok(MaybeTlsStream::Tls(Box::new(tls)))
}

/// Runs the proxy handshake ([`ProxyHandshake`], written once in ws-net) on `stream` (TCP,
/// or TLS to an `https://` proxy) until the tunnel to `url` is open or the proxy fails it
/// (the caller's deadline bounds the time).
async fn proxy_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    proxy: &ProxyUrl,
    url: &WsUrl,
) -> Result<(), Error> {
    let fail = |e| proxy_error(Some(proxy), e);
    let mut hs = ProxyHandshake::new(proxy, url.host(), url.port()).map_err(fail)?;
    let mut buf = [0u8; 1024];
    // Every read brings at least a byte of a bounded answer (MAX_HTTP_ANSWER) or ends it.
    for _ in 0..=MAX_HTTP_ANSWER + 1 {
        while let Some(out) = hs.transmit() {
            let mut out = &out[..];
            while !out.is_empty() {
                let n = std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_write(cx, out))
                    .await
                    .map_err(Error::Io)?;
                if n == 0 {
                    return Err(fail(hs.eof()));
                }
                out = &out[n..];
            }
            std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_flush(cx))
                .await
                .map_err(Error::Io)?;
        }
        let n = std::future::poll_fn(|cx| {
            let mut rb = ReadBuf::new(&mut buf);
            Pin::new(&mut *stream)
                .poll_read(cx, &mut rb)
                .map_ok(|()| rb.filled().len())
        })
        .await
        .map_err(Error::Io)?;
        if n == 0 {
            return Err(fail(hs.eof()));
        }
        if hs.receive(&buf[..n]).map_err(fail)? == ProxyStep::Done {
            return Ok(());
        }
    }
    Err(fail(ProxyError::AnswerTooLarge))
}

/// The addresses of a host (the URL's or the proxy's): the address itself for an IP literal,
/// else the resolver's.
async fn resolve(
    host: &str,
    ip: Option<std::net::IpAddr>,
    port: u16,
) -> Result<Vec<SocketAddr>, Error> {
    if let Some(ip) = ip {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let fail = |source| Error::Resolve {
        host: host.to_string(),
        source,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(fail)?
        .collect();
    if addrs.is_empty() {
        return Err(fail(io::Error::new(
            io::ErrorKind::NotFound,
            "no addresses",
        )));
    }
    Ok(addrs)
}

/// Tries each address in turn until one connects.
async fn connect_tcp(addrs: &[SocketAddr]) -> Result<TcpStream, Error> {
    let mut last = None;
    for &addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(source) => last = Some(Error::Connect { addr, source }),
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::Io(io::Error::new(
            io::ErrorKind::NotFound,
            "no address to connect to",
        ))
    }))
}
