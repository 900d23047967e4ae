//! permessage-deflate through the connection: negotiation, RFC 7692 examples
//! on the wire, RSV1 rules, opt-out and threshold, streaming, and a
//! decompression bomb.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::*;
use ws_proto::frame::FrameHeader;
use ws_proto::{
    CloseCode, ConnectionError, DeflateConfig, Event, Limits, MessageKind, ProtocolError,
};

fn deflate() -> Option<DeflateConfig> {
    Some(DeflateConfig::default())
}

fn open_deflate() -> Pair {
    Pair::open(
        client_cfg().deflate(deflate()),
        server_cfg().deflate(deflate()),
        Chunking::Whole,
    )
}

/// Frame headers seen on the wire in direction `d` from now on.
fn capture(p: &mut Pair, dir: Dir) -> Rc<RefCell<Vec<u8>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    p.tamper = Some(Box::new(move |d, b| {
        if d == dir {
            s.borrow_mut().extend_from_slice(b)
        }
    }));
    seen
}

/// Text that compresses, but not into a handful of bytes.
fn noisy_text(n: usize) -> String {
    const WORDS: [&str; 8] = [
        "alpha ", "bravo ", "charlie ", "delta ", "echo ", "foxtrot ", "golf ", "hotel ",
    ];
    let mut x: u32 = 12345;
    let mut s = String::new();
    while s.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        s.push_str(WORDS[((x >> 16) % 8) as usize]);
    }
    s.truncate(n);
    s
}

fn headers(wire: &[u8]) -> Vec<FrameHeader> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < wire.len() {
        let (h, n) = FrameHeader::parse(&wire[pos..]).unwrap().unwrap();
        pos += n + h.payload_len as usize;
        out.push(h);
    }
    out
}

#[test]
fn negotiated_by_default_offer() {
    let p = open_deflate();
    assert_eq!(p.client.extensions(), p.server.extensions());
    assert!(p
        .client
        .extensions()
        .unwrap()
        .starts_with("permessage-deflate"));
    assert_eq!(p.client.deflate_params(), p.server.deflate_params());
}

#[test]
fn not_negotiated_unless_both_want_it() {
    let p = Pair::open(
        client_cfg().deflate(deflate()),
        server_cfg(),
        Chunking::Whole,
    );
    assert!(p.client.deflate_params().is_none() && p.client.extensions().is_none());
    let p = Pair::open(
        client_cfg(),
        server_cfg().deflate(deflate()),
        Chunking::Whole,
    );
    assert!(p.server.deflate_params().is_none());
}

#[test]
fn rfc7692_7_2_3_1_and_7_2_3_2_on_the_wire() {
    let mut p = open_deflate();
    // §7.2.3.1: a compressed "Hello" in one frame.
    p.inject(
        Dir::ServerToClient,
        &frame_rsv(
            true,
            4,
            1,
            None,
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        ),
    );
    // §7.2.3.2: a second "Hello" using the shared window.
    p.inject(
        Dir::ServerToClient,
        &frame_rsv(true, 4, 1, None, &[0xf2, 0x00, 0x11, 0x00, 0x00]),
    );
    // §7.2.3.1 fragmented: the same bytes in two frames, RSV1 on the first only.
    p.inject(
        Dir::ServerToClient,
        &frame_rsv(false, 4, 1, None, &[0xf2, 0x48, 0xcd]),
    );
    p.inject(
        Dir::ServerToClient,
        &frame_rsv(true, 0, 0, None, &[0xc9, 0xc9, 0x07, 0x00]),
    );
    let m = messages(&p.client_events);
    assert_eq!(m.len(), 3, "{:?}", p.client_events);
    for msg in &m {
        assert_eq!(msg.as_text(), Some("Hello"));
    }
}

#[test]
fn rfc7692_7_2_3_3_uncompressed_block_and_7_2_3_6_empty() {
    let mut p = open_deflate();
    p.inject(
        Dir::ServerToClient,
        &frame_rsv(
            true,
            4,
            1,
            None,
            &[
                0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ],
        ),
    );
    p.inject(Dir::ServerToClient, &frame_rsv(true, 4, 2, None, &[0x00]));
    let m = messages(&p.client_events);
    assert_eq!(m[0].as_text(), Some("Hello"));
    assert!(m[1].data.is_empty() && m[1].kind == MessageKind::Binary);
}

#[test]
fn compressed_messages_use_rsv1_on_the_first_frame_only() {
    let mut p = Pair::open(
        client_cfg().deflate(deflate()).fragment_size(50),
        server_cfg().deflate(deflate()),
        Chunking::Whole,
    );
    let seen = capture(&mut p, Dir::ClientToServer);
    let text = noisy_text(400);
    p.client.send_text(&text).unwrap();
    p.drive();
    let hs = headers(&seen.borrow());
    assert!(hs.len() > 1, "fragmented");
    assert!(hs[0].rsv1 && hs[0].opcode == ws_proto::frame::OpCode::TEXT);
    assert!(hs[1..]
        .iter()
        .all(|h| !h.rsv1 && h.opcode == ws_proto::frame::OpCode::CONTINUATION));
    assert_eq!(messages(&p.server_events)[0].as_text(), Some(text.as_str()));
    let wire_payload: u64 = hs.iter().map(|h| h.payload_len).sum();
    assert!(wire_payload < 400, "compressed on the wire: {wire_payload}");
}

#[test]
fn opt_out_and_threshold_send_uncompressed() {
    let mut d = DeflateConfig::default();
    d.threshold = 100;
    let mut p = Pair::open(
        client_cfg().deflate(Some(d.clone())),
        server_cfg().deflate(Some(d)),
        Chunking::Whole,
    );
    let seen = capture(&mut p, Dir::ClientToServer);
    p.client.send_text(&"x".repeat(99)).unwrap(); // under the threshold
    p.client.send_text(&"x".repeat(100)).unwrap(); // at the threshold
    p.client
        .send_uncompressed(MessageKind::Text, "y".repeat(500))
        .unwrap(); // opted out
    p.client
        .send_fragment(MessageKind::Binary, vec![1u8; 300], true)
        .unwrap(); // fragments: never
    p.drive();
    let rsv1: Vec<bool> = headers(&seen.borrow()).iter().map(|h| h.rsv1).collect();
    assert_eq!(rsv1, vec![false, true, false, false]);
    let m = messages(&p.server_events);
    assert_eq!(m.len(), 4);
    assert_eq!(m[2].data.len(), 500);
}

#[test]
fn rsv1_on_control_or_continuation_is_a_protocol_error() {
    for (fin, rsv, op, want) in [
        (true, 4u8, 9u8, ProtocolError::CompressedControl),
        (true, 4, 8, ProtocolError::CompressedControl),
    ] {
        let mut p = open_deflate();
        p.inject(Dir::ServerToClient, &frame_rsv(fin, rsv, op, None, b""));
        let c = p.client_closed().unwrap();
        assert_eq!(c.code, CloseCode::PROTOCOL_ERROR);
        assert_eq!(c.error, Some(ConnectionError::Protocol(want)));
    }
    let mut p = open_deflate();
    p.inject(
        Dir::ServerToClient,
        &frame_rsv(false, 4, 1, None, &[0xf2, 0x48]),
    );
    p.inject(Dir::ServerToClient, &frame_rsv(true, 4, 0, None, &[0xcd]));
    assert_eq!(
        p.client_closed().unwrap().error,
        Some(ConnectionError::Protocol(
            ProtocolError::CompressedContinuation
        ))
    );
}

#[test]
fn garbage_compressed_data_fails_with_1007() {
    let mut p = open_deflate();
    p.inject(
        Dir::ServerToClient,
        &frame_rsv(true, 4, 2, None, &[0xff; 20]),
    );
    let c = p.client_closed().unwrap();
    assert_eq!(c.code, CloseCode::INVALID_PAYLOAD);
    assert_eq!(
        c.error,
        Some(ConnectionError::Protocol(ProtocolError::BadCompressedData))
    );
}

#[test]
fn invalid_utf8_inside_compressed_text_fails_with_1007() {
    let mut p = open_deflate();
    // Compress invalid UTF-8 with an independent compressor (no context: the
    // server's decompressor is fresh).
    let mut c = flate2::Compress::new(flate2::Compression::default(), false);
    let mut out = Vec::with_capacity(100);
    c.compress_vec(b"abc\xff\xfe", &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    out.truncate(out.len() - 4);
    p.inject(
        Dir::ClientToServer,
        &frame_rsv(true, 4, 1, Some([1, 2, 3, 4]), &out),
    );
    assert_eq!(p.server_closed().unwrap().code, CloseCode::INVALID_PAYLOAD);
}

fn bomb(inflated: usize) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    let zeros = vec![0u8; 1 << 20];
    let mut out = Vec::with_capacity(inflated / 500 + 1024);
    for _ in 0..inflated >> 20 {
        c.compress_vec(&zeros, &mut out, flate2::FlushCompress::None)
            .unwrap();
    }
    c.compress_vec(&[], &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    out.truncate(out.len() - 4);
    out
}

#[test]
fn decompression_bomb_is_refused_with_1009_and_bounded_memory() {
    let limit = 1 << 20;
    let mut p = Pair::open(
        client_cfg().deflate(deflate()),
        server_cfg()
            .deflate(deflate())
            .limits(Limits::default().max_message_size(limit)),
        Chunking::Whole,
    );
    let payload = bomb(64 << 20); // 64 MiB of zeros in ~64 KiB
    assert!(payload.len() < 128 << 10, "bomb is {} bytes", payload.len());
    let now = p.now;
    let wire = frame_rsv(true, 4, 2, Some([5, 6, 7, 8]), &payload);
    let mut peak = 0;
    for piece in wire.chunks(16 << 10) {
        p.server.handle_input(now, piece);
        peak = peak.max(p.server.retained_bytes());
    }
    p.drive();
    let c = p.server_closed().unwrap();
    assert_eq!(c.code, CloseCode::MESSAGE_TOO_BIG);
    assert_eq!(
        c.error,
        Some(ConnectionError::Protocol(ProtocolError::MessageTooLarge {
            limit
        }))
    );
    // Bounded by the frame buffer plus the message limit plus one inflate step.
    assert!(
        peak <= 2 * (payload.len() + 64) + limit + ws_proto::deflate::INFLATE_STEP * 2,
        "peak {peak}"
    );
    assert_eq!(p.client_closed().unwrap().code, CloseCode::MESSAGE_TOO_BIG);
}

#[test]
fn streaming_mode_delivers_inflated_fragments() {
    let mut p = Pair::open(
        client_cfg().deflate(deflate()).fragment_size(64),
        server_cfg().deflate(deflate()).streaming(true),
        Chunking::Whole,
    );
    let text = noisy_text(3000);
    p.client.send_text(&text).unwrap();
    p.drive();
    let frags: Vec<_> = p
        .server_events
        .iter()
        .filter_map(|e| match e {
            Event::Fragment(f) => Some(f.clone()),
            _ => None,
        })
        .collect();
    assert!(frags.len() > 1);
    assert!(frags[0].first && frags.last().unwrap().fin);
    let all: Vec<u8> = frags.iter().flat_map(|f| f.data.to_vec()).collect();
    assert_eq!(all, text.as_bytes());
}

#[test]
fn no_context_takeover_both_ways() {
    let mut d = DeflateConfig::default();
    d.server_no_context_takeover = true;
    d.client_no_context_takeover = true;
    let mut p = Pair::open(
        client_cfg().deflate(deflate()),
        server_cfg().deflate(Some(d)),
        Chunking::Whole,
    );
    let params = *p.client.deflate_params().unwrap();
    assert!(params.server_no_context_takeover && params.client_no_context_takeover);
    let seen = capture(&mut p, Dir::ServerToClient);
    for _ in 0..3 {
        p.server
            .send_text("the same message, again and again")
            .unwrap();
    }
    p.drive();
    // Identical messages compress to identical frames without takeover.
    let wire = seen.borrow().clone();
    let hs = headers(&wire);
    let n = hs[0].payload_len as usize + 2;
    assert_eq!(&wire[..n], &wire[n..2 * n]);
    assert_eq!(messages(&p.client_events).len(), 3);
}
