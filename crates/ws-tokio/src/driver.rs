//! The connection state shared by a [`WebSocketStream`](crate::WebSocketStream) and its halves,
//! and the one routine that drives the core ([`Inner::drive`]).
//!
//! Everything here runs inside a `poll_*` call, under the stream's lock when it is shared: no
//! task, no channel, no thread. The socket, the sleep and the core are polled with one *proxy*
//! waker ([`Wakers`]) that wakes both the task waiting to read and the task waiting to write,
//! whichever of them polled the socket last, so two halves in two tasks never steal each
//! other's wake-ups.

use std::future::Future;
use std::io::{self, IoSlice, Read};
use std::os::fd::BorrowedFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use ws_net::low_water::LowWater;
use ws_net::wire::{WireQueue, MAX_SLICES};
use ws_proto::{Closed, Connection, Event, Message, OpenInfo, PreparedMessage, UpgradeRequest};

use crate::Error;

/// The room of the core's receive buffer lent to one read (`Connection::receive_buffer`):
/// reads go straight into the core, no driver buffer. Also the most bytes handed to the core
/// at once unless a frame larger than this is arriving (then the core lends the rest of the
/// frame, so that one read can take it): a read of small frames (a ping flood: over 2,000
/// pings in 16 KiB) so never queues more events in the core than this much input makes, and
/// no read happens while the application has not taken the events of the last one.
const FEED: usize = 16 << 10;
/// A connection whose core holds no receive buffer (in its handshake, or quiet since the core
/// freed it: `Connection::receive_capacity` is 0) reads into a stack buffer of this size:
/// lending the core's room would allocate a buffer for a read that may find nothing. Once
/// bytes arrive, reads go to the core's room again.
const PROBE: usize = 4 << 10;
/// The write buffer (allocated on first use, freed when the connection is quiet): small
/// frames and frame headers that `poll_transmit_vectored` hands out after one wake-up are
/// collected here, large payloads are queued as they are, and everything goes out in one
/// vectored write.
/// (Payloads of `VECTORED_MIN` bytes and more are not copied, so this need not be large.)
pub(crate) const WRITE_BUF: usize = 16 << 10;
/// Most bytes queued outside the core (payloads included): the rest waits in the core,
/// counted by its send queue.
const WRITE_LIMIT: usize = 256 << 10;
/// Default for [`crate::WebSocketStream::set_send_high_water`].
pub(crate) const DEFAULT_HIGH_WATER: usize = 64 << 10;
/// Most read/write/timer rounds in one drive; then the task yields (woken at once) so one busy
/// connection cannot hold its executor thread forever.
const MAX_ROUNDS: usize = 64;

/// The plain TCP socket under a stream, when it is one (see `ws_net::low_water`): `None` for
/// TLS and other streams.
pub(crate) type SocketOf<S> = for<'a> fn(&'a S) -> Option<BorrowedFd<'a>>;

/// [`SocketOf`] for a stream that is a plain TCP socket.
pub(crate) fn whole_socket<S: std::os::fd::AsFd>(s: &S) -> Option<BorrowedFd<'_>> {
    Some(s.as_fd())
}

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
    pub(crate) io: S,
    pub(crate) conn: Connection,
    /// The last read completed no frame: a frame is arriving, and the core's whole room is
    /// lent (the rest of that frame), not just [`FEED`] bytes.
    mid_frame: bool,
    /// `poll_transmit_vectored` output still to be written (its `shutdown`: the core asked
    /// for the write side to be shut down once it is written).
    out: WireQueue,
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
    pub(crate) pending: Option<Outgoing>,
    /// The core's `max_send_queue`.
    pub(crate) queue_limit: usize,
    /// The sink is ready while fewer bytes than this are queued.
    pub(crate) high_water: usize,
    wakers: Arc<Wakers>,
    /// Split into halves: progress made by one half wakes the other.
    pub(crate) split: bool,
    /// The application started the closing handshake (see [`Inner::hold_events`]).
    pub(crate) local_close: bool,
    /// The plain TCP socket under `io`, when it is one: reads then sleep until the rest of a
    /// large frame is there (`ws_net::low_water`).
    pub(crate) socket: Option<SocketOf<S>>,
    low_water: LowWater,
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
            mid_frame: false,
            out: WireQueue::new(WRITE_BUF, WRITE_LIMIT),
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
            socket: None,
            low_water: LowWater::default(),
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
                    && self.out.is_empty()
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
                self.fire_timers(now);
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
        let fits = self.pending.as_ref().is_some_and(|m| self.fits(m.len()));
        if !fits {
            return false;
        }
        let Some(m) = self.pending.take() else {
            return false;
        };
        // An error here means the connection started closing meanwhile: the message cannot
        // go, and the application learns of the close from the stream and `close_info`.
        let _ = m.send(&mut self.conn);
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

    /// Collects the core's output into the write queue and writes it, until the core has
    /// nothing more or the socket is full. Returns whether anything moved.
    fn write_out(&mut self, cx: &mut Context<'_>, now: std::time::Instant) -> bool {
        let mut moved = false;
        // A stream that writes one slice at a time gets the payloads copied into the buffer
        // instead (one write for many frames still).
        let vectored = self.io.is_write_vectored();
        // Bounded: every pass either writes bytes, empties the core, or returns.
        for _ in 0..MAX_ROUNDS {
            let before = (self.out.queued(), self.out.shutdown);
            self.out.pull(&mut self.conn, now, vectored);
            moved |= (self.out.queued(), self.out.shutdown) != before;
            if self.write_done {
                // Nothing can be written any more: the output is dropped.
                self.out.clear();
                self.needs_flush = false;
                if !self.conn.wants_transmit() {
                    return moved;
                }
                continue;
            }
            if !self.out.is_empty() {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let k = self.out.io_slices(&mut slices);
                let slices = slices.get(..k).unwrap_or_default();
                match Pin::new(&mut self.io).poll_write_vectored(cx, slices) {
                    Poll::Ready(Ok(0)) => {
                        self.fail(now, io::ErrorKind::WriteZero.into());
                        return true;
                    }
                    Poll::Ready(Ok(n)) => {
                        self.out.advance(n);
                        if self.out.is_empty() {
                            self.release_if_quiet();
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
            if self.out.shutdown {
                match Pin::new(&mut self.io).poll_shutdown(cx) {
                    Poll::Ready(r) => {
                        self.out.shutdown = false;
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

    /// Frees the write buffer when the core holds no buffer either (the handshake is over,
    /// or the core freed its buffers after `release_buffers_after` of quiet): a busy
    /// connection keeps it (no allocation per message).
    fn release_if_quiet(&mut self) {
        if self.conn.retained_bytes() == 0 {
            self.out.release();
        }
    }

    /// Frees the write buffer if everything in it is written (once the opening handshake is
    /// out: an idle connection should not keep it).
    pub(crate) fn release_write_buffer(&mut self) {
        self.out.release();
    }

    /// Fires the core's timers; the connection may have been quiet, so the write buffer may
    /// go too.
    fn fire_timers(&mut self, now: std::time::Instant) {
        self.read_under_low_water(now);
        self.conn.handle_timeout(now);
        self.release_if_quiet();
    }

    /// A read found the socket empty: sleep until the rest of a large frame is there.
    fn after_empty_read(&mut self) {
        if let Some(fd) = self.socket.and_then(|of| of(&self.io)) {
            self.low_water
                .after_empty_read(fd, self.conn.frame_remaining());
        }
    }

    /// Before the timers run: lowers a raised low-water mark and reads what arrived of the
    /// frame under it, so that a slow sender's bytes count as activity, not silence. The bytes
    /// are read from the socket directly (tokio's readiness has not seen them: the kernel
    /// reported nothing under the mark), at most the rest of the frame.
    fn read_under_low_water(&mut self, now: std::time::Instant) {
        let Some(fd) = self.socket.and_then(|of| of(&self.io)) else {
            return;
        };
        if !self.low_water.reset(fd) {
            return;
        }
        let sock = socket2::SockRef::from(&fd);
        let mut ended = None;
        let frames = self.conn.stats().frames_in;
        for _ in 0..MAX_ROUNDS {
            if self.conn.frame_remaining() == 0 || self.conn.stats().frames_in != frames {
                break;
            }
            let room = self.conn.receive_buffer(FEED);
            match (&*sock).read(room) {
                Ok(0) => {
                    ended = Some(Ok(()));
                    break;
                }
                Ok(n) => self.conn.handle_received(now, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    ended = Some(Err(e));
                    break;
                }
            }
        }
        match ended {
            Some(Ok(())) => {
                self.read_done = true;
                self.conn.handle_eof(now);
            }
            Some(Err(e)) => self.fail(now, e),
            None => {}
        }
    }

    /// Reads once: into the core's receive buffer (the room it lends, see [`FEED`]), or into
    /// a small stack buffer while the connection is quiet ([`PROBE`]). Nothing while the
    /// application has not taken the events made before (so what the core holds stays bounded
    /// by one read).
    fn read_in(&mut self, cx: &mut Context<'_>, now: std::time::Instant) -> bool {
        if self.next.is_some() || self.closed.is_some() || self.conn.has_events() {
            return false;
        }
        if self.read_done {
            return false;
        }
        let frames = self.conn.stats().frames_in;
        // The handshake is not steady state: its reads stay small too.
        let read = if self.conn.receive_capacity() == 0 || !self.conn.is_open() {
            self.read_probe(cx, now)
        } else {
            let room = self.conn.receive_buffer(FEED);
            let len = if self.mid_frame {
                room.len()
            } else {
                room.len().min(FEED)
            };
            match room.get_mut(..len) {
                Some(room) if !room.is_empty() => {
                    let mut buf = ReadBuf::new(room);
                    match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) => {
                            let n = buf.filled().len();
                            if n > 0 {
                                self.conn.handle_received(now, n);
                            }
                            Poll::Ready(Ok(n))
                        }
                        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                        Poll::Pending => Poll::Pending,
                    }
                }
                // No room lent (not expected): read the small way.
                _ => self.read_probe(cx, now),
            }
        };
        match read {
            Poll::Ready(Ok(0)) => {
                self.read_done = true;
                self.conn.handle_eof(now);
                true
            }
            Poll::Ready(Ok(_)) => {
                self.mid_frame = self.conn.stats().frames_in == frames;
                true
            }
            Poll::Ready(Err(e)) => {
                self.fail(now, e);
                true
            }
            Poll::Pending => {
                self.after_empty_read();
                false
            }
        }
    }

    /// Reads into a small stack buffer and feeds what came (copied) to the core, which then
    /// holds a receive buffer: the next reads go to its room, once the connection is open.
    fn read_probe(
        &mut self,
        cx: &mut Context<'_>,
        now: std::time::Instant,
    ) -> Poll<io::Result<usize>> {
        let mut probe = [0u8; PROBE];
        let mut buf = ReadBuf::new(&mut probe);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let data = buf.filled();
                if !data.is_empty() {
                    self.conn.handle_input(now, data);
                }
                Poll::Ready(Ok(data.len()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
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
            self.fire_timers(now);
            return true;
        }
        let want = tokio::time::Instant::from_std(at);
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(want)));
        if want < sleep.deadline() || sleep.is_elapsed() {
            sleep.as_mut().reset(want);
        }
        let mut reached = false;
        for _ in 0..2 {
            if sleep.as_mut().poll(cx).is_pending() {
                break;
            }
            // Our clock reached the armed deadline.
            if sleep.deadline() >= want {
                reached = true;
                break;
            }
            // It was an earlier deadline that no longer stands: arm the current one.
            sleep.as_mut().reset(want);
        }
        if reached {
            self.fire_timers(now.max(at));
        }
        reached
    }

    /// The transport failed: the core ends the connection, nothing more is read or written.
    fn fail(&mut self, now: std::time::Instant, e: io::Error) {
        self.read_done = true;
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

/// A message given to the sink: one of its own, or one prepared for many connections.
pub(crate) enum Outgoing {
    One(Message),
    Prepared(PreparedMessage),
}

impl Outgoing {
    /// Its payload's length (before any extension).
    pub(crate) fn len(&self) -> usize {
        match self {
            Outgoing::One(m) => m.data.len(),
            Outgoing::Prepared(p) => p.data().len(),
        }
    }

    /// Queues it in the core.
    pub(crate) fn send(self, conn: &mut Connection) -> Result<(), ws_proto::Error> {
        match self {
            Outgoing::One(m) => conn.send(m.kind, m.data),
            Outgoing::Prepared(p) => conn.send_prepared(&p),
        }
    }
}
