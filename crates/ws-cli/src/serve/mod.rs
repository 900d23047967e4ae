//! `wsx serve`: an echo (or `--broadcast` chat) server.
//!
//! This file holds what every driver of the subcommand shares: the TLS
//! configuration made from the arguments, the `--origin` policy, the
//! announcement of the bound address, the error exit, and the dispatch on
//! `--driver`. Each driver lives in a file of its own that depends only on
//! this one (and on the crate's top-level modules), never on a sibling:
//!
//! - [`std`]: ws-std, one thread per connection;
//! - [`mio`]: ws-mio, N event loops sharing the listener;
//! - [`tokio`]: ws-tokio, one task per connection on a multi-thread
//!   runtime with `--threads` workers (one by default).
//!
//! Every driver file has the same entry point,
//! `pub(super) fn run(a: &ServeArgs, addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> i32`
//! (`addr` is `ADDR` resolved once here, so every driver takes the same
//! host names),
//! and runs until killed (or until `--exit-after` connections ended).
//!
//! # Adding a driver
//!
//! Write `serve/NAME.rs` with that `run` (`tokio.rs` is the latest one),
//! declare it below (`mod NAME;`) and add its arm to the `match` in [`run`].
//! The match has no catch-all arm, so adding the variant to [`Driver`]
//! makes the compiler point at every subcommand that still lacks one. `run`
//! is synchronous: an async driver builds its runtime inside it and blocks
//! on its future.
//!
//! A module named `std` shadows the standard library in this file only:
//! paths to the standard library here start with `::std`, and the `tokio`
//! module shadows that crate the same way (`::tokio` here). Inside a driver
//! file `std::` and `tokio::` are the crates, as usual.

mod mio;
mod std;
mod tokio;

use ::std::io::Write;
use ::std::net::SocketAddr;
use ::std::sync::Arc;

use log::info;

use crate::opts::{Driver, ServeArgs};

/// Runs the server until killed (or until `--exit-after` connections ended).
pub fn run(a: ServeArgs) -> i32 {
    if a.http2 && a.driver != Driver::Tokio {
        eprintln!("wsx: --http2 needs --driver tokio (HTTP/2 is served by ws-tokio)");
        return 2;
    }
    // Exit code 2: an address that is not HOST:PORT or names no host.
    let addr = match resolve(&a.addr) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("wsx: {e}");
            return 2;
        }
    };
    let tls = match (&a.tls_cert, &a.tls_key, a.tls_self_signed) {
        (Some(c), Some(k), _) => match crate::tls::server_from_files(c, k) {
            Ok(cfg) => Some(cfg),
            Err(e) => return fail(&format!("TLS: {e}")),
        },
        (_, _, true) => match crate::tls::server_self_signed() {
            Ok((cfg, pem)) => {
                let path = ::std::env::temp_dir()
                    .join(format!("wsx-self-signed-{}.pem", ::std::process::id()));
                if ::std::fs::write(&path, pem).is_ok() {
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
        Driver::Std => self::std::run(&a, addr, tls),
        Driver::Mio => self::mio::run(&a, addr, tls),
        Driver::Tokio => self::tokio::run(&a, addr, tls),
    }
}

/// The address to listen on: `HOST:PORT` with an IP address or a host name
/// (its first address, as `bind` would take), the same for every driver.
fn resolve(addr: &str) -> Result<SocketAddr, String> {
    use ::std::net::ToSocketAddrs;
    let printable: String = addr.escape_debug().collect();
    let mut addrs = addr.to_socket_addrs().map_err(|e| {
        format!("cannot listen on {printable:?}: {e} (expected HOST:PORT, e.g. 127.0.0.1:9001 or localhost:9001)")
    })?;
    addrs
        .next()
        .ok_or_else(|| format!("cannot listen on {printable:?}: the name has no address"))
}

/// Prints an error and returns the exit code for it.
fn fail(msg: &str) -> i32 {
    eprintln!("wsx: {msg}");
    1
}

/// `wss` with a TLS configuration, `ws` without.
fn scheme(tls: Option<&Arc<rustls::ServerConfig>>) -> &'static str {
    if tls.is_some() {
        "wss"
    } else {
        "ws"
    }
}

/// Announces the bound address on stdout (scripts and tests read it).
fn announce(scheme: &str, addr: SocketAddr) {
    println!("wsx: listening on {scheme}://{addr}");
    let _ = ::std::io::stdout().flush();
}

/// The `--origin` policy: without the flag there is no list and every
/// request passes; with it, the shared case-insensitive allow-list check
/// ([`ws_net::origin::origin_allowed`]) decides.
fn origin_allowed(origins: &[String], origin: Option<&str>) -> bool {
    let list = (!origins.is_empty()).then_some(origins);
    ws_net::origin::origin_allowed(list, origin)
}
