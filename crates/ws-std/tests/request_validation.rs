//! An invalid upgrade request is refused before any socket is opened, by the
//! blocking `connect` and by the event-style `WebSocketClient`: the error
//! names the field, and a `TcpListener` standing in for the server sees no
//! connection (its non-blocking `accept` says `WouldBlock` once the call has
//! returned; a TCP connect completes in the kernel before `connect`
//! returns, so a connection would already be queued).
//!
//! The control test shows the same listener does see a valid request, and
//! that what arrives is exactly what was asked for.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ws_std::{connect, ClientOptions, Error, WebSocketClient};

/// A listener on a free loopback port that never answers.
fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.set_nonblocking(true).expect("non-blocking");
    let a = l.local_addr().expect("local_addr");
    (l, a)
}

/// Nothing connected to `l`.
fn assert_no_connection(l: &TcpListener, what: &str) {
    match l.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("{what}: a connection from {peer} reached the server"),
        Err(e) => panic!("{what}: accept failed: {e}"),
    }
}

/// Options whose handshake would time out quickly, so a regression (a
/// connection made to the silent listener) fails instead of hanging.
fn base() -> ClientOptions {
    let cfg = ws_proto::Config::default().handshake_timeout(Duration::from_secs(2));
    ClientOptions::default().config(cfg)
}

/// One invalid request: a name, the URL path, the options, and the field the
/// error must name.
struct Case {
    name: &'static str,
    path: &'static str,
    options: ClientOptions,
    field: &'static str,
}

fn cases() -> Vec<Case> {
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
            options: base().header("Sec-WebSocket-Key", "x"),
            field: "Sec-WebSocket-Key",
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

/// The field an error names: the core's `field` for a request, the URL's
/// part for a URL. The message must say it too.
fn named_field(e: &Error) -> String {
    match e {
        Error::InvalidUrl(m) => {
            assert!(m.starts_with("invalid "), "{m}");
            m.strip_prefix("invalid ")
                .and_then(|r| r.split(" in the WebSocket URL").next())
                .unwrap_or_default()
                .to_string()
        }
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
fn blocking_connect_refuses_each_invalid_request_before_connecting() {
    let (l, addr) = listener();
    for c in cases() {
        let url = format!("ws://{addr}{}", c.path);
        let start = Instant::now();
        let e = match connect(&url, &c.options) {
            Ok(_) => panic!("{}: connected", c.name),
            Err(e) => e,
        };
        assert_eq!(named_field(&e), c.field, "{}: {e}", c.name);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{}: took {:?}",
            c.name,
            start.elapsed()
        );
        assert_no_connection(&l, c.name);
    }
}

#[test]
fn blocking_connect_checks_what_the_request_hook_leaves() {
    let (l, addr) = listener();
    let options = base().request_hook(|r| {
        r.headers
            .push(("X-Hooked".to_string(), "a\r\nInjected: yes".to_string()))
    });
    let e = connect(&format!("ws://{addr}/"), &options).err();
    let e = e.expect("the hook's header is refused");
    assert_eq!(e.invalid_request().map(|(f, _)| f), Some("X-Hooked"), "{e}");
    assert!(matches!(e, Error::Command(_)), "{e:?}");
    assert_no_connection(&l, "hook");
}

#[test]
fn event_client_build_refuses_each_invalid_request() {
    let (l, addr) = listener();
    for c in cases() {
        let url = format!("ws://{addr}{}", c.path);
        let e = match WebSocketClient::builder(url).options(c.options).build() {
            Ok(_) => panic!("{}: built", c.name),
            Err(e) => e,
        };
        assert_eq!(named_field(&e), c.field, "{}: {e}", c.name);
        assert_no_connection(&l, c.name);
    }
}

#[test]
fn event_client_reports_a_request_the_hook_broke_without_connecting() {
    let (l, addr) = listener();
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
    assert_no_connection(&l, "event client hook");
}

/// The control: with valid options the same kind of listener does get a
/// connection, carrying the request as asked (path encoded, headers as
/// given), so `assert_no_connection` above would have caught one.
#[test]
fn a_valid_request_reaches_the_listener_intact() {
    let (l, addr) = listener();
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
