//! Echo server on `tungstenite` (blocking): one thread per connection.
//!
//! `tungstenite_echo [ADDR]`. Every text or binary message goes back as it
//! came; pings are answered and closes completed by tungstenite itself.

use std::net::{TcpListener, TcpStream};

use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error, Message};
use ws_peers::{announce, listen_addr, MAX_MESSAGE};

fn serve(stream: TcpStream) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let mut ws = tungstenite::accept_with_config(stream, Some(config))
        .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
    loop {
        match ws.read() {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => ws.send(m)?,
            Ok(_) => {}
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(listen_addr()?)?;
    announce(listener.local_addr()?);
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                std::thread::spawn(move || {
                    if let Err(e) = serve(s) {
                        eprintln!("tungstenite_echo: {e}");
                    }
                });
            }
            Err(e) => eprintln!("tungstenite_echo: accept: {e}"),
        }
    }
    Ok(())
}
