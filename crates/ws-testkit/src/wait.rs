//! Bounded waits for a condition that no event announces (a counter
//! reaching a value, a thread's state): the condition is checked every
//! 5 ms, and the wait ends at its limit.

use std::time::{Duration, Instant};

/// Waits (at most `limit`) until `cond` holds; whether it did.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}
