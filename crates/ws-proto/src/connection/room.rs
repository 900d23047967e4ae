//! Lending the receive buffer's free room to the transport, so a driver reads
//! straight into the core (no copy from a driver buffer into ours).
//!
//! This is the crate's only `unsafe` code, kept to two operations on the
//! receive buffer's spare capacity:
//!
//! 1. handing it out as `&mut [u8]`: a `Read` implementation needs
//!    initialised memory, so every byte lent has been written before —
//!    either zeroed here or once held received data — and a watermark
//!    remembers how far that goes, so the zeroing happens once per
//!    allocation, not once per read;
//! 2. taking the count the transport wrote as new data (`set_len`).
//!
//! The safe alternative (`BytesMut::resize` with zeros before every read)
//! writes every received byte twice more than needed: zeroing costs about
//! half a copy, which is what lending is meant to save (docs/performance.md).

#![allow(unsafe_code)]

use bytes::BytesMut;

/// What is known about the receive buffer's spare capacity.
#[derive(Debug, Default)]
pub(super) struct Room {
    /// The address one past the end of the allocation the watermark belongs to.
    alloc_end: usize,
    /// The address up to which the bytes after the data are initialised.
    init_end: usize,
    /// The length of the slice last lent (what `commit` may take).
    lent: usize,
    /// How much room the next read is asked to fill (see [`Room::size`]).
    size: u32,
}

/// The smallest room asked for: a connection that carries small messages
/// keeps a small receive buffer.
const MIN_ROOM: u32 = 4 << 10;

/// The address one past the buffer's spare capacity.
fn end_of(buf: &BytesMut) -> usize {
    (buf.as_ptr() as usize).saturating_add(buf.capacity())
}

/// The address where the buffer's spare capacity starts.
fn spare_start(buf: &BytesMut) -> usize {
    (buf.as_ptr() as usize).saturating_add(buf.len())
}

impl Room {
    /// The buffer may have a new allocation: nothing past its data is known
    /// to be initialised.
    pub(super) fn forget(&mut self) {
        let size = self.size;
        *self = Room::default();
        self.size = size;
    }

    /// Exchanges what is known of two buffers' rooms (the buffers were
    /// exchanged), keeping this side's read size.
    pub(super) fn swap_buffer_state(&mut self, other: &mut Room) {
        std::mem::swap(self, other);
        std::mem::swap(&mut self.size, &mut other.size);
    }

    /// The room to ask for, at most `most`: it follows the reads — doubled
    /// after a read that filled the whole room, halved after one that filled
    /// less than a quarter — between 4 KiB and `most`, so a connection of
    /// small messages holds a small buffer and a busy one reads in large
    /// pieces.
    pub(super) fn size(&self, most: usize) -> usize {
        (self.size.max(MIN_ROOM) as usize).min(most)
    }

    /// Lends the buffer's spare capacity, initialised: all of it, but no more
    /// than `want` bytes need zeroing now (a larger room left by an earlier
    /// allocation is lent whole, so a read can take more at once).
    pub(super) fn lend<'a>(&mut self, buf: &'a mut BytesMut, want: usize) -> &'a mut [u8] {
        let start = spare_start(buf);
        if end_of(buf) != self.alloc_end {
            // Another allocation (or never lent): start the watermark here.
            self.alloc_end = end_of(buf);
            self.init_end = start;
        }
        // Everything in the allocation before the data's end was data once
        // (bytes only ever enter the buffer at its end), so after a reclaim
        // the watermark still holds; it never lies before the spare start.
        self.init_end = self.init_end.max(start);
        let spare = buf.spare_capacity_mut();
        let want = want
            .max(self.init_end.saturating_sub(start))
            .min(spare.len());
        let known = self.init_end.saturating_sub(start).min(want);
        if let Some(fresh) = spare.get_mut(known..want) {
            for b in fresh {
                b.write(0);
            }
        }
        self.init_end = self.init_end.max(start.saturating_add(want));
        self.lent = want;
        let lent = spare.get_mut(..want).unwrap_or_default();
        // SAFETY: `lent` is the start of the buffer's spare capacity, which
        // belongs to this `BytesMut` alone (its view is unique: bytes split
        // off earlier lie before it). Its `want` bytes are initialised: those
        // up to the watermark were written before (zeroed by an earlier
        // `lend` or held data, and nothing de-initialises memory while the
        // allocation — checked by its end address — is the same), the rest
        // were zeroed just above. `MaybeUninit<u8>` and `u8` have the same
        // layout, and the returned borrow keeps `buf` borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(lent.as_mut_ptr().cast::<u8>(), lent.len()) }
    }

    /// Takes `n` bytes written at the start of the slice last lent as data;
    /// what is past the lent length is ignored. Returns the count taken.
    pub(super) fn commit(&mut self, buf: &mut BytesMut, n: usize) -> usize {
        let n = n
            .min(self.lent)
            .min(buf.capacity().saturating_sub(buf.len()));
        self.lent = 0;
        if n == 0 || end_of(buf) != self.alloc_end {
            // Nothing lent for this allocation: nothing to take.
            return 0;
        }
        let len = buf.len().saturating_add(n);
        // SAFETY: `n` is at most the length of the slice `lend` handed out for
        // this allocation, and at most the spare capacity, so the first `len`
        // bytes are within capacity; they are initialised (data, then bytes
        // `lend` initialised and the transport wrote).
        unsafe { buf.set_len(len) };
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lent_bytes_become_data_and_the_rest_is_ignored() {
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b"ab");
        let mut room = Room::default();
        let lent = room.lend(&mut buf, 10);
        assert_eq!(lent.len(), 10);
        assert!(lent.iter().all(|&b| b == 0));
        lent[..3].copy_from_slice(b"cde");
        assert_eq!(room.commit(&mut buf, 3), 3);
        assert_eq!(&buf[..], b"abcde");
        // Nothing lent now: a commit takes nothing.
        assert_eq!(room.commit(&mut buf, 5), 0);
        assert_eq!(&buf[..], b"abcde");
    }

    #[test]
    fn a_commit_never_takes_more_than_was_lent() {
        let mut buf = BytesMut::with_capacity(64);
        let mut room = Room::default();
        let _ = room.lend(&mut buf, 4);
        assert_eq!(room.commit(&mut buf, 1000), 4);
        assert_eq!(buf.len(), 4);
    }

    #[test]
    fn lending_is_bounded_by_the_spare_capacity() {
        let mut buf = BytesMut::with_capacity(8);
        let mut room = Room::default();
        assert!(room.lend(&mut buf, 1 << 20).len() <= buf.capacity());
    }

    #[test]
    fn a_commit_after_the_buffer_was_replaced_takes_nothing() {
        let mut buf = BytesMut::with_capacity(64);
        let mut room = Room::default();
        let _ = room.lend(&mut buf, 16);
        buf = BytesMut::with_capacity(4096);
        assert_eq!(room.commit(&mut buf, 16), 0);
        assert!(buf.is_empty());
    }

    #[test]
    fn the_watermark_survives_reclaim_and_split() {
        let mut buf = BytesMut::with_capacity(64);
        let mut room = Room::default();
        for round in 0..10u8 {
            let lent = room.lend(&mut buf, 32);
            assert_eq!(lent.len(), 32);
            lent.fill(round);
            assert_eq!(room.commit(&mut buf, 32), 32);
            let taken = buf.split_to(32).freeze();
            assert!(taken.iter().all(|&b| b == round));
            drop(taken);
            assert!(buf.try_reclaim(64));
        }
    }
}
