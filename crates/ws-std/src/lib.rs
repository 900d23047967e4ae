//! Blocking WebSocket driver over `std::net` (and rustls for `wss://`) for
//! the sans-IO core [`ws_proto`], plus an event-style client.
//!
//! Three ways in:
//!
//! - **Blocking, like a `TcpStream`**: [`connect`] (`ws://`, `wss://`) and
//!   [`accept`] give a [`WebSocket`] with `recv`, `send_*` and `close`;
//!   [`WebSocket::split`] gives a [`WsReader`] and a [`WsWriter`] for two
//!   threads. The sending and state methods are [`WsWriter`]'s, once: a
//!   `WebSocket` dereferences to its writer.
//! - **A server helper**: [`serve`] runs one thread per connection over a
//!   `TcpListener`, with an upgrade callback ([`ServerOptions::on_upgrade`]),
//!   a connection limit and a [`ServerHandle::shutdown`].
//! - **An event-style client**: [`WebSocketClient`], modelled on Best.HTTP's
//!   C# `WebSocket` (`docs/from-best-http.md` maps one onto the other), with
//!   handlers like C# events, several per event and removable (`on_open`,
//!   `on_message`, `on_binary`, `on_binary_segment`, `on_incomplete_frame`,
//!   `on_ping`, `on_pong`, `on_closed` *xor* `on_error`), run on its IO
//!   thread or in the application's [`dispatch`](WebSocketClient::dispatch)
//!   ([`Delivery`]), a send queue with an exact
//!   [`buffered_amount`](WebSocketClient::buffered_amount) and a limit, and a
//!   keepalive switch.
//!
//! ```
//! use std::net::TcpListener;
//! use ws_std::{connect, serve, ClientOptions, Received, ServeOptions};
//!
//! // An echo server on a free loopback port.
//! let server = serve(TcpListener::bind("127.0.0.1:0")?, ServeOptions::default(), |mut ws| {
//!     while let Ok(Received::Message(m)) = ws.recv() {
//!         if ws.send(m.kind, m.data).is_err() {
//!             break;
//!         }
//!     }
//! })?;
//!
//! let url = format!("ws://{}/echo", server.local_addr());
//! let mut ws = connect(&url, &ClientOptions::default())?;
//! ws.send_text("hello")?;
//! match ws.recv()? {
//!     Received::Message(m) => assert_eq!(m.as_text(), Some("hello")),
//!     other => panic!("{other:?}"),
//! }
//! ws.close(ws_proto::CloseCode::NORMAL, "done")?;
//! while let Ok(r) = ws.recv() {
//!     if let Received::Closed(c) = r {
//!         assert!(c.clean);
//!     }
//! }
//! assert!(server.shutdown());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How it drives the core
//!
//! One private routine drives the [`ws_proto::Connection`]: after every
//! input or command it drains `poll_transmit` (into a bounded wire queue,
//! encrypting for TLS), drains `poll_event`, and fires the timers that
//! `poll_timeout` says are due. The next deadline becomes the socket's read
//! timeout, so keepalive pings, the idle timeout and the close timeout run
//! inside `recv` (and on the event client's IO thread). `Transmit::Shutdown`
//! becomes `shutdown(Write)`, after a TLS `close_notify`.
//!
//! Socket reads and writes happen outside the lock around the core (and its
//! rustls session): a reader blocked in `recv` never blocks a writer, and a
//! writer blocked on a slow peer never stops the reader from answering
//! pings. The wire queue holds at most 64 KiB; the rest waits in the core,
//! where its `buffered_amount` counts it.
//!
//! # TLS
//!
//! Every rustls configuration this crate builds comes from [`ws_net::tls`]
//! (shared with the other drivers) and uses the *ring* provider explicitly
//! (`builder_with_provider`), never the process default, so no feature
//! combination elsewhere in a build can make it panic. Clients trust
//! the platform's trust store by default (or the bundled `webpki-roots`, or
//! a store of your own), plus extra certificates ([`TlsClientOptions`]; see
//! docs/connecting.md, also for proxies and redirects); the SNI name and the name checked are
//! the URL's host. Servers take a rustls `ServerConfig`
//! ([`server_config_from_pem`]).
//!
//! # The client's request
//!
//! URLs are parsed by [`ws_net::url::WsUrl`] and the upgrade request is
//! assembled by [`RequestOptions::build`](ws_net::request::RequestOptions::build),
//! the same code every driver uses; the core validates it before any name is resolved or socket
//! opened, so a header value, origin, subprotocol or path that could add a
//! header line or break the request line fails the call with an error naming
//! the field ([`Error::invalid_request`]) and nothing reaches the network.
//! The server's `Origin` allow-list is [`ws_net::origin::origin_allowed`].
//!
//! # Errors
//!
//! One [`Error`] for every API of the crate. Like every driver's error it
//! implements [`DriverError`]: [`kind`](DriverError::kind) sorts it into
//! an [`ErrorKind`] shared by all drivers (protocol, TLS, I/O, timeout,
//! closed, backpressure...), and [`io_kind`](DriverError::io_kind) keeps the
//! `io::ErrorKind` of an I/O failure.
//!
//! # Logging
//!
//! Lines go to the [`log`] crate under the target `ws_std`, each starting
//! with its connection's id, e.g. `[ws#17] open (subprotocol ...)`
//! ([`ConnId`]), and with the name an event client was given, e.g.
//! `[ws#17 lobby] open ...` ([`ClientBuilder::log_context`]).
//!
//! # What this crate never does
//!
//! It holds no protocol knowledge (no opcodes, no header parsing, no close
//! code rules: all of that is the core's), never panics on peer data, and
//! never lets a queue grow without bound: the core bounds what it keeps,
//! the wire queue is capped, and the event client's send queue has a limit.
#![forbid(unsafe_code)]

mod driver;
mod error;
mod event_client;
mod handshake;
mod logctx;
mod options;
mod server;
mod tls;
mod websocket;

/// The sans-IO protocol core this driver runs ([`Config`](ws_proto::Config),
/// [`Message`](ws_proto::Message), [`CloseCode`](ws_proto::CloseCode)...),
/// re-exported so that depending on `ws-std` alone is enough.
pub use ws_proto;

pub use error::{Error, Timeout};
pub use event_client::{
    ClientBuilder, Delivery, HandlerId, Payload, ReadyState, WebSocketClient, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BUFFERED, DEFAULT_MAX_PENDING, DEFAULT_PING_INTERVAL,
};
pub use handshake::{accept, connect};
pub use logctx::ConnId;
pub use options::{
    ClientOptions, RequestHook, RequestOptions, ServerOptions, UpgradeCallback, UpgradeResponse,
};
pub use server::{serve, ServeOptions, ServerHandle, RETRY_AFTER_SECS};
pub use tls::{server_config_from_der, server_config_from_pem, Roots, TlsClientOptions};
pub use websocket::{Received, WebSocket, WsReader, WsWriter};
/// The classification every driver's error shares (from [`ws_net`]):
/// [`Error`] implements [`DriverError`].
pub use ws_net::{DriverError, ErrorKind};
