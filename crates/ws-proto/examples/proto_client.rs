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

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use ws_proto::{ClientRequest, CloseCode, Config, Connection, DeflateConfig, Event, Transmit};

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
    );
    let lines = ["hello", "from the sans-IO core", "over a plain TcpStream"];
    let mut sent = 0;
    let mut echoed = 0;
    let mut buf = vec![0u8; 64 << 10];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        while let Some(t) = conn.poll_transmit(Instant::now(), &mut buf) {
            match t {
                Transmit::Data(n) => stream.write_all(&buf[..n])?,
                Transmit::Shutdown => stream.shutdown(Shutdown::Write)?,
            }
        }
        let mut acted = false;
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Open(info) => {
                    println!("open (extensions: {:?})", info.extensions);
                    for l in lines {
                        let _ = conn.send_text(l);
                        sent += 1;
                    }
                    acted = true;
                }
                Event::Message(m) => {
                    println!("echo: {}", m.as_text().unwrap_or("<binary>"));
                    echoed += 1;
                    if echoed == sent {
                        let _ = conn.close(CloseCode::NORMAL, "done");
                        acted = true;
                    }
                }
                Event::Closed(c) => {
                    println!("closed: {} clean={} error={:?}", c.code, c.clean, c.error);
                    let ok = c.clean && echoed == lines.len();
                    std::process::exit(if ok { 0 } else { 1 });
                }
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
                .unwrap_or(Duration::from_secs(1))
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
    eprintln!("timed out");
    std::process::exit(2)
}
