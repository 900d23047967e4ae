//! The drive loop shared by every API of this crate.
//!
//! A [`Shared`] owns one [`Stack`] (the sans-IO [`Connection`] and its
//! rustls session for `wss://`) behind a mutex, the stack lock, plus a
//! bounded queue of wire bytes waiting for the socket; a [`Reader`] reads
//! the socket for it. Three rules keep a blocked thread from blocking the others:
//!
//! - socket **reads** happen outside every lock (on a clone of the
//!   `TcpStream`); the bytes are then fed to the core (and rustls) under the
//!   lock;
//! - socket **writes** happen outside the stack lock too: [`Shared::drive`]
//!   moves what `poll_transmit` produces (encrypted, for TLS) into the wire
//!   queue, and one thread at a time ([`Shared::flush`]) writes that queue
//!   out;
//! - the wire queue holds at most [`OUT_CAP`] bytes (or one large payload);
//!   the rest stays in the core (counted by its `buffered_amount`) until the
//!   writer pulls it.
//!
//! No copies of large messages on a plain connection: the core writes its
//! frames straight into the wire queue and hands large payloads out as they
//! are (`poll_transmit_vectored`; the queue goes out in vectored writes), and
//! during a bulk transfer the reader, once `peek` shows bytes waiting, reads
//! them straight into the core's receive buffer (`receive_buffer`) under the
//! stack lock (a read that cannot block). For TLS, rustls decrypts straight
//! into the core's receive buffer; what goes to rustls is copied as before.
//! While a large frame arrives on a plain connection that one thread uses,
//! the socket's receive low-water mark is the rest of the frame
//! (`ws_net::low_water`) and the reader waits with `poll`, which honours it
//! (a one-byte `peek` does not): one wake-up per frame, not per piece.
//!
//! [`Shared::drive`] is the only routine that drives the core (drain
//! `poll_transmit`, drain `poll_event`, read `poll_timeout`).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ws_net::low_water::{self, LowWater};
use ws_net::wire::WireQueue;
use ws_proto::{Connection, Event, Transmit};

use crate::error::Error;
use crate::logctx::{wslog, ConnId};

/// Most wire bytes queued outside the core (like a socket send buffer).
pub(crate) const OUT_CAP: usize = 64 << 10;
/// Size of the read buffer and the TLS transmit scratch buffer; the room of
/// the core's receive buffer lent to a read, and the most bytes handed to
/// the core at once unless a larger frame is arriving (see [`Stack::mid_frame`]).
const CHUNK: usize = 16 << 10;
/// Bound on timer firings handled in one drive (a deadline the core keeps
/// returning cannot spin us).
const MAX_TIMER_ROUNDS: usize = 8;
/// Longest single wait of a reader on the socket once other threads use the
/// connection too ([`Shared::mark_concurrent`]), so that it sees the
/// deadlines they set and the events they cause.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// Locks a mutex, recovering from poisoning: no user code runs under our
/// locks, and each critical section leaves the state consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The protocol stack of one connection: the core's [`Connection`] over
/// the rustls session (for `wss://`), the buffers between them, and what
/// the driver remembers of a transport failure. It lives in a [`Shared`],
/// behind the stack lock.
pub(crate) struct Stack {
    pub(crate) conn: Connection,
    tls: Option<rustls::Connection>,
    /// The terminal `Closed` has been drained from the core.
    closed: bool,
    /// The first transport failure, with more detail than the core keeps.
    failure: Option<Error>,
    /// TLS only: plaintext on its way to rustls.
    scratch: Box<[u8]>,
    /// The last input completed no frame: a frame is arriving, and the core's
    /// whole room is lent (the rest of that frame), not just [`CHUNK`] bytes.
    mid_frame: bool,
    id: ConnId,
}

impl Stack {
    /// Feeds bytes read from the socket (decrypting them for TLS).
    pub(crate) fn input(&mut self, now: Instant, mut data: &[u8]) {
        if self.tls.is_none() {
            let frames = self.conn.stats().frames_in;
            self.conn.handle_input(now, data);
            self.mid_frame = self.conn.stats().frames_in == frames;
            return;
        }
        // Every round consumes bytes of `data` or ends.
        while !data.is_empty() {
            let Some(tls) = self.tls.as_mut() else { return };
            let fed = match tls.read_tls(&mut data) {
                Ok(0) => return,
                Ok(_) => tls.process_new_packets().map_err(Error::Tls),
                Err(e) => Err(Error::Io(e)),
            };
            match fed {
                Ok(_) => self.pull_plaintext(now),
                // For a TLS error rustls queued an alert; the drive writes it.
                Err(e) => return self.transport_error(now, e),
            }
        }
    }

    /// Hands the plaintext rustls holds to the core, decrypted straight into
    /// its receive buffer (also used right after the TLS handshake, which may
    /// have received application data).
    pub(crate) fn pull_plaintext(&mut self, now: Instant) {
        let Some(tls) = self.tls.as_mut() else { return };
        // Bounded: every round drains a non-empty chunk of a finite buffer.
        loop {
            match tls.process_new_packets() {
                Ok(state) if state.plaintext_bytes_to_read() == 0 => {
                    if state.peer_has_closed() {
                        // close_notify: a clean end of the TLS stream.
                        self.conn.handle_eof(now);
                    }
                    return;
                }
                Ok(_) => {}
                Err(e) => return self.transport_error(now, Error::Tls(e)),
            }
            let frames = self.conn.stats().frames_in;
            let room = lend_room(&mut self.conn, self.mid_frame);
            if room.is_empty() {
                // No room (not expected): the rest stays in rustls.
                return;
            }
            match tls.reader().read(room) {
                Ok(0) => {
                    self.conn.handle_eof(now);
                    return;
                }
                Ok(n) => {
                    self.conn.handle_received(now, n);
                    self.mid_frame = self.conn.stats().frames_in == frames;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => return self.transport_error(now, Error::from_io(e)),
            }
        }
    }

    /// Reads the socket straight into the core's receive buffer (plain
    /// connections; the caller saw bytes waiting, so the read cannot block).
    fn read_into_core(&mut self, now: Instant, mut sock: &TcpStream) -> io::Result<usize> {
        let frames = self.conn.stats().frames_in;
        let n = sock.read(lend_room(&mut self.conn, self.mid_frame))?;
        if n > 0 {
            self.conn.handle_received(now, n);
            self.mid_frame = self.conn.stats().frames_in == frames;
        }
        Ok(n)
    }

    /// The socket's read side ended.
    pub(crate) fn input_eof(&mut self, now: Instant) {
        self.conn.handle_eof(now);
    }

    /// The transport failed: remember why, and tell the core.
    pub(crate) fn transport_error(&mut self, now: Instant, e: Error) {
        if self.closed || self.conn.state() == ws_proto::State::Closed {
            return;
        }
        wslog!(Debug, self.id, "transport error: {e}");
        // An I/O failure keeps its kind in the core's transport error.
        let err = match &e {
            Error::Io(io) => ws_proto::TransportError::from(io),
            Error::ConnectionLost { source: Some(io) } => ws_proto::TransportError::from(io),
            other => ws_proto::TransportError::from(other.to_string()),
        };
        self.failure.get_or_insert(e);
        self.conn.handle_transport_error(now, err);
    }

    /// Takes the next event, straight from the core: the core echoes a
    /// peer's close only once the application has taken the events before
    /// it, so replies to them still go out first.
    pub(crate) fn pop_event(&mut self) -> Option<Event> {
        let ev = self.conn.poll_event()?;
        if let Event::Closed(c) = &ev {
            self.closed = true;
            wslog!(
                Debug,
                self.id,
                "closed: code {} {:?}, clean {}, error {:?}",
                c.code,
                c.reason,
                c.clean,
                c.error
            );
        }
        Some(ev)
    }

    /// Takes the detailed transport failure (for the terminal event).
    pub(crate) fn take_failure(&mut self) -> Option<Error> {
        self.failure.take()
    }

    /// The SNI name a TLS client asked for (server side).
    pub(crate) fn tls_server_name(&self) -> Option<String> {
        match &self.tls {
            Some(rustls::Connection::Server(s)) => s.server_name().map(str::to_string),
            _ => None,
        }
    }
}

/// The wire queue: bytes and large payloads waiting for the socket.
fn wire_queue() -> WireQueue {
    WireQueue::new(OUT_CAP, OUT_CAP)
}

/// Wire bytes waiting for the socket.
struct OutQ {
    /// Its `shutdown`: a `shutdown(Write)` is due once it is written.
    q: WireQueue,
    /// The core has more to transmit (the drive stopped at `OUT_CAP`).
    more: bool,
    /// A thread is writing.
    writing: bool,
    /// Writing failed or the write side is shut: discard.
    dead: bool,
}

/// One connection, shared by its reader, its writers and (for the event
/// client) its sender thread.
pub(crate) struct Shared {
    pub(crate) id: ConnId,
    stack: Mutex<Stack>,
    /// Signalled when the drive queues events (for readers that cannot wait
    /// on the socket any more).
    events_cv: Condvar,
    out: Mutex<OutQ>,
    /// Signalled when a writer finishes.
    out_cv: Condvar,
    /// The write handle (a clone of the reader's socket).
    sock: TcpStream,
    /// No TLS: the reader may read straight into the core.
    plain: bool,
    /// Other threads may use the connection (a split or cloned writer, the
    /// event client's threads): the reader waits at most [`TICK`] at a
    /// time.
    concurrent: AtomicBool,
}

impl Shared {
    /// Wraps a connected socket (TLS handshake done, if any) and the core's
    /// connection for it.
    pub(crate) fn new(
        id: ConnId,
        sock: TcpStream,
        conn: Connection,
        tls: Option<rustls::Connection>,
    ) -> Shared {
        let mut tls = tls;
        let tls_none = tls.is_none();
        if let Some(t) = tls.as_mut() {
            // We bound what we hand rustls ourselves (OUT_CAP), and write it
            // out after every chunk, so its own limit would only cause
            // partial writes.
            t.set_buffer_limit(None);
        }
        // Only TLS connections copy plaintext out of the core: a plain
        // connection holds no such buffer.
        let scratch = if tls.is_some() {
            vec![0; CHUNK].into_boxed_slice()
        } else {
            Box::default()
        };
        Shared {
            id,
            stack: Mutex::new(Stack {
                conn,
                tls,
                closed: false,
                failure: None,
                scratch,
                mid_frame: false,
                id,
            }),
            events_cv: Condvar::new(),
            out: Mutex::new(OutQ {
                q: wire_queue(),
                more: false,
                writing: false,
                dead: false,
            }),
            plain: tls_none,
            out_cv: Condvar::new(),
            sock,
            concurrent: AtomicBool::new(false),
        }
    }

    /// Marks the connection as used from other threads than its reader's:
    /// from now on the reader waits on the socket at most [`TICK`] at a time.
    pub(crate) fn mark_concurrent(&self) {
        self.concurrent.store(true, Ordering::Relaxed);
    }

    /// Locks the protocol stack (to read getters; use [`step`](Self::step)
    /// to change it).
    pub(crate) fn stack(&self) -> MutexGuard<'_, Stack> {
        lock(&self.stack)
    }

    /// Runs `f` (an input or a command) on the stack, drives the core, then
    /// writes what it produced. With `wait`, also waits for another thread's
    /// write in progress, so that this call's bytes are on the wire when it
    /// returns; without, leaves them to that writer.
    pub(crate) fn step<R>(&self, wait: bool, f: impl FnOnce(&mut Stack, Instant) -> R) -> R {
        let now = Instant::now();
        let r = {
            let mut stack = self.stack();
            let r = f(&mut stack, now);
            self.drive(&mut stack, now);
            r
        };
        self.flush(wait);
        r
    }

    /// The drive loop: drain `poll_transmit` into the wire queue (up to
    /// `OUT_CAP`), drain `poll_event`, read `poll_timeout` and fire the
    /// timers that are due, until nothing is left to do.
    fn drive(&self, stack: &mut Stack, now: Instant) {
        let mut new_events = false;
        // The last round only drains: a timer fired in it would leave
        // output behind.
        for round in 0..=MAX_TIMER_ROUNDS {
            {
                let mut out = lock(&self.out);
                out.more = false;
                // Bounded: every round moves output or ends.
                loop {
                    if let Some(tls) = stack.tls.as_mut() {
                        while tls.wants_write() {
                            // Writing into the queue cannot fail.
                            let _ = tls.write_tls(&mut out.q);
                        }
                    }
                    if out.q.queued() >= OUT_CAP {
                        out.more = stack.conn.wants_transmit();
                        break;
                    }
                    let Some(tls) = stack.tls.as_mut() else {
                        // Plain: the frames go straight into the queue.
                        match out.q.pull(&mut stack.conn, now, true) {
                            ws_net::wire::Pulled::Full => out.more = stack.conn.wants_transmit(),
                            ws_net::wire::Pulled::Empty | ws_net::wire::Pulled::Shutdown => {}
                        }
                        break;
                    };
                    match stack.conn.poll_transmit(now, &mut stack.scratch) {
                        Some(Transmit::Data(n)) => {
                            if let Err(e) = tls.writer().write_all(&stack.scratch[..n]) {
                                wslog!(Debug, stack.id, "TLS refused plaintext: {e}");
                            }
                        }
                        Some(Transmit::Shutdown) => {
                            tls.send_close_notify();
                            let _ = tls.write_tls(&mut out.q);
                            out.q.shutdown = true;
                        }
                        None => break,
                    }
                }
                if out.dead {
                    out.q.clear();
                }
            }
            // Events stay in the core until the application takes them
            // (`pop_event`); only wake the readers.
            new_events |= stack.conn.has_events();
            match stack.conn.poll_timeout() {
                Some(t) if t <= now && round < MAX_TIMER_ROUNDS => stack.conn.handle_timeout(now),
                _ => break,
            }
        }
        if new_events {
            self.events_cv.notify_all();
        }
    }

    /// Writes the wire queue to the socket, unless another thread is already
    /// doing so (then, with `wait`, waits for it and writes what is left).
    pub(crate) fn flush(&self, wait: bool) {
        let mut out = lock(&self.out);
        if out.writing {
            if !wait {
                return;
            }
            while out.writing {
                out = self
                    .out_cv
                    .wait(out)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        out.writing = true;
        // Ends when the queue is empty and the core has nothing more: every
        // round writes a non-empty chunk or marks the queue dead.
        loop {
            if out.q.is_empty() && !out.q.shutdown {
                if out.more && !out.dead {
                    drop(out);
                    {
                        let mut stack = self.stack();
                        self.drive(&mut stack, Instant::now());
                    }
                    out = lock(&self.out);
                    continue;
                }
                out.writing = false;
                self.out_cv.notify_all();
                return;
            }
            let mut q = std::mem::replace(&mut out.q, wire_queue());
            let shutdown = std::mem::take(&mut q.shutdown);
            drop(out);
            let mut res = q.write_all_to(&mut &self.sock);
            if res.is_ok() && shutdown {
                res = self.sock.shutdown(Shutdown::Write);
            }
            out = lock(&self.out);
            if shutdown && res.is_ok() {
                out.dead = true;
            }
            if let Err(e) = res {
                out.dead = true;
                out.q.clear();
                drop(out);
                {
                    let now = Instant::now();
                    let mut stack = self.stack();
                    stack.transport_error(now, Error::from_write_io(e));
                    self.drive(&mut stack, now);
                }
                out = lock(&self.out);
            }
            if out.q.is_empty() && !out.q.shutdown {
                // Keep the buffer of the queue just written (no allocation per write).
                q.clear();
                out.q = q;
            }
        }
    }

    /// Waits (at most `limit`) for a writer in progress to finish, then
    /// shuts the socket down both ways, which also ends any read or write
    /// still blocked on it. Used once a connection is over.
    pub(crate) fn finish(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut out = lock(&self.out);
        while out.writing {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            out = self
                .out_cv
                .wait_timeout(out, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        out.dead = true;
        drop(out);
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// Fails a connection whose application code panicked: sends a close
    /// with 1011 (internal error) if the core still can (or, while the
    /// upgrade awaits its answer, a 500), then reads with `reader`,
    /// discarding everything, until the closing handshake completes (the
    /// peer's echo) or `limit` passes, and shuts the socket down both ways,
    /// which also ends any read or write still blocked on it. From now on a
    /// socket write may take at most `limit`.
    pub(crate) fn fail(&self, reader: &mut Reader, limit: Duration) {
        let deadline = Instant::now() + limit;
        // A peer that stopped reading must not hold this thread.
        let _ = self
            .sock
            .set_write_timeout(Some(limit.max(Duration::from_millis(1))));
        self.step(false, |stack, _| {
            let closed = stack
                .conn
                .close(ws_proto::CloseCode::INTERNAL_ERROR, "internal error");
            if closed.is_err() {
                // Only possible before the upgrade was answered; otherwise
                // the close is already under way (or over).
                let _ = stack.conn.reject(500, &[], b"Internal Server Error");
            }
        });
        reader.deadline = Some(deadline);
        // Bounded: `next_event` returns `None` after the terminal event or
        // once the deadline passes.
        while reader.next_event(self).is_some() {}
        self.finish(deadline.saturating_duration_since(Instant::now()));
    }

    /// [`fail`](Self::fail) for a connection whose reader is gone (the
    /// application dropped it while panicking): reads with a new one.
    pub(crate) fn fail_without_reader(&self, limit: Duration) {
        match self.sock.try_clone() {
            Ok(sock) => self.fail(&mut Reader::new(sock), limit),
            // No second handle: nothing can be read, cut the connection.
            Err(_) => self.abort(),
        }
    }

    /// Shuts the socket down both ways at once (server shutdown of a
    /// connection that is still in its handshake).
    pub(crate) fn abort(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// The reading side: a clone of the socket and a buffer.
pub(crate) struct Reader {
    sock: TcpStream,
    buf: Box<[u8]>,
    /// A bulk transfer is under way (the last read was large, or a frame is
    /// arriving): read straight into the core (see [`Reader::read`]).
    lend: bool,
    eof: bool,
    timeout_set: Option<Option<Duration>>,
    /// When set, `next_event` gives up (`None`) once it passes.
    deadline: Option<Instant>,
    /// The socket's receive low-water mark: raised to the rest of a large
    /// frame, so that the reader wakes once it is all there (plain
    /// connections that one thread uses; see [`Reader::read`]).
    low_water: LowWater,
}

impl Reader {
    pub(crate) fn new(sock: TcpStream) -> Reader {
        Reader {
            sock,
            buf: vec![0; CHUNK].into_boxed_slice(),
            lend: false,
            eof: false,
            timeout_set: None,
            deadline: None,
            low_water: LowWater::default(),
        }
    }

    /// The next event, reading the socket as needed (with the core's next
    /// deadline as the read timeout). `None` once the terminal `Closed` has
    /// been returned, or once the reader's own deadline (if set) passed.
    pub(crate) fn next_event(&mut self, shared: &Shared) -> Option<Event> {
        // Each round waits for IO, a deadline or a tick; it ends with an
        // event, the terminal state or the reader's deadline.
        let mut released = false;
        loop {
            if self.deadline.is_some_and(|d| d <= Instant::now()) {
                return None;
            }
            let deadline = {
                let mut stack = shared.stack();
                if let Some(ev) = stack.pop_event() {
                    return Some(ev);
                }
                if stack.closed {
                    return None;
                }
                if !released && stack.conn.wants_transmit() {
                    // Taking events can release output (a deferred close
                    // echo): send it before waiting (once per call, so a
                    // peer that does not read cannot make this spin).
                    released = true;
                    let now = Instant::now();
                    shared.drive(&mut stack, now);
                    drop(stack);
                    shared.flush(false);
                    continue;
                }
                if self.eof {
                    // Nothing more to read: wait for the writer or a timer.
                    let wait = self.wait_for(shared, stack.conn.poll_timeout());
                    let wait = wait.unwrap_or(Duration::from_millis(100));
                    let (mut stack, _) = shared
                        .events_cv
                        .wait_timeout(stack, wait)
                        .unwrap_or_else(PoisonError::into_inner);
                    if !stack.conn.has_events() {
                        let now = Instant::now();
                        shared.drive(&mut stack, now);
                    }
                    drop(stack);
                    shared.flush(false);
                    continue;
                }
                stack.conn.poll_timeout()
            };
            let timeout = self.wait_for(shared, deadline);
            if timeout.is_some_and(|t| t.is_zero()) {
                // A slow sender's bytes under a raised mark are not silence:
                // lower it and read them before the timers run.
                if self.lower_mark().unwrap_or(false) {
                    let r = self.read(shared);
                    self.after_read(shared, r);
                }
                shared.step(false, |_, _| {});
                continue;
            }
            if self.timeout_set != Some(timeout) {
                if let Err(e) = self.sock.set_read_timeout(timeout) {
                    shared.step(false, |stack, now| stack.transport_error(now, Error::Io(e)));
                    continue;
                }
                self.timeout_set = Some(timeout);
            }
            let r = self.read(shared);
            self.after_read(shared, r);
        }
    }

    /// Lowers a raised low-water mark (before the core's timers run); returns
    /// whether bytes that sat under it are queued, to be read first.
    fn lower_mark(&mut self) -> io::Result<bool> {
        let fd = self.sock.as_fd();
        if !self.low_water.reset(fd) {
            return Ok(false);
        }
        low_water::wait_readable(fd, Some(Duration::ZERO))
    }

    /// Hands the outcome of a read to the core: the end of the stream, a
    /// timeout (the timers run), or a failure.
    fn after_read(&mut self, shared: &Shared, r: io::Result<usize>) {
        match r {
            Ok(0) => {
                self.eof = true;
                shared.step(false, |stack, now| stack.input_eof(now));
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                shared.step(false, |_, _| {});
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                self.eof = true;
                shared.step(false, |stack, now| {
                    stack.transport_error(now, Error::from_io(e))
                });
            }
        }
    }

    /// Reads the socket once and hands what came to the core; `Ok(0)` at
    /// the end of the stream. Small reads go to the reader's buffer outside
    /// every lock, then are copied into the core. During a bulk transfer on
    /// a plain connection, the reader waits for bytes with a one-byte `peek`
    /// (outside every lock), or with `poll` while the low-water mark is
    /// raised, then reads them straight into the core's receive buffer under
    /// the stack lock: a read that cannot block, since only this reader
    /// reads the socket.
    fn read(&mut self, shared: &Shared) -> io::Result<usize> {
        if self.lend && shared.plain {
            if self.low_water.is_raised() {
                // A one-byte `peek` would ignore the mark: `poll` honours it.
                let wait = self.timeout_set.flatten();
                // The deadline came first: take what arrived under the mark
                // (the timers then see it), or time out.
                if !low_water::wait_readable(self.sock.as_fd(), wait)? && !self.lower_mark()? {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            } else if self.sock.peek(&mut [0u8; 1])? == 0 {
                return Ok(0);
            }
            let sock = &self.sock;
            let (r, mid_frame, missing) = shared.step(false, |stack, now| {
                let r = stack.read_into_core(now, sock);
                (r, stack.mid_frame, stack.conn.frame_remaining())
            });
            let n = r?;
            let fd = self.sock.as_fd();
            // The next wait ends when the rest of a large frame is there, not
            // at its next piece. Not while other threads use the connection:
            // their drives run the timers, which must see every byte.
            if n > 0 && !shared.concurrent.load(Ordering::Relaxed) {
                self.low_water.after_empty_read(fd, missing);
            } else {
                self.low_water.reset(fd);
            }
            self.lend = n >= CHUNK / 2 || mid_frame;
            return Ok(n);
        }
        let n = (&self.sock).read(&mut self.buf)?;
        if n > 0 {
            let data = &self.buf[..n];
            let mid_frame = shared.step(false, |stack, now| {
                stack.input(now, data);
                stack.mid_frame
            });
            self.lend = n >= CHUNK / 2 || mid_frame;
        }
        Ok(n)
    }

    /// How long to wait for `deadline`, capped by the tick; `Some(0)` when
    /// it has passed, `None` for "no limit".
    fn wait_for(&self, shared: &Shared, deadline: Option<Instant>) -> Option<Duration> {
        let until = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                left
            } else {
                left.max(Duration::from_millis(1))
            }
        });
        let own = self.deadline.map(|d| {
            d.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        });
        let tick = shared.concurrent.load(Ordering::Relaxed).then_some(TICK);
        [until, tick, own].into_iter().flatten().min()
    }
}

/// The core's receive room for the next read: all of it while a frame is half
/// received (one read can take the rest), else at most `CHUNK`.
fn lend_room(conn: &mut Connection, mid_frame: bool) -> &mut [u8] {
    let room = conn.receive_buffer(CHUNK);
    let len = if mid_frame {
        room.len()
    } else {
        room.len().min(CHUNK)
    };
    room.get_mut(..len).unwrap_or_default()
}
