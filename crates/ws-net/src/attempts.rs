//! One client connection's attempts (see [`Attempts`]).

use ws_proto::{ClientRequest, HandshakeError};

use crate::proxy::{ProxyError, ProxyMode, ProxyUrl};
use crate::redirect::{RedirectError, Redirects};
use crate::request::RequestOptions;
use crate::url::WsUrl;

/// One client connection's attempts: the URL the caller gave, then each redirect followed,
/// with the request and the proxy of each. Every driver runs the same loop:
///
/// ```text
/// let mut attempts = Attempts::new(url, options.request.clone());
/// loop {
///     let request = attempts.request()?;          // hook runs again per attempt
///     let proxy = attempts.proxy(connect_to.is_some())?;
///     match connect_once(attempts.url(), request, proxy) {
///         Err(handshake error e) if attempts.redirected(&e)? => continue,
///         other => return other,
///     }
/// }
/// ```
///
/// Owns its options (a clone is cheap: the hook is shared), so an
/// event loop can keep it beside a connection until it opens.
#[derive(Debug)]
pub struct Attempts {
    options: RequestOptions,
    redirects: Redirects,
}

impl Attempts {
    /// The attempts of one connection to `url` with `options` (its proxy and redirect limit
    /// too).
    pub fn new(url: WsUrl, options: RequestOptions) -> Attempts {
        Attempts {
            redirects: Redirects::new(url, options.max_redirects),
            options,
        }
    }

    /// The URL to try now.
    pub fn url(&self) -> &WsUrl {
        self.redirects.current()
    }

    /// Whether this attempt is on the first URL's origin (where a driver's `connect_to`
    /// address applies; elsewhere the host is resolved).
    pub fn on_first_origin(&self) -> bool {
        self.redirects.send_credentials()
    }

    /// The upgrade request of this attempt
    /// ([`RequestOptions::build_attempt`]: credentials only on the first origin, the hook run
    /// again).
    pub fn request(&self) -> Result<ClientRequest, ws_proto::Error> {
        self.options
            .build_attempt(self.url(), self.redirects.send_credentials())
    }

    /// The proxy of this attempt. With `direct_address` (the driver was given an address to
    /// connect to, and this attempt is on the first origin) the environment is not read;
    /// an explicit proxy still applies.
    pub fn proxy(&self, direct_address: bool) -> Result<Option<ProxyUrl>, ProxyError> {
        if direct_address && self.on_first_origin() && self.options.proxy == ProxyMode::Env {
            return Ok(None);
        }
        self.options.proxy.select(self.url())
    }

    /// The attempt failed its handshake with `e`: `Ok(true)` when it was a redirect to follow
    /// (then [`url`](Self::url) is the next one), `Ok(false)` when `e` stands.
    pub fn redirected(&mut self, e: &HandshakeError) -> Result<bool, RedirectError> {
        match e {
            HandshakeError::Status {
                status, headers, ..
            } => Ok(self.redirects.follow(*status, headers)?.is_some()),
            _ => Ok(false),
        }
    }

    /// The URLs tried so far.
    pub fn chain(&self) -> &[WsUrl] {
        self.redirects.chain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, location: &str) -> HandshakeError {
        HandshakeError::Status {
            status: code,
            reason: "Moved".into(),
            headers: vec![("Location".into(), location.into())],
            body: Vec::new(),
        }
    }

    #[test]
    fn each_attempt_gets_its_request_and_proxy() {
        let options = RequestOptions::default()
            .proxy(ProxyUrl::parse("http://127.0.0.1:3128").unwrap_or_else(|e| panic!("{e}")));
        let url = WsUrl::parse("ws://u:p@h/a").unwrap_or_else(|e| panic!("{e}"));
        let mut a = Attempts::new(url, options);
        let r = a.request().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.host.as_str(), r.resource.as_str()), ("h", "/a"));
        assert!(r.headers.iter().any(|(n, _)| n == "Authorization"));
        assert!(
            a.proxy(true).ok().flatten().is_some(),
            "explicit proxy applies"
        );
        assert_eq!(a.redirected(&HandshakeError::BadAccept), Ok(false));
        assert_eq!(a.redirected(&status(302, "ws://other/b")), Ok(true));
        let r = a.request().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.host.as_str(), r.resource.as_str()), ("other", "/b"));
        assert!(r.headers.is_empty(), "no credentials to another host");
        assert!(!a.on_first_origin());
        assert_eq!(a.chain().len(), 2);

        let off = RequestOptions::default().no_proxy();
        let a = Attempts::new(
            WsUrl::parse("ws://e.com/").unwrap_or_else(|e| panic!("{e}")),
            off,
        );
        assert_eq!(a.proxy(false), Ok(None));
        let env = RequestOptions::default();
        let a = Attempts::new(
            WsUrl::parse("ws://e.com/").unwrap_or_else(|e| panic!("{e}")),
            env,
        );
        assert_eq!(
            a.proxy(true),
            Ok(None),
            "connect_to bypasses the environment"
        );
    }
}
