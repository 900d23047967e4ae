//! The per-connection logging context: every log line of a connection starts
//! with its id, e.g. `[ws#17]`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A process-wide unique connection id, shown as `[ws#N]` on every log line
/// about that connection (log target `ws_std`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    /// The next id.
    pub(crate) fn next() -> ConnId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[ws#{}]", self.0)
    }
}

/// `wslog!(Level, id, "format", args...)`: a log line prefixed with the
/// connection id.
macro_rules! wslog {
    ($lvl:ident, $id:expr, $($arg:tt)+) => {
        ::log::log!(target: "ws_std", ::log::Level::$lvl, "{} {}", $id, format_args!($($arg)+))
    };
}
pub(crate) use wslog;
