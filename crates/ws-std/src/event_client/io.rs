//! The client's two threads: the IO thread (connects, reads, hands events
//! on, ends with the terminal event) and the sender thread (drains the send
//! queue into the protocol core).

use std::sync::PoisonError;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use ws_proto::CloseCode;

use super::events::Event;
use super::queue::Phase;
use super::WebSocketClient;
use crate::driver::{lock, TICK};
use crate::error::Error;
use crate::handshake::connect_url;
use crate::logctx::wslog;
use crate::websocket::{Received, WsReader, WsWriter};

/// How long a connection failed by a panicking callback may take for its
/// closing handshake (our 1011 out, the server's echo back) before the
/// socket is shut down.
const PANIC_CLOSE_LIMIT: Duration = Duration::from_secs(1);

impl WebSocketClient {
    pub(super) fn run(self) {
        let inner = &self.inner;
        // Fragments are streamed when someone listens for them.
        let mut options = inner.options.clone();
        options.config.streaming = !lock(&inner.handlers).fragment.is_empty();
        let ws = match connect_url(&inner.url, &options, inner.id) {
            Ok(ws) => ws,
            Err(e) => return self.finish(Err(e)),
        };
        let info = ws.open_info().clone();
        let (mut reader, writer) = ws.split();
        *lock(&inner.shared) = Some(writer.shared_arc());
        lock(&inner.queue).phase = Phase::Open;
        let sender = {
            let client = self.clone();
            let writer = writer.clone();
            thread::Builder::new()
                .name(format!("ws#{}-send", inner.id.get()))
                .spawn(move || client.send_loop(&writer))
        };
        let sender = match sender {
            Ok(h) => Some(h),
            Err(e) => {
                wslog!(Error, inner.id, "cannot spawn the sender thread: {e}");
                writer.shared_arc().finish(Duration::ZERO);
                None
            }
        };
        let opened = match sender {
            Some(_) => self.emit(Event::Open(info)),
            None => Ok(()),
        };
        // Ends with the terminal event, which `recv` always delivers, or at
        // the first callback that panics (on this thread).
        let outcome = match opened {
            Err(e) => Err(e),
            Ok(()) => loop {
                let event = match reader.recv() {
                    Ok(Received::Message(m)) => Event::Message(m.kind, m.data),
                    // Streaming: a message in one frame is still a message.
                    Ok(Received::Fragment(f)) if f.first && f.fin => Event::Message(f.kind, f.data),
                    Ok(Received::Fragment(f)) => Event::Fragment(f),
                    Ok(Received::Ping(p)) => Event::Ping(p),
                    Ok(Received::Pong(p)) => Event::Pong(p),
                    Ok(Received::Closed(c)) => break Ok((c.code, c.reason)),
                    Err(e) => break Err(e),
                };
                if let Err(e) = self.emit(event) {
                    break Err(e);
                }
            },
        };
        if matches!(outcome, Err(Error::CallbackPanicked(_))) {
            self.fail_after_panic(&mut reader);
        }
        self.stop_sender(sender);
        self.finish(outcome);
    }

    /// A callback panicked on this thread while the connection may still be
    /// up: refuse further sends, close with 1011, wait (bounded) for the
    /// server's echo without delivering anything, and cut the transport,
    /// which also releases a sender thread blocked on the socket.
    fn fail_after_panic(&self, reader: &mut WsReader) {
        self.refuse_sends(None);
        reader.fail(PANIC_CLOSE_LIMIT);
    }

    fn stop_sender(&self, sender: Option<JoinHandle<()>>) {
        lock(&self.inner.queue).stop_sender = true;
        self.inner.cv.notify_all();
        if let Some(h) = sender {
            let _ = h.join();
        }
    }

    /// The connection is over: no more sends, and the terminal event goes
    /// to the handlers (now, or queued for `dispatch`).
    pub(super) fn finish(&self, outcome: Result<(CloseCode, String), Error>) {
        {
            let mut q = lock(&self.inner.queue);
            q.phase = Phase::Closed;
            q.clear();
        }
        // The terminal event never fails to be handed on.
        let _ = self.emit(Event::End(outcome));
    }

    // ----- the sender thread --------------------------------------------

    fn send_loop(&self, writer: &WsWriter) {
        let inner = &self.inner;
        let shared = writer.shared_arc();
        // Ends when the IO thread sets `stop_sender`; each round sends one
        // queued item or waits (at most TICK).
        loop {
            {
                let mut q = lock(&inner.queue);
                while !q.stop_sender && q.items.is_empty() {
                    q = inner
                        .cv
                        .wait_timeout(q, TICK)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                if q.stop_sender {
                    return;
                }
            }
            // Moving the item from the queue into the core happens under the
            // stack lock, so `buffered_amount` never counts it twice or not
            // at all.
            let sent = shared.step(true, |stack, _| {
                let mut q = lock(&inner.queue);
                let Some(item) = q.items.pop_front() else {
                    return Ok(());
                };
                q.bytes = q.bytes.saturating_sub(item.len());
                drop(q);
                item.send(&mut stack.conn)
            });
            if let Err(e) = sent {
                wslog!(Debug, inner.id, "queued item dropped: {e}");
            }
        }
    }
}
