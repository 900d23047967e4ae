//! The handler-free half of an event loop: the sessions, their sockets, the
//! deadline heap, and every operation that does not call the application.
//! [`EventLoop`](crate::EventLoop) adds the handler and the one routine that
//! drives a connection (`drive`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll};
use ws_buf::BufferSegment;
use ws_net::url::WsUrl;
use ws_net::LogLimiter;
use ws_proto::{Accept, Bytes, CloseCode, Connection, MessageKind, State, Transmit};

use crate::handle::{Command, Remote};
use crate::id::{conn_token, listener_token, next_serial, Gen, FIRST_RESERVED_SLOT};
use crate::transport::Transport;
use crate::{net, tls, ConnId, ConnectOptions, Decision, Error, Handle, Options};

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

/// One slot of the session table.
pub(crate) struct Slot {
    /// The serial of the connection in the slot (see [`next_serial`]): a new
    /// one for every occupant, so an old id never matches a newcomer.
    gen: Gen,
    sess: Option<Box<Session>>,
}

/// Per-connection state of the driver (besides the core itself): no read or
/// write buffer unless a write is pending.
pub(crate) struct Session {
    pub(crate) conn: Connection,
    pub(crate) transport: Transport,
    /// The unwritten remainder of the last write, and how much of it went
    /// out since.
    pending: Option<(BufferSegment, usize)>,
    /// The deadline this session has in the heap (possibly earlier than the
    /// core's current one: firing early is harmless).
    timer: Option<Instant>,
    /// While the TCP connect is in flight: when to give up.
    connect_deadline: Option<Instant>,
    /// What is registered with the poll.
    interest: Option<Interest>,
    pub(crate) f: Flags,
}

/// Session flags.
#[derive(Default)]
pub(crate) struct Flags {
    /// Waiting to be driven (cleared by every drive).
    pub(crate) dirty: bool,
    /// Listed in `LoopState::dirty` (cleared when taken from it), so a session
    /// marked again after a drive is not listed twice.
    queued: bool,
    /// In `LoopState::carry`, with read and/or write work left by a budget.
    in_carry: bool,
    pub(crate) carry_read: bool,
    pub(crate) carry_write: bool,
    /// Reading paused: the pool refused a read buffer.
    read_paused: bool,
    /// The read side is finished (end of stream or transport error).
    eof: bool,
    /// The last write would block: wait for writable readiness.
    write_blocked: bool,
    /// A send was refused; `on_drain` is due when the queue empties.
    backpressured: bool,
    /// The TCP connect is in flight.
    connecting: bool,
    /// A handler callback for this connection panicked: it is being closed
    /// and gets no callback but `on_close`.
    pub(crate) panicked: bool,
    /// Accepted over `max_connections`: the loop answers its upgrade request
    /// with 503 by itself; the handler never hears of it.
    pub(crate) refusing: bool,
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

/// `Retry-After` (seconds) of the 503 answer to a connection over
/// `max_connections`.
const RETRY_AFTER_SECS: &str = "1";

/// Most time a refused connection may take to send its upgrade request.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// A listening socket of the loop.
pub(crate) struct Listener {
    pub(crate) sock: TcpListener,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Retry accepting at this time (after an error such as `EMFILE`).
    pub(crate) retry_at: Option<Instant>,
    /// The accept budget ran out: accept again next iteration.
    pub(crate) carry: bool,
}

/// What one read attempt did.
pub(crate) enum ReadStep {
    /// Bytes (or the end of the stream, or an error) went to the core.
    Fed,
    /// The end of the stream or a transport error went to the core.
    Ended,
    /// Nothing to read now; `true` for TLS (whose handshake may have
    /// produced bytes to write).
    Blocked(bool),
    /// The per-iteration read budget is spent.
    Budget,
    /// The pool refused a read buffer.
    Paused,
    /// Nothing to do (gone, connecting, paused or finished).
    Idle,
}

/// How a transmit pass ended.
enum TxEnd {
    Done,
    Budget,
}

/// The loop's state without the handler.
pub(crate) struct LoopState {
    pub(crate) index: u16,
    pub(crate) poll: Poll,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Sessions held, refusals included.
    live: usize,
    /// Sessions held only to answer 503 (see `Flags::refusing`).
    refusing: usize,
    pub(crate) listeners: Vec<Option<Listener>>,
    timers: BinaryHeap<Reverse<(Instant, u32, Gen)>>,
    pub(crate) dirty: Vec<u32>,
    pub(crate) carry: Vec<u32>,
    /// The carry list being processed, swapped with `carry` each turn so
    /// neither list loses its capacity.
    pub(crate) carry_work: Vec<u32>,
    paused: Vec<u32>,
    pub(crate) notices: VecDeque<(ConnId, Notice)>,
    /// The one write buffer of the loop: `poll_transmit` fills it, the
    /// socket drains it.
    scratch: Box<[u8]>,
    pub(crate) options: Options,
    pub(crate) remote: Arc<Remote>,
    pub(crate) rx: Receiver<Command>,
    pub(crate) handle: Handle,
    /// The command budget ran out with commands still queued.
    pub(crate) commands_carry: bool,
    pub(crate) run: RunState,
    /// Requested from inside a callback.
    pub(crate) want_stop: bool,
    pub(crate) want_shutdown: Option<Duration>,
    pub(crate) now: Instant,
    pub(crate) stats: LoopStats,
    client_tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) log: LogLimits,
}

impl LoopState {
    pub(crate) fn new(
        index: u16,
        poll: Poll,
        remote: Arc<Remote>,
        rx: Receiver<Command>,
        handle: Handle,
        options: Options,
    ) -> LoopState {
        LoopState {
            index,
            poll,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            refusing: 0,
            listeners: Vec::new(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            carry: Vec::new(),
            carry_work: Vec::new(),
            paused: Vec::new(),
            notices: VecDeque::new(),
            scratch: vec![0u8; options.scratch_size.max(1)].into_boxed_slice(),
            options,
            remote,
            rx,
            handle,
            commands_carry: false,
            run: RunState::Running,
            want_stop: false,
            want_shutdown: None,
            now: Instant::now(),
            stats: LoopStats::default(),
            client_tls: None,
            log: LogLimits::new(),
        }
    }

    // ----- session table ------------------------------------------------

    /// Sessions held (refusals included).
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Connections held for the application (refusals not included).
    pub(crate) fn held(&self) -> usize {
        self.live - self.refusing
    }

    /// The session in `slot` if it has generation `gen`.
    pub(crate) fn session_mut(&mut self, slot: u32, gen: Gen) -> Option<&mut Session> {
        self.slots
            .get_mut(slot as usize)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.sess.as_deref_mut())
    }

    /// The current generation of an occupied slot.
    pub(crate) fn gen_of(&self, slot: u32) -> Option<Gen> {
        self.slots
            .get(slot as usize)
            .and_then(|s| s.sess.as_ref().map(|_| s.gen))
    }

    /// The session behind `id`.
    pub(crate) fn get(&self, id: ConnId) -> Option<&Session> {
        if id.loop_index() != usize::from(self.index) {
            return None;
        }
        self.slots
            .get(id.slot() as usize)
            .filter(|s| s.gen == id.gen())
            .and_then(|s| s.sess.as_deref())
    }

    fn get_mut(&mut self, id: ConnId) -> Result<&mut Session, Error> {
        if id.loop_index() != usize::from(self.index) {
            return Err(Error::UnknownConnection(id));
        }
        self.session_mut(id.slot(), id.gen())
            .ok_or(Error::UnknownConnection(id))
    }

    pub(crate) fn id(&self, slot: u32, gen: Gen) -> ConnId {
        ConnId::new(self.index, slot, gen)
    }

    /// Ids of the connections the application knows of (not the refusals).
    pub(crate) fn app_ids(&self) -> Vec<ConnId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sess.as_ref().is_some_and(|x| !x.f.refusing))
            .map(|(i, s)| ConnId::new(self.index, i as u32, s.gen))
            .collect()
    }

    /// Ids of every session held (refusals included).
    pub(crate) fn ids(&self) -> Vec<ConnId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sess.is_some())
            .map(|(i, s)| ConnId::new(self.index, i as u32, s.gen))
            .collect()
    }

    fn insert(&mut self, sess: Session) -> Result<(u32, Gen), Error> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = u32::try_from(self.slots.len()).map_err(|_| Error::TooManyConnections)?;
                if s >= FIRST_RESERVED_SLOT {
                    return Err(Error::TooManyConnections);
                }
                self.slots.push(Slot { gen: 0, sess: None });
                s
            }
        };
        let Some(entry) = self.slots.get_mut(slot as usize) else {
            return Err(Error::TooManyConnections);
        };
        let refusing = sess.f.refusing;
        entry.sess = Some(Box::new(sess));
        entry.gen = next_serial();
        self.live += 1;
        self.refusing += usize::from(refusing);
        let gen = entry.gen;
        self.stats.connections = self.held();
        self.reserve_lists();
        self.after_drive(slot, gen);
        Ok((slot, gen))
    }

    /// Gives every per-connection work list room for each connection held,
    /// here where accepting allocates anyway: a list that first fills up in
    /// the middle of traffic (the carry lists the first time a read budget
    /// runs out, say) must not allocate there. Each list holds a slot at
    /// most once (its flag says whether it is listed), so `live` entries
    /// always suffice.
    fn reserve_lists(&mut self) {
        let live = self.live;
        for list in [
            &mut self.dirty,
            &mut self.carry,
            &mut self.carry_work,
            &mut self.paused,
        ] {
            list.reserve(live.saturating_sub(list.len()));
        }
        self.notices
            .reserve((2 * live).saturating_sub(self.notices.len()));
    }

    /// Drops a session (after its `Closed` was delivered).
    pub(crate) fn remove(&mut self, slot: u32, gen: Gen) {
        let Some(entry) = self.slots.get_mut(slot as usize).filter(|s| s.gen == gen) else {
            return;
        };
        let Some(mut sess) = entry.sess.take() else {
            return;
        };
        if sess.interest.is_some() {
            if let Err(e) = self.poll.registry().deregister(sess.transport.socket_mut()) {
                log::debug!("ws-mio: deregister failed: {e}");
            }
        }
        self.free.push(slot);
        self.live -= 1;
        if sess.f.refusing {
            self.refusing -= 1;
        } else {
            self.stats.closed += 1;
        }
        self.stats.connections = self.held();
    }

    /// Queues the session to be driven once the current callback is done.
    pub(crate) fn mark_dirty(&mut self, slot: u32) {
        if let Some(sess) = self
            .slots
            .get_mut(slot as usize)
            .and_then(|s| s.sess.as_deref_mut())
        {
            sess.f.dirty = true;
            if !sess.f.queued {
                sess.f.queued = true;
                self.dirty.push(slot);
            }
        }
    }

    /// Takes the next session from the dirty list: `Some(Some((slot, gen)))`
    /// when it still needs a drive, `Some(None)` when it was driven since.
    pub(crate) fn pop_dirty(&mut self) -> Option<Option<(u32, Gen)>> {
        let slot = self.dirty.pop()?;
        let Some(s) = self.slots.get_mut(slot as usize) else {
            return Some(None);
        };
        let gen = s.gen;
        Some(s.sess.as_deref_mut().and_then(|x| {
            x.f.queued = false;
            x.f.dirty.then_some((slot, gen))
        }))
    }

    /// Reading stopped on the budget: read again next iteration.
    pub(crate) fn carry_read(&mut self, slot: u32) {
        self.push_carry(slot, true, false);
    }

    fn push_carry(&mut self, slot: u32, read: bool, write: bool) {
        if let Some(sess) = self
            .slots
            .get_mut(slot as usize)
            .and_then(|s| s.sess.as_deref_mut())
        {
            sess.f.carry_read |= read;
            sess.f.carry_write |= write;
            if !sess.f.in_carry {
                sess.f.in_carry = true;
                self.carry.push(slot);
            }
        }
    }

    /// Takes a carried session's leftover work: `(gen, read, write)`.
    pub(crate) fn take_carry(&mut self, slot: u32) -> Option<(Gen, bool, bool)> {
        let entry = self.slots.get_mut(slot as usize)?;
        let sess = entry.sess.as_deref_mut()?;
        if !sess.f.in_carry {
            return None;
        }
        sess.f.in_carry = false;
        let r = std::mem::take(&mut sess.f.carry_read);
        let w = std::mem::take(&mut sess.f.carry_write);
        Some((entry.gen, r, w))
    }

    // ----- IO -----------------------------------------------------------

    /// Reads once from a readable session into a pooled segment, feeds the
    /// core, and returns the segment to the pool.
    pub(crate) fn read_once(&mut self, slot: u32, gen: Gen, total: &mut usize) -> ReadStep {
        let now = self.now;
        let Some(entry) = self.slots.get_mut(slot as usize).filter(|s| s.gen == gen) else {
            return ReadStep::Idle;
        };
        let Some(sess) = entry.sess.as_deref_mut() else {
            return ReadStep::Idle;
        };
        if sess.f.connecting || sess.f.read_paused || sess.f.eof {
            return ReadStep::Idle;
        }
        if *total >= self.options.read_budget {
            return ReadStep::Budget;
        }
        let Some(mut seg) = self.options.pool.try_get(self.options.read_size) else {
            return ReadStep::Paused;
        };
        let step = match sess.transport.read(seg.unfilled_mut()) {
            Ok(0) => {
                sess.f.eof = true;
                sess.conn.handle_eof(now);
                ReadStep::Ended
            }
            Ok(n) => {
                seg.advance(n);
                sess.conn.handle_input(now, &seg);
                *total += n;
                self.stats.bytes_read += n as u64;
                ReadStep::Fed
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ReadStep::Blocked(sess.transport.is_tls())
            }
            Err(e) => {
                sess.f.eof = true;
                sess.conn.handle_transport_error(now, &e);
                ReadStep::Ended
            }
        };
        // The segment goes back to the pool here: an idle connection holds
        // no read buffer.
        drop(seg);
        step
    }

    /// Pauses reading of a session (the pool is over budget).
    pub(crate) fn pause(&mut self, slot: u32, gen: Gen) {
        let Some(sess) = self.session_mut(slot, gen) else {
            return;
        };
        if sess.f.read_paused {
            return;
        }
        sess.f.read_paused = true;
        self.paused.push(slot);
        self.stats.read_pauses += 1;
        self.update_interest(slot, gen);
    }

    /// Resumes paused sessions once the pool has room for a read again.
    pub(crate) fn resume_paused(&mut self) {
        if self.paused.is_empty() {
            return;
        }
        match self.options.pool.try_get(self.options.read_size) {
            Some(probe) => drop(probe),
            None => return,
        }
        for slot in std::mem::take(&mut self.paused) {
            let Some(gen) = self.gen_of(slot) else {
                continue;
            };
            let Some(sess) = self.session_mut(slot, gen) else {
                continue;
            };
            if !sess.f.read_paused {
                continue;
            }
            sess.f.read_paused = false;
            self.push_carry(slot, true, false);
            self.update_interest(slot, gen);
        }
    }

    /// A client's TCP connect reported readiness: completed or failed?
    pub(crate) fn finish_connect(&mut self, slot: u32, gen: Gen) {
        let now = self.now;
        let Some(sess) = self.session_mut(slot, gen) else {
            return;
        };
        if !sess.f.connecting {
            return;
        }
        let sock = sess.transport.socket();
        let failure = match sock.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match sock.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Some(e),
            },
        };
        sess.f.connecting = false;
        sess.connect_deadline = None;
        match failure {
            None => self.stats.connected += 1,
            Some(e) => {
                sess.f.eof = true;
                sess.conn
                    .handle_transport_error(now, format!("connect failed: {e}"));
            }
        }
    }

    /// Moves bytes from the core to the socket (through the scratch buffer),
    /// until the core has nothing more, the socket is full (the unwritten
    /// remainder goes to a pooled segment) or the write budget is spent.
    pub(crate) fn transmit(&mut self, slot: u32, gen: Gen) {
        let now = self.now;
        let budget = self.options.write_budget;
        let Some(sess) = self
            .slots
            .get_mut(slot as usize)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.sess.as_deref_mut())
        else {
            return;
        };
        if sess.f.connecting {
            return;
        }
        let mut written = 0u64;
        let end = transmit_loop(
            sess,
            &mut self.scratch,
            &self.options.pool,
            now,
            budget,
            &mut written,
        );
        self.stats.bytes_written += written;
        sess.f.write_blocked = false;
        match end {
            Ok(TxEnd::Done) => {}
            Ok(TxEnd::Budget) => self.push_carry(slot, false, true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => sess.f.write_blocked = true,
            Err(e) => {
                sess.pending = None;
                sess.f.eof = true;
                sess.conn.handle_transport_error(now, &e);
            }
        }
    }

    /// After a drive: the drain notice, the deadline, the poll interest.
    pub(crate) fn after_drive(&mut self, slot: u32, gen: Gen) {
        let id = self.id(slot, gen);
        let Some(sess) = self.session_mut(slot, gen) else {
            return;
        };
        if sess.f.backpressured && sess.conn.buffered_amount() == 0 {
            sess.f.backpressured = false;
            self.notices.push_back((id, Notice::Drain));
        }
        self.reschedule(slot, gen);
        self.update_interest(slot, gen);
    }

    /// Puts the session's next deadline in the heap, unless an entry at or
    /// before it is already there.
    fn reschedule(&mut self, slot: u32, gen: Gen) {
        let Some(sess) = self.session_mut(slot, gen) else {
            return;
        };
        let want = if sess.f.connecting {
            sess.connect_deadline
        } else {
            sess.conn.poll_timeout()
        };
        if let Some(w) = want {
            if sess.timer.is_none_or(|t| w < t) {
                sess.timer = Some(w);
                self.timers.push(Reverse((w, slot, gen)));
            }
        }
    }

    /// Registers readable interest unless reading is paused or over, and
    /// writable interest only while a write is blocked (or a connect is in
    /// flight); deregisters when neither is wanted.
    pub(crate) fn update_interest(&mut self, slot: u32, gen: Gen) {
        let now = self.now;
        let registry = self.poll.registry();
        let Some(sess) = self
            .slots
            .get_mut(slot as usize)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.sess.as_deref_mut())
        else {
            return;
        };
        let read = !sess.f.read_paused && !sess.f.eof;
        let write = sess.f.connecting || sess.f.write_blocked;
        let want = match (read, write) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        };
        if want == sess.interest {
            return;
        }
        let token = conn_token(slot, gen);
        let sock = sess.transport.socket_mut();
        let result = match (sess.interest, want) {
            (None, Some(i)) => registry.register(sock, token, i),
            (Some(_), Some(i)) => registry.reregister(sock, token, i),
            (Some(_), None) => registry.deregister(sock),
            (None, None) => Ok(()),
        };
        match result {
            Ok(()) => sess.interest = want,
            Err(e) => {
                sess.f.eof = true;
                sess.conn
                    .handle_transport_error(now, format!("poll registration failed: {e}"));
                self.mark_dirty(slot);
            }
        }
    }

    // ----- timers -------------------------------------------------------

    /// Pops the next due heap entry that is still current: `(slot, gen)`.
    pub(crate) fn pop_due_timer(&mut self) -> Option<Option<(u32, Gen)>> {
        let &Reverse((t, slot, gen)) = self.timers.peek()?;
        if t > self.now {
            return None;
        }
        self.timers.pop();
        let Some(sess) = self.session_mut(slot, gen) else {
            return Some(None);
        };
        if sess.timer != Some(t) {
            return Some(None);
        }
        sess.timer = None;
        Some(Some((slot, gen)))
    }

    /// A session's deadline passed: give up a TCP connect, or let the core
    /// handle its timers.
    pub(crate) fn on_timer(&mut self, slot: u32, gen: Gen) {
        let now = self.now;
        let Some(sess) = self.session_mut(slot, gen) else {
            return;
        };
        if sess.f.connecting {
            if sess.connect_deadline.is_some_and(|d| now >= d) {
                sess.f.connecting = false;
                sess.f.eof = true;
                sess.connect_deadline = None;
                sess.conn.handle_transport_error(now, "connect timed out");
            }
            return;
        }
        sess.conn.handle_timeout(now);
    }

    /// How long the next poll may wait.
    pub(crate) fn next_wait(&self, max_wait: Option<Duration>) -> Option<Duration> {
        let busy = !self.carry.is_empty()
            || self.commands_carry
            || !self.dirty.is_empty()
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
        if let Some(Reverse((t, _, _))) = self.timers.peek() {
            consider(t.saturating_duration_since(now));
        }
        if !self.paused.is_empty() {
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

    // ----- connections --------------------------------------------------

    /// Adds a listening socket.
    pub(crate) fn add_listener(
        &mut self,
        listener: std::net::TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<SocketAddr> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut sock = TcpListener::from_std(listener);
        let index = self.listeners.len();
        self.poll
            .registry()
            .register(&mut sock, listener_token(index), Interest::READABLE)?;
        self.listeners.push(Some(Listener {
            sock,
            tls,
            retry_at: None,
            carry: false,
        }));
        Ok(addr)
    }

    /// Stops accepting: closes every listening socket.
    fn close_listeners(&mut self) {
        for l in self.listeners.iter_mut() {
            if let Some(mut l) = l.take() {
                if let Err(e) = self.poll.registry().deregister(&mut l.sock) {
                    log::debug!("ws-mio: deregistering a listener failed: {e}");
                }
            }
        }
    }

    /// Takes in an accepted socket as a server connection. Over
    /// `max_connections` the connection is still taken in, but only so that
    /// the core can answer its upgrade request with 503 and `Retry-After`
    /// (at most [`Options::max_refusing`] such answers at a time; beyond
    /// that, and while shutting down, the socket is closed at once). Either
    /// way the client hears at once, and the next connection after a slot
    /// frees is served.
    pub(crate) fn add_accepted(
        &mut self,
        stream: TcpStream,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) {
        self.stats.accepted += 1;
        if self.run != RunState::Running {
            self.stats.refused += 1;
            return;
        }
        let refusing = self.held() >= self.options.max_connections;
        if refusing {
            self.stats.refused += 1;
            let (max, now) = (self.options.max_connections, self.now);
            if self.refusing >= self.options.max_refusing {
                ws_net::log_limited!(
                    self.log.refused,
                    now,
                    log::Level::Warn,
                    "ws-mio: at max_connections ({max}) with {} refusals under way: \
                     closing new connections at once",
                    self.refusing
                );
                return;
            }
            ws_net::log_limited!(
                self.log.refused,
                now,
                log::Level::Warn,
                "ws-mio: at max_connections ({max}): answering 503 to new connections"
            );
        }
        if self.options.nodelay {
            if let Err(e) = stream.set_nodelay(true) {
                log::debug!("ws-mio: TCP_NODELAY failed: {e}");
            }
        }
        let transport = match tls {
            None => Transport::Plain(stream),
            Some(cfg) => match rustls::ServerConnection::new(cfg) {
                Ok(c) => Transport::tls(stream, rustls::Connection::Server(c)),
                Err(e) => {
                    let now = self.now;
                    ws_net::log_limited!(
                        self.log.tls,
                        now,
                        log::Level::Warn,
                        "ws-mio: TLS server session failed: {e}"
                    );
                    if !refusing {
                        self.stats.refused += 1;
                    }
                    return;
                }
            },
        };
        let mut config = self.options.config.clone();
        if refusing {
            config.handshake_timeout = config.handshake_timeout.min(REFUSAL_TIMEOUT);
        }
        let conn = Connection::server(config, self.now);
        let mut sess = Session::new(conn, transport, None);
        sess.f.refusing = refusing;
        if let Err(e) = self.insert(sess) {
            log::debug!("ws-mio: connection refused: {e}");
            if !refusing {
                self.stats.refused += 1;
            }
        }
    }

    /// Answers the upgrade request of a connection taken in over
    /// `max_connections`: 503 with `Retry-After` (the core writes the
    /// response and closes).
    pub(crate) fn refuse(&mut self, id: ConnId) {
        let headers = [("Retry-After".to_string(), RETRY_AFTER_SECS.to_string())];
        let body = b"server at its connection limit; retry later";
        if let Ok(sess) = self.get_mut(id) {
            if let Err(e) = sess.conn.reject(503, &headers, body) {
                log::debug!("ws-mio: refusing {id}: {e}");
            }
        }
        self.mark_dirty(id.slot());
    }

    /// A handler callback for `id` panicked: fail the connection (1011 when
    /// open; 500 to an upgrade request waiting for its decision; dropped
    /// otherwise). Its `Closed` follows as usual, so `on_close` is called
    /// once.
    pub(crate) fn fail_panicked(&mut self, id: ConnId) {
        let now = self.now;
        let Ok(sess) = self.get_mut(id) else {
            return;
        };
        if sess.f.panicked {
            return;
        }
        sess.f.panicked = true;
        match sess.conn.state() {
            State::Open => {
                if let Err(e) = sess.conn.close(CloseCode::INTERNAL_ERROR, "internal error") {
                    log::debug!("ws-mio: closing {id} after a panic: {e}");
                }
            }
            State::Connecting => {
                if sess.conn.reject(500, &[], b"").is_err() {
                    sess.f.connecting = false;
                    sess.f.eof = true;
                    sess.pending = None;
                    sess.conn.handle_transport_error(now, "handler panicked");
                }
            }
            State::Closing | State::Closed => {}
        }
        self.mark_dirty(id.slot());
    }

    /// Opens a client connection (`ws://` or `wss://`).
    pub(crate) fn connect(&mut self, url: &str, opts: ConnectOptions) -> Result<ConnId, Error> {
        if self.run != RunState::Running || self.want_stop || self.want_shutdown.is_some() {
            return Err(Error::ShuttingDown);
        }
        if self.held() >= self.options.max_connections {
            return Err(Error::TooManyConnections);
        }
        // Everything that can be refused locally is refused before a name
        // is resolved or a socket exists: the URL, then the request
        // (validated by `client_request` and again by the core).
        let url = WsUrl::parse(url)?;
        let request = ws_net::request::client_request(
            &url,
            opts.origin.as_deref(),
            &opts.protocols,
            &opts.headers,
        )?;
        let config = opts.config.unwrap_or_else(|| self.options.config.clone());
        let deadline = self.now + config.handshake_timeout;
        let conn = Connection::client(config, &request, self.now)?;
        let tls = if url.is_secure() {
            let cfg = match opts.tls {
                Some(c) => c,
                None => self.default_client_tls()?,
            };
            let c = ws_net::tls::client_connection(cfg, url.host())?;
            Some(rustls::Connection::Client(c))
        } else {
            None
        };
        let addr = match (opts.addr, url.ip()) {
            (Some(a), _) => a,
            (None, Some(ip)) => SocketAddr::new(ip, url.port()),
            (None, None) => (url.host(), url.port())
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| {
                    Error::Io(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("host {:?} resolves to no address", url.host()),
                    ))
                })?,
        };
        let stream = net::start_connect(addr, opts.bind)?;
        if self.options.nodelay {
            if let Err(e) = stream.set_nodelay(true) {
                log::debug!("ws-mio: TCP_NODELAY failed: {e}");
            }
        }
        let transport = match tls {
            Some(t) => Transport::tls(stream, t),
            None => Transport::Plain(stream),
        };
        let (slot, gen) = self.insert(Session::new(conn, transport, Some(deadline)))?;
        Ok(self.id(slot, gen))
    }

    fn default_client_tls(&mut self) -> Result<Arc<rustls::ClientConfig>, Error> {
        if let Some(c) = &self.client_tls {
            return Ok(c.clone());
        }
        let c = tls::default_client_config()?;
        self.client_tls = Some(c.clone());
        Ok(c)
    }

    // ----- commands -----------------------------------------------------

    /// Queues a message.
    pub(crate) fn send(&mut self, id: ConnId, kind: MessageKind, data: Bytes) -> Result<(), Error> {
        let sess = self.get_mut(id)?;
        let r = sess.conn.send(kind, data);
        self.after_command(id, r)
    }

    /// Queues a text message from a `&str` (the core skips the UTF-8 check).
    pub(crate) fn send_text(&mut self, id: ConnId, text: &str) -> Result<(), Error> {
        let sess = self.get_mut(id)?;
        let r = sess.conn.send_text(text);
        self.after_command(id, r)
    }

    /// Queues a ping.
    pub(crate) fn ping(&mut self, id: ConnId, payload: Bytes) -> Result<(), Error> {
        let r = self.get_mut(id)?.conn.ping(payload);
        self.after_command(id, r)
    }

    /// Starts the closing handshake.
    pub(crate) fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), Error> {
        let r = self.get_mut(id)?.conn.close(code, reason);
        self.after_command(id, r)
    }

    /// Carries out an upgrade decision. A decision the core refuses (an
    /// invalid header or status) becomes a plain refusal with status 500.
    pub(crate) fn decide(&mut self, id: ConnId, decision: Decision) -> Result<(), Error> {
        let sess = self.get_mut(id)?;
        let r = match decision {
            Decision::Accept(a) => sess.conn.accept(a),
            Decision::Reject {
                status,
                headers,
                body,
            } => sess.conn.reject(status, &headers, &body),
            Decision::Defer => return Ok(()),
        };
        if let Err(e) = &r {
            if matches!(e, ws_proto::Error::InvalidHeader(_)) {
                let now = self.now;
                ws_net::log_limited!(
                    self.log.decision,
                    now,
                    log::Level::Warn,
                    "ws-mio: upgrade decision for {id} refused ({e}); answering 500"
                );
                if let Ok(sess) = self.get_mut(id) {
                    let _ = sess.conn.reject(500, &[], b"");
                }
            }
        }
        self.after_command(id, r)
    }

    /// Accepts a deferred upgrade.
    pub(crate) fn accept(&mut self, id: ConnId, accept: Accept) -> Result<(), Error> {
        let r = self.get_mut(id)?.conn.accept(accept);
        self.after_command(id, r)
    }

    fn after_command(&mut self, id: ConnId, r: Result<(), ws_proto::Error>) -> Result<(), Error> {
        self.mark_dirty(id.slot());
        if let Err(ws_proto::Error::Backpressure {
            buffered_amount, ..
        }) = &r
        {
            self.stats.backpressure += 1;
            let buffered = *buffered_amount;
            if let Ok(sess) = self.get_mut(id) {
                if !sess.f.backpressured {
                    sess.f.backpressured = true;
                    self.notices.push_back((id, Notice::Backpressure(buffered)));
                }
            }
        }
        r.map_err(Error::Proto)
    }

    /// Sends to every open connection of the loop; returns how many took it.
    pub(crate) fn broadcast(&mut self, kind: MessageKind, data: &Bytes) -> usize {
        let mut sent = 0;
        for slot in 0..self.slots.len() {
            let slot = slot as u32;
            let Some(gen) = self.gen_of(slot) else {
                continue;
            };
            let open = self
                .session_mut(slot, gen)
                .is_some_and(|s| s.conn.state() == State::Open);
            if open && self.send(self.id(slot, gen), kind, data.clone()).is_ok() {
                sent += 1;
            }
        }
        sent
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
        for id in self.ids() {
            let now = self.now;
            let Ok(sess) = self.get_mut(id) else { continue };
            match sess.conn.state() {
                State::Open => {
                    let _ = sess.conn.close(CloseCode::GOING_AWAY, "shutting down");
                }
                State::Connecting => {
                    sess.f.connecting = false;
                    sess.f.eof = true;
                    sess.conn.handle_transport_error(now, "shutting down");
                }
                State::Closing | State::Closed => {}
            }
            self.mark_dirty(id.slot());
        }
    }

    /// Ends every connection now (each still gets its `Closed`).
    pub(crate) fn abort_all(&mut self, why: &str) {
        self.close_listeners();
        for id in self.ids() {
            let now = self.now;
            let Ok(sess) = self.get_mut(id) else { continue };
            sess.f.connecting = false;
            sess.f.eof = true;
            sess.pending = None;
            sess.conn.handle_transport_error(now, why);
            self.mark_dirty(id.slot());
        }
    }

    /// Drops whatever is left without telling anyone (after `abort_all`
    /// every connection has had its `Closed`; this is only a safety net).
    pub(crate) fn clear(&mut self) {
        for id in self.ids() {
            self.remove(id.slot(), id.gen());
        }
        self.close_listeners();
    }

    /// Bytes the driver and core hold for a connection's data: the core's
    /// buffers plus an unwritten remainder.
    pub(crate) fn retained_bytes(&self, id: ConnId) -> Option<usize> {
        let s = self.get(id)?;
        Some(s.conn.retained_bytes() + s.pending.as_ref().map_or(0, |(seg, _)| seg.capacity()))
    }
}

impl Session {
    fn new(conn: Connection, transport: Transport, connect_deadline: Option<Instant>) -> Session {
        let f = Flags {
            connecting: connect_deadline.is_some(),
            ..Flags::default()
        };
        Session {
            conn,
            transport,
            pending: None,
            timer: None,
            connect_deadline,
            interest: None,
            f,
        }
    }
}

/// The body of [`LoopState::transmit`]: `Err(WouldBlock)` when the socket is full.
fn transmit_loop(
    sess: &mut Session,
    scratch: &mut [u8],
    pool: &ws_buf::BufferPool,
    now: Instant,
    budget: usize,
    written: &mut u64,
) -> io::Result<TxEnd> {
    let mut sent = 0usize;
    loop {
        if let Some((seg, pos)) = sess.pending.as_mut() {
            while *pos < seg.len() {
                let n = sess.transport.write(seg.get(*pos..).unwrap_or_default())?;
                *pos += n;
                sent += n;
                *written += n as u64;
            }
            sess.pending = None;
        }
        sess.transport.flush()?;
        if sent >= budget {
            return Ok(TxEnd::Budget);
        }
        match sess.conn.poll_transmit(now, scratch) {
            None => return Ok(TxEnd::Done),
            Some(Transmit::Data(n)) => {
                let data = scratch.get(..n).unwrap_or_default();
                let k = match sess.transport.write(data) {
                    Ok(k) => k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(e),
                };
                sent += k;
                *written += k as u64;
                if k < data.len() {
                    // Keep only the unwritten remainder, in a pooled segment
                    // sized for it, until the socket is writable again.
                    let rest = data.get(k..).unwrap_or_default();
                    let mut seg = pool.get(rest.len());
                    seg.extend_from_slice(rest);
                    sess.pending = Some((seg, 0));
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            }
            Some(Transmit::Shutdown) => sess.transport.shutdown_write()?,
        }
    }
}
