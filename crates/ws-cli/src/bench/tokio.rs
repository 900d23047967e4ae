//! `wsx bench --driver tokio`: the same load as the other drivers (N
//! connections, W messages in flight each, S seconds, same output), one
//! ws-tokio task per connection, all on one current-thread runtime driven by
//! the calling thread (like the mio driver's one event loop, the load
//! generator needs one core). The tasks connect, start together (a barrier),
//! `feed` each next message as an echo comes back (written when the stream
//! next waits for input), and add their counts to shared totals.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Barrier};
use ws_proto::{CloseCode, Message};
use ws_tokio::{ConnectOptions, TlsOptions, WebSocketStream};

use super::{config, kind, make_payload, progress, report, show_progress, MAX_SAMPLES};
use crate::opts::BenchArgs;

/// How long a connection may take to close once time is up.
const CLOSE_LIMIT: Duration = Duration::from_secs(2);

/// What the connection tasks count, together.
#[derive(Default)]
struct Totals {
    messages: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    latencies: Mutex<Vec<u32>>,
}

impl Totals {
    fn error(&self) {
        self.errors.fetch_add(1, Ordering::SeqCst);
    }
}

/// What every connection task is given.
struct Load {
    url: String,
    options: ConnectOptions,
    /// `--http2`: every connection a WebSocket on one shared HTTP/2
    /// connection (these options hold its pool).
    http2: Option<ws_tokio::h2::Http2Options>,
    message: Message,
    window: usize,
    totals: Totals,
    barrier: Barrier,
}

/// Runs the benchmark on a current-thread runtime; returns the exit code.
pub(super) fn run(a: &BenchArgs, tls: Option<Arc<rustls::ClientConfig>>) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsx: cannot start the tokio runtime: {e}");
            return 1;
        }
    };
    rt.block_on(bench(a, tls))
}

async fn bench(a: &BenchArgs, tls: Option<Arc<rustls::ClientConfig>>) -> i32 {
    let mut options = ConnectOptions::default().config(config(a));
    if let Some(t) = tls {
        options = options.tls(TlsOptions::default().config(t));
    }
    let show = show_progress(a);
    let load = Arc::new(Load {
        url: a.url.clone(),
        options,
        http2: a.http2.then(|| {
            let secure = a
                .url
                .get(..6)
                .is_some_and(|p| p.eq_ignore_ascii_case("wss://"));
            ws_tokio::h2::Http2Options::default().mode(if secure {
                ws_tokio::h2::Http2Mode::Force
            } else {
                ws_tokio::h2::Http2Mode::PriorKnowledge
            })
        }),
        message: Message {
            kind: kind(a),
            data: bytes::Bytes::from(make_payload(a.size)),
        },
        window: a.window,
        totals: Totals::default(),
        barrier: Barrier::new(a.conns + 1),
    });
    let (stop_tx, stop) = watch::channel(false);
    let tasks: Vec<_> = (0..a.conns)
        .map(|_| tokio::spawn(worker(Arc::clone(&load), stop.clone())))
        .collect();
    load.barrier.wait().await;
    let start = Instant::now();
    let total = Duration::from_secs_f64(a.secs);
    let totals = &load.totals;
    while start.elapsed() < total {
        tokio::time::sleep(Duration::from_millis(250).min(total.saturating_sub(start.elapsed())))
            .await;
        if show {
            progress(
                start.elapsed(),
                total,
                totals.messages.load(Ordering::Relaxed),
            );
        }
    }
    let _ = stop_tx.send(true);
    let elapsed = start.elapsed().as_secs_f64();
    let msgs = totals.messages.load(Ordering::SeqCst);
    let bytes = totals.bytes.load(Ordering::SeqCst);
    for t in tasks {
        if t.await.is_err() {
            totals.error();
        }
    }
    if show {
        eprintln!();
    }
    let lat = match totals.latencies.lock() {
        Ok(mut l) => std::mem::take(&mut *l),
        Err(_) => Vec::new(),
    };
    let errors = totals.errors.load(Ordering::SeqCst);
    report(a, msgs, bytes, elapsed, lat, errors)
}

/// One connection: connects, waits for the others, keeps `window` messages
/// in flight until `stop`, then closes (within [`CLOSE_LIMIT`]) and adds its
/// samples to the totals.
async fn worker(load: Arc<Load>, stop: watch::Receiver<bool>) {
    let connected = match &load.http2 {
        Some(http2) => ws_tokio::h2::connect_with(&load.url, &load.options, http2)
            .await
            .map(Ok),
        None => ws_tokio::connect_with(&load.url, &load.options)
            .await
            .map(Err),
    };
    load.barrier.wait().await;
    match connected {
        Ok(Ok(ws)) => load_on(&load, ws, stop).await,
        Ok(Err(ws)) => load_on(&load, ws, stop).await,
        Err(e) => {
            eprintln!("wsx: {e}");
            load.totals.error();
        }
    }
}

/// The load on one open connection (HTTP/1.1 or an HTTP/2 stream).
async fn load_on<S: AsyncRead + AsyncWrite + Unpin>(
    load: &Load,
    mut ws: WebSocketStream<S>,
    mut stop: watch::Receiver<bool>,
) {
    let totals = &load.totals;
    let (kind, size) = (load.message.kind, load.message.data.len());
    let mut in_flight = VecDeque::with_capacity(load.window);
    let mut samples = Vec::with_capacity(4096);
    for _ in 0..load.window {
        if ws.feed(load.message.clone()).await.is_err() {
            totals.error();
            return;
        }
        in_flight.push_back(Instant::now());
    }
    if ws.flush().await.is_err() {
        totals.error();
        return;
    }
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            next = ws.next() => match next {
                Some(Ok(m)) => {
                    if m.kind != kind || m.data.len() != size {
                        eprintln!("wsx: the echo differs from what was sent");
                        totals.error();
                    }
                    if let Some(t) = in_flight.pop_front() {
                        if samples.len() < MAX_SAMPLES {
                            samples.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                        }
                    }
                    totals.messages.fetch_add(1, Ordering::Relaxed);
                    totals.bytes.fetch_add(size as u64, Ordering::Relaxed);
                    if ws.feed(load.message.clone()).await.is_err() {
                        totals.error();
                        break;
                    }
                    in_flight.push_back(Instant::now());
                }
                // Before the end, any close is a failure (the server never
                // closes first).
                Some(Err(e)) => {
                    eprintln!("wsx: {e}");
                    totals.error();
                    break;
                }
                None => {
                    if let Some(c) = ws.close_info() {
                        eprintln!("wsx: the server closed: {}", crate::describe::closed(&c));
                    }
                    totals.error();
                    break;
                }
            }
        }
    }
    let _ = tokio::time::timeout(CLOSE_LIMIT, async {
        let _ = ws.close_with(CloseCode::NORMAL, "bench done").await;
        while ws.next().await.is_some() {}
    })
    .await;
    if let Ok(mut l) = totals.latencies.lock() {
        l.extend_from_slice(&samples);
    }
}
