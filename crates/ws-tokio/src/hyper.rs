//! WebSockets inside a hyper 1.x server (feature `hyper`): hyper parses the request and sends
//! the response, [`ws_proto::upgrade::ServerUpgrade`] validates and answers it, and once hyper
//! hands over the upgraded connection the core runs it ([`Connection::upgraded`]).
//!
//! ```
//! use std::convert::Infallible;
//! use futures_util::{SinkExt, StreamExt};
//! use http_body_util::Full;
//! use hyper::body::{Bytes, Incoming};
//! use hyper::{server::conn::http1, service::service_fn, Request, Response};
//! use hyper_util::rt::TokioIo;
//! use ws_tokio::{ClientRequest, Config, Decision};
//!
//! async fn route(mut req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     if req.uri().path() != "/ws" {
//!         return Ok(Response::new(Full::new(Bytes::from_static(b"hello over http"))));
//!     }
//!     let (response, websocket) =
//!         ws_tokio::hyper::upgrade(&mut req, Config::default(), |_| Decision::accept());
//!     if let Some(websocket) = websocket {
//!         // Completes once hyper has sent the 101: await it in its own task.
//!         tokio::spawn(async move {
//!             let Ok(mut ws) = websocket.await else { return };
//!             while let Some(Ok(msg)) = ws.next().await {
//!                 if ws.send(msg).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
//!     Ok(response)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     let (tcp, _) = listener.accept().await.expect("a connection");
//!     let conn = http1::Builder::new()
//!         .serve_connection(TokioIo::new(tcp), service_fn(route))
//!         .with_upgrades();
//!     let _ = conn.await;
//! });
//!
//! let tcp = tokio::net::TcpStream::connect(addr).await?;
//! let request = ClientRequest::new(addr.to_string(), "/ws");
//! let mut ws = ws_tokio::client(tcp, &request, Config::default()).await?;
//! ws.send(ws_tokio::text("through hyper")).await?;
//! assert_eq!(ws.next().await.expect("an echo")?.as_text(), Some("through hyper"));
//! # Ok(())
//! # }
//! ```
//!
//! With axum, take the request as `axum::extract::Request`, call [`upgrade`], and return
//! `response.map(axum::body::Body::new)`.
//!
//! Only HTTP/1.1 upgrades here; an HTTP/2 extended CONNECT request is answered 505. WebSockets
//! over HTTP/2 are served by the `http2` feature's `ws_tokio::h2::serve_connection` (on the
//! `h2` crate hyper uses).
//!
//! [`Connection::upgraded`]: ws_proto::Connection::upgraded

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{HeaderName, HeaderValue, UPGRADE};
use http::{Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use ws_proto::upgrade::{Http, ResponseHead, ServerUpgrade, Upgraded};
use ws_proto::{Bytes, Config, ConnectionError, UpgradeRequest};

use crate::{Decision, Error, WebSocketStream};

/// The stream a hyper upgrade hands over, as tokio sees it.
pub type HyperIo = TokioIo<::hyper::upgrade::Upgraded>;

/// Whether `req` asks for a WebSocket upgrade (an `Upgrade` header naming `websocket`). The
/// full validation is [`upgrade`]'s.
pub fn is_upgrade_request<B>(req: &Request<B>) -> bool {
    req.headers().get_all(UPGRADE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| ws_proto::handshake::has_token(v, "websocket"))
    })
}

/// Answers an upgrade request that hyper parsed.
///
/// Validates the request head with [`ServerUpgrade::new`] (method, target, version, headers),
/// shows the [`UpgradeRequest`] to `decide`, and returns the response for hyper to send: on
/// an accept, the 101 with the negotiated subprotocol and extensions and a
/// [`PendingWebSocket`] that yields the [`WebSocketStream`] once hyper has sent it and handed
/// over the connection (serve the connection `with_upgrades()`, and await it in another task:
/// it completes only after the response is sent). On an invalid request (the core's status:
/// 400, 426...) or a reject (the application's status, headers and body), the response only.
pub fn upgrade<B>(
    req: &mut Request<B>,
    config: Config,
    decide: impl FnOnce(&UpgradeRequest) -> Decision,
) -> (Response<Full<Bytes>>, Option<PendingWebSocket>) {
    if req.version() != Version::HTTP_11 {
        return (plain(StatusCode::HTTP_VERSION_NOT_SUPPORTED), None);
    }
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let upgrade = match ServerUpgrade::new(req.method().as_str(), target, Http::V1, headers) {
        Ok(u) => u,
        Err(rejection) => {
            let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::BAD_REQUEST);
            return (plain(status), None);
        }
    };
    // A `decide` that panics gets the client a 500, like a decision the core refuses.
    let decision =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decide(upgrade.request())));
    let Ok(decision) = decision else {
        return (plain(StatusCode::INTERNAL_SERVER_ERROR), None);
    };
    match decision {
        Decision::Accept(accept) => match upgrade.accept(&config, accept) {
            Ok((head, upgraded)) => {
                let pending = PendingWebSocket {
                    on_upgrade: ::hyper::upgrade::on(req),
                    start: Some((config, upgraded)),
                };
                (response(head), Some(pending))
            }
            Err(_) => (plain(StatusCode::INTERNAL_SERVER_ERROR), None),
        },
        Decision::Reject {
            status,
            headers,
            body,
        } => match upgrade.reject(status, headers, body) {
            Ok(head) => (response(head), None),
            Err(_) => (plain(StatusCode::INTERNAL_SERVER_ERROR), None),
        },
    }
}

/// The [`WebSocketStream`] to come once hyper completes the upgrade: a future yielding it, or
/// [`Error::Connection`] when hyper could not hand the connection over.
#[derive(Debug)]
pub struct PendingWebSocket {
    on_upgrade: ::hyper::upgrade::OnUpgrade,
    start: Option<(Config, Upgraded)>,
}

impl Future for PendingWebSocket {
    type Output = Result<WebSocketStream<HyperIo>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let io = match Pin::new(&mut self.on_upgrade).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(io)) => io,
            Poll::Ready(Err(e)) => {
                return Poll::Ready(Err(Error::Connection(ConnectionError::Io(
                    e.to_string().into(),
                ))))
            }
        };
        let Some((config, upgraded)) = self.start.take() else {
            // Polled again after completion.
            return Poll::Ready(Err(Error::Closed));
        };
        Poll::Ready(Ok(WebSocketStream::from_upgraded(
            TokioIo::new(io),
            config,
            upgraded,
        )))
    }
}

/// A response from the head the core built (its headers were validated by the core).
fn response(head: ResponseHead) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(head.body)));
    *resp.status_mut() =
        StatusCode::from_u16(head.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (n, v) in head.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    resp
}

/// A response with `status` and its reason phrase as the body.
fn plain(status: StatusCode) -> Response<Full<Bytes>> {
    let body = status.canonical_reason().unwrap_or("error");
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp
}
