//! `wsx bench`: N connections, each keeping W messages in flight against an
//! echo server, for S seconds; prints messages/s, MB/s and latency.
//!
//! This file holds what every driver of the subcommand shares: the checks
//! of the arguments, the core configuration, the payload and its kind, the
//! progress bar, the summary (and the exit code it gives), and the dispatch
//! on `--driver`. Each driver lives in a file of its own that depends only
//! on this one (and on the crate's top-level modules), never on a sibling:
//!
//! - [`std`]: ws-std, one thread per connection;
//! - [`mio`]: every connection on one ws-mio event loop driven by
//!   the calling thread;
//! - [`tokio`]: one ws-tokio task per connection, all on one
//!   current-thread runtime driven by the calling thread.
//!
//! `--broadcast` is another benchmark (one publisher, N subscribers, every
//! delivery checked), in [`broadcast`], on one ws-mio event loop.
//!
//! Before any driver runs, [`run`] opens one probe connection (ws-std, the
//! same configuration and trust): a server that cannot be reached, refuses
//! the upgrade or is not trusted gives one clear error and exit code 1,
//! never a table of zeros.
//!
//! Every driver file has the same entry point,
//! `pub(super) fn run(a: &BenchArgs, tls: Option<Arc<rustls::ClientConfig>>) -> i32`
//! (`tls` is `--insecure` / `--ca`, or `None` for the driver's default
//! trust): it makes the same load, keeps
//! at most [`MAX_SAMPLES`] latency samples per connection, and ends with
//! [`report`].
//!
//! # Adding a driver
//!
//! Write `bench/NAME.rs` with that `run` (`tokio.rs` is the latest one),
//! declare it below (`mod NAME;`) and add its arm to the `match` in [`run`].
//! The match has no catch-all arm, so adding the variant to [`Driver`]
//! makes the compiler point at every subcommand that still lacks one. `run`
//! is synchronous: an async driver builds its runtime inside it and blocks
//! on its future.
//!
//! A module named `std` shadows the standard library in this file only:
//! paths to the standard library here start with `::std`, and the `tokio`
//! module shadows that crate the same way (`::tokio` here). Inside a driver
//! file `std::` and `tokio::` are the crates, as usual.

mod broadcast;
mod mio;
mod std;
mod tokio;

use ::std::io::{IsTerminal, Write};
use ::std::sync::Arc;
use ::std::time::Duration;

use ws_proto::MessageKind;

use crate::opts::{BenchArgs, Driver};

/// Most latency samples kept per connection.
const MAX_SAMPLES: usize = 1 << 20;

/// Runs the benchmark; returns the exit code.
pub fn run(a: BenchArgs) -> i32 {
    // Exit code 2: a bad argument; nothing was connected.
    if a.window == 0 || (!a.broadcast && (a.conns == 0 || a.secs <= 0.0)) {
        eprintln!("wsx: --conns, --window and --secs must be positive");
        return 2;
    }
    if a.http2 && (a.driver != Driver::Tokio || a.broadcast) {
        eprintln!("wsx: bench --http2 needs --driver tokio (and no --broadcast)");
        return 2;
    }
    if let Err(e) = ws_net::url::WsUrl::parse(&a.url) {
        eprintln!("wsx: {e}");
        return 2;
    }
    let tls = match crate::tls::client(&a.tls) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("wsx: {e}");
            return 2;
        }
    };
    // Exit code 1, once: the server cannot be used at all.
    if let Err(e) = probe(&a, tls.clone()) {
        let msg = e.to_string();
        eprintln!(
            "wsx: cannot open a WebSocket to {}: {msg}{}; nothing was measured",
            a.url,
            crate::tls::hint(&msg)
        );
        return 1;
    }
    if a.broadcast {
        return broadcast::run(&a, tls);
    }
    match a.driver {
        Driver::Std => self::std::run(&a, tls),
        Driver::Mio => self::mio::run(&a, tls),
        Driver::Tokio => self::tokio::run(&a, tls),
    }
}

/// Opens one connection with the benchmark's configuration and trust and
/// closes it (1000): the check that the server can be used at all.
fn probe(a: &BenchArgs, tls: Option<Arc<rustls::ClientConfig>>) -> Result<(), ws_std::Error> {
    let ws = ws_std::connect(&a.url, &std_options(config(a), tls))?;
    // Best effort: the server may close first or not answer the close.
    let _ = ws.close(ws_proto::CloseCode::NORMAL, "");
    Ok(())
}

/// ws-std client options with `tls` (the std driver and the probe).
fn std_options(
    config: ws_proto::Config,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> ws_std::ClientOptions {
    let opts = ws_std::ClientOptions::default().config(config);
    match tls {
        Some(t) => opts.tls(ws_std::TlsClientOptions::default().config(t)),
        None => opts,
    }
}

/// ws-mio connect options with `tls` (the mio driver and the broadcast
/// benchmark).
fn mio_options(
    config: &ws_proto::Config,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> ws_mio::ConnectOptions {
    let opts = ws_mio::ConnectOptions::new().config(config.clone());
    match tls {
        Some(t) => opts.tls(Arc::clone(t)),
        None => opts,
    }
}

/// Whether to draw the progress bar: not with `--quiet`; with `--progress`;
/// otherwise only when stderr is a terminal (never carriage returns in a
/// log).
fn show_progress(a: &BenchArgs) -> bool {
    !a.quiet && (a.progress || ::std::io::stderr().is_terminal())
}

/// The core configuration of every bench connection (every driver).
fn config(a: &BenchArgs) -> ws_proto::Config {
    let cfg = ws_proto::Config::default()
        .fragment_size(a.fragment_size.unwrap_or(usize::MAX))
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
fn kind(a: &BenchArgs) -> MessageKind {
    if a.text {
        MessageKind::Text
    } else {
        MessageKind::Binary
    }
}

/// Prints the summary (table row, and the csv line with `--csv`); returns
/// the exit code: 1 when nothing was echoed or anything failed.
fn report(
    a: &BenchArgs,
    msgs: u64,
    bytes: u64,
    elapsed: f64,
    mut lat: Vec<u32>,
    errors: u64,
) -> i32 {
    lat.sort_unstable();
    // Without samples there is no latency: "-" rather than NaN.
    let pct = |p: f64| {
        let ms = percentile_ms(&lat, p);
        if ms.is_nan() {
            "-".to_string()
        } else {
            format!("{ms:.3}")
        }
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
        pct(0.5),
        pct(0.99),
        pct(1.0),
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

/// Redraws the progress bar on stderr.
fn progress(elapsed: Duration, total: Duration, msgs: u64) {
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
    let _ = ::std::io::stderr().flush();
}

/// Printable, mildly compressible bytes (valid UTF-8, so text mode works).
fn make_payload(n: usize) -> Vec<u8> {
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

/// The `p` quantile (0..=1) of sorted latencies in microseconds, in
/// milliseconds (NaN when there are none).
pub(crate) fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() - 1) as f64 * p).round() as usize;
    sorted_us
        .get(i)
        .map_or(f64::NAN, |&us| f64::from(us) / 1000.0)
}
