//! Shared data for the benchmarks (the in-memory pair and the counting
//! allocator come from `ws-testkit`).

/// JSON-like text of about `len` bytes: realistic, compressible, not trivial.
pub fn json_like(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 128);
    let mut x: u32 = 0x9E37_79B9;
    let mut i = 0u32;
    while out.len() < len {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let rec = format!(
            "{{\"id\":{i},\"user\":\"user{}\",\"price\":{}.{:02},\"tags\":[\"t{}\",\"t{}\"],\"ok\":{}}},",
            x % 5000,
            (x >> 8) % 1000,
            (x >> 4) % 100,
            (x >> 12) % 50,
            (x >> 20) % 50,
            x & 1 == 0
        );
        out.extend_from_slice(rec.as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}
