//! Echo server on `fastwebsockets`: a tokio multi-thread runtime (one worker
//! per core), one task per connection. The upgrade request is parsed here
//! with `httparse` (fastwebsockets' own `upgrade` feature needs hyper), then
//! `WebSocket::after_handshake` with a `FragmentCollector` (whole messages),
//! automatic pong and close. fastwebsockets has no permessage-deflate.
//!
//! `fastwebsockets_echo [ADDR]`.

use std::time::{Duration, Instant};

use base64::Engine as _;
use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket, WebSocketError};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ws_peers::{announce, listen_addr, MAX_MESSAGE};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Most bytes of an upgrade request.
const MAX_REQUEST: usize = 16 << 10;

/// Reads the upgrade request (peeking first, so no byte after it is
/// consumed), answers 101 and returns the socket ready for frames.
async fn handshake(mut stream: TcpStream) -> Result<TcpStream, BoxError> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let deadline = Instant::now() + Duration::from_secs(10);
    let (len, key) = loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err("connection closed during the handshake".into());
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..n])? {
            httparse::Status::Complete(len) => {
                if req.method != Some("GET") {
                    return Err("not a GET request".into());
                }
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| h.value)
                };
                let upgrade = header("upgrade").unwrap_or_default();
                if !upgrade.eq_ignore_ascii_case(b"websocket") {
                    return Err("not a WebSocket upgrade".into());
                }
                if header("sec-websocket-version") != Some(b"13".as_slice()) {
                    return Err("unsupported Sec-WebSocket-Version".into());
                }
                let key = header("sec-websocket-key")
                    .ok_or("no Sec-WebSocket-Key")?
                    .to_vec();
                break (len, key);
            }
            httparse::Status::Partial => {
                if n == buf.len() {
                    return Err("upgrade request too large".into());
                }
                if Instant::now() >= deadline {
                    return Err("handshake timed out".into());
                }
                // Peek returns the same bytes until more arrive.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    // Consume exactly the request.
    stream.read_exact(&mut buf[..len]).await?;
    let mut sha = Sha1::new();
    sha.update(&key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(stream)
}

async fn serve(stream: TcpStream) -> Result<(), BoxError> {
    stream.set_nodelay(true)?;
    let stream = handshake(stream).await?;
    let mut ws = WebSocket::after_handshake(stream, Role::Server);
    ws.set_max_message_size(MAX_MESSAGE);
    ws.set_auto_pong(true);
    ws.set_auto_close(true);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = match ws.read_frame().await {
            Ok(f) => f,
            Err(WebSocketError::ConnectionClosed) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        match frame.opcode {
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            OpCode::Close => return Ok(()),
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let listener = TcpListener::bind(listen_addr().map_err(|e| e.to_string())?).await?;
    announce(listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                tokio::spawn(async move {
                    if let Err(e) = serve(s).await {
                        eprintln!("fastwebsockets_echo: {e}");
                    }
                });
            }
            Err(e) => eprintln!("fastwebsockets_echo: accept: {e}"),
        }
    }
}
