//! `wsx bench --driver mio`: the same load as the std driver (N connections,
//! W messages in flight each, S seconds, same output), with every connection
//! on one ws-mio event loop driven by the calling thread, so the load
//! generator needs one core instead of N threads.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ws_mio::{ConnId, Ctx, EventLoop, Handler, Options};
use ws_proto::{CloseCode, Closed, Message, MessageKind, OpenInfo};

use super::{
    config, kind, make_payload, mio_options, progress, report, show_progress, MAX_SAMPLES,
};
use crate::opts::BenchArgs;

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Connections are being opened; nothing is sent yet.
    Opening,
    /// Every connection keeps `window` messages in flight.
    Running,
    /// Time is up: echoes are no longer counted, connections are closing.
    Stopping,
}

/// The load generator's side of the loop.
struct Bench {
    url: String,
    conns: usize,
    window: usize,
    kind: MessageKind,
    payload: Bytes,
    config: ws_proto::Config,
    /// `--insecure` / `--ca`, or the driver's default trust.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    phase: Phase,
    /// Connections that finished their handshake or failed to.
    settled: usize,
    /// Open connections and the send times of their messages in flight.
    open: HashMap<ConnId, VecDeque<Instant>>,
    started: Option<Instant>,
    messages: u64,
    bytes: u64,
    errors: u64,
    samples: Vec<u32>,
}

impl Bench {
    /// Sends one message on `id` and notes when.
    fn send_one(&mut self, ctx: &mut Ctx<'_>, id: ConnId) {
        match ctx.send(id, self.kind, self.payload.clone()) {
            Ok(()) => {
                if let Some(q) = self.open.get_mut(&id) {
                    q.push_back(Instant::now());
                }
            }
            Err(e) => {
                eprintln!("wsx: send on {id}: {e}");
                self.errors += 1;
                let _ = ctx.close(id, CloseCode::INTERNAL_ERROR, "send refused");
            }
        }
    }

    /// Once every connection has settled: fills every window and starts the clock.
    fn maybe_start(&mut self, ctx: &mut Ctx<'_>) {
        if self.phase != Phase::Opening || self.settled < self.conns {
            return;
        }
        self.phase = Phase::Running;
        let ids: Vec<ConnId> = self.open.keys().copied().collect();
        for id in ids {
            for _ in 0..self.window {
                self.send_one(ctx, id);
            }
        }
        self.started = Some(Instant::now());
    }
}

impl Handler for Bench {
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        for _ in 0..self.conns {
            let opts = mio_options(&self.config, self.tls.as_ref());
            if let Err(e) = ctx.connect(&self.url, opts) {
                eprintln!("wsx: {e}");
                self.errors += 1;
                self.settled += 1;
            }
        }
        self.maybe_start(ctx);
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &OpenInfo) {
        self.open
            .insert(id, VecDeque::with_capacity(self.window.min(1024)));
        self.settled += 1;
        self.maybe_start(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        if self.phase != Phase::Running {
            return;
        }
        if m.kind != self.kind || m.data.len() != self.payload.len() {
            eprintln!("wsx: {id}: the echo differs from what was sent");
            self.errors += 1;
        }
        let sent = self.open.get_mut(&id).and_then(VecDeque::pop_front);
        if let Some(t) = sent {
            if self.samples.len() < MAX_SAMPLES {
                self.samples
                    .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
        }
        self.messages += 1;
        self.bytes += self.payload.len() as u64;
        self.send_one(ctx, id);
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, id: ConnId, c: &Closed) {
        let was_open = self.open.remove(&id).is_some();
        if self.phase == Phase::Stopping {
            return;
        }
        // Before the end, any close is a failure (the server never closes first).
        if let Some(e) = &c.error {
            eprintln!("wsx: {e}");
        } else {
            eprintln!("wsx: the server closed: {}", crate::describe::closed(c));
        }
        self.errors += 1;
        if !was_open {
            self.settled += 1;
            self.maybe_start(ctx);
        }
    }
}

/// Runs the benchmark on one mio loop; returns the exit code.
pub(super) fn run(a: &BenchArgs, tls: Option<std::sync::Arc<rustls::ClientConfig>>) -> i32 {
    let bench = Bench {
        url: a.url.clone(),
        conns: a.conns,
        window: a.window,
        kind: kind(a),
        payload: Bytes::from(make_payload(a.size)),
        config: config(a),
        tls,
        phase: Phase::Opening,
        settled: 0,
        open: HashMap::with_capacity(a.conns),
        started: None,
        messages: 0,
        bytes: 0,
        errors: 0,
        samples: Vec::with_capacity(MAX_SAMPLES.min(1 << 16)),
    };
    let options = Options::default()
        .config(config(a))
        .max_connections(a.conns + 16);
    let mut ev = match EventLoop::new(options, bench) {
        Ok(ev) => ev,
        Err(e) => {
            eprintln!("wsx: {e}");
            return 1;
        }
    };
    let total = Duration::from_secs_f64(a.secs);
    let tick = Duration::from_millis(50);
    // Opening: bounded by the handshake timeout (plus slack).
    let open_deadline = Instant::now() + config(a).handshake_timeout + Duration::from_secs(5);
    let turn = |ev: &mut EventLoop<Bench>| match ev.turn(Some(tick)) {
        Ok(running) => running,
        Err(e) => {
            eprintln!("wsx: {e}");
            false
        }
    };
    while ev.handler().started.is_none() && Instant::now() < open_deadline {
        if !turn(&mut ev) {
            break;
        }
    }
    let Some(start) = ev.handler().started else {
        eprintln!("wsx: the connections did not open in time");
        return 1;
    };
    if ev.handler().open.is_empty() {
        eprintln!("wsx: no connection opened");
        return 1;
    }
    let show = show_progress(a);
    let mut last_progress = Instant::now();
    while start.elapsed() < total {
        if !turn(&mut ev) {
            break;
        }
        if show && last_progress.elapsed() >= Duration::from_millis(250) {
            last_progress = Instant::now();
            progress(start.elapsed(), total, ev.handler().messages);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let (msgs, bytes) = (ev.handler().messages, ev.handler().bytes);
    ev.handler_mut().phase = Phase::Stopping;
    if show {
        progress(start.elapsed(), total, msgs);
        eprintln!();
    }
    // Close every connection (1000) and wait for the closes, at most 2 s.
    ev.with_ctx(|b, ctx| {
        for id in b.open.keys() {
            let _ = ctx.close(*id, CloseCode::NORMAL, "bench done");
        }
    });
    let close_deadline = Instant::now() + Duration::from_secs(2);
    while !ev.handler().open.is_empty() && Instant::now() < close_deadline {
        if !turn(&mut ev) {
            break;
        }
    }
    let b = ev.handler_mut();
    let samples = std::mem::take(&mut b.samples);
    report(a, msgs, bytes, elapsed, samples, b.errors)
}
