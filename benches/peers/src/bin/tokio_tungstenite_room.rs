//! Broadcast room on `tokio-tungstenite` and `tokio::sync::broadcast` (the
//! channel tokio's docs suggest for a chat server): every text or binary
//! message a client sends goes to every *other* client. A tokio
//! multi-thread runtime (one worker per core), one task per connection.
//!
//! Each connection subscribes to the room's channel once its handshake is
//! done and runs one loop: a message read from the socket is published
//! with the connection's id; a message received from the channel (and
//! every other one already waiting there) is fed to the socket unless the
//! connection sent it, then the socket is flushed once. A member that falls
//! more than [`ROOM_CAPACITY`] messages behind misses the oldest ones
//! (`RecvError::Lagged`, counted in a warning): the channel never blocks the
//! sender.
//!
//! `tokio_tungstenite_room [ADDR]`.

use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};
use ws_peers::{announce, listen_addr, MAX_MESSAGE};

/// Messages the channel keeps for its slowest member.
const ROOM_CAPACITY: usize = 1024;

/// A message in the room: the sender's id and the message.
type Post = (u64, Message);

async fn member(stream: TcpStream, id: u64, room: broadcast::Sender<Post>) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let mut rx = room.subscribe();
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            next = stream.next() => match next {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    // Err only when no member is subscribed, this one included: never.
                    let _ = room.send((id, m));
                }
                Some(Ok(_)) => {}
                Some(Err(Error::ConnectionClosed | Error::AlreadyClosed)) | None => break,
                Some(Err(e)) => return Err(e),
            },
            post = rx.recv() => {
                let mut post = match post {
                    Ok(p) => Some(p),
                    Err(RecvError::Lagged(n)) => {
                        eprintln!("tokio_tungstenite_room: member {id} missed {n} messages");
                        None
                    }
                    Err(RecvError::Closed) => break,
                };
                // This one and whatever else is waiting, then one flush.
                loop {
                    if let Some((from, m)) = post.take() {
                        if from != id {
                            sink.feed(m).await?;
                        }
                    }
                    match rx.try_recv() {
                        Ok(p) => post = Some(p),
                        Err(TryRecvError::Lagged(n)) => {
                            eprintln!("tokio_tungstenite_room: member {id} missed {n} messages");
                        }
                        Err(_) => break,
                    }
                }
                sink.flush().await?;
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(listen_addr()?).await?;
    announce(listener.local_addr()?);
    let (room, _) = broadcast::channel::<Post>(ROOM_CAPACITY);
    let next_id = AtomicU64::new(1);
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let room = room.clone();
                tokio::spawn(async move {
                    if let Err(e) = member(s, id, room).await {
                        eprintln!("tokio_tungstenite_room: {e}");
                    }
                });
            }
            Err(e) => eprintln!("tokio_tungstenite_room: accept: {e}"),
        }
    }
}
