//! Rate-limited logging: at most one line per interval for a repeated event,
//! with the count of the lines it held back.

use std::time::{Duration, Instant};

/// Lets one log line through per `interval` and counts the ones it holds back,
/// so a repeated failure shows up once with "(N more)" instead of flooding.
///
/// Time is an input (`now`), like in the core, so it is testable without
/// waiting.
///
/// ```
/// use std::time::{Duration, Instant};
/// use ws_net::LogLimiter;
///
/// let mut lim = LogLimiter::new(Duration::from_secs(5));
/// let t0 = Instant::now();
/// assert_eq!(lim.check(t0), Some(0)); // first one: log it
/// assert_eq!(lim.check(t0), None); // held back
/// assert_eq!(lim.check(t0 + Duration::from_secs(5)), Some(1)); // log, "1 more since"
/// ```
#[derive(Debug, Clone)]
pub struct LogLimiter {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// A limiter letting one line through per `interval`.
    pub fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// Call when the event happens. `Some(n)`: log it now, mentioning the `n`
    /// occurrences held back since the last logged one; `None`: stay quiet
    /// (counted).
    pub fn check(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.interval => {
                self.suppressed = self.suppressed.saturating_add(1);
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Occurrences held back since the last line that went through.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

/// Logs `$($arg)+` at `$lvl` through the [`LogLimiter`] `$lim`, appending
/// "(N similar messages suppressed)" when some were held back.
#[macro_export]
macro_rules! log_limited {
    ($lim:expr, $now:expr, $lvl:expr, $($arg:tt)+) => {
        if let Some(n) = $lim.check($now) {
            if n == 0 {
                ::log::log!($lvl, $($arg)+);
            } else {
                ::log::log!($lvl, "{} ({} similar messages suppressed)", format_args!($($arg)+), n);
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let mut lim = LogLimiter::new(Duration::from_millis(100));
        let t0 = Instant::now();
        assert_eq!(lim.check(t0), Some(0));
        for i in 1..=10u64 {
            assert_eq!(lim.check(t0 + Duration::from_millis(i * 5)), None);
        }
        assert_eq!(lim.suppressed(), 10);
        assert_eq!(lim.check(t0 + Duration::from_millis(100)), Some(10));
        assert_eq!(lim.suppressed(), 0);
        assert_eq!(lim.check(t0 + Duration::from_millis(150)), None);
        assert_eq!(lim.check(t0 + Duration::from_millis(300)), Some(1));
    }

    #[test]
    fn time_going_backwards_does_not_panic_or_unblock() {
        let mut lim = LogLimiter::new(Duration::from_secs(1));
        let t1 = Instant::now() + Duration::from_secs(10);
        assert_eq!(lim.check(t1), Some(0));
        assert_eq!(lim.check(t1 - Duration::from_secs(5)), None);
    }
}
