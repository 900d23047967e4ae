//! Where the loop meets the application: the one routine that drives a
//! connection ([`drive`]), the hand-over of its events and notices to the
//! [`Handler`], and the one place application code is called ([`call`],
//! which contains a panic).

use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use ws_proto::{Event, UpgradeRequest};

use crate::ctx::Ctx;
use crate::handle::Handle;
use crate::handler::{Decision, Handler};
use crate::id::ConnId;
use crate::state::{LoopState, Notice};

/// The application's side of a loop: its handler, and the handle its
/// callbacks reach through [`Ctx::handle`].
pub(crate) struct App<H> {
    pub(crate) handler: H,
    pub(crate) handle: Handle,
}

/// The one routine that follows the core's driving contract for a
/// connection: write what `poll_transmit` hands out, deliver every event,
/// repeat while callbacks queue more; then re-arm the deadline and the poll
/// interest.
pub(crate) fn drive<H: Handler>(app: &mut App<H>, state: &mut LoopState, id: ConnId) {
    loop {
        if let Some((sess, _)) = state.sessions.get_mut(id) {
            sess.f.dirty = false;
        }
        state.transmit(id);
        // One event at a time, each handed to the handler before the next
        // is polled: the core echoes a peer's close only once the events
        // before it were taken, so replies to them go out first.
        let mut delivered = false;
        while let Some(ev) = state
            .sessions
            .get_mut(id)
            .and_then(|(sess, _)| sess.conn.poll_event())
        {
            delivered = true;
            dispatch(app, state, id, ev);
        }
        if !delivered {
            break;
        }
    }
    state.after_drive(id);
    wake_deferred(app, state);
}

/// Wakes the loops this one's callbacks sent broadcasts to.
fn wake_deferred<H: Handler>(app: &App<H>, state: &mut LoopState) {
    if !state.deferred_wakes.is_empty() {
        app.handle.wake_deferred(&mut state.deferred_wakes);
    }
}

/// Drives every session marked by a command and delivers the pending
/// notices, until neither is left.
pub(crate) fn settle<H: Handler>(app: &mut App<H>, state: &mut LoopState) {
    loop {
        if let Some(next) = state.sessions.pop_dirty() {
            if let Some(id) = next {
                drive(app, state, id);
            }
            continue;
        }
        let Some((slot, gen, notice)) = state.notices.pop_front() else {
            break;
        };
        let Some(id) = state
            .sessions
            .id_at(slot)
            .filter(|id| id.gen() as u32 == gen)
        else {
            continue;
        };
        if state.sessions.get(id).is_none_or(|s| s.f.panicked) {
            continue;
        }
        match notice {
            Notice::Backpressure(n) => {
                call(app, state, Some(id), "on_backpressure", |h, ctx| {
                    h.on_backpressure(ctx, id, n)
                });
            }
            Notice::Drain => {
                call(app, state, Some(id), "on_drain", |h, ctx| {
                    h.on_drain(ctx, id)
                });
            }
        }
    }
    wake_deferred(app, state);
}

/// Hands one event to the handler. A connection whose handler panicked
/// gets no more callbacks but its one `on_close`; one taken in over
/// `max_connections` gets none (the loop answers it).
fn dispatch<H: Handler>(app: &mut App<H>, state: &mut LoopState, id: ConnId, ev: Event) {
    let (refusing, panicked) = state
        .sessions
        .get(id)
        .map_or((false, false), |s| (s.f.refusing, s.f.panicked));
    if refusing {
        match ev {
            Event::UpgradeRequest(_) => state.refuse(id),
            Event::Closed(_) => state.remove(id),
            _ => {}
        }
        return;
    }
    if panicked && !matches!(ev, Event::Closed(_)) {
        return;
    }
    match ev {
        Event::UpgradeRequest(req) => upgrade(app, state, id, &req),
        Event::Open(info) => {
            state.follows.remove(&id);
            call(app, state, Some(id), "on_open", |h, ctx| {
                h.on_open(ctx, id, &info)
            });
        }
        Event::Message(m) => {
            call(app, state, Some(id), "on_message", |h, ctx| {
                h.on_message(ctx, id, m)
            });
        }
        Event::Fragment(f) => {
            call(app, state, Some(id), "on_fragment", |h, ctx| {
                h.on_fragment(ctx, id, f)
            });
        }
        Event::Ping(p) => {
            call(app, state, Some(id), "on_ping", |h, ctx| {
                h.on_ping(ctx, id, &p)
            });
        }
        Event::Pong(p) => {
            call(app, state, Some(id), "on_pong", |h, ctx| {
                h.on_pong(ctx, id, &p)
            });
        }
        Event::Closed(c) => {
            // A proxy handshake left over (a timeout, a shutdown) goes with
            // its attempt. A redirect followed: the connection goes on with
            // its next attempt, nothing to tell.
            state.proxies.remove(&id);
            let Some(c) = state.follow_redirect(id, c) else {
                return;
            };
            // Whether or not `on_close` panics, the connection goes.
            call(app, state, None, "on_close", |h, ctx| {
                h.on_close(ctx, id, &c)
            });
            state.remove(id);
        }
        _ => {}
    }
}

/// An upgrade request: refused with 403 when its origin is not allowed,
/// otherwise decided by the handler.
fn upgrade<H: Handler>(app: &mut App<H>, state: &mut LoopState, id: ConnId, req: &UpgradeRequest) {
    let decision = if ws_net::origin::origin_allowed(
        state.options.allowed_origins.as_deref(),
        req.origin.as_deref(),
    ) {
        call(app, state, Some(id), "on_upgrade", |h, ctx| {
            h.on_upgrade(ctx, id, req)
        })
    } else {
        log::info!(
            "ws-mio: {id}: origin {:?} not in the allow-list",
            req.origin
        );
        Some(Decision::reject(403, "origin not allowed"))
    };
    // None: the handler panicked, and the refusal is under way.
    if let Some(decision) = decision {
        if let Err(e) = state.decide(id, decision) {
            log::debug!("ws-mio: upgrade decision for {id}: {e}");
        }
    }
}

/// The one place application code is called from the loop: runs `f` with
/// the handler and a [`Ctx`], and contains a panic. `Some` is what `f`
/// returned; `None` means it panicked: the panic is logged (rate-limited)
/// and, when the callback was about connection `id`, that connection is
/// failed (1011 when it is open, a 500 answer to its upgrade request before
/// that) and gets no callback but its one `on_close`. Every other
/// connection goes on as before.
pub(crate) fn call<H: Handler, R>(
    app: &mut App<H>,
    state: &mut LoopState,
    id: Option<ConnId>,
    what: &'static str,
    f: impl FnOnce(&mut H, &mut Ctx<'_>) -> R,
) -> Option<R> {
    let (handler, handle) = (&mut app.handler, &app.handle);
    let payload = match panic::catch_unwind(AssertUnwindSafe(|| {
        f(handler, &mut Ctx::new(state, handle))
    })) {
        Ok(r) => return Some(r),
        Err(payload) => payload,
    };
    let msg = ws_net::panic_message(payload.as_ref());
    let now = Instant::now();
    match id {
        Some(id) => {
            ws_net::log_limited!(
                state.log.panic,
                now,
                log::Level::Error,
                "ws-mio: {what} panicked for {id} ({msg}); closing it with 1011"
            );
            state.fail_panicked(id);
        }
        None => ws_net::log_limited!(
            state.log.panic,
            now,
            log::Level::Error,
            "ws-mio: {what} panicked ({msg})"
        ),
    }
    None
}
