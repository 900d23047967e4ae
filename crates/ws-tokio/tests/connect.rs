//! `connect` / `connect_with` against our own tokio servers on 127.0.0.1: `ws://` and `wss://`
//! (a self-signed certificate made by rcgen, trusted as an extra root or through a complete
//! rustls `ClientConfig`), what the request carries (subprotocols, headers, origin, what the
//! request hook adds), permessage-deflate, and the failures: an untrusted certificate, a peer
//! that does not speak TLS, a refused TCP connection, each with its `DriverError` kind.
//!
//! An invalid request (the kit's `BAD_REQUESTS`, shared by every client) is refused before any
//! name resolution or TCP connect: the error names the field, and the kit's `SilentListener`
//! standing in for the server sees no connection.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{bounded, cert, WAIT};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use ws_net::{DriverError, ErrorKind};
use ws_testkit::bad_request::{BadRequest, SilentListener, BAD_REQUESTS};
use ws_tokio::{
    Accept, ConnectOptions, Decision, DeflateConfig, Error, TlsOptions, UpgradeRequest,
};

/// An echo server on 127.0.0.1 (over TLS with `tls`) that reports each upgrade request it
/// sees, accepts the `chat` subprotocol when offered and permessage-deflate when offered.
async fn server(
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (SocketAddr, mpsc::UnboundedReceiver<UpgradeRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let cfg = ws_tokio::Config::default().deflate(Some(DeflateConfig::default()));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (tx, cfg, tls) = (tx.clone(), cfg.clone(), tls.clone());
            tokio::spawn(async move {
                let decide = move |req: &UpgradeRequest| {
                    let _ = tx.send(req.clone());
                    match req.protocols.iter().any(|p| p == "chat") {
                        true => Decision::Accept(Accept::new().protocol("chat")),
                        false => Decision::accept(),
                    }
                };
                match tls {
                    Some(config) => {
                        let Ok(tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                        else {
                            return;
                        };
                        if let Ok(ws) = ws_tokio::accept_with(tls, cfg, decide).await {
                            echo(ws).await;
                        }
                    }
                    None => {
                        if let Ok(ws) = ws_tokio::accept_with(tcp, cfg, decide).await {
                            echo(ws).await;
                        }
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn echo<S>(mut ws: ws_tokio::WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(m)) = ws.next().await {
        if ws.send(m).await.is_err() {
            return;
        }
    }
}

/// One round trip and a clean close.
async fn round_trip<S>(ws: &mut ws_tokio::WebSocketStream<S>, text: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    bounded("send", ws.send(ws_tokio::text(text)))
        .await
        .unwrap();
    let echo = bounded("echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(echo.as_text(), Some(text));
    bounded("close", ws.close()).await.unwrap();
    assert!(bounded("end", ws.next()).await.is_none());
    assert!(ws.close_info().unwrap().clean);
}

#[tokio::test]
async fn ws_url_with_subprotocol_headers_origin_and_the_request_hook() {
    let (addr, mut requests) = server(None).await;
    let options = ConnectOptions::default()
        .protocol("superchat")
        .protocol("chat")
        .header("Authorization", "Bearer t0k3n")
        .origin("https://app.example")
        .request_hook(|req| req.headers.push(("X-Hook".into(), "added".into())));
    let url = format!("ws://127.0.0.1:{}/room?id=7", addr.port());
    let mut ws = bounded("connect", ws_tokio::connect_with(&url, &options))
        .await
        .unwrap();
    let req = requests.recv().await.unwrap();
    assert_eq!(req.path, "/room");
    assert_eq!(req.query.as_deref(), Some("id=7"));
    assert_eq!(req.host, format!("127.0.0.1:{}", addr.port()));
    assert_eq!(req.origin.as_deref(), Some("https://app.example"));
    assert_eq!(req.protocols, ["superchat", "chat"]);
    assert_eq!(req.header("Authorization"), Some("Bearer t0k3n"));
    assert_eq!(req.header("X-Hook"), Some("added"));
    let info = ws.open_info().unwrap();
    assert_eq!(info.protocol.as_deref(), Some("chat"));
    assert_eq!(info.extensions, None, "deflate is not offered by default");
    round_trip(&mut ws, "over ws://").await;
}

#[tokio::test]
async fn connect_with_defaults_and_deflate() {
    let (addr, _requests) = server(None).await;
    let url = format!("ws://127.0.0.1:{}/", addr.port());
    let mut ws = bounded("connect", ws_tokio::connect(&url)).await.unwrap();
    round_trip(&mut ws, "plain").await;

    let options = ConnectOptions::default().deflate(Some(DeflateConfig::default()));
    let mut ws = bounded("connect", ws_tokio::connect_with(&url, &options))
        .await
        .unwrap();
    let ext = ws.open_info().unwrap().extensions;
    if !ws_proto::deflate::client_offer_header(&DeflateConfig::default()).is_empty() {
        assert!(
            ext.as_deref()
                .is_some_and(|e| e.contains("permessage-deflate")),
            "{ext:?}"
        );
    }
    round_trip(&mut ws, &"compressible ".repeat(1000)).await;
}

#[tokio::test]
async fn wss_with_an_extra_root_by_name_and_by_address() {
    let cert = cert();
    let (addr, _requests) = server(Some(cert.server.clone())).await;

    // By name: `localhost` resolved away by `connect_to`, checked against the certificate.
    let tls = TlsOptions::default().add_root_der(cert.der.to_vec());
    let options = ConnectOptions::default().tls(tls).connect_to(addr);
    let url = format!("wss://localhost:{}/secure", addr.port());
    let mut ws = bounded("connect", ws_tokio::connect_with(&url, &options))
        .await
        .unwrap();
    round_trip(&mut ws, "over wss:// by name").await;

    // By address (the certificate names 127.0.0.1 too); the root given as PEM.
    let tls = TlsOptions::default()
        .add_root_pem(cert.pem.as_bytes())
        .unwrap();
    let options = ConnectOptions::default().tls(tls);
    let url = format!("wss://127.0.0.1:{}/secure", addr.port());
    let mut ws = bounded("connect", ws_tokio::connect_with(&url, &options))
        .await
        .unwrap();
    round_trip(&mut ws, "over wss:// by address").await;
}

#[tokio::test]
async fn wss_with_a_complete_client_config() {
    let cert = cert();
    let (addr, _requests) = server(Some(cert.server.clone())).await;
    let config = ws_net::tls::client_config(
        rustls::RootCertStore::empty(),
        std::slice::from_ref(&cert.der),
    )
    .unwrap();
    let options = ConnectOptions::default().tls(TlsOptions::default().config(config));
    let url = format!("wss://127.0.0.1:{}/", addr.port());
    let mut ws = bounded("connect", ws_tokio::connect_with(&url, &options))
        .await
        .unwrap();
    round_trip(&mut ws, "custom config").await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error() {
    let cert = cert();
    let (addr, mut requests) = server(Some(cert.server.clone())).await;
    // The default roots (webpki) do not trust a self-signed certificate.
    let url = format!("wss://127.0.0.1:{}/", addr.port());
    let e = bounded("connect", ws_tokio::connect(&url))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Tls(rustls::Error::InvalidCertificate(_))),
        "{e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::Tls);
    // Nor does the right root make a certificate for another name good.
    let tls = TlsOptions::default().add_root_der(cert.der.to_vec());
    let options = ConnectOptions::default().tls(tls).connect_to(addr);
    let url = format!("wss://other.example:{}/", addr.port());
    let e = bounded("connect", ws_tokio::connect_with(&url, &options))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Tls(rustls::Error::InvalidCertificate(_))),
        "{e:?}"
    );
    assert!(
        requests.try_recv().is_err(),
        "no upgrade request got through"
    );
}

#[tokio::test]
async fn a_peer_that_is_not_tls_and_a_silent_one() {
    // Answers the ClientHello in plain HTTP.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut tcp, _) = listener.accept().await.unwrap();
        let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        // Holds the socket until the client has given up.
        let mut buf = [0u8; 1024];
        let _ = tokio::io::AsyncReadExt::read(&mut tcp, &mut buf).await;
        let (silent, _) = listener.accept().await.unwrap();
        let mut silent = silent;
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut silent, &mut Vec::new()).await;
    });
    let url = format!("wss://127.0.0.1:{}/", addr.port());
    let e = bounded("connect", ws_tokio::connect(&url))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Tls);

    // A peer that accepts TCP and says nothing: the handshake timeout bounds the TLS
    // handshake too.
    let cfg = ws_tokio::Config::default().handshake_timeout(Duration::from_millis(300));
    let options = ConnectOptions::default().config(cfg);
    let start = std::time::Instant::now();
    let e = bounded("connect", ws_tokio::connect_with(&url, &options))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Connection(ws_tokio::ConnectionError::HandshakeTimeout)
        ),
        "{e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(start.elapsed() >= Duration::from_millis(300) && start.elapsed() < WAIT);
    bounded("server", server).await.unwrap();
}

#[tokio::test]
async fn a_refused_connection_keeps_its_io_kind() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("ws://{addr}/");
    let e = bounded("connect", ws_tokio::connect(&url))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Connect { addr: a, .. } if a == addr),
        "{e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::Io);
    assert_eq!(e.io_kind(), Some(std::io::ErrorKind::ConnectionRefused));
}

#[tokio::test]
async fn a_refusal_by_the_server_is_a_handshake_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = ws_tokio::accept_with(tcp, ws_tokio::Config::default(), |_| {
            Decision::reject(403, "members only")
        })
        .await;
    });
    let e = bounded("connect", ws_tokio::connect(&format!("ws://{addr}/")))
        .await
        .unwrap_err();
    let Error::Connection(ws_tokio::ConnectionError::Handshake(ws_tokio::HandshakeError::Status {
        status,
        body,
        ..
    })) = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((*status, &body[..]), (403, &b"members only"[..]));
    assert_eq!(e.kind(), ErrorKind::Handshake);
}

// ----- invalid requests never reach a socket --------------------------------

/// Options whose handshake would time out quickly, so a regression (a connection made to
/// the silent listener) fails instead of hanging.
fn base() -> ConnectOptions {
    ConnectOptions::default()
        .config(ws_tokio::Config::default().handshake_timeout(Duration::from_secs(2)))
}

/// Checks `e` against the case: the kind, the field named, the message.
fn check(c: &BadRequest, e: &Error) {
    assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e:?}");
    c.check(e.invalid_request().map(|(f, _)| f), &e.to_string());
}

#[tokio::test]
async fn each_invalid_request_is_refused_before_resolving_or_connecting() {
    let l = SilentListener::new();
    let addr = l.addr();
    for c in BAD_REQUESTS {
        let options = base().request(c.request());
        for url in [
            format!("ws://{addr}{}", c.path),
            format!("wss://{addr}{}", c.path),
            // A name that would have to be resolved (and never resolves): the error is the
            // request's, so nothing was looked up.
            format!("ws://no-such-host.invalid{}", c.path),
        ] {
            let e = match bounded("connect", ws_tokio::connect_with(&url, &options)).await {
                Ok(_) => panic!("{} ({url}): connected", c.name),
                Err(e) => e,
            };
            check(c, &e);
            l.assert_no_connection(c.name);
        }
        // The same with `connect_to`: still nothing reaches the listener.
        let url = format!("ws://localhost{}", c.path);
        let options = options.connect_to(addr);
        let e = bounded("connect", ws_tokio::connect_with(&url, &options))
            .await
            .unwrap_err();
        check(c, &e);
        l.assert_no_connection(c.name);
    }

    // Control: the same listener does see a valid request.
    let options = base().header("X-Test", "fine").connect_to(addr);
    let attempt =
        tokio::spawn(async move { ws_tokio::connect_with("ws://localhost/ok", &options).await });
    let l = TcpListener::from_std(l.into_inner()).unwrap();
    let (mut tcp, _) = bounded("accept", l.accept()).await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") {
        let n = bounded("read", tokio::io::AsyncReadExt::read(&mut tcp, &mut buf))
            .await
            .unwrap();
        assert!(n > 0 && head.len() < 8192, "no complete request");
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("GET /ok HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nX-Test: fine\r\n"), "{head}");
    drop(tcp);
    let e = bounded("attempt", attempt).await.unwrap().unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Io | ErrorKind::Handshake),
        "{e:?}"
    );
}

#[tokio::test]
async fn bad_tls_material_is_refused_before_connecting() {
    let e = TlsOptions::default()
        .add_root_pem(b"not a certificate")
        .unwrap_err();
    assert!(matches!(e, Error::TlsConfig(_)), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Tls);

    // A root the store refuses fails the configuration, before any socket.
    let l = SilentListener::new();
    let tls = TlsOptions::default().add_root_der(b"garbage".to_vec());
    let options = base().tls(tls).connect_to(l.addr());
    let e = bounded(
        "connect",
        ws_tokio::connect_with("wss://localhost/", &options),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::TlsConfig(_)), "{e:?}");
    l.assert_no_connection("bad root");
}
