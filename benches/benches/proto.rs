//! Core micro-benchmarks: masking against `copy_from_slice` (the memory-speed
//! reference) and the byte-at-a-time scalar loop, frame header decode and
//! encode, and a message round trip through an in-memory client/server pair.
//!
//! `cargo bench -p ws-benches --bench proto`
#![allow(missing_docs, reason = "a benchmark binary")]
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "a benchmark binary"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ws_proto::frame::{FrameHeader, OpCode};
use ws_proto::mask::{apply_mask, apply_mask_scalar, copy_masked};
use ws_proto::{Bytes, Config, Event, MessageKind};
use ws_testkit::pair::{open_pair, pump};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn masking(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask");
    for size in [16usize, 64, 256, 1024, 4096, 16 << 10, 64 << 10, 1 << 20] {
        let src: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut dst = vec![0u8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("copy_from_slice", size), &size, |b, _| {
            b.iter(|| dst.copy_from_slice(black_box(&src)))
        });
        g.bench_with_input(BenchmarkId::new("apply_mask", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut dst), KEY, 1))
        });
        g.bench_with_input(BenchmarkId::new("copy_masked", size), &size, |b, _| {
            b.iter(|| copy_masked(black_box(&src), &mut dst, KEY, 1))
        });
        if size <= 64 << 10 {
            g.bench_with_input(BenchmarkId::new("scalar", size), &size, |b, _| {
                b.iter(|| apply_mask_scalar(black_box(&mut dst), KEY, 1))
            });
        }
    }
    g.finish();
}

fn headers(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_header");
    for (name, len, mask) in [
        ("7bit_masked", 100u64, Some(KEY)),
        ("16bit_unmasked", 1000, None),
        ("64bit_masked", 1 << 20, Some(KEY)),
    ] {
        let h = FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: OpCode::BINARY,
            mask,
            payload_len: len,
        };
        let mut wire = [0u8; FrameHeader::MAX_LEN];
        let n = h.encode(&mut wire);
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            let mut out = [0u8; FrameHeader::MAX_LEN];
            b.iter(|| black_box(black_box(&h).encode(&mut out)))
        });
        g.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| black_box(FrameHeader::parse(black_box(&wire[..n]))))
        });
    }
    g.finish();
}

/// Client sends (masked), server receives and echoes, client receives.
fn round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("round_trip");
    for (deflate, size) in [
        (false, 16usize),
        (false, 1024),
        (false, 64 << 10),
        (true, 1024),
        (true, 64 << 10),
    ] {
        let cfg = Config::default().deflate(deflate.then(ws_proto::DeflateConfig::default));
        let (mut cl, mut sv, now) = open_pair(cfg);
        let payload: Bytes = (0..size)
            .map(|i| b"abcdefghij klmnopqrstuvwxyz 0123456789\n"[(i * 7 + i / 13) % 39])
            .collect::<Vec<u8>>()
            .into();
        let mut buf = vec![0u8; 64 << 10];
        g.throughput(Throughput::Bytes(size as u64));
        let name = if deflate { "deflate" } else { "plain" };
        g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
            b.iter(|| {
                cl.send(MessageKind::Binary, payload.clone()).unwrap();
                pump(&mut cl, &mut sv, now, &mut buf);
                while let Some(e) = sv.poll_event() {
                    if let Event::Message(m) = e {
                        sv.send(m.kind, m.data).unwrap();
                    }
                }
                pump(&mut sv, &mut cl, now, &mut buf);
                let mut got = 0;
                while let Some(e) = cl.poll_event() {
                    if let Event::Message(m) = e {
                        got += m.data.len();
                    }
                }
                assert_eq!(got, size);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, masking, headers, round_trip);
criterion_main!(benches);
