//! The frame reader: header checks, unmasking, UTF-8, reassembly, inflation, delivery.

use super::*;

impl Connection {
    /// Feeds bytes received from the transport (copied into the receive
    /// buffer; [`receive_buffer`](Self::receive_buffer) avoids the copy).
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if !self.accepts_input(now, data.len()) {
            return;
        }
        if let Handshake::ClientReadBody { .. } = self.hs {
            return self.read_error_body(data);
        }
        let was_open = matches!(self.hs, Handshake::Done);
        self.make_room(data.len());
        self.rbuf.extend_from_slice(data);
        self.after_input(was_open);
    }

    /// Lends the free room of the receive buffer, for the transport to read
    /// into directly, and never empty. `hint` is the driver's usual read size:
    /// the room follows the reads between 4 KiB and `hint` (a connection of
    /// small messages keeps a small buffer; reads that fill the room double
    /// it), and while a large frame is arriving it is the rest of that frame,
    /// so that one read can take it (never more than the frame size limit
    /// allows). Report what was read with [`handle_received`](Self::handle_received).
    ///
    /// This is [`handle_input`](Self::handle_input) without the copy: the
    /// bytes land where frames are parsed and unmasked, and a message that
    /// arrives as one frame is handed out as a slice of this buffer.
    ///
    /// ```
    /// # use std::io::Read;
    /// # use std::time::Instant;
    /// # use ws_proto::{Config, Connection};
    /// # let mut socket: &[u8] = b"GET / HTTP/1.1\r\n";
    /// let mut conn = Connection::server(Config::default(), Instant::now());
    /// let room = conn.receive_buffer(16 * 1024);
    /// let n = socket.read(room).unwrap();
    /// conn.handle_received(Instant::now(), n);
    /// ```
    pub fn receive_buffer(&mut self, hint: usize) -> &mut [u8] {
        let want = self.receive_room(hint);
        self.make_room(want);
        self.room.lend(&mut self.rbuf, want)
    }

    /// Bytes the receive buffer can take now without allocating: 0 while the
    /// connection holds no receive buffer (new, or idle since its buffers were
    /// released). A driver then reads into memory of its own and feeds it with
    /// [`handle_input`](Self::handle_input), so that a wake-up that finds
    /// nothing to read (or a handshake) costs no buffer; once the core holds
    /// one, [`receive_buffer`](Self::receive_buffer) avoids the copy.
    pub fn receive_capacity(&self) -> usize {
        self.rbuf.capacity().saturating_sub(self.rbuf.len())
    }

    /// Payload bytes of the frame being received that have not arrived yet
    /// (0 between frames, and before the open). A driver can use it to sleep
    /// until a large frame is all there instead of waking for every piece of
    /// it (see `ws_net::low_water`); nothing is delivered before a frame is
    /// complete anyway.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use ws_proto::{Config, Connection};
    /// let conn = Connection::server(Config::default(), Instant::now());
    /// assert_eq!(conn.frame_remaining(), 0);
    /// ```
    pub fn frame_remaining(&self) -> usize {
        self.rx_header
            .map(|h| (h.payload_len as usize).saturating_sub(self.rbuf.len()))
            .unwrap_or(0)
    }

    /// Takes the first `n` bytes of the room [`receive_buffer`](Self::receive_buffer)
    /// lent as received input (as [`handle_input`](Self::handle_input) would).
    /// More than was lent is never taken.
    pub fn handle_received(&mut self, now: Instant, n: usize) {
        let before = self.rbuf.len();
        let n = self.room.commit(&mut self.rbuf, n);
        if !self.accepts_input(now, n) {
            self.rbuf.truncate(before);
            return;
        }
        if let Handshake::ClientReadBody { .. } = self.hs {
            let data = self.rbuf.split_off(before);
            return self.read_error_body(&data);
        }
        let was_open = matches!(self.hs, Handshake::Done);
        self.after_input(was_open);
    }

    /// How much room to lend for a read: the adaptive size up to `hint`, or
    /// the rest of the frame being received when that is more.
    fn receive_room(&self, hint: usize) -> usize {
        let size = self.room.size(hint.max(1));
        let Some(h) = self.rx_header else {
            return size;
        };
        // check_header bounded the length by frame_payload_limit().
        let rest = (h.payload_len as usize).saturating_sub(self.rbuf.len());
        size.max(rest)
    }

    /// Counts `len` received bytes; whether they are to be processed.
    fn accepts_input(&mut self, now: Instant, len: usize) -> bool {
        self.now = now;
        self.stats.bytes_in = self.stats.bytes_in.saturating_add(len as u64);
        !(self.ending == Ending::Closed || self.input_closed)
    }

    /// The body of a refused upgrade's response, kept for the error.
    fn read_error_body(&mut self, data: &[u8]) {
        if let Handshake::ClientReadBody { body, want, .. } = &mut self.hs {
            let take = want.saturating_sub(body.len()).min(data.len());
            body.extend_from_slice(data.get(..take).unwrap_or_default());
            if body.len() >= *want {
                self.finish_error_response();
            }
        }
    }

    /// New bytes are in the receive buffer: parse what they complete.
    fn after_input(&mut self, was_open: bool) {
        self.last_activity = self.now;
        if was_open {
            // A large frame arriving slowly is not silence.
            self.last_heard = Some(self.now);
        }
        self.process();
        // The buffer is kept for the next input while the connection is busy
        // (its allocation is reclaimed once the application has dropped the
        // messages that share it: no allocation per message). The handshake
        // is not steady state, and with no release delay nothing is kept.
        if self.rbuf.is_empty() && (!was_open || self.cfg.release_buffers_after.is_zero()) {
            self.free_receive_buffer();
        }
    }

    pub(super) fn process_frames(&mut self) {
        while !self.input_closed {
            let header = match self.rx_header {
                Some(h) => h,
                None => match FrameHeader::parse(&self.rbuf) {
                    Ok(Some((h, n))) => {
                        if let Err(e) = self.check_header(&h) {
                            return self.fail(e);
                        }
                        self.rbuf.advance(n);
                        self.rx_header = Some(h);
                        self.rx_progress = 0;
                        h
                    }
                    Ok(None) => return,
                    Err(FrameError::ReservedOpcode(op)) => {
                        return self.fail(ProtocolError::ReservedOpcode(op))
                    }
                    Err(_) => return self.fail(ProtocolError::LengthTopBit),
                },
            };
            // check_header bounded the length by frame_payload_limit().
            let len = header.payload_len as usize;
            let avail = self.rbuf.len().min(len);
            if avail > self.rx_progress {
                let (from, to) = (self.rx_progress, avail);
                let fresh = self.rbuf.get_mut(from..to).unwrap_or_default();
                if let Some(key) = header.mask {
                    apply_mask(fresh, key, from);
                }
                if self.rx_validate {
                    if let Some(m) = self.msg.as_mut() {
                        if m.utf8.feed(fresh).is_err() {
                            return self.fail(ProtocolError::InvalidUtf8);
                        }
                    }
                }
                self.rx_progress = to;
            }
            if avail < len {
                if self.rbuf.capacity() < len {
                    self.make_room(len.saturating_sub(self.rbuf.len()));
                }
                return;
            }
            let payload = self.rbuf.split_to(len).freeze();
            self.rx_header = None;
            self.rx_progress = 0;
            self.stats.frames_in = self.stats.frames_in.saturating_add(1);
            self.last_received = Some(self.now);
            self.on_frame(header, payload);
        }
    }

    pub(super) fn check_header(&mut self, h: &FrameHeader) -> Result<(), ProtocolError> {
        let limits = &self.cfg.limits;
        let bits = Rsv::from_flags(h.rsv1, h.rsv2, h.rsv3);
        // A bit no negotiated extension owns (RFC 6455 §5.2).
        if !self.ext.owned().contains(bits) {
            return Err(ProtocolError::ReservedBits);
        }
        match self.side {
            Side::Server if h.mask.is_none() => return Err(ProtocolError::UnmaskedFrame),
            Side::Client if h.mask.is_some() => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if h.opcode.is_control() {
            if !bits.is_empty() {
                return Err(ProtocolError::CompressedControl);
            }
            if !h.fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if h.payload_len > 125 {
                return Err(ProtocolError::ControlTooLong(h.payload_len));
            }
            self.rx_validate = false;
            return Ok(());
        }
        if h.opcode == OpCode::CONTINUATION {
            // Extensions transform whole messages: their bits are on the first frame only.
            if !bits.is_empty() {
                return Err(ProtocolError::CompressedContinuation);
            }
            if self.msg.is_none() {
                return Err(ProtocolError::UnexpectedContinuation);
            }
        } else if self.msg.is_some() {
            return Err(ProtocolError::ExpectedContinuation);
        }
        let frame_limit = limits.frame_payload_limit();
        if h.payload_len > frame_limit as u64 {
            return Err(ProtocolError::FrameTooLarge {
                len: h.payload_len,
                limit: frame_limit,
            });
        }
        let m = self.msg.get_or_insert_with(|| InMessage {
            kind: if h.opcode == OpCode::TEXT {
                MessageKind::Text
            } else {
                MessageKind::Binary
            },
            rsv: bits,
            utf8: Utf8Validator::new(),
            buf: std::mem::take(&mut self.asm),
            frames: 0,
            size: 0,
        });
        m.frames = m.frames.saturating_add(1);
        // Fragments cost CPU, not memory: the allowance grows with the bytes
        // the message has carried, so only floods of empty or tiny fragments
        // are cut off (see `Limits`).
        let fragment_limit = limits.fragment_limit(m.size);
        if m.frames > fragment_limit {
            return Err(ProtocolError::TooManyFragments {
                limit: fragment_limit,
            });
        }
        if m.rsv.is_empty()
            && (m.size as u64).saturating_add(h.payload_len) > limits.max_message_size as u64
        {
            return Err(ProtocolError::MessageTooLarge {
                limit: limits.max_message_size,
            });
        }
        // A transformed message is validated after decoding.
        self.rx_validate = m.kind == MessageKind::Text && m.rsv.is_empty();
        Ok(())
    }

    pub(super) fn on_frame(&mut self, h: FrameHeader, payload: Bytes) {
        match h.opcode {
            OpCode::PING => {
                if self.cfg.auto_pong && !self.our_close.queued() {
                    // Answer every ping, but keep at most MAX_PENDING_PONGS
                    // unanswered: a peer flooding pings without reading our
                    // pongs gets only the latest ones (RFC 6455 §5.5.3).
                    if self.pending_pongs.len() == MAX_PENDING_PONGS {
                        self.pending_pongs.pop_front();
                    }
                    self.pending_pongs.push_back(payload.clone());
                }
                self.events.push_back(Event::Ping(payload));
            }
            OpCode::PONG => {
                if let Some(i) = self.pings_out.iter().position(|(p, _)| *p == payload) {
                    if let Some((_, sent)) = self.pings_out.get(i) {
                        self.latency = Some(self.now.saturating_duration_since(*sent));
                    }
                    self.pings_out.drain(..=i);
                }
                self.events.push_back(Event::Pong(payload));
            }
            OpCode::CLOSE => self.on_close_frame(&payload),
            _ => self.on_data(h.fin, payload),
        }
    }

    pub(super) fn on_data(&mut self, fin: bool, payload: Bytes) {
        let max = self.cfg.limits.max_message_size;
        let streaming = self.cfg.streaming;
        let Some(m) = self.msg.as_mut() else { return };
        let transformed = !m.rsv.is_empty();
        if transformed {
            let before = m.buf.len();
            let limit = before.saturating_add(max.saturating_sub(m.size));
            // Room for a frame like the previous one to decode in one step:
            // several messages of one read then share one allocation, reused
            // once the application has dropped them.
            let want = decoder_for_output(&self.ext, m.rsv)
                .map_or(payload.len(), |e| e.decode_room(payload.len()));
            let ceiling = limit.saturating_add(1);
            let room = want.min(ceiling.saturating_sub(before));
            let (peak, epoch) = (&mut self.buf_sizes[1], &mut self.epochs[1]);
            reserve_reused(&mut m.buf, room, peak, epoch, ceiling);
            match decode_frame(&mut self.ext, m.rsv, &payload, fin, &mut m.buf, limit, max) {
                Ok(()) if m.buf.len() <= limit => {}
                // The decoder broke its contract: its output is past the limit.
                Ok(()) | Err(ProtocolError::MessageTooLarge { .. }) => {
                    return self.fail(ProtocolError::MessageTooLarge { limit: max })
                }
                Err(e) => return self.fail(e),
            }
            let inflated = m.buf.get(before..).unwrap_or_default();
            m.size = m.size.saturating_add(inflated.len());
            if m.kind == MessageKind::Text && m.utf8.feed(inflated).is_err() {
                return self.fail(ProtocolError::InvalidUtf8);
            }
        } else {
            m.size = m.size.saturating_add(payload.len());
        }
        if fin && m.kind == MessageKind::Text && m.utf8.finish().is_err() {
            return self.fail(ProtocolError::InvalidUtf8);
        }
        let kind = m.kind;
        if !transformed && !streaming && (!fin || m.frames > 1) {
            let ceiling = max.saturating_add(1);
            let (peak, epoch) = (&mut self.buf_sizes[1], &mut self.epochs[1]);
            reserve_reused(&mut m.buf, payload.len(), peak, epoch, ceiling);
            m.buf.extend_from_slice(&payload);
        }
        if streaming {
            let first = m.frames == 1;
            let data = if transformed {
                m.buf.split().freeze()
            } else {
                payload
            };
            if fin {
                self.finish_message();
            }
            self.events.push_back(Event::Fragment(Fragment {
                kind,
                data,
                first,
                fin,
            }));
            return;
        }
        if !fin {
            return;
        }
        let data = if transformed || m.frames > 1 {
            m.buf.split().freeze()
        } else {
            payload
        };
        self.finish_message();
        self.events
            .push_back(Event::Message(Message { kind, data }));
    }

    /// A message is complete: its (now empty) buffer goes back for reuse.
    pub(super) fn finish_message(&mut self) {
        if let Some(mut m) = self.msg.take() {
            if self.cfg.release_buffers_after.is_zero() {
                self.buf_sizes[1] = 0;
            } else {
                self.asm = std::mem::take(&mut m.buf);
            }
        }
        self.stats.messages_in = self.stats.messages_in.saturating_add(1);
    }

    pub(super) fn stop_input(&mut self) {
        self.input_closed = true;
        self.rbuf = BytesMut::new();
        self.rbuf_alt = None;
        self.asm = BytesMut::new();
        self.buf_sizes[0] = 0;
        self.buf_sizes[1] = 0;
        self.rx_header = None;
        self.msg = None;
    }
}

/// Whether extension `e` transformed a message whose first frame carried `rsv`.
fn applied(e: &dyn Extension, rsv: Rsv) -> bool {
    !e.rsv().intersection(rsv).is_empty()
}

/// The extension whose decoder writes the message's final bytes: the first one applied when
/// sending, so the last one to decode.
fn decoder_for_output(chain: &Chain, rsv: Rsv) -> Option<&dyn Extension> {
    chain.iter().find(|e| applied(*e, rsv))
}

/// Decodes one frame's payload of a message whose first frame carried `rsv` through the
/// extensions that transformed it, last-applied first, appending the result to `out`
/// (bounded by `limit`). With more than one extension the intermediate stages write into the
/// chain's two reused scratch buffers (each bounded by the message limit `max`).
fn decode_frame(
    chain: &mut Chain,
    rsv: Rsv,
    payload: &[u8],
    fin: bool,
    out: &mut BytesMut,
    limit: usize,
    max: usize,
) -> Result<(), ProtocolError> {
    let stages = chain.iter().filter(|e| applied(*e, rsv)).count();
    let (exts, [even, odd]) = chain.parts();
    let mut done = 0usize;
    for e in exts.iter_mut().rev().filter(|e| applied(&***e, rsv)) {
        // Stage k reads what stage k - 1 wrote (the payload for the first stage).
        let last = done.saturating_add(1) == stages;
        let (input, output): (&[u8], &mut BytesMut) = match (done, done % 2 == 0) {
            (0, _) if last => (payload, &mut *out),
            (0, _) => {
                even.clear();
                (payload, &mut *even)
            }
            (_, true) if last => (odd.as_ref(), &mut *out),
            (_, false) if last => (even.as_ref(), &mut *out),
            (_, true) => {
                even.clear();
                (odd.as_ref(), &mut *even)
            }
            (_, false) => {
                odd.clear();
                (even.as_ref(), &mut *odd)
            }
        };
        let bound = if last { limit } else { max };
        e.decode(input, fin, output, bound)?;
        done = done.saturating_add(1);
    }
    Ok(())
}
