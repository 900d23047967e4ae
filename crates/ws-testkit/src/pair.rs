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

/// What [`drain_vectored`] took out of a connection.
#[derive(Debug, Default)]
pub struct Drained {
    /// The bytes on the wire, in order (copied bytes and handed-out payloads).
    pub wire: Vec<u8>,
    /// The payloads handed out whole (`VectoredTransmit::DataThen`), as they were.
    pub payloads: Vec<ws_proto::Bytes>,
    /// How many `poll_transmit_vectored` calls produced output.
    pub calls: usize,
}

/// Drains `conn`'s output through `poll_transmit_vectored` into `buf`.
///
/// # Panics
///
/// On a shutdown (the callers expect frames only).
pub fn drain_vectored(conn: &mut Connection, now: Instant, buf: &mut [u8]) -> Drained {
    let mut d = Drained::default();
    while let Some(t) = conn.poll_transmit_vectored(now, buf) {
        d.calls += 1;
        match t {
            ws_proto::VectoredTransmit::Data(n) => d.wire.extend_from_slice(&buf[..n]),
            ws_proto::VectoredTransmit::DataThen(n, p) => {
                d.wire.extend_from_slice(&buf[..n]);
                d.wire.extend_from_slice(&p);
                d.payloads.push(p);
            }
            ws_proto::VectoredTransmit::Shutdown => panic!("a shutdown where frames were expected"),
        }
    }
    d
}
