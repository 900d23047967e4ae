//! The frame reader: header checks, unmasking, UTF-8, reassembly, inflation, delivery.

use super::*;

impl Connection {
    /// Feeds bytes received from the transport.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        self.now = now;
        self.stats.bytes_in = self.stats.bytes_in.saturating_add(data.len() as u64);
        if self.ending == Ending::Closed || self.input_closed {
            return;
        }
        if let Handshake::ClientReadBody { body, want, .. } = &mut self.hs {
            let take = want.saturating_sub(body.len()).min(data.len());
            body.extend_from_slice(data.get(..take).unwrap_or_default());
            if body.len() >= *want {
                self.finish_error_response();
            }
            return;
        }
        self.last_activity = now;
        let was_open = matches!(self.hs, Handshake::Done);
        self.make_room(data.len());
        self.rbuf.extend_from_slice(data);
        self.process();
        // The buffer is kept for the next input while the connection is busy
        // (its allocation is reclaimed once the application has dropped the
        // messages that share it: no allocation per message). The handshake
        // is not steady state, and with no release delay nothing is kept.
        if self.rbuf.is_empty() && (!was_open || self.cfg.release_buffers_after.is_zero()) {
            self.rbuf = BytesMut::new();
            self.buf_sizes[0] = 0;
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
        let deflate = self.deflate.is_some();
        if h.rsv2 || h.rsv3 {
            return Err(ProtocolError::ReservedBits);
        }
        match self.side {
            Side::Server if h.mask.is_none() => return Err(ProtocolError::UnmaskedFrame),
            Side::Client if h.mask.is_some() => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if h.opcode.is_control() {
            if h.rsv1 {
                return Err(if deflate {
                    ProtocolError::CompressedControl
                } else {
                    ProtocolError::ReservedBits
                });
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
            if h.rsv1 {
                return Err(if deflate {
                    ProtocolError::CompressedContinuation
                } else {
                    ProtocolError::ReservedBits
                });
            }
            if self.msg.is_none() {
                return Err(ProtocolError::UnexpectedContinuation);
            }
        } else {
            if self.msg.is_some() {
                return Err(ProtocolError::ExpectedContinuation);
            }
            if h.rsv1 && !deflate {
                return Err(ProtocolError::ReservedBits);
            }
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
            compressed: h.rsv1,
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
        if !m.compressed
            && (m.size as u64).saturating_add(h.payload_len) > limits.max_message_size as u64
        {
            return Err(ProtocolError::MessageTooLarge {
                limit: limits.max_message_size,
            });
        }
        self.rx_validate = m.kind == MessageKind::Text && !m.compressed;
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
        if m.compressed {
            let Some(d) = self.deflate.as_mut() else {
                return;
            };
            let before = m.buf.len();
            let limit = before.saturating_add(max.saturating_sub(m.size));
            // Room for a frame like the previous one to inflate in one step
            // (plus the flush tail's step): several messages of one read
            // then share one allocation, reused once the application has
            // dropped them.
            let want = d.decompressor.first_room(payload.len()).saturating_add(256);
            let ceiling = limit.saturating_add(1);
            let room = want.min(ceiling.saturating_sub(before));
            let (peak, epoch) = (&mut self.buf_sizes[1], &mut self.epochs[1]);
            reserve_reused(&mut m.buf, room, peak, epoch, ceiling);
            match d.decompressor.decompress(&payload, fin, &mut m.buf, limit) {
                Ok(_) => {}
                Err(InflateError::TooLarge) => {
                    return self.fail(ProtocolError::MessageTooLarge { limit: max })
                }
                Err(_) => return self.fail(ProtocolError::BadCompressedData),
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
        if !m.compressed && !streaming && (!fin || m.frames > 1) {
            let ceiling = max.saturating_add(1);
            let (peak, epoch) = (&mut self.buf_sizes[1], &mut self.epochs[1]);
            reserve_reused(&mut m.buf, payload.len(), peak, epoch, ceiling);
            m.buf.extend_from_slice(&payload);
        }
        if streaming {
            let first = m.frames == 1;
            let data = if m.compressed {
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
        let data = if m.compressed || m.frames > 1 {
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
        self.asm = BytesMut::new();
        self.buf_sizes[0] = 0;
        self.buf_sizes[1] = 0;
        self.rx_header = None;
        self.msg = None;
    }
}
