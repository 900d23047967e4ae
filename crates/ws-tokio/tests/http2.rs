//! WebSockets over HTTP/2 (RFC 8441) between our client and our server on 127.0.0.1: many
//! WebSockets on one connection (deflate on, messages up to 16 MiB, close codes), the
//! fallbacks to HTTP/1.1 (an HTTP/1.1-only server, an HTTP/2 server without extended
//! CONNECT; the request hook called once per attempt), a forced HTTP/2 that cannot be, a
//! refusal answered with its status, a stalled reader that stalls only its own stream, and
//! HTTP/2 by prior knowledge on `ws://`.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{bounded, cert};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use ws_proto::upgrade::Http;
use ws_tokio::h2::{Http2Mode, Http2Options};
use ws_tokio::{
    CloseCode, Config, ConnectOptions, Decision, DeflateConfig, Error, HandshakeError, Limits,
    TlsOptions, UpgradeRequest, WebSocketStream,
};

/// What the test server speaks.
#[derive(Clone, Copy, PartialEq)]
enum Speaks {
    /// ALPN h2 + http/1.1, extended CONNECT on.
    Both,
    /// ALPN http/1.1 only.
    Http1Only,
    /// ALPN h2 + http/1.1, but an HTTP/2 server without extended CONNECT.
    H2WithoutConnect,
    /// Plain TCP: HTTP/2 by prior knowledge, or HTTP/1.1.
    Plain,
}

/// A server's observations.
#[derive(Default)]
struct Seen {
    /// TCP connections accepted.
    tcp: AtomicUsize,
    /// Close codes the server side saw, by path.
    closes: Mutex<Vec<(String, u16)>>,
}

/// Limits that let 16 MiB messages through.
fn config() -> Config {
    Config::default()
        .deflate(Some(DeflateConfig::default()))
        .limits(
            Limits::default()
                .max_message_size(32 << 20)
                .max_send_queue(64 << 20),
        )
}

/// What the server decides: `/reject` gets 403 with a body, everything else is accepted.
fn decide(req: &UpgradeRequest) -> Decision {
    if req.path == "/reject" {
        Decision::reject(403, "not here")
    } else {
        Decision::accept()
    }
}

/// The server side of one WebSocket: `/flood` sends 64 messages of 64 KiB and reads nothing
/// until they are out (counting them in `flood`); everything else echoes. Records the close.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    path: String,
    seen: Arc<Seen>,
    flood: Arc<AtomicUsize>,
) {
    if path == "/flood" {
        for i in 0..64u32 {
            // Incompressible: deflate cannot shrink it below the stream's window.
            if ws.send(ws_tokio::binary(noise(64 << 10, i))).await.is_err() {
                return;
            }
            flood.fetch_add(1, Ordering::SeqCst);
        }
    }
    while let Some(Ok(m)) = ws.next().await {
        if ws.send(m).await.is_err() {
            break;
        }
    }
    if let Some(c) = ws.close_info() {
        seen.closes.lock().unwrap().push((path, c.code.as_u16()));
    }
}

/// `len` pseudo-random bytes from `seed` (xorshift): incompressible, reproducible.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = 0x2545_F491 ^ seed.wrapping_mul(0x9E37_79B9);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Starts a server on 127.0.0.1; returns its address, what it saw, and the flood counter.
async fn server(speaks: Speaks) -> (SocketAddr, Arc<Seen>, Arc<AtomicUsize>, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let flood = Arc::new(AtomicUsize::new(0));
    let c = cert();
    let tls = match speaks {
        Speaks::Http1Only => Some(c.server.clone()),
        Speaks::Plain => None,
        _ => Some(ws_tokio::h2::server_tls_config(&c.server)),
    };
    let (seen2, flood2) = (seen.clone(), flood.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            seen2.tcp.fetch_add(1, Ordering::SeqCst);
            let (seen, flood, tls) = (seen2.clone(), flood2.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    Some(tls) => {
                        let Ok(tls) = tokio_rustls::TlsAcceptor::from(tls).accept(tcp).await else {
                            return;
                        };
                        if ws_tokio::h2::is_h2(&tls) {
                            serve_h2(tls, speaks, seen, flood).await;
                        } else {
                            serve_h1(tls, seen, flood).await;
                        }
                    }
                    None => {
                        if ws_tokio::h2::starts_with_preface(&tcp)
                            .await
                            .unwrap_or(false)
                        {
                            serve_h2(tcp, speaks, seen, flood).await;
                        } else {
                            serve_h1(tcp, seen, flood).await;
                        }
                    }
                }
            });
        }
    });
    (addr, seen, flood, c.pem)
}

async fn serve_h2<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: S,
    speaks: Speaks,
    seen: Arc<Seen>,
    flood: Arc<AtomicUsize>,
) {
    if speaks == Speaks::H2WithoutConnect {
        // A plain HTTP/2 server: no SETTINGS_ENABLE_CONNECT_PROTOCOL.
        let Ok(mut conn) = h2::server::handshake(io).await else {
            return;
        };
        while let Some(Ok((_req, mut respond))) = conn.accept().await {
            let _ = respond.send_response(http::Response::new(()), true);
        }
        return;
    }
    let paths = Arc::new(Mutex::new(std::collections::VecDeque::new()));
    let paths2 = paths.clone();
    let decide = move |req: &UpgradeRequest| {
        paths2.lock().unwrap().push_back(req.path.clone());
        decide(req)
    };
    let _ = ws_tokio::h2::serve_connection(io, config(), &Http2Options::default(), decide, |ws| {
        let path = paths.lock().unwrap().pop_back().unwrap_or_default();
        tokio::spawn(session(ws, path, seen.clone(), flood.clone()));
    })
    .await;
}

async fn serve_h1<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: S,
    seen: Arc<Seen>,
    flood: Arc<AtomicUsize>,
) {
    let path = Arc::new(Mutex::new(String::new()));
    let path2 = path.clone();
    let decide = move |req: &UpgradeRequest| {
        *path2.lock().unwrap() = req.path.clone();
        decide(req)
    };
    if let Ok(ws) = ws_tokio::accept_with(io, config(), decide).await {
        let path = path.lock().unwrap().clone();
        session(ws, path, seen, flood).await;
    }
}

/// Client options trusting the server's certificate, with a hook recording each attempt's
/// HTTP version.
fn options(pem: &str, attempts: &Arc<Mutex<Vec<Http>>>) -> ConnectOptions {
    let attempts = attempts.clone();
    let opts = ConnectOptions::default()
        .config(config())
        .request_hook(move |req| attempts.lock().unwrap().push(req.http));
    if pem.is_empty() {
        return opts;
    }
    opts.tls(TlsOptions::default().add_root_pem(pem.as_bytes()).unwrap())
}

/// Sends `data` and expects it back unchanged.
async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, data: Vec<u8>) {
    let len = data.len();
    ws.send(ws_tokio::binary(data.clone())).await.unwrap();
    let back = bounded("an echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(back.data.len(), len);
    assert!(back.data == data, "echo of {len} bytes differs");
}

fn http_of(ws: &WebSocketStream<ws_tokio::h2::Transport>) -> Http {
    ws.with_io(|t| t.http())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_websockets_share_one_http2_connection() {
    let (addr, seen, _, pem) = server(Speaks::Both).await;
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let opts = options(&pem, &attempts);
    let http2 = Http2Options::default();
    let url = format!("wss://localhost:{}/echo", addr.port());
    let mut sockets = Vec::new();
    for _ in 0..6 {
        let ws = bounded("connect", ws_tokio::h2::connect_with(&url, &opts, &http2))
            .await
            .unwrap();
        assert_eq!(http_of(&ws), Http::V2);
        let ext = ws.open_info().unwrap().extensions.unwrap_or_default();
        assert!(ext.contains("permessage-deflate"), "{ext}");
        sockets.push(ws);
    }
    assert_eq!(*attempts.lock().unwrap(), vec![Http::V2; 6]);
    assert_eq!(
        seen.tcp.load(Ordering::SeqCst),
        1,
        "one TCP connection for all"
    );
    assert_eq!(http2.pooled_connections(), 1);
    // Every size, on every socket, interleaved.
    for (i, ws) in sockets.iter_mut().enumerate() {
        for len in [0usize, 1, 125, 126, 65_535, 65_536, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|k| (k * 7 + i) as u8).collect();
            round_trip(ws, data).await;
        }
    }
    // 16 MiB, incompressible-ish, on one of them.
    round_trip(&mut sockets[0], noise(16 << 20, 7)).await;
    // Closing one leaves the others (and the connection) serving.
    let mut first = sockets.remove(0);
    first
        .close_with(CloseCode::new(4001).unwrap(), "done")
        .await
        .unwrap();
    while bounded("the close", first.next()).await.is_some() {}
    assert_eq!(first.close_info().unwrap().code.as_u16(), 4001);
    for ws in &mut sockets {
        round_trip(ws, b"still here".to_vec()).await;
    }
    let mut late = bounded("connect", ws_tokio::h2::connect_with(&url, &opts, &http2))
        .await
        .unwrap();
    round_trip(&mut late, b"late".to_vec()).await;
    assert_eq!(
        seen.tcp.load(Ordering::SeqCst),
        1,
        "still one TCP connection"
    );
    // The server saw the close code (its session ends after the close).
    bounded("the server's close", async {
        loop {
            if seen.closes.lock().unwrap().iter().any(|(_, c)| *c == 4001) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn an_http1_only_server_gets_the_upgrade_on_the_same_connection() {
    let (addr, seen, _, pem) = server(Speaks::Http1Only).await;
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let url = format!("wss://localhost:{}/echo", addr.port());
    let mut ws = bounded(
        "connect",
        ws_tokio::h2::connect_with(&url, &options(&pem, &attempts), &Http2Options::default()),
    )
    .await
    .unwrap();
    assert_eq!(http_of(&ws), Http::V1);
    round_trip(&mut ws, b"over http/1.1".to_vec()).await;
    // The hook ran once per attempt: HTTP/2, then the fallback.
    assert_eq!(*attempts.lock().unwrap(), vec![Http::V2, Http::V1]);
    assert_eq!(seen.tcp.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_http2_server_without_extended_connect_gets_a_fresh_http1_connection() {
    let (addr, seen, _, pem) = server(Speaks::H2WithoutConnect).await;
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let url = format!("wss://localhost:{}/echo", addr.port());
    let http2 = Http2Options::default();
    let mut ws = bounded(
        "connect",
        ws_tokio::h2::connect_with(&url, &options(&pem, &attempts), &http2),
    )
    .await
    .unwrap();
    assert_eq!(http_of(&ws), Http::V1);
    round_trip(&mut ws, b"fell back".to_vec()).await;
    assert_eq!(*attempts.lock().unwrap(), vec![Http::V2, Http::V1]);
    assert_eq!(seen.tcp.load(Ordering::SeqCst), 2, "a fresh connection");
    assert_eq!(http2.pooled_connections(), 0, "not kept");
}

#[tokio::test]
async fn forced_http2_says_why_it_cannot_be() {
    for speaks in [Speaks::Http1Only, Speaks::H2WithoutConnect] {
        let (addr, _, _, pem) = server(speaks).await;
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let url = format!("wss://localhost:{}/echo", addr.port());
        let http2 = Http2Options::default().mode(Http2Mode::Force);
        let err = bounded(
            "connect",
            ws_tokio::h2::connect_with(&url, &options(&pem, &attempts), &http2),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("HTTP/2"), "{text}");
        assert_eq!(*attempts.lock().unwrap(), vec![Http::V2], "no fallback");
    }
}

#[tokio::test]
async fn a_refusal_comes_back_as_its_status_and_the_connection_serves_on() {
    let (addr, seen, _, pem) = server(Speaks::Both).await;
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let opts = options(&pem, &attempts);
    let http2 = Http2Options::default();
    let port = addr.port();
    let err = bounded(
        "connect",
        ws_tokio::h2::connect_with(&format!("wss://localhost:{port}/reject"), &opts, &http2),
    )
    .await
    .unwrap_err();
    match err {
        Error::Connection(ws_tokio::ConnectionError::Handshake(HandshakeError::Status {
            status,
            ..
        })) => assert_eq!(status, 403),
        other => panic!("expected the 403, got {other:?}"),
    }
    let mut ws = bounded(
        "connect",
        ws_tokio::h2::connect_with(&format!("wss://localhost:{port}/echo"), &opts, &http2),
    )
    .await
    .unwrap();
    round_trip(&mut ws, b"after a refusal".to_vec()).await;
    assert_eq!(seen.tcp.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_stops_reading_stalls_only_its_own_stream() {
    let (addr, seen, flood, pem) = server(Speaks::Both).await;
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let opts = options(&pem, &attempts);
    let http2 = Http2Options::default();
    let port = addr.port();
    // The server floods this one, which reads nothing for now.
    let mut flooded = bounded(
        "connect",
        ws_tokio::h2::connect_with(&format!("wss://localhost:{port}/flood"), &opts, &http2),
    )
    .await
    .unwrap();
    bounded("the flood to start", async {
        while flood.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    // Another WebSocket on the same connection is served all along.
    let mut other = bounded(
        "connect",
        ws_tokio::h2::connect_with(&format!("wss://localhost:{port}/echo"), &opts, &http2),
    )
    .await
    .unwrap();
    for i in 0..20u8 {
        round_trip(&mut other, vec![i; 1000]).await;
    }
    // The flood is held by the stream's window (1 MiB + what the core holds), far from its
    // 4 MiB.
    let sent = flood.load(Ordering::SeqCst);
    assert!(sent < 64, "the unread stream let {sent} x 64 KiB through");
    // Reading drains it, every message whole and in order.
    for i in 0..64u32 {
        let m = bounded("a flood message", flooded.next())
            .await
            .unwrap()
            .unwrap();
        assert!(m.data == noise(64 << 10, i), "message {i}");
    }
    assert_eq!(flood.load(Ordering::SeqCst), 64);
    assert_eq!(seen.tcp.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn prior_knowledge_speaks_http2_on_ws_urls() {
    let (addr, seen, _, _) = server(Speaks::Plain).await;
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let opts = options("", &attempts);
    let url = format!("ws://127.0.0.1:{}/echo", addr.port());
    let http2 = Http2Options::default().mode(Http2Mode::PriorKnowledge);
    let mut a = bounded("connect", ws_tokio::h2::connect_with(&url, &opts, &http2))
        .await
        .unwrap();
    let mut b = bounded("connect", ws_tokio::h2::connect_with(&url, &opts, &http2))
        .await
        .unwrap();
    assert_eq!((http_of(&a), http_of(&b)), (Http::V2, Http::V2));
    round_trip(&mut a, b"h2c a".to_vec()).await;
    round_trip(&mut b, b"h2c b".to_vec()).await;
    assert_eq!(seen.tcp.load(Ordering::SeqCst), 1);
    // Without prior knowledge a ws:// URL is HTTP/1.1, on the same listener.
    let mut c = bounded(
        "connect",
        ws_tokio::h2::connect_with(&url, &opts, &Http2Options::default()),
    )
    .await
    .unwrap();
    assert_eq!(http_of(&c), Http::V1);
    round_trip(&mut c, b"h1".to_vec()).await;
}

/// A raw HTTP/2 client (the `h2` crate) on a plain connection to our prior-knowledge server:
/// sends `request` and returns the response status.
async fn raw_status(addr: SocketAddr, request: http::Request<()>) -> u16 {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut send = send.ready().await.unwrap();
    let (response, _stream) = send.send_request(request, false).unwrap();
    bounded("a response", response)
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn connect_request(
    path: &str,
    protocol: Option<&'static str>,
    version: Option<&str>,
) -> http::Request<()> {
    let mut b = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://localhost{path}"));
    if let Some(p) = protocol {
        b = b.extension(h2::ext::Protocol::from_static(p));
    }
    if let Some(v) = version {
        b = b.header("sec-websocket-version", v);
    }
    b.body(()).unwrap()
}

#[tokio::test]
async fn hostile_http2_requests_get_a_status_not_a_websocket() {
    let (addr, _, _, _) = server(Speaks::Plain).await;
    // No :protocol, another protocol, no or a wrong version, another method.
    assert_eq!(
        raw_status(addr, connect_request("/echo", None, Some("13"))).await,
        400
    );
    assert_eq!(
        raw_status(addr, connect_request("/echo", Some("chat"), Some("13"))).await,
        400
    );
    let missing = raw_status(addr, connect_request("/echo", Some("websocket"), None)).await;
    assert!(matches!(missing, 400 | 426), "{missing}");
    let wrong = raw_status(addr, connect_request("/echo", Some("websocket"), Some("8"))).await;
    assert!(matches!(wrong, 400 | 426), "{wrong}");
    let get = http::Request::builder()
        .uri("http://localhost/echo")
        .body(())
        .unwrap();
    assert_eq!(raw_status(addr, get).await, 404);
    // A valid one still opens afterwards.
    assert_eq!(
        raw_status(
            addr,
            connect_request("/echo", Some("websocket"), Some("13"))
        )
        .await,
        200
    );
}

/// A hostile HTTP/2 server on a plain connection: answers every extended CONNECT with
/// `status` and `headers`.
async fn hostile_server(
    status: u16,
    headers: &'static [(&'static str, &'static str)],
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut b = h2::server::Builder::new();
                b.enable_connect_protocol();
                let Ok(mut conn) = b.handshake::<_, bytes::Bytes>(tcp).await else {
                    return;
                };
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    let mut resp = http::Response::builder().status(status);
                    for (n, v) in headers {
                        resp = resp.header(*n, *v);
                    }
                    let _ = respond.send_response(resp.body(()).unwrap(), false);
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn hostile_http2_answers_are_clear_errors() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let opts = options("", &attempts)
        .protocol("chat")
        .deflate(Some(DeflateConfig::default()));
    let http2 = Http2Options::default().mode(Http2Mode::PriorKnowledge);
    for (status, headers, says) in [
        // 101 is no HTTP/2 status: h2 refuses the answer itself.
        (101u16, &[][..], "stream"),
        (302, &[("location", "http://elsewhere/")][..], "302"),
        (
            200,
            &[("sec-websocket-protocol", "not-offered")][..],
            "not-offered",
        ),
        (
            200,
            &[("sec-websocket-extensions", "x-unknown")][..],
            "x-unknown",
        ),
        (
            200,
            &[(
                "sec-websocket-extensions",
                "permessage-deflate; server_max_window_bits=99",
            )][..],
            "window",
        ),
    ] {
        let addr = hostile_server(status, headers).await;
        let url = format!("ws://127.0.0.1:{}/x", addr.port());
        let err = bounded("connect", ws_tokio::h2::connect_with(&url, &opts, &http2))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.to_lowercase().contains(&says.to_lowercase()),
            "{status} {headers:?}: {text}"
        );
    }
}
