//! Reading and transmitting: bytes from a socket into the core (a pooled
//! segment borrowed per read), bytes from the core to a socket (through the
//! loop's one scratch buffer), the read and write budgets, pausing reads
//! while the pool is over budget, and the poll interest that follows.

use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::time::Instant;

use bytes::{Buf, Bytes};
use mio::Interest;
use ws_proto::VectoredTransmit;

use crate::id::{conn_token, ConnId};
use crate::sessions::{ProxyPhase, Session};
use crate::state::{LoopState, Notice};
use crate::transport::Transport;

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

/// Moves the proxy handshake of a session on: writes what the ws-net state
/// machine has to send, reads and feeds its answer, until the socket would
/// block, the tunnel is open (then `connecting` ends and the WebSocket, or
/// TLS, handshake starts) or the proxy fails it (the core hears why, as for a
/// failed TCP connect). Bounded: every round reads at least a byte of an
/// answer the state machine bounds, or stops. Whether the handshake is over
/// (open or failed: its phase can go).
fn proxy_io(sess: &mut Session, p: &mut ProxyPhase, now: Instant) -> bool {
    use std::io::{Read, Write};
    let mut sock = sess.transport.socket();
    let mut buf = [0u8; 512];
    let mut result: Result<bool, String> = Ok(false);
    for _ in 0..=ws_net::proxy::MAX_HTTP_ANSWER + 1 {
        if p.out.is_empty() {
            p.out = p.hs.transmit().unwrap_or_default();
        }
        let mut write_error = None;
        while !p.out.is_empty() {
            match sock.write(&p.out) {
                Ok(n) => {
                    p.out.drain(..n.min(p.out.len()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    write_error = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(e) = write_error {
            result = Err(e);
            break;
        }
        result = match sock.read(&mut buf) {
            Ok(0) => Err(p.hs.eof().to_string()),
            Ok(n) => match p.hs.receive(buf.get(..n).unwrap_or_default()) {
                Ok(ws_net::proxy::ProxyStep::Done) => Ok(true),
                Ok(ws_net::proxy::ProxyStep::NeedMore) => continue,
                Err(e) => Err(e.to_string()),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e.to_string()),
        };
        break;
    }
    match result {
        Ok(true) => {
            log::debug!("ws-mio: proxy tunnel through {} open", p.proxy);
            sess.f.proxying = false;
            sess.f.connecting = false;
            true
        }
        Ok(false) => false,
        Err(e) => {
            sess.fail(now, &format!("proxy {}: {e}", p.proxy));
            true
        }
    }
}

/// How a transmit pass ended.
enum TxEnd {
    Done,
    Budget,
}

impl LoopState {
    /// Reads once from a readable session straight into the core's receive
    /// buffer (no copy), unless the pool's budget is spent.
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
        // Unwritten remainders hold the pool: while its budget is spent,
        // reading (which makes more to write) waits.
        if !self.options.pool.can_get(self.options.read_size) {
            return ReadStep::Paused;
        }
        // Into the core's receive buffer when it has one (no copy); a
        // connection that holds none (new, or idle) reads into the loop's
        // scratch buffer instead, so a wake-up that finds nothing allocates
        // nothing, and the core keeps only what arrived.
        let direct = sess.conn.receive_capacity() > 0;
        let room = if direct {
            sess.conn.receive_buffer(self.options.read_size)
        } else {
            let size = self.options.read_size.min(self.scratch.len());
            self.scratch.get_mut(..size).unwrap_or_default()
        };
        match sess.transport.read(room) {
            Ok(0) => {
                sess.f.eof = true;
                sess.conn.handle_eof(now);
                ReadStep::Ended
            }
            Ok(n) => {
                if direct {
                    sess.conn.handle_received(now, n);
                } else {
                    sess.conn
                        .handle_input(now, self.scratch.get(..n).unwrap_or_default());
                }
                *total += n;
                self.stats.bytes_read += n as u64;
                ReadStep::Fed
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Sleep until the rest of a large frame is there, not
                // until its next piece (see `ws_net::low_water`).
                if let Transport::Plain(s) = &sess.transport {
                    let missing = sess.conn.frame_remaining();
                    sess.f.low_water.after_empty_read(s.as_fd(), missing);
                }
                ReadStep::Blocked(sess.transport.is_tls())
            }
            Err(e) => {
                sess.f.eof = true;
                sess.conn.handle_transport_error(now, &e);
                ReadStep::Ended
            }
        }
    }

    /// Lowers a raised receive low-water mark (before the session's timers
    /// run): whether it was raised, so the caller reads what is queued first
    /// and a slow sender's pieces count as activity, not silence.
    pub(crate) fn lower_low_water(&mut self, id: ConnId) -> bool {
        let Some((sess, _)) = self.sessions.get_mut(id) else {
            return false;
        };
        match &sess.transport {
            Transport::Plain(s) => sess.f.low_water.reset(s.as_fd()),
            _ => false,
        }
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
        if !self.options.pool.can_get(self.options.read_size) {
            return;
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

    /// Whether a session is in its proxy handshake (past the TCP connect).
    pub(crate) fn in_proxy_handshake(&mut self, id: ConnId) -> bool {
        self.sessions.get_mut(id).is_some_and(|(s, _)| s.f.proxying)
            && self.proxies.get(&id).is_some_and(|p| p.tcp_done)
    }

    /// A client's TCP connect reported readiness: completed or failed? In
    /// a proxy handshake, moves it on.
    pub(crate) fn finish_connect(&mut self, id: ConnId) {
        let now = self.now;
        let Some((sess, _)) = self.sessions.get_mut(id) else {
            return;
        };
        if !sess.f.connecting {
            return;
        }
        if sess.f.proxying {
            if let Some(p) = self.proxies.get_mut(&id).filter(|p| p.tcp_done) {
                if proxy_io(sess, p, now) {
                    self.proxies.remove(&id);
                }
                return;
            }
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
        if failure.is_none() && sess.f.proxying {
            if let Some(p) = self.proxies.get_mut(&id) {
                // The tunnel comes first; `connecting` stays set (no
                // WebSocket or TLS byte moves) until it is open.
                p.tcp_done = true;
                self.stats.connected += 1;
                if proxy_io(sess, p, now) {
                    self.proxies.remove(&id);
                }
                return;
            }
        }
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
                sess.pending_payload = Bytes::new();
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
        // The remainder of the last write goes first.
        while sess.has_pending() {
            let n = {
                let seg = match sess.pending.as_ref() {
                    Some((seg, pos)) => seg.get(*pos..).unwrap_or_default(),
                    None => &[],
                };
                let bufs = [IoSlice::new(seg), IoSlice::new(&sess.pending_payload)];
                sess.transport.write_vectored(&bufs)?
            };
            sess.consume_pending(n);
            sent += n;
            *written += n as u64;
        }
        sess.transport.flush()?;
        if sent >= budget {
            return Ok(TxEnd::Budget);
        }
        let (n, mut payload) = match sess.conn.poll_transmit_vectored(now, scratch) {
            None => return Ok(TxEnd::Done),
            Some(VectoredTransmit::Data(n)) => (n, Bytes::new()),
            // A large payload goes out from the message's own bytes.
            Some(VectoredTransmit::DataThen(n, payload)) => (n, payload),
            Some(VectoredTransmit::Shutdown) => {
                sess.transport.shutdown_write()?;
                continue;
            }
        };
        let data = scratch.get(..n).unwrap_or_default();
        let bufs = [IoSlice::new(data), IoSlice::new(&payload)];
        let k = match sess.transport.write_vectored(&bufs) {
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        sent += k;
        *written += k as u64;
        if k < data.len() + payload.len() {
            // Keep only the unwritten remainder until the socket is writable
            // again: what is left of the scratch bytes in a pooled segment
            // sized for it, the payload as it is.
            if let Some(rest) = data.get(k..).filter(|r| !r.is_empty()) {
                let mut seg = pool.get(rest.len());
                seg.extend_from_slice(rest);
                sess.pending = Some((seg, 0));
            } else {
                // Moves the start: no allocation, unlike `slice`.
                payload.advance(k - data.len());
            }
            sess.pending_payload = payload;
            return Err(io::ErrorKind::WouldBlock.into());
        }
    }
}
