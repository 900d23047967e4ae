//! Delivering events to the handlers: on the IO thread, or queued for the
//! application's [`dispatch`](WebSocketClient::dispatch).

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{PoisonError, TryLockError};

use bytes::Bytes;
use ws_proto::{CloseCode, Fragment, MessageKind, OpenInfo};

use super::handlers::{Handlers, List};
use super::queue::Outgoing;
use super::WebSocketClient;
use crate::driver::{lock, TICK};
use crate::error::Error;
use crate::logctx::wslog;

/// Where the handlers run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// On the client's IO thread, as events arrive (the default). A slow
    /// handler delays reading, and so pongs and the detection of a close.
    #[default]
    IoThread,
    /// On the application's thread, inside
    /// [`WebSocketClient::dispatch`]: events wait in a queue (bounded by
    /// [`ClientBuilder::max_pending`](super::ClientBuilder::max_pending))
    /// until then. Like Best.HTTP's callbacks on Unity's main thread.
    ///
    /// Keep calling `dispatch` until
    /// [`is_finished`](WebSocketClient::is_finished): while the queue is
    /// full the client reads nothing (not even the server's close), and
    /// the handlers, which may hold clones of the client, are only dropped
    /// once the terminal event has been dispatched.
    Dispatch,
}

/// Bytes charged per queued event on top of its payload, so that a flood of
/// empty frames is bounded too.
const EVENT_COST: usize = 64;

/// What the handlers are told.
pub(super) enum Event {
    Open(OpenInfo),
    Message(MessageKind, Bytes),
    Fragment(Fragment),
    Ping(Bytes),
    Pong(Bytes),
    /// The terminal event: closed (code, reason) or error.
    End(Result<(CloseCode, String), Error>),
}

impl Event {
    fn cost(&self) -> usize {
        let payload = match self {
            Event::Message(_, b) | Event::Ping(b) | Event::Pong(b) => b.len(),
            Event::Fragment(f) => f.data.len(),
            Event::Open(_) | Event::End(_) => 0,
        };
        payload.saturating_add(EVENT_COST)
    }
}

/// Events waiting for [`WebSocketClient::dispatch`].
#[derive(Default)]
pub(super) struct Pending {
    items: VecDeque<Event>,
    bytes: usize,
    /// A handler panicked inside `dispatch`: later events are dropped and
    /// the terminal event becomes [`Error::CallbackPanicked`] with this.
    panicked: Option<String>,
    /// The terminal event has been delivered.
    pub(super) finished: bool,
}

impl WebSocketClient {
    /// Runs the handlers of the events queued when it was called, in order,
    /// on the calling thread, and returns how many ran. Only with
    /// [`Delivery::Dispatch`]; otherwise (and when called from a handler, or
    /// while another thread dispatches) it returns 0 at once.
    ///
    /// Call it regularly, e.g. once per frame of a game loop, until
    /// [`is_finished`](Self::is_finished): the terminal event (closed or
    /// error) is delivered here too, exactly once. While the queue is full
    /// the client stops reading the socket (TCP pushes back on the server).
    ///
    /// A handler that panics fails the connection as it does on the IO
    /// thread (a close with 1011 goes out; the terminal event is an error,
    /// [`Error::CallbackPanicked`]); the events queued behind it are dropped.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use ws_std::{Delivery, WebSocketClient};
    ///
    /// let client = WebSocketClient::builder("ws://127.0.0.1:9001/")
    ///     .delivery(Delivery::Dispatch)
    ///     .on_message(|_, text| println!("{text}"))
    ///     .build()?;
    /// client.open()?;
    /// for _ in 0..600 {
    ///     client.dispatch(); // the handlers run here, on this thread
    ///     if client.is_finished() {
    ///         break;
    ///     }
    ///     std::thread::sleep(Duration::from_millis(16)); // the rest of the frame
    /// }
    /// # Ok::<(), ws_std::Error>(())
    /// ```
    pub fn dispatch(&self) -> usize {
        if self.inner.delivery != Delivery::Dispatch {
            return 0;
        }
        let _one_at_a_time = match self.inner.dispatching.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return 0,
        };
        let queued = lock(&self.inner.pending).items.len();
        let mut ran = 0;
        for _ in 0..queued {
            let event = {
                let mut p = lock(&self.inner.pending);
                let Some(event) = p.items.pop_front() else {
                    break;
                };
                p.bytes = p.bytes.saturating_sub(event.cost());
                match (event, &p.panicked) {
                    (Event::End(_), Some(msg)) => {
                        Event::End(Err(Error::CallbackPanicked(msg.clone())))
                    }
                    (event, _) => event,
                }
            };
            self.inner.pending_cv.notify_all();
            ran += 1;
            if let Err(e) = self.deliver(event) {
                self.fail_in_dispatch(e);
            }
        }
        ran
    }

    /// Events waiting for [`dispatch`](Self::dispatch) (always 0 with
    /// [`Delivery::IoThread`]).
    pub fn pending_events(&self) -> usize {
        lock(&self.inner.pending).items.len()
    }

    /// Whether the terminal event (closed or error) has been delivered to
    /// the handlers: no handler is called after this is true. A client
    /// closed before [`open`](Self::open) is finished too.
    pub fn is_finished(&self) -> bool {
        lock(&self.inner.pending).finished
    }

    /// Hands an event to the handlers: now, or into the dispatch queue
    /// (waiting while it is full). `Err` when a handler panicked on the IO
    /// thread.
    pub(super) fn emit(&self, event: Event) -> Result<(), Error> {
        if self.inner.delivery == Delivery::IoThread {
            return self.deliver(event);
        }
        let cost = event.cost();
        let terminal = matches!(event, Event::End(_));
        let mut p = lock(&self.inner.pending);
        // Waits for the application to dispatch (the terminal event never
        // waits); each round waits at most TICK.
        while !terminal
            && p.panicked.is_none()
            && p.bytes > 0
            && p.bytes.saturating_add(cost) > self.inner.max_pending
        {
            p = self
                .inner
                .pending_cv
                .wait_timeout(p, TICK)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if p.panicked.is_some() && !terminal {
            return Ok(());
        }
        p.bytes = p.bytes.saturating_add(cost);
        p.items.push_back(event);
        Ok(())
    }

    /// Runs the handlers of one event; `Err` when one panicked (the rest of
    /// that event's handlers are skipped). The terminal event always
    /// returns `Ok`: it retires the handlers.
    fn deliver(&self, event: Event) -> Result<(), Error> {
        match event {
            Event::Open(info) => self.each("on_open", |h| &h.open, |f| f(self, &info)),
            Event::Message(MessageKind::Text, data) => match std::str::from_utf8(&data) {
                Ok(text) => self.each("on_message", |h| &h.message, |f| f(self, text)),
                // The core delivers only valid UTF-8 as text.
                Err(_) => Ok(()),
            },
            Event::Message(MessageKind::Binary, data) => {
                let segment_handlers = lock(&self.inner.handlers).segment.snapshot();
                if !segment_handlers.is_empty() {
                    let mut seg = self.inner.pool.get(data.len());
                    seg.extend_from_slice(&data);
                    self.each("on_binary_segment", |h| &h.segment, |f| f(self, &seg))?;
                }
                self.each("on_binary", |h| &h.binary, |f| f(self, data.clone()))
            }
            Event::Fragment(fr) => {
                self.each("on_incomplete_frame", |h| &h.fragment, |f| f(self, &fr))
            }
            Event::Ping(p) => self.each("on_ping", |h| &h.ping, |f| f(self, &p)),
            Event::Pong(p) => self.each("on_pong", |h| &h.pong, |f| f(self, &p)),
            Event::End(outcome) => {
                self.deliver_end(outcome);
                Ok(())
            }
        }
    }

    /// Calls every handler of one list, in order, each through
    /// [`invoke`](Self::invoke).
    fn each<F: ?Sized>(
        &self,
        name: &str,
        pick: fn(&Handlers) -> &List<F>,
        mut call: impl FnMut(&mut F),
    ) -> Result<(), Error> {
        let entries = pick(&lock(&self.inner.handlers)).snapshot();
        for e in entries.iter() {
            let mut f = lock(&e.f);
            self.invoke(name, || call(&mut **f))?;
        }
        Ok(())
    }

    /// Runs one application callback, the only way this client calls
    /// application code: a panic is caught and becomes
    /// [`Error::CallbackPanicked`] (logged with the callback's name).
    pub(super) fn invoke(&self, name: &str, f: impl FnOnce()) -> Result<(), Error> {
        panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
            let msg = ws_net::panic_message(&*payload);
            wslog!(Error, self.inner.id, "{name} panicked: {msg}");
            Error::CallbackPanicked(msg)
        })
    }

    /// Fires the terminal handlers (exactly once: only the IO thread's end
    /// produces this event) and drops every handler.
    fn deliver_end(&self, outcome: Result<(CloseCode, String), Error>) {
        // A panic in these is caught (and logged) by `invoke`: the
        // connection is over anyway, and nothing else is called after them.
        let _ = match outcome {
            Ok((code, reason)) => {
                wslog!(Info, self.inner.id, "closed: {code} {reason:?}");
                self.each("on_closed", |h| &h.closed, |f| f(self, code, &reason))
            }
            Err(e) => {
                wslog!(Info, self.inner.id, "failed: {e}");
                self.each("on_error", |h| &h.error, |f| f(self, &e))
            }
        };
        self.retire_handlers();
    }

    /// Drops every handler for good: they may hold clones of this client (a
    /// panicking destructor of a captured value is contained too).
    pub(super) fn retire_handlers(&self) {
        let old = lock(&self.inner.handlers).retire();
        let _ = self.invoke("dropping the handlers", || drop(old));
        lock(&self.inner.pending).finished = true;
    }

    /// A handler panicked inside `dispatch`: drop the events behind it,
    /// refuse further sends and close with 1011 (the terminal event, when
    /// the IO thread gets there, becomes the panic's error).
    fn fail_in_dispatch(&self, e: Error) {
        let msg = match e {
            Error::CallbackPanicked(m) => m,
            other => other.to_string(),
        };
        {
            let mut p = lock(&self.inner.pending);
            p.panicked.get_or_insert(msg);
            p.items.retain(|e| matches!(e, Event::End(_)));
            p.bytes = p.items.iter().map(Event::cost).sum();
        }
        self.inner.pending_cv.notify_all();
        self.refuse_sends(Some(Outgoing::Close(
            CloseCode::INTERNAL_ERROR,
            "internal error".to_string(),
        )));
    }
}
