//! The thread-per-connection server helper: upgrade decisions, the
//! connection limit, and shutdown.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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

/// What a client over the limit gets: the status and `Retry-After`.
fn refusal(err: Error) -> (u16, Option<String>) {
    match err {
        Error::Handshake(HandshakeError::Status {
            status, headers, ..
        }) => {
            let retry = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
                .map(|(_, v)| v.clone());
            (status, retry)
        }
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

#[test]
fn at_max_connections_a_client_gets_503_with_retry_after_at_once_and_a_freed_slot_serves_again() {
    let peak = Arc::new(AtomicUsize::new(0));
    let live = Arc::new(AtomicUsize::new(0));
    let (p, l) = (peak.clone(), live.clone());
    let server = serve(
        listener(),
        ServeOptions::default().max_connections(2),
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
    let mut second = connect(&url, &ClientOptions::default()).unwrap();
    assert!(wait_until(Duration::from_secs(10), || server
        .active_connections()
        == 2));

    // Over the limit: refused at once, with a Retry-After (the wait is
    // bounded at 10 s, the answer must come well under a second).
    let bounded = ClientOptions::default()
        .config(Config::default().handshake_timeout(Duration::from_secs(10)));
    for _ in 0..5 {
        let t = Instant::now();
        let err = connect(&url, &bounded).unwrap_err();
        let took = t.elapsed();
        assert_eq!(
            refusal(err),
            (503, Some(ws_std::RETRY_AFTER_SECS.to_string()))
        );
        assert!(took < Duration::from_millis(900), "refused after {took:?}");
    }
    assert_eq!(server.active_connections(), 2);
    // The two served connections are unaffected.
    for ws in [&mut first, &mut second] {
        ws.send_text("still served").unwrap();
        assert!(matches!(ws.recv().unwrap(), Received::Message(_)));
    }

    // One of them ends: the slot is free again, a new client is served.
    first.close(CloseCode::NORMAL, "").unwrap();
    while first.recv().is_ok() {}
    assert!(wait_until(Duration::from_secs(10), || server
        .active_connections()
        == 1));
    let mut third = connect(&url, &bounded).unwrap();
    third.send_text("served").unwrap();
    match third.recv().unwrap() {
        Received::Message(m) => assert_eq!(m.as_text(), Some("served")),
        other => panic!("{other:?}"),
    }
    // And the limit holds again.
    assert_eq!(refusal(connect(&url, &bounded).unwrap_err()).0, 503);
    assert_eq!(peak.load(Ordering::SeqCst), 2);
    assert!(server.shutdown());
}

#[test]
fn many_clients_over_the_limit_are_all_answered_promptly() {
    let server = serve(listener(), ServeOptions::default().max_connections(1), echo).unwrap();
    let url = ws_url(server.local_addr(), "/");
    let mut held = connect(&url, &ClientOptions::default()).unwrap();
    assert!(wait_until(Duration::from_secs(10), || server
        .active_connections()
        == 1));
    let t = Instant::now();
    let clients: Vec<_> = (0..40)
        .map(|_| {
            let url = url.clone();
            thread::spawn(move || {
                let options = ClientOptions::default()
                    .config(Config::default().handshake_timeout(Duration::from_secs(10)));
                connect(&url, &options).map(|_| ())
            })
        })
        .collect();
    for c in clients {
        // Answered with 503; a client beyond the rejecter's queue would be
        // closed at once instead (40 stay well within it).
        let err = c.join().unwrap().unwrap_err();
        assert_eq!(refusal(err).0, 503);
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "40 refusals took {:?}",
        t.elapsed()
    );
    held.send_text("unaffected").unwrap();
    assert!(matches!(held.recv().unwrap(), Received::Message(_)));
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
fn a_panicking_handler_closes_its_connection_with_1011_and_the_server_serves_on() {
    let server = serve(
        listener(),
        ServeOptions::default().max_connections(2),
        |mut ws| {
            if ws.request().is_some_and(|r| r.path == "/panic") {
                let _ = ws.recv();
                panic!("handler panics on purpose");
            }
            echo(ws);
        },
    )
    .unwrap();
    let bounded = ClientOptions::default()
        .config(Config::default().handshake_timeout(Duration::from_secs(10)));
    // Connected before the panic, checked after it.
    let mut other = connect(&ws_url(server.local_addr(), "/"), &bounded).unwrap();
    let mut ws = connect(&ws_url(server.local_addr(), "/panic"), &bounded).unwrap();
    ws.send_text("panic now").unwrap();
    let closed = loop {
        match ws.recv() {
            Ok(Received::Closed(c)) => break c,
            Ok(_) => {}
            Err(e) => panic!("expected a close, got {e:?}"),
        }
    };
    assert_eq!(closed.code, CloseCode::INTERNAL_ERROR);
    assert!(closed.clean, "{closed:?}");
    // Its slot is released.
    assert!(wait_until(Duration::from_secs(10), || server
        .active_connections()
        == 1));
    other.send_text("still serving").unwrap();
    match other.recv().unwrap() {
        Received::Message(m) => assert_eq!(m.as_text(), Some("still serving")),
        r => panic!("{r:?}"),
    }
    // With the freed slot (limit 2) a new client is served, not refused.
    let mut ws = connect(&ws_url(server.local_addr(), "/"), &bounded).unwrap();
    ws.send_text("new one").unwrap();
    assert!(matches!(ws.recv().unwrap(), Received::Message(_)));
    assert!(server.shutdown());
}

#[test]
fn a_panicking_upgrade_callback_answers_500_and_the_server_serves_on() {
    let options = ServerOptions::default().on_upgrade(|req| {
        if req.path == "/panic" {
            panic!("on_upgrade panics on purpose");
        }
        UpgradeResponse::accept()
    });
    let server = serve(
        listener(),
        ServeOptions::default().server(options).max_connections(1),
        echo,
    )
    .unwrap();
    let bounded = ClientOptions::default()
        .config(Config::default().handshake_timeout(Duration::from_secs(10)));
    let err = connect(&ws_url(server.local_addr(), "/panic"), &bounded).unwrap_err();
    assert_eq!(refusal(err).0, 500);
    assert!(wait_until(Duration::from_secs(10), || server
        .active_connections()
        == 0));
    let mut ws = connect(&ws_url(server.local_addr(), "/"), &bounded).unwrap();
    ws.send_text("still serving").unwrap();
    assert!(matches!(ws.recv().unwrap(), Received::Message(_)));
    assert!(server.shutdown());
}

/// A large frame that arrives slowly, in pieces far apart, is not silence: while the reader
/// waits until the rest of the frame is there (the socket's receive low-water mark,
/// `ws_net::low_water`), the idle timer first lowers the mark and reads what came, which counts
/// as activity. Each piece is far smaller than the rest of the frame, and the frame takes longer
/// than the idle timeout.
#[test]
fn a_large_frame_trickling_in_is_not_taken_for_silence() {
    use std::io::Write;
    use ws_testkit::attacker::{frame, read_frame, upgrade, BINARY, FIN};
    let idle = Duration::from_millis(1500);
    let server =
        echo_server(ServerOptions::default().config(Config::default().idle_timeout(Some(idle))));
    let mut raw = upgrade(server.local_addr(), "/slow", "");
    let payload: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let whole = frame(FIN | BINARY, true, &payload);
    let started = Instant::now();
    for piece in whole.chunks(50_000) {
        raw.write_all(piece).unwrap();
        // The sender's pace (the scenario), not a wait for the server.
        thread::sleep(Duration::from_millis(300));
    }
    assert!(started.elapsed() > idle * 2, "{:?}", started.elapsed());
    let echo = read_frame(&mut raw).expect("the echo, not a closed connection");
    assert_eq!(
        echo.opcode(),
        BINARY,
        "the echo, not a close: {:?}",
        echo.payload.get(..2)
    );
    assert!(echo.payload == payload, "echo differs");
}
