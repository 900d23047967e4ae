//! An invalid upgrade request (the kit's [`BAD_REQUESTS`], shared by every
//! client) is refused by `connect` before any socket is opened: the error
//! names the field, and the kit's [`SilentListener`] standing in for the
//! server sees no connection.
//!
//! A non-blocking connect may still be completing when `connect` returns, so
//! beyond "accept says WouldBlock right after the call", each test ends with
//! a valid connection through the same loop to the same listener and checks
//! that it is the first (and only) one the listener accepts, carrying the
//! valid request: a connection made for an invalid request would have been
//! queued before it.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ws_mio::{ConnId, ConnectOptions, Ctx, EventLoop, Handler, Options};
use ws_proto::Message;
use ws_testkit::bad_request::{SilentListener, BAD_REQUESTS};

/// A handler that does nothing: these connections never open.
struct Quiet;

impl Handler for Quiet {
    fn on_message(&mut self, _: &mut Ctx<'_>, _: ConnId, _: Message) {}
}

fn event_loop() -> EventLoop<Quiet> {
    EventLoop::new(Options::default(), Quiet).expect("event loop")
}

/// Connects validly with a marker header, drives the loop until the listener
/// has accepted a connection and read its request head, and checks that
/// this first connection is the marked one and that no other follows.
fn assert_first_connection_is_the_valid_one(ev: &mut EventLoop<Quiet>, silent: &SilentListener) {
    let url = silent.url("/valid");
    let l = silent.listener();
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
    silent.assert_no_connection("after the valid connection");
}

#[test]
fn connect_refuses_each_invalid_request_before_opening_a_socket() {
    let l = SilentListener::new();
    let mut ev = event_loop();
    for c in BAD_REQUESTS {
        let options = ConnectOptions::new().request(c.request());
        let e = match ev.connect(&l.url(c.path), options) {
            Ok(id) => panic!("{}: accepted as {id:?}", c.name),
            Err(e) => e,
        };
        c.check(e.invalid_request().map(|(f, _)| f), &e.to_string());
        l.assert_no_connection(c.name);
    }
    assert_eq!(ev.stats().connections, 0, "no session was created");
    assert_first_connection_is_the_valid_one(&mut ev, &l);
}

#[test]
fn a_refused_request_leaves_the_loop_able_to_connect() {
    // The same loop, the same listener: one bad header, then a good one.
    let l = SilentListener::new();
    let mut ev = event_loop();
    let bad = ConnectOptions::new().header("X-Test", "a\r\nInjected: yes");
    let e = ev.connect(&l.url("/"), bad).err();
    let e = e.expect("refused");
    assert_eq!(e.invalid_request().map(|(f, _)| f), Some("X-Test"), "{e}");
    assert!(
        e.to_string()
            .starts_with("invalid X-Test in the upgrade request: control bytes"),
        "{e}"
    );
    assert_first_connection_is_the_valid_one(&mut ev, &l);
}
