//! The crate's error type.

use std::fmt;
use std::io;

use crate::id::ConnId;

/// Why a call into the driver failed.
///
/// Connection failures caused by the peer or the network are never an
/// `Error`: they end the connection and reach
/// [`Handler::on_close`](crate::Handler::on_close) with the reason.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a valid `ws://` or `wss://` URL. The message
    /// ([`ws_net::url::UrlError`]'s) names the part that is wrong and why,
    /// e.g. `invalid path in the WebSocket URL "ws://h/a b": a space must
    /// be percent-encoded (write %20)`. Nothing was resolved or connected.
    InvalidUrl(String),
    /// A socket, poll or name-resolution operation failed.
    Io(io::Error),
    /// TLS configuration failed (bad certificate, key or server name).
    Tls(String),
    /// The connection does not exist (any more) in this loop.
    UnknownConnection(ConnId),
    /// The protocol core refused the command: local misuse (send before open
    /// or after close, invalid close code...),
    /// [`ws_proto::Error::Backpressure`] when the send queue is full, or
    /// [`ws_proto::Error::InvalidRequest`] when `connect` was given an
    /// upgrade request that could add a header line or break the request
    /// line (its `field` names the header, `Origin`,
    /// `Sec-WebSocket-Protocol`... see [`Error::invalid_request`]); such a
    /// request is refused before any socket is opened.
    Proto(ws_proto::Error),
    /// The loop already holds `Options::max_connections` connections.
    TooManyConnections,
    /// The loop is shutting down or stopped and takes no new connections.
    ShuttingDown,
    /// The loop's command queue is full (see `Options::command_queue`); try
    /// again later.
    QueueFull,
    /// The loop has exited.
    LoopGone,
    /// No loop has this index.
    NoSuchLoop(usize),
}

impl Error {
    /// Whether the send queue of the connection was full
    /// ([`ws_proto::Error::Backpressure`]).
    pub fn is_backpressure(&self) -> bool {
        matches!(self, Error::Proto(ws_proto::Error::Backpressure { .. }))
    }
}

impl Error {
    /// When `connect` refused the upgrade request, the part of it at fault
    /// (a header name, `"Origin"`, `"Sec-WebSocket-Protocol"`, `"Host"`,
    /// `"request target"`) and why.
    pub fn invalid_request(&self) -> Option<(&str, &str)> {
        match self {
            Error::Proto(ws_proto::Error::InvalidRequest { field, reason }) => {
                Some((field, reason))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl(u) => f.write_str(u),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Tls(e) => write!(f, "TLS error: {e}"),
            Error::UnknownConnection(id) => write!(f, "no connection {id}"),
            Error::Proto(e) => write!(f, "{e}"),
            Error::TooManyConnections => f.write_str("too many connections"),
            Error::ShuttingDown => f.write_str("the event loop is shutting down"),
            Error::QueueFull => f.write_str("the event loop's command queue is full"),
            Error::LoopGone => f.write_str("the event loop has exited"),
            Error::NoSuchLoop(i) => write!(f, "no event loop with index {i}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Proto(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<ws_net::url::UrlError> for Error {
    fn from(e: ws_net::url::UrlError) -> Self {
        Error::InvalidUrl(e.to_string())
    }
}

impl From<ws_net::tls::TlsError> for Error {
    fn from(e: ws_net::tls::TlsError) -> Self {
        Error::Tls(e.to_string())
    }
}

impl From<ws_proto::Error> for Error {
    fn from(e: ws_proto::Error) -> Self {
        Error::Proto(e)
    }
}
