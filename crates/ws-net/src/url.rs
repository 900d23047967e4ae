//! `ws://` and `wss://` URLs (RFC 6455 §3), parsed once for every driver with
//! the [`url`] crate (the WHATWG URL standard browsers implement).
//!
//! What [`WsUrl::parse`] accepts and how:
//!
//! - **Scheme**: `ws://` or `wss://` (any case), written with the `//`.
//!   `http`, `https` and anything else are refused.
//! - **Host**: a DNS name, an IPv4 address or a bracketed IPv6 literal
//!   (`[::1]`). Internationalised names are converted to their ASCII form
//!   (IDNA: `bücher.example` becomes `xn--bcher-kva.example`); names are
//!   lower-cased. After conversion a name may only hold letters, digits,
//!   `-`, `_` and `.`. IPv6 zone identifiers (`%eth0`) are not supported.
//! - **Port**: 1 to 65535; 80 for `ws://` and 443 for `wss://` when absent.
//!   Port 0 is refused (nothing can be reached there).
//! - **Path and query**: characters that may not appear in a request target
//!   (non-ASCII, `"`, `<`, `>`, `` ` ``, `{`, `}` ...) are percent-encoded as
//!   UTF-8, so `/café` goes out as `/caf%C3%A9`; existing `%XX` escapes are
//!   kept. A **space is refused**, not encoded: a literal space in a URL
//!   given to a client is nearly always a mistake (two arguments run
//!   together), and encoding it silently would ask the server for a
//!   resource the caller did not write; write `%20`. An empty path is `/`.
//! - **Fragment** (`#...`): refused. RFC 6455 §3 says fragments must not be
//!   used on WebSocket URIs; a `#` meant for the path is written `%23`.
//! - **User information** (`user:password@`): kept apart from the rest
//!   ([`WsUrl::credentials`], percent-decoded) and sent as `Authorization:
//!   Basic` by [`RequestOptions::build`](crate::request::RequestOptions::build).
//!   It never appears in `Display`, `Debug` or an error message (the password
//!   is shown as `***`). Control characters in it, or a `:` in the user name,
//!   are refused.
//! - A backslash is refused anywhere (the WHATWG parser would read it as
//!   `/`).
//! - Leading and trailing whitespace is trimmed; any other whitespace or
//!   control character (CR, LF, tab, NUL ...) anywhere is refused (the WHATWG
//!   parser would silently delete tabs and newlines).

use std::fmt;
use std::net::IpAddr;

pub use crate::credentials::Credentials;

/// Whether `name` may be a host name here: letters, digits, `-`, `_` and `.`
/// (after IDNA), so it can go into a request line or header as it is.
pub(crate) fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The host of a parsed URL (WebSocket or proxy): a lower-case name, or an
/// address (IPv6 without brackets) with its parsed form; the reason when
/// there is none or the name holds other characters.
pub(crate) fn host_of(url: &url::Url) -> Result<(String, Option<IpAddr>), &'static str> {
    match url.host() {
        Some(url::Host::Domain(d)) if is_host_name(d) => Ok((d.to_ascii_lowercase(), None)),
        Some(url::Host::Domain(_)) => {
            Err("a host name may only hold letters, digits, '-', '_' and '.'")
        }
        Some(url::Host::Ipv4(a)) => Ok((a.to_string(), Some(IpAddr::V4(a)))),
        Some(url::Host::Ipv6(a)) => Ok((a.to_string(), Some(IpAddr::V6(a)))),
        None => Err("missing"),
    }
}

/// `input` with the password of its user information (if any) replaced by `***`: what an
/// error message may repeat of a URL.
pub(crate) fn redact_userinfo(input: &str) -> String {
    let (scheme, rest) = match input.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), input),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}{user}:***{}", &rest[at..])
        }
        None => input.to_string(),
    }
}

/// A parsed `ws://` or `wss://` URL: everything a driver needs to connect
/// and to build the upgrade request.
///
/// ```
/// use ws_net::url::WsUrl;
///
/// let u = WsUrl::parse("wss://Bücher.example:8443/chat?room=été")?;
/// assert!(u.is_secure());
/// assert_eq!(u.host(), "xn--bcher-kva.example");
/// assert_eq!(u.port(), 8443);
/// assert_eq!(u.resource(), "/chat?room=%C3%A9t%C3%A9");
/// assert_eq!(u.host_header(), "xn--bcher-kva.example:8443");
///
/// let u = WsUrl::parse("ws://[::1]/")?;
/// assert_eq!((u.host(), u.port(), u.host_header().as_str()), ("::1", 80, "[::1]"));
///
/// let err = WsUrl::parse("ws://example.com/a b").unwrap_err();
/// assert_eq!(err.part(), "path");
/// # Ok::<(), ws_net::url::UrlError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WsUrl {
    secure: bool,
    host: String,
    ip: Option<IpAddr>,
    port: u16,
    resource: String,
    credentials: Option<Credentials>,
}

/// Why a string is not a usable WebSocket URL: which part, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlError {
    input: String,
    part: &'static str,
    reason: String,
}

impl UrlError {
    fn new(input: &str, part: &'static str, reason: impl Into<String>) -> UrlError {
        UrlError {
            input: redact_userinfo(input),
            part,
            reason: reason.into(),
        }
    }

    /// The part of the URL that is wrong: `"URL"` (the whole), `"scheme"`,
    /// `"user information"`, `"host"`, `"port"`, `"path"`, `"query"` or
    /// `"fragment"`.
    pub fn part(&self) -> &str {
        self.part
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The string that was given, with the password of its user information (if any)
    /// replaced by `***`.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} in the WebSocket URL {:?}: {}",
            self.part, self.input, self.reason
        )
    }
}

impl std::error::Error for UrlError {}

impl WsUrl {
    /// Parses a `ws://` or `wss://` URL (see the [module](self) for exactly
    /// what is accepted).
    pub fn parse(input: &str) -> Result<WsUrl, UrlError> {
        let s = input.trim_matches(|c: char| c.is_ascii_whitespace());
        let err = |part: &'static str, reason: &str| UrlError::new(input, part, reason);
        if s.is_empty() {
            return Err(err("URL", "empty"));
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(err("URL", "expected ws://host[:port][/path][?query]"));
        };
        let secure = if scheme.eq_ignore_ascii_case("ws") {
            false
        } else if scheme.eq_ignore_ascii_case("wss") {
            true
        } else {
            return Err(err("scheme", "must be ws or wss"));
        };
        if rest.starts_with('/') {
            return Err(err("host", "missing"));
        }
        if let Some(i) = rest.find('\\') {
            return Err(err(
                part_at(rest, i),
                "a backslash is not allowed (write '/' or %5C)",
            ));
        }
        if let Some(i) = rest.find(|c: char| c.is_whitespace() || c.is_control()) {
            let part = part_at(rest, i);
            let c = rest[i..].chars().next().unwrap_or(' ');
            return Err(if c == ' ' && part != "host" {
                err(part, "a space must be percent-encoded (write %20)")
            } else {
                err(
                    part,
                    &format!("whitespace or control character {c:?} is not allowed"),
                )
            });
        }
        let url = url::Url::parse(s).map_err(|e| err(part_of_parse_error(e), &e.to_string()))?;
        let credentials = Credentials::from_url(&url).map_err(|r| err("user information", &r))?;
        if url.fragment().is_some() {
            return Err(err(
                "fragment",
                "a WebSocket URL may not have a #fragment (RFC 6455 §3); write %23 for a '#' in the path",
            ));
        }
        let (host, ip) = host_of(&url).map_err(|r| err("host", r))?;
        let port = url
            .port_or_known_default()
            .unwrap_or(if secure { 443 } else { 80 });
        if port == 0 {
            return Err(err("port", "port 0 cannot be connected to"));
        }
        let mut resource = url.path().to_string();
        if resource.is_empty() {
            resource.push('/');
        }
        if let Some(q) = url.query() {
            resource.push('?');
            resource.push_str(q);
        }
        Ok(WsUrl {
            secure,
            host,
            ip,
            port,
            resource,
            credentials,
        })
    }

    /// The `user:password@` of the URL, percent-decoded: sent as `Authorization: Basic`
    /// (never shown by `Display` or `Debug`).
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// Replaces the credentials (a redirect on the first URL's origin keeps them).
    pub(crate) fn set_credentials(&mut self, credentials: Option<Credentials>) {
        self.credentials = credentials;
    }

    /// The same URL without its credentials.
    pub fn without_credentials(&self) -> WsUrl {
        WsUrl {
            credentials: None,
            ..self.clone()
        }
    }

    /// Whether `other` is the same origin: scheme, host and port (credentials and
    /// path aside).
    pub fn same_origin(&self, other: &WsUrl) -> bool {
        self.secure == other.secure && self.host == other.host && self.port == other.port
    }

    /// `wss://`: the connection runs over TLS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The host: an ASCII, lower-case DNS name, or an address (IPv6 without
    /// brackets). This is also the TLS server name (SNI and the name the
    /// certificate must match).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host as an address, when it is one (no name resolution needed).
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The port: the URL's, or 80 (`ws://`) / 443 (`wss://`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the port is the scheme's default.
    pub fn is_default_port(&self) -> bool {
        self.port == if self.secure { 443 } else { 80 }
    }

    /// The request target: path and query, percent-encoded, at least `/`.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The `Host` header value: the host (bracketed for IPv6) and `:port`
    /// when the port is not the scheme's default.
    pub fn host_header(&self) -> String {
        let host = match self.ip {
            Some(IpAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        if self.is_default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for WsUrl {
    /// The normalised URL, e.g. `wss://xn--bcher-kva.example:8443/chat`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.resource)
    }
}

impl std::str::FromStr for WsUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<WsUrl, UrlError> {
        WsUrl::parse(s)
    }
}

/// Which part of `rest` (everything after `scheme://`) byte `i` is in.
fn part_at(rest: &str, i: usize) -> &'static str {
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if i < authority_end {
        return "host";
    }
    match (rest.find('?'), rest.find('#')) {
        (_, Some(h)) if i > h => "fragment",
        (Some(q), h) if i > q && h.is_none_or(|h| q < h) => "query",
        _ => "path",
    }
}

fn part_of_parse_error(e: url::ParseError) -> &'static str {
    use url::ParseError as P;
    match e {
        P::InvalidPort => "port",
        P::EmptyHost
        | P::IdnaError
        | P::InvalidIpv4Address
        | P::InvalidIpv6Address
        | P::InvalidDomainCharacter => "host",
        _ => "URL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ok(s: &str) -> WsUrl {
        match WsUrl::parse(s) {
            Ok(u) => u,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn refused(s: &str) -> UrlError {
        match WsUrl::parse(s) {
            Ok(u) => panic!("{s} was accepted as {u:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn default_and_explicit_ports() {
        let u = ok("ws://example.com/");
        assert_eq!(
            (u.is_secure(), u.port(), u.host_header().as_str()),
            (false, 80, "example.com")
        );
        let u = ok("wss://example.com");
        assert_eq!((u.is_secure(), u.port(), u.resource()), (true, 443, "/"));
        // A default port written out is still the default: not in Host.
        assert_eq!(ok("ws://example.com:80/").host_header(), "example.com");
        assert_eq!(ok("wss://example.com:443/").host_header(), "example.com");
        // The other scheme's default is not.
        let u = ok("ws://example.com:443/");
        assert_eq!(
            (u.port(), u.host_header().as_str()),
            (443, "example.com:443")
        );
        let u = ok("wss://example.com:8443/x");
        assert_eq!(
            (u.port(), u.host_header().as_str()),
            (8443, "example.com:8443")
        );
        assert_eq!(ok("ws://h:65535/").port(), 65535);
        assert_eq!(ok("ws://h:/").port(), 80, "an empty port is the default");
    }

    #[test]
    fn schemes_and_hosts_are_case_insensitive() {
        let u = ok("WSS://Example.COM/Path");
        assert!(u.is_secure());
        assert_eq!(u.host(), "example.com");
        assert_eq!(u.resource(), "/Path", "the path keeps its case");
        assert_eq!(u.to_string(), "wss://example.com/Path");
    }

    #[test]
    fn ipv4_and_ipv6_literals() {
        let u = ok("ws://127.0.0.1:9000?q");
        assert_eq!(u.ip(), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!((u.host(), u.resource()), ("127.0.0.1", "/?q"));
        assert_eq!(u.host_header(), "127.0.0.1:9000");
        let u = ok("wss://[::1]:4443/a");
        assert_eq!(u.ip(), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!((u.host(), u.port()), ("::1", 4443));
        assert_eq!(u.host_header(), "[::1]:4443");
        assert_eq!(ok("ws://[::1]").host_header(), "[::1]");
        // Written in full, shown compressed.
        assert_eq!(ok("ws://[0:0:0:0:0:0:0:1]:81/").host_header(), "[::1]:81");
        assert_eq!(ok("ws://[2001:DB8::A]/").host(), "2001:db8::a");
        assert_eq!(ok("ws://example.com/").ip(), None);
        for bad in [
            "ws://[::1/",
            "ws://[zz]/",
            "ws://[::1]x/",
            "ws://1.2.3.4.5.6/",
        ] {
            assert_eq!(refused(bad).part(), "host", "{bad}");
        }
    }

    #[test]
    fn internationalised_names_become_ascii() {
        let u = ok("ws://Bücher.example/");
        assert_eq!(u.host(), "xn--bcher-kva.example");
        assert_eq!(u.host_header(), "xn--bcher-kva.example");
        assert_eq!(
            ok("wss://例え.テスト:8443/").host(),
            "xn--r8jz45g.xn--zckzah"
        );
        // Already-encoded names are kept.
        assert_eq!(
            ok("ws://xn--bcher-kva.example/").host(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn path_and_query_are_percent_encoded() {
        assert_eq!(ok("ws://h").resource(), "/");
        assert_eq!(ok("ws://h?x=1").resource(), "/?x=1");
        assert_eq!(ok("ws://h/chat?room=1&x=y").resource(), "/chat?room=1&x=y");
        assert_eq!(ok("ws://h/café").resource(), "/caf%C3%A9");
        assert_eq!(ok("ws://h/?q=é").resource(), "/?q=%C3%A9");
        assert_eq!(ok("ws://h/a\"b<c>").resource(), "/a%22b%3Cc%3E");
        // Existing escapes are kept as written.
        assert_eq!(ok("ws://h/a%20b?c=%2F").resource(), "/a%20b?c=%2F");
        assert_eq!(ok("ws://h/a%23b").resource(), "/a%23b");
        // Every resource is a valid request target for the core.
        for s in ["ws://h/café", "ws://h/a\"b<c>{d}`e`", "ws://h/?q=é&r=<>"] {
            let r = ok(s).resource().to_string();
            assert!(
                r.bytes().all(|b| b.is_ascii_graphic() && b != b'#'),
                "{s}: {r}"
            );
        }
    }

    #[test]
    fn spaces_and_control_characters_are_refused_naming_the_part() {
        for (s, part) in [
            ("ws://h/a b", "path"),
            ("ws://h/?q=a b", "query"),
            ("ws://h/a\r\nInjected: yes", "path"),
            ("ws://h/a\tb", "path"),
            ("ws://h/a\0", "path"),
            ("ws://h/?a\x01", "query"),
            ("ws://h/\x7f", "path"),
            ("ws://a b/", "host"),
            ("ws://h\r\n/", "host"),
            ("ws://h/a\\b", "path"),
        ] {
            let e = refused(s);
            assert_eq!(e.part(), part, "{s:?}: {e}");
            assert!(e
                .to_string()
                .starts_with(&format!("invalid {part} in the WebSocket URL")));
        }
        assert!(refused("ws://h/a b").reason().contains("%20"));
        // Whitespace around the URL is trimmed.
        assert_eq!(ok("  ws://h/x \n").resource(), "/x");
    }

    #[test]
    fn user_information_is_kept_apart_and_never_shown() {
        let u = ok("ws://al%20ice:p%40ss:w@h:81/x");
        let c = u.credentials().expect("credentials");
        assert_eq!((c.user(), c.password()), ("al ice", "p@ss:w"));
        assert_eq!(u.to_string(), "ws://h:81/x");
        assert!(!format!("{u:?}").contains("p@ss"), "{u:?}");
        assert_eq!(u.without_credentials().credentials(), None);
        assert!(u.same_origin(&ok("ws://h:81/other")));
        assert!(!u.same_origin(&ok("wss://h:81/x")));
        assert_eq!(
            ok("ws://user@h/").credentials().map(|c| c.password()),
            Some("")
        );
        for s in ["ws://a%0d%0aX:y@h/", "ws://u:p%00@h/"] {
            let e = refused(s);
            assert_eq!(e.part(), "user information", "{s}");
        }
        // An error about another part does not repeat the password.
        let e = refused("ws://bob:hunter2@h:99999/");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.input().contains("bob:***@"), "{e}");
    }

    #[test]
    fn fragments_are_refused() {
        let e = refused("ws://h/chat#frag");
        assert_eq!(e.part(), "fragment");
        assert_eq!(refused("ws://h/#").part(), "fragment");
        assert_eq!(part_at("h/a?b#c d", 7), "fragment");
    }

    #[test]
    fn bad_schemes_are_refused() {
        for s in [
            "http://example.com/",
            "https://example.com/",
            "ftp://example.com/",
            "wss+unix://x/",
        ] {
            assert_eq!(refused(s).part(), "scheme", "{s}");
        }
        for s in [
            "",
            "   ",
            "example.com",
            "ws:example.com",
            "ws:/example.com",
            "//h/",
        ] {
            assert_eq!(refused(s).part(), "URL", "{s:?}");
        }
    }

    #[test]
    fn bad_hosts_and_ports_are_refused() {
        for (s, part) in [
            ("ws://", "host"),
            ("ws:///x", "host"),
            ("ws://:80/", "host"),
            ("ws://host:0/", "port"),
            ("ws://host:65536/", "port"),
            ("ws://host:99999/", "port"),
            ("ws://host:x/", "port"),
            ("ws://ho|st/", "host"),
            ("ws://ho^st/", "host"),
            ("ws://h!st/", "host"),
            ("ws:///x", "host"),
            ("ws://\\h/", "host"),
        ] {
            let e = WsUrl::parse(s);
            let Err(e) = e else {
                panic!("{s} accepted: {e:?}")
            };
            assert_eq!(e.part(), part, "{s}: {e}");
        }
    }

    #[test]
    fn from_str_and_display_round_trip() {
        let u: WsUrl = "ws://[::1]:9001/a?b".parse().expect("valid");
        assert_eq!(u.to_string(), "ws://[::1]:9001/a?b");
        assert_eq!(WsUrl::parse(&u.to_string()), Ok(u));
    }
}
