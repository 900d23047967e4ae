//! The session table: a slot per connection, each stamped with the serial of
//! its occupant, and the work lists that name sessions by slot.
//!
//! [`Sessions::get_mut`] is the one lookup by id (loop, slot and serial are
//! checked in one place, [`Sessions::position`]); it hands out the session
//! beside the work lists, two disjoint borrows, so a caller holding a
//! session can still queue it. Work lists and poll tokens name a slot only;
//! [`Sessions::id_at`] turns a slot into the id of its current occupant.

use std::time::Instant;

use mio::Interest;
use ws_buf::BufferSegment;
use ws_proto::{Bytes, Connection};

use crate::error::Error;
use crate::id::{next_serial, ConnId, Gen, FIRST_RESERVED_SLOT};
use crate::transport::Transport;

/// A session's `timer` when it has no deadline in the heap.
pub(crate) const NO_TIMER: u64 = u64::MAX;

/// Per-connection state of the driver (besides the protocol core's
/// [`Connection`]): no read or write buffer unless a write is pending.
pub(crate) struct Session {
    pub(crate) conn: Connection,
    pub(crate) transport: Transport,
    /// The unwritten remainder of the last write, and how much of it went
    /// out since.
    pub(crate) pending: Option<(BufferSegment, usize)>,
    /// After `pending`: the unwritten rest of a payload the core handed out
    /// whole (a vectored write); empty when there is none.
    pub(crate) pending_payload: Bytes,
    /// The deadline this session has in the heap, as its heap key
    /// ([`NO_TIMER`] when none; possibly earlier
    /// than the core's current one: firing early is harmless).
    pub(crate) timer: u64,
    /// What is registered with the poll.
    pub(crate) interest: Option<Interest>,
    pub(crate) f: Flags,
}

/// A client connection's redirect state (held beside the sessions, in
/// `LoopState::follows`, until it opens or ends): its attempts and the
/// options each new attempt is made with.
pub(crate) struct Follow {
    pub(crate) attempts: ws_net::Attempts,
    pub(crate) opts: crate::options::ConnectOptions,
}

/// The proxy handshake of a client connection (held beside the sessions, in
/// `LoopState::proxies`, while `Flags::proxying` is set; a session stays
/// `connecting` meanwhile): the ws-net state machine, the bytes of it not
/// yet written, and whether the TCP connect to the proxy has completed.
pub(crate) struct ProxyPhase {
    pub(crate) proxy: ws_net::proxy::ProxyUrl,
    pub(crate) hs: ws_net::proxy::ProxyHandshake,
    pub(crate) out: Vec<u8>,
    pub(crate) tcp_done: bool,
}

/// Session flags.
#[derive(Default)]
pub(crate) struct Flags {
    /// The socket's receive low-water mark (plain TCP: raised while the
    /// rest of a large frame is awaited).
    pub(crate) low_water: ws_net::low_water::LowWater,
    /// Waiting to be driven (cleared by every drive).
    pub(crate) dirty: bool,
    /// Listed in `WorkLists::dirty` (cleared when taken from it), so a
    /// session marked again after a drive is not listed twice.
    queued: bool,
    /// In `WorkLists::carry`, with read and/or write work left by a budget.
    in_carry: bool,
    carry_read: bool,
    carry_write: bool,
    /// Reading paused: the pool refused a read buffer.
    pub(crate) read_paused: bool,
    /// In its proxy handshake (see [`ProxyPhase`]).
    pub(crate) proxying: bool,
    /// The read side is finished (end of stream or transport error).
    pub(crate) eof: bool,
    /// The last write would block: wait for writable readiness.
    pub(crate) write_blocked: bool,
    /// A send was refused; `on_drain` is due when the queue empties.
    pub(crate) backpressured: bool,
    /// The TCP connect is in flight.
    pub(crate) connecting: bool,
    /// A handler callback for this connection panicked: it is being closed
    /// and gets no callback but `on_close`.
    pub(crate) panicked: bool,
    /// Accepted over `max_connections`: the loop answers its upgrade request
    /// with 503 by itself; the handler never hears of it.
    pub(crate) refusing: bool,
}

impl Session {
    /// A new session; `connecting` for an outgoing connection whose TCP
    /// connect is in flight (it must complete by the core's handshake
    /// deadline).
    pub(crate) fn new(conn: Connection, transport: Transport, connecting: bool) -> Session {
        let f = Flags {
            connecting,
            ..Flags::default()
        };
        Session {
            conn,
            transport,
            pending: None,
            pending_payload: Bytes::new(),
            timer: NO_TIMER,
            interest: None,
            f,
        }
    }

    /// Ends the session's transport: nothing more is read or written, and
    /// the core hears why (its `Closed` follows).
    pub(crate) fn fail(&mut self, now: Instant, why: &str) {
        self.f.connecting = false;
        self.f.proxying = false;
        self.f.eof = true;
        self.pending = None;
        self.pending_payload = Bytes::new();
        self.conn.handle_transport_error(now, why);
    }

    /// Whether an unwritten remainder waits.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.is_some() || !self.pending_payload.is_empty()
    }

    /// `n` bytes of the remainder were written: the segment's first, then
    /// the payload's.
    pub(crate) fn consume_pending(&mut self, mut n: usize) {
        if let Some((seg, pos)) = self.pending.as_mut() {
            let k = n.min(seg.len() - *pos);
            *pos += k;
            n -= k;
            if *pos == seg.len() {
                self.pending = None;
            }
        }
        if n > 0 {
            // Moves the start: no allocation, unlike `slice`.
            let n = n.min(self.pending_payload.len());
            bytes::Buf::advance(&mut self.pending_payload, n);
        }
    }

    /// Bytes held for the connection's data: the core's buffers plus an
    /// unwritten remainder.
    pub(crate) fn retained_bytes(&self) -> usize {
        self.conn.retained_bytes()
            + self.pending.as_ref().map_or(0, |(seg, _)| seg.capacity())
            + self.pending_payload.len()
    }
}

/// Sessions with work waiting, by slot. Each list holds a slot at most once
/// (a flag of the session says whether it is listed).
#[derive(Default)]
pub(crate) struct WorkLists {
    /// To be driven once the current callback is done.
    dirty: Vec<u32>,
    /// Read or write work a budget left for the next iteration.
    carry: Vec<u32>,
    /// The carry list being processed, swapped with `carry` each turn so
    /// neither list loses its capacity.
    carry_work: Vec<u32>,
    /// Reading paused until the pool has room again.
    paused: Vec<u32>,
}

impl WorkLists {
    /// Queues the session to be driven once the current callback is done.
    pub(crate) fn mark_dirty(&mut self, id: ConnId, sess: &mut Session) {
        sess.f.dirty = true;
        if !sess.f.queued {
            sess.f.queued = true;
            self.dirty.push(id.slot());
        }
    }

    /// Budgeted work left over: read and/or write again next iteration.
    pub(crate) fn carry(&mut self, id: ConnId, sess: &mut Session, read: bool, write: bool) {
        sess.f.carry_read |= read;
        sess.f.carry_write |= write;
        if !sess.f.in_carry {
            sess.f.in_carry = true;
            self.carry.push(id.slot());
        }
    }

    /// Lists a session whose reading was just paused.
    pub(crate) fn pause(&mut self, id: ConnId) {
        self.paused.push(id.slot());
    }

    /// Whether a session waits for a drive or for carried work.
    pub(crate) fn busy(&self) -> bool {
        !self.carry.is_empty() || !self.dirty.is_empty()
    }

    /// Whether reading is paused anywhere.
    pub(crate) fn any_paused(&self) -> bool {
        !self.paused.is_empty()
    }

    /// Room for `live` entries in every list (see [`Sessions::insert`]).
    fn reserve(&mut self, live: usize) {
        for list in [
            &mut self.dirty,
            &mut self.carry,
            &mut self.carry_work,
            &mut self.paused,
        ] {
            list.reserve(live.saturating_sub(list.len()));
        }
    }
}

/// One slot of the table.
struct Slot {
    /// The serial of the connection in the slot (see [`next_serial`]): a new
    /// one for every occupant, so an old id never matches a newcomer.
    gen: Gen,
    sess: Option<Box<Session>>,
}

/// The sessions of one loop.
pub(crate) struct Sessions {
    /// The loop's index, part of every id it hands out.
    index: u16,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Sessions held, refusals included.
    live: usize,
    /// Sessions held only to answer 503 (see `Flags::refusing`).
    refusing: usize,
    lists: WorkLists,
}

impl Sessions {
    pub(crate) fn new(index: u16) -> Sessions {
        Sessions {
            index,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            refusing: 0,
            lists: WorkLists::default(),
        }
    }

    /// Sessions held (refusals included).
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Connections held for the application (refusals not included).
    pub(crate) fn held(&self) -> usize {
        self.live - self.refusing
    }

    /// Sessions held only to answer 503.
    pub(crate) fn refusing(&self) -> usize {
        self.refusing
    }

    /// How many slots the table has (occupied or free).
    pub(crate) fn slots(&self) -> u32 {
        self.slots.len() as u32
    }

    /// The work lists, for the checks that need no session.
    pub(crate) fn lists(&self) -> &WorkLists {
        &self.lists
    }

    /// Where the session behind `id` is, if it is still there: the one place
    /// an id is checked (its loop, its slot, its serial).
    fn position(&self, id: ConnId) -> Option<usize> {
        let at = id.slot() as usize;
        let slot = self.slots.get(at)?;
        (id.loop_index() == usize::from(self.index) && slot.gen == id.gen() && slot.sess.is_some())
            .then_some(at)
    }

    /// The session behind `id`.
    pub(crate) fn get(&self, id: ConnId) -> Option<&Session> {
        let at = self.position(id)?;
        self.slots.get(at)?.sess.as_deref()
    }

    /// The session behind `id`, beside the work lists.
    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<(&mut Session, &mut WorkLists)> {
        let at = self.position(id)?;
        let sess = self.slots.get_mut(at)?.sess.as_deref_mut()?;
        Some((sess, &mut self.lists))
    }

    /// The id of the current occupant of `slot`.
    pub(crate) fn id_at(&self, slot: u32) -> Option<ConnId> {
        let s = self.slots.get(slot as usize)?;
        s.sess.as_ref()?;
        Some(ConnId::new(self.index, slot, s.gen))
    }

    /// Ids of every session held, refusals included (`all`) or not.
    pub(crate) fn ids(&self, all: bool) -> Vec<ConnId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sess.as_ref().is_some_and(|x| all || !x.f.refusing))
            .map(|(i, s)| ConnId::new(self.index, i as u32, s.gen))
            .collect()
    }

    /// Takes a session in; its id is new to the process.
    pub(crate) fn insert(&mut self, sess: Session) -> Result<ConnId, Error> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                let s = u32::try_from(self.slots.len()).map_err(|_| Error::TooManyConnections)?;
                if s >= FIRST_RESERVED_SLOT {
                    return Err(Error::TooManyConnections);
                }
                self.slots.push(Slot { gen: 0, sess: None });
                s
            }
        };
        let Some(entry) = self.slots.get_mut(slot as usize) else {
            return Err(Error::TooManyConnections);
        };
        let refusing = sess.f.refusing;
        entry.sess = Some(Box::new(sess));
        entry.gen = next_serial();
        let id = ConnId::new(self.index, slot, entry.gen);
        self.live += 1;
        self.refusing += usize::from(refusing);
        // Every work list gets room for each session held, here where taking
        // a connection in allocates anyway: a list that first fills up in
        // the middle of traffic (the carry lists the first time a read
        // budget runs out, say) must not allocate there. Each list holds a
        // slot at most once, so `live` entries always suffice.
        self.lists.reserve(self.live);
        Ok(id)
    }

    /// Takes the session behind `id` out of the table.
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<Box<Session>> {
        let at = self.position(id)?;
        let sess = self.slots.get_mut(at)?.sess.take()?;
        self.free.push(id.slot());
        self.live -= 1;
        self.refusing -= usize::from(sess.f.refusing);
        Some(sess)
    }

    /// Takes the next session from the dirty list: `Some(Some(id))` when it
    /// still needs a drive, `Some(None)` when it was driven since.
    pub(crate) fn pop_dirty(&mut self) -> Option<Option<ConnId>> {
        let slot = self.lists.dirty.pop()?;
        let Some(id) = self.id_at(slot) else {
            return Some(None);
        };
        let (sess, _) = self.get_mut(id)?;
        sess.f.queued = false;
        Some(sess.f.dirty.then_some(id))
    }

    /// The carry list to work through this turn (give it back with
    /// [`Sessions::carried_done`]).
    pub(crate) fn take_carried(&mut self) -> Vec<u32> {
        let mut work = std::mem::take(&mut self.lists.carry_work);
        std::mem::swap(&mut work, &mut self.lists.carry);
        work
    }

    /// Gives back the (emptied) list from [`Sessions::take_carried`].
    pub(crate) fn carried_done(&mut self, work: Vec<u32>) {
        self.lists.carry_work = work;
    }

    /// Takes a carried session's leftover work: `(id, read, write)`.
    pub(crate) fn take_carry(&mut self, slot: u32) -> Option<(ConnId, bool, bool)> {
        let id = self.id_at(slot)?;
        let (sess, _) = self.get_mut(id)?;
        if !sess.f.in_carry {
            return None;
        }
        sess.f.in_carry = false;
        let r = std::mem::take(&mut sess.f.carry_read);
        let w = std::mem::take(&mut sess.f.carry_write);
        Some((id, r, w))
    }

    /// The slots whose reading is paused, emptying the list.
    pub(crate) fn take_paused(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.lists.paused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection is a boxed session: its size is most of what an
    /// idle connection costs. Measured at 816 bytes (an 832-byte malloc
    /// chunk: glibc adds 8 and rounds up to 16); the core is 696 of it (see
    /// ws-proto's tests/size.rs).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_session_is_small() {
        let size = std::mem::size_of::<Session>();
        assert!(size <= 816, "size_of::<Session>() is {size} bytes");
    }
}
