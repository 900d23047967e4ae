//! Connection identifiers and their mapping to `mio` tokens.

use std::fmt;

use mio::Token;

/// Identifies one connection of one event loop.
///
/// An id is never reused for a different connection while the loop runs:
/// it carries the loop's index, a slot number and the slot's generation, so
/// a command sent to a connection that has since closed (and whose slot was
/// reused) is refused instead of reaching the newcomer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    loop_index: u16,
    gen: u32,
    slot: u32,
}

impl ConnId {
    pub(crate) fn new(loop_index: u16, slot: u32, gen: u32) -> ConnId {
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

    pub(crate) fn gen(self) -> u32 {
        self.gen
    }

    /// A compact numeric form (loop index, generation and slot packed into
    /// 64 bits), e.g. for logs or maps keyed by integers.
    pub fn as_u64(self) -> u64 {
        (u64::from(self.loop_index) << 48)
            | (u64::from(self.gen & 0xffff) << 32)
            | u64::from(self.slot)
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
pub(crate) fn conn_token(slot: u32, gen: u32) -> Token {
    let wide = (u64::from(gen) << 32) | u64::from(slot);
    Token(usize::try_from(wide).unwrap_or(slot as usize))
}

/// Splits a connection token into slot and generation (`None` when the
/// platform's `usize` cannot carry the generation).
pub(crate) fn split_token(token: Token) -> (u32, Option<u32>) {
    let t = token.0 as u64;
    let gen = if usize::BITS >= 64 {
        Some((t >> 32) as u32)
    } else {
        None
    };
    (t as u32, gen)
}
