//! Frame headers (RFC 6455 §5.2): parsing and encoding.
//!
//! This module is purely syntactic: it knows the wire layout and rejects what
//! can never be valid (reserved opcodes, a 64-bit length with the top bit
//! set). Rules that depend on the connection (masking direction, RSV bits
//! negotiated by an extension, control frame size, fragmentation) are checked
//! by [`Connection`](crate::Connection).

use std::fmt;

/// A frame opcode (RFC 6455 §5.2, §11.8).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpCode(u8);

impl OpCode {
    /// Continuation frame.
    pub const CONTINUATION: OpCode = OpCode(0x0);
    /// Text frame.
    pub const TEXT: OpCode = OpCode(0x1);
    /// Binary frame.
    pub const BINARY: OpCode = OpCode(0x2);
    /// Close frame.
    pub const CLOSE: OpCode = OpCode(0x8);
    /// Ping frame.
    pub const PING: OpCode = OpCode(0x9);
    /// Pong frame.
    pub const PONG: OpCode = OpCode(0xA);

    /// Parses the low four bits of the first header byte; `None` for the
    /// reserved opcodes 0x3-0x7 and 0xB-0xF.
    pub fn from_u8(v: u8) -> Option<OpCode> {
        match v {
            0x0..=0x2 | 0x8..=0xA => Some(OpCode(v)),
            _ => None,
        }
    }

    /// The numeric value.
    pub fn as_u8(self) -> u8 {
        self.0
    }

    /// Close, ping and pong are control frames.
    pub fn is_control(self) -> bool {
        self.0 & 0x8 != 0
    }
}

impl fmt::Debug for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            OpCode::CONTINUATION => "Continuation",
            OpCode::TEXT => "Text",
            OpCode::BINARY => "Binary",
            OpCode::CLOSE => "Close",
            OpCode::PING => "Ping",
            OpCode::PONG => "Pong",
            _ => return write!(f, "OpCode({:#x})", self.0),
        };
        f.write_str(name)
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of a message.
    pub fin: bool,
    /// RSV1 (used by permessage-deflate to mark a compressed message).
    pub rsv1: bool,
    /// RSV2 (no extension we know uses it).
    pub rsv2: bool,
    /// RSV3 (no extension we know uses it).
    pub rsv3: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on frames sent by a client.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes.
    pub payload_len: u64,
}

/// A header that can never be valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// A reserved opcode (0x3-0x7, 0xB-0xF).
    ReservedOpcode(u8),
    /// A 64-bit payload length with its most significant bit set (§5.2).
    LengthTopBit,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            FrameError::LengthTopBit => f.write_str("64-bit payload length with the top bit set"),
        }
    }
}

impl std::error::Error for FrameError {}

impl FrameHeader {
    /// The longest possible header: 2 + 8 (length) + 4 (mask) bytes.
    pub const MAX_LEN: usize = 14;

    /// Parses a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold the whole header, and
    /// otherwise the header with the number of bytes it occupied. Never reads
    /// past the header and never trusts the declared length for anything.
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, FrameError> {
        let (b0, b1) = match buf {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(None),
        };
        let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(FrameError::ReservedOpcode(b0 & 0x0F))?;
        let masked = b1 & 0x80 != 0;
        // (declared length, where the mask starts, where the header ends if masked)
        let (payload_len, pos, masked_end) = match b1 & 0x7F {
            126 => match buf.get(2..4) {
                Some(&[hi, lo]) => (u64::from(u16::from_be_bytes([hi, lo])), 4, 8),
                _ => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    let len = u64::from_be_bytes(a);
                    if len >> 63 != 0 {
                        return Err(FrameError::LengthTopBit);
                    }
                    (len, 10, 14)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 2, 6),
        };
        let (mask, pos) = if masked {
            match buf.get(pos..masked_end) {
                Some(&[a, b, c, d]) => (Some([a, b, c, d]), masked_end),
                _ => return Ok(None),
            }
        } else {
            (None, pos)
        };
        Ok(Some((
            FrameHeader {
                fin: b0 & 0x80 != 0,
                rsv1: b0 & 0x40 != 0,
                rsv2: b0 & 0x20 != 0,
                rsv3: b0 & 0x10 != 0,
                opcode,
                mask,
                payload_len,
            },
            pos,
        )))
    }

    /// The number of bytes [`encode`](Self::encode) writes.
    #[allow(clippy::arithmetic_side_effects)] // at most 2 + 8 + 4
    pub fn encoded_len(&self) -> usize {
        let len_bytes = match self.payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        2 + len_bytes + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Writes the header (with the shortest length encoding) and returns its
    /// length.
    ///
    /// A `payload_len` with the top bit set is clamped to `2^63 - 1`: such a
    /// frame cannot be sent.
    #[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)] // pos <= 10: pos + 4 <= MAX_LEN
    pub fn encode(&self, out: &mut [u8; Self::MAX_LEN]) -> usize {
        let len = self.payload_len.min(u64::MAX >> 1);
        out[0] = (u8::from(self.fin) << 7)
            | (u8::from(self.rsv1) << 6)
            | (u8::from(self.rsv2) << 5)
            | (u8::from(self.rsv3) << 4)
            | self.opcode.0;
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = match len {
            0..=125 => {
                out[1] = mask_bit | len as u8;
                2
            }
            126..=0xFFFF => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            _ => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(m) = self.mask {
            out[pos..pos + 4].copy_from_slice(&m);
            pos += 4;
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(b: &[u8]) -> (FrameHeader, usize) {
        FrameHeader::parse(b).unwrap().unwrap()
    }

    #[test]
    fn rfc6455_5_7_unmasked_hello() {
        let (h, n) = parse_all(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(n, 2);
        assert!(h.fin);
        assert_eq!(h.opcode, OpCode::TEXT);
        assert_eq!(h.payload_len, 5);
        assert_eq!(h.mask, None);
    }

    #[test]
    fn rfc6455_5_7_masked_hello() {
        let wire = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (h, n) = parse_all(&wire);
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        let mut out = [0u8; 14];
        assert_eq!(h.encode(&mut out), 6);
        assert_eq!(&out[..6], &wire[..6]);
    }

    #[test]
    fn rfc6455_5_7_fragmented_hello() {
        let (h1, _) = parse_all(&[0x01, 0x03, 0x48, 0x65, 0x6c]);
        let (h2, _) = parse_all(&[0x80, 0x02, 0x6c, 0x6f]);
        assert!(!h1.fin && h1.opcode == OpCode::TEXT && h1.payload_len == 3);
        assert!(h2.fin && h2.opcode == OpCode::CONTINUATION && h2.payload_len == 2);
    }

    #[test]
    fn rfc6455_5_7_ping_and_pong() {
        let (ping, _) = parse_all(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(ping.opcode, OpCode::PING);
        let (pong, _) = parse_all(&[
            0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ]);
        assert_eq!(pong.opcode, OpCode::PONG);
        assert!(pong.mask.is_some());
    }

    #[test]
    fn rfc6455_5_7_binary_256_and_64k() {
        let (h, n) = parse_all(&[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!((h.payload_len, n), (256, 4));
        let (h, n) = parse_all(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn incomplete_headers_ask_for_more() {
        let full = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for i in 0..full.len() {
            assert_eq!(FrameHeader::parse(&full[..i]), Ok(None), "prefix {i}");
        }
        assert_eq!(parse_all(&full).1, 14);
    }

    #[test]
    fn top_bit_length_rejected() {
        let b = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&b), Err(FrameError::LengthTopBit));
    }

    #[test]
    fn reserved_opcodes_rejected() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                FrameHeader::parse(&[0x80 | op, 0]),
                Err(FrameError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn encode_roundtrip_boundaries() {
        for len in [0u64, 125, 126, 65535, 65536, u64::MAX >> 1] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let h = FrameHeader {
                    fin: len % 2 == 0,
                    rsv1: true,
                    rsv2: false,
                    rsv3: true,
                    opcode: OpCode::BINARY,
                    mask,
                    payload_len: len,
                };
                let mut out = [0u8; 14];
                let n = h.encode(&mut out);
                assert_eq!(n, h.encoded_len());
                assert_eq!(FrameHeader::parse(&out[..n]), Ok(Some((h, n))));
            }
        }
    }
}
