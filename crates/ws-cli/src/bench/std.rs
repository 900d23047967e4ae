//! `wsx bench --driver std`: one ws-std connection per thread; the threads
//! start together (a barrier) and add their counts to shared totals.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use ws_proto::{CloseCode, MessageKind};
use ws_std::{ClientOptions, Received};

use super::{
    config, kind, make_payload, progress, report, show_progress, std_options, MAX_SAMPLES,
};
use crate::opts::BenchArgs;

/// What the connection threads count, together.
struct Totals {
    messages: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    latencies: Mutex<Vec<u32>>,
}

/// Runs the benchmark on one thread per connection; returns the exit code.
pub(super) fn run(a: &BenchArgs, tls: Option<Arc<rustls::ClientConfig>>) -> i32 {
    let opts = std_options(config(a), tls);
    let payload = bytes::Bytes::from(make_payload(a.size));
    let kind = kind(a);
    let totals = Arc::new(Totals {
        messages: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        latencies: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(a.conns + 1));
    let mut threads = Vec::new();
    for _ in 0..a.conns {
        let (url, opts, payload, totals, stop, barrier) = (
            a.url.clone(),
            opts.clone(),
            payload.clone(),
            totals.clone(),
            stop.clone(),
            barrier.clone(),
        );
        let window = a.window;
        threads.push(std::thread::spawn(move || {
            worker(&url, &opts, kind, payload, window, &totals, &stop, &barrier)
        }));
    }
    let show = show_progress(a);
    barrier.wait();
    let start = Instant::now();
    let total = Duration::from_secs_f64(a.secs);
    while start.elapsed() < total {
        std::thread::sleep(Duration::from_millis(250).min(total.saturating_sub(start.elapsed())));
        if show {
            progress(
                start.elapsed(),
                total,
                totals.messages.load(Ordering::Relaxed),
            );
        }
    }
    stop.store(true, Ordering::SeqCst);
    let elapsed = start.elapsed().as_secs_f64();
    let msgs = totals.messages.load(Ordering::SeqCst);
    let bytes = totals.bytes.load(Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    if show {
        eprintln!();
    }
    let lat = match totals.latencies.lock() {
        Ok(l) => l.clone(),
        Err(_) => Vec::new(),
    };
    let errors = totals.errors.load(Ordering::SeqCst);
    report(a, msgs, bytes, elapsed, lat, errors)
}

/// One connection: connects, waits for the others, keeps `window` messages
/// in flight until `stop`, then closes and adds its samples to `totals`.
#[allow(clippy::too_many_arguments)]
fn worker(
    url: &str,
    opts: &ClientOptions,
    kind: MessageKind,
    payload: bytes::Bytes,
    window: usize,
    totals: &Totals,
    stop: &AtomicBool,
    barrier: &Barrier,
) {
    let ws = ws_std::connect(url, opts);
    barrier.wait();
    let mut ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("wsx: {e}");
            totals.errors.fetch_add(1, Ordering::SeqCst);
            return;
        }
    };
    let mut in_flight = std::collections::VecDeque::with_capacity(window);
    let mut samples = Vec::with_capacity(4096);
    for _ in 0..window {
        if ws.send(kind, payload.clone()).is_err() {
            totals.errors.fetch_add(1, Ordering::SeqCst);
            return;
        }
        in_flight.push_back(Instant::now());
    }
    let size = payload.len() as u64;
    while !stop.load(Ordering::Relaxed) {
        match ws.recv() {
            Ok(Received::Message(_)) => {
                if let Some(t) = in_flight.pop_front() {
                    if samples.len() < MAX_SAMPLES {
                        samples.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                }
                totals.messages.fetch_add(1, Ordering::Relaxed);
                totals.bytes.fetch_add(size, Ordering::Relaxed);
                if ws.send(kind, payload.clone()).is_err() {
                    break;
                }
                in_flight.push_back(Instant::now());
            }
            Ok(Received::Closed(_)) | Err(_) => {
                totals.errors.fetch_add(1, Ordering::SeqCst);
                break;
            }
            Ok(_) => {}
        }
    }
    let _ = ws.close(CloseCode::NORMAL, "bench done");
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match ws.recv() {
            Ok(Received::Closed(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if let Ok(mut l) = totals.latencies.lock() {
        l.extend_from_slice(&samples);
    }
}
