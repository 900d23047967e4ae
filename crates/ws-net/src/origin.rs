//! The server-side `Origin` allow-list, one check for every driver and the
//! CLI.
//!
//! Browsers send `Origin` with every WebSocket upgrade, so a server that only
//! accepts its own sites' origins stops other sites' pages from opening
//! connections with the user's cookies (cross-site WebSocket hijacking).
//! Non-browser clients can send any `Origin`: it is no authentication.

/// Whether a request with `origin` (its `Origin` header, if any) passes the
/// allow-list `allowed`.
///
/// - `allowed` is `None`: there is no list, every request passes (with or
///   without an `Origin`).
/// - `allowed` is `Some(list)`: the request needs an `Origin` equal to one
///   of the entries, compared ASCII case-insensitively (scheme and host are
///   case-insensitive; a serialised origin has no path). An empty list
///   refuses everything.
///
/// ```
/// use ws_net::origin::origin_allowed;
///
/// let list = ["https://app.example", "http://localhost:8080"];
/// assert!(origin_allowed(Some(&list[..]), Some("https://APP.example")));
/// assert!(!origin_allowed(Some(&list[..]), Some("https://evil.example")));
/// assert!(!origin_allowed(Some(&list[..]), None));
/// assert!(origin_allowed(None::<&[&str]>, None));
/// ```
pub fn origin_allowed<S: AsRef<str>>(allowed: Option<&[S]>, origin: Option<&str>) -> bool {
    match allowed {
        None => true,
        Some(list) => {
            origin.is_some_and(|o| list.iter().any(|a| a.as_ref().eq_ignore_ascii_case(o)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_list_lets_everything_through() {
        assert!(origin_allowed(None::<&[String]>, None));
        assert!(origin_allowed(
            None::<&[String]>,
            Some("https://any.example")
        ));
    }

    #[test]
    fn matching_is_ascii_case_insensitive() {
        let list = ["https://App.Example".to_string(), "null".to_string()];
        let allowed = Some(&list[..]);
        for o in [
            "https://app.example",
            "HTTPS://APP.EXAMPLE",
            "https://App.Example",
            "NULL",
        ] {
            assert!(origin_allowed(allowed, Some(o)), "{o}");
        }
        for o in [
            "https://app.example.evil",
            "https://app.example:443",
            "http://app.example",
            "https://app.example/",
            "",
        ] {
            assert!(!origin_allowed(allowed, Some(o)), "{o}");
        }
        assert!(!origin_allowed(allowed, None), "a list requires an Origin");
    }

    #[test]
    fn non_ascii_is_compared_exactly() {
        // Only ASCII letters fold: no Unicode case mapping sneaks a match in.
        let list = ["https://straße.example"];
        assert!(origin_allowed(
            Some(&list[..]),
            Some("HTTPS://straße.EXAMPLE")
        ));
        assert!(!origin_allowed(
            Some(&list[..]),
            Some("https://STRASSE.example")
        ));
        assert!(!origin_allowed(
            Some(&list[..]),
            Some("https://straSSe.example")
        ));
    }

    #[test]
    fn an_empty_list_refuses_everything() {
        let list: [&str; 0] = [];
        assert!(!origin_allowed(Some(&list[..]), Some("https://a.example")));
        assert!(!origin_allowed(Some(&list[..]), None));
    }
}
