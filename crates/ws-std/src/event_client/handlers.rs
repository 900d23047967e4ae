//! Event handlers like C# events: several per event, called in the order
//! added, each removable by the [`HandlerId`] its registration returned.
//!
//! Every list is copy-on-write: delivering an event clones an `Arc` (no
//! allocation), adding or removing a handler copies the list. Handlers are
//! called outside the registry's lock, so a handler may add or remove
//! handlers (the change applies from the next event).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ws_buf::BufferSegment;
use ws_proto::{CloseCode, Fragment, OpenInfo};

use super::WebSocketClient;
use crate::driver::lock;
use crate::error::Error;

/// Identifies one registered handler, for
/// [`WebSocketClient::remove_handler`]. Ids are unique in the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandlerId(u64);

impl HandlerId {
    pub(super) fn next() -> HandlerId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        HandlerId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// One handler: the lock is only ever taken by the one thread delivering
/// events at a time, so it is never contended.
pub(super) struct Entry<F: ?Sized> {
    id: HandlerId,
    pub(super) f: Arc<Mutex<Box<F>>>,
}

impl<F: ?Sized> Clone for Entry<F> {
    fn clone(&self) -> Self {
        Entry {
            id: self.id,
            f: self.f.clone(),
        }
    }
}

/// The handlers of one event, in the order added.
pub(super) struct List<F: ?Sized>(Arc<[Entry<F>]>);

impl<F: ?Sized> Default for List<F> {
    fn default() -> Self {
        List(Arc::from(Vec::new()))
    }
}

impl<F: ?Sized> List<F> {
    fn add(&mut self, id: HandlerId, f: Box<F>) {
        let mut v = self.0.to_vec();
        v.push(Entry {
            id,
            f: Arc::new(Mutex::new(f)),
        });
        self.0 = v.into();
    }

    /// Takes the handler out of the list (the caller drops it, outside the
    /// registry's lock).
    fn remove(&mut self, id: HandlerId) -> Option<Entry<F>> {
        let at = self.0.iter().position(|e| e.id == id)?;
        let mut v = self.0.to_vec();
        let entry = v.remove(at);
        self.0 = v.into();
        Some(entry)
    }

    /// The handlers as they are now, to call without holding any lock.
    pub(super) fn snapshot(&self) -> Arc<[Entry<F>]> {
        self.0.clone()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub(super) type OnOpen = dyn FnMut(&WebSocketClient, &OpenInfo) + Send;
pub(super) type OnMessage = dyn FnMut(&WebSocketClient, &str) + Send;
pub(super) type OnBinary = dyn FnMut(&WebSocketClient, Bytes) + Send;
pub(super) type OnSegment = dyn FnMut(&WebSocketClient, &BufferSegment) + Send;
pub(super) type OnFragment = dyn FnMut(&WebSocketClient, &Fragment) + Send;
pub(super) type OnControl = dyn FnMut(&WebSocketClient, &[u8]) + Send;
pub(super) type OnClosed = dyn FnMut(&WebSocketClient, CloseCode, &str) + Send;
pub(super) type OnError = dyn FnMut(&WebSocketClient, &Error) + Send;

/// Every handler of a client.
#[derive(Default)]
pub(super) struct Handlers {
    pub(super) open: List<OnOpen>,
    pub(super) message: List<OnMessage>,
    pub(super) binary: List<OnBinary>,
    pub(super) segment: List<OnSegment>,
    pub(super) fragment: List<OnFragment>,
    pub(super) ping: List<OnControl>,
    pub(super) pong: List<OnControl>,
    pub(super) closed: List<OnClosed>,
    pub(super) error: List<OnError>,
    /// The terminal event has run (or the client was retired before
    /// opening): handlers added now are dropped at once.
    pub(super) retired: bool,
}

/// A removed or refused handler, dropped by the caller outside every lock.
pub(super) type Dropped = Box<dyn Send>;

impl Handlers {
    /// Adds `f` to the list `pick` chooses; a retired registry hands it back
    /// to be dropped.
    pub(super) fn add<F: ?Sized + Send + 'static>(
        &mut self,
        pick: fn(&mut Handlers) -> &mut List<F>,
        id: HandlerId,
        f: Box<F>,
    ) -> Option<Dropped> {
        if self.retired {
            return Some(Box::new(f));
        }
        pick(self).add(id, f);
        None
    }

    /// Takes the handler `id` out of whichever list holds it.
    pub(super) fn remove(&mut self, id: HandlerId) -> Option<Dropped> {
        fn take<F: ?Sized + Send + 'static>(l: &mut List<F>, id: HandlerId) -> Option<Dropped> {
            l.remove(id).map(|e| Box::new(e.f) as Dropped)
        }
        take(&mut self.open, id)
            .or_else(|| take(&mut self.message, id))
            .or_else(|| take(&mut self.binary, id))
            .or_else(|| take(&mut self.segment, id))
            .or_else(|| take(&mut self.fragment, id))
            .or_else(|| take(&mut self.ping, id))
            .or_else(|| take(&mut self.pong, id))
            .or_else(|| take(&mut self.closed, id))
            .or_else(|| take(&mut self.error, id))
    }

    /// Empties the registry for good (after the terminal event); the caller
    /// drops what it returns outside the lock.
    pub(super) fn retire(&mut self) -> Handlers {
        let old = std::mem::take(self);
        self.retired = true;
        old
    }
}

impl WebSocketClient {
    fn add_handler<F: ?Sized + Send + 'static>(
        &self,
        pick: fn(&mut Handlers) -> &mut List<F>,
        f: Box<F>,
    ) -> HandlerId {
        let id = HandlerId::next();
        let refused = lock(&self.inner.handlers).add(pick, id, f);
        if let Some(f) = refused {
            let _ = self.invoke("dropping a handler", || drop(f));
        }
        id
    }

    /// Removes the handler `id` returned: it is not called for any event
    /// delivered after this returns (one being delivered on another thread
    /// at this moment may still reach it). Returns whether it was
    /// registered on this client.
    pub fn remove_handler(&self, id: HandlerId) -> bool {
        let removed = lock(&self.inner.handlers).remove(id);
        let found = removed.is_some();
        let _ = self.invoke("dropping a handler", || drop(removed));
        found
    }
}

/// Calls `$m!` with the description of every event (method, field of
/// [`Handlers`], handler type, arguments): the client's `on_*` methods
/// (here) and the builder's (in `builder`) are made from this one list.
macro_rules! with_events {
    ($m:ident) => {
        $m! {
            /// Adds a handler called once the handshake completes.
            on_open => open: OnOpen (&OpenInfo);
            /// Adds a handler called with each text message (with an
            /// incomplete-frame handler: each text message that came in one frame).
            on_message => message: OnMessage (&str);
            /// Adds a handler called with each binary message, as owned bytes (with
            /// an incomplete-frame handler: each one that came in one frame).
            on_binary => binary: OnBinary (Bytes);
            /// Adds a handler called with each binary message in a segment of the
            /// client's [`BufferPool`](ws_buf::BufferPool); the segment goes back to
            /// the pool once every such handler has returned. (`on_binary` handlers
            /// are called too.)
            on_binary_segment => segment: OnSegment (&BufferSegment);
            /// Adds a handler called with each frame of a *fragmented* message as it
            /// arrives, without reassembly: the fragments are neither joined nor
            /// stored. Messages that come in one frame still go to the message
            /// handlers. Whether fragments are streamed is decided when the client
            /// opens: add this handler before [`open`](WebSocketClient::open).
            on_incomplete_frame => fragment: OnFragment (&Fragment);
            /// Adds a handler called with the payload of each ping from the server
            /// (answered automatically).
            on_ping => ping: OnControl (&[u8]);
            /// Adds a handler called with the payload of each pong from the server
            /// (answers to [`ping`](WebSocketClient::ping) and to keepalive pings).
            on_pong => pong: OnControl (&[u8]);
            /// Adds a handler called when the connection ended without error
            /// (closing handshake, either side starting it), with the close code and
            /// reason. Exactly one terminal event, closed or error, is delivered,
            /// once, for every opened client.
            on_closed => closed: OnClosed (CloseCode, &str);
            /// Adds a handler called when the connection could not be made or ended
            /// with an error; the [`Error`] says what happened.
            on_error => error: OnError (&Error);
        }
    };
}
pub(super) use with_events;

/// The client's `on_*` methods.
macro_rules! client_methods {
    ($(
        $(#[$doc:meta])*
        $method:ident => $field:ident: $alias:ident ($($arg:ty),*);
    )*) => {
        /// Adding handlers: any number per event, called in the order added,
        /// each removable with [`remove_handler`](WebSocketClient::remove_handler).
        /// Add them before [`open`](WebSocketClient::open) to see every
        /// event; one added later sees the events delivered after it was
        /// added. A handler added after the terminal event is dropped at once.
        impl WebSocketClient {
            $(
                $(#[$doc])*
                pub fn $method(
                    &self,
                    f: impl FnMut(&WebSocketClient, $($arg),*) + Send + 'static,
                ) -> HandlerId {
                    self.add_handler::<$alias>(|h| &mut h.$field, Box::new(f))
                }
            )*
        }
    };
}

with_events!(client_methods);
