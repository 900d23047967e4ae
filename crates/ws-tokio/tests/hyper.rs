//! The hyper example's server on 127.0.0.1:0, talked to by our client: the WebSocket route
//! (subprotocol, permessage-deflate, echo of text and binary), a refused route with its status
//! and body, and plain HTTP beside it.

#![cfg(feature = "hyper")]
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

#[path = "../examples/hyper_route.rs"]
#[allow(dead_code)]
mod example;

mod common;

use common::{bounded, connect_to, payload};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use ws_tokio::{
    ClientRequest, CloseCode, Config, ConnectionError, DeflateConfig, Error, HandshakeError,
    Message, MessageKind,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hyper_route_serves_websockets_and_http() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(example::serve(listener));

    // The WebSocket route, with a subprotocol and permessage-deflate.
    let req = ClientRequest::new(addr.to_string(), "/ws").protocol("chat");
    let cfg = Config::default().deflate(Some(DeflateConfig::default()));
    let mut ws = connect_to(addr, req, cfg).await.unwrap();
    let open = ws.open_info().unwrap();
    assert_eq!(open.protocol.as_deref(), Some("chat"));
    assert!(open
        .extensions
        .as_deref()
        .unwrap()
        .starts_with("permessage-deflate"));
    for size in [0, 10, 70_000, 1 << 20] {
        for kind in [MessageKind::Text, MessageKind::Binary] {
            let data = ws_tokio::Bytes::from(payload(size));
            bounded(
                "send",
                ws.send(Message {
                    kind,
                    data: data.clone(),
                }),
            )
            .await
            .unwrap();
            let back = bounded("echo", ws.next()).await.unwrap().unwrap();
            assert_eq!(back.kind, kind);
            assert!(back.data == data, "{size} B differs");
        }
    }
    bounded("close", ws.close_with(CloseCode::NORMAL, "thanks"))
        .await
        .unwrap();
    assert!(bounded("end", ws.next()).await.is_none());
    assert!(ws.close_info().unwrap().clean);

    // Without a subprotocol or deflate.
    let req = ClientRequest::new(addr.to_string(), "/ws");
    let mut ws = connect_to(addr, req, Config::default()).await.unwrap();
    assert_eq!(ws.open_info().unwrap().protocol, None);
    ws.send(ws_tokio::text("plain")).await.unwrap();
    assert_eq!(
        bounded("echo", ws.next()).await.unwrap().unwrap().as_text(),
        Some("plain")
    );
    ws.close().await.unwrap();

    // A refused route: the application's status and body reach the client.
    let req = ClientRequest::new(addr.to_string(), "/ws/private");
    let err = connect_to(addr, req, Config::default()).await.unwrap_err();
    let Error::Connection(ConnectionError::Handshake(HandshakeError::Status {
        status, body, ..
    })) = err
    else {
        panic!("{err:?}");
    };
    assert_eq!((status, body.as_slice()), (403, &b"members only"[..]));

    // Plain HTTP on the same server.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    bounded("http", tcp.read_to_end(&mut answer)).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello over plain http\n"), "{answer}");

    // An upgrade request missing its key: the core's 400.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    bounded("http", tcp.read_to_end(&mut answer)).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}
