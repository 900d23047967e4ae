//! `wsx bench --broadcast`: one publisher and N subscribers against a
//! broadcast room (`wsx serve --broadcast`, or a peer's room), every
//! delivery checked; prints deliveries/s.
//!
//! Every connection runs on one ws-mio event loop driven by the calling
//! thread (whatever `--driver` says). The run:
//!
//! 1. opens the subscribers (at most [`CONNECTING`] handshakes at a time,
//!    spread over the `--source` addresses in turn), then the publisher;
//! 2. sync: the publisher sends a sync message every [`SYNC_EVERY`] until
//!    every subscriber has received one, so the server has registered every
//!    subscriber before the clock starts (a server may add a connection to
//!    its room a little after the handshake);
//! 3. publishing: data message `k` (0-based) goes out once message
//!    `k - window` has reached every subscriber, so at most `--window`
//!    messages are under way and the server's queues stay bounded; the
//!    clock runs from the first data message sent to the last delivery.
//!
//! Each message starts with a tag byte (`S` sync, `D` data) and its number
//! (u64, little endian); the rest is the shared payload, checked too. A
//! subscriber must receive data messages `0, 1, 2...` in order, once each: a
//! gap counts the skipped messages as lost (they count as done for the
//! window, so one loss does not stall the run), an older number counts as a
//! duplicate. Messages the publisher receives (a server that relays to the
//! sender too) are counted apart and are not deliveries.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ws_mio::{ConnId, Ctx, EventLoop, Handler, Options};
use ws_proto::{CloseCode, Closed, Message, MessageKind, OpenInfo};

use super::{config, kind, make_payload, MAX_SAMPLES};
use crate::opts::BenchArgs;

/// Most handshakes under way at once while connecting.
const CONNECTING: usize = 256;
/// Interval between sync messages until every subscriber has one.
const SYNC_EVERY: Duration = Duration::from_millis(100);
/// Tag of a sync message.
const SYNC: u8 = b'S';
/// Tag of a data message.
const DATA: u8 = b'D';
/// Bytes of the header: tag and number.
const HEADER: usize = 9;
/// Errors printed one by one; past it they are only counted.
const PRINTED_ERRORS: u64 = 10;

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Subscribers, then the publisher, are being opened.
    Connecting,
    /// Sync messages until every subscriber has one.
    Syncing,
    /// Data messages under the window.
    Publishing,
    /// Every data message reached every subscriber (or the run failed).
    Done,
}

/// One subscriber's progress.
struct Sub {
    /// A sync message arrived.
    synced: bool,
    /// Number of the next data message expected.
    next: u64,
}

/// The load generator's side of the loop.
struct Broadcast {
    url: String,
    subscribers: usize,
    messages: u64,
    window: usize,
    kind: MessageKind,
    /// The message template (header overwritten per message).
    payload: Vec<u8>,
    config: ws_proto::Config,
    /// `--insecure` / `--ca`, or the driver's default trust.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    sources: Vec<IpAddr>,
    phase: Phase,
    /// Subscribers asked for so far.
    requested: usize,
    /// Handshakes under way (subscribers).
    pending: usize,
    /// Open subscribers.
    subs: HashMap<ConnId, Sub>,
    /// Subscribers that failed to open or closed.
    failed: usize,
    publisher: Option<ConnId>,
    publisher_open: bool,
    synced: usize,
    /// Subscribers each message must reach: those open when publishing
    /// starts (a subscriber that failed to open is an error already).
    needed: usize,
    sync_sent: u64,
    last_sync: Option<Instant>,
    /// Number of the oldest data message not yet at every subscriber.
    base: u64,
    /// Next data message to send.
    sent: u64,
    /// Per message under way from `base`: subscribers it reached (or lost
    /// at) and when it was sent.
    inflight: VecDeque<(usize, Instant)>,
    started: Option<Instant>,
    last_delivery: Option<Instant>,
    deliveries: u64,
    lost: u64,
    duplicates: u64,
    /// Data messages the publisher received back.
    echoes: u64,
    errors: u64,
    samples: Vec<u32>,
    /// Every how many deliveries a latency sample is kept.
    sample_every: u64,
}

impl Broadcast {
    /// Counts an error, printing the first few.
    fn error(&mut self, msg: &str) {
        self.errors += 1;
        if self.errors <= PRINTED_ERRORS {
            eprintln!("wsx: {msg}");
        }
    }

    /// Message `n` with `tag`.
    fn message(&self, tag: u8, n: u64) -> Bytes {
        let mut m = self.payload.clone();
        m[0] = tag;
        m[1..HEADER].copy_from_slice(&n.to_le_bytes());
        Bytes::from(m)
    }

    /// Opens subscribers up to the handshake limit; then the publisher.
    fn connect_more(&mut self, ctx: &mut Ctx<'_>) {
        while self.requested < self.subscribers && self.pending < CONNECTING {
            let mut opts = super::mio_options(&self.config, self.tls.as_ref());
            if !self.sources.is_empty() {
                opts = opts.bind(self.sources[self.requested % self.sources.len()]);
            }
            self.requested += 1;
            match ctx.connect(&self.url, opts) {
                Ok(_) => self.pending += 1,
                Err(e) => {
                    self.error(&format!("connect: {e}"));
                    self.failed += 1;
                }
            }
        }
        if self.requested == self.subscribers && self.pending == 0 && self.publisher.is_none() {
            let opts = super::mio_options(&self.config, self.tls.as_ref());
            match ctx.connect(&self.url, opts) {
                Ok(id) => self.publisher = Some(id),
                Err(e) => {
                    self.error(&format!("connect (publisher): {e}"));
                    self.phase = Phase::Done;
                }
            }
        }
    }

    /// Sends a sync message when one is due.
    fn sync(&mut self, ctx: &mut Ctx<'_>) {
        if self.phase != Phase::Syncing || self.last_sync.is_some_and(|t| t.elapsed() < SYNC_EVERY)
        {
            return;
        }
        let Some(p) = self.publisher else { return };
        let m = self.message(SYNC, self.sync_sent);
        self.sync_sent += 1;
        self.last_sync = Some(Instant::now());
        if let Err(e) = ctx.send(p, self.kind, m) {
            self.error(&format!("sync send: {e}"));
            self.phase = Phase::Done;
        }
    }

    /// Starts publishing once every subscriber is synced.
    fn maybe_publish(&mut self, ctx: &mut Ctx<'_>) {
        if self.phase == Phase::Syncing && self.synced == self.subs.len() && !self.subs.is_empty() {
            self.phase = Phase::Publishing;
            self.needed = self.subs.len();
            self.started = Some(Instant::now());
            self.publish(ctx);
        }
    }

    /// Sends data messages while the window allows.
    fn publish(&mut self, ctx: &mut Ctx<'_>) {
        let Some(p) = self.publisher else { return };
        while self.phase == Phase::Publishing
            && self.sent < self.messages
            && self.sent < self.base + self.window as u64
        {
            let m = self.message(DATA, self.sent);
            if let Err(e) = ctx.send(p, self.kind, m) {
                self.error(&format!("publish: {e}"));
                self.phase = Phase::Done;
                return;
            }
            self.inflight.push_back((0, Instant::now()));
            self.sent += 1;
        }
    }

    /// Message `n` reached one more subscriber (or was lost there).
    fn reached(&mut self, n: u64, delivered: bool) {
        let Some(slot) = n
            .checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.inflight.get_mut(i))
        else {
            return;
        };
        slot.0 += 1;
        if delivered {
            self.deliveries += 1;
            self.last_delivery = Some(Instant::now());
            if self.deliveries % self.sample_every == 0 && self.samples.len() < MAX_SAMPLES {
                let us = slot.1.elapsed().as_micros();
                self.samples.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
        }
    }

    /// Retires the messages at the front that reached every subscriber.
    fn advance(&mut self, ctx: &mut Ctx<'_>) {
        let mut moved = false;
        while self
            .inflight
            .front()
            .is_some_and(|(n, _)| *n >= self.needed)
        {
            self.inflight.pop_front();
            self.base += 1;
            moved = true;
        }
        if self.base >= self.messages && self.phase == Phase::Publishing {
            self.phase = Phase::Done;
        } else if moved {
            self.publish(ctx);
        }
    }

    /// A message on subscriber `id`.
    fn on_subscriber(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: &Message) {
        if m.data.len() != self.payload.len()
            || m.kind != self.kind
            || m.data[HEADER..] != self.payload[HEADER..]
        {
            self.error(&format!("{id}: a message differs from what was published"));
            return;
        }
        let n = u64::from_le_bytes(m.data[1..HEADER].try_into().unwrap_or_default());
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        match m.data[0] {
            SYNC => {
                if !sub.synced {
                    sub.synced = true;
                    self.synced += 1;
                    self.maybe_publish(ctx);
                }
            }
            DATA if n == sub.next => {
                sub.next += 1;
                self.reached(n, true);
                self.advance(ctx);
            }
            DATA if n > sub.next => {
                let from = sub.next;
                sub.next = n + 1;
                self.lost += n - from;
                self.error(&format!("{id}: messages {from}..{n} lost"));
                for k in from..n {
                    self.reached(k, false);
                }
                self.reached(n, true);
                self.advance(ctx);
            }
            DATA => {
                self.duplicates += 1;
                self.error(&format!("{id}: message {n} again or out of order"));
            }
            _ => self.error(&format!("{id}: unknown message tag")),
        }
    }
}

impl Handler for Broadcast {
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        self.connect_more(ctx);
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &OpenInfo) {
        if Some(id) == self.publisher {
            self.publisher_open = true;
            if self.phase == Phase::Connecting {
                self.phase = Phase::Syncing;
                self.sync(ctx);
            }
            return;
        }
        self.pending = self.pending.saturating_sub(1);
        self.subs.insert(
            id,
            Sub {
                synced: false,
                next: 0,
            },
        );
        self.connect_more(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        if Some(id) == self.publisher {
            if m.data.first() == Some(&DATA) {
                self.echoes += 1;
            }
            return;
        }
        self.on_subscriber(ctx, id, &m);
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, id: ConnId, c: &Closed) {
        if self.phase == Phase::Done {
            self.subs.remove(&id);
            if Some(id) == self.publisher {
                self.publisher_open = false;
            }
            return;
        }
        let why = match &c.error {
            Some(e) => e.to_string(),
            None => format!("the server closed: {}", crate::describe::closed(c)),
        };
        if Some(id) == self.publisher {
            self.publisher_open = false;
            self.error(&format!("publisher: {why}"));
            self.phase = Phase::Done;
        } else if self.subs.remove(&id).is_some() {
            // An open subscriber lost: the run cannot complete.
            self.error(&format!("{id}: {why}"));
            self.phase = Phase::Done;
        } else {
            // A handshake that failed.
            self.pending = self.pending.saturating_sub(1);
            self.failed += 1;
            self.error(&format!("{id}: {why}"));
            self.connect_more(ctx);
        }
    }
}

/// Runs the broadcast benchmark on one mio loop; returns the exit code.
pub(super) fn run(a: &BenchArgs, tls: Option<std::sync::Arc<rustls::ClientConfig>>) -> i32 {
    if a.subscribers == 0 || a.messages == 0 || a.timeout <= 0.0 {
        eprintln!("wsx: --subscribers, --messages and --timeout must be positive");
        return 2;
    }
    if a.size < HEADER {
        eprintln!("wsx: --broadcast needs --size {HEADER} or more (tag and number)");
        return 2;
    }
    let total = (a.subscribers as u64).saturating_mul(a.messages);
    let mut cfg = config(a);
    // Every subscriber's window of messages, and more, may wait at once.
    cfg.limits.max_send_queue = cfg.limits.max_send_queue.max(a.size * a.window * 4);
    let b = Broadcast {
        url: a.url.clone(),
        subscribers: a.subscribers,
        messages: a.messages,
        window: a.window,
        kind: kind(a),
        payload: make_payload(a.size),
        config: cfg.clone(),
        tls,
        sources: a.sources.clone(),
        phase: Phase::Connecting,
        requested: 0,
        pending: 0,
        subs: HashMap::with_capacity(a.subscribers),
        failed: 0,
        publisher: None,
        publisher_open: false,
        synced: 0,
        needed: a.subscribers,
        sync_sent: 0,
        last_sync: None,
        base: 0,
        sent: 0,
        inflight: VecDeque::with_capacity(a.window.min(1 << 16)),
        started: None,
        last_delivery: None,
        deliveries: 0,
        lost: 0,
        duplicates: 0,
        echoes: 0,
        errors: 0,
        samples: Vec::with_capacity(MAX_SAMPLES.min(1 << 16)),
        sample_every: (total / MAX_SAMPLES as u64).max(1),
    };
    let options = Options::default()
        .config(cfg)
        .max_connections(a.subscribers + 16);
    let mut ev = match EventLoop::new(options, b) {
        Ok(ev) => ev,
        Err(e) => {
            eprintln!("wsx: {e}");
            return 1;
        }
    };
    let begin = Instant::now();
    let limit = Duration::from_secs_f64(a.timeout);
    let tick = Duration::from_millis(20);
    let show = super::show_progress(a);
    let mut last_progress = Instant::now();
    let mut timed_out = false;
    while ev.handler().phase != Phase::Done {
        if begin.elapsed() >= limit {
            timed_out = true;
            break;
        }
        match ev.turn(Some(tick)) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                eprintln!("wsx: {e}");
                ev.handler_mut().errors += 1;
                break;
            }
        }
        ev.with_ctx(Broadcast::sync);
        let h = ev.handler();
        if show && last_progress.elapsed() >= Duration::from_millis(250) {
            last_progress = Instant::now();
            eprint!(
                "\r{:?}: {} subscribers open, {} synced, {} of {} messages done, {} deliveries   ",
                h.phase,
                h.subs.len(),
                h.synced,
                h.base,
                h.messages,
                h.deliveries
            );
        }
    }
    if show {
        eprintln!();
    }
    {
        let h = ev.handler();
        if timed_out {
            eprintln!(
                "wsx: timed out after {:.1} s in phase {:?}: {} of {} subscribers open, {} synced, {} of {} messages at every subscriber",
                limit.as_secs_f64(),
                h.phase,
                h.subs.len(),
                h.subscribers,
                h.synced,
                h.base,
                h.messages
            );
        }
    }
    let complete = {
        let h = ev.handler();
        !timed_out && h.base >= h.messages && h.failed == 0 && h.subs.len() == h.subscribers
    };
    // Close every connection (1000) and wait for the closes, at most 3 s.
    ev.handler_mut().phase = Phase::Done;
    ev.with_ctx(|b, ctx| {
        for id in b.subs.keys().chain(b.publisher.iter()) {
            let _ = ctx.close(*id, CloseCode::NORMAL, "bench done");
        }
    });
    let close_deadline = Instant::now() + Duration::from_secs(3);
    while (!ev.handler().subs.is_empty() || ev.handler().publisher_open)
        && Instant::now() < close_deadline
    {
        if !matches!(ev.turn(Some(tick)), Ok(true)) {
            break;
        }
    }
    let b = ev.handler_mut();
    let errors = b.errors + u64::from(!complete && b.errors == 0);
    let elapsed = match (b.started, b.last_delivery) {
        (Some(s), Some(l)) => l.duration_since(s).as_secs_f64().max(1e-6),
        _ => 0.0,
    };
    let samples = std::mem::take(&mut b.samples);
    report(a, b, elapsed, samples, errors)
}

/// Prints the summary (table row, and the csv line with `--csv`); returns
/// the exit code: 1 when a delivery is missing or anything failed.
fn report(a: &BenchArgs, b: &Broadcast, elapsed: f64, mut lat: Vec<u32>, errors: u64) -> i32 {
    lat.sort_unstable();
    let pct = |p: f64| super::percentile_ms(&lat, p);
    let rate = |n: f64| if elapsed > 0.0 { n / elapsed } else { 0.0 };
    let cols = [
        b.subscribers.to_string(),
        a.size.to_string(),
        a.window.to_string(),
        b.messages.to_string(),
        b.deliveries.to_string(),
        format!("{:.0}", rate(b.deliveries as f64)),
        format!("{:.1}", rate((b.deliveries * a.size as u64) as f64) / 1e6),
        format!("{elapsed:.3}"),
        format!("{:.3}", pct(0.5)),
        format!("{:.3}", pct(0.99)),
        format!("{:.3}", pct(1.0)),
        b.lost.to_string(),
        b.duplicates.to_string(),
        b.echoes.to_string(),
        errors.to_string(),
    ];
    println!("| subscribers | size | window | messages | deliveries | deliveries/s | MB/s | seconds | p50 ms | p99 ms | max ms | lost | duplicates | echoes to publisher | errors |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!("| {} |", cols.join(" | "));
    if a.csv {
        println!("csv,{}", cols.join(","));
    }
    let expected = (b.subscribers as u64).saturating_mul(b.messages);
    if errors > 0 || b.deliveries != expected {
        1
    } else {
        0
    }
}
