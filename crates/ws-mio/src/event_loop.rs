//! One event loop: a `mio::Poll`, the sessions, the handler, and the single
//! routine that drives a connection (`EventLoop::drive`).

use std::any::Any;
use std::io;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Waker};
use ws_proto::Event;

use crate::engine::{LoopState, Notice, ReadStep, RunState};
use crate::handle::{next_command, Command, Remote};
use crate::id::{listener_index, split_token, Gen, WAKER_TOKEN};
use crate::{
    net, ConnId, ConnectOptions, Ctx, Decision, Error, Handle, Handler, LoopStats, Options,
};

/// How long to wait before accepting again after an accept error such as
/// running out of file descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// An event loop: many connections, client and server role, on one thread.
///
/// Build it with [`EventLoop::new`], add listeners ([`listen`](Self::listen),
/// [`listen_tls`](Self::listen_tls)) and outgoing connections
/// ([`connect`](Self::connect)), then [`run`](Self::run) it (or call
/// [`turn`](Self::turn) from your own loop). For several loops on several
/// threads use [`LoopGroup`](crate::LoopGroup).
pub struct EventLoop<H: Handler> {
    handler: H,
    state: LoopState,
    events: Option<Events>,
    started: bool,
}

impl<H: Handler> EventLoop<H> {
    /// A loop with the given options and handler.
    pub fn new(options: Options, handler: H) -> io::Result<EventLoop<H>> {
        let parts = LoopParts::new(&options)?;
        let handle = Handle::new(vec![parts.remote.clone()]);
        Ok(EventLoop::from_parts(0, parts, handle, options, handler))
    }

    pub(crate) fn from_parts(
        index: u16,
        parts: LoopParts,
        handle: Handle,
        options: Options,
        handler: H,
    ) -> EventLoop<H> {
        let events = Events::with_capacity(options.events_capacity.max(1));
        EventLoop {
            handler,
            state: LoopState::new(index, parts.poll, parts.remote, parts.rx, handle, options),
            events: Some(events),
            started: false,
        }
    }

    /// Listens on `addr` (e.g. `127.0.0.1:0`) for `ws://` connections;
    /// returns the bound address.
    pub fn listen(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let l = net::bind_listener(addr, self.state.options.backlog, false)?;
        self.state.add_listener(l, None)
    }

    /// Listens on `addr` for `wss://` connections.
    pub fn listen_tls(
        &mut self,
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
    ) -> io::Result<SocketAddr> {
        let l = net::bind_listener(addr, self.state.options.backlog, false)?;
        self.state.add_listener(l, Some(tls))
    }

    /// Accepts connections from an already bound listener (TLS when `tls` is
    /// given).
    pub fn add_listener(
        &mut self,
        listener: std::net::TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<SocketAddr> {
        self.state.add_listener(listener, tls)
    }

    /// Opens a client connection (see [`Ctx::connect`]).
    pub fn connect(&mut self, url: &str, options: ConnectOptions) -> Result<ConnId, Error> {
        self.state.connect(url, options)
    }

    /// A handle for other threads.
    pub fn handle(&self) -> Handle {
        self.state.handle.clone()
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Runs `f` with the loop's [`Ctx`] (between iterations), then carries
    /// out what it queued.
    pub fn with_ctx<R>(&mut self, f: impl FnOnce(&mut H, &mut Ctx<'_>) -> R) -> R {
        let r = f(&mut self.handler, &mut Ctx::new(&mut self.state));
        self.settle();
        r
    }

    /// The loop's counters.
    pub fn stats(&self) -> LoopStats {
        self.state.stats
    }

    /// Whether the loop still runs (it stops after [`Handle::stop`] or
    /// [`Handle::shutdown`] has finished).
    pub fn is_running(&self) -> bool {
        self.state.run != RunState::Stopped
    }

    /// Runs until stopped or shut down.
    pub fn run(&mut self) -> io::Result<()> {
        while self.turn(None)? {}
        Ok(())
    }

    /// One iteration: wait for readiness (at most `max_wait`, and never
    /// past the earliest connection deadline), then handle what is ready,
    /// the commands from handles, the due timers and the work a budget
    /// carried over. Returns `false` once the loop has stopped.
    pub fn turn(&mut self, max_wait: Option<Duration>) -> io::Result<bool> {
        if self.state.run == RunState::Stopped {
            return Ok(false);
        }
        if !self.started {
            self.started = true;
            self.state.now = Instant::now();
            self.call(None, "on_start", |h, ctx| h.on_start(ctx));
            self.settle();
        }
        self.check_control();
        if self.state.run == RunState::Stopped {
            return Ok(false);
        }
        let timeout = self.state.next_wait(max_wait);
        let mut events = self
            .events
            .take()
            .unwrap_or_else(|| Events::with_capacity(self.state.options.events_capacity.max(1)));
        let polled = self.state.poll.poll(&mut events, timeout);
        self.state.now = Instant::now();
        self.state.stats.iterations += 1;
        if let Err(e) = polled {
            if e.kind() != io::ErrorKind::Interrupted {
                self.events = Some(events);
                return Err(e);
            }
        }
        for ev in events.iter() {
            let token = ev.token();
            if token == WAKER_TOKEN {
                self.process_commands();
            } else if let Some(li) = listener_index(token) {
                self.accept(li);
            } else {
                let (slot, token_gen) = split_token(token);
                // A token carries the low bits of its connection's serial
                // (where `usize` is wide enough): readiness reported for a
                // connection that has since closed does not reach the slot's
                // next occupant.
                let Some(gen) = self
                    .state
                    .gen_of(slot)
                    .filter(|g| token_gen.is_none_or(|t| *g as u32 == t))
                else {
                    continue;
                };
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                let writable = ev.is_writable() || ev.is_write_closed() || ev.is_error();
                self.on_ready(slot, gen, readable, writable);
            }
            self.settle();
        }
        self.events = Some(events);
        if self.state.commands_carry {
            self.process_commands();
        }
        self.accept_carried();
        self.process_carry();
        self.fire_timers();
        self.state.resume_paused();
        self.settle();
        self.check_control();
        Ok(self.state.run != RunState::Stopped)
    }

    // ----- the driving routine ------------------------------------------

    /// The one routine that follows the core's driving contract for a
    /// connection: write what `poll_transmit` hands out, deliver every
    /// event, repeat while callbacks queue more; then re-arm the deadline
    /// and the poll interest.
    fn drive(&mut self, slot: u32, gen: Gen) {
        loop {
            if let Some(sess) = self.state.session_mut(slot, gen) {
                sess.f.dirty = false;
            }
            self.state.transmit(slot, gen);
            // One event at a time, each handed to the handler before the
            // next is polled: the core echoes a peer's close only once the
            // events before it were taken, so replies to them go out first.
            let mut delivered = false;
            while let Some(ev) = self
                .state
                .session_mut(slot, gen)
                .and_then(|sess| sess.conn.poll_event())
            {
                delivered = true;
                let id = self.state.id(slot, gen);
                self.dispatch(id, ev);
            }
            if !delivered {
                break;
            }
        }
        self.state.after_drive(slot, gen);
    }

    /// Hands one event to the handler. A connection whose handler panicked
    /// gets no more callbacks but its one `on_close`.
    fn dispatch(&mut self, id: ConnId, ev: Event) {
        if self.state.get(id).is_some_and(|s| s.f.refusing) {
            // Over max_connections: answered by the loop, unseen by the
            // handler.
            match ev {
                Event::UpgradeRequest(_) => self.state.refuse(id),
                Event::Closed(_) => self.state.remove(id.slot(), id.gen()),
                _ => {}
            }
            return;
        }
        if self.state.get(id).is_some_and(|s| s.f.panicked) && !matches!(ev, Event::Closed(_)) {
            return;
        }
        match ev {
            Event::UpgradeRequest(req) => {
                let decision = if ws_net::origin::origin_allowed(
                    self.state.options.allowed_origins.as_deref(),
                    req.origin.as_deref(),
                ) {
                    self.call(Some(id), "on_upgrade", |h, ctx| h.on_upgrade(ctx, id, &req))
                } else {
                    log::info!(
                        "ws-mio: {id}: origin {:?} not in the allow-list",
                        req.origin
                    );
                    Some(Decision::reject(403, "origin not allowed"))
                };
                // None: the handler panicked, and the refusal is under way.
                if let Some(decision) = decision {
                    if let Err(e) = self.state.decide(id, decision) {
                        log::debug!("ws-mio: upgrade decision for {id}: {e}");
                    }
                }
            }
            Event::Open(info) => {
                self.call(Some(id), "on_open", |h, ctx| h.on_open(ctx, id, &info));
            }
            Event::Message(m) => {
                self.call(Some(id), "on_message", |h, ctx| h.on_message(ctx, id, m));
            }
            Event::Fragment(f) => {
                self.call(Some(id), "on_fragment", |h, ctx| h.on_fragment(ctx, id, f));
            }
            Event::Ping(p) => {
                self.call(Some(id), "on_ping", |h, ctx| h.on_ping(ctx, id, &p));
            }
            Event::Pong(p) => {
                self.call(Some(id), "on_pong", |h, ctx| h.on_pong(ctx, id, &p));
            }
            Event::Closed(c) => {
                // Whether or not `on_close` panics, the connection goes.
                self.call(None, "on_close", |h, ctx| h.on_close(ctx, id, &c));
                self.state.remove(id.slot(), id.gen());
            }
            _ => {}
        }
    }

    /// The one place application code is called from the loop: runs `f`
    /// with the handler and a [`Ctx`], and contains a panic. `Some` is what
    /// `f` returned; `None` means it panicked: the panic is logged
    /// (rate-limited) and, when the callback was about connection `id`, that
    /// connection is failed (1011 when it is open, a 500 answer to its
    /// upgrade request before that) and gets no callback but its one
    /// `on_close`. Every other connection goes on as before.
    fn call<R>(
        &mut self,
        id: Option<ConnId>,
        what: &'static str,
        f: impl FnOnce(&mut H, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let handler = &mut self.handler;
        let state = &mut self.state;
        match panic::catch_unwind(AssertUnwindSafe(|| f(handler, &mut Ctx::new(state)))) {
            Ok(r) => Some(r),
            Err(payload) => {
                let msg = panic_message(payload.as_ref());
                let now = Instant::now();
                match id {
                    Some(id) => ws_net::log_limited!(
                        self.state.log.panic,
                        now,
                        log::Level::Error,
                        "ws-mio: {what} panicked for {id} ({msg}); closing it with 1011"
                    ),
                    None => ws_net::log_limited!(
                        self.state.log.panic,
                        now,
                        log::Level::Error,
                        "ws-mio: {what} panicked ({msg})"
                    ),
                }
                if let Some(id) = id {
                    self.state.fail_panicked(id);
                }
                None
            }
        }
    }

    /// Drives every session marked by a command and delivers the pending
    /// notices, until neither is left.
    fn settle(&mut self) {
        loop {
            if let Some(next) = self.state.pop_dirty() {
                if let Some((slot, gen)) = next {
                    self.drive(slot, gen);
                }
                continue;
            }
            if let Some((id, notice)) = self.state.notices.pop_front() {
                if self.state.get(id).is_none() {
                    continue;
                }
                if self.state.get(id).is_some_and(|s| s.f.panicked) {
                    continue;
                }
                match notice {
                    Notice::Backpressure(n) => {
                        self.call(Some(id), "on_backpressure", |h, ctx| {
                            h.on_backpressure(ctx, id, n)
                        });
                    }
                    Notice::Drain => {
                        self.call(Some(id), "on_drain", |h, ctx| h.on_drain(ctx, id));
                    }
                }
                continue;
            }
            break;
        }
    }

    // ----- readiness ----------------------------------------------------

    fn on_ready(&mut self, slot: u32, gen: Gen, readable: bool, writable: bool) {
        if writable {
            self.state.finish_connect(slot, gen);
            self.drive(slot, gen);
        }
        if readable {
            self.read_ready(slot, gen);
        }
    }

    /// Reads within the per-iteration budget, driving the connection after
    /// every read.
    fn read_ready(&mut self, slot: u32, gen: Gen) {
        let mut total = 0;
        loop {
            match self.state.read_once(slot, gen, &mut total) {
                ReadStep::Fed => self.drive(slot, gen),
                ReadStep::Ended => return self.drive(slot, gen),
                ReadStep::Blocked(tls) => {
                    if tls {
                        self.drive(slot, gen);
                    }
                    return;
                }
                ReadStep::Budget => {
                    self.state.carry_read(slot);
                    return;
                }
                ReadStep::Paused => return self.state.pause(slot, gen),
                ReadStep::Idle => return,
            }
        }
    }

    fn accept(&mut self, index: usize) {
        let budget = self.state.options.accept_budget;
        for _ in 0..budget {
            let Some(Some(l)) = self.state.listeners.get_mut(index) else {
                return;
            };
            l.carry = false;
            match l.sock.accept() {
                Ok((stream, _peer)) => {
                    let tls = l.tls.clone();
                    self.state.add_accepted(stream, tls);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    let now = self.state.now;
                    l.retry_at = Some(now + ACCEPT_RETRY);
                    ws_net::log_limited!(
                        self.state.log.accept,
                        now,
                        log::Level::Warn,
                        "ws-mio: accept failed: {e}; retrying in {ACCEPT_RETRY:?}"
                    );
                    return;
                }
            }
        }
        if let Some(Some(l)) = self.state.listeners.get_mut(index) {
            l.carry = true;
        }
    }

    fn accept_carried(&mut self) {
        let now = self.state.now;
        for index in 0..self.state.listeners.len() {
            let due = match self.state.listeners.get_mut(index) {
                Some(Some(l)) if l.carry => true,
                Some(Some(l)) if l.retry_at.is_some_and(|t| t <= now) => {
                    l.retry_at = None;
                    true
                }
                _ => false,
            };
            if due {
                self.accept(index);
                self.settle();
            }
        }
    }

    fn process_carry(&mut self) {
        let mut work = std::mem::take(&mut self.state.carry_work);
        std::mem::swap(&mut work, &mut self.state.carry);
        for slot in work.drain(..) {
            let Some((gen, read, write)) = self.state.take_carry(slot) else {
                continue;
            };
            if write {
                self.drive(slot, gen);
            }
            if read {
                self.read_ready(slot, gen);
            }
            self.settle();
        }
        self.state.carry_work = work;
    }

    fn fire_timers(&mut self) {
        // Bounded: a deadline that does not move forward cannot spin here.
        let mut budget = 4 * self.state.live() + 64;
        while budget > 0 {
            budget -= 1;
            let Some(entry) = self.state.pop_due_timer() else {
                break;
            };
            let Some((slot, gen)) = entry else { continue };
            self.state.on_timer(slot, gen);
            self.drive(slot, gen);
            self.settle();
        }
    }

    // ----- commands and control -----------------------------------------

    fn process_commands(&mut self) {
        self.state.remote.clear_notified();
        self.state.commands_carry = false;
        for _ in 0..self.state.options.command_budget.max(1) {
            let Some(cmd) = next_command(&self.state.rx) else {
                return;
            };
            self.run_command(cmd);
            self.settle();
        }
        self.state.commands_carry = true;
    }

    fn run_command(&mut self, cmd: Command) {
        let r = match cmd {
            Command::Send { id, kind, data } => self.state.send(id, kind, data),
            Command::Ping { id, payload } => self.state.ping(id, payload),
            Command::Close { id, code, reason } => self.state.close(id, code, &reason),
            Command::Broadcast { kind, data } => {
                self.state.broadcast(kind, &data);
                Ok(())
            }
            Command::Run(task) => {
                self.call(None, "a task run on the loop", |_, ctx| task(ctx));
                Ok(())
            }
        };
        if let Err(e) = r {
            log::debug!("ws-mio: command from a handle refused: {e}");
        }
    }

    /// Carries out stop and shutdown requests, and ends a shutdown whose
    /// connections are all gone or whose grace period is over.
    fn check_control(&mut self) {
        if self.state.remote.stop_requested() || std::mem::take(&mut self.state.want_stop) {
            self.state.abort_all("event loop stopped");
            self.settle();
            self.state.clear();
            self.state.run = RunState::Stopped;
            return;
        }
        let requested = self
            .state
            .remote
            .take_shutdown()
            .or(self.state.want_shutdown.take());
        if let Some(grace) = requested {
            self.state.begin_shutdown(grace);
            self.settle();
        }
        if let RunState::Draining { deadline } = self.state.run {
            if self.state.live() > 0 && self.state.now >= deadline {
                self.state.abort_all("shutdown grace period expired");
                self.settle();
            }
            if self.state.live() == 0 || self.state.now >= deadline {
                self.state.clear();
                self.state.run = RunState::Stopped;
            }
        }
    }
}

/// What a loop needs that its handle must know about too: the poll (whose
/// registry makes the waker), the waker's shared state, the queue.
pub(crate) struct LoopParts {
    pub(crate) poll: Poll,
    pub(crate) remote: Arc<Remote>,
    pub(crate) rx: Receiver<Command>,
}

impl LoopParts {
    pub(crate) fn new(options: &Options) -> io::Result<LoopParts> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN)?;
        let (tx, rx) = mpsc::sync_channel(options.command_queue.max(1));
        Ok(LoopParts {
            poll,
            remote: Arc::new(Remote::new(tx, waker)),
            rx,
        })
    }
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string payload")
}
