//! Redirects of the opening handshake, decided once for every driver.
//!
//! A server may answer the upgrade request with `301`, `302`, `303`, `307` or `308` and a
//! `Location`. [`Redirects`] keeps the chain of URLs tried and decides, for each such answer,
//! where to go next:
//!
//! - `Location` is resolved against the URL just tried (it may be relative); `http://`
//!   becomes `ws://` and `https://` becomes `wss://`; any other scheme is refused.
//! - `wss://` (or `https://`) is never followed to `ws://`: a downgrade is an error.
//! - More than the limit (default [`DEFAULT_MAX_REDIRECTS`]; 0 turns following off, and the
//!   3xx stays the handshake's error) or a URL already in the chain (a loop) is an error
//!   naming the whole chain.
//! - Credentials (the URL's `user:password@` and the caller's `Authorization` and `Cookie`
//!   headers) go only to the first URL's origin (scheme, host and port):
//!   [`Redirects::send_credentials`] says whether the current attempt may carry them.
//!
//! The driver builds each attempt's request again (the request hook runs again, with the new
//! host and path) and opens a new connection (and proxy tunnel) for it.
//!
//! ```
//! use ws_net::redirect::Redirects;
//! use ws_net::url::WsUrl;
//!
//! let mut r = Redirects::new(WsUrl::parse("wss://user:pw@a.example/old")?, 5);
//! let next = r.follow(301, &[("Location".into(), "/new".into())])?.expect("followed");
//! assert_eq!(next.to_string(), "wss://a.example/new");
//! assert!(r.send_credentials());
//! r.follow(302, &[("location".into(), "https://b.example/".into())])?;
//! assert!(!r.send_credentials(), "another host gets no credentials");
//! let err = r.follow(307, &[("Location".into(), "ws://b.example/".into())]).unwrap_err();
//! assert!(err.to_string().contains("downgrade"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use crate::url::WsUrl;

/// The default limit of redirects followed for one connection.
pub const DEFAULT_MAX_REDIRECTS: usize = 5;

/// The longest `Location` value followed.
pub const MAX_LOCATION: usize = 4096;

/// Whether `status` is a redirect that is followed.
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Why a redirect was not followed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedirectError {
    /// A redirect status without a usable `Location`.
    MissingLocation {
        /// The status.
        status: u16,
        /// The chain so far (the last URL gave the answer).
        chain: Vec<WsUrl>,
    },
    /// `Location` could not be made into a WebSocket URL.
    BadLocation {
        /// The value, shortened to 200 characters and with any password hidden.
        location: String,
        /// What is wrong with it.
        reason: String,
        /// The chain so far.
        chain: Vec<WsUrl>,
    },
    /// The redirect would go from `wss://` to `ws://`.
    Downgrade {
        /// The chain, ending with the refused URL.
        chain: Vec<WsUrl>,
    },
    /// The redirect leads to a URL already tried.
    Loop {
        /// The chain, ending with the repeated URL.
        chain: Vec<WsUrl>,
    },
    /// More redirects than the limit.
    TooMany {
        /// The limit.
        max: usize,
        /// The chain, ending with the URL not followed.
        chain: Vec<WsUrl>,
    },
}

impl RedirectError {
    /// The URLs involved, in order: the first is the one the caller gave.
    pub fn chain(&self) -> &[WsUrl] {
        match self {
            RedirectError::MissingLocation { chain, .. }
            | RedirectError::BadLocation { chain, .. }
            | RedirectError::Downgrade { chain }
            | RedirectError::Loop { chain }
            | RedirectError::TooMany { chain, .. } => chain,
        }
    }
}

struct Chain<'a>(&'a [WsUrl]);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, u) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "{u}")?;
        }
        Ok(())
    }
}

impl fmt::Display for RedirectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chain = Chain(self.chain());
        match self {
            RedirectError::MissingLocation { status, .. } => {
                write!(f, "redirect {status} without a Location (chain: {chain})")
            }
            RedirectError::BadLocation {
                location, reason, ..
            } => write!(
                f,
                "redirect to an unusable Location {location:?}: {reason} (chain: {chain})"
            ),
            RedirectError::Downgrade { .. } => write!(
                f,
                "redirect refused: it would downgrade wss:// to ws:// (chain: {chain})"
            ),
            RedirectError::Loop { .. } => write!(f, "redirect loop: {chain}"),
            RedirectError::TooMany { max, .. } => {
                write!(f, "more than {max} redirects: {chain}")
            }
        }
    }
}

impl std::error::Error for RedirectError {}

/// The URL `location` (a `Location` header value) points to from `base`: resolved relative
/// to it, `http`/`https` mapped to `ws`/`wss`, and parsed as a [`WsUrl`]. The caller checks
/// downgrades and loops ([`Redirects::follow`] does).
pub fn resolve_location(base: &WsUrl, location: &str) -> Result<WsUrl, String> {
    if location.len() > MAX_LOCATION {
        return Err(format!("longer than {MAX_LOCATION} bytes"));
    }
    let location = location.trim();
    if location.is_empty() {
        return Err("empty".into());
    }
    if location.chars().any(|c| c.is_control()) {
        return Err("control characters are not allowed".into());
    }
    let base = url::Url::parse(&base.to_string()).map_err(|e| e.to_string())?;
    let mut next = base.join(location).map_err(|e| e.to_string())?;
    let scheme = match next.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => return Err(format!("scheme {other:?} is not ws, wss, http or https")),
    };
    if next.scheme() != scheme {
        // `set_scheme` refuses special <-> special changes of this kind; rebuild instead.
        let rest = &next.as_str()[next.scheme().len()..];
        next = url::Url::parse(&format!("{scheme}{rest}")).map_err(|e| e.to_string())?;
    }
    // A fragment in a Location is dropped (RFC 6455 §3 forbids it in a WebSocket URL).
    next.set_fragment(None);
    WsUrl::parse(next.as_str()).map_err(|e| format!("{} {}", e.part(), e.reason()))
}

/// The chain of URLs of one connection attempt (see the [module](self)).
#[derive(Clone, Debug)]
pub struct Redirects {
    chain: Vec<WsUrl>,
    max: usize,
}

impl Redirects {
    /// A chain starting at `url`, following at most `max` redirects (0: none).
    pub fn new(url: WsUrl, max: usize) -> Redirects {
        Redirects {
            chain: vec![url],
            max,
        }
    }

    /// The URL to try now (with the first URL's credentials while on its origin).
    pub fn current(&self) -> &WsUrl {
        self.chain
            .last()
            .unwrap_or_else(|| unreachable!("the chain is never empty"))
    }

    /// The URLs tried so far, the first being the caller's.
    pub fn chain(&self) -> &[WsUrl] {
        &self.chain
    }

    /// Whether the current attempt may carry the caller's credentials (the URL's
    /// `user:password@`, `Authorization` and `Cookie` headers): only on the first URL's
    /// origin.
    pub fn send_credentials(&self) -> bool {
        match (self.chain.first(), self.chain.last()) {
            (Some(first), Some(last)) => first.same_origin(last),
            _ => false,
        }
    }

    /// The server answered the current URL with `status` and `headers`. `Ok(None)`: not a
    /// redirect, or following is off (the answer stays the handshake's error);
    /// `Ok(Some(url))`: try `url` next; `Err`: a redirect that must not be followed.
    pub fn follow(
        &mut self,
        status: u16,
        headers: &[(String, String)],
    ) -> Result<Option<&WsUrl>, RedirectError> {
        if self.max == 0 || !is_redirect(status) {
            return Ok(None);
        }
        let mut locations = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("location"));
        let (Some((_, location)), None) = (locations.next(), locations.next()) else {
            return Err(RedirectError::MissingLocation {
                status,
                chain: self.chain.clone(),
            });
        };
        let current = self.current();
        let mut next =
            resolve_location(current, location).map_err(|reason| RedirectError::BadLocation {
                location: crate::url::redact_userinfo(
                    &location.chars().take(200).collect::<String>(),
                ),
                reason,
                chain: self.chain.clone(),
            })?;
        if let Some(first) = self.chain.first() {
            if next.credentials().is_none() && first.same_origin(&next) {
                next.set_credentials(first.credentials().cloned());
            }
        }
        let mut chain = self.chain.clone();
        chain.push(next.clone());
        if current.is_secure() && !next.is_secure() {
            return Err(RedirectError::Downgrade { chain });
        }
        if self.chain.iter().any(|u| same_target(u, &next)) {
            return Err(RedirectError::Loop { chain });
        }
        if self.chain.len() > self.max {
            return Err(RedirectError::TooMany {
                max: self.max,
                chain,
            });
        }
        self.chain = chain;
        Ok(Some(self.current()))
    }
}

/// The same place: origin and request target.
fn same_target(a: &WsUrl, b: &WsUrl) -> bool {
    a.same_origin(b) && a.resource() == b.resource()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> WsUrl {
        WsUrl::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn loc(l: &str) -> Vec<(String, String)> {
        vec![("Location".into(), l.into())]
    }

    #[test]
    fn locations_resolve_relative_and_map_http_schemes() {
        let base = url("ws://h:81/a/b?q");
        let r = |l: &str| resolve_location(&base, l).map(|u| u.to_string());
        assert_eq!(r("c").as_deref(), Ok("ws://h:81/a/c"));
        assert_eq!(r("/x?y").as_deref(), Ok("ws://h:81/x?y"));
        assert_eq!(r("//other/").as_deref(), Ok("ws://other/"));
        assert_eq!(r("http://o:8080/p").as_deref(), Ok("ws://o:8080/p"));
        assert_eq!(r("https://o/p#frag").as_deref(), Ok("wss://o/p"));
        assert_eq!(r("WSS://O/").as_deref(), Ok("wss://o/"));
        assert!(r("ftp://o/").is_err());
        assert!(r("").is_err());
        assert!(r("/a\r\nX: y").is_err());
        assert!(r(&"/a".repeat(3000)).is_err());
        assert!(r("http://[::1").is_err());
    }

    #[test]
    fn every_redirect_status_is_followed_and_others_are_not() {
        for status in [301, 302, 303, 307, 308] {
            let mut r = Redirects::new(url("ws://h/"), 5);
            let next = r
                .follow(status, &loc("/n"))
                .expect("ok")
                .map(|u| u.to_string());
            assert_eq!(next.as_deref(), Some("ws://h/n"), "{status}");
        }
        for status in [300, 304, 305, 200, 404] {
            let mut r = Redirects::new(url("ws://h/"), 5);
            assert_eq!(r.follow(status, &loc("/n")), Ok(None), "{status}");
        }
        let mut off = Redirects::new(url("ws://h/"), 0);
        assert_eq!(off.follow(301, &loc("/n")), Ok(None));
    }

    #[test]
    fn loops_chains_downgrades_and_missing_locations_name_the_chain() {
        let mut r = Redirects::new(url("ws://h/0"), 5);
        r.follow(302, &loc("/1")).expect("1");
        let e = r.follow(302, &loc("/0")).expect_err("loop");
        assert_eq!(
            e.to_string(),
            "redirect loop: ws://h/0 -> ws://h/1 -> ws://h/0"
        );

        let mut r = Redirects::new(url("ws://h/0"), 2);
        r.follow(301, &loc("/1")).expect("1");
        r.follow(301, &loc("/2")).expect("2");
        let e = r.follow(301, &loc("/3")).expect_err("too many");
        assert_eq!(
            e.to_string(),
            "more than 2 redirects: ws://h/0 -> ws://h/1 -> ws://h/2 -> ws://h/3"
        );

        let mut r = Redirects::new(url("wss://h/"), 5);
        let e = r.follow(308, &loc("http://h/")).expect_err("downgrade");
        assert!(matches!(e, RedirectError::Downgrade { .. }), "{e}");
        assert!(e.to_string().contains("wss://h/ -> ws://h/"), "{e}");
        // Upgrading is fine.
        let mut r = Redirects::new(url("ws://h/"), 5);
        assert!(r.follow(301, &loc("wss://h/")).expect("up").is_some());

        let mut r = Redirects::new(url("ws://h/"), 5);
        assert!(matches!(
            r.follow(302, &[]),
            Err(RedirectError::MissingLocation { .. })
        ));
        let two = [loc("/a"), loc("/b")].concat();
        assert!(matches!(
            r.follow(302, &two),
            Err(RedirectError::MissingLocation { .. })
        ));
        let e = r
            .follow(302, &loc("gopher://u:secret@x/"))
            .expect_err("bad");
        assert!(!e.to_string().contains("secret"), "{e}");
        assert_eq!(r.chain().len(), 1, "errors leave the chain as it was");
    }

    #[test]
    fn credentials_stay_on_the_first_origin() {
        let mut r = Redirects::new(url("ws://u:p@h/"), 5);
        assert!(r.send_credentials());
        let next = r
            .follow(301, &loc("/x"))
            .expect("ok")
            .expect("followed")
            .clone();
        assert_eq!(next.credentials().map(|c| c.password()), Some("p"));
        assert!(r.send_credentials());
        r.follow(301, &loc("ws://other/")).expect("ok");
        assert!(!r.send_credentials());
        assert_eq!(r.current().credentials(), None);
        // Back on the first origin, they are sent again.
        r.follow(301, &loc("ws://h/y")).expect("ok");
        assert!(r.send_credentials());
        assert!(r.current().credentials().is_some());
        // Another port is another origin.
        let mut r = Redirects::new(url("ws://u:p@h/"), 5);
        r.follow(301, &loc("ws://h:8080/")).expect("ok");
        assert!(!r.send_credentials());
    }
}
