//! Heap held per idle open connection by a ws-tokio server, and the size of the handshake
//! futures a server spawns one task for per connection.
//!
//! The server runs on a current-thread tokio runtime on its own thread: the runtime, the IO
//! driver, every connection's task and the core all allocate on that thread, and the kit's
//! counting global allocator keeps that thread's heap balance (bytes allocated minus bytes
//! freed, read through the kit's `HeapProbe`). Each connection's task is `accept_with`, then an echo loop. After a
//! warm-up connection, [`CONNECTIONS`] clients open a connection each, exchange one small
//! message (so the receive and write buffers are made) and go quiet; the balance is read again
//! once the connections have freed what an idle one does not need (`release_buffers_after`).
//! The difference divided by the connections is what each idle connection costs on the heap:
//! its task (the future), the shared connection state with the core, the runtime's IO
//! registration and the timer.
//!
//! Nothing here depends on timing: every wait is for a condition, bounded only to fail instead
//! of hanging.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ws_proto::Config;
use ws_testkit::alloc::installed;
use ws_testkit::idle::{echo_hi, open_raw, HeapProbe};
use ws_tokio::Decision;

mod common;

ws_testkit::counting_allocator!();

/// Idle connections held at once: one client and one server socket each, well under a default
/// open-file limit of 1,024.
const CONNECTIONS: usize = 400;

/// The bound on heap bytes per idle connection. Measured at 2,264 in a debug build: the
/// connection state behind its `Arc<Mutex>` (the core included, 1,114), the task (the future
/// of `accept_with` then the echo loop, with tokio's task header, 892) and the runtime's IO
/// registration (256). Before the handshake's state moved to the heap, the write buffer and
/// the core's frame queue were freed when quiet and the configuration was shared, it was
/// 4,064 here, and about 13 KB per connection in `wsx serve --driver tokio`, most of that a
/// task future sized for TLS and HTTP/2 paths a plain connection never takes.
const MAX_HEAP_PER_IDLE_CONNECTION: isize = 2_600;

/// How long a quiet connection keeps its buffers.
const RELEASE_AFTER: Duration = Duration::from_millis(200);

/// One connection's task: the handshake, then an echo until the stream ends.
async fn serve(tcp: tokio::net::TcpStream, held: Arc<AtomicUsize>, config: Arc<Config>) {
    held.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut ws) = ws_tokio::accept_with(tcp, config, |_| Decision::accept()).await {
        use futures_util::SinkExt;
        while let Some(next) = ws.next().await {
            if let Ok(m) = next {
                let _ = ws.send(m).await;
            }
        }
    }
    held.fetch_sub(1, Ordering::SeqCst);
}

/// Opens a connection (no client state on the server thread) and echoes one message, so the
/// receive and write buffers are made.
fn open(addr: SocketAddr) -> TcpStream {
    let mut s = open_raw(addr);
    echo_hi(&mut s);
    s
}

#[test]
fn an_idle_open_connection_holds_a_few_kib_of_heap() {
    assert!(installed(), "the counting allocator is this binary's");
    let probe = Arc::new(HeapProbe::default());
    let sh = probe.clone();
    let (addr, server) = common::server_thread(
        || {},
        move |listener| async move {
            // One configuration for every connection, as a server shares it.
            let config = Arc::new(Config::default().release_buffers_after(RELEASE_AFTER));
            let held = Arc::new(AtomicUsize::new(0));
            let end = Instant::now() + Duration::from_secs(300);
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while !sh.stopped() && Instant::now() < end {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((tcp, _)) = accepted {
                            tokio::spawn(serve(tcp, held.clone(), config.clone()));
                        }
                    }
                    _ = tick.tick() => sh.publish(held.load(Ordering::SeqCst)),
                }
            }
        },
    );

    // Two warm-up connections: what is made once per runtime (the IO driver's slab pages, the
    // timer wheel, lazy statics) is not counted. A connection costs at least its core (700 B).
    probe.per_idle_connection(
        CONNECTIONS,
        2,
        &|| open(addr),
        700,
        MAX_HEAP_PER_IDLE_CONNECTION,
    );
    probe.stop();
    server.join().unwrap();
}

/// The handshake futures hold the connection's state on the heap, not inline: a server that
/// spawns a task per connection (`accept_with`, then its loop) gets a small task, and an idle
/// connection does not keep a handshake-sized future.
#[test]
fn handshake_futures_are_small() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (a, b) = tokio::io::duplex(64);
        let accept = ws_tokio::accept_with(a, Config::default(), |_| Decision::accept());
        let accept_size = std::mem::size_of_val(&accept);
        let request = ws_proto::ClientRequest::new("127.0.0.1", "/");
        let client = ws_tokio::client(b, &request, Config::default());
        let client_size = std::mem::size_of_val(&client);
        eprintln!("accept_with future: {accept_size} B, client future: {client_size} B");
        // Config itself is held until the first poll; the connection state (over 1 KiB) is not.
        let bound = std::mem::size_of::<Config>() + 256;
        assert!(
            accept_size <= bound,
            "accept_with future {accept_size} B (bound {bound})"
        );
        assert!(
            client_size <= bound,
            "client future {client_size} B (bound {bound})"
        );
    });
}
