//! Configuration: limits, timers, fragmentation and compression.

use std::sync::Arc;
use std::time::Duration;

use crate::deflate::{DeflateConfig, DeflateFactory};
use crate::extension::ExtensionFactory;
use crate::Side;

/// Every byte the core keeps on behalf of a peer is bounded by one of these.
///
/// Each limit maps to a close code or an HTTP status when a peer exceeds it:
///
/// | limit | default | peer exceeds it → |
/// |---|---|---|
/// | `max_frame_payload` | none of its own: [`Limits::frame_payload_limit`] follows `max_message_size` | close 1009 |
/// | `max_message_size` (after inflation) | 4 MiB | close 1009 |
/// | `max_fragments` (per message, empty ones count), plus one per [`BYTES_PER_EXTRA_FRAGMENT`] bytes of the message so far | 1,024 | close 1009 |
/// | `max_handshake_bytes` (request/response head) | 16 KiB | HTTP 431, or 414 if the request line alone does not fit |
/// | `max_headers` | 64 | HTTP 431 |
/// | `max_send_queue` (queued outgoing payload bytes) | 16 MiB | `send` returns [`Error::Backpressure`](crate::Error::Backpressure) |
///
/// Raising `max_message_size` alone lets every well-formed message up to that
/// size in, however it is fragmented (the Autobahn TestSuite passes with
/// `max_message_size` of 16 MiB and every other limit at its default):
///
/// - a frame is bounded by the message limit (plus deflate's worst-case
///   expansion for a compressed frame, whose payload is held whole before it
///   is inflated), unless `max_frame_payload` is set lower;
/// - the fragment limit exists against floods of empty or tiny fragments,
///   which cost CPU per frame but no memory. A message may have
///   `max_fragments` fragments plus one more for every
///   [`BYTES_PER_EXTRA_FRAGMENT`] bytes it has carried so far, so 4 MiB in
///   64-byte fragments (65,536 of them) is fine while 1,025 empty or
///   one-byte fragments are not.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest accepted frame payload, in bytes. By default frames have no
    /// limit of their own; see [`Limits::frame_payload_limit`] for the one
    /// that applies.
    pub max_frame_payload: usize,
    /// Largest accepted message, in bytes, counted after inflation.
    pub max_message_size: usize,
    /// Most frames in one message, empty ones included.
    pub max_fragments: usize,
    /// Largest HTTP head (request or response line plus headers) accepted.
    pub max_handshake_bytes: usize,
    /// Most HTTP header fields accepted in the handshake.
    pub max_headers: usize,
    /// Most payload bytes queued for sending before `send` refuses.
    pub max_send_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_payload: usize::MAX,
            max_message_size: 4 << 20,
            max_fragments: 1024,
            max_handshake_bytes: 16 << 10,
            max_headers: 64,
            max_send_queue: 16 << 20,
        }
    }
}

/// Past `max_fragments`, a message may have one more fragment for every this
/// many payload bytes it has carried so far (see [`Limits`]).
pub const BYTES_PER_EXTRA_FRAGMENT: usize = 64;

impl Limits {
    /// The largest frame payload accepted: `max_frame_payload`, but never
    /// more than a compressed frame of a message at `max_message_size` can
    /// take (deflate's stored blocks add 5 bytes per 64 KiB; we allow 1/1024
    /// plus 1 KiB).
    pub fn frame_payload_limit(&self) -> usize {
        let m = self.max_message_size;
        let follows_message = m.saturating_add(m / 1024).saturating_add(1024);
        self.max_frame_payload.min(follows_message)
    }

    /// The number of fragments a message that has carried `bytes_so_far`
    /// payload bytes may have: `max_fragments` plus one per
    /// [`BYTES_PER_EXTRA_FRAGMENT`] bytes.
    pub fn fragment_limit(&self, bytes_so_far: usize) -> usize {
        self.max_fragments
            .saturating_add(bytes_so_far / BYTES_PER_EXTRA_FRAGMENT)
    }

    /// Sets `max_frame_payload`.
    pub fn max_frame_payload(mut self, v: usize) -> Self {
        self.max_frame_payload = v;
        self
    }
    /// Sets `max_message_size`.
    pub fn max_message_size(mut self, v: usize) -> Self {
        self.max_message_size = v;
        self
    }
    /// Sets `max_fragments`.
    pub fn max_fragments(mut self, v: usize) -> Self {
        self.max_fragments = v;
        self
    }
    /// Sets `max_handshake_bytes`.
    pub fn max_handshake_bytes(mut self, v: usize) -> Self {
        self.max_handshake_bytes = v;
        self
    }
    /// Sets `max_headers`.
    pub fn max_headers(mut self, v: usize) -> Self {
        self.max_headers = v;
        self
    }
    /// Sets `max_send_queue`.
    pub fn max_send_queue(mut self, v: usize) -> Self {
        self.max_send_queue = v;
        self
    }
}

/// A client's default fragment size: the event-style client API this crate
/// serves splits messages into frames of 32,767 bytes.
pub const CLIENT_FRAGMENT_SIZE: usize = 32_767;

/// A server's default fragment size: no automatic fragmentation. Splitting a
/// large message costs the receiving peer a reassembly copy and costs us a
/// header and a write segment per frame, and buys nothing on a connection
/// that carries one message at a time; measured in docs/performance.md
/// ("fragment size per role").
pub const SERVER_FRAGMENT_SIZE: usize = usize::MAX;

/// Per-connection configuration, shared by both roles.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Memory limits.
    pub limits: Limits,
    /// `send` splits messages into frames of at most this many payload bytes.
    /// `None` (the default) takes the role's default: a client splits at
    /// [`CLIENT_FRAGMENT_SIZE`] (32,767: a 32,767-byte message is one frame,
    /// 32,768 bytes two), a server sends every message as one frame
    /// ([`SERVER_FRAGMENT_SIZE`]; see [`Config::fragment_size_for`]).
    pub fragment_size: Option<usize>,
    /// Deliver each data frame as an [`Event::Fragment`](crate::Event::Fragment)
    /// as it arrives instead of reassembling messages (default off).
    pub streaming: bool,
    /// Answer pings automatically (default on). Every ping is answered, but at
    /// most 16 pongs wait to be sent: under a ping flood from a peer that does
    /// not read, older pending pongs are dropped and the latest answered.
    pub auto_pong: bool,
    /// Send a ping this often while open (default: never).
    pub ping_interval: Option<Duration>,
    /// Fail the connection when nothing arrives from the peer for this long
    /// (default: never). The bytes of a frame still arriving count: a large
    /// message on a slow link is not silence.
    pub idle_timeout: Option<Duration>,
    /// How long to wait for the peer's close frame or TCP close (default 5 s).
    pub close_timeout: Duration,
    /// How long the opening handshake may take, the server application's
    /// decision included (default 10 s).
    pub handshake_timeout: Duration,
    /// permessage-deflate: offered (client) or accepted (server) when `Some`. It is negotiated
    /// first, before [`extensions`](Self::extensions).
    pub deflate: Option<DeflateConfig>,
    /// Other extensions to offer (client) or accept (server), in order of preference; see
    /// [`crate::extension`].
    pub extensions: Vec<Arc<dyn ExtensionFactory>>,
    /// How long the receive, reassembly and compression buffers are kept
    /// after the last input or send once they are empty (default 1 s).
    ///
    /// While a connection is busy its buffers are reused from message to
    /// message, so the steady state allocates nothing; once it has been quiet
    /// for this long they are freed, so an idle connection holds no buffer.
    /// [`Connection::poll_timeout`](crate::Connection::poll_timeout) includes
    /// this moment while there is something to free. `Duration::ZERO` frees
    /// them as soon as they are empty (least memory, one or two allocations
    /// per message).
    pub release_buffers_after: Duration,
    /// Seed for the connection's RNG (masking keys, `Sec-WebSocket-Key`).
    /// `None` seeds from the operating system's entropy source; tests pass a
    /// fixed seed to get byte-exact output.
    pub rng_seed: Option<[u8; 32]>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            fragment_size: None,
            streaming: false,
            auto_pong: true,
            ping_interval: None,
            idle_timeout: None,
            close_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            deflate: None,
            extensions: Vec::new(),
            release_buffers_after: Duration::from_secs(1),
            rng_seed: None,
        }
    }
}

impl Config {
    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// Sets the fragment size used by `send` in both roles (at least 1).
    pub fn fragment_size(mut self, bytes: usize) -> Self {
        self.fragment_size = Some(bytes.max(1));
        self
    }
    /// The fragment size `send` uses on `side`: the one set, or the role's default.
    pub fn fragment_size_for(&self, side: Side) -> usize {
        match (self.fragment_size, side) {
            (Some(n), _) => n.max(1),
            (None, Side::Client) => CLIENT_FRAGMENT_SIZE,
            (None, Side::Server) => SERVER_FRAGMENT_SIZE,
        }
    }
    /// Turns streaming delivery on or off.
    pub fn streaming(mut self, on: bool) -> Self {
        self.streaming = on;
        self
    }
    /// Turns automatic pongs on or off.
    pub fn auto_pong(mut self, on: bool) -> Self {
        self.auto_pong = on;
        self
    }
    /// Sets the keepalive ping interval.
    pub fn ping_interval(mut self, every: Option<Duration>) -> Self {
        self.ping_interval = every;
        self
    }
    /// Sets the idle timeout.
    pub fn idle_timeout(mut self, after: Option<Duration>) -> Self {
        self.idle_timeout = after;
        self
    }
    /// Sets the close timeout.
    pub fn close_timeout(mut self, d: Duration) -> Self {
        self.close_timeout = d;
        self
    }
    /// Sets the handshake timeout.
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }
    /// Enables permessage-deflate with these settings, or disables it.
    pub fn deflate(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.deflate = deflate;
        self
    }
    /// Adds an extension to negotiate (after permessage-deflate and the ones added before).
    pub fn extension(mut self, factory: Arc<dyn ExtensionFactory>) -> Self {
        self.extensions.push(factory);
        self
    }
    /// Every extension this configuration negotiates, in order: permessage-deflate (when
    /// configured), then [`extensions`](Self::extensions).
    pub fn extension_factories(&self) -> Vec<Arc<dyn ExtensionFactory>> {
        let deflate = self.deflate.iter().map(|d| {
            let f: Arc<dyn ExtensionFactory> = Arc::new(DeflateFactory::new(d.clone()));
            f
        });
        deflate.chain(self.extensions.iter().cloned()).collect()
    }
    /// Sets [`release_buffers_after`](Self::release_buffers_after).
    pub fn release_buffers_after(mut self, after: Duration) -> Self {
        self.release_buffers_after = after;
        self
    }
    /// Fixes the RNG seed (tests).
    pub fn rng_seed(mut self, seed: [u8; 32]) -> Self {
        self.rng_seed = Some(seed);
        self
    }
}

/// What a client puts in its upgrade request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientRequest {
    /// The `Host` header value (`host` or `host:port`).
    pub host: String,
    /// The request target: path and query, e.g. `/chat?room=1`.
    pub resource: String,
    /// The `Origin` header, if any.
    pub origin: Option<String>,
    /// Subprotocols offered, in order of preference.
    pub protocols: Vec<String>,
    /// Extra headers (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// The HTTP version this request is for: HTTP/1.1 (the default) or HTTP/2 when a driver
    /// attempts an RFC 8441 extended CONNECT. Set by the driver before the request hook runs,
    /// so a hook called once per attempt sees which one it is customising; the driver, not
    /// this field, decides how the request is sent.
    pub http: crate::handshake::Http,
}

impl ClientRequest {
    /// A request for `resource` on `host`.
    pub fn new(host: impl Into<String>, resource: impl Into<String>) -> Self {
        ClientRequest {
            host: host.into(),
            resource: resource.into(),
            ..Default::default()
        }
    }
    /// Sets the `Origin` header.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }
    /// Adds an offered subprotocol.
    pub fn protocol(mut self, p: impl Into<String>) -> Self {
        self.protocols.push(p.into());
        self
    }
    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Checks that nothing in the request can add a header line or break the
    /// request line; [`Connection::client`](crate::Connection::client) calls it
    /// and refuses to start on an error, which names the field:
    ///
    /// - `Host`: a host (name, IPv4, or `[IPv6]`) with an optional `:port`, in
    ///   URI characters only (no whitespace, control bytes, `/`, `?`, `#`, `@`);
    /// - the request target: empty (meaning `/`) or starting with `/`, visible
    ///   ASCII only (percent-encode anything else), no `#`;
    /// - `Origin`: visible ASCII only;
    /// - each subprotocol: a token (RFC 7230 `tchar`s), so no `,` or spaces;
    /// - each extra header: a token name that is not one the handshake sets
    ///   itself (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-*`, `Origin`,
    ///   `Content-Length`, `Transfer-Encoding`), and a value without control
    ///   bytes (CR, LF, NUL, ...; a tab is allowed).
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |field: &str, reason: &str| {
            Err(crate::Error::InvalidRequest {
                field: field.to_string(),
                reason: reason.to_string(),
            })
        };
        if self.host.is_empty() {
            return bad("Host", "empty");
        }
        if !self.host.bytes().all(is_host_byte) {
            return bad(
                "Host",
                "only a host name or address and an optional :port may appear",
            );
        }
        if !(self.resource.is_empty() || self.resource.starts_with('/')) {
            return bad("request target", "must start with '/'");
        }
        if !self
            .resource
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'#')
        {
            return bad(
                "request target",
                "whitespace, control bytes, '#' and non-ASCII must be percent-encoded",
            );
        }
        if let Some(o) = &self.origin {
            if o.is_empty() || !o.bytes().all(|b| b.is_ascii_graphic()) {
                return bad("Origin", "must be visible ASCII (scheme://host[:port])");
            }
        }
        for p in &self.protocols {
            if !crate::handshake::is_token(p) {
                return bad("Sec-WebSocket-Protocol", "a subprotocol must be a token");
            }
        }
        for (n, v) in &self.headers {
            if !crate::handshake::is_token(n) {
                return bad(n, "a header name must be a token");
            }
            if RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(n)) {
                return bad(n, "set by the handshake itself");
            }
            if !crate::handshake::is_field_value(v) {
                return bad(
                    n,
                    "control bytes (CR, LF, NUL, ...) may not appear in a value",
                );
            }
        }
        Ok(())
    }
}

/// Headers the client handshake writes itself; a caller may not add them.
const RESERVED_HEADERS: [&str; 10] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "origin",
    "content-length",
    "transfer-encoding",
];

/// A byte of a URI host with an optional port: unreserved, sub-delims, `%`,
/// `:` and the brackets of an IPv6 literal (RFC 3986 §3.2.2).
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b)
}
