//! What the application implements.

use ws_proto::{Accept, Bytes, Closed, Fragment, Message, OpenInfo, UpgradeRequest};

use crate::ctx::Ctx;
use crate::id::ConnId;

/// The application's side of an event loop: one value per loop, called on
/// the loop's thread with the connection's id and a [`Ctx`] through which it
/// can send, ping, close, connect and look at any connection of the loop.
///
/// Every connection that reaches the handler (accepted or connected) ends
/// with exactly one [`on_close`](Handler::on_close), also when the loop is
/// stopped or shut down; nothing is called for an id after that.
///
/// Commands given through `ctx` are carried out once the callback returns
/// (bytes are written then), in the order they were given.
#[allow(unused_variables)]
pub trait Handler {
    /// The loop is starting (called once, before the first poll). Clients
    /// typically open their connections here.
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {}

    /// Server role: a valid upgrade request arrived. The default accepts it
    /// without a subprotocol.
    fn on_upgrade(&mut self, ctx: &mut Ctx<'_>, id: ConnId, request: &UpgradeRequest) -> Decision {
        Decision::Accept(Accept::new())
    }

    /// The opening handshake completed; messages may flow.
    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, info: &OpenInfo) {}

    /// A whole message arrived.
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, message: Message);

    /// Streaming mode (`Config::streaming`): one piece of a message arrived.
    fn on_fragment(&mut self, ctx: &mut Ctx<'_>, id: ConnId, fragment: Fragment) {}

    /// A ping arrived (already answered when `Config::auto_pong` is on).
    fn on_ping(&mut self, ctx: &mut Ctx<'_>, id: ConnId, payload: &Bytes) {}

    /// A pong arrived.
    fn on_pong(&mut self, ctx: &mut Ctx<'_>, id: ConnId, payload: &Bytes) {}

    /// The connection is over (cleanly or not: see [`Closed`]); `id` is no
    /// longer valid once this returns.
    fn on_close(&mut self, ctx: &mut Ctx<'_>, id: ConnId, closed: &Closed) {}

    /// A send to `id` was refused because its send queue is full
    /// (`Limits::max_send_queue`; `buffered` bytes are waiting). Called once
    /// per episode: not again until [`on_drain`](Handler::on_drain).
    fn on_backpressure(&mut self, ctx: &mut Ctx<'_>, id: ConnId, buffered: usize) {}

    /// After [`on_backpressure`](Handler::on_backpressure): the send queue of
    /// `id` has been handed to the transport completely; sending may resume.
    fn on_drain(&mut self, ctx: &mut Ctx<'_>, id: ConnId) {}
}

/// The answer to an upgrade request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Decision {
    /// Accept (with a subprotocol and extra headers if wanted).
    Accept(Accept),
    /// Refuse with this HTTP status, headers and body; the connection then
    /// closes.
    Reject {
        /// HTTP status (200-599, not 101).
        status: u16,
        /// Extra response headers.
        headers: Vec<(String, String)>,
        /// Response body.
        body: Vec<u8>,
    },
    /// Decide later with [`Ctx::accept`] or [`Ctx::reject`] (the core's
    /// `handshake_timeout` still runs).
    Defer,
}

impl Decision {
    /// Accept without a subprotocol or extra headers.
    pub fn accept() -> Decision {
        Decision::Accept(Accept::new())
    }

    /// Refuse with `status` and a plain-text `body`.
    pub fn reject(status: u16, body: impl Into<Vec<u8>>) -> Decision {
        Decision::Reject {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}
