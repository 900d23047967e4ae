//! The blocking connection: [`WebSocket`] (what [`connect`](crate::connect)
//! and [`accept`](crate::accept) return) and its [`split`](WebSocket::split)
//! halves. The writer half holds everything that sends or reads state; a
//! `WebSocket` is a reader plus a writer and dereferences to the writer.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ws_proto::{
    CloseCode, Closed, Connection, Event, Fragment, Message, MessageKind, OpenInfo, State, Stats,
    UpgradeRequest,
};

use crate::driver::{Reader, Shared};
use crate::error::Error;
use crate::logctx::{wslog, ConnId};

/// What [`WebSocket::recv`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// A whole message.
    Message(Message),
    /// A data frame (only with `Config::streaming`).
    Fragment(Fragment),
    /// A ping (already answered when `Config::auto_pong` is on).
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// The connection ended without error (closing handshake, or the peer's
    /// close frame then TCP close). Later calls return [`Error::Closed`].
    Closed(Closed),
}

/// A WebSocket connection over a `TcpStream`, used like one: `recv` blocks
/// until something arrives, `send` until the bytes are written.
///
/// `recv` also runs the protocol's timers (keepalive pings, idle, close
/// timeouts): their next deadline is the socket's read timeout. A
/// connection that is never read from does not answer pings.
///
/// A connection ends with `Ok(Received::Closed(..))` when it closed without
/// error, or with `Err(e)` saying what went wrong; either way later calls
/// return [`Error::Closed`].
pub struct WebSocket {
    reader: WsReader,
    writer: WsWriter,
    info: OpenInfo,
    request: Option<UpgradeRequest>,
    tls_server_name: Option<String>,
}

/// The reading half of a [`split`](WebSocket::split) connection.
pub struct WsReader {
    shared: Arc<Shared>,
    reader: Reader,
}

/// The writing half of a [`split`](WebSocket::split) connection; clone it to
/// send from several threads. A [`WebSocket`] dereferences to its writer:
/// every method here is a `WebSocket`'s too.
pub struct WsWriter {
    shared: Arc<Shared>,
}

impl WebSocket {
    /// The open connection, from the handshake's parts.
    pub(crate) fn new(
        shared: Arc<Shared>,
        reader: Reader,
        info: OpenInfo,
        request: Option<UpgradeRequest>,
        tls_server_name: Option<String>,
    ) -> WebSocket {
        WebSocket {
            reader: WsReader {
                shared: shared.clone(),
                reader,
            },
            writer: WsWriter { shared },
            info,
            request,
            tls_server_name,
        }
    }

    /// Waits for the next message, fragment, ping, pong, or the end of the
    /// connection.
    pub fn recv(&mut self) -> Result<Received, Error> {
        self.reader.recv()
    }

    /// Splits the connection into a reader and a writer that can be used
    /// from two threads: a reader blocked in `recv` never holds a lock, so
    /// the writer is never blocked by it. For `wss://` both share one rustls
    /// session behind a lock that is never held during socket IO.
    pub fn split(self) -> (WsReader, WsWriter) {
        self.writer.shared.mark_concurrent();
        (self.reader, self.writer)
    }

    /// A writer for this connection, usable from other threads while this
    /// one reads (equivalent to the writer of [`split`](Self::split), and to
    /// `self.clone()`, which this type's [`Deref`] to [`WsWriter`] makes).
    pub fn writer(&mut self) -> WsWriter {
        self.writer.clone()
    }

    /// What was agreed in the handshake (subprotocol, extensions, and for a
    /// client the response headers).
    pub fn open_info(&self) -> &OpenInfo {
        &self.info
    }

    /// Server side: the client's upgrade request.
    pub fn request(&self) -> Option<&UpgradeRequest> {
        self.request.as_ref()
    }

    /// Server side over TLS: the SNI name the client asked for.
    pub fn tls_server_name(&self) -> Option<&str> {
        self.tls_server_name.as_deref()
    }
}

/// Everything that sends or reads the connection's state (`send*`, `ping`,
/// `pong`, `close`, `state`, `buffered_amount`, `stats`, `id`...) is
/// [`WsWriter`]'s, reached through this: a `WebSocket` is its reader plus
/// its writer, and writes the way its split writer does.
impl Deref for WebSocket {
    type Target = WsWriter;

    fn deref(&self) -> &WsWriter {
        &self.writer
    }
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("id", &self.id())
            .field("state", &self.state())
            .field("protocol", &self.info.protocol)
            .finish_non_exhaustive()
    }
}

impl WsReader {
    /// Waits for the next message, fragment, ping, pong, or the end of the
    /// connection (see [`WebSocket::recv`]).
    pub fn recv(&mut self) -> Result<Received, Error> {
        // Each round returns unless the core hands out an event this API
        // does not surface (none after the handshake).
        loop {
            let Some(ev) = self.reader.next_event(&self.shared) else {
                return Err(Error::Closed);
            };
            return Ok(match ev {
                Event::Message(m) => Received::Message(m),
                Event::Fragment(f) => Received::Fragment(f),
                Event::Ping(p) => Received::Ping(p),
                Event::Pong(p) => Received::Pong(p),
                Event::Closed(c) => {
                    let detail = self.shared.stack().take_failure();
                    self.shared.finish(Duration::from_millis(100));
                    return match Error::from_closed(&c, detail) {
                        Some(e) => Err(e),
                        None => Ok(Received::Closed(c)),
                    };
                }
                _ => continue,
            });
        }
    }

    /// The connection id.
    pub fn id(&self) -> ConnId {
        self.shared.id
    }

    /// Fails the connection after a panic in application code (see
    /// [`Shared::fail`]).
    pub(crate) fn fail(&mut self, limit: Duration) {
        self.shared.fail(&mut self.reader, limit);
    }
}

impl fmt::Debug for WsReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsReader")
            .field("id", &self.shared.id)
            .finish_non_exhaustive()
    }
}

impl WsWriter {
    /// Sends a whole message (split into frames of `Config::fragment_size`);
    /// returns once it is written (or queued behind another thread's write).
    pub fn send(&self, kind: MessageKind, data: impl Into<Bytes>) -> Result<(), Error> {
        let data = data.into();
        self.command(|c| c.send(kind, data))
    }

    /// Sends a text message.
    pub fn send_text(&self, text: &str) -> Result<(), Error> {
        self.command(|c| c.send_text(text))
    }

    /// Sends a binary message.
    pub fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        let data = data.into();
        self.command(|c| c.send_binary(data))
    }

    /// Sends one fragment of a message (see [`Connection::send_fragment`]).
    pub fn send_fragment(
        &self,
        kind: MessageKind,
        data: impl Into<Bytes>,
        fin: bool,
    ) -> Result<(), Error> {
        let data = data.into();
        self.command(|c| c.send_fragment(kind, data, fin))
    }

    /// Sends a ping.
    pub fn ping(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        self.command(|c| c.ping(payload))
    }

    /// Sends an unsolicited pong.
    pub fn pong(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        self.command(|c| c.pong(payload))
    }

    /// Starts the closing handshake; keep calling `recv` (on the
    /// [`WebSocket`] or its [`WsReader`]) until it returns the end of the
    /// connection.
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        wslog!(Debug, self.shared.id, "closing with {code} {reason:?}");
        self.command(|c| c.close(code, reason))
    }

    fn command(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<(), ws_proto::Error>,
    ) -> Result<(), Error> {
        self.shared
            .step(true, |stack, _| f(&mut stack.conn))
            .map_err(Error::from)
    }

    /// The connection's life-cycle state.
    pub fn state(&self) -> State {
        self.shared.stack().conn.state()
    }

    /// Whether messages can be sent.
    pub fn is_open(&self) -> bool {
        self.state() == State::Open
    }

    /// Payload bytes accepted by `send` and not yet handed to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.shared.stack().conn.buffered_amount()
    }

    /// Bytes of receive memory the core holds for this connection (its
    /// receive and reassembly buffers, [`Connection::retained_bytes`]):
    /// bounded by the [`Limits`](ws_proto::Limits) whatever the peer sends.
    /// The driver adds at most a 16 KiB read buffer and the 64 KiB wire
    /// queue.
    pub fn retained_bytes(&self) -> usize {
        self.shared.stack().conn.retained_bytes()
    }

    /// The latest ping round trip.
    pub fn latency(&self) -> Option<Duration> {
        self.shared.stack().conn.latency()
    }

    /// When the last frame arrived.
    pub fn last_message_received(&self) -> Option<Instant> {
        self.shared.stack().conn.last_message_received()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.shared.stack().conn.stats()
    }

    /// The connection id shown on its log lines (`[ws#N]`).
    pub fn id(&self) -> ConnId {
        self.shared.id
    }

    pub(crate) fn shared_arc(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

impl Clone for WsWriter {
    /// Another handle on the same connection, for another thread. From now
    /// on the connection's reader waits on the socket at most 100 ms at a
    /// time, so it sees the deadlines (a close timeout) and the events that
    /// the other thread causes.
    fn clone(&self) -> Self {
        self.shared.mark_concurrent();
        WsWriter {
            shared: self.shared.clone(),
        }
    }
}

impl fmt::Debug for WsWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsWriter")
            .field("id", &self.shared.id)
            .finish_non_exhaustive()
    }
}
