//! A panic in a `Handler` callback is contained: that connection is closed
//! with 1011 (or answered 500 before it opened) and gets exactly one
//! `on_close`; every other connection of the loop goes on.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpStream;
use std::sync::mpsc::{self, Receiver, Sender};

use common::*;
use ws_mio::{ConnId, Ctx, Decision, Handler, LoopGroup, Options};
use ws_proto::{Closed, Message, OpenInfo, UpgradeRequest};

/// What the panicking server reports.
#[derive(Debug)]
enum Seen {
    Open(ConnId),
    Closed(ConnId, Closed),
}

/// An echo handler that panics on the message "boom", in `on_upgrade` for
/// the path "/panic-upgrade", in `on_open` for "/panic-open", and in
/// `on_close` after a "boom-close" message.
struct Fragile {
    tx: Sender<Seen>,
    paths: std::collections::HashMap<ConnId, String>,
    panic_in_close: std::collections::HashSet<ConnId>,
}

impl Handler for Fragile {
    fn on_upgrade(&mut self, _: &mut Ctx<'_>, id: ConnId, req: &UpgradeRequest) -> Decision {
        assert_ne!(req.path, "/panic-upgrade", "upgrade handler failure");
        self.paths.insert(id, req.path.clone());
        Decision::accept()
    }
    fn on_open(&mut self, _: &mut Ctx<'_>, id: ConnId, _: &OpenInfo) {
        let _ = self.tx.send(Seen::Open(id));
        if self.paths.get(&id).map(String::as_str) == Some("/panic-open") {
            panic!("open handler failure");
        }
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        match m.as_text() {
            Some("boom") => panic!("message handler failure"),
            Some("boom-close") => {
                self.panic_in_close.insert(id);
                ctx.close(id, ws_proto::CloseCode::NORMAL, "").unwrap();
            }
            _ => ctx.send(id, m.kind, m.data).unwrap(),
        }
    }
    fn on_close(&mut self, _: &mut Ctx<'_>, id: ConnId, c: &Closed) {
        let _ = self.tx.send(Seen::Closed(id, c.clone()));
        if self.panic_in_close.contains(&id) {
            panic!("close handler failure");
        }
    }
}

fn fragile_server() -> (LoopGroup, Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    let g = LoopGroup::builder()
        .loops(1)
        .options(Options::default())
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn(move |_| Fragile {
            tx: tx.clone(),
            paths: Default::default(),
            panic_in_close: Default::default(),
        })
        .unwrap();
    (g, rx)
}

fn next_open(rx: &Receiver<Seen>) -> ConnId {
    match rx.recv_timeout(WAIT).expect("timed out waiting for open") {
        Seen::Open(id) => id,
        other => panic!("expected an open, got {other:?}"),
    }
}

/// Sends a text message and checks it comes back.
fn echo_ok(s: &mut TcpStream, text: &str) {
    std::io::Write::write_all(s, &client_frame(0x1, text.as_bytes(), true)).unwrap();
    let (op, payload) = read_frame(s).expect("connection ended instead of echoing");
    assert_eq!((op, payload.as_slice()), (0x1, text.as_bytes()));
}

/// The server's close frame: its code.
fn read_close_code(s: &mut TcpStream) -> u16 {
    let (op, payload) = read_frame(s).expect("connection ended without a close frame");
    assert_eq!(op, 0x8, "expected a close frame");
    u16::from_be_bytes([payload[0], payload[1]])
}

/// Shuts the group down and returns everything it reported, the last
/// callbacks included (nothing can be called after `join`).
fn finish(server: LoopGroup, rx: Receiver<Seen>) -> Vec<Seen> {
    server.shutdown(std::time::Duration::from_secs(1));
    server.join().unwrap();
    rx.try_iter().collect()
}

fn closes_of(seen: &[Seen], id: ConnId) -> usize {
    seen.iter()
        .filter(|s| matches!(s, Seen::Closed(i, _) if *i == id))
        .count()
}

#[test]
fn a_panicking_message_handler_closes_only_its_connection_with_1011() {
    let (server, rx) = fragile_server();
    let addr = server.local_addr().unwrap();
    let mut bystander = raw_client(addr, "/");
    let bystander_id = next_open(&rx);
    let mut victim = raw_client(addr, "/");
    let victim_id = next_open(&rx);
    echo_ok(&mut victim, "before");
    echo_ok(&mut bystander, "before");

    std::io::Write::write_all(&mut victim, &client_frame(0x1, b"boom", true)).unwrap();
    assert_eq!(read_close_code(&mut victim), 1011);
    // Anything the victim sends now is not handed to the handler (it would
    // be echoed otherwise); its close reply completes the handshake.
    std::io::Write::write_all(&mut victim, &client_frame(0x1, b"ignored", true)).unwrap();
    std::io::Write::write_all(
        &mut victim,
        &client_frame(0x8, &1011u16.to_be_bytes(), true),
    )
    .unwrap();
    assert!(
        read_frame(&mut victim).is_none(),
        "the server ends the TCP stream"
    );
    drop(victim);
    // The next thing the handler hears of is the victim's one on_close.
    let closed = match rx
        .recv_timeout(WAIT)
        .expect("timed out waiting for on_close")
    {
        Seen::Closed(id, c) if id == victim_id => c,
        other => panic!("expected the victim's on_close, got {other:?}"),
    };
    assert_eq!(closed.code.as_u16(), 1011, "{closed:?}");

    // The other connection, and a new one, are served as before.
    echo_ok(&mut bystander, "after");
    let mut newcomer = raw_client(addr, "/");
    let newcomer_id = next_open(&rx);
    echo_ok(&mut newcomer, "hello");
    echo_ok(&mut bystander, "still here");

    let seen = finish(server, rx);
    assert_eq!(
        closes_of(&seen, victim_id),
        0,
        "on_close called again: {seen:?}"
    );
    assert_eq!(closes_of(&seen, bystander_id), 1, "{seen:?}");
    assert_eq!(closes_of(&seen, newcomer_id), 1, "{seen:?}");
}

#[test]
fn panics_in_upgrade_open_and_close_handlers_are_contained() {
    let (server, rx) = fragile_server();
    let addr = server.local_addr().unwrap();
    let mut bystander = raw_client(addr, "/");
    let bystander_id = next_open(&rx);

    // on_upgrade panics: the client gets a 500 answer, not silence.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let req = format!(
        "GET /panic-upgrade HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    std::io::Write::write_all(&mut s, req.as_bytes()).unwrap();
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut answer).unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 500"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(s);
    let upgrade_closed = match rx.recv_timeout(WAIT).expect("on_close after on_upgrade") {
        Seen::Closed(id, _) => id,
        other => panic!("expected on_close, got {other:?}"),
    };
    echo_ok(&mut bystander, "after the upgrade panic");

    // on_open panics: closed with 1011.
    let mut opened = raw_client(addr, "/panic-open");
    let opened_id = next_open(&rx);
    assert_eq!(read_close_code(&mut opened), 1011);
    drop(opened);
    match rx.recv_timeout(WAIT).expect("on_close after on_open") {
        Seen::Closed(id, _) => assert_eq!(id, opened_id),
        other => panic!("expected on_close, got {other:?}"),
    }
    echo_ok(&mut bystander, "after the open panic");

    // on_close panics: the connection is dropped, the loop goes on.
    let mut closing = raw_client(addr, "/");
    let closing_id = next_open(&rx);
    std::io::Write::write_all(&mut closing, &client_frame(0x1, b"boom-close", true)).unwrap();
    assert_eq!(read_close_code(&mut closing), 1000);
    std::io::Write::write_all(
        &mut closing,
        &client_frame(0x8, &1000u16.to_be_bytes(), true),
    )
    .unwrap();
    assert!(
        read_frame(&mut closing).is_none(),
        "the server ends the TCP stream"
    );
    drop(closing);
    match rx.recv_timeout(WAIT).expect("on_close") {
        Seen::Closed(id, _) => assert_eq!(id, closing_id),
        other => panic!("expected on_close, got {other:?}"),
    }
    echo_ok(&mut bystander, "after the close panic");
    let mut newcomer = raw_client(addr, "/");
    let newcomer_id = next_open(&rx);
    echo_ok(&mut newcomer, "served");

    let seen = finish(server, rx);
    for id in [upgrade_closed, opened_id, closing_id] {
        assert_eq!(closes_of(&seen, id), 0, "{id}: on_close again: {seen:?}");
    }
    assert_eq!(closes_of(&seen, bystander_id), 1, "{seen:?}");
    assert_eq!(closes_of(&seen, newcomer_id), 1, "{seen:?}");
}
