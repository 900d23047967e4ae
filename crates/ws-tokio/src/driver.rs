//! The connection state shared by a [`WebSocketStream`](crate::WebSocketStream) and its halves,
//! and the one routine that drives the core ([`Inner::drive`]).
//!
//! Everything here runs inside a `poll_*` call, under the stream's lock when it is shared: no
//! task, no channel, no thread. The socket, the sleep and the core are polled with one *proxy*
//! waker ([`Wakers`]) that wakes both the task waiting to read and the task waiting to write,
//! whichever of them polled the socket last, so two halves in two tasks never steal each
//! other's wake-ups.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use ws_proto::{Closed, Connection, Event, Message, OpenInfo, Transmit, UpgradeRequest};

use crate::Error;

/// Bytes read from the socket per read call (one buffer per connection, reused).
pub(crate) const READ_BUF: usize = 64 << 10;
/// Most bytes of a read handed to the core at once; the rest waits in the read buffer until
/// the application has taken the events these made. A read of small frames (a ping flood: over
/// 4,000 pings in 64 KiB) so never queues more events in the core than this much input makes.
const FEED: usize = 16 << 10;
/// The write buffer: everything `poll_transmit` hands out after one wake-up is collected here
/// (up to this size) and goes out in one write.
pub(crate) const WRITE_BUF: usize = 64 << 10;
/// Default for [`crate::WebSocketStream::set_send_high_water`].
pub(crate) const DEFAULT_HIGH_WATER: usize = 64 << 10;
/// Most read/write/timer rounds in one drive; then the task yields (woken at once) so one busy
/// connection cannot hold its executor thread forever.
const MAX_ROUNDS: usize = 64;

/// What a caller of [`Inner::poll_until`] waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Until {
    /// The upgrade request (server) or the connection open (client).
    Handshake,
    /// A message to hand out.
    Message,
    /// Room in the send queue for one more message.
    Room,
    /// Everything queued written to the socket.
    Flushed,
    /// The terminal `Closed` event.
    Closed,
}

/// Which task is waiting (the waker slot to fill).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Read,
    Write,
}

/// The wakers of the task waiting to read and of the task waiting to write. As a [`Waker`]
/// (the proxy) it wakes both: it is what the socket and the sleep hold.
#[derive(Debug, Default)]
pub(crate) struct Wakers {
    read: Mutex<Option<Waker>>,
    write: Mutex<Option<Waker>>,
}

impl Wakers {
    fn slot(&self, role: Role) -> &Mutex<Option<Waker>> {
        match role {
            Role::Read => &self.read,
            Role::Write => &self.write,
        }
    }

    /// Stores `w` for `role` (no clone when the same task is already there).
    fn register(&self, role: Role, w: &Waker) {
        let mut slot = self
            .slot(role)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(old) if old.will_wake(w) => {}
            _ => *slot = Some(w.clone()),
        }
    }

    fn wake_role(&self, role: Role) {
        let w = self
            .slot(role)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_role(Role::Read);
        self.wake_role(Role::Write);
    }
}

/// The current time on tokio's clock (paused and advanced in tests), as the core wants it.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// One connection: the socket, the core, the buffers, the timer and what the core handed out
/// that the application has not taken yet.
pub(crate) struct Inner<S> {
    io: S,
    pub(crate) conn: Connection,
    /// Reads land here, then go to the core (`rbuf[rpos..rlen]` is still to be fed); never
    /// reallocated.
    rbuf: Box<[u8]>,
    rpos: usize,
    rlen: usize,
    /// `poll_transmit` output: `wbuf[wpos..wlen]` is still to be written.
    wbuf: Box<[u8]>,
    wpos: usize,
    wlen: usize,
    /// The core asked for the write side to be shut down once `wbuf` is written.
    shutdown_due: bool,
    /// Written bytes not yet flushed (matters for TLS and buffered streams).
    needs_flush: bool,
    /// The write side is shut down or failed: output is discarded.
    write_done: bool,
    /// The read side reached end of stream or failed.
    read_done: bool,
    sleep: Option<Pin<Box<Sleep>>>,
    /// The next message for the application.
    pub(crate) next: Option<Message>,
    pub(crate) request: Option<Box<UpgradeRequest>>,
    pub(crate) open: Option<Box<OpenInfo>>,
    pub(crate) closed: Option<Closed>,
    /// The stream already yielded the error that ended the connection.
    pub(crate) error_reported: bool,
    /// A message the core's send queue had no room for (`Error::Backpressure`); it goes in first
    /// when room is made.
    pub(crate) pending: Option<Message>,
    /// The core's `max_send_queue`.
    pub(crate) queue_limit: usize,
    /// The sink is ready while fewer bytes than this are queued.
    pub(crate) high_water: usize,
    wakers: Arc<Wakers>,
    /// Split into halves: progress made by one half wakes the other.
    pub(crate) split: bool,
    /// The application started the closing handshake (see [`Inner::hold_events`]).
    pub(crate) local_close: bool,
}

impl<S> std::fmt::Debug for Inner<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("conn", &self.conn)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Inner<S> {
    pub(crate) fn new(io: S, conn: Connection, queue_limit: usize) -> Inner<S> {
        Inner {
            io,
            conn,
            rbuf: vec![0; READ_BUF].into_boxed_slice(),
            rpos: 0,
            rlen: 0,
            wbuf: vec![0; WRITE_BUF].into_boxed_slice(),
            wpos: 0,
            wlen: 0,
            shutdown_due: false,
            needs_flush: false,
            write_done: false,
            read_done: false,
            sleep: None,
            next: None,
            request: None,
            open: None,
            closed: None,
            error_reported: false,
            pending: None,
            queue_limit,
            high_water: DEFAULT_HIGH_WATER.min(queue_limit.max(1)),
            wakers: Arc::default(),
            split: false,
            local_close: false,
        }
    }

    /// Whether what `until` waits for has happened (the end of the connection ends every wait).
    fn done(&self, until: Until) -> bool {
        if self.closed.is_some() {
            return true;
        }
        match until {
            Until::Handshake => self.request.is_some() || self.open.is_some(),
            Until::Message => self.next.is_some(),
            Until::Room => self.pending.is_none() && self.conn.buffered_amount() < self.high_water,
            Until::Flushed => {
                self.pending.is_none()
                    && self.wlen == 0
                    && !self.needs_flush
                    && !self.conn.wants_transmit()
            }
            Until::Closed => false,
        }
    }

    /// Polls until `until` holds: drives the connection when it does not hold yet, and
    /// registers `cx` as the `role` waiting.
    pub(crate) fn poll_until(
        &mut self,
        cx: &mut Context<'_>,
        until: Until,
        role: Role,
    ) -> Poll<()> {
        if self.done(until) {
            return Poll::Ready(());
        }
        self.wakers.register(role, cx.waker());
        self.drive(until, role, cx);
        if self.done(until) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The driving routine, the only place the core is driven from. After every input (bytes
    /// read, end of stream, a deadline, a transport error) and every command (the application's
    /// sends happen between drives): move `poll_transmit` output into the write buffer and the
    /// buffer to the socket, take events as far as the application has room for them, fire or
    /// arm the timer from `poll_timeout`, and read only when everything before is done. Stops
    /// as soon as `until` holds, when nothing can move without waiting (every resource that
    /// would wake us is registered with the proxy waker), or after `MAX_ROUNDS`.
    fn drive(&mut self, until: Until, role: Role, cx: &mut Context<'_>) {
        let proxy = Waker::from(Arc::clone(&self.wakers));
        let mut pcx = Context::from_waker(&proxy);
        let mut progressed = false;
        let mut rounds = 0;
        loop {
            let now = now();
            // Deadlines first: under a steady flood of input the timer step below may never
            // be reached, and a close timeout must still fire.
            if self.conn.poll_timeout().is_some_and(|at| at <= now) {
                self.conn.handle_timeout(now);
                progressed = true;
            }
            progressed |= self.push_pending();
            progressed |= self.pull_events();
            if self.done(until) {
                break;
            }
            let wrote = self.write_out(&mut pcx, now);
            progressed |= wrote;
            progressed |= self.pull_events();
            if self.done(until) {
                break;
            }
            let read = self.read_in(&mut pcx, now);
            let fired = !read && self.poll_timer(&mut pcx, now);
            progressed |= read || fired;
            if !(read || fired || wrote) {
                break;
            }
            rounds += 1;
            if rounds >= MAX_ROUNDS {
                // Yield: the caller's task runs again soon.
                cx.waker().wake_by_ref();
                break;
            }
        }
        if progressed && self.split {
            let other = match role {
                Role::Read => Role::Write,
                Role::Write => Role::Read,
            };
            self.wakers.wake_role(other);
        }
    }

    /// Moves the message the queue refused into the core once it has room.
    fn push_pending(&mut self) -> bool {
        let fits = self
            .pending
            .as_ref()
            .is_some_and(|m| self.fits(m.data.len()));
        if !fits {
            return false;
        }
        let Some(m) = self.pending.take() else {
            return false;
        };
        // An error here means the connection started closing meanwhile: the message cannot
        // go, and the application learns of the close from the stream and `close_info`.
        let _ = self.conn.send(m.kind, m.data);
        true
    }

    /// Whether the core's send queue takes `len` more bytes (an empty queue takes any message).
    pub(crate) fn fits(&self, len: usize) -> bool {
        let queued = self.conn.buffered_amount();
        queued == 0 || queued.saturating_add(len) <= self.queue_limit
    }

    /// Takes events while the application has room for them: one message at a time, the
    /// handshake's events, the terminal `Closed`. Pings are answered by the core.
    pub(crate) fn pull_events(&mut self) -> bool {
        let mut any = false;
        while self.next.is_none() && self.closed.is_none() {
            if self.hold_events() {
                break;
            }
            let Some(e) = self.conn.poll_event() else {
                break;
            };
            any = true;
            match e {
                Event::Message(m) => self.next = Some(m),
                Event::UpgradeRequest(r) => self.request = Some(r),
                Event::Open(info) => self.open = Some(info),
                Event::Closed(c) => self.closed = Some(c),
                // Answered by the core (auto_pong); the latency is a getter.
                Event::Ping(_) | Event::Pong(_) => {}
                // Streaming is turned off at construction; anything newer is not for us.
                _ => {}
            }
        }
        any
    }

    /// Whether to leave the core's events where they are for now: the peer's close has arrived
    /// (or the core failed the connection on input) and the core holds output not yet moved to
    /// the write buffer (which takes it as soon as the socket makes room).
    ///
    /// The core echoes the peer's close once the events before it have been taken, and
    /// queueing that echo drops the pongs still waiting in the core: a peer that flooded pings
    /// and read nothing meanwhile would never get the pong to its latest ping. Moving the
    /// output out first lets those pongs go before the close. Nothing more comes from a peer after its close, so holding
    /// events (and so reading) here cannot stall a peer that waits for us to read; a close the
    /// application started is never held (two peers closing at once while neither reads could
    /// otherwise wait on each other).
    fn hold_events(&self) -> bool {
        !self.local_close
            && !self.write_done
            && self.conn.wants_transmit()
            && self.conn.state() == ws_proto::State::Closing
    }

    /// Collects the core's output into the write buffer and writes it, until the core has
    /// nothing more or the socket is full. Returns whether anything moved.
    fn write_out(&mut self, cx: &mut Context<'_>, now: std::time::Instant) -> bool {
        let mut moved = false;
        // Bounded: every pass either writes bytes, empties the core, or returns.
        for _ in 0..MAX_ROUNDS {
            if !self.shutdown_due {
                while self.wlen < self.wbuf.len() {
                    let Some(room) = self.wbuf.get_mut(self.wlen..) else {
                        break;
                    };
                    match self.conn.poll_transmit(now, room) {
                        Some(Transmit::Data(n)) => {
                            self.wlen = self.wlen.saturating_add(n).min(self.wbuf.len());
                            moved = true;
                        }
                        Some(Transmit::Shutdown) => {
                            self.shutdown_due = true;
                            moved = true;
                            break;
                        }
                        None => break,
                    }
                }
            }
            if self.write_done {
                // Nothing can be written any more: the output is dropped.
                self.wpos = 0;
                self.wlen = 0;
                self.shutdown_due = false;
                self.needs_flush = false;
                if !self.conn.wants_transmit() {
                    return moved;
                }
                continue;
            }
            if self.wpos < self.wlen {
                let data = self.wbuf.get(self.wpos..self.wlen).unwrap_or_default();
                match Pin::new(&mut self.io).poll_write(cx, data) {
                    Poll::Ready(Ok(0)) => {
                        self.fail(now, io::ErrorKind::WriteZero.into());
                        return true;
                    }
                    Poll::Ready(Ok(n)) => {
                        self.wpos = self.wpos.saturating_add(n).min(self.wlen);
                        if self.wpos == self.wlen {
                            self.wpos = 0;
                            self.wlen = 0;
                        }
                        self.needs_flush = true;
                        moved = true;
                        continue;
                    }
                    Poll::Ready(Err(e)) => {
                        self.fail(now, e);
                        return true;
                    }
                    Poll::Pending => return moved,
                }
            }
            if self.needs_flush {
                match Pin::new(&mut self.io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.needs_flush = false,
                    Poll::Ready(Err(e)) => {
                        self.fail(now, e);
                        return true;
                    }
                    Poll::Pending => return moved,
                }
            }
            if self.shutdown_due {
                match Pin::new(&mut self.io).poll_shutdown(cx) {
                    Poll::Ready(r) => {
                        self.shutdown_due = false;
                        self.write_done = true;
                        moved = true;
                        if let Err(e) = r {
                            // The peer may already be gone; the core decides what that means.
                            self.fail(now, e);
                            return true;
                        }
                    }
                    Poll::Pending => return moved,
                }
            }
            if !self.conn.wants_transmit() || self.write_done {
                return moved;
            }
        }
        moved
    }

    /// Feeds the core the next slice of the last read, or reads once into the reused buffer
    /// and feeds the first slice; nothing while the application has not taken what was fed
    /// before (so what the core holds stays bounded by one slice).
    fn read_in(&mut self, cx: &mut Context<'_>, now: std::time::Instant) -> bool {
        if self.next.is_some() || self.closed.is_some() || self.conn.has_events() {
            return false;
        }
        if self.rpos < self.rlen {
            self.feed(now);
            return true;
        }
        if self.read_done {
            return false;
        }
        let mut buf = ReadBuf::new(&mut self.rbuf);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                if n == 0 {
                    self.read_done = true;
                    self.conn.handle_eof(now);
                } else {
                    (self.rpos, self.rlen) = (0, n);
                    self.feed(now);
                }
                true
            }
            Poll::Ready(Err(e)) => {
                self.fail(now, e);
                true
            }
            Poll::Pending => false,
        }
    }

    /// Hands the core at most [`FEED`] bytes of what was read.
    fn feed(&mut self, now: std::time::Instant) {
        let end = self.rlen.min(self.rpos.saturating_add(FEED));
        let data = self.rbuf.get(self.rpos..end).unwrap_or_default();
        self.conn.handle_input(now, data);
        self.rpos = end;
        if self.rpos >= self.rlen {
            (self.rpos, self.rlen) = (0, 0);
        }
    }

    /// Fires the core's timers when due, else arms the sleep for `poll_timeout`. The sleep is
    /// only moved earlier (or re-armed once it fired): a deadline that moves later (each message
    /// pushes the idle deadlines back) costs nothing until the earlier one fires.
    fn poll_timer(&mut self, cx: &mut Context<'_>, now: std::time::Instant) -> bool {
        let Some(at) = self.conn.poll_timeout() else {
            return false;
        };
        if at <= now {
            self.conn.handle_timeout(now);
            return true;
        }
        let want = tokio::time::Instant::from_std(at);
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(want)));
        if want < sleep.deadline() || sleep.is_elapsed() {
            sleep.as_mut().reset(want);
        }
        for _ in 0..2 {
            if sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            // Our clock reached the armed deadline.
            if sleep.deadline() >= want {
                self.conn.handle_timeout(now.max(at));
                return true;
            }
            // It was an earlier deadline that no longer stands: arm the current one.
            sleep.as_mut().reset(want);
        }
        false
    }

    /// The transport failed: the core ends the connection, nothing more is read or written.
    fn fail(&mut self, now: std::time::Instant, e: io::Error) {
        self.read_done = true;
        (self.rpos, self.rlen) = (0, 0);
        self.write_done = true;
        self.conn.handle_transport_error(now, &e);
    }

    /// Why the connection ended, as the error a handshake or the stream reports.
    pub(crate) fn failure(&self) -> Error {
        match self.closed.as_ref().and_then(|c| c.error.clone()) {
            Some(e) => Error::Connection(e),
            None => Error::Closed,
        }
    }
}
