//! `wsx bench`: N connections, each keeping W messages in flight against an
//! echo server, for S seconds; prints messages/s, MB/s and latency.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use ws_proto::{CloseCode, MessageKind};
use ws_std::{ClientOptions, Received};

use crate::opts::{BenchArgs, Driver};

/// Most latency samples kept per connection.
pub(crate) const MAX_SAMPLES: usize = 1 << 20;

struct Totals {
    messages: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    latencies: Mutex<Vec<u32>>,
}

/// Runs the benchmark; returns the exit code.
pub fn run(a: BenchArgs) -> i32 {
    if a.conns == 0 || a.window == 0 || a.secs <= 0.0 {
        eprintln!("wsx: --conns, --window and --secs must be positive");
        return 2;
    }
    if a.driver == Driver::Mio {
        return crate::bench_mio::run(&a);
    }
    let opts = ClientOptions::default().config(config(&a));
    let payload = bytes::Bytes::from(make_payload(a.size));
    let kind = kind(&a);
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
    barrier.wait();
    let start = Instant::now();
    let total = Duration::from_secs_f64(a.secs);
    while start.elapsed() < total {
        std::thread::sleep(Duration::from_millis(250).min(total.saturating_sub(start.elapsed())));
        if !a.quiet {
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
    if !a.quiet {
        eprintln!();
    }
    let lat = match totals.latencies.lock() {
        Ok(l) => l.clone(),
        Err(_) => Vec::new(),
    };
    let errors = totals.errors.load(Ordering::SeqCst);
    report(&a, msgs, bytes, elapsed, lat, errors)
}

/// The core configuration of every bench connection (both drivers).
pub(crate) fn config(a: &BenchArgs) -> ws_proto::Config {
    let cfg = ws_proto::Config::default()
        .fragment_size(a.fragment_size)
        .limits(
            ws_proto::Limits::default()
                .max_frame_payload(a.size.max(1 << 20) * 2)
                .max_message_size(a.size.max(1 << 20) * 2)
                .max_send_queue((a.size * a.window * 2).max(16 << 20)),
        );
    if a.deflate {
        cfg.deflate(Some(ws_proto::DeflateConfig::default()))
    } else {
        cfg
    }
}

/// Text or binary, per `--text`.
pub(crate) fn kind(a: &BenchArgs) -> MessageKind {
    if a.text {
        MessageKind::Text
    } else {
        MessageKind::Binary
    }
}

/// Prints the summary (table row, and the csv line with `--csv`); returns
/// the exit code: 1 when nothing was echoed or anything failed.
pub(crate) fn report(
    a: &BenchArgs,
    msgs: u64,
    bytes: u64,
    elapsed: f64,
    mut lat: Vec<u32>,
    errors: u64,
) -> i32 {
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() - 1) as f64 * p).round() as usize;
        f64::from(lat[i]) / 1000.0
    };
    // One set of figures, printed as a table row and, with --csv, as a line.
    let cols = [
        a.conns.to_string(),
        a.size.to_string(),
        a.window.to_string(),
        if a.deflate { "on" } else { "off" }.to_string(),
        msgs.to_string(),
        format!("{:.0}", msgs as f64 / elapsed),
        format!("{:.1}", bytes as f64 / elapsed / 1e6),
        format!("{:.3}", pct(0.5)),
        format!("{:.3}", pct(0.99)),
        format!("{:.3}", pct(1.0)),
        errors.to_string(),
    ];
    println!("| conns | size | window | deflate | messages | msg/s | MB/s | p50 ms | p99 ms | max ms | errors |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!("| {} |", cols.join(" | "));
    if a.csv {
        println!("csv,{}", cols.join(","));
    }
    if msgs == 0 || errors > 0 {
        1
    } else {
        0
    }
}

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

pub(crate) fn progress(elapsed: Duration, total: Duration, msgs: u64) {
    let frac = (elapsed.as_secs_f64() / total.as_secs_f64()).min(1.0);
    let width = 30;
    let done = (frac * width as f64) as usize;
    let rate = msgs as f64 / elapsed.as_secs_f64().max(1e-3);
    eprint!(
        "\r[{}{}] {:5.1}/{:.1} s  {:>10.0} msg/s",
        "#".repeat(done),
        ".".repeat(width - done),
        elapsed.as_secs_f64(),
        total.as_secs_f64(),
        rate
    );
    let _ = std::io::stderr().flush();
}

/// Printable, mildly compressible bytes (valid UTF-8, so text mode works).
pub(crate) fn make_payload(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_F491;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b'a' + (x % 16) as u8
        })
        .collect()
}
