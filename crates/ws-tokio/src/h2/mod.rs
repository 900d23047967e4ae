//! WebSockets over HTTP/2 (RFC 8441 extended CONNECT), with fallback to HTTP/1.1 (feature
//! `http2`, on the `h2` crate that hyper uses).
//!
//! - **Client**: [`connect_with`] offers ALPN `h2` and `http/1.1` for `wss://`. When the
//!   server speaks HTTP/2 and advertises `SETTINGS_ENABLE_CONNECT_PROTOCOL`, the WebSocket is
//!   an extended CONNECT stream (`:protocol = websocket`); several WebSockets to the same
//!   authority made with the same [`Http2Options`] (or clones) share one HTTP/2 connection.
//!   Otherwise it falls back to the HTTP/1.1 upgrade: on the same TLS connection when ALPN
//!   chose `http/1.1`, on a fresh one when the server speaks HTTP/2 without extended CONNECT.
//!   The request hook runs once per attempt and sees the version in
//!   [`ClientRequest::http`](crate::ClientRequest::http). [`Http2Mode`] turns HTTP/2 off,
//!   forces it, or uses it by prior knowledge for `ws://`.
//! - **Server**: [`serve_connection`] serves the WebSockets of one HTTP/2 connection, each
//!   request accepted or refused with the same [`Decision`](crate::Decision) as an HTTP/1.1
//!   upgrade; [`server_tls_config`] adds ALPN `h2` to a rustls configuration and [`is_h2`] /
//!   [`starts_with_preface`] tell which protocol an accepted connection speaks, so one
//!   listener serves both.
//! - **Flow control**: each WebSocket is one HTTP/2 stream ([`H2Stream`]); received data
//!   goes back to the peer's window only as the application reads it, so a WebSocket that
//!   stops reading stalls its own stream only, and the core's message limits hold as on
//!   HTTP/1.1. Closing a WebSocket ends its stream (END_STREAM after the close frame) and
//!   leaves the connection serving the others.
//!
//! Unlike the rest of this crate, HTTP/2 needs a task per connection to drive it: the client
//! spawns one (`tokio::spawn`) for each HTTP/2 connection it opens, and it ends when the last
//! WebSocket on it and the pool let go of it.
//!
//! ```no_run
//! use futures_util::{SinkExt, StreamExt};
//! use ws_tokio::h2::{connect_with, Http2Options};
//! use ws_tokio::ConnectOptions;
//!
//! # async fn demo() -> Result<(), ws_tokio::Error> {
//! let http2 = Http2Options::default(); // clone it to share its connections
//! let mut ws = connect_with("wss://example.com/chat", &ConnectOptions::default(), &http2).await?;
//! println!("over {:?}", ws.with_io(|t| t.http()));
//! ws.send(ws_tokio::text("hello")).await?;
//! let echo = ws.next().await;
//! # drop(echo);
//! # Ok(())
//! # }
//! ```

mod io;
mod server;

use std::collections::HashMap;
use std::io as stdio;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::client::SendRequest;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use ws_net::url::WsUrl;
use ws_proto::upgrade::{ClientUpgrade, Http};
use ws_proto::{ConnectionError, HandshakeError};

pub use io::H2Stream;
pub use server::serve_connection;

use crate::connect::{http1_connection, open, tls_target, ConnectOptions, MaybeTlsStream};
use crate::driver::now;
use crate::{Error, WebSocketStream};

/// ALPN protocol id of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol id of HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// When the client uses HTTP/2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Http2Mode {
    /// `wss://`: offer HTTP/2 and fall back to HTTP/1.1; `ws://`: HTTP/1.1.
    #[default]
    Try,
    /// HTTP/1.1 only (ALPN `http/1.1`).
    Off,
    /// HTTP/2 only: no fallback; a server without HTTP/2 or extended CONNECT is an error.
    Force,
    /// As [`Try`](Self::Try) for `wss://`; `ws://` speaks HTTP/2 at once (prior knowledge,
    /// "h2c"), with no fallback.
    PriorKnowledge,
}

/// HTTP/2 settings, and the pool of HTTP/2 connections WebSockets share (clones share it).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Http2Options {
    /// When to use HTTP/2.
    pub mode: Http2Mode,
    /// Flow-control window of each stream (each WebSocket), bytes: what a peer may send
    /// ahead of the application's reads. Default 1 MiB.
    pub stream_window: u32,
    /// Flow-control window of the whole connection, bytes. Default 4 MiB.
    pub connection_window: u32,
    /// Server: most WebSockets at once on one connection. Default 256.
    pub max_streams: u32,
    pool: Pool,
}

impl Default for Http2Options {
    fn default() -> Self {
        Http2Options {
            mode: Http2Mode::Try,
            stream_window: 1 << 20,
            connection_window: 4 << 20,
            max_streams: 256,
            pool: Pool::default(),
        }
    }
}

impl Http2Options {
    /// Sets [`mode`](Self::mode).
    pub fn mode(mut self, mode: Http2Mode) -> Self {
        self.mode = mode;
        self
    }

    /// HTTP/2 connections this pool holds now (open, with extended CONNECT).
    pub fn pooled_connections(&self) -> usize {
        self.pool.len()
    }
}

/// Open HTTP/2 connections by authority (`scheme://host:port`).
#[derive(Clone, Debug, Default)]
struct Pool(Arc<Mutex<HashMap<String, SendRequest<Bytes>>>>);

impl Pool {
    fn get(&self, key: &str) -> Option<SendRequest<Bytes>> {
        self.0.lock().ok()?.get(key).cloned()
    }
    fn put(&self, key: String, send: SendRequest<Bytes>) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(key, send);
        }
    }
    fn forget(&self, key: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(key);
        }
    }
    fn len(&self) -> usize {
        self.0.lock().map_or(0, |m| m.len())
    }
}

/// The stream under a WebSocket made by [`connect_with`]: an HTTP/2 stream, or the HTTP/1.1
/// connection it fell back to.
#[derive(Debug)]
#[non_exhaustive]
pub enum Transport {
    /// An extended CONNECT stream on a (possibly shared) HTTP/2 connection.
    Http2(Box<H2Stream>),
    /// An HTTP/1.1 upgrade (TCP, or TLS over TCP).
    Http1(MaybeTlsStream),
}

impl Transport {
    /// The HTTP version the WebSocket runs on.
    pub fn http(&self) -> Http {
        match self {
            Transport::Http2(_) => Http::V2,
            Transport::Http1(_) => Http::V1,
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<stdio::Result<()>> {
        match self.get_mut() {
            Transport::Http2(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Transport::Http1(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<stdio::Result<usize>> {
        match self.get_mut() {
            Transport::Http2(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Transport::Http1(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[stdio::IoSlice<'_>],
    ) -> Poll<stdio::Result<usize>> {
        match self.get_mut() {
            Transport::Http2(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Transport::Http1(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Http2(_) => false,
            Transport::Http1(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<stdio::Result<()>> {
        match self.get_mut() {
            Transport::Http2(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Transport::Http1(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<stdio::Result<()>> {
        match self.get_mut() {
            Transport::Http2(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Transport::Http1(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// An `h2` error as this crate's.
pub(crate) fn io_err(e: h2::Error) -> Error {
    Error::Io(stdio::Error::other(e))
}

/// `config` with ALPN `h2` then `http/1.1`, for a server that serves both (one listener):
/// after the TLS handshake, [`is_h2`] says which one the client chose.
pub fn server_tls_config(config: &rustls::ServerConfig) -> Arc<rustls::ServerConfig> {
    let mut config = config.clone();
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    Arc::new(config)
}

/// Whether the client chose HTTP/2 (ALPN `h2`) on this TLS connection.
pub fn is_h2<S>(tls: &tokio_rustls::server::TlsStream<S>) -> bool {
    tls.get_ref().1.alpn_protocol() == Some(ALPN_H2)
}

/// Whether a plain connection begins with the HTTP/2 client preface (prior knowledge, "h2c"),
/// looked at without consuming it; waits (up to the bytes needed) for the client to send them.
pub async fn starts_with_preface(tcp: &TcpStream) -> stdio::Result<bool> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; PREFACE.len()];
    loop {
        let n = tcp.peek(&mut buf).await?;
        let seen = &buf[..n];
        if n == 0 || !PREFACE.starts_with(seen) {
            return Ok(false);
        }
        if n == PREFACE.len() {
            return Ok(true);
        }
        // A prefix of the preface so far: wait for more (peek returns at once while the
        // bytes are the same, so wait for readability first).
        tcp.readable().await?;
        let mut more = [0u8; PREFACE.len()];
        if tcp.peek(&mut more).await? == n {
            tokio::task::yield_now().await;
        }
    }
}

/// Connects to a `ws://` or `wss://` URL over HTTP/2 when the server offers RFC 8441, else
/// over HTTP/1.1 (see the [module docs](self) for the rules). Errors are
/// [`crate::connect_with`]'s, plus [`Error::Io`] for an HTTP/2 failure and, with
/// [`Http2Mode::Force`], [`Error::Connection`] with [`HandshakeError::Malformed`] naming why
/// HTTP/2 could not be used. `options.config.handshake_timeout` bounds the whole attempt,
/// fallback included.
pub async fn connect_with(
    url: &str,
    options: &ConnectOptions,
    http2: &Http2Options,
) -> Result<WebSocketStream<Transport>, Error> {
    let start = now();
    let url = WsUrl::parse(url)?;
    let deadline = tokio::time::Instant::from_std(start) + options.config.handshake_timeout;
    let attempt = attempt(&url, options, http2, start);
    match tokio::time::timeout_at(deadline, attempt).await {
        Ok(result) => result,
        Err(_) => Err(Error::Connection(ConnectionError::HandshakeTimeout)),
    }
}

/// Why HTTP/2 was not used (an error with [`Http2Mode::Force`]).
fn no_h2(why: &str) -> Error {
    Error::Connection(ConnectionError::Handshake(HandshakeError::Malformed(
        format!("HTTP/2 WebSocket not possible: {why}"),
    )))
}

/// The whole attempt: HTTP/2 when it can be, else the fallback.
async fn attempt(
    url: &WsUrl,
    options: &ConnectOptions,
    http2: &Http2Options,
    start: std::time::Instant,
) -> Result<WebSocketStream<Transport>, Error> {
    let mode = http2.mode;
    let plain_h2 = !url.is_secure() && mode == Http2Mode::PriorKnowledge;
    if mode == Http2Mode::Off || (!url.is_secure() && !plain_h2) {
        return http1(url, options, start, None).await;
    }
    // The HTTP/2 request first: the hook runs for this attempt (and again on a fallback).
    let request = options.request.build_for(url, Http::V2)?;
    let config = options.config.clone().streaming(false);
    let upgrade = ClientUpgrade::new(&config, &request, Http::V2)?;
    let key = format!(
        "{}://{}:{}",
        if url.is_secure() { "wss" } else { "ws" },
        url.host(),
        url.port()
    );
    let send = match http2.pool.get(&key) {
        Some(send) => send,
        None => {
            let tls = tls_target(url, options)?.map(|(cfg, name)| (with_alpn(&cfg), name));
            let secure = tls.is_some();
            let stream = open(url, options, tls).await?;
            if secure && !negotiated_h2(&stream) {
                if mode == Http2Mode::Force {
                    return Err(no_h2("the server did not choose h2 in ALPN"));
                }
                // ALPN chose HTTP/1.1: the upgrade goes on this connection.
                return http1(url, options, start, Some(stream)).await;
            }
            match handshake(stream, http2).await? {
                Some(send) => {
                    http2.pool.put(key.clone(), send.clone());
                    send
                }
                None if mode == Http2Mode::Force || plain_h2 => {
                    return Err(no_h2(
                        "the server does not enable extended CONNECT (RFC 8441)",
                    ))
                }
                // HTTP/2 without extended CONNECT: a fresh HTTP/1.1 connection.
                None => return http1(url, options, start, None).await,
            }
        }
    };
    match open_stream(send, url, &request, upgrade).await {
        Ok((stream, upgraded)) => Ok(WebSocketStream::from_upgraded(
            Transport::Http2(Box::new(stream)),
            config,
            upgraded,
        )),
        Err(e) => {
            if matches!(e, Error::Io(_)) {
                // The pooled connection failed: the next attempt opens a new one.
                http2.pool.forget(&key);
            }
            Err(e)
        }
    }
}

/// The HTTP/1.1 upgrade, on `stream` when given (TLS where ALPN chose `http/1.1`) or on a
/// fresh connection offering `http/1.1` only.
async fn http1(
    url: &WsUrl,
    options: &ConnectOptions,
    start: std::time::Instant,
    stream: Option<MaybeTlsStream>,
) -> Result<WebSocketStream<Transport>, Error> {
    let (conn, limit) = http1_connection(url, options, start)?;
    let stream = match stream {
        Some(s) => s,
        None => open(url, options, tls_target(url, options)?).await?,
    };
    crate::client_handshake(Transport::Http1(stream), conn, limit).await
}

/// `config` offering `h2` then `http/1.1` (also when HTTP/2 is forced: a server that picks
/// `http/1.1` then gets a clear error from us rather than a TLS alert).
fn with_alpn(config: &Arc<ClientConfig>) -> Arc<ClientConfig> {
    let mut config = (**config).clone();
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    Arc::new(config)
}

/// Whether TLS negotiated `h2`.
fn negotiated_h2(stream: &MaybeTlsStream) -> bool {
    stream
        .tls()
        .is_some_and(|c| c.alpn_protocol() == Some(ALPN_H2))
}

/// Runs the HTTP/2 handshake, spawns the connection's task, and waits for the server's
/// SETTINGS (a PING's answer comes after them); the connection handle when the server
/// enables extended CONNECT, `None` (connection dropped) when it does not.
async fn handshake(
    stream: MaybeTlsStream,
    http2: &Http2Options,
) -> Result<Option<SendRequest<Bytes>>, Error> {
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(http2.stream_window)
        .initial_connection_window_size(http2.connection_window)
        .max_send_buffer_size(http2.stream_window as usize);
    let (send, mut conn) = builder
        .handshake::<_, Bytes>(stream)
        .await
        .map_err(io_err)?;
    let ping = conn.ping_pong();
    tokio::spawn(async move {
        // Ends when every handle (pool and streams) is gone or the peer closes.
        let _ = conn.await;
    });
    if let Some(mut ping) = ping {
        ping.ping(h2::Ping::opaque()).await.map_err(io_err)?;
    }
    let send = send.ready().await.map_err(io_err)?;
    Ok(send.is_extended_connect_protocol_enabled().then_some(send))
}

/// Sends the extended CONNECT on `send` and checks the answer (200, subprotocol,
/// extensions) with the core.
async fn open_stream(
    send: SendRequest<Bytes>,
    url: &WsUrl,
    request: &ws_proto::ClientRequest,
    upgrade: ClientUpgrade,
) -> Result<(H2Stream, ws_proto::upgrade::Upgraded), Error> {
    let scheme = if url.is_secure() { "https" } else { "http" };
    let uri = format!("{scheme}://{}{}", request.host, request.resource);
    let mut builder = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(uri)
        .version(http::Version::HTTP_2)
        .extension(h2::ext::Protocol::from_static("websocket"));
    for (n, v) in upgrade.headers() {
        // The core's headers, validated; HTTP/2 wants lower-case names.
        builder = builder.header(n.to_ascii_lowercase(), v.as_str());
    }
    let req = builder.body(()).map_err(|e| {
        Error::Command(ws_proto::Error::InvalidRequest {
            field: "request".into(),
            reason: e.to_string(),
        })
    })?;
    let mut send = send.ready().await.map_err(io_err)?;
    let (response, stream) = send.send_request(req, false).map_err(io_err)?;
    let response = response.await.map_err(io_err)?;
    let (parts, body) = response.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let upgraded = upgrade
        .finish(parts.status.as_u16(), headers)
        .map_err(|e| Error::Connection(ConnectionError::Handshake(e)))?;
    Ok((H2Stream::new(stream, body), upgraded))
}
