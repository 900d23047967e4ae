//! A sans-IO WebSocket protocol core: RFC 6455 and RFC 7692
//! (permessage-deflate), for both roles.
//!
//! A [`Connection`] consumes bytes and emits [`Event`]s and outgoing bytes.
//! It never touches a socket, a thread or a clock: time is an argument
//! (`now: Instant`) and randomness comes from a seedable RNG in the
//! [`Config`]. Drivers (`ws-std`, `ws-mio`, your own event loop) move the
//! bytes.
//!
//! # The driving contract
//!
//! After **any** input (`handle_*`) or command (`send`, `close`, ...):
//!
//! 1. drain [`Connection::poll_transmit`] until `None`, writing each
//!    [`Transmit::Data`] to the transport and shutting its write side down on
//!    [`Transmit::Shutdown`];
//! 2. drain [`Connection::poll_event`] until `None`;
//! 3. read [`Connection::poll_timeout`] and call
//!    [`Connection::handle_timeout`] when it passes;
//! 4. only then wait for IO.
//!
//! Every connection ends with exactly one [`Event::Closed`], always the last
//! event.
//!
//! # Example: a client and a server wired back to back in memory
//!
//! ```
//! use std::time::Instant;
//! use ws_proto::{Accept, ClientRequest, Config, Connection, Event, MessageKind, Transmit};
//!
//! let now = Instant::now();
//! let mut client = Connection::client(Config::default(), &ClientRequest::new("example.com", "/chat"), now).expect("a valid request");
//! let mut server = Connection::server(Config::default(), now);
//!
//! // One step of a driver: move every byte `from` wants to send into `to`.
//! fn pump(from: &mut Connection, to: &mut Connection, now: Instant) {
//!     let mut buf = [0u8; 4096];
//!     while let Some(t) = from.poll_transmit(now, &mut buf) {
//!         match t {
//!             Transmit::Data(n) => to.handle_input(now, &buf[..n]),
//!             Transmit::Shutdown => to.handle_eof(now),
//!         }
//!     }
//! }
//!
//! pump(&mut client, &mut server, now);
//! let Some(Event::UpgradeRequest(req)) = server.poll_event() else { panic!() };
//! assert_eq!(req.path, "/chat");
//! server.accept(Accept::new()).unwrap();
//! pump(&mut server, &mut client, now);
//! assert!(matches!(server.poll_event(), Some(Event::Open(_))));
//! assert!(matches!(client.poll_event(), Some(Event::Open(_))));
//!
//! client.send_text("hello").unwrap();
//! pump(&mut client, &mut server, now);
//! match server.poll_event() {
//!     Some(Event::Message(m)) => assert_eq!(m.as_text(), Some("hello")),
//!     other => panic!("{other:?}"),
//! }
//!
//! client.close(ws_proto::CloseCode::NORMAL, "bye").unwrap();
//! for _ in 0..3 {
//!     pump(&mut client, &mut server, now);
//!     pump(&mut server, &mut client, now);
//! }
//! let closed = |c: &mut Connection| loop {
//!     match c.poll_event() {
//!         Some(Event::Closed(c)) => break c,
//!         Some(_) => continue,
//!         None => panic!("no Closed event"),
//!     }
//! };
//! assert!(closed(&mut client).clean);
//! assert_eq!(closed(&mut server).code, ws_proto::CloseCode::NORMAL);
//! # let _ = MessageKind::Text;
//! ```
//!
//! # What this crate never does
//!
//! It never opens a socket, spawns a thread, sleeps or reads the clock
//! (`clippy.toml` forbids those APIs), never panics on peer data, and never
//! keeps more bytes for a peer than its [`Limits`] allow.

// One module lends the receive buffer's spare room to the transport
// (`connection/room.rs`, with its reasons); nowhere else.
#![deny(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
// Peer data must never reach a panic: no unchecked indexing or slicing and no
// arithmetic that can overflow outside tests. Each remaining site says why it
// cannot fail (`#[allow]` with a reason).
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

mod close;
mod config;
mod connection;
pub mod deflate;
mod error;
mod event;
pub mod extension;
pub mod frame;
pub mod handshake;
pub mod mask;
mod prepared;
pub mod upgrade;
pub mod utf8;

pub use close::CloseCode;
pub use config::{
    ClientRequest, Config, Limits, BYTES_PER_EXTRA_FRAGMENT, CLIENT_FRAGMENT_SIZE,
    SERVER_FRAGMENT_SIZE,
};
pub use connection::{
    Accept, Connection, Side, State, Stats, Transmit, VectoredTransmit, VECTORED_MIN,
};
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{ConnectionError, Error, HandshakeError, ProtocolError, TransportError};
pub use event::{
    Closed, Event, Fragment, Initiator, Message, MessageKind, OpenInfo, UpgradeRequest,
};
pub use prepared::PreparedMessage;

pub use bytes::Bytes;
