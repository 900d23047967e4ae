//! The opening handshake (RFC 6455 §4): building and parsing the HTTP/1.1
//! upgrade request and response.
//!
//! Parsing functions are pure: they take the bytes received so far and either
//! ask for more (`Ok(None)`), succeed with the number of bytes the head used
//! (anything after it belongs to the WebSocket stream), or fail.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::{ClientRequest, HandshakeError, Limits, UpgradeRequest};

/// The GUID of RFC 6455 §1.3.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §1.3, §4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(WEBSOCKET_GUID.as_bytes());
    B64.encode(h.finalize())
}

/// Encodes 16 random bytes as a `Sec-WebSocket-Key`.
pub fn encode_key(nonce: &[u8; 16]) -> String {
    B64.encode(nonce)
}

/// A parsed and validated upgrade request, plus what the core needs to answer
/// it.
#[derive(Clone, Debug)]
pub struct ParsedRequest {
    /// What the application sees.
    pub request: UpgradeRequest,
    /// The client's `Sec-WebSocket-Key` (empty over HTTP/2).
    pub key: String,
    /// The HTTP version that carried it.
    pub version: Http,
}

/// A handshake request the server refuses, with the HTTP status to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRejection {
    /// The status to answer with (400, 405, 414, 426, 431, 505).
    pub status: u16,
    /// Why.
    pub error: HandshakeError,
}

/// Parses and validates a client's upgrade request.
pub fn parse_request(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(ParsedRequest, usize)>, RequestRejection> {
    let reject = |status, error| RequestRejection { status, error };
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    // A head past the limit: 414 when the request line alone does not fit,
    // else 431, whether the whole head arrived at once or not.
    let too_large = || {
        let head = buf.get(..limits.max_handshake_bytes).unwrap_or(buf);
        let line_done = head.contains(&b'\n');
        Err(if line_done {
            reject(431, HandshakeError::HeadTooLarge)
        } else {
            reject(414, HandshakeError::RequestLineTooLong)
        })
    };
    let parsed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_handshake_bytes => n,
        Ok(httparse::Status::Complete(_)) => return too_large(),
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_handshake_bytes {
                return too_large();
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(431, HandshakeError::TooManyHeaders));
        }
        Err(e) => return Err(reject(400, HandshakeError::Malformed(e.to_string()))),
    };
    let method = req.method.unwrap_or_default();
    let version = if req.version == Some(1) {
        Http::V1
    } else {
        return Err(reject(505, HandshakeError::BadHttpVersion));
    };
    let target = req.path.unwrap_or_default();
    let hdrs: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let request = validate_request(method, target, version, hdrs)?;
    Ok(Some((request, parsed)))
}

/// Which HTTP carries the upgrade: HTTP/1.1 (`GET` with `Upgrade: websocket`,
/// RFC 6455 §4) or HTTP/2 (extended `CONNECT` with `:protocol = websocket`,
/// RFC 8441).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Http {
    /// HTTP/1.1 upgrade; success is `101 Switching Protocols`.
    #[default]
    V1,
    /// HTTP/2 extended CONNECT; success is `200`.
    V2,
}

/// Validates an upgrade request head, whoever parsed it: `method`, the request
/// `target` (path and query; for HTTP/2 the `:path`), the HTTP version, and
/// the headers in order (for HTTP/2: the regular headers, with `:authority`
/// given as `host`).
///
/// HTTP/1.1 needs `GET`, `Host`, `Upgrade: websocket`, `Connection: upgrade`,
/// `Sec-WebSocket-Version: 13` and a 16-byte `Sec-WebSocket-Key`. HTTP/2 needs
/// `CONNECT`, `Sec-WebSocket-Version: 13` and no key (RFC 8441 §5; the caller
/// checked `:protocol = websocket`).
pub fn validate_request(
    method: &str,
    target: &str,
    version: Http,
    hdrs: Vec<(String, String)>,
) -> Result<ParsedRequest, RequestRejection> {
    let reject = |status, error| RequestRejection { status, error };
    let expected = match version {
        Http::V1 => "GET",
        Http::V2 => "CONNECT",
    };
    if method != expected {
        return Err(reject(405, HandshakeError::BadMethod(method.to_string())));
    }
    fn named<'a>(
        hdrs: &'a [(String, String)],
        name: &'a str,
    ) -> impl Iterator<Item = &'a (String, String)> + 'a {
        hdrs.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
    }
    let find = |name: &'static str| named(&hdrs, name);
    let host = match find("host").next() {
        Some((_, v)) if !v.trim().is_empty() => v.trim().to_string(),
        _ => return Err(reject(400, HandshakeError::MissingHost)),
    };
    if version == Http::V1 {
        if !find("upgrade").any(|(_, v)| has_token(v, "websocket")) {
            return Err(reject(426, HandshakeError::MissingUpgrade));
        }
        if !find("connection").any(|(_, v)| has_token(v, "upgrade")) {
            return Err(reject(400, HandshakeError::MissingConnectionUpgrade));
        }
    }
    let mut versions = find("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (Some((_, v)), None) if v.trim() == "13" => {}
        (v, _) => {
            let v = v.map(|(_, v)| v.clone()).unwrap_or_default();
            return Err(reject(426, HandshakeError::UnsupportedVersion(v)));
        }
    }
    let key = if version == Http::V1 {
        let mut keys = find("sec-websocket-key");
        let key = match (keys.next(), keys.next()) {
            (Some((_, k)), None) => k.trim().to_string(),
            _ => return Err(reject(400, HandshakeError::BadKey)),
        };
        match B64.decode(key.as_bytes()) {
            Ok(raw) if raw.len() == 16 => {}
            _ => return Err(reject(400, HandshakeError::BadKey)),
        }
        key
    } else {
        String::new()
    };
    let origin = find("origin").next().map(|(_, v)| v.clone());
    let protocols: Vec<String> = find("sec-websocket-protocol")
        .flat_map(|(_, v)| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    // Subprotocols are tokens (RFC 6455 §4.1); one may be echoed in our answer, so nothing
    // else gets through (a head another HTTP stack parsed may carry any byte).
    if let Some(bad) = protocols.iter().find(|p| !is_token(p)) {
        return Err(reject(
            400,
            HandshakeError::Malformed(format!(
                "Sec-WebSocket-Protocol {:?} is not a token",
                bad.escape_debug().to_string()
            )),
        ));
    }
    let extensions: Vec<String> = find("sec-websocket-extensions")
        .map(|(_, v)| v.clone())
        .collect();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    Ok(ParsedRequest {
        request: UpgradeRequest {
            path,
            query,
            host,
            origin,
            protocols,
            extensions,
            headers: hdrs.clone(),
        },
        key,
        version,
    })
}

/// The headers of a client's upgrade request, in order: for HTTP/1.1 `Host`,
/// `Upgrade`, `Connection`, `Sec-WebSocket-Key`, then for both versions
/// `Sec-WebSocket-Version`, `Origin`, `Sec-WebSocket-Protocol`,
/// `Sec-WebSocket-Extensions` and the request's own headers. (Over HTTP/2 the
/// host goes in `:authority`, which the HTTP/2 layer writes.) `req` must have
/// passed [`ClientRequest::validate`].
pub fn request_headers(
    req: &ClientRequest,
    version: Http,
    key: &str,
    extensions: Option<&str>,
) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = Vec::new();
    let mut add = |n: &str, v: &str| h.push((n.to_string(), v.to_string()));
    if version == Http::V1 {
        add("Host", &req.host);
        add("Upgrade", "websocket");
        add("Connection", "Upgrade");
        add("Sec-WebSocket-Key", key);
    }
    add("Sec-WebSocket-Version", "13");
    if let Some(o) = &req.origin {
        add("Origin", o);
    }
    if !req.protocols.is_empty() {
        add("Sec-WebSocket-Protocol", &req.protocols.join(", "));
    }
    if let Some(e) = extensions {
        add("Sec-WebSocket-Extensions", e);
    }
    for (n, v) in &req.headers {
        add(n, v);
    }
    h
}

/// Writes the client's HTTP/1.1 upgrade request (`req` must have passed
/// [`ClientRequest::validate`]).
pub fn write_request(req: &ClientRequest, key: &str, extensions: Option<&str>, out: &mut Vec<u8>) {
    let headers = request_headers(req, Http::V1, key, extensions);
    write_request_head(&req.resource, &headers, out);
}

/// Writes `GET resource HTTP/1.1` (an empty resource is `/`) and the headers.
pub fn write_request_head(resource: &str, headers: &[(String, String)], out: &mut Vec<u8>) {
    let resource = if resource.is_empty() { "/" } else { resource };
    push(out, &["GET ", resource, " HTTP/1.1\r\n"]);
    write_headers(headers, out);
}

/// The headers of a successful answer, in order: for HTTP/1.1 `Upgrade`,
/// `Connection` and `Sec-WebSocket-Accept` (from the client's `key`), then
/// the chosen subprotocol, the agreed extensions and `extra`.
pub fn accept_headers(
    version: Http,
    key: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = Vec::new();
    if version == Http::V1 {
        h.push(("Upgrade".into(), "websocket".into()));
        h.push(("Connection".into(), "Upgrade".into()));
        h.push(("Sec-WebSocket-Accept".into(), accept_key(key.as_bytes())));
    }
    if let Some(p) = protocol {
        h.push(("Sec-WebSocket-Protocol".into(), p.into()));
    }
    if let Some(e) = extensions {
        h.push(("Sec-WebSocket-Extensions".into(), e.into()));
    }
    h.extend(extra.iter().cloned());
    h
}

/// Writes `Name: value` lines and the blank line that ends the head.
fn write_headers(headers: &[(String, String)], out: &mut Vec<u8>) {
    for (n, v) in headers {
        push(out, &[n, ": ", v, "\r\n"]);
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a 101 response.
pub fn write_accept(
    key: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    headers: &[(String, String)],
    out: &mut Vec<u8>,
) {
    let headers = accept_headers(Http::V1, key, protocol, extensions, headers);
    write_switching(&headers, out);
}

/// Writes `HTTP/1.1 101 Switching Protocols` and the headers.
pub fn write_switching(headers: &[(String, String)], out: &mut Vec<u8>) {
    push(out, &["HTTP/1.1 101 Switching Protocols\r\n"]);
    write_headers(headers, out);
}

/// Writes an error response that closes the connection.
pub fn write_reject(status: u16, headers: &[(String, String)], body: &[u8], out: &mut Vec<u8>) {
    let code = status.to_string();
    push(
        out,
        &["HTTP/1.1 ", &code, " ", reason_phrase(status), "\r\n"],
    );
    push(
        out,
        &[
            "Connection: close\r\nContent-Length: ",
            &body.len().to_string(),
            "\r\n",
        ],
    );
    if status == 426 {
        push(
            out,
            &["Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"],
        );
    }
    for (n, v) in headers {
        push(out, &[n, ": ", v, "\r\n"]);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// A parsed server response head.
#[derive(Clone, Debug)]
pub struct ParsedResponse {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
}

impl ParsedResponse {
    /// Values of all headers with this name (case-insensitive).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a server's response head.
pub fn parse_response(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(ParsedResponse, usize)>, HandshakeError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= limits.max_handshake_bytes => Ok(Some((
            ParsedResponse {
                status: resp.code.unwrap_or(0),
                reason: resp.reason.unwrap_or_default().to_string(),
                headers: resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
            },
            n,
        ))),
        Ok(httparse::Status::Complete(_)) => Err(HandshakeError::HeadTooLarge),
        Ok(httparse::Status::Partial) if buf.len() > limits.max_handshake_bytes => {
            Err(HandshakeError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HandshakeError::TooManyHeaders),
        Err(e) => Err(HandshakeError::Malformed(e.to_string())),
    }
}

/// Checks a 101 response's Upgrade, Connection and Accept headers and the
/// chosen subprotocol. Extensions are checked by the caller.
pub fn validate_switching(
    resp: &ParsedResponse,
    expected_accept: &str,
    offered_protocols: &[String],
) -> Result<Option<String>, HandshakeError> {
    if !resp.all("upgrade").any(|v| has_token(v, "websocket")) {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !resp.all("connection").any(|v| has_token(v, "upgrade")) {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    let mut accepts = resp.all("sec-websocket-accept");
    match (accepts.next(), accepts.next()) {
        (Some(a), None) if a.trim() == expected_accept => {}
        _ => return Err(HandshakeError::BadAccept),
    }
    chosen_protocol(resp, offered_protocols)
}

/// The subprotocol a successful response chose: none, or exactly one that
/// was offered.
pub fn chosen_protocol(
    resp: &ParsedResponse,
    offered_protocols: &[String],
) -> Result<Option<String>, HandshakeError> {
    let mut protos = resp.all("sec-websocket-protocol");
    match (protos.next(), protos.next()) {
        (None, _) => Ok(None),
        (Some(p), None) if offered_protocols.iter().any(|o| o == p.trim()) => {
            Ok(Some(p.trim().to_string()))
        }
        (Some(p), _) => Err(HandshakeError::UnofferedProtocol(p.to_string())),
    }
}

/// Whether a comma-separated header value contains `token` (ASCII
/// case-insensitive).
pub fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether a header name and value are safe to write: the name is a token
/// and the value has no control bytes (no CR/LF injection, no NUL).
pub fn valid_header(name: &str, value: &str) -> bool {
    is_token(name) && is_field_value(value)
}

/// A non-empty RFC 7230 token (`tchar`s only).
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(crate::extension::is_tchar)
}

/// An RFC 7230 field value: no control bytes except horizontal tab.
pub fn is_field_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// The reason phrase for the statuses the core uses.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn push(out: &mut Vec<u8>, parts: &[&str]) {
    for p in parts {
        out.extend_from_slice(p.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6455_1_3_accept_key() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    const REQ: &[u8] = b"GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\nEXTRA";

    #[test]
    fn rfc6455_1_3_request_parses() {
        let (p, n) = parse_request(REQ, &Limits::default()).unwrap().unwrap();
        assert_eq!(&REQ[n..], b"EXTRA");
        assert_eq!(p.request.path, "/chat");
        assert_eq!(p.request.query.as_deref(), Some("room=1"));
        assert_eq!(p.request.origin.as_deref(), Some("http://example.com"));
        assert_eq!(p.request.protocols, vec!["chat", "superchat"]);
        assert_eq!(p.key, "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn every_prefix_is_partial() {
        let head_len = REQ.len() - 5;
        for i in 0..head_len {
            assert!(parse_request(&REQ[..i], &Limits::default())
                .unwrap()
                .is_none());
        }
    }

    fn status_of(req: &str) -> u16 {
        parse_request(req.as_bytes(), &Limits::default())
            .unwrap_err()
            .status
    }

    #[test]
    fn rejections_have_the_right_status() {
        let ok = "Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        assert_eq!(
            status_of(&format!(
                "POST / HTTP/1.1\r\n{ok}Sec-WebSocket-Version: 13\r\n\r\n"
            )),
            405
        );
        assert_eq!(
            status_of(&format!(
                "GET / HTTP/1.0\r\n{ok}Sec-WebSocket-Version: 13\r\n\r\n"
            )),
            505
        );
        assert_eq!(
            status_of(&format!(
                "GET / HTTP/1.1\r\n{ok}Sec-WebSocket-Version: 8\r\n\r\n"
            )),
            426
        );
        assert_eq!(status_of(&format!("GET / HTTP/1.1\r\n{ok}\r\n")), 426);
        assert_eq!(
            status_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
            426
        );
        assert_eq!(
            status_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
            400
        );
    }

    #[test]
    fn head_limits_give_414_and_431() {
        let limits = Limits::default().max_handshake_bytes(64).max_headers(4);
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
        assert_eq!(
            parse_request(long_line.as_bytes(), &limits)
                .unwrap_err()
                .status,
            414
        );
        // The same when the whole request arrived in one read.
        let whole = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(100));
        assert_eq!(
            parse_request(whole.as_bytes(), &limits).unwrap_err().status,
            414
        );
        let long_head = format!("GET / HTTP/1.1\r\nX: {}\r\n", "b".repeat(100));
        assert_eq!(
            parse_request(long_head.as_bytes(), &limits)
                .unwrap_err()
                .status,
            431
        );
        let many = "GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\n\r\n";
        assert_eq!(
            parse_request(many.as_bytes(), &limits).unwrap_err().status,
            431
        );
    }

    #[test]
    fn header_injection_refused() {
        assert!(valid_header("Authorization", "Bearer x"));
        assert!(!valid_header("X", "a\r\nEvil: 1"));
        assert!(!valid_header("Bad Name", "v"));
        assert!(!valid_header("", "v"));
    }
}
