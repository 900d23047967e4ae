//! Server side: the WebSockets of one HTTP/2 connection (RFC 8441 extended CONNECT), each
//! request shown to the application and accepted or refused exactly as an HTTP/1.1 upgrade
//! is ([`crate::accept_with`]'s [`Decision`]).

use std::sync::Arc;

use bytes::Bytes;
use h2::server::SendResponse;
use http::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use ws_proto::upgrade::{Http, ServerUpgrade};
use ws_proto::{Config, UpgradeRequest};

use super::{io_err, H2Stream, Http2Options};
use crate::{Decision, Error, WebSocketStream};

/// The `:protocol` of a WebSocket extended CONNECT.
const WEBSOCKET: &str = "websocket";

/// Serves one HTTP/2 connection (after TLS with ALPN `h2`, or a plain connection that began
/// with the HTTP/2 preface): sends `SETTINGS_ENABLE_CONNECT_PROTOCOL`, then for every
/// extended CONNECT with `:protocol = websocket` shows the [`UpgradeRequest`] (path, query,
/// headers, `:authority` as `host`) to `decide` and either answers 200 (subprotocol and
/// extensions negotiated by the core) and hands the [`WebSocketStream`] to `on_websocket`, or
/// answers with the refusal's status, headers and body (never a reset). Requests that are
/// no WebSocket get 400 (an invalid upgrade, status from the core) or 404 (another method).
///
/// Returns when the client closes the connection; `on_websocket` should spawn a task per
/// WebSocket (this future must keep running for any of them to make progress).
///
/// ```no_run
/// use futures_util::StreamExt;
/// use ws_tokio::h2::{serve_connection, Http2Options};
/// use ws_tokio::{Config, Decision};
///
/// # async fn serve(tls: tokio::net::TcpStream) -> Result<(), ws_tokio::Error> {
/// serve_connection(tls, Config::default(), &Http2Options::default(), |_req| Decision::accept(), |mut ws| {
///     tokio::spawn(async move {
///         while let Some(Ok(msg)) = ws.next().await {
///             if futures_util::SinkExt::send(&mut ws, msg).await.is_err() {
///                 break;
///             }
///         }
///     });
/// })
/// .await
/// # }
/// ```
pub async fn serve_connection<S, D, W>(
    io: S,
    config: Config,
    options: &Http2Options,
    decide: D,
    mut on_websocket: W,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: Fn(&UpgradeRequest) -> Decision,
    W: FnMut(WebSocketStream<H2Stream>),
{
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(options.stream_window)
        .initial_connection_window_size(options.connection_window)
        .max_send_buffer_size(options.stream_window as usize)
        .max_concurrent_streams(options.max_streams)
        .enable_connect_protocol();
    let mut conn = builder.handshake::<_, Bytes>(io).await.map_err(io_err)?;
    let config = Arc::new(config);
    while let Some(next) = conn.accept().await {
        let (request, respond) = match next {
            Ok(r) => r,
            // A stream-level problem ends that stream only; h2 reports connection errors
            // by ending the loop.
            Err(e) if e.is_reset() => continue,
            Err(e) => return Err(io_err(e)),
        };
        if let Some(ws) = answer(request, respond, &config, &decide) {
            on_websocket(ws);
        }
    }
    Ok(())
}

/// Answers one request: the WebSocket when accepted, `None` after a refusal.
fn answer<D>(
    request: Request<h2::RecvStream>,
    mut respond: SendResponse<Bytes>,
    config: &Arc<Config>,
    decide: &D,
) -> Option<WebSocketStream<H2Stream>>
where
    D: Fn(&UpgradeRequest) -> Decision,
{
    let protocol = request
        .extensions()
        .get::<h2::ext::Protocol>()
        .map(|p| p.as_str().to_string());
    if request.method() != Method::CONNECT {
        refuse(&mut respond, 404, Vec::new(), b"not found".to_vec());
        return None;
    }
    if !protocol.is_some_and(|p| p.eq_ignore_ascii_case(WEBSOCKET)) {
        refuse(
            &mut respond,
            400,
            Vec::new(),
            b"only the websocket protocol is served".to_vec(),
        );
        return None;
    }
    let (parts, body) = request.into_parts();
    let mut headers = Vec::with_capacity(parts.headers.len() + 1);
    if let Some(authority) = parts.uri.authority() {
        headers.push(("host".to_string(), authority.as_str().to_string()));
    }
    for (name, value) in &parts.headers {
        headers.push((
            name.as_str().to_string(),
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        ));
    }
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let upgrade = match ServerUpgrade::new("CONNECT", target, Http::V2, headers) {
        Ok(u) => u,
        Err(rejection) => {
            refuse(
                &mut respond,
                rejection.status,
                Vec::new(),
                rejection.error.to_string().into_bytes(),
            );
            return None;
        }
    };
    // A `decide` that panics gets the client a 500, as on HTTP/1.1.
    let decision =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decide(upgrade.request())));
    let Ok(decision) = decision else {
        refuse(&mut respond, 500, Vec::new(), b"internal error".to_vec());
        return None;
    };
    match decision {
        Decision::Accept(accept) => match upgrade.accept(config, accept) {
            Ok((head, upgraded)) => {
                let send = match respond.send_response(response(head.status, &head.headers), false)
                {
                    Ok(send) => send,
                    Err(_) => return None,
                };
                let io = H2Stream::new(send, body);
                Some(WebSocketStream::from_upgraded(
                    io,
                    (**config).clone(),
                    upgraded,
                ))
            }
            Err(_) => {
                refuse(&mut respond, 500, Vec::new(), b"internal error".to_vec());
                None
            }
        },
        Decision::Reject {
            status,
            headers,
            body,
        } => match upgrade.reject(status, headers, body) {
            Ok(head) => {
                refuse(&mut respond, head.status, head.headers, head.body);
                None
            }
            Err(_) => {
                refuse(&mut respond, 500, Vec::new(), b"internal error".to_vec());
                None
            }
        },
    }
}

/// A response head from the core's status and (validated) headers; HTTP/1.1-only headers
/// (`connection`, `upgrade`) are left out, as HTTP/2 forbids them.
fn response(status: u16, headers: &[(String, String)]) -> Response<()> {
    let mut resp = Response::new(());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (n, v) in headers {
        if n.eq_ignore_ascii_case("connection") || n.eq_ignore_ascii_case("upgrade") {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            http::header::HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()),
            http::header::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    resp
}

/// Sends a refusal: the status and headers, then the body, ending the stream.
fn refuse(
    respond: &mut SendResponse<Bytes>,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) {
    let end = body.is_empty();
    if let Ok(mut send) = respond.send_response(response(status, &headers), end) {
        if !end {
            // Queued whole: refusal bodies are short (the core bounds them).
            send.reserve_capacity(body.len());
            let _ = send.send_data(Bytes::from(body), true);
        }
    }
}
