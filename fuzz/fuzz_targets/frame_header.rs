//! Frame header parser: never panics; decode(encode(h)) == h; a parsed
//! header re-encodes to the same bytes when the length was minimally encoded.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ws_proto::frame::{FrameHeader, OpCode};

#[derive(Arbitrary, Debug)]
struct Input {
    header: (bool, bool, bool, bool, u8, Option<[u8; 4]>, u64),
    raw: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let (fin, rsv1, rsv2, rsv3, op, mask, len) = input.header;
    if let Some(opcode) = OpCode::from_u8(op & 0x0F) {
        let h = FrameHeader { fin, rsv1, rsv2, rsv3, opcode, mask, payload_len: len >> 1 };
        let mut out = [0u8; FrameHeader::MAX_LEN];
        let n = h.encode(&mut out);
        assert_eq!(n, h.encoded_len());
        assert_eq!(FrameHeader::parse(&out[..n]), Ok(Some((h, n))));
        for i in 0..n {
            assert_eq!(FrameHeader::parse(&out[..i]), Ok(None));
        }
    }
    if let Ok(Some((h, n))) = FrameHeader::parse(&input.raw) {
        assert!(n <= FrameHeader::MAX_LEN && n <= input.raw.len());
        let mut out = [0u8; FrameHeader::MAX_LEN];
        let m = h.encode(&mut out);
        assert_eq!(FrameHeader::parse(&out[..m]), Ok(Some((h, m))));
        if m == n {
            assert_eq!(&out[..m], &input.raw[..n]);
        }
    }
});
