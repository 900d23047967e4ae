//! Connections from streams upgraded elsewhere: the handshake in pieces, for an HTTP stack that
//! is not ours (hyper or axum, an HTTP/2 library carrying RFC 8441 extended CONNECT).
//!
//! - Server: another stack parsed the request head. [`ServerUpgrade::new`] validates it (the
//!   same checks the core makes on its own), [`ServerUpgrade::request`] shows it to the
//!   application, and [`ServerUpgrade::accept`] negotiates the subprotocol and extensions and
//!   returns the [`ResponseHead`] to send plus the [`Upgraded`] state; or
//!   [`ServerUpgrade::reject`] gives the response for a refusal.
//! - Client: [`ClientUpgrade::new`] validates a [`ClientRequest`] and gives the headers to send;
//!   [`ClientUpgrade::finish`] checks the response (status, accept key, subprotocol,
//!   extensions) and returns the [`Upgraded`] state.
//! - Either way, [`Connection::upgraded`](crate::Connection::upgraded) starts a connection that
//!   is already open, and the stream's bytes go through it as usual.
//!
//! ```
//! use std::time::Instant;
//! use ws_proto::upgrade::{Http, ServerUpgrade};
//! use ws_proto::{Accept, Config, Connection, Event, Transmit};
//!
//! // A head parsed by some other HTTP stack.
//! let headers = vec![
//!     ("Host".to_string(), "example.com".to_string()),
//!     ("Upgrade".into(), "websocket".into()),
//!     ("Connection".into(), "Upgrade".into()),
//!     ("Sec-WebSocket-Key".into(), "dGhlIHNhbXBsZSBub25jZQ==".into()),
//!     ("Sec-WebSocket-Version".into(), "13".into()),
//! ];
//! let upgrade = ServerUpgrade::new("GET", "/chat", Http::V1, headers).unwrap();
//! assert_eq!(upgrade.request().path, "/chat");
//! let cfg = Config::default();
//! let (response, upgraded) = upgrade.accept(&cfg, Accept::new()).unwrap();
//! assert_eq!(response.status, 101);
//! assert!(response.headers.iter().any(|(n, v)| n == "Sec-WebSocket-Accept"
//!     && v == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
//! // ... the other stack sends `response`, then hands over the stream:
//! let mut conn = Connection::upgraded(cfg, upgraded, Instant::now());
//! assert!(matches!(conn.poll_event(), Some(Event::Open(_))));
//! conn.send_text("hello").unwrap();
//! let mut buf = [0u8; 64];
//! assert_eq!(conn.poll_transmit(Instant::now(), &mut buf), Some(Transmit::Data(7)));
//! ```

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::extension::{self, Chain, ExtensionFactory};
use crate::handshake::{self, ParsedRequest, ParsedResponse};
use crate::{Accept, ClientRequest, Config, Error, HandshakeError, Side, UpgradeRequest};

pub use crate::handshake::Http;

/// A response head for another HTTP stack to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// 101 (HTTP/1.1) or 200 (HTTP/2) when accepted; the refusal's status otherwise.
    pub status: u16,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body (refusals only).
    pub body: Vec<u8>,
}

/// What an upgrade agreed: our side, the subprotocol and the negotiated extensions. Hand it
/// to [`Connection::upgraded`](crate::Connection::upgraded).
#[derive(Debug)]
pub struct Upgraded {
    pub(crate) side: Side,
    pub(crate) protocol: Option<String>,
    pub(crate) chain: Chain,
    pub(crate) headers: Vec<(String, String)>,
}

impl Upgraded {
    /// An upgrade that agreed on `protocol` and no extension, for a stack that negotiated it
    /// all by itself.
    pub fn new(side: Side, protocol: Option<String>) -> Upgraded {
        Upgraded {
            side,
            protocol,
            chain: Chain::default(),
            headers: Vec::new(),
        }
    }

    /// Our side.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The agreed subprotocol.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The agreed `Sec-WebSocket-Extensions` value.
    pub fn extensions(&self) -> Option<&str> {
        self.chain.header()
    }
}

/// Server role: an upgrade request whose head another HTTP stack parsed.
#[derive(Clone, Debug)]
pub struct ServerUpgrade {
    parsed: ParsedRequest,
}

/// A request that is not a valid upgrade: the status to answer and why.
pub type Rejection = handshake::RequestRejection;

impl ServerUpgrade {
    /// Validates a request head: the method (`GET` for HTTP/1.1, `CONNECT` for HTTP/2), the
    /// request target (path and query), the version, and the headers in order (for HTTP/2,
    /// give `:authority` as `host`; the caller has checked `:protocol` is `websocket`).
    pub fn new(
        method: &str,
        target: &str,
        version: Http,
        headers: Vec<(String, String)>,
    ) -> Result<ServerUpgrade, Rejection> {
        let parsed = handshake::validate_request(method, target, version, headers)?;
        Ok(ServerUpgrade { parsed })
    }

    /// The request, as the application sees it.
    pub fn request(&self) -> &UpgradeRequest {
        &self.parsed.request
    }

    /// Accepts: negotiates the extensions (from `cfg`, or as `accept` chooses) and checks the
    /// chosen subprotocol and extra headers. Returns the response head to send and the state
    /// for [`Connection::upgraded`](crate::Connection::upgraded).
    pub fn accept(self, cfg: &Config, accept: Accept) -> Result<(ResponseHead, Upgraded), Error> {
        let p = &self.parsed;
        let (headers, chain) = accept_response(
            cfg,
            p.version,
            &p.key,
            &p.request.protocols,
            &p.request.extensions,
            &accept,
        )?;
        let status = match p.version {
            Http::V1 => 101,
            Http::V2 => 200,
        };
        let upgraded = Upgraded {
            side: Side::Server,
            protocol: accept.protocol,
            chain,
            headers: Vec::new(),
        };
        Ok((
            ResponseHead {
                status,
                headers,
                body: Vec::new(),
            },
            upgraded,
        ))
    }

    /// Refuses with `status` (200..=599, not 101), extra headers and a body; the headers are
    /// checked like [`Connection::reject`](crate::Connection::reject)'s.
    pub fn reject(
        self,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<ResponseHead, Error> {
        check_reject(status, &headers)?;
        Ok(ResponseHead {
            status,
            headers,
            body,
        })
    }
}

/// Checks a refusal's status and headers.
pub(crate) fn check_reject(status: u16, headers: &[(String, String)]) -> Result<(), Error> {
    if !(200..=599).contains(&status) || status == 101 {
        return Err(Error::InvalidHeader(format!("status {status}")));
    }
    if let Some((n, _)) = headers.iter().find(|(n, v)| !handshake::valid_header(n, v)) {
        return Err(Error::InvalidHeader(n.clone()));
    }
    Ok(())
}

/// The server's side of a successful handshake, for both the core's own HTTP/1.1 and another
/// stack: checks the subprotocol and headers `accept` gives, negotiates the extensions, and
/// returns the response headers and the extension chain.
pub(crate) fn accept_response(
    cfg: &Config,
    version: Http,
    key: &str,
    offered_protocols: &[String],
    offered_extensions: &[String],
    accept: &Accept,
) -> Result<(Vec<(String, String)>, Chain), Error> {
    if let Some(p) = &accept.protocol {
        if !handshake::is_token(p) || !offered_protocols.iter().any(|o| o == p) {
            return Err(Error::InvalidHeader(format!(
                "subprotocol {p:?} was not offered"
            )));
        }
    }
    for (n, v) in &accept.headers {
        if !handshake::valid_header(n, v) {
            return Err(Error::InvalidHeader(n.clone()));
        }
    }
    let factories = accept.factories(cfg);
    let values: Vec<&str> = offered_extensions.iter().map(String::as_str).collect();
    let chain = extension::server_negotiate(&factories, &values);
    let headers = handshake::accept_headers(
        version,
        key,
        accept.protocol.as_deref(),
        chain.header(),
        &accept.headers,
    );
    Ok((headers, chain))
}

/// Client role: an upgrade request for another HTTP stack to send (e.g. an HTTP/2 extended
/// CONNECT), and the check of its response.
#[derive(Debug)]
pub struct ClientUpgrade {
    version: Http,
    factories: Vec<Arc<dyn ExtensionFactory>>,
    accept: String,
    protocols: Vec<String>,
    headers: Vec<(String, String)>,
}

impl ClientUpgrade {
    /// Validates `request` ([`ClientRequest::validate`]) and the extension offers of `cfg`, and
    /// prepares the headers. The `Sec-WebSocket-Key` (HTTP/1.1) comes from `cfg.rng_seed`, or
    /// from the operating system when that is `None`.
    pub fn new(
        cfg: &Config,
        request: &ClientRequest,
        version: Http,
    ) -> Result<ClientUpgrade, Error> {
        let mut rng = match cfg.rng_seed {
            Some(seed) => StdRng::from_seed(seed),
            None => StdRng::from_os_rng(),
        };
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        ClientUpgrade::with_nonce(cfg, request, version, &nonce)
    }

    /// As [`new`](Self::new), with the key's 16 random bytes given.
    pub(crate) fn with_nonce(
        cfg: &Config,
        request: &ClientRequest,
        version: Http,
        nonce: &[u8; 16],
    ) -> Result<ClientUpgrade, Error> {
        request.validate()?;
        let factories = cfg.extension_factories();
        let offer =
            extension::client_offer_header(&factories).map_err(|why| Error::InvalidRequest {
                field: "Sec-WebSocket-Extensions".into(),
                reason: why,
            })?;
        let key = handshake::encode_key(nonce);
        let headers = handshake::request_headers(request, version, &key, offer.as_deref());
        Ok(ClientUpgrade {
            version,
            factories,
            accept: handshake::accept_key(key.as_bytes()),
            protocols: request.protocols.clone(),
            headers,
        })
    }

    /// The headers to send, in order (over HTTP/2 without `Host`: the host goes in
    /// `:authority`, and `:protocol` is `websocket`).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// Checks the response: its status (101 for HTTP/1.1, 200 for HTTP/2), for HTTP/1.1 the
    /// `Upgrade`, `Connection` and `Sec-WebSocket-Accept` headers, the chosen subprotocol (one
    /// that was offered) and the extensions (each offered, each once, each acceptable to its
    /// factory).
    pub fn finish(
        self,
        status: u16,
        headers: Vec<(String, String)>,
    ) -> Result<Upgraded, HandshakeError> {
        let resp = ParsedResponse {
            status,
            reason: String::new(),
            headers,
        };
        let protocol = match (self.version, status) {
            (Http::V1, 101) => handshake::validate_switching(&resp, &self.accept, &self.protocols)?,
            (Http::V2, 200) => handshake::chosen_protocol(&resp, &self.protocols)?,
            _ => {
                return Err(HandshakeError::Status {
                    status,
                    reason: String::new(),
                    headers: resp.headers,
                    body: Vec::new(),
                })
            }
        };
        let values: Vec<&str> = resp.all("sec-websocket-extensions").collect();
        let chain = extension::client_accept(&self.factories, &values)
            .map_err(HandshakeError::Extension)?;
        Ok(Upgraded {
            side: Side::Client,
            protocol,
            chain,
            headers: resp.headers,
        })
    }
}
