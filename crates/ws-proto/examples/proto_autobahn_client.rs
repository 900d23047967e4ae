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

#[path = "common/drive.rs"]
mod drive;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use ws_proto::deflate::DeflateOffer;
use ws_proto::{ClientRequest, Config, Connection, DeflateConfig, Event, Limits};

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
            .max_message_size(16 << 20)
            .max_send_queue(64 << 20),
    );
    let mut conn = Connection::client(cfg, &ClientRequest::new(addr, resource), Instant::now())
        .expect("a valid request");
    let mut first = None;
    let give_up = Instant::now() + Duration::from_secs(120);
    drive::run(&mut stream, &mut conn, Some(give_up), |conn, ev| {
        if let Event::Message(m) = ev {
            if first.is_none() {
                first = m.as_text().map(str::to_string);
            }
            if echo {
                let _ = conn.send(m.kind, m.data);
            }
        }
    })?;
    Ok(first)
}
