//! The event-style client: callbacks on an IO thread, sends from anywhere.
//!
//! ```text
//! cargo run -p ws-std --example event_client -- ws://127.0.0.1:9001/ [COUNT] [-v]
//! ```
//!
//! Sends COUNT (default 3) messages (the first ones before the handshake
//! completes: they are queued), prints the echoes, then closes.

#[path = "common/args.rs"]
mod args;
#[path = "common/logger.rs"]
mod logger;

use std::sync::mpsc;
use std::time::Duration;

use ws_std::WebSocketClient;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args::Args {
        url,
        count,
        verbose,
    } = args::parse(3);
    logger::init(verbose);
    let url = url.ok_or("usage: event_client URL [COUNT] [-v]")?;
    let (done_tx, done_rx) = mpsc::channel();
    let err_tx = done_tx.clone();
    let mut received = 0;
    let client = WebSocketClient::builder(url)
        .protocol("echo")
        .keepalive(true)
        .on_open(|ws, info| println!("{} open (subprotocol {:?})", ws.id(), info.protocol))
        .on_message(move |ws, text| {
            received += 1;
            println!("< {text} (latency {:?})", ws.latency());
            if received == count {
                let _ = ws.close_with(1000, "done");
            }
        })
        .on_binary(|_, data| println!("< {} binary bytes", data.len()))
        .on_closed(move |_, code, reason| {
            println!("closed: {code} {reason:?}");
            let _ = done_tx.send(());
        })
        .on_error(move |_, e| {
            println!("error: {e}");
            let _ = err_tx.send(());
        })
        .build()?;
    client.open()?;
    for i in 0..count {
        client.send_text(&format!("message {i}"))?;
        println!(
            "> message {i} (buffered {} bytes)",
            client.buffered_amount()
        );
    }
    done_rx.recv_timeout(Duration::from_secs(30))?;
    Ok(())
}
