//! Proxies, written once for every driver: which proxy a connection goes through
//! ([`ProxyMode::select`], with the environment read as curl reads it), and the two proxy
//! handshakes as sans-IO state machines ([`ProxyHandshake`]: bytes in, bytes out), HTTP
//! `CONNECT` (for `http://` and `https://` proxy URLs, with Basic proxy authentication) and
//! SOCKS5 (RFC 1928, the host name resolved by the proxy, optional username/password,
//! RFC 1929).
//!
//! A driver connects to [`ProxyUrl::host`]:[`ProxyUrl::port`] (over TLS first for an
//! `https://` proxy), then loops: write what [`ProxyHandshake::transmit`] gives, read, hand
//! the bytes to [`ProxyHandshake::receive`], until it answers [`ProxyStep::Done`]; then the
//! stream is a tunnel to the WebSocket server (TLS for `wss://` starts inside it).
//!
//! ```
//! use ws_net::proxy::{ProxyHandshake, ProxyStep, ProxyUrl};
//!
//! let proxy = ProxyUrl::parse("http://alice:s3cret@proxy.example:3128")?;
//! let mut hs = ProxyHandshake::new(&proxy, "chat.example", 443)?;
//! let request = hs.transmit().expect("the CONNECT request");
//! assert!(request.starts_with(b"CONNECT chat.example:443 HTTP/1.1\r\n"));
//! assert_eq!(hs.receive(b"HTTP/1.1 200 Connection established\r\n")?, ProxyStep::NeedMore);
//! assert_eq!(hs.receive(b"\r\n")?, ProxyStep::Done);
//! # Ok::<(), ws_net::proxy::ProxyError>(())
//! ```
//!
//! Nothing a caller or the environment gives can add a line to the `CONNECT` request: the
//! target host is checked (letters, digits, `-`, `_`, `.`, or an IP address), credentials
//! travel base64-encoded, and control characters in them are refused. Credentials never
//! appear in a `Debug` or `Display` output.
//!
//! Every answer a proxy gives is bounded: an HTTP answer head over [`MAX_HTTP_ANSWER`] bytes,
//! bytes after the answer (the server cannot have spoken yet), a malformed or refused answer
//! end the handshake with a [`ProxyError`]; nothing a proxy sends can panic it.

use std::fmt;
use std::net::IpAddr;

pub use crate::credentials::Credentials;
use crate::url::WsUrl;

/// The largest HTTP `CONNECT` answer head accepted (status line and headers).
pub const MAX_HTTP_ANSWER: usize = 8 * 1024;

/// How a proxy is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyScheme {
    /// `http://`: HTTP `CONNECT` over plain TCP (default port 1080, as curl).
    Http,
    /// `https://`: HTTP `CONNECT` over TLS to the proxy (default port 443).
    Https,
    /// `socks5://` or `socks5h://`: SOCKS5; the proxy resolves the host name in both cases
    /// (default port 1080).
    Socks5,
}

/// A parsed proxy URL: `http://[user:password@]host[:port]`, `https://...`,
/// `socks5://...` or `socks5h://...`. A value without a scheme (`proxy.corp:3128`, as proxy
/// variables are often written) is `http://`. A path, query or fragment is refused.
/// `Display` and `Debug` never show the password.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl {
    scheme: ProxyScheme,
    host: String,
    ip: Option<IpAddr>,
    port: u16,
    credentials: Option<Credentials>,
}

impl ProxyUrl {
    /// Parses a proxy URL; the error says what is wrong (and never repeats a password).
    pub fn parse(input: &str) -> Result<ProxyUrl, ProxyError> {
        let bad = |reason: &str| ProxyError::InvalidProxy {
            proxy: crate::url::redact_userinfo(input),
            reason: reason.to_string(),
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("whitespace or control characters are not allowed"));
        }
        let with_scheme;
        let s = if s.contains("://") {
            s
        } else {
            with_scheme = format!("http://{s}");
            &with_scheme
        };
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        let (scheme, default_port) = match url.scheme() {
            "http" => (ProxyScheme::Http, 1080),
            "https" => (ProxyScheme::Https, 443),
            "socks5" | "socks5h" => (ProxyScheme::Socks5, 1080),
            other => {
                return Err(bad(&format!(
                    "unsupported proxy scheme {other:?} (http, https, socks5 or socks5h)"
                )))
            }
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a proxy URL has no path, query or fragment"));
        }
        let (host, ip) = crate::url::host_of(&url).map_err(|r| bad(&format!("host: {r}")))?;
        // `url` reports no port when it is the scheme's own default (80/443) even if
        // written: a written port wins, else the proxy default (1080 for http, as curl).
        let port = if explicit_port(s) {
            url.port_or_known_default().unwrap_or(default_port)
        } else {
            default_port
        };
        if port == 0 {
            return Err(bad("port 0 cannot be connected to"));
        }
        let credentials = Credentials::from_url(&url).map_err(|r| bad(&r))?;
        if scheme == ProxyScheme::Socks5 {
            if let Some(c) = &credentials {
                if c.user().is_empty() || c.user().len() > 255 || c.password().len() > 255 {
                    return Err(bad(
                        "a SOCKS5 user name must be 1 to 255 bytes and a password at most 255",
                    ));
                }
            }
        }
        Ok(ProxyUrl {
            scheme,
            host,
            ip,
            port,
            credentials,
        })
    }

    /// How the proxy is spoken to.
    pub fn scheme(&self) -> ProxyScheme {
        self.scheme
    }

    /// The proxy's host (a lower-case name, or an address; IPv6 without brackets): what to
    /// resolve and connect to, and the TLS server name of an `https://` proxy.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host as an address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The credentials given in the proxy URL.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// The proxy as a `WsUrl`-like endpoint for name resolution: `(host, port)`.
    pub fn endpoint(&self) -> (&str, u16) {
        (&self.host, self.port)
    }
}

/// Whether the authority of `s` (which has a scheme) writes a port.
fn explicit_port(s: &str) -> bool {
    let rest = s.split_once("://").map_or(s, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("");
    match hostport.rfind(']') {
        Some(i) => hostport[i..].contains(':'),
        None => hostport.contains(':'),
    }
}

impl fmt::Display for ProxyUrl {
    /// `scheme://host:port`, without credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            ProxyScheme::Http => "http",
            ProxyScheme::Https => "https",
            ProxyScheme::Socks5 => "socks5",
        };
        match self.ip {
            Some(IpAddr::V6(_)) => write!(f, "{scheme}://[{}]:{}", self.host, self.port),
            _ => write!(f, "{scheme}://{}:{}", self.host, self.port),
        }
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyUrl")
            .field("url", &self.to_string())
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl std::str::FromStr for ProxyUrl {
    type Err = ProxyError;
    fn from_str(s: &str) -> Result<ProxyUrl, ProxyError> {
        ProxyUrl::parse(s)
    }
}

/// Which proxy a client goes through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyMode {
    /// The environment's proxy variables, as curl reads them (the default; see
    /// [`ProxyMode::select_with`]).
    #[default]
    Env,
    /// No proxy, whatever the environment says.
    Off,
    /// This proxy for every target (the environment is not read, `NO_PROXY` included).
    Url(ProxyUrl),
}

impl ProxyMode {
    /// The proxy to use for `target`, reading the process environment for
    /// [`ProxyMode::Env`] (see [`select_with`](Self::select_with)).
    pub fn select(&self, target: &WsUrl) -> Result<Option<ProxyUrl>, ProxyError> {
        self.select_with(target, &|name| std::env::var(name).ok())
    }

    /// The proxy to use for `target`, with `env` looking variables up. For
    /// [`ProxyMode::Env`], exactly as curl reads them (an empty value counts as unset):
    ///
    /// 1. `NO_PROXY` (`no_proxy` first, then `NO_PROXY`) lists targets reached directly:
    ///    `*` for all, else comma-separated host names (matching the name and its
    ///    subdomains; a leading `.` is ignored), IP addresses and CIDR blocks
    ///    (`10.0.0.0/8`, `fd00::/8`); a `:port` on an entry is ignored.
    /// 2. A loopback target (`localhost`, `*.localhost`, `127.0.0.0/8`, `::1`) is always reached
    ///    directly: a proxy elsewhere cannot reach this machine's loopback. So is a name under
    ///    `.invalid`, which never resolves anywhere (RFC 6761 §6.4): it fails at once, locally.
    /// 3. `wss://` uses `https_proxy`, then `HTTPS_PROXY`; `ws://` uses `http_proxy` only
    ///    (curl never reads upper-case `HTTP_PROXY`: in CGI programs it can be set by a
    ///    request's `Proxy:` header).
    /// 4. Otherwise `all_proxy`, then `ALL_PROXY`.
    ///
    /// A variable that holds no valid proxy URL is an error naming it.
    pub fn select_with(
        &self,
        target: &WsUrl,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<ProxyUrl>, ProxyError> {
        match self {
            ProxyMode::Off => Ok(None),
            ProxyMode::Url(p) => Ok(Some(p.clone())),
            ProxyMode::Env => {
                let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
                let first =
                    |names: &[&'static str]| names.iter().find_map(|n| get(n).map(|v| (*n, v)));
                if let Some((_, list)) = first(&["no_proxy", "NO_PROXY"]) {
                    if no_proxy_matches(&list, target) {
                        return Ok(None);
                    }
                }
                if is_loopback(target) {
                    return Ok(None);
                }
                let scheme_vars: &[&'static str] = if target.is_secure() {
                    &["https_proxy", "HTTPS_PROXY"]
                } else {
                    &["http_proxy"]
                };
                let Some((name, value)) =
                    first(scheme_vars).or_else(|| first(&["all_proxy", "ALL_PROXY"]))
                else {
                    return Ok(None);
                };
                match ProxyUrl::parse(&value) {
                    Ok(p) => Ok(Some(p)),
                    Err(ProxyError::InvalidProxy { proxy, reason }) => {
                        Err(ProxyError::InvalidProxy {
                            proxy,
                            reason: format!("{reason} (from the environment variable {name})"),
                        })
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}

/// Loopback, or a name that never resolves (`.invalid`): never through an environment proxy.
fn is_loopback(target: &WsUrl) -> bool {
    match target.ip() {
        Some(ip) => ip.is_loopback(),
        None => {
            let h = target.host().trim_end_matches('.');
            h == "localhost"
                || h.ends_with(".localhost")
                || h == "invalid"
                || h.ends_with(".invalid")
        }
    }
}

/// Whether a `NO_PROXY` list names `target` (see [`ProxyMode::select_with`]).
pub fn no_proxy_matches(list: &str, target: &WsUrl) -> bool {
    let host = target.host().trim_end_matches('.');
    list.split([',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .take(1000)
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            // Strip brackets and a :port.
            let entry = match entry.strip_prefix('[') {
                Some(rest) => rest.split(']').next().unwrap_or(""),
                None if entry.matches(':').count() == 1 => entry.split(':').next().unwrap_or(""),
                None => entry,
            };
            if let Some((net, bits)) = entry.split_once('/') {
                return match (net.parse::<IpAddr>(), bits.parse::<u8>(), target.ip()) {
                    (Ok(net), Ok(bits), Some(ip)) => cidr_contains(net, bits, ip),
                    _ => false,
                };
            }
            if let (Ok(a), Some(ip)) = (entry.parse::<IpAddr>(), target.ip()) {
                return a == ip;
            }
            let name = entry.trim_start_matches('.').trim_end_matches('.');
            if name.is_empty() {
                return false;
            }
            host.eq_ignore_ascii_case(name)
                || (host.len() > name.len()
                    && host.as_bytes()[host.len() - name.len() - 1] == b'.'
                    && host[host.len() - name.len()..].eq_ignore_ascii_case(name))
        })
}

fn cidr_contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Why a proxy could not be used or did not open the tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyError {
    /// The proxy URL (given, or from an environment variable) is unusable. `proxy` has its
    /// password replaced by `***`.
    InvalidProxy {
        /// The URL as given, password hidden.
        proxy: String,
        /// What is wrong.
        reason: String,
    },
    /// The target cannot be written into a proxy request.
    InvalidTarget(String),
    /// The HTTP proxy answered `407 Proxy Authentication Required`.
    AuthenticationRequired {
        /// Whether credentials were sent (then they were refused).
        sent_credentials: bool,
    },
    /// The HTTP proxy refused the tunnel with this status.
    Refused {
        /// The HTTP status.
        status: u16,
        /// Its reason phrase (printable ASCII, at most 100 characters).
        reason: String,
    },
    /// The SOCKS5 proxy accepts none of the authentication methods offered.
    NoAcceptableMethod {
        /// Whether username/password was offered.
        offered_password: bool,
    },
    /// The SOCKS5 proxy refused the user name and password.
    SocksAuthFailed,
    /// The SOCKS5 proxy refused the connection with this reply code.
    SocksRefused(u8),
    /// The answer is not the protocol's: what is wrong with it.
    Malformed(String),
    /// The answer head exceeds [`MAX_HTTP_ANSWER`] bytes.
    AnswerTooLarge,
    /// The proxy sent bytes after its answer, before the client spoke through the tunnel.
    UnexpectedData,
    /// The proxy closed the connection before answering completely.
    Closed,
    /// The driver does not support this kind of proxy.
    Unsupported(String),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::InvalidProxy { proxy, reason } => {
                write!(f, "invalid proxy URL {proxy:?}: {reason}")
            }
            ProxyError::InvalidTarget(m) => write!(f, "cannot ask a proxy for this target: {m}"),
            ProxyError::AuthenticationRequired { sent_credentials: true } => f.write_str(
                "the proxy refused the credentials (407 Proxy Authentication Required); check the user name and password in the proxy URL",
            ),
            ProxyError::AuthenticationRequired { sent_credentials: false } => f.write_str(
                "the proxy requires authentication (407 Proxy Authentication Required); give user:password@ in the proxy URL",
            ),
            ProxyError::Refused { status, reason } => {
                write!(f, "the proxy refused the tunnel: {status} {reason}")
            }
            ProxyError::NoAcceptableMethod { offered_password: true } => f.write_str(
                "the SOCKS5 proxy accepts neither no authentication nor username/password",
            ),
            ProxyError::NoAcceptableMethod { offered_password: false } => f.write_str(
                "the SOCKS5 proxy requires authentication; give user:password@ in the proxy URL",
            ),
            ProxyError::SocksAuthFailed => {
                f.write_str("the SOCKS5 proxy refused the user name and password")
            }
            ProxyError::SocksRefused(code) => write!(
                f,
                "the SOCKS5 proxy refused the connection: {} (reply {code})",
                socks_reply_meaning(*code)
            ),
            ProxyError::Malformed(m) => write!(f, "malformed proxy answer: {m}"),
            ProxyError::AnswerTooLarge => write!(
                f,
                "the proxy's answer exceeds {MAX_HTTP_ANSWER} bytes"
            ),
            ProxyError::UnexpectedData => {
                f.write_str("the proxy sent data after its answer, before the tunnel was used")
            }
            ProxyError::Closed => {
                f.write_str("the proxy closed the connection before answering")
            }
            ProxyError::Unsupported(m) => write!(f, "unsupported proxy: {m}"),
        }
    }
}

impl std::error::Error for ProxyError {}

impl ProxyError {
    /// How a driver's error names the proxy of this error: `proxy` (`scheme://host:port`,
    /// never its credentials) when known, else the unusable URL as given (password hidden),
    /// else nothing.
    pub fn proxy_label(&self, proxy: Option<&ProxyUrl>) -> String {
        match (proxy, self) {
            (Some(p), _) => p.to_string(),
            (None, ProxyError::InvalidProxy { proxy, .. }) => proxy.clone(),
            (None, _) => String::new(),
        }
    }
}

fn socks_reply_meaning(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned reply code",
    }
}

/// What [`ProxyHandshake::receive`] made of the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyStep {
    /// More answer is needed (call [`ProxyHandshake::transmit`] first: there may be
    /// something to send).
    NeedMore,
    /// The tunnel is open.
    Done,
}

/// A proxy handshake in progress: HTTP `CONNECT` or SOCKS5 (see the [module](self)).
#[derive(Debug)]
pub struct ProxyHandshake {
    inner: Inner,
    /// Bytes to send.
    out: Vec<u8>,
    /// Answer bytes received and not yet consumed.
    buf: Vec<u8>,
    done: bool,
}

#[derive(Debug)]
enum Inner {
    Http { sent_credentials: bool },
    Socks(Socks),
}

#[derive(Debug)]
struct Socks {
    state: SocksState,
    credentials: Option<Credentials>,
    /// The CONNECT request, sent once authentication is settled.
    connect: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SocksState {
    Method,
    Auth,
    Reply,
}

/// Checks a target host for a proxy request: a name of letters, digits, `-`, `_` and `.`, or
/// an IP address (IPv6 without brackets).
fn check_target(host: &str, port: u16) -> Result<Option<IpAddr>, ProxyError> {
    if port == 0 {
        return Err(ProxyError::InvalidTarget("port 0".into()));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    if host.len() > 255 || !crate::url::is_host_name(host) {
        return Err(ProxyError::InvalidTarget(format!(
            "host {host:?} is not a DNS name or an IP address"
        )));
    }
    Ok(None)
}

impl ProxyHandshake {
    /// Starts the handshake asking `proxy` for a tunnel to `host:port` (a host as
    /// [`WsUrl::host`] gives it). Fails when the host could break the request.
    pub fn new(proxy: &ProxyUrl, host: &str, port: u16) -> Result<Self, ProxyError> {
        let ip = check_target(host, port)?;
        let creds = proxy.credentials.clone();
        let (inner, out) = match proxy.scheme {
            ProxyScheme::Http | ProxyScheme::Https => {
                let authority = match ip {
                    Some(IpAddr::V6(_)) => format!("[{host}]:{port}"),
                    _ => format!("{host}:{port}"),
                };
                let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
                if let Some(c) = &creds {
                    req.push_str("Proxy-Authorization: ");
                    req.push_str(&c.basic());
                    req.push_str("\r\n");
                }
                req.push_str("\r\n");
                (
                    Inner::Http {
                        sent_credentials: creds.is_some(),
                    },
                    req.into_bytes(),
                )
            }
            ProxyScheme::Socks5 => {
                let mut connect = vec![5, 1, 0];
                match ip {
                    Some(IpAddr::V4(a)) => {
                        connect.push(1);
                        connect.extend_from_slice(&a.octets());
                    }
                    Some(IpAddr::V6(a)) => {
                        connect.push(4);
                        connect.extend_from_slice(&a.octets());
                    }
                    None => {
                        connect.push(3);
                        connect.push(host.len() as u8);
                        connect.extend_from_slice(host.as_bytes());
                    }
                }
                connect.extend_from_slice(&port.to_be_bytes());
                let greeting = if creds.is_some() {
                    vec![5, 2, 0, 2]
                } else {
                    vec![5, 1, 0]
                };
                (
                    Inner::Socks(Socks {
                        state: SocksState::Method,
                        credentials: creds,
                        connect,
                    }),
                    greeting,
                )
            }
        };
        Ok(ProxyHandshake {
            inner,
            out,
            buf: Vec::new(),
            done: false,
        })
    }

    /// Bytes to write to the proxy now, if any.
    pub fn transmit(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.out))
        }
    }

    /// Whether the tunnel is open.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The proxy closed the connection (a read gave 0 bytes): always an error before
    /// [`ProxyStep::Done`]. A SOCKS5 proxy that closes in answer to the user name and
    /// password (as some do instead of answering) refused them.
    pub fn eof(&self) -> ProxyError {
        match &self.inner {
            Inner::Socks(s) if s.state == SocksState::Auth && self.buf.is_empty() => {
                ProxyError::SocksAuthFailed
            }
            _ => ProxyError::Closed,
        }
    }

    /// Takes bytes read from the proxy. An error ends the handshake (the connection should
    /// be closed).
    pub fn receive(&mut self, data: &[u8]) -> Result<ProxyStep, ProxyError> {
        if self.done {
            return if data.is_empty() {
                Ok(ProxyStep::Done)
            } else {
                Err(ProxyError::UnexpectedData)
            };
        }
        let cap = match self.inner {
            Inner::Http { .. } => MAX_HTTP_ANSWER,
            Inner::Socks(_) => 512,
        };
        if self.buf.len().saturating_add(data.len()) > cap {
            // Only what could still be part of the answer is kept.
            let room = cap.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&data[..room.min(data.len())]);
            let step = self.advance()?;
            return match step {
                ProxyStep::Done => Err(ProxyError::UnexpectedData),
                ProxyStep::NeedMore => Err(ProxyError::AnswerTooLarge),
            };
        }
        self.buf.extend_from_slice(data);
        let step = self.advance()?;
        if step == ProxyStep::Done && !self.buf.is_empty() {
            return Err(ProxyError::UnexpectedData);
        }
        Ok(step)
    }

    fn advance(&mut self) -> Result<ProxyStep, ProxyError> {
        loop {
            let step = match &mut self.inner {
                Inner::Http { sent_credentials } => {
                    let sent = *sent_credentials;
                    Self::http(&mut self.buf, sent)?
                }
                Inner::Socks(s) => Self::socks(s, &mut self.buf, &mut self.out)?,
            };
            match step {
                Some(true) => {
                    self.done = true;
                    return Ok(ProxyStep::Done);
                }
                Some(false) => continue,
                None => return Ok(ProxyStep::NeedMore),
            }
        }
    }

    /// `Some(true)`: tunnel open; `None`: need more.
    fn http(buf: &mut Vec<u8>, sent_credentials: bool) -> Result<Option<bool>, ProxyError> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ProxyError::Malformed("more than 64 header fields".into()))
            }
            Err(e) => return Err(ProxyError::Malformed(format!("HTTP answer: {e}"))),
        };
        let status = resp.code.unwrap_or(0);
        let reason: String = resp
            .reason
            .unwrap_or("")
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(100)
            .collect();
        match status {
            200..=299 => {
                buf.drain(..n);
                Ok(Some(true))
            }
            407 => Err(ProxyError::AuthenticationRequired { sent_credentials }),
            _ => Err(ProxyError::Refused { status, reason }),
        }
    }

    /// `Some(true)`: tunnel open; `Some(false)`: a step done, go on; `None`: need more.
    fn socks(
        s: &mut Socks,
        buf: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<Option<bool>, ProxyError> {
        match s.state {
            SocksState::Method => {
                let [ver, method, ..] = buf[..] else {
                    return Ok(None);
                };
                if ver != 5 {
                    return Err(ProxyError::Malformed(format!(
                        "SOCKS version {ver} in the method answer (expected 5)"
                    )));
                }
                buf.drain(..2);
                match (method, &s.credentials) {
                    (0, _) => {
                        out.extend_from_slice(&s.connect);
                        s.state = SocksState::Reply;
                    }
                    (2, Some(c)) => {
                        out.push(1);
                        out.push(c.user().len() as u8);
                        out.extend_from_slice(c.user().as_bytes());
                        out.push(c.password().len() as u8);
                        out.extend_from_slice(c.password().as_bytes());
                        s.state = SocksState::Auth;
                    }
                    (0xff, c) => {
                        return Err(ProxyError::NoAcceptableMethod {
                            offered_password: c.is_some(),
                        })
                    }
                    (m, _) => {
                        return Err(ProxyError::Malformed(format!(
                            "the SOCKS5 proxy chose method {m}, which was not offered"
                        )))
                    }
                }
                Ok(Some(false))
            }
            SocksState::Auth => {
                let [_, status, ..] = buf[..] else {
                    return Ok(None);
                };
                buf.drain(..2);
                if status != 0 {
                    return Err(ProxyError::SocksAuthFailed);
                }
                out.extend_from_slice(&s.connect);
                s.state = SocksState::Reply;
                Ok(Some(false))
            }
            SocksState::Reply => {
                let [ver, rep, _rsv, atyp, ..] = buf[..] else {
                    return Ok(None);
                };
                if ver != 5 {
                    return Err(ProxyError::Malformed(format!(
                        "SOCKS version {ver} in the reply (expected 5)"
                    )));
                }
                if rep != 0 {
                    return Err(ProxyError::SocksRefused(rep));
                }
                let len = match atyp {
                    1 => 4 + 4 + 2,
                    4 => 4 + 16 + 2,
                    3 => match buf.get(4) {
                        Some(&l) => 4 + 1 + usize::from(l) + 2,
                        None => return Ok(None),
                    },
                    t => {
                        return Err(ProxyError::Malformed(format!(
                            "SOCKS5 reply address type {t}"
                        )))
                    }
                };
                if buf.len() < len {
                    return Ok(None);
                }
                buf.drain(..len);
                Ok(Some(true))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> WsUrl {
        WsUrl::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn proxy(s: &str) -> ProxyUrl {
        ProxyUrl::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn selected(vars: &'static [(&'static str, &'static str)], target: &str) -> Option<String> {
        ProxyMode::Env
            .select_with(&url(target), &env(vars))
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|p| p.to_string())
    }

    #[test]
    fn proxy_urls_parse_with_defaults_and_hide_passwords() {
        let p = proxy("http://alice:s%40cret@Proxy.Example:3128/");
        assert_eq!(p.scheme(), ProxyScheme::Http);
        assert_eq!(p.endpoint(), ("proxy.example", 3128));
        let c = p.credentials().expect("credentials");
        assert_eq!((c.user(), c.password()), ("alice", "s@cret"));
        assert_eq!(p.to_string(), "http://proxy.example:3128");
        assert!(!format!("{p:?}").contains("s@cret"), "{p:?}");
        assert_eq!(proxy("proxy.corp").to_string(), "http://proxy.corp:1080");
        assert_eq!(proxy("proxy.corp:8080").port(), 8080);
        assert_eq!(proxy("http://p:80").port(), 80, "an explicit default port");
        assert_eq!(proxy("https://p").port(), 443);
        assert_eq!(
            proxy("socks5h://[::1]:9050").to_string(),
            "socks5://[::1]:9050"
        );
        assert_eq!(proxy("socks5://p").port(), 1080);
        for bad in [
            "",
            "ftp://p",
            "http://p/path",
            "http://p?q",
            "http://p:0",
            "http://a\r\nb:1",
            "http://u%0d%0aX:pw@p",
            "socks5://:pw@p",
        ] {
            let e = ProxyUrl::parse(bad).expect_err(bad);
            assert!(matches!(e, ProxyError::InvalidProxy { .. }), "{bad}: {e}");
        }
        let e = ProxyUrl::parse("gopher://bob:hunter2@p").expect_err("scheme");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn environment_selection_follows_curl() {
        const ALL: &[(&str, &str)] = &[
            ("http_proxy", "http://h:1"),
            ("HTTP_PROXY", "http://upper-http:1"),
            ("HTTPS_PROXY", "http://s:2"),
            ("ALL_PROXY", "socks5://a:3"),
        ];
        assert_eq!(
            selected(ALL, "ws://example.com/").as_deref(),
            Some("http://h:1")
        );
        assert_eq!(
            selected(ALL, "wss://example.com/").as_deref(),
            Some("http://s:2")
        );
        // Upper-case HTTP_PROXY is never read (httpoxy); ALL_PROXY is the fallback.
        const UPPER: &[(&str, &str)] = &[
            ("HTTP_PROXY", "http://upper:1"),
            ("ALL_PROXY", "socks5://a:3"),
        ];
        assert_eq!(
            selected(UPPER, "ws://example.com/").as_deref(),
            Some("socks5://a:3")
        );
        const LOWER_FIRST: &[(&str, &str)] = &[
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:2"),
        ];
        assert_eq!(
            selected(LOWER_FIRST, "wss://x.example/").as_deref(),
            Some("http://lower:1")
        );
        const EMPTY: &[(&str, &str)] = &[("https_proxy", ""), ("all_proxy", "http://a:1")];
        assert_eq!(
            selected(EMPTY, "wss://x.example/").as_deref(),
            Some("http://a:1")
        );
        assert_eq!(selected(&[], "wss://x.example/"), None);
        // Loopback and .invalid are never proxied from the environment.
        for t in [
            "ws://127.0.0.1:9/",
            "ws://[::1]/",
            "ws://localhost/",
            "wss://a.localhost/",
            "ws://nowhere.invalid/",
        ] {
            assert_eq!(selected(ALL, t), None, "{t}");
        }
        // But an explicit proxy is used for everything, and Off for nothing.
        let p = ProxyMode::Url(proxy("http://127.0.0.1:3128"));
        assert!(p
            .select_with(&url("ws://127.0.0.1/"), &env(ALL))
            .ok()
            .flatten()
            .is_some());
        assert_eq!(
            ProxyMode::Off.select_with(&url("ws://e.com/"), &env(ALL)),
            Ok(None)
        );
        const BAD: &[(&str, &str)] = &[("https_proxy", "ftp://x")];
        let e = ProxyMode::Env
            .select_with(&url("wss://e.com/"), &env(BAD))
            .expect_err("bad variable");
        assert!(e.to_string().contains("https_proxy"), "{e}");
    }

    #[test]
    fn no_proxy_lists() {
        let m = |list: &str, t: &str| no_proxy_matches(list, &url(t));
        assert!(m("*", "ws://anything/"));
        assert!(m("example.com", "ws://example.com/"));
        assert!(m("example.com", "ws://a.b.example.com/"));
        assert!(m(".example.com", "ws://a.example.com/"));
        assert!(m("EXAMPLE.com:8080", "ws://example.com/"));
        assert!(!m("example.com", "ws://badexample.com/"));
        assert!(!m("a.example.com", "ws://example.com/"));
        assert!(m("foo, 10.0.0.0/8", "ws://10.1.2.3/"));
        assert!(!m("10.0.0.0/8", "ws://11.1.2.3/"));
        assert!(m("192.168.1.5", "ws://192.168.1.5:81/"));
        assert!(m("[fd00::1]", "ws://[fd00::1]/"));
        assert!(m("fd00::/8", "ws://[fd12::1]/"));
        assert!(!m("", "ws://example.com/"));
        assert!(!m("10.0.0.0/99", "ws://10.0.0.1/"));
        const NP: &[(&str, &str)] = &[("no_proxy", "corp.example"), ("http_proxy", "h:1")];
        assert_eq!(selected(NP, "ws://git.corp.example/"), None);
        assert!(selected(NP, "ws://example.org/").is_some());
        const NP_UPPER: &[(&str, &str)] = &[("NO_PROXY", "*"), ("http_proxy", "h:1")];
        assert_eq!(selected(NP_UPPER, "ws://example.org/"), None);
    }

    fn run(hs: &mut ProxyHandshake, answers: &[&[u8]]) -> Result<ProxyStep, ProxyError> {
        let mut last = ProxyStep::NeedMore;
        for a in answers {
            last = hs.receive(a)?;
        }
        Ok(last)
    }

    #[test]
    fn http_connect_request_and_answers() {
        let mut hs = ProxyHandshake::new(&proxy("http://u:p@px:1"), "::1", 443).expect("new");
        let req = String::from_utf8(hs.transmit().expect("request")).expect("ascii");
        assert_eq!(
            req,
            "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
        );
        assert_eq!(hs.transmit(), None);
        // Byte by byte.
        let answer = b"HTTP/1.0 200 OK\r\nX: y\r\n\r\n";
        for (i, b) in answer.iter().enumerate() {
            let step = hs.receive(&[*b]).expect("answer");
            assert_eq!(step == ProxyStep::Done, i == answer.len() - 1);
        }
        assert!(hs.is_done());

        let px = proxy("http://px:1");
        let new = || ProxyHandshake::new(&px, "example.com", 80).expect("new");
        assert_eq!(
            run(&mut new(), &[b"HTTP/1.1 407 Auth\r\n\r\n"]),
            Err(ProxyError::AuthenticationRequired {
                sent_credentials: false
            })
        );
        assert_eq!(
            run(&mut new(), &[b"HTTP/1.1 403 Forbidden\r\n\r\n"]),
            Err(ProxyError::Refused {
                status: 403,
                reason: "Forbidden".into()
            })
        );
        assert_eq!(
            run(&mut new(), &[b"HTTP/1.1 200 OK\r\n\r\nhello"]),
            Err(ProxyError::UnexpectedData)
        );
        assert!(matches!(
            run(&mut new(), &[b"SSH-2.0-x\r\n\r\n"]),
            Err(ProxyError::Malformed(_))
        ));
        let big = vec![b'a'; 1000];
        let mut hs = new();
        let mut r = hs.receive(b"HTTP/1.1 200 OK\r\nX: ");
        for _ in 0..20 {
            if r.is_err() {
                break;
            }
            r = hs.receive(&big);
        }
        assert_eq!(r, Err(ProxyError::AnswerTooLarge));
    }

    #[test]
    fn targets_that_could_break_the_request_are_refused() {
        let px = proxy("http://px:1");
        for host in ["a b", "a\r\nX: y", "", "a:b", "[::1]", "a/b"] {
            assert!(
                matches!(
                    ProxyHandshake::new(&px, host, 1),
                    Err(ProxyError::InvalidTarget(_))
                ),
                "{host:?}"
            );
        }
        assert!(ProxyHandshake::new(&px, "h", 0).is_err());
    }

    #[test]
    fn socks5_with_and_without_password() {
        let mut hs = ProxyHandshake::new(&proxy("socks5://px"), "example.com", 443).expect("new");
        assert_eq!(hs.transmit(), Some(vec![5, 1, 0]));
        assert_eq!(hs.receive(&[5, 0]), Ok(ProxyStep::NeedMore));
        let mut connect = vec![5, 1, 0, 3, 11];
        connect.extend_from_slice(b"example.com");
        connect.extend_from_slice(&[1, 187]);
        assert_eq!(hs.transmit(), Some(connect));
        assert_eq!(hs.receive(&[5, 0, 0, 3, 2, b'a']), Ok(ProxyStep::NeedMore));
        assert_eq!(hs.receive(&[b'b', 0]), Ok(ProxyStep::NeedMore));
        assert_eq!(hs.receive(&[80]), Ok(ProxyStep::Done));

        let mut hs =
            ProxyHandshake::new(&proxy("socks5://bob:pw@px"), "10.0.0.1", 80).expect("new");
        assert_eq!(hs.transmit(), Some(vec![5, 2, 0, 2]));
        assert_eq!(hs.receive(&[5, 2]), Ok(ProxyStep::NeedMore));
        assert_eq!(
            hs.transmit(),
            Some(vec![1, 3, b'b', b'o', b'b', 2, b'p', b'w'])
        );
        assert_eq!(hs.receive(&[1, 0]), Ok(ProxyStep::NeedMore));
        assert_eq!(hs.transmit(), Some(vec![5, 1, 0, 1, 10, 0, 0, 1, 0, 80]));
        assert_eq!(
            hs.receive(&[5, 0, 0, 1, 1, 2, 3, 4, 0, 1]),
            Ok(ProxyStep::Done)
        );

        let new = |p: &str| ProxyHandshake::new(&proxy(p), "h", 1).expect("new");
        assert_eq!(
            run(&mut new("socks5://u:p@px"), &[&[5, 2], &[1, 1]]),
            Err(ProxyError::SocksAuthFailed)
        );
        let mut closes = new("socks5://u:p@px");
        assert_eq!(closes.receive(&[5, 2]), Ok(ProxyStep::NeedMore));
        assert_eq!(closes.eof(), ProxyError::SocksAuthFailed);
        assert_eq!(new("socks5://px").eof(), ProxyError::Closed);
        assert_eq!(
            run(&mut new("socks5://px"), &[&[5, 0xff]]),
            Err(ProxyError::NoAcceptableMethod {
                offered_password: false
            })
        );
        assert!(matches!(
            run(&mut new("socks5://px"), &[&[5, 2]]),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            run(&mut new("socks5://px"), &[&[4, 0]]),
            Err(ProxyError::Malformed(_))
        ));
        let refused = run(&mut new("socks5://px"), &[&[5, 0], &[5, 5, 0, 1]]).expect_err("refused");
        assert_eq!(refused, ProxyError::SocksRefused(5));
        assert!(
            refused.to_string().contains("connection refused"),
            "{refused}"
        );
        assert!(matches!(
            run(&mut new("socks5://px"), &[&[5, 0], &[5, 0, 0, 9]]),
            Err(ProxyError::Malformed(_))
        ));
        assert_eq!(
            run(
                &mut new("socks5://px"),
                &[&[5, 0], &[5, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0xaa]]
            ),
            Err(ProxyError::UnexpectedData)
        );
        assert!(run(&mut new("socks5://px"), &[&[0u8; 4096]]).is_err());
    }
}
