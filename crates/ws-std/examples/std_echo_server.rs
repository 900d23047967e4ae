//! A thread-per-connection echo server.
//!
//! ```text
//! cargo run -p ws-std --example std_echo_server -- [ADDR] [--tls CERT.pem KEY.pem] [--max N] [--for SECS] [-v]
//! ```
//!
//! ADDR defaults to 127.0.0.1:9001. It accepts any path, picks the
//! subprotocol "echo" when offered, and echoes every message. Without
//! `--for` it runs until killed.

#[path = "common/logger.rs"]
mod logger;

use std::net::TcpListener;
use std::time::Duration;

use ws_std::{
    serve, server_config_from_pem, Received, ServeOptions, ServerOptions, UpgradeResponse,
    WebSocket,
};

fn echo(mut ws: WebSocket) {
    loop {
        match ws.recv() {
            Ok(Received::Message(m)) => {
                if let Err(e) = ws.send(m.kind, m.data) {
                    eprintln!("{}: send failed: {e}", ws.id());
                    return;
                }
            }
            Ok(Received::Closed(c)) => {
                eprintln!("{} closed: {} {:?}", ws.id(), c.code, c.reason);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("{} failed: {e}", ws.id());
                return;
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:9001".to_string();
    let mut tls = None;
    let mut max = 256;
    let mut run_for = None;
    let mut verbose = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tls" => {
                let (cert, key) = (
                    args.next().ok_or("--tls CERT KEY")?,
                    args.next().ok_or("--tls CERT KEY")?,
                );
                tls = Some(server_config_from_pem(
                    &std::fs::read(cert)?,
                    &std::fs::read(key)?,
                )?);
            }
            "--max" => max = args.next().ok_or("--max N")?.parse()?,
            "--for" => {
                run_for = Some(Duration::from_secs_f64(
                    args.next().ok_or("--for SECS")?.parse()?,
                ))
            }
            "-v" => verbose = true,
            other => addr = other.to_string(),
        }
    }
    logger::init(verbose);
    let mut server = ServerOptions::default().on_upgrade(|req| {
        if req.protocols.iter().any(|p| p == "echo") {
            UpgradeResponse::accept_protocol("echo")
        } else {
            UpgradeResponse::accept()
        }
    });
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    if let Some(t) = tls {
        server = server.tls(t);
    }
    let listener = TcpListener::bind(&addr)?;
    let handle = serve(
        listener,
        ServeOptions::default().server(server).max_connections(max),
        echo,
    )?;
    eprintln!("echo server on {scheme}://{}", handle.local_addr());
    match run_for {
        Some(d) => std::thread::sleep(d),
        None => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
    let clean = handle.shutdown();
    eprintln!("stopped (all connections ended: {clean})");
    Ok(())
}
