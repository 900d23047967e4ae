//! How a connection is set up: [`ClientOptions`] for [`connect`](crate::connect)
//! and the event client, [`ServerOptions`] (with the [`UpgradeResponse`]
//! decision) for [`accept`](crate::accept) and [`serve`](crate::serve).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use ws_proto::{Accept, Config, DeflateConfig, UpgradeRequest};

use crate::tls::TlsClientOptions;

pub use ws_net::request::{RequestHook, RequestOptions};

/// How a client connects: protocol configuration, what goes into the
/// upgrade request, TLS, and socket timeouts.
///
/// What goes into the upgrade request (origin, subprotocols, extra headers,
/// the request hook) is the [`RequestOptions`] every driver shares, in
/// [`request`](Self::request); its fields stay reachable as before
/// (`options.origin`, `options.headers`...) through `Deref`.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The protocol core's configuration (limits, fragment size, timers,
    /// permessage-deflate). `handshake_timeout` bounds the whole connection
    /// attempt: TCP connect, TLS handshake and HTTP upgrade.
    pub config: Config,
    /// The upgrade request's origin, subprotocols, extra headers and hook.
    /// An invalid one fails the connection attempt before any socket is
    /// opened.
    pub request: RequestOptions,
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
}

ws_net::forward_request_options!(ClientOptions => request);

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
