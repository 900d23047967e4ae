//! Reuse and release of the receive, reassembly/inflate and compression buffers.

use super::*;

impl Connection {
    /// Bytes of memory the connection currently holds in its buffers: the
    /// receive buffer, the reassembly/inflate buffer and the compression
    /// output buffer (each counted at the largest size it reached since it
    /// was last freed). Queued outgoing messages are counted by
    /// [`buffered_amount`](Self::buffered_amount) instead.
    ///
    /// While busy, the buffers are kept for reuse; they are freed
    /// [`Config::release_buffers_after`] after the last activity, or by
    /// [`release_buffers`](Self::release_buffers).
    pub fn retained_bytes(&self) -> usize {
        let building = self.msg.as_ref().map_or(0, |m| m.buf.capacity());
        let alt = self.rbuf_alt.as_ref().map_or(0, |a| a.capacity());
        let [r, a, z] = self.buf_sizes;
        r.saturating_add(alt)
            .saturating_add(a.max(building))
            .saturating_add(z)
            .saturating_add(self.ext.retained_bytes())
    }

    /// Frees the receive, reassembly and compression buffers now, where they
    /// hold no data (a partly received frame or message keeps its buffer).
    /// Drivers call this under memory pressure; otherwise the connection does
    /// it by itself after [`Config::release_buffers_after`] of quiet.
    pub fn release_buffers(&mut self) {
        self.free_receive_buffer();
        self.asm = BytesMut::new();
        self.buf_sizes[1] = 0;
        self.zbuf = BytesMut::new();
        self.buf_sizes[2] = 0;
        if self.msg.is_none() {
            self.ext.release_buffers();
        }
        // The outgoing frame queue's room, once everything in it is sent: an idle
        // connection holds no spare capacity (it grows again with the next message).
        if self.data_q.is_empty() {
            self.data_q = VecDeque::new();
        }
    }

    /// When the buffers are due to be freed, if there is anything to free.
    pub(super) fn buffer_release_at(&self) -> Option<Instant> {
        let [r, a, z] = self.buf_sizes;
        let releasable = (r > 0 && self.rbuf.is_empty())
            || self.rbuf_alt.is_some()
            || a > 0
            || z > 0
            // The extensions' buffers are kept while a message is in
            // progress (`release_buffers`): not due then, or the deadline
            // would stay in the past and a driver's timer would spin.
            || (self.ext.retained_bytes() > 0 && self.msg.is_none());
        (releasable && !self.cfg.release_buffers_after.is_zero())
            .then(|| after(self.last_activity, self.cfg.release_buffers_after))
    }

    /// Makes room in the receive buffer for `n` more bytes (see [`reserve_reused`]).
    ///
    /// Once open, the receive buffer rotates among a few allocations: when
    /// the current one is still held by delivered messages (large messages
    /// the application keeps, or echoes not yet written), an earlier one is
    /// taken up again as soon as its messages are gone, instead of a new
    /// allocation (which would also have to be initialised before a read).
    pub(super) fn make_room(&mut self, n: usize) {
        let open = matches!(self.hs, Handshake::Done);
        let ceiling = if open {
            self.cfg
                .limits
                .frame_payload_limit()
                .saturating_add(FrameHeader::MAX_LEN)
        } else {
            self.cfg.limits.max_handshake_bytes
        };
        let len = self.rbuf.len();
        let fits = self.rbuf.capacity().saturating_sub(len) >= n;
        if open && !fits && !self.rbuf.try_reclaim(n) {
            let alts = self.rbuf_alt.get_or_insert_with(Box::default);
            let want = len.saturating_add(n);
            // The most recently kept first: its memory is the likeliest to
            // be in the cache still.
            let k = alts.bufs.len();
            let recent_first = (1..=k).map(|back| {
                alts.next
                    .wrapping_add(k)
                    .wrapping_sub(back)
                    .checked_rem(k)
                    .unwrap_or(0)
            });
            let free = recent_first.into_iter().find(|&i| {
                alts.bufs
                    .get_mut(i)
                    .is_some_and(|a| a.buf.try_reclaim(want))
            });
            if let Some(alt) = free.and_then(|i| alts.bufs.get_mut(i)) {
                // An earlier allocation is free again: the bytes of the
                // frame in progress move over.
                alt.buf.extend_from_slice(&self.rbuf);
                std::mem::swap(&mut alt.buf, &mut self.rbuf);
                self.room.swap_buffer_state(&mut alt.room);
                alt.buf.clear();
                self.buf_sizes[0] = self.buf_sizes[0].max(self.rbuf.capacity());
                return;
            }
            // A new allocation; the held one takes the place of the oldest
            // kept (which is freed once its messages are).
            let held = std::mem::take(&mut self.rbuf);
            let (peak, epoch) = (&mut self.buf_sizes[0], &mut self.epochs[0]);
            // For a large frame, an allocation about its size (one message
            // and the start of the next), not twice the burst: the few kept
            // allocations then cover a window of held messages with little
            // memory, and stay warm in the cache.
            let ceiling = if want >= LARGE_ROOM {
                ceiling.min(want.saturating_add(LARGE_SLACK))
            } else {
                ceiling
            };
            reserve_reused(&mut self.rbuf, want, peak, epoch, ceiling);
            self.rbuf.extend_from_slice(&held);
            // The new allocation starts with nothing known of its room.
            let mut held_room = Room::default();
            self.room.swap_buffer_state(&mut held_room);
            if held.capacity() > MAX_KEPT {
                // Too large to keep for reuse: freed once its messages are.
                return;
            }
            let slot = alts.next.checked_rem(alts.bufs.len()).unwrap_or(0);
            alts.next = slot.wrapping_add(1);
            if let Some(alt) = alts.bufs.get_mut(slot) {
                alt.buf = held;
                alt.buf.clear();
                alt.room = held_room;
            }
            return;
        }
        let (peak, epoch) = (&mut self.buf_sizes[0], &mut self.epochs[0]);
        if reserve_reused(&mut self.rbuf, n, peak, epoch, ceiling) {
            self.room.forget();
        }
    }

    /// Frees the receive buffer (when it holds no data) and its alternative.
    pub(super) fn free_receive_buffer(&mut self) {
        if self.rbuf.is_empty() {
            self.rbuf = BytesMut::new();
            self.buf_sizes[0] = 0;
        }
        self.rbuf_alt = None;
    }
}

/// Room asked for from which a new receive allocation is sized to it (plus
/// [`LARGE_SLACK`]) rather than doubled.
const LARGE_ROOM: usize = 256 << 10;
/// What a large-frame allocation holds beyond the room asked for.
const LARGE_SLACK: usize = 64 << 10;
/// Larger receive allocations are not kept for reuse once their messages
/// are dropped: at most the kept ones (five of at most this size) outlive
/// the messages, until the buffers are released.
const MAX_KEPT: usize = 8 << 20;

/// Earlier allocations of the receive buffer, still held by delivered
/// messages, taken up again once free (see [`Connection::make_room`]): with
/// the current one, enough for a window of large messages the application
/// holds (an allocation for large frames holds about one message).
#[derive(Default)]
pub(super) struct AltBuffers {
    bufs: [AltBuffer; 5],
    /// The slot the next held allocation goes to.
    next: usize,
}

#[derive(Default)]
struct AltBuffer {
    buf: BytesMut,
    room: Room,
}

impl AltBuffers {
    /// Capacity they hold.
    fn capacity(&self) -> usize {
        self.bufs.iter().map(|a| a.buf.capacity()).sum()
    }
}

/// Makes room for `n` more bytes in a buffer that is reused from message to
/// message, and records in `peak` the largest capacity it had.
///
/// Its allocation is reclaimed without allocating once nothing else (no
/// delivered message) holds it. When it cannot be (messages of one read
/// still wait in the event queue, or the application keeps them), a new
/// allocation is made of twice the room asked for since the last one
/// (`epoch`), bounded by `ceiling` (but never below what is needed): the
/// buffer settles on a size that holds a whole burst, and from then on is
/// reclaimed between bursts instead of allocating again and again.
///
/// Returns whether `BytesMut::reserve` ran (the allocation may be new).
pub(super) fn reserve_reused(
    buf: &mut BytesMut,
    n: usize,
    peak: &mut usize,
    epoch: &mut usize,
    ceiling: usize,
) -> bool {
    let len = buf.len();
    if *peak == 0 {
        // A freed (or never used) buffer starts a fresh history. (Not a
        // buffer whose capacity is used up by messages that still hold it:
        // its history is what makes the next allocation big enough to hold
        // the whole burst; forgetting it kept the reassembly buffer at two
        // 64 KiB messages and allocated again every other message whenever
        // the last one was still held.)
        *epoch = 0;
    }
    if len == 0 && buf.capacity() < *peak && buf.try_reclaim(*peak) {
        // Nothing holds the allocation any more: start over at its
        // beginning, so the whole of it is free for the next burst (without
        // this, a burst that starts in the tail runs out of room halfway
        // while its first messages still hold the allocation).
        *epoch = 0;
    }
    let fits = buf.capacity().saturating_sub(len) >= n;
    let mut reserved = false;
    if fits {
        *epoch = epoch.saturating_add(n);
    } else if buf.try_reclaim(n) {
        *epoch = n;
    } else {
        reserved = true;
        let needed = len.saturating_add(n);
        let target = epoch
            .saturating_add(n)
            .max(needed)
            .saturating_mul(2)
            .min(ceiling)
            .max(needed);
        buf.reserve(target.saturating_sub(len));
        *epoch = needed;
    }
    *peak = (*peak).max(buf.capacity());
    reserved
}
