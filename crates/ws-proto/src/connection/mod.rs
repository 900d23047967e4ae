//! The connection state machine, split by concern:
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the `Connection` struct, construction, getters, `poll_event` |
//! | `upgrade.rs` | the opening handshake in both roles: request/response, accept/reject, open |
//! | `recv.rs` | the frame reader: header checks, unmasking, reassembly, message delivery |
//! | `send.rs` | commands that send, the outgoing queues, fragmentation, `poll_transmit` |
//! | `closing.rs` | the closing handshake, failures, shutdown, the terminal `Closed` event |
//! | `timers.rs` | deadlines: `handle_timeout`, `poll_timeout` |
//! | `buffers.rs` | reuse and release of the receive, reassembly and compression buffers |
//! | `room.rs` | lending the receive buffer's free room to the transport (the crate's only `unsafe`) |

mod buffers;
mod closing;
mod queue;
mod recv;
mod room;
mod send;
mod timers;
mod upgrade;

use buffers::{reserve_reused, AltBuffers};
use closing::{Ending, OurClose};
use queue::LazyQueue;
use room::Room;
use timers::{after, Timer, Timers};

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::deflate::{DeflateExtension, DeflateParams};
use crate::extension::{self, Chain, Extension, ExtensionFactory, Rsv};
use crate::frame::{FrameError, FrameHeader, OpCode};
use crate::handshake;
use crate::mask::{apply_mask, copy_masked};
use crate::prepared::PreparedMessage;
use crate::upgrade::{ClientUpgrade, Http, Upgraded};
use crate::utf8::Utf8Validator;
use crate::{
    ClientRequest, CloseCode, Closed, Config, ConnectionError, Error, Event, Fragment,
    HandshakeError, Initiator, Message, MessageKind, OpenInfo, ProtocolError, TransportError,
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

/// What [`Connection::poll_transmit_vectored`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VectoredTransmit {
    /// This many bytes were written to the start of the buffer; send them.
    Data(usize),
    /// This many bytes were written to the start of the buffer (ending with a
    /// frame header); send them, then this payload (a vectored write). The
    /// payload is the queued message's own bytes: nothing was copied.
    DataThen(usize, Bytes),
    /// Everything has been handed out: shut down the transport's write side
    /// (TCP FIN). Keep reading until the peer closes or `Closed` arrives.
    Shutdown,
}

/// Payloads of at least this many bytes are handed out by
/// [`Connection::poll_transmit_vectored`] instead of copied (below it, a copy
/// into the batch of small frames is cheaper than one more write segment).
pub const VECTORED_MIN: usize = 4096;

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
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Accept {
    /// The chosen subprotocol; must be one the client offered.
    pub protocol: Option<String>,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// The extensions to negotiate for this request, replacing the configuration's
    /// ([`Config::extension_factories`]) when `Some`.
    pub extensions: Option<Vec<Arc<dyn ExtensionFactory>>>,
    /// Extensions (by name) declined for this request, whatever the client offers.
    pub declined: Vec<String>,
}

/// Equal when the same subprotocol, headers and declined names are given and
/// the chosen extensions are the same factories (by identity).
impl PartialEq for Accept {
    fn eq(&self, other: &Accept) -> bool {
        let same_factories = match (&self.extensions, &other.extensions) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
            }
            _ => false,
        };
        self.protocol == other.protocol
            && self.headers == other.headers
            && self.declined == other.declined
            && same_factories
    }
}

impl Eq for Accept {}

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
    /// Negotiates these extensions for this request instead of the configuration's (e.g.
    /// permessage-deflate on one path and not another: pass a
    /// [`DeflateFactory`](crate::deflate::DeflateFactory) or nothing).
    pub fn extensions(mut self, factories: Vec<Arc<dyn ExtensionFactory>>) -> Self {
        self.extensions = Some(factories);
        self
    }
    /// Declines the extension `name` (e.g. `permessage-deflate`) for this request.
    pub fn decline(mut self, name: impl Into<String>) -> Self {
        self.declined.push(name.into());
        self
    }
    /// The factories to negotiate with: the chosen ones or the configuration's, minus the
    /// declined ones.
    pub(crate) fn factories(&self, cfg: &Config) -> Vec<Arc<dyn ExtensionFactory>> {
        let all = match &self.extensions {
            Some(chosen) => chosen.clone(),
            None => cfg.extension_factories(),
        };
        all.into_iter()
            .filter(|f| {
                !self
                    .declined
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(f.name()))
            })
            .collect()
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
    /// Shared by every connection made from one configuration.
    cfg: Arc<Config>,
    /// Masking keys: a client's only (a server never masks).
    rng: MaskRng,
    now: Instant,
    hs: Handshake,

    // Receiving.
    rbuf: BytesMut,
    /// What is known of `rbuf`'s spare room, lent to the transport.
    room: Room,
    /// The receive buffer's earlier allocations (see `make_room`).
    rbuf_alt: Option<Box<AltBuffers>>,
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
    ctrl_q: LazyQueue<OutFrame>,
    data_q: VecDeque<OutFrame>,
    pending_pongs: LazyQueue<Bytes>,
    /// Our close frame, until it goes out (boxed: once per connection).
    close_frame: Option<Box<OutFrame>>,
    tx_fragment: bool,
    buffered: usize,

    // Closing.
    our_close: OurClose,
    /// The received close, the deferred close echo and the failure (boxed:
    /// none of them exists while a connection is open and well).
    closing: Option<Box<Closing>>,
    initiator: Option<Initiator>,
    /// The write side and the connection's end.
    ending: Ending,
    eof_received: bool,

    // Timers and keepalive.
    timers: Timers,
    last_received: Option<Instant>,
    /// The latest input from the peer once open (bytes of a frame still
    /// arriving included): the idle timeout counts from it.
    last_heard: Option<Instant>,
    pings_out: LazyQueue<(Bytes, Instant)>,
    ping_counter: u64,
    latency: Option<Duration>,

    events: LazyQueue<Event>,
    stats: Stats,
    /// (Doubly boxed: one pointer in every connection, most of which have
    /// no subprotocol.)
    #[allow(clippy::box_collection)]
    protocol: Option<Box<String>>,
    /// The negotiated extensions, in the agreed order (nothing allocated
    /// when none were).
    ext: Chain,
}

/// The RNG of a client's masking keys, allocated only for a client: a
/// ChaCha generator is 320 bytes, and a server never masks.
struct MaskRng(Option<Box<StdRng>>);

impl MaskRng {
    fn new(side: Side, seed: Option<[u8; 32]>) -> MaskRng {
        MaskRng((side == Side::Client).then(|| Box::new(seeded(seed))))
    }

    fn get(&mut self) -> &mut StdRng {
        self.0.get_or_insert_with(|| Box::new(seeded(None)))
    }

    /// A random `u32` (a masking key).
    fn next_u32(&mut self) -> u32 {
        self.get().next_u32()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.get().fill_bytes(dest);
    }
}

fn seeded(seed: Option<[u8; 32]>) -> StdRng {
    match seed {
        Some(seed) => StdRng::from_seed(seed),
        None => StdRng::from_os_rng(),
    }
}

enum Handshake {
    ClientAwaitResponse {
        upgrade: Box<ClientUpgrade>,
    },
    ClientReadBody {
        /// The status line and headers of the response.
        head: Box<ErrorHead>,
        // Boxed to keep the handshake state (in every connection) small.
        #[allow(clippy::box_collection)]
        body: Box<Vec<u8>>,
        want: usize,
    },
    ServerAwaitRequest,
    ServerAwaitDecision(Box<Decision>),
    Done,
    Failed,
}

/// What the closing handshake and a failure leave (`Connection::closing`).
#[derive(Default)]
struct Closing {
    /// The peer's close frame: its code and reason.
    received: Option<(CloseCode, String)>,
    /// Our close frame (an echo of the peer's close, or the one failing the
    /// connection) waits until the application has polled the events that
    /// arrived before it, so it can still answer them: the number of such
    /// events left, and the close frame's code and reason.
    echo: Option<(usize, Option<CloseCode>, String)>,
    /// Why the connection failed, if it did.
    failure: Option<ConnectionError>,
}

/// A client's non-101 response, while its body is read.
struct ErrorHead {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
}

/// A server's upgrade request, while the application decides.
struct Decision {
    key: String,
    protocols: Vec<String>,
    /// The `Sec-WebSocket-Extensions` values offered.
    offers: Vec<String>,
}

struct InMessage {
    kind: MessageKind,
    /// The RSV bits of its first frame: the extensions that transformed it.
    rsv: Rsv,
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

/// At most this many pongs wait to be sent; older ones are dropped.
const MAX_PENDING_PONGS: usize = 16;
/// At most this many unanswered pings are remembered for latency matching.
const MAX_PINGS_TRACKED: usize = 16;
/// The start of a non-101 response body that is kept for the error.
const MAX_ERROR_BODY: usize = 1024;

impl Connection {
    /// A client connection. The upgrade request is queued for
    /// [`poll_transmit`](Self::poll_transmit) at once.
    ///
    /// The request is checked first ([`ClientRequest::validate`]), and so are the extension
    /// offers: nothing a caller passes can add a header line or break the request line. An
    /// invalid request is an [`Error::InvalidRequest`] naming the field, and no connection (no
    /// byte) is made.
    ///
    /// The configuration may be shared: pass an `Arc<Config>` to make many
    /// connections from one without copying it into each.
    pub fn client(
        cfg: impl Into<Arc<Config>>,
        request: &ClientRequest,
        now: Instant,
    ) -> Result<Connection, Error> {
        let mut conn = Connection::new(Side::Client, cfg.into(), now);
        let mut nonce = [0u8; 16];
        conn.rng.fill_bytes(&mut nonce);
        let upgrade = ClientUpgrade::with_nonce(&conn.cfg, request, Http::V1, &nonce)?;
        handshake::write_request_head(&request.resource, upgrade.headers(), &mut conn.raw_out);
        conn.hs = Handshake::ClientAwaitResponse {
            upgrade: Box::new(upgrade),
        };
        Ok(conn)
    }

    /// A connection that starts open, for a stream another HTTP stack upgraded (see
    /// [`crate::upgrade`]): its side, subprotocol and extensions come from `upgraded`.
    /// [`Event::Open`] is the first event; frames flow at once.
    pub fn upgraded(cfg: impl Into<Arc<Config>>, upgraded: Upgraded, now: Instant) -> Connection {
        let mut conn = Connection::new(upgraded.side, cfg.into(), now);
        conn.install(upgraded);
        conn
    }

    /// A server connection waiting for an upgrade request.
    ///
    /// The configuration may be shared: pass an `Arc<Config>` to make many
    /// connections from one without copying it into each.
    pub fn server(cfg: impl Into<Arc<Config>>, now: Instant) -> Connection {
        Connection::new(Side::Server, cfg.into(), now)
    }

    fn new(side: Side, cfg: Arc<Config>, now: Instant) -> Connection {
        let rng = MaskRng::new(side, cfg.rng_seed);
        Connection {
            side,
            timers: Timers::starting(after(now, cfg.handshake_timeout)),
            cfg,
            rng,
            now,
            hs: Handshake::ServerAwaitRequest,
            rbuf: BytesMut::new(),
            room: Room::default(),
            rbuf_alt: None,
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
            ctrl_q: LazyQueue::new(),
            data_q: VecDeque::new(),
            pending_pongs: LazyQueue::new(),
            close_frame: None,
            tx_fragment: false,
            buffered: 0,
            our_close: OurClose::NotQueued,
            closing: None,
            initiator: None,
            ending: Ending::Running,
            eof_received: false,
            last_received: None,
            last_heard: None,
            pings_out: LazyQueue::new(),
            ping_counter: 0,
            latency: None,
            events: LazyQueue::new(),
            stats: Stats::default(),
            protocol: None,
            ext: Chain::default(),
        }
    }

    /// Client or server.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The life-cycle state.
    pub fn state(&self) -> State {
        if self.ending == Ending::Closed {
            State::Closed
        } else if !matches!(self.hs, Handshake::Done) {
            State::Connecting
        } else if self.our_close.queued()
            || self.close_received().is_some()
            || self.failure().is_some()
            || self.ending != Ending::Running
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
        self.protocol.as_deref().map(String::as_str)
    }

    /// The agreed `Sec-WebSocket-Extensions` value.
    pub fn extensions(&self) -> Option<&str> {
        self.ext.header()
    }

    /// The negotiated extensions, in the agreed order (downcast with
    /// [`Extension::as_any`](crate::extension::Extension::as_any) to read their state).
    pub fn negotiated_extensions(&self) -> impl Iterator<Item = &dyn extension::Extension> {
        self.ext.iter()
    }

    /// The agreed permessage-deflate parameters.
    pub fn deflate_params(&self) -> Option<&DeflateParams> {
        self.ext
            .iter()
            .find_map(|e| e.as_any().downcast_ref::<DeflateExtension>())
            .map(DeflateExtension::params)
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
        self.has_frames_or_raw() || matches!(self.ending, Ending::ShutdownDue { .. })
    }

    /// Whether [`poll_event`](Self::poll_event) has an event. A driver that
    /// hands events to the application later (from another thread) should
    /// poll each one only when the application takes it: the peer's close
    /// is echoed once the events before it have been polled, so the
    /// application can still answer them.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event, if any. `Closed` is always the last one.
    #[must_use = "drain the output until it returns None (see the driving contract)"]
    pub fn poll_event(&mut self) -> Option<Event> {
        // The application comes back for more only after it has handled the
        // previous event: that is when a deferred close echo may go out.
        if matches!(self.echo_after_events(), Some((0, _, _))) {
            self.flush_close_echo();
        }
        let e = self.events.pop_front()?;
        if let Some((left, _, _)) = self.closing.as_mut().and_then(|c| c.echo.as_mut()) {
            *left = left.saturating_sub(1);
        }
        if matches!(e, Event::Open(_)) && self.events.is_empty() {
            // The handshake's events are out: give their allocation back at
            // once (not with the buffers a while later), so that the next
            // connection's handshake reuses it instead of it being freed
            // between long-lived connections, where it would stay resident.
            self.events.release();
        }
        Some(e)
    }

    /// Whether a queue that fills only in answer to input (events, pongs)
    /// or to our keepalive pings holds an allocation but no item. Such
    /// spare capacity is freed with the buffers, [`Config::release_buffers_after`]
    /// after the last input: the queue of a connection that went quiet after
    /// its handshake (the `UpgradeRequest` and `Open` events) holds nothing.
    ///
    /// (The data queue is not among them: an application may send without
    /// any input, and must not allocate per message for it.)
    fn queues_have_spare(&self) -> bool {
        self.events.has_spare()
            || self.pending_pongs.has_spare()
            || self.ctrl_q.has_spare()
            || self.pings_out.has_spare()
    }

    /// When the spare capacity of the queues is due to be freed, if there is
    /// any (never with a zero release delay: nothing is scheduled then).
    pub(super) fn queue_release_at(&self) -> Option<Instant> {
        let delay = self.cfg.release_buffers_after;
        (!delay.is_zero() && self.queues_have_spare()).then(|| after(self.last_activity, delay))
    }

    /// Frees the allocations of the empty queues (see [`Self::queues_have_spare`]).
    pub(super) fn release_queues(&mut self) {
        self.events.release();
        self.pending_pongs.release();
        self.ctrl_q.release();
        self.pings_out.release();
    }

    fn closing_mut(&mut self) -> &mut Closing {
        self.closing.get_or_insert_with(Box::default)
    }

    pub(super) fn failure(&self) -> Option<&ConnectionError> {
        self.closing.as_ref()?.failure.as_ref()
    }

    pub(super) fn set_failure(&mut self, e: ConnectionError) {
        self.closing_mut().failure = Some(e);
    }

    pub(super) fn close_received(&self) -> Option<&(CloseCode, String)> {
        self.closing.as_ref()?.received.as_ref()
    }

    pub(super) fn echo_after_events(&self) -> Option<&(usize, Option<CloseCode>, String)> {
        self.closing.as_ref()?.echo.as_ref()
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
