//! The message format on a room's Redis channel.
//!
//! A room's messages go to the channel [`CHANNEL_PREFIX`] + room (the room is
//! the WebSocket request path, e.g. `wsx:room:/chat`). Every channel message
//! is one envelope, big-endian numbers:
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 4 | magic `WSR1` (format version 1) |
//! | 4 | 8 | origin: the publishing server's id (random per process) |
//! | 12 | 8 | conn: the sending connection's id on that server |
//! | 20 | 8 | seq: the origin's publish number (1, 2, 3... over all its rooms) |
//! | 28 | 1 | kind: 1 text, 2 binary |
//! | 29 | rest | the message payload |
//!
//! Anybody who can publish on the Redis server can put anything on a
//! channel: [`decode`] checks everything (length, magic, kind, UTF-8 of
//! text, size limit) and returns an error, never panics (fuzzed:
//! `fuzz/fuzz_targets/redis_envelope.rs`).
//!
//! ```
//! use ws_proto::MessageKind;
//! use ws_redis::wire;
//!
//! let frame = wire::encode(7, 42, 1, MessageKind::Text, b"hello");
//! let env = wire::decode(frame.into(), 1 << 20).unwrap();
//! assert_eq!((env.origin, env.conn, env.seq), (7, 42, 1));
//! assert_eq!(&env.payload[..], b"hello");
//! assert!(wire::decode(bytes::Bytes::from_static(b"garbage"), 1 << 20).is_err());
//! ```

use std::fmt;

use bytes::Bytes;
use ws_proto::MessageKind;

/// Prefix of every room's channel name.
pub const CHANNEL_PREFIX: &str = "wsx:room:";
/// The pattern every server subscribes to (every room's channel).
pub const CHANNEL_PATTERN: &str = "wsx:room:*";
/// First bytes of every envelope (format version 1).
pub const MAGIC: [u8; 4] = *b"WSR1";
/// Bytes before the payload.
pub const HEADER_LEN: usize = 29;

const KIND_TEXT: u8 = 1;
const KIND_BINARY: u8 = 2;

/// One decoded channel message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The publishing server's id.
    pub origin: u64,
    /// The sending connection's id on the publishing server.
    pub conn: u64,
    /// The origin's publish number (consecutive over all its rooms).
    pub seq: u64,
    /// Text or binary.
    pub kind: MessageKind,
    /// The message (valid UTF-8 when `kind` is text).
    pub payload: Bytes,
}

/// Why a channel message or channel name was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the header (the length it had).
    Short(usize),
    /// Not starting with [`MAGIC`].
    Magic,
    /// A kind byte other than 1 (text) or 2 (binary).
    Kind(u8),
    /// A text message that is not UTF-8.
    Utf8,
    /// A payload longer than the limit (its length).
    TooLarge(usize),
    /// A channel name without [`CHANNEL_PREFIX`] or not UTF-8.
    Channel,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short(n) => {
                write!(f, "{n} bytes, shorter than the {HEADER_LEN}-byte header")
            }
            DecodeError::Magic => f.write_str("no WSR1 magic"),
            DecodeError::Kind(k) => write!(f, "unknown kind {k}"),
            DecodeError::Utf8 => f.write_str("text message not UTF-8"),
            DecodeError::TooLarge(n) => write!(f, "payload of {n} bytes over the limit"),
            DecodeError::Channel => f.write_str("channel name not wsx:room:<UTF-8 path>"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The channel of `room`.
pub fn channel(room: &str) -> String {
    format!("{CHANNEL_PREFIX}{room}")
}

/// The room a channel name belongs to.
pub fn room_of(channel: &[u8]) -> Result<&str, DecodeError> {
    let rest = channel
        .strip_prefix(CHANNEL_PREFIX.as_bytes())
        .ok_or(DecodeError::Channel)?;
    std::str::from_utf8(rest).map_err(|_| DecodeError::Channel)
}

/// The envelope of one message.
pub fn encode(origin: u64, conn: u64, seq: u64, kind: MessageKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&origin.to_be_bytes());
    out.extend_from_slice(&conn.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.push(match kind {
        MessageKind::Text => KIND_TEXT,
        MessageKind::Binary => KIND_BINARY,
    });
    out.extend_from_slice(payload);
    out
}

/// Decodes one channel message; the payload shares `frame`'s memory. A
/// payload longer than `max_payload` bytes is refused.
pub fn decode(frame: Bytes, max_payload: usize) -> Result<Envelope, DecodeError> {
    let Some(header) = frame.get(..HEADER_LEN) else {
        return Err(DecodeError::Short(frame.len()));
    };
    if header[..4] != MAGIC {
        return Err(DecodeError::Magic);
    }
    let num = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[at..at + 8]);
        u64::from_be_bytes(b)
    };
    let (origin, conn, seq) = (num(4), num(12), num(20));
    let kind = match header[28] {
        KIND_TEXT => MessageKind::Text,
        KIND_BINARY => MessageKind::Binary,
        k => return Err(DecodeError::Kind(k)),
    };
    let len = frame.len() - HEADER_LEN;
    if len > max_payload {
        return Err(DecodeError::TooLarge(len));
    }
    let payload = frame.slice(HEADER_LEN..);
    if kind == MessageKind::Text && std::str::from_utf8(&payload).is_err() {
        return Err(DecodeError::Utf8);
    }
    Ok(Envelope {
        origin,
        conn,
        seq,
        kind,
        payload,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_both_kinds() {
        for kind in [MessageKind::Text, MessageKind::Binary] {
            let f = encode(u64::MAX, 3, 9, kind, "héllo".as_bytes());
            let e = decode(Bytes::from(f), 64).unwrap();
            assert_eq!(
                e,
                Envelope {
                    origin: u64::MAX,
                    conn: 3,
                    seq: 9,
                    kind,
                    payload: Bytes::from("héllo"),
                }
            );
        }
        let empty = decode(Bytes::from(encode(1, 2, 3, MessageKind::Binary, b"")), 0).unwrap();
        assert!(empty.payload.is_empty());
    }

    #[test]
    fn hostile_frames_are_errors() {
        let good = encode(1, 2, 3, MessageKind::Text, b"hi");
        assert_eq!(decode(Bytes::new(), 64), Err(DecodeError::Short(0)));
        assert_eq!(
            decode(Bytes::copy_from_slice(&good[..HEADER_LEN - 1]), 64),
            Err(DecodeError::Short(HEADER_LEN - 1))
        );
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(decode(Bytes::from(bad), 64), Err(DecodeError::Magic));
        for k in [0u8, 3, 255] {
            let mut bad = good.clone();
            bad[28] = k;
            assert_eq!(decode(Bytes::from(bad), 64), Err(DecodeError::Kind(k)));
        }
        let bad = encode(1, 2, 3, MessageKind::Text, &[0xff, 0xfe]);
        assert_eq!(decode(Bytes::from(bad), 64), Err(DecodeError::Utf8));
        // The same bytes as binary are fine.
        let ok = encode(1, 2, 3, MessageKind::Binary, &[0xff, 0xfe]);
        assert!(decode(Bytes::from(ok), 64).is_ok());
        assert_eq!(decode(Bytes::from(good), 1), Err(DecodeError::TooLarge(2)));
    }

    #[test]
    fn channel_names() {
        assert_eq!(channel("/chat"), "wsx:room:/chat");
        assert_eq!(room_of(b"wsx:room:/chat"), Ok("/chat"));
        assert_eq!(room_of(b"wsx:room:"), Ok(""));
        assert_eq!(room_of(b"other:/chat"), Err(DecodeError::Channel));
        assert_eq!(room_of(b"wsx:room:\xff"), Err(DecodeError::Channel));
    }
}
