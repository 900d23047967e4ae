#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]
//! permessage-deflate throughput: our Compressor/Decompressor against raw
//! zlib (flate2 on the same zlib-rs backend, same level, same window) on the
//! same messages. The ratio shows the cost of our framing logic (tail
//! stripping, bounded output steps, context handling).

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use ws_proto::deflate::{Compressor, Decompressor, DeflateParams, Role};

const LEVEL: u32 = 1;

fn params() -> DeflateParams {
    DeflateParams::default()
}

fn raw_compress(c: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let before = c.total_in();
    loop {
        let consumed = (c.total_in() - before) as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(1024));
        }
        let _ = c.compress_vec(&input[consumed..], out, FlushCompress::Sync);
        if (c.total_in() - before) as usize == input.len() && out.capacity() > out.len() {
            break;
        }
    }
}

fn raw_decompress(d: &mut Decompress, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let before = d.total_in();
    loop {
        let consumed = (d.total_in() - before) as usize;
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(4096));
        }
        let _ = d.decompress_vec(&input[consumed..], out, FlushDecompress::Sync);
        if (d.total_in() - before) as usize == input.len() && out.capacity() > out.len() {
            break;
        }
    }
}

fn bench(c: &mut Criterion) {
    for size in [1024usize, 16 * 1024, 256 * 1024] {
        let msg = ws_benches::json_like(size);
        // A stream of distinct messages so context takeover behaves as in real use.
        let msgs: Vec<Vec<u8>> = (0..16)
            .map(|i| ws_benches::json_like(size + i)[i..].to_vec())
            .collect();
        let mut g = c.benchmark_group(format!("deflate/{size}"));
        g.throughput(Throughput::Bytes(msg.len() as u64));

        g.bench_function(BenchmarkId::new("compress", "ws-proto"), |b| {
            let mut comp = Compressor::new(&params(), Role::Server, LEVEL);
            let mut out = BytesMut::with_capacity(size * 2);
            let mut i = 0;
            b.iter(|| {
                out.clear();
                comp.compress(&msgs[i % msgs.len()], &mut out);
                i += 1;
                out.len()
            })
        });
        g.bench_function(BenchmarkId::new("compress", "raw-zlib"), |b| {
            let mut comp = Compress::new(Compression::new(LEVEL), false);
            let mut out = Vec::with_capacity(size * 2);
            let mut i = 0;
            b.iter(|| {
                raw_compress(&mut comp, &msgs[i % msgs.len()], &mut out);
                i += 1;
                out.len()
            })
        });

        // Inflate: pre-compress the stream once with each tool (identical
        // bytes are not required; each side inflates its own stream).
        let mut comp = Compressor::new(&params(), Role::Client, LEVEL);
        let ours: Vec<Vec<u8>> = msgs
            .iter()
            .map(|m| {
                let mut o = BytesMut::new();
                comp.compress(m, &mut o);
                o.to_vec()
            })
            .collect();
        let mut rc = Compress::new(Compression::new(LEVEL), false);
        let raw: Vec<Vec<u8>> = msgs
            .iter()
            .map(|m| {
                let mut o = Vec::new();
                raw_compress(&mut rc, m, &mut o);
                o
            })
            .collect();
        g.bench_function(BenchmarkId::new("inflate", "ws-proto"), |b| {
            let mut i = 0;
            let mut dec = Decompressor::new(&params(), Role::Server);
            let mut out = BytesMut::with_capacity(size * 2);
            b.iter(|| {
                if i % ours.len() == 0 {
                    dec = Decompressor::new(&params(), Role::Server);
                }
                out.clear();
                let n = dec
                    .decompress(&ours[i % ours.len()], true, &mut out, usize::MAX)
                    .unwrap_or(0);
                i += 1;
                n
            })
        });
        g.bench_function(BenchmarkId::new("inflate", "raw-zlib"), |b| {
            let mut i = 0;
            let mut dec = Decompress::new(false);
            let mut out = Vec::with_capacity(size * 2);
            b.iter(|| {
                if i % raw.len() == 0 {
                    dec = Decompress::new(false);
                }
                raw_decompress(&mut dec, &raw[i % raw.len()], &mut out);
                i += 1;
                out.len()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
