//! Heap allocations per message in steady state, through an in-memory
//! client/server pair (no sockets), counted by a wrapping global allocator.
//! Prints a table; the performance issue's target is 0 for every row.
//!
//! `cargo bench -p ws-benches --bench allocs`
#![allow(missing_docs, reason = "a measurement binary")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use ws_benches::{open_pair, pump};
use ws_proto::{Config, Connection, DeflateConfig, MessageKind};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// wrapper only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per message: client sends, server receives.
fn measure(size: usize, deflate: bool, n: u64) -> f64 {
    let (mut c, mut s, now) =
        open_pair(Config::default().deflate(deflate.then(DeflateConfig::default)));
    let payload = ws_proto::Bytes::from(vec![b'x'; size]);
    let mut buf = vec![0u8; 64 << 10];
    let mut round = |c: &mut Connection, s: &mut Connection| {
        let _ = c.send(MessageKind::Binary, payload.clone());
        pump(c, s, now, &mut buf);
        while let Some(e) = s.poll_event() {
            drop(e);
        }
    };
    for _ in 0..1000 {
        round(&mut c, &mut s); // warm-up
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..n {
        round(&mut c, &mut s);
    }
    (ALLOCS.load(Ordering::Relaxed) - before) as f64 / n as f64
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    println!("| message | deflate | heap allocations per message (send + receive) |");
    println!("|---:|---|---:|");
    for (size, deflate) in [
        (16, false),
        (1024, false),
        (65536, false),
        (1024, true),
        (65536, true),
    ] {
        let per = measure(size, deflate, 10_000);
        println!(
            "| {size} B | {} | {per:.2} |",
            if deflate { "on" } else { "off" }
        );
    }
}
