//! The event-style client: callbacks on an IO thread, sends through a
//! queue drained by a sender thread.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ws_buf::{BufferPool, BufferSegment};
use ws_proto::{CloseCode, Config, DeflateConfig, Fragment, MessageKind, OpenInfo};

use ws_net::url::WsUrl;

use crate::driver::{lock, Shared, TICK};
use crate::error::Error;
use crate::handshake::connect_url;
use crate::logctx::{wslog, ConnId};
use crate::options::ClientOptions;
use crate::tls::TlsClientOptions;
use crate::websocket::{Received, WsReader, WsWriter};

/// Ping interval set by [`ClientBuilder::keepalive`].
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(1);
/// Silence allowed by [`ClientBuilder::close_on_silence`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default limit of [`WebSocketClient::buffered_amount`] (16 MiB).
pub const DEFAULT_MAX_BUFFERED: usize = 16 << 20;
/// How long a connection failed by a panicking callback may take for its
/// closing handshake (our 1011 out, the server's echo back) before the
/// socket is shut down.
const PANIC_CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// The client's life cycle, as `WebSocket.readyState` in browsers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadyState {
    /// Not opened yet, or the connection and handshake are in progress.
    Connecting,
    /// Messages flow.
    Open,
    /// `close` was called or the closing handshake is under way.
    Closing,
    /// Over: `on_closed` or `on_error` has fired (or is firing).
    Closed,
}

type OnOpen = Box<dyn FnMut(&WebSocketClient, &OpenInfo) + Send>;
type OnMessage = Box<dyn FnMut(&WebSocketClient, &str) + Send>;
type OnBinary = Box<dyn FnMut(&WebSocketClient, Bytes) + Send>;
type OnSegment = Box<dyn FnMut(&WebSocketClient, &BufferSegment) + Send>;
type OnFragment = Box<dyn FnMut(&WebSocketClient, &Fragment) + Send>;
type OnClosed = Box<dyn FnMut(&WebSocketClient, CloseCode, &str) + Send>;
type OnError = Box<dyn FnMut(&WebSocketClient, &Error) + Send>;

#[derive(Default)]
struct Callbacks {
    open: Option<OnOpen>,
    message: Option<OnMessage>,
    binary: Option<OnBinary>,
    segment: Option<OnSegment>,
    fragment: Option<OnFragment>,
    closed: Option<OnClosed>,
    error: Option<OnError>,
}

/// Configures a [`WebSocketClient`]: URL, request, protocol options and
/// callbacks. Every callback runs on the client's IO thread and gets the
/// client as its first argument (to send, close, or read getters).
pub struct ClientBuilder {
    url: String,
    options: ClientOptions,
    max_buffered: usize,
    pool: Option<BufferPool>,
    callbacks: Callbacks,
}

ws_net::forward_request_options!(ClientBuilder => options.request);

impl ClientBuilder {
    /// Offers permessage-deflate with these parameters, or nothing (default).
    pub fn deflate(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.options.config.deflate = deflate;
        self
    }
    /// Replaces the protocol configuration (limits, fragment size, timers,
    /// deflate); set it before the keepalive and fragment options.
    pub fn config(mut self, config: Config) -> Self {
        self.options.config = config;
        self
    }
    /// Replaces all connection options (request, TLS, timeouts).
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }
    /// Sets the TLS options for `wss://`.
    pub fn tls(mut self, tls: TlsClientOptions) -> Self {
        self.options.tls = tls;
        self
    }
    /// Splits outgoing messages into frames of at most this many bytes
    /// (default 32,767).
    pub fn fragment_size(mut self, bytes: usize) -> Self {
        self.options.config = self.options.config.fragment_size(bytes);
        self
    }
    /// Bounds connect + TLS + upgrade (default 10 s); when it passes,
    /// `on_error` gets [`Error::Timeout`].
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.options.config.handshake_timeout = d;
        self
    }
    /// Sends a ping every [`DEFAULT_PING_INTERVAL`] (1 s) while open, or
    /// none. Round trips give [`WebSocketClient::latency`].
    pub fn keepalive(mut self, on: bool) -> Self {
        self.options.config.ping_interval = on.then_some(DEFAULT_PING_INTERVAL);
        self
    }
    /// Sets the ping interval.
    pub fn ping_interval(mut self, every: Option<Duration>) -> Self {
        self.options.config.ping_interval = every;
        self
    }
    /// Ends the connection (through `on_error` with
    /// [`Timeout::Idle`](crate::error::Timeout::Idle)) after
    /// [`DEFAULT_IDLE_TIMEOUT`] (2 s) without any frame from the server, or
    /// never.
    pub fn close_on_silence(mut self, on: bool) -> Self {
        self.options.config.idle_timeout = on.then_some(DEFAULT_IDLE_TIMEOUT);
        self
    }
    /// Sets the silence allowed before the connection ends.
    pub fn idle_timeout(mut self, after: Option<Duration>) -> Self {
        self.options.config.idle_timeout = after;
        self
    }
    /// Limits [`WebSocketClient::buffered_amount`]: a send that would go
    /// past it fails with [`Error::QueueFull`] (default 16 MiB).
    pub fn max_buffered(mut self, bytes: usize) -> Self {
        self.max_buffered = bytes;
        self
    }
    /// The pool `on_binary_segment` segments come from (default: a new
    /// pool per client).
    pub fn buffer_pool(mut self, pool: BufferPool) -> Self {
        self.pool = Some(pool);
        self
    }
    /// Called once the handshake completes.
    pub fn on_open(mut self, f: impl FnMut(&WebSocketClient, &OpenInfo) + Send + 'static) -> Self {
        self.callbacks.open = Some(Box::new(f));
        self
    }
    /// Called with each text message.
    pub fn on_message(mut self, f: impl FnMut(&WebSocketClient, &str) + Send + 'static) -> Self {
        self.callbacks.message = Some(Box::new(f));
        self
    }
    /// Called with each binary message, as owned bytes.
    pub fn on_binary(mut self, f: impl FnMut(&WebSocketClient, Bytes) + Send + 'static) -> Self {
        self.callbacks.binary = Some(Box::new(f));
        self
    }
    /// Called with each binary message in a segment of the client's
    /// [`BufferPool`]; the segment goes back to the pool when the callback
    /// returns. (When `on_binary` is set too, both are called.)
    pub fn on_binary_segment(
        mut self,
        f: impl FnMut(&WebSocketClient, &BufferSegment) + Send + 'static,
    ) -> Self {
        self.callbacks.segment = Some(Box::new(f));
        self
    }
    /// Delivers every data frame as it arrives, without reassembly (turns
    /// on `Config::streaming`); `on_message`, `on_binary` and
    /// `on_binary_segment` then never fire.
    pub fn on_incomplete_frame(
        mut self,
        f: impl FnMut(&WebSocketClient, &Fragment) + Send + 'static,
    ) -> Self {
        self.callbacks.fragment = Some(Box::new(f));
        self
    }
    /// Called when the connection ended without error (closing handshake,
    /// either side starting it), with the close code and reason. Exactly
    /// one of `on_closed` and `on_error` fires, once, for every opened
    /// client.
    pub fn on_closed(
        mut self,
        f: impl FnMut(&WebSocketClient, CloseCode, &str) + Send + 'static,
    ) -> Self {
        self.callbacks.closed = Some(Box::new(f));
        self
    }
    /// Called when the connection could not be made or ended with an
    /// error; the [`Error`] says what happened.
    pub fn on_error(mut self, f: impl FnMut(&WebSocketClient, &Error) + Send + 'static) -> Self {
        self.callbacks.error = Some(Box::new(f));
        self
    }

    /// The connection options as configured so far.
    pub fn client_options(&self) -> &ClientOptions {
        &self.options
    }

    /// Checks the URL, the upgrade request (origin, subprotocols, headers)
    /// and the TLS settings, and makes the client, not yet opened.
    ///
    /// Fails with [`Error::InvalidUrl`], or [`Error::Command`] with
    /// [`ws_proto::Error::InvalidRequest`] naming the field at fault
    /// ([`Error::invalid_request`]). (What a
    /// [`request_hook`](ClientOptions::request_hook) changes is checked when
    /// the client opens, before it connects: `on_error` gets the same error.)
    pub fn build(self) -> Result<WebSocketClient, Error> {
        let url = WsUrl::parse(&self.url)?;
        self.options.request.assemble(&url)?;
        if url.is_secure() {
            self.options.tls.build()?;
        }
        let mut options = self.options;
        options.config.streaming = self.callbacks.fragment.is_some();
        // The client's own queue enforces `max_buffered`; the core holds at
        // most the message being written.
        options.config.limits = options.config.limits.clone().max_send_queue(usize::MAX);
        let id = ConnId::next();
        Ok(WebSocketClient {
            inner: Arc::new(Inner {
                id,
                url,
                options,
                max_buffered: self.max_buffered,
                pool: self.pool.unwrap_or_default(),
                callbacks: Mutex::new(self.callbacks),
                queue: Mutex::new(Queue::default()),
                cv: Condvar::new(),
                shared: Mutex::new(None),
            }),
        })
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("options", &self.options)
            .field("max_buffered", &self.max_buffered)
            .finish_non_exhaustive()
    }
}

/// An event-style WebSocket client.
///
/// ```no_run
/// use ws_std::WebSocketClient;
///
/// let client = WebSocketClient::builder("ws://127.0.0.1:9001/chat")
///     .protocol("chat")
///     .keepalive(true)
///     .on_open(|ws, _| { let _ = ws.send_text("hello"); })
///     .on_message(|ws, text| { println!("got {text}"); let _ = ws.close(ws_proto::CloseCode::NORMAL, "bye"); })
///     .on_closed(|_, code, reason| println!("closed {code} {reason}"))
///     .on_error(|_, e| eprintln!("failed: {e}"))
///     .build()?;
/// client.open()?; // returns at once
/// # Ok::<(), ws_std::Error>(())
/// ```
///
/// - [`open`](Self::open) returns at once and connects on an IO thread,
///   which also runs every callback. A client is opened once; a second
///   `open` (also after it closed) fails with [`Error::AlreadyOpened`].
/// - Sends never block: they go into a queue that a sender thread drains.
///   **Sending before `on_open` is allowed: messages are queued and sent,
///   in order, right after the handshake** (and dropped if it fails).
///   [`buffered_amount`](Self::buffered_amount) is exact: queued bytes plus
///   what the protocol core has not handed to the socket yet. A send that
///   would take it past the limit fails with [`Error::QueueFull`].
/// - Exactly one of `on_closed` and `on_error` fires, once, for every
///   opened client, including one that never connects.
/// - Dropping the handles does not close the connection: call
///   [`close`](Self::close).
/// - **A callback that panics fails its connection**: the panic is caught,
///   a close with 1011 (internal error) goes to the server if the
///   connection is still up, `on_error` fires once with
///   [`Error::CallbackPanicked`] (carrying the panic's message), both of the
///   client's threads end and the state is `Closed` (sends then fail with
///   [`Error::Closed`]). A panic inside `on_closed` or `on_error` itself is
///   caught and logged; nothing else is called after it.
///
/// The handle is cheap to clone; every clone controls the same connection.
#[derive(Clone)]
pub struct WebSocketClient {
    inner: Arc<Inner>,
}

struct Inner {
    id: ConnId,
    url: WsUrl,
    options: ClientOptions,
    max_buffered: usize,
    pool: BufferPool,
    /// Taken by the IO thread when it starts.
    callbacks: Mutex<Callbacks>,
    /// Lock order: `shared` slot, then the stack lock, then `queue`.
    queue: Mutex<Queue>,
    /// Signalled when the queue changes.
    cv: Condvar,
    shared: Mutex<Option<Arc<Shared>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    New,
    Connecting,
    Open,
    Closed,
}

enum Outgoing {
    Message(MessageKind, Bytes),
    Close(CloseCode, String),
}

impl Outgoing {
    fn len(&self) -> usize {
        match self {
            Outgoing::Message(_, b) => b.len(),
            Outgoing::Close(..) => 0,
        }
    }
}

struct Queue {
    phase: Phase,
    close_requested: bool,
    items: VecDeque<Outgoing>,
    bytes: usize,
    stop_sender: bool,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            phase: Phase::New,
            close_requested: false,
            items: VecDeque::new(),
            bytes: 0,
            stop_sender: false,
        }
    }
}

impl WebSocketClient {
    /// Starts configuring a client for `url` (`ws://` or `wss://`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            options: ClientOptions::default(),
            max_buffered: DEFAULT_MAX_BUFFERED,
            pool: None,
            callbacks: Callbacks::default(),
        }
    }

    /// A client for `url` with default options and no callbacks.
    pub fn new(url: impl Into<String>) -> Result<WebSocketClient, Error> {
        Self::builder(url).build()
    }

    /// Starts connecting on a new IO thread and returns at once. Fails with
    /// [`Error::AlreadyOpened`] if this client was opened before (a closed
    /// client cannot be reopened).
    pub fn open(&self) -> Result<(), Error> {
        {
            let mut q = lock(&self.inner.queue);
            if q.phase != Phase::New {
                return Err(Error::AlreadyOpened);
            }
            q.phase = Phase::Connecting;
        }
        let client = self.clone();
        let spawned = thread::Builder::new()
            .name(format!("ws#{}-io", self.inner.id.get()))
            .spawn(move || client.run());
        if let Err(e) = spawned {
            wslog!(Error, self.inner.id, "cannot spawn the IO thread: {e}");
            let mut callbacks = std::mem::take(&mut *lock(&self.inner.callbacks));
            self.finish(&mut callbacks, Err(Error::Io(e)));
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Queues a text message.
    pub fn send_text(&self, text: &str) -> Result<(), Error> {
        self.enqueue(Outgoing::Message(
            MessageKind::Text,
            Bytes::copy_from_slice(text.as_bytes()),
        ))
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.enqueue(Outgoing::Message(MessageKind::Binary, data.into()))
    }

    /// Queues the segment's bytes as a text message, without copying; the
    /// segment returns to its pool once written. Fails with
    /// [`Error::InvalidUtf8`] if it is not UTF-8.
    pub fn send_as_text(&self, segment: BufferSegment) -> Result<(), Error> {
        if std::str::from_utf8(&segment).is_err() {
            return Err(Error::InvalidUtf8);
        }
        self.enqueue(Outgoing::Message(MessageKind::Text, segment.freeze()))
    }

    /// Queues the segment's bytes as a binary message, without copying; the
    /// segment returns to its pool once written.
    pub fn send_as_binary(&self, segment: BufferSegment) -> Result<(), Error> {
        self.enqueue(Outgoing::Message(MessageKind::Binary, segment.freeze()))
    }

    /// Starts the closing handshake after the messages already queued. The
    /// end is reported by `on_closed` (or `on_error`). Before `open`, this
    /// just retires the client. Fails with [`Error::Closed`] when already
    /// closing or closed, and with [`Error::Command`] for a code that may
    /// not be sent or a reason over 123 bytes.
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !CloseCode::is_sendable(code.as_u16()) {
            return Err(Error::Command(ws_proto::Error::InvalidCloseCode(
                code.as_u16(),
            )));
        }
        if reason.len() > 123 {
            return Err(Error::Command(ws_proto::Error::CloseReasonTooLong(
                reason.len(),
            )));
        }
        let mut q = lock(&self.inner.queue);
        match q.phase {
            Phase::Closed => return Err(Error::Closed),
            _ if q.close_requested => return Err(Error::Closed),
            Phase::New => {
                q.phase = Phase::Closed;
                return Ok(());
            }
            Phase::Connecting | Phase::Open => {}
        }
        wslog!(Debug, self.inner.id, "close requested: {code} {reason:?}");
        q.close_requested = true;
        q.items.push_back(Outgoing::Close(code, reason.to_string()));
        drop(q);
        self.inner.cv.notify_all();
        Ok(())
    }

    /// Bytes waiting to be written: the client's queue plus what the
    /// protocol core has not handed on yet (payload bytes as the core counts
    /// them: after compression, frame headers not counted). Bytes already
    /// handed to the socket's bounded write buffer (at most 64 KiB, like the
    /// kernel's own send buffer) are not counted. Before `open` it is exactly
    /// the sum of the queued messages' sizes.
    pub fn buffered_amount(&self) -> usize {
        let shared = self.shared();
        let stack = shared.as_ref().map(|s| s.stack());
        let core_bytes = stack.as_ref().map_or(0, |s| s.conn.buffered_amount());
        let q = lock(&self.inner.queue);
        q.bytes + core_bytes
    }

    /// The life-cycle state.
    pub fn state(&self) -> ReadyState {
        let shared = self.shared();
        let core_state = shared.as_ref().map(|s| s.stack().conn.state());
        let q = lock(&self.inner.queue);
        match q.phase {
            Phase::Closed => ReadyState::Closed,
            _ if q.close_requested => ReadyState::Closing,
            Phase::New | Phase::Connecting => ReadyState::Connecting,
            Phase::Open => match core_state {
                Some(ws_proto::State::Open) => ReadyState::Open,
                Some(ws_proto::State::Connecting) => ReadyState::Connecting,
                _ => ReadyState::Closing,
            },
        }
    }

    /// Whether messages can be sent right now (open and not closing).
    pub fn is_open(&self) -> bool {
        self.state() == ReadyState::Open
    }

    /// The latest ping/pong round trip (pings are sent with
    /// [`ClientBuilder::keepalive`] or [`ClientBuilder::ping_interval`]).
    pub fn latency(&self) -> Option<Duration> {
        self.shared().and_then(|s| s.stack().conn.latency())
    }

    /// When the last frame (message or control) arrived.
    pub fn last_message_received(&self) -> Option<Instant> {
        self.shared()
            .and_then(|s| s.stack().conn.last_message_received())
    }

    /// The pool `on_binary_segment` segments come from; take segments for
    /// [`send_as_binary`](Self::send_as_binary) from it too.
    pub fn pool(&self) -> &BufferPool {
        &self.inner.pool
    }

    /// The connection id on this client's log lines (`[ws#N]`).
    pub fn id(&self) -> ConnId {
        self.inner.id
    }

    /// The options the client connects with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    fn shared(&self) -> Option<Arc<Shared>> {
        lock(&self.inner.shared).clone()
    }

    fn enqueue(&self, item: Outgoing) -> Result<(), Error> {
        let shared = self.shared();
        let stack = shared.as_ref().map(|s| s.stack());
        let core_bytes = stack.as_ref().map_or(0, |s| s.conn.buffered_amount());
        let mut q = lock(&self.inner.queue);
        if q.phase == Phase::Closed || q.close_requested {
            return Err(Error::Closed);
        }
        let buffered = q.bytes + core_bytes;
        let limit = self.inner.max_buffered;
        if buffered.saturating_add(item.len()) > limit {
            return Err(Error::QueueFull { buffered, limit });
        }
        q.bytes += item.len();
        q.items.push_back(item);
        drop(q);
        drop(stack);
        self.inner.cv.notify_all();
        Ok(())
    }

    // ----- the IO thread ------------------------------------------------

    fn run(self) {
        let inner = &self.inner;
        let mut callbacks = std::mem::take(&mut *lock(&inner.callbacks));
        let ws = match connect_url(&inner.url, &inner.options, inner.id) {
            Ok(ws) => ws,
            Err(e) => return self.finish(&mut callbacks, Err(e)),
        };
        let info = ws.open_info().clone();
        let (mut reader, writer) = ws.split();
        *lock(&inner.shared) = Some(writer.shared_arc());
        lock(&inner.queue).phase = Phase::Open;
        let sender = {
            let client = self.clone();
            let writer = writer.clone();
            thread::Builder::new()
                .name(format!("ws#{}-send", inner.id.get()))
                .spawn(move || client.send_loop(&writer))
        };
        let sender = match sender {
            Ok(h) => Some(h),
            Err(e) => {
                wslog!(Error, inner.id, "cannot spawn the sender thread: {e}");
                writer.shared_arc().finish(Duration::ZERO);
                None
            }
        };
        let opened = match (sender.is_some(), callbacks.open.as_mut()) {
            (true, Some(f)) => self.invoke("on_open", || f(&self, &info)),
            _ => Ok(()),
        };
        // Ends with the terminal event, which `recv` always delivers, or at
        // the first callback that panics.
        let outcome = match opened {
            Err(e) => Err(e),
            Ok(()) => loop {
                let called = match reader.recv() {
                    Ok(Received::Message(m)) => self.dispatch_message(&mut callbacks, m),
                    Ok(Received::Fragment(fr)) => match callbacks.fragment.as_mut() {
                        Some(f) => self.invoke("on_incomplete_frame", || f(&self, &fr)),
                        None => Ok(()),
                    },
                    Ok(Received::Closed(c)) => break Ok((c.code, c.reason)),
                    Ok(_) => Ok(()),
                    Err(e) => break Err(e),
                };
                if let Err(e) = called {
                    break Err(e);
                }
            },
        };
        if matches!(outcome, Err(Error::CallbackPanicked(_))) {
            self.fail_after_panic(&mut reader);
        }
        self.stop_sender(sender);
        self.finish(&mut callbacks, outcome);
    }

    /// Runs one application callback, the only way this client calls
    /// application code: a panic is caught and becomes
    /// [`Error::CallbackPanicked`] (logged with the callback's name).
    fn invoke(&self, name: &str, f: impl FnOnce()) -> Result<(), Error> {
        panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
            let msg = ws_net::panic_message(&*payload);
            wslog!(Error, self.inner.id, "{name} panicked: {msg}");
            Error::CallbackPanicked(msg)
        })
    }

    /// A callback panicked while the connection may still be up: refuse
    /// further sends, close with 1011, wait (bounded) for the server's echo
    /// without delivering anything, and cut the transport, which also
    /// releases a sender thread blocked on the socket.
    fn fail_after_panic(&self, reader: &mut WsReader) {
        {
            let mut q = lock(&self.inner.queue);
            q.close_requested = true;
            q.items.clear();
            q.bytes = 0;
        }
        reader.fail(PANIC_CLOSE_LIMIT);
    }

    fn dispatch_message(
        &self,
        callbacks: &mut Callbacks,
        m: ws_proto::Message,
    ) -> Result<(), Error> {
        match m.kind {
            MessageKind::Text => match (callbacks.message.as_mut(), m.as_text()) {
                (Some(f), Some(text)) => self.invoke("on_message", || f(self, text)),
                _ => Ok(()),
            },
            MessageKind::Binary => {
                if let Some(f) = callbacks.segment.as_mut() {
                    let mut seg = self.inner.pool.get(m.data.len());
                    seg.extend_from_slice(&m.data);
                    self.invoke("on_binary_segment", || f(self, &seg))?;
                }
                match callbacks.binary.as_mut() {
                    Some(f) => self.invoke("on_binary", || f(self, m.data)),
                    None => Ok(()),
                }
            }
        }
    }

    fn stop_sender(&self, sender: Option<JoinHandle<()>>) {
        lock(&self.inner.queue).stop_sender = true;
        self.inner.cv.notify_all();
        if let Some(h) = sender {
            let _ = h.join();
        }
    }

    /// Fires the terminal callback (exactly once) and drops the callbacks.
    fn finish(&self, callbacks: &mut Callbacks, outcome: Result<(CloseCode, String), Error>) {
        {
            let mut q = lock(&self.inner.queue);
            q.phase = Phase::Closed;
            q.items.clear();
            q.bytes = 0;
        }
        // A panic in these two is caught (and logged) by `invoke`: the
        // connection is over anyway, and nothing else is called after them.
        let _ = match outcome {
            Ok((code, reason)) => {
                wslog!(Info, self.inner.id, "closed: {code} {reason:?}");
                match callbacks.closed.as_mut() {
                    Some(f) => self.invoke("on_closed", || f(self, code, &reason)),
                    None => Ok(()),
                }
            }
            Err(e) => {
                wslog!(Info, self.inner.id, "failed: {e}");
                match callbacks.error.as_mut() {
                    Some(f) => self.invoke("on_error", || f(self, &e)),
                    None => Ok(()),
                }
            }
        };
        // The callbacks may hold clones of this client: drop them now (a
        // panicking destructor of a captured value is contained too).
        let old = std::mem::take(callbacks);
        let _ = self.invoke("dropping the callbacks", || drop(old));
    }

    // ----- the sender thread --------------------------------------------

    fn send_loop(&self, writer: &WsWriter) {
        let inner = &self.inner;
        let shared = writer.shared_arc();
        // Ends when the IO thread sets `stop_sender`; each round sends one
        // queued item or waits (at most TICK).
        loop {
            {
                let mut q = lock(&inner.queue);
                while !q.stop_sender && q.items.is_empty() {
                    q = inner
                        .cv
                        .wait_timeout(q, TICK)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                if q.stop_sender {
                    return;
                }
            }
            // Moving the item from the queue into the core happens under the
            // stack lock, so `buffered_amount` never counts it twice or not
            // at all.
            let sent = shared.step(true, |stack, _| {
                let mut q = lock(&inner.queue);
                let Some(item) = q.items.pop_front() else {
                    return Ok(());
                };
                q.bytes = q.bytes.saturating_sub(item.len());
                drop(q);
                match item {
                    Outgoing::Message(kind, data) => stack.conn.send(kind, data),
                    Outgoing::Close(code, reason) => stack.conn.close(code, &reason),
                }
            });
            if let Err(e) = sent {
                wslog!(Debug, inner.id, "queued item dropped: {e}");
            }
        }
    }
}

impl fmt::Debug for WebSocketClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketClient")
            .field("id", &self.inner.id)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}
