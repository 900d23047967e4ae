//! The crate's error type.

use std::fmt;
use std::io;

use crate::ConnId;

/// Why a call into the driver failed.
///
/// Connection failures caused by the peer or the network are never an
/// `Error`: they end the connection and reach
/// [`Handler::on_close`](crate::Handler::on_close) with the reason.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a valid `ws://` or `wss://` URL.
    InvalidUrl(String),
    /// A socket, poll or name-resolution operation failed.
    Io(io::Error),
    /// TLS configuration failed (bad certificate, key or server name).
    Tls(String),
    /// The connection does not exist (any more) in this loop.
    UnknownConnection(ConnId),
    /// The protocol core refused the command: local misuse (send before open
    /// or after close, invalid close code...) or
    /// [`ws_proto::Error::Backpressure`] when the send queue is full.
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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl(u) => write!(f, "invalid URL: {u}"),
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

impl From<ws_proto::Error> for Error {
    fn from(e: ws_proto::Error) -> Self {
        Error::Proto(e)
    }
}
