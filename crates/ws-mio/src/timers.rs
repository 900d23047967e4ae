//! The deadline heap: each session's next deadline (the core's
//! `poll_timeout`; while the TCP connect is in flight that is the handshake
//! deadline, which the connect must meet too), earliest first. A session keeps the deadline
//! it has in the heap; an entry that no longer matches it is stale and
//! skipped, so moving a deadline never searches the heap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::id::ConnId;
use crate::sessions::{Session, Sessions};

/// One heap entry, 16 bytes: the deadline in nanoseconds since the heap's
/// base, the session's slot and the low 32 bits of its serial (the slot's
/// occupant is checked against them, and its deadline against the entry's,
/// so a stale entry is skipped).
type Entry = (u64, u32, u32);

// A session's `timer` when it has no entry in the heap (never a key: keys
// stop one short of it); defined with the session.
use crate::sessions::NO_TIMER;

/// The deadlines of one loop's sessions.
pub(crate) struct Timers {
    /// The time deadlines are counted from.
    base: Instant,
    heap: BinaryHeap<Reverse<Entry>>,
}

impl Timers {
    pub(crate) fn new(base: Instant) -> Timers {
        Timers {
            base,
            heap: BinaryHeap::new(),
        }
    }

    /// A deadline as a heap key: nanoseconds since the base (saturating at
    /// both ends; the core's "never" is a century ahead, well within).
    fn key(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX)
            .min(NO_TIMER - 1)
    }

    /// The instant of a heap key (at or before the deadline it came from).
    fn instant(&self, key: u64) -> Instant {
        let d = Duration::from_nanos(key);
        self.base.checked_add(d).unwrap_or(self.base)
    }

    /// The earliest deadline in the heap (possibly stale: waking early is
    /// harmless).
    pub(crate) fn earliest(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((k, _, _))| self.instant(*k))
    }

    /// Puts the session's next deadline in the heap, unless an entry at or
    /// before it is already there.
    pub(crate) fn schedule(&mut self, id: ConnId, sess: &mut Session) {
        if let Some(w) = sess.conn.poll_timeout() {
            let k = self.key(w);
            if k < sess.timer {
                sess.timer = k;
                self.heap.push(Reverse((k, id.slot(), id.gen() as u32)));
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
        let &Reverse((k, slot, gen)) = self.heap.peek()?;
        if self.instant(k) > now {
            return None;
        }
        self.heap.pop();
        let Some(id) = sessions.id_at(slot).filter(|id| id.gen() as u32 == gen) else {
            return Some(None);
        };
        let Some((sess, _)) = sessions.get_mut(id) else {
            return Some(None);
        };
        if sess.timer != k {
            return Some(None);
        }
        sess.timer = NO_TIMER;
        Some(Some(id))
    }
}

/// A session's deadline passed: give up a TCP connect that is due, or let
/// the core handle its timers.
pub(crate) fn expire(sess: &mut Session, now: Instant) {
    if sess.f.connecting {
        if sess.conn.poll_timeout().is_some_and(|d| now >= d) {
            sess.f.connecting = false;
            sess.f.eof = true;
            let why = if std::mem::take(&mut sess.f.proxying) {
                "proxy handshake timed out"
            } else {
                "connect timed out"
            };
            sess.conn.handle_transport_error(now, why);
        }
        return;
    }
    sess.conn.handle_timeout(now);
}
