//! The crate's error type.

use std::fmt;
use std::io;

use ws_net::{DriverError, ErrorKind};

use crate::id::ConnId;

/// Why a call into the driver failed.
///
/// Connection failures caused by the peer or the network are never an
/// `Error`: they end the connection and reach
/// [`Handler::on_close`](crate::Handler::on_close) with the reason.
///
/// The variants shared with the other drivers have the same names and
/// contents there ([`Io`](Error::Io), [`Tls`](Error::Tls),
/// [`TlsConfig`](Error::TlsConfig), [`Command`](Error::Command),
/// [`InvalidUrl`](Error::InvalidUrl)), and every variant has its
/// [`ws_net::ErrorKind`] through [`DriverError`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a valid `ws://` or `wss://` URL. The message
    /// ([`ws_net::url::UrlError`]'s) names the part that is wrong and why,
    /// e.g. `invalid path in the WebSocket URL "ws://h/a b": a space must
    /// be percent-encoded (write %20)`. Nothing was resolved or connected.
    InvalidUrl(String),
    /// A socket, poll or name-resolution operation failed (its
    /// [`io::ErrorKind`] is [`DriverError::io_kind`]).
    Io(io::Error),
    /// rustls refused the TLS session or configuration.
    Tls(rustls::Error),
    /// The TLS configuration could not be built (bad PEM, no key, a server
    /// name that is neither a DNS name nor an address...).
    TlsConfig(String),
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
    Command(ws_proto::Error),
    /// The proxy chosen for `connect` is unusable (a bad URL from an
    /// environment variable, an `https://` proxy). `proxy` never holds a
    /// password. A proxy that refuses the tunnel ends the connection later,
    /// like a failed TCP connect (its `Closed` says why).
    Proxy {
        /// The proxy, or the variable's value (password hidden).
        proxy: String,
        /// What is wrong.
        error: ws_net::proxy::ProxyError,
    },
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
        matches!(self, Error::Command(ws_proto::Error::Backpressure { .. }))
    }
}

impl Error {
    /// When `connect` refused the upgrade request, the part of it at fault
    /// (a header name, `"Origin"`, `"Sec-WebSocket-Protocol"`, `"Host"`,
    /// `"request target"`) and why.
    pub fn invalid_request(&self) -> Option<(&str, &str)> {
        match self {
            Error::Command(e) => ws_net::invalid_request(e),
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
            Error::TlsConfig(m) => write!(f, "TLS configuration error: {m}"),
            Error::UnknownConnection(id) => write!(f, "no connection {id}"),
            Error::Proxy { proxy, error } => write!(f, "proxy {proxy}: {error}"),
            Error::Command(e) => write!(f, "{e}"),
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
            Error::Tls(e) => Some(e),
            Error::Command(e) => Some(e),
            Error::Proxy { error, .. } => Some(error),
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
    /// Unusable material is [`Error::TlsConfig`]; what rustls refuses is
    /// [`Error::Tls`].
    fn from(e: ws_net::tls::TlsError) -> Self {
        match e {
            ws_net::tls::TlsError::Rustls(e) => Error::Tls(e),
            other => Error::TlsConfig(other.to_string()),
        }
    }
}

impl From<ws_proto::Error> for Error {
    fn from(e: ws_proto::Error) -> Self {
        Error::Command(e)
    }
}

impl DriverError for Error {
    /// [`InvalidUrl`](Error::InvalidUrl) is [`ErrorKind::InvalidRequest`];
    /// [`Io`](Error::Io) is [`ErrorKind::Io`]; [`Tls`](Error::Tls) and
    /// [`TlsConfig`](Error::TlsConfig) are [`ErrorKind::Tls`];
    /// [`Command`](Error::Command) is what [`ws_net::command_kind`] says (an
    /// invalid request, backpressure, closed, or misuse);
    /// [`UnknownConnection`](Error::UnknownConnection),
    /// [`ShuttingDown`](Error::ShuttingDown) and
    /// [`LoopGone`](Error::LoopGone) are [`ErrorKind::Closed`] (nothing
    /// there to carry the command out); [`QueueFull`](Error::QueueFull) and
    /// [`TooManyConnections`](Error::TooManyConnections) are
    /// [`ErrorKind::Backpressure`] (retry later);
    /// [`NoSuchLoop`](Error::NoSuchLoop) is [`ErrorKind::Usage`];
    /// [`Proxy`](Error::Proxy) is [`ErrorKind::Proxy`].
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidUrl(_) => ErrorKind::InvalidRequest,
            Error::Io(_) => ErrorKind::Io,
            Error::Tls(_) | Error::TlsConfig(_) => ErrorKind::Tls,
            Error::Command(e) => ws_net::command_kind(e),
            Error::Proxy { .. } => ErrorKind::Proxy,
            Error::UnknownConnection(_) | Error::ShuttingDown | Error::LoopGone => {
                ErrorKind::Closed
            }
            Error::QueueFull | Error::TooManyConnections => ErrorKind::Backpressure,
            Error::NoSuchLoop(_) => ErrorKind::Usage,
        }
    }

    /// The operating system's error kind for [`Io`](Error::Io); `None`
    /// otherwise.
    fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io(e) => Some(e.kind()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(e: &Error) -> (ErrorKind, Option<io::ErrorKind>) {
        (e.kind(), e.io_kind())
    }

    #[test]
    fn invalid_url_is_an_invalid_request() {
        let e = Error::from(ws_net::url::WsUrl::parse("http://h/").expect_err("not a ws URL"));
        assert!(matches!(e, Error::InvalidUrl(_)));
        assert_eq!(kinds(&e), (ErrorKind::InvalidRequest, None));
    }

    #[test]
    fn io_keeps_its_kind() {
        let e = Error::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(
            kinds(&e),
            (ErrorKind::Io, Some(io::ErrorKind::ConnectionRefused))
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn tls_session_and_tls_config() {
        let e = Error::from(ws_net::tls::TlsError::Rustls(
            rustls::Error::NoCertificatesPresented,
        ));
        assert!(matches!(
            e,
            Error::Tls(rustls::Error::NoCertificatesPresented)
        ));
        assert_eq!(kinds(&e), (ErrorKind::Tls, None));
        assert!(std::error::Error::source(&e).is_some());
        let e = Error::from(ws_net::tls::TlsError::Config("no key".into()));
        assert!(matches!(&e, Error::TlsConfig(m) if m == "no key"));
        assert_eq!(kinds(&e), (ErrorKind::Tls, None));
        assert_eq!(e.to_string(), "TLS configuration error: no key");
    }

    #[test]
    fn command_is_classified_by_the_core_error() {
        let full = Error::from(ws_proto::Error::Backpressure {
            buffered_amount: 2,
            limit: 1,
        });
        assert!(full.is_backpressure());
        assert_eq!(kinds(&full), (ErrorKind::Backpressure, None));
        let closed = Error::from(ws_proto::Error::InvalidState {
            op: "send",
            state: ws_proto::State::Closed,
        });
        assert_eq!(closed.kind(), ErrorKind::Closed);
        let misuse = Error::from(ws_proto::Error::InvalidCloseCode(1005));
        assert!(matches!(misuse, Error::Command(_)));
        assert_eq!(misuse.kind(), ErrorKind::Usage);
        let request = Error::from(ws_proto::Error::InvalidRequest {
            field: "Origin".into(),
            reason: "a line break".into(),
        });
        assert_eq!(request.kind(), ErrorKind::InvalidRequest);
        assert_eq!(request.invalid_request(), Some(("Origin", "a line break")));
    }

    #[test]
    fn unknown_connection_shutting_down_and_loop_gone_are_closed() {
        let id = ConnId::new(0, 1, 1);
        for e in [
            Error::UnknownConnection(id),
            Error::ShuttingDown,
            Error::LoopGone,
        ] {
            assert_eq!(kinds(&e), (ErrorKind::Closed, None), "{e}");
        }
    }

    #[test]
    fn queue_full_and_too_many_connections_are_backpressure() {
        for e in [Error::QueueFull, Error::TooManyConnections] {
            assert_eq!(kinds(&e), (ErrorKind::Backpressure, None), "{e}");
        }
    }

    #[test]
    fn no_such_loop_is_usage() {
        assert_eq!(kinds(&Error::NoSuchLoop(7)), (ErrorKind::Usage, None));
    }
}
