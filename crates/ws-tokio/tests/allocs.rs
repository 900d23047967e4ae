//! Zero heap allocations per message in steady state through a ws-tokio echo server. The
//! server runs on a current-thread tokio runtime on its own thread, watched by the kit's
//! counting global allocator ([`watch_this_thread`]), which counts every `alloc`/`realloc`
//! made on that thread: the runtime, the driver and the core together. The kit's client (the
//! core over a blocking socket, on the test thread, not counted) keeps a window of messages in
//! flight; after a warm-up, the next messages must cost the server thread nothing
//! ([`steady_state_allocations`]).
//!
//! Two echo loops are measured: `send` (a write per message) and `feed` (the echoes of one
//! read go out together when the stream next waits for input).

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ws_proto::{Config, DeflateConfig, MessageKind};
use ws_testkit::alloc::{watch_this_thread, watched_allocations};
use ws_testkit::echo_client::{steady_state_allocations, EchoClient};

mod common;

ws_testkit::counting_allocator!();

#[derive(Clone, Copy, Debug)]
enum Mode {
    Send,
    Feed,
}

/// Starts a one-connection echo server on a counted thread running a current-thread runtime.
fn echo_server(cfg: Config, mode: Mode) -> (SocketAddr, std::thread::JoinHandle<()>) {
    common::server_thread(watch_this_thread, move |listener| async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut ws = ws_tokio::accept_with(tcp, cfg, |_| ws_tokio::Decision::accept())
            .await
            .unwrap();
        let serve = async {
            while let Some(Ok(m)) = ws.next().await {
                let r = match mode {
                    Mode::Send => ws.send(m).await,
                    Mode::Feed => ws.feed(m).await,
                };
                if r.is_err() {
                    return;
                }
            }
        };
        // Bounded: the client closes long before this.
        let _ = tokio::time::timeout(Duration::from_secs(120), serve).await;
    })
}

/// Allocations on the server thread while `n` messages are echoed after `warm_up` of them.
fn server_allocations(
    cfg: Config,
    mode: Mode,
    size: usize,
    kind: MessageKind,
    warm_up: usize,
    n: usize,
) -> u64 {
    let (addr, t) = echo_server(cfg.clone(), mode);
    let a = steady_state_allocations(addr, cfg, size, kind, warm_up, n);
    t.join().unwrap();
    a
}

/// The instrument itself: accepting a connection allocates (buffers, the core).
fn the_counter_sees_the_server_allocating() {
    let before = watched_allocations();
    let (addr, t) = echo_server(Config::default(), Mode::Send);
    let c = EchoClient::connect(addr, Config::default());
    let counted = watched_allocations() - before;
    c.close();
    t.join().unwrap();
    assert!(counted > 0);
}

// One test function: the counter is global to this test binary.
#[test]
fn ws_tokio_echo_server_allocates_nothing_per_message() {
    the_counter_sees_the_server_allocating();
    let mut report = Vec::new();
    for deflate in [false, true] {
        // Buffers are kept for reuse while a connection is busy and freed after
        // `release_buffers_after` of quiet: a scheduling pause on a loaded machine must not
        // count as quiet here.
        let cfg = Config::default()
            .deflate(deflate.then(DeflateConfig::default))
            .release_buffers_after(Duration::from_secs(3600));
        for mode in [Mode::Send, Mode::Feed] {
            for (size, warm_up, n) in [(16, 2000, 3000), (1024, 2000, 3000), (64 << 10, 300, 300)] {
                for kind in [MessageKind::Binary, MessageKind::Text] {
                    let a = server_allocations(cfg.clone(), mode, size, kind, warm_up, n);
                    report.push((size, kind, deflate, mode, a, n));
                }
            }
        }
    }
    eprintln!("allocations (size, kind, deflate, echo loop, total, messages): {report:?}");
    let bad: Vec<_> = report.iter().filter(|r| r.4 > 0).collect();
    assert!(
        bad.is_empty(),
        "allocations on the server thread in steady state \
         (size, kind, deflate, echo loop, total, messages): {bad:?} (all: {report:?})"
    );
}
