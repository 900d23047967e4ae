//! Echo server on `tokio-tungstenite`: a tokio multi-thread runtime (one
//! worker per core), one task per connection.
//!
//! `tokio_tungstenite_echo [ADDR]`.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};
use ws_peers::{announce, listen_addr, MAX_MESSAGE};

async fn serve(stream: TcpStream) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    while let Some(m) = ws.next().await {
        match m {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => ws.send(m).await?,
            Ok(_) => {}
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => break,
            Err(e) => return Err(e),
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
                tokio::spawn(async move {
                    if let Err(e) = serve(s).await {
                        eprintln!("tokio_tungstenite_echo: {e}");
                    }
                });
            }
            Err(e) => eprintln!("tokio_tungstenite_echo: accept: {e}"),
        }
    }
}
