//! What the application asks of a connection (through [`Ctx`](crate::Ctx)
//! or a [`Handle`](crate::Handle)): send, ping, close, decide on an upgrade,
//! broadcast; and failing a connection whose callback panicked. Every
//! command marks its session to be driven once the callback is done.

use ws_proto::{Accept, Bytes, CloseCode, Connection, MessageKind, PreparedMessage, State};

use crate::error::Error;
use crate::handler::Decision;
use crate::id::ConnId;
use crate::sessions::Session;
use crate::state::{LoopState, Notice};

impl LoopState {
    /// The session behind `id`, or the error a command gets without one.
    fn target(&mut self, id: ConnId) -> Result<&mut Session, Error> {
        self.sessions
            .get_mut(id)
            .map(|(sess, _)| sess)
            .ok_or(Error::UnknownConnection(id))
    }

    /// Queues a message.
    pub(crate) fn send(&mut self, id: ConnId, kind: MessageKind, data: Bytes) -> Result<(), Error> {
        let r = self.target(id)?.conn.send(kind, data);
        self.after_command(id, r)
    }

    /// Queues a prepared message (payload shared, compressed once per set of
    /// compatible deflate parameters).
    pub(crate) fn send_prepared(&mut self, id: ConnId, msg: &PreparedMessage) -> Result<(), Error> {
        let r = self.target(id)?.conn.send_prepared(msg);
        self.after_command(id, r)
    }

    /// Queues a text message from a `&str` (the core skips the UTF-8 check).
    pub(crate) fn send_text(&mut self, id: ConnId, text: &str) -> Result<(), Error> {
        let r = self.target(id)?.conn.send_text(text);
        self.after_command(id, r)
    }

    /// Queues a ping.
    pub(crate) fn ping(&mut self, id: ConnId, payload: Bytes) -> Result<(), Error> {
        let r = self.target(id)?.conn.ping(payload);
        self.after_command(id, r)
    }

    /// Starts the closing handshake.
    pub(crate) fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), Error> {
        let r = self.target(id)?.conn.close(code, reason);
        self.after_command(id, r)
    }

    /// Carries out an upgrade decision. A decision the core refuses (an
    /// invalid header or status) becomes a plain refusal with status 500.
    pub(crate) fn decide(&mut self, id: ConnId, decision: Decision) -> Result<(), Error> {
        match decision {
            Decision::Accept(a) => self.answer(id, |conn| conn.accept(a)),
            Decision::Reject {
                status,
                headers,
                body,
            } => self.reject(id, status, &headers, &body),
            Decision::Defer => self.target(id).map(|_| ()),
        }
    }

    /// Refuses an upgrade request (a refusal the core does not take becomes
    /// status 500).
    pub(crate) fn reject(
        &mut self,
        id: ConnId,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), Error> {
        self.answer(id, |conn| conn.reject(status, headers, body))
    }

    /// Answers an upgrade request with `f`; an answer the core refuses for
    /// an invalid header or status becomes a plain refusal with status 500.
    fn answer(
        &mut self,
        id: ConnId,
        f: impl FnOnce(&mut Connection) -> Result<(), ws_proto::Error>,
    ) -> Result<(), Error> {
        let now = self.now;
        let Some((sess, _)) = self.sessions.get_mut(id) else {
            return Err(Error::UnknownConnection(id));
        };
        let r = f(&mut sess.conn);
        if let Err(e @ ws_proto::Error::InvalidHeader(_)) = &r {
            ws_net::log_limited!(
                self.log.decision,
                now,
                log::Level::Warn,
                "ws-mio: upgrade decision for {id} refused ({e}); answering 500"
            );
            let _ = sess.conn.reject(500, &[], b"");
        }
        self.after_command(id, r)
    }

    /// Accepts a deferred upgrade.
    pub(crate) fn accept(&mut self, id: ConnId, accept: Accept) -> Result<(), Error> {
        let r = self.target(id)?.conn.accept(accept);
        self.after_command(id, r)
    }

    /// Marks the session to be driven; a refusal for backpressure is
    /// counted and, once per episode, noticed to the handler.
    fn after_command(&mut self, id: ConnId, r: Result<(), ws_proto::Error>) -> Result<(), Error> {
        let Some((sess, lists)) = self.sessions.get_mut(id) else {
            return r.map_err(Error::Command);
        };
        lists.mark_dirty(id, sess);
        if let Err(ws_proto::Error::Backpressure {
            buffered_amount, ..
        }) = &r
        {
            self.stats.backpressure += 1;
            if !sess.f.backpressured {
                sess.f.backpressured = true;
                self.notices
                    .push_back(id, Notice::Backpressure(*buffered_amount));
            }
        }
        r.map_err(Error::Command)
    }

    /// Sends to every open connection of the loop but `except`; returns how
    /// many took it.
    pub(crate) fn broadcast(&mut self, msg: &PreparedMessage, except: Option<ConnId>) -> usize {
        let mut sent = 0;
        for slot in 0..self.sessions.slots() {
            let Some(id) = self.sessions.id_at(slot).filter(|id| Some(*id) != except) else {
                continue;
            };
            let Some((sess, _)) = self.sessions.get_mut(id) else {
                continue;
            };
            if sess.conn.state() != State::Open {
                continue;
            }
            let r = sess.conn.send_prepared(msg);
            if self.after_command(id, r).is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// A handler callback for `id` panicked: fail the connection (1011 when
    /// open; 500 to an upgrade request waiting for its decision; dropped
    /// otherwise). Its `Closed` follows as usual, so `on_close` is called
    /// once.
    pub(crate) fn fail_panicked(&mut self, id: ConnId) {
        let now = self.now;
        let Some((sess, lists)) = self.sessions.get_mut(id) else {
            return;
        };
        if sess.f.panicked {
            return;
        }
        sess.f.panicked = true;
        match sess.conn.state() {
            State::Open => {
                if let Err(e) = sess.conn.close(CloseCode::INTERNAL_ERROR, "internal error") {
                    log::debug!("ws-mio: closing {id} after a panic: {e}");
                }
            }
            State::Connecting => {
                if sess.conn.reject(500, &[], b"").is_err() {
                    sess.fail(now, "handler panicked");
                }
            }
            State::Closing | State::Closed => {}
        }
        lists.mark_dirty(id, sess);
    }
}
