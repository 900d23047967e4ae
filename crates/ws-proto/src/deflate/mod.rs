//! permessage-deflate (RFC 7692): negotiation, compression and bounded decompression.
//!
//! This module is sans-IO like the rest of the crate: it turns header values into agreed
//! parameters and message payloads into compressed payloads (and back). It never touches a
//! socket, a clock or a global.
//!
//! # Pieces
//!
//! - [`parse_extensions`] reads `Sec-WebSocket-Extensions` header values (RFC 6455 §9.1).
//! - Client role: [`client_offer_header`] renders the offers of a [`DeflateConfig`];
//!   [`client_accept_response`] validates the server's answer (RFC 7692 §5, §7.1) and yields the
//!   agreed [`DeflateParams`], `None` when the server declined, or an error that must fail the
//!   connection.
//! - Server role: [`server_negotiate`] picks the first acceptable offer and renders the answer,
//!   or declines (RFC 7692 §5, §7.1).
//! - [`Compressor`] compresses outgoing messages (RFC 7692 §7.2.1); [`Decompressor`] inflates
//!   incoming ones (§7.2.2) in bounded steps, so a small "decompression bomb" can never make us
//!   allocate more than the caller's limit plus one step.
//!
//! # Window bits 8
//!
//! RFC 7692 lets a peer ask us to compress with an LZ77 window of 2^8 = 256 bytes
//! (`server_max_window_bits=8` from a client, `client_max_window_bits=8` from a server). zlib (and
//! zlib-rs, which mirrors it) refuses window bits 8 for raw deflate streams, and its zlib-wrapped
//! variant silently upgrades 8 to 9; `flate2` only accepts 9..=15 for both directions. We
//! therefore compress with 9 bits whenever 8 was agreed. This is safe because zlib never emits a
//! match farther back than `MAX_DIST = w_size - MIN_LOOKAHEAD`, where `MIN_LOOKAHEAD =
//! MAX_MATCH + MIN_MATCH + 1 = 258 + 3 + 1 = 262`: with a 512-byte window the farthest
//! back-reference is 512 - 262 = 250 bytes, which fits inside the 256-byte window the peer
//! inflates with. Every zlib-rs strategy (stored, quick, fast, medium, slow, RLE, Huffman-only)
//! checks its candidate matches against that bound. The unit test
//! `window_bits_9_output_fits_a_256_byte_window` proves it for our build: it decodes our
//! compressor's output at every level with an independent test-only DEFLATE decoder that records
//! the largest back-reference distance: it is exactly 250 at most levels, never more, while the
//! same data compressed with 15 bits goes past 256 (so the check can fail). Inflating our output
//! with zlib-rs set to 8 bits would prove nothing: zlib-rs accepts 8 for raw inflate but always
//! allocates a 32 KiB window and decodes farther references too (flate2 refuses 8 anyway). For
//! inflating, 8 agreed bits become 9 as well: a larger inflate window than the sender's is
//! always safe.
//!
//! # Context takeover
//!
//! With context takeover, each side keeps its LZ77 window between messages, so repeated content
//! compresses to a few bytes. The `*_no_context_takeover` parameters make a side reset after
//! every message: [`Compressor`] then produces identical bytes for identical messages, and
//! [`Decompressor`] resets after each message of a peer that promised not to refer back.

mod codec;
mod extension;
mod negotiate;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

pub use crate::extension::{parse_extensions, ExtensionOffer, ExtensionParseError};
use crate::extension::{ExtensionFactory, Params};
use codec::deflate_room;
#[cfg(test)]
use codec::write_stored_blocks;
pub use codec::{Compressor, Decompressor};
pub use extension::{DeflateExtension, DeflateFactory};
use negotiate::*;
pub use negotiate::{client_accept_response, client_offer_header, server_negotiate};

/// The registered extension name, as it appears in `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The window bits used when a parameter is absent (RFC 7692 §7.1.2: 2^15 = 32 KiB).
pub const DEFAULT_WINDOW_BITS: u8 = 15;

/// The smallest window bits RFC 7692 allows.
pub const MIN_WINDOW_BITS: u8 = 8;

/// Output reserved per inflate step. [`Decompressor::decompress`] never grows its output buffer
/// past `limit + 1` bytes, and never reserves more than this beyond what it has produced.
pub const INFLATE_STEP: usize = 32 * 1024;

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// The four octets a sync flush ends with; removed by the sender, appended by the receiver
/// (RFC 7692 §7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Largest output reserved per deflate step.
const DEFLATE_STEP: usize = 64 * 1024;

/// How a client offer states `client_max_window_bits` (RFC 7692 §7.1.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientWindowBits {
    /// Not offered: the server must not ask us to limit our window.
    #[default]
    Absent,
    /// Offered without a value: we can limit our window to whatever the server asks.
    NoValue,
    /// Offered with a value (8..=15): a hint that we will use at most this window; the server may
    /// answer with this value or a smaller one.
    Bits(u8),
}

/// One permessage-deflate offer a client sends; a client may send several, in preference order.
///
/// The [`Default`] offer is the one browsers send: `permessage-deflate; client_max_window_bits`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateOffer {
    /// Ask the server to reset its compression context after every message.
    pub server_no_context_takeover: bool,
    /// Announce that we will reset our compression context after every message.
    pub client_no_context_takeover: bool,
    /// Ask the server to compress with at most this window (8..=15; out-of-range values are
    /// clamped). `None` leaves the server free to use any window.
    pub server_max_window_bits: Option<u8>,
    /// Whether (and how) we allow the server to limit our compression window.
    pub client_max_window_bits: ClientWindowBits,
}

impl Default for DeflateOffer {
    fn default() -> Self {
        DeflateOffer {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: ClientWindowBits::NoValue,
        }
    }
}

/// Local permessage-deflate settings and policy, for both roles.
///
/// Window bits outside 8..=15 are clamped into that range, and levels above 9 are read as 9.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Client role: the offers to send, in preference order. Empty means "do not offer".
    /// Default: one [`DeflateOffer::default`] (`permessage-deflate; client_max_window_bits`).
    pub offers: Vec<DeflateOffer>,
    /// Server role: the largest window we are willing to compress with (default 15). Answered as
    /// `server_max_window_bits` when below 15 or when the client asked for a limit.
    pub server_max_window_bits: u8,
    /// Server role: the window we ask the client to compress with, when its offer allows it
    /// (default 15, meaning "do not ask").
    pub client_max_window_bits: u8,
    /// Server role: always answer with `server_no_context_takeover` (default `false`).
    pub server_no_context_takeover: bool,
    /// Server role: always ask the client for `client_no_context_takeover` (default `false`).
    pub client_no_context_takeover: bool,
    /// Compression level, 0..=9 (default 1: zlib-rs's fastest strategy; it compresses typical
    /// JSON or text several hundred MB/s while keeping most of the size win of higher levels).
    pub level: u32,
    /// Messages shorter than this many bytes are sent uncompressed (default 32); see
    /// [`DeflateConfig::should_compress`].
    pub threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            offers: vec![DeflateOffer::default()],
            server_max_window_bits: DEFAULT_WINDOW_BITS,
            client_max_window_bits: DEFAULT_WINDOW_BITS,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            level: 1,
            threshold: 32,
        }
    }
}

impl DeflateConfig {
    /// Whether a message of `len` bytes should be compressed (`len >= threshold`).
    ///
    /// Skipping compression for a message is always allowed by RFC 7692 (the frame simply has
    /// RSV1 clear), and leaves the compression context untouched.
    pub fn should_compress(&self, len: usize) -> bool {
        len >= self.threshold
    }
}

/// The agreed permessage-deflate parameters (RFC 7692 §7.1), as seen by one side.
///
/// The [`Default`] value is what a bare `permessage-deflate` answer means: context takeover on
/// both sides and 15-bit windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compression context after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after every message.
    pub client_no_context_takeover: bool,
    /// The largest window the server compresses with (8..=15).
    pub server_max_window_bits: u8,
    /// The largest window the client compresses with (8..=15).
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    fn default() -> Self {
        DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: DEFAULT_WINDOW_BITS,
            client_max_window_bits: DEFAULT_WINDOW_BITS,
        }
    }
}

/// Which end of the connection we are; decides which half of [`DeflateParams`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We opened the connection: we compress with the `client_*` parameters.
    Client,
    /// We accepted the connection: we compress with the `server_*` parameters.
    Server,
}

/// Why a client must fail the connection after the server's extension answer (RFC 7692 §5,
/// §7.1). Every variant maps to "fail the WebSocket connection" (the handshake is rejected).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The header values do not parse.
    Malformed(ExtensionParseError),
    /// The server answered with an extension we did not offer.
    UnexpectedExtension(String),
    /// The server answered permessage-deflate more than once.
    DuplicateExtension,
    /// The answer has a parameter RFC 7692 does not define for a response.
    UnknownParameter(String),
    /// The answer has the same parameter twice.
    DuplicateParameter(String),
    /// A parameter has a missing, superfluous or out-of-range value.
    InvalidValue(String),
    /// The answer is well formed but fits none of our offers (e.g. `client_max_window_bits`
    /// we did not offer, or a `server_max_window_bits` above the one we asked for).
    Incompatible,
}

impl fmt::Display for NegotiationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NegotiationError::Malformed(e) => e.fmt(f),
            NegotiationError::UnexpectedExtension(name) => {
                write!(
                    f,
                    "server accepted extension {name:?} that we did not offer"
                )
            }
            NegotiationError::DuplicateExtension => {
                write!(f, "server accepted {EXTENSION_NAME} more than once")
            }
            NegotiationError::UnknownParameter(p) => {
                write!(f, "unknown {EXTENSION_NAME} parameter {p:?} in response")
            }
            NegotiationError::DuplicateParameter(p) => {
                write!(f, "duplicate {EXTENSION_NAME} parameter {p:?} in response")
            }
            NegotiationError::InvalidValue(p) => {
                write!(f, "invalid value for {EXTENSION_NAME} parameter {p:?}")
            }
            NegotiationError::Incompatible => {
                write!(f, "{EXTENSION_NAME} response matches none of our offers")
            }
        }
    }
}

impl std::error::Error for NegotiationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NegotiationError::Malformed(e) => Some(e),
            _ => None,
        }
    }
}

/// Why an incoming compressed message could not be inflated. Either way the connection must be
/// failed (suggested close codes: 1009 for `TooLarge`, 1007 for `Corrupt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InflateError {
    /// The inflated message would exceed the caller's limit.
    TooLarge,
    /// The compressed data is not valid DEFLATE.
    Corrupt,
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InflateError::TooLarge => f.write_str("inflated message exceeds the size limit"),
            InflateError::Corrupt => f.write_str("invalid compressed data"),
        }
    }
}

impl std::error::Error for InflateError {}
