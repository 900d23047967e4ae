//! A loop at `max_connections` answers a further client at once (HTTP 503
//! with `Retry-After`, or a close when too many answers are under way), and
//! serves again as soon as a slot frees.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use ws_mio::Options;

/// Sends an upgrade request and reads the whole answer (the server closes
/// after it); returns it and how long it took.
fn refused_answer(addr: SocketAddr) -> (String, Duration) {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut answer = Vec::new();
    match s.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("no answer within {WAIT:?}: {e}"),
    }
    (String::from_utf8_lossy(&answer).into_owned(), t0.elapsed())
}

fn echo_ok(s: &mut TcpStream, text: &str) {
    s.write_all(&client_frame(0x1, text.as_bytes(), true))
        .unwrap();
    let (op, payload) = read_frame(s).expect("no echo");
    assert_eq!((op, payload.as_slice()), (0x1, text.as_bytes()));
}

#[test]
fn a_client_over_max_connections_gets_503_at_once_and_is_served_once_a_slot_frees() {
    let (server, srx) = echo_server(1, Options::default().max_connections(2));
    let addr = server.local_addr().unwrap();
    let mut a = raw_client(addr, "/");
    let a_id = wait_any_open(&srx);
    let mut b = raw_client(addr, "/");
    wait_any_open(&srx);

    let (answer, took) = refused_answer(addr);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nretry-after: 1\r\n"),
        "{answer}"
    );
    // Bounded by WAIT above; expected well under it (no timeout involved).
    assert!(took < Duration::from_secs(5), "the refusal took {took:?}");
    // The refusal was never the handler's business, and held no slot.
    let (count, stats) = on_loop(server.handle(), 0, |ctx| {
        (ctx.connection_count(), ctx.loop_stats())
    });
    assert_eq!(count, 2);
    assert_eq!(stats.connections, 2);
    assert!(stats.refused >= 1, "{stats:?}");
    echo_ok(&mut a, "still served");

    // A slot frees: the next client is served.
    drop(a);
    wait_closed(&srx, a_id);
    let mut c = raw_client(addr, "/");
    wait_any_open(&srx);
    echo_ok(&mut c, "served now");
    echo_ok(&mut b, "and b too");
    // Full again: refused again, at once.
    let (answer, _) = refused_answer(addr);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    server.shutdown(Duration::from_secs(1));
    server.join().unwrap();
}

#[test]
fn beyond_max_refusing_a_client_is_closed_at_once() {
    let options = Options::default().max_connections(1).max_refusing(0);
    let (server, srx) = echo_server(1, options);
    let addr = server.local_addr().unwrap();
    let mut a = raw_client(addr, "/");
    wait_any_open(&srx);
    let (answer, took) = refused_answer(addr);
    assert_eq!(answer, "", "closed without an answer");
    assert!(took < Duration::from_secs(5), "the close took {took:?}");
    echo_ok(&mut a, "unaffected");
    let stats = on_loop(server.handle(), 0, |ctx| ctx.loop_stats());
    assert!(stats.refused >= 1, "{stats:?}");
    server.shutdown(Duration::from_secs(1));
    server.join().unwrap();
}
