//! The application's view of its loop during a callback.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ws_buf::BufferPool;
use ws_proto::{Accept, Bytes, CloseCode, Connection, MessageKind, PreparedMessage, State};

use crate::error::Error;
use crate::handle::Handle;
use crate::id::ConnId;
use crate::options::ConnectOptions;
use crate::sessions::Session;
use crate::state::{LoopState, LoopStats};

/// Access to the loop from inside a [`Handler`](crate::Handler) callback or
/// a task run with [`Handle::run_on`]: send, ping, close, accept, connect,
/// and read any connection's state.
///
/// Commands take effect once the callback returns: the loop then writes
/// what they queued (every command on every connection, in order).
pub struct Ctx<'a> {
    state: &'a mut LoopState,
    handle: &'a Handle,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(state: &'a mut LoopState, handle: &'a Handle) -> Ctx<'a> {
        Ctx { state, handle }
    }

    /// Queues a message for `id`. A full send queue gives
    /// [`Error::Command`]`(`[`ws_proto::Error::Backpressure`]`)` (see
    /// [`Error::is_backpressure`]) and, once per episode,
    /// [`Handler::on_backpressure`](crate::Handler::on_backpressure).
    pub fn send(
        &mut self,
        id: ConnId,
        kind: MessageKind,
        data: impl Into<Bytes>,
    ) -> Result<(), Error> {
        self.state.send(id, kind, data.into())
    }

    /// Queues a prepared message for `id`: the payload is shared, and
    /// compressed once per set of compatible deflate parameters however many
    /// connections it is sent to (see [`PreparedMessage`]); for a message
    /// to some of the loop's connections (a room), where
    /// [`broadcast_prepared`](Ctx::broadcast_prepared) would reach them all.
    /// Errors as [`send`](Ctx::send).
    pub fn send_prepared(&mut self, id: ConnId, msg: &PreparedMessage) -> Result<(), Error> {
        self.state.send_prepared(id, msg)
    }

    /// Queues a text message.
    pub fn send_text(&mut self, id: ConnId, text: &str) -> Result<(), Error> {
        self.state.send_text(id, text)
    }

    /// Queues a binary message.
    pub fn send_binary(&mut self, id: ConnId, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send(id, MessageKind::Binary, data)
    }

    /// Sends `data` to every open connection of this loop (the payload is
    /// shared, not copied); returns how many connections took it. Text that
    /// is not UTF-8 is sent to none.
    pub fn broadcast(&mut self, kind: MessageKind, data: impl Into<Bytes>) -> usize {
        match PreparedMessage::new(kind, data) {
            Ok(msg) => self.state.broadcast(&msg, None),
            Err(_) => 0,
        }
    }

    /// Sends a prepared message to every open connection of this loop but
    /// `except` (the payload shared, compressed once per set of compatible
    /// deflate parameters: see [`PreparedMessage`]); returns how many
    /// connections took it.
    pub fn broadcast_prepared(&mut self, msg: &PreparedMessage, except: Option<ConnId>) -> usize {
        self.state.broadcast(msg, except)
    }

    /// Sends a prepared message to every open connection of every loop of
    /// the group but `except`: to this loop's connections at once (their
    /// writes go out together after the current callback), to the other
    /// loops' through their command queues. Returns how many of this loop's
    /// connections took it; `Err` when another loop's queue was full.
    ///
    /// ```no_run
    /// use ws_mio::ws_proto::{Message, PreparedMessage};
    /// use ws_mio::{ConnId, Ctx, Handler};
    ///
    /// /// A chat room: every message goes to everybody else, on every loop.
    /// struct Room;
    ///
    /// impl Handler for Room {
    ///     fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
    ///         if let Ok(msg) = PreparedMessage::new(m.kind, m.data) {
    ///             let _ = ctx.broadcast_group(&msg, Some(id));
    ///         }
    ///     }
    /// }
    /// ```
    pub fn broadcast_group(
        &mut self,
        msg: &PreparedMessage,
        except: Option<ConnId>,
    ) -> Result<usize, Error> {
        let here = self.state.broadcast(msg, except);
        let index = self.loop_index();
        self.handle
            .broadcast_deferred(msg, except, index, &mut self.state.deferred_wakes)
            .map(|()| here)
    }

    /// Queues a ping.
    pub fn ping(&mut self, id: ConnId, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.state.ping(id, payload.into())
    }

    /// Starts the closing handshake of `id`.
    pub fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.state.close(id, code, reason)
    }

    /// Accepts an upgrade request that was answered with
    /// [`Decision::Defer`](crate::Decision::Defer).
    pub fn accept(&mut self, id: ConnId, accept: Accept) -> Result<(), Error> {
        self.state.accept(id, accept)
    }

    /// Refuses an upgrade request that was answered with
    /// [`Decision::Defer`](crate::Decision::Defer).
    pub fn reject(
        &mut self,
        id: ConnId,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<(), Error> {
        self.state.reject(id, status, &headers, &body)
    }

    /// Opens a client connection to a `ws://` or `wss://` URL on this loop.
    /// The id is valid at once; [`on_open`](crate::Handler::on_open) or
    /// [`on_close`](crate::Handler::on_close) follows. Resolving a host
    /// name blocks the loop: pass [`ConnectOptions::addr`] or an IP URL to
    /// avoid that.
    pub fn connect(&mut self, url: &str, options: ConnectOptions) -> Result<ConnId, Error> {
        self.state.connect(url, options)
    }

    /// The protocol core of `id`, for its getters (`state`, `buffered_amount`,
    /// `subprotocol`, `latency`, `stats`...).
    pub fn connection(&self, id: ConnId) -> Option<&Connection> {
        self.state.sessions.get(id).map(|s| &s.conn)
    }

    /// The life-cycle state of `id`.
    pub fn state(&self, id: ConnId) -> Option<State> {
        self.connection(id).map(Connection::state)
    }

    /// Payload bytes queued for `id` and not yet handed to the transport.
    pub fn buffered_amount(&self, id: ConnId) -> Option<usize> {
        self.connection(id).map(Connection::buffered_amount)
    }

    /// Bytes of buffer memory held for `id`: the core's receive buffers
    /// ([`Connection::retained_bytes`]) plus an unwritten remainder. Zero for
    /// an idle connection whose core holds nothing.
    pub fn retained_bytes(&self, id: ConnId) -> Option<usize> {
        self.state.sessions.get(id).map(Session::retained_bytes)
    }

    /// The peer's address.
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.state
            .sessions
            .get(id)
            .and_then(|s| s.transport.socket().peer_addr().ok())
    }

    /// Ids of every connection of this loop.
    pub fn connection_ids(&self) -> Vec<ConnId> {
        self.state.sessions.ids(false)
    }

    /// How many connections this loop holds.
    pub fn connection_count(&self) -> usize {
        self.state.sessions.held()
    }

    /// This loop's index in its group (0 when alone).
    pub fn loop_index(&self) -> usize {
        usize::from(self.state.index)
    }

    /// The loop's current time (read once per iteration).
    pub fn now(&self) -> Instant {
        self.state.now
    }

    /// A handle to this loop (and the rest of its group).
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The loop's buffer pool.
    pub fn pool(&self) -> &BufferPool {
        &self.state.options.pool
    }

    /// The loop's counters.
    pub fn loop_stats(&self) -> LoopStats {
        self.state.stats
    }

    /// Starts a graceful shutdown of this loop once the callback returns
    /// (see [`Handle::shutdown`]).
    pub fn shutdown(&mut self, grace: Duration) {
        self.state.want_shutdown = Some(grace);
    }

    /// Stops this loop once the callback returns (see [`Handle::stop`]).
    pub fn stop(&mut self) {
        self.state.want_stop = true;
    }
}
