//! `wsx serve`.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{info, warn};
use ws_std::{Received, ServeOptions, ServerOptions, UpgradeResponse, WebSocket, WsWriter};

use crate::opts::{Driver, ServeArgs};

type Room = Arc<Mutex<HashMap<String, WsWriter>>>;

/// Runs the server until killed (or until `--exit-after` connections ended).
pub fn run(a: ServeArgs) -> i32 {
    let tls = match (&a.tls_cert, &a.tls_key, a.tls_self_signed) {
        (Some(c), Some(k), _) => match crate::tls::server_from_files(c, k) {
            Ok(cfg) => Some(cfg),
            Err(e) => return fail(&format!("TLS: {e}")),
        },
        (_, _, true) => match crate::tls::server_self_signed() {
            Ok((cfg, pem)) => {
                let path = std::env::temp_dir()
                    .join(format!("wsx-self-signed-{}.pem", std::process::id()));
                if std::fs::write(&path, pem).is_ok() {
                    info!(
                        "self-signed certificate written to {} (use --ca with it)",
                        path.display()
                    );
                }
                Some(cfg)
            }
            Err(e) => return fail(&format!("TLS: {e}")),
        },
        _ => None,
    };
    match a.driver {
        Driver::Std => serve_std(&a, tls),
        Driver::Mio => crate::serve_mio::run(&a, tls),
    }
}

/// Prints an error and returns the exit code for it.
pub fn fail(msg: &str) -> i32 {
    eprintln!("wsx: {msg}");
    1
}

/// Announces the bound address on stdout (scripts and tests read it).
pub fn announce(scheme: &str, addr: std::net::SocketAddr) {
    println!("wsx: listening on {scheme}://{addr}");
    let _ = std::io::stdout().flush();
}

/// The `--origin` policy: without the flag there is no list and every
/// request passes; with it, the shared case-insensitive allow-list check
/// ([`ws_net::origin::origin_allowed`]) decides.
pub fn origin_allowed(origins: &[String], origin: Option<&str>) -> bool {
    let list = (!origins.is_empty()).then_some(origins);
    ws_net::origin::origin_allowed(list, origin)
}

fn serve_std(a: &ServeArgs, tls: Option<Arc<rustls::ServerConfig>>) -> i32 {
    let listener = match TcpListener::bind(&a.addr) {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {}: {e}", a.addr)),
    };
    let Ok(local) = listener.local_addr() else {
        return fail("no local address");
    };
    let origins = a.origins.clone();
    let mut server = ServerOptions::default()
        .config(a.proto.config())
        .on_upgrade(move |req| {
            if origin_allowed(&origins, req.origin.as_deref()) {
                UpgradeResponse::accept()
            } else {
                warn!("rejected origin {:?}", req.origin);
                UpgradeResponse::reject(403, "origin not allowed")
            }
        });
    let scheme = if tls.is_some() { "wss" } else { "ws" };
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
        "{id} open {path} extensions={:?}",
        ws.open_info().extensions
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
                info!(
                    "{id} closed code={} reason={:?} clean={}",
                    c.code, c.reason, c.clean
                );
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
