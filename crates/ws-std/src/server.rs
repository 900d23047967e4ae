//! A thread-per-connection server helper over a `TcpListener`.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ws_proto::CloseCode;

use crate::driver::{lock, Shared};
use crate::logctx::{wslog, ConnId};
use crate::websocket::{accept_with_id, ServerOptions, WebSocket};

/// How often the accept loop looks at its stop flag when no connection
/// arrives.
const ACCEPT_POLL: Duration = Duration::from_millis(5);

/// Options of [`serve`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServeOptions {
    /// How each connection is accepted (TLS, upgrade decision, protocol
    /// configuration).
    pub server: ServerOptions,
    /// Most connections served at once (default 256). When reached, the
    /// server stops accepting; further clients wait in the listener's
    /// backlog until a connection ends.
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
                    let closed = shared.step(false, |core, _| {
                        core.conn.close(CloseCode::GOING_AWAY, "server shutdown")
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
    // Ends when `stop` is set; each round accepts, or waits ACCEPT_POLL.
    while !inner.stop.load(Ordering::SeqCst) {
        {
            let table = lock(&inner.table);
            if table.active >= options.max_connections {
                let _ = inner.cv.wait_timeout(table, ACCEPT_POLL);
                continue;
            }
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(ACCEPT_POLL);
                continue;
            }
            Err(e) => {
                log::warn!(target: "ws_std", "[ws-serve {local}] accept failed: {e}");
                thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        let id = ConnId::next();
        if let Err(e) = stream.set_nonblocking(false) {
            wslog!(Warn, id, "dropping connection: {e}");
            continue;
        }
        {
            let mut table = lock(&inner.table);
            table.active += 1;
            table.entries.insert(
                id,
                Entry {
                    sock: stream.try_clone().ok(),
                    shared: None,
                },
            );
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
    options
}

fn serve_one(
    stream: TcpStream,
    id: ConnId,
    options: &ServerOptions,
    handler: &(dyn Fn(WebSocket) + Send + Sync),
    inner: &Inner,
) {
    /// Frees the connection's slot however the thread ends (a panicking
    /// handler included).
    struct Slot<'a>(&'a Inner, ConnId);
    impl Drop for Slot<'_> {
        fn drop(&mut self) {
            end_connection(self.0, self.1);
        }
    }
    let _slot = Slot(inner, id);
    let register = |shared: &Arc<Shared>| {
        if let Some(e) = lock(&inner.table).entries.get_mut(&id) {
            e.shared = Some(Arc::downgrade(shared));
        }
    };
    match accept_with_id(stream, options, id, &register) {
        Ok(ws) => handler(ws),
        Err(e) => wslog!(Debug, id, "not served: {e}"),
    }
}

fn end_connection(inner: &Inner, id: ConnId) {
    let mut table = lock(&inner.table);
    table.entries.remove(&id);
    table.active = table.active.saturating_sub(1);
    inner.cv.notify_all();
}
