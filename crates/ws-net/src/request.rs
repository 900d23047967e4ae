//! The upgrade request a client sends, assembled once for every driver from a
//! parsed URL and the caller's options, and validated by the core before any
//! connection is made.
//!
//! [`RequestOptions`] is what a client's options say about that request
//! (origin, subprotocols, extra headers, a hook); every driver's client
//! options hold one, and [`RequestOptions::build`] is the one "URL + options
//! → validated request" step they all take.

use std::fmt;
use std::sync::Arc;

#[doc(no_inline)]
pub use ws_proto::ClientRequest;

use crate::proxy::{ProxyMode, ProxyUrl};
use crate::redirect::DEFAULT_MAX_REDIRECTS;
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

/// A hook that edits the upgrade request before it is sent (say, to add an
/// `Authorization` header computed per connection). What it leaves is
/// validated like the rest.
pub type RequestHook = Arc<dyn Fn(&mut ClientRequest) + Send + Sync>;

/// What a client puts into its upgrade request besides the URL (the
/// `Origin`, the offered subprotocols, extra headers, and a hook that may
/// edit the assembled request), and how that request reaches the server
/// (the proxy, and how many redirects are followed). Every driver's client
/// options hold one (ws-std `ClientOptions`, ws-mio and ws-tokio
/// `ConnectOptions`) and forward their builder methods to it.
///
/// The URL's `user:password@` becomes `Authorization: Basic` unless an
/// `Authorization` header is given (see [`build_attempt`](Self::build_attempt)).
///
/// ```
/// use ws_net::request::RequestOptions;
/// use ws_net::url::WsUrl;
///
/// let options = RequestOptions::default()
///     .origin("https://app.example")
///     .protocol("chat.v2")
///     .header("Authorization", "Bearer t0k3n")
///     .request_hook(|req| req.headers.push(("X-Request-Id".into(), "42".into())));
/// let req = options.build(&WsUrl::parse("wss://chat.example/room")?)?;
/// assert_eq!(req.headers.len(), 2);
///
/// // What the hook leaves is checked too.
/// let evil = RequestOptions::default().request_hook(|req| req.resource = "/ HTTP/1.1\r\nX: y".into());
/// match evil.build(&WsUrl::parse("ws://chat.example/")?) {
///     Err(ws_proto::Error::InvalidRequest { field, .. }) => assert_eq!(field, "request target"),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct RequestOptions {
    /// The `Origin` header (visible ASCII, e.g. `https://app.example`).
    pub origin: Option<String>,
    /// Subprotocols offered, in order of preference (each a token).
    pub protocols: Vec<String>,
    /// Extra request headers: token names, values without control bytes,
    /// and none the handshake writes itself (`Host`, `Origin`,
    /// `Sec-WebSocket-*`...). An invalid one fails the connection attempt
    /// before any socket is opened.
    pub headers: Vec<(String, String)>,
    /// Called with the assembled request before anything is connected;
    /// what it leaves is validated like the rest.
    pub request_hook: Option<RequestHook>,
    /// Which proxy to go through (default [`ProxyMode::Env`]: the
    /// environment's, as curl reads it; see [`ProxyMode::select_with`]).
    pub proxy: ProxyMode,
    /// How many redirects (301, 302, 303, 307, 308) are followed (default
    /// [`DEFAULT_MAX_REDIRECTS`]; 0: none, a 3xx is the handshake's error).
    /// See [`crate::redirect`].
    pub max_redirects: usize,
}

impl Default for RequestOptions {
    fn default() -> Self {
        RequestOptions {
            origin: None,
            protocols: Vec::new(),
            headers: Vec::new(),
            request_hook: None,
            proxy: ProxyMode::Env,
            max_redirects: DEFAULT_MAX_REDIRECTS,
        }
    }
}

impl fmt::Debug for RequestOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestOptions")
            .field("origin", &self.origin)
            .field("protocols", &self.protocols)
            .field("headers", &self.headers)
            .field("request_hook", &self.request_hook.is_some())
            .field("proxy", &self.proxy)
            .field("max_redirects", &self.max_redirects)
            .finish()
    }
}

impl RequestOptions {
    /// Sets the `Origin` header.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }
    /// Offers a subprotocol (call once per protocol, in order of preference).
    pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocols.push(protocol.into());
        self
    }
    /// Adds a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Edits the upgrade request before it is sent (e.g. to add
    /// `Authorization`); what the hook leaves is validated like the rest.
    pub fn request_hook(
        mut self,
        hook: impl Fn(&mut ClientRequest) + Send + Sync + 'static,
    ) -> Self {
        self.request_hook = Some(Arc::new(hook));
        self
    }

    /// Goes through this proxy, whatever the environment says
    /// ([`ProxyMode::Url`]).
    pub fn proxy(mut self, proxy: ProxyUrl) -> Self {
        self.proxy = ProxyMode::Url(proxy);
        self
    }
    /// Uses no proxy, whatever the environment says ([`ProxyMode::Off`]).
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxyMode::Off;
        self
    }
    /// Sets how the proxy is chosen.
    pub fn proxy_mode(mut self, mode: ProxyMode) -> Self {
        self.proxy = mode;
        self
    }
    /// Follows at most `n` redirects (0: none).
    pub fn max_redirects(mut self, n: usize) -> Self {
        self.max_redirects = n;
        self
    }

    /// The request these options make for `url` without running the hook,
    /// validated ([`client_request`]): what a builder checks early, before
    /// the hook runs per connection.
    pub fn assemble(&self, url: &WsUrl) -> Result<ClientRequest, ws_proto::Error> {
        client_request(url, self.origin.as_deref(), &self.protocols, &self.headers)
    }

    /// The request to send on `url`: [`assemble`](Self::assemble)d, edited
    /// by the hook, and validated again. Errors are the core's
    /// [`ws_proto::Error::InvalidRequest`] naming the field; a driver calls
    /// this before it resolves or connects anything.
    pub fn build(&self, url: &WsUrl) -> Result<ClientRequest, ws_proto::Error> {
        self.build_for(url, ws_proto::upgrade::Http::V1)
    }

    /// As [`build`](Self::build), for an attempt over `http` (HTTP/2 for an RFC 8441
    /// extended CONNECT): the hook sees it in [`ClientRequest::http`]. A driver that falls
    /// back from HTTP/2 to HTTP/1.1 calls this once per attempt, so the hook runs once per
    /// attempt.
    pub fn build_for(
        &self,
        url: &WsUrl,
        http: ws_proto::upgrade::Http,
    ) -> Result<ClientRequest, ws_proto::Error> {
        self.build_with(url, http, true)
    }

    /// The HTTP/1.1 request for one attempt on `url` (the first, or one after
    /// a redirect): with `send_credentials`, the URL's `user:password@`
    /// becomes `Authorization: Basic` (unless an `Authorization` header is
    /// given); without (a redirect to another origin), the URL's
    /// credentials and the `Authorization` and `Cookie` headers are left
    /// out. Then the hook edits it (it runs for every attempt) and it is
    /// validated again.
    pub fn build_attempt(
        &self,
        url: &WsUrl,
        send_credentials: bool,
    ) -> Result<ClientRequest, ws_proto::Error> {
        self.build_with(url, ws_proto::upgrade::Http::V1, send_credentials)
    }

    /// The one assembly behind [`build_for`](Self::build_for) and
    /// [`build_attempt`](Self::build_attempt).
    fn build_with(
        &self,
        url: &WsUrl,
        http: ws_proto::upgrade::Http,
        send_credentials: bool,
    ) -> Result<ClientRequest, ws_proto::Error> {
        let mut request = self.assemble(url)?;
        request.http = http;
        if send_credentials {
            let has_auth = request
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("authorization"));
            if let (Some(c), false) = (url.credentials(), has_auth) {
                request.headers.push(("Authorization".into(), c.basic()));
            }
        } else {
            request.headers.retain(|(n, _)| {
                !n.eq_ignore_ascii_case("authorization") && !n.eq_ignore_ascii_case("cookie")
            });
        }
        if let Some(hook) = &self.request_hook {
            hook(&mut request);
            request.validate()?;
        }
        Ok(request)
    }
}

/// Gives a driver's options type that holds a [`RequestOptions`] the request builder methods,
/// each forwarding to [`RequestOptions`]: `request` (replace it), `origin`, `protocol`,
/// `header`, `request_hook`, `proxy`, `no_proxy`, `proxy_mode`, `max_redirects`; the fields stay on the held value (`options.request.origin`).
///
/// ```
/// use ws_net::request::RequestOptions;
///
/// #[derive(Default)]
/// pub struct MyOptions {
///     pub request: RequestOptions,
/// }
/// ws_net::forward_request_options!(MyOptions => request);
///
/// let mut o = MyOptions::default().origin("https://app.example").protocol("chat");
/// o.request.headers.push(("X-Id".into(), "7".into()));
/// let r = &o.request;
/// assert_eq!((r.origin.as_deref(), r.protocols.len()), (Some("https://app.example"), 1));
/// ```
#[macro_export]
macro_rules! forward_request_options {
    ($t:ty => $($field:ident).+) => {
        impl $t {
            /// Replaces what goes into the upgrade request (origin, subprotocols, extra
            /// headers, the request hook).
            pub fn request(mut self, request: $crate::request::RequestOptions) -> Self {
                self.$($field).+ = request;
                self
            }
            /// Sets the `Origin` header
            /// ([`RequestOptions::origin`]($crate::request::RequestOptions::origin)).
            pub fn origin(mut self, origin: impl Into<String>) -> Self {
                self.$($field).+ = self.$($field).+.origin(origin);
                self
            }
            /// Offers a subprotocol (call once per protocol, in order of preference;
            /// [`RequestOptions::protocol`]($crate::request::RequestOptions::protocol)).
            pub fn protocol(mut self, protocol: impl Into<String>) -> Self {
                self.$($field).+ = self.$($field).+.protocol(protocol);
                self
            }
            /// Adds a request header
            /// ([`RequestOptions::header`]($crate::request::RequestOptions::header)).
            pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
                self.$($field).+ = self.$($field).+.header(name, value);
                self
            }
            /// Edits the upgrade request before it is sent (e.g. to add `Authorization`);
            /// what the hook leaves is validated like the rest
            /// ([`RequestOptions::request_hook`]($crate::request::RequestOptions::request_hook)).
            pub fn request_hook(
                mut self,
                hook: impl Fn(&mut $crate::request::ClientRequest) + Send + Sync + 'static,
            ) -> Self {
                self.$($field).+ = self.$($field).+.request_hook(hook);
                self
            }
            /// Goes through this proxy whatever the environment says
            /// ([`RequestOptions::proxy`]($crate::request::RequestOptions::proxy)).
            pub fn proxy(mut self, proxy: $crate::proxy::ProxyUrl) -> Self {
                self.$($field).+ = self.$($field).+.proxy(proxy);
                self
            }
            /// Uses no proxy whatever the environment says
            /// ([`RequestOptions::no_proxy`]($crate::request::RequestOptions::no_proxy)).
            pub fn no_proxy(mut self) -> Self {
                self.$($field).+ = self.$($field).+.no_proxy();
                self
            }
            /// Sets how the proxy is chosen
            /// ([`RequestOptions::proxy_mode`]($crate::request::RequestOptions::proxy_mode)).
            pub fn proxy_mode(mut self, mode: $crate::proxy::ProxyMode) -> Self {
                self.$($field).+ = self.$($field).+.proxy_mode(mode);
                self
            }
            /// Follows at most `n` redirects, 0 for none (default 5;
            /// [`RequestOptions::max_redirects`]($crate::request::RequestOptions::max_redirects)).
            pub fn max_redirects(mut self, n: usize) -> Self {
                self.$($field).+ = self.$($field).+.max_redirects(n);
                self
            }
        }
    };
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
    fn options_build_checks_what_the_hook_leaves() {
        let u = url("ws://example.com/chat");
        let ok = RequestOptions::default()
            .origin("http://localhost")
            .protocol("chat")
            .header("X-Id", "7")
            .request_hook(|r| r.headers.push(("X-Hook".into(), "1".into())));
        let r = match ok.build(&u) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(r.origin.as_deref(), Some("http://localhost"));
        assert_eq!(r.protocols, ["chat"]);
        assert_eq!(
            r.headers,
            [("X-Id".into(), "7".into()), ("X-Hook".into(), "1".into())]
        );
        let bad = RequestOptions::default().request_hook(|r| r.protocols.push("a b".into()));
        assert!(bad.assemble(&u).is_ok(), "assemble does not run the hook");
        assert_eq!(field(bad.build(&u)), "Sec-WebSocket-Protocol");
        assert_eq!(
            field(RequestOptions::default().header("X", "a\nb").build(&u)),
            "X"
        );
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

    #[test]
    fn url_credentials_become_basic_authorization_on_their_origin_only() {
        let u = url("ws://alice:pw@example.com/");
        let auth = |r: &ClientRequest| {
            r.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("authorization"))
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        };
        let o = RequestOptions::default();
        let r = o.build(&u).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(auth(&r), ["Basic YWxpY2U6cHc="]);
        // A caller's Authorization wins.
        let o = RequestOptions::default().header("Authorization", "Bearer t");
        let r = o.build(&u).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(auth(&r), ["Bearer t"]);
        // Another origin gets neither, nor cookies; the hook still runs.
        let o = o
            .header("Cookie", "s=1")
            .header("X-Keep", "1")
            .request_hook(|r| r.headers.push(("X-Hook".into(), r.host.clone())));
        let r = o
            .build_attempt(&url("ws://other.example/"), false)
            .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<_> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["X-Keep", "X-Hook"]);
        assert_eq!(r.headers[1].1, "other.example");
    }

    #[test]
    fn proxy_and_redirect_builders() {
        let o = RequestOptions::default();
        assert_eq!((o.proxy.clone(), o.max_redirects), (ProxyMode::Env, 5));
        let o = o.no_proxy().max_redirects(0);
        assert_eq!((o.proxy.clone(), o.max_redirects), (ProxyMode::Off, 0));
        let p = ProxyUrl::parse("socks5://127.0.0.1:1080").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.proxy(p.clone()).proxy, ProxyMode::Url(p));
    }
}
