//! The zero-copy paths: reading into the lent receive room, vectored
//! transmit of large payloads, and the fragment size per role.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use ws_proto::{
    Bytes, Config, Connection, Event, Message, MessageKind, Transmit, VectoredTransmit,
    CLIENT_FRAGMENT_SIZE, VECTORED_MIN,
};
use ws_testkit::pair::{drain_vectored, open_pair, Drained};

fn config() -> Config {
    Config::default().limits(ws_proto::Limits::default().max_message_size(4 << 20))
}

/// All of `from`'s output as bytes on the wire, through the copying path.
fn wire(from: &mut Connection, now: Instant) -> Vec<u8> {
    let mut buf = vec![0u8; 64 << 10];
    let mut out = Vec::new();
    while let Some(Transmit::Data(n)) = from.poll_transmit(now, &mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn messages(conn: &mut Connection) -> Vec<Message> {
    let mut got = Vec::new();
    while let Some(e) = conn.poll_event() {
        if let Event::Message(m) = e {
            got.push(m);
        }
    }
    got
}

#[test]
fn a_single_frame_message_is_handed_out_as_a_slice_of_the_lent_room() {
    let (mut c, mut s, now) = open_pair(config());
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    c.send_binary(payload.clone()).unwrap();
    let bytes = wire(&mut c, now);
    assert_eq!(c.stats().frames_out, 4, "the client splits at 32,767 bytes");
    // Now one frame: the server reads it into the lent room in 3 reads.
    let mut c = open_pair(config().fragment_size(usize::MAX)).0;
    c.send_binary(payload.clone()).unwrap();
    let bytes_one = wire(&mut c, now);
    assert!(bytes_one.len() < bytes.len());
    let mut addresses = Vec::new();
    let mut pos = 0;
    while pos < bytes_one.len() {
        let room = s.receive_buffer(16 << 10);
        let n = room.len().min(bytes_one.len() - pos);
        addresses.push((room.as_ptr() as usize, room.len()));
        room[..n].copy_from_slice(&bytes_one[pos..pos + n]);
        s.handle_received(now, n);
        pos += n;
    }
    // After the header, the rest of the frame was lent at once.
    assert_eq!(
        addresses.len(),
        2,
        "one read for the header, one for the rest"
    );
    let got = messages(&mut s);
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].data[..], &payload[..]);
    // The message ends where the last read wrote its end: it was not copied.
    let end = got[0].data.as_ptr() as usize + got[0].data.len();
    let (last, len) = addresses[1];
    assert!(
        last < end && end <= last + len,
        "the message was copied out of the receive buffer"
    );
}

#[test]
fn a_commit_takes_at_most_what_was_lent() {
    let (mut c, mut s, now) = open_pair(config());
    c.send_text("hello").unwrap();
    let bytes = wire(&mut c, now);
    let before = s.stats().bytes_in;
    let room = s.receive_buffer(bytes.len());
    assert!(room.len() >= bytes.len(), "at least the hint");
    room[..bytes.len()].copy_from_slice(&bytes);
    s.handle_received(now, bytes.len());
    assert_eq!(s.stats().bytes_in - before, bytes.len() as u64);
    let got = messages(&mut s);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].as_text(), Some("hello"));
    // Nothing lent now: a commit takes nothing.
    s.handle_received(now, 100);
    assert_eq!(s.stats().bytes_in - before, bytes.len() as u64);
    // A claim past the lent room takes only the room (here zeros, which are
    // not a valid frame: the connection fails, as for any garbage).
    let lent = s.receive_buffer(10).len();
    s.handle_received(now, lent + 1_000_000);
    assert_eq!(s.stats().bytes_in - before, (bytes.len() + lent) as u64);
    assert!(!s.is_open());
}

#[test]
fn a_server_hands_large_payloads_out_without_copying_them() {
    let (mut c, mut s, now) = open_pair(config());
    let big = Bytes::from(vec![7u8; 1 << 20]);
    s.send_binary(big.clone()).unwrap();
    for i in 0..50 {
        s.send_text(&format!("small {i}")).unwrap();
    }
    s.send_binary(Bytes::from(vec![9u8; VECTORED_MIN])).unwrap();
    let mut buf = vec![0u8; 16 << 10];
    let Drained {
        wire: out,
        payloads: lent,
        calls,
    } = drain_vectored(&mut s, now, &mut buf);
    assert_eq!(s.buffered_amount(), 0);
    assert_eq!(
        lent.len(),
        2,
        "the 1 MiB and the {VECTORED_MIN}-byte payload"
    );
    assert_eq!(
        lent[0].as_ptr(),
        big.as_ptr(),
        "the queued bytes themselves"
    );
    assert_eq!(lent[0].len(), 1 << 20, "a server sends one frame");
    // 1 MiB (one call), 50 small messages batched in one call with the last
    // header, whose payload follows.
    assert_eq!(calls, 2);
    assert_eq!(s.stats().bytes_out as usize, out.len() + s_handshake_len());
    c.handle_input(now, &out);
    let got = messages(&mut c);
    assert_eq!(got.len(), 52);
    assert_eq!(got[0].data, big);
    assert_eq!(got[1].as_text(), Some("small 0"));
    assert_eq!(got[51].data.len(), VECTORED_MIN);
}

/// Bytes of the server's handshake response in `open_pair` (counted in its
/// `bytes_out`).
fn s_handshake_len() -> usize {
    let (_, s, _) = open_pair(config());
    s.stats().bytes_out as usize
}

#[test]
fn a_client_masks_so_it_always_copies() {
    let (mut c, mut s, now) = open_pair(config());
    c.send(MessageKind::Binary, vec![1u8; 200_000]).unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let mut out = Vec::new();
    while let Some(t) = c.poll_transmit_vectored(now, &mut buf) {
        match t {
            VectoredTransmit::Data(n) => out.extend_from_slice(&buf[..n]),
            other => panic!("a client handed out {other:?}"),
        }
    }
    assert_eq!(
        c.stats().frames_out,
        200_000u64.div_ceil(CLIENT_FRAGMENT_SIZE as u64)
    );
    s.handle_input(now, &out);
    let got = messages(&mut s);
    assert_eq!(got.len(), 1);
    assert!(got[0].data.iter().all(|&b| b == 1));
}

#[test]
fn fragment_size_defaults_per_role_and_can_be_set() {
    let (mut c, mut s, now) = open_pair(config());
    s.send_binary(vec![0u8; 3 << 20]).unwrap();
    let bytes = wire(&mut s, now);
    assert_eq!(s.stats().frames_out, 1, "server: one frame per message");
    c.handle_input(now, &bytes);
    assert_eq!(messages(&mut c)[0].data.len(), 3 << 20);

    let (_, mut s, now) = open_pair(config().fragment_size(1000));
    s.send_binary(vec![0u8; 2500]).unwrap();
    let _ = wire(&mut s, now);
    assert_eq!(s.stats().frames_out, 3, "set: both roles split");
    assert_eq!(config().fragment_size_for(ws_proto::Side::Client), 32_767);
}
