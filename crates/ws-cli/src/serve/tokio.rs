//! `wsx serve --driver tokio`: one ws-tokio task per connection on a
//! multi-thread tokio runtime with `--threads` workers (one by default, the
//! mio driver's one loop; the accept loop runs on the calling thread).
//!
//! - echo: each connection `feed`s every message back, so the replies to one
//!   read go out in one write (ws-tokio writes what was fed when the stream
//!   next waits for input);
//! - `--broadcast`: each connection is split; its reader relays every
//!   message, prepared once ([`PreparedMessage`]: one payload, one
//!   compression for every member that can share it), through its room's
//!   `tokio::sync::broadcast` channel to every *other* member (a member more
//!   than 1,024 messages behind misses messages, with a warning), and its
//!   writer feeds everything waiting before the next write. One room for
//!   the whole server; with `--redis`, one room per request path, joined to
//!   the same room on every other server through Redis pub/sub
//!   ([`ws_redis::Bridge`]): a message is delivered here at once and
//!   published once; messages of other servers arrive on the bridge's
//!   thread and go through the same room channel (docs/scale-out.md);
//! - `--max-connections`: a semaphore; over it a client is answered 503 with
//!   `Retry-After: 1` (after its TLS handshake, for `wss://`), each answer
//!   bounded to 1 s and at most 128 under way (past that, closed at once),
//!   the warning logged at most once per 5 s; served again as soon as a
//!   connection ends;
//! - `--origin`: the shared allow-list ([`super::origin_allowed`]), 403
//!   otherwise; TLS through tokio-rustls with the configuration `serve`
//!   built; limits and deflate options from the core's configuration.
//!
//! With `--exit-after N` it returns once N connections have ended; the
//! connections still open are cut (the runtime is shut down, 1 s at most).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use log::{debug, info, warn};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, Notify, Semaphore};
use tokio_rustls::TlsAcceptor;
use ws_net::LogLimiter;
use ws_proto::PreparedMessage;
use ws_tokio::{Decision, Message, UpgradeRequest, WebSocketStream};

use super::{announce, fail, origin_allowed, scheme};
use crate::opts::ServeArgs;

/// `Retry-After` (seconds) of the 503 answered at the connection limit.
const RETRY_AFTER_SECS: u32 = 1;
/// Longest a client over the limit may take (TLS, upgrade request, our
/// answer) before it is dropped.
const REJECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Most 503 answers under way at once; past it a client is closed at once.
const REJECT_QUEUE: usize = 128;
/// Messages the broadcast room keeps for its slowest member.
const ROOM_QUEUE: usize = 1024;
/// One line per interval for a repeated warning.
const LOG_INTERVAL: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors) before the
/// next one, so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// What every connection task shares.
struct Server {
    /// Shared by every connection (`streaming` off, as `accept_with` wants it).
    config: Arc<ws_proto::Config>,
    /// `--http2`: HTTP/2 (ALPN `h2`, or the preface on plain TCP) besides HTTP/1.1.
    http2: bool,
    tls: Option<TlsAcceptor>,
    origins: Vec<String>,
    broadcast: bool,
    /// The broadcast rooms (shared with the Redis bridge's thread).
    rooms: Arc<Rooms>,
    /// `--redis`: the bridge to the other servers' rooms.
    redis: Option<ws_redis::Bridge>,
    /// Connections that ended (`--exit-after`).
    served: AtomicUsize,
    exit_after: Option<usize>,
    /// Notified once `served` reaches `exit_after`.
    done: Notify,
    /// Warnings of the broadcast room, rate-limited.
    room_log: Mutex<LogLimiter>,
}

/// A room's channel: (sender's connection id, message) to every member.
type RoomTx = broadcast::Sender<(u64, PreparedMessage)>;

/// Connection id of messages from other servers (no local connection has
/// it: ids start at 1), so that every local member gets them.
const REMOTE: u64 = 0;

/// The broadcast rooms: one channel per room key, made by its first member
/// and removed with its last. The key is the request path with `--redis`,
/// the empty string (one room) without.
struct Rooms {
    per_path: bool,
    map: Mutex<HashMap<String, RoomTx>>,
}

impl Rooms {
    /// The room a request path belongs to (the query is not part of it).
    fn key(&self, path: &str) -> String {
        match self.per_path {
            true => super::room_of(path).to_string(),
            false => String::new(),
        }
    }

    /// Joins room `key`, made if needed.
    fn join(&self, key: &str) -> (RoomTx, broadcast::Receiver<(u64, PreparedMessage)>) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let tx = map
            .entry(key.to_string())
            .or_insert_with(|| broadcast::channel(ROOM_QUEUE).0)
            .clone();
        let rx = tx.subscribe();
        (tx, rx)
    }

    /// Removes room `key` once its last member left (its receiver dropped).
    fn leave(&self, key: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(key).is_some_and(|tx| tx.receiver_count() == 0) {
            map.remove(key);
        }
    }

    /// A message from another server to every local member of room `key`
    /// (none: nobody here to get it).
    fn deliver(&self, key: &str, msg: PreparedMessage) {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = map.get(key) {
            let _ = tx.send((REMOTE, msg));
        }
    }
}

/// Runs the tokio server until killed (or `--exit-after`).
pub(super) fn run(a: &ServeArgs, addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> i32 {
    let rooms = Arc::new(Rooms {
        per_path: a.redis.is_some(),
        map: Mutex::new(HashMap::new()),
    });
    // The bridge first: Redis unreachable is an error before we listen.
    let redis = match &a.redis {
        None => None,
        Some(url) => {
            let mut opts = ws_redis::BridgeOptions::new(url.as_str());
            opts.max_payload = a.proto.max_message;
            let to = Arc::clone(&rooms);
            match ws_redis::Bridge::start(opts, move |room, msg| to.deliver(room, msg)) {
                Ok(b) => {
                    info!("redis: joined {url} as server {:016x}", b.id());
                    Some(b)
                }
                Err(e) => return fail(&format!("--redis {url}: {e}")),
            }
        }
    };
    let threads = a.threads.max(1);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("wsx-tokio")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the tokio runtime: {e}")),
    };
    let code = rt.block_on(serve(a, addr, tls, threads, rooms, redis));
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn serve(
    a: &ServeArgs,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    threads: usize,
    rooms: Arc<Rooms>,
    redis: Option<ws_redis::Bridge>,
) -> i32 {
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {addr}: {e}")),
    };
    let Ok(local) = listener.local_addr() else {
        return fail("no local address");
    };
    let scheme = scheme(tls.as_ref());
    let server = Arc::new(Server {
        config: Arc::new(a.config().streaming(false)),
        http2: a.http2,
        tls: tls
            .map(|t| match a.http2 {
                true => ws_tokio::h2::server_tls_config(&t),
                false => t,
            })
            .map(TlsAcceptor::from),
        origins: a.origins.clone(),
        broadcast: a.broadcast,
        rooms,
        redis,
        served: AtomicUsize::new(0),
        exit_after: a.exit_after,
        done: Notify::new(),
        room_log: Mutex::new(LogLimiter::new(LOG_INTERVAL)),
    });
    announce(scheme, local);
    info!(
        "serving (tokio driver, {threads} worker thread(s), {})",
        match (a.broadcast, a.redis.is_some()) {
            (true, true) => "broadcast, rooms by path over Redis",
            (true, false) => "broadcast",
            _ => "echo",
        }
    );
    let max = a.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let rejections = Arc::new(Semaphore::new(REJECT_QUEUE));
    let mut accept_log = LogLimiter::new(LOG_INTERVAL);
    let mut full_log = LogLimiter::new(LOG_INTERVAL);
    let next_id = AtomicU64::new(1);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = server.done.notified(), if server.exit_after.is_some() => return 0,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // E.g. "too many open files", again on every retry.
                if let Some(n) = accept_log.check(Instant::now()) {
                    warn!("accept failed: {e}{}", suppressed(n));
                }
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                let server = Arc::clone(&server);
                tokio::spawn(async move {
                    connection(tcp, peer, id, &server).await;
                    drop(slot);
                    server.ended();
                });
            }
            Err(_) => match Arc::clone(&rejections).try_acquire_owned() {
                Ok(pending) => {
                    if let Some(n) = full_log.check(Instant::now()) {
                        warn!(
                            "[ws#{id}] at the connection limit ({max}): answering 503, Retry-After {RETRY_AFTER_SECS}{}",
                            suppressed(n)
                        );
                    }
                    let server = Arc::clone(&server);
                    tokio::spawn(async move {
                        refuse(tcp, id, &server).await;
                        drop(pending);
                    });
                }
                Err(_) => {
                    // Dropping the socket closes it: the client learns at once.
                    if let Some(n) = full_log.check(Instant::now()) {
                        warn!(
                            "[ws#{id}] at the connection limit ({max}) with {REJECT_QUEUE} rejections pending: closing at once{}",
                            suppressed(n)
                        );
                    }
                }
            },
        }
    }
}

/// " (N similar messages suppressed)" when the limiter held N back.
fn suppressed(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} similar messages suppressed)")
    }
}

impl Server {
    /// Counts a connection that ended; wakes the accept loop at `--exit-after`.
    fn ended(&self) {
        let served = self.served.fetch_add(1, Ordering::SeqCst) + 1;
        if self.exit_after.is_some_and(|n| served >= n) {
            self.done.notify_one();
        }
    }

    /// The upgrade decision: the `--origin` allow-list.
    fn decide(&self, id: u64, req: &UpgradeRequest) -> Decision {
        if origin_allowed(&self.origins, req.origin.as_deref()) {
            Decision::accept()
        } else {
            warn!(
                "[ws#{id}] rejected origin {}",
                req.origin.as_deref().unwrap_or("(none)")
            );
            Decision::reject(403, "origin not allowed")
        }
    }
}

/// Runs `fut` (a TLS or WebSocket handshake) within `limit`.
async fn within<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err("timed out".to_string()),
    }
}

/// One connection: TLS if configured, then [`session`] (HTTP/1.1) or, with
/// `--http2`, [`http2`] when the client speaks HTTP/2 (ALPN `h2`, or the
/// HTTP/2 preface on plain TCP).
async fn connection(tcp: TcpStream, peer: SocketAddr, id: u64, server: &Arc<Server>) {
    // The TLS and HTTP/2 paths are boxed: their states are large, and inline they would
    // make every connection's task as large (a plain idle connection's task was 10.9 KB).
    match &server.tls {
        None => {
            if server.http2
                && ws_tokio::h2::starts_with_preface(&tcp)
                    .await
                    .unwrap_or(false)
            {
                Box::pin(http2(tcp, peer, id, server)).await;
            } else {
                // Plain TCP: woken once per large frame, not per piece.
                session(tcp, peer, id, server, WebSocketStream::wake_on_whole_frames).await;
            }
        }
        Some(acceptor) => Box::pin(tls_connection(acceptor, tcp, peer, id, server)).await,
    }
}

/// A `wss://` connection: the TLS handshake, then HTTP/2 (ALPN `h2`, with `--http2`) or
/// [`session`].
async fn tls_connection(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    id: u64,
    server: &Arc<Server>,
) {
    let limit = server.config.handshake_timeout;
    match within(limit, async {
        acceptor.accept(tcp).await.map_err(|e| e.to_string())
    })
    .await
    {
        Ok(tls) if server.http2 && ws_tokio::h2::is_h2(&tls) => {
            http2(tls, peer, id, server).await;
        }
        Ok(tls) => session(tls, peer, id, server, |_| {}).await,
        Err(e) => debug!("[ws#{id}] TLS handshake with {peer} failed: {e}"),
    }
}

/// An HTTP/2 connection: every extended CONNECT decided like an HTTP/1.1
/// upgrade; each WebSocket runs in a task of its own, echo or room as on
/// HTTP/1.1 ([`serve_ws`]).
async fn http2<S>(io: S, peer: SocketAddr, id: u64, server: &Arc<Server>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // `serve_connection` calls `decide`, then (on an accept) the handler:
    // the path goes from one to the other here.
    let path = Mutex::new(String::new());
    let streams = AtomicU64::new(0);
    let served = ws_tokio::h2::serve_connection(
        io,
        (*server.config).clone(),
        &ws_tokio::h2::Http2Options::default(),
        |req| {
            if let Ok(mut p) = path.lock() {
                p.clone_from(&req.path);
            }
            server.decide(id, req)
        },
        |ws| {
            let n = streams.fetch_add(1, Ordering::Relaxed) + 1;
            let path = path.lock().map(|p| p.clone()).unwrap_or_default();
            let label = format!("{path} (HTTP/2 stream {n})");
            let server = Arc::clone(server);
            tokio::spawn(async move { serve_ws(ws, &path, &label, peer, id, &server).await });
        },
    )
    .await;
    if let Err(e) = served {
        debug!("[ws#{id}] HTTP/2 connection with {peer} ended: {e}");
    }
}

/// The opening handshake, `prepare` on the open stream, then the echo or the
/// room ([`serve_ws`]).
async fn session<S>(
    io: S,
    peer: SocketAddr,
    id: u64,
    server: &Server,
    prepare: fn(&mut WebSocketStream<S>),
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut path = String::new();
    let accepted = ws_tokio::accept_with(io, server.config.clone(), |req| {
        path.clone_from(&req.path);
        server.decide(id, req)
    })
    .await;
    match accepted {
        Ok(mut ws) => {
            prepare(&mut ws);
            serve_ws(ws, &path, &path, peer, id, server).await
        }
        Err(e) => debug!("[ws#{id}] handshake with {peer} failed: {e}"),
    }
}

/// An open WebSocket: the open line, the echo or the room (`path`'s), the
/// close line (`label`: the path, and the HTTP/2 stream).
async fn serve_ws<S>(
    ws: WebSocketStream<S>,
    path: &str,
    label: &str,
    peer: SocketAddr,
    id: u64,
    server: &Server,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let negotiated = match ws.open_info() {
        Some(info) => crate::describe::negotiated(&info),
        None => crate::describe::negotiated_parts(None, None),
    };
    info!("[ws#{id}] open {label} from {peer} ({negotiated})");
    let closed = if server.broadcast {
        member(ws, &server.rooms.key(path), id, server).await
    } else {
        echo(ws).await
    };
    match closed {
        Some(c) => info!("[ws#{id}] closed: {}", crate::describe::closed(&c)),
        None => info!("[ws#{id}] closed"),
    }
}

/// Sends every message back until the stream ends; returns how it ended.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
) -> Option<ws_tokio::Closed> {
    while let Some(next) = ws.next().await {
        if let Ok(m) = next {
            // An error means the connection is closing: reading on shows
            // how it ends.
            let _ = ws.feed(m).await;
        }
    }
    ws.close_info()
}

/// A member of broadcast room `room` until its stream ends; returns how it
/// ended.
async fn member<S: AsyncRead + AsyncWrite + Unpin>(
    ws: WebSocketStream<S>,
    room: &str,
    id: u64,
    server: &Server,
) -> Option<ws_tokio::Closed> {
    let (tx, mut rx) = server.rooms.join(room);
    let (mut reader, mut writer) = ws.split();
    loop {
        tokio::select! {
            next = reader.next() => match next {
                Some(Ok(m)) => server.relay(room, &tx, id, m),
                Some(Err(_)) => {}
                None => break,
            },
            first = rx.recv() => {
                // Everything already waiting is fed before the next write
                // (written when the reader next waits for input).
                let mut next = first;
                for _ in 0..ROOM_QUEUE {
                    match next {
                        Ok((from, msg)) if from != id => {
                            let _ = writer.feed_prepared(msg).await;
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(n)) => server.lagged(id, n),
                        Err(RecvError::Closed) => break,
                    }
                    next = match rx.try_recv() {
                        Ok(m) => Ok(m),
                        Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                        Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                    };
                }
            }
        }
    }
    drop(rx);
    server.rooms.leave(room);
    reader.close_info()
}

impl Server {
    /// Sends `m` to every member of the room (`tx`) but `from`, and to the
    /// other servers' members of `room` through Redis (`--redis`).
    fn relay(&self, room: &str, tx: &RoomTx, from: u64, m: Message) {
        match PreparedMessage::new(m.kind, m.data.clone()) {
            // An error only means the room has no member left.
            Ok(msg) => drop(tx.send((from, msg))),
            Err(e) => return warn!("[ws#{from}] broadcast dropped: {e}"),
        }
        if let Some(redis) = &self.redis {
            // Full queue: counted and logged by the bridge.
            redis.publish(room, from, m.kind, m.data);
        }
    }

    /// Member `to` fell `n` messages behind the room and missed them.
    fn lagged(&self, to: u64, n: u64) {
        let logged = self
            .room_log
            .lock()
            .ok()
            .and_then(|mut l| l.check(Instant::now()));
        if let Some(more) = logged {
            warn!(
                "[ws#{to}] broadcast: missed {n} messages ({ROOM_QUEUE} kept for the slowest member){}",
                suppressed(more)
            );
        }
    }
}

/// Answers a client over the connection limit with 503 and `Retry-After`
/// (after its TLS handshake, for `wss://`), all within [`REJECT_TIMEOUT`].
async fn refuse(tcp: TcpStream, id: u64, server: &Server) {
    let config = server.config.clone();
    let decide = |_: &UpgradeRequest| Decision::Reject {
        status: 503,
        headers: vec![("Retry-After".to_string(), RETRY_AFTER_SECS.to_string())],
        body: b"server at its connection limit, retry later".to_vec(),
    };
    let answered = within(REJECT_TIMEOUT, async {
        let result = match &server.tls {
            None => ws_tokio::accept_with(tcp, config, decide).await.map(drop),
            Some(acceptor) => {
                let tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
                ws_tokio::accept_with(tls, config, decide).await.map(drop)
            }
        };
        result.map_err(|e| e.to_string())
    })
    .await;
    match answered {
        Err(e) => debug!("[ws#{id}] over the connection limit: {e}"),
        Ok(()) => debug!("[ws#{id}] over the connection limit, dropped"),
    }
}
