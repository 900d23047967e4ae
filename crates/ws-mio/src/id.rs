//! Connection identifiers and their mapping to `mio` tokens.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use mio::Token;

/// The serial of a connection: drawn from one process-wide counter when a
/// loop takes the connection in (accepted or connected).
pub(crate) type Gen = u64;

/// The next connection serial. One counter for the whole process (every loop
/// of every group): at a million connections a second it would take more
/// than half a million years to wrap.
pub(crate) fn next_serial() -> Gen {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Identifies one connection of one event loop.
///
/// An id is never reused for a different connection while the process runs:
/// besides the loop's index and a slot number, it carries the connection's
/// serial, a number drawn from one process-wide 64-bit counter when the loop
/// took the connection in, so a command sent to a connection that has since
/// closed (and whose slot was reused) is refused instead of reaching the
/// newcomer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    loop_index: u16,
    gen: Gen,
    slot: u32,
}

impl ConnId {
    pub(crate) fn new(loop_index: u16, slot: u32, gen: Gen) -> ConnId {
        ConnId {
            loop_index,
            gen,
            slot,
        }
    }

    /// The index of the event loop that owns the connection (0 for a
    /// stand-alone [`EventLoop`](crate::EventLoop)).
    pub fn loop_index(self) -> usize {
        usize::from(self.loop_index)
    }

    pub(crate) fn slot(self) -> u32 {
        self.slot
    }

    pub(crate) fn gen(self) -> Gen {
        self.gen
    }

    /// The connection's serial: unique among all connections of the process
    /// (every loop of every group), for as long as it runs, and increasing in
    /// the order the loops took their connections in. Suits logs and maps
    /// keyed by integers; two different connections never share a number.
    ///
    /// (It is not the whole id: the loop index and slot are not in it, so an
    /// id cannot be rebuilt from it.)
    pub fn as_u64(self) -> u64 {
        self.gen
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId({}/{}.{})", self.loop_index, self.slot, self.gen)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}.{}", self.loop_index, self.slot, self.gen)
    }
}

/// Slots at or above this value are reserved for the waker and listeners.
pub(crate) const FIRST_RESERVED_SLOT: u32 = u32::MAX - 4096;
/// The token of the loop's `mio::Waker`.
pub(crate) const WAKER_TOKEN: Token = Token(u32::MAX as usize);

/// The token of listener number `index`.
pub(crate) fn listener_token(index: usize) -> Token {
    Token(FIRST_RESERVED_SLOT as usize + index)
}

/// The listener index behind a token, if it is a listener's.
pub(crate) fn listener_index(token: Token) -> Option<usize> {
    let t = token.0 as u64;
    (t >= u64::from(FIRST_RESERVED_SLOT) && t < u64::from(u32::MAX))
        .then(|| (t - u64::from(FIRST_RESERVED_SLOT)) as usize)
}

/// The token of a connection: slot in the low 32 bits and, where `usize`
/// is wide enough, the generation above it, so that readiness reported for a
/// closed connection cannot be taken for its slot's next occupant.
pub(crate) fn conn_token(id: ConnId) -> Token {
    // The low 32 bits of the serial: enough to tell a slot's occupants apart.
    let wide = ((id.gen & 0xffff_ffff) << 32) | u64::from(id.slot);
    Token(usize::try_from(wide).unwrap_or(id.slot as usize))
}

/// Splits a connection token into slot and the low 32 bits of the serial
/// (`None` when the
/// platform's `usize` cannot carry them).
pub(crate) fn split_token(token: Token) -> (u32, Option<u32>) {
    let t = token.0 as u64;
    let gen = if usize::BITS >= 64 {
        Some((t >> 32) as u32)
    } else {
        None
    };
    (t as u32, gen)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// One slot reused for far more than 65,536 connections (the old
    /// `as_u64` kept 16 bits of the slot's generation, so the 65,537th
    /// occupant of a slot got the first one's number): every occupant gets
    /// its own integer, and so does a connection of another loop or slot.
    #[test]
    fn as_u64_is_unique_across_slot_reuse_and_loops() {
        let mut seen = HashSet::new();
        let mut previous = None;
        for _ in 0..200_000 {
            let id = ConnId::new(0, 7, next_serial());
            assert!(seen.insert(id.as_u64()), "{id} collides");
            assert!(previous.is_none_or(|p| id.as_u64() > p), "not increasing");
            previous = Some(id.as_u64());
            // The token of the slot changes with every occupant too.
            assert_eq!(split_token(conn_token(id)).0, 7);
        }
        for (loop_index, slot) in [(1u16, 7u32), (2, 0), (u16::MAX, FIRST_RESERVED_SLOT - 1)] {
            let id = ConnId::new(loop_index, slot, next_serial());
            assert!(seen.insert(id.as_u64()), "{id} collides");
        }
        assert_eq!(seen.len(), 200_003);
    }

    /// The token keeps the slot whole and the serial's low bits, so stale
    /// readiness for an earlier occupant is told apart.
    #[test]
    fn tokens_tell_occupants_of_a_slot_apart() {
        let (a, b) = (next_serial(), next_serial());
        let (a, b) = (ConnId::new(0, 3, a), ConnId::new(0, 3, b));
        assert_ne!(conn_token(a), conn_token(b));
        let (slot, low) = split_token(conn_token(b));
        assert_eq!(slot, 3);
        if usize::BITS >= 64 {
            assert_eq!(low, Some(b.gen() as u32));
        }
        assert_eq!(listener_index(conn_token(b)), None);
    }
}
