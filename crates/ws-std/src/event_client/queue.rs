//! The send queue: every send of the client goes in here and a sender
//! thread moves it into the protocol core, in order.

use std::collections::VecDeque;

use bytes::Bytes;
use ws_buf::BufferSegment;
use ws_proto::{CloseCode, MessageKind};

use super::payload::Payload;
use super::WebSocketClient;
use crate::driver::lock;
use crate::error::Error;
use crate::logctx::wslog;

/// Largest ping payload (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    New,
    Connecting,
    Open,
    Closed,
}

pub(super) enum Outgoing {
    /// A whole message; `compress: false` skips the extensions.
    Message {
        kind: MessageKind,
        data: Bytes,
        compress: bool,
    },
    /// One piece of a message sent in pieces.
    Fragment {
        kind: MessageKind,
        data: Bytes,
        fin: bool,
    },
    Ping(Bytes),
    Close(CloseCode, String),
}

impl Outgoing {
    /// Bytes counted by `buffered_amount`.
    pub(super) fn len(&self) -> usize {
        match self {
            Outgoing::Message { data, .. } | Outgoing::Fragment { data, .. } => data.len(),
            Outgoing::Ping(_) | Outgoing::Close(..) => 0,
        }
    }

    /// Moves the item into the core.
    pub(super) fn send(self, conn: &mut ws_proto::Connection) -> Result<(), ws_proto::Error> {
        match self {
            Outgoing::Message {
                kind,
                data,
                compress: true,
            } => conn.send(kind, data),
            Outgoing::Message { kind, data, .. } => conn.send_uncompressed(kind, data),
            Outgoing::Fragment { kind, data, fin } => conn.send_fragment(kind, data, fin),
            Outgoing::Ping(p) => conn.ping(p),
            Outgoing::Close(code, reason) => conn.close(code, &reason),
        }
    }
}

pub(super) struct Queue {
    pub(super) phase: Phase,
    pub(super) close_requested: bool,
    pub(super) items: VecDeque<Outgoing>,
    pub(super) bytes: usize,
    pub(super) stop_sender: bool,
    /// A message sent in fragments is in progress, of this kind.
    fragmenting: Option<MessageKind>,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            phase: Phase::New,
            close_requested: false,
            items: VecDeque::new(),
            bytes: 0,
            stop_sender: false,
            fragmenting: None,
        }
    }
}

impl Queue {
    /// Drops every queued send (the connection is over or failing).
    pub(super) fn clear(&mut self) {
        self.items.clear();
        self.bytes = 0;
        self.fragmenting = None;
    }
}

impl WebSocketClient {
    /// Queues a text message.
    pub fn send_text(&self, text: &str) -> Result<(), Error> {
        self.enqueue(Outgoing::Message {
            kind: MessageKind::Text,
            data: Bytes::copy_from_slice(text.as_bytes()),
            compress: true,
        })
    }

    /// Queues a binary message: from a borrowed slice (copied once) or from
    /// owned bytes (moved), see [`Payload`].
    pub fn send_binary(&self, data: impl Payload) -> Result<(), Error> {
        self.enqueue(Outgoing::Message {
            kind: MessageKind::Binary,
            data: data.into_bytes(),
            compress: true,
        })
    }

    /// Queues a message that is sent without compression or any other
    /// extension, whatever was negotiated (for data that is already
    /// compressed, or must go out as is). Text must be UTF-8
    /// ([`Error::InvalidUtf8`] otherwise).
    pub fn send_uncompressed(&self, kind: MessageKind, data: impl Payload) -> Result<(), Error> {
        let data = data.into_bytes();
        if kind == MessageKind::Text && std::str::from_utf8(&data).is_err() {
            return Err(Error::InvalidUtf8);
        }
        self.enqueue(Outgoing::Message {
            kind,
            data,
            compress: false,
        })
    }

    /// Queues the segment's bytes as a text message, without copying; the
    /// segment returns to its pool once written. Fails with
    /// [`Error::InvalidUtf8`] if it is not UTF-8.
    pub fn send_as_text(&self, segment: BufferSegment) -> Result<(), Error> {
        if std::str::from_utf8(&segment).is_err() {
            return Err(Error::InvalidUtf8);
        }
        self.send_segment(MessageKind::Text, segment)
    }

    /// Queues the segment's bytes as a binary message, without copying; the
    /// segment returns to its pool once written.
    pub fn send_as_binary(&self, segment: BufferSegment) -> Result<(), Error> {
        self.send_segment(MessageKind::Binary, segment)
    }

    fn send_segment(&self, kind: MessageKind, segment: BufferSegment) -> Result<(), Error> {
        self.enqueue(Outgoing::Message {
            kind,
            data: segment.freeze(),
            compress: true,
        })
    }

    /// Queues one piece of a text message sent as it is produced: the first
    /// call starts the message, the one with `fin` ends it. Every piece is
    /// a `&str`, so the whole message is UTF-8. Pieces count in
    /// [`buffered_amount`](Self::buffered_amount) like messages, and one
    /// that would take it past the limit fails with [`Error::QueueFull`]
    /// (the message stays open: send the piece again later). Until the last
    /// piece, other sends fail with [`ws_proto::Error::FragmentSequence`]
    /// (in [`Error::Command`]); pings and `close` may go between pieces.
    /// Pieces are never compressed.
    pub fn send_text_fragment(&self, text: &str, fin: bool) -> Result<(), Error> {
        self.enqueue(Outgoing::Fragment {
            kind: MessageKind::Text,
            data: Bytes::copy_from_slice(text.as_bytes()),
            fin,
        })
    }

    /// Queues one piece of a binary message sent as it is produced (see
    /// [`send_text_fragment`](Self::send_text_fragment)).
    pub fn send_binary_fragment(&self, data: impl Payload, fin: bool) -> Result<(), Error> {
        self.enqueue(Outgoing::Fragment {
            kind: MessageKind::Binary,
            data: data.into_bytes(),
            fin,
        })
    }

    /// Queues a ping (at most 125 bytes of payload, else
    /// [`ws_proto::Error::ControlPayloadTooLong`] in [`Error::Command`]);
    /// the server's pong reaches the `on_pong` handlers and gives
    /// [`latency`](Self::latency).
    pub fn ping(&self, payload: impl Payload) -> Result<(), Error> {
        let payload = payload.into_bytes();
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(Error::Command(ws_proto::Error::ControlPayloadTooLong(
                payload.len(),
            )));
        }
        self.enqueue(Outgoing::Ping(payload))
    }

    /// Starts the closing handshake with 1000 (normal closure) and no reason,
    /// after the sends already queued; see [`close_with`](Self::close_with).
    pub fn close(&self) -> Result<(), Error> {
        self.close_with(CloseCode::NORMAL.as_u16(), "")
    }

    /// Starts the closing handshake with this code and reason, after the
    /// sends already queued. The end is reported by the closed (or error)
    /// handlers. Before `open`, this just retires the client.
    ///
    /// Fails with [`Error::Closed`] when already closing or closed, and with
    /// [`Error::Command`] for a code that may not be sent
    /// ([`ws_proto::Error::InvalidCloseCode`]: 1005, 1006 and 1015 are only
    /// reported, never sent; codes outside 1000-4999 and the reserved ones
    /// are refused) or a reason over 123 bytes.
    ///
    /// ```no_run
    /// # let client = ws_std::WebSocketClient::new("ws://127.0.0.1:9001/")?;
    /// client.close_with(4000, "game over")?;
    /// # Ok::<(), ws_std::Error>(())
    /// ```
    pub fn close_with(&self, code: u16, reason: &str) -> Result<(), Error> {
        let code = CloseCode::new(code).map_err(Error::Command)?;
        if reason.len() > 123 {
            return Err(Error::Command(ws_proto::Error::CloseReasonTooLong(
                reason.len(),
            )));
        }
        let mut q = lock(&self.inner.queue);
        match q.phase {
            Phase::Closed => return Err(Error::Closed),
            _ if q.close_requested => return Err(Error::Closed),
            Phase::New => {
                q.phase = Phase::Closed;
                drop(q);
                self.retire_handlers();
                return Ok(());
            }
            Phase::Connecting | Phase::Open => {}
        }
        wslog!(Debug, self.inner.id, "close requested: {code} {reason:?}");
        q.close_requested = true;
        q.items.push_back(Outgoing::Close(code, reason.to_string()));
        drop(q);
        self.inner.cv.notify_all();
        Ok(())
    }

    fn enqueue(&self, item: Outgoing) -> Result<(), Error> {
        let shared = self.shared();
        let stack = shared.as_ref().map(|s| s.stack());
        let core_bytes = stack.as_ref().map_or(0, |s| s.conn.buffered_amount());
        let mut q = lock(&self.inner.queue);
        if q.phase == Phase::Closed || q.close_requested {
            return Err(Error::Closed);
        }
        let in_sequence = match (&item, q.fragmenting) {
            (Outgoing::Message { .. }, Some(_)) => false,
            (Outgoing::Fragment { kind, .. }, Some(k)) => *kind == k,
            _ => true,
        };
        if !in_sequence {
            return Err(Error::Command(ws_proto::Error::FragmentSequence));
        }
        let buffered = q.bytes + core_bytes;
        let limit = self.inner.max_buffered;
        if buffered.saturating_add(item.len()) > limit {
            return Err(Error::QueueFull { buffered, limit });
        }
        if let Outgoing::Fragment { kind, fin, .. } = &item {
            q.fragmenting = (!fin).then_some(*kind);
        }
        q.bytes += item.len();
        q.items.push_back(item);
        drop(q);
        drop(stack);
        self.inner.cv.notify_all();
        Ok(())
    }

    /// Refuses every further send and drops the queued ones (a handler
    /// panicked); `last`, when given, still goes out.
    pub(super) fn refuse_sends(&self, last: Option<Outgoing>) {
        {
            let mut q = lock(&self.inner.queue);
            q.close_requested = true;
            q.clear();
            if q.phase != Phase::Closed {
                q.items.extend(last);
            }
        }
        self.inner.cv.notify_all();
    }
}
