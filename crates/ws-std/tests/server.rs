//! The thread-per-connection server helper: upgrade decisions, the
//! connection limit, and shutdown.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ws_proto::{CloseCode, Config, HandshakeError};
use ws_std::{
    connect, serve, ClientOptions, Error, Received, ServeOptions, ServerOptions, UpgradeResponse,
};

#[test]
fn upgrade_callback_routes_checks_origin_and_picks_a_subprotocol() {
    let options = ServerOptions::default().on_upgrade(|req| {
        if req.path != "/chat" {
            return UpgradeResponse::reject(404, "no such endpoint");
        }
        if req.origin.as_deref() != Some("https://good.example") {
            return UpgradeResponse::reject(403, "origin not allowed");
        }
        if req.protocols.iter().any(|p| p == "chat.v2") {
            UpgradeResponse::accept_protocol("chat.v2")
        } else {
            UpgradeResponse::accept()
        }
    });
    let server = serve(listener(), ServeOptions::default().server(options), |ws| {
        let proto = ws.open_info().protocol.clone().unwrap_or_default();
        let path = ws.request().map(|r| r.path.clone()).unwrap_or_default();
        ws.send_text(&format!("{path} {proto}")).unwrap();
        echo(ws);
    })
    .unwrap();
    let addr = server.local_addr();
    let status = |path: &str, origin: &str| match connect(
        &ws_url(addr, path),
        &ClientOptions::default().origin(origin),
    ) {
        Err(Error::Handshake(HandshakeError::Status { status, .. })) => status,
        other => panic!("{other:?}"),
    };
    assert_eq!(status("/other", "https://good.example"), 404);
    assert_eq!(status("/chat", "https://evil.example"), 403);

    let options = ClientOptions::default()
        .origin("https://good.example")
        .protocol("chat.v1")
        .protocol("chat.v2");
    let mut ws = connect(&ws_url(addr, "/chat"), &options).unwrap();
    assert_eq!(ws.open_info().protocol.as_deref(), Some("chat.v2"));
    match ws.recv().unwrap() {
        Received::Message(m) => assert_eq!(m.as_text(), Some("/chat chat.v2")),
        other => panic!("{other:?}"),
    }
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert!(server.shutdown());
}

#[test]
fn max_connections_bounds_the_threads() {
    let peak = Arc::new(AtomicUsize::new(0));
    let live = Arc::new(AtomicUsize::new(0));
    let (p, l) = (peak.clone(), live.clone());
    let server = serve(
        listener(),
        ServeOptions::default().max_connections(1),
        move |ws| {
            let now = l.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            echo(ws);
            l.fetch_sub(1, Ordering::SeqCst);
        },
    )
    .unwrap();
    let url = ws_url(server.local_addr(), "/");
    let mut first = connect(&url, &ClientOptions::default()).unwrap();

    // The second client waits in the backlog: no handshake while the first
    // connection lives.
    let (tx, rx) = mpsc::channel();
    let url2 = url.clone();
    let second = thread::spawn(move || {
        let options = ClientOptions::default()
            .config(Config::default().handshake_timeout(Duration::from_secs(3)));
        let r = connect(&url2, &options);
        tx.send(Instant::now()).unwrap();
        r
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "second client opened early"
    );
    assert_eq!(server.active_connections(), 1);

    let closed_at = Instant::now();
    first.close(CloseCode::NORMAL, "").unwrap();
    while first.recv().is_ok() {}
    let opened_at = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    assert!(opened_at >= closed_at);
    let mut ws2 = second.join().unwrap().unwrap();
    ws2.send_text("hi").unwrap();
    assert!(matches!(ws2.recv().unwrap(), Received::Message(_)));
    assert_eq!(peak.load(Ordering::SeqCst), 1);
    assert!(server.shutdown());
}

#[test]
fn shutdown_closes_connections_with_going_away_and_stops_listening() {
    let server = serve(listener(), ServeOptions::default(), echo).unwrap();
    let addr = server.local_addr();
    let mut clients: Vec<_> = (0..2)
        .map(|_| connect(&ws_url(addr, "/"), &ClientOptions::default()).unwrap())
        .collect();
    assert!(wait_until(Duration::from_secs(1), || server
        .active_connections()
        == 2));
    let readers: Vec<_> = clients
        .drain(..)
        .map(|mut ws| {
            thread::spawn(move || loop {
                match ws.recv() {
                    Ok(Received::Closed(c)) => return Ok(c),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            })
        })
        .collect();
    let t = Instant::now();
    assert!(server.shutdown());
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    for r in readers {
        let c = r.join().unwrap().unwrap();
        assert_eq!(c.code, CloseCode::GOING_AWAY);
        assert_eq!(c.reason, "server shutdown");
    }
    assert!(connect(&ws_url(addr, "/"), &ClientOptions::default()).is_err());
}

#[test]
fn shutdown_cuts_connections_stuck_in_their_handshake() {
    let server = serve(
        listener(),
        ServeOptions::default().shutdown_grace(Duration::from_millis(200)),
        echo,
    )
    .unwrap();
    // A TCP client that never sends its upgrade request.
    let raw = std::net::TcpStream::connect(server.local_addr()).unwrap();
    assert!(wait_until(Duration::from_secs(1), || server
        .active_connections()
        == 1));
    let t = Instant::now();
    assert!(server.shutdown());
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    drop(raw);
}

#[test]
fn a_panicking_handler_frees_its_slot() {
    let server = serve(
        listener(),
        ServeOptions::default().max_connections(1),
        |ws| {
            if ws.request().is_some_and(|r| r.path == "/panic") {
                panic!("handler panics on purpose");
            }
            echo(ws);
        },
    )
    .unwrap();
    let mut ws = connect(
        &ws_url(server.local_addr(), "/panic"),
        &ClientOptions::default(),
    )
    .unwrap();
    assert!(ws.recv().is_err());
    assert!(wait_until(Duration::from_secs(1), || server
        .active_connections()
        == 0));
    let options = ClientOptions::default()
        .config(Config::default().handshake_timeout(Duration::from_millis(500)));
    let mut ws = connect(&ws_url(server.local_addr(), "/"), &options).unwrap();
    ws.send_text("still serving").unwrap();
    assert!(matches!(ws.recv().unwrap(), Received::Message(_)));
    assert!(server.shutdown());
}
