//! Errors: local misuse ([`Error`]) versus what ended a connection
//! ([`ConnectionError`], carried by [`Closed`](crate::Closed)).

use std::fmt;

use crate::{CloseCode, State};

/// A command was refused: local misuse or backpressure. Peer misbehaviour is
/// never an `Error`; it shows up as events and a [`Closed`](crate::Closed).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The command is not allowed in the connection's current state (for
    /// example `send` before the handshake or after `close`).
    InvalidState {
        /// The command.
        op: &'static str,
        /// The state it was attempted in.
        state: State,
    },
    /// A control frame payload (ping, pong, close) over 125 bytes.
    ControlPayloadTooLong(usize),
    /// A close code that may not be sent.
    InvalidCloseCode(u16),
    /// A close reason over 123 bytes.
    CloseReasonTooLong(usize),
    /// The send queue is full: `buffered_amount` bytes are waiting and the
    /// message would take it past `limit`.
    Backpressure {
        /// Bytes queued and not yet handed to the transport.
        buffered_amount: usize,
        /// The configured limit.
        limit: usize,
    },
    /// `send` while a message started with `send_fragment` is unfinished, or a
    /// continuation without a started message.
    FragmentSequence,
    /// An invalid HTTP header name or value given to `accept` or `reject`,
    /// or found by [`ClientRequest::validate`](crate::ClientRequest::validate).
    InvalidHeader(String),
    /// A text message that is not valid UTF-8.
    InvalidUtf8,
    /// A client request that cannot be sent as given: `field` names the part
    /// (`Host`, `request target`, `Origin`, `Sec-WebSocket-Protocol`, a header
    /// name, `Sec-WebSocket-Extensions`) and `reason` says what is wrong.
    /// Nothing was sent.
    InvalidRequest {
        /// The offending part of the request.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidState { op, state } => write!(f, "cannot {op} while {state:?}"),
            Error::ControlPayloadTooLong(n) => {
                write!(f, "control frame payload of {n} bytes (at most 125)")
            }
            Error::InvalidCloseCode(c) => {
                let (what, why) = crate::CloseCode::refusal(*c);
                write!(
                    f,
                    "close code {c} ({what}) may not be sent: {why} \
                     (allowed: 1000-1003, 1007-1014, 3000-4999)"
                )
            }
            Error::CloseReasonTooLong(n) => write!(f, "close reason of {n} bytes (at most 123)"),
            Error::Backpressure {
                buffered_amount,
                limit,
            } => write!(
                f,
                "send queue full: {buffered_amount} bytes buffered, limit {limit}"
            ),
            Error::FragmentSequence => f.write_str("fragmented message out of sequence"),
            Error::InvalidHeader(h) => write!(f, "invalid header: {h}"),
            Error::InvalidUtf8 => f.write_str("text message is not valid UTF-8"),
            Error::InvalidRequest { field, reason } => {
                // The field may be a caller's header name: print it escaped, on one line.
                write!(
                    f,
                    "invalid {} in the upgrade request: {reason}",
                    field.escape_debug()
                )
            }
        }
    }
}

impl std::error::Error for Error {}

/// Why a connection ended abnormally.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The peer broke the protocol; we sent the close code it maps to.
    Protocol(ProtocolError),
    /// The opening handshake failed.
    Handshake(HandshakeError),
    /// The opening handshake took longer than `handshake_timeout`.
    HandshakeTimeout,
    /// No frame arrived for `idle_timeout`.
    IdleTimeout,
    /// The peer did not complete the closing handshake within `close_timeout`.
    CloseTimeout,
    /// The transport closed before the closing handshake.
    ConnectionLost,
    /// The driver reported a transport error.
    Io(TransportError),
}

/// A transport failure a driver reported
/// ([`handle_transport_error`](crate::Connection::handle_transport_error)): the
/// [`std::io::ErrorKind`] it had (or [`Other`](std::io::ErrorKind::Other) for non-IO
/// failures such as TLS) and its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportError {
    /// The kind of the I/O error, so callers can tell a reset from a timeout.
    pub kind: std::io::ErrorKind,
    /// What the driver said.
    pub message: String,
}

impl TransportError {
    /// A transport error of `kind`.
    pub fn new(kind: std::io::ErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<&std::io::Error> for TransportError {
    fn from(e: &std::io::Error) -> Self {
        TransportError::new(e.kind(), e.to_string())
    }
}

impl From<std::io::Error> for TransportError {
    fn from(e: std::io::Error) -> Self {
        TransportError::from(&e)
    }
}

impl From<String> for TransportError {
    /// A non-IO failure (kind `Other`).
    fn from(message: String) -> Self {
        TransportError::new(std::io::ErrorKind::Other, message)
    }
}

impl From<&str> for TransportError {
    /// A non-IO failure (kind `Other`).
    fn from(message: &str) -> Self {
        TransportError::new(std::io::ErrorKind::Other, message)
    }
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::Protocol(e) => write!(f, "protocol error: {e}"),
            ConnectionError::Handshake(e) => write!(f, "handshake failed: {e}"),
            ConnectionError::HandshakeTimeout => f.write_str("handshake timed out"),
            ConnectionError::IdleTimeout => {
                f.write_str("no message received within the idle timeout")
            }
            ConnectionError::CloseTimeout => f.write_str("closing handshake timed out"),
            ConnectionError::ConnectionLost => f.write_str("connection lost"),
            ConnectionError::Io(e) => write!(f, "transport error: {e}"),
        }
    }
}

impl std::error::Error for ConnectionError {}

/// A violation of RFC 6455 / RFC 7692 by the peer, or a limit it exceeded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A reserved opcode.
    ReservedOpcode(u8),
    /// A 64-bit length with the top bit set.
    LengthTopBit,
    /// RSV bits set that no extension negotiated.
    ReservedBits,
    /// An RSV bit of a negotiated extension on a control frame.
    CompressedControl,
    /// An RSV bit of a negotiated extension on a continuation frame.
    CompressedContinuation,
    /// A client frame without a mask.
    UnmaskedFrame,
    /// A server frame with a mask.
    MaskedFrame,
    /// A control frame with more than 125 payload bytes.
    ControlTooLong(u64),
    /// A control frame without FIN.
    FragmentedControl,
    /// A continuation frame with no message in progress.
    UnexpectedContinuation,
    /// A new text or binary frame inside a fragmented message.
    ExpectedContinuation,
    /// Invalid UTF-8 in a text message or close reason.
    InvalidUtf8,
    /// A close frame with a one-byte payload.
    CloseTooShort,
    /// A close code the peer may not send.
    InvalidCloseCode(u16),
    /// A frame over [`Limits::frame_payload_limit`](crate::Limits::frame_payload_limit).
    FrameTooLarge {
        /// The declared length.
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// A message over `max_message_size` (after inflation).
    MessageTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A message with more frames than [`Limits::fragment_limit`](crate::Limits::fragment_limit)
    /// allows for the bytes it carried (empty and tiny fragments).
    TooManyFragments {
        /// The limit in force when the fragment arrived.
        limit: usize,
    },
    /// Compressed data that does not inflate.
    BadCompressedData,
    /// A negotiated extension could not decode a message (its reason).
    ExtensionData(String),
}

impl ProtocolError {
    /// The close code sent for this error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8
            | ProtocolError::BadCompressedData
            | ProtocolError::ExtensionData(_) => CloseCode::INVALID_PAYLOAD,
            ProtocolError::FrameTooLarge { .. }
            | ProtocolError::MessageTooLarge { .. }
            | ProtocolError::TooManyFragments { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::LengthTopBit => f.write_str("64-bit length with the top bit set"),
            ProtocolError::ReservedBits => f.write_str("reserved bits set without an extension"),
            ProtocolError::CompressedControl => {
                f.write_str("extension bit (RSV1-3) set on a control frame")
            }
            ProtocolError::CompressedContinuation => {
                f.write_str("extension bit (RSV1-3) set on a continuation frame")
            }
            ProtocolError::UnmaskedFrame => f.write_str("unmasked frame from a client"),
            ProtocolError::MaskedFrame => f.write_str("masked frame from a server"),
            ProtocolError::ControlTooLong(n) => write!(f, "control frame of {n} bytes"),
            ProtocolError::FragmentedControl => f.write_str("fragmented control frame"),
            ProtocolError::UnexpectedContinuation => f.write_str("continuation without a message"),
            ProtocolError::ExpectedContinuation => {
                f.write_str("new message inside a fragmented one")
            }
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8"),
            ProtocolError::CloseTooShort => f.write_str("close frame with a 1-byte payload"),
            ProtocolError::InvalidCloseCode(c) => write!(f, "invalid close code {c}"),
            ProtocolError::FrameTooLarge { len, limit } => {
                write!(f, "frame of {len} bytes over the {limit}-byte limit")
            }
            ProtocolError::MessageTooLarge { limit } => {
                write!(f, "message over the {limit}-byte limit")
            }
            ProtocolError::TooManyFragments { limit } => {
                write!(f, "message in more than {limit} fragments")
            }
            ProtocolError::BadCompressedData => f.write_str("compressed data does not inflate"),
            ProtocolError::ExtensionData(why) => write!(f, "extension data does not decode: {why}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Why an opening handshake failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The server answered with something other than 101.
    Status {
        /// The status code.
        status: u16,
        /// The reason phrase.
        reason: String,
        /// The response headers.
        headers: Vec<(String, String)>,
        /// The start of the body (at most 1 KiB).
        body: Vec<u8>,
    },
    /// The HTTP message could not be parsed.
    Malformed(String),
    /// The head exceeded `max_handshake_bytes`.
    HeadTooLarge,
    /// The request line alone exceeded `max_handshake_bytes`.
    RequestLineTooLong,
    /// More than `max_headers` header fields.
    TooManyHeaders,
    /// A request method other than GET.
    BadMethod(String),
    /// A request that is not HTTP/1.1.
    BadHttpVersion,
    /// No `Host` header.
    MissingHost,
    /// `Upgrade: websocket` missing.
    MissingUpgrade,
    /// `Connection: upgrade` missing.
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Key` missing or not base64 of 16 bytes.
    BadKey,
    /// `Sec-WebSocket-Version` missing or not 13.
    UnsupportedVersion(String),
    /// `Sec-WebSocket-Accept` does not match the key we sent.
    BadAccept,
    /// The server picked a subprotocol we did not offer.
    UnofferedProtocol(String),
    /// The server's extension answer is invalid or was not offered.
    Extension(String),
    /// The server application rejected the upgrade with this status.
    Rejected(u16),
    /// The transport closed during the handshake.
    ConnectionClosed,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Status {
                status,
                reason,
                body,
                ..
            } => {
                write!(f, "server answered {status} {reason}")?;
                if !body.is_empty() {
                    write!(f, ": {}", String::from_utf8_lossy(body))?;
                }
                Ok(())
            }
            HandshakeError::Malformed(m) => write!(f, "malformed HTTP: {m}"),
            HandshakeError::HeadTooLarge => f.write_str("HTTP head too large"),
            HandshakeError::RequestLineTooLong => f.write_str("request line too long"),
            HandshakeError::TooManyHeaders => f.write_str("too many headers"),
            HandshakeError::BadMethod(m) => write!(f, "method {m} is not GET"),
            HandshakeError::BadHttpVersion => f.write_str("not HTTP/1.1"),
            HandshakeError::MissingHost => f.write_str("missing Host header"),
            HandshakeError::MissingUpgrade => f.write_str("missing Upgrade: websocket"),
            HandshakeError::MissingConnectionUpgrade => f.write_str("missing Connection: upgrade"),
            HandshakeError::BadKey => f.write_str("missing or invalid Sec-WebSocket-Key"),
            HandshakeError::UnsupportedVersion(v) => {
                write!(f, "unsupported Sec-WebSocket-Version {v:?}")
            }
            HandshakeError::BadAccept => f.write_str("Sec-WebSocket-Accept mismatch"),
            HandshakeError::UnofferedProtocol(p) => write!(f, "subprotocol {p:?} was not offered"),
            HandshakeError::Extension(e) => write!(f, "extension negotiation failed: {e}"),
            HandshakeError::Rejected(s) => write!(f, "rejected by the application with {s}"),
            HandshakeError::ConnectionClosed => f.write_str("connection closed during handshake"),
        }
    }
}

impl std::error::Error for HandshakeError {}
