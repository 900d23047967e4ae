//! Bounded inflation on arbitrary input: no panic, output never past the limit.
#![no_main]
use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ws_proto::deflate::{Decompressor, DeflateParams, Role};

#[derive(Arbitrary, Debug)]
struct Input {
    takeover: bool,
    bits: u8,
    limit: u16,
    frames: Vec<(bool, Vec<u8>)>,
}

fuzz_target!(|input: Input| {
    let mut p = DeflateParams::default();
    p.server_no_context_takeover = !input.takeover;
    p.server_max_window_bits = 8 + input.bits % 8;
    let mut d = Decompressor::new(&p, Role::Client);
    let limit = usize::from(input.limit);
    let mut out = BytesMut::new();
    for (fin, data) in &input.frames {
        match d.decompress(data, *fin, &mut out, limit) {
            Ok(_) => assert!(out.len() <= limit),
            Err(_) => {
                out.clear();
            }
        }
        assert!(out.capacity() <= limit + ws_proto::deflate::INFLATE_STEP * 2 + 1024);
        if *fin {
            out.clear();
        }
    }
});
