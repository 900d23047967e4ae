//! [`Error`]: what can go wrong, classified like every driver's errors ([`DriverError`]).

use std::fmt;
use std::io;
use std::net::SocketAddr;

use ws_net::tls::TlsError;
use ws_net::{DriverError, ErrorKind};
use ws_proto::{ConnectionError, State};

/// What went wrong.
///
/// The variant names are ws-std's where the concept is the same (`InvalidUrl`, `Resolve`,
/// `Connect`, `Tls`, `TlsConfig`, `Io`, `Command`, `Closed`); how a connection ended is the
/// core's own [`ConnectionError`], whole, in [`Error::Connection`]. Every variant has a
/// [`DriverError::kind`], the classification shared by all the workspace's drivers, and I/O
/// failures keep their [`io::ErrorKind`] ([`DriverError::io_kind`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The URL given to [`connect`](crate::connect) is not a usable `ws://` or `wss://` URL.
    /// The message ([`ws_net::url::UrlError`]'s) names the part that is wrong and why, e.g.
    /// `invalid path in the WebSocket URL "ws://h/a b": ...`. Nothing was resolved or
    /// connected.
    InvalidUrl(String),
    /// The host name could not be resolved.
    Resolve {
        /// The host name.
        host: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// The TCP connection could not be made (refused, unreachable...).
    Connect {
        /// The last address tried.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// TLS failed: the server's certificate is not trusted or not for this name, an alert
    /// from the peer, a record that is not TLS.
    Tls(rustls::Error),
    /// The TLS configuration could not be built (bad PEM, a root the store refuses, a host
    /// that is no valid server name).
    TlsConfig(String),
    /// Another I/O failure while connecting (the TLS handshake's transport, socket options).
    Io(io::Error),
    /// The proxy: its URL is unusable (given, or from an environment variable), or it did
    /// not open the tunnel (refused, wrong credentials, a malformed or oversized answer).
    Proxy {
        /// The proxy (`scheme://host:port`, never its credentials), or the variable's value
        /// (password hidden) when it could not be parsed.
        proxy: String,
        /// What went wrong.
        error: ws_net::proxy::ProxyError,
    },
    /// A redirect of the opening handshake was not followed: a loop, more than
    /// `max_redirects`, a downgrade from `wss://` to `ws://`, a missing or unusable
    /// `Location`. The message names the chain of URLs.
    Redirect(ws_net::redirect::RedirectError),
    /// The core refused a command: local misuse (an invalid close code, a too-long ping, a text
    /// message that is not UTF-8, an accept or reject it cannot answer), or an invalid upgrade
    /// request ([`ws_proto::Error::InvalidRequest`], whose `field` names the header, `Origin`,
    /// `Sec-WebSocket-Protocol`, `Host` or request target at fault; see
    /// [`Error::invalid_request`]). A client's invalid request is refused before any name is
    /// resolved or any socket opened.
    Command(ws_proto::Error),
    /// The connection is closed (or closing): nothing more can be sent. See
    /// [`WebSocketStream::close_info`](crate::WebSocketStream::close_info).
    Closed,
    /// The application's `decide` callback panicked (its message); the client was answered 500.
    CallbackPanicked(String),
    /// The connection ended abnormally: a handshake failure (a client sees the server's status
    /// and body in [`HandshakeError::Status`](crate::HandshakeError::Status); a server that
    /// rejected sees [`HandshakeError::Rejected`](crate::HandshakeError::Rejected)), a
    /// protocol error by the peer, a timeout (for [`connect`](crate::connect),
    /// [`HandshakeTimeout`](ConnectionError::HandshakeTimeout) bounds TCP connect, TLS and the
    /// upgrade together), a lost or failed transport.
    Connection(ConnectionError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl(m) => f.write_str(m),
            Error::Resolve { host, source } => write!(f, "cannot resolve host {host:?}: {source}"),
            Error::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            Error::Tls(e) => match ws_net::tls::untrusted_hint(e) {
                Some(hint) => write!(f, "TLS error: {e}; {hint}"),
                None => write!(f, "TLS error: {e}"),
            },
            Error::TlsConfig(m) => write!(f, "TLS configuration error: {m}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Proxy { proxy, error } => write!(f, "proxy {proxy}: {error}"),
            Error::Redirect(e) => e.fmt(f),
            // "invalid X in the upgrade request: ..." says it all.
            Error::Command(e @ ws_proto::Error::InvalidRequest { .. }) => e.fmt(f),
            Error::Command(e) => write!(f, "command refused: {e}"),
            Error::Closed => f.write_str("the connection is closing or closed"),
            Error::CallbackPanicked(msg) => write!(f, "the application's callback panicked: {msg}"),
            Error::Connection(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Resolve { source, .. } | Error::Connect { source, .. } | Error::Io(source) => {
                Some(source)
            }
            Error::Tls(e) => Some(e),
            Error::Proxy { error, .. } => Some(error),
            Error::Redirect(e) => Some(e),
            Error::Command(e) => Some(e),
            Error::Connection(e) => Some(e),
            Error::InvalidUrl(_)
            | Error::TlsConfig(_)
            | Error::Closed
            | Error::CallbackPanicked(_) => None,
        }
    }
}

impl DriverError for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidUrl(_) => ErrorKind::InvalidRequest,
            Error::Resolve { .. } | Error::Connect { .. } | Error::Io(_) => ErrorKind::Io,
            Error::Tls(_) | Error::TlsConfig(_) => ErrorKind::Tls,
            Error::Proxy { .. } => ErrorKind::Proxy,
            Error::Redirect(_) => ErrorKind::Handshake,
            Error::Command(e) => ws_net::command_kind(e),
            Error::Closed => ErrorKind::Closed,
            Error::CallbackPanicked(_) => ErrorKind::Application,
            Error::Connection(e) => ws_net::connection_kind(e),
        }
    }

    fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Resolve { source, .. } | Error::Connect { source, .. } | Error::Io(source) => {
                Some(source.kind())
            }
            // The driver hands the transport's io::Error to the core, which keeps its kind.
            Error::Connection(ConnectionError::Io(t)) => Some(t.kind),
            _ => None,
        }
    }
}

impl From<ws_proto::Error> for Error {
    /// A refused command; "not allowed while closing/closed" becomes [`Error::Closed`].
    fn from(e: ws_proto::Error) -> Error {
        match e {
            ws_proto::Error::InvalidState {
                state: State::Closing | State::Closed,
                ..
            } => Error::Closed,
            e => Error::Command(e),
        }
    }
}

impl From<ConnectionError> for Error {
    fn from(e: ConnectionError) -> Error {
        Error::Connection(e)
    }
}

impl From<ws_net::redirect::RedirectError> for Error {
    fn from(e: ws_net::redirect::RedirectError) -> Error {
        Error::Redirect(e)
    }
}

impl From<ws_net::url::UrlError> for Error {
    fn from(e: ws_net::url::UrlError) -> Error {
        Error::InvalidUrl(e.to_string())
    }
}

impl From<TlsError> for Error {
    /// Unusable material is [`Error::TlsConfig`]; what rustls refuses is [`Error::Tls`].
    fn from(e: TlsError) -> Error {
        match e {
            TlsError::Rustls(e) => Error::Tls(e),
            other => Error::TlsConfig(other.to_string()),
        }
    }
}

impl Error {
    /// When the upgrade request was refused before anything was sent, the part of it at fault
    /// (a header name, `"Origin"`, `"Sec-WebSocket-Protocol"`, `"Host"`, `"request target"`)
    /// and why.
    pub fn invalid_request(&self) -> Option<(&str, &str)> {
        match self {
            Error::Command(e) => ws_net::invalid_request(e),
            _ => None,
        }
    }

    /// An I/O error of the TLS handshake: the rustls error inside it (tokio-rustls wraps it
    /// in an `io::Error`) is [`Error::Tls`], the rest is [`Error::Io`].
    pub(crate) fn from_tls_io(e: io::Error) -> Error {
        let tls = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .cloned();
        match tls {
            Some(t) => Error::Tls(t),
            None => Error::Io(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_kind_and_io_errors_keep_theirs() {
        let io = |k| io::Error::new(k, "x");
        let cases: Vec<(Error, ErrorKind, Option<io::ErrorKind>)> = vec![
            (
                Error::InvalidUrl("u".into()),
                ErrorKind::InvalidRequest,
                None,
            ),
            (
                Error::Resolve {
                    host: "h".into(),
                    source: io(io::ErrorKind::NotFound),
                },
                ErrorKind::Io,
                Some(io::ErrorKind::NotFound),
            ),
            (
                Error::Connect {
                    addr: "127.0.0.1:1".parse().unwrap(),
                    source: io(io::ErrorKind::ConnectionRefused),
                },
                ErrorKind::Io,
                Some(io::ErrorKind::ConnectionRefused),
            ),
            (
                Error::Tls(rustls::Error::HandshakeNotComplete),
                ErrorKind::Tls,
                None,
            ),
            (Error::TlsConfig("pem".into()), ErrorKind::Tls, None),
            (
                Error::Io(io(io::ErrorKind::TimedOut)),
                ErrorKind::Io,
                Some(io::ErrorKind::TimedOut),
            ),
            (
                Error::Command(ws_proto::Error::InvalidRequest {
                    field: "Origin".into(),
                    reason: "control bytes".into(),
                }),
                ErrorKind::InvalidRequest,
                None,
            ),
            (
                Error::Command(ws_proto::Error::Backpressure {
                    buffered_amount: 1,
                    limit: 1,
                }),
                ErrorKind::Backpressure,
                None,
            ),
            (
                Error::Command(ws_proto::Error::InvalidCloseCode(1005)),
                ErrorKind::Usage,
                None,
            ),
            (Error::Closed, ErrorKind::Closed, None),
            (
                Error::Connection(ConnectionError::IdleTimeout),
                ErrorKind::Timeout,
                None,
            ),
            (
                Error::Connection(ConnectionError::ConnectionLost),
                ErrorKind::Io,
                None,
            ),
            (
                Error::Connection(ConnectionError::Io(ws_proto::TransportError::new(
                    io::ErrorKind::ConnectionReset,
                    "reset",
                ))),
                ErrorKind::Io,
                Some(io::ErrorKind::ConnectionReset),
            ),
        ];
        for (e, kind, io_kind) in cases {
            assert_eq!((e.kind(), e.io_kind()), (kind, io_kind), "{e:?}");
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn a_refused_command_on_a_closed_connection_is_closed() {
        let e = Error::from(ws_proto::Error::InvalidState {
            op: "send",
            state: State::Closed,
        });
        assert!(matches!(e, Error::Closed), "{e:?}");
    }

    #[test]
    fn tls_errors_inside_io_errors_are_tls() {
        let wrapped = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(matches!(Error::from_tls_io(wrapped), Error::Tls(_)));
        let plain = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(matches!(Error::from_tls_io(plain), Error::Io(_)));
    }
}
