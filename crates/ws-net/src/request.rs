//! The upgrade request a client sends, assembled once for every driver from a
//! parsed URL and the caller's options, and validated by the core before any
//! connection is made.

use ws_proto::ClientRequest;

use crate::url::WsUrl;

/// Builds the upgrade request for `url` with an `Origin`, the offered
/// subprotocols (in order of preference) and extra headers, and checks it
/// with [`ClientRequest::validate`]: nothing in it can add a header line or
/// break the request line.
///
/// On an invalid part the error is the core's
/// [`ws_proto::Error::InvalidRequest`], whose `field` names it (`"Origin"`,
/// `"Sec-WebSocket-Protocol"`, the header's name, `"Host"`, `"request
/// target"`) and whose message reads "invalid FIELD in the upgrade request:
/// REASON". A driver calls this before it resolves or connects anything, so
/// an invalid request never reaches a socket.
///
/// ```
/// use ws_net::request::client_request;
/// use ws_net::url::WsUrl;
///
/// let url = WsUrl::parse("wss://chat.example/room?id=7")?;
/// let headers = vec![("Authorization".to_string(), "Bearer t0k3n".to_string())];
/// let req = client_request(&url, Some("https://chat.example"), &["chat.v2".into()], &headers)?;
/// assert_eq!((req.host.as_str(), req.resource.as_str()), ("chat.example", "/room?id=7"));
///
/// // A value that would add a header line names the header.
/// let evil = vec![("X-Test".to_string(), "a\r\nInjected: yes".to_string())];
/// match client_request(&url, None, &[], &evil) {
///     Err(ws_proto::Error::InvalidRequest { field, .. }) => assert_eq!(field, "X-Test"),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn client_request(
    url: &WsUrl,
    origin: Option<&str>,
    protocols: &[String],
    headers: &[(String, String)],
) -> Result<ClientRequest, ws_proto::Error> {
    let mut request = ClientRequest::new(url.host_header(), url.resource());
    request.origin = origin.map(str::to_string);
    request.protocols = protocols.to_vec();
    request.headers = headers.to_vec();
    request.validate()?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> WsUrl {
        match WsUrl::parse(s) {
            Ok(u) => u,
            Err(e) => panic!("{e}"),
        }
    }

    /// The field the core names, or a panic.
    fn field(r: Result<ClientRequest, ws_proto::Error>) -> String {
        match r {
            Err(ws_proto::Error::InvalidRequest { field, .. }) => field,
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    fn h(n: &str, v: &str) -> Vec<(String, String)> {
        vec![(n.to_string(), v.to_string())]
    }

    #[test]
    fn assembles_host_target_origin_protocols_and_headers() {
        let u = url("ws://[::1]:9001/a%20b?x=1");
        let protos = vec!["chat".to_string(), "superchat".to_string()];
        let r = client_request(&u, Some("http://localhost"), &protos, &h("X-Id", "7\t8"));
        let r = match r {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(r.host, "[::1]:9001");
        assert_eq!(r.resource, "/a%20b?x=1");
        assert_eq!(r.origin.as_deref(), Some("http://localhost"));
        assert_eq!(r.protocols, protos);
        assert_eq!(r.headers, h("X-Id", "7\t8"));
    }

    #[test]
    fn every_invalid_part_is_named() {
        let u = url("ws://example.com/");
        let none: &[String] = &[];
        let hv = |n: &str, v: &str| field(client_request(&u, None, none, &h(n, v)));
        assert_eq!(hv("X-Test", "a\r\nInjected: yes"), "X-Test");
        assert_eq!(hv("X-Test", "a\nb"), "X-Test");
        assert_eq!(hv("X-Test", "a\x01b"), "X-Test");
        assert_eq!(hv("X-Test", "a\0b"), "X-Test");
        assert_eq!(hv("X-Test", "a\x7fb"), "X-Test");
        assert_eq!(hv("Bad Name", "x"), "Bad Name");
        assert_eq!(hv("Bad:Name", "x"), "Bad:Name");
        assert_eq!(hv("", "x"), "");
        assert_eq!(hv("Sec-WebSocket-Key", "x"), "Sec-WebSocket-Key");
        assert_eq!(hv("host", "x"), "host");
        let origin = |o: &str| field(client_request(&u, Some(o), none, &[]));
        assert_eq!(origin("http://a\r\nInjected: yes"), "Origin");
        assert_eq!(origin("http://a b"), "Origin");
        assert_eq!(origin(""), "Origin");
        let proto = |p: &str| field(client_request(&u, None, &[p.to_string()], &[]));
        assert_eq!(proto("a b"), "Sec-WebSocket-Protocol");
        assert_eq!(proto("a,b"), "Sec-WebSocket-Protocol");
        assert_eq!(proto("a\r\nX: y"), "Sec-WebSocket-Protocol");
        assert_eq!(proto(""), "Sec-WebSocket-Protocol");
    }

    #[test]
    fn the_message_names_the_field_and_the_reason() {
        let u = url("ws://example.com/");
        let e = client_request(&u, None, &[], &h("X-Test", "a\r\nb"));
        let msg = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.starts_with("invalid X-Test in the upgrade request: control bytes"),
            "{msg}"
        );
    }
}
