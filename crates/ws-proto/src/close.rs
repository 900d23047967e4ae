//! Close codes (RFC 6455 §7.4).

use std::fmt;

/// A close status code.
///
/// A `CloseCode` that came from the wire has already been validated; one made
/// by [`CloseCode::new`] is one that may be sent. The pseudo-codes
/// [`NO_STATUS`](Self::NO_STATUS) (1005), [`ABNORMAL`](Self::ABNORMAL) (1006)
/// and [`TLS_FAILURE`](Self::TLS_FAILURE) (1015) are reported to the
/// application but never sent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005 (never sent): the close frame carried no status code.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006 (never sent): the connection ended without a close frame.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data inconsistent with the message type (invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message or frame too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: an unexpected condition in the server.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: bad gateway.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015 (never sent): the TLS handshake failed.
    pub const TLS_FAILURE: CloseCode = CloseCode(1015);

    /// A code that may be sent in a close frame: 1000-1003, 1007-1014 and
    /// the application ranges 3000-4999.
    pub fn new(code: u16) -> Result<CloseCode, crate::Error> {
        if Self::is_sendable(code) {
            Ok(CloseCode(code))
        } else {
            Err(crate::Error::InvalidCloseCode(code))
        }
    }

    /// Parses a code received in a close frame; `None` when the peer may not
    /// send it (the caller answers with 1002).
    pub fn from_wire(code: u16) -> Option<CloseCode> {
        Self::is_sendable(code).then_some(CloseCode(code))
    }

    /// The numeric value.
    pub fn as_u16(self) -> u16 {
        self.0
    }

    /// What the code means, in a few words, for logs and messages
    /// (`"normal closure"` for 1000, `"application"` for 3000-4999 and
    /// `"unknown"` for any other code outside the RFC's list).
    ///
    /// ```
    /// use ws_proto::CloseCode;
    /// assert_eq!(CloseCode::NORMAL.description(), "normal closure");
    /// assert_eq!(CloseCode::new(4000).unwrap().description(), "application");
    /// ```
    pub fn description(self) -> &'static str {
        match self.0 {
            1000 => "normal closure",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status code",
            1006 => "abnormal closure, no close frame",
            1007 => "invalid payload data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            1012 => "service restart",
            1013 => "try again later",
            1014 => "bad gateway",
            1015 => "TLS handshake failure",
            3000..=3999 => "registered",
            4000..=4999 => "application",
            _ => "unknown",
        }
    }

    /// For the error refusing `code` (see [`is_sendable`](Self::is_sendable)):
    /// what it means ([`description`](Self::description)) and why it may not
    /// be sent.
    pub(crate) fn refusal(code: u16) -> (&'static str, &'static str) {
        let why = match code {
            1005 | 1006 | 1015 => "it is only reported, never sent",
            1000..=2999 => "it is reserved by RFC 6455",
            _ => "it is out of range",
        };
        (CloseCode(code).description(), why)
    }

    /// Whether this code may appear in a close frame.
    pub fn is_sendable(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<CloseCode> for u16 {
    fn from(c: CloseCode) -> u16 {
        c.0
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_defined_code_has_its_own_description() {
        let codes = [
            1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
            1015,
        ];
        let words: std::collections::HashSet<_> =
            codes.iter().map(|&c| CloseCode(c).description()).collect();
        assert_eq!(words.len(), codes.len());
        assert!(!words.contains("unknown"));
        assert_eq!(CloseCode(3500).description(), "registered");
        assert_eq!(CloseCode(4999).description(), "application");
    }

    #[test]
    fn rfc6455_7_4_ranges() {
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode::from_wire(ok).is_some(), "{ok}");
            assert!(CloseCode::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(CloseCode::from_wire(bad).is_none(), "{bad}");
            assert!(CloseCode::new(bad).is_err(), "{bad}");
        }
    }
}
