//! Payload masking (RFC 6455 §5.3).
//!
//! Masking XORs every payload byte with one of four key bytes, chosen by the
//! byte's offset in the payload. The functions here take that offset so a
//! payload can be (un)masked in pieces as it arrives or leaves.
//!
//! The implementation is safe code that works a machine word at a time, 64
//! bytes per step; the compiler turns the inner loop into vector
//! instructions (`cargo bench -p ws-benches --bench proto -- mask`: at or
//! above `copy_from_slice` speed from 1 KiB up, see docs/performance.md).

/// XORs `data` in place with `key`, where `data[0]` sits at payload offset
/// `offset` (only `offset % 4` matters).
///
/// Applying the same mask twice restores the original bytes.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    let (head, body, tail) = split_words(data);
    for (b, k) in head.iter_mut().zip(key.iter().cycle()) {
        *b ^= k;
    }
    let key = rotate(key, head.len());
    let wide = wide_key(key);
    // 64 bytes per step as eight independent words: the compiler keeps them
    // in vector registers (SSE2/NEON baseline), no explicit SIMD needed.
    let mut blocks = body.chunks_exact_mut(64);
    for block in &mut blocks {
        for chunk in block.chunks_exact_mut(8) {
            xor_word(chunk, wide);
        }
    }
    for chunk in blocks.into_remainder().chunks_exact_mut(8) {
        xor_word(chunk, wide);
    }
    for (b, k) in tail.iter_mut().zip(key.iter().cycle()) {
        *b ^= k;
    }
}

/// Copies `src` into `dst` while masking it with `key`, where `src[0]` sits at
/// payload offset `offset`. `dst` must be exactly as long as `src`.
///
/// This is how outgoing frames are masked without touching the caller's
/// payload: the mask is applied during the one copy into the output buffer.
pub fn copy_masked(src: &[u8], dst: &mut [u8], key: [u8; 4], offset: usize) {
    debug_assert_eq!(src.len(), dst.len());
    let key = rotate(key, offset);
    let wide = wide_key(key);
    let mut s = src.chunks_exact(8);
    let mut d = dst.chunks_exact_mut(8);
    for (sc, dc) in (&mut s).zip(&mut d) {
        let mut word = [0u8; 8];
        word.copy_from_slice(sc);
        dc.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for ((sb, db), k) in s
        .remainder()
        .iter()
        .zip(d.into_remainder().iter_mut())
        .zip(key.iter().cycle())
    {
        *db = sb ^ k;
    }
}

/// The reference implementation: one byte at a time. Used by tests and fuzzers
/// as the oracle for the word-at-a-time versions.
pub fn apply_mask_scalar(data: &mut [u8], key: [u8; 4], offset: usize) {
    for (b, k) in data.iter_mut().zip(rotate(key, offset).iter().cycle()) {
        *b ^= k;
    }
}

/// XORs an 8-byte chunk with the widened key.
#[inline(always)]
fn xor_word(chunk: &mut [u8], wide: u64) {
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
}

fn rotate(mut key: [u8; 4], by: usize) -> [u8; 4] {
    key.rotate_left(by & 3);
    key
}

fn wide_key(key: [u8; 4]) -> u64 {
    u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ])
}

/// Splits into an unaligned head (< 8 bytes), an 8-byte-aligned body whose
/// length is a multiple of 8, and a tail (< 8 bytes).
fn split_words(data: &mut [u8]) -> (&mut [u8], &mut [u8], &mut [u8]) {
    let addr = data.as_ptr() as usize;
    // Bytes up to the next multiple of 8: (8 - addr % 8) % 8.
    let head_len = (addr.wrapping_neg() & 7).min(data.len());
    let (head, rest) = data.split_at_mut(head_len);
    let body_len = rest.len() & !7;
    let (body, tail) = rest.split_at_mut(body_len);
    (head, body, tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scalar_for_all_lengths_and_offsets() {
        // Every start address within 64 bytes (alignment of the head, the
        // 64-byte blocks and the tail) and every key phase; every length up
        // to 700, then lengths up to 4096 in steps that hit every residue
        // modulo 8 and 64.
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let src: Vec<u8> = (0..4096 + 64u32).map(|i| (i * 7 + 3) as u8).collect();
        let lengths = (0..=700)
            .chain((701..=4096).step_by(61))
            .chain([4095, 4096]);
        for len in lengths {
            for start in 0..64 {
                let phases: &[usize] = if len <= 200 { &[0, 1, 2, 3] } else { &[1] };
                for &offset in phases {
                    let piece = &src[start..start + len];
                    let mut a = vec![0u8; len + 64];
                    let a = &mut a[start..start + len];
                    a.copy_from_slice(piece);
                    let mut b = piece.to_vec();
                    apply_mask(a, key, offset);
                    apply_mask_scalar(&mut b, key, offset);
                    assert_eq!(&a[..], &b[..], "len {len} start {start} offset {offset}");
                    let mut c = vec![0; len];
                    copy_masked(piece, &mut c, key, offset);
                    assert_eq!(c, b, "copy len {len} start {start} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn rfc6455_5_7_masked_hello() {
        // §5.7: 0x81 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58 = masked "Hello"
        let mut data = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&data, b"Hello");
    }

    #[test]
    fn piecewise_equals_whole() {
        let key = [1, 2, 3, 4];
        let src: Vec<u8> = (0..100u8).collect();
        let mut whole = src.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = src.clone();
        let (a, b) = pieces.split_at_mut(37);
        apply_mask(a, key, 0);
        apply_mask(b, key, 37);
        assert_eq!(whole, pieces);
    }
}
