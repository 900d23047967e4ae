//! The message of application code that panicked, for every driver's containment of it.

use std::any::Any;

/// The message of a panic payload caught by `catch_unwind`: the `&str` or `String` given to
/// `panic!`, or a placeholder for any other payload.
///
/// ```
/// let p = std::panic::catch_unwind(|| panic!("formatted {}", 42)).unwrap_err();
/// assert_eq!(ws_net::panic_message(&*p), "formatted 42");
/// ```
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic payload that is not a string)".to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::panic_message;

    #[test]
    fn str_string_and_other_payloads() {
        let p = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(&*p), "plain");
        let p = std::panic::catch_unwind(|| panic!("formatted {}", 42)).unwrap_err();
        assert_eq!(panic_message(&*p), "formatted 42");
        let p = std::panic::catch_unwind(|| std::panic::panic_any(7u32)).unwrap_err();
        assert!(panic_message(&*p).contains("not a string"));
    }
}
