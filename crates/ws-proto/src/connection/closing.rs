//! The closing handshake, failing the connection, shutdown and the terminal event.

use super::*;

impl Connection {
    /// Starts the closing handshake. Messages already queued are sent first.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !CloseCode::is_sendable(code.as_u16()) {
            return Err(Error::InvalidCloseCode(code.as_u16()));
        }
        if reason.len() > 123 {
            return Err(Error::CloseReasonTooLong(reason.len()));
        }
        if self.state() != State::Open {
            return Err(self.invalid("close"));
        }
        self.initiator = Some(Initiator::Local);
        self.queue_close(code, reason);
        self.timers
            .set(Timer::Close, after(self.now, self.cfg.close_timeout));
        Ok(())
    }

    /// The transport's read side ended (the peer sent FIN).
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = now;
        if self.ending == Ending::Closed || self.eof_received {
            return;
        }
        self.eof_received = true;
        match self.hs {
            Handshake::Done => {}
            Handshake::ClientReadBody { .. } => return self.finish_error_response(),
            Handshake::Failed => {
                if self.ending == Ending::ShutdownSent {
                    self.emit_closed();
                }
                return;
            }
            _ => {
                self.initiator.get_or_insert(Initiator::Remote);
                self.fail_handshake(HandshakeError::ConnectionClosed, false);
                return;
            }
        }
        self.flush_close_echo();
        if self.ending == Ending::ShutdownSent {
            self.emit_closed();
        } else if self.close_received().is_some() {
            // Either the closing handshake is done (a client waiting for the
            // server to close TCP) or the peer half-closed after its close
            // frame: send what is left (our echo), then shut down.
            self.schedule_shutdown(false);
        } else {
            self.initiator.get_or_insert(Initiator::Remote);
            if self.failure().is_none() {
                self.set_failure(ConnectionError::ConnectionLost);
            }
            self.stop_input();
            self.schedule_shutdown(false);
        }
    }

    /// The transport failed (reset, TLS error...): the connection is over.
    /// Emits `Closed` with [`ConnectionError::Io`] unless it was already
    /// closed. Pass the `io::Error` itself (its kind is kept) or a message
    /// (kind `Other`).
    pub fn handle_transport_error(&mut self, now: Instant, error: impl Into<TransportError>) {
        self.now = now;
        if self.ending == Ending::Closed {
            return;
        }
        if self.failure().is_none() {
            self.set_failure(ConnectionError::Io(error.into()));
        }
        self.initiator.get_or_insert(Initiator::Remote);
        self.stop_input();
        self.abandon_output();
        self.emit_closed();
    }

    pub(super) fn flush_close_echo(&mut self) {
        if let Some((_, code, reason)) = self.closing.as_mut().and_then(|c| c.echo.take()) {
            if !self.our_close.queued() {
                self.queue_close_raw(code, &reason);
            }
        }
    }

    pub(super) fn on_close_frame(&mut self, payload: &[u8]) {
        let (code, reason) = match payload {
            [] => (CloseCode::NO_STATUS, String::new()),
            [_] => return self.fail(ProtocolError::CloseTooShort),
            [a, b, rest @ ..] => {
                let raw = u16::from_be_bytes([*a, *b]);
                let Some(code) = CloseCode::from_wire(raw) else {
                    return self.fail(ProtocolError::InvalidCloseCode(raw));
                };
                match std::str::from_utf8(rest) {
                    Ok(r) => (code, r.to_string()),
                    Err(_) => return self.fail(ProtocolError::InvalidUtf8),
                }
            }
        };
        self.initiator.get_or_insert(Initiator::Remote);
        self.stop_input();
        if !self.our_close.queued() {
            // Echo the status code and the reason (RFC 6455 §5.5.1; browsers,
            // Node `ws` and Python `websockets` show the reason of the close
            // that completes the handshake) once the application has seen the
            // messages that came before the close; data it sends in answer to
            // them goes out first. The reason came in a control frame, so it
            // is at most 123 bytes and fits our own close frame.
            let echo = if code == CloseCode::NO_STATUS {
                None
            } else {
                Some(code)
            };
            if self.events.is_empty() {
                self.queue_close_raw(echo, &reason);
            } else {
                self.closing_mut().echo = Some((self.events.len(), echo, reason.clone()));
            }
        }
        self.closing_mut().received = Some((code, reason));
        self.check_close_complete();
    }

    /// Fails the connection: queue the close frame for `e`, stop reading,
    /// shut down once the close frame is out.
    pub(super) fn fail(&mut self, e: ProtocolError) {
        self.stop_input();
        if self.failure().is_none() {
            self.initiator.get_or_insert(Initiator::Local);
            let code = e.close_code();
            let mut reason = e.to_string();
            truncate_utf8(&mut reason, 123);
            self.set_failure(ConnectionError::Protocol(e));
            // Data already queued (or sent by the application in answer to
            // the events before the violation) goes out before the close.
            if !self.our_close.queued() && self.echo_after_events().is_none() {
                if self.events.is_empty() {
                    self.queue_close(code, &reason);
                } else {
                    self.closing_mut().echo = Some((self.events.len(), Some(code), reason));
                }
            }
        }
        if self.our_close == OurClose::Sent {
            self.schedule_shutdown(true);
        }
    }

    pub(super) fn queue_close(&mut self, code: CloseCode, reason: &str) {
        self.queue_close_raw(Some(code), reason);
    }

    pub(super) fn queue_close_raw(&mut self, code: Option<CloseCode>, reason: &str) {
        let mut p = Vec::with_capacity(reason.len().saturating_add(2));
        if let Some(c) = code {
            p.extend_from_slice(&c.as_u16().to_be_bytes());
            p.extend_from_slice(reason.as_bytes());
        }
        let mut f = self.make_frame(OpCode::CLOSE, Rsv::NONE, true, Bytes::from(p), false);
        f.is_close = true;
        self.close_frame = Some(Box::new(f));
        self.our_close = OurClose::Queued;
        self.pending_pongs.clear();
    }

    pub(super) fn check_close_complete(&mut self) {
        if !(self.our_close == OurClose::Sent && self.close_received().is_some()) {
            return;
        }
        match self.side {
            // The server closes TCP first (RFC 6455 §7.1.1).
            Side::Server => self.schedule_shutdown(true),
            Side::Client if self.eof_received => self.schedule_shutdown(false),
            Side::Client => {
                let at = after(self.now, self.cfg.close_timeout);
                self.timers.set(Timer::Close, at);
            }
        }
    }

    pub(super) fn schedule_shutdown(&mut self, drain: bool) {
        if self.ending != Ending::Running {
            return;
        }
        self.ending = Ending::ShutdownDue { drain };
        self.timers.clear(Timer::Close);
    }

    /// Discards everything not yet handed out (the transport is unusable or
    /// the peer unresponsive).
    pub(super) fn abandon_output(&mut self) {
        self.drop_queued_data();
        if let Some(f) = self.current.take() {
            if f.counted {
                let sent = f.pos.saturating_sub(usize::from(f.head_len));
                self.buffered = self
                    .buffered
                    .saturating_sub(f.payload.len().saturating_sub(sent));
            }
        }
        self.ctrl_q.clear();
        self.pending_pongs.clear();
        self.close_frame = None;
        self.raw_out = Vec::new();
        self.raw_pos = 0;
    }

    pub(super) fn emit_closed(&mut self) {
        if self.ending == Ending::Closed {
            return;
        }
        self.ending = Ending::Closed;
        self.timers.clear(Timer::Close);
        self.timers.clear(Timer::Handshake);
        self.timers.clear(Timer::Ping);
        self.stop_input();
        self.abandon_output();
        let clean = self.our_close == OurClose::Sent && self.close_received().is_some();
        let (code, reason) = match (self.failure(), self.close_received()) {
            (Some(ConnectionError::Protocol(e)), _) => {
                let mut r = e.to_string();
                truncate_utf8(&mut r, 123);
                (e.close_code(), r)
            }
            (_, Some((c, r))) => (*c, r.clone()),
            _ => (CloseCode::ABNORMAL, String::new()),
        };
        self.events.push_back(Event::Closed(Closed {
            code,
            reason,
            initiator: self.initiator.unwrap_or(Initiator::Remote),
            clean,
            error: self.failure().cloned(),
        }));
    }
}

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        // The last char boundary at or before `max` (0 always is one).
        let end = (0..=max)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        s.truncate(end);
    }
}

/// Our close frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OurClose {
    /// None queued yet.
    NotQueued,
    /// Queued (`close_frame`), not yet handed out.
    Queued,
    /// Handed out by `poll_transmit`.
    Sent,
}

impl OurClose {
    /// Queued or sent.
    pub(super) fn queued(self) -> bool {
        self != OurClose::NotQueued
    }
}

/// The transport's write side and the connection's end, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ending {
    /// Not shutting down.
    Running,
    /// `Transmit::Shutdown` is due once everything queued is out; with
    /// `drain`, keep reading until the peer's FIN (or the close timer).
    ShutdownDue {
        /// Wait for the peer's FIN after our shutdown.
        drain: bool,
    },
    /// `Transmit::Shutdown` was handed out.
    ShutdownSent,
    /// The terminal `Event::Closed` was emitted: nothing more happens.
    Closed,
}
