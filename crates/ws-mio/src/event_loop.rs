//! One event loop: the public [`EventLoop`] and its turn (poll, then hand
//! readiness, commands, due deadlines and carried work to the modules that
//! own them). The routine that drives a connection is `dispatch::drive`.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Waker};

use crate::ctx::Ctx;
use crate::dispatch::{self, App};
use crate::error::Error;
use crate::handle::{next_command, Command, Handle, Remote};
use crate::handler::Handler;
use crate::id::{listener_index, split_token, ConnId, WAKER_TOKEN};
use crate::io::ReadStep;
use crate::options::{ConnectOptions, Options};
use crate::state::{LoopState, LoopStats, RunState};
use crate::{net, timers};

/// An event loop: many connections, client and server role, on one thread.
///
/// Build it with [`EventLoop::new`], add listeners ([`listen`](Self::listen),
/// [`listen_tls`](Self::listen_tls)) and outgoing connections
/// ([`connect`](Self::connect)), then [`run`](Self::run) it (or call
/// [`turn`](Self::turn) from your own loop). For several loops on several
/// threads use [`LoopGroup`](crate::LoopGroup).
pub struct EventLoop<H: Handler> {
    app: App<H>,
    /// The loop's end of its command queue.
    remote: Arc<Remote>,
    rx: Receiver<Command>,
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
            app: App { handler, handle },
            remote: parts.remote,
            rx: parts.rx,
            state: LoopState::new(index, parts.poll, options),
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
        self.app.handle.clone()
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.app.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.app.handler
    }

    /// Runs `f` with the loop's [`Ctx`] (between iterations), then carries
    /// out what it queued.
    pub fn with_ctx<R>(&mut self, f: impl FnOnce(&mut H, &mut Ctx<'_>) -> R) -> R {
        let r = f(
            &mut self.app.handler,
            &mut Ctx::new(&mut self.state, &self.app.handle),
        );
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
            dispatch::call(
                &mut self.app,
                &mut self.state,
                None,
                "on_start",
                |h, ctx| h.on_start(ctx),
            );
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
        self.handle_events(&events);
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

    // ----- driving and handler calls (see `dispatch`) ---------------------

    fn drive(&mut self, id: ConnId) {
        dispatch::drive(&mut self.app, &mut self.state, id);
    }

    fn settle(&mut self) {
        dispatch::settle(&mut self.app, &mut self.state);
    }

    // ----- readiness ----------------------------------------------------

    /// Hands the readiness events of one poll to their connections,
    /// listeners or command queue.
    fn handle_events(&mut self, events: &Events) {
        for ev in events.iter() {
            let token = ev.token();
            if token == WAKER_TOKEN {
                self.process_commands();
            } else if let Some(li) = listener_index(token) {
                self.state.accept_from(li);
            } else {
                let (slot, token_gen) = split_token(token);
                // A token carries the low bits of its connection's serial
                // (where `usize` is wide enough): readiness reported for a
                // connection that has since closed does not reach the slot's
                // next occupant.
                let Some(id) = self
                    .state
                    .sessions
                    .id_at(slot)
                    .filter(|id| token_gen.is_none_or(|t| id.gen() as u32 == t))
                else {
                    continue;
                };
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                let writable = ev.is_writable() || ev.is_write_closed() || ev.is_error();
                self.on_ready(id, readable, writable);
            }
            self.settle();
        }
    }

    fn on_ready(&mut self, id: ConnId, readable: bool, writable: bool) {
        if writable {
            self.state.finish_connect(id);
            self.drive(id);
        } else if readable && self.state.in_proxy_handshake(id) {
            // The proxy's answer: the handshake moves on reads too.
            self.state.finish_connect(id);
            self.drive(id);
        }
        if readable {
            self.read_ready(id);
        }
    }

    /// Reads within the per-iteration budget, driving the connection after
    /// every read.
    fn read_ready(&mut self, id: ConnId) {
        let mut total = 0;
        loop {
            match self.state.read_once(id, &mut total) {
                ReadStep::Fed => self.drive(id),
                ReadStep::Ended => return self.drive(id),
                ReadStep::Blocked(tls) => {
                    if tls {
                        self.drive(id);
                    }
                    return;
                }
                ReadStep::Budget => return self.state.carry_read(id),
                ReadStep::Paused => return self.state.pause(id),
                ReadStep::Idle => return,
            }
        }
    }

    fn accept_carried(&mut self) {
        for index in 0..self.state.listeners.len() {
            if self.state.accept_due(index) {
                self.state.accept_from(index);
                self.settle();
            }
        }
    }

    fn process_carry(&mut self) {
        let mut work = self.state.sessions.take_carried();
        for slot in work.drain(..) {
            let Some((id, read, write)) = self.state.sessions.take_carry(slot) else {
                continue;
            };
            if write {
                self.drive(id);
            }
            if read {
                self.read_ready(id);
            }
            self.settle();
        }
        self.state.sessions.carried_done(work);
    }

    fn fire_timers(&mut self) {
        // Bounded: a deadline that does not move forward cannot spin here.
        let mut budget = 4 * self.state.sessions.live() + 64;
        while budget > 0 {
            budget -= 1;
            let now = self.state.now;
            let Some(entry) = self.state.timers.pop_due(now, &mut self.state.sessions) else {
                break;
            };
            let Some(id) = entry else { continue };
            if self.state.lower_low_water(id) {
                self.read_ready(id);
            }
            if let Some((sess, _)) = self.state.sessions.get_mut(id) {
                timers::expire(sess, now);
            }
            self.drive(id);
            self.settle();
        }
    }

    // ----- commands and control -----------------------------------------

    fn process_commands(&mut self) {
        self.remote.clear_notified();
        self.state.commands_carry = false;
        // The batch first, then one settle: what the commands queued on a
        // connection (e.g. a burst of broadcasts) leaves in one write.
        for _ in 0..self.state.options.command_budget.max(1) {
            let Some(cmd) = next_command(&self.rx) else {
                self.settle();
                return;
            };
            self.run_command(cmd);
        }
        self.settle();
        self.state.commands_carry = true;
    }

    fn run_command(&mut self, cmd: Command) {
        let r = match cmd {
            Command::Send { id, kind, data } => self.state.send(id, kind, data),
            Command::Ping { id, payload } => self.state.ping(id, payload),
            Command::Close { id, code, reason } => self.state.close(id, code, &reason),
            Command::Broadcast { msg, except } => {
                self.state.broadcast(&msg, except);
                Ok(())
            }
            Command::Run(task) => {
                dispatch::call(
                    &mut self.app,
                    &mut self.state,
                    None,
                    "a task run on the loop",
                    |_, ctx| task(ctx),
                );
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
        if self.remote.stop_requested() || std::mem::take(&mut self.state.want_stop) {
            self.state.abort_all("event loop stopped");
            self.settle();
            self.state.clear();
            self.state.run = RunState::Stopped;
            return;
        }
        let requested = self
            .remote
            .take_shutdown()
            .or(self.state.want_shutdown.take());
        if let Some(grace) = requested {
            self.state.begin_shutdown(grace);
            self.settle();
        }
        if let RunState::Draining { deadline } = self.state.run {
            if self.state.sessions.live() > 0 && self.state.now >= deadline {
                self.state.abort_all("shutdown grace period expired");
                self.settle();
            }
            if self.state.sessions.live() == 0 || self.state.now >= deadline {
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
