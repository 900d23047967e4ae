//! Pluggable WebSocket extensions (RFC 6455 §9).
//!
//! An extension has two parts:
//!
//! - an [`ExtensionFactory`], configured once (in [`Config::extension`](crate::Config::extension),
//!   or per request in [`Accept::extensions`](crate::Accept::extensions)): it builds the client's
//!   offer, checks the server's answer, and on the server accepts or declines each offer. Every
//!   accepted negotiation yields
//! - an [`Extension`], the per-connection state that transforms messages and owns one or more
//!   RSV bits ([`Rsv`]).
//!
//! The model is per message, like permessage-deflate (RFC 7692), the first implementation of
//! this interface ([`DeflateFactory`](crate::deflate::DeflateFactory)): when sending a whole
//! message, each negotiated extension in the agreed order may transform the payload and set its
//! bits on the message's first frame; a received message whose first frame carries bits is
//! decoded, frame by frame, by the extensions owning them, in the reverse order. Frames sent
//! with [`send_fragment`](crate::Connection::send_fragment) and control frames are never
//! transformed. Negotiation rules:
//!
//! - The client offers, for each factory in order, the offers it returns (several offers of one
//!   extension are alternatives, most preferred first).
//! - The server walks the client's offers in order; the first offer of each extension that a
//!   factory of that name accepts, and whose bits no extension accepted before it owns, is
//!   accepted. The answer lists the accepted extensions in that order, which is the order they
//!   are applied to outgoing messages.
//! - The client fails the handshake when the answer is malformed, names an extension it did not
//!   offer or names one twice, when the factory refuses the answer, or when two extensions
//!   claim the same RSV bit.
//!
//! Once open, a frame with an RSV bit that no negotiated extension owns fails the connection
//! with 1002. Message limits apply to the decoded size: [`Extension::decode`] is given the
//! limit and must not make `out` longer than it (the core checks after each call too).
//!
//! # Writing an extension
//!
//! A toy extension that XORs every payload byte with a key agreed in the handshake, on RSV3:
//!
//! ```
//! use std::any::Any;
//! use std::sync::Arc;
//! use bytes::BytesMut;
//! use ws_proto::extension::{Extension, ExtensionFactory, Params, Rsv};
//! use ws_proto::{MessageKind, ProtocolError};
//!
//! #[derive(Debug)]
//! struct XorFactory;
//!
//! #[derive(Debug)]
//! struct Xor(u8);
//!
//! impl ExtensionFactory for XorFactory {
//!     fn name(&self) -> &str { "x-xor" }
//!     fn client_offers(&self) -> Vec<Params> { vec![vec![("key".into(), Some("42".into()))]] }
//!     fn client_accept(&self, answer: &Params) -> Result<Box<dyn Extension>, String> {
//!         let key = answer.iter().find(|(n, _)| n == "key").and_then(|(_, v)| v.as_deref());
//!         let key = key.and_then(|v| v.parse().ok()).ok_or("missing key")?;
//!         Ok(Box::new(Xor(key)))
//!     }
//!     fn server_accept(&self, offer: &Params) -> Option<(Params, Box<dyn Extension>)> {
//!         let key: u8 = offer.iter().find(|(n, _)| n == "key")?.1.as_deref()?.parse().ok()?;
//!         Some((vec![("key".into(), Some(key.to_string()))], Box::new(Xor(key))))
//!     }
//! }
//!
//! impl Extension for Xor {
//!     fn name(&self) -> &str { "x-xor" }
//!     fn rsv(&self) -> Rsv { Rsv::RSV3 }
//!     fn encode(&mut self, _: MessageKind, payload: &[u8], out: &mut BytesMut) -> bool {
//!         out.extend(payload.iter().map(|b| b ^ self.0));
//!         true
//!     }
//!     fn decode(&mut self, payload: &[u8], _fin: bool, out: &mut BytesMut, limit: usize)
//!         -> Result<(), ProtocolError> {
//!         if out.len() + payload.len() > limit {
//!             return Err(ProtocolError::MessageTooLarge { limit });
//!         }
//!         out.extend(payload.iter().map(|b| b ^ self.0));
//!         Ok(())
//!     }
//!     fn as_any(&self) -> &dyn Any { self }
//! }
//!
//! let cfg = ws_proto::Config::default().extension(Arc::new(XorFactory));
//! # let _ = cfg;
//! ```

mod header;
mod negotiate;

use std::any::Any;
use std::fmt;

use bytes::BytesMut;

use crate::{MessageKind, ProtocolError};

pub(crate) use header::is_tchar;
pub use header::{parse_extensions, ExtensionOffer, ExtensionParseError};
pub(crate) use negotiate::{client_accept, client_offer_header, server_negotiate, Chain};

/// Extension parameters in order: name and optional value (a token, unquoted).
pub type Params = Vec<(String, Option<String>)>;

/// A set of the three reserved bits of a frame header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rsv(u8);

impl Rsv {
    /// No bit.
    pub const NONE: Rsv = Rsv(0);
    /// RSV1 (permessage-deflate's "compressed" bit).
    pub const RSV1: Rsv = Rsv(4);
    /// RSV2.
    pub const RSV2: Rsv = Rsv(2);
    /// RSV3.
    pub const RSV3: Rsv = Rsv(1);

    /// The bits of a frame header's `rsv1`, `rsv2`, `rsv3` flags.
    pub fn from_flags(rsv1: bool, rsv2: bool, rsv3: bool) -> Rsv {
        Rsv(u8::from(rsv1) << 2 | u8::from(rsv2) << 1 | u8::from(rsv3))
    }

    /// The `rsv1`, `rsv2`, `rsv3` flags of this set.
    pub fn flags(self) -> (bool, bool, bool) {
        (self.0 & 4 != 0, self.0 & 2 != 0, self.0 & 1 != 0)
    }

    /// Both sets together.
    pub fn union(self, other: Rsv) -> Rsv {
        Rsv(self.0 | other.0)
    }

    /// The bits of `self` that are also in `other`.
    pub fn intersection(self, other: Rsv) -> Rsv {
        Rsv(self.0 & other.0)
    }

    /// Every bit of `other` is in `self`.
    pub fn contains(self, other: Rsv) -> bool {
        self.0 & other.0 == other.0
    }

    /// No bit set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The negotiating half of an extension, configured once and shared by many connections.
///
/// See the [module docs](self) for the negotiation rules and an example.
pub trait ExtensionFactory: Send + Sync + fmt::Debug {
    /// The extension token as registered, e.g. `permessage-deflate` (compared
    /// case-insensitively).
    fn name(&self) -> &str;

    /// Client role: the offers to send, most preferred first; each becomes one element of
    /// `Sec-WebSocket-Extensions`. Empty: do not offer this extension.
    ///
    /// Parameter names must be tokens and values tokens too; the core refuses to build a request
    /// otherwise.
    fn client_offers(&self) -> Vec<Params>;

    /// Client role: the server accepted with these parameters. Returns the per-connection state,
    /// or why the answer is unacceptable (the handshake then fails).
    fn client_accept(&self, answer: &Params) -> Result<Box<dyn Extension>, String>;

    /// Server role: one offer of this extension from the client. Returns the parameters to
    /// answer with and the per-connection state, or `None` to decline this offer (the next
    /// offer of the same extension, if any, is tried).
    fn server_accept(&self, offer: &Params) -> Option<(Params, Box<dyn Extension>)>;
}

/// The per-connection half of a negotiated extension: transforms whole messages, owns RSV bits.
pub trait Extension: Send + fmt::Debug {
    /// The extension token (the factory's name).
    fn name(&self) -> &str;

    /// The RSV bits this extension sets on the first frame of the messages it transformed.
    /// Must not be empty; two negotiated extensions never share a bit.
    fn rsv(&self) -> Rsv;

    /// Outbound: transforms a whole message's payload, appending the result to `out`, and
    /// returns `true`; or leaves `out` alone and returns `false` to send this message as it is
    /// (without this extension's bits; e.g. a message too small to be worth compressing).
    fn encode(&mut self, kind: MessageKind, payload: &[u8], out: &mut BytesMut) -> bool;

    /// Room to reserve in `out` before [`encode`](Self::encode) for a `len`-byte payload, so
    /// that the steady state allocates nothing (default `len`).
    fn encode_room(&self, len: usize) -> usize {
        len
    }

    /// Inbound: decodes one frame's payload of a message whose first frame carried this
    /// extension's bits, appending to `out` (which holds the decoded message so far); `fin` is
    /// set on the message's last frame.
    ///
    /// `out.len()` must stay within `limit` (the message limit): past it, return
    /// [`ProtocolError::MessageTooLarge`] without growing `out` much further (the core fails the
    /// connection with 1009). Data that does not decode is a
    /// [`ProtocolError::ExtensionData`] (1007), or another error of the caller's choosing.
    fn decode(
        &mut self,
        payload: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), ProtocolError>;

    /// Room to reserve in `out` before [`decode`](Self::decode) for a `len`-byte payload
    /// (default `len`).
    fn decode_room(&self, len: usize) -> usize {
        len
    }

    /// For a message sent to many connections ([`PreparedMessage`](crate::PreparedMessage)):
    /// `Some(key)` promises that [`encode`](Self::encode) keeps no state from message to
    /// message, so that two connections whose extension (of the same type) answers the same key
    /// produce the same bytes for the same message. The core then encodes a prepared message
    /// once per key and shares the result. `None` (the default): encode on every connection.
    ///
    /// permessage-deflate answers `Some` when our direction has no context takeover (the
    /// compressor is reset after every message): the key holds the window size, level and
    /// threshold.
    fn shared_key(&self) -> Option<u64> {
        None
    }

    /// For downcasting to the concrete type (e.g. to read an extension's agreed parameters).
    fn as_any(&self) -> &dyn Any;
}
