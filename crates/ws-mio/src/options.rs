//! Loop and connection settings.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ws_buf::{BufferPool, PoolConfig};
use ws_proto::Config;

pub use ws_net::request::{RequestHook, RequestOptions};

/// Settings of an event loop (shared by every loop of a
/// [`LoopGroup`](crate::LoopGroup)).
///
/// The defaults suit a server with many mostly idle connections: 64 KiB
/// reads (a pooled segment borrowed only for the read, so idle connections
/// hold none), one 64 KiB scratch buffer per loop, and a per-wakeup budget
/// of 256 KiB read and 256 KiB written per connection. (16 KiB reads made
/// about 4x the `recvfrom` calls per 64 KiB message and measured 30–40%
/// fewer messages/s on 64 KiB and 1 MiB echoes: docs/performance.md.)
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// Protocol configuration of accepted connections, and the default for
    /// outgoing ones ([`ConnectOptions::config`] overrides it).
    pub config: Config,
    /// Where read buffers and unwritten remainders come from. Its
    /// `max_outstanding_bytes` is the loop's read budget: while the pool
    /// refuses a read buffer, the loop stops reading (backpressure) and
    /// resumes once buffers come back. Clones share one budget, so the loops
    /// of a group share it.
    pub pool: BufferPool,
    /// Size of each socket read (a pooled segment of this size is borrowed
    /// for the read and returned right after the bytes are fed to the core).
    pub read_size: usize,
    /// Size of the loop's single scratch buffer that `poll_transmit` fills
    /// before each socket write.
    pub scratch_size: usize,
    /// Most bytes read from one connection per loop iteration; the rest
    /// waits for the next iteration, so one flooding peer cannot starve the
    /// others.
    pub read_budget: usize,
    /// Most bytes written to one connection per drive of that connection.
    pub write_budget: usize,
    /// Most connections accepted per listener per loop iteration.
    pub accept_budget: usize,
    /// Most commands from [`Handle`](crate::Handle)s run per loop iteration.
    pub command_budget: usize,
    /// Capacity of the loop's command queue; a full queue makes `Handle`
    /// calls fail with [`Error::QueueFull`](crate::Error::QueueFull).
    pub command_queue: usize,
    /// Capacity of the `mio::Events` buffer (readiness events per poll).
    pub events_capacity: usize,
    /// Most connections one loop holds; `connect` beyond it fails with
    /// [`Error::TooManyConnections`](crate::Error::TooManyConnections), and
    /// a connection accepted beyond it gets an HTTP 503 answer with
    /// `Retry-After` at once (built by the core; the handler never sees it),
    /// logged at most once per 5 s. The next connection after a slot frees
    /// is served.
    pub max_connections: usize,
    /// Most 503 answers (see [`max_connections`](Self::max_connections))
    /// under way at a time per loop; a connection accepted beyond that is
    /// closed at once. Each waits at most 5 s (and at most the config's
    /// `handshake_timeout`) for its upgrade request.
    pub max_refusing: usize,
    /// Listen backlog of listeners the loop binds.
    pub backlog: i32,
    /// Set `TCP_NODELAY` on every connection.
    pub nodelay: bool,
    /// How often a loop whose reading is paused (pool over budget) checks
    /// whether the pool has room again.
    pub resume_interval: Duration,
    /// Origin allow-list of accepted connections (default `None`: every
    /// origin, and none, is accepted). When set, an upgrade request whose
    /// `Origin` header is missing or not in the list (compared ASCII
    /// case-insensitively) is refused with 403 without calling
    /// [`Handler::on_upgrade`](crate::Handler::on_upgrade). Browsers always
    /// send `Origin`, so this stops other sites' pages from opening
    /// connections with the user's cookies; non-browser clients can send
    /// any `Origin` and must be authenticated by other means.
    pub allowed_origins: Option<Vec<String>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: Config::default(),
            pool: BufferPool::new(PoolConfig::default().with_max_outstanding_bytes(64 << 20)),
            read_size: 64 << 10,
            scratch_size: 64 << 10,
            read_budget: 256 << 10,
            write_budget: 256 << 10,
            accept_budget: 256,
            command_budget: 4096,
            command_queue: 8192,
            events_capacity: 1024,
            max_connections: 1 << 22,
            max_refusing: 64,
            backlog: 4096,
            nodelay: true,
            resume_interval: Duration::from_millis(10),
            allowed_origins: None,
        }
    }
}

impl Options {
    /// Sets the protocol configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }
    /// Sets the buffer pool.
    pub fn pool(mut self, pool: BufferPool) -> Self {
        self.pool = pool;
        self
    }
    /// Sets the read size (at least 1).
    pub fn read_size(mut self, bytes: usize) -> Self {
        self.read_size = bytes.max(1);
        self
    }
    /// Sets the scratch buffer size (at least 1).
    pub fn scratch_size(mut self, bytes: usize) -> Self {
        self.scratch_size = bytes.max(1);
        self
    }
    /// Sets the per-connection read budget per iteration (at least 1).
    pub fn read_budget(mut self, bytes: usize) -> Self {
        self.read_budget = bytes.max(1);
        self
    }
    /// Sets the per-connection write budget per drive (at least 1).
    pub fn write_budget(mut self, bytes: usize) -> Self {
        self.write_budget = bytes.max(1);
        self
    }
    /// Sets the accept budget per listener per iteration (at least 1).
    pub fn accept_budget(mut self, n: usize) -> Self {
        self.accept_budget = n.max(1);
        self
    }
    /// Sets the command queue capacity (at least 1).
    pub fn command_queue(mut self, n: usize) -> Self {
        self.command_queue = n.max(1);
        self
    }
    /// Sets the most connections per loop.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }
    /// Sets the most 503 answers under way at a time per loop.
    pub fn max_refusing(mut self, n: usize) -> Self {
        self.max_refusing = n;
        self
    }
    /// Sets the listen backlog.
    pub fn backlog(mut self, n: i32) -> Self {
        self.backlog = n;
        self
    }
    /// Accepts only upgrade requests whose `Origin` is one of `origins`;
    /// others get 403 (see [`allowed_origins`](Self::allowed_origins)).
    pub fn allow_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }
}

/// Settings of one outgoing connection (see
/// [`Ctx::connect`](crate::Ctx::connect)).
///
/// What goes into the upgrade request (origin, subprotocols, extra headers,
/// the request hook) is the [`RequestOptions`] every driver shares, in
/// [`request`](Self::request); its fields stay reachable as before
/// (`options.origin`, `options.headers`...) through `Deref`.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Protocol configuration; the loop's [`Options::config`] when `None`.
    pub config: Option<Config>,
    /// TLS client configuration for `wss://`; when `None`, the platform's
    /// trust store with the *ring* provider
    /// ([`tls::default_client_config`](crate::tls::default_client_config);
    /// [`tls::webpki_client_config`](crate::tls::webpki_client_config) for the
    /// bundled Mozilla roots).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Local address to bind before connecting (spreads many client
    /// connections over several source addresses).
    pub bind: Option<IpAddr>,
    /// Connect to this address instead of resolving the URL's host (which
    /// still goes into `Host` and TLS server name).
    pub addr: Option<SocketAddr>,
    /// The upgrade request's origin, subprotocols, extra headers and hook.
    /// `connect` refuses an invalid one (and what the hook leaves invalid)
    /// before opening any socket.
    pub request: RequestOptions,
}

ws_net::forward_request_options!(ConnectOptions => request);

impl ConnectOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the protocol configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }
    /// Sets the TLS client configuration.
    pub fn tls(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }
    /// Binds this local address before connecting.
    pub fn bind(mut self, ip: IpAddr) -> Self {
        self.bind = Some(ip);
        self
    }
    /// Connects to this address instead of resolving the host.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = Some(addr);
        self
    }
}
