//! Events emitted by a [`Connection`](crate::Connection).

use bytes::Bytes;

use crate::{CloseCode, ConnectionError};

/// Something the application should know about. Poll with
/// [`Connection::poll_event`](crate::Connection::poll_event).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Server role: a valid upgrade request arrived. Answer with
    /// [`accept`](crate::Connection::accept) or
    /// [`reject`](crate::Connection::reject).
    UpgradeRequest(Box<UpgradeRequest>),
    /// The handshake completed; messages may flow.
    Open(Box<OpenInfo>),
    /// A whole message (reassembled and, if compressed, inflated).
    Message(Message),
    /// Streaming mode: one data frame's payload (inflated if compressed).
    Fragment(Fragment),
    /// A ping arrived (already answered when `auto_pong` is on).
    Ping(Bytes),
    /// A pong arrived.
    Pong(Bytes),
    /// The terminal event: exactly one per connection, always last.
    Closed(Closed),
}

/// Text or binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// UTF-8 text (validated on receipt).
    Text,
    /// Binary data.
    Binary,
}

/// A complete message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Text or binary.
    pub kind: MessageKind,
    /// The payload. For text it is valid UTF-8.
    pub data: Bytes,
}

impl Message {
    /// The text of a text message (`None` for binary).
    pub fn as_text(&self) -> Option<&str> {
        match self.kind {
            MessageKind::Text => std::str::from_utf8(&self.data).ok(),
            MessageKind::Binary => None,
        }
    }
}

/// One piece of a message in streaming mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// The kind of the message this fragment belongs to.
    pub kind: MessageKind,
    /// The payload bytes. A text fragment is valid UTF-8 except that it may
    /// end (and the next begin) in the middle of a code point.
    pub data: Bytes,
    /// This fragment starts a message.
    pub first: bool,
    /// This fragment ends the message.
    pub fin: bool,
}

/// A client's upgrade request, handed to the server application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpgradeRequest {
    /// The request path, without the query.
    pub path: String,
    /// The query string (after `?`), if any.
    pub query: Option<String>,
    /// The `Host` header.
    pub host: String,
    /// The `Origin` header, if any.
    pub origin: Option<String>,
    /// Subprotocols offered, in the client's order.
    pub protocols: Vec<String>,
    /// The raw `Sec-WebSocket-Extensions` values offered.
    pub extensions: Vec<String>,
    /// All headers, in order (values decoded lossily as UTF-8).
    pub headers: Vec<(String, String)>,
}

impl UpgradeRequest {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What was agreed in the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenInfo {
    /// The agreed subprotocol.
    pub protocol: Option<String>,
    /// The agreed `Sec-WebSocket-Extensions` value, if any.
    pub extensions: Option<String>,
    /// Client role: the 101 response headers. Server role: empty.
    pub headers: Vec<(String, String)>,
}

/// Who started the closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initiator {
    /// We did (`close`, a protocol error we detected, a timeout).
    Local,
    /// The peer sent the first close frame, or dropped the transport.
    Remote,
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Closed {
    /// The close code: the peer's when it sent a close frame (1005 when that
    /// carried none), ours when we failed the connection, 1006 when the
    /// transport ended without a closing handshake.
    pub code: CloseCode,
    /// The close reason that went with `code`.
    pub reason: String,
    /// Who started it.
    pub initiator: Initiator,
    /// Both close frames were exchanged.
    pub clean: bool,
    /// What went wrong, if anything did.
    pub error: Option<ConnectionError>,
}
