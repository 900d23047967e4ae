//! `wsx serve --driver std`: ws-std's threaded server, one thread per
//! connection; `--broadcast` keeps every connection's writer in a shared room.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{info, warn};
use ws_std::{Received, ServeOptions, ServerOptions, UpgradeResponse, WebSocket, WsWriter};

use super::{announce, fail, origin_allowed, scheme};
use crate::opts::ServeArgs;

type Room = Arc<Mutex<HashMap<String, WsWriter>>>;

/// Runs the std server until killed (or `--exit-after`).
pub(super) fn run(a: &ServeArgs, addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> i32 {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {addr}: {e}")),
    };
    let Ok(local) = listener.local_addr() else {
        return fail("no local address");
    };
    let origins = a.origins.clone();
    let mut server = ServerOptions::default()
        .config(a.config())
        .on_upgrade(move |req| {
            if origin_allowed(&origins, req.origin.as_deref()) {
                UpgradeResponse::accept()
            } else {
                warn!(
                    "rejected origin {}",
                    req.origin.as_deref().unwrap_or("(none)")
                );
                UpgradeResponse::reject(403, "origin not allowed")
            }
        });
    let scheme = scheme(tls.as_ref());
    if let Some(t) = tls {
        server = server.tls(t);
    }
    let room: Room = Arc::default();
    let served = Arc::new(AtomicUsize::new(0));
    let broadcast = a.broadcast;
    let (room2, served2) = (room.clone(), served.clone());
    let handle = match ws_std::serve(
        listener,
        ServeOptions::default()
            .server(server)
            .max_connections(a.max_connections),
        move |ws| {
            connection(ws, broadcast, &room2);
            served2.fetch_add(1, Ordering::SeqCst);
        },
    ) {
        Ok(h) => h,
        Err(e) => return fail(&format!("cannot serve: {e}")),
    };
    announce(scheme, local);
    info!(
        "serving ({} driver, {})",
        "std",
        if broadcast { "broadcast" } else { "echo" }
    );
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if a.exit_after
            .is_some_and(|n| served.load(Ordering::SeqCst) >= n)
        {
            handle.shutdown();
            return 0;
        }
    }
}

fn connection(mut ws: WebSocket, broadcast: bool, room: &Room) {
    let id = ws.id().to_string();
    let path = ws.request().map(|r| r.path.clone()).unwrap_or_default();
    info!(
        "{id} open {path} ({})",
        crate::describe::negotiated(ws.open_info())
    );
    if broadcast {
        if let Ok(mut r) = room.lock() {
            r.insert(id.clone(), ws.writer());
        }
    }
    loop {
        match ws.recv() {
            Ok(Received::Message(m)) => {
                if broadcast {
                    let peers: Vec<WsWriter> = match room.lock() {
                        Ok(r) => r
                            .iter()
                            .filter(|(k, _)| **k != id)
                            .map(|(_, w)| w.clone())
                            .collect(),
                        Err(_) => Vec::new(),
                    };
                    for p in peers {
                        let _ = p.send(m.kind, m.data.clone());
                    }
                } else if ws.send(m.kind, m.data).is_err() {
                    // The connection is closing; recv reports how it ends.
                }
            }
            Ok(Received::Closed(c)) => {
                info!("{id} closed: {}", crate::describe::closed(&c));
                break;
            }
            Ok(_) => {}
            Err(e) => {
                info!("{id} closed with error: {e}");
                break;
            }
        }
    }
    if broadcast {
        if let Ok(mut r) = room.lock() {
            r.remove(&id);
        }
    }
}
