//! The one hand-written driving loop the examples share: the core's contract
//! over a blocking `std::net::TcpStream`, with no driver crate.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use ws_proto::{Closed, Connection, Event, Transmit};

/// Drives `conn` over `stream` until its terminal `Closed` (returned), or
/// until `give_up_at` (an error). After any input: transmit everything,
/// hand each event to `on_event` (which may issue commands), read the next
/// deadline, and only then block on the socket.
pub fn run(
    stream: &mut TcpStream,
    conn: &mut Connection,
    give_up_at: Option<Instant>,
    mut on_event: impl FnMut(&mut Connection, Event),
) -> std::io::Result<Closed> {
    let mut buf = vec![0u8; 256 << 10];
    loop {
        while let Some(t) = conn.poll_transmit(Instant::now(), &mut buf) {
            let done = match t {
                Transmit::Data(n) => stream.write_all(&buf[..n]),
                Transmit::Shutdown => stream.shutdown(Shutdown::Write),
            };
            if let Err(e) = done {
                conn.handle_transport_error(Instant::now(), e.to_string());
            }
        }
        while let Some(ev) = conn.poll_event() {
            if let Event::Closed(c) = &ev {
                let c = c.clone();
                on_event(conn, ev);
                return Ok(c);
            }
            on_event(conn, ev);
        }
        if conn.wants_transmit() {
            continue; // commands (or a released close echo) queued output
        }
        let now = Instant::now();
        if give_up_at.is_some_and(|t| now >= t) {
            return Err(std::io::Error::new(
                ErrorKind::TimedOut,
                "connection did not finish",
            ));
        }
        let timeout = conn
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now));
        if timeout == Some(Duration::ZERO) {
            conn.handle_timeout(now);
            continue;
        }
        let wait = timeout
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(1));
        stream.set_read_timeout(Some(wait))?;
        match stream.read(&mut buf) {
            Ok(0) => conn.handle_eof(Instant::now()),
            Ok(n) => conn.handle_input(Instant::now(), &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                conn.handle_timeout(Instant::now())
            }
            Err(e) => conn.handle_transport_error(Instant::now(), e.to_string()),
        }
    }
}
