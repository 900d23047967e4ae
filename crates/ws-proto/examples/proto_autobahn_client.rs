//! Runs the core as the client under the Autobahn fuzzing server (kosoku
//! `-m fuzzingserver`): fetches `/getCaseCount`, echoes every message of each
//! `/runCase?case=N&agent=A`, then calls `/updateReports?agent=A`. A bare
//! hand-written loop over `std::net::TcpStream`, no driver crate.
//!
//! ```text
//! cargo run --release -p ws-proto --example proto_autobahn_client -- 127.0.0.1:9001 ws-proto
//! ```
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "an example driver owns its socket and clock"
)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use ws_proto::deflate::DeflateOffer;
use ws_proto::{ClientRequest, Config, Connection, DeflateConfig, Event, Limits, Transmit};

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let agent = std::env::args().nth(2).unwrap_or_else(|| "ws-proto".into());
    let count: u32 = match session(&addr, "/getCaseCount", false) {
        Ok(Some(t)) => t.trim().parse().unwrap_or(0),
        other => {
            eprintln!("getCaseCount failed: {other:?}");
            std::process::exit(1);
        }
    };
    println!("{count} cases");
    for case in 1..=count {
        if let Err(e) = session(&addr, &format!("/runCase?case={case}&agent={agent}"), true) {
            eprintln!("case {case}: {e}");
        }
    }
    let _ = session(&addr, &format!("/updateReports?agent={agent}"), false);
    println!("done");
}

/// One connection: echo messages when `echo`, return the first text message.
fn session(addr: &str, resource: &str, echo: bool) -> std::io::Result<Option<String>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut deflate = DeflateConfig::default();
    deflate.threshold = 0;
    // Offer client_no_context_takeover too: the fuzzing server only asks
    // for it (cases 13.2, 13.5, 13.6) when the offer says we accept it.
    deflate.offers = vec![DeflateOffer {
        client_no_context_takeover: true,
        ..DeflateOffer::default()
    }];
    let cfg = Config::default().deflate(Some(deflate)).limits(
        Limits::default()
            .max_frame_payload(16 << 20)
            .max_message_size(16 << 20)
            .max_fragments(65_536)
            .max_send_queue(64 << 20),
    );
    let mut conn = Connection::client(cfg, &ClientRequest::new(addr, resource), Instant::now());
    let mut first = None;
    let mut buf = vec![0u8; 256 << 10];
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        while let Some(t) = conn.poll_transmit(Instant::now(), &mut buf) {
            match t {
                Transmit::Data(n) => {
                    if let Err(e) = stream.write_all(&buf[..n]) {
                        conn.handle_transport_error(Instant::now(), e.to_string());
                    }
                }
                Transmit::Shutdown => {
                    let _ = stream.shutdown(Shutdown::Write);
                }
            }
        }
        let mut acted = false;
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Message(m) => {
                    if first.is_none() {
                        first = m.as_text().map(str::to_string);
                    }
                    if echo {
                        let _ = conn.send(m.kind, m.data);
                        acted = true;
                    }
                }
                Event::Closed(_) => return Ok(first),
                _ => {}
            }
        }
        if acted {
            continue;
        }
        let now = Instant::now();
        let timeout = conn
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now));
        if timeout == Some(Duration::ZERO) {
            conn.handle_timeout(now);
            continue;
        }
        stream.set_read_timeout(Some(
            timeout
                .unwrap_or(Duration::from_secs(5))
                .max(Duration::from_millis(1)),
        ))?;
        match stream.read(&mut buf) {
            Ok(0) => conn.handle_eof(Instant::now()),
            Ok(n) => conn.handle_input(Instant::now(), &buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                conn.handle_timeout(Instant::now())
            }
            Err(e) => conn.handle_transport_error(Instant::now(), e.to_string()),
        }
    }
    Err(std::io::Error::new(
        ErrorKind::TimedOut,
        "session did not finish",
    ))
}
