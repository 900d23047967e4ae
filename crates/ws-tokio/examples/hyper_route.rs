//! A plain hyper 1.x HTTP server with a WebSocket route: `/ws` echoes every message (the
//! `chat` subprotocol is chosen when offered, permessage-deflate is accepted), `/` answers over
//! plain HTTP, and `/ws/private` is refused with 403 and a body.
//!
//! ```text
//! cargo run -p ws-tokio --features hyper --example hyper_route [127.0.0.1:8080]
//! cargo run -p ws-cli -- connect ws://127.0.0.1:8080/ws
//! ```

use std::convert::Infallible;

use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use ws_tokio::{Accept, Config, Decision, DeflateConfig, UpgradeRequest};

/// The route: plain HTTP on `/`, the WebSocket echo on `/ws`.
pub async fn route(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if !ws_tokio::hyper::is_upgrade_request(&req) {
        return Ok(Response::new(Full::new(Bytes::from_static(
            b"hello over plain http\n",
        ))));
    }
    let config = Config::default().deflate(Some(DeflateConfig::default()));
    let decide = |req: &UpgradeRequest| match req.path.as_str() {
        "/ws" if req.protocols.iter().any(|p| p == "chat") => {
            Decision::Accept(Accept::new().protocol("chat"))
        }
        "/ws" => Decision::accept(),
        "/ws/private" => Decision::reject(403, "members only"),
        _ => Decision::reject(404, "no such route"),
    };
    let (response, websocket) = ws_tokio::hyper::upgrade(&mut req, config, decide);
    if let Some(websocket) = websocket {
        // Completes once hyper has sent the 101 and handed the connection over.
        tokio::spawn(async move {
            let Ok(mut ws) = websocket.await else { return };
            while let Some(Ok(msg)) = ws.next().await {
                if ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
    }
    Ok(response)
}

/// Serves `route` on every connection `listener` accepts, with upgrades enabled.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service_fn(route))
                .with_upgrades();
            let _ = conn.await;
        });
    }
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("serving http://{}/ and ws://{}/ws", addr, addr);
    serve(listener).await;
    Ok(())
}
