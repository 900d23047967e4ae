//! A blocking client: sends each argument as a text message and prints the
//! replies.
//!
//! ```text
//! cargo run -p ws-std --example client -- ws://127.0.0.1:9001/ hello world [--ca CERT.pem] [-v]
//! ```

#[path = "common/logger.rs"]
mod logger;

use ws_proto::CloseCode;
use ws_std::{connect, ClientOptions, Received, TlsClientOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: client URL [MESSAGE...] [--ca CERT.pem] [-v]")?;
    let mut messages = Vec::new();
    let mut tls = TlsClientOptions::default();
    let mut verbose = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ca" => {
                tls = tls.add_root_pem(&std::fs::read(args.next().ok_or("--ca CERT.pem")?)?)?
            }
            "-v" => verbose = true,
            _ => messages.push(a),
        }
    }
    logger::init(verbose);
    let mut ws = connect(&url, &ClientOptions::default().protocol("echo").tls(tls))?;
    println!("connected (subprotocol {:?})", ws.open_info().protocol);
    for m in &messages {
        ws.send_text(m)?;
    }
    let mut replies = 0;
    while replies < messages.len() {
        match ws.recv()? {
            Received::Message(m) => {
                replies += 1;
                match m.as_text() {
                    Some(t) => println!("< {t}"),
                    None => println!("< {} binary bytes", m.data.len()),
                }
            }
            Received::Closed(c) => {
                println!("server closed: {} {:?}", c.code, c.reason);
                return Ok(());
            }
            _ => {}
        }
    }
    ws.close(CloseCode::NORMAL, "bye")?;
    while let Ok(r) = ws.recv() {
        if let Received::Closed(c) = r {
            println!("closed: {} (clean: {})", c.code, c.clean);
        }
    }
    Ok(())
}
