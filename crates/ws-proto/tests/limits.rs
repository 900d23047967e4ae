//! One test per limit: a peer that exceeds it gets the right close code or
//! HTTP status, and the core's retained memory stays bounded meanwhile.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::time::Instant;

use common::*;
use ws_proto::{
    CloseCode, Connection, ConnectionError, Event, HandshakeError, Limits, ProtocolError, Transmit,
};

fn failed_with(p: &Pair, code: CloseCode) -> ProtocolError {
    let c = p.server_closed().expect("server should have closed");
    assert_eq!(c.code, code, "{c:?}");
    match &c.error {
        Some(ConnectionError::Protocol(e)) => e.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn frame_payload_limit_gives_1009_before_the_payload_arrives() {
    let limits = Limits::default().max_frame_payload(1000);
    let mut p = Pair::open(client_cfg(), server_cfg().limits(limits), Chunking::Whole);
    // Only the header of a 1001-byte frame: refused on the declared length.
    let wire = cframe(true, 2, &[0u8; 1001]);
    p.inject(Dir::ClientToServer, &wire[..8]);
    assert_eq!(
        failed_with(&p, CloseCode::MESSAGE_TOO_BIG),
        ProtocolError::FrameTooLarge {
            len: 1001,
            limit: 1000
        }
    );
    assert!(p.server.retained_bytes() <= 1000);
    // The client was told.
    assert_eq!(p.client_closed().unwrap().code, CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn a_declared_length_of_2_pow_62_is_refused_without_allocating() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    let mut wire = vec![0x82, 0xFF];
    wire.extend_from_slice(&(1u64 << 62).to_be_bytes());
    wire.extend_from_slice(&[1, 2, 3, 4]);
    p.inject(Dir::ClientToServer, &wire);
    assert!(matches!(
        failed_with(&p, CloseCode::MESSAGE_TOO_BIG),
        ProtocolError::FrameTooLarge { .. }
    ));
    assert!(p.server.retained_bytes() < 64 << 10);
}

#[test]
fn message_size_limit_counts_all_fragments() {
    let limits = Limits::default().max_message_size(10_000);
    let mut p = Pair::open(client_cfg(), server_cfg().limits(limits), Chunking::Whole);
    let mut peak = 0;
    for i in 0..20 {
        p.inject(
            Dir::ClientToServer,
            &cframe(false, if i == 0 { 2 } else { 0 }, &[7u8; 900]),
        );
        peak = peak.max(p.server.retained_bytes());
        if p.server_closed().is_some() {
            break;
        }
    }
    assert_eq!(
        failed_with(&p, CloseCode::MESSAGE_TOO_BIG),
        ProtocolError::MessageTooLarge { limit: 10_000 }
    );
    assert!(peak <= 2 * 10_000 + 64, "peak retained {peak}");
}

#[test]
fn fragment_count_limit_counts_empty_fragments() {
    let limits = Limits::default().max_fragments(100);
    let mut p = Pair::open(client_cfg(), server_cfg().limits(limits), Chunking::Whole);
    p.inject(Dir::ClientToServer, &cframe(false, 1, b""));
    let mut flood = Vec::new();
    for _ in 0..1000 {
        flood.extend_from_slice(&cframe(false, 0, b""));
    }
    p.inject(Dir::ClientToServer, &flood);
    assert_eq!(
        failed_with(&p, CloseCode::MESSAGE_TOO_BIG),
        ProtocolError::TooManyFragments { limit: 100 }
    );
    assert!(p.server.retained_bytes() < 64 << 10);
}

#[test]
fn default_limits_take_4_mib_in_64_byte_fragments_but_not_a_tiny_fragment_flood() {
    // 65,536 fragments of 64 bytes (Autobahn 9.3.1): a well-formed message
    // within max_message_size gets in with the default fragment limit.
    let mut p = Pair::open(
        client_cfg().fragment_size(64),
        server_cfg(),
        Chunking::Whole,
    );
    p.client.send_binary(vec![3u8; 4 << 20]).unwrap();
    p.drive();
    assert!(p.server_closed().is_none(), "{:?}", p.server_closed());
    assert_eq!(messages(&p.server_events)[0].data.len(), 4 << 20);

    // One-byte fragments: past 1,024 they earn an extra fragment per 64
    // bytes only, so the flood is cut off after about 1,040 frames.
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    p.inject(Dir::ClientToServer, &cframe(false, 2, b"x"));
    let mut flood = Vec::new();
    for _ in 0..2000 {
        flood.extend_from_slice(&cframe(false, 0, b"x"));
    }
    p.inject(Dir::ClientToServer, &flood);
    let e = failed_with(&p, CloseCode::MESSAGE_TOO_BIG);
    let ProtocolError::TooManyFragments { limit } = e else {
        panic!("{e:?}")
    };
    assert!((1024..1100).contains(&limit), "limit {limit}");
    assert!(p.server.retained_bytes() < 64 << 10);
}

#[test]
fn raising_the_message_limit_raises_the_frame_limit() {
    let limits = Limits::default().max_message_size(16 << 20);
    assert!(limits.frame_payload_limit() >= 16 << 20);
    let mut p = Pair::open(
        client_cfg().fragment_size(usize::MAX),
        server_cfg().limits(limits.clone()),
        Chunking::Whole,
    );
    p.client.send_binary(vec![5u8; 16 << 20]).unwrap();
    p.drive();
    assert!(p.server_closed().is_none());
    assert_eq!(messages(&p.server_events)[0].data.len(), 16 << 20);
    // ...but a frame declared past it is still refused on its header.
    let mut p = Pair::open(
        client_cfg(),
        server_cfg().limits(limits.clone()),
        Chunking::Whole,
    );
    let mut wire = vec![0x82, 0xFF];
    wire.extend_from_slice(&((limits.frame_payload_limit() as u64) + 1).to_be_bytes());
    wire.extend_from_slice(&[1, 2, 3, 4]);
    p.inject(Dir::ClientToServer, &wire);
    assert!(matches!(
        failed_with(&p, CloseCode::MESSAGE_TOO_BIG),
        ProtocolError::FrameTooLarge { .. }
    ));
    assert!(p.server.retained_bytes() < 64 << 10);
}

#[test]
fn exactly_at_the_limits_is_accepted() {
    let limits = Limits::default()
        .max_frame_payload(1000)
        .max_message_size(3000)
        .max_fragments(3);
    let mut p = Pair::open(
        client_cfg().fragment_size(1000),
        server_cfg().limits(limits),
        Chunking::Whole,
    );
    p.client.send_binary(vec![1u8; 3000]).unwrap();
    p.drive();
    assert_eq!(messages(&p.server_events)[0].data.len(), 3000);
    assert!(p.server_closed().is_none());
}

fn server_response_to(request: &[u8], limits: Limits) -> (String, Option<ws_proto::Closed>, usize) {
    let now = Instant::now();
    let mut s = Connection::server(server_cfg().limits(limits), now);
    let mut peak = 0;
    for chunk in request.chunks(100) {
        s.handle_input(now, chunk);
        peak = peak.max(s.retained_bytes());
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut shutdown = false;
    while let Some(t) = s.poll_transmit(now, &mut buf) {
        match t {
            Transmit::Data(n) => out.extend_from_slice(&buf[..n]),
            Transmit::Shutdown => shutdown = true,
        }
    }
    assert!(
        shutdown || out.is_empty(),
        "a rejected handshake shuts the transport down"
    );
    s.handle_eof(now);
    let mut closed = None;
    while let Some(e) = s.poll_event() {
        if let Event::Closed(c) = e {
            closed = Some(c);
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), closed, peak)
}

#[test]
fn oversized_request_line_gets_414() {
    let limits = Limits::default().max_handshake_bytes(4096);
    let req = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(10_000));
    let (resp, closed, peak) = server_response_to(req.as_bytes(), limits);
    assert!(resp.starts_with("HTTP/1.1 414 "), "{resp}");
    assert_eq!(
        closed.unwrap().error,
        Some(ConnectionError::Handshake(
            HandshakeError::RequestLineTooLong
        ))
    );
    assert!(peak <= 2 * 4096 + 200, "peak {peak}");
}

#[test]
fn oversized_headers_get_431() {
    let limits = Limits::default().max_handshake_bytes(4096);
    let req = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
        "b".repeat(10_000)
    );
    let (resp, closed, peak) = server_response_to(req.as_bytes(), limits);
    assert!(resp.starts_with("HTTP/1.1 431 "), "{resp}");
    assert_eq!(
        closed.unwrap().error,
        Some(ConnectionError::Handshake(HandshakeError::HeadTooLarge))
    );
    assert!(peak <= 2 * 4096 + 200, "peak {peak}");
}

#[test]
fn too_many_headers_get_431() {
    let limits = Limits::default().max_headers(10);
    let mut req = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
    for i in 0..20 {
        req.push_str(&format!("X-{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let (resp, closed, _) = server_response_to(req.as_bytes(), limits);
    assert!(resp.starts_with("HTTP/1.1 431 "), "{resp}");
    assert_eq!(
        closed.unwrap().error,
        Some(ConnectionError::Handshake(HandshakeError::TooManyHeaders))
    );
}

#[test]
fn wrong_version_gets_426_with_the_supported_version() {
    let req = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n";
    let (resp, _, _) = server_response_to(req, Limits::default());
    assert!(resp.starts_with("HTTP/1.1 426 "), "{resp}");
    assert!(resp.contains("Sec-WebSocket-Version: 13\r\n"), "{resp}");
}

#[test]
fn bad_key_gets_400() {
    let req = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: not-base64!\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let (resp, closed, _) = server_response_to(req, Limits::default());
    assert!(resp.starts_with("HTTP/1.1 400 "), "{resp}");
    assert_eq!(
        closed.unwrap().error,
        Some(ConnectionError::Handshake(HandshakeError::BadKey))
    );
}

#[test]
fn client_refuses_an_endless_response_head() {
    let limits = Limits::default().max_handshake_bytes(2048);
    let now = Instant::now();
    let mut c = Connection::client(
        client_cfg().limits(limits),
        &ws_proto::ClientRequest::new("h", "/"),
        now,
    )
    .expect("a valid request");
    let mut buf = [0u8; 4096];
    while c.poll_transmit(now, &mut buf).is_some() {}
    c.handle_input(now, b"HTTP/1.1 101 Switching Protocols\r\n");
    let mut peak = 0;
    for _ in 0..100 {
        c.handle_input(now, b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        peak = peak.max(c.retained_bytes());
    }
    while c.poll_transmit(now, &mut buf).is_some() {}
    let mut err = None;
    while let Some(e) = c.poll_event() {
        if let Event::Closed(cl) = e {
            err = cl.error;
        }
    }
    assert_eq!(
        err,
        Some(ConnectionError::Handshake(HandshakeError::HeadTooLarge))
    );
    assert!(peak <= 2 * 2048 + 200, "peak {peak}");
}

#[test]
fn handshake_timeout_for_a_slow_loris() {
    let mut p = Pair::new(
        client_cfg(),
        server_cfg().handshake_timeout(std::time::Duration::from_secs(2)),
        Chunking::Whole,
    );
    // The client's request never arrives; one byte a second instead.
    p.server_paused = true;
    let req = b"GET / HTTP/1.1\r\nHost: h\r\n";
    for b in req.iter().take(3) {
        let now = p.now;
        p.server.handle_input(now, std::slice::from_ref(b));
        p.advance(std::time::Duration::from_secs(1));
    }
    assert_eq!(
        p.server_closed().unwrap().error,
        Some(ConnectionError::HandshakeTimeout)
    );
}

#[test]
fn send_queue_limit_is_enforced_and_recovers() {
    let limits = Limits::default().max_send_queue(64 << 10);
    let mut p = Pair::open(client_cfg().limits(limits), server_cfg(), Chunking::Whole);
    p.server_paused = true;
    let mut accepted = 0;
    let mut refused = None;
    for _ in 0..100 {
        match p.client.send_binary(vec![0u8; 10_000]) {
            Ok(()) => accepted += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert_eq!(accepted, 6);
    assert_eq!(
        refused,
        Some(ws_proto::Error::Backpressure {
            buffered_amount: 60_000,
            limit: 64 << 10
        })
    );
    assert_eq!(p.client.buffered_amount(), 60_000);
    p.server_paused = false;
    p.drive();
    assert_eq!(messages(&p.server_events).len(), 6);
    assert!(p.client.send_binary(vec![0u8; 10_000]).is_ok());
}

#[test]
fn timers_of_duration_max_mean_never_and_do_not_overflow() {
    // `Instant + Duration::MAX` panics; a caller may configure MAX to mean
    // "never", so every deadline the core computes saturates instead.
    let never = std::time::Duration::MAX;
    let cfg = |c: ws_proto::Config| {
        c.handshake_timeout(never)
            .close_timeout(never)
            .ping_interval(Some(never))
            .idle_timeout(Some(never))
            .release_buffers_after(never)
    };
    let mut p = Pair::open(cfg(client_cfg()), cfg(server_cfg()), Chunking::Whole);
    p.client.send_text("still here").unwrap();
    p.drive();
    assert_eq!(messages(&p.server_events)[0].data.as_ref(), b"still here");
    let _ = p.client.poll_timeout();
    let _ = p.server.poll_timeout();
    p.client.close(CloseCode::NORMAL, "").unwrap();
    p.drive();
    assert!(p.client_closed().unwrap().clean);
    assert!(p.server_closed().unwrap().clean);
}
