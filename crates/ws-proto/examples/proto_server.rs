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

#[path = "common/drive.rs"]
mod drive;

use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use ws_proto::{Accept, Config, Connection, DeflateConfig, Event, Limits};

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
    let mut cfg = Config::default();
    if big {
        // Echo servers under test compress every message, even tiny ones.
        deflate.threshold = 0;
        cfg = cfg.limits(
            Limits::default()
                .max_message_size(16 << 20)
                .max_send_queue(64 << 20),
        );
    }
    let mut conn = Connection::server(cfg.deflate(Some(deflate)), Instant::now());
    let closed = drive::run(&mut stream, &mut conn, None, |conn, ev| match ev {
        Event::UpgradeRequest(req) => {
            if !big {
                println!("upgrade request for {}", req.path);
            }
            let _ = conn.accept(Accept::new());
        }
        Event::Message(m) => {
            let _ = conn.send(m.kind, m.data);
        }
        _ => {}
    })?;
    if !big {
        println!(
            "closed: {} {:?} clean={} error={:?}",
            closed.code, closed.reason, closed.clean, closed.error
        );
    }
    Ok(())
}
