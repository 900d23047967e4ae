//! A user name and password, from a URL's user information or given by the caller, for
//! HTTP Basic authentication (of a proxy, or of a WebSocket server).

use std::fmt;

use base64::Engine as _;

/// A user name and password (for a proxy, or the `user:password@` of a WebSocket URL),
/// percent-decoded. `Debug` shows the user name only.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    /// Credentials from a user name and a password. Control characters are refused, and a
    /// `:` in the user name (Basic authentication could not tell where it ends).
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Result<Self, String> {
        let (user, password) = (user.into(), password.into());
        if user.chars().chain(password.chars()).any(char::is_control) {
            return Err("control characters are not allowed in a user name or password".into());
        }
        if user.contains(':') {
            return Err("a user name may not contain ':'".into());
        }
        Ok(Credentials { user, password })
    }

    /// From a parsed URL's user information (percent-decoded); `None` when it has none.
    pub(crate) fn from_url(url: &url::Url) -> Result<Option<Self>, String> {
        if url.username().is_empty() && url.password().is_none() {
            return Ok(None);
        }
        let decode = |s: &str| {
            // The `url` crate keeps user information percent-encoded.
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|d| d.into_owned())
                .map_err(|_| "user information is not UTF-8 once decoded".to_string())
        };
        let user = decode(url.username())?;
        let password = decode(url.password().unwrap_or(""))?;
        Credentials::new(user, password).map(Some)
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The value of an `Authorization` or `Proxy-Authorization` header: `Basic
    /// base64(user:password)` (RFC 7617).
    pub fn basic(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}
