//! An invalid upgrade request (the kit's [`BAD_REQUESTS`], shared by every
//! client) is refused before any socket is opened, by the blocking `connect`
//! and by the event-style `WebSocketClient`: the error names the field, and
//! the kit's [`SilentListener`] standing in for the server sees no
//! connection.
//!
//! The control test shows the same listener does see a valid request, and
//! that what arrives is exactly what was asked for.

use std::io::{ErrorKind, Read};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ws_std::{connect, ClientOptions, Error, WebSocketClient};
use ws_testkit::bad_request::{BadRequest, SilentListener, BAD_REQUESTS};

/// Options whose handshake would time out quickly, so a regression (a
/// connection made to the silent listener) fails instead of hanging.
fn base() -> ClientOptions {
    let cfg = ws_proto::Config::default().handshake_timeout(Duration::from_secs(2));
    ClientOptions::default().config(cfg)
}

/// Checks `e` against the case: the field named, the message.
fn check(c: &BadRequest, e: &Error) {
    c.check(e.invalid_request().map(|(f, _)| f), &e.to_string());
}

#[test]
fn blocking_connect_refuses_each_invalid_request_before_connecting() {
    let l = SilentListener::new();
    for c in BAD_REQUESTS {
        let start = Instant::now();
        let e = match connect(&l.url(c.path), &base().request(c.request())) {
            Ok(_) => panic!("{}: connected", c.name),
            Err(e) => e,
        };
        check(c, &e);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{}: took {:?}",
            c.name,
            start.elapsed()
        );
        l.assert_no_connection(c.name);
    }
}

#[test]
fn blocking_connect_checks_what_the_request_hook_leaves() {
    let l = SilentListener::new();
    let addr = l.addr();
    let options = base().request_hook(|r| {
        r.headers
            .push(("X-Hooked".to_string(), "a\r\nInjected: yes".to_string()))
    });
    let e = connect(&format!("ws://{addr}/"), &options).err();
    let e = e.expect("the hook's header is refused");
    assert_eq!(e.invalid_request().map(|(f, _)| f), Some("X-Hooked"), "{e}");
    assert!(matches!(e, Error::Command(_)), "{e:?}");
    l.assert_no_connection("hook");
}

#[test]
fn event_client_build_refuses_each_invalid_request() {
    let l = SilentListener::new();
    // What a hook breaks is refused when the client opens (the next test).
    for c in BAD_REQUESTS.iter().filter(|c| c.hook.is_none()) {
        let options = base().request(c.request());
        let e = match WebSocketClient::builder(l.url(c.path))
            .options(options)
            .build()
        {
            Ok(_) => panic!("{}: built", c.name),
            Err(e) => e,
        };
        check(c, &e);
        l.assert_no_connection(c.name);
    }
}

#[test]
fn event_client_reports_a_request_the_hook_broke_without_connecting() {
    let l = SilentListener::new();
    let addr = l.addr();
    let (tx, rx) = mpsc::channel();
    let options = base().request_hook(|r| r.protocols.push("a b".to_string()));
    let client = WebSocketClient::builder(format!("ws://{addr}/"))
        .options(options)
        .on_open(|_, _| panic!("opened"))
        .on_error(move |_, e| {
            let _ = tx.send((
                e.invalid_request().map(|(f, _)| f.to_string()),
                e.to_string(),
            ));
        })
        .build()
        .expect("the options alone are valid");
    client.open().expect("open");
    let (field, msg) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("on_error is called");
    assert_eq!(field.as_deref(), Some("Sec-WebSocket-Protocol"), "{msg}");
    assert!(
        msg.contains("invalid Sec-WebSocket-Protocol in the upgrade request"),
        "{msg}"
    );
    l.assert_no_connection("event client hook");
}

/// The control: with valid options the same kind of listener does get a
/// connection, carrying the request as asked (path encoded, headers as
/// given), so `assert_no_connection` above would have caught one.
#[test]
fn a_valid_request_reaches_the_listener_intact() {
    let l = SilentListener::new();
    let addr = l.addr();
    let l = l.listener();
    let options = base()
        .header("X-Test", "fine\tvalue")
        .origin("http://localhost")
        .protocol("chat");
    let url = format!("ws://{addr}/caf%C3%A9?q=%20");
    let client = thread::spawn(move || connect(&url, &options).err());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stream = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                // Bounded poll for the connection the client is making.
                thread::yield_now();
            }
            Err(e) => panic!("no connection: {e}"),
        }
    };
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).expect("read the request");
        assert!(n > 0, "EOF before the end of the request head");
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8(head).expect("ASCII head");
    assert!(
        head.starts_with("GET /caf%C3%A9?q=%20 HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nX-Test: fine\tvalue\r\n"), "{head}");
    assert!(head.contains("\r\nOrigin: http://localhost\r\n"), "{head}");
    assert!(
        head.contains("\r\nSec-WebSocket-Protocol: chat\r\n"),
        "{head}"
    );
    drop(stream);
    // The client fails (no answer), and is not left hanging.
    assert!(client.join().expect("client thread").is_some());
}
