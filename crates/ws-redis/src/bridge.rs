//! The bridge: a publisher thread and a subscriber thread per server.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use log::{info, warn};
use redis::{Client, Connection};
use ws_net::LogLimiter;
use ws_proto::{MessageKind, PreparedMessage};

use crate::wire;

/// How often a blocked thread looks at the stop flag.
const TICK: Duration = Duration::from_millis(250);
/// Most messages in one pipeline of PUBLISH commands (one round trip).
const BATCH: usize = 256;
/// Origins whose last publish number is remembered (for gap counting);
/// past it the table starts again (only gap counting is weakened).
const MAX_ORIGINS: usize = 4096;
/// One line per interval for a repeated warning.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// How a [`Bridge`] reaches Redis and how much it may hold.
#[derive(Clone, Debug)]
pub struct BridgeOptions {
    /// `redis://HOST:PORT[/DB]` (the `redis` crate's URL syntax; `rediss://`
    /// is not built in).
    pub url: String,
    /// Largest payload accepted from the channel (bigger ones are counted as
    /// malformed and dropped); the server's `--max-message`.
    pub max_payload: usize,
    /// Messages waiting to be published; when full, [`Bridge::publish`]
    /// drops the message and counts it (`not_published`).
    pub publish_queue: usize,
    /// Longest a connection attempt may take.
    pub connect_timeout: Duration,
    /// Longest a pipeline of PUBLISH commands may take before the
    /// connection is given up (its messages counted as not published).
    pub io_timeout: Duration,
    /// First pause before reconnecting; doubled after every failed attempt.
    pub backoff_min: Duration,
    /// Longest pause between two attempts.
    pub backoff_max: Duration,
}

impl BridgeOptions {
    /// The defaults for `url`: 16 MiB payloads, 4,096 queued messages, 2 s
    /// to connect, 5 s per pipeline, backoff 100 ms doubling up to 5 s.
    pub fn new(url: impl Into<String>) -> BridgeOptions {
        BridgeOptions {
            url: url.into(),
            max_payload: 16 << 20,
            publish_queue: 4096,
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// Why [`Bridge::start`] failed.
#[derive(Debug)]
pub enum StartError {
    /// The URL is not a Redis URL.
    Url(String),
    /// Redis did not answer (refused, timed out, authentication...).
    Unreachable(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Url(e) => write!(f, "bad Redis URL: {e}"),
            StartError::Unreachable(e) => write!(f, "cannot reach Redis: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// The bridge's counters since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages published (Redis acknowledged the PUBLISH).
    pub published: u64,
    /// Messages given to [`Bridge::publish`] that never reached Redis: the
    /// queue was full, Redis was unreachable, or the PUBLISH failed.
    pub not_published: u64,
    /// Channel messages from other servers handed to the local room.
    pub delivered: u64,
    /// Channel messages this server published itself (already delivered
    /// locally, skipped).
    pub own: u64,
    /// Messages of other servers never received: gaps in their publish
    /// numbers (e.g. published while our subscription was down).
    pub missed: u64,
    /// Channel messages that are not envelopes (counted and dropped).
    pub malformed: u64,
    /// Connections to Redis made again after one was lost.
    pub reconnects: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    not_published: AtomicU64,
    delivered: AtomicU64,
    own: AtomicU64,
    missed: AtomicU64,
    malformed: AtomicU64,
    reconnects: AtomicU64,
}

/// What the threads and the [`Bridge`] share.
struct Shared {
    id: u64,
    opts: BridgeOptions,
    stop: AtomicBool,
    counters: Counters,
    /// Rate limiters: losses on the publishing side, on the receiving side,
    /// connection trouble.
    publish_log: Mutex<LogLimiter>,
    receive_log: Mutex<LogLimiter>,
    connect_log: Mutex<LogLimiter>,
}

impl Shared {
    fn add(&self, c: &AtomicU64, n: u64) -> u64 {
        c.fetch_add(n, Ordering::Relaxed) + n
    }

    /// Counts `n` messages that were not published and logs it (rate-limited).
    fn not_published(&self, n: u64, why: &dyn fmt::Display) {
        let total = self.add(&self.counters.not_published, n);
        warn_limited(
            &self.publish_log,
            format_args!(
                "redis: {n} message(s) not published ({why}); {total} not published in all"
            ),
        );
    }
}

/// A warning through `limiter` (one line per interval, with the count held back).
fn warn_limited(limiter: &Mutex<LogLimiter>, line: fmt::Arguments<'_>) {
    if let Ok(mut l) = limiter.lock() {
        ws_net::log_limited!(l, Instant::now(), log::Level::Warn, "{line}");
    }
}

/// One message waiting to be published.
struct Outgoing {
    room: String,
    conn: u64,
    kind: MessageKind,
    data: Bytes,
}

/// Bounded exponential backoff.
struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            next: min,
            min,
            max,
        }
    }
    fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        d
    }
    fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Local rooms joined to Redis pub/sub: see the [crate] documentation.
pub struct Bridge {
    shared: Arc<Shared>,
    tx: SyncSender<Outgoing>,
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge")
            .field("id", &self.shared.id)
            .field("url", &self.shared.opts.url)
            .finish()
    }
}

impl Bridge {
    /// Connects to Redis (publisher and subscriber; both must succeed
    /// within `connect_timeout`, or this fails), subscribes to every room's
    /// channel, and starts the two threads. `deliver(room, message)` is
    /// called on the subscriber thread for every message another server
    /// published, in the order Redis delivers them; it must not block for
    /// long (hand the message to the room's bounded queue).
    pub fn start<F>(opts: BridgeOptions, deliver: F) -> Result<Bridge, StartError>
    where
        F: Fn(&str, PreparedMessage) + Send + 'static,
    {
        use rand::{RngCore, SeedableRng};
        let client = Client::open(opts.url.as_str()).map_err(|e| StartError::Url(e.to_string()))?;
        let publisher = connect(&client, &opts).map_err(StartError::Unreachable)?;
        let id = rand::rngs::StdRng::from_os_rng().next_u64();
        let (tx, rx) = mpsc::sync_channel(opts.publish_queue.max(1));
        let shared = Arc::new(Shared {
            id,
            opts,
            stop: AtomicBool::new(false),
            counters: Counters::default(),
            publish_log: Mutex::new(LogLimiter::new(LOG_INTERVAL)),
            receive_log: Mutex::new(LogLimiter::new(LOG_INTERVAL)),
            connect_log: Mutex::new(LogLimiter::new(LOG_INTERVAL)),
        });
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let (sub_client, sub_shared) = (client.clone(), Arc::clone(&shared));
        let spawned = thread::Builder::new()
            .name("ws-redis-sub".into())
            .spawn(move || subscriber(&sub_client, &sub_shared, ready_tx, deliver));
        if let Err(e) = spawned {
            return Err(StartError::Unreachable(format!(
                "cannot start a thread: {e}"
            )));
        }
        let limit = shared.opts.connect_timeout * 2 + TICK;
        let ready = ready_rx
            .recv_timeout(limit)
            .unwrap_or_else(|_| Err(format!("no subscription within {limit:?}")));
        if let Err(e) = ready {
            shared.stop.store(true, Ordering::SeqCst);
            return Err(StartError::Unreachable(e));
        }
        let pub_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("ws-redis-pub".into())
            .spawn(move || publisher_loop(&client, Some(publisher), &rx, &pub_shared));
        if let Err(e) = spawned {
            shared.stop.store(true, Ordering::SeqCst);
            return Err(StartError::Unreachable(format!(
                "cannot start a thread: {e}"
            )));
        }
        Ok(Bridge { shared, tx })
    }

    /// This server's id on the channels (random per bridge).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Queues a message that local connection `conn` sent to `room` for
    /// publishing; never blocks. `false` when the queue is full: the
    /// message is dropped for the other servers (counted in
    /// `not_published`, logged at most once per 5 s); local delivery is the
    /// caller's and is not affected.
    pub fn publish(&self, room: &str, conn: u64, kind: MessageKind, data: Bytes) -> bool {
        let out = Outgoing {
            room: room.to_string(),
            conn,
            kind,
            data,
        };
        match self.tx.try_send(out) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                let cap = self.shared.opts.publish_queue;
                self.shared
                    .not_published(1, &format_args!("publish queue full, {cap} waiting"));
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                self.shared.not_published(1, &"publisher stopped");
                false
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            published: get(&c.published),
            not_published: get(&c.not_published),
            delivered: get(&c.delivered),
            own: get(&c.own),
            missed: get(&c.missed),
            malformed: get(&c.malformed),
            reconnects: get(&c.reconnects),
        }
    }
}

impl Drop for Bridge {
    /// Stops both threads (within a quarter of a second, or once a
    /// connection attempt under way ends).
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

/// A connection with the I/O timeouts set, checked with PING.
fn connect(client: &Client, opts: &BridgeOptions) -> Result<Connection, String> {
    let mut con = client
        .get_connection_with_timeout(opts.connect_timeout)
        .map_err(|e| e.to_string())?;
    con.set_read_timeout(Some(opts.io_timeout))
        .and_then(|()| con.set_write_timeout(Some(opts.io_timeout)))
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query::<String>(&mut con)
        .map_err(|e| e.to_string())?;
    Ok(con)
}

/// The publisher thread: batches of queued messages, each one pipeline of
/// PUBLISH commands in queue order, until the bridge stops.
fn publisher_loop(
    client: &Client,
    mut con: Option<Connection>,
    rx: &Receiver<Outgoing>,
    shared: &Shared,
) {
    let mut seq = 0u64;
    let mut backoff = Backoff::new(shared.opts.backoff_min, shared.opts.backoff_max);
    let mut retry_at = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    while !shared.stop.load(Ordering::Relaxed) {
        let first = match rx.recv_timeout(TICK) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        batch.clear();
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        if con.is_none() && Instant::now() >= retry_at {
            match connect(client, &shared.opts) {
                Ok(c) => {
                    con = Some(c);
                    backoff.reset();
                    shared.add(&shared.counters.reconnects, 1);
                    info!("redis: publisher connected again");
                }
                Err(e) => {
                    let wait = backoff.next();
                    retry_at = Instant::now() + wait;
                    warn_limited(
                        &shared.connect_log,
                        format_args!("redis: publisher cannot connect ({e}); next try in {wait:?}"),
                    );
                }
            }
        }
        let Some(c) = con.as_mut() else {
            shared.not_published(n, &"Redis unreachable");
            continue;
        };
        let mut pipe = redis::pipe();
        for m in &batch {
            seq += 1;
            let frame = wire::encode(shared.id, m.conn, seq, m.kind, &m.data);
            pipe.cmd("PUBLISH")
                .arg(wire::channel(&m.room))
                .arg(frame)
                .ignore();
        }
        match pipe.query::<()>(c) {
            Ok(()) => {
                shared.add(&shared.counters.published, n);
            }
            Err(e) => {
                // Some of the batch may have gone out: it is not sent again
                // (no duplicates); the receivers count the gap too.
                con = None;
                let wait = backoff.next();
                retry_at = Instant::now() + wait;
                shared.not_published(n, &format_args!("Redis connection lost: {e}"));
            }
        }
    }
}

/// The subscriber thread: subscribe, read, deliver; on a lost connection,
/// subscribe again after a backoff. `ready` hears how the first
/// subscription went (the thread ends if it failed).
fn subscriber<F>(
    client: &Client,
    shared: &Shared,
    ready: SyncSender<Result<(), String>>,
    deliver: F,
) where
    F: Fn(&str, PreparedMessage),
{
    let mut ready = Some(ready);
    let mut receiver = Receiving {
        shared,
        last_seq: HashMap::new(),
        deliver,
    };
    let mut backoff = Backoff::new(shared.opts.backoff_min, shared.opts.backoff_max);
    let mut lost = false;
    while !shared.stop.load(Ordering::Relaxed) {
        let e = match subscription(client, shared, &mut |m| receiver.message(m), &mut || {
            if let Some(r) = ready.take() {
                let _ = r.send(Ok(()));
            }
            if lost {
                lost = false;
                backoff.reset();
                shared.add(&shared.counters.reconnects, 1);
                warn!("redis: subscription back; what other servers published meanwhile is lost (counted as missed)");
            }
        }) {
            Ok(()) => return,
            Err(e) => e,
        };
        if let Some(r) = ready.take() {
            let _ = r.send(Err(e));
            return;
        }
        lost = true;
        let wait = backoff.next();
        warn_limited(
            &shared.connect_log,
            format_args!("redis: subscription lost ({e}); next try in {wait:?}"),
        );
        let until = Instant::now() + wait;
        while !shared.stop.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(TICK));
        }
    }
}

/// One subscription: `Ok` once the bridge stops, `Err` when the connection
/// failed or was lost. `subscribed` is called once the pattern is
/// subscribed.
fn subscription(
    client: &Client,
    shared: &Shared,
    on_message: &mut dyn FnMut(&redis::Msg),
    subscribed: &mut dyn FnMut(),
) -> Result<(), String> {
    let mut con = client
        .get_connection_with_timeout(shared.opts.connect_timeout)
        .map_err(|e| e.to_string())?;
    con.set_read_timeout(Some(shared.opts.connect_timeout))
        .map_err(|e| e.to_string())?;
    let mut ps = con.as_pubsub();
    ps.psubscribe(wire::CHANNEL_PATTERN)
        .map_err(|e| e.to_string())?;
    // From here the read times out every TICK, to look at the stop flag.
    ps.set_read_timeout(Some(TICK)).map_err(|e| e.to_string())?;
    subscribed();
    while !shared.stop.load(Ordering::Relaxed) {
        match ps.get_message() {
            Ok(m) => on_message(&m),
            Err(e) if e.is_timeout() => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// The receiving side's state.
struct Receiving<'a, F> {
    shared: &'a Shared,
    /// Per origin server, the last publish number seen.
    last_seq: HashMap<u64, u64>,
    deliver: F,
}

impl<F: Fn(&str, PreparedMessage)> Receiving<'_, F> {
    /// One channel message: checked, counted, delivered unless it is ours.
    fn message(&mut self, m: &redis::Msg) {
        let shared = self.shared;
        let channel: Vec<u8> = m.get_channel().unwrap_or_default();
        let frame = Bytes::copy_from_slice(m.get_payload_bytes());
        let decoded = wire::room_of(&channel)
            .and_then(|room| wire::decode(frame, shared.opts.max_payload).map(|env| (room, env)));
        let (room, env) = match decoded {
            Ok(x) => x,
            Err(e) => {
                let total = shared.add(&shared.counters.malformed, 1);
                let channel = String::from_utf8_lossy(&channel);
                warn_limited(
                    &shared.receive_log,
                    format_args!("redis: malformed message on {channel:?} dropped ({e}); {total} malformed in all"),
                );
                return;
            }
        };
        if env.origin == shared.id {
            shared.add(&shared.counters.own, 1);
            return;
        }
        self.gap(env.origin, env.seq);
        match PreparedMessage::new(env.kind, env.payload) {
            Ok(msg) => {
                (self.deliver)(room, msg);
                shared.add(&shared.counters.delivered, 1);
            }
            Err(e) => {
                shared.add(&shared.counters.malformed, 1);
                warn!("redis: message on {room:?} dropped: {e}");
            }
        }
    }

    /// Counts the messages of `origin` skipped before `seq`.
    fn gap(&mut self, origin: u64, seq: u64) {
        if self.last_seq.len() >= MAX_ORIGINS && !self.last_seq.contains_key(&origin) {
            self.last_seq.clear();
        }
        let last = self.last_seq.entry(origin).or_insert(seq.saturating_sub(1));
        if seq > *last {
            let skipped = seq - *last - 1;
            *last = seq;
            if skipped > 0 {
                let shared = self.shared;
                let total = shared.add(&shared.counters.missed, skipped);
                warn_limited(
                    &shared.receive_log,
                    format_args!("redis: missed {skipped} message(s) of server {origin:016x}; {total} missed in all"),
                );
            }
        }
    }
}
