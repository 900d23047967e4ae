//! A client and a server [`Connection`] linked in memory (no sockets): the
//! zero-allocation test of ws-proto and the benchmarks drive the core
//! through it.

use std::time::Instant;

use ws_proto::{Accept, ClientRequest, Config, Connection, Event, Transmit};

/// Moves everything `from` has to send into `to`, through `buf`: an
/// in-memory link delivering each transmit whole (a shutdown as the end of
/// the stream).
pub fn pump(from: &mut Connection, to: &mut Connection, now: Instant, buf: &mut [u8]) {
    while let Some(t) = from.poll_transmit(now, buf) {
        match t {
            Transmit::Data(n) => to.handle_input(now, &buf[..n]),
            Transmit::Shutdown => to.handle_eof(now),
        }
    }
}

/// An open client/server pair with `cfg` on both sides, and the time it was
/// opened at (the pair's clock: pass it, or later instants, to the
/// connections). The server accepts the upgrade as it comes; the events of
/// the opening handshake are consumed.
///
/// # Panics
///
/// When the handshake does not complete (both sides must be open).
pub fn open_pair(cfg: Config) -> (Connection, Connection, Instant) {
    let now = Instant::now();
    let mut c = Connection::client(cfg.clone(), &ClientRequest::new("h", "/"), now)
        .expect("a valid request");
    let mut s = Connection::server(cfg, now);
    let mut buf = vec![0u8; 64 << 10];
    pump(&mut c, &mut s, now, &mut buf);
    while let Some(e) = s.poll_event() {
        if matches!(e, Event::UpgradeRequest(_)) {
            s.accept(Accept::new())
                .expect("the server accepts the upgrade");
        }
    }
    pump(&mut s, &mut c, now, &mut buf);
    while c.poll_event().is_some() {}
    assert!(
        c.is_open() && s.is_open(),
        "the in-memory pair did not open"
    );
    (c, s, now)
}
