//! The event-style client (after Best.HTTP's C# `WebSocket`): handlers like
//! C# events, run on an IO thread or from the application's own loop, and
//! sends through a queue drained by a sender thread.
//!
//! Modules, each using only the ones listed before it (and this one's
//! types): `payload` (what sends take), `handlers` (the registry and the
//! `on_*` methods), `queue` (the send queue and the send methods), `events`
//! (delivery: IO thread or `dispatch`), `io` (the two threads), `builder`.

mod builder;
mod events;
mod handlers;
mod io;
mod payload;
mod queue;

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ws_buf::BufferPool;
use ws_net::url::WsUrl;

pub use builder::ClientBuilder;
pub use events::Delivery;
pub use handlers::HandlerId;
pub use payload::Payload;

use crate::driver::{lock, Shared};
use crate::error::Error;
use crate::logctx::{self, wslog, ConnId};
use crate::options::ClientOptions;
use events::Pending;
use handlers::Handlers;
use queue::{Phase, Queue};

/// Ping interval set by [`ClientBuilder::keepalive`].
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(1);
/// Silence allowed by [`ClientBuilder::keepalive`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default limit of [`WebSocketClient::buffered_amount`] (16 MiB).
pub const DEFAULT_MAX_BUFFERED: usize = 16 << 20;
/// Default limit of the events waiting for [`WebSocketClient::dispatch`]
/// (16 MiB, see [`ClientBuilder::max_pending`]).
pub const DEFAULT_MAX_PENDING: usize = 16 << 20;

/// The client's life cycle, as `WebSocket.readyState` in browsers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadyState {
    /// Not opened yet, or the connection and handshake are in progress.
    Connecting,
    /// Messages flow.
    Open,
    /// `close` was called or the closing handshake is under way.
    Closing,
    /// Over: the terminal event (closed or error) is being or has been
    /// delivered (see [`WebSocketClient::is_finished`]).
    Closed,
}

/// An event-style WebSocket client.
///
/// ```no_run
/// use ws_std::WebSocketClient;
///
/// let client = WebSocketClient::new("ws://127.0.0.1:9001/chat")?;
/// client.on_open(|ws, _| { let _ = ws.send_text("hello"); });
/// client.on_message(|ws, text| { println!("got {text}"); let _ = ws.close(); });
/// let id = client.on_message(|_, text| println!("second handler: {text}"));
/// client.remove_handler(id);
/// client.on_closed(|_, code, reason| println!("closed {code} {reason}"));
/// client.on_error(|_, e| eprintln!("failed: {e}"));
/// client.open()?; // returns at once
/// # Ok::<(), ws_std::Error>(())
/// ```
///
/// or, with options, through [`builder`](Self::builder):
///
/// ```no_run
/// use ws_std::{Delivery, WebSocketClient};
///
/// let client = WebSocketClient::builder("ws://127.0.0.1:9001/chat")
///     .protocol("chat")
///     .keepalive(true)
///     .delivery(Delivery::Dispatch) // handlers run in `client.dispatch()`
///     .log_context("lobby")
///     .on_message(|_, text| println!("got {text}"))
///     .build()?;
/// client.open()?;
/// # Ok::<(), ws_std::Error>(())
/// ```
///
/// - **Handlers are like C# events**: any number per event, added on the
///   builder or on the client (`on_open`, `on_message`, `on_binary`,
///   `on_binary_segment`, `on_incomplete_frame`, `on_ping`, `on_pong`,
///   `on_closed`, `on_error`), called in the order added; the client's
///   methods return a [`HandlerId`] for
///   [`remove_handler`](Self::remove_handler).
/// - **Where handlers run** is chosen with [`ClientBuilder::delivery`]: on
///   the client's IO thread (default), or queued until the application calls
///   [`dispatch`](Self::dispatch) from its own thread. Same events, same
///   order, either way.
/// - [`open`](Self::open) returns at once and connects on an IO thread. A
///   client is opened once; a second `open` (also after it closed) fails
///   with [`Error::AlreadyOpened`].
/// - Sends never block: they go into a queue that a sender thread drains.
///   **Sending before the open event is allowed: messages are queued and
///   sent, in order, right after the handshake** (and dropped if it fails).
///   [`buffered_amount`](Self::buffered_amount) is exact: queued bytes plus
///   what the protocol core has not handed to the socket yet. A send that
///   would take it past the limit fails with [`Error::QueueFull`].
/// - Exactly one terminal event, closed *xor* error, is delivered, once,
///   for every opened client, including one that never connects.
/// - Dropping the handles does not close the connection: call
///   [`close`](Self::close).
/// - **A handler that panics fails its connection**: the panic is caught,
///   a close with 1011 (internal error) goes to the server if the
///   connection is still up, the error handlers get
///   [`Error::CallbackPanicked`] (carrying the panic's message) once, both
///   of the client's threads end and the state is `Closed` (sends then fail
///   with [`Error::Closed`]). A panic inside a closed or error handler
///   itself is caught and logged; nothing else is called after it.
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
    max_pending: usize,
    delivery: Delivery,
    pool: BufferPool,
    handlers: Mutex<Handlers>,
    /// Lock order: `shared` slot, then the stack lock, then `queue`.
    queue: Mutex<Queue>,
    /// Signalled when the queue changes.
    cv: Condvar,
    /// Events waiting for `dispatch` (with [`Delivery::Dispatch`]).
    pending: Mutex<Pending>,
    /// Signalled when `dispatch` takes events.
    pending_cv: Condvar,
    /// Held by the one thread running `dispatch`.
    dispatching: Mutex<()>,
    shared: Mutex<Option<Arc<Shared>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        logctx::set_name(self.id, None);
    }
}

impl WebSocketClient {
    /// Starts configuring a client for `url` (`ws://` or `wss://`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url.into())
    }

    /// A client for `url` with default options; add handlers with the
    /// `on_*` methods before [`open`](Self::open).
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
            self.finish(Err(Error::Io(e)));
            return Err(Error::Closed);
        }
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

    /// The latest ping/pong round trip (pings from [`ping`](Self::ping) or
    /// the keepalive, [`ClientBuilder::keepalive`]).
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

    /// The connection id on this client's log lines (`[ws#N]`, or
    /// `[ws#N name]` with a [log context](Self::set_log_context)).
    pub fn id(&self) -> ConnId {
        self.inner.id
    }

    /// Names (or, with `None`, unnames) the connection on its log lines from
    /// now on (see [`ClientBuilder::log_context`]).
    pub fn set_log_context(&self, name: Option<&str>) {
        logctx::set_name(self.inner.id, name);
    }

    /// The name on this connection's log lines, as shown (sanitized).
    pub fn log_context(&self) -> Option<String> {
        self.inner.id.name().map(|n| n.to_string())
    }

    /// The options the client connects with (`config.streaming` is turned
    /// on at `open` when an incomplete-frame handler is registered).
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Where the handlers run.
    pub fn delivery(&self) -> Delivery {
        self.inner.delivery
    }

    fn shared(&self) -> Option<Arc<Shared>> {
        lock(&self.inner.shared).clone()
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
