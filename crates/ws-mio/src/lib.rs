//! An event-loop driver for the [`ws_proto`] WebSocket core over `mio`:
//! many connections, both roles (`ws://` and `wss://` through rustls), on
//! one thread per loop, and N loops for N CPUs.
//!
//! - [`EventLoop`]: one `mio::Poll`, a table of sessions, a deadline heap.
//!   It calls your [`Handler`] with a connection id and a [`Ctx`] that
//!   sends, pings, closes, accepts and connects.
//! - [`LoopGroup`]: N loops on N threads sharing their listeners
//!   (`SO_REUSEPORT`: the kernel spreads connections over the loops).
//! - [`Handle`]: cloneable and `Send + Sync`; sends, closes, broadcasts or
//!   runs closures on a loop from any thread (a bounded queue plus a
//!   `mio::Waker`).
//!
//! # How a loop drives its connections
//!
//! - **One driving routine.** After every input (bytes read, end of
//!   stream, a deadline, a transport error) and after every callback that
//!   gave commands, the loop follows the core's contract for that
//!   connection: write what `poll_transmit` hands out, deliver every event,
//!   then re-arm the deadline (`poll_timeout`) and the poll interest.
//! - **Interest from the core.** Readable while reading is allowed;
//!   writable only while a write is blocked (something is queued that the
//!   socket did not take).
//! - **Timers.** Each connection's next `poll_timeout` goes into a binary
//!   heap; the poll waits until the earliest entry.
//! - **Fairness.** Per iteration a connection reads at most
//!   [`Options::read_budget`] bytes and writes at most
//!   [`Options::write_budget`] per drive; the rest is carried to the next
//!   iteration, so one flooding peer cannot starve the others.
//! - **Memory.** An idle connection holds no buffer in the driver: a read
//!   borrows a pooled segment only while the socket is readable and returns
//!   it right after the bytes went to the core; writes go through one
//!   scratch buffer per loop, and only the unwritten remainder of a partial
//!   write is kept (in a pooled segment) until the socket is writable.
//! - **Backpressure.** A full send queue refuses `send`
//!   ([`ws_proto::Error::Backpressure`]) and calls
//!   [`Handler::on_backpressure`], then [`Handler::on_drain`] once it has
//!   drained. While the buffer pool is over its budget
//!   ([`Options::pool`]) the loop stops reading (readable interest is
//!   dropped) and resumes when buffers come back.
//! - **Shutdown.** [`Handle::shutdown`] stops accepting, closes every open
//!   connection with 1001, waits up to a grace period and drops the rest;
//!   every connection still gets exactly one [`Handler::on_close`].
//!
//! **Client requests.** [`EventLoop::connect`] / [`Ctx::connect`] parse the
//! URL with [`ws_net::url::WsUrl`] and assemble the upgrade request with
//! [`RequestOptions::build`] (origin, subprotocols, headers, then the
//! request hook), the same code every driver uses;
//! the core validates it before any name is resolved or socket opened, so a
//! header value, origin, subprotocol or path that could add a header line or
//! break the request line is refused with an error naming the field
//! ([`Error::invalid_request`]) and nothing reaches the network. The
//! server's `Origin` allow-list is [`ws_net::origin::origin_allowed`]; the
//! rustls configurations come from [`ws_net::tls`] (see [`tls`]).
//!
//! The driver holds no protocol knowledge: no opcodes, no header parsing,
//! no close-code rules. It moves bytes and time into the core and events
//! out of it.
//!
//! # Example: an echo server and a client on one loop
//!
//! ```
//! use std::time::Duration;
//! use ws_mio::{ConnId, ConnectOptions, Ctx, EventLoop, Handler, Options};
//! use ws_proto::{Closed, CloseCode, Message, OpenInfo};
//!
//! #[derive(Default)]
//! struct App { client: Option<ConnId>, echoed: Option<String> }
//!
//! impl Handler for App {
//!     fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &OpenInfo) {
//!         if Some(id) == self.client {
//!             ctx.send_text(id, "hello").unwrap();
//!         }
//!     }
//!     fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
//!         if Some(id) == self.client {
//!             self.echoed = m.as_text().map(String::from);
//!             ctx.close(id, CloseCode::NORMAL, "done").unwrap();
//!         } else {
//!             ctx.send(id, m.kind, m.data).unwrap(); // the server side echoes
//!         }
//!     }
//!     fn on_close(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &Closed) {
//!         if Some(id) == self.client {
//!             ctx.stop();
//!         }
//!     }
//! }
//!
//! let mut ev = EventLoop::new(Options::default(), App::default())?;
//! let addr = ev.listen("127.0.0.1:0".parse().unwrap())?;
//! let id = ev.connect(&format!("ws://{addr}/"), ConnectOptions::default())?;
//! ev.handler_mut().client = Some(id);
//! for _ in 0..1000 {
//!     if !ev.turn(Some(Duration::from_millis(100)))? {
//!         break;
//!     }
//! }
//! assert_eq!(ev.handler().echoed.as_deref(), Some("hello"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod admit;
mod commands;
mod ctx;
mod dispatch;
mod error;
mod event_loop;
mod group;
mod handle;
mod handler;
mod id;
mod io;
mod net;
mod options;
mod sessions;
mod state;
mod timers;
pub mod tls;
mod transport;

/// The sans-IO protocol core this driver runs ([`Config`](ws_proto::Config),
/// [`Message`](ws_proto::Message), [`CloseCode`](ws_proto::CloseCode)...),
/// re-exported so that depending on `ws-mio` alone is enough.
pub use ws_proto;

pub use ctx::Ctx;
pub use error::Error;
pub use event_loop::EventLoop;
pub use group::{GroupBuilder, LoopGroup};
pub use handle::Handle;
pub use handler::{Decision, Handler};
pub use id::ConnId;
pub use options::{ConnectOptions, Options, RequestHook, RequestOptions};
pub use state::LoopStats;

/// Bytes of the per-connection state kept by a loop, excluding heap
/// allocations of the core: the session record (which embeds the core
/// [`ws_proto::Connection`]) plus its slot in the session table. Add
/// [`Ctx::retained_bytes`] for the buffers a connection holds.
pub fn session_size() -> usize {
    std::mem::size_of::<sessions::Session>()
        + std::mem::size_of::<Option<Box<sessions::Session>>>()
        + 4
}

/// `size_of` the core [`ws_proto::Connection`] (embedded in each session).
pub fn connection_size() -> usize {
    std::mem::size_of::<ws_proto::Connection>()
}
