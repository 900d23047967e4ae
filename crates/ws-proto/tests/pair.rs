//! Scenario tests over the in-memory Pair harness, in both directions and
//! under whole, 1-byte and random chunking.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::*;
use ws_proto::{
    CloseCode, ConnectionError, Error, Event, HandshakeError, Initiator, Limits, MessageKind,
    ProtocolError, State,
};

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn messages_round_trip_every_chunking_both_directions() {
    for chunking in ALL_CHUNKINGS {
        for dir in BOTH_DIRS {
            let mut p = Pair::open(client_cfg(), server_cfg(), chunking);
            let big = payload(100_000);
            p.conn(dir).send_text("héllo wörld").unwrap();
            p.conn(dir).send_binary(big.clone()).unwrap();
            p.conn(dir).send_binary(Vec::new()).unwrap();
            p.conn(dir).send_text("").unwrap();
            p.drive();
            let got = messages(p.events_at(dir));
            assert_eq!(got.len(), 4, "{chunking:?} {dir:?}");
            assert_eq!(got[0].as_text(), Some("héllo wörld"));
            assert_eq!(got[1].kind, MessageKind::Binary);
            assert_eq!(&got[1].data[..], &big[..]);
            assert!(got[2].data.is_empty() && got[2].kind == MessageKind::Binary);
            assert_eq!(got[3].as_text(), Some(""));
        }
    }
}

#[test]
fn rfc6455_5_7_single_frame_and_fragmented_examples() {
    // Masked "Hello" from a client (§5.7).
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    p.inject(
        Dir::ClientToServer,
        &[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ],
    );
    assert_eq!(messages(&p.server_events)[0].as_text(), Some("Hello"));
    // Unmasked fragmented "Hel" + "lo" from a server (§5.7).
    p.inject(Dir::ServerToClient, &[0x01, 0x03, 0x48, 0x65, 0x6c]);
    assert!(messages(&p.client_events).is_empty());
    p.inject(Dir::ServerToClient, &[0x80, 0x02, 0x6c, 0x6f]);
    assert_eq!(messages(&p.client_events)[0].as_text(), Some("Hello"));
    // Unmasked ping "Hello" → pong "Hello" (§5.7).
    p.inject(
        Dir::ServerToClient,
        &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
    );
    assert!(p
        .client_events
        .contains(&Event::Ping(ws_proto::Bytes::from_static(b"Hello"))));
    assert!(p
        .server_events
        .contains(&Event::Pong(ws_proto::Bytes::from_static(b"Hello"))));
}

#[test]
fn default_fragment_size_32767_one_frame_32768_two() {
    for (len, frames) in [(32767usize, 1u64), (32768, 2), (65534, 2), (65535, 3)] {
        let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
        let before = p.client.stats().frames_out;
        p.client.send_binary(payload(len)).unwrap();
        p.drive();
        assert_eq!(p.client.stats().frames_out - before, frames, "len {len}");
        assert_eq!(messages(&p.server_events)[0].data.len(), len);
    }
    let mut p = Pair::open(
        client_cfg().fragment_size(10),
        server_cfg(),
        Chunking::Whole,
    );
    p.client.send_binary(payload(95)).unwrap();
    p.drive();
    assert_eq!(p.server.stats().frames_in, 10);
}

#[test]
fn client_masks_every_frame_with_a_fresh_key() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<u8>::new()));
    let s = seen.clone();
    p.tamper = Some(Box::new(move |d, bytes| {
        if d == Dir::ClientToServer {
            s.borrow_mut().extend_from_slice(bytes);
        }
    }));
    for i in 0..20 {
        p.client.send_text(&format!("message {i}")).unwrap();
    }
    p.drive();
    let wire = seen.borrow().clone();
    let mut keys = std::collections::HashSet::new();
    let mut pos = 0;
    while pos < wire.len() {
        let (h, n) = ws_proto::frame::FrameHeader::parse(&wire[pos..])
            .unwrap()
            .unwrap();
        let key = h.mask.expect("client frame without mask");
        keys.insert(key);
        pos += n + h.payload_len as usize;
    }
    assert_eq!(keys.len(), 20, "mask keys must differ per frame");
    // The payload is not sent in clear.
    assert!(!wire.windows(9).any(|w| w == b"message 1"));
}

#[test]
fn same_seed_same_bytes() {
    let run = || {
        let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<u8>::new()));
        let s = seen.clone();
        p.tamper = Some(Box::new(move |d, b| {
            if d == Dir::ClientToServer {
                s.borrow_mut().extend_from_slice(b)
            }
        }));
        p.client.send_text("deterministic").unwrap();
        p.drive();
        let v = seen.borrow().clone();
        v
    };
    assert_eq!(run(), run());
}

fn expect_failure(p: &Pair, at: Dir, code: CloseCode) -> ProtocolError {
    let closed = match at {
        Dir::ClientToServer => p.server_closed(),
        Dir::ServerToClient => p.client_closed(),
    }
    .unwrap_or_else(|| panic!("no Closed at {at:?}"))
    .clone();
    assert_eq!(closed.code, code, "{closed:?}");
    assert_eq!(closed.initiator, Initiator::Local);
    match closed.error {
        Some(ConnectionError::Protocol(e)) => e,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// The peer at the far end of `d` must have received a close frame with
/// `code` (the failing side told it why).
fn peer_saw_close(p: &Pair, d: Dir, code: CloseCode) {
    let far = match d {
        Dir::ClientToServer => p.client_closed(),
        Dir::ServerToClient => p.server_closed(),
    };
    let far = far.unwrap_or_else(|| panic!("peer not closed"));
    assert_eq!(far.code, code, "{far:?}");
}

#[test]
fn server_rejects_unmasked_and_client_rejects_masked() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    p.inject(Dir::ClientToServer, &frame(true, 1, None, b"hi"));
    assert_eq!(
        expect_failure(&p, Dir::ClientToServer, CloseCode::PROTOCOL_ERROR),
        ProtocolError::UnmaskedFrame
    );
    peer_saw_close(&p, Dir::ClientToServer, CloseCode::PROTOCOL_ERROR);

    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    p.inject(
        Dir::ServerToClient,
        &frame(true, 1, Some([1, 2, 3, 4]), b"hi"),
    );
    assert_eq!(
        expect_failure(&p, Dir::ServerToClient, CloseCode::PROTOCOL_ERROR),
        ProtocolError::MaskedFrame
    );
}

/// Wire bytes as the peer at the start of `d` would send them.
fn peer_frame(d: Dir, fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    match d {
        Dir::ClientToServer => frame_rsv(fin, rsv, opcode, Some([9, 8, 7, 6]), payload),
        Dir::ServerToClient => frame_rsv(fin, rsv, opcode, None, payload),
    }
}

#[test]
fn protocol_violations_get_1002_in_both_directions() {
    type Frames = Vec<Vec<(bool, u8, u8, Vec<u8>)>>;
    let cases: Vec<(&str, Frames, ProtocolError)> = vec![
        (
            "rsv1 without extension",
            vec![vec![(true, 4, 1, b"x".to_vec())]],
            ProtocolError::ReservedBits,
        ),
        (
            "rsv2",
            vec![vec![(true, 2, 2, b"x".to_vec())]],
            ProtocolError::ReservedBits,
        ),
        (
            "rsv3",
            vec![vec![(true, 1, 1, b"x".to_vec())]],
            ProtocolError::ReservedBits,
        ),
        (
            "reserved opcode 3",
            vec![vec![(true, 0, 3, vec![])]],
            ProtocolError::ReservedOpcode(3),
        ),
        (
            "reserved opcode 0xB",
            vec![vec![(true, 0, 0xB, vec![])]],
            ProtocolError::ReservedOpcode(0xB),
        ),
        (
            "ping over 125",
            vec![vec![(true, 0, 9, vec![0; 126])]],
            ProtocolError::ControlTooLong(126),
        ),
        (
            "fragmented ping",
            vec![vec![(false, 0, 9, b"a".to_vec())]],
            ProtocolError::FragmentedControl,
        ),
        (
            "continuation first",
            vec![vec![(true, 0, 0, b"a".to_vec())]],
            ProtocolError::UnexpectedContinuation,
        ),
        (
            "data inside fragmented",
            vec![vec![
                (false, 0, 1, b"a".to_vec()),
                (true, 0, 1, b"b".to_vec()),
            ]],
            ProtocolError::ExpectedContinuation,
        ),
        (
            "one-byte close",
            vec![vec![(true, 0, 8, vec![3])]],
            ProtocolError::CloseTooShort,
        ),
        (
            "close code 1005",
            vec![vec![(true, 0, 8, vec![0x03, 0xED])]],
            ProtocolError::InvalidCloseCode(1005),
        ),
        (
            "close code 999",
            vec![vec![(true, 0, 8, vec![0x03, 0xE7])]],
            ProtocolError::InvalidCloseCode(999),
        ),
        (
            "close code 5000",
            vec![vec![(true, 0, 8, vec![0x13, 0x88])]],
            ProtocolError::InvalidCloseCode(5000),
        ),
    ];
    for (name, frames, want) in cases {
        for dir in BOTH_DIRS {
            let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
            for group in &frames {
                for (fin, rsv, op, pl) in group {
                    p.inject(dir, &peer_frame(dir, *fin, *rsv, *op, pl));
                }
            }
            let got = expect_failure(&p, dir, CloseCode::PROTOCOL_ERROR);
            assert_eq!(got, want, "{name} {dir:?}");
            peer_saw_close(&p, dir, CloseCode::PROTOCOL_ERROR);
        }
    }
}

#[test]
fn length_with_top_bit_is_rejected() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    p.inject(
        Dir::ServerToClient,
        &[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1],
    );
    assert_eq!(
        expect_failure(&p, Dir::ServerToClient, CloseCode::PROTOCOL_ERROR),
        ProtocolError::LengthTopBit
    );
}

#[test]
fn control_frames_between_fragments_are_fine() {
    for dir in BOTH_DIRS {
        let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
        p.inject(dir, &peer_frame(dir, false, 0, 1, b"Hel"));
        p.inject(dir, &peer_frame(dir, true, 0, 9, b"ping"));
        p.inject(dir, &peer_frame(dir, false, 0, 0, b"l"));
        p.inject(dir, &peer_frame(dir, true, 0, 10, b"pong"));
        p.inject(dir, &peer_frame(dir, true, 0, 0, b"o"));
        let ev = p.events_at(dir).clone();
        assert_eq!(messages(&ev)[0].as_text(), Some("Hello"));
        assert!(ev
            .iter()
            .any(|e| matches!(e, Event::Ping(b) if &b[..] == b"ping")));
        assert!(ev
            .iter()
            .any(|e| matches!(e, Event::Pong(b) if &b[..] == b"pong")));
    }
}

#[test]
fn invalid_utf8_fails_fast_mid_frame() {
    for dir in BOTH_DIRS {
        let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
        // A 100-byte text frame whose 6th byte is invalid; deliver only the
        // header and the first 8 payload bytes.
        let mut text = b"hello\xffworld".to_vec();
        text.resize(100, b'a');
        let wire = peer_frame(dir, true, 0, 1, &text);
        let head = if dir == Dir::ClientToServer { 6 } else { 2 };
        p.inject(dir, &wire[..head + 8]);
        let e = expect_failure(&p, dir, CloseCode::INVALID_PAYLOAD);
        assert_eq!(e, ProtocolError::InvalidUtf8);
    }
}

#[test]
fn invalid_utf8_across_fragments_and_in_close_reason() {
    for dir in BOTH_DIRS {
        let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
        p.inject(dir, &peer_frame(dir, false, 0, 1, b"ok \xf4"));
        assert!(p.conn(dir).state() == State::Open);
        p.inject(dir, &peer_frame(dir, true, 0, 0, b"\x90\x80\x80"));
        expect_failure(&p, dir, CloseCode::INVALID_PAYLOAD);

        let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
        p.inject(
            dir,
            &peer_frame(dir, true, 0, 8, b"\x03\xe8bad \xff reason"),
        );
        expect_failure(&p, dir, CloseCode::INVALID_PAYLOAD);
    }
}

#[test]
fn text_ending_mid_code_point_is_invalid() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    p.inject(
        Dir::ServerToClient,
        &peer_frame(Dir::ServerToClient, true, 0, 1, b"ab\xe2\x82"),
    );
    expect_failure(&p, Dir::ServerToClient, CloseCode::INVALID_PAYLOAD);
}

#[test]
fn clean_close_from_either_side() {
    for chunking in ALL_CHUNKINGS {
        for dir in BOTH_DIRS {
            let mut p = Pair::open(client_cfg(), server_cfg(), chunking);
            p.conn(dir).send_text("last words").unwrap();
            p.conn(dir)
                .close(CloseCode::new(4001).unwrap(), "done here")
                .unwrap();
            assert_eq!(p.conn(dir).state(), State::Closing);
            assert!(p.conn(dir).send_text("too late").is_err());
            p.drive();
            assert_eq!(messages(p.events_at(dir))[0].as_text(), Some("last words"));
            let (c, s) = (
                p.client_closed().unwrap().clone(),
                p.server_closed().unwrap().clone(),
            );
            for (closed, local) in [
                (&c, dir == Dir::ClientToServer),
                (&s, dir == Dir::ServerToClient),
            ] {
                assert!(closed.clean, "{closed:?}");
                assert_eq!(closed.error, None);
                assert_eq!(
                    closed.initiator,
                    if local {
                        Initiator::Local
                    } else {
                        Initiator::Remote
                    }
                );
            }
            // The initiator reports the peer's echo; the peer reports ours.
            assert_eq!(s.code.as_u16(), 4001);
            assert_eq!(c.code.as_u16(), 4001);
            assert_eq!(p.client.state(), State::Closed);
            assert_eq!(p.server.state(), State::Closed);
        }
    }
}

#[test]
fn peer_close_reason_is_reported_and_echoed() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    p.server.close(CloseCode::GOING_AWAY, "restarting").unwrap();
    p.drive();
    let c = p.client_closed().unwrap();
    assert_eq!(
        (c.code, c.reason.as_str()),
        (CloseCode::GOING_AWAY, "restarting")
    );
}

#[test]
fn close_reason_is_echoed_with_the_code_in_both_directions() {
    // The side answering a close echoes code and reason, so the initiator's
    // terminal event carries the reason it sent (what browsers show as
    // CloseEvent.reason).
    for dir in BOTH_DIRS {
        let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
        p.conn(dir)
            .close(CloseCode::new(4001).unwrap(), "bye now")
            .unwrap();
        p.drive();
        let (initiator, answerer) = match dir {
            Dir::ClientToServer => (p.client_closed(), p.server_closed()),
            Dir::ServerToClient => (p.server_closed(), p.client_closed()),
        };
        let (initiator, answerer) = (initiator.unwrap(), answerer.unwrap());
        assert_eq!(
            (answerer.code.as_u16(), answerer.reason.as_str()),
            (4001, "bye now"),
            "{dir:?}"
        );
        assert_eq!(
            (initiator.code.as_u16(), initiator.reason.as_str()),
            (4001, "bye now"),
            "{dir:?}"
        );
        assert!(initiator.clean && answerer.clean, "{dir:?}");
    }
}

#[test]
fn empty_close_is_reported_as_1005() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    p.inject(Dir::ServerToClient, &frame(true, 8, None, b""));
    p.drive();
    let c = p.client_closed().unwrap();
    assert_eq!(c.code, CloseCode::NO_STATUS);
    assert!(c.clean);
}

#[test]
fn server_closes_tcp_first() {
    for dir in BOTH_DIRS {
        let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
        p.conn(dir).close(CloseCode::NORMAL, "").unwrap();
        // Run until the server has shut down; the client must not have yet.
        let mut buf = [0u8; 1024];
        let mut server_shutdown_first = None;
        for _ in 0..20 {
            let mut c_sd = false;
            let mut s_sd = false;
            while let Some(t) = p.client.poll_transmit(p.now, &mut buf) {
                match t {
                    ws_proto::Transmit::Data(n) => p.server.handle_input(p.now, &buf[..n]),
                    ws_proto::Transmit::Shutdown => c_sd = true,
                }
            }
            while let Some(t) = p.server.poll_transmit(p.now, &mut buf) {
                match t {
                    ws_proto::Transmit::Data(n) => p.client.handle_input(p.now, &buf[..n]),
                    ws_proto::Transmit::Shutdown => s_sd = true,
                }
            }
            if c_sd || s_sd {
                server_shutdown_first = Some(s_sd && !c_sd);
                break;
            }
        }
        assert_eq!(server_shutdown_first, Some(true), "{dir:?}");
    }
}

#[test]
fn close_command_validates_code_and_reason() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    assert_eq!(
        CloseCode::new(1005).unwrap_err(),
        Error::InvalidCloseCode(1005)
    );
    assert_eq!(
        p.client.close(CloseCode::NO_STATUS, ""),
        Err(Error::InvalidCloseCode(1005))
    );
    assert_eq!(
        p.client.close(CloseCode::NORMAL, &"x".repeat(124)),
        Err(Error::CloseReasonTooLong(124))
    );
    assert!(p.client.close(CloseCode::NORMAL, &"é".repeat(61)).is_ok()); // 122 bytes
    assert_eq!(
        p.client.close(CloseCode::NORMAL, ""),
        Err(Error::InvalidState {
            op: "close",
            state: State::Closing
        })
    );
}

#[test]
fn close_timeout_when_peer_never_answers() {
    let mut p = Pair::open(
        client_cfg().close_timeout(Duration::from_millis(500)),
        server_cfg(),
        Chunking::Whole,
    );
    p.cut = true;
    p.client.close(CloseCode::NORMAL, "").unwrap();
    p.drive();
    assert!(p.client_closed().is_none());
    p.advance(Duration::from_millis(499));
    assert!(p.client_closed().is_none());
    p.advance(Duration::from_millis(2));
    let c = p.client_closed().unwrap();
    assert_eq!(c.error, Some(ConnectionError::CloseTimeout));
    assert_eq!(c.code, CloseCode::ABNORMAL);
    assert!(!c.clean);
}

#[test]
fn eof_without_close_is_abnormal() {
    for dir in BOTH_DIRS {
        let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
        // Half a frame, then the transport ends.
        let wire = peer_frame(dir, true, 0, 2, &payload(50));
        let now = p.now;
        match dir {
            Dir::ClientToServer => {
                p.server.handle_input(now, &wire[..20]);
                p.server.handle_eof(now);
            }
            Dir::ServerToClient => {
                p.client.handle_input(now, &wire[..20]);
                p.client.handle_eof(now);
            }
        }
        p.drive();
        let c = match dir {
            Dir::ClientToServer => p.server_closed(),
            Dir::ServerToClient => p.client_closed(),
        }
        .unwrap();
        assert_eq!(c.code, CloseCode::ABNORMAL);
        assert_eq!(c.error, Some(ConnectionError::ConnectionLost));
        assert!(!c.clean);
    }
}

#[test]
fn transport_error_closes_once() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    p.client.handle_transport_error(p.now, "reset by peer");
    p.client.handle_transport_error(p.now, "again");
    p.client.handle_eof(p.now);
    p.drive();
    let c = p.client_closed().unwrap();
    assert_eq!(c.error, Some(ConnectionError::Io("reset by peer".into())));
    // An io::Error keeps its kind.
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    p.client.handle_transport_error(p.now, &reset);
    p.drive();
    let Some(ConnectionError::Io(e)) = &p.client_closed().unwrap().error else {
        panic!("{:?}", p.client_closed())
    };
    assert_eq!(e.kind, std::io::ErrorKind::ConnectionReset);
}

#[test]
fn auto_pong_answers_every_ping() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::OneByte);
    for i in 0..10u8 {
        p.server.ping(vec![b'p', b'0' + i]).unwrap();
    }
    p.drive();
    let pongs: Vec<_> = p
        .server_events
        .iter()
        .filter_map(|e| match e {
            Event::Pong(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    let want: Vec<_> = (0..10u8)
        .map(|i| ws_proto::Bytes::from(vec![b'p', b'0' + i]))
        .collect();
    assert_eq!(pongs, want);
}

#[test]
fn a_ping_flood_keeps_only_the_latest_pending_pongs() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    let now = p.now;
    let mut flood = Vec::new();
    for i in 0..1000u16 {
        flood.extend_from_slice(&frame(true, 9, None, &i.to_be_bytes()));
    }
    p.client.handle_input(now, &flood);
    p.drive();
    let pongs: Vec<u16> = p
        .server_events
        .iter()
        .filter_map(|e| match e {
            Event::Pong(b) => Some(u16::from_be_bytes([b[0], b[1]])),
            _ => None,
        })
        .collect();
    assert_eq!(
        pongs,
        (984..1000).collect::<Vec<_>>(),
        "the 16 latest, in order"
    );
    let pings = p
        .client_events
        .iter()
        .filter(|e| matches!(e, Event::Ping(_)))
        .count();
    assert_eq!(pings, 1000, "every ping is visible to the application");
}

#[test]
fn auto_pong_can_be_turned_off() {
    let mut p = Pair::open(client_cfg().auto_pong(false), server_cfg(), Chunking::Whole);
    p.server.ping(&b"x"[..]).unwrap();
    p.drive();
    assert!(p.client_events.iter().any(|e| matches!(e, Event::Ping(_))));
    assert!(!p.server_events.iter().any(|e| matches!(e, Event::Pong(_))));
}

#[test]
fn latency_is_measured_from_ping_to_matching_pong() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    p.client.ping(&b"rtt-1"[..]).unwrap();
    p.server_paused = true;
    p.drive();
    p.advance(Duration::from_millis(30));
    p.server_paused = false;
    p.drive();
    assert_eq!(p.client.latency(), Some(Duration::from_millis(30)));
    // An unsolicited pong with another payload does not change it.
    p.server.pong(&b"other"[..]).unwrap();
    p.advance(Duration::from_millis(10));
    assert_eq!(p.client.latency(), Some(Duration::from_millis(30)));
    assert!(p.client.ping(vec![0u8; 126]).is_err());
}

#[test]
fn keepalive_pings_every_interval() {
    let mut p = Pair::open(
        client_cfg().ping_interval(Some(Duration::from_secs(1))),
        server_cfg(),
        Chunking::Whole,
    );
    p.advance(Duration::from_millis(3500));
    let pings = p
        .server_events
        .iter()
        .filter(|e| matches!(e, Event::Ping(_)))
        .count();
    assert_eq!(pings, 3);
    assert!(p.client.latency().is_some());
    assert_eq!(p.client.state(), State::Open);
}

#[test]
fn idle_timeout_ends_a_silent_connection_with_an_error() {
    let cfg = client_cfg().idle_timeout(Some(Duration::from_secs(2)));
    let mut p = Pair::open(cfg, server_cfg(), Chunking::Whole);
    let start = p.now;
    p.advance(Duration::from_millis(1500));
    p.server.send_text("still here").unwrap();
    p.drive();
    assert_eq!(
        p.client.last_message_received(),
        Some(start + Duration::from_millis(1500))
    );
    p.advance(Duration::from_millis(1900));
    assert!(p.client_closed().is_none());
    p.advance(Duration::from_millis(200));
    let c = p.client_closed().unwrap();
    assert_eq!(c.error, Some(ConnectionError::IdleTimeout));
    assert!(!c.clean);
}

/// The idle timeout counts from the last bytes received, not the last whole
/// frame: a large frame arriving slowly keeps the connection alive, and
/// `last_message_received` still names the last complete frame.
#[test]
fn a_frame_still_arriving_is_not_silence() {
    let cfg = client_cfg().idle_timeout(Some(Duration::from_secs(2)));
    let mut p = Pair::open(cfg, server_cfg(), Chunking::Whole);
    let opened = p.client.last_message_received();
    let payload = vec![7u8; 10_000];
    let wire = frame(true, 2, None, &payload);
    // One piece every 1.5 s: 15 s in all, far past the idle timeout.
    for piece in wire.chunks(1000) {
        p.advance(Duration::from_millis(1500));
        assert!(p.client_closed().is_none(), "closed mid-frame");
        p.inject(Dir::ServerToClient, piece);
    }
    assert_eq!(messages(&p.client_events).len(), 1);
    assert!(p.client.last_message_received() > opened);
    // Then silence: the timeout applies as before.
    p.advance(Duration::from_millis(2100));
    let c = p.client_closed().unwrap();
    assert_eq!(c.error, Some(ConnectionError::IdleTimeout));
}

#[test]
fn keepalive_pongs_keep_an_idle_connection_alive() {
    let cfg = client_cfg()
        .idle_timeout(Some(Duration::from_secs(2)))
        .ping_interval(Some(Duration::from_secs(1)));
    let mut p = Pair::open(cfg, server_cfg(), Chunking::Whole);
    p.advance(Duration::from_secs(10));
    assert_eq!(p.client.state(), State::Open);
    p.cut = true;
    p.advance(Duration::from_secs(3));
    assert_eq!(
        p.client_closed().unwrap().error,
        Some(ConnectionError::IdleTimeout)
    );
}

#[test]
fn handshake_timeout_when_the_application_never_answers() {
    let mut p = Pair::new(
        client_cfg(),
        server_cfg().handshake_timeout(Duration::from_secs(3)),
        Chunking::Whole,
    );
    p.drive();
    assert!(matches!(p.server_events[0], Event::UpgradeRequest(_)));
    p.advance(Duration::from_secs(3));
    assert_eq!(
        p.server_closed().unwrap().error,
        Some(ConnectionError::HandshakeTimeout)
    );
}

#[test]
fn client_handshake_timeout_when_server_is_silent() {
    let mut p = Pair::new(
        client_cfg().handshake_timeout(Duration::from_secs(1)),
        server_cfg(),
        Chunking::Whole,
    );
    p.server_paused = true;
    p.advance(Duration::from_secs(1));
    assert_eq!(
        p.client_closed().unwrap().error,
        Some(ConnectionError::HandshakeTimeout)
    );
    assert_eq!(p.client.state(), State::Closed);
}

#[test]
fn buffered_amount_is_exact() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    assert_eq!(p.client.buffered_amount(), 0);
    p.client.send_binary(payload(1000)).unwrap();
    p.client.send_text("abc").unwrap();
    assert_eq!(p.client.buffered_amount(), 1003);
    let mut buf = [0u8; 100];
    // First chunk: 2-byte header... client adds 4 mask bytes: header is 8 bytes for 1000.
    let now = p.now;
    let Some(ws_proto::Transmit::Data(n)) = p.client.poll_transmit(now, &mut buf) else {
        panic!()
    };
    assert_eq!(n, 100);
    assert_eq!(p.client.buffered_amount(), 1003 - (100 - 8));
    let mut total = 0;
    while let Some(ws_proto::Transmit::Data(n)) = p.client.poll_transmit(now, &mut buf) {
        total += n;
    }
    assert_eq!(total, 1000 - 92 + 6 + 3);
    assert_eq!(p.client.buffered_amount(), 0);
}

#[test]
fn send_queue_limit_gives_backpressure_with_the_buffered_amount() {
    let mut p = Pair::open(
        client_cfg().limits(Limits::default().max_send_queue(10_000)),
        server_cfg(),
        Chunking::Whole,
    );
    p.client.send_binary(payload(6000)).unwrap();
    let err = p.client.send_binary(payload(6000)).unwrap_err();
    assert_eq!(
        err,
        Error::Backpressure {
            buffered_amount: 6000,
            limit: 10_000
        }
    );
    p.drive();
    assert_eq!(p.client.buffered_amount(), 0);
    p.client.send_binary(payload(6000)).unwrap();
}

#[test]
fn stats_count_messages_frames_and_bytes() {
    let mut p = Pair::open(
        client_cfg().fragment_size(100),
        server_cfg(),
        Chunking::Whole,
    );
    let base_c = p.client.stats();
    p.client.send_binary(payload(250)).unwrap();
    p.client.send_text("x").unwrap();
    p.drive();
    let c = p.client.stats();
    let s = p.server.stats();
    assert_eq!(c.messages_out - base_c.messages_out, 2);
    assert_eq!(c.frames_out - base_c.frames_out, 4);
    assert_eq!(s.messages_in, 2);
    assert_eq!(s.frames_in, 4);
    assert_eq!(c.bytes_out, s.bytes_in);
    assert_eq!(s.bytes_out, c.bytes_in);
}

#[test]
fn streaming_mode_delivers_fragments_as_they_arrive() {
    for dir in BOTH_DIRS {
        let mut p = Pair::open(
            client_cfg().streaming(true),
            server_cfg().streaming(true),
            Chunking::Whole,
        );
        p.inject(dir, &peer_frame(dir, false, 0, 1, "héllo ".as_bytes()));
        let frags: Vec<_> = p
            .events_at(dir)
            .iter()
            .filter(|e| matches!(e, Event::Fragment(_)))
            .cloned()
            .collect();
        assert_eq!(
            frags.len(),
            1,
            "first fragment delivered before the message ends"
        );
        p.inject(dir, &peer_frame(dir, false, 0, 0, b"wor"));
        p.inject(dir, &peer_frame(dir, true, 0, 0, b"ld"));
        let frags: Vec<ws_proto::Fragment> = p
            .events_at(dir)
            .iter()
            .filter_map(|e| match e {
                Event::Fragment(f) => Some(f.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(frags.len(), 3);
        assert!(frags[0].first && !frags[0].fin && frags[0].kind == MessageKind::Text);
        assert!(!frags[1].first && !frags[1].fin);
        assert!(frags[2].fin);
        let all: Vec<u8> = frags.iter().flat_map(|f| f.data.to_vec()).collect();
        assert_eq!(all, "héllo world".as_bytes());
        assert!(messages(p.events_at(dir)).is_empty());
    }
}

#[test]
fn send_fragment_builds_one_message() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    p.client
        .send_fragment(MessageKind::Text, &b"abc"[..], false)
        .unwrap();
    assert_eq!(p.client.send_text("x"), Err(Error::FragmentSequence));
    p.client
        .send_fragment(MessageKind::Text, &b"def"[..], false)
        .unwrap();
    p.client
        .send_fragment(MessageKind::Text, &b"g"[..], true)
        .unwrap();
    p.client.send_text("next").unwrap();
    p.drive();
    let m = messages(&p.server_events);
    assert_eq!(m[0].as_text(), Some("abcdefg"));
    assert_eq!(m[1].as_text(), Some("next"));
}

#[test]
fn every_split_point_gives_identical_events() {
    // Record the byte stream a client sends: handshake + several frames.
    let mut p = Pair::new(client_cfg().fragment_size(7), server_cfg(), Chunking::Whole);
    let wire = std::rc::Rc::new(std::cell::RefCell::new(Vec::<u8>::new()));
    let w = wire.clone();
    p.tamper = Some(Box::new(move |d, b| {
        if d == Dir::ClientToServer {
            w.borrow_mut().extend_from_slice(b)
        }
    }));
    p.handshake();
    p.client.send_text("first message, fragmented").unwrap();
    p.client.ping(&b"pp"[..]).unwrap();
    p.client.send_binary(payload(300)).unwrap();
    p.client.close(CloseCode::NORMAL, "bye").unwrap();
    p.drive();
    let wire = wire.borrow().clone();

    let run = |cuts: &[usize]| {
        let now = std::time::Instant::now();
        let mut s = ws_proto::Connection::server(server_cfg(), now);
        let mut events = Vec::new();
        let mut last = 0;
        let mut accepted = false;
        for &cut in cuts.iter().chain(std::iter::once(&wire.len())) {
            s.handle_input(now, &wire[last..cut]);
            last = cut;
            while let Some(e) = s.poll_event() {
                if matches!(e, Event::UpgradeRequest(_)) && !accepted {
                    accepted = true;
                    s.accept(ws_proto::Accept::new()).unwrap();
                }
                events.push(e);
            }
        }
        while let Some(e) = s.poll_event() {
            events.push(e);
        }
        events
    };
    let reference = run(&[]);
    assert!(messages(&reference).len() == 2, "{reference:?}");
    for i in 1..wire.len() {
        assert_eq!(run(&[i]), reference, "split at {i}");
    }
}

#[test]
fn bytes_after_the_request_in_the_same_read_are_kept() {
    let now = std::time::Instant::now();
    let mut s = ws_proto::Connection::server(server_cfg(), now);
    let mut input = b"GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec();
    input.extend_from_slice(&cframe(true, 1, b"early"));
    s.handle_input(now, &input);
    assert!(matches!(s.poll_event(), Some(Event::UpgradeRequest(_))));
    assert!(s.poll_event().is_none(), "no message before accept");
    s.accept(ws_proto::Accept::new()).unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Open(_))));
    match s.poll_event() {
        Some(Event::Message(m)) => assert_eq!(m.as_text(), Some("early")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn upgrade_request_event_carries_path_query_origin_protocols() {
    let req = ws_proto::ClientRequest::new("example.com:8080", "/chat?room=7")
        .origin("https://example.com")
        .protocol("v2.chat")
        .protocol("v1.chat")
        .header("Authorization", "Bearer t0k3n");
    let mut p = Pair::with_request(client_cfg(), server_cfg(), Chunking::Whole, req);
    p.drive();
    let Event::UpgradeRequest(r) = &p.server_events[0] else {
        panic!()
    };
    assert_eq!(r.path, "/chat");
    assert_eq!(r.query.as_deref(), Some("room=7"));
    assert_eq!(r.host, "example.com:8080");
    assert_eq!(r.origin.as_deref(), Some("https://example.com"));
    assert_eq!(r.protocols, vec!["v2.chat", "v1.chat"]);
    assert_eq!(r.header("authorization"), Some("Bearer t0k3n"));
    p.server
        .accept(
            ws_proto::Accept::new()
                .protocol("v1.chat")
                .header("X-Server", "ours"),
        )
        .unwrap();
    p.drive();
    assert_eq!(p.client.subprotocol(), Some("v1.chat"));
    assert_eq!(p.server.subprotocol(), Some("v1.chat"));
    let Some(Event::Open(info)) = p.client_events.first() else {
        panic!()
    };
    assert!(info
        .headers
        .iter()
        .any(|(n, v)| n == "X-Server" && v == "ours"));
    // A subprotocol the client did not offer cannot be picked.
    let mut p = Pair::new(client_cfg(), server_cfg(), Chunking::Whole);
    p.drive();
    assert!(matches!(
        p.server.accept(ws_proto::Accept::new().protocol("nope")),
        Err(Error::InvalidHeader(_))
    ));
}

#[test]
fn rejection_reaches_the_client_with_status_and_body() {
    let mut p = Pair::new(client_cfg(), server_cfg(), Chunking::OneByte);
    p.drive();
    p.server
        .reject(
            401,
            &[("WWW-Authenticate".into(), "Bearer".into())],
            b"token required",
        )
        .unwrap();
    p.drive();
    let c = p.client_closed().unwrap();
    match &c.error {
        Some(ConnectionError::Handshake(HandshakeError::Status {
            status,
            body,
            headers,
            ..
        })) => {
            assert_eq!(*status, 401);
            assert_eq!(body, b"token required");
            assert!(headers.iter().any(|(n, _)| n == "WWW-Authenticate"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        p.server_closed().unwrap().error,
        Some(ConnectionError::Handshake(HandshakeError::Rejected(401)))
    );
}

fn client_against_raw_response(response: &[u8]) -> ws_proto::Closed {
    let now = std::time::Instant::now();
    let mut c = ws_proto::Connection::client(
        client_cfg(),
        &ws_proto::ClientRequest::new("h", "/").protocol("a"),
        now,
    )
    .expect("a valid request");
    let mut buf = [0u8; 4096];
    while c.poll_transmit(now, &mut buf).is_some() {}
    c.handle_input(now, response);
    while c.poll_transmit(now, &mut buf).is_some() {}
    let mut closed = None;
    while let Some(e) = c.poll_event() {
        if let Event::Closed(x) = e {
            closed = Some(x);
        }
    }
    closed.expect("client should have failed")
}

fn accept_for_seed1() -> String {
    // The client's key comes from its seeded RNG: recover it from its request.
    let now = std::time::Instant::now();
    let mut c =
        ws_proto::Connection::client(client_cfg(), &ws_proto::ClientRequest::new("h", "/"), now)
            .expect("a valid request");
    let mut buf = [0u8; 4096];
    let Some(ws_proto::Transmit::Data(n)) = c.poll_transmit(now, &mut buf) else {
        panic!()
    };
    let req = String::from_utf8_lossy(&buf[..n]).to_string();
    let key = req
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap()
        .trim()
        .to_string();
    ws_proto::handshake::accept_key(key.as_bytes())
}

#[test]
fn client_validates_the_servers_answer() {
    let acc = accept_for_seed1();
    let good = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {acc}\r\n");
    let cases = [
        (
            format!("{}\r\n", good.replace(&acc, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")),
            HandshakeError::BadAccept,
        ),
        (
            format!("{}\r\n", good.replace("Upgrade: websocket\r\n", "")),
            HandshakeError::MissingUpgrade,
        ),
        (
            format!(
                "{}\r\n",
                good.replace("Connection: Upgrade", "Connection: close")
            ),
            HandshakeError::MissingConnectionUpgrade,
        ),
        (
            format!("{good}Sec-WebSocket-Protocol: zzz\r\n\r\n"),
            HandshakeError::UnofferedProtocol("zzz".into()),
        ),
    ];
    for (resp, want) in cases {
        let c = client_against_raw_response(resp.as_bytes());
        assert_eq!(c.error, Some(ConnectionError::Handshake(want)), "{resp}");
        assert_eq!(c.code, CloseCode::ABNORMAL);
    }
    let c = client_against_raw_response(
        format!("{good}Sec-WebSocket-Extensions: x-unknown\r\n\r\n").as_bytes(),
    );
    assert!(
        matches!(
            c.error,
            Some(ConnectionError::Handshake(HandshakeError::Extension(_)))
        ),
        "{c:?}"
    );
    // Case-insensitive tokens are fine.
    let now = std::time::Instant::now();
    let mut cl =
        ws_proto::Connection::client(client_cfg(), &ws_proto::ClientRequest::new("h", "/"), now)
            .expect("a valid request");
    let mut buf = [0u8; 4096];
    while cl.poll_transmit(now, &mut buf).is_some() {}
    cl.handle_input(now, format!("HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\nsec-websocket-accept: {acc}\r\n\r\n").as_bytes());
    assert!(matches!(cl.poll_event(), Some(Event::Open(_))));
}

#[test]
fn non_101_without_length_reports_what_arrived() {
    let c = client_against_raw_response(
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\ncome back later",
    );
    match c.error {
        Some(ConnectionError::Handshake(HandshakeError::Status {
            status: 503, body, ..
        })) => {
            assert_eq!(body, b"come back later")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn commands_in_the_wrong_state_are_errors() {
    let mut p = Pair::new(client_cfg(), server_cfg(), Chunking::Whole);
    assert!(matches!(
        p.client.send_text("early"),
        Err(Error::InvalidState {
            state: State::Connecting,
            ..
        })
    ));
    assert!(matches!(
        p.client.accept(ws_proto::Accept::new()),
        Err(Error::InvalidState { .. })
    ));
    assert!(matches!(
        p.server.accept(ws_proto::Accept::new()),
        Err(Error::InvalidState { .. })
    ));
    p.handshake();
    assert!(p.server.reject(400, &[], b"").is_err());
    p.client.close(CloseCode::NORMAL, "").unwrap();
    p.drive();
    assert!(matches!(
        p.client.send_text("late"),
        Err(Error::InvalidState {
            state: State::Closed,
            ..
        })
    ));
    assert!(p.client.ping(&b""[..]).is_err());
}

#[test]
fn text_must_be_utf8_and_requests_are_validated() {
    let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
    assert_eq!(
        p.client.send(MessageKind::Text, vec![0xff, 0xfe]),
        Err(Error::InvalidUtf8)
    );
    assert!(p.client.send(MessageKind::Binary, vec![0xff, 0xfe]).is_ok());
    let ok = ws_proto::ClientRequest::new("h:1", "/a?b=c")
        .protocol("chat")
        .header("Authorization", "x");
    assert!(ok.validate().is_ok());
    assert!(ok.clone().header("X", "a\r\nEvil: 1").validate().is_err());
    assert!(ws_proto::ClientRequest::new("h", "/a b")
        .validate()
        .is_err());
    assert!(ws_proto::ClientRequest::new("h", "/")
        .protocol("a, b")
        .validate()
        .is_err());
}

#[test]
fn an_empty_queue_takes_one_message_larger_than_the_limit() {
    let limits = ws_proto::Limits::default().max_send_queue(1000);
    let mut p = Pair::open(client_cfg().limits(limits), server_cfg(), Chunking::Whole);
    p.client.send_binary(payload(5000)).unwrap();
    assert!(matches!(
        p.client.send_binary(payload(10)),
        Err(Error::Backpressure { .. })
    ));
    p.drive();
    assert_eq!(messages(&p.server_events)[0].data.len(), 5000);
}

#[test]
fn messages_before_a_close_can_still_be_answered() {
    for dir in BOTH_DIRS {
        let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
        // The peer sends two messages and its close in one burst.
        let mut burst = peer_frame(dir, true, 0, 1, b"one");
        burst.extend(peer_frame(dir, true, 0, 1, b"two"));
        burst.extend(peer_frame(dir, true, 0, 8, &1000u16.to_be_bytes()));
        let now = p.now;
        let me = match dir {
            Dir::ClientToServer => &mut p.server,
            Dir::ServerToClient => &mut p.client,
        };
        me.handle_input(now, &burst);
        let mut buf = [0u8; 256];
        assert_eq!(
            me.poll_transmit(now, &mut buf),
            None,
            "no close echo before the app saw the messages"
        );
        let mut answered = 0;
        while let Some(e) = me.poll_event() {
            if let Event::Message(m) = e {
                me.send(m.kind, m.data).unwrap();
                answered += 1;
            }
        }
        assert_eq!(answered, 2);
        // Now: two echoes, then the close echo; and no more sends.
        let mut wire = Vec::new();
        while let Some(ws_proto::Transmit::Data(n)) = me.poll_transmit(now, &mut buf) {
            wire.extend_from_slice(&buf[..n]);
        }
        let mut ops = Vec::new();
        let mut pos = 0;
        while pos < wire.len() {
            let (h, n) = ws_proto::frame::FrameHeader::parse(&wire[pos..])
                .unwrap()
                .unwrap();
            ops.push(h.opcode.as_u8());
            pos += n + h.payload_len as usize;
        }
        assert_eq!(ops, vec![1, 1, 8], "{dir:?}");
        assert!(me.send_text("late").is_err());
    }
}

#[test]
fn messages_before_a_violation_can_still_be_answered() {
    for dir in BOTH_DIRS {
        let mut p = Pair::open(client_cfg(), server_cfg(), Chunking::Whole);
        let mut burst = peer_frame(dir, true, 0, 1, b"fine");
        burst.extend(peer_frame(dir, true, 0, 5, b"reserved opcode"));
        burst.extend(peer_frame(dir, true, 0, 9, b"never answered"));
        let now = p.now;
        let me = match dir {
            Dir::ClientToServer => &mut p.server,
            Dir::ServerToClient => &mut p.client,
        };
        me.handle_input(now, &burst);
        while let Some(e) = me.poll_event() {
            if let Event::Message(m) = e {
                me.send(m.kind, m.data).unwrap();
            }
        }
        let mut buf = [0u8; 256];
        let mut wire = Vec::new();
        while let Some(ws_proto::Transmit::Data(n)) = me.poll_transmit(now, &mut buf) {
            wire.extend_from_slice(&buf[..n]);
        }
        let mut frames = Vec::new();
        let mut pos = 0;
        while pos < wire.len() {
            let (h, n) = ws_proto::frame::FrameHeader::parse(&wire[pos..])
                .unwrap()
                .unwrap();
            let mut payload = wire[pos + n..pos + n + h.payload_len as usize].to_vec();
            if let Some(k) = h.mask {
                ws_proto::mask::apply_mask(&mut payload, k, 0);
            }
            frames.push((h.opcode.as_u8(), payload));
            pos += n + h.payload_len as usize;
        }
        assert_eq!(
            frames.len(),
            2,
            "{dir:?}: echo then close, no pong: {frames:?}"
        );
        assert_eq!(frames[0], (1, b"fine".to_vec()));
        assert_eq!(frames[1].0, 8);
        assert_eq!(&frames[1].1[..2], &1002u16.to_be_bytes());
    }
}

#[test]
fn an_idle_connection_frees_its_buffers_after_the_release_delay() {
    for chunking in ALL_CHUNKINGS {
        let mut p = Pair::open(client_cfg(), server_cfg(), chunking);
        p.client.send_binary(payload(70_000)).unwrap();
        p.client.send_text("small").unwrap();
        p.server.send_binary(payload(3000)).unwrap();
        p.drive();
        assert_eq!(messages(&p.server_events).len(), 2);
        // Busy: the buffers are kept for the next message, but bounded (the
        // receive and reassembly buffers at most about twice the burst each).
        let kept = p.server.retained_bytes();
        assert!(kept > 0 && kept <= 5 * 70_000, "{chunking:?}: kept {kept}");
        let delay = ws_proto::Config::default().release_buffers_after;
        assert!(p.server.poll_timeout().is_some(), "a release is scheduled");
        p.advance(delay / 2);
        assert!(
            p.server.retained_bytes() > 0,
            "{chunking:?}: freed too early"
        );
        p.advance(delay);
        assert_eq!(p.server.retained_bytes(), 0, "{chunking:?}");
        assert_eq!(p.client.retained_bytes(), 0, "{chunking:?}");
        assert_eq!(p.server.poll_timeout(), None, "nothing left to free");
    }
}

#[test]
fn zero_release_delay_frees_buffers_at_once_and_release_buffers_on_demand() {
    let cfg = server_cfg().release_buffers_after(Duration::ZERO);
    let mut p = Pair::open(client_cfg(), cfg, Chunking::Whole);
    p.client.send_binary(payload(70_000)).unwrap();
    p.client.send_text("small").unwrap();
    p.drive();
    assert_eq!(messages(&p.server_events).len(), 2);
    assert_eq!(p.server.retained_bytes(), 0);
    assert_eq!(p.server.poll_timeout(), None);

    p.server.send_binary(payload(3000)).unwrap();
    p.drive();
    assert!(p.client.retained_bytes() > 0);
    p.client.release_buffers();
    assert_eq!(p.client.retained_bytes(), 0);
    // And the connection still works afterwards.
    p.server.send_text("again").unwrap();
    p.drive();
    assert_eq!(messages(&p.client_events).len(), 2);
}
