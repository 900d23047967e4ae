//! [`ClientBuilder`]: URL, request, protocol options, delivery and the
//! first handlers of a [`WebSocketClient`].

use std::fmt;

use bytes::Bytes;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use ws_buf::BufferSegment;
use ws_proto::{CloseCode, Fragment, OpenInfo};

use ws_buf::BufferPool;
use ws_net::url::WsUrl;
use ws_proto::{Config, DeflateConfig};

use super::events::{Delivery, Pending};
use super::handlers::{
    with_events, HandlerId, Handlers, List, OnBinary, OnClosed, OnControl, OnError, OnFragment,
    OnMessage, OnOpen, OnSegment,
};
use super::queue::Queue;
use super::{Inner, WebSocketClient};
use super::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_BUFFERED, DEFAULT_MAX_PENDING, DEFAULT_PING_INTERVAL,
};
use crate::error::Error;
use crate::logctx::{self, ConnId};
use crate::options::ClientOptions;
use crate::tls::TlsClientOptions;

/// Configures a [`WebSocketClient`]: URL, request, protocol options, where
/// handlers run ([`delivery`](Self::delivery)) and handlers. Every handler
/// gets the client as its first argument (to send, close, or read
/// getters). Handlers can be added on the client too, also to one made with
/// [`WebSocketClient::new`].
pub struct ClientBuilder {
    url: String,
    options: ClientOptions,
    max_buffered: usize,
    max_pending: usize,
    delivery: Delivery,
    log_context: Option<String>,
    pool: Option<BufferPool>,
    pub(super) handlers: Handlers,
}

ws_net::forward_request_options!(ClientBuilder => options.request);

impl ClientBuilder {
    pub(super) fn new(url: String) -> ClientBuilder {
        ClientBuilder {
            url,
            options: ClientOptions::default(),
            max_buffered: DEFAULT_MAX_BUFFERED,
            max_pending: DEFAULT_MAX_PENDING,
            delivery: Delivery::default(),
            log_context: None,
            pool: None,
            handlers: Handlers::default(),
        }
    }

    /// Offers permessage-deflate with these parameters, or nothing (default).
    pub fn deflate(mut self, deflate: Option<DeflateConfig>) -> Self {
        self.options.config.deflate = deflate;
        self
    }
    /// Replaces the protocol configuration (limits, fragment size, timers,
    /// deflate); set it before the keepalive and fragment options.
    pub fn config(mut self, config: Config) -> Self {
        self.options.config = config;
        self
    }
    /// Replaces all connection options (request, TLS, timeouts).
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }
    /// Sets the TLS options for `wss://`.
    pub fn tls(mut self, tls: TlsClientOptions) -> Self {
        self.options.tls = tls;
        self
    }
    /// Splits outgoing messages into frames of at most this many bytes
    /// (default 32,767).
    pub fn fragment_size(mut self, bytes: usize) -> Self {
        self.options.config = self.options.config.fragment_size(bytes);
        self
    }
    /// Bounds connect + TLS + upgrade (default 10 s); when it passes,
    /// the error handlers get [`Error::Timeout`].
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.options.config.handshake_timeout = d;
        self
    }
    /// The keepalive switch (Best.HTTP's `StartPingThread`): `true` sends a
    /// ping every [`DEFAULT_PING_INTERVAL`] (1 s) while open **and** ends
    /// the connection with an error ([`Timeout::Idle`](crate::Timeout::Idle))
    /// after [`DEFAULT_IDLE_TIMEOUT`] (2 s) without any frame from the
    /// server; `false` turns both off (the default). Adjust either one
    /// afterwards with [`ping_interval`](Self::ping_interval) and
    /// [`idle_timeout`](Self::idle_timeout) (`None` turns it off). Round
    /// trips give [`WebSocketClient::latency`].
    pub fn keepalive(mut self, on: bool) -> Self {
        self.options.config.ping_interval = on.then_some(DEFAULT_PING_INTERVAL);
        self.options.config.idle_timeout = on.then_some(DEFAULT_IDLE_TIMEOUT);
        self
    }
    /// Sets the ping interval (Best.HTTP's `PingFrequency`), or no pings.
    pub fn ping_interval(mut self, every: Option<Duration>) -> Self {
        self.options.config.ping_interval = every;
        self
    }
    /// Sets the silence (no frame at all from the server) after which the
    /// connection ends with [`Timeout::Idle`](crate::Timeout::Idle)
    /// (Best.HTTP's `CloseAfterNoMessage`), or never.
    pub fn idle_timeout(mut self, after: Option<Duration>) -> Self {
        self.options.config.idle_timeout = after;
        self
    }
    /// Limits [`WebSocketClient::buffered_amount`]: a send that would go
    /// past it fails with [`Error::QueueFull`] (default 16 MiB).
    pub fn max_buffered(mut self, bytes: usize) -> Self {
        self.max_buffered = bytes;
        self
    }
    /// Where the handlers run (default [`Delivery::IoThread`]).
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }
    /// With [`Delivery::Dispatch`]: how many bytes of events may wait for
    /// [`WebSocketClient::dispatch`] (payloads plus 64 bytes per event;
    /// default [`DEFAULT_MAX_PENDING`], 16 MiB) before the client stops
    /// reading from the server.
    pub fn max_pending(mut self, bytes: usize) -> Self {
        self.max_pending = bytes;
        self
    }
    /// Names the connection on its log lines: every line is prefixed with
    /// `[ws#N name]` (Best.HTTP's logging `Context`). Control characters
    /// become `?` and the name is cut at 64 characters, so it cannot forge
    /// log lines.
    pub fn log_context(mut self, name: impl Into<String>) -> Self {
        self.log_context = Some(name.into());
        self
    }
    /// The pool `on_binary_segment` segments come from (default: a new
    /// pool per client).
    pub fn buffer_pool(mut self, pool: BufferPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The connection options as configured so far.
    pub fn client_options(&self) -> &ClientOptions {
        &self.options
    }

    /// Checks the URL, the upgrade request (origin, subprotocols, headers)
    /// and the TLS settings, and makes the client, not yet opened.
    ///
    /// Fails with [`Error::InvalidUrl`], or [`Error::Command`] with
    /// [`ws_proto::Error::InvalidRequest`] naming the field at fault
    /// ([`Error::invalid_request`]). (What a
    /// [`request_hook`](ClientOptions::request_hook) changes is checked when
    /// the client opens, before it connects: the error handlers get the same
    /// error.)
    pub fn build(self) -> Result<WebSocketClient, Error> {
        let url = WsUrl::parse(&self.url)?;
        self.options.request.assemble(&url)?;
        if url.is_secure() {
            self.options.tls.build()?;
        }
        let mut options = self.options;
        // The client's own queue enforces `max_buffered`; the core holds at
        // most the message being written.
        options.config.limits = options.config.limits.clone().max_send_queue(usize::MAX);
        let id = ConnId::next();
        if let Some(name) = &self.log_context {
            logctx::set_name(id, Some(name));
        }
        Ok(WebSocketClient {
            inner: Arc::new(Inner {
                id,
                url,
                options,
                max_buffered: self.max_buffered,
                max_pending: self.max_pending,
                delivery: self.delivery,
                pool: self.pool.unwrap_or_default(),
                handlers: Mutex::new(self.handlers),
                queue: Mutex::new(Queue::default()),
                cv: Condvar::new(),
                pending: Mutex::new(Pending::default()),
                pending_cv: Condvar::new(),
                dispatching: Mutex::new(()),
                shared: Mutex::new(None),
            }),
        })
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("options", &self.options)
            .field("max_buffered", &self.max_buffered)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    fn add_handler<F: ?Sized + Send + 'static>(
        mut self,
        pick: fn(&mut Handlers) -> &mut List<F>,
        f: Box<F>,
    ) -> Self {
        // A builder's registry is never retired: nothing is handed back.
        let _ = self.handlers.add(pick, HandlerId::next(), f);
        self
    }
}

/// The builder's `on_*` methods.
macro_rules! builder_methods {
    ($(
        $(#[$doc:meta])*
        $method:ident => $field:ident: $alias:ident ($($arg:ty),*);
    )*) => {
        /// Handlers added on the builder are called before those added on
        /// the client, each in the order added; to remove one later, add it
        /// with the client's method of the same name, which returns its id.
        impl ClientBuilder {
            $(
                $(#[$doc])*
                pub fn $method(
                    self,
                    f: impl FnMut(&WebSocketClient, $($arg),*) + Send + 'static,
                ) -> Self {
                    self.add_handler::<$alias>(|h| &mut h.$field, Box::new(f))
                }
            )*
        }
    };
}

with_events!(builder_methods);
