//! Connections from streams upgraded elsewhere (`ws_proto::upgrade`): a head parsed by another
//! HTTP stack, HTTP/1.1 and HTTP/2 extended CONNECT, both roles, then `Connection::upgraded`.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::time::Instant;

use common::*;
use ws_proto::deflate::DeflateConfig;
use ws_proto::upgrade::{ClientUpgrade, Http, ServerUpgrade, Upgraded};
use ws_proto::{
    Accept, ClientRequest, CloseCode, Config, Connection, Event, HandshakeError, MessageKind, Side,
};

fn h1_headers() -> Vec<(String, String)> {
    [
        ("Host", "example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "keep-alive, Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Protocol", "chat, superchat"),
        (
            "Sec-WebSocket-Extensions",
            "permessage-deflate; client_max_window_bits",
        ),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
}

fn deflate_cfg() -> Config {
    Config::default().deflate(Some(DeflateConfig::default()))
}

/// Two connections built with `Connection::upgraded` exchange messages both ways.
fn exchange(client: Connection, server: Connection) {
    let mut p = Pair::from_connections(client, server);
    p.drive();
    assert!(matches!(p.client_events.first(), Some(Event::Open(_))));
    assert!(matches!(p.server_events.first(), Some(Event::Open(_))));
    for len in [0usize, 5, 40_000, 300_000] {
        let data = vec![b'q'; len];
        p.client.send(MessageKind::Binary, data.clone()).unwrap();
        p.server.send(MessageKind::Binary, data.clone()).unwrap();
        p.drive();
    }
    let got = |events: &[Event]| -> Vec<usize> {
        messages(events).iter().map(|m| m.data.len()).collect()
    };
    assert_eq!(got(&p.server_events), [0, 5, 40_000, 300_000]);
    assert_eq!(got(&p.client_events), [0, 5, 40_000, 300_000]);
    p.client.close(CloseCode::NORMAL, "done").unwrap();
    p.drive();
    assert!(p.client_closed().unwrap().clean);
    assert!(p.server_closed().unwrap().clean);
}

#[test]
fn http1_head_parsed_elsewhere_is_answered_with_the_rfc_accept_key() {
    let up = ServerUpgrade::new("GET", "/chat?room=1", Http::V1, h1_headers()).unwrap();
    let req = up.request();
    assert_eq!(
        (req.path.as_str(), req.query.as_deref()),
        ("/chat", Some("room=1"))
    );
    assert_eq!(req.protocols, ["chat", "superchat"]);
    let (resp, upgraded) = up
        .accept(
            &deflate_cfg(),
            Accept::new().protocol("chat").header("X-Served-By", "test"),
        )
        .unwrap();
    assert_eq!(resp.status, 101);
    let h = |name: &str| {
        resp.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    // RFC 6455 §1.3.
    assert_eq!(
        h("Sec-WebSocket-Accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(h("Upgrade"), Some("websocket"));
    assert_eq!(h("Sec-WebSocket-Protocol"), Some("chat"));
    assert_eq!(h("Sec-WebSocket-Extensions"), Some("permessage-deflate"));
    assert_eq!(h("X-Served-By"), Some("test"));
    assert_eq!(upgraded.side(), Side::Server);
    assert_eq!(upgraded.protocol(), Some("chat"));
    assert_eq!(upgraded.extensions(), Some("permessage-deflate"));
}

#[test]
fn invalid_heads_get_the_status_the_core_would_answer() {
    let without = |name: &str| -> Vec<(String, String)> {
        h1_headers()
            .into_iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
            .collect()
    };
    type Headers = Vec<(String, String)>;
    let cases: Vec<(&str, Http, Headers, u16)> = vec![
        ("POST", Http::V1, h1_headers(), 405),
        ("GET", Http::V1, without("Sec-WebSocket-Key"), 400),
        ("GET", Http::V1, without("Host"), 400),
        ("GET", Http::V1, without("Upgrade"), 426),
        ("GET", Http::V1, without("Sec-WebSocket-Version"), 426),
        ("GET", Http::V2, h1_headers(), 405),
        ("CONNECT", Http::V2, without("Sec-WebSocket-Version"), 426),
    ];
    // A subprotocol offer that is not a token (a NUL, found by the upgrade_heads fuzz target:
    // it would have been echoed into our answer) is refused.
    let mut nul = h1_headers();
    nul.push(("Sec-WebSocket-Protocol".into(), "ch\u{0}at".into()));
    assert_eq!(
        ServerUpgrade::new("GET", "/", Http::V1, nul)
            .unwrap_err()
            .status,
        400
    );
    for (method, version, headers, status) in cases {
        let err = ServerUpgrade::new(method, "/", version, headers).unwrap_err();
        assert_eq!(err.status, status, "{method} {version:?}: {err:?}");
    }
    // A bad subprotocol choice or header in the answer is the caller's error.
    let up = ServerUpgrade::new("GET", "/", Http::V1, h1_headers()).unwrap();
    assert!(up
        .clone()
        .accept(&Config::default(), Accept::new().protocol("nope"))
        .is_err());
    assert!(up
        .clone()
        .accept(&Config::default(), Accept::new().header("X", "a\r\nB: c"))
        .is_err());
    let resp = up
        .reject(403, vec![("X-Why".into(), "origin".into())], b"no".to_vec())
        .unwrap();
    assert_eq!((resp.status, resp.body.as_slice()), (403, &b"no"[..]));
}

#[test]
fn http1_both_halves_outside_the_core_then_upgraded_connections_talk() {
    let cfg = deflate_cfg().rng_seed([7; 32]);
    let req = ClientRequest::new("example.com", "/x").protocol("chat");
    let client = ClientUpgrade::new(&cfg, &req, Http::V1).unwrap();
    // The "other stack" carries the headers to the server side...
    let server = ServerUpgrade::new("GET", "/x", Http::V1, client.headers().to_vec()).unwrap();
    let (resp, server_up) = server.accept(&cfg, Accept::new().protocol("chat")).unwrap();
    // ...and the response back.
    let client_up = client.finish(resp.status, resp.headers).unwrap();
    assert_eq!(client_up.protocol(), Some("chat"));
    assert_eq!(client_up.extensions(), server_up.extensions());
    let now = Instant::now();
    exchange(
        Connection::upgraded(cfg.clone(), client_up, now),
        Connection::upgraded(cfg, server_up, now),
    );
}

#[test]
fn http2_extended_connect_has_no_key_and_answers_200() {
    let cfg = deflate_cfg();
    let req = ClientRequest::new("example.com", "/chat").protocol("chat");
    let client = ClientUpgrade::new(&cfg, &req, Http::V2).unwrap();
    let names: Vec<&str> = client.headers().iter().map(|(n, _)| n.as_str()).collect();
    assert!(!names
        .iter()
        .any(|n| n.eq_ignore_ascii_case("sec-websocket-key")));
    assert!(!names.iter().any(|n| n.eq_ignore_ascii_case("upgrade")));
    // The HTTP/2 layer gives :authority as host.
    let mut headers = vec![("host".to_string(), "example.com".to_string())];
    headers.extend(client.headers().iter().cloned());
    let server = ServerUpgrade::new("CONNECT", "/chat", Http::V2, headers).unwrap();
    let (resp, server_up) = server.accept(&cfg, Accept::new().protocol("chat")).unwrap();
    assert_eq!(resp.status, 200);
    assert!(!resp
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-accept")));
    let client_up = client.finish(200, resp.headers).unwrap();
    assert_eq!(client_up.extensions(), Some("permessage-deflate"));
    let now = Instant::now();
    exchange(
        Connection::upgraded(cfg.clone(), client_up, now),
        Connection::upgraded(cfg, server_up, now),
    );
}

#[test]
fn a_client_response_that_does_not_fit_is_an_error() {
    let cfg = Config::default();
    let req = ClientRequest::new("example.com", "/");
    let fresh = || ClientUpgrade::new(&cfg, &req, Http::V1).unwrap();
    let ok_headers = |c: &ClientUpgrade| {
        let key = &c
            .headers()
            .iter()
            .find(|(n, _)| n == "Sec-WebSocket-Key")
            .unwrap()
            .1;
        vec![
            ("Upgrade".to_string(), "websocket".to_string()),
            ("Connection".into(), "Upgrade".into()),
            (
                "Sec-WebSocket-Accept".into(),
                ws_proto::handshake::accept_key(key.as_bytes()),
            ),
        ]
    };
    let c = fresh();
    let good = ok_headers(&c);
    assert!(c.finish(101, good).is_ok());
    let c = fresh();
    assert!(matches!(
        c.finish(403, vec![]),
        Err(HandshakeError::Status { status: 403, .. })
    ));
    let c = fresh();
    let mut wrong = ok_headers(&c);
    wrong[2].1 = "AAAA".into();
    assert!(matches!(
        c.finish(101, wrong),
        Err(HandshakeError::BadAccept)
    ));
    let c = fresh();
    let mut unoffered = ok_headers(&c);
    unoffered.push((
        "Sec-WebSocket-Extensions".into(),
        "permessage-deflate".into(),
    ));
    assert!(matches!(
        c.finish(101, unoffered),
        Err(HandshakeError::Extension(_))
    ));
    let c = ClientUpgrade::new(&cfg, &req, Http::V2).unwrap();
    assert!(matches!(
        c.finish(101, vec![]),
        Err(HandshakeError::Status { status: 101, .. })
    ));
    // An invalid request never gets that far.
    let bad = ClientRequest::new("example.com", "/a b");
    assert!(ClientUpgrade::new(&cfg, &bad, Http::V2).is_err());
}

#[test]
fn upgraded_without_extensions_for_stacks_that_negotiated_themselves() {
    let now = Instant::now();
    let cfg = Config::default();
    exchange(
        Connection::upgraded(cfg.clone(), Upgraded::new(Side::Client, None), now),
        Connection::upgraded(cfg, Upgraded::new(Side::Server, Some("chat".into())), now),
    );
}
