//! Heap allocations per message in steady state, through an in-memory
//! client/server pair (no sockets), counted by the kit's counting global
//! allocator (on this thread, which does all the work).
//! Prints a table; the performance issue's target is 0 for every row.
//!
//! `cargo bench -p ws-benches --bench allocs`
#![allow(missing_docs, reason = "a measurement binary")]

use ws_proto::{Config, Connection, DeflateConfig, MessageKind};
use ws_testkit::alloc::allocations;
use ws_testkit::pair::{open_pair, pump};

ws_testkit::counting_allocator!();

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
    let before = allocations();
    for _ in 0..n {
        round(&mut c, &mut s);
    }
    (allocations() - before) as f64 / n as f64
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
