//! What can go wrong: one [`Error`] for the blocking API and the event-style
//! client alike, classified like every driver's error by
//! [`DriverError`](ws_net::DriverError) ([`ErrorKind`](ws_net::ErrorKind),
//! plus the `io::ErrorKind` of an I/O failure).

use std::fmt;
use std::io;
use std::net::SocketAddr;

use ws_net::{DriverError, ErrorKind};
use ws_proto::{Closed, ConnectionError, HandshakeError, ProtocolError, State};

/// Which deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timeout {
    /// The TCP connection was not established in time.
    Connect,
    /// The TLS handshake did not complete in time.
    Tls,
    /// The proxy did not open its tunnel in time.
    Proxy,
    /// The WebSocket opening handshake (HTTP upgrade) did not complete within
    /// `Config::handshake_timeout` (counted from the start of the connection
    /// attempt).
    Handshake,
    /// No frame arrived within `Config::idle_timeout`.
    Idle,
    /// The peer did not finish the closing handshake within
    /// `Config::close_timeout`.
    Close,
    /// A socket write made no progress within the configured write timeout
    /// (`ServerOptions::write_timeout`, `ClientOptions::write_timeout`): the
    /// peer stopped reading.
    Write,
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Timeout::Connect => "TCP connect timed out",
            Timeout::Tls => "TLS handshake timed out",
            Timeout::Proxy => "proxy handshake timed out",
            Timeout::Handshake => "WebSocket handshake timed out",
            Timeout::Idle => "no message received within the idle timeout",
            Timeout::Close => "closing handshake timed out",
            Timeout::Write => "socket write timed out (the peer stopped reading)",
        })
    }
}

/// Everything that can fail in this crate.
///
/// Connection failures (what `recv` returns and what the event client's
/// `on_error` receives) say what happened: name resolution
/// ([`Resolve`](Error::Resolve)), the TCP connection
/// ([`Connect`](Error::Connect)), TLS ([`Tls`](Error::Tls)), an HTTP answer
/// other than 101 ([`Handshake`](Error::Handshake) with
/// [`HandshakeError::Status`], which carries the status and the start of the
/// body), a deadline ([`Timeout`](Error::Timeout)), or the connection being
/// lost ([`ConnectionLost`](Error::ConnectionLost)). Local misuse is
/// [`Command`](Error::Command), [`Closed`](Error::Closed),
/// [`QueueFull`](Error::QueueFull) or [`AlreadyOpened`](Error::AlreadyOpened);
/// a panic in the event client's own callbacks is
/// [`CallbackPanicked`](Error::CallbackPanicked).
///
/// Every driver's error has the same shape: [`DriverError::kind`] sorts
/// these variants into the [`ErrorKind`]s common to all drivers (protocol,
/// TLS, I/O, timeout, closed...), and [`DriverError::io_kind`] gives the
/// `io::ErrorKind` of an I/O failure.
///
/// ```
/// use ws_std::{DriverError, ErrorKind};
///
/// let refused = ws_std::connect("ws://no-such-host.invalid/", &Default::default()).unwrap_err();
/// assert_eq!(refused.kind(), ErrorKind::Io);
/// assert_eq!(refused.io_kind(), Some(std::io::ErrorKind::NotFound));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a usable `ws://` or `wss://` URL. The message
    /// ([`ws_net::url::UrlError`]'s) names the part that is wrong and why,
    /// e.g. `invalid path in the WebSocket URL "ws://h/a b": a space must
    /// be percent-encoded (write %20)`. Nothing was resolved or connected.
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
    /// TLS failed (certificate not trusted, wrong name, alert from the peer...).
    Tls(rustls::Error),
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
    /// The TLS configuration could not be built (bad PEM, bad key...).
    TlsConfig(String),
    /// The WebSocket opening handshake failed; for an HTTP answer other than
    /// 101 this is [`HandshakeError::Status`].
    Handshake(HandshakeError),
    /// A deadline passed.
    Timeout(Timeout),
    /// The transport ended (EOF, reset, broken pipe) before the closing
    /// handshake.
    ConnectionLost {
        /// The operating system's error, when there was one (none for a
        /// plain EOF).
        source: Option<io::Error>,
    },
    /// The peer broke the protocol (we sent it the matching close code,
    /// [`ProtocolError::close_code`]).
    Protocol(ProtocolError),
    /// Another I/O error.
    Io(io::Error),
    /// The protocol core refused a command (invalid close code, control
    /// payload too long...), or refused to start a client connection because
    /// the upgrade request is invalid: [`ws_proto::Error::InvalidRequest`],
    /// whose `field` names the header, `Origin`, `Sec-WebSocket-Protocol`,
    /// `Host` or request target at fault (see [`Error::invalid_request`]).
    /// An invalid request is refused before any socket is opened.
    Command(ws_proto::Error),
    /// The client-side send queue is full: `buffered` bytes are waiting and
    /// the message would take it past `limit`.
    QueueFull {
        /// Bytes already waiting ([`buffered_amount`](crate::WebSocketClient::buffered_amount)).
        buffered: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The connection is closing or closed: nothing more can be sent, and
    /// everything has been received.
    Closed,
    /// [`WebSocketClient::open`](crate::WebSocketClient::open) was called a
    /// second time: a client is opened once and cannot be reopened.
    AlreadyOpened,
    /// `send_as_text` was given bytes that are not UTF-8.
    InvalidUtf8,
    /// An application callback of the event client panicked (the panic's
    /// message, when it was a string): the connection was failed (closed
    /// with 1011 when the transport was still up).
    CallbackPanicked(String),
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
            Error::Proxy { proxy, error } => write!(f, "proxy {proxy}: {error}"),
            Error::Redirect(e) => e.fmt(f),
            Error::TlsConfig(m) => write!(f, "TLS configuration error: {m}"),
            Error::Handshake(e) => write!(f, "WebSocket handshake failed: {e}"),
            Error::Timeout(t) => t.fmt(f),
            Error::ConnectionLost { source: None } => f.write_str("connection lost"),
            Error::ConnectionLost { source: Some(e) } => write!(f, "connection lost: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            // "invalid X in the upgrade request: ..." says it all.
            Error::Command(e @ ws_proto::Error::InvalidRequest { .. }) => e.fmt(f),
            Error::Command(e) => write!(f, "command refused: {e}"),
            Error::QueueFull { buffered, limit } => write!(
                f,
                "send queue full: {buffered} bytes buffered, limit {limit}"
            ),
            Error::Closed => f.write_str("the connection is closing or closed"),
            Error::AlreadyOpened => f.write_str(
                "this client was already opened; a WebSocketClient cannot be reopened, create a new one",
            ),
            Error::InvalidUtf8 => f.write_str("text message is not valid UTF-8"),
            Error::CallbackPanicked(m) => write!(f, "an application callback panicked: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Resolve { source, .. } | Error::Connect { source, .. } => Some(source),
            Error::ConnectionLost { source: Some(e) } | Error::Io(e) => Some(e),
            Error::Tls(e) => Some(e),
            Error::Proxy { error, .. } => Some(error),
            Error::Redirect(e) => Some(e),
            Error::Handshake(e) => Some(e),
            Error::Protocol(e) => Some(e),
            Error::Command(e) => Some(e),
            _ => None,
        }
    }
}

impl DriverError for Error {
    /// [`InvalidUrl`](Error::InvalidUrl) is [`ErrorKind::InvalidRequest`];
    /// [`Resolve`](Error::Resolve), [`Connect`](Error::Connect),
    /// [`ConnectionLost`](Error::ConnectionLost) and [`Io`](Error::Io) are
    /// [`ErrorKind::Io`]; [`Tls`](Error::Tls) and
    /// [`TlsConfig`](Error::TlsConfig) are [`ErrorKind::Tls`];
    /// [`Command`](Error::Command) is what [`ws_net::command_kind`] says
    /// (an invalid request, backpressure, closed, or misuse);
    /// [`QueueFull`](Error::QueueFull) is [`ErrorKind::Backpressure`];
    /// [`AlreadyOpened`](Error::AlreadyOpened) and
    /// [`InvalidUtf8`](Error::InvalidUtf8) are [`ErrorKind::Usage`];
    /// [`CallbackPanicked`](Error::CallbackPanicked) is
    /// [`ErrorKind::Application`]; the others are the kind of their name.
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidUrl(_) => ErrorKind::InvalidRequest,
            Error::Resolve { .. }
            | Error::Connect { .. }
            | Error::ConnectionLost { .. }
            | Error::Io(_) => ErrorKind::Io,
            Error::Tls(_) | Error::TlsConfig(_) => ErrorKind::Tls,
            Error::Handshake(_) | Error::Redirect(_) => ErrorKind::Handshake,
            Error::Proxy { .. } => ErrorKind::Proxy,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Protocol(_) => ErrorKind::Protocol,
            Error::Command(e) => ws_net::command_kind(e),
            Error::QueueFull { .. } => ErrorKind::Backpressure,
            Error::Closed => ErrorKind::Closed,
            Error::AlreadyOpened | Error::InvalidUtf8 => ErrorKind::Usage,
            Error::CallbackPanicked(_) => ErrorKind::Application,
        }
    }

    /// The operating system's error kind for [`Resolve`](Error::Resolve),
    /// [`Connect`](Error::Connect), [`Io`](Error::Io) and
    /// [`ConnectionLost`](Error::ConnectionLost) (`UnexpectedEof` for a
    /// plain EOF); `TimedOut` for the timeouts of socket operations
    /// ([`Timeout::Connect`], [`Timeout::Tls`], [`Timeout::Write`]); `None`
    /// otherwise (the protocol's own timers included).
    fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Resolve { source, .. } | Error::Connect { source, .. } => Some(source.kind()),
            Error::Io(e) | Error::ConnectionLost { source: Some(e) } => Some(e.kind()),
            Error::ConnectionLost { source: None } => Some(io::ErrorKind::UnexpectedEof),
            Error::Timeout(Timeout::Connect | Timeout::Tls | Timeout::Proxy | Timeout::Write) => {
                Some(io::ErrorKind::TimedOut)
            }
            _ => None,
        }
    }
}

impl From<ws_proto::Error> for Error {
    /// A refused command; "not allowed while closing/closed" becomes
    /// [`Error::Closed`].
    fn from(e: ws_proto::Error) -> Self {
        match e {
            ws_proto::Error::InvalidState {
                state: State::Closing | State::Closed,
                ..
            } => Error::Closed,
            e => Error::Command(e),
        }
    }
}

impl From<ws_net::redirect::RedirectError> for Error {
    fn from(e: ws_net::redirect::RedirectError) -> Self {
        Error::Redirect(e)
    }
}

impl From<ws_net::url::UrlError> for Error {
    fn from(e: ws_net::url::UrlError) -> Self {
        Error::InvalidUrl(e.to_string())
    }
}

impl Error {
    /// When the upgrade request was refused before anything was sent, the
    /// part of it at fault (a header name, `"Origin"`,
    /// `"Sec-WebSocket-Protocol"`, `"Host"`, `"request target"`) and why.
    pub fn invalid_request(&self) -> Option<(&str, &str)> {
        match self {
            Error::Command(e) => ws_net::invalid_request(e),
            _ => None,
        }
    }

    /// Classifies an I/O error from the transport: resets, broken pipes and
    /// unexpected EOFs are [`Error::ConnectionLost`].
    /// A failed socket write: a write timeout (`WouldBlock`/`TimedOut` on a
    /// blocking socket) is [`Timeout::Write`].
    pub(crate) fn from_write_io(e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout(Timeout::Write),
            _ => Error::from_io(e),
        }
    }

    pub(crate) fn from_io(e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected => Error::ConnectionLost { source: Some(e) },
            _ => Error::Io(e),
        }
    }

    /// The error that ended a connection, if it ended with one. `detail` is
    /// the driver's own record of a transport failure (the core keeps only
    /// its `io::ErrorKind` and message).
    pub(crate) fn from_closed(closed: &Closed, detail: Option<Error>) -> Option<Error> {
        let e = closed.error.as_ref()?;
        Some(Error::from_connection_error(e, detail))
    }

    /// The error for the core's reason a connection ended; an I/O failure
    /// keeps its `io::ErrorKind` (the driver's own record, `detail`, wins
    /// when there is one).
    fn from_connection_error(e: &ConnectionError, detail: Option<Error>) -> Error {
        match e {
            ConnectionError::Protocol(p) => Error::Protocol(p.clone()),
            ConnectionError::Handshake(h) => Error::Handshake(h.clone()),
            ConnectionError::HandshakeTimeout => Error::Timeout(Timeout::Handshake),
            ConnectionError::IdleTimeout => Error::Timeout(Timeout::Idle),
            ConnectionError::CloseTimeout => Error::Timeout(Timeout::Close),
            ConnectionError::ConnectionLost => Error::ConnectionLost { source: None },
            ConnectionError::Io(e) => {
                detail.unwrap_or_else(|| Error::Io(io::Error::new(e.kind, e.message.clone())))
            }
            other => detail.unwrap_or_else(|| Error::Io(io::Error::other(other.to_string()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: io::ErrorKind) -> io::Error {
        io::Error::new(kind, "test")
    }

    /// `(kind, io_kind)` of an error.
    fn shape(e: &Error) -> (ErrorKind, Option<io::ErrorKind>) {
        (e.kind(), e.io_kind())
    }

    #[test]
    fn invalid_url_is_an_invalid_request() {
        let e =
            Error::from(ws_net::url::WsUrl::parse("http://h/").expect_err("not a WebSocket URL"));
        assert!(matches!(e, Error::InvalidUrl(_)));
        assert_eq!(shape(&e), (ErrorKind::InvalidRequest, None));
    }

    #[test]
    fn resolve_keeps_the_resolvers_kind() {
        let e = Error::Resolve {
            host: "h".into(),
            source: io(io::ErrorKind::NotFound),
        };
        assert_eq!(shape(&e), (ErrorKind::Io, Some(io::ErrorKind::NotFound)));
    }

    #[test]
    fn connect_keeps_the_sockets_kind() {
        let e = Error::Connect {
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            source: io(io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(
            shape(&e),
            (ErrorKind::Io, Some(io::ErrorKind::ConnectionRefused))
        );
    }

    #[test]
    fn tls_and_tls_config_are_tls() {
        let e = Error::Tls(rustls::Error::HandshakeNotComplete);
        assert_eq!(shape(&e), (ErrorKind::Tls, None));
        let e = Error::TlsConfig("no key".into());
        assert_eq!(shape(&e), (ErrorKind::Tls, None));
    }

    #[test]
    fn handshake_is_handshake() {
        let e = Error::Handshake(HandshakeError::Malformed("x".into()));
        assert_eq!(shape(&e), (ErrorKind::Handshake, None));
    }

    #[test]
    fn timeouts_are_timeouts_and_socket_ones_say_timed_out() {
        for (t, io_kind) in [
            (Timeout::Connect, Some(io::ErrorKind::TimedOut)),
            (Timeout::Tls, Some(io::ErrorKind::TimedOut)),
            (Timeout::Write, Some(io::ErrorKind::TimedOut)),
            (Timeout::Handshake, None),
            (Timeout::Idle, None),
            (Timeout::Close, None),
        ] {
            assert_eq!(
                shape(&Error::Timeout(t)),
                (ErrorKind::Timeout, io_kind),
                "{t:?}"
            );
        }
    }

    #[test]
    fn connection_lost_is_io_with_its_kind_or_unexpected_eof() {
        let e = Error::ConnectionLost {
            source: Some(io(io::ErrorKind::ConnectionReset)),
        };
        assert_eq!(
            shape(&e),
            (ErrorKind::Io, Some(io::ErrorKind::ConnectionReset))
        );
        let e = Error::ConnectionLost { source: None };
        assert_eq!(
            shape(&e),
            (ErrorKind::Io, Some(io::ErrorKind::UnexpectedEof))
        );
    }

    #[test]
    fn protocol_is_protocol() {
        let e = Error::Protocol(ProtocolError::UnmaskedFrame);
        assert_eq!(shape(&e), (ErrorKind::Protocol, None));
    }

    #[test]
    fn io_keeps_its_kind() {
        let e = Error::Io(io(io::ErrorKind::PermissionDenied));
        assert_eq!(
            shape(&e),
            (ErrorKind::Io, Some(io::ErrorKind::PermissionDenied))
        );
    }

    #[test]
    fn command_is_classified_by_ws_net() {
        let e = Error::Command(ws_proto::Error::InvalidCloseCode(1005));
        assert_eq!(shape(&e), (ErrorKind::Usage, None));
        let e = Error::Command(ws_proto::Error::InvalidRequest {
            field: "Origin".into(),
            reason: "x".into(),
        });
        assert_eq!(shape(&e), (ErrorKind::InvalidRequest, None));
        let e = Error::Command(ws_proto::Error::Backpressure {
            buffered_amount: 2,
            limit: 1,
        });
        assert_eq!(shape(&e), (ErrorKind::Backpressure, None));
    }

    #[test]
    fn queue_full_is_backpressure() {
        let e = Error::QueueFull {
            buffered: 2,
            limit: 1,
        };
        assert_eq!(shape(&e), (ErrorKind::Backpressure, None));
    }

    #[test]
    fn closed_is_closed_also_when_the_core_says_so() {
        assert_eq!(shape(&Error::Closed), (ErrorKind::Closed, None));
        let e = Error::from(ws_proto::Error::InvalidState {
            op: "send",
            state: State::Closing,
        });
        assert_eq!(shape(&e), (ErrorKind::Closed, None));
    }

    #[test]
    fn already_opened_and_invalid_utf8_are_usage() {
        assert_eq!(shape(&Error::AlreadyOpened), (ErrorKind::Usage, None));
        assert_eq!(shape(&Error::InvalidUtf8), (ErrorKind::Usage, None));
    }

    #[test]
    fn callback_panicked_is_application() {
        let e = Error::CallbackPanicked("boom".into());
        assert_eq!(shape(&e), (ErrorKind::Application, None));
    }

    #[test]
    fn a_transport_error_from_the_core_keeps_its_io_kind() {
        let end = Error::from_connection_error;
        let reset = ws_proto::TransportError::new(io::ErrorKind::ConnectionReset, "reset");
        let e = end(&ConnectionError::Io(reset), None);
        assert!(matches!(&e, Error::Io(io) if io.to_string() == "reset"));
        assert_eq!(
            shape(&e),
            (ErrorKind::Io, Some(io::ErrorKind::ConnectionReset))
        );
        // The driver's own record, when it has one, wins.
        let detail = Error::Timeout(Timeout::Write);
        let e = end(&ConnectionError::Io("write timed out".into()), Some(detail));
        assert_eq!(
            shape(&e),
            (ErrorKind::Timeout, Some(io::ErrorKind::TimedOut))
        );
        let e = end(&ConnectionError::ConnectionLost, None);
        assert_eq!(
            shape(&e),
            (ErrorKind::Io, Some(io::ErrorKind::UnexpectedEof))
        );
        let e = end(&ConnectionError::IdleTimeout, None);
        assert_eq!(shape(&e), (ErrorKind::Timeout, None));
    }
}
