//! Sending: commands, the outgoing queues, fragmentation and `poll_transmit`.

use super::*;

impl Connection {
    /// Sends a whole message, transformed by the negotiated extensions
    /// (compressed when permessage-deflate was agreed and the message reaches
    /// its threshold), split into frames of at most `fragment_size` payload
    /// bytes.
    pub fn send(&mut self, kind: MessageKind, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send_message(kind, data.into(), true, false)
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send_message(
            MessageKind::Text,
            Bytes::copy_from_slice(text.as_bytes()),
            true,
            true,
        )
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send_message(MessageKind::Binary, data.into(), true, false)
    }

    /// Sends a message prepared for many connections (a broadcast): the payload is shared,
    /// and its compressed form too where the negotiated extension allows (see
    /// [`PreparedMessage`]); otherwise as [`send`](Self::send). The same checks and
    /// backpressure as `send` apply.
    pub fn send_prepared(&mut self, msg: &PreparedMessage) -> Result<(), Error> {
        let (kind, data) = (msg.kind(), msg.data());
        self.check_can_send("send")?;
        if self.tx_fragment {
            return Err(Error::FragmentSequence);
        }
        if self.ext.is_empty() {
            return self.send_message(kind, data.clone(), false, true);
        }
        let shared = self.ext.single_mut().and_then(|e| {
            let key = e.shared_key()?;
            let ty = e.as_any().type_id();
            let rsv = e.rsv();
            let mut out = BytesMut::new();
            msg.encoded(ty, key, |payload| {
                out.reserve(e.encode_room(payload.len()));
                e.encode(kind, payload, &mut out).then(|| out.freeze())
            })
            .ok()
            .map(|encoded| (encoded, rsv))
        });
        let Some((encoded, rsv)) = shared else {
            // Not shareable: this connection encodes the message itself.
            return self.send_message(kind, data.clone(), true, true);
        };
        let (payload, rsv) = match encoded {
            Some(e) => (e, rsv),
            None => (data.clone(), Rsv::NONE),
        };
        self.check_queue(payload.len())?;
        self.last_activity = self.now;
        self.queue_data(opcode_of(kind), rsv, payload, true);
        self.stats.messages_out = self.stats.messages_out.saturating_add(1);
        Ok(())
    }

    /// Sends a whole message without compressing it or applying any other
    /// extension (per-message opt-out).
    pub fn send_uncompressed(
        &mut self,
        kind: MessageKind,
        data: impl Into<Bytes>,
    ) -> Result<(), Error> {
        self.send_message(kind, data.into(), false, false)
    }

    /// Sends part of a message. The first call starts a message of `kind`;
    /// later calls continue it (their `kind` is ignored) until one with
    /// `fin`. Fragments are never compressed (no extension transforms them). Text fragments are not
    /// validated: the caller promises the whole message is UTF-8.
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: impl Into<Bytes>,
        fin: bool,
    ) -> Result<(), Error> {
        self.check_can_send("send_fragment")?;
        let data = data.into();
        self.check_queue(data.len())?;
        let first_opcode = if self.tx_fragment {
            OpCode::CONTINUATION
        } else {
            opcode_of(kind)
        };
        self.queue_data(first_opcode, Rsv::NONE, data, fin);
        self.tx_fragment = !fin;
        if fin {
            self.stats.messages_out = self.stats.messages_out.saturating_add(1);
        }
        Ok(())
    }

    /// Sends a ping; a pong with the same payload gives [`latency`](Self::latency).
    pub fn ping(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        self.check_control(payload.len(), "ping")?;
        self.queue_ping(payload, self.now);
        Ok(())
    }

    /// Sends an unsolicited pong (a unidirectional heartbeat).
    pub fn pong(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        self.check_control(payload.len(), "pong")?;
        let f = self.make_frame(OpCode::PONG, Rsv::NONE, true, payload, false);
        self.ctrl_q.push_back(f);
        Ok(())
    }

    /// Copies the next wire bytes into `buf` (client frames are masked in
    /// this copy; queued payloads are never modified). Call until `None`.
    #[must_use = "drain the output until it returns None (see the driving contract)"]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        match self.transmit(now, buf, false)? {
            VectoredTransmit::Data(n) | VectoredTransmit::DataThen(n, _) => Some(Transmit::Data(n)),
            VectoredTransmit::Shutdown => Some(Transmit::Shutdown),
        }
    }

    /// [`poll_transmit`](Self::poll_transmit) without copying large payloads:
    /// small frames and frame headers are copied into `buf` as before, but an
    /// unmasked payload of at least [`VECTORED_MIN`] bytes is handed out as
    /// it was queued ([`VectoredTransmit::DataThen`]): write the bytes in
    /// `buf`, then the payload, in that order (one vectored write). A server
    /// thus sends large messages, and their compressed forms, without copying
    /// them; a client's frames are masked, so they are always copied.
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use ws_proto::{Connection, VectoredTransmit};
    /// # fn write_all_vectored(_: &[&[u8]]) {}
    /// # fn drain(conn: &mut Connection, buf: &mut [u8]) {
    /// while let Some(t) = conn.poll_transmit_vectored(Instant::now(), buf) {
    ///     match t {
    ///         VectoredTransmit::Data(n) => write_all_vectored(&[&buf[..n]]),
    ///         VectoredTransmit::DataThen(n, payload) => write_all_vectored(&[&buf[..n], &payload]),
    ///         VectoredTransmit::Shutdown => { /* shut the write side down */ }
    ///     }
    /// }
    /// # }
    /// ```
    #[must_use = "drain the output until it returns None (see the driving contract)"]
    pub fn poll_transmit_vectored(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<VectoredTransmit> {
        self.transmit(now, buf, true)
    }

    /// The body of both `poll_transmit`s; `lend`: hand out large unmasked payloads.
    fn transmit(&mut self, now: Instant, buf: &mut [u8], lend: bool) -> Option<VectoredTransmit> {
        self.now = now;
        if buf.is_empty() {
            return None;
        }
        // `n` and `f.pos` only grow by the length of what was just copied
        // into the rest of `buf` (or out of the rest of the frame), so they
        // stay within `buf.len()` and the frame's length.
        let mut n = 0;
        if self.raw_pos < self.raw_out.len() {
            let rest = self.raw_out.get(self.raw_pos..).unwrap_or_default();
            let k = copy_prefix(buf, rest);
            self.raw_pos = self.raw_pos.saturating_add(k);
            n = k;
            if self.raw_pos == self.raw_out.len() {
                self.raw_out = Vec::new();
                self.raw_pos = 0;
            }
        }
        while n < buf.len() && self.raw_out.is_empty() {
            if self.current.is_none() {
                self.current = self.next_frame();
            }
            let Some(f) = self.current.as_mut() else {
                break;
            };
            let hl = usize::from(f.head_len);
            if lend && f.pos == 0 && f.mask.is_none() && f.payload.len() >= VECTORED_MIN {
                // The header into `buf` (whole, or wait for the next call),
                // the payload handed out as it is.
                let Some(dst) = buf.get_mut(n..).and_then(|b| b.get_mut(..hl)) else {
                    break;
                };
                dst.copy_from_slice(f.head.get(..hl).unwrap_or_default());
                n = n.saturating_add(hl);
                let payload = std::mem::take(&mut f.payload);
                if f.counted {
                    self.buffered = self.buffered.saturating_sub(payload.len());
                }
                if let Some(f) = self.current.take() {
                    self.on_frame_sent(&f);
                }
                let total = n.saturating_add(payload.len());
                self.stats.bytes_out = self.stats.bytes_out.saturating_add(total as u64);
                return Some(VectoredTransmit::DataThen(n, payload));
            }
            if f.pos < hl {
                let head = f.head.get(f.pos..hl).unwrap_or_default();
                let k = copy_prefix(buf.get_mut(n..).unwrap_or_default(), head);
                f.pos = f.pos.saturating_add(k);
                n = n.saturating_add(k);
            }
            if f.pos >= hl {
                let off = f.pos.saturating_sub(hl);
                let src = f.payload.get(off..).unwrap_or_default();
                let dst = buf.get_mut(n..).unwrap_or_default();
                let k = match f.mask {
                    Some(m) => {
                        let k = src.len().min(dst.len());
                        if let (Some(s), Some(d)) = (src.get(..k), dst.get_mut(..k)) {
                            copy_masked(s, d, m, off);
                        }
                        k
                    }
                    None => copy_prefix(dst, src),
                };
                f.pos = f.pos.saturating_add(k);
                n = n.saturating_add(k);
                if f.counted {
                    self.buffered = self.buffered.saturating_sub(k);
                }
            }
            if f.pos < hl.saturating_add(f.payload.len()) {
                break;
            }
            if let Some(f) = self.current.take() {
                self.on_frame_sent(&f);
            }
        }
        if n > 0 {
            self.stats.bytes_out = self.stats.bytes_out.saturating_add(n as u64);
            return Some(VectoredTransmit::Data(n));
        }
        if let (Ending::ShutdownDue { drain }, false) = (self.ending, self.has_frames_or_raw()) {
            self.ending = Ending::ShutdownSent;
            if self.eof_received || !drain {
                self.emit_closed();
            } else {
                self.timers
                    .set(Timer::Close, after(self.now, self.cfg.close_timeout));
            }
            return Some(VectoredTransmit::Shutdown);
        }
        None
    }

    /// `utf8_known`: the caller passed a `&str`, so text needs no check.
    pub(super) fn send_message(
        &mut self,
        kind: MessageKind,
        data: Bytes,
        transform: bool,
        utf8_known: bool,
    ) -> Result<(), Error> {
        self.check_can_send("send")?;
        if self.tx_fragment {
            return Err(Error::FragmentSequence);
        }
        self.check_queue(data.len())?;
        if kind == MessageKind::Text && !utf8_known && std::str::from_utf8(&data).is_err() {
            return Err(Error::InvalidUtf8);
        }
        let mut payload = data;
        let mut rsv = Rsv::NONE;
        if transform {
            // Each negotiated extension in the agreed order may transform the
            // message, writing into the reused buffer: several messages queued
            // at once share one allocation.
            let ceiling = self.cfg.limits.max_send_queue;
            for e in self.ext.iter_mut() {
                let room = e.encode_room(payload.len());
                let (peak, epoch) = (&mut self.buf_sizes[2], &mut self.epochs[2]);
                reserve_reused(&mut self.zbuf, room, peak, epoch, ceiling);
                if e.encode(kind, &payload, &mut self.zbuf) {
                    self.last_activity = self.now;
                    // Several encoder steps may have grown it past that room.
                    self.buf_sizes[2] = self.buf_sizes[2].max(self.zbuf.capacity());
                    payload = self.zbuf.split().freeze();
                    rsv = rsv.union(e.rsv());
                }
            }
            if !rsv.is_empty() && self.cfg.release_buffers_after.is_zero() {
                self.zbuf = BytesMut::new();
                self.buf_sizes[2] = 0;
            }
        }
        self.queue_data(opcode_of(kind), rsv, payload, true);
        self.stats.messages_out = self.stats.messages_out.saturating_add(1);
        Ok(())
    }

    pub(super) fn queue_data(&mut self, opcode: OpCode, rsv: Rsv, payload: Bytes, fin: bool) {
        let size = self.cfg.fragment_size_for(self.side);
        self.buffered = self.buffered.saturating_add(payload.len());
        if payload.len() <= size {
            let f = self.make_frame(opcode, rsv, fin, payload, true);
            self.data_q.push_back(f);
            return;
        }
        let mut off = 0;
        while off < payload.len() {
            let end = off.saturating_add(size).min(payload.len());
            let first = off == 0;
            let op = if first { opcode } else { OpCode::CONTINUATION };
            let last = end == payload.len();
            let f = self.make_frame(
                op,
                if first { rsv } else { Rsv::NONE },
                fin && last,
                payload.slice(off..end),
                true,
            );
            self.data_q.push_back(f);
            off = end;
        }
    }

    pub(super) fn queue_ping(&mut self, payload: Bytes, now: Instant) {
        if self.pings_out.len() == MAX_PINGS_TRACKED {
            self.pings_out.pop_front();
        }
        self.pings_out.push_back((payload.clone(), now));
        let f = self.make_frame(OpCode::PING, Rsv::NONE, true, payload, false);
        self.ctrl_q.push_back(f);
    }

    pub(super) fn make_frame(
        &mut self,
        opcode: OpCode,
        rsv: Rsv,
        fin: bool,
        payload: Bytes,
        counted: bool,
    ) -> OutFrame {
        let mask = match self.side {
            Side::Client => Some(self.rng.next_u32().to_ne_bytes()),
            Side::Server => None,
        };
        let (rsv1, rsv2, rsv3) = rsv.flags();
        let h = FrameHeader {
            fin,
            rsv1,
            rsv2,
            rsv3,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        let mut head = [0u8; FrameHeader::MAX_LEN];
        let head_len = h.encode(&mut head) as u8;
        OutFrame {
            head,
            head_len,
            payload,
            mask,
            pos: 0,
            counted,
            is_close: false,
        }
    }

    pub(super) fn next_frame(&mut self) -> Option<OutFrame> {
        if self.our_close == OurClose::Sent {
            return None;
        }
        if let Some(p) = self.pending_pongs.pop_front() {
            return Some(self.make_frame(OpCode::PONG, Rsv::NONE, true, p, false));
        }
        self.ctrl_q
            .pop_front()
            .or_else(|| self.data_q.pop_front())
            .or_else(|| self.close_frame.take().map(|f| *f))
    }

    pub(super) fn on_frame_sent(&mut self, f: &OutFrame) {
        self.stats.frames_out = self.stats.frames_out.saturating_add(1);
        if f.is_close {
            self.our_close = OurClose::Sent;
            self.ctrl_q.clear();
            if self.failure().is_some() {
                self.schedule_shutdown(true);
            } else {
                self.check_close_complete();
            }
        }
    }

    pub(super) fn has_frames_or_raw(&self) -> bool {
        self.raw_pos < self.raw_out.len()
            || self.current.is_some()
            || (self.our_close != OurClose::Sent
                && (!self.pending_pongs.is_empty()
                    || !self.ctrl_q.is_empty()
                    || !self.data_q.is_empty()
                    || self.close_frame.is_some()))
    }

    pub(super) fn drop_queued_data(&mut self) {
        for f in self.data_q.drain(..) {
            if f.counted {
                self.buffered = self.buffered.saturating_sub(f.payload.len());
            }
        }
        self.tx_fragment = false;
    }

    pub(super) fn check_can_send(&self, op: &'static str) -> Result<(), Error> {
        // Open, or the peer's close waits for the application to read the
        // messages before it (it may still answer them).
        let answering = self.echo_after_events().is_some();
        if self.state() == State::Open || answering {
            Ok(())
        } else {
            Err(self.invalid(op))
        }
    }

    pub(super) fn check_queue(&self, len: usize) -> Result<(), Error> {
        let limit = self.cfg.limits.max_send_queue;
        // An empty queue always takes one message, however large: the
        // caller already holds it in memory, and refusing it forever would
        // make it unsendable.
        if self.buffered > 0 && self.buffered.saturating_add(len) > limit {
            Err(Error::Backpressure {
                buffered_amount: self.buffered,
                limit,
            })
        } else {
            Ok(())
        }
    }

    pub(super) fn check_control(&self, len: usize, op: &'static str) -> Result<(), Error> {
        if len > 125 {
            return Err(Error::ControlPayloadTooLong(len));
        }
        self.check_can_send(op)
    }
}

/// Copies as much of `src` as fits at the start of `dst`; the count copied.
fn copy_prefix(dst: &mut [u8], src: &[u8]) -> usize {
    let k = dst.len().min(src.len());
    if let (Some(d), Some(s)) = (dst.get_mut(..k), src.get(..k)) {
        d.copy_from_slice(s);
    }
    k
}

fn opcode_of(kind: MessageKind) -> OpCode {
    match kind {
        MessageKind::Text => OpCode::TEXT,
        MessageKind::Binary => OpCode::BINARY,
    }
}
