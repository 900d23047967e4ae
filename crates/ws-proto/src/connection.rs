//! The connection state machine.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::deflate::{self, Compressor, Decompressor, DeflateParams, InflateError};
use crate::frame::{FrameError, FrameHeader, OpCode};
use crate::handshake;
use crate::mask::{apply_mask, copy_masked};
use crate::utf8::Utf8Validator;
use crate::{
    ClientRequest, CloseCode, Closed, Config, ConnectionError, Error, Event, Fragment,
    HandshakeError, Initiator, Message, MessageKind, OpenInfo, ProtocolError,
};

/// Which end of the connection we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// We sent the upgrade request; we mask our frames.
    Client,
    /// We answered the upgrade request; the peer masks its frames.
    Server,
}

/// The connection's life cycle, as an application sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// The opening handshake is in progress.
    Connecting,
    /// Messages may be sent and received.
    Open,
    /// A close frame was sent or received, or the connection is failing.
    Closing,
    /// The terminal [`Event::Closed`] has been emitted.
    Closed,
}

/// What [`Connection::poll_transmit`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// This many bytes were written to the start of the buffer; send them.
    Data(usize),
    /// Everything has been handed out: shut down the transport's write side
    /// (TCP FIN). Keep reading until the peer closes or `Closed` arrives.
    Shutdown,
}

/// Counters of what crossed the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Complete data messages received.
    pub messages_in: u64,
    /// Data messages queued by `send` (or finished by `send_fragment`).
    pub messages_out: u64,
    /// Frames received, control frames included.
    pub frames_in: u64,
    /// Frames handed out, control frames included.
    pub frames_out: u64,
    /// Bytes received (handshake included).
    pub bytes_in: u64,
    /// Bytes handed out (handshake included).
    pub bytes_out: u64,
}

/// How a server answers an upgrade request (see [`Connection::accept`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Accept {
    /// The chosen subprotocol; must be one the client offered.
    pub protocol: Option<String>,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
}

impl Accept {
    /// Accept without a subprotocol or extra headers.
    pub fn new() -> Self {
        Self::default()
    }
    /// Picks a subprotocol.
    pub fn protocol(mut self, p: impl Into<String>) -> Self {
        self.protocol = Some(p.into());
        self
    }
    /// Adds a response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// One WebSocket connection, client or server side: the HTTP upgrade, then
/// the frame protocol. It performs no IO and reads no clock.
///
/// Its methods come in four kinds:
///
/// - **Getters** (`&self`): [`side`](Self::side), [`state`](Self::state),
///   [`is_open`](Self::is_open), [`buffered_amount`](Self::buffered_amount),
///   [`subprotocol`](Self::subprotocol), [`extensions`](Self::extensions),
///   [`stats`](Self::stats), [`latency`](Self::latency),
///   [`last_message_received`](Self::last_message_received),
///   [`wants_transmit`](Self::wants_transmit), [`retained_bytes`](Self::retained_bytes).
/// - **Inputs** `handle_*(now, ..)` return nothing: a misbehaving peer shows
///   up as events and a queued close frame, never as an `Err`.
/// - **Commands** are verbs ([`send`](Self::send), [`send_fragment`](Self::send_fragment),
///   [`ping`](Self::ping), [`close`](Self::close), [`accept`](Self::accept),
///   [`reject`](Self::reject)). They fail only for local misuse or
///   backpressure, and use the time of the latest input or poll.
/// - **Outputs** `poll_*`: [`poll_transmit`](Self::poll_transmit),
///   [`poll_event`](Self::poll_event), [`poll_timeout`](Self::poll_timeout).
///
/// After any input or command: drain `poll_transmit` until `None`, drain
/// `poll_event` until `None`, read `poll_timeout`, then wait for IO.
pub struct Connection {
    side: Side,
    cfg: Config,
    rng: StdRng,
    now: Instant,
    hs: Handshake,

    // Receiving.
    rbuf: BytesMut,
    /// Reassembly (fragmented messages) and inflate output, reused from
    /// message to message; taken into `msg.buf` while a message is built.
    asm: BytesMut,
    /// Compressed output of `send`, reused from message to message.
    zbuf: BytesMut,
    /// The largest size each of `rbuf`, `asm`, `zbuf` reached since it was
    /// last freed (their allocations may be shared with delivered messages,
    /// so `capacity()` alone undercounts).
    buf_sizes: [usize; 3],
    /// Room asked of each of those buffers since its allocation was last
    /// made or reclaimed (see `reserve_reused`).
    epochs: [usize; 3],
    /// The latest input or send: buffers are freed a while after it.
    last_activity: Instant,
    rx_header: Option<FrameHeader>,
    rx_progress: usize,
    rx_validate: bool,
    msg: Option<InMessage>,
    input_closed: bool,

    // Sending.
    raw_out: Vec<u8>,
    raw_pos: usize,
    current: Option<OutFrame>,
    ctrl_q: VecDeque<OutFrame>,
    data_q: VecDeque<OutFrame>,
    pending_pongs: VecDeque<Bytes>,
    close_frame: Option<OutFrame>,
    tx_fragment: bool,
    buffered: usize,

    // Closing.
    close_queued: bool,
    close_sent: bool,
    close_received: Option<(CloseCode, String)>,
    /// Our close frame (an echo of the peer's close, or the one failing the
    /// connection) waits until the application has polled the events that
    /// arrived before it, so it can still answer them: the number of such
    /// events left, and the close frame's code and reason.
    echo_after_events: Option<(usize, Option<CloseCode>, String)>,
    failure: Option<ConnectionError>,
    initiator: Option<Initiator>,
    shutdown_pending: bool,
    drain_after_shutdown: bool,
    shutdown_sent: bool,
    eof_received: bool,
    closed_emitted: bool,

    // Timers and keepalive.
    handshake_deadline: Option<Instant>,
    close_deadline: Option<Instant>,
    next_ping: Option<Instant>,
    last_received: Option<Instant>,
    pings_out: VecDeque<(Bytes, Instant)>,
    ping_counter: u64,
    latency: Option<Duration>,

    events: VecDeque<Event>,
    stats: Stats,
    protocol: Option<String>,
    extensions: Option<String>,
    deflate: Option<DeflateState>,
}

enum Handshake {
    ClientAwaitResponse {
        accept: String,
        protocols: Vec<String>,
    },
    ClientReadBody {
        status: u16,
        reason: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        want: usize,
    },
    ServerAwaitRequest,
    ServerAwaitDecision {
        key: String,
        protocols: Vec<String>,
        deflate: Option<(DeflateParams, String)>,
    },
    Done,
    Failed,
}

struct InMessage {
    kind: MessageKind,
    compressed: bool,
    utf8: Utf8Validator,
    buf: BytesMut,
    frames: usize,
    size: usize,
}

struct OutFrame {
    head: [u8; FrameHeader::MAX_LEN],
    head_len: u8,
    payload: Bytes,
    mask: Option<[u8; 4]>,
    pos: usize,
    counted: bool,
    is_close: bool,
}

struct DeflateState {
    params: DeflateParams,
    compressor: Compressor,
    decompressor: Decompressor,
    threshold: usize,
}

/// At most this many pongs wait to be sent; older ones are dropped.
const MAX_PENDING_PONGS: usize = 16;
/// At most this many unanswered pings are remembered for latency matching.
const MAX_PINGS_TRACKED: usize = 16;
/// The start of a non-101 response body that is kept for the error.
const MAX_ERROR_BODY: usize = 1024;

impl Connection {
    // ----- construction -------------------------------------------------

    /// A client connection. The upgrade request is queued for
    /// [`poll_transmit`](Self::poll_transmit) at once.
    pub fn client(cfg: Config, request: &ClientRequest, now: Instant) -> Connection {
        let mut conn = Connection::new(Side::Client, cfg, now);
        let mut nonce = [0u8; 16];
        conn.rng.fill_bytes(&mut nonce);
        let key = handshake::encode_key(&nonce);
        let offer = conn
            .cfg
            .deflate
            .as_ref()
            .map(deflate::client_offer_header)
            .filter(|h| !h.is_empty());
        handshake::write_request(request, &key, offer.as_deref(), &mut conn.raw_out);
        conn.hs = Handshake::ClientAwaitResponse {
            accept: handshake::accept_key(key.as_bytes()),
            protocols: request.protocols.clone(),
        };
        conn
    }

    /// A server connection waiting for an upgrade request.
    pub fn server(cfg: Config, now: Instant) -> Connection {
        Connection::new(Side::Server, cfg, now)
    }

    fn new(side: Side, cfg: Config, now: Instant) -> Connection {
        let rng = match cfg.rng_seed {
            Some(seed) => StdRng::from_seed(seed),
            None => StdRng::from_os_rng(),
        };
        Connection {
            side,
            handshake_deadline: Some(now + cfg.handshake_timeout),
            cfg,
            rng,
            now,
            hs: Handshake::ServerAwaitRequest,
            rbuf: BytesMut::new(),
            asm: BytesMut::new(),
            zbuf: BytesMut::new(),
            buf_sizes: [0; 3],
            epochs: [0; 3],
            last_activity: now,
            rx_header: None,
            rx_progress: 0,
            rx_validate: false,
            msg: None,
            input_closed: false,
            raw_out: Vec::new(),
            raw_pos: 0,
            current: None,
            ctrl_q: VecDeque::new(),
            data_q: VecDeque::new(),
            pending_pongs: VecDeque::new(),
            close_frame: None,
            tx_fragment: false,
            buffered: 0,
            close_queued: false,
            close_sent: false,
            close_received: None,
            echo_after_events: None,
            failure: None,
            initiator: None,
            shutdown_pending: false,
            drain_after_shutdown: false,
            shutdown_sent: false,
            eof_received: false,
            closed_emitted: false,
            close_deadline: None,
            next_ping: None,
            last_received: None,
            pings_out: VecDeque::new(),
            ping_counter: 0,
            latency: None,
            events: VecDeque::new(),
            stats: Stats::default(),
            protocol: None,
            extensions: None,
            deflate: None,
        }
    }

    // ----- getters ------------------------------------------------------

    /// Client or server.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The life-cycle state.
    pub fn state(&self) -> State {
        if self.closed_emitted {
            State::Closed
        } else if !matches!(self.hs, Handshake::Done) {
            State::Connecting
        } else if self.close_queued
            || self.close_received.is_some()
            || self.failure.is_some()
            || self.shutdown_pending
            || self.shutdown_sent
        {
            State::Closing
        } else {
            State::Open
        }
    }

    /// Whether messages can be sent.
    pub fn is_open(&self) -> bool {
        self.state() == State::Open
    }

    /// Payload bytes accepted by `send` (after compression, headers not
    /// counted) that `poll_transmit` has not handed out yet. Without
    /// compression this is exactly the bytes passed to `send` minus those
    /// already on their way.
    pub fn buffered_amount(&self) -> usize {
        self.buffered
    }

    /// The agreed subprotocol.
    pub fn subprotocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The agreed `Sec-WebSocket-Extensions` value.
    pub fn extensions(&self) -> Option<&str> {
        self.extensions.as_deref()
    }

    /// The agreed permessage-deflate parameters.
    pub fn deflate_params(&self) -> Option<&DeflateParams> {
        self.deflate.as_ref().map(|d| &d.params)
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The latest ping round trip (a pong matched to our ping by payload).
    pub fn latency(&self) -> Option<Duration> {
        self.latency
    }

    /// When the last complete frame (data or control) arrived.
    pub fn last_message_received(&self) -> Option<Instant> {
        self.last_received
    }

    /// Whether `poll_transmit` has something to hand out (drivers use this to
    /// ask for writable readiness only when needed).
    pub fn wants_transmit(&self) -> bool {
        self.has_frames_or_raw() || self.shutdown_pending
    }

    /// Whether [`poll_event`](Self::poll_event) has an event. A driver that
    /// hands events to the application later (from another thread) should
    /// poll each one only when the application takes it: the peer's close
    /// is echoed once the events before it have been polled, so the
    /// application can still answer them.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Bytes of memory the connection currently holds in its buffers: the
    /// receive buffer, the reassembly/inflate buffer and the compression
    /// output buffer (each counted at the largest size it reached since it
    /// was last freed). Queued outgoing messages are counted by
    /// [`buffered_amount`](Self::buffered_amount) instead.
    ///
    /// While busy, the buffers are kept for reuse; they are freed
    /// [`Config::release_buffers_after`] after the last activity, or by
    /// [`release_buffers`](Self::release_buffers).
    pub fn retained_bytes(&self) -> usize {
        let building = self.msg.as_ref().map_or(0, |m| m.buf.capacity());
        let [r, a, z] = self.buf_sizes;
        r + a.max(building) + z
    }

    /// Frees the receive, reassembly and compression buffers now, where they
    /// hold no data (a partly received frame or message keeps its buffer).
    /// Drivers call this under memory pressure; otherwise the connection does
    /// it by itself after [`Config::release_buffers_after`] of quiet.
    pub fn release_buffers(&mut self) {
        if self.rbuf.is_empty() {
            self.rbuf = BytesMut::new();
            self.buf_sizes[0] = 0;
        }
        self.asm = BytesMut::new();
        self.buf_sizes[1] = 0;
        self.zbuf = BytesMut::new();
        self.buf_sizes[2] = 0;
    }

    /// When the buffers are due to be freed, if there is anything to free.
    fn buffer_release_at(&self) -> Option<Instant> {
        let [r, a, z] = self.buf_sizes;
        let releasable = (r > 0 && self.rbuf.is_empty()) || a > 0 || z > 0;
        (releasable && !self.cfg.release_buffers_after.is_zero())
            .then(|| self.last_activity + self.cfg.release_buffers_after)
    }

    /// Makes room in the receive buffer for `n` more bytes (see [`reserve_reused`]).
    fn make_room(&mut self, n: usize) {
        let ceiling = if matches!(self.hs, Handshake::Done) {
            self.cfg.limits.max_frame_payload + FrameHeader::MAX_LEN
        } else {
            self.cfg.limits.max_handshake_bytes
        };
        let (peak, epoch) = (&mut self.buf_sizes[0], &mut self.epochs[0]);
        reserve_reused(&mut self.rbuf, n, peak, epoch, ceiling);
    }

    // ----- inputs -------------------------------------------------------

    /// Feeds bytes received from the transport.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.now = now;
        self.stats.bytes_in += data.len() as u64;
        if self.closed_emitted || self.input_closed {
            return;
        }
        if let Handshake::ClientReadBody { body, want, .. } = &mut self.hs {
            let take = want.saturating_sub(body.len()).min(data.len());
            body.extend_from_slice(&data[..take]);
            if body.len() >= *want {
                self.finish_error_response();
            }
            return;
        }
        self.last_activity = now;
        let was_open = matches!(self.hs, Handshake::Done);
        self.make_room(data.len());
        self.rbuf.extend_from_slice(data);
        self.process();
        // The buffer is kept for the next input while the connection is busy
        // (its allocation is reclaimed once the application has dropped the
        // messages that share it: no allocation per message). The handshake
        // is not steady state, and with no release delay nothing is kept.
        if self.rbuf.is_empty() && (!was_open || self.cfg.release_buffers_after.is_zero()) {
            self.rbuf = BytesMut::new();
            self.buf_sizes[0] = 0;
        }
    }

    /// The transport's read side ended (the peer sent FIN).
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = now;
        if self.closed_emitted || self.eof_received {
            return;
        }
        self.eof_received = true;
        match self.hs {
            Handshake::Done => {}
            Handshake::ClientReadBody { .. } => return self.finish_error_response(),
            Handshake::Failed => {
                if self.shutdown_sent {
                    self.emit_closed();
                }
                return;
            }
            _ => {
                self.initiator.get_or_insert(Initiator::Remote);
                self.fail_handshake(HandshakeError::ConnectionClosed, false);
                return;
            }
        }
        self.flush_close_echo();
        if self.shutdown_sent {
            self.emit_closed();
        } else if self.close_received.is_some() {
            // Either the closing handshake is done (a client waiting for the
            // server to close TCP) or the peer half-closed after its close
            // frame: send what is left (our echo), then shut down.
            self.schedule_shutdown(false);
        } else {
            self.initiator.get_or_insert(Initiator::Remote);
            if self.failure.is_none() {
                self.failure = Some(ConnectionError::ConnectionLost);
            }
            self.stop_input();
            self.schedule_shutdown(false);
        }
    }

    /// The transport failed (reset, TLS error...): the connection is over.
    /// Emits `Closed` with [`ConnectionError::Io`] unless it was already
    /// closed.
    pub fn handle_transport_error(&mut self, now: Instant, error: impl Into<String>) {
        self.now = now;
        if self.closed_emitted {
            return;
        }
        if self.failure.is_none() {
            self.failure = Some(ConnectionError::Io(error.into()));
        }
        self.initiator.get_or_insert(Initiator::Remote);
        self.stop_input();
        self.abandon_output();
        self.emit_closed();
    }

    /// Fires the timers whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.buffer_release_at().is_some_and(|t| now >= t) {
            self.release_buffers();
        }
        if self.closed_emitted {
            return;
        }
        if let Some(d) = self.handshake_deadline {
            if now >= d {
                self.handshake_deadline = None;
                match self.hs {
                    Handshake::Done | Handshake::Failed => {}
                    Handshake::ClientReadBody { .. } => self.finish_error_response(),
                    _ => {
                        self.initiator.get_or_insert(Initiator::Local);
                        self.failure = Some(ConnectionError::HandshakeTimeout);
                        self.hs = Handshake::Failed;
                        self.stop_input();
                        self.abandon_output();
                        self.schedule_shutdown(false);
                    }
                }
            }
        }
        if let Some(d) = self.close_deadline {
            if now >= d {
                self.close_deadline = None;
                if self.shutdown_sent {
                    self.emit_closed();
                } else if self.close_sent && self.close_received.is_some() {
                    self.schedule_shutdown(false);
                } else {
                    if self.failure.is_none() {
                        self.failure = Some(ConnectionError::CloseTimeout);
                    }
                    self.stop_input();
                    self.abandon_output();
                    self.schedule_shutdown(false);
                }
            }
        }
        if self.state() != State::Open {
            return;
        }
        if let (Some(idle), Some(last)) = (self.cfg.idle_timeout, self.last_received) {
            if now >= last + idle {
                self.initiator.get_or_insert(Initiator::Local);
                self.failure = Some(ConnectionError::IdleTimeout);
                self.stop_input();
                self.abandon_output();
                self.schedule_shutdown(false);
                return;
            }
        }
        if let (Some(at), Some(every)) = (self.next_ping, self.cfg.ping_interval) {
            if now >= at {
                self.ping_counter += 1;
                let payload = Bytes::copy_from_slice(&self.ping_counter.to_be_bytes());
                self.queue_ping(payload, now);
                self.next_ping = Some(now + every);
            }
        }
    }

    // ----- commands -----------------------------------------------------

    /// Server role: accepts the upgrade request announced by
    /// [`Event::UpgradeRequest`]. permessage-deflate is negotiated from the
    /// configuration.
    pub fn accept(&mut self, accept: Accept) -> Result<(), Error> {
        let Handshake::ServerAwaitDecision {
            key,
            protocols,
            deflate,
        } = &self.hs
        else {
            return Err(self.invalid("accept"));
        };
        if let Some(p) = &accept.protocol {
            if !protocols.iter().any(|o| o == p) {
                return Err(Error::InvalidHeader(format!(
                    "subprotocol {p:?} was not offered"
                )));
            }
        }
        for (n, v) in &accept.headers {
            if !handshake::valid_header(n, v) {
                return Err(Error::InvalidHeader(n.clone()));
            }
        }
        let deflate = deflate.clone();
        handshake::write_accept(
            key,
            accept.protocol.as_deref(),
            deflate.as_ref().map(|(_, h)| h.as_str()),
            &accept.headers,
            &mut self.raw_out,
        );
        self.protocol = accept.protocol;
        if let Some((params, header)) = deflate {
            self.set_deflate(params, header);
        }
        self.open(Vec::new());
        self.process_frames();
        Ok(())
    }

    /// Server role: refuses the upgrade request with an HTTP status, extra
    /// headers and a body; the connection then closes.
    pub fn reject(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), Error> {
        if !matches!(self.hs, Handshake::ServerAwaitDecision { .. }) {
            return Err(self.invalid("reject"));
        }
        if !(200..=599).contains(&status) || status == 101 {
            return Err(Error::InvalidHeader(format!("status {status}")));
        }
        if let Some((n, _)) = headers.iter().find(|(n, v)| !handshake::valid_header(n, v)) {
            return Err(Error::InvalidHeader(n.clone()));
        }
        handshake::write_reject(status, headers, body, &mut self.raw_out);
        self.initiator = Some(Initiator::Local);
        self.failure = Some(ConnectionError::Handshake(HandshakeError::Rejected(status)));
        self.hs = Handshake::Failed;
        self.stop_input();
        self.schedule_shutdown(true);
        Ok(())
    }

    /// Sends a whole message, compressed when permessage-deflate was agreed
    /// and the message reaches the configured threshold, split into frames of
    /// at most `fragment_size` payload bytes.
    pub fn send(&mut self, kind: MessageKind, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send_message(kind, data.into(), true, false)
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send_message(
            MessageKind::Text,
            Bytes::copy_from_slice(text.as_bytes()),
            true,
            true,
        )
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send_message(MessageKind::Binary, data.into(), true, false)
    }

    /// Sends a whole message without compressing it (per-message opt-out).
    pub fn send_uncompressed(
        &mut self,
        kind: MessageKind,
        data: impl Into<Bytes>,
    ) -> Result<(), Error> {
        self.send_message(kind, data.into(), false, false)
    }

    /// Sends part of a message. The first call starts a message of `kind`;
    /// later calls continue it (their `kind` is ignored) until one with
    /// `fin`. Fragments are never compressed. Text fragments are not
    /// validated: the caller promises the whole message is UTF-8.
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: impl Into<Bytes>,
        fin: bool,
    ) -> Result<(), Error> {
        self.check_can_send("send_fragment")?;
        let data = data.into();
        self.check_queue(data.len())?;
        let first_opcode = if self.tx_fragment {
            OpCode::CONTINUATION
        } else {
            opcode_of(kind)
        };
        self.queue_data(first_opcode, false, data, fin);
        self.tx_fragment = !fin;
        if fin {
            self.stats.messages_out += 1;
        }
        Ok(())
    }

    /// Sends a ping; a pong with the same payload gives [`latency`](Self::latency).
    pub fn ping(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        self.check_control(payload.len(), "ping")?;
        self.queue_ping(payload, self.now);
        Ok(())
    }

    /// Sends an unsolicited pong (a unidirectional heartbeat).
    pub fn pong(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        self.check_control(payload.len(), "pong")?;
        let f = self.make_frame(OpCode::PONG, false, true, payload, false);
        self.ctrl_q.push_back(f);
        Ok(())
    }

    /// Starts the closing handshake. Messages already queued are sent first.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !CloseCode::is_sendable(code.as_u16()) {
            return Err(Error::InvalidCloseCode(code.as_u16()));
        }
        if reason.len() > 123 {
            return Err(Error::CloseReasonTooLong(reason.len()));
        }
        if self.state() != State::Open {
            return Err(self.invalid("close"));
        }
        self.initiator = Some(Initiator::Local);
        self.queue_close(code, reason);
        self.close_deadline = Some(self.now + self.cfg.close_timeout);
        Ok(())
    }

    // ----- outputs ------------------------------------------------------

    /// Copies the next wire bytes into `buf` (client frames are masked in
    /// this copy; queued payloads are never modified). Call until `None`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        self.now = now;
        if buf.is_empty() {
            return None;
        }
        let mut n = 0;
        if self.raw_pos < self.raw_out.len() {
            let k = (self.raw_out.len() - self.raw_pos).min(buf.len());
            buf[..k].copy_from_slice(&self.raw_out[self.raw_pos..self.raw_pos + k]);
            self.raw_pos += k;
            n += k;
            if self.raw_pos == self.raw_out.len() {
                self.raw_out = Vec::new();
                self.raw_pos = 0;
            }
        }
        while n < buf.len() && self.raw_out.is_empty() {
            if self.current.is_none() {
                self.current = self.next_frame();
            }
            let Some(f) = self.current.as_mut() else {
                break;
            };
            let hl = usize::from(f.head_len);
            if f.pos < hl {
                let k = (hl - f.pos).min(buf.len() - n);
                buf[n..n + k].copy_from_slice(&f.head[f.pos..f.pos + k]);
                f.pos += k;
                n += k;
            }
            if f.pos >= hl {
                let off = f.pos - hl;
                let k = (f.payload.len() - off).min(buf.len() - n);
                let src = &f.payload[off..off + k];
                match f.mask {
                    Some(m) => copy_masked(src, &mut buf[n..n + k], m, off),
                    None => buf[n..n + k].copy_from_slice(src),
                }
                f.pos += k;
                n += k;
                if f.counted {
                    self.buffered -= k;
                }
            }
            if f.pos < hl + f.payload.len() {
                break;
            }
            if let Some(f) = self.current.take() {
                self.on_frame_sent(&f);
            }
        }
        if n > 0 {
            self.stats.bytes_out += n as u64;
            return Some(Transmit::Data(n));
        }
        if self.shutdown_pending && !self.has_frames_or_raw() {
            self.shutdown_pending = false;
            self.shutdown_sent = true;
            if self.eof_received || !self.drain_after_shutdown {
                self.emit_closed();
            } else {
                self.close_deadline = Some(self.now + self.cfg.close_timeout);
            }
            return Some(Transmit::Shutdown);
        }
        None
    }

    /// The next event, if any. `Closed` is always the last one.
    pub fn poll_event(&mut self) -> Option<Event> {
        // The application comes back for more only after it has handled the
        // previous event: that is when a deferred close echo may go out.
        if matches!(self.echo_after_events, Some((0, _, _))) {
            self.flush_close_echo();
        }
        let e = self.events.pop_front()?;
        if let Some((left, _, _)) = self.echo_after_events.as_mut() {
            *left = left.saturating_sub(1);
        }
        Some(e)
    }

    fn flush_close_echo(&mut self) {
        if let Some((_, code, reason)) = self.echo_after_events.take() {
            if !self.close_queued {
                self.queue_close_raw(code, &reason);
            }
        }
    }

    /// The earliest deadline at which [`handle_timeout`](Self::handle_timeout)
    /// must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed_emitted {
            return None;
        }
        let mut t = [
            self.close_deadline,
            None,
            None,
            None,
            self.buffer_release_at(),
        ];
        if !matches!(self.hs, Handshake::Done) {
            t[1] = self.handshake_deadline;
        } else if self.state() == State::Open {
            t[2] = self.next_ping;
            t[3] = self
                .cfg
                .idle_timeout
                .zip(self.last_received)
                .map(|(d, l)| l + d);
        }
        t.into_iter().flatten().min()
    }

    // ----- handshake ----------------------------------------------------

    fn process(&mut self) {
        match self.hs {
            Handshake::Done => self.process_frames(),
            Handshake::ServerAwaitRequest => self.process_request(),
            Handshake::ClientAwaitResponse { .. } => self.process_response(),
            Handshake::ServerAwaitDecision { .. } => {
                // Bytes after the request wait for the application's answer,
                // but never more than one maximal frame.
                if self.rbuf.len() > self.cfg.limits.max_frame_payload + FrameHeader::MAX_LEN {
                    self.rbuf.clear();
                    self.server_reject_request(
                        400,
                        HandshakeError::Malformed(
                            "too much data before the handshake completed".into(),
                        ),
                    );
                }
            }
            Handshake::ClientReadBody { .. } | Handshake::Failed => {}
        }
    }

    fn process_request(&mut self) {
        match handshake::parse_request(&self.rbuf, &self.cfg.limits) {
            Ok(None) => {}
            Ok(Some((parsed, n))) => {
                self.rbuf.advance(n);
                let deflate = self.cfg.deflate.as_ref().and_then(|cfg| {
                    let values: Vec<&str> = parsed
                        .request
                        .extensions
                        .iter()
                        .map(String::as_str)
                        .collect();
                    deflate::server_negotiate(cfg, &values)
                });
                self.hs = Handshake::ServerAwaitDecision {
                    key: parsed.key,
                    protocols: parsed.request.protocols.clone(),
                    deflate,
                };
                self.events
                    .push_back(Event::UpgradeRequest(Box::new(parsed.request)));
                self.process();
            }
            Err(rej) => {
                self.rbuf.clear();
                self.server_reject_request(rej.status, rej.error);
            }
        }
    }

    fn server_reject_request(&mut self, status: u16, error: HandshakeError) {
        handshake::write_reject(
            status,
            &[],
            handshake::reason_phrase(status).as_bytes(),
            &mut self.raw_out,
        );
        self.initiator.get_or_insert(Initiator::Remote);
        self.failure = Some(ConnectionError::Handshake(error));
        self.hs = Handshake::Failed;
        self.stop_input();
        self.schedule_shutdown(true);
    }

    fn process_response(&mut self) {
        let resp = match handshake::parse_response(&self.rbuf, &self.cfg.limits) {
            Ok(None) => return,
            Ok(Some((resp, n))) => {
                self.rbuf.advance(n);
                resp
            }
            Err(e) => return self.fail_handshake(e, true),
        };
        if resp.status != 101 {
            let declared = resp
                .all("content-length")
                .next()
                .and_then(|v| v.trim().parse::<usize>().ok());
            let take = declared.unwrap_or(self.rbuf.len()).min(MAX_ERROR_BODY);
            let mut body = Vec::with_capacity(take);
            let now = take.min(self.rbuf.len());
            body.extend_from_slice(&self.rbuf[..now]);
            self.rbuf.clear();
            self.hs = Handshake::ClientReadBody {
                status: resp.status,
                reason: resp.reason,
                headers: resp.headers,
                body,
                want: take,
            };
            if now >= take {
                self.finish_error_response();
            }
            return;
        }
        let Handshake::ClientAwaitResponse { accept, protocols } = &self.hs else {
            return;
        };
        let protocol = match handshake::validate_switching(&resp, accept, protocols) {
            Ok(p) => p,
            Err(e) => return self.fail_handshake(e, true),
        };
        let values: Vec<&str> = resp.all("sec-websocket-extensions").collect();
        match &self.cfg.deflate {
            Some(cfg) => match deflate::client_accept_response(cfg, &values) {
                Ok(Some(params)) => {
                    let header = values.join(", ");
                    self.set_deflate(params, header);
                }
                Ok(None) => {}
                Err(e) => {
                    return self.fail_handshake(HandshakeError::Extension(e.to_string()), true)
                }
            },
            None if !values.is_empty() => {
                return self.fail_handshake(
                    HandshakeError::Extension(format!("not offered: {}", values.join(", "))),
                    true,
                );
            }
            None => {}
        }
        self.protocol = protocol;
        self.open(resp.headers);
        self.process_frames();
    }

    fn finish_error_response(&mut self) {
        let hs = std::mem::replace(&mut self.hs, Handshake::Failed);
        if let Handshake::ClientReadBody {
            status,
            reason,
            headers,
            body,
            ..
        } = hs
        {
            self.fail_handshake(
                HandshakeError::Status {
                    status,
                    reason,
                    headers,
                    body,
                },
                false,
            );
        }
    }

    fn fail_handshake(&mut self, e: HandshakeError, local: bool) {
        if local {
            self.initiator.get_or_insert(Initiator::Local);
        }
        self.initiator.get_or_insert(Initiator::Remote);
        self.failure = Some(ConnectionError::Handshake(e));
        self.hs = Handshake::Failed;
        self.stop_input();
        self.abandon_output();
        self.schedule_shutdown(false);
    }

    fn set_deflate(&mut self, params: DeflateParams, header: String) {
        let (role, level, threshold) = match &self.cfg.deflate {
            Some(cfg) => (self.deflate_role(), cfg.level, cfg.threshold),
            None => return,
        };
        self.deflate = Some(DeflateState {
            compressor: Compressor::new(&params, role, level),
            decompressor: Decompressor::new(&params, self.deflate_role()),
            params,
            threshold,
        });
        self.extensions = Some(header);
    }

    fn deflate_role(&self) -> deflate::Role {
        match self.side {
            Side::Client => deflate::Role::Client,
            Side::Server => deflate::Role::Server,
        }
    }

    fn open(&mut self, headers: Vec<(String, String)>) {
        self.hs = Handshake::Done;
        self.handshake_deadline = None;
        self.last_received = Some(self.now);
        self.next_ping = self.cfg.ping_interval.map(|d| self.now + d);
        self.events.push_back(Event::Open(Box::new(OpenInfo {
            protocol: self.protocol.clone(),
            extensions: self.extensions.clone(),
            headers,
        })));
    }

    // ----- receiving frames ---------------------------------------------

    fn process_frames(&mut self) {
        while !self.input_closed {
            let header = match self.rx_header {
                Some(h) => h,
                None => match FrameHeader::parse(&self.rbuf) {
                    Ok(Some((h, n))) => {
                        if let Err(e) = self.check_header(&h) {
                            return self.fail(e);
                        }
                        self.rbuf.advance(n);
                        self.rx_header = Some(h);
                        self.rx_progress = 0;
                        h
                    }
                    Ok(None) => return,
                    Err(FrameError::ReservedOpcode(op)) => {
                        return self.fail(ProtocolError::ReservedOpcode(op))
                    }
                    Err(_) => return self.fail(ProtocolError::LengthTopBit),
                },
            };
            // check_header bounded the length by max_frame_payload.
            let len = header.payload_len as usize;
            let avail = self.rbuf.len().min(len);
            if avail > self.rx_progress {
                let (from, to) = (self.rx_progress, avail);
                if let Some(key) = header.mask {
                    apply_mask(&mut self.rbuf[from..to], key, from);
                }
                if self.rx_validate {
                    if let Some(m) = self.msg.as_mut() {
                        if m.utf8.feed(&self.rbuf[from..to]).is_err() {
                            return self.fail(ProtocolError::InvalidUtf8);
                        }
                    }
                }
                self.rx_progress = to;
            }
            if avail < len {
                if self.rbuf.capacity() < len {
                    self.make_room(len - self.rbuf.len());
                }
                return;
            }
            let payload = self.rbuf.split_to(len).freeze();
            self.rx_header = None;
            self.rx_progress = 0;
            self.stats.frames_in += 1;
            self.last_received = Some(self.now);
            self.on_frame(header, payload);
        }
    }

    fn check_header(&mut self, h: &FrameHeader) -> Result<(), ProtocolError> {
        let limits = &self.cfg.limits;
        let deflate = self.deflate.is_some();
        if h.rsv2 || h.rsv3 {
            return Err(ProtocolError::ReservedBits);
        }
        match self.side {
            Side::Server if h.mask.is_none() => return Err(ProtocolError::UnmaskedFrame),
            Side::Client if h.mask.is_some() => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if h.opcode.is_control() {
            if h.rsv1 {
                return Err(if deflate {
                    ProtocolError::CompressedControl
                } else {
                    ProtocolError::ReservedBits
                });
            }
            if !h.fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if h.payload_len > 125 {
                return Err(ProtocolError::ControlTooLong(h.payload_len));
            }
            self.rx_validate = false;
            return Ok(());
        }
        if h.opcode == OpCode::CONTINUATION {
            if h.rsv1 {
                return Err(if deflate {
                    ProtocolError::CompressedContinuation
                } else {
                    ProtocolError::ReservedBits
                });
            }
            if self.msg.is_none() {
                return Err(ProtocolError::UnexpectedContinuation);
            }
        } else {
            if self.msg.is_some() {
                return Err(ProtocolError::ExpectedContinuation);
            }
            if h.rsv1 && !deflate {
                return Err(ProtocolError::ReservedBits);
            }
        }
        if h.payload_len > limits.max_frame_payload as u64 {
            return Err(ProtocolError::FrameTooLarge {
                len: h.payload_len,
                limit: limits.max_frame_payload,
            });
        }
        let m = self.msg.get_or_insert_with(|| InMessage {
            kind: if h.opcode == OpCode::TEXT {
                MessageKind::Text
            } else {
                MessageKind::Binary
            },
            compressed: h.rsv1,
            utf8: Utf8Validator::new(),
            buf: std::mem::take(&mut self.asm),
            frames: 0,
            size: 0,
        });
        m.frames += 1;
        if m.frames > limits.max_fragments {
            return Err(ProtocolError::TooManyFragments {
                limit: limits.max_fragments,
            });
        }
        if !m.compressed && m.size as u64 + h.payload_len > limits.max_message_size as u64 {
            return Err(ProtocolError::MessageTooLarge {
                limit: limits.max_message_size,
            });
        }
        self.rx_validate = m.kind == MessageKind::Text && !m.compressed;
        Ok(())
    }

    fn on_frame(&mut self, h: FrameHeader, payload: Bytes) {
        match h.opcode {
            OpCode::PING => {
                if self.cfg.auto_pong && !self.close_queued {
                    // Answer every ping, but keep at most MAX_PENDING_PONGS
                    // unanswered: a peer flooding pings without reading our
                    // pongs gets only the latest ones (RFC 6455 §5.5.3).
                    if self.pending_pongs.len() == MAX_PENDING_PONGS {
                        self.pending_pongs.pop_front();
                    }
                    self.pending_pongs.push_back(payload.clone());
                }
                self.events.push_back(Event::Ping(payload));
            }
            OpCode::PONG => {
                if let Some(i) = self.pings_out.iter().position(|(p, _)| *p == payload) {
                    if let Some((_, sent)) = self.pings_out.get(i) {
                        self.latency = Some(self.now.saturating_duration_since(*sent));
                    }
                    self.pings_out.drain(..=i);
                }
                self.events.push_back(Event::Pong(payload));
            }
            OpCode::CLOSE => self.on_close_frame(&payload),
            _ => self.on_data(h.fin, payload),
        }
    }

    fn on_data(&mut self, fin: bool, payload: Bytes) {
        let max = self.cfg.limits.max_message_size;
        let streaming = self.cfg.streaming;
        let Some(m) = self.msg.as_mut() else { return };
        if m.compressed {
            let Some(d) = self.deflate.as_mut() else {
                return;
            };
            let before = m.buf.len();
            let limit = before + max.saturating_sub(m.size);
            // Room for a frame like the previous one to inflate in one step
            // (plus the flush tail's step): several messages of one read
            // then share one allocation, reused once the application has
            // dropped them.
            let want = d.decompressor.first_room(payload.len()) + 256;
            let ceiling = limit.saturating_add(1);
            let room = want.min(ceiling.saturating_sub(before));
            let (peak, epoch) = (&mut self.buf_sizes[1], &mut self.epochs[1]);
            reserve_reused(&mut m.buf, room, peak, epoch, ceiling);
            match d.decompressor.decompress(&payload, fin, &mut m.buf, limit) {
                Ok(_) => {}
                Err(InflateError::TooLarge) => {
                    return self.fail(ProtocolError::MessageTooLarge { limit: max })
                }
                Err(_) => return self.fail(ProtocolError::BadCompressedData),
            }
            m.size += m.buf.len() - before;
            if m.kind == MessageKind::Text && m.utf8.feed(&m.buf[before..]).is_err() {
                return self.fail(ProtocolError::InvalidUtf8);
            }
        } else {
            m.size += payload.len();
        }
        if fin && m.kind == MessageKind::Text && m.utf8.finish().is_err() {
            return self.fail(ProtocolError::InvalidUtf8);
        }
        let kind = m.kind;
        if !m.compressed && !streaming && (!fin || m.frames > 1) {
            let ceiling = max.saturating_add(1);
            let (peak, epoch) = (&mut self.buf_sizes[1], &mut self.epochs[1]);
            reserve_reused(&mut m.buf, payload.len(), peak, epoch, ceiling);
            m.buf.extend_from_slice(&payload);
        }
        if streaming {
            let first = m.frames == 1;
            let data = if m.compressed {
                m.buf.split().freeze()
            } else {
                payload
            };
            if fin {
                self.finish_message();
            }
            self.events.push_back(Event::Fragment(Fragment {
                kind,
                data,
                first,
                fin,
            }));
            return;
        }
        if !fin {
            return;
        }
        let data = if m.compressed || m.frames > 1 {
            m.buf.split().freeze()
        } else {
            payload
        };
        self.finish_message();
        self.events
            .push_back(Event::Message(Message { kind, data }));
    }

    /// A message is complete: its (now empty) buffer goes back for reuse.
    fn finish_message(&mut self) {
        if let Some(mut m) = self.msg.take() {
            if self.cfg.release_buffers_after.is_zero() {
                self.buf_sizes[1] = 0;
            } else {
                self.asm = std::mem::take(&mut m.buf);
            }
        }
        self.stats.messages_in += 1;
    }

    fn on_close_frame(&mut self, payload: &[u8]) {
        let (code, reason) = match payload {
            [] => (CloseCode::NO_STATUS, String::new()),
            [_] => return self.fail(ProtocolError::CloseTooShort),
            [a, b, rest @ ..] => {
                let raw = u16::from_be_bytes([*a, *b]);
                let Some(code) = CloseCode::from_wire(raw) else {
                    return self.fail(ProtocolError::InvalidCloseCode(raw));
                };
                match std::str::from_utf8(rest) {
                    Ok(r) => (code, r.to_string()),
                    Err(_) => return self.fail(ProtocolError::InvalidUtf8),
                }
            }
        };
        self.initiator.get_or_insert(Initiator::Remote);
        self.stop_input();
        if !self.close_queued {
            // Echo the status code and the reason (RFC 6455 §5.5.1; browsers,
            // Node `ws` and Python `websockets` show the reason of the close
            // that completes the handshake) once the application has seen the
            // messages that came before the close; data it sends in answer to
            // them goes out first. The reason came in a control frame, so it
            // is at most 123 bytes and fits our own close frame.
            let echo = if code == CloseCode::NO_STATUS {
                None
            } else {
                Some(code)
            };
            if self.events.is_empty() {
                self.queue_close_raw(echo, &reason);
            } else {
                self.echo_after_events = Some((self.events.len(), echo, reason.clone()));
            }
        }
        self.close_received = Some((code, reason));
        self.check_close_complete();
    }

    /// Fails the connection: queue the close frame for `e`, stop reading,
    /// shut down once the close frame is out.
    fn fail(&mut self, e: ProtocolError) {
        self.stop_input();
        if self.failure.is_none() {
            self.initiator.get_or_insert(Initiator::Local);
            let code = e.close_code();
            let mut reason = e.to_string();
            truncate_utf8(&mut reason, 123);
            self.failure = Some(ConnectionError::Protocol(e));
            // Data already queued (or sent by the application in answer to
            // the events before the violation) goes out before the close.
            if !self.close_queued && self.echo_after_events.is_none() {
                if self.events.is_empty() {
                    self.queue_close(code, &reason);
                } else {
                    self.echo_after_events = Some((self.events.len(), Some(code), reason));
                }
            }
        }
        if self.close_sent {
            self.schedule_shutdown(true);
        }
    }

    fn stop_input(&mut self) {
        self.input_closed = true;
        self.rbuf = BytesMut::new();
        self.asm = BytesMut::new();
        self.buf_sizes[0] = 0;
        self.buf_sizes[1] = 0;
        self.rx_header = None;
        self.msg = None;
    }

    // ----- sending ------------------------------------------------------

    /// `utf8_known`: the caller passed a `&str`, so text needs no check.
    fn send_message(
        &mut self,
        kind: MessageKind,
        data: Bytes,
        compress: bool,
        utf8_known: bool,
    ) -> Result<(), Error> {
        self.check_can_send("send")?;
        if self.tx_fragment {
            return Err(Error::FragmentSequence);
        }
        self.check_queue(data.len())?;
        if kind == MessageKind::Text && !utf8_known && std::str::from_utf8(&data).is_err() {
            return Err(Error::InvalidUtf8);
        }
        let (payload, rsv1) = match self.deflate.as_mut() {
            Some(d) if compress && data.len() >= d.threshold => {
                self.last_activity = self.now;
                // Room for the first deflate step in the reused buffer:
                // several messages queued at once share one allocation.
                let ceiling = self.cfg.limits.max_send_queue;
                let room = deflate::deflate_room(data.len());
                let (peak, epoch) = (&mut self.buf_sizes[2], &mut self.epochs[2]);
                reserve_reused(&mut self.zbuf, room, peak, epoch, ceiling);
                d.compressor.compress(&data, &mut self.zbuf);
                // Several deflate steps may have grown it past that room.
                self.buf_sizes[2] = self.buf_sizes[2].max(self.zbuf.capacity());
                let out = self.zbuf.split().freeze();
                if self.cfg.release_buffers_after.is_zero() {
                    self.zbuf = BytesMut::new();
                    self.buf_sizes[2] = 0;
                }
                (out, true)
            }
            _ => (data, false),
        };
        self.queue_data(opcode_of(kind), rsv1, payload, true);
        self.stats.messages_out += 1;
        Ok(())
    }

    fn queue_data(&mut self, opcode: OpCode, rsv1: bool, payload: Bytes, fin: bool) {
        let size = self.cfg.fragment_size.max(1);
        self.buffered += payload.len();
        if payload.len() <= size {
            let f = self.make_frame(opcode, rsv1, fin, payload, true);
            self.data_q.push_back(f);
            return;
        }
        let mut off = 0;
        while off < payload.len() {
            let end = (off + size).min(payload.len());
            let first = off == 0;
            let op = if first { opcode } else { OpCode::CONTINUATION };
            let last = end == payload.len();
            let f = self.make_frame(
                op,
                rsv1 && first,
                fin && last,
                payload.slice(off..end),
                true,
            );
            self.data_q.push_back(f);
            off = end;
        }
    }

    fn queue_ping(&mut self, payload: Bytes, now: Instant) {
        if self.pings_out.len() == MAX_PINGS_TRACKED {
            self.pings_out.pop_front();
        }
        self.pings_out.push_back((payload.clone(), now));
        let f = self.make_frame(OpCode::PING, false, true, payload, false);
        self.ctrl_q.push_back(f);
    }

    fn queue_close(&mut self, code: CloseCode, reason: &str) {
        self.queue_close_raw(Some(code), reason);
    }

    fn queue_close_raw(&mut self, code: Option<CloseCode>, reason: &str) {
        let mut p = Vec::with_capacity(2 + reason.len());
        if let Some(c) = code {
            p.extend_from_slice(&c.as_u16().to_be_bytes());
            p.extend_from_slice(reason.as_bytes());
        }
        let mut f = self.make_frame(OpCode::CLOSE, false, true, Bytes::from(p), false);
        f.is_close = true;
        self.close_frame = Some(f);
        self.close_queued = true;
        self.pending_pongs.clear();
    }

    fn make_frame(
        &mut self,
        opcode: OpCode,
        rsv1: bool,
        fin: bool,
        payload: Bytes,
        counted: bool,
    ) -> OutFrame {
        let mask = match self.side {
            Side::Client => Some(self.rng.next_u32().to_ne_bytes()),
            Side::Server => None,
        };
        let h = FrameHeader {
            fin,
            rsv1,
            rsv2: false,
            rsv3: false,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        let mut head = [0u8; FrameHeader::MAX_LEN];
        let head_len = h.encode(&mut head) as u8;
        OutFrame {
            head,
            head_len,
            payload,
            mask,
            pos: 0,
            counted,
            is_close: false,
        }
    }

    fn next_frame(&mut self) -> Option<OutFrame> {
        if self.close_sent {
            return None;
        }
        if let Some(p) = self.pending_pongs.pop_front() {
            return Some(self.make_frame(OpCode::PONG, false, true, p, false));
        }
        self.ctrl_q
            .pop_front()
            .or_else(|| self.data_q.pop_front())
            .or_else(|| self.close_frame.take())
    }

    fn on_frame_sent(&mut self, f: &OutFrame) {
        self.stats.frames_out += 1;
        if f.is_close {
            self.close_sent = true;
            self.ctrl_q.clear();
            if self.failure.is_some() {
                self.schedule_shutdown(true);
            } else {
                self.check_close_complete();
            }
        }
    }

    fn check_close_complete(&mut self) {
        if !(self.close_sent && self.close_received.is_some()) {
            return;
        }
        match self.side {
            // The server closes TCP first (RFC 6455 §7.1.1).
            Side::Server => self.schedule_shutdown(true),
            Side::Client if self.eof_received => self.schedule_shutdown(false),
            Side::Client => self.close_deadline = Some(self.now + self.cfg.close_timeout),
        }
    }

    fn schedule_shutdown(&mut self, drain: bool) {
        if self.shutdown_sent || self.shutdown_pending {
            return;
        }
        self.shutdown_pending = true;
        self.drain_after_shutdown = drain;
        self.close_deadline = None;
    }

    fn has_frames_or_raw(&self) -> bool {
        self.raw_pos < self.raw_out.len()
            || self.current.is_some()
            || (!self.close_sent
                && (!self.pending_pongs.is_empty()
                    || !self.ctrl_q.is_empty()
                    || !self.data_q.is_empty()
                    || self.close_frame.is_some()))
    }

    fn drop_queued_data(&mut self) {
        for f in self.data_q.drain(..) {
            if f.counted {
                self.buffered -= f.payload.len();
            }
        }
        self.tx_fragment = false;
    }

    /// Discards everything not yet handed out (the transport is unusable or
    /// the peer unresponsive).
    fn abandon_output(&mut self) {
        self.drop_queued_data();
        if let Some(f) = self.current.take() {
            if f.counted {
                self.buffered -= f.payload.len() - f.pos.saturating_sub(usize::from(f.head_len));
            }
        }
        self.ctrl_q.clear();
        self.pending_pongs.clear();
        self.close_frame = None;
        self.raw_out = Vec::new();
        self.raw_pos = 0;
    }

    fn emit_closed(&mut self) {
        if self.closed_emitted {
            return;
        }
        self.closed_emitted = true;
        self.close_deadline = None;
        self.handshake_deadline = None;
        self.next_ping = None;
        self.stop_input();
        self.abandon_output();
        self.shutdown_pending = false;
        let clean = self.close_sent && self.close_received.is_some();
        let (code, reason) = match (&self.failure, &self.close_received) {
            (Some(ConnectionError::Protocol(e)), _) => {
                let mut r = e.to_string();
                truncate_utf8(&mut r, 123);
                (e.close_code(), r)
            }
            (_, Some((c, r))) => (*c, r.clone()),
            _ => (CloseCode::ABNORMAL, String::new()),
        };
        self.events.push_back(Event::Closed(Closed {
            code,
            reason,
            initiator: self.initiator.unwrap_or(Initiator::Remote),
            clean,
            error: self.failure.clone(),
        }));
    }

    // ----- checks -------------------------------------------------------

    fn check_can_send(&self, op: &'static str) -> Result<(), Error> {
        // Open, or the peer's close waits for the application to read the
        // messages before it (it may still answer them).
        let answering = self.echo_after_events.is_some();
        if self.state() == State::Open || answering {
            Ok(())
        } else {
            Err(self.invalid(op))
        }
    }

    fn check_queue(&self, len: usize) -> Result<(), Error> {
        let limit = self.cfg.limits.max_send_queue;
        // An empty queue always takes one message, however large: the
        // caller already holds it in memory, and refusing it forever would
        // make it unsendable.
        if self.buffered > 0 && self.buffered.saturating_add(len) > limit {
            Err(Error::Backpressure {
                buffered_amount: self.buffered,
                limit,
            })
        } else {
            Ok(())
        }
    }

    fn check_control(&self, len: usize, op: &'static str) -> Result<(), Error> {
        if len > 125 {
            return Err(Error::ControlPayloadTooLong(len));
        }
        self.check_can_send(op)
    }

    fn invalid(&self, op: &'static str) -> Error {
        Error::InvalidState {
            op,
            state: self.state(),
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.side)
            .field("state", &self.state())
            .field("buffered_amount", &self.buffered)
            .finish_non_exhaustive()
    }
}

fn opcode_of(kind: MessageKind) -> OpCode {
    match kind {
        MessageKind::Text => OpCode::TEXT,
        MessageKind::Binary => OpCode::BINARY,
    }
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Makes room for `n` more bytes in a buffer that is reused from message to
/// message, and records in `peak` the largest capacity it had.
///
/// Its allocation is reclaimed without allocating once nothing else (no
/// delivered message) holds it. When it cannot be (messages of one read
/// still wait in the event queue, or the application keeps them), a new
/// allocation is made of twice the room asked for since the last one
/// (`epoch`), bounded by `ceiling` (but never below what is needed): the
/// buffer settles on a size that holds a whole burst, and from then on is
/// reclaimed between bursts instead of allocating again and again.
fn reserve_reused(
    buf: &mut BytesMut,
    n: usize,
    peak: &mut usize,
    epoch: &mut usize,
    ceiling: usize,
) {
    let len = buf.len();
    if *peak == 0 {
        // A freed (or never used) buffer starts a fresh history. (Not a
        // buffer whose capacity is used up by messages that still hold it:
        // its history is what makes the next allocation big enough to hold
        // the whole burst; forgetting it kept the reassembly buffer at two
        // 64 KiB messages and allocated again every other message whenever
        // the last one was still held.)
        *epoch = 0;
    }
    if len == 0 && buf.capacity() < *peak && buf.try_reclaim(*peak) {
        // Nothing holds the allocation any more: start over at its
        // beginning, so the whole of it is free for the next burst (without
        // this, a burst that starts in the tail runs out of room halfway
        // while its first messages still hold the allocation).
        *epoch = 0;
    }
    let fits = buf.capacity() - len >= n;
    if fits {
        *epoch = epoch.saturating_add(n);
    } else if buf.try_reclaim(n) {
        *epoch = n;
    } else {
        let needed = len.saturating_add(n);
        let target = epoch
            .saturating_add(n)
            .max(needed)
            .saturating_mul(2)
            .min(ceiling)
            .max(needed);
        buf.reserve(target - len);
        *epoch = needed;
    }
    *peak = (*peak).max(buf.capacity());
}
