//! An async WebSocket driver for tokio over the [`ws_proto`] sans-IO core.
//!
//! - [`WebSocketStream`] over any `AsyncRead + AsyncWrite + Unpin` stream: a `futures`
//!   [`Stream`](futures_core::Stream) of [`Message`]s and a [`Sink`](futures_sink::Sink) of them,
//!   [`split`](WebSocketStream::split) into a reader and a writer half for two tasks. Ping/pong,
//!   the closing handshake, keepalive pings and timeouts are the core's (set them in
//!   [`Config`]); their deadlines run on `tokio::time`.
//! - Server: [`accept`] / [`accept_with`] on an accepted stream, where the application sees the
//!   [`UpgradeRequest`] (path, query, headers) and answers with a [`Decision`]: accept with a
//!   subprotocol and extensions ([`Accept`]), or reject with a status and a body.
//! - Client: [`connect`] / [`connect_with`] from a `ws://` or `wss://` URL (subprotocols,
//!   headers, origin, a request hook, permessage-deflate, TLS roots or a complete rustls
//!   configuration: [`ConnectOptions`]), through the workspace's shared driver glue
//!   ([`ws_net`]: one URL parser, one validated request assembly, one rustls builder on the
//!   *ring* provider); or [`client`], the HTTP/1.1 handshake on a stream you connected, from a
//!   validated [`ClientRequest`].
//! - [`Error`] implements [`ws_net::DriverError`]: the same [`ErrorKind`](ws_net::ErrorKind)s
//!   as every other driver of the workspace, with the `io::ErrorKind` of I/O failures.
//! - With the `hyper` feature, `hyper::upgrade` runs a connection that hyper 1.x upgraded
//!   on the core.
//!
//! # How it drives the core
//!
//! There is no background task and no channel: the task that polls the stream (or either
//! half) drives the connection, through one private routine that follows the core's contract.
//! After any input (bytes read, end of stream, a deadline, a transport error) or command, it
//! collects everything `poll_transmit` hands out into one reused 64 KiB buffer and writes it
//! (a burst of small messages costs one `write`, not one per message), takes events as far as
//! the application has room for them (one message at a time), reads `poll_timeout` into one
//! `tokio::time::Sleep`, and only then reads the socket again, into a reused buffer. The steady
//! state allocates nothing per message (see `tests/allocs.rs`).
//!
//! The halves share the connection behind a mutex held only inside a `poll_*` call. The
//! socket and the sleep are polled with a proxy waker that wakes both the task waiting to read
//! and the task waiting to write, so whichever half drives, neither misses a wake-up; progress
//! made by one half (a message read while writing, room made while reading) wakes the other.
//!
//! # Example: a client and an echo server over TCP
//!
//! ```
//! use futures_util::{SinkExt, StreamExt};
//! use tokio::net::{TcpListener, TcpStream};
//! use ws_tokio::{ClientRequest, Config};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let server = tokio::spawn(async move {
//!     let (tcp, _) = listener.accept().await?;
//!     let mut ws = ws_tokio::accept(tcp).await?;
//!     while let Some(msg) = ws.next().await {
//!         ws.send(msg?).await?;
//!     }
//!     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
//! });
//!
//! let tcp = TcpStream::connect(addr).await?;
//! tcp.set_nodelay(true)?;
//! let request = ClientRequest::new(addr.to_string(), "/echo");
//! let mut ws = ws_tokio::client(tcp, &request, Config::default()).await?;
//! ws.send(ws_tokio::text("hello")).await?;
//! let echo = ws.next().await.expect("an echo")?;
//! assert_eq!(echo.as_text(), Some("hello"));
//!
//! ws.close().await?; // SinkExt::close: close code 1000
//! assert!(ws.next().await.is_none()); // the closing handshake completed
//! assert_eq!(ws.close_info().unwrap().code, ws_tokio::CloseCode::NORMAL);
//! server.await?.map_err(|e| e.to_string())?;
//! # Ok(())
//! # }
//! ```
//!
//! # Example: `connect` to a URL, `ws://` and `wss://`
//!
//! ```
//! use futures_util::{SinkExt, StreamExt};
//! use tokio::net::TcpListener;
//! use ws_tokio::{ConnectOptions, DeflateConfig, TlsOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A server on 127.0.0.1 for the example: plain TCP and TLS with a self-signed certificate.
//! let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
//! let tls = ws_net::tls::server_config_from_pem(
//!     ck.cert.pem().as_bytes(),
//!     ck.signing_key.serialize_pem().as_bytes(),
//! )?;
//! let (plain, secure) = (TcpListener::bind("127.0.0.1:0").await?, TcpListener::bind("127.0.0.1:0").await?);
//! let (plain_addr, secure_addr) = (plain.local_addr()?, secure.local_addr()?);
//! tokio::spawn(async move {
//!     let (tcp, _) = plain.accept().await.expect("a connection");
//!     let mut ws = ws_tokio::accept(tcp).await.expect("an upgrade");
//!     while let Some(Ok(m)) = ws.next().await {
//!         if ws.send(m).await.is_err() { break }
//!     }
//! });
//! tokio::spawn(async move {
//!     let (tcp, _) = secure.accept().await.expect("a connection");
//!     let tls = tokio_rustls::TlsAcceptor::from(tls).accept(tcp).await.expect("TLS");
//!     let mut ws = ws_tokio::accept(tls).await.expect("an upgrade");
//!     while let Some(Ok(m)) = ws.next().await {
//!         if ws.send(m).await.is_err() { break }
//!     }
//! });
//!
//! // ws:// with the defaults.
//! let mut ws = ws_tokio::connect(&format!("ws://{plain_addr}/echo")).await?;
//! ws.send(ws_tokio::text("hello")).await?;
//! assert_eq!(ws.next().await.expect("an echo")?.as_text(), Some("hello"));
//! ws.close().await?;
//!
//! // wss:// trusting the self-signed certificate, with a subprotocol offer, a header, an
//! // origin, a request hook and permessage-deflate offered.
//! let options = ConnectOptions::default()
//!     .tls(TlsOptions::default().add_root_der(ck.cert.der().to_vec()))
//!     .protocol("chat")
//!     .header("Authorization", "Bearer t0k3n")
//!     .origin("https://app.example")
//!     .request_hook(|req| req.headers.push(("X-Request-Id".into(), "42".into())))
//!     .deflate(Some(DeflateConfig::default()))
//!     .connect_to(secure_addr); // `localhost` names the certificate; connect here
//! let url = format!("wss://localhost:{}/echo", secure_addr.port());
//! let mut ws = ws_tokio::connect_with(&url, &options).await?;
//! ws.send(ws_tokio::text("over TLS")).await?;
//! assert_eq!(ws.next().await.expect("an echo")?.as_text(), Some("over TLS"));
//!
//! // An invalid request never reaches a socket.
//! let bad = ConnectOptions::default().header("X-Test", "a\r\nInjected: yes");
//! let err = ws_tokio::connect_with(&url, &bad).await.unwrap_err();
//! assert_eq!(err.invalid_request().map(|(field, _)| field), Some("X-Test"));
//! assert_eq!(ws_net::DriverError::kind(&err), ws_net::ErrorKind::InvalidRequest);
//! # Ok(())
//! # }
//! ```
//!
//! # Example: a server that chooses per request
//!
//! ```
//! use futures_util::StreamExt;
//! use tokio::net::{TcpListener, TcpStream};
//! use ws_tokio::{Accept, ClientRequest, Config, Decision, Error, UpgradeRequest};
//!
//! /// `/chat` only, with the `chat.v2` subprotocol when the client offers it.
//! fn decide(req: &UpgradeRequest) -> Decision {
//!     if req.path != "/chat" {
//!         return Decision::reject(404, "no such room");
//!     }
//!     match req.protocols.iter().any(|p| p == "chat.v2") {
//!         true => Decision::Accept(Accept::new().protocol("chat.v2")),
//!         false => Decision::accept(),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     for _ in 0..2 {
//!         let (tcp, _) = listener.accept().await.expect("a connection");
//!         tokio::spawn(async move {
//!             if let Ok(mut ws) = ws_tokio::accept_with(tcp, Config::default(), decide).await {
//!                 while let Some(Ok(_)) = ws.next().await {}
//!             }
//!         });
//!     }
//! });
//!
//! let request = ClientRequest::new(addr.to_string(), "/chat").protocol("chat.v2");
//! let ws = ws_tokio::client(TcpStream::connect(addr).await?, &request, Config::default()).await?;
//! assert_eq!(ws.open_info().unwrap().protocol.as_deref(), Some("chat.v2"));
//!
//! let request = ClientRequest::new(addr.to_string(), "/kitchen");
//! let refused = ws_tokio::client(TcpStream::connect(addr).await?, &request, Config::default()).await;
//! let Err(Error::Connection(ws_tokio::ConnectionError::Handshake(
//!     ws_tokio::HandshakeError::Status { status, body, .. },
//! ))) = refused else { panic!("not refused") };
//! assert_eq!((status, &body[..]), (404, &b"no such room"[..]));
//! # Ok(())
//! # }
//! ```
//!
//! # What this crate never does
//!
//! It holds no protocol knowledge (no opcodes, header parsing or close-code rules: those are
//! the core's), spawns no task or thread, parses no URL and builds no request or TLS
//! configuration of its own (`connect` uses [`ws_net`]'s), and keeps no more than one read
//! buffer, one write buffer, one pending message and the core's bounded queues per connection.

#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod connect;
mod driver;
mod error;
mod stream;

#[cfg(feature = "hyper")]
pub mod hyper;

#[cfg(feature = "http2")]
pub mod h2;

use std::future::poll_fn;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

pub use connect::{
    connect, connect_with, ConnectOptions, MaybeTlsStream, RequestHook, RequestOptions, TlsOptions,
};
pub use error::Error;
/// The rustls this crate is built with (for [`TlsOptions`]: root stores, certificates, a
/// complete `ClientConfig`).
pub use rustls;
pub use stream::{WebSocketReader, WebSocketStream, WebSocketWriter};
pub use ws_proto::{
    Accept, Bytes, ClientRequest, CloseCode, Closed, Config, ConnectionError, DeflateConfig,
    HandshakeError, Initiator, Limits, Message, MessageKind, OpenInfo, UpgradeRequest,
};

use driver::{now, Inner, Role, Until};
use ws_proto::Connection;

/// A text message.
pub fn text(s: impl Into<String>) -> Message {
    Message {
        kind: MessageKind::Text,
        data: Bytes::from(s.into()),
    }
}

/// A binary message.
pub fn binary(data: impl Into<Bytes>) -> Message {
    Message {
        kind: MessageKind::Binary,
        data: data.into(),
    }
}

/// A server's answer to an upgrade request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Decision {
    /// Accept, with a subprotocol, extensions and headers of the application's choice.
    Accept(Accept),
    /// Refuse with an HTTP status (200..=599, not 101), extra headers and a body.
    Reject {
        /// The status.
        status: u16,
        /// Extra response headers.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
}

impl Decision {
    /// Accept without a subprotocol.
    pub fn accept() -> Decision {
        Decision::Accept(Accept::new())
    }

    /// Refuse with `status` and `body`.
    pub fn reject(status: u16, body: impl Into<Vec<u8>>) -> Decision {
        Decision::Reject {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

impl From<Accept> for Decision {
    fn from(a: Accept) -> Decision {
        Decision::Accept(a)
    }
}

/// Server role: performs the opening handshake on an accepted stream with the default
/// configuration, accepting any valid upgrade request (no subprotocol; permessage-deflate only
/// if [`Config::deflate`] is set, which it is not by default).
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
) -> Result<WebSocketStream<S>, Error> {
    accept_with(stream, Config::default(), |_| Decision::accept()).await
}

/// Server role: reads the upgrade request, shows it to `decide`, and answers as it decides.
///
/// An accept completes the handshake (the 101 response is written) and returns the stream. A
/// reject writes the response the core builds from the status, headers and body, closes, and
/// returns [`Error::Connection`] with [`HandshakeError::Rejected`]. An invalid request is
/// answered by the core (400, 426, 431...) and returned as [`Error::Connection`]. An accept or
/// reject the core refuses (a subprotocol that was not offered, an invalid header) answers 500
/// and returns [`Error::Command`]. A `decide` that panics answers 500 too and returns
/// [`Error::CallbackPanicked`] with the panic's message: application code cannot leave a
/// client without an answer.
///
/// `config` is a [`Config`] or an `Arc<Config>`: a server that passes one `Arc` to every
/// connection (with `streaming` off, as the stream delivers whole messages) shares it instead
/// of holding a copy per connection.
pub async fn accept_with<S, F>(
    stream: S,
    config: impl Into<Arc<Config>>,
    decide: F,
) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&UpgradeRequest) -> Decision,
{
    let mut config: Arc<Config> = config.into();
    if config.streaming {
        // The stream hands out whole messages.
        Arc::make_mut(&mut config).streaming = false;
    }
    let limit = config.limits.max_send_queue;
    let conn = Connection::server(config, now());
    // On the heap while the handshake runs: the future (and the task of a server that spawns
    // one per connection) stays small, not one connection's state larger.
    let mut inner = Box::new(Inner::new(stream, conn, limit));
    poll_fn(|cx| inner.poll_until(cx, Until::Handshake, Role::Read)).await;
    let Some(request) = inner.request.take() else {
        return Err(inner.failure());
    };
    let decision = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decide(&request)));
    let answer = match decision {
        Ok(Decision::Accept(a)) => inner.conn.accept(a),
        Ok(Decision::Reject {
            status,
            headers,
            body,
        }) => inner.conn.reject(status, &headers, &body),
        Err(payload) => {
            let _ = inner
                .conn
                .reject(500, &[], b"the server could not answer this request");
            poll_fn(|cx| inner.poll_until(cx, Until::Closed, Role::Read)).await;
            return Err(Error::CallbackPanicked(ws_net::panic_message(&*payload)));
        }
    };
    if let Err(e) = answer {
        let _ = inner
            .conn
            .reject(500, &[], b"the server could not answer this request");
        poll_fn(|cx| inner.poll_until(cx, Until::Closed, Role::Read)).await;
        return Err(Error::Command(e));
    }
    if !inner.conn.is_open() {
        // Rejected: the response goes out, then the connection closes.
        poll_fn(|cx| inner.poll_until(cx, Until::Closed, Role::Read)).await;
        return Err(inner.failure());
    }
    // The 101 goes out now; a peer that leaves at once shows as the stream's end.
    poll_fn(|cx| inner.poll_until(cx, Until::Flushed, Role::Write)).await;
    Ok(WebSocketStream::from_inner(*inner))
}

/// Client role: performs the HTTP/1.1 opening handshake over `stream` (already connected, TLS
/// included if any). The request is validated by the core first ([`ClientRequest::validate`]):
/// an invalid one is [`Error::Command`] and nothing is sent. A refusal (any status but 101) is
/// [`Error::Connection`] with [`HandshakeError::Status`] (status, headers, start of the body).
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    request: &ClientRequest,
    config: Config,
) -> Result<WebSocketStream<S>, Error> {
    let config = config.streaming(false);
    let limit = config.limits.max_send_queue;
    let conn = Box::new(Connection::client(config, request, now())?);
    client_handshake(stream, conn, limit).await
}

/// Drives a client connection (made by the core, request already validated) through the
/// opening handshake.
pub(crate) async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    conn: Box<Connection>,
    send_queue_limit: usize,
) -> Result<WebSocketStream<S>, Error> {
    // On the heap while the handshake runs (see `accept_with`).
    let mut inner = Box::new(Inner::new(stream, *conn, send_queue_limit));
    poll_fn(|cx| inner.poll_until(cx, Until::Handshake, Role::Read)).await;
    if inner.open.is_none() {
        return Err(inner.failure());
    }
    Ok(WebSocketStream::from_inner(*inner))
}
