//! The deadline heap: each session's next deadline (its TCP connect's, or
//! the core's `poll_timeout`), earliest first. A session keeps the deadline
//! it has in the heap; an entry that no longer matches it is stale and
//! skipped, so moving a deadline never searches the heap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::id::{ConnId, Gen};
use crate::sessions::{Session, Sessions};

/// The deadlines of one loop's sessions.
pub(crate) struct Timers {
    /// The loop's index, to name sessions by id.
    index: u16,
    heap: BinaryHeap<Reverse<(Instant, u32, Gen)>>,
}

impl Timers {
    pub(crate) fn new(index: u16) -> Timers {
        Timers {
            index,
            heap: BinaryHeap::new(),
        }
    }

    /// The earliest deadline in the heap (possibly stale: waking early is
    /// harmless).
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Puts the session's next deadline in the heap, unless an entry at or
    /// before it is already there.
    pub(crate) fn schedule(&mut self, id: ConnId, sess: &mut Session) {
        let want = if sess.f.connecting {
            sess.connect_deadline
        } else {
            sess.conn.poll_timeout()
        };
        if let Some(w) = want {
            if sess.timer.is_none_or(|t| w < t) {
                sess.timer = Some(w);
                self.heap.push(Reverse((w, id.slot(), id.gen())));
            }
        }
    }

    /// Pops the next entry due at `now`: `Some(Some(id))` for a session whose
    /// deadline it is, `Some(None)` for a stale entry.
    pub(crate) fn pop_due(
        &mut self,
        now: Instant,
        sessions: &mut Sessions,
    ) -> Option<Option<ConnId>> {
        let &Reverse((t, slot, gen)) = self.heap.peek()?;
        if t > now {
            return None;
        }
        self.heap.pop();
        let id = ConnId::new(self.index, slot, gen);
        let Some((sess, _)) = sessions.get_mut(id) else {
            return Some(None);
        };
        if sess.timer != Some(t) {
            return Some(None);
        }
        sess.timer = None;
        Some(Some(id))
    }
}

/// A session's deadline passed: give up a TCP connect that is due, or let
/// the core handle its timers.
pub(crate) fn expire(sess: &mut Session, now: Instant) {
    if sess.f.connecting {
        if sess.connect_deadline.is_some_and(|d| now >= d) {
            sess.f.connecting = false;
            sess.f.eof = true;
            sess.connect_deadline = None;
            sess.conn.handle_transport_error(now, "connect timed out");
        }
        return;
    }
    sess.conn.handle_timeout(now);
}
