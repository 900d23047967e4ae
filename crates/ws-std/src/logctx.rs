//! The per-connection logging context: every log line of a connection starts
//! with its id, e.g. `[ws#17]`, and its name when the application gave one,
//! e.g. `[ws#17 lobby]`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// Longest name shown, in characters.
const MAX_NAME_CHARS: usize = 64;

/// Names given to connections, by id; `NAMED` counts them so that lines of
/// unnamed connections never take the lock while nothing is named.
static NAMES: RwLock<Option<HashMap<u64, Arc<str>>>> = RwLock::new(None);
static NAMED: AtomicUsize = AtomicUsize::new(0);

/// A process-wide unique connection id, shown as `[ws#N]` (or
/// `[ws#N name]`) on every log line about that connection (log target
/// `ws_std`).
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

    /// The name shown on this connection's log lines, if it has one.
    pub fn name(self) -> Option<Arc<str>> {
        if NAMED.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let names = NAMES.read().unwrap_or_else(PoisonError::into_inner);
        names.as_ref()?.get(&self.0).cloned()
    }
}

/// Names the connection `id` on its log lines, or removes its name. The
/// name is made safe for one log line: control characters (line breaks
/// included) become `?`, and it is cut at 64 characters.
pub(crate) fn set_name(id: ConnId, name: Option<&str>) {
    if name.is_none() && NAMED.load(Ordering::Relaxed) == 0 {
        return;
    }
    let clean: Option<Arc<str>> = name.map(|n| {
        n.chars()
            .take(MAX_NAME_CHARS)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect::<String>()
            .into()
    });
    let mut names = NAMES.write().unwrap_or_else(PoisonError::into_inner);
    let map = names.get_or_insert_with(HashMap::new);
    match clean {
        Some(n) => {
            map.insert(id.0, n);
        }
        None => {
            map.remove(&id.0);
        }
    }
    NAMED.store(map.len(), Ordering::Relaxed);
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "[ws#{} {}]", self.0, name),
            None => write!(f, "[ws#{}]", self.0),
        }
    }
}

/// `wslog!(Level, id, "format", args...)`: a log line prefixed with the
/// connection id (and name).
macro_rules! wslog {
    ($lvl:ident, $id:expr, $($arg:tt)+) => {
        ::log::log!(target: "ws_std", ::log::Level::$lvl, "{} {}", $id, format_args!($($arg)+))
    };
}
pub(crate) use wslog;
