//! Shared data for the benchmarks.

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

/// Moves everything `from` has to send into `to` through `buf` (an in-memory
/// link: no sockets).
pub fn pump(
    from: &mut ws_proto::Connection,
    to: &mut ws_proto::Connection,
    now: std::time::Instant,
    buf: &mut [u8],
) {
    use ws_proto::Transmit;
    while let Some(t) = from.poll_transmit(now, buf) {
        match t {
            Transmit::Data(n) => to.handle_input(now, &buf[..n]),
            Transmit::Shutdown => to.handle_eof(now),
        }
    }
}

/// An open client/server pair with `cfg` on both sides, linked in memory,
/// with the time it was opened at.
pub fn open_pair(
    cfg: ws_proto::Config,
) -> (
    ws_proto::Connection,
    ws_proto::Connection,
    std::time::Instant,
) {
    use ws_proto::{Accept, ClientRequest, Connection, Event};
    #[allow(
        clippy::disallowed_methods,
        reason = "benchmarks run on the real clock"
    )]
    let now = std::time::Instant::now();
    let mut c = Connection::client(cfg.clone(), &ClientRequest::new("h", "/"), now)
        .expect("a valid request");
    let mut s = Connection::server(cfg, now);
    let mut buf = vec![0u8; 64 << 10];
    pump(&mut c, &mut s, now, &mut buf);
    while let Some(e) = s.poll_event() {
        if matches!(e, Event::UpgradeRequest(_)) {
            let _ = s.accept(Accept::new());
        }
    }
    pump(&mut s, &mut c, now, &mut buf);
    while c.poll_event().is_some() {}
    (c, s, now)
}
