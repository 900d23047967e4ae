//! Concurrent use of one pool from several threads.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::mpsc;
use std::thread;

use bytes::Bytes;
use ws_buf::{BufferPool, PoolConfig};

const THREADS: usize = 4;
const ITERATIONS: usize = 10_000;
const MAX_IDLE: usize = 512 * 1024;

/// Small deterministic xorshift generator (no dependency needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
}

/// Fills `len` bytes derived from `tag`, so that a mix-up between segments is detected.
fn pattern(tag: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (tag as usize).wrapping_add(i.wrapping_mul(31)) as u8)
        .collect()
}

fn size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0 => 70_000 + rng.below(30_000), // oversize for this pool
        1..=20 => rng.below(65_537),
        21..=50 => rng.below(4097),
        _ => rng.below(300),
    }
}

#[test]
fn concurrent_get_fill_freeze_drop() {
    let pool = BufferPool::new(
        PoolConfig::default()
            .with_size_classes([256, 4096, 16 * 1024, 64 * 1024])
            .with_max_idle_bytes(MAX_IDLE)
            .with_max_outstanding_bytes(1024 * 1024),
    );
    // A sink thread drops Bytes produced elsewhere, so storage also returns from a thread
    // that never called `get`.
    let (sink_tx, sink_rx) = mpsc::sync_channel::<Bytes>(64);
    let sink = thread::spawn(move || {
        let mut count = 0u64;
        for bytes in sink_rx {
            assert!(bytes.len() <= 100_000);
            count += 1;
        }
        count
    });

    let workers: Vec<_> = (0..THREADS)
        .map(|id| {
            let pool = pool.clone();
            let sink_tx = sink_tx.clone();
            thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id as u64 + 1).wrapping_mul(0xD1B5));
                let mut held: VecDeque<(Bytes, Vec<u8>)> = VecDeque::new();
                let mut handed_out = 0u64;
                let mut refused = 0u64;
                for iteration in 0..ITERATIONS {
                    let want = size(&mut rng);
                    let segment = if rng.below(2) == 0 {
                        Some(pool.get(want))
                    } else {
                        pool.try_get(want)
                    };
                    let Some(mut segment) = segment else {
                        refused += 1;
                        held.clear(); // relieve the backpressure
                        continue;
                    };
                    handed_out += 1;
                    assert!(segment.capacity() >= want);
                    assert!(segment.is_empty());
                    let fill = rng.below(want as u64 + 1);
                    let data = pattern(iteration as u64 ^ id as u64, fill);
                    segment.try_extend_from_slice(&data).unwrap();
                    assert_eq!(segment.as_slice(), &data[..]);
                    match rng.below(4) {
                        0 => drop(segment),
                        1 => {
                            let bytes = segment.freeze();
                            assert_eq!(bytes, data);
                            let _ = sink_tx.send(bytes.clone());
                            held.push_back((bytes, data));
                        }
                        _ => {
                            let bytes = segment.freeze();
                            let clone = bytes.clone();
                            drop(bytes);
                            held.push_back((clone, data));
                        }
                    }
                    while held.len() > 8 {
                        let (bytes, data) = held.pop_front().unwrap();
                        assert_eq!(bytes, data, "contents changed while held");
                    }
                }
                for (bytes, data) in held {
                    assert_eq!(bytes, data);
                }
                (handed_out, refused)
            })
        })
        .collect();

    let mut handed_out = 0;
    let mut refused = 0;
    for worker in workers {
        let (h, r) = worker.join().unwrap();
        handed_out += h;
        refused += r;
    }
    drop(sink_tx);
    sink.join().unwrap();

    let stats = pool.stats();
    eprintln!("handed out {handed_out}, refused {refused}: {stats:?}");
    assert_eq!(stats.outstanding_segments, 0, "{stats:?}");
    assert_eq!(stats.outstanding_bytes, 0, "{stats:?}");
    assert_eq!(stats.hits + stats.misses, handed_out, "{stats:?}");
    assert_eq!(stats.refused, refused, "{stats:?}");
    assert!(stats.hits > 0, "{stats:?}");
    assert!(stats.oversize > 0, "{stats:?}");
    assert!(stats.idle_bytes <= MAX_IDLE, "{stats:?}");
    // Every allocation is either idle or freed: nothing leaked.
    assert_eq!(
        stats.misses,
        stats.freed + stats.idle_segments as u64,
        "{stats:?}"
    );
    assert_eq!(stats.recycled + stats.freed, handed_out, "{stats:?}");

    pool.trim();
    let stats = pool.stats();
    assert_eq!(stats.idle_segments, 0);
    assert_eq!(stats.idle_bytes, 0);
    assert_eq!(stats.misses, stats.freed);
}

#[test]
fn concurrent_try_get_never_exceeds_the_budget() {
    const BUDGET: usize = 256 * 1024;
    let pool = BufferPool::new(
        PoolConfig::default()
            .with_size_classes([4096, 16 * 1024, 64 * 1024])
            .with_max_idle_bytes(BUDGET)
            .with_max_outstanding_bytes(BUDGET),
    );
    let workers: Vec<_> = (0..THREADS)
        .map(|id| {
            let pool = pool.clone();
            thread::spawn(move || {
                let mut rng = Rng(0xA076_1D64_78BD_642F ^ (id as u64 + 1));
                let mut held = VecDeque::new();
                let (mut handed_out, mut refused) = (0u64, 0u64);
                for _ in 0..ITERATIONS / 2 {
                    match pool.try_get(1 + rng.below(80_000)) {
                        Some(mut segment) => {
                            handed_out += 1;
                            segment.extend_from_slice(b"x");
                            held.push_back(segment.freeze());
                        }
                        None => {
                            refused += 1;
                            // Release some of our own buffers, as a driver would once its
                            // data has been consumed.
                            for _ in 0..=rng.below(4) {
                                held.pop_front();
                            }
                        }
                    }
                    if held.len() > 16 {
                        held.pop_front();
                    }
                    let outstanding = pool.outstanding_bytes();
                    assert!(outstanding <= BUDGET, "{outstanding} > {BUDGET}");
                }
                (handed_out, refused)
            })
        })
        .collect();
    let (mut handed_out, mut refused) = (0, 0);
    for worker in workers {
        let (h, r) = worker.join().unwrap();
        handed_out += h;
        refused += r;
    }
    let stats = pool.stats();
    eprintln!("handed out {handed_out}, refused {refused}: {stats:?}");
    assert!(refused > 0, "the budget was never reached: {stats:?}");
    assert_eq!(stats.refused, refused);
    assert_eq!(stats.hits + stats.misses, handed_out);
    assert_eq!(stats.outstanding_segments, 0);
    assert_eq!(stats.outstanding_bytes, 0);
    assert!(stats.idle_bytes <= BUDGET);
    assert_eq!(stats.misses, stats.freed + stats.idle_segments as u64);
}
