//! Prepared messages: one payload (and one compressed form, where the
//! negotiated parameters allow) for many connections.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use ws_proto::{
    Bytes, Config, Connection, DeflateConfig, Error, Event, Message, MessageKind, PreparedMessage,
};
use ws_testkit::pair::{drain_vectored, open_pair};

fn deflate(no_context_takeover: bool, window_bits: u8) -> Config {
    let mut d = DeflateConfig::default();
    d.server_no_context_takeover = no_context_takeover;
    d.server_max_window_bits = window_bits;
    Config::default().deflate(Some(d))
}

/// The server's output (frames only: the handshake was pumped by open_pair)
/// and the payloads it handed out whole.
fn server_wire(s: &mut Connection, now: Instant) -> (Vec<u8>, Vec<Bytes>) {
    let d = drain_vectored(s, now, &mut vec![0u8; 64 << 10]);
    (d.wire, d.payloads)
}

fn received(c: &mut Connection, now: Instant, wire: &[u8]) -> Vec<Message> {
    c.handle_input(now, wire);
    let mut got = Vec::new();
    while let Some(e) = c.poll_event() {
        if let Event::Message(m) = e {
            got.push(m);
        }
    }
    got
}

fn text(n: usize) -> String {
    (0..n)
        .map(|i| ["alpha ", "beta ", "gamma "][i % 3])
        .collect()
}

#[test]
fn without_extensions_every_connection_sends_the_same_bytes_uncopied() {
    let msg = PreparedMessage::binary(vec![5u8; 100_000]);
    for _ in 0..3 {
        let (mut c, mut s, now) = open_pair(Config::default());
        s.send_prepared(&msg).unwrap();
        let (wire, lent) = server_wire(&mut s, now);
        assert_eq!(lent.len(), 1);
        assert_eq!(lent[0].as_ptr(), msg.data().as_ptr(), "the payload itself");
        let got = received(&mut c, now, &wire);
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0].data, msg.data());
    }
    assert_eq!(msg.encodings(), 0);
}

#[test]
fn without_context_takeover_the_message_is_compressed_once_for_all() {
    let body = text(20_000);
    let msg = PreparedMessage::text(&body);
    let mut wires = Vec::new();
    for _ in 0..4 {
        let (mut c, mut s, now) = open_pair(deflate(true, 15));
        s.send_prepared(&msg).unwrap();
        let (wire, _) = server_wire(&mut s, now);
        assert!(wire.len() < body.len() / 4, "compressed: {}", wire.len());
        let got = received(&mut c, now, &wire);
        assert_eq!(got[0].as_text(), Some(body.as_str()));
        wires.push(wire);
    }
    assert_eq!(msg.encodings(), 1, "one compression for four connections");
    assert!(wires.windows(2).all(|w| w[0] == w[1]));
    // The same bytes as the connection's own compressor makes.
    let (_, mut s, now) = open_pair(deflate(true, 15));
    s.send_text(&body).unwrap();
    assert_eq!(server_wire(&mut s, now).0, wires[0]);
    // And the shared output did not disturb the connections' own sends.
    let (mut c, mut s, now) = open_pair(deflate(true, 15));
    s.send_prepared(&msg).unwrap();
    s.send_text("after").unwrap();
    s.send_prepared(&msg).unwrap();
    let got = received(&mut c, now, &server_wire(&mut s, now).0);
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].as_text(), Some("after"));
    assert_eq!(got[2].as_text(), Some(body.as_str()));
}

#[test]
fn each_set_of_parameters_gets_its_own_encoding() {
    let msg = PreparedMessage::text(&text(5_000));
    for bits in [15, 10, 15, 10, 9] {
        let (mut c, mut s, now) = open_pair(deflate(true, bits));
        s.send_prepared(&msg).unwrap();
        let got = received(&mut c, now, &server_wire(&mut s, now).0);
        assert_eq!(got[0].data, msg.data());
    }
    assert_eq!(msg.encodings(), 3);
}

#[test]
fn with_context_takeover_each_connection_compresses_for_itself() {
    let body = text(8_000);
    let msg = PreparedMessage::text(&body);
    let (mut c, mut s, now) = open_pair(deflate(false, 15));
    for _ in 0..3 {
        s.send_prepared(&msg).unwrap();
    }
    let (wire, _) = server_wire(&mut s, now);
    let got = received(&mut c, now, &wire);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|m| m.as_text() == Some(body.as_str())));
    assert_eq!(msg.encodings(), 0, "nothing shared");
}

#[test]
fn a_message_under_the_threshold_goes_out_as_it_is() {
    let msg = PreparedMessage::binary(&b"tiny"[..]);
    let (mut c, mut s, now) = open_pair(deflate(true, 15));
    s.send_prepared(&msg).unwrap();
    let (wire, _) = server_wire(&mut s, now);
    assert_eq!(wire[0] & 0x40, 0, "RSV1 clear: not compressed");
    let got = received(&mut c, now, &wire);
    assert_eq!(&got[0].data[..], b"tiny");
    assert_eq!(got[0].kind, MessageKind::Binary);
}

#[test]
fn the_usual_checks_apply() {
    assert!(matches!(
        PreparedMessage::new(MessageKind::Text, vec![0xff, 0xfe]),
        Err(Error::InvalidUtf8)
    ));
    let msg = PreparedMessage::text(&text(1_000));
    let (_, mut s, _) = open_pair(deflate(true, 15));
    s.close(ws_proto::CloseCode::NORMAL, "").unwrap();
    assert!(matches!(
        s.send_prepared(&msg),
        Err(Error::InvalidState { .. })
    ));
    assert_eq!(
        msg.encodings(),
        0,
        "nothing encoded for a closing connection"
    );
    // Backpressure: the queue limit counts the (shared) payload.
    let limits = ws_proto::Limits::default().max_send_queue(10_000);
    let (_, mut s, _) = open_pair(Config::default().limits(limits));
    let big = PreparedMessage::binary(vec![0u8; 8_000]);
    s.send_prepared(&big).unwrap();
    assert!(matches!(
        s.send_prepared(&big),
        Err(Error::Backpressure { .. })
    ));
}
