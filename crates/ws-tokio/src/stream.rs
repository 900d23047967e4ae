//! [`WebSocketStream`] (a `Stream` and a `Sink` of messages) and its two halves.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use ws_proto::upgrade::Upgraded;
use ws_proto::{Bytes, CloseCode, Closed, Config, Connection, Message, OpenInfo, PreparedMessage};

use crate::driver::{now, Inner, Outgoing, Role, Until};
use crate::Error;

/// The connection behind a stream or its halves. One lock: whichever half polls drives the
/// connection for both, through the single routine in `driver`.
struct Shared<S>(Arc<Mutex<Inner<S>>>);

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, Inner<S>> {
        // A panic elsewhere while the lock was held leaves a consistent core (it never panics
        // half-way through a state change on our inputs), so keep going.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Shared<S> {
    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        let mut g = self.lock();
        if g.next.is_none() && g.poll_until(cx, Until::Message, Role::Read).is_pending() {
            return Poll::Pending;
        }
        if let Some(m) = g.next.take() {
            return Poll::Ready(Some(Ok(m)));
        }
        // Closed: an abnormal end is reported once, then the stream ends.
        if !g.error_reported {
            g.error_reported = true;
            if let Some(e) = g.closed.as_ref().and_then(|c| c.error.clone()) {
                return Poll::Ready(Some(Err(Error::Connection(e))));
            }
        }
        Poll::Ready(None)
    }

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut g = self.lock();
        if g.poll_until(cx, Until::Room, Role::Write).is_pending() {
            return Poll::Pending;
        }
        if g.closed.is_some() {
            return Poll::Ready(Err(Error::Closed));
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(&self, m: Outgoing) -> Result<(), Error> {
        let mut g = self.lock();
        if g.closed.is_some() {
            return Err(Error::Closed);
        }
        if g.pending.is_some() {
            // `poll_ready` was not awaited: the one slot is taken.
            return Err(Error::Command(ws_proto::Error::Backpressure {
                buffered_amount: g.conn.buffered_amount(),
                limit: g.queue_limit,
            }));
        }
        if !g.fits(m.len()) {
            // Over the core's queue limit: held here (one message) and pushed in first when
            // the queue has drained; `poll_ready` stays pending until then.
            g.pending = Some(m);
            return Ok(());
        }
        m.send(&mut g.conn).map_err(refused)
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let mut g = self.lock();
        if g.poll_until(cx, Until::Flushed, Role::Write).is_pending() {
            return Poll::Pending;
        }
        if g.closed.is_some() && (g.pending.is_some() || g.conn.buffered_amount() > 0) {
            return Poll::Ready(Err(Error::Closed));
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(&self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        {
            let mut g = self.lock();
            if g.pending.is_none() && g.conn.is_open() {
                // Only fails when no longer open, which was just checked.
                g.local_close = true;
                let _ = g.conn.close(CloseCode::NORMAL, "");
            }
        }
        match self.poll_flush(cx) {
            Poll::Ready(Err(Error::Closed)) => Poll::Ready(Ok(())),
            other => other,
        }
    }

    async fn ping(&self, payload: Bytes) -> Result<(), Error> {
        self.command(|c| c.ping(payload))?;
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    async fn close_with(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.command(|c| c.close(code, reason))?;
        self.lock().local_close = true;
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    fn command(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<(), ws_proto::Error>,
    ) -> Result<(), Error> {
        let mut g = self.lock();
        if g.closed.is_some() {
            return Err(Error::Closed);
        }
        f(&mut g.conn).map_err(refused)
    }

    async fn closed(&self) -> Closed {
        poll_fn(|cx| {
            let mut g = self.lock();
            // Ready only once `closed` is set; pending with the wakers registered otherwise.
            let _ = g.poll_until(cx, Until::Closed, Role::Read);
            match g.closed.clone() {
                Some(c) => Poll::Ready(c),
                None => Poll::Pending,
            }
        })
        .await
    }

    fn close_info(&self) -> Option<Closed> {
        self.lock().closed.clone()
    }

    fn open_info(&self) -> Option<OpenInfo> {
        self.lock().open.as_deref().cloned()
    }

    fn with_connection<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        f(&self.lock().conn)
    }

    fn with_io<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&self.lock().io)
    }

    fn set_send_high_water(&self, bytes: usize) {
        self.lock().high_water = bytes.max(1);
    }
}

/// A command the core refused: "not open any more" is [`Error::Closed`], the rest is the core's.
fn refused(e: ws_proto::Error) -> Error {
    match e {
        ws_proto::Error::InvalidState { .. } => Error::Closed,
        e => Error::Command(e),
    }
}

/// A WebSocket connection over any tokio `AsyncRead + AsyncWrite` stream: a [`Stream`] of
/// received messages and a [`Sink`] of messages to send.
///
/// - **Receiving**: `next().await` yields each text or binary message (`Ok`). Pings are
///   answered and pongs matched by the core. The stream ends (`None`) when the connection is
///   closed; an abnormal end (protocol error, timeout, lost transport) is first yielded once
///   as `Err(`[`Error::Connection`]`)`. [`close_info`](Self::close_info) gives the close code,
///   reason and who started it.
/// - **Sending**: the sink queues messages in the core. `feed` does not write; `send`,
///   `flush`, or the next wait for a message (`next()` with nothing left to read) writes
///   everything queued in as few socket writes as possible. The sink stops being ready while
///   [`set_send_high_water`](Self::set_send_high_water) bytes (64 KiB by default) are queued
///   and the socket does not take them; a message over the core's `max_send_queue` waits in a
///   one-message slot. Memory stays bounded when the peer stops reading.
/// - **Closing**: `SinkExt::close` (code 1000) or [`close_with`](Self::close_with) starts the
///   closing handshake; keep reading until `None` to see it complete.
/// - **Keepalive and timeouts**: the core's `ping_interval`, `idle_timeout`, `close_timeout`
///   and `handshake_timeout` (in [`Config`]) run on `tokio::time` — they fire while some task
///   polls the stream or a half (reading, or waiting to send).
///
/// It needs a tokio runtime with time enabled. [`split`](Self::split) gives two halves for two
/// tasks.
pub struct WebSocketStream<S> {
    shared: Shared<S>,
}

impl<S> std::fmt::Debug for WebSocketStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketStream")
            .field("inner", &*self.shared.lock())
            .finish()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketStream<S> {
    /// Runs `f` on the connection state, under its lock.
    pub(crate) fn with_inner<R>(&mut self, f: impl FnOnce(&mut Inner<S>) -> R) -> R {
        f(&mut self.shared.lock())
    }

    /// The stream over a connection whose handshake is done: the write buffer that carried
    /// the handshake is freed (an idle connection holds none; the first message makes it).
    pub(crate) fn from_inner(mut inner: Inner<S>) -> Self {
        inner.release_write_buffer();
        WebSocketStream {
            shared: Shared(Arc::new(Mutex::new(inner))),
        }
    }

    /// A connection that is already open over `io`, for a stream another HTTP stack upgraded:
    /// `upgraded` comes from [`ws_proto::upgrade::ServerUpgrade::accept`] or
    /// [`ws_proto::upgrade::ClientUpgrade::finish`] (the `hyper` feature does this for hyper).
    pub fn from_upgraded(io: S, config: Config, upgraded: Upgraded) -> Self {
        let config = config.streaming(false);
        let limit = config.limits.max_send_queue;
        let conn = Connection::upgraded(config, upgraded, now());
        let mut inner = Inner::new(io, conn, limit);
        // Take `Open` now: the stream starts with the first message.
        inner.pull_events();
        WebSocketStream::from_inner(inner)
    }

    /// Splits into a reader half (the [`Stream`]) and a writer half (the [`Sink`], pings,
    /// closing), usable from two tasks. Both share the connection behind one lock; whichever
    /// half polls drives it, and the socket and the timer wake both halves. Put them back
    /// together with [`WebSocketReader::reunite`].
    pub fn split(self) -> (WebSocketReader<S>, WebSocketWriter<S>) {
        self.shared.lock().split = true;
        let shared = Shared(Arc::clone(&self.shared.0));
        (
            WebSocketReader { shared },
            WebSocketWriter {
                shared: self.shared,
            },
        )
    }

    /// Sends a ping (at most 125 bytes) and writes it out; the pong's round trip becomes
    /// [`Connection::latency`] (see [`with_connection`](Self::with_connection)).
    pub async fn ping(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.shared.ping(payload.into()).await
    }

    /// Starts the closing handshake with `code` and `reason` (at most 123 bytes) and writes
    /// everything queued and the close frame. Keep reading the stream until it ends to let the
    /// handshake complete.
    pub async fn close_with(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.shared.close_with(code, reason).await
    }

    /// Drives the connection until it has closed, dropping messages that still arrive, and
    /// returns how it ended.
    pub async fn closed(&mut self) -> Closed {
        // Messages still arriving are dropped so the closing handshake can complete.
        loop {
            let next = poll_fn(|cx| self.shared.poll_next(cx)).await;
            if next.is_none() {
                break;
            }
        }
        self.shared.closed().await
    }

    /// How the connection ended (code, reason, initiator, clean, error), once it has.
    pub fn close_info(&self) -> Option<Closed> {
        self.shared.close_info()
    }

    /// What the handshake agreed (subprotocol, extensions; the client also gets the response
    /// headers).
    pub fn open_info(&self) -> Option<OpenInfo> {
        self.shared.open_info()
    }

    /// Reads the core's getters: [`Connection::latency`], [`Connection::stats`],
    /// [`Connection::buffered_amount`], [`Connection::subprotocol`], [`Connection::state`]...
    pub fn with_connection<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        self.shared.with_connection(f)
    }

    /// Reads the stream under the connection (addresses, TLS state, the HTTP version of a
    /// `ws_tokio::h2::Transport`...). Do not read or write it: the driver owns its bytes.
    pub fn with_io<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        self.shared.with_io(f)
    }

    /// The sink is ready while fewer than `bytes` payload bytes are queued (default 64 KiB).
    /// Higher batches more and holds more memory.
    pub fn set_send_high_water(&mut self, bytes: usize) {
        self.shared.set_send_high_water(bytes);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + std::os::fd::AsFd> WebSocketStream<S> {
    /// For a stream that **is** a plain TCP socket (`tokio::net::TcpStream`, not TLS: under TLS
    /// the bytes on the socket are not the frame's): while a large frame arrives, the task is
    /// woken once the rest of it is there, not for every piece of it (the socket's receive
    /// low-water mark, see `ws_net::low_water`; Linux). One wake-up per 1 MiB message instead
    /// of about a dozen. The core's timers still see what arrived.
    /// [`connect`](crate::connect) does this for `ws://` connections.
    ///
    /// ```no_run
    /// # async fn f(tcp: tokio::net::TcpStream) -> Result<(), ws_tokio::Error> {
    /// let mut ws = ws_tokio::accept(tcp).await?;
    /// ws.wake_on_whole_frames();
    /// # Ok(()) }
    /// ```
    pub fn wake_on_whole_frames(&mut self) {
        self.shared.lock().socket = Some(crate::driver::whole_socket::<S>);
    }
}

/// `Stream` of messages for a type whose `shared` field reads (the whole stream, the reader
/// half): one implementation, [`Shared::poll_next`].
macro_rules! read_half {
    ($t:ident) => {
        impl<S: AsyncRead + AsyncWrite + Unpin> Stream for $t<S> {
            type Item = Result<Message, Error>;

            fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
                self.shared.poll_next(cx)
            }
        }
    };
}

/// `Sink` of messages for a type whose `shared` field writes (the whole stream, the writer
/// half): one implementation, [`Shared`]'s.
macro_rules! write_half {
    ($t:ident) => {
        impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for $t<S> {
            type Error = Error;

            fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
                self.shared.poll_ready(cx)
            }

            fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
                self.shared.start_send(Outgoing::One(item))
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
                self.shared.poll_flush(cx)
            }

            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
                self.shared.poll_close(cx)
            }
        }

        impl<S: AsyncRead + AsyncWrite + Unpin> $t<S> {
            /// Queues a message prepared once for many connections (a broadcast; see
            /// [`PreparedMessage`]: the payload is shared, and compressed once for every
            /// connection whose deflate parameters allow it), after waiting for the sink's
            /// readiness, without flushing (as `SinkExt::feed` does for a [`Message`]).
            pub async fn feed_prepared(&mut self, msg: PreparedMessage) -> Result<(), Error> {
                poll_fn(|cx| self.shared.poll_ready(cx)).await?;
                self.shared.start_send(Outgoing::Prepared(msg))
            }

            /// [`feed_prepared`](Self::feed_prepared), then waits until everything queued
            /// is written (as `SinkExt::send` does for a [`Message`]).
            pub async fn send_prepared(&mut self, msg: PreparedMessage) -> Result<(), Error> {
                self.feed_prepared(msg).await?;
                poll_fn(|cx| self.shared.poll_flush(cx)).await
            }
        }
    };
}

read_half!(WebSocketStream);
write_half!(WebSocketStream);

/// The receiving half of a split [`WebSocketStream`]: a [`Stream`] of messages.
pub struct WebSocketReader<S> {
    shared: Shared<S>,
}

/// The sending half of a split [`WebSocketStream`]: a [`Sink`] of messages, pings, closing.
pub struct WebSocketWriter<S> {
    shared: Shared<S>,
}

impl<S> std::fmt::Debug for WebSocketReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketReader").finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for WebSocketWriter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketWriter").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketReader<S> {
    /// Puts the halves back together; gives them back if they come from different streams.
    #[allow(clippy::result_large_err)]
    pub fn reunite(
        self,
        writer: WebSocketWriter<S>,
    ) -> Result<WebSocketStream<S>, (WebSocketReader<S>, WebSocketWriter<S>)> {
        if !Arc::ptr_eq(&self.shared.0, &writer.shared.0) {
            return Err((self, writer));
        }
        drop(writer);
        self.shared.lock().split = false;
        Ok(WebSocketStream {
            shared: self.shared,
        })
    }

    /// How the connection ended, once it has.
    pub fn close_info(&self) -> Option<Closed> {
        self.shared.close_info()
    }

    /// Reads the core's getters (see [`WebSocketStream::with_connection`]).
    pub fn with_connection<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        self.shared.with_connection(f)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketWriter<S> {
    /// Sends a ping and writes it out (see [`WebSocketStream::ping`]).
    pub async fn ping(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.shared.ping(payload.into()).await
    }

    /// Starts the closing handshake (see [`WebSocketStream::close_with`]); the reader half sees
    /// the stream end when it completes.
    pub async fn close_with(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.shared.close_with(code, reason).await
    }

    /// How the connection ended, once it has.
    pub fn close_info(&self) -> Option<Closed> {
        self.shared.close_info()
    }

    /// Reads the core's getters (see [`WebSocketStream::with_connection`]).
    pub fn with_connection<R>(&self, f: impl FnOnce(&Connection) -> R) -> R {
        self.shared.with_connection(f)
    }

    /// See [`WebSocketStream::set_send_high_water`].
    pub fn set_send_high_water(&mut self, bytes: usize) {
        self.shared.set_send_high_water(bytes);
    }
}

read_half!(WebSocketReader);
write_half!(WebSocketWriter);
