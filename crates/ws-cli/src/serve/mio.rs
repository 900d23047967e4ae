//! `wsx serve --driver mio`: N event loops sharing the listener.
//!
//! `--broadcast`: one room for the whole server, every message prepared
//! once and sent to every other connection of every loop
//! ([`Ctx::broadcast_group`]). With `--redis`: one room per request path
//! ([`Rooms`]: its members on every loop), joined to the same room on the
//! other servers through Redis pub/sub ([`ws_redis::Bridge`]): a message is
//! sent to the local members at once and published once; messages of
//! other servers arrive on the bridge's thread and reach the room's
//! members through each loop's command queue (docs/scale-out.md).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use log::{info, warn};
use ws_mio::{ConnId, Ctx, Decision, Handle, Handler, LoopGroup, Options};
use ws_net::LogLimiter;
use ws_proto::{Closed, Message, OpenInfo, PreparedMessage, UpgradeRequest};

use super::{announce, fail, origin_allowed, scheme};
use crate::opts::ServeArgs;

/// One line per interval for a repeated warning.
const LOG_INTERVAL: Duration = Duration::from_secs(5);

struct Server {
    broadcast: bool,
    origins: Arc<Vec<String>>,
    served: Arc<AtomicUsize>,
    /// `--redis`: the rooms by path and the bridge (set once it started).
    redis: Option<(Arc<Rooms>, Arc<OnceLock<ws_redis::Bridge>>)>,
    /// `--redis`: the path of each connection between upgrade and open.
    paths: HashMap<ConnId, String>,
}

/// `--redis`: the rooms by request path, shared by every loop and the
/// bridge's thread: each room's members, whatever loop they are on.
struct Rooms {
    members: Mutex<HashMap<String, Vec<ConnId>>>,
    /// Warnings for full command queues, rate-limited.
    log: Mutex<LogLimiter>,
}

impl Rooms {
    fn join(&self, room: &str, id: ConnId) {
        let mut m = self.members.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(room.to_string()).or_default().push(id);
    }

    fn leave(&self, room: &str, id: ConnId) {
        let mut m = self.members.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ids) = m.get_mut(room) {
            ids.retain(|x| *x != id);
            if ids.is_empty() {
                m.remove(room);
            }
        }
    }

    /// `msg` to every member of `room` but `except`: this loop's at once
    /// (with `ctx`), every other loop's through its command queue (a full
    /// queue: those members miss it, with a warning).
    fn send(
        &self,
        handle: &Handle,
        mut ctx: Option<&mut Ctx<'_>>,
        room: &str,
        except: Option<ConnId>,
        msg: &PreparedMessage,
    ) {
        let mut per_loop: HashMap<usize, Vec<ConnId>> = HashMap::new();
        {
            let m = self.members.lock().unwrap_or_else(|e| e.into_inner());
            for id in m.get(room).into_iter().flatten() {
                if Some(*id) != except {
                    per_loop.entry(id.loop_index()).or_default().push(*id);
                }
            }
        }
        let here = ctx.as_ref().map(|c| c.loop_index());
        for (index, ids) in per_loop {
            match ctx.as_deref_mut() {
                Some(c) if Some(index) == here => {
                    for id in ids {
                        // Backpressure: the send queue bounds a slow member.
                        let _ = c.send_prepared(id, msg);
                    }
                }
                _ => {
                    let msg = msg.clone();
                    let posted = handle.run_on(index, move |c: &mut Ctx<'_>| {
                        for id in ids {
                            let _ = c.send_prepared(id, &msg);
                        }
                    });
                    if let Err(e) = posted {
                        let logged = self
                            .log
                            .lock()
                            .ok()
                            .and_then(|mut l| l.check(Instant::now()));
                        if logged.is_some() {
                            warn!("room {room:?}: members on loop {index} missed a message: {e}");
                        }
                    }
                }
            }
        }
    }
}

impl Handler for Server {
    fn on_upgrade(&mut self, _ctx: &mut Ctx<'_>, id: ConnId, req: &UpgradeRequest) -> Decision {
        if origin_allowed(&self.origins, req.origin.as_deref()) {
            if self.redis.is_some() {
                self.paths.insert(id, super::room_of(&req.path).to_string());
            }
            Decision::accept()
        } else {
            warn!(
                "{id} rejected origin {}",
                req.origin.as_deref().unwrap_or("(none)")
            );
            Decision::reject(403, "origin not allowed")
        }
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, info: &OpenInfo) {
        let peer = ctx
            .peer_addr(id)
            .map_or_else(|| "?".to_string(), |a| a.to_string());
        info!(
            "{id} open from {peer} ({})",
            crate::describe::negotiated(info)
        );
        if let (Some((rooms, _)), Some(room)) = (&self.redis, self.paths.get(&id)) {
            rooms.join(room, id);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        if let Some((rooms, bridge)) = &self.redis {
            let Some(room) = self.paths.get(&id) else {
                return;
            };
            match PreparedMessage::new(m.kind, m.data.clone()) {
                Ok(msg) => rooms.send(&ctx.handle(), Some(ctx), room, Some(id), &msg),
                Err(e) => return warn!("{id} broadcast dropped: {e}"),
            }
            if let Some(b) = bridge.get() {
                // Full queue: counted and logged by the bridge.
                b.publish(room, id.as_u64(), m.kind, m.data);
            }
        } else if self.broadcast {
            // Every other connection of every loop: this loop's at once,
            // the others' through their queues; prepared once (one
            // compression for all connections that can share it).
            match ws_mio::ws_proto::PreparedMessage::new(m.kind, m.data) {
                Ok(msg) => {
                    if ctx.broadcast_group(&msg, Some(id)).is_err() {
                        warn!("{id} broadcast dropped: command queue full");
                    }
                }
                Err(e) => warn!("{id} broadcast dropped: {e}"),
            }
        } else if let Err(e) = ctx.send(id, m.kind, m.data) {
            warn!("{id} echo refused: {e}");
        }
    }

    fn on_close(&mut self, _ctx: &mut Ctx<'_>, id: ConnId, c: &Closed) {
        info!("{id} closed: {}", crate::describe::closed(c));
        if let (Some((rooms, _)), Some(room)) = (&self.redis, self.paths.remove(&id)) {
            rooms.leave(&room, id);
        }
        self.served.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs the mio server until killed (or `--exit-after`).
pub(super) fn run(a: &ServeArgs, addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> i32 {
    let scheme = scheme(tls.as_ref());
    let served = Arc::new(AtomicUsize::new(0));
    let origins = Arc::new(a.origins.clone());
    let options = Options::default()
        .config(a.config())
        .max_connections(a.max_connections.max(1));
    let mut builder = LoopGroup::builder()
        .loops(a.threads.max(1))
        .options(options);
    builder = match tls {
        Some(t) => builder.listen_tls(addr, t),
        None => builder.listen(addr),
    };
    let (broadcast, served2) = (a.broadcast, served.clone());
    let rooms = Arc::new(Rooms {
        members: Mutex::new(HashMap::new()),
        log: Mutex::new(LogLimiter::new(LOG_INTERVAL)),
    });
    let bridge = Arc::new(OnceLock::new());
    let redis = a
        .redis
        .as_ref()
        .map(|_| (Arc::clone(&rooms), Arc::clone(&bridge)));
    let group = match builder.spawn(move |_| Server {
        broadcast,
        origins: origins.clone(),
        served: served2.clone(),
        redis: redis.clone(),
        paths: HashMap::new(),
    }) {
        Ok(g) => g,
        Err(e) => return fail(&format!("cannot listen on {addr}: {e}")),
    };
    // The bridge once the loops run (it hands them the other servers'
    // messages); Redis unreachable is an error before the address is
    // announced.
    if let Some(url) = &a.redis {
        let mut opts = ws_redis::BridgeOptions::new(url.as_str());
        opts.max_payload = a.proto.max_message;
        let handle = group.handle().clone();
        let started = ws_redis::Bridge::start(opts, move |room, msg| {
            rooms.send(&handle, None, room, None, &msg);
        });
        match started {
            Ok(b) => {
                info!("redis: joined {url} as server {:016x}", b.id());
                let _ = bridge.set(b);
            }
            Err(e) => {
                group.shutdown(Duration::from_secs(1));
                let _ = group.join();
                return fail(&format!("--redis {url}: {e}"));
            }
        }
    }
    let Some(local) = group.local_addr() else {
        return fail("no local address");
    };
    announce(scheme, local);
    info!(
        "serving (mio driver, {} event loop(s), {})",
        a.threads.max(1),
        match (a.broadcast, a.redis.is_some()) {
            (true, true) => "broadcast, rooms by path over Redis",
            (true, false) => "broadcast",
            _ => "echo",
        }
    );
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if a.exit_after
            .is_some_and(|n| served.load(Ordering::SeqCst) >= n)
        {
            group.shutdown(Duration::from_secs(1));
            return match group.join() {
                Ok(()) => 0,
                Err(e) => fail(&e.to_string()),
            };
        }
    }
}
