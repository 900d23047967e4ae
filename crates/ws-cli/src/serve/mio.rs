//! `wsx serve --driver mio`: N event loops sharing the listener.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use log::{info, warn};
use ws_mio::{ConnId, Ctx, Decision, Handler, LoopGroup, Options};
use ws_proto::{Closed, Message, OpenInfo, UpgradeRequest};

use super::{announce, fail, origin_allowed, scheme};
use crate::opts::ServeArgs;

struct Server {
    broadcast: bool,
    origins: Arc<Vec<String>>,
    served: Arc<AtomicUsize>,
}

impl Handler for Server {
    fn on_upgrade(&mut self, _ctx: &mut Ctx<'_>, id: ConnId, req: &UpgradeRequest) -> Decision {
        if origin_allowed(&self.origins, req.origin.as_deref()) {
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
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        if self.broadcast {
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
        self.served.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs the mio server until killed (or `--exit-after`).
pub(super) fn run(a: &ServeArgs, addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> i32 {
    let scheme = scheme(tls.as_ref());
    let served = Arc::new(AtomicUsize::new(0));
    let origins = Arc::new(a.origins.clone());
    let options = Options::default()
        .config(a.proto.config())
        .max_connections(a.max_connections.max(1));
    let mut builder = LoopGroup::builder()
        .loops(a.threads.max(1))
        .options(options);
    builder = match tls {
        Some(t) => builder.listen_tls(addr, t),
        None => builder.listen(addr),
    };
    let (broadcast, served2) = (a.broadcast, served.clone());
    let group = match builder.spawn(move |_| Server {
        broadcast,
        origins: origins.clone(),
        served: served2.clone(),
    }) {
        Ok(g) => g,
        Err(e) => return fail(&format!("cannot listen on {addr}: {e}")),
    };
    let Some(local) = group.local_addr() else {
        return fail("no local address");
    };
    announce(scheme, local);
    info!(
        "serving (mio driver, {} event loop(s), {})",
        a.threads.max(1),
        if a.broadcast { "broadcast" } else { "echo" }
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
