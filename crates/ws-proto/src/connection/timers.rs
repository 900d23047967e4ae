//! Deadlines: the handshake, closing, keepalive and idle timers.

use super::*;

impl Connection {
    /// Fires the timers whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.buffer_release_at().is_some_and(|t| now >= t) {
            self.release_buffers();
        }
        if self.closed_emitted {
            return;
        }
        if let Some(d) = self.handshake_deadline {
            if now >= d {
                self.handshake_deadline = None;
                match self.hs {
                    Handshake::Done | Handshake::Failed => {}
                    Handshake::ClientReadBody { .. } => self.finish_error_response(),
                    _ => {
                        self.initiator.get_or_insert(Initiator::Local);
                        self.failure = Some(ConnectionError::HandshakeTimeout);
                        self.hs = Handshake::Failed;
                        self.stop_input();
                        self.abandon_output();
                        self.schedule_shutdown(false);
                    }
                }
            }
        }
        if let Some(d) = self.close_deadline {
            if now >= d {
                self.close_deadline = None;
                if self.shutdown_sent {
                    self.emit_closed();
                } else if self.close_sent && self.close_received.is_some() {
                    self.schedule_shutdown(false);
                } else {
                    if self.failure.is_none() {
                        self.failure = Some(ConnectionError::CloseTimeout);
                    }
                    self.stop_input();
                    self.abandon_output();
                    self.schedule_shutdown(false);
                }
            }
        }
        if self.state() != State::Open {
            return;
        }
        if let (Some(idle), Some(last)) = (self.cfg.idle_timeout, self.last_received) {
            if now >= after(last, idle) {
                self.initiator.get_or_insert(Initiator::Local);
                self.failure = Some(ConnectionError::IdleTimeout);
                self.stop_input();
                self.abandon_output();
                self.schedule_shutdown(false);
                return;
            }
        }
        if let (Some(at), Some(every)) = (self.next_ping, self.cfg.ping_interval) {
            if now >= at {
                self.ping_counter = self.ping_counter.wrapping_add(1);
                let payload = Bytes::copy_from_slice(&self.ping_counter.to_be_bytes());
                self.queue_ping(payload, now);
                self.next_ping = Some(after(now, every));
            }
        }
    }

    /// The earliest deadline at which [`handle_timeout`](Self::handle_timeout)
    /// must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed_emitted {
            return None;
        }
        let mut t = [
            self.close_deadline,
            None,
            None,
            None,
            self.buffer_release_at(),
        ];
        if !matches!(self.hs, Handshake::Done) {
            t[1] = self.handshake_deadline;
        } else if self.state() == State::Open {
            t[2] = self.next_ping;
            t[3] = self
                .cfg
                .idle_timeout
                .zip(self.last_received)
                .map(|(d, l)| after(l, d));
        }
        t.into_iter().flatten().min()
    }
}

/// `now + d`, or a time so far ahead that it never comes when that overflows
/// (a caller may configure `Duration::MAX` to mean "never").
pub(super) fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}
