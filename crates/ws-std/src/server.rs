//! A thread-per-connection server helper over a `TcpListener`.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TrySendError};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ws_net::LogLimiter;
use ws_proto::{CloseCode, HandshakeError};

use crate::driver::{lock, Shared};
use crate::error::Error;
use crate::handshake::accept_with_id;
use crate::logctx::{wslog, ConnId};
use crate::options::{ServerOptions, UpgradeResponse};
use crate::websocket::WebSocket;

/// How often the accept loop looks at its stop flag when no connection
/// arrives.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// The `Retry-After` (seconds) of the 503 answered at the connection limit.
pub const RETRY_AFTER_SECS: u32 = 1;
/// Longest a client over the connection limit may take (TLS handshake and
/// upgrade request, writing the answer) before the rejecter gives up on it.
const REJECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Most clients over the limit waiting for their 503; past it, a new one is
/// closed at once without an answer.
const REJECT_QUEUE: usize = 128;
/// One line per interval for a repeated warning.
const LOG_INTERVAL: Duration = Duration::from_secs(5);
/// How long a connection whose handler panicked may take for its closing
/// handshake (our 1011 out, the client's echo back) before its socket is
/// shut down.
const PANIC_CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// Options of [`serve`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeOptions {
    /// How each connection is accepted (TLS, upgrade decision, protocol
    /// configuration).
    pub server: ServerOptions,
    /// Most connections served at once (default 256). At the limit, a new
    /// client is answered at once with HTTP 503 and `Retry-After:
    /// `[`RETRY_AFTER_SECS`] (after its TLS handshake, for `wss://`), and the
    /// server serves again as soon as a connection ends. The rejections run
    /// on one extra thread, one at a time, each bounded to 1 s; at most 128
    /// clients wait for theirs, and past that a new client is closed at once
    /// without an answer. The warning is logged at most once per 5 s, with
    /// the count held back.
    pub max_connections: usize,
    /// How long [`ServerHandle::shutdown`] lets connections finish their
    /// closing handshake (1001 going away) before cutting them (default 1 s).
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            server: ServerOptions::default(),
            max_connections: 256,
            shutdown_grace: Duration::from_secs(1),
        }
    }
}

impl ServeOptions {
    /// Sets the per-connection options.
    pub fn server(mut self, server: ServerOptions) -> Self {
        self.server = server;
        self
    }
    /// Sets the connection limit (at least 1).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }
    /// Sets the shutdown grace period.
    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.shutdown_grace = d;
        self
    }
}

/// Serves WebSocket connections on `listener`, one thread per connection:
/// each accepted socket goes through [`accept`](crate::accept) with
/// `options.server` (whose `on_upgrade` inspects path, headers and origin,
/// picks a subprotocol or rejects with a status), then to `handler`.
/// Connections that fail their handshake are logged and dropped.
///
/// A handler (or `on_upgrade`) that panics fails its connection only: the
/// panic is caught and logged, the connection is closed with 1011 (internal
/// error) if it is still open (with 500 if the upgrade was not answered
/// yet), its slot is freed, and the server keeps serving the others.
///
/// Returns at once; stop the server with [`ServerHandle::shutdown`] (or by
/// dropping the handle).
pub fn serve<H>(
    listener: TcpListener,
    options: ServeOptions,
    handler: H,
) -> io::Result<ServerHandle>
where
    H: Fn(WebSocket) + Send + Sync + 'static,
{
    let local_addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let inner = Arc::new(Inner {
        stop: AtomicBool::new(false),
        table: Mutex::new(Table::default()),
        cv: Condvar::new(),
        rejecting: Mutex::new(None),
    });
    let handler: Arc<dyn Fn(WebSocket) + Send + Sync> = Arc::new(handler);
    let thread_inner = inner.clone();
    let accept_thread = thread::Builder::new()
        .name(format!("ws-serve-{}", local_addr.port()))
        .spawn(move || accept_loop(listener, options, handler, thread_inner))?;
    Ok(ServerHandle {
        local_addr,
        inner,
        accept_thread: Some(accept_thread),
        grace: Duration::from_secs(1),
    })
}

/// Controls a running [`serve`].
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    inner: Arc<Inner>,
    accept_thread: Option<JoinHandle<ServeOptions>>,
    grace: Duration,
}

impl ServerHandle {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections being served (handshaking or open).
    pub fn active_connections(&self) -> usize {
        lock(&self.inner.table).active
    }

    /// Stops accepting (the listener is closed), closes open connections
    /// with 1001 (going away), waits up to the grace period for them to
    /// end, then cuts what remains and waits as long again. Returns whether
    /// every connection thread ended.
    pub fn shutdown(mut self) -> bool {
        self.stop()
    }

    fn stop(&mut self) -> bool {
        let Some(accept_thread) = self.accept_thread.take() else {
            return true;
        };
        self.inner.stop.store(true, Ordering::SeqCst);
        // A rejection in progress ends at once (the rejecter drops the
        // queued ones when it sees the stop flag).
        if let Some(s) = lock(&self.inner.rejecting).as_ref() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        if let Ok(options) = accept_thread.join() {
            self.grace = options.shutdown_grace;
        }
        let entries: Vec<(Option<Weak<Shared>>, Option<TcpStream>)> = lock(&self.inner.table)
            .entries
            .values()
            .map(|e| {
                (
                    e.shared.clone(),
                    e.sock.as_ref().and_then(|s| s.try_clone().ok()),
                )
            })
            .collect();
        for (shared, sock) in &entries {
            match shared.as_ref().and_then(Weak::upgrade) {
                Some(shared) => {
                    let closed = shared.step(false, |stack, _| {
                        stack.conn.close(CloseCode::GOING_AWAY, "server shutdown")
                    });
                    if closed.is_err() {
                        shared.abort();
                    }
                }
                None => {
                    if let Some(s) = sock {
                        let _ = s.shutdown(std::net::Shutdown::Both);
                    }
                }
            }
        }
        if self.wait_idle(self.grace) {
            return true;
        }
        let table = lock(&self.inner.table);
        for e in table.entries.values() {
            if let Some(shared) = e.shared.as_ref().and_then(Weak::upgrade) {
                shared.abort();
            }
            if let Some(s) = &e.sock {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        drop(table);
        self.wait_idle(self.grace)
    }

    fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut table = lock(&self.inner.table);
        while table.active > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            table = self
                .inner
                .cv
                .wait_timeout(table, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug)]
struct Inner {
    stop: AtomicBool,
    table: Mutex<Table>,
    /// Signalled when a connection ends.
    cv: Condvar,
    /// The socket the rejecter is answering, to cut it at shutdown.
    rejecting: Mutex<Option<TcpStream>>,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<ConnId, Entry>,
    active: usize,
}

#[derive(Debug)]
struct Entry {
    /// The raw socket, to cut a connection still in its handshake.
    sock: Option<TcpStream>,
    /// The connection, once it exists.
    shared: Option<Weak<Shared>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Logs `args` as a warning (target `ws_std`) through `limiter`: one line
/// per [`LOG_INTERVAL`], with the count of the lines held back.
fn warn_limited(limiter: &mut LogLimiter, args: fmt::Arguments<'_>) {
    match limiter.check(Instant::now()) {
        Some(0) => log::warn!(target: "ws_std", "{args}"),
        Some(n) => log::warn!(target: "ws_std", "{args} ({n} similar messages suppressed)"),
        None => {}
    }
}

/// The options the rejecter answers with: the server's TLS and limits, no
/// origin check, a 503 with `Retry-After` for every request, everything
/// bounded by [`REJECT_TIMEOUT`].
fn reject_options(server: &ServerOptions) -> ServerOptions {
    let mut options = server.clone();
    options.allowed_origins = None;
    options.write_timeout = Some(REJECT_TIMEOUT);
    let handshake = options.config.handshake_timeout.min(REJECT_TIMEOUT);
    options.config = options.config.clone().handshake_timeout(handshake);
    options.on_upgrade = Some(Arc::new(|_| UpgradeResponse::Reject {
        status: 503,
        headers: vec![("Retry-After".to_string(), RETRY_AFTER_SECS.to_string())],
        body: b"server at its connection limit, retry later".to_vec(),
    }));
    options
}

fn accept_loop(
    listener: TcpListener,
    options: ServeOptions,
    handler: Arc<dyn Fn(WebSocket) + Send + Sync>,
    inner: Arc<Inner>,
) -> ServeOptions {
    let options_arc = Arc::new(options.server.clone());
    let local = listener
        .local_addr()
        .map_or_else(|e| e.to_string(), |a| a.to_string());
    let (reject_tx, reject_rx) = mpsc::sync_channel(REJECT_QUEUE);
    let rejecter = {
        let (opts, rej_inner) = (reject_options(&options.server), inner.clone());
        thread::Builder::new()
            .name(format!(
                "ws-reject-{}",
                local.rsplit(':').next().unwrap_or("")
            ))
            .spawn(move || reject_loop(&reject_rx, &opts, &rej_inner))
    };
    let rejecter = match rejecter {
        Ok(h) => Some(h),
        Err(e) => {
            log::error!(target: "ws_std", "[ws-serve {local}] cannot spawn the rejecter thread ({e}): clients over the limit will be closed without an answer");
            None
        }
    };
    let mut accept_log = LogLimiter::new(LOG_INTERVAL);
    let mut full_log = LogLimiter::new(LOG_INTERVAL);
    // Ends when `stop` is set; each round accepts, or waits ACCEPT_POLL.
    while !inner.stop.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(ACCEPT_POLL);
                continue;
            }
            Err(e) => {
                // E.g. "too many open files", again on every retry.
                warn_limited(
                    &mut accept_log,
                    format_args!("[ws-serve {local}] accept failed: {e}"),
                );
                thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        let id = ConnId::next();
        if let Err(e) = stream.set_nonblocking(false) {
            wslog!(Warn, id, "dropping connection: {e}");
            continue;
        }
        let admitted = {
            let mut table = lock(&inner.table);
            let admitted = table.active < options.max_connections;
            if admitted {
                table.active += 1;
                table.entries.insert(
                    id,
                    Entry {
                        sock: stream.try_clone().ok(),
                        shared: None,
                    },
                );
            }
            admitted
        };
        if !admitted {
            let max = options.max_connections;
            let queued = match rejecter {
                Some(_) => reject_tx.try_send((stream, id)),
                None => Err(TrySendError::Disconnected((stream, id))),
            };
            match queued {
                Ok(()) => warn_limited(
                    &mut full_log,
                    format_args!(
                        "{id} [ws-serve {local}] at the connection limit ({max}): answering 503, Retry-After {RETRY_AFTER_SECS}"
                    ),
                ),
                // Dropping the socket closes it: the client learns at once.
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => warn_limited(
                    &mut full_log,
                    format_args!(
                        "{id} [ws-serve {local}] at the connection limit ({max}) with {REJECT_QUEUE} rejections pending: closing at once"
                    ),
                ),
            }
            continue;
        }
        let (opts, h, conn_inner) = (options_arc.clone(), handler.clone(), inner.clone());
        let spawned = thread::Builder::new()
            .name(format!("ws#{}", id.get()))
            .spawn(move || serve_one(stream, id, &opts, &*h, &conn_inner));
        if let Err(e) = spawned {
            wslog!(Warn, id, "cannot spawn a connection thread: {e}");
            end_connection(&inner, id);
        }
    }
    // The rejecter ends once its queue is closed (bounded: it drops what is
    // queued once `stop` is set, and `stop()` cuts the one in progress).
    drop(reject_tx);
    if let Some(h) = rejecter {
        let _ = h.join();
    }
    options
}

/// The rejecter thread: answers each client over the connection limit with
/// a 503, one at a time, each bounded by [`REJECT_TIMEOUT`]. Ends when the
/// accept loop closes the queue.
fn reject_loop(queue: &Receiver<(TcpStream, ConnId)>, options: &ServerOptions, inner: &Inner) {
    while let Ok((stream, id)) = queue.recv() {
        if inner.stop.load(Ordering::SeqCst) {
            continue; // shutting down: just close it
        }
        *lock(&inner.rejecting) = stream.try_clone().ok();
        let answered = panic::catch_unwind(AssertUnwindSafe(|| {
            accept_with_id(stream, options, id, &|_| {}, log::Level::Debug)
        }));
        *lock(&inner.rejecting) = None;
        match answered {
            Ok(Err(Error::Handshake(HandshakeError::Rejected(status)))) => {
                wslog!(Debug, id, "answered {status} (at the connection limit)");
            }
            Ok(Err(e)) => wslog!(Debug, id, "over the connection limit, not answered: {e}"),
            Ok(Ok(_)) => wslog!(Debug, id, "over the connection limit, dropped"),
            Err(_) => wslog!(Warn, id, "the rejection panicked"),
        }
    }
}

fn serve_one(
    stream: TcpStream,
    id: ConnId,
    options: &ServerOptions,
    handler: &(dyn Fn(WebSocket) + Send + Sync),
    inner: &Inner,
) {
    /// Frees the connection's slot however the thread ends.
    struct Slot<'a>(&'a Inner, ConnId);
    impl Drop for Slot<'_> {
        fn drop(&mut self) {
            end_connection(self.0, self.1);
        }
    }
    let _slot = Slot(inner, id);
    // Kept here (not only in the handler's WebSocket, which a panic drops)
    // to close the connection after a panic.
    let held: Mutex<Option<Arc<Shared>>> = Mutex::new(None);
    let register = |shared: &Arc<Shared>| {
        if let Some(e) = lock(&inner.table).entries.get_mut(&id) {
            e.shared = Some(Arc::downgrade(shared));
        }
        *lock(&held) = Some(shared.clone());
    };
    // `on_upgrade` and the handler are application code: a panic in either
    // fails this connection only.
    let served = panic::catch_unwind(AssertUnwindSafe(|| {
        match accept_with_id(stream, options, id, &register, log::Level::Info) {
            Ok(ws) => handler(ws),
            Err(e) => wslog!(Debug, id, "not served: {e}"),
        }
    }));
    let shared = lock(&held).take();
    if let Err(payload) = served {
        let msg = ws_net::panic_message(&*payload);
        wslog!(
            Error,
            id,
            "the connection handler panicked: {msg}; closing the connection (1011)"
        );
        if let Some(shared) = shared {
            shared.fail_without_reader(PANIC_CLOSE_LIMIT);
        }
    }
}

fn end_connection(inner: &Inner, id: ConnId) {
    let mut table = lock(&inner.table);
    table.entries.remove(&id);
    table.active = table.active.saturating_sub(1);
    inner.cv.notify_all();
}
