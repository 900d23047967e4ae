//! Words for what wsx reports: negotiation results and closes, written the
//! same way by every subcommand and driver (no Rust debug formatting).

use ws_proto::{CloseCode, Closed, OpenInfo};

/// `subprotocol chat, extensions permessage-deflate; ...` or
/// `no subprotocol, no extensions`.
pub fn negotiated(info: &OpenInfo) -> String {
    negotiated_parts(info.protocol.as_deref(), info.extensions.as_deref())
}

/// [`negotiated`] from the two values (servers that hold them apart).
pub fn negotiated_parts(protocol: Option<&str>, extensions: Option<&str>) -> String {
    let protocol = match protocol {
        Some(p) => format!("subprotocol {p}"),
        None => "no subprotocol".to_string(),
    };
    let extensions = match extensions {
        Some(e) if !e.is_empty() => format!("extensions {e}"),
        _ => "no extensions".to_string(),
    };
    format!("{protocol}, {extensions}")
}

/// `1000 (normal closure)`, with `, reason "..."` when there is one and
/// `, error: ...` when the connection failed.
pub fn closed(c: &Closed) -> String {
    closed_parts(
        c.code,
        &c.reason,
        c.error.as_ref().map(|e| e as &dyn std::fmt::Display),
    )
}

/// [`closed`] from its parts.
fn closed_parts(code: CloseCode, reason: &str, error: Option<&dyn std::fmt::Display>) -> String {
    let mut s = format!("{code} ({})", code.description());
    if !reason.is_empty() {
        s.push_str(&format!(", reason {reason:?}"));
    }
    if let Some(e) = error {
        s.push_str(&format!(", error: {e}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_not_debug_output() {
        assert_eq!(
            negotiated_parts(None, None),
            "no subprotocol, no extensions"
        );
        assert_eq!(
            negotiated_parts(Some("chat"), Some("permessage-deflate")),
            "subprotocol chat, extensions permessage-deflate"
        );
        assert_eq!(
            closed_parts(CloseCode::NORMAL, "", None),
            "1000 (normal closure)"
        );
        assert_eq!(
            closed_parts(CloseCode::GOING_AWAY, "bye", Some(&"reset")),
            "1001 (going away), reason \"bye\", error: reset"
        );
    }
}
