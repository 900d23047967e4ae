//! permessage-deflate compression and bounded decompression (RFC 7692 §7.2).

use super::*;

/// Compresses outgoing messages with the agreed parameters of our role (RFC 7692 §7.2.1).
pub struct Compressor {
    inner: Compress,
    pub(super) no_context_takeover: bool,
    pub(super) window_bits: u8,
    /// The compression level (0..=9).
    pub(super) level: u8,
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor")
            .field("no_context_takeover", &self.no_context_takeover)
            .field("window_bits", &self.window_bits)
            .finish_non_exhaustive()
    }
}

impl Compressor {
    /// A compressor for `role`'s direction of `params`, at `level` (0..=9; larger means 9).
    ///
    /// An agreed window of 8 bits compresses with 9 (see the module docs: the output still fits
    /// a 256-byte window).
    pub fn new(params: &DeflateParams, role: Role, level: u32) -> Self {
        let (bits, no_context_takeover) = match role {
            Role::Client => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
            ),
            Role::Server => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
            ),
        };
        let window_bits = zlib_window_bits(bits);
        Compressor {
            inner: Compress::new_with_window_bits(
                Compression::new(level.min(9)),
                false,
                window_bits,
            ),
            no_context_takeover,
            window_bits,
            level: level.min(9) as u8,
        }
    }

    /// Compresses one whole message, appending its payload to `out`: the DEFLATE data ending
    /// with a sync flush, without the trailing `0x00 0x00 0xff 0xff` (RFC 7692 §7.2.1).
    ///
    /// An empty message becomes the single byte `0x00` (RFC 7692 §7.2.3.6). When our side has
    /// no context takeover, the context is reset afterwards, so equal messages give equal bytes.
    pub fn compress(&mut self, input: &[u8], out: &mut BytesMut) {
        self.compress_fragment(input, true, out);
    }

    /// Compresses one piece of a message sent in fragments, appending to `out` the payload of the
    /// frame that carries it; `fin` marks the last piece.
    ///
    /// Each piece is sync-flushed, so its frame can be sent at once. Pieces before the last keep
    /// the flush marker (it is inside the message); the last piece drops it as
    /// [`Compressor::compress`] does. An empty non-final piece gives an empty payload; an empty
    /// last piece gives `0x00` (RFC 7692 §7.2.3.6).
    pub fn compress_fragment(&mut self, input: &[u8], fin: bool, out: &mut BytesMut) {
        let start = out.len();
        if input.is_empty() {
            // After any earlier flush both ends are at a byte-aligned block boundary; 0x00 is
            // the header of an empty stored block, which the receiver's appended tail completes.
            if fin {
                out.extend_from_slice(&[0x00]);
                self.end_message();
            }
            return;
        }
        let flushed = self.deflate_sync(input, out);
        let complete = flushed && out.get(start..).is_some_and(|o| o.ends_with(&TAIL));
        if !complete {
            // zlib reported a stream error, which our use of it cannot cause. Still, never emit
            // a broken payload: drop the partial output, start a fresh context (the receiver
            // only ever sees back-references from it into data it already has), and send the
            // input as stored blocks.
            out.truncate(start);
            self.inner.reset();
            write_stored_blocks(input, out);
        }
        if fin {
            if complete {
                out.truncate(out.len().saturating_sub(TAIL.len()));
            } else {
                out.extend_from_slice(&[0x00]);
            }
            self.end_message();
        }
    }

    /// Runs `input` through deflate with a sync flush; `false` if zlib reported an error or
    /// stopped making progress.
    fn deflate_sync(&mut self, input: &[u8], out: &mut BytesMut) -> bool {
        let mut rest = input;
        loop {
            let room = deflate_room(rest.len());
            let len = out.len();
            out.resize(len.saturating_add(room), 0);
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let result = self.inner.compress(
                rest,
                out.get_mut(len..).unwrap_or_default(),
                FlushCompress::Sync,
            );
            let consumed = counter_delta(in_before, self.inner.total_in());
            let produced = counter_delta(out_before, self.inner.total_out());
            out.truncate(len.saturating_add(produced.min(room)));
            if result.is_err() || consumed > rest.len() {
                return false;
            }
            rest = rest.get(consumed..).unwrap_or_default();
            if rest.is_empty() && produced < room {
                return true;
            }
            if consumed == 0 && produced == 0 {
                return false;
            }
        }
    }

    fn end_message(&mut self) {
        if self.no_context_takeover {
            self.inner.reset();
        }
    }
}

/// Inflates incoming compressed messages with the agreed parameters of the peer's role
/// (RFC 7692 §7.2.2), never growing the output past a caller-given limit.
pub struct Decompressor {
    inner: Decompress,
    no_context_takeover: bool,
    pub(super) window_bits: u8,
    /// Compressed bytes of the current message have been fed.
    in_message: bool,
    /// The DEFLATE stream ended (a block with BFINAL set) and nothing was fed since.
    at_stream_start: bool,
    /// What the latest `decompress` call produced: the first step of the next one starts
    /// there, so a stream of similar messages inflates each in one step.
    last_output: usize,
}

impl fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decompressor")
            .field("no_context_takeover", &self.no_context_takeover)
            .field("window_bits", &self.window_bits)
            .field("in_message", &self.in_message)
            .finish_non_exhaustive()
    }
}

impl Decompressor {
    /// A decompressor for the peer's direction of `params` (`role` is our own role).
    ///
    /// An agreed window of 8 bits inflates with 9, which is always safe.
    pub fn new(params: &DeflateParams, role: Role) -> Self {
        let (bits, no_context_takeover) = match role {
            Role::Client => (
                params.server_max_window_bits,
                params.server_no_context_takeover,
            ),
            Role::Server => (
                params.client_max_window_bits,
                params.client_no_context_takeover,
            ),
        };
        let window_bits = zlib_window_bits(bits);
        Decompressor {
            inner: Decompress::new_with_window_bits(false, window_bits),
            no_context_takeover,
            window_bits,
            last_output: 0,
            in_message: false,
            at_stream_start: true,
        }
    }

    /// Feeds one frame's compressed payload of the current message, appending the inflated bytes
    /// to `out`, and returns how many bytes were appended.
    ///
    /// `out` is meant to hold the whole message so far, and `limit` bounds `out.len()`: the
    /// call fails with [`InflateError::TooLarge`] as soon as the message would exceed it.
    /// Inflation runs in steps of at most [`INFLATE_STEP`] bytes, and `out` is never grown to a
    /// capacity above `limit + 1` (a buffer that already had more capacity keeps it), so a tiny
    /// payload that would inflate to gigabytes costs at most the limit.
    ///
    /// When `fin` is set, the `0x00 0x00 0xff 0xff` tail is appended before inflating the end
    /// of the message, and the context is reset afterwards if the peer has no context takeover.
    /// A message whose frames carried no compressed bytes at all is accepted as empty.
    ///
    /// A DEFLATE block with BFINAL set (RFC 7692 §7.2.3.4) ends the DEFLATE stream: later bytes
    /// start a new stream with an empty window.
    ///
    /// After an error the connection must be failed; the decompressor is reset (its context is
    /// lost), and `out` holds at most `limit` bytes of unspecified content.
    pub fn decompress(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<usize, InflateError> {
        let start = out.len();
        let result = self.decompress_inner(input, fin, out, limit);
        match result {
            Ok(()) => {
                self.last_output = out.len().saturating_sub(start);
                Ok(self.last_output)
            }
            Err(e) => {
                out.truncate(limit);
                self.inner.reset(false);
                self.in_message = false;
                self.at_stream_start = true;
                Err(e)
            }
        }
    }

    /// The output room of the first inflate step for `input_len` compressed bytes: what the
    /// previous call produced (plus the room to see that the output is complete), or four
    /// times the input, at least 256 bytes, at most [`INFLATE_STEP`] unless the previous
    /// output was larger. Reserving this plus 256 bytes before
    /// [`decompress`](Self::decompress) lets a message like the previous one inflate without
    /// growing `out`.
    pub fn first_room(&self, input_len: usize) -> usize {
        first_inflate_step(input_len).max(self.last_output.saturating_add(256))
    }

    fn decompress_inner(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), InflateError> {
        if out.len() > limit {
            return Err(InflateError::TooLarge);
        }
        if !input.is_empty() {
            self.in_message = true;
            let step = self.first_room(input.len());
            self.inflate(input, out, limit, step)?;
        }
        if fin {
            // A stream that just ended with a BFINAL block needs no flush marker; anything else
            // gets the tail that the sender removed.
            if self.in_message && !self.at_stream_start {
                self.inflate(&TAIL, out, limit, first_inflate_step(TAIL.len()))?;
            }
            self.in_message = false;
            if self.no_context_takeover {
                self.inner.reset(false);
                self.at_stream_start = true;
            }
        }
        Ok(())
    }

    /// Inflates all of `input` into `out`, in steps bounded by `limit`.
    fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut BytesMut,
        limit: usize,
        mut step: usize,
    ) -> Result<(), InflateError> {
        // Output space is zero-filled before inflating into it, so start near the expected size
        // (`step`) and double while inflate fills it.
        loop {
            let len = out.len();
            // One byte past the limit is enough to detect that the limit is exceeded.
            let room = step.min(limit.saturating_sub(len).saturating_add(1));
            reserve_bounded(out, room, limit.saturating_add(1));
            out.resize(len.saturating_add(room), 0);
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let result = self.inner.decompress(
                input,
                out.get_mut(len..).unwrap_or_default(),
                FlushDecompress::None,
            );
            let consumed = counter_delta(in_before, self.inner.total_in());
            let produced = counter_delta(out_before, self.inner.total_out());
            out.truncate(len.saturating_add(produced.min(room)));
            if consumed > input.len() {
                return Err(InflateError::Corrupt);
            }
            input = input.get(consumed..).unwrap_or_default();
            if consumed > 0 {
                self.at_stream_start = false;
            }
            if out.len() > limit {
                return Err(InflateError::TooLarge);
            }
            match result {
                Err(_) => return Err(InflateError::Corrupt),
                Ok(Status::StreamEnd) => {
                    // BFINAL: the DEFLATE stream is over; what follows is a new stream.
                    self.inner.reset(false);
                    self.at_stream_start = true;
                    if input.is_empty() {
                        return Ok(());
                    }
                }
                Ok(Status::Ok | Status::BufError) => {
                    if input.is_empty() && produced < room {
                        return Ok(());
                    }
                    if consumed == 0 && produced == 0 {
                        return Err(InflateError::Corrupt);
                    }
                }
            }
            if produced == room {
                step = step.saturating_mul(2).min(INFLATE_STEP);
            }
        }
    }
}

/// The window bits to hand zlib: 8 becomes 9 (see the module docs).
fn zlib_window_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS + 1, DEFAULT_WINDOW_BITS)
}

// ---------------------------------------------------------------------------------------------
// Buffer helpers
// ---------------------------------------------------------------------------------------------

/// Difference of two monotonic zlib counters, as a length.
fn counter_delta(before: u64, after: u64) -> usize {
    usize::try_from(after.saturating_sub(before)).unwrap_or(usize::MAX)
}

/// The output room of a deflate step for `input_len` bytes still to compress: room for
/// incompressible input plus block overhead, at most 64 KiB.
pub(crate) fn deflate_room(input_len: usize) -> usize {
    input_len
        .saturating_add(input_len / 8)
        .saturating_add(64)
        .min(DEFLATE_STEP)
}

/// The output room of the first inflate step for `input_len` compressed bytes: four times the
/// input, at least 256 bytes and at most [`INFLATE_STEP`].
pub(crate) fn first_inflate_step(input_len: usize) -> usize {
    input_len.saturating_mul(4).clamp(256, INFLATE_STEP)
}

/// Makes room for `room` more bytes without letting the capacity grow past `cap_limit` (unless
/// `len + room` itself needs more). Grows by doubling otherwise, for amortised O(n) copying.
///
/// `BytesMut::reserve` may double a large buffer, overshooting the bound, so growth here
/// allocates the exact capacity and copies.
fn reserve_bounded(out: &mut BytesMut, room: usize, cap_limit: usize) {
    let needed = out.len().saturating_add(room);
    if out.capacity() >= needed {
        return;
    }
    // A reused buffer whose earlier contents were handed out (and dropped)
    // gets its whole allocation back without allocating.
    if out.try_reclaim(room) && out.capacity() >= needed {
        return;
    }
    let target = needed
        .max(out.capacity())
        .saturating_mul(2)
        .max(256)
        .min(cap_limit)
        .max(needed);
    let mut grown = BytesMut::with_capacity(target);
    grown.extend_from_slice(out);
    *out = grown;
}

/// Writes `input` as non-final stored DEFLATE blocks (RFC 1951 §3.2.4), starting at a
/// byte-aligned block boundary.
pub(super) fn write_stored_blocks(input: &[u8], out: &mut BytesMut) {
    for chunk in input.chunks(usize::from(u16::MAX)) {
        // chunks() yields at most u16::MAX bytes, so the conversion cannot fail.
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&[0x00]);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}
