//! A client that links the sans-IO core into a hand-written loop over a plain
//! `std::net::TcpStream`, with no driver crate: it sends a few messages,
//! prints the echoes, and closes.
//!
//! ```text
//! cargo run -p ws-proto --example proto_client -- 127.0.0.1:9001
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

use ws_proto::{ClientRequest, CloseCode, Config, Connection, DeflateConfig, Event};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    // The server may still be starting: retry for up to 5 s.
    let mut attempt = 0;
    let mut stream = loop {
        match TcpStream::connect(&addr) {
            Ok(s) => break s,
            Err(e) if attempt < 50 => {
                attempt += 1;
                eprintln!("connect: {e}; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    };
    let cfg = Config::default().deflate(Some(DeflateConfig::default()));
    let mut conn = Connection::client(
        cfg,
        &ClientRequest::new(addr.clone(), "/echo"),
        Instant::now(),
    )
    .expect("a valid request");
    let lines = ["hello", "from the sans-IO core", "over a plain TcpStream"];
    let mut echoed = 0;
    let give_up = Instant::now() + Duration::from_secs(10);
    let closed = drive::run(&mut stream, &mut conn, Some(give_up), |conn, ev| match ev {
        Event::Open(info) => {
            println!("open (extensions: {:?})", info.extensions);
            for l in lines {
                let _ = conn.send_text(l);
            }
        }
        Event::Message(m) => {
            println!("echo: {}", m.as_text().unwrap_or("<binary>"));
            echoed += 1;
            if echoed == lines.len() {
                let _ = conn.close(CloseCode::NORMAL, "done");
            }
        }
        _ => {}
    })?;
    println!(
        "closed: {} clean={} error={:?}",
        closed.code, closed.clean, closed.error
    );
    std::process::exit(if closed.clean && echoed == lines.len() {
        0
    } else {
        1
    });
}
