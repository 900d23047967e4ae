//! A peer that stops reading: the sink stops being ready, what we hold stays bounded, and it
//! becomes ready again once the peer reads.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use common::{bounded, payload};
use futures_util::{Sink, SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use ws_tokio::{ClientRequest, Config, Limits, WebSocketStream};

/// How long the sink must stay not ready to count as stopped (a bounded wait for an event
/// that must not happen, not a synchronisation).
const STILL: Duration = Duration::from_millis(300);

async fn ready(ws: &mut WebSocketStream<TcpStream>) -> bool {
    let ready = poll_fn(|cx| Pin::new(&mut *ws).poll_ready(cx));
    match tokio::time::timeout(STILL, ready).await {
        Ok(r) => {
            r.unwrap();
            true
        }
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_stops_the_sink() {
    // Small kernel buffers keep the amount in flight small.
    let listener = TcpSocket::new_v4().unwrap();
    listener.set_recv_buffer_size(32 << 10).unwrap();
    listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = listener.listen(16).unwrap();
    let addr = listener.local_addr().unwrap();
    let (go, resume) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = ws_tokio::accept(tcp).await.unwrap();
        // Reads nothing until told to.
        resume.await.unwrap();
        let (mut messages, mut bytes) = (0usize, 0usize);
        while let Some(Ok(m)) = ws.next().await {
            messages += 1;
            bytes += m.data.len();
        }
        (messages, bytes)
    });

    let socket = TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(32 << 10).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let cfg = Config::default().limits(Limits::default().max_send_queue(1 << 20));
    let mut ws = bounded(
        "handshake",
        ws_tokio::client(tcp, &ClientRequest::new(addr.to_string(), "/"), cfg),
    )
    .await
    .unwrap();

    let msg = ws_tokio::binary(payload(16 << 10));
    let mut sent = 0usize;
    let mut most_held = 0usize;
    // Bounded: the kernel buffers and our high water hold far less than 4,096 messages.
    for _ in 0..4096 {
        if !ready(&mut ws).await {
            break;
        }
        Pin::new(&mut ws).start_send(msg.clone()).unwrap();
        sent += 1;
        most_held = most_held.max(ws.with_connection(|c| c.buffered_amount()));
    }
    assert!(sent < 4096, "the sink never stopped being ready");
    eprintln!(
        "the sink stopped after {sent} messages of 16 KiB; most queued in the core: {most_held} B"
    );
    // What we hold: under the high water (64 KiB) plus one message.
    assert!(most_held <= (64 << 10) + (16 << 10), "held {most_held} B");
    let retained = ws.with_connection(|c| c.retained_bytes());
    assert!(retained <= 1 << 20, "core buffers {retained} B");
    // Still not ready while the peer does not read.
    assert!(!ready(&mut ws).await);

    // The peer reads again: the sink becomes ready and everything arrives.
    go.send(()).unwrap();
    let more = 64;
    for _ in 0..more {
        let wait = poll_fn(|cx| Pin::new(&mut ws).poll_ready(cx));
        bounded("ready again", wait).await.unwrap();
        Pin::new(&mut ws).start_send(msg.clone()).unwrap();
    }
    bounded("flush", ws.flush()).await.unwrap();
    bounded("close", ws.close()).await.unwrap();
    assert!(bounded("end", ws.next()).await.is_none());
    let (messages, bytes) = bounded("server", server).await.unwrap();
    assert_eq!(messages, sent + more);
    assert_eq!(bytes, (sent + more) * (16 << 10));
}

/// A message over the core's whole send-queue limit waits in the one-message slot: the sink
/// is not ready until it went into the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_queue_limit_waits_its_turn() {
    let addr = common::echo_server(Config::default()).await;
    let cfg = Config::default().limits(Limits::default().max_send_queue(100_000));
    let mut ws = common::connect(addr, cfg).await;
    let big = ws_tokio::binary(payload(300_000));
    for _ in 0..3 {
        bounded("feed", ws.feed(big.clone())).await.unwrap();
    }
    bounded("flush", ws.flush()).await.unwrap();
    for _ in 0..3 {
        let m = bounded("echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(m.data.len(), 300_000);
    }
}
