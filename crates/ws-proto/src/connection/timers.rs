//! Deadlines: the handshake, closing, keepalive and idle timers.

use super::*;

impl Connection {
    /// Fires the timers whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.buffer_release_at().is_some_and(|t| now >= t) {
            self.release_buffers();
        }
        if self.queue_release_at().is_some_and(|t| now >= t) {
            self.release_queues();
        }
        if self.ending == Ending::Closed {
            return;
        }
        // (The handshake and ping deadlines share a slot: it is the ping's
        // once open.)
        let handshake = self
            .timers
            .get(Timer::Handshake)
            .filter(|_| !matches!(self.hs, Handshake::Done));
        if let Some(d) = handshake {
            if now >= d {
                self.timers.clear(Timer::Handshake);
                match self.hs {
                    Handshake::Done | Handshake::Failed => {}
                    Handshake::ClientReadBody { .. } => self.finish_error_response(),
                    _ => {
                        self.initiator.get_or_insert(Initiator::Local);
                        self.set_failure(ConnectionError::HandshakeTimeout);
                        self.hs = Handshake::Failed;
                        self.stop_input();
                        self.abandon_output();
                        self.schedule_shutdown(false);
                    }
                }
            }
        }
        if let Some(d) = self.timers.get(Timer::Close) {
            if now >= d {
                self.timers.clear(Timer::Close);
                if self.ending == Ending::ShutdownSent {
                    self.emit_closed();
                } else if self.our_close == OurClose::Sent && self.close_received().is_some() {
                    self.schedule_shutdown(false);
                } else {
                    if self.failure().is_none() {
                        self.set_failure(ConnectionError::CloseTimeout);
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
        if let (Some(idle), Some(last)) = (self.cfg.idle_timeout, self.last_heard) {
            if now >= after(last, idle) {
                self.initiator.get_or_insert(Initiator::Local);
                self.set_failure(ConnectionError::IdleTimeout);
                self.stop_input();
                self.abandon_output();
                self.schedule_shutdown(false);
                return;
            }
        }
        if let (Some(at), Some(every)) = (self.timers.get(Timer::Ping), self.cfg.ping_interval) {
            if now >= at {
                self.ping_counter = self.ping_counter.wrapping_add(1);
                let payload = Bytes::copy_from_slice(&self.ping_counter.to_be_bytes());
                self.queue_ping(payload, now);
                self.timers.set(Timer::Ping, after(now, every));
            }
        }
    }

    /// The earliest deadline at which [`handle_timeout`](Self::handle_timeout)
    /// must be called.
    #[must_use = "drain the output until it returns None (see the driving contract)"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ending == Ending::Closed {
            return None;
        }
        let open = self.state() == State::Open;
        // The idle deadline follows the last input received.
        let idle = self
            .cfg
            .idle_timeout
            .zip(self.last_heard)
            .map(|(d, l)| after(l, d))
            .filter(|_| open);
        let ping = self.timers.get(Timer::Ping).filter(|_| open);
        let handshake = self
            .timers
            .get(Timer::Handshake)
            .filter(|_| !matches!(self.hs, Handshake::Done));
        [
            self.timers.get(Timer::Close),
            handshake,
            ping,
            idle,
            self.buffer_release_at(),
            self.queue_release_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// `now + d`, or a time so far ahead that it never comes when that overflows
/// (a caller may configure `Duration::MAX` to mean "never").
pub(super) fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// The deadlines the connection sets. (The idle deadline and the buffer
/// release are derived from the last input and activity instead.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// The opening handshake must be done by then (shares its slot with
    /// `Ping`: it is cleared when the connection opens, before a ping is
    /// due, and read only before).
    Handshake,
    /// The closing handshake (or the peer's FIN after it) must be done by then.
    Close,
    /// The next keepalive ping is due (read only while open).
    Ping,
}

impl Timer {
    /// The slot of the deadline.
    fn slot(self) -> usize {
        match self {
            Timer::Handshake | Timer::Ping => 0,
            Timer::Close => 1,
        }
    }
}

/// The table of deadlines, indexed by [`Timer::slot`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Timers {
    at: [Option<Instant>; 2],
}

impl Timers {
    /// A table with only the handshake deadline set.
    pub(super) fn starting(handshake: Instant) -> Timers {
        let mut t = Timers::default();
        t.set(Timer::Handshake, handshake);
        t
    }

    pub(super) fn get(&self, t: Timer) -> Option<Instant> {
        self.at.get(t.slot()).copied().flatten()
    }

    pub(super) fn set(&mut self, t: Timer, at: Instant) {
        if let Some(slot) = self.at.get_mut(t.slot()) {
            *slot = Some(at);
        }
    }

    pub(super) fn clear(&mut self, t: Timer) {
        if let Some(slot) = self.at.get_mut(t.slot()) {
            *slot = None;
        }
    }
}
