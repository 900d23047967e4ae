//! `ws://` and `wss://` URLs (RFC 6455 §3), parsed by hand: scheme, host
//! (name, IPv4 or `[IPv6]`), optional port, path and query.

use std::net::{IpAddr, Ipv6Addr};

use crate::Error;

/// A parsed WebSocket URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Url {
    /// `wss://`.
    pub(crate) tls: bool,
    /// Host name or address, without brackets, lower-cased.
    pub(crate) host: String,
    /// The host as an address, when it is one.
    pub(crate) ip: Option<IpAddr>,
    /// The port (80 / 443 by default).
    pub(crate) port: u16,
    /// Path and query, e.g. `/chat?room=1` (at least `/`).
    pub(crate) resource: String,
}

impl Url {
    /// Parses `ws://host[:port][/path][?query]` or `wss://...`; a fragment
    /// is ignored, user information is refused.
    pub(crate) fn parse(s: &str) -> Result<Url, Error> {
        let bad = |m: &str| Error::InvalidUrl(format!("{m}: {s:?}"));
        let s = s.trim();
        let (scheme, rest) = s.split_once("://").ok_or_else(|| bad("missing scheme"))?;
        let tls = if scheme.eq_ignore_ascii_case("ws") {
            false
        } else if scheme.eq_ignore_ascii_case("wss") {
            true
        } else {
            return Err(bad("scheme must be ws or wss"));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, resource) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("user information is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unterminated IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("junk after IPv6 address"))?,
                ),
            };
            (addr, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let default_port = if tls { 443 } else { 80 };
        let port = match port {
            None | Some("") => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p != 0 => p,
                _ => return Err(bad("invalid port")),
            },
        };
        let ip = if authority.starts_with('[') {
            Some(IpAddr::V6(
                host.parse::<Ipv6Addr>()
                    .map_err(|_| bad("invalid IPv6 address"))?,
            ))
        } else {
            if !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            {
                return Err(bad("invalid host"));
            }
            host.parse::<IpAddr>().ok()
        };
        if resource.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("spaces or control characters in the path"));
        }
        let resource = match resource {
            "" => "/".to_string(),
            r if r.starts_with('?') => format!("/{r}"),
            r => r.to_string(),
        };
        Ok(Url {
            tls,
            host: host.to_ascii_lowercase(),
            ip,
            port,
            resource,
        })
    }

    /// The `Host` header value: the host (bracketed for IPv6) and the port
    /// when it is not the scheme's default.
    pub(crate) fn host_header(&self) -> String {
        let host = match self.ip {
            Some(IpAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Url {
        match Url::parse(s) {
            Ok(u) => u,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn parses_the_usual_forms() {
        let u = ok("ws://Example.com/chat?x=1#frag");
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.resource.as_str()),
            (false, "example.com", 80, "/chat?x=1")
        );
        assert_eq!(u.host_header(), "example.com");
        let u = ok("wss://example.com:8443");
        assert_eq!((u.tls, u.port, u.resource.as_str()), (true, 8443, "/"));
        assert_eq!(u.host_header(), "example.com:8443");
        let u = ok("ws://127.0.0.1:9000?q");
        assert_eq!(u.ip, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(u.resource, "/?q");
        let u = ok("wss://[::1]:4443/a");
        assert_eq!(u.ip, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(u.host_header(), "[::1]:4443");
        assert_eq!(ok("WSS://[::1]").host_header(), "[::1]");
    }

    #[test]
    fn refuses_what_it_cannot_use() {
        for s in [
            "http://example.com/",
            "example.com",
            "ws://",
            "ws://:80/",
            "ws://a b/",
            "ws://host:0/",
            "ws://host:99999/",
            "ws://user@host/",
            "ws://[::1/",
            "ws://[zz]/",
            "ws://host/a b",
        ] {
            assert!(matches!(Url::parse(s), Err(Error::InvalidUrl(_))), "{s}");
        }
    }
}
