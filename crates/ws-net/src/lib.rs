//! Glue shared by the workspace's drivers (`ws-std`, `ws-mio`, `ws-tokio`) and the CLI
//! (`wsx`), written once so that the drivers cannot drift apart. The sans-IO
//! core (`ws-proto`) never depends on this crate; this crate depends on it.
//!
//! - [`url`]: the one `ws://` / `wss://` URL parser ([`url::WsUrl`]).
//! - [`request`]: the one assembly of a client's upgrade request from a URL,
//!   an origin, subprotocols and extra headers, validated by the core
//!   ([`request::client_request`]), and the request options every driver's
//!   client options hold, with their builder methods and the request hook
//!   ([`request::RequestOptions`]).
//! - [`proxy`]: proxy selection (explicit, off, or the environment as curl
//!   reads it) and the HTTP `CONNECT` and SOCKS5 handshakes, sans-IO.
//! - [`redirect`]: the redirect policy of the opening handshake.
//! - [`Attempts`]: one connection's attempts (the URL, each redirect), with
//!   the request and the proxy for each.
//! - [`origin`]: the one server-side `Origin` allow-list check
//!   ([`origin::origin_allowed`], ASCII case-insensitive).
//! - [`tls`]: the rustls configurations (client, server, and the CLI's
//!   `--insecure` verifier), always on the explicit *ring* provider.
//! - [`low_water`]: a reader woken once per large frame, not once per
//!   piece of it (the socket's receive low-water mark, Linux).
//! - [`ErrorKind`] / [`DriverError`]: the one classification of driver errors.
//! - [`LogLimiter`] and [`log_limited!`]: a repeated warning (say, `accept`
//!   failing with "too many open files" on every retry) is logged once per
//!   interval instead of flooding the log.
//!
//! A client driver's path, before it opens any socket:
//!
//! ```
//! use ws_net::{request::client_request, url::WsUrl};
//!
//! let url = WsUrl::parse("ws://127.0.0.1:9001/chat")?;
//! let request = client_request(&url, Some("http://localhost"), &[], &[])?;
//! let conn = ws_proto::Connection::client(ws_proto::Config::default(), &request, std::time::Instant::now())?;
//! // ... now resolve url.host(), connect to url.port(), TLS when url.is_secure(),
//! // and drive `conn`.
//! # drop(conn);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(unsafe_code)]

mod attempts;
mod credentials;
mod error;
mod log_limit;
pub mod low_water;
pub mod origin;
mod panics;
pub mod proxy;
pub mod redirect;
pub mod request;
pub mod tls;
pub mod url;
pub mod wire;

pub use attempts::Attempts;
pub use error::{command_kind, connection_kind, invalid_request, DriverError, ErrorKind};
pub use log_limit::LogLimiter;
pub use panics::panic_message;
