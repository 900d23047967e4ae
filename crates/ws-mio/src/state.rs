//! The loop's state without the handler ([`LoopState`]): its parts, its
//! counters, how long the next poll may wait, and the loop's own life
//! (shutdown, stop). The operations on it stand with their concern:
//! reading and writing in `io`, taking connections in and opening them in
//! `admit`, the application's commands in `commands`, deadlines in `timers`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Poll;
use ws_net::LogLimiter;
use ws_proto::{CloseCode, Config, State};

use crate::id::ConnId;
use crate::net::Listener;
use crate::options::Options;
use crate::sessions::Sessions;
use crate::timers::Timers;

/// Counters of one event loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoopStats {
    /// Connections accepted from listeners.
    pub accepted: u64,
    /// Accepted connections refused: over `max_connections` (answered with
    /// HTTP 503 and `Retry-After`, or closed at once when
    /// [`Options::max_refusing`] answers are already under way), or while
    /// shutting down (closed at once).
    pub refused: u64,
    /// Outgoing connections whose TCP connect completed.
    pub connected: u64,
    /// Connections that ended (`on_close` delivered).
    pub closed: u64,
    /// Connections currently held.
    pub connections: usize,
    /// Times a connection's reading was paused because the pool was over
    /// budget.
    pub read_pauses: u64,
    /// Times a connection's send queue refused a message.
    pub backpressure: u64,
    /// Bytes read from sockets (after TLS).
    pub bytes_read: u64,
    /// Bytes written to sockets (before TLS).
    pub bytes_written: u64,
    /// Loop iterations (polls).
    pub iterations: u64,
}

/// Something to tell the handler that is not a protocol event.
pub(crate) enum Notice {
    Backpressure(usize),
    Drain,
}

/// The notices waiting for the handler, 16 bytes each (the loop keeps room
/// for two per connection): the session's slot, the low 32 bits of its
/// serial (checked against the slot's occupant when taken out), and the
/// notice (`u64::MAX` for a drain, else the buffered amount of a
/// backpressure).
#[derive(Default)]
pub(crate) struct Notices(VecDeque<(u32, u32, u64)>);

impl Notices {
    pub(crate) fn push_back(&mut self, id: ConnId, n: Notice) {
        let v = match n {
            Notice::Backpressure(b) => u64::try_from(b).unwrap_or(u64::MAX - 1).min(u64::MAX - 1),
            Notice::Drain => u64::MAX,
        };
        self.0.push_back((id.slot(), id.gen() as u32, v));
    }

    /// The next notice: the slot, the low bits of the serial, the notice.
    pub(crate) fn pop_front(&mut self) -> Option<(u32, u32, Notice)> {
        let (slot, gen, v) = self.0.pop_front()?;
        let n = match v {
            u64::MAX => Notice::Drain,
            b => Notice::Backpressure(usize::try_from(b).unwrap_or(usize::MAX)),
        };
        Some((slot, gen, n))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Room for `n` notices in all.
    pub(crate) fn reserve_total(&mut self, n: usize) {
        self.0.reserve(n.saturating_sub(self.0.len()));
    }
}

/// Where the loop is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunState {
    Running,
    /// Graceful shutdown: no new connections; the rest is dropped at the
    /// deadline.
    Draining {
        deadline: Instant,
    },
    Stopped,
}

/// How often a repeated warning of one kind may be logged.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// The loop's rate limiters for warnings that can repeat fast.
pub(crate) struct LogLimits {
    /// `accept` failing (e.g. out of file descriptors).
    pub(crate) accept: LogLimiter,
    /// Connections refused over `max_connections`.
    pub(crate) refused: LogLimiter,
    /// TLS sessions that could not be set up.
    pub(crate) tls: LogLimiter,
    /// Upgrade decisions the core refused.
    pub(crate) decision: LogLimiter,
    /// Handler callbacks that panicked.
    pub(crate) panic: LogLimiter,
}

impl LogLimits {
    fn new() -> LogLimits {
        LogLimits {
            accept: LogLimiter::new(LOG_INTERVAL),
            refused: LogLimiter::new(LOG_INTERVAL),
            tls: LogLimiter::new(LOG_INTERVAL),
            decision: LogLimiter::new(LOG_INTERVAL),
            panic: LogLimiter::new(LOG_INTERVAL),
        }
    }
}

/// The loop's state without the handler.
pub(crate) struct LoopState {
    pub(crate) index: u16,
    pub(crate) poll: Poll,
    pub(crate) sessions: Sessions,
    pub(crate) listeners: Vec<Option<Listener>>,
    pub(crate) timers: Timers,
    pub(crate) notices: Notices,
    /// The one write buffer of the loop: `poll_transmit` fills it, the
    /// socket drains it.
    pub(crate) scratch: Box<[u8]>,
    pub(crate) options: Options,
    /// `options.config`, shared by every connection of the loop (a
    /// `Config` is a few hundred bytes: not one copy per connection).
    pub(crate) config: Arc<Config>,
    /// The same with the short handshake timeout of a connection taken in
    /// only to be refused with 503.
    pub(crate) refusal_config: Arc<Config>,
    /// The command budget ran out with commands still queued.
    pub(crate) commands_carry: bool,
    /// Loops that were sent broadcasts by this one's callbacks and are still
    /// to be woken (after the current drive: see `Handle::broadcast_deferred`).
    pub(crate) deferred_wakes: Vec<usize>,
    pub(crate) run: RunState,
    /// Requested from inside a callback.
    pub(crate) want_stop: bool,
    pub(crate) want_shutdown: Option<Duration>,
    pub(crate) now: Instant,
    pub(crate) stats: LoopStats,
    pub(crate) client_tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) log: LogLimits,
    /// The proxy handshakes under way, by connection (see
    /// [`ProxyPhase`](crate::sessions::ProxyPhase)); an entry goes when its
    /// tunnel opens or fails, or with its connection's `Closed`.
    pub(crate) proxies: std::collections::HashMap<ConnId, Box<crate::sessions::ProxyPhase>>,
    /// The redirect state of client connections not yet open (see
    /// [`Follow`](crate::sessions::Follow)); dropped on open and on close.
    pub(crate) follows: std::collections::HashMap<ConnId, Box<crate::sessions::Follow>>,
}

impl LoopState {
    pub(crate) fn new(index: u16, poll: Poll, options: Options) -> LoopState {
        LoopState {
            index,
            poll,
            sessions: Sessions::new(index),
            listeners: Vec::new(),
            timers: Timers::new(Instant::now()),
            notices: Notices::default(),
            scratch: vec![0u8; options.scratch_size.max(1)].into_boxed_slice(),
            config: Arc::new(options.config.clone()),
            refusal_config: Arc::new(refusal_config(&options.config)),
            options,
            commands_carry: false,
            deferred_wakes: Vec::new(),
            run: RunState::Running,
            want_stop: false,
            want_shutdown: None,
            now: Instant::now(),
            stats: LoopStats::default(),
            client_tls: None,
            log: LogLimits::new(),
            proxies: std::collections::HashMap::new(),
            follows: std::collections::HashMap::new(),
        }
    }

    /// Drops a session (after its `Closed` was delivered).
    pub(crate) fn remove(&mut self, id: ConnId) {
        let Some(mut sess) = self.sessions.remove(id) else {
            return;
        };
        if sess.interest.is_some() {
            if let Err(e) = self.poll.registry().deregister(sess.transport.socket_mut()) {
                log::debug!("ws-mio: deregister failed: {e}");
            }
        }
        if !sess.f.refusing {
            self.stats.closed += 1;
        }
        self.stats.connections = self.sessions.held();
    }

    /// How long the next poll may wait.
    pub(crate) fn next_wait(&self, max_wait: Option<Duration>) -> Option<Duration> {
        let busy = self.sessions.lists().busy()
            || self.commands_carry
            || !self.notices.is_empty()
            || self.want_stop
            || self.want_shutdown.is_some()
            || self.listeners.iter().flatten().any(|l| l.carry);
        if busy {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut wait = max_wait;
        let mut consider = |d: Duration| wait = Some(wait.map_or(d, |w| w.min(d)));
        if let Some(t) = self.timers.earliest() {
            consider(t.saturating_duration_since(now));
        }
        if self.sessions.lists().any_paused() {
            consider(self.options.resume_interval);
        }
        for l in self.listeners.iter().flatten() {
            if let Some(t) = l.retry_at {
                consider(t.saturating_duration_since(now));
            }
        }
        if let RunState::Draining { deadline } = self.run {
            consider(deadline.saturating_duration_since(now));
        }
        wait
    }

    /// Starts a graceful shutdown: no more accepts or connects; every open
    /// connection gets a 1001 close; connections still in their opening
    /// handshake are dropped.
    pub(crate) fn begin_shutdown(&mut self, grace: Duration) {
        if self.run != RunState::Running {
            return;
        }
        self.run = RunState::Draining {
            deadline: self.now + grace,
        };
        self.close_listeners();
        let now = self.now;
        for id in self.sessions.ids(true) {
            let Some((sess, lists)) = self.sessions.get_mut(id) else {
                continue;
            };
            match sess.conn.state() {
                State::Open => {
                    let _ = sess.conn.close(CloseCode::GOING_AWAY, "shutting down");
                }
                State::Connecting => {
                    sess.f.connecting = false;
                    sess.f.proxying = false;
                    sess.f.eof = true;
                    sess.conn.handle_transport_error(now, "shutting down");
                }
                State::Closing | State::Closed => {}
            }
            lists.mark_dirty(id, sess);
        }
    }

    /// Ends every connection now (each still gets its `Closed`).
    pub(crate) fn abort_all(&mut self, why: &str) {
        self.close_listeners();
        let now = self.now;
        for id in self.sessions.ids(true) {
            let Some((sess, lists)) = self.sessions.get_mut(id) else {
                continue;
            };
            sess.fail(now, why);
            lists.mark_dirty(id, sess);
        }
    }

    /// Drops whatever is left without telling anyone (after `abort_all`
    /// every connection has had its `Closed`; this is only a safety net).
    pub(crate) fn clear(&mut self) {
        for id in self.sessions.ids(true) {
            self.remove(id);
        }
        self.close_listeners();
    }
}

/// Most time a refused connection may take to send its upgrade request.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// The configuration of a connection taken in only to be refused with 503:
/// the loop's, with a handshake timeout of at most [`REFUSAL_TIMEOUT`].
pub(crate) fn refusal_config(config: &Config) -> Config {
    let mut c = config.clone();
    c.handshake_timeout = c.handshake_timeout.min(REFUSAL_TIMEOUT);
    c
}
