//! `ws://` / `wss://` URL splitting: scheme, host, port, resource.

use crate::Error;

/// The parts of a WebSocket URL the driver needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WsUrl {
    /// `wss://`.
    pub(crate) secure: bool,
    /// The host without IPv6 brackets.
    pub(crate) host: String,
    /// Explicit or default (80 / 443) port.
    pub(crate) port: u16,
    /// Whether the URL named the port.
    explicit_port: bool,
    /// Path and query (at least `/`).
    pub(crate) resource: String,
}

impl WsUrl {
    /// Splits `ws[s]://host[:port][/path][?query][#fragment]`.
    pub(crate) fn parse(input: &str) -> Result<WsUrl, Error> {
        let invalid = |why: &str| Error::InvalidUrl(format!("{why}: {input:?}"));
        let (scheme, rest) = input
            .trim()
            .split_once("://")
            .ok_or_else(|| invalid("no scheme"))?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" => false,
            "wss" => true,
            _ => return Err(invalid("scheme is not ws or wss")),
        };
        let rest = rest.split('#').next().unwrap_or("");
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if authority.contains('@') {
            return Err(invalid("user information is not supported"));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed '['"))?;
                match after {
                    "" => (h, None),
                    p => (
                        h,
                        Some(p.strip_prefix(':').ok_or_else(|| invalid("bad port"))?),
                    ),
                }
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(invalid("empty host"));
        }
        let explicit_port = port.is_some();
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| invalid("bad port"))?,
            None if secure => 443,
            None => 80,
        };
        let resource = match tail.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{tail}"),
            Some(_) => tail.to_string(),
        };
        Ok(WsUrl {
            secure,
            host: host.to_ascii_lowercase(),
            port,
            explicit_port,
            resource,
        })
    }

    /// The `Host` header value.
    pub(crate) fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.explicit_port {
            format!("{host}:{}", self.port)
        } else {
            host
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let u = WsUrl::parse("ws://127.0.0.1:9001/chat?x=1#frag").ok();
        let u = u.as_ref();
        assert_eq!(u.map(|u| u.port), Some(9001));
        assert_eq!(u.map(|u| u.resource.as_str()), Some("/chat?x=1"));
        assert_eq!(
            u.map(|u| u.host_header()),
            Some("127.0.0.1:9001".to_string())
        );
        let u = WsUrl::parse("WSS://Example.com?q").ok();
        assert_eq!(u.as_ref().map(|u| (u.secure, u.port)), Some((true, 443)));
        assert_eq!(u.as_ref().map(|u| u.resource.as_str()), Some("/?q"));
        assert_eq!(u.map(|u| u.host_header()), Some("example.com".to_string()));
        let u = WsUrl::parse("ws://[::1]:80/").ok();
        assert_eq!(u.map(|u| u.host_header()), Some("[::1]:80".to_string()));
        for bad in [
            "http://x/",
            "ws://",
            "ws://a:b/",
            "ws://u@h/",
            "ws://[::1/",
            "nothing",
        ] {
            assert!(WsUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
