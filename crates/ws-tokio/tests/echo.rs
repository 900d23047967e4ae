//! Client ↔ server over loopback TCP: echo of text and binary from 0 B to 1 MiB with and
//! without permessage-deflate, batched writes, split halves in two tasks, close codes and
//! reasons both ways, subprotocols, rejects with a status and a body.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::sync::atomic::Ordering;

use common::{bounded, connect, connect_to, echo_server, payload, server, CountWrites};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use ws_tokio::{
    Accept, ClientRequest, CloseCode, Config, ConnectionError, Decision, DeflateConfig, Error,
    HandshakeError, Initiator, Message, MessageKind,
};

const SIZES: [usize; 9] = [0, 1, 125, 126, 127, 65_535, 65_536, 100_000, 1 << 20];

async fn echo_all_sizes(cfg: Config) {
    let addr = echo_server(cfg.clone()).await;
    let mut ws = connect(addr, cfg.clone()).await;
    let deflate = cfg.deflate.is_some();
    let agreed = ws.with_connection(|c| c.extensions().map(str::to_string));
    assert_eq!(agreed.is_some(), deflate, "extensions agreed: {agreed:?}");
    for size in SIZES {
        for kind in [MessageKind::Text, MessageKind::Binary] {
            let data = ws_tokio::Bytes::from(payload(size));
            let m = Message {
                kind,
                data: data.clone(),
            };
            bounded("send", ws.send(m)).await.unwrap();
            let back = bounded("echo", ws.next()).await.unwrap().unwrap();
            assert_eq!(back.kind, kind, "{size} B");
            assert!(back.data == data, "{size} B {kind:?} differs");
        }
    }
    bounded("close", ws.close()).await.unwrap();
    assert!(bounded("end", ws.next()).await.is_none());
    let closed = ws.close_info().unwrap();
    assert_eq!(closed.code, CloseCode::NORMAL);
    assert!(closed.clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_text_and_binary_0_to_1_mib() {
    echo_all_sizes(Config::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_text_and_binary_0_to_1_mib_deflate() {
    echo_all_sizes(Config::default().deflate(Some(DeflateConfig::default()))).await;
}

/// `feed` queues without writing; one flush writes the whole burst in one or two writes.
#[tokio::test(flavor = "current_thread")]
async fn a_burst_of_small_messages_goes_out_in_few_writes() {
    let addr = echo_server(Config::default()).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (io, writes) = CountWrites::new(tcp);
    let req = ClientRequest::new(addr.to_string(), "/");
    let mut ws = bounded("handshake", ws_tokio::client(io, &req, Config::default()))
        .await
        .unwrap();
    let before = writes.load(Ordering::SeqCst);
    for i in 0..500 {
        bounded("feed", ws.feed(ws_tokio::text(format!("message {i}"))))
            .await
            .unwrap();
    }
    assert_eq!(writes.load(Ordering::SeqCst), before, "feed wrote");
    bounded("flush", ws.flush()).await.unwrap();
    let burst = writes.load(Ordering::SeqCst) - before;
    assert!(burst <= 2, "500 small messages took {burst} writes");
    for i in 0..500 {
        let m = bounded("echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(m.as_text().unwrap(), format!("message {i}"));
    }
}

/// The reader half and the writer half in two tasks on a multi-thread runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_halves_from_two_tasks() {
    let addr = echo_server(Config::default()).await;
    let ws = connect(addr, Config::default()).await;
    let (mut reader, mut writer) = ws.split();
    const N: usize = 2000;
    let writing = tokio::spawn(async move {
        for i in 0..N {
            let size = [3, 200, 70_000][i % 3];
            let mut data = payload(size);
            data[0] = (i % 251) as u8;
            writer.send(ws_tokio::binary(data)).await.unwrap();
        }
        writer
    });
    let reading = tokio::spawn(async move {
        for i in 0..N {
            let m = reader.next().await.unwrap().unwrap();
            assert_eq!(m.data.len(), [3, 200, 70_000][i % 3]);
            assert_eq!(m.data[0], (i % 251) as u8);
        }
        reader
    });
    let mut writer = bounded("writer", writing).await.unwrap();
    let mut reader = bounded("reader", reading).await.unwrap();
    // The writer closes; the reader sees the handshake complete.
    bounded("close", writer.close_with(CloseCode::GOING_AWAY, "done"))
        .await
        .unwrap();
    assert!(bounded("end", reader.next()).await.is_none());
    let closed = reader.close_info().unwrap();
    assert_eq!(closed.code, CloseCode::GOING_AWAY);
    assert!(closed.clean);
    assert!(reader.reunite(writer).is_ok());
}

/// A reader blocked in one task is woken by data the writer's task read, and the other way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halves_wake_each_other() {
    let addr = echo_server(Config::default()).await;
    let ws = connect(addr, Config::default()).await;
    let (mut reader, mut writer) = ws.split();
    let reading = tokio::spawn(async move {
        let mut got = 0;
        while got < 100 {
            match reader.next().await {
                Some(Ok(_)) => got += 1,
                other => panic!("{other:?}"),
            }
        }
        got
    });
    for i in 0..100 {
        writer.send(ws_tokio::text(i.to_string())).await.unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(bounded("reader", reading).await.unwrap(), 100);
}

/// Close codes and reasons, each side starting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_codes_and_reasons_both_ways() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let addr = server(
        Config::default(),
        |_| Decision::accept(),
        move |ws| {
            let tx = tx.clone();
            async move {
                let mut ws = ws.unwrap();
                let first = ws.next().await.unwrap().unwrap();
                if first.as_text() == Some("close me") {
                    ws.close_with(CloseCode::new(4002).unwrap(), "server says bye")
                        .await
                        .unwrap();
                }
                let closed = ws.closed().await;
                tx.send(closed).await.unwrap();
            }
        },
    )
    .await;

    // The client starts.
    let mut ws = connect(addr, Config::default()).await;
    ws.send(ws_tokio::text("hello")).await.unwrap();
    ws.close_with(CloseCode::new(4001).unwrap(), "client says bye")
        .await
        .unwrap();
    assert!(bounded("end", ws.next()).await.is_none());
    let ours = ws.close_info().unwrap();
    assert_eq!(
        (ours.code.as_u16(), ours.initiator),
        (4001, Initiator::Local)
    );
    let theirs = bounded("server close", rx.recv()).await.unwrap();
    assert_eq!(theirs.code.as_u16(), 4001);
    assert_eq!(theirs.reason, "client says bye");
    assert_eq!(theirs.initiator, Initiator::Remote);
    assert!(theirs.clean && ours.clean);

    // The server starts.
    let mut ws = connect(addr, Config::default()).await;
    ws.send(ws_tokio::text("close me")).await.unwrap();
    assert!(bounded("end", ws.next()).await.is_none());
    let ours = ws.close_info().unwrap();
    assert_eq!(ours.code.as_u16(), 4002);
    assert_eq!(ours.reason, "server says bye");
    assert_eq!(ours.initiator, Initiator::Remote);
    assert!(ours.clean);
    let theirs = bounded("server close", rx.recv()).await.unwrap();
    assert_eq!(
        (theirs.code.as_u16(), theirs.initiator),
        (4002, Initiator::Local)
    );
    // Sending after the close is refused.
    let late = ws.send(ws_tokio::text("late")).await;
    assert!(matches!(late, Err(Error::Closed)), "{late:?}");
}

/// The application sees the request and picks a subprotocol, or rejects with a status, a
/// header and a body that the client receives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_with_a_subprotocol_or_reject_with_status_and_body() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let decide = |req: &ws_tokio::UpgradeRequest| match req.path.as_str() {
        "/chat" if req.query.as_deref() == Some("room=1") => {
            Decision::Accept(Accept::new().protocol("chat.v2"))
        }
        _ => Decision::Reject {
            status: 403,
            headers: vec![("X-Why".into(), "members only".into())],
            body: b"go away".to_vec(),
        },
    };
    let addr = server(Config::default(), decide, move |ws| {
        let tx = tx.clone();
        async move {
            match ws {
                Ok(mut ws) => {
                    let m = ws.next().await.unwrap().unwrap();
                    ws.send(m).await.unwrap();
                    let _ = ws.closed().await;
                }
                Err(e) => tx.send(e).await.unwrap(),
            }
        }
    })
    .await;

    let req = ClientRequest::new(addr.to_string(), "/chat?room=1")
        .protocol("chat.v1")
        .protocol("chat.v2");
    let mut ws = connect_to(addr, req, Config::default()).await.unwrap();
    assert_eq!(ws.open_info().unwrap().protocol.as_deref(), Some("chat.v2"));
    ws.send(ws_tokio::text("hi")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().as_text(), Some("hi"));
    ws.close().await.unwrap();

    let req = ClientRequest::new(addr.to_string(), "/private");
    let err = connect_to(addr, req, Config::default()).await.unwrap_err();
    let Error::Connection(ConnectionError::Handshake(HandshakeError::Status {
        status,
        headers,
        body,
        ..
    })) = err
    else {
        panic!("{err:?}");
    };
    assert_eq!(status, 403);
    assert_eq!(body, b"go away");
    assert!(headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("x-why") && v == "members only"));
    let server_side = bounded("server error", rx.recv()).await.unwrap();
    assert!(
        matches!(
            server_side,
            Error::Connection(ConnectionError::Handshake(HandshakeError::Rejected(403)))
        ),
        "{server_side:?}"
    );
}

/// A request the core refuses to build sends nothing.
#[tokio::test(flavor = "current_thread")]
async fn an_invalid_client_request_is_refused_before_sending() {
    let addr = echo_server(Config::default()).await;
    let req = ClientRequest::new(addr.to_string(), "/").header("X-Bad", "a\r\nInjected: yes");
    let err = connect_to(addr, req, Config::default()).await.unwrap_err();
    assert!(
        matches!(err, Error::Command(ws_proto::Error::InvalidRequest { .. })),
        "{err:?}"
    );
}

/// A plain HTTP request to a WebSocket server gets the core's answer, and `accept` reports it.
#[tokio::test(flavor = "current_thread")]
async fn a_non_upgrade_request_is_answered_by_the_core() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let addr = server(
        Config::default(),
        |_| Decision::accept(),
        move |ws| {
            let tx = tx.clone();
            async move {
                tx.send(ws.unwrap_err()).await.unwrap();
            }
        },
    )
    .await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    bounded("answer", tcp.read_to_end(&mut answer))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    // The server waits for our end of the connection (so its answer is not cut by a reset).
    drop(tcp);
    let err = bounded("server error", rx.recv()).await.unwrap();
    assert!(
        matches!(err, Error::Connection(ConnectionError::Handshake(_))),
        "{err:?}"
    );
}

/// A decision the core refuses (a subprotocol the client did not offer, a 101 "refusal")
/// answers 500 and returns the core's error to the server; the client sees the 500.
#[tokio::test(flavor = "current_thread")]
async fn a_decision_the_core_refuses_answers_500() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let decide = |req: &ws_tokio::UpgradeRequest| match req.path.as_str() {
        "/protocol" => Decision::Accept(Accept::new().protocol("never-offered")),
        _ => Decision::reject(101, "not a refusal"),
    };
    let addr = server(Config::default(), decide, move |ws| {
        let tx = tx.clone();
        async move {
            tx.send(ws.unwrap_err()).await.unwrap();
        }
    })
    .await;
    for path in ["/protocol", "/status"] {
        let req = ClientRequest::new(addr.to_string(), path);
        let err = connect_to(addr, req, Config::default()).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Connection(ConnectionError::Handshake(HandshakeError::Status {
                    status: 500,
                    ..
                }))
            ),
            "{path}: {err:?}"
        );
        let server_side = bounded("server error", rx.recv()).await.unwrap();
        assert!(matches!(server_side, Error::Command(_)), "{server_side:?}");
    }
}

/// A `decide` that panics is contained: the client gets a 500 at once, the server sees
/// `Error::CallbackPanicked` with the panic's message, and the same server keeps serving.
#[tokio::test(flavor = "current_thread")]
async fn a_panicking_decision_answers_500_and_the_server_serves_on() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let decide = |req: &ws_tokio::UpgradeRequest| {
        if req.path == "/boom" {
            panic!("decision failed for {}", req.path);
        }
        Decision::accept()
    };
    let addr = server(Config::default(), decide, move |ws| {
        let tx = tx.clone();
        async move {
            if let Err(e) = ws {
                tx.send(e).await.unwrap();
            }
        }
    })
    .await;
    let req = ClientRequest::new(addr.to_string(), "/boom");
    let err = connect_to(addr, req, Config::default()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Connection(ConnectionError::Handshake(HandshakeError::Status {
                status: 500,
                ..
            }))
        ),
        "{err:?}"
    );
    let server_side = bounded("server error", rx.recv()).await.unwrap();
    match &server_side {
        Error::CallbackPanicked(msg) => assert!(msg.contains("decision failed for /boom"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ws_net::DriverError::kind(&server_side),
        ws_net::ErrorKind::Application
    );
    // The same server still accepts.
    let req = ClientRequest::new(addr.to_string(), "/fine");
    let ws = connect_to(addr, req, Config::default()).await;
    assert!(ws.is_ok(), "{:?}", ws.err());
}
