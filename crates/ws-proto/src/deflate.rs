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

use std::fmt;

use bytes::BytesMut;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

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

/// One element of a `Sec-WebSocket-Extensions` list: a name and its parameters, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// The parameters in order of appearance; quoted values are unquoted.
    pub params: Vec<(String, Option<String>)>,
}

/// A `Sec-WebSocket-Extensions` value that does not follow RFC 6455 §9.1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionParseError {
    value_index: usize,
    offset: usize,
    reason: &'static str,
}

impl ExtensionParseError {
    /// Index of the offending header value in the slice given to [`parse_extensions`].
    pub fn value_index(&self) -> usize {
        self.value_index
    }

    /// Byte offset of the problem inside that header value.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for ExtensionParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed Sec-WebSocket-Extensions (value {}, byte {}): {}",
            self.value_index, self.offset, self.reason
        )
    }
}

impl std::error::Error for ExtensionParseError {}

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

/// Parses `Sec-WebSocket-Extensions` header values (RFC 6455 §9.1) into one list, in order.
///
/// Grammar: `extension *( "," extension )`, `extension = token *( ";" token [ "=" value ] )`,
/// where `value` is a token or a quoted-string whose unescaped content must be a token.
/// Whitespace around separators is allowed, and empty list elements (`a, , b`) are skipped as
/// HTTP list syntax requires. Names are returned as written (compare them case-insensitively).
pub fn parse_extensions(values: &[&str]) -> Result<Vec<ExtensionOffer>, ExtensionParseError> {
    let mut list = Vec::new();
    for (value_index, value) in values.iter().enumerate() {
        let mut parser = HeaderParser {
            s: value.as_bytes(),
            pos: 0,
            value_index,
        };
        parser.parse_list(&mut list)?;
    }
    Ok(list)
}

/// Client role: the `Sec-WebSocket-Extensions` value to send, every offer joined by `", "`.
///
/// Returns an empty string when the configuration has no offers; send no header then.
pub fn client_offer_header(cfg: &DeflateConfig) -> String {
    let mut out = String::new();
    for (i, offer) in cfg.offers.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(EXTENSION_NAME);
        if offer.server_no_context_takeover {
            push_param(&mut out, SERVER_NO_CONTEXT_TAKEOVER, None);
        }
        if offer.client_no_context_takeover {
            push_param(&mut out, CLIENT_NO_CONTEXT_TAKEOVER, None);
        }
        if let Some(bits) = offer.server_max_window_bits {
            push_param(&mut out, SERVER_MAX_WINDOW_BITS, Some(clamp_bits(bits)));
        }
        match offer.client_max_window_bits {
            ClientWindowBits::Absent => {}
            ClientWindowBits::NoValue => push_param(&mut out, CLIENT_MAX_WINDOW_BITS, None),
            ClientWindowBits::Bits(bits) => {
                push_param(&mut out, CLIENT_MAX_WINDOW_BITS, Some(clamp_bits(bits)))
            }
        }
    }
    out
}

/// Client role: validates the server's answer, given every `Sec-WebSocket-Extensions` value of
/// the 101 response, against the offers in `cfg` (RFC 7692 §5, §7.1).
///
/// Returns `Ok(None)` when the server did not accept permessage-deflate (messages are then sent
/// and received uncompressed), `Ok(Some(params))` for the first offer the answer fits, and an
/// error when the client must fail the connection: a malformed header, an extension we did not
/// offer, permessage-deflate twice, an unknown or duplicate parameter, a bad value, or an answer
/// that fits none of our offers.
///
/// An answer fits an offer when:
/// - it has `server_no_context_takeover` if the offer asked for it (the server MUST then
///   include it; it may also include it unasked);
/// - it has `server_max_window_bits` no larger than the offer's, if the offer had one (without
///   one in the offer, any 8..=15 is allowed);
/// - it has `client_max_window_bits` only if the offer had it, and no larger than the offer's
///   value when it had one;
/// - `client_no_context_takeover` is always allowed.
///
/// In the agreed parameters, our own side resets its context if either the offer announced it
/// or the server asked for it, and uses the smaller of the offered and answered window.
pub fn client_accept_response(
    cfg: &DeflateConfig,
    values: &[&str],
) -> Result<Option<DeflateParams>, NegotiationError> {
    let list = parse_extensions(values).map_err(NegotiationError::Malformed)?;
    let mut answer = None;
    for ext in &list {
        if !ext.name.eq_ignore_ascii_case(EXTENSION_NAME) || cfg.offers.is_empty() {
            return Err(NegotiationError::UnexpectedExtension(ext.name.clone()));
        }
        if answer.is_some() {
            return Err(NegotiationError::DuplicateExtension);
        }
        answer = Some(parse_response_params(&ext.params)?);
    }
    let Some(answer) = answer else {
        return Ok(None);
    };
    cfg.offers
        .iter()
        .find_map(|offer| answer.agree_with(offer))
        .map(Some)
        .ok_or(NegotiationError::Incompatible)
}

/// Server role: picks the first acceptable permessage-deflate offer among every
/// `Sec-WebSocket-Extensions` value of the request, and returns the agreed parameters together
/// with the exact value to answer in the response's `Sec-WebSocket-Extensions` header.
///
/// Returns `None` to decline (no offer, no acceptable offer, or a malformed header). Offers of
/// other extensions are ignored. An offer with an unknown parameter, a duplicate parameter or an
/// invalid value is skipped, and the next one is tried (RFC 7692 §5, §7).
///
/// Policy, from `cfg`: we compress with `min(cfg.server_max_window_bits, offered
/// server_max_window_bits)` and say so when it is below 15 or the client asked; we ask the
/// client for `cfg.client_max_window_bits` (or its own smaller value) only when its offer has
/// `client_max_window_bits` and the result is below 15; `server_no_context_takeover` is answered
/// when offered or configured; `client_no_context_takeover` is answered (acknowledged) when
/// offered or configured.
pub fn server_negotiate(cfg: &DeflateConfig, values: &[&str]) -> Option<(DeflateParams, String)> {
    let list = parse_extensions(values).ok()?;
    list.iter()
        .filter(|ext| ext.name.eq_ignore_ascii_case(EXTENSION_NAME))
        .find_map(|ext| {
            let offer = parse_offer_params(&ext.params)?;
            Some(accept_offer(cfg, &offer))
        })
}

/// Compresses outgoing messages with the agreed parameters of our role (RFC 7692 §7.2.1).
pub struct Compressor {
    inner: Compress,
    no_context_takeover: bool,
    window_bits: u8,
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor")
            .field("no_context_takeover", &self.no_context_takeover)
            .field("window_bits", &self.window_bits)
            .finish_non_exhaustive()
    }
}

impl Compressor {
    /// A compressor for `role`'s direction of `params`, at `level` (0..=9; larger means 9).
    ///
    /// An agreed window of 8 bits compresses with 9 (see the module docs: the output still fits
    /// a 256-byte window).
    pub fn new(params: &DeflateParams, role: Role, level: u32) -> Self {
        let (bits, no_context_takeover) = match role {
            Role::Client => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
            ),
            Role::Server => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
            ),
        };
        let window_bits = zlib_window_bits(bits);
        Compressor {
            inner: Compress::new_with_window_bits(
                Compression::new(level.min(9)),
                false,
                window_bits,
            ),
            no_context_takeover,
            window_bits,
        }
    }

    /// Compresses one whole message, appending its payload to `out`: the DEFLATE data ending
    /// with a sync flush, without the trailing `0x00 0x00 0xff 0xff` (RFC 7692 §7.2.1).
    ///
    /// An empty message becomes the single byte `0x00` (RFC 7692 §7.2.3.6). When our side has
    /// no context takeover, the context is reset afterwards, so equal messages give equal bytes.
    pub fn compress(&mut self, input: &[u8], out: &mut BytesMut) {
        self.compress_fragment(input, true, out);
    }

    /// Compresses one piece of a message sent in fragments, appending to `out` the payload of the
    /// frame that carries it; `fin` marks the last piece.
    ///
    /// Each piece is sync-flushed, so its frame can be sent at once. Pieces before the last keep
    /// the flush marker (it is inside the message); the last piece drops it as
    /// [`Compressor::compress`] does. An empty non-final piece gives an empty payload; an empty
    /// last piece gives `0x00` (RFC 7692 §7.2.3.6).
    pub fn compress_fragment(&mut self, input: &[u8], fin: bool, out: &mut BytesMut) {
        let start = out.len();
        if input.is_empty() {
            // After any earlier flush both ends are at a byte-aligned block boundary; 0x00 is
            // the header of an empty stored block, which the receiver's appended tail completes.
            if fin {
                out.extend_from_slice(&[0x00]);
                self.end_message();
            }
            return;
        }
        let flushed = self.deflate_sync(input, out);
        let complete = flushed && out.get(start..).is_some_and(|o| o.ends_with(&TAIL));
        if !complete {
            // zlib reported a stream error, which our use of it cannot cause. Still, never emit
            // a broken payload: drop the partial output, start a fresh context (the receiver
            // only ever sees back-references from it into data it already has), and send the
            // input as stored blocks.
            out.truncate(start);
            self.inner.reset();
            write_stored_blocks(input, out);
        }
        if fin {
            if complete {
                out.truncate(out.len().saturating_sub(TAIL.len()));
            } else {
                out.extend_from_slice(&[0x00]);
            }
            self.end_message();
        }
    }

    /// Runs `input` through deflate with a sync flush; `false` if zlib reported an error or
    /// stopped making progress.
    fn deflate_sync(&mut self, input: &[u8], out: &mut BytesMut) -> bool {
        let mut rest = input;
        loop {
            let room = deflate_room(rest.len());
            let len = out.len();
            out.resize(len.saturating_add(room), 0);
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let result = self.inner.compress(
                rest,
                out.get_mut(len..).unwrap_or_default(),
                FlushCompress::Sync,
            );
            let consumed = counter_delta(in_before, self.inner.total_in());
            let produced = counter_delta(out_before, self.inner.total_out());
            out.truncate(len.saturating_add(produced.min(room)));
            if result.is_err() || consumed > rest.len() {
                return false;
            }
            rest = rest.get(consumed..).unwrap_or_default();
            if rest.is_empty() && produced < room {
                return true;
            }
            if consumed == 0 && produced == 0 {
                return false;
            }
        }
    }

    fn end_message(&mut self) {
        if self.no_context_takeover {
            self.inner.reset();
        }
    }
}

/// Inflates incoming compressed messages with the agreed parameters of the peer's role
/// (RFC 7692 §7.2.2), never growing the output past a caller-given limit.
pub struct Decompressor {
    inner: Decompress,
    no_context_takeover: bool,
    window_bits: u8,
    /// Compressed bytes of the current message have been fed.
    in_message: bool,
    /// The DEFLATE stream ended (a block with BFINAL set) and nothing was fed since.
    at_stream_start: bool,
    /// What the latest `decompress` call produced: the first step of the next one starts
    /// there, so a stream of similar messages inflates each in one step.
    last_output: usize,
}

impl fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decompressor")
            .field("no_context_takeover", &self.no_context_takeover)
            .field("window_bits", &self.window_bits)
            .field("in_message", &self.in_message)
            .finish_non_exhaustive()
    }
}

impl Decompressor {
    /// A decompressor for the peer's direction of `params` (`role` is our own role).
    ///
    /// An agreed window of 8 bits inflates with 9, which is always safe.
    pub fn new(params: &DeflateParams, role: Role) -> Self {
        let (bits, no_context_takeover) = match role {
            Role::Client => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
            ),
            Role::Server => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
            ),
        };
        let window_bits = zlib_window_bits(bits);
        Decompressor {
            inner: Decompress::new_with_window_bits(false, window_bits),
            no_context_takeover,
            window_bits,
            last_output: 0,
            in_message: false,
            at_stream_start: true,
        }
    }

    /// Feeds one frame's compressed payload of the current message, appending the inflated bytes
    /// to `out`, and returns how many bytes were appended.
    ///
    /// `out` is meant to hold the whole message so far, and `limit` bounds `out.len()`: the
    /// call fails with [`InflateError::TooLarge`] as soon as the message would exceed it.
    /// Inflation runs in steps of at most [`INFLATE_STEP`] bytes, and `out` is never grown to a
    /// capacity above `limit + 1` (a buffer that already had more capacity keeps it), so a tiny
    /// payload that would inflate to gigabytes costs at most the limit.
    ///
    /// When `fin` is set, the `0x00 0x00 0xff 0xff` tail is appended before inflating the end
    /// of the message, and the context is reset afterwards if the peer has no context takeover.
    /// A message whose frames carried no compressed bytes at all is accepted as empty.
    ///
    /// A DEFLATE block with BFINAL set (RFC 7692 §7.2.3.4) ends the DEFLATE stream: later bytes
    /// start a new stream with an empty window.
    ///
    /// After an error the connection must be failed; the decompressor is reset (its context is
    /// lost), and `out` holds at most `limit` bytes of unspecified content.
    pub fn decompress(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<usize, InflateError> {
        let start = out.len();
        let result = self.decompress_inner(input, fin, out, limit);
        match result {
            Ok(()) => {
                self.last_output = out.len().saturating_sub(start);
                Ok(self.last_output)
            }
            Err(e) => {
                out.truncate(limit);
                self.inner.reset(false);
                self.in_message = false;
                self.at_stream_start = true;
                Err(e)
            }
        }
    }

    /// The output room of the first inflate step for `input_len` compressed bytes: what the
    /// previous call produced (plus the room to see that the output is complete), or four
    /// times the input, at least 256 bytes, at most [`INFLATE_STEP`] unless the previous
    /// output was larger. Reserving this plus 256 bytes before
    /// [`decompress`](Self::decompress) lets a message like the previous one inflate without
    /// growing `out`.
    pub fn first_room(&self, input_len: usize) -> usize {
        first_inflate_step(input_len).max(self.last_output.saturating_add(256))
    }

    fn decompress_inner(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), InflateError> {
        if out.len() > limit {
            return Err(InflateError::TooLarge);
        }
        if !input.is_empty() {
            self.in_message = true;
            let step = self.first_room(input.len());
            self.inflate(input, out, limit, step)?;
        }
        if fin {
            // A stream that just ended with a BFINAL block needs no flush marker; anything else
            // gets the tail that the sender removed.
            if self.in_message && !self.at_stream_start {
                self.inflate(&TAIL, out, limit, first_inflate_step(TAIL.len()))?;
            }
            self.in_message = false;
            if self.no_context_takeover {
                self.inner.reset(false);
                self.at_stream_start = true;
            }
        }
        Ok(())
    }

    /// Inflates all of `input` into `out`, in steps bounded by `limit`.
    fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut BytesMut,
        limit: usize,
        mut step: usize,
    ) -> Result<(), InflateError> {
        // Output space is zero-filled before inflating into it, so start near the expected size
        // (`step`) and double while inflate fills it.
        loop {
            let len = out.len();
            // One byte past the limit is enough to detect that the limit is exceeded.
            let room = step.min(limit.saturating_sub(len).saturating_add(1));
            reserve_bounded(out, room, limit.saturating_add(1));
            out.resize(len.saturating_add(room), 0);
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let result = self.inner.decompress(
                input,
                out.get_mut(len..).unwrap_or_default(),
                FlushDecompress::None,
            );
            let consumed = counter_delta(in_before, self.inner.total_in());
            let produced = counter_delta(out_before, self.inner.total_out());
            out.truncate(len.saturating_add(produced.min(room)));
            if consumed > input.len() {
                return Err(InflateError::Corrupt);
            }
            input = input.get(consumed..).unwrap_or_default();
            if consumed > 0 {
                self.at_stream_start = false;
            }
            if out.len() > limit {
                return Err(InflateError::TooLarge);
            }
            match result {
                Err(_) => return Err(InflateError::Corrupt),
                Ok(Status::StreamEnd) => {
                    // BFINAL: the DEFLATE stream is over; what follows is a new stream.
                    self.inner.reset(false);
                    self.at_stream_start = true;
                    if input.is_empty() {
                        return Ok(());
                    }
                }
                Ok(Status::Ok | Status::BufError) => {
                    if input.is_empty() && produced < room {
                        return Ok(());
                    }
                    if consumed == 0 && produced == 0 {
                        return Err(InflateError::Corrupt);
                    }
                }
            }
            if produced == room {
                step = step.saturating_mul(2).min(INFLATE_STEP);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Negotiation helpers
// ---------------------------------------------------------------------------------------------

/// A validated permessage-deflate offer as the server reads it.
#[derive(Default)]
struct ParsedOffer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: ClientWindowBits,
}

/// A validated permessage-deflate answer as the client reads it.
#[derive(Default)]
struct ParsedAnswer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<u8>,
}

impl ParsedAnswer {
    /// The agreed parameters if this answer fits `offer`.
    fn agree_with(&self, offer: &DeflateOffer) -> Option<DeflateParams> {
        if offer.server_no_context_takeover && !self.server_no_context_takeover {
            return None;
        }
        if let Some(asked) = offer.server_max_window_bits {
            match self.server_max_window_bits {
                Some(bits) if bits <= clamp_bits(asked) => {}
                _ => return None,
            }
        }
        let client_bits = match (offer.client_max_window_bits, self.client_max_window_bits) {
            (ClientWindowBits::Absent, Some(_)) => return None,
            (ClientWindowBits::Bits(ours), Some(bits)) if bits > clamp_bits(ours) => return None,
            (_, Some(bits)) => bits,
            (ClientWindowBits::Bits(ours), None) => clamp_bits(ours),
            (_, None) => DEFAULT_WINDOW_BITS,
        };
        Some(DeflateParams {
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover
                || offer.client_no_context_takeover,
            server_max_window_bits: self.server_max_window_bits.unwrap_or(DEFAULT_WINDOW_BITS),
            client_max_window_bits: client_bits,
        })
    }
}

/// Reads the parameters of an answer; any problem is fatal for the client.
fn parse_response_params(
    params: &[(String, Option<String>)],
) -> Result<ParsedAnswer, NegotiationError> {
    let mut answer = ParsedAnswer::default();
    let mut seen = [false; 4];
    for (name, value) in params {
        let Some(index) = param_index(name) else {
            return Err(NegotiationError::UnknownParameter(name.clone()));
        };
        if !first_time(&mut seen, index) {
            return Err(NegotiationError::DuplicateParameter(name.clone()));
        }
        let invalid = || NegotiationError::InvalidValue(name.clone());
        match index {
            0 | 1 => {
                if value.is_some() {
                    return Err(invalid());
                }
                if index == 0 {
                    answer.server_no_context_takeover = true;
                } else {
                    answer.client_no_context_takeover = true;
                }
            }
            _ => {
                // In a response both window parameters carry a value.
                let bits = value.as_deref().and_then(parse_window_bits);
                let bits = bits.ok_or_else(invalid)?;
                if index == 2 {
                    answer.server_max_window_bits = Some(bits);
                } else {
                    answer.client_max_window_bits = Some(bits);
                }
            }
        }
    }
    Ok(answer)
}

/// Reads the parameters of one offer; `None` if the server must skip it.
fn parse_offer_params(params: &[(String, Option<String>)]) -> Option<ParsedOffer> {
    let mut offer = ParsedOffer::default();
    let mut seen = [false; 4];
    for (name, value) in params {
        let index = param_index(name)?;
        if !first_time(&mut seen, index) {
            return None;
        }
        match (index, value.as_deref()) {
            (0, None) => offer.server_no_context_takeover = true,
            (1, None) => offer.client_no_context_takeover = true,
            (2, Some(v)) => offer.server_max_window_bits = Some(parse_window_bits(v)?),
            (3, None) => offer.client_max_window_bits = ClientWindowBits::NoValue,
            (3, Some(v)) => {
                offer.client_max_window_bits = ClientWindowBits::Bits(parse_window_bits(v)?)
            }
            _ => return None,
        }
    }
    Some(offer)
}

/// Applies the server policy of `cfg` to an acceptable offer.
fn accept_offer(cfg: &DeflateConfig, offer: &ParsedOffer) -> (DeflateParams, String) {
    let server_bits = clamp_bits(cfg.server_max_window_bits)
        .min(offer.server_max_window_bits.unwrap_or(DEFAULT_WINDOW_BITS));
    let announce_server_bits =
        offer.server_max_window_bits.is_some() || server_bits < DEFAULT_WINDOW_BITS;
    let client_bits = match offer.client_max_window_bits {
        ClientWindowBits::Absent => None,
        ClientWindowBits::NoValue => Some(clamp_bits(cfg.client_max_window_bits)),
        ClientWindowBits::Bits(v) => Some(clamp_bits(cfg.client_max_window_bits).min(v)),
    }
    .filter(|&bits| bits < DEFAULT_WINDOW_BITS);
    let params = DeflateParams {
        server_no_context_takeover: offer.server_no_context_takeover
            || cfg.server_no_context_takeover,
        client_no_context_takeover: offer.client_no_context_takeover
            || cfg.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits.unwrap_or(DEFAULT_WINDOW_BITS),
    };
    let mut answer = String::from(EXTENSION_NAME);
    if params.server_no_context_takeover {
        push_param(&mut answer, SERVER_NO_CONTEXT_TAKEOVER, None);
    }
    if params.client_no_context_takeover {
        push_param(&mut answer, CLIENT_NO_CONTEXT_TAKEOVER, None);
    }
    if announce_server_bits {
        push_param(&mut answer, SERVER_MAX_WINDOW_BITS, Some(server_bits));
    }
    if let Some(bits) = client_bits {
        push_param(&mut answer, CLIENT_MAX_WINDOW_BITS, Some(bits));
    }
    (params, answer)
}

/// Position of a known parameter in `[snct, cnct, smwb, cmwb]`.
fn param_index(name: &str) -> Option<usize> {
    [
        SERVER_NO_CONTEXT_TAKEOVER,
        CLIENT_NO_CONTEXT_TAKEOVER,
        SERVER_MAX_WINDOW_BITS,
        CLIENT_MAX_WINDOW_BITS,
    ]
    .iter()
    .position(|known| known.eq_ignore_ascii_case(name))
}

/// A window-bits value: a decimal 8..=15 without leading zeros (RFC 7692 §7.1.2).
fn parse_window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (MIN_WINDOW_BITS..=DEFAULT_WINDOW_BITS)
        .contains(&bits)
        .then_some(bits)
}

fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, DEFAULT_WINDOW_BITS)
}

/// Marks parameter `index` as seen; `false` if it was seen before (or is out of range).
fn first_time(seen: &mut [bool; 4], index: usize) -> bool {
    seen.get_mut(index)
        .is_some_and(|s| !std::mem::replace(s, true))
}

/// The window bits to hand zlib: 8 becomes 9 (see the module docs).
fn zlib_window_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS + 1, DEFAULT_WINDOW_BITS)
}

fn push_param(out: &mut String, name: &str, value: Option<u8>) {
    out.push_str("; ");
    out.push_str(name);
    if let Some(value) = value {
        out.push('=');
        out.push_str(&value.to_string());
    }
}

/// Parser for one header value of the RFC 6455 §9.1 grammar.
struct HeaderParser<'a> {
    s: &'a [u8],
    pos: usize,
    value_index: usize,
}

impl HeaderParser<'_> {
    fn parse_list(&mut self, list: &mut Vec<ExtensionOffer>) -> Result<(), ExtensionParseError> {
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Ok(()),
                Some(b',') => {
                    self.bump();
                    continue;
                }
                Some(_) => {}
            }
            let name = self.token("extension name")?;
            let mut params = Vec::new();
            loop {
                self.skip_ows();
                match self.peek() {
                    None => break,
                    Some(b',') => {
                        self.bump();
                        break;
                    }
                    Some(b';') => {
                        self.bump();
                        self.skip_ows();
                        let param = self.token("parameter name")?;
                        self.skip_ows();
                        let value = if self.peek() == Some(b'=') {
                            self.bump();
                            self.skip_ows();
                            Some(if self.peek() == Some(b'"') {
                                self.quoted()?
                            } else {
                                self.token("parameter value")?
                            })
                        } else {
                            None
                        };
                        params.push((param, value));
                    }
                    Some(_) => return Err(self.error("expected ',' or ';'")),
                }
            }
            list.push(ExtensionOffer { name, params });
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Steps past the byte `peek` returned (`pos` never exceeds the header's length).
    fn bump(&mut self) {
        self.pos = self.pos.saturating_add(1);
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
    }

    fn token(&mut self, what: &'static str) -> Result<String, ExtensionParseError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.bump();
        }
        if start == self.pos {
            return Err(self.error(what));
        }
        let token = self.s.get(start..self.pos).unwrap_or_default();
        Ok(String::from_utf8_lossy(token).into_owned())
    }

    /// A quoted-string; its unescaped content must be a token (RFC 6455 §9.1).
    fn quoted(&mut self) -> Result<String, ExtensionParseError> {
        let start = self.pos;
        self.bump();
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => {
                    self.pos = start;
                    return Err(self.error("unterminated quoted-string"));
                }
                Some(b'"') => {
                    self.bump();
                    break;
                }
                Some(b'\\') => {
                    self.bump();
                    match self.peek() {
                        Some(c) => value.push(c),
                        None => return Err(self.error("unterminated quoted-pair")),
                    }
                    self.bump();
                }
                Some(c) => {
                    value.push(c);
                    self.bump();
                }
            }
        }
        if value.is_empty() || !value.iter().copied().all(is_tchar) {
            self.pos = start;
            return Err(self.error("quoted value is not a token"));
        }
        Ok(String::from_utf8_lossy(&value).into_owned())
    }

    fn error(&self, reason: &'static str) -> ExtensionParseError {
        ExtensionParseError {
            value_index: self.value_index,
            offset: self.pos,
            reason,
        }
    }
}

/// `tchar` of RFC 7230 §3.2.6.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

// ---------------------------------------------------------------------------------------------
// Buffer helpers
// ---------------------------------------------------------------------------------------------

/// Difference of two monotonic zlib counters, as a length.
fn counter_delta(before: u64, after: u64) -> usize {
    usize::try_from(after.saturating_sub(before)).unwrap_or(usize::MAX)
}

/// The output room of a deflate step for `input_len` bytes still to compress: room for
/// incompressible input plus block overhead, at most 64 KiB.
pub(crate) fn deflate_room(input_len: usize) -> usize {
    input_len
        .saturating_add(input_len / 8)
        .saturating_add(64)
        .min(DEFLATE_STEP)
}

/// The output room of the first inflate step for `input_len` compressed bytes: four times the
/// input, at least 256 bytes and at most [`INFLATE_STEP`].
pub(crate) fn first_inflate_step(input_len: usize) -> usize {
    input_len.saturating_mul(4).clamp(256, INFLATE_STEP)
}

/// Makes room for `room` more bytes without letting the capacity grow past `cap_limit` (unless
/// `len + room` itself needs more). Grows by doubling otherwise, for amortised O(n) copying.
///
/// `BytesMut::reserve` may double a large buffer, overshooting the bound, so growth here
/// allocates the exact capacity and copies.
fn reserve_bounded(out: &mut BytesMut, room: usize, cap_limit: usize) {
    let needed = out.len().saturating_add(room);
    if out.capacity() >= needed {
        return;
    }
    // A reused buffer whose earlier contents were handed out (and dropped)
    // gets its whole allocation back without allocating.
    if out.try_reclaim(room) && out.capacity() >= needed {
        return;
    }
    let target = needed
        .max(out.capacity())
        .saturating_mul(2)
        .max(256)
        .min(cap_limit)
        .max(needed);
    let mut grown = BytesMut::with_capacity(target);
    grown.extend_from_slice(out);
    *out = grown;
}

/// Writes `input` as non-final stored DEFLATE blocks (RFC 1951 §3.2.4), starting at a
/// byte-aligned block boundary.
fn write_stored_blocks(input: &[u8], out: &mut BytesMut) {
    for chunk in input.chunks(usize::from(u16::MAX)) {
        // chunks() yields at most u16::MAX bytes, so the conversion cannot fail.
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&[0x00]);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // In tests a panic is a failed test.
mod tests {
    use super::*;
    use proptest::prelude::*;

    // -----------------------------------------------------------------------------------------
    // Test helpers
    // -----------------------------------------------------------------------------------------

    fn params(snct: bool, cnct: bool, smwb: u8, cmwb: u8) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: smwb,
            client_max_window_bits: cmwb,
        }
    }

    fn compress_one(c: &mut Compressor, msg: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        c.compress(msg, &mut out);
        out.to_vec()
    }

    fn inflate_one(d: &mut Decompressor, payload: &[u8]) -> Result<Vec<u8>, InflateError> {
        let mut out = BytesMut::new();
        d.decompress(payload, true, &mut out, usize::MAX)?;
        Ok(out.to_vec())
    }

    /// Deterministic pseudo-random bytes (xorshift), for tests that need no proptest.
    fn noise(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect()
    }

    /// Text that mixes long-range repetition with pseudo-random words.
    fn mixed_text(len: usize, seed: u64) -> Vec<u8> {
        const WORDS: [&str; 12] = [
            "websocket ",
            "frame ",
            "deflate ",
            "the quick brown fox jumps over the lazy dog ",
            "{\"id\":1234,\"type\":\"update\",\"payload\":[1,2,3]} ",
            "lorem ipsum dolor sit amet ",
            "\n",
            "0123456789 ",
            "window ",
            "context ",
            "takeover ",
            "message ",
        ];
        let picks = noise(len, seed);
        let mut text = Vec::with_capacity(len + 64);
        let mut i = 0;
        while text.len() < len {
            let p = picks[i % picks.len()];
            if p % 7 == 0 {
                // A pseudo-random run: defeats short matches.
                text.extend(
                    noise(16, u64::from(p) + i as u64 + 1)
                        .iter()
                        .map(|b| b'a' + b % 26),
                );
            } else {
                text.extend_from_slice(WORDS[usize::from(p) % WORDS.len()].as_bytes());
            }
            i += 1;
        }
        text.truncate(len);
        text
    }

    // -----------------------------------------------------------------------------------------
    // RFC 7692 §7.2.3 examples
    // -----------------------------------------------------------------------------------------

    const HELLO_COMPRESSED: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    #[test]
    fn rfc7692_7_2_3_1_hello_one_compressed_block() {
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Client);
        assert_eq!(inflate_one(&mut d, &HELLO_COMPRESSED).unwrap(), b"Hello");
        // Our compressor's bytes depend on zlib, but must round-trip through the same path.
        let mut c = Compressor::new(&DeflateParams::default(), Role::Server, 6);
        let ours = compress_one(&mut c, b"Hello");
        assert_eq!(
            ours, HELLO_COMPRESSED,
            "zlib-rs level 6 matches the RFC bytes"
        );
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Client);
        assert_eq!(inflate_one(&mut d, &ours).unwrap(), b"Hello");
    }

    #[test]
    fn rfc7692_7_2_3_2_sharing_the_lz77_window() {
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Client);
        assert_eq!(inflate_one(&mut d, &HELLO_COMPRESSED).unwrap(), b"Hello");
        assert_eq!(
            inflate_one(&mut d, &[0xf2, 0x00, 0x11, 0x00, 0x00]).unwrap(),
            b"Hello"
        );
        // Our own compressor with context takeover: the second "Hello" is a back-reference.
        let mut c = Compressor::new(&DeflateParams::default(), Role::Server, 6);
        let first = compress_one(&mut c, b"Hello");
        let second = compress_one(&mut c, b"Hello");
        assert!(
            second.len() < first.len(),
            "{first:02x?} then {second:02x?}"
        );
        assert_eq!(second, [0xf2, 0x00, 0x11, 0x00, 0x00]);
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Client);
        assert_eq!(inflate_one(&mut d, &first).unwrap(), b"Hello");
        assert_eq!(inflate_one(&mut d, &second).unwrap(), b"Hello");
        // Without takeover on the receiving side's view, the back-reference is corrupt.
        let no_takeover = params(true, false, 15, 15);
        let mut d = Decompressor::new(&no_takeover, Role::Client);
        assert_eq!(inflate_one(&mut d, &first).unwrap(), b"Hello");
        assert_eq!(inflate_one(&mut d, &second), Err(InflateError::Corrupt));
    }

    #[test]
    fn rfc7692_7_2_3_3_block_with_no_compression() {
        let payload = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Server);
        assert_eq!(inflate_one(&mut d, &payload).unwrap(), b"Hello");
        // The decompressor is still usable for the next message.
        assert_eq!(inflate_one(&mut d, &HELLO_COMPRESSED).unwrap(), b"Hello");
    }

    #[test]
    fn rfc7692_7_2_3_4_block_with_bfinal_set() {
        let payload = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Client);
        assert_eq!(inflate_one(&mut d, &payload).unwrap(), b"Hello");
        assert_eq!(inflate_one(&mut d, &HELLO_COMPRESSED).unwrap(), b"Hello");
        // Lenient: a BFINAL block without the extra 0x00 also decodes, and leaves the
        // decompressor at a clean stream start for the next message.
        assert_eq!(inflate_one(&mut d, &payload[..7]).unwrap(), b"Hello");
        assert_eq!(inflate_one(&mut d, &HELLO_COMPRESSED).unwrap(), b"Hello");
    }

    #[test]
    fn rfc7692_7_2_3_5_two_deflate_blocks_in_one_message() {
        let payload = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Client);
        assert_eq!(inflate_one(&mut d, &payload).unwrap(), b"Hello");
        // Same blocks split across two frames, at the block boundary and elsewhere.
        for split in 0..=payload.len() {
            let mut d = Decompressor::new(&DeflateParams::default(), Role::Client);
            let mut out = BytesMut::new();
            d.decompress(&payload[..split], false, &mut out, 100)
                .unwrap();
            d.decompress(&payload[split..], true, &mut out, 100)
                .unwrap();
            assert_eq!(&out[..], b"Hello", "split at {split}");
        }
    }

    #[test]
    fn rfc7692_7_2_3_6_empty_fragment_and_empty_message() {
        // An empty message compresses to a lone 0x00, fresh or after other messages.
        let mut c = Compressor::new(&DeflateParams::default(), Role::Client, 6);
        assert_eq!(compress_one(&mut c, b""), [0x00]);
        let hello = compress_one(&mut c, b"Hello");
        assert_eq!(compress_one(&mut c, b""), [0x00]);
        let again = compress_one(&mut c, b"Hello");
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Server);
        assert_eq!(inflate_one(&mut d, &[0x00]).unwrap(), b"");
        assert_eq!(inflate_one(&mut d, &hello).unwrap(), b"Hello");
        assert_eq!(inflate_one(&mut d, &[0x00]).unwrap(), b"");
        assert_eq!(inflate_one(&mut d, &again).unwrap(), b"Hello");

        // §7.2.3.6: a message sent in fragments whose data ended before the last frame.
        let mut c = Compressor::new(&DeflateParams::default(), Role::Client, 6);
        let mut first = BytesMut::new();
        c.compress_fragment(b"Hello", false, &mut first);
        assert!(
            first.ends_with(&TAIL),
            "non-final fragments keep the flush marker"
        );
        let mut last = BytesMut::new();
        c.compress_fragment(b"", true, &mut last);
        assert_eq!(&last[..], [0x00]);
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Server);
        let mut out = BytesMut::new();
        d.decompress(&first, false, &mut out, 100).unwrap();
        d.decompress(&last, true, &mut out, 100).unwrap();
        assert_eq!(&out[..], b"Hello");

        // A peer that sends no compressed bytes at all for an empty message is tolerated.
        let mut out = BytesMut::new();
        assert_eq!(d.decompress(b"", true, &mut out, 100), Ok(0));
        assert_eq!(inflate_one(&mut d, &again).unwrap(), b"Hello");
    }

    #[test]
    fn compressed_fragments_round_trip() {
        let text = mixed_text(50_000, 7);
        for no_takeover in [false, true] {
            let p = params(false, no_takeover, 15, 15);
            let mut c = Compressor::new(&p, Role::Client, 6);
            let mut d = Decompressor::new(&p, Role::Server);
            for _ in 0..3 {
                let mut out = BytesMut::new();
                let pieces: Vec<&[u8]> = text.chunks(7_000).collect();
                for (i, piece) in pieces.iter().enumerate() {
                    let mut frame = BytesMut::new();
                    let fin = i + 1 == pieces.len();
                    c.compress_fragment(piece, fin, &mut frame);
                    d.decompress(&frame, fin, &mut out, usize::MAX).unwrap();
                }
                assert_eq!(&out[..], &text[..]);
            }
        }
    }

    #[test]
    fn no_context_takeover_compresses_equal_messages_to_equal_bytes() {
        let msg = mixed_text(5_000, 3);
        for level in [0, 1, 6, 9] {
            let p = params(true, true, 15, 15);
            for role in [Role::Client, Role::Server] {
                let mut c = Compressor::new(&p, role, level);
                let a = compress_one(&mut c, &msg);
                let b = compress_one(&mut c, &msg);
                assert_eq!(a, b, "level {level} {role:?}");
            }
            // With takeover the second copy is a back-reference, hence different and smaller.
            let mut c = Compressor::new(&DeflateParams::default(), Role::Server, level);
            let a = compress_one(&mut c, &msg);
            let b = compress_one(&mut c, &msg);
            if level > 0 {
                assert!(
                    b.len() < a.len() / 4,
                    "level {level}: {} vs {}",
                    b.len(),
                    a.len()
                );
            }
        }
    }

    #[test]
    fn stored_block_fallback_is_valid_deflate() {
        let msg = noise(150_000, 11);
        let mut out = BytesMut::new();
        write_stored_blocks(&msg, &mut out);
        out.extend_from_slice(&[0x00]);
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Server);
        assert_eq!(inflate_one(&mut d, &out).unwrap(), msg);
    }

    #[test]
    fn corrupt_input_is_an_error_not_a_panic() {
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Server);
        // BTYPE 11 is reserved.
        assert_eq!(
            inflate_one(&mut d, &[0xff, 0xff]),
            Err(InflateError::Corrupt)
        );
        // A distance before the start of the stream.
        assert_eq!(
            inflate_one(&mut d, &[0xf2, 0x00, 0x11, 0x00, 0x00]),
            Err(InflateError::Corrupt)
        );
        // After an error, the decompressor starts over cleanly.
        assert_eq!(inflate_one(&mut d, &HELLO_COMPRESSED).unwrap(), b"Hello");
        for seed in 0..200 {
            let junk = noise(1 + (seed as usize % 300), seed + 1);
            let mut d = Decompressor::new(&DeflateParams::default(), Role::Server);
            let mut out = BytesMut::new();
            let _ = d.decompress(&junk, true, &mut out, 1 << 20);
            assert!(out.len() <= 1 << 20);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Decompression bombs and limits
    // -----------------------------------------------------------------------------------------

    /// A payload of about 1 MiB that inflates to 1 GiB of zeros, built without 1 GiB of work:
    /// once the window is all zeros, each further MiB of zeros compresses to the same bytes.
    fn zero_bomb() -> Vec<u8> {
        let zeros = vec![0u8; 1 << 20];
        let mut c = Compress::new_with_window_bits(Compression::best(), false, 15);
        let sync = |c: &mut Compress| {
            let mut out = Vec::with_capacity(4 << 10);
            c.compress_vec(&zeros, &mut out, FlushCompress::Sync)
                .unwrap();
            assert_eq!(c.total_in() % (1 << 20), 0, "all input consumed");
            out
        };
        let first = sync(&mut c);
        let _warm = sync(&mut c);
        let steady = sync(&mut c);
        assert_eq!(steady, sync(&mut c), "steady state repeats");
        let mut bomb = first;
        for _ in 1..1024 {
            bomb.extend_from_slice(&steady);
        }
        bomb
    }

    #[test]
    fn decompression_bomb_is_refused_at_the_limit() {
        let bomb = zero_bomb();
        assert!(bomb.len() < 1100 << 10, "bomb is {} bytes", bomb.len());
        // Sanity: the start really inflates to zeros.
        const LIMIT: usize = 16 << 20;
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Server);
        let mut out = BytesMut::new();
        let result = d.decompress(&bomb, true, &mut out, LIMIT);
        assert_eq!(result, Err(InflateError::TooLarge));
        assert!(out.len() <= LIMIT);
        assert!(out.iter().all(|&b| b == 0));
        assert!(
            out.capacity() <= LIMIT + INFLATE_STEP,
            "capacity {} for limit {LIMIT}",
            out.capacity()
        );

        // Same bomb in 4 KiB frames: caught just as early.
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Server);
        let mut out = BytesMut::new();
        let mut fed = 0;
        let mut outcome = Ok(0);
        for (i, frame) in bomb.chunks(4096).enumerate() {
            let fin = (i + 1) * 4096 >= bomb.len();
            fed += frame.len();
            outcome = d.decompress(frame, fin, &mut out, LIMIT);
            if outcome.is_err() {
                break;
            }
        }
        assert_eq!(outcome, Err(InflateError::TooLarge));
        assert!(fed < 64 << 10, "stopped after {fed} compressed bytes");
        assert!(out.capacity() <= LIMIT + INFLATE_STEP);
    }

    #[test]
    fn limit_is_exact() {
        let msg = mixed_text(100_000, 5);
        let mut c = Compressor::new(&DeflateParams::default(), Role::Client, 6);
        let payload = compress_one(&mut c, &msg);
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Server);
        let mut out = BytesMut::new();
        assert_eq!(
            d.decompress(&payload, true, &mut out, msg.len()),
            Ok(msg.len())
        );
        assert_eq!(&out[..], &msg[..]);
        assert!(out.capacity() <= msg.len() + 1);

        let mut d = Decompressor::new(&DeflateParams::default(), Role::Server);
        let mut out = BytesMut::new();
        let result = d.decompress(&payload, true, &mut out, msg.len() - 1);
        assert_eq!(result, Err(InflateError::TooLarge));
        assert_eq!(out.len(), msg.len() - 1);

        // The limit counts what `out` already holds.
        let mut d = Decompressor::new(&DeflateParams::default(), Role::Server);
        let mut out = BytesMut::from(&b"0123456789"[..]);
        let result = d.decompress(&payload, true, &mut out, msg.len() + 9);
        assert_eq!(result, Err(InflateError::TooLarge));
    }

    // -----------------------------------------------------------------------------------------
    // Window bits 8
    // -----------------------------------------------------------------------------------------

    #[test]
    fn window_bits_8_is_compressed_with_9_and_fits_a_256_byte_window() {
        // Both roles' compressors map an agreed 8 to zlib's 9.
        let p = params(false, false, 8, 8);
        assert_eq!(Compressor::new(&p, Role::Server, 6).window_bits, 9);
        assert_eq!(Compressor::new(&p, Role::Client, 6).window_bits, 9);
        assert_eq!(Decompressor::new(&p, Role::Client).window_bits, 9);
    }

    /// The proof behind the module docs' "Window bits 8" paragraph.
    #[test]
    fn window_bits_9_output_fits_a_256_byte_window() {
        let messages: Vec<Vec<u8>> = vec![
            mixed_text(6_000, 1),
            noise(4_000, 2),
            b"abcabcabc".repeat(700),
            vec![b'z'; 5_000],
            mixed_text(8_000, 3),
            // Period 300: the nearest repeat is 300 back, only reachable with a wider window.
            noise(300, 4).repeat(20),
        ];
        let agreed = params(false, false, 8, 8);
        for level in 0..=9 {
            let mut c = Compressor::new(&agreed, Role::Server, level);
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for msg in &messages {
                stream.extend_from_slice(&compress_one(&mut c, msg));
                stream.extend_from_slice(&TAIL);
                expected.extend_from_slice(msg);
            }
            let (decoded, max_distance) = reference_inflate(&stream);
            assert_eq!(decoded, expected, "level {level}");
            // zlib's MAX_DIST for a 512-byte window: 512 - 262 = 250 <= 256.
            assert!(
                max_distance <= 250,
                "level {level}: distance {max_distance}"
            );
            // ...and the data does reach for that bound (level 0 stores, without matches).
            assert!(
                level == 0 || max_distance >= 200,
                "level {level}: {max_distance}"
            );
        }
        // Control: with 15 bits the same data does use distances beyond 256.
        let mut c = Compressor::new(&DeflateParams::default(), Role::Server, 6);
        let mut stream = Vec::new();
        for msg in &messages {
            stream.extend_from_slice(&compress_one(&mut c, msg));
            stream.extend_from_slice(&TAIL);
        }
        let (_, max_distance) = reference_inflate(&stream);
        assert!(max_distance > 256, "control distance {max_distance}");
    }

    /// An independent, test-only DEFLATE decoder (RFC 1951) that also reports the largest
    /// back-reference distance. Decodes until the input is used up at a block boundary.
    fn reference_inflate(data: &[u8]) -> (Vec<u8>, usize) {
        struct Bits<'a> {
            data: &'a [u8],
            bit: usize,
        }
        impl Bits<'_> {
            fn read(&mut self, n: u32) -> u32 {
                let mut v = 0;
                for i in 0..n {
                    let byte = self.data[self.bit / 8];
                    v |= u32::from((byte >> (self.bit % 8)) & 1) << i;
                    self.bit += 1;
                }
                v
            }
            fn align(&mut self) {
                self.bit = self.bit.div_ceil(8) * 8;
            }
            fn decode(&mut self, h: &Huffman) -> usize {
                let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
                for len in 1..16 {
                    code |= self.read(1) as i32;
                    let count = h.counts[len] as i32;
                    if code - first < count {
                        return h.symbols[(index + code - first) as usize];
                    }
                    index += count;
                    first = (first + count) << 1;
                    code <<= 1;
                }
                panic!("bad Huffman code");
            }
        }
        struct Huffman {
            counts: [u16; 16],
            symbols: Vec<usize>,
        }
        fn huffman(lengths: &[u8]) -> Huffman {
            let mut counts = [0u16; 16];
            for &l in lengths {
                counts[usize::from(l)] += 1;
            }
            counts[0] = 0;
            let mut symbols = Vec::new();
            for len in 1..16u8 {
                for (sym, &l) in lengths.iter().enumerate() {
                    if l == len {
                        symbols.push(sym);
                    }
                }
            }
            Huffman { counts, symbols }
        }
        const LEN_BASE: [usize; 29] = [
            3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99,
            115, 131, 163, 195, 227, 258,
        ];
        const LEN_EXTRA: [u32; 29] = [
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
        ];
        const DIST_BASE: [usize; 30] = [
            1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025,
            1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
        ];
        const DIST_EXTRA: [u32; 30] = [
            0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12,
            12, 13, 13,
        ];
        const CL_ORDER: [usize; 19] = [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ];

        let mut bits = Bits { data, bit: 0 };
        let mut out: Vec<u8> = Vec::new();
        let mut max_distance = 0;
        while bits.bit < data.len() * 8 {
            let last = bits.read(1) == 1;
            match bits.read(2) {
                0 => {
                    bits.align();
                    let len = bits.read(16) as usize;
                    let nlen = bits.read(16) as usize;
                    assert_eq!(len, !nlen & 0xffff);
                    for _ in 0..len {
                        out.push(bits.read(8) as u8);
                    }
                }
                btype @ (1 | 2) => {
                    let (lit, dist) = if btype == 1 {
                        let mut l = [8u8; 288];
                        l[144..256].fill(9);
                        l[256..280].fill(7);
                        (huffman(&l), huffman(&[5u8; 30]))
                    } else {
                        let hlit = bits.read(5) as usize + 257;
                        let hdist = bits.read(5) as usize + 1;
                        let hclen = bits.read(4) as usize + 4;
                        let mut cl = [0u8; 19];
                        for &i in &CL_ORDER[..hclen] {
                            cl[i] = bits.read(3) as u8;
                        }
                        let cl = huffman(&cl);
                        let mut lengths = Vec::new();
                        while lengths.len() < hlit + hdist {
                            match bits.decode(&cl) {
                                sym @ 0..=15 => lengths.push(sym as u8),
                                16 => {
                                    let prev = *lengths.last().unwrap();
                                    let n = 3 + bits.read(2);
                                    lengths.extend((0..n).map(|_| prev));
                                }
                                17 => lengths.extend((0..3 + bits.read(3)).map(|_| 0u8)),
                                _ => lengths.extend((0..11 + bits.read(7)).map(|_| 0u8)),
                            }
                        }
                        (huffman(&lengths[..hlit]), huffman(&lengths[hlit..]))
                    };
                    loop {
                        let sym = bits.decode(&lit);
                        if sym < 256 {
                            out.push(sym as u8);
                        } else if sym == 256 {
                            break;
                        } else {
                            let i = sym - 257;
                            let len = LEN_BASE[i] + bits.read(LEN_EXTRA[i]) as usize;
                            let d = bits.decode(&dist);
                            let distance = DIST_BASE[d] + bits.read(DIST_EXTRA[d]) as usize;
                            assert!(distance <= out.len(), "distance before stream start");
                            max_distance = max_distance.max(distance);
                            for _ in 0..len {
                                out.push(out[out.len() - distance]);
                            }
                        }
                    }
                }
                _ => panic!("reserved block type"),
            }
            if last {
                break;
            }
        }
        (out, max_distance)
    }

    #[test]
    fn reference_decoder_agrees_with_rfc_examples() {
        let mut stream = HELLO_COMPRESSED.to_vec();
        stream.extend_from_slice(&TAIL);
        stream.extend_from_slice(&[0xf2, 0x00, 0x11, 0x00, 0x00]);
        stream.extend_from_slice(&TAIL);
        assert_eq!(reference_inflate(&stream), (b"HelloHello".to_vec(), 5));
    }

    // -----------------------------------------------------------------------------------------
    // Header parsing
    // -----------------------------------------------------------------------------------------

    fn ext(name: &str, params: &[(&str, Option<&str>)]) -> ExtensionOffer {
        ExtensionOffer {
            name: name.to_owned(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
                .collect(),
        }
    }

    #[test]
    fn parse_extensions_follows_rfc6455_grammar() {
        let parsed = parse_extensions(&[
            "permessage-deflate; client_max_window_bits; \
             server_max_window_bits=10",
            " , foo ;a=\"b\" ;c = d,permessage-deflate\t;\tx=\"q\\uoted\"",
            "",
        ])
        .unwrap();
        assert_eq!(
            parsed,
            vec![
                ext(
                    "permessage-deflate",
                    &[
                        ("client_max_window_bits", None),
                        ("server_max_window_bits", Some("10"))
                    ]
                ),
                ext("foo", &[("a", Some("b")), ("c", Some("d"))]),
                ext("permessage-deflate", &[("x", Some("quoted"))]),
            ]
        );
        for bad in [
            "permessage-deflate;",
            "permessage-deflate; a=",
            "permessage-deflate; a=\"unterminated",
            "permessage-deflate; a=\"not a token\"",
            "permessage-deflate; a=\"\"",
            "permessage-deflate x",
            "permessage-deflate; =1",
            ";a",
            "pérmessage-deflate",
            "a; b=c=d",
        ] {
            let err = parse_extensions(&["ok", bad]).unwrap_err();
            assert_eq!(err.value_index(), 1, "{bad:?}");
            assert!(err.offset() <= bad.len());
            assert!(!err.to_string().is_empty());
        }
    }

    // -----------------------------------------------------------------------------------------
    // Negotiation
    // -----------------------------------------------------------------------------------------

    fn offer(snct: bool, cnct: bool, smwb: Option<u8>, cmwb: ClientWindowBits) -> DeflateOffer {
        DeflateOffer {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: smwb,
            client_max_window_bits: cmwb,
        }
    }

    fn server_cfg(smwb: u8, cmwb: u8, snct: bool, cnct: bool) -> DeflateConfig {
        DeflateConfig {
            server_max_window_bits: smwb,
            client_max_window_bits: cmwb,
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            ..DeflateConfig::default()
        }
    }

    #[test]
    fn client_offer_header_renders_offers_in_order() {
        assert_eq!(
            client_offer_header(&DeflateConfig::default()),
            "permessage-deflate; client_max_window_bits"
        );
        let cfg = DeflateConfig {
            offers: vec![
                offer(true, true, Some(10), ClientWindowBits::Bits(12)),
                offer(false, false, Some(3), ClientWindowBits::Absent),
                offer(false, false, None, ClientWindowBits::Absent),
            ],
            ..DeflateConfig::default()
        };
        assert_eq!(
            client_offer_header(&cfg),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=12, \
             permessage-deflate; server_max_window_bits=8, permessage-deflate"
        );
        let none = DeflateConfig {
            offers: vec![],
            ..DeflateConfig::default()
        };
        assert_eq!(client_offer_header(&none), "");
    }

    /// (request header values, server config) -> expected (params, answer) or decline.
    #[test]
    fn server_negotiation_matrix() {
        let default = DeflateConfig::default();
        let d = DeflateParams::default();
        type Row<'a> = (
            &'a [&'a str],
            DeflateConfig,
            Option<(DeflateParams, &'a str)>,
        );
        let rows: &[Row<'_>] = &[
            // Plain offers.
            (&[], default.clone(), None),
            (&["x-webkit-deflate-frame"], default.clone(), None),
            (
                &["permessage-deflate"],
                default.clone(),
                Some((d, "permessage-deflate")),
            ),
            (
                &["PerMessage-Deflate"],
                default.clone(),
                Some((d, "permessage-deflate")),
            ),
            (
                &["permessage-deflate; client_max_window_bits"],
                default.clone(),
                Some((d, "permessage-deflate")),
            ),
            // Client asks for limits / no takeover.
            (
                &["permessage-deflate; server_no_context_takeover"],
                default.clone(),
                Some((
                    params(true, false, 15, 15),
                    "permessage-deflate; server_no_context_takeover",
                )),
            ),
            (
                &["permessage-deflate; client_no_context_takeover"],
                default.clone(),
                Some((
                    params(false, true, 15, 15),
                    "permessage-deflate; client_no_context_takeover",
                )),
            ),
            (
                &["permessage-deflate; server_max_window_bits=10"],
                default.clone(),
                Some((
                    params(false, false, 10, 15),
                    "permessage-deflate; server_max_window_bits=10",
                )),
            ),
            (
                &["permessage-deflate; server_max_window_bits=8"],
                default.clone(),
                Some((
                    params(false, false, 8, 15),
                    "permessage-deflate; server_max_window_bits=8",
                )),
            ),
            (
                &["permessage-deflate; server_max_window_bits=\"12\""],
                default.clone(),
                Some((
                    params(false, false, 12, 15),
                    "permessage-deflate; server_max_window_bits=12",
                )),
            ),
            (
                &["permessage-deflate; client_max_window_bits=9"],
                default.clone(),
                Some((
                    params(false, false, 15, 9),
                    "permessage-deflate; client_max_window_bits=9",
                )),
            ),
            // Server policy.
            (
                &["permessage-deflate"],
                server_cfg(10, 15, false, false),
                Some((
                    params(false, false, 10, 15),
                    "permessage-deflate; server_max_window_bits=10",
                )),
            ),
            (
                &["permessage-deflate; server_max_window_bits=12"],
                server_cfg(10, 15, false, false),
                Some((
                    params(false, false, 10, 15),
                    "permessage-deflate; server_max_window_bits=10",
                )),
            ),
            (
                &["permessage-deflate; server_max_window_bits=9"],
                server_cfg(10, 15, false, false),
                Some((
                    params(false, false, 9, 15),
                    "permessage-deflate; server_max_window_bits=9",
                )),
            ),
            (
                // The client does not allow limiting its window: 15 it is.
                &["permessage-deflate"],
                server_cfg(15, 10, false, false),
                Some((d, "permessage-deflate")),
            ),
            (
                &["permessage-deflate; client_max_window_bits"],
                server_cfg(15, 10, false, false),
                Some((
                    params(false, false, 15, 10),
                    "permessage-deflate; client_max_window_bits=10",
                )),
            ),
            (
                &["permessage-deflate; client_max_window_bits=12"],
                server_cfg(15, 10, false, false),
                Some((
                    params(false, false, 15, 10),
                    "permessage-deflate; client_max_window_bits=10",
                )),
            ),
            (
                &["permessage-deflate; client_max_window_bits=9"],
                server_cfg(15, 10, false, false),
                Some((
                    params(false, false, 15, 9),
                    "permessage-deflate; client_max_window_bits=9",
                )),
            ),
            (
                &["permessage-deflate; client_max_window_bits"],
                server_cfg(9, 8, true, true),
                Some((
                    params(true, true, 9, 8),
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                     server_max_window_bits=9; client_max_window_bits=8",
                )),
            ),
            (
                // Out-of-range configuration is clamped.
                &["permessage-deflate; client_max_window_bits"],
                server_cfg(3, 99, false, false),
                Some((
                    params(false, false, 8, 15),
                    "permessage-deflate; server_max_window_bits=8",
                )),
            ),
            // Invalid offers are skipped in favour of the next acceptable one.
            (&["permessage-deflate; foo"], default.clone(), None),
            (
                &["permessage-deflate; server_max_window_bits"],
                default.clone(),
                None,
            ),
            (
                &["permessage-deflate; server_max_window_bits=7"],
                default.clone(),
                None,
            ),
            (
                &["permessage-deflate; server_max_window_bits=16"],
                default.clone(),
                None,
            ),
            (
                &["permessage-deflate; server_max_window_bits=abc"],
                default.clone(),
                None,
            ),
            (
                &["permessage-deflate; server_max_window_bits=010"],
                default.clone(),
                None,
            ),
            (
                &["permessage-deflate; client_max_window_bits=7"],
                default.clone(),
                None,
            ),
            (
                &["permessage-deflate; server_no_context_takeover=1"],
                default.clone(),
                None,
            ),
            (
                &["permessage-deflate; client_no_context_takeover=\"x\""],
                default.clone(),
                None,
            ),
            (
                &["permessage-deflate; server_no_context_takeover; \
                   server_no_context_takeover"],
                default.clone(),
                None,
            ),
            (
                &[
                    "permessage-deflate; \
                     server_max_window_bits=16, permessage-deflate; foo=1",
                    "foo, permessage-deflate; \
                     server_max_window_bits=11, permessage-deflate",
                ],
                default.clone(),
                Some((
                    params(false, false, 11, 15),
                    "permessage-deflate; server_max_window_bits=11",
                )),
            ),
            (
                // A malformed header declines everything.
                &["permessage-deflate; \
                   server_max_window_bits=\"1 1\", permessage-deflate"],
                default.clone(),
                None,
            ),
        ];
        for (i, (request, cfg, expected)) in rows.iter().enumerate() {
            let got = server_negotiate(cfg, request);
            let expected = expected.map(|(p, s)| (p, s.to_owned()));
            assert_eq!(got, expected, "row {i}: {request:?}");
            // Every answer we give is accepted by a client that made the same offers, with the
            // same view of the server's half of the parameters.
            if let Some((server_view, answer)) = got {
                let offers: Vec<DeflateOffer> = parse_extensions(request)
                    .unwrap()
                    .iter()
                    .filter(|e| e.name.eq_ignore_ascii_case(EXTENSION_NAME))
                    .filter_map(|e| parse_offer_params(&e.params))
                    .map(|o| {
                        offer(
                            o.server_no_context_takeover,
                            o.client_no_context_takeover,
                            o.server_max_window_bits,
                            o.client_max_window_bits,
                        )
                    })
                    .collect();
                let client_cfg = DeflateConfig {
                    offers,
                    ..DeflateConfig::default()
                };
                let client_view = client_accept_response(&client_cfg, &[answer.as_str()])
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    client_view.server_no_context_takeover,
                    server_view.server_no_context_takeover
                );
                assert_eq!(
                    client_view.server_max_window_bits,
                    server_view.server_max_window_bits
                );
                assert!(client_view.client_max_window_bits <= server_view.client_max_window_bits);
                assert!(
                    client_view.client_no_context_takeover
                        || !server_view.client_no_context_takeover
                );
            }
        }
    }

    #[test]
    fn client_accepts_valid_answers() {
        let browser = DeflateConfig::default();
        let strict = DeflateConfig {
            offers: vec![offer(true, true, Some(10), ClientWindowBits::Bits(12))],
            ..DeflateConfig::default()
        };
        let two = DeflateConfig {
            offers: vec![
                offer(true, false, Some(9), ClientWindowBits::Absent),
                offer(false, false, None, ClientWindowBits::NoValue),
            ],
            ..DeflateConfig::default()
        };
        let d = DeflateParams::default();
        let rows: &[(&DeflateConfig, &[&str], Option<DeflateParams>)] = &[
            (&browser, &[], None),
            (&browser, &[""], None),
            (&browser, &["permessage-deflate"], Some(d)),
            (
                &browser,
                &["permessage-deflate; server_no_context_takeover"],
                Some(params(true, false, 15, 15)),
            ),
            (
                &browser,
                &["permessage-deflate; client_no_context_takeover"],
                Some(params(false, true, 15, 15)),
            ),
            (
                &browser,
                &["permessage-deflate; server_max_window_bits=8"],
                Some(params(false, false, 8, 15)),
            ),
            (
                &browser,
                &["permessage-deflate; client_max_window_bits=8"],
                Some(params(false, false, 15, 8)),
            ),
            (
                &browser,
                &["permessage-deflate; client_max_window_bits=\"11\""],
                Some(params(false, false, 15, 11)),
            ),
            (
                &browser,
                &[
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                     server_max_window_bits=9; client_max_window_bits=10",
                ],
                Some(params(true, true, 9, 10)),
            ),
            (
                &strict,
                &["permessage-deflate; server_no_context_takeover; \
                   server_max_window_bits=10"],
                Some(params(true, true, 10, 12)),
            ),
            (
                &strict,
                &["permessage-deflate; server_no_context_takeover; \
                   server_max_window_bits=8; client_max_window_bits=9"],
                Some(params(true, true, 8, 9)),
            ),
            (
                &two,
                &["permessage-deflate; server_no_context_takeover; \
                   server_max_window_bits=9"],
                Some(params(true, false, 9, 15)),
            ),
            // Fits only the second offer (no server_no_context_takeover).
            (
                &two,
                &["permessage-deflate; server_max_window_bits=9"],
                Some(params(false, false, 9, 15)),
            ),
            (
                &two,
                &["permessage-deflate; client_max_window_bits=10"],
                Some(params(false, false, 15, 10)),
            ),
        ];
        for (i, (cfg, answer, expected)) in rows.iter().enumerate() {
            assert_eq!(
                client_accept_response(cfg, answer),
                Ok(*expected),
                "row {i}: {answer:?}"
            );
        }
    }

    #[test]
    fn client_rejects_invalid_answers() {
        use NegotiationError as E;
        let browser = DeflateConfig::default();
        let no_limit = DeflateConfig {
            offers: vec![offer(false, false, None, ClientWindowBits::Absent)],
            ..DeflateConfig::default()
        };
        let strict = DeflateConfig {
            offers: vec![offer(true, false, Some(10), ClientWindowBits::Bits(12))],
            ..DeflateConfig::default()
        };
        let none = DeflateConfig {
            offers: vec![],
            ..DeflateConfig::default()
        };
        let unknown = || E::UnknownParameter("foo".into());
        let rows: &[(&DeflateConfig, &[&str], NegotiationError)] = &[
            (&browser, &["permessage-deflate; foo"], unknown()),
            (&browser, &["permessage-deflate; foo=1"], unknown()),
            (
                &browser,
                &["permessage-deflate; server_no_context_takeover; \
                   server_no_context_takeover"],
                E::DuplicateParameter("server_no_context_takeover".into()),
            ),
            (
                &browser,
                &["permessage-deflate; client_max_window_bits=9; \
                   client_max_window_bits=9"],
                E::DuplicateParameter("client_max_window_bits".into()),
            ),
            (
                &browser,
                &["permessage-deflate; server_max_window_bits=7"],
                E::InvalidValue("server_max_window_bits".into()),
            ),
            (
                &browser,
                &["permessage-deflate; server_max_window_bits=16"],
                E::InvalidValue("server_max_window_bits".into()),
            ),
            (
                &browser,
                &["permessage-deflate; server_max_window_bits=abc"],
                E::InvalidValue("server_max_window_bits".into()),
            ),
            (
                &browser,
                &["permessage-deflate; server_max_window_bits"],
                E::InvalidValue("server_max_window_bits".into()),
            ),
            (
                &browser,
                &["permessage-deflate; client_max_window_bits"],
                E::InvalidValue("client_max_window_bits".into()),
            ),
            (
                &browser,
                &["permessage-deflate; client_max_window_bits=7"],
                E::InvalidValue("client_max_window_bits".into()),
            ),
            (
                &browser,
                &["permessage-deflate; client_no_context_takeover=1"],
                E::InvalidValue("client_no_context_takeover".into()),
            ),
            (
                &no_limit,
                &["permessage-deflate; client_max_window_bits=10"],
                E::Incompatible,
            ),
            (
                &strict,
                &["permessage-deflate; server_no_context_takeover; \
                   server_max_window_bits=11"],
                E::Incompatible,
            ),
            (
                &strict,
                &["permessage-deflate; server_no_context_takeover"],
                E::Incompatible,
            ),
            (
                &strict,
                &["permessage-deflate; server_max_window_bits=10"],
                E::Incompatible,
            ),
            (
                &strict,
                &["permessage-deflate; server_no_context_takeover; \
                   server_max_window_bits=10; client_max_window_bits=13"],
                E::Incompatible,
            ),
            (
                &browser,
                &["x-webkit-deflate-frame"],
                E::UnexpectedExtension("x-webkit-deflate-frame".into()),
            ),
            (
                &browser,
                &["permessage-deflate, foo"],
                E::UnexpectedExtension("foo".into()),
            ),
            (
                &none,
                &["permessage-deflate"],
                E::UnexpectedExtension("permessage-deflate".into()),
            ),
            (
                &browser,
                &["permessage-deflate, permessage-deflate"],
                E::DuplicateExtension,
            ),
            (
                &browser,
                &["permessage-deflate", "permessage-deflate"],
                E::DuplicateExtension,
            ),
        ];
        for (i, (cfg, answer, expected)) in rows.iter().enumerate() {
            assert_eq!(
                client_accept_response(cfg, answer),
                Err(expected.clone()),
                "row {i}: {answer:?}"
            );
        }
        let malformed = client_accept_response(&browser, &["permessage-deflate;"]);
        assert!(matches!(malformed, Err(E::Malformed(_))), "{malformed:?}");
    }

    // -----------------------------------------------------------------------------------------
    // Round-trip properties
    // -----------------------------------------------------------------------------------------

    fn message_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2_000),
            proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b' ')], 0..6_000),
            (0u64..1_000, 0usize..20_000).prop_map(|(seed, len)| mixed_text(len, seed + 1)),
        ]
    }

    fn fail(e: InflateError) -> TestCaseError {
        TestCaseError::fail(e.to_string())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Messages compressed by one side come back intact on the other, in both directions,
        /// for every takeover combination and window size, whole or in random frames.
        #[test]
        fn round_trip(
            messages in proptest::collection::vec(message_strategy(), 1..5),
            snct in any::<bool>(),
            cnct in any::<bool>(),
            smwb in 8u8..=15,
            cmwb in 8u8..=15,
            level in 0u32..=9,
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let p = params(snct, cnct, smwb, cmwb);
            for (sender, receiver) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
                let mut c = Compressor::new(&p, sender, level);
                let mut d_whole = Decompressor::new(&p, receiver);
                let mut d_split = Decompressor::new(&p, receiver);
                for msg in &messages {
                    let mut payload = BytesMut::new();
                    c.compress(msg, &mut payload);
                    let mut out = BytesMut::new();
                    let n = d_whole.decompress(&payload, true, &mut out, msg.len()).map_err(fail)?;
                    prop_assert_eq!(n, msg.len());
                    prop_assert_eq!(&out[..], &msg[..]);

                    // Fragmentation: the same payload cut at random points.
                    let mut points: Vec<usize> =
                        cuts.iter().map(|ix| ix.index(payload.len() + 1)).collect();
                    points.push(0);
                    points.push(payload.len());
                    points.sort_unstable();
                    let mut out = BytesMut::new();
                    for (i, w) in points.windows(2).enumerate() {
                        let fin = i + 2 == points.len();
                        d_split
                            .decompress(&payload[w[0]..w[1]], fin, &mut out, msg.len())
                            .map_err(fail)?;
                    }
                    prop_assert_eq!(&out[..], &msg[..]);
                }
            }
        }

        /// Fragmented sending (`compress_fragment`) round-trips too.
        #[test]
        fn fragmented_send_round_trip(
            msg in message_strategy(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
            nct in any::<bool>(),
            bits in 8u8..=15,
        ) {
            let p = params(nct, nct, bits, bits);
            let mut c = Compressor::new(&p, Role::Server, 1);
            let mut d = Decompressor::new(&p, Role::Client);
            for _ in 0..2 {
                let mut points: Vec<usize> =
                    cuts.iter().map(|ix| ix.index(msg.len() + 1)).collect();
                points.push(0);
                points.push(msg.len());
                points.sort_unstable();
                let mut out = BytesMut::new();
                for (i, w) in points.windows(2).enumerate() {
                    let fin = i + 2 == points.len();
                    let mut frame = BytesMut::new();
                    c.compress_fragment(&msg[w[0]..w[1]], fin, &mut frame);
                    d.decompress(&frame, fin, &mut out, usize::MAX).map_err(fail)?;
                }
                prop_assert_eq!(&out[..], &msg[..]);
            }
        }

        /// Arbitrary bytes never panic the decompressor nor break its limit.
        #[test]
        fn arbitrary_input_is_bounded(
            frames in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..300),
                1..4,
            ),
            limit in 0usize..5_000,
        ) {
            let mut d = Decompressor::new(&DeflateParams::default(), Role::Server);
            let mut out = BytesMut::new();
            for (i, f) in frames.iter().enumerate() {
                let fin = i + 1 == frames.len();
                if d.decompress(f, fin, &mut out, limit).is_err() {
                    break;
                }
            }
            prop_assert!(out.len() <= limit);
        }
    }
}
