//! Echo server on `yawc`: a tokio multi-thread runtime (one worker per
//! core), one task per connection, as in the crate's `echo_server` example:
//! hyper's HTTP/1.1 server on the accepted `TcpStream` answers the upgrade
//! with `WebSocket::upgrade_with_options`, then a task (run
//! `unconstrained`, as the example does) sends every text or binary message
//! back. yawc reassembles fragments and answers pings and closes itself.
//! Default options otherwise: no permessage-deflate (the example turns it
//! on at level "none"; here it is left off, like the other peers), Nagle
//! off.
//!
//! `yawc_echo [ADDR]`.

use futures_util::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;
use ws_peers::{announce, listen_addr, MAX_MESSAGE};
use yawc::{OpCode, Options, UpgradeFut, WebSocket};

/// Echoes every text or binary message until the connection ends.
async fn echo(fut: UpgradeFut) -> yawc::Result<()> {
    let mut ws = fut.await?;
    while let Some(frame) = ws.next().await {
        if matches!(frame.opcode(), OpCode::Text | OpCode::Binary) {
            ws.send(frame).await?;
        }
    }
    Ok(())
}

/// Answers the upgrade request and spawns the connection's echo task.
async fn upgrade(mut req: Request<Incoming>) -> yawc::Result<Response<Empty<Bytes>>> {
    let options = Options::default()
        // Exclusive bounds: a message of exactly MAX_MESSAGE bytes passes.
        .with_max_payload_read(MAX_MESSAGE + 1)
        .with_max_read_buffer(2 * MAX_MESSAGE + 2)
        .with_no_delay();
    let (response, fut) = WebSocket::upgrade_with_options(&mut req, options)?;
    tokio::spawn(tokio::task::unconstrained(async move {
        if let Err(e) = echo(fut).await {
            eprintln!("yawc_echo: {e}");
        }
    }));
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(listen_addr()?).await?;
    announce(listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                tokio::spawn(async move {
                    let _ = s.set_nodelay(true);
                    let io = hyper_util::rt::TokioIo::new(s);
                    let conn = http1::Builder::new()
                        .serve_connection(io, service_fn(upgrade))
                        .with_upgrades();
                    if let Err(e) = conn.await {
                        eprintln!("yawc_echo: {e}");
                    }
                });
            }
            Err(e) => eprintln!("yawc_echo: accept: {e}"),
        }
    }
}
