//! Echo server on `tokio-websockets`: a tokio multi-thread runtime (one
//! worker per core), one task per connection, as in the crate's
//! `echo_server` example: `ServerBuilder::accept` on the accepted
//! `TcpStream`, each text or binary message sent back, the task run
//! `unconstrained` (no tokio cooperative budget), as the example does.
//! Every message up to [`MAX_MESSAGE`] goes out as one frame.
//! tokio-websockets has no permessage-deflate.
//!
//! `tokio_websockets_echo [ADDR]`.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_websockets::{Config, Error, Limits, ServerBuilder};
use ws_peers::{announce, listen_addr, MAX_MESSAGE};

async fn serve(stream: TcpStream) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let (_request, mut ws) = ServerBuilder::new()
        .config(Config::default().frame_size(MAX_MESSAGE))
        .limits(Limits::default().max_payload_len(Some(MAX_MESSAGE)))
        .accept(stream)
        .await?;
    while let Some(m) = ws.next().await {
        let m = m?;
        if m.is_text() || m.is_binary() {
            ws.send(m).await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(listen_addr()?).await?;
    announce(listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                tokio::spawn(tokio::task::unconstrained(async move {
                    if let Err(e) = serve(s).await {
                        eprintln!("tokio_websockets_echo: {e}");
                    }
                }));
            }
            Err(e) => eprintln!("tokio_websockets_echo: accept: {e}"),
        }
    }
}
