//! Unit tests of permessage-deflate (negotiation, codec, window bits 8).
#![allow(clippy::unwrap_used)] // In tests a panic is a failed test.

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
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const LEN_EXTRA: [u32; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    const DIST_BASE: [usize; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    const DIST_EXTRA: [u32; 30] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
        13, 13,
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
                client_view.client_no_context_takeover || !server_view.client_no_context_takeover
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
