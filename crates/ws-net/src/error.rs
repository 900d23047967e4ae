//! One classification of driver errors, shared by every driver.

use std::io;

/// What kind of failure a driver's error is. Every driver's `Error` implements
/// [`DriverError`], so an application (or a test suite run against each driver) handles the
/// same failure the same way whichever driver it uses: the variants of each driver's enum
/// differ in detail (a socket address, a timer's name), the kinds do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The URL or the upgrade request is invalid; nothing was sent.
    InvalidRequest,
    /// The opening handshake failed: refused (an HTTP status) or malformed.
    Handshake,
    /// The peer violated the protocol; the connection was failed with a close code.
    Protocol,
    /// TLS: configuration, certificate or session failure.
    Tls,
    /// The proxy: an unusable proxy URL (given or from the environment), or a proxy that
    /// refused or botched the tunnel (see [`crate::proxy::ProxyError`]).
    Proxy,
    /// An I/O failure (name resolution, connect, read, write, reset); see
    /// [`DriverError::io_kind`].
    Io,
    /// A timer expired (connect, TLS, handshake, idle, close, write).
    Timeout,
    /// The connection is closed (or its event loop is gone): the command cannot be carried
    /// out.
    Closed,
    /// The send queue is full; retry once `buffered_amount` has gone down.
    Backpressure,
    /// A command refused for local misuse: wrong state, invalid close code, a control payload
    /// over 125 bytes, text that is not UTF-8.
    Usage,
    /// Application code failed (a callback panicked).
    Application,
}

/// The shape every driver's error has in common.
pub trait DriverError: std::error::Error {
    /// The kind of failure.
    fn kind(&self) -> ErrorKind;

    /// For [`ErrorKind::Io`] (and I/O-caused timeouts): the underlying `io::ErrorKind`.
    fn io_kind(&self) -> Option<io::ErrorKind>;
}

/// The kind of a command the core refused.
pub fn command_kind(e: &ws_proto::Error) -> ErrorKind {
    match e {
        ws_proto::Error::Backpressure { .. } => ErrorKind::Backpressure,
        ws_proto::Error::InvalidRequest { .. } => ErrorKind::InvalidRequest,
        ws_proto::Error::InvalidState {
            state: ws_proto::State::Closed | ws_proto::State::Closing,
            ..
        } => ErrorKind::Closed,
        _ => ErrorKind::Usage,
    }
}

/// When the core refused an upgrade request ([`ws_proto::Error::InvalidRequest`]), the part
/// of it at fault (a header name, `"Origin"`, `"Sec-WebSocket-Protocol"`, `"Host"`, `"request
/// target"`) and why: what every driver's `Error::invalid_request` answers for its
/// `Command` variant.
pub fn invalid_request(e: &ws_proto::Error) -> Option<(&str, &str)> {
    match e {
        ws_proto::Error::InvalidRequest { field, reason } => Some((field, reason)),
        _ => None,
    }
}

/// The kind of the reason a connection ended.
pub fn connection_kind(e: &ws_proto::ConnectionError) -> ErrorKind {
    use ws_proto::ConnectionError as C;
    match e {
        C::Protocol(_) => ErrorKind::Protocol,
        C::Handshake(_) => ErrorKind::Handshake,
        C::HandshakeTimeout | C::IdleTimeout | C::CloseTimeout => ErrorKind::Timeout,
        C::ConnectionLost | C::Io(_) => ErrorKind::Io,
        _ => ErrorKind::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_are_classified() {
        let refused = ws_proto::Error::Backpressure {
            buffered_amount: 1,
            limit: 1,
        };
        assert_eq!(command_kind(&refused), ErrorKind::Backpressure);
        let closed = ws_proto::Error::InvalidState {
            op: "send",
            state: ws_proto::State::Closed,
        };
        assert_eq!(command_kind(&closed), ErrorKind::Closed);
        assert_eq!(
            command_kind(&ws_proto::Error::InvalidCloseCode(1005)),
            ErrorKind::Usage
        );
        assert_eq!(
            connection_kind(&ws_proto::ConnectionError::IdleTimeout),
            ErrorKind::Timeout
        );
        assert_eq!(
            connection_kind(&ws_proto::ConnectionError::Io("x".into())),
            ErrorKind::Io
        );
    }
}
