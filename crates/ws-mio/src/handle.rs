//! Talking to event loops from other threads: a bounded command queue per
//! loop plus a `mio::Waker`, woken at most once per batch.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use mio::Waker;
use ws_proto::{Bytes, CloseCode, MessageKind, PreparedMessage};

use crate::ctx::Ctx;
use crate::error::Error;
use crate::id::ConnId;

/// A closure run on a loop's thread.
pub(crate) type Task = Box<dyn FnOnce(&mut Ctx<'_>) + Send>;

/// What a [`Handle`] asks a loop to do.
pub(crate) enum Command {
    Send {
        id: ConnId,
        kind: MessageKind,
        data: Bytes,
    },
    Ping {
        id: ConnId,
        payload: Bytes,
    },
    Close {
        id: ConnId,
        code: CloseCode,
        reason: String,
    },
    Broadcast {
        msg: PreparedMessage,
        except: Option<ConnId>,
    },
    Run(Task),
}

/// `Remote::shutdown_ms` when no shutdown was requested.
const NO_SHUTDOWN: u64 = u64::MAX;

/// The shared end of one loop: its queue, its waker and its control flags.
pub(crate) struct Remote {
    tx: SyncSender<Command>,
    waker: Waker,
    /// Set by the first sender of a batch; the loop clears it before draining.
    notified: AtomicBool,
    /// A graceful shutdown was requested with this grace period, in
    /// milliseconds (`NO_SHUTDOWN` when none was).
    shutdown_ms: AtomicU64,
    /// An immediate stop was requested.
    stop: AtomicBool,
}

impl Remote {
    pub(crate) fn new(tx: SyncSender<Command>, waker: Waker) -> Remote {
        Remote {
            tx,
            waker,
            notified: AtomicBool::new(false),
            shutdown_ms: AtomicU64::new(NO_SHUTDOWN),
            stop: AtomicBool::new(false),
        }
    }

    fn push(&self, cmd: Command) -> Result<(), Error> {
        self.push_unwoken(cmd)?;
        self.wake();
        Ok(())
    }

    /// Queues a command without waking the loop (the sender wakes it later,
    /// see [`Handle::wake_deferred`]).
    fn push_unwoken(&self, cmd: Command) -> Result<(), Error> {
        match self.tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Error::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(Error::LoopGone),
        }
    }

    fn wake(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                log::warn!("ws-mio: waking an event loop failed: {e}");
            }
        }
    }

    /// Loop side: re-arms the waker; call before draining the queue.
    pub(crate) fn clear_notified(&self) {
        self.notified.store(false, Ordering::Release);
    }

    /// Loop side: a pending shutdown request, taken.
    pub(crate) fn take_shutdown(&self) -> Option<Duration> {
        match self.shutdown_ms.swap(NO_SHUTDOWN, Ordering::AcqRel) {
            NO_SHUTDOWN => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Loop side: whether a stop was requested.
    pub(crate) fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}

/// Loop side: the next queued command, if any.
pub(crate) fn next_command(rx: &Receiver<Command>) -> Option<Command> {
    rx.try_recv().ok()
}

/// A cloneable, `Send + Sync` handle to one event loop or to every loop of a
/// [`LoopGroup`](crate::LoopGroup): send, ping or close any connection by
/// its [`ConnId`], run closures on a loop, shut down.
///
/// Commands are queued (bounded by `Options::command_queue`) and carried out
/// on the loop's thread in order. A send that the connection refuses there
/// (send queue full) is reported to the handler through
/// [`Handler::on_backpressure`](crate::Handler::on_backpressure); a command
/// for a connection that has closed is dropped.
#[derive(Clone)]
pub struct Handle {
    loops: Arc<[Arc<Remote>]>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("loops", &self.loops.len())
            .finish()
    }
}

impl Handle {
    pub(crate) fn new(loops: Vec<Arc<Remote>>) -> Handle {
        Handle {
            loops: loops.into(),
        }
    }

    fn remote(&self, index: usize) -> Result<&Remote, Error> {
        self.loops
            .get(index)
            .map(|r| &**r)
            .ok_or(Error::NoSuchLoop(index))
    }

    /// How many loops this handle reaches.
    pub fn loops(&self) -> usize {
        self.loops.len()
    }

    /// Queues a message for `id`.
    pub fn send(&self, id: ConnId, kind: MessageKind, data: impl Into<Bytes>) -> Result<(), Error> {
        self.remote(id.loop_index())?.push(Command::Send {
            id,
            kind,
            data: data.into(),
        })
    }

    /// Queues a text message for `id`.
    pub fn send_text(&self, id: ConnId, text: &str) -> Result<(), Error> {
        self.send(
            id,
            MessageKind::Text,
            Bytes::copy_from_slice(text.as_bytes()),
        )
    }

    /// Queues a binary message for `id`.
    pub fn send_binary(&self, id: ConnId, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send(id, MessageKind::Binary, data)
    }

    /// Queues a ping for `id`.
    pub fn ping(&self, id: ConnId, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.remote(id.loop_index())?.push(Command::Ping {
            id,
            payload: payload.into(),
        })
    }

    /// Starts the closing handshake of `id`.
    pub fn close(
        &self,
        id: ConnId,
        code: CloseCode,
        reason: impl Into<String>,
    ) -> Result<(), Error> {
        self.remote(id.loop_index())?.push(Command::Close {
            id,
            code,
            reason: reason.into(),
        })
    }

    /// Sends a message to every open connection of every loop (prepared once: see
    /// [`broadcast_prepared`](Self::broadcast_prepared)).
    pub fn broadcast(&self, kind: MessageKind, data: impl Into<Bytes>) -> Result<(), Error> {
        let msg = PreparedMessage::new(kind, data).map_err(Error::Command)?;
        self.broadcast_prepared(&msg, None)
    }

    /// Sends a prepared message to every open connection of every loop but `except`: the
    /// payload is shared, and compressed once per set of compatible deflate parameters (see
    /// [`PreparedMessage`]), not once per connection.
    pub fn broadcast_prepared(
        &self,
        msg: &PreparedMessage,
        except: Option<ConnId>,
    ) -> Result<(), Error> {
        let mut result = Ok(());
        for r in self.loops.iter() {
            if let Err(e) = r.push(Command::Broadcast {
                msg: msg.clone(),
                except,
            }) {
                result = Err(e);
            }
        }
        result
    }

    /// Posts the broadcast to every loop but `skip_loop` without waking them:
    /// their indices go to `wakes`, for [`wake_deferred`](Self::wake_deferred)
    /// once the sending loop has handled everything one read brought. A loop
    /// woken at the first of several messages would write to its connections
    /// once per message; woken after the last, it writes them all at once.
    pub(crate) fn broadcast_deferred(
        &self,
        msg: &PreparedMessage,
        except: Option<ConnId>,
        skip_loop: usize,
        wakes: &mut Vec<usize>,
    ) -> Result<(), Error> {
        let mut result = Ok(());
        for (i, r) in self.loops.iter().enumerate() {
            if i == skip_loop {
                continue;
            }
            match r.push_unwoken(Command::Broadcast {
                msg: msg.clone(),
                except,
            }) {
                Ok(()) if !wakes.contains(&i) => wakes.push(i),
                Ok(()) => {}
                Err(e) => result = Err(e),
            }
        }
        result
    }

    /// Wakes the loops [`broadcast_deferred`](Self::broadcast_deferred)
    /// queued commands for, emptying `wakes`.
    pub(crate) fn wake_deferred(&self, wakes: &mut Vec<usize>) {
        for i in wakes.drain(..) {
            if let Some(r) = self.loops.get(i) {
                r.wake();
            }
        }
    }

    /// Runs `task` on loop `index`'s thread with that loop's [`Ctx`] (e.g. to
    /// open client connections there).
    pub fn run_on(
        &self,
        index: usize,
        task: impl FnOnce(&mut Ctx<'_>) + Send + 'static,
    ) -> Result<(), Error> {
        self.remote(index)?.push(Command::Run(Box::new(task)))
    }

    /// Graceful shutdown of every loop: stop accepting, close every open
    /// connection with 1001 (going away), wait up to `grace` for the closing
    /// handshakes, then drop what is left. The loops' `run` returns after.
    pub fn shutdown(&self, grace: Duration) {
        for r in self.loops.iter() {
            let ms = u64::try_from(grace.as_millis())
                .unwrap_or(u64::MAX - 1)
                .min(u64::MAX - 1);
            r.shutdown_ms.store(ms, Ordering::Release);
            r.wake();
        }
    }

    /// Stops every loop at once: each connection is dropped (its handler
    /// still gets `on_close`, with an I/O error) and `run` returns.
    pub fn stop(&self) {
        for r in self.loops.iter() {
            r.stop.store(true, Ordering::Release);
            r.wake();
        }
    }
}
