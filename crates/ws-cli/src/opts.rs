//! Command-line options.

use std::path::PathBuf;

use clap::builder::ArgPredicate;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ws_proto::{DeflateConfig, Limits};

/// The exit codes, listed under every `--help`.
pub const EXIT_CODES: &str = "Exit codes:
  0  success (connect: the connection closed normally, 1000/1001 or no status)
  1  a connection or server error (refused, TLS, handshake, I/O), or a benchmark that failed
  2  bad arguments (the reason is printed)
  3  connect: the peer closed with another close code";

/// wsx: a WebSocket server, client and load generator.
#[derive(Parser, Debug)]
#[command(
    name = "wsx",
    version,
    about,
    propagate_version = true,
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an echo server (or a broadcast chat room) on ADDR.
    #[command(after_help = EXIT_CODES)]
    Serve(ServeArgs),
    /// Connect to URL: stdin lines are sent as text, messages are printed.
    #[command(after_help = EXIT_CODES)]
    Connect(ConnectArgs),
    /// Load-test an echo server at URL and print a summary table.
    #[command(after_help = EXIT_CODES)]
    Bench(BenchArgs),
}

/// Which driver runs the connections.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// ws-std: blocking, one thread per connection.
    Std,
    /// ws-mio: event loop, many connections per thread.
    Mio,
    /// ws-tokio: async tasks on a tokio runtime.
    Tokio,
}

/// Protocol options shared by every subcommand.
#[derive(Args, Debug, Clone)]
pub struct ProtoArgs {
    /// Do not use permessage-deflate.
    #[arg(long)]
    pub no_deflate: bool,
    /// Messages shorter than this are sent uncompressed.
    #[arg(long, value_name = "BYTES", default_value_t = 32)]
    pub deflate_threshold: usize,
    /// Largest message accepted, in bytes (after inflation); frames are
    /// bounded by it too.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_message_size)]
    pub max_message: usize,
    /// Most frames per message, plus one per 64 bytes the message carried
    /// (only floods of empty or tiny fragments reach it).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_fragments)]
    pub max_fragments: usize,
    /// Largest frame payload sent: longer messages go out as several frames
    /// (default: the role's — a server sends every message as one frame, a
    /// client splits at 32,767 bytes).
    #[arg(long, value_name = "BYTES")]
    pub fragment_size: Option<usize>,
}

impl ProtoArgs {
    /// The core configuration these options describe.
    pub fn config(&self) -> ws_proto::Config {
        let limits = Limits::default()
            .max_message_size(self.max_message)
            .max_fragments(self.max_fragments)
            .max_send_queue((self.max_message * 4).max(16 << 20));
        let cfg = ws_proto::Config::default()
            .limits(limits)
            .deflate(self.deflate());
        match self.fragment_size {
            Some(n) => cfg.fragment_size(n),
            None => cfg,
        }
    }

    /// The permessage-deflate settings, if enabled.
    pub fn deflate(&self) -> Option<DeflateConfig> {
        (!self.no_deflate).then(|| {
            let mut d = DeflateConfig::default();
            d.threshold = self.deflate_threshold;
            d
        })
    }
}

impl ServeArgs {
    /// The core configuration of every connection: the protocol options, and
    /// for `--broadcast` a deflate answer without context takeover on our
    /// side (a message is then compressed once and the same bytes go to every
    /// receiver, see `ws_proto::PreparedMessage`; with context takeover each
    /// connection would compress it again).
    pub fn config(&self) -> ws_proto::Config {
        let mut cfg = self.proto.config();
        if self.broadcast {
            if let Some(d) = cfg.deflate.as_mut() {
                d.server_no_context_takeover = true;
            }
        }
        cfg
    }
}

/// `wsx serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on, HOST:PORT: an IP address or a host name
    /// (e.g. `127.0.0.1:9001`, `localhost:9001`, `[::1]:9001`; port 0 picks
    /// a free one, announced on stdout).
    #[arg(default_value = "127.0.0.1:9001")]
    pub addr: String,
    /// Which driver serves connections (tokio with --http2, and by default
    /// with --redis).
    #[arg(
        long,
        value_enum,
        default_value_t = Driver::Mio,
        default_value_if("http2", "true", "tokio"),
        default_value_if("redis", ArgPredicate::IsPresent, "tokio")
    )]
    pub driver: Driver,
    /// Event-loop threads (mio driver) or runtime worker threads (tokio
    /// driver; one by default, like mio's one loop).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// Also serve WebSockets over HTTP/2 (RFC 8441 extended CONNECT): with
    /// TLS when the client picks `h2` in ALPN, without TLS when it starts
    /// with the HTTP/2 preface (prior knowledge); HTTP/1.1 upgrades as
    /// always. Tokio driver only.
    #[arg(long)]
    pub http2: bool,
    /// Relay every message to every other connection (the sender does not
    /// get its own messages back) instead of echoing. With permessage-deflate
    /// the server answers `server_no_context_takeover`, so that a message is
    /// compressed once for all its receivers.
    #[arg(long)]
    pub broadcast: bool,
    /// --broadcast across processes: rooms are request paths, and every
    /// message also goes to the room's members on every other server
    /// subscribed to the same Redis (pub/sub channel `wsx:room:PATH`, see
    /// docs/scale-out.md). Tokio (the default then) or mio driver. Without
    /// it there is one room per server, whatever the path.
    #[arg(long, value_name = "redis://HOST:PORT", requires = "broadcast")]
    pub redis: Option<String>,
    /// Most connections at once (std driver: one thread each); over it, a
    /// client is answered 503 with Retry-After (every driver).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve wss:// with a certificate for localhost made at start-up.
    #[arg(long, conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// Allowed Origin values (repeatable); other origins get 403.
    #[arg(long = "origin", value_name = "ORIGIN")]
    pub origins: Vec<String>,
    /// Log only warnings and errors.
    #[arg(long, short)]
    pub quiet: bool,
    /// Exit after this many connections have been served (tests).
    #[arg(long, value_name = "N", hide = true)]
    pub exit_after: Option<usize>,
    #[command(flatten)]
    pub proto: ProtoArgs,
}

/// `wsx connect`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// ws:// or wss:// URL.
    pub url: String,
    /// Extra request header, 'Name: value' (repeatable).
    #[arg(long = "header", short = 'H', value_name = "K: V")]
    pub headers: Vec<String>,
    /// Offer this subprotocol (repeatable, in order of preference).
    #[arg(long = "protocol", value_name = "P")]
    pub protocols: Vec<String>,
    /// Which driver runs the connection (tokio with --http2).
    #[arg(long, value_enum, default_value_t = Driver::Std, default_value_if("http2", "true", "tokio"))]
    pub driver: Driver,
    /// Try HTTP/2 (RFC 8441) first: `wss://` offers `h2` in ALPN and falls
    /// back to HTTP/1.1 when the server has no extended CONNECT; `ws://`
    /// speaks HTTP/2 by prior knowledge (no fallback). Tokio driver only.
    #[arg(long)]
    pub http2: bool,
    #[command(flatten)]
    pub tls: TlsClientArgs,
    /// Send a ping every SECS seconds.
    #[arg(long, value_name = "SECS")]
    pub ping: Option<f64>,
    /// Send every received message back unchanged until the peer closes.
    #[arg(long)]
    pub echo: bool,
    /// Append binary messages to FILE instead of printing them as hex.
    #[arg(long, value_name = "FILE")]
    pub binary_out: Option<PathBuf>,
    /// Offer client_no_context_takeover with permessage-deflate.
    #[arg(long)]
    pub deflate_client_no_context_takeover: bool,
    /// Give up when the handshake takes longer than this (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub timeout: f64,
    /// Go through this proxy (http://, socks5:// or socks5h://, with optional
    /// user:password@) instead of the one the environment names
    /// (https_proxy / http_proxy / all_proxy, no_proxy).
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy")]
    pub proxy: Option<String>,
    /// Use no proxy, whatever the environment says.
    #[arg(long)]
    pub no_proxy: bool,
    /// Follow at most N redirects (301, 302, 303, 307, 308); 0 follows none.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_redirects: usize,
    #[command(flatten)]
    pub proto: ProtoArgs,
}

/// Trust for `wss://` URLs (connect and bench).
#[derive(Args, Debug, Clone)]
pub struct TlsClientArgs {
    /// wss: accept any server certificate (testing only).
    #[arg(long)]
    pub insecure: bool,
    /// wss: trust this CA certificate (PEM) in addition to the platform's trust store.
    #[arg(long, value_name = "PEM", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
}

/// `wsx bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// ws:// or wss:// URL of an echo server.
    pub url: String,
    /// Concurrent connections.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub conns: usize,
    /// Message size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub size: usize,
    /// Messages in flight per connection.
    #[arg(long, value_name = "W", default_value_t = 16)]
    pub window: usize,
    /// Duration of the measurement in seconds.
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub secs: f64,
    /// Offer permessage-deflate.
    #[arg(long)]
    pub deflate: bool,
    /// Which driver runs the connections: std (one thread per connection),
    /// mio (all connections on one event-loop thread) or tokio (one task per
    /// connection, all on one current-thread runtime).
    #[arg(long, value_enum, default_value_t = Driver::Std)]
    pub driver: Driver,
    /// Largest frame payload sent: longer messages go out as several frames
    /// (without it every message goes out as one frame, as browsers send
    /// them).
    #[arg(long, value_name = "BYTES")]
    pub fragment_size: Option<usize>,
    /// Tokio driver: every connection is a WebSocket on one shared HTTP/2
    /// connection (RFC 8441; `wss://` with ALPN `h2`, `ws://` by prior
    /// knowledge), against `wsx serve --driver tokio --http2`.
    #[arg(long)]
    pub http2: bool,
    /// Send text messages instead of binary.
    #[arg(long)]
    pub text: bool,
    /// Print the summary as one machine-readable line too.
    #[arg(long)]
    pub csv: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Draw the progress bar even when stderr is not a terminal (by
    /// default it is drawn on a terminal only, never into a log).
    #[arg(long, conflicts_with = "quiet")]
    pub progress: bool,
    #[command(flatten)]
    pub tls: TlsClientArgs,
    /// Broadcast benchmark against a `wsx serve --broadcast` room (or any
    /// server that relays every message to the other clients): one
    /// publisher sends --messages messages of --size bytes, --window of them
    /// at most not yet delivered to every one of --subscribers subscribers;
    /// every delivery is checked (each subscriber gets every message, in
    /// order, once) and the summary gives deliveries/s. Runs on one ws-mio
    /// event loop whatever --driver says; --secs and --conns do not apply.
    #[arg(long)]
    pub broadcast: bool,
    /// --broadcast: subscribers (connections that only receive).
    #[arg(long, value_name = "N", default_value_t = 100, requires = "broadcast")]
    pub subscribers: usize,
    /// --broadcast: messages the publisher sends (after the sync round).
    #[arg(long, value_name = "M", default_value_t = 1000, requires = "broadcast")]
    pub messages: u64,
    /// --broadcast: local addresses the subscribers connect from, in turn
    /// (repeatable or comma-separated, e.g. 127.0.0.2,127.0.0.3: more
    /// ephemeral ports); the publisher uses the system's choice.
    #[arg(
        long = "source",
        value_name = "IP",
        value_delimiter = ',',
        requires = "broadcast"
    )]
    pub sources: Vec<std::net::IpAddr>,
    /// --broadcast: more servers of the same rooms (repeatable or
    /// comma-separated URLs, e.g. other `wsx serve --broadcast --redis`
    /// processes): the subscribers connect to URL and these in turn, the
    /// publisher to URL; every delivery is checked as usual.
    #[arg(
        long = "also",
        value_name = "URL",
        value_delimiter = ',',
        requires = "broadcast"
    )]
    pub also: Vec<String>,
    /// --broadcast: most seconds for the whole run (connecting, sync,
    /// publishing); past it the run stops and fails.
    #[arg(
        long,
        value_name = "S",
        default_value_t = 120.0,
        requires = "broadcast"
    )]
    pub timeout: f64,
}
