//! An invalid upgrade request is refused by `connect` before any socket is
//! opened: the error names the field, and a `TcpListener` standing in for
//! the server sees no connection.
//!
//! A non-blocking connect may still be completing when `connect` returns, so
//! beyond "accept says WouldBlock right after the call", each test ends with
//! a valid connection through the same loop to the same listener and checks
//! that it is the first (and only) one the listener accepts, carrying the
//! valid request: a connection made for an invalid request would have been
//! queued before it.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use ws_mio::{ConnId, ConnectOptions, Ctx, Error, EventLoop, Handler, Options};
use ws_proto::Message;

/// A handler that does nothing: these connections never open.
struct Quiet;

impl Handler for Quiet {
    fn on_message(&mut self, _: &mut Ctx<'_>, _: ConnId, _: Message) {}
}

fn event_loop() -> EventLoop<Quiet> {
    EventLoop::new(Options::default(), Quiet).expect("event loop")
}

/// A listener on a free loopback port that never answers.
fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.set_nonblocking(true).expect("non-blocking");
    let a = l.local_addr().expect("local_addr");
    (l, a)
}

fn assert_no_connection(l: &TcpListener, what: &str) {
    match l.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("{what}: a connection from {peer} reached the server"),
        Err(e) => panic!("{what}: accept failed: {e}"),
    }
}

/// Connects validly with a marker header, drives the loop until the listener
/// has accepted a connection and read its request head, and checks that
/// this first connection is the marked one and that no other follows.
fn assert_first_connection_is_the_valid_one(ev: &mut EventLoop<Quiet>, l: &TcpListener) {
    let url = format!("ws://{}/valid", l.local_addr().expect("addr"));
    let opts = ConnectOptions::new().header("X-Marker", "valid");
    ev.connect(&url, opts).expect("a valid request connects");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream: Option<TcpStream> = None;
    let mut head = Vec::new();
    // Each turn waits for the loop's own events (connect completing, the
    // socket writable); the listener and the stream are polled in between.
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(Instant::now() < deadline, "the valid request never arrived");
        ev.turn(Some(Duration::from_millis(10))).expect("turn");
        if stream.is_none() {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(true).expect("non-blocking");
                    stream = Some(s);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => panic!("accept: {e}"),
            }
        }
        if let Some(s) = stream.as_mut() {
            let mut buf = [0u8; 1024];
            match s.read(&mut buf) {
                Ok(0) => panic!("EOF before the end of the request head"),
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }
    let head = String::from_utf8(head).expect("ASCII head");
    assert!(head.starts_with("GET /valid HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nX-Marker: valid\r\n"), "{head}");
    assert_no_connection(l, "after the valid connection");
}

/// One invalid request: its name, the URL path, the options, and the field
/// the error must name.
struct Case {
    name: &'static str,
    path: &'static str,
    options: ConnectOptions,
    field: &'static str,
}

fn cases() -> Vec<Case> {
    let base = ConnectOptions::new;
    vec![
        Case {
            name: "CRLF in a header value",
            path: "/",
            options: base().header("X-Test", "a\r\nInjected: yes"),
            field: "X-Test",
        },
        Case {
            name: "a control byte in a header value",
            path: "/",
            options: base().header("X-Test", "a\x01b"),
            field: "X-Test",
        },
        Case {
            name: "NUL in a header value",
            path: "/",
            options: base().header("X-Test", "a\0b"),
            field: "X-Test",
        },
        Case {
            name: "a header name that is not a token",
            path: "/",
            options: base().header("Bad Name", "x"),
            field: "Bad Name",
        },
        Case {
            name: "a header the handshake writes itself",
            path: "/",
            options: base().header("Connection", "close"),
            field: "Connection",
        },
        Case {
            name: "CRLF in the origin",
            path: "/",
            options: base().origin("http://a\r\nInjected: yes"),
            field: "Origin",
        },
        Case {
            name: "a subprotocol that is not a token",
            path: "/",
            options: base().protocol("chat, evil"),
            field: "Sec-WebSocket-Protocol",
        },
        Case {
            name: "a space in the path",
            path: "/a b",
            options: base(),
            field: "path",
        },
        Case {
            name: "CRLF in the path",
            path: "/a\r\nInjected: yes",
            options: base(),
            field: "path",
        },
    ]
}

/// The field an error names; the message must say it too.
fn named_field(e: &Error) -> String {
    match e {
        Error::InvalidUrl(m) => m
            .strip_prefix("invalid ")
            .and_then(|r| r.split(" in the WebSocket URL").next())
            .unwrap_or_else(|| panic!("unclear URL error: {m}"))
            .to_string(),
        other => match other.invalid_request() {
            Some((field, _)) => {
                let msg = other.to_string();
                assert!(
                    msg.starts_with(&format!("invalid {field} in the upgrade request: ")),
                    "{msg}"
                );
                field.to_string()
            }
            None => panic!("expected an invalid request or URL, got {other:?}"),
        },
    }
}

#[test]
fn connect_refuses_each_invalid_request_before_opening_a_socket() {
    let (l, addr) = listener();
    let mut ev = event_loop();
    for c in cases() {
        let url = format!("ws://{addr}{}", c.path);
        let e = match ev.connect(&url, c.options) {
            Ok(id) => panic!("{}: accepted as {id:?}", c.name),
            Err(e) => e,
        };
        assert_eq!(named_field(&e), c.field, "{}: {e}", c.name);
        assert_no_connection(&l, c.name);
    }
    assert_eq!(ev.stats().connections, 0, "no session was created");
    assert_first_connection_is_the_valid_one(&mut ev, &l);
}

#[test]
fn a_refused_request_leaves_the_loop_able_to_connect() {
    // The same loop, the same listener: one bad header, then a good one.
    let (l, addr) = listener();
    let mut ev = event_loop();
    let bad = ConnectOptions::new().header("X-Test", "a\r\nInjected: yes");
    let e = ev.connect(&format!("ws://{addr}/"), bad).err();
    let e = e.expect("refused");
    assert_eq!(e.invalid_request().map(|(f, _)| f), Some("X-Test"), "{e}");
    assert!(
        e.to_string()
            .starts_with("invalid X-Test in the upgrade request: control bytes"),
        "{e}"
    );
    assert_first_connection_is_the_valid_one(&mut ev, &l);
}
