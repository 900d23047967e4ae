//! The wire queue of a driver: the bytes `poll_transmit_vectored` wrote (small frames and frame
//! headers, batched) interleaved with the large payloads it handed out as they are, written to
//! the socket with vectored writes ([`WireQueue::io_slices`]). Partial writes keep their place
//! ([`WireQueue::advance`]): what the core handed out leaves in order, and nothing is copied
//! but the small frames.
//!
//! The byte buffer is allocated on first use and kept for reuse (no allocation per message);
//! [`WireQueue::release`] frees it when the connection goes quiet.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use bytes::{Buf, Bytes};
use ws_proto::{Connection, Transmit, VectoredTransmit};

/// Most payloads held at once.
pub const MAX_PAYLOADS: usize = 8;
/// Most slices one write takes: each payload and the bytes before it, then the bytes after.
pub const MAX_SLICES: usize = 2 * MAX_PAYLOADS + 1;
/// Less room than this counts as none: a frame header always fits in the room handed to the
/// core (a header that does not fit makes `poll_transmit_vectored` wait for the next call).
const MIN_ROOM: usize = 16;

/// First size of the byte buffer (it grows to `cap` when traffic needs it).
const START: usize = 1024;

/// See the [module](self) documentation.
#[derive(Debug)]
pub struct WireQueue {
    /// `buf[pos..len]` is still to be written; `buf.len()` is how far it is initialised.
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    /// Size of the byte buffer.
    cap: usize,
    /// No more is taken from the core once this many bytes are queued.
    limit: usize,
    /// `(at, payload)`: `payload` goes out after `buf[..at]` (`at` never decreases, and is at
    /// least `pos`). A payload's written start is advanced off it.
    payloads: VecDeque<(usize, Bytes)>,
    payload_bytes: usize,
    /// A shutdown of the write side is due once everything is written.
    pub shutdown: bool,
}

/// What [`WireQueue::pull`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pulled {
    /// The core has nothing more to transmit.
    Empty,
    /// The queue is full (the core may have more).
    Full,
    /// The core asked for the write side to be shut down after what is queued.
    Shutdown,
}

impl WireQueue {
    /// An empty queue with a byte buffer of up to `cap` bytes (allocated on first use, 1 KiB
    /// at first, doubled when full) that takes no more from the core once `limit` bytes are
    /// queued.
    pub const fn new(cap: usize, limit: usize) -> WireQueue {
        WireQueue {
            buf: Vec::new(),
            pos: 0,
            len: 0,
            cap,
            limit,
            payloads: VecDeque::new(),
            payload_bytes: 0,
            shutdown: false,
        }
    }

    /// Nothing is left to write (a due shutdown aside).
    pub fn is_empty(&self) -> bool {
        self.pos >= self.len && self.payloads.is_empty()
    }

    /// Bytes still to be written.
    pub fn queued(&self) -> usize {
        self.len
            .saturating_sub(self.pos)
            .saturating_add(self.payload_bytes)
    }

    /// The free room of the byte buffer for the core to write into; empty when the queue
    /// takes nothing more (the limit, the payload slots, or less than a header's room).
    pub fn room(&mut self) -> &mut [u8] {
        if self.queued() >= self.limit || self.payloads.len() >= MAX_PAYLOADS {
            return &mut [];
        }
        // The buffer starts small (a handshake answer, a few small frames) and doubles, up to
        // `cap`, each time the core has filled it before it was written: a connection that
        // only ever sends little holds little, and steady traffic reuses what it grew to.
        if self.buf.len().saturating_sub(self.len) < MIN_ROOM && self.buf.len() < self.cap {
            let grown = self.buf.len().saturating_mul(2).max(START).min(self.cap);
            self.buf.resize(grown, 0);
        }
        match self.buf.get_mut(self.len..) {
            Some(room) if room.len() >= MIN_ROOM => room,
            _ => &mut [],
        }
    }

    /// `n` bytes were written at the start of [`room`](Self::room).
    pub fn filled(&mut self, n: usize) {
        self.len = self.len.saturating_add(n).min(self.buf.len());
    }

    /// Queues `payload` after the bytes queued so far.
    pub fn push_payload(&mut self, payload: Bytes) {
        if payload.is_empty() {
            return;
        }
        self.payload_bytes = self.payload_bytes.saturating_add(payload.len());
        self.payloads.push_back((self.len, payload));
    }

    /// Moves the core's output into the queue until the core has nothing more, the queue is
    /// full, or a shutdown is due (then nothing more is taken). With `vectored`, large
    /// payloads are queued as they are (`poll_transmit_vectored`); without (a writer that
    /// takes one slice at a time), everything is copied into the buffer (`poll_transmit`).
    pub fn pull(
        &mut self,
        conn: &mut Connection,
        now: std::time::Instant,
        vectored: bool,
    ) -> Pulled {
        if self.shutdown {
            return Pulled::Shutdown;
        }
        // Bounded: every round fills bytes, takes a payload slot or ends.
        loop {
            // Asked first: `room` makes the buffer, which an idle connection (its buffer freed
            // after a quiet spell) must not get back for nothing to write.
            if !conn.wants_transmit() {
                return Pulled::Empty;
            }
            let room = self.room();
            if room.is_empty() {
                return Pulled::Full;
            }
            let t = if vectored {
                conn.poll_transmit_vectored(now, room)
            } else {
                conn.poll_transmit(now, room).map(|t| match t {
                    Transmit::Data(n) => VectoredTransmit::Data(n),
                    Transmit::Shutdown => VectoredTransmit::Shutdown,
                })
            };
            match t {
                Some(VectoredTransmit::Data(n)) => self.filled(n),
                Some(VectoredTransmit::DataThen(n, payload)) => {
                    self.filled(n);
                    self.push_payload(payload);
                }
                Some(VectoredTransmit::Shutdown) => {
                    self.shutdown = true;
                    return Pulled::Shutdown;
                }
                None => return Pulled::Empty,
            }
        }
    }

    /// The slices still to be written, in order, into `out`; returns how many.
    pub fn io_slices<'a>(&'a self, out: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        let mut k = 0;
        let mut at = self.pos;
        let mut push = |s: &'a [u8], k: &mut usize| {
            if !s.is_empty() {
                if let Some(slot) = out.get_mut(*k) {
                    *slot = IoSlice::new(s);
                    *k += 1;
                }
            }
        };
        for (end, payload) in &self.payloads {
            push(self.buf.get(at..*end).unwrap_or_default(), &mut k);
            push(payload, &mut k);
            at = *end;
        }
        push(self.buf.get(at..self.len).unwrap_or_default(), &mut k);
        k
    }

    /// `n` bytes of [`io_slices`](Self::io_slices) were written.
    pub fn advance(&mut self, mut n: usize) {
        // Bounded: every round consumes bytes or a payload, or ends.
        while n > 0 {
            let end = self.payloads.front().map_or(self.len, |(at, _)| *at);
            let k = end.saturating_sub(self.pos).min(n);
            self.pos = self.pos.saturating_add(k);
            n = n.saturating_sub(k);
            if n == 0 || self.pos < end {
                break;
            }
            let Some((_, payload)) = self.payloads.front_mut() else {
                break;
            };
            let k = payload.len().min(n);
            payload.advance(k);
            self.payload_bytes = self.payload_bytes.saturating_sub(k);
            n = n.saturating_sub(k);
            if payload.is_empty() {
                self.payloads.pop_front();
            }
        }
        // Empty payloads left at the front (none are queued, but be sure) go too.
        while self.payloads.front().is_some_and(|(_, p)| p.is_empty()) {
            self.payloads.pop_front();
        }
        if self.pos >= self.len {
            // Every byte is written: the payloads still queued all follow the last byte, so
            // the buffer starts over (its room is free again while they go out).
            self.pos = 0;
            self.len = 0;
            for (at, _) in &mut self.payloads {
                *at = 0;
            }
        }
    }

    /// Writes everything to a blocking writer (a failure leaves the rest queued).
    pub fn write_all_to(&mut self, w: &mut impl Write) -> io::Result<()> {
        // Bounded: every round writes bytes or fails.
        while !self.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let k = self.io_slices(&mut slices);
            let n = match w.write_vectored(slices.get(..k).unwrap_or_default()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.advance(n);
        }
        Ok(())
    }

    /// Drops everything queued (the write side is gone), keeping the buffer.
    pub fn clear(&mut self) {
        self.pos = 0;
        self.len = 0;
        self.payloads.clear();
        self.payload_bytes = 0;
        self.shutdown = false;
    }

    /// Frees the byte buffer and the payload slots if nothing is queued (a quiet connection).
    pub fn release(&mut self) {
        if self.is_empty() {
            self.clear();
            self.buf = Vec::new();
            self.payloads = VecDeque::new();
        }
    }

    /// Bytes of memory held (the byte buffer and the payload slots).
    pub fn retained_bytes(&self) -> usize {
        self.buf
            .capacity()
            .saturating_add(self.payloads.capacity() * std::mem::size_of::<(usize, Bytes)>())
    }
}

impl Write for WireQueue {
    /// Appends bytes (the TLS records of a driver that encrypts), growing the buffer if needed.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let end = self.len.saturating_add(data.len());
        if self.buf.len() < end {
            self.buf.resize(end.max(self.cap), 0);
        }
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(data);
            self.len = end;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn drain(q: &mut WireQueue, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..100_000 {
            if q.is_empty() {
                break;
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let k = q.io_slices(&mut slices);
            let mut n = 0;
            for s in &slices[..k] {
                let take = s.len().min(step - n);
                out.extend_from_slice(&s[..take]);
                n += take;
                if n == step {
                    break;
                }
            }
            q.advance(n);
        }
        out
    }

    #[test]
    fn the_buffer_starts_small_and_grows_to_its_cap_only_when_filled() {
        let mut q = WireQueue::new(16 << 10, 1 << 20);
        assert_eq!(q.retained_bytes(), 0, "nothing until first use");
        let room = q.room().len();
        assert_eq!(room, START, "a first use takes 1 KiB");
        // Filling it (the core wrote everything it could) doubles it, up to the cap.
        let mut written = Vec::new();
        for i in 0..64u32 {
            let room = q.room();
            if room.is_empty() {
                break;
            }
            let n = room.len();
            for (k, b) in room.iter_mut().enumerate() {
                *b = (k as u32 ^ i) as u8;
            }
            written.extend_from_slice(&q.room()[..n]);
            q.filled(n);
        }
        assert_eq!(
            q.retained_bytes(),
            16 << 10,
            "grown to the cap, never past it"
        );
        // What was queued across the growth comes out whole and in order.
        assert_eq!(drain(&mut q, 1000), written);
        q.release();
        assert_eq!(q.retained_bytes(), 0);
    }

    #[test]
    fn partial_writes_keep_the_order() {
        for step in [1, 3, 7, 100, 5000] {
            let mut q = WireQueue::new(64, 1 << 20);
            let mut want = Vec::new();
            for i in 0..3u8 {
                let head = [i; 5];
                q.room()[..5].copy_from_slice(&head);
                q.filled(5);
                want.extend_from_slice(&head);
                let p: Vec<u8> = (0..(100 * (i as usize + 1))).map(|j| j as u8).collect();
                want.extend_from_slice(&p);
                q.push_payload(Bytes::from(p));
            }
            q.write_all(b"tail").unwrap();
            want.extend_from_slice(b"tail");
            assert_eq!(q.queued(), want.len());
            assert_eq!(drain(&mut q, step), want, "step {step}");
            assert!(q.is_empty());
            assert_eq!(q.queued(), 0);
        }
    }

    #[test]
    fn the_buffer_starts_over_while_a_payload_is_written() {
        let mut q = WireQueue::new(32, 1 << 20);
        q.room()[..4].copy_from_slice(b"head");
        q.filled(4);
        q.push_payload(Bytes::from(vec![7u8; 100]));
        q.advance(10);
        assert_eq!(q.room().len(), 32, "the written head's room is free again");
        q.room()[..2].copy_from_slice(b"ok");
        q.filled(2);
        let mut want = vec![7u8; 94];
        want.extend_from_slice(b"ok");
        assert_eq!(drain(&mut q, 9), want);
        q.release();
        assert_eq!(q.retained_bytes(), 0);
    }
}
