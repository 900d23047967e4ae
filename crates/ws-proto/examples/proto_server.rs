//! An echo server that links the sans-IO core into a hand-written loop over a
//! plain `std::net::TcpStream`, with no driver crate.
//!
//! ```text
//! cargo run -p ws-proto --example proto_server -- 127.0.0.1:9001
//! ```
//! Serves one connection at a time and echoes every message. A third argument
//! `big` raises the limits to what the Autobahn TestSuite needs (16 MiB
//! messages, 65,536 fragments).
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "an example driver owns its socket and clock"
)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Instant;

use ws_proto::{Accept, Config, Connection, DeflateConfig, Event, Limits, Transmit};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let max = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    let big = std::env::args().nth(3).as_deref() == Some("big");
    let listener = TcpListener::bind(&addr)?;
    println!("proto_server listening on {}", listener.local_addr()?);
    for stream in listener.incoming().take(max) {
        match stream {
            Ok(s) => {
                if let Err(e) = serve(s, big) {
                    eprintln!("connection error: {e}");
                }
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
    Ok(())
}

fn serve(mut stream: TcpStream, big: bool) -> std::io::Result<()> {
    let mut deflate = DeflateConfig::default();
    if big {
        // Echo servers under test compress every message, even tiny ones.
        deflate.threshold = 0;
    }
    let mut cfg = Config::default().deflate(Some(deflate));
    if big {
        cfg = cfg.limits(
            Limits::default()
                .max_frame_payload(16 << 20)
                .max_message_size(16 << 20)
                .max_fragments(65_536)
                .max_send_queue(64 << 20),
        );
    }
    let mut conn = Connection::server(cfg, Instant::now());
    let mut buf = vec![0u8; 64 << 10];
    loop {
        // The driving contract: transmit, events, timeout, then wait.
        while let Some(t) = conn.poll_transmit(Instant::now(), &mut buf) {
            match t {
                Transmit::Data(n) => stream.write_all(&buf[..n])?,
                Transmit::Shutdown => stream.shutdown(Shutdown::Write)?,
            }
        }
        let mut acted = false;
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::UpgradeRequest(req) => {
                    if !big {
                        println!("upgrade request for {}", req.path);
                    }
                    let _ = conn.accept(Accept::new());
                    acted = true;
                }
                Event::Message(m) => {
                    let _ = conn.send(m.kind, m.data);
                    acted = true;
                }
                Event::Closed(c) => {
                    if !big {
                        println!(
                            "closed: {} {:?} clean={} error={:?}",
                            c.code, c.reason, c.clean, c.error
                        );
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        if acted {
            continue; // commands queued output: transmit it first
        }
        let now = Instant::now();
        let timeout = conn
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now));
        if timeout == Some(std::time::Duration::ZERO) {
            conn.handle_timeout(now);
            continue;
        }
        stream.set_read_timeout(timeout)?;
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
