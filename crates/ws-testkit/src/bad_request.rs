//! The invalid upgrade requests every client (each driver's, and `wsx
//! connect`) must refuse before it opens a socket, and the silent listener
//! that shows nothing was opened.
//!
//! Each [`BadRequest`] is plain data (a URL path, a header, an origin, a
//! subprotocol, a hook) with the field the error must name; a driver's test
//! turns it into its options with [`BadRequest::request`] and checks the
//! error with [`BadRequest::check`]. A [`SilentListener`] stands in for the
//! server: it never answers, and [`SilentListener::assert_no_connection`]
//! fails the test when anything connected (its non-blocking `accept` says
//! `WouldBlock`; a TCP connect completes in the kernel before the call
//! returns, so a connection made would already be queued).
//!
//! This file uses only `std`, `ws-proto` and `ws-net` (no other item of the
//! kit), so that a test crate without the kit as a dependency can include
//! it with `#[path]`: `wsx`'s `request_validation` test does.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};

use ws_net::request::RequestOptions;
use ws_proto::ClientRequest;

/// One invalid upgrade request and what its error must say.
#[derive(Debug, Clone, Copy)]
pub struct BadRequest {
    /// What is wrong, for failure messages.
    pub name: &'static str,
    /// The URL path (with the query), starting with `/`.
    pub path: &'static str,
    /// An extra header (name, value).
    pub header: Option<(&'static str, &'static str)>,
    /// The `Origin`.
    pub origin: Option<&'static str>,
    /// An offered subprotocol.
    pub protocol: Option<&'static str>,
    /// A request hook that breaks the assembled request (only a driver's
    /// API can give one; `wsx` has no such argument).
    pub hook: Option<fn(&mut ClientRequest)>,
    /// The field the error names: a header name, `Origin`,
    /// `Sec-WebSocket-Protocol`, `request target`, or `path` for the URL.
    pub field: &'static str,
    /// How the core's reason starts (`""`: not checked).
    pub reason: &'static str,
}

const CONTROL_BYTES: &str = "control bytes";

const fn header(
    name: &'static str,
    (h, v): (&'static str, &'static str),
    reason: &'static str,
) -> BadRequest {
    BadRequest {
        name,
        path: "/",
        header: Some((h, v)),
        origin: None,
        protocol: None,
        hook: None,
        field: h,
        reason,
    }
}

const fn path(name: &'static str, path: &'static str) -> BadRequest {
    BadRequest {
        name,
        path,
        header: None,
        origin: None,
        protocol: None,
        hook: None,
        field: "path",
        reason: "",
    }
}

const fn hook(
    name: &'static str,
    hook: fn(&mut ClientRequest),
    field: &'static str,
    reason: &'static str,
) -> BadRequest {
    BadRequest {
        name,
        path: "/",
        header: None,
        origin: None,
        protocol: None,
        hook: Some(hook),
        field,
        reason,
    }
}

/// Every invalid request a client must refuse before connecting.
pub const BAD_REQUESTS: &[BadRequest] = &[
    header(
        "CRLF in a header value",
        ("X-Test", "a\r\nInjected: yes"),
        CONTROL_BYTES,
    ),
    header(
        "a control byte in a header value",
        ("X-Test", "a\x01b"),
        CONTROL_BYTES,
    ),
    header("DEL in a header value", ("X-Test", "a\x7fb"), CONTROL_BYTES),
    header("NUL in a header value", ("X-Test", "a\0b"), CONTROL_BYTES),
    header(
        "a header name that is not a token",
        ("Bad Name", "x"),
        "a header name must be a token",
    ),
    header(
        "a header the handshake writes itself",
        ("Sec-WebSocket-Key", "x"),
        "set by the handshake itself",
    ),
    header(
        "another header the handshake writes itself",
        ("Connection", "close"),
        "set by the handshake itself",
    ),
    BadRequest {
        origin: Some("http://a\r\nInjected: yes"),
        field: "Origin",
        reason: "must be visible ASCII",
        ..path("CRLF in the origin", "/")
    },
    BadRequest {
        protocol: Some("chat, evil"),
        field: "Sec-WebSocket-Protocol",
        reason: "a subprotocol must be a token",
        ..path("a subprotocol that is not a token", "/")
    },
    hook(
        "CRLF added by the request hook",
        |r| {
            r.headers
                .push(("X-Hook".into(), "a\r\nInjected: yes".into()))
        },
        "X-Hook",
        CONTROL_BYTES,
    ),
    hook(
        "a request target broken by the request hook",
        |r| r.resource = "/a b HTTP/1.1\r\nX: y".into(),
        "request target",
        "whitespace, control bytes",
    ),
    path("a space in the path", "/a b"),
    path("CRLF in the path", "/a\r\nInjected: yes"),
];

impl BadRequest {
    /// Whether the URL itself is at fault (the error is the URL parser's).
    pub fn is_url(&self) -> bool {
        self.field == "path"
    }

    /// The request options of this case (nothing else set).
    pub fn request(&self) -> RequestOptions {
        let mut r = RequestOptions::default();
        if let Some((name, value)) = self.header {
            r = r.header(name, value);
        }
        if let Some(origin) = self.origin {
            r = r.origin(origin);
        }
        if let Some(protocol) = self.protocol {
            r = r.protocol(protocol);
        }
        if let Some(hook) = self.hook {
            r = r.request_hook(hook);
        }
        r
    }

    /// How the error's message must start.
    pub fn message(&self) -> String {
        if self.is_url() {
            format!("invalid {} in the WebSocket URL", self.field)
        } else {
            format!(
                "invalid {} in the upgrade request: {}",
                self.field, self.reason
            )
        }
    }

    /// Checks a driver's error for this case: `invalid_request` is the
    /// field its `invalid_request()` names (`None` for a URL error),
    /// `message` its `Display`.
    pub fn check(&self, invalid_request: Option<&str>, message: &str) {
        let expected = (!self.is_url()).then_some(self.field);
        assert_eq!(invalid_request, expected, "{}: {message}", self.name);
        assert!(
            message.starts_with(&self.message()),
            "{}: {message:?} does not start with {:?}",
            self.name,
            self.message()
        );
    }
}

/// A listener on a free loopback port that never answers (see the module
/// documentation).
#[derive(Debug)]
pub struct SilentListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl SilentListener {
    /// Binds 127.0.0.1 on a port the system chooses, non-blocking.
    pub fn new() -> SilentListener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("local_addr");
        SilentListener { listener, addr }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// The listener itself (for a control test that does connect).
    pub fn listener(&self) -> &TcpListener {
        &self.listener
    }

    /// The listener, for a control test that does connect (still
    /// non-blocking).
    pub fn into_inner(self) -> TcpListener {
        self.listener
    }

    /// Fails the test, naming `what`, when anything has connected.
    pub fn assert_no_connection(&self, what: &str) {
        match self.listener.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("{what}: a connection from {peer} reached the server"),
            Err(e) => panic!("{what}: accept failed: {e}"),
        }
    }
}

impl Default for SilentListener {
    fn default() -> Self {
        SilentListener::new()
    }
}
