//! Reading and transmitting: bytes from a socket into the core (a pooled
//! segment borrowed per read), bytes from the core to a socket (through the
//! loop's one scratch buffer), the read and write budgets, pausing reads
//! while the pool is over budget, and the poll interest that follows.

use std::io;
use std::time::Instant;

use mio::Interest;
use ws_proto::Transmit;

use crate::id::{conn_token, ConnId};
use crate::sessions::Session;
use crate::state::{LoopState, Notice};

/// What one read attempt did.
pub(crate) enum ReadStep {
    /// Bytes went to the core.
    Fed,
    /// The end of the stream or a transport error went to the core.
    Ended,
    /// Nothing to read now; `true` for TLS (whose handshake may have
    /// produced bytes to write).
    Blocked(bool),
    /// The per-iteration read budget is spent.
    Budget,
    /// The pool refused a read buffer.
    Paused,
    /// Nothing to do (gone, connecting, paused or finished).
    Idle,
}

/// How a transmit pass ended.
enum TxEnd {
    Done,
    Budget,
}

impl LoopState {
    /// Reads once from a readable session into a pooled segment, feeds the
    /// core, and returns the segment to the pool.
    pub(crate) fn read_once(&mut self, id: ConnId, total: &mut usize) -> ReadStep {
        let now = self.now;
        let Some((sess, _)) = self.sessions.get_mut(id) else {
            return ReadStep::Idle;
        };
        if sess.f.connecting || sess.f.read_paused || sess.f.eof {
            return ReadStep::Idle;
        }
        if *total >= self.options.read_budget {
            return ReadStep::Budget;
        }
        let Some(mut seg) = self.options.pool.try_get(self.options.read_size) else {
            return ReadStep::Paused;
        };
        let step = match sess.transport.read(seg.unfilled_mut()) {
            Ok(0) => {
                sess.f.eof = true;
                sess.conn.handle_eof(now);
                ReadStep::Ended
            }
            Ok(n) => {
                seg.advance(n);
                sess.conn.handle_input(now, &seg);
                *total += n;
                self.stats.bytes_read += n as u64;
                ReadStep::Fed
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ReadStep::Blocked(sess.transport.is_tls())
            }
            Err(e) => {
                sess.f.eof = true;
                sess.conn.handle_transport_error(now, &e);
                ReadStep::Ended
            }
        };
        // The segment goes back to the pool here: an idle connection holds
        // no read buffer.
        drop(seg);
        step
    }

    /// Reading stopped on the budget: read again next iteration.
    pub(crate) fn carry_read(&mut self, id: ConnId) {
        if let Some((sess, lists)) = self.sessions.get_mut(id) {
            lists.carry(id, sess, true, false);
        }
    }

    /// Pauses reading of a session (the pool is over budget).
    pub(crate) fn pause(&mut self, id: ConnId) {
        let Some((sess, lists)) = self.sessions.get_mut(id) else {
            return;
        };
        if sess.f.read_paused {
            return;
        }
        sess.f.read_paused = true;
        lists.pause(id);
        self.stats.read_pauses += 1;
        self.update_interest(id);
    }

    /// Resumes paused sessions once the pool has room for a read again.
    pub(crate) fn resume_paused(&mut self) {
        if !self.sessions.lists().any_paused() {
            return;
        }
        match self.options.pool.try_get(self.options.read_size) {
            Some(probe) => drop(probe),
            None => return,
        }
        for slot in self.sessions.take_paused() {
            let Some(id) = self.sessions.id_at(slot) else {
                continue;
            };
            let Some((sess, lists)) = self.sessions.get_mut(id) else {
                continue;
            };
            if !sess.f.read_paused {
                continue;
            }
            sess.f.read_paused = false;
            lists.carry(id, sess, true, false);
            self.update_interest(id);
        }
    }

    /// A client's TCP connect reported readiness: completed or failed?
    pub(crate) fn finish_connect(&mut self, id: ConnId) {
        let now = self.now;
        let Some((sess, _)) = self.sessions.get_mut(id) else {
            return;
        };
        if !sess.f.connecting {
            return;
        }
        let sock = sess.transport.socket();
        let failure = match sock.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match sock.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Some(e),
            },
        };
        sess.f.connecting = false;
        match failure {
            None => self.stats.connected += 1,
            Some(e) => {
                sess.f.eof = true;
                sess.conn
                    .handle_transport_error(now, format!("connect failed: {e}"));
            }
        }
    }

    /// Moves bytes from the core to the socket (through the scratch buffer),
    /// until the core has nothing more, the socket is full (the unwritten
    /// remainder goes to a pooled segment) or the write budget is spent.
    pub(crate) fn transmit(&mut self, id: ConnId) {
        let now = self.now;
        let budget = self.options.write_budget;
        let Some((sess, lists)) = self.sessions.get_mut(id) else {
            return;
        };
        if sess.f.connecting {
            return;
        }
        let mut written = 0u64;
        let end = transmit_loop(
            sess,
            &mut self.scratch,
            &self.options.pool,
            now,
            budget,
            &mut written,
        );
        self.stats.bytes_written += written;
        sess.f.write_blocked = false;
        match end {
            Ok(TxEnd::Done) => {}
            Ok(TxEnd::Budget) => lists.carry(id, sess, false, true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => sess.f.write_blocked = true,
            Err(e) => {
                sess.pending = None;
                sess.f.eof = true;
                sess.conn.handle_transport_error(now, &e);
            }
        }
    }

    /// After a drive: the drain notice, the deadline, the poll interest.
    pub(crate) fn after_drive(&mut self, id: ConnId) {
        let Some((sess, _)) = self.sessions.get_mut(id) else {
            return;
        };
        if sess.f.backpressured && sess.conn.buffered_amount() == 0 {
            sess.f.backpressured = false;
            self.notices.push_back(id, Notice::Drain);
        }
        self.timers.schedule(id, sess);
        self.update_interest(id);
    }

    /// Registers readable interest unless reading is paused or over, and
    /// writable interest only while a write is blocked (or a connect is in
    /// flight); deregisters when neither is wanted.
    pub(crate) fn update_interest(&mut self, id: ConnId) {
        let now = self.now;
        let registry = self.poll.registry();
        let Some((sess, lists)) = self.sessions.get_mut(id) else {
            return;
        };
        let read = !sess.f.read_paused && !sess.f.eof;
        let write = sess.f.connecting || sess.f.write_blocked;
        let want = match (read, write) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        };
        if want == sess.interest {
            return;
        }
        let token = conn_token(id);
        let sock = sess.transport.socket_mut();
        let result = match (sess.interest, want) {
            (None, Some(i)) => registry.register(sock, token, i),
            (Some(_), Some(i)) => registry.reregister(sock, token, i),
            (Some(_), None) => registry.deregister(sock),
            (None, None) => Ok(()),
        };
        match result {
            Ok(()) => sess.interest = want,
            Err(e) => {
                sess.f.eof = true;
                sess.conn
                    .handle_transport_error(now, format!("poll registration failed: {e}"));
                lists.mark_dirty(id, sess);
            }
        }
    }
}

/// The body of [`LoopState::transmit`]: `Err(WouldBlock)` when the socket is
/// full.
fn transmit_loop(
    sess: &mut Session,
    scratch: &mut [u8],
    pool: &ws_buf::BufferPool,
    now: Instant,
    budget: usize,
    written: &mut u64,
) -> io::Result<TxEnd> {
    let mut sent = 0usize;
    loop {
        if let Some((seg, pos)) = sess.pending.as_mut() {
            while *pos < seg.len() {
                let n = sess.transport.write(seg.get(*pos..).unwrap_or_default())?;
                *pos += n;
                sent += n;
                *written += n as u64;
            }
            sess.pending = None;
        }
        sess.transport.flush()?;
        if sent >= budget {
            return Ok(TxEnd::Budget);
        }
        match sess.conn.poll_transmit(now, scratch) {
            None => return Ok(TxEnd::Done),
            Some(Transmit::Data(n)) => {
                let data = scratch.get(..n).unwrap_or_default();
                let k = match sess.transport.write(data) {
                    Ok(k) => k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(e),
                };
                sent += k;
                *written += k as u64;
                if k < data.len() {
                    // Keep only the unwritten remainder, in a pooled segment
                    // sized for it, until the socket is writable again.
                    let rest = data.get(k..).unwrap_or_default();
                    let mut seg = pool.get(rest.len());
                    seg.extend_from_slice(rest);
                    sess.pending = Some((seg, 0));
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            }
            Some(Transmit::Shutdown) => sess.transport.shutdown_write()?,
        }
    }
}
