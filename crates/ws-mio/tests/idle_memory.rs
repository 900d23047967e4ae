//! Heap held per idle open connection by a ws-mio server loop.
//!
//! The loop runs on its own thread; the kit's counting global allocator
//! keeps that thread's heap balance (bytes allocated minus bytes freed,
//! read through the kit's `HeapProbe`). After a warm-up connection (lazy statics, the read
//! pool, the work lists), the balance is read, [`CONNECTIONS`] clients
//! open a WebSocket connection each and go quiet, and the balance is read
//! again once the loop has had the time to free what an idle connection
//! does not need (the buffers and queue allocations, freed
//! `release_buffers_after` after the last input). The difference divided
//! by the connections is what each idle connection costs on the heap: the
//! boxed session with the protocol core, its slot in the session table and
//! the work lists, its deadline in the timer heap. The goal is under 1 KiB
//! of memory per idle connection in all (`scripts/mio-scale.sh` measures
//! the process's resident memory, which adds the allocator's own overhead).
//!
//! Nothing here depends on timing: every wait is for a condition, bounded
//! only to fail instead of hanging.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ws_mio::{ConnId, Ctx, EventLoop, Handler, Options};
use ws_proto::Message;
use ws_testkit::alloc::installed;
use ws_testkit::idle::{open_raw, HeapProbe};

ws_testkit::counting_allocator!();

/// Idle connections held at once: one client and one server socket each,
/// well under a default open-file limit of 1,024.
const CONNECTIONS: usize = 400;

/// The bound on heap bytes per idle connection. Measured at 829 (the
/// session box with the core, 728 bytes; its slot in the session
/// table, room in the work lists and notices, and its timer heap entries,
/// amortised); the margin is for the amortised growth of the tables, which
/// depends on how the connections arrive. (It was 3,270 before the core
/// and the session were slimmed down.)
const MAX_HEAP_PER_IDLE_CONNECTION: isize = 960;

/// The server: accepts every upgrade, does nothing with messages.
struct Quiet;

impl Handler for Quiet {
    fn on_message(&mut self, _: &mut Ctx<'_>, _: ConnId, _: Message) {}
}

#[test]
fn an_idle_open_connection_holds_about_1_kib_of_heap_on_the_loop() {
    assert!(installed(), "the counting allocator is this binary's");
    let (addr_tx, addr_rx) = mpsc::channel();
    let probe = Arc::new(HeapProbe::default());
    let sh = probe.clone();
    let server = std::thread::spawn(move || {
        let mut ev = EventLoop::new(Options::default(), Quiet).unwrap();
        addr_tx
            .send(ev.listen("127.0.0.1:0".parse().unwrap()).unwrap())
            .unwrap();
        let end = Instant::now() + Duration::from_secs(300);
        while !sh.stopped() && Instant::now() < end {
            ev.turn(Some(Duration::from_millis(10))).unwrap();
            sh.publish(ev.stats().connections);
        }
    });
    let addr = addr_rx.recv().unwrap();

    // One warm-up connection: what is made once per loop (the read pool's
    // first segment, the work lists, lazy statics) is not counted. A
    // connection costs at least its session (256 B).
    probe.per_idle_connection(
        CONNECTIONS,
        1,
        &|| open_raw(addr),
        256,
        MAX_HEAP_PER_IDLE_CONNECTION,
    );
    probe.stop();
    server.join().unwrap();
}
