//! `wsx connect`: an interactive client (stdin lines out as text, messages
//! printed), or `--echo` to send every message back (the Autobahn client
//! role).
//!
//! This file holds what every driver of the subcommand shares: the checked
//! [`Settings`] made from the arguments, where received messages go
//! ([`Output`]), the exit code for a close, the error text, and the dispatch
//! on `--driver`. Each driver lives in a file of its own that depends only
//! on this one (and on the crate's top-level modules), never on a sibling:
//!
//! - [`std`]: one blocking ws-std connection, stdin on a thread;
//! - [`mio`]: one connection on a ws-mio event loop;
//! - [`tokio`]: one ws-tokio connection on a current-thread runtime, stdin
//!   on a thread.
//!
//! Every driver file has the same entry point,
//! `pub(super) fn run(a: &ConnectArgs, s: Settings) -> i32`, and turns
//! [`Settings`] into its own driver's options.
//!
//! # Adding a driver
//!
//! Write `connect/NAME.rs` with that `run` (`tokio.rs` is the latest one),
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

use ::std::fs::{File, OpenOptions};
use ::std::io::Write;
use ::std::path::Path;
use ::std::sync::Arc;
use ::std::time::Duration;

use ws_proto::deflate::DeflateOffer;
use ws_proto::{CloseCode, Closed, MessageKind, OpenInfo};

use crate::opts::{ConnectArgs, Driver};

/// What the client asks for, checked and driver-neutral: each driver file
/// turns it into its own options.
struct Settings {
    /// The core configuration (limits, deflate offer, handshake timeout,
    /// ping interval).
    config: ws_proto::Config,
    /// The request's origin (`-H 'Origin: ...'`), subprotocols and extra
    /// headers, as every driver's client options hold them.
    request: ws_net::request::RequestOptions,
    /// The TLS client configuration (`--insecure`, `--ca`); the driver's
    /// default when `None`.
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Exit code for a close: 0 for a normal one.
fn exit_code(c: &Closed) -> i32 {
    if [
        CloseCode::NORMAL,
        CloseCode::GOING_AWAY,
        CloseCode::NO_STATUS,
    ]
    .contains(&c.code)
    {
        0
    } else {
        3
    }
}

/// Builds the client settings from the arguments, and checks the URL and
/// the upgrade request they make with the code every driver uses
/// ([`ws_net::url::WsUrl`], [`ws_net::request::client_request`]): a bad
/// argument (a header value with CR/LF or another control byte, a name that
/// is not a token, a bad origin or subprotocol, a space in the path...) is
/// an error here, before any driver resolves or connects anything.
fn settings(a: &ConnectArgs) -> Result<Settings, String> {
    let mut config = a
        .proto
        .config()
        .handshake_timeout(Duration::from_secs_f64(a.timeout.max(0.001)));
    if let Some(p) = a.ping {
        config = config.ping_interval(Some(Duration::from_secs_f64(p.max(0.001))));
    }
    if a.deflate_client_no_context_takeover {
        if let Some(d) = config.deflate.as_mut() {
            d.offers = vec![DeflateOffer {
                client_no_context_takeover: true,
                ..DeflateOffer::default()
            }];
        }
    }
    let mut request = ws_net::request::RequestOptions::default();
    for h in &a.headers {
        let Some((k, v)) = h.split_once(':') else {
            return Err(format!("--header {h:?} is not 'Name: value'"));
        };
        // The handshake writes Origin itself: `-H 'Origin: ...'` sets it.
        if k.trim().eq_ignore_ascii_case("origin") {
            request.origin = Some(v.trim().to_string());
        } else {
            request
                .headers
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    request.protocols = a.protocols.clone();
    request.max_redirects = a.max_redirects;
    if a.no_proxy {
        request.proxy = ws_net::proxy::ProxyMode::Off;
    } else if let Some(p) = &a.proxy {
        let p = ws_net::proxy::ProxyUrl::parse(p).map_err(|e| format!("--proxy: {e}"))?;
        request.proxy = ws_net::proxy::ProxyMode::Url(p);
    }
    if a.http2 && a.driver != Driver::Tokio {
        return Err("--http2 needs --driver tokio (HTTP/2 is spoken by ws-tokio)".to_string());
    }
    let url = ws_net::url::WsUrl::parse(&a.url).map_err(|e| e.to_string())?;
    request.build(&url).map_err(|e| e.to_string())?;
    let tls = crate::tls::client(&a.tls)?;
    Ok(Settings {
        config,
        request,
        tls,
    })
}

/// `msg` with control characters escaped (`\r`, `\n`, `\u{1}`), so an
/// error quoting a bad argument stays on one line of the terminal.
fn printable(msg: &str) -> String {
    msg.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Prints a connection error (on one line, with the fix when it is the
/// server's certificate that was refused) and returns its exit code, 1.
fn failed(e: &dyn ::std::fmt::Display) -> i32 {
    let msg = printable(&e.to_string());
    eprintln!("wsx: {msg}{}", crate::tls::hint(&msg));
    1
}

/// Runs the client; returns the exit code.
pub fn run(a: ConnectArgs) -> i32 {
    // Exit code 2: a bad argument; nothing was sent.
    let s = match settings(&a) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wsx: {}", printable(&e));
            return 2;
        }
    };
    match a.driver {
        Driver::Std => self::std::run(&a, s),
        Driver::Mio => self::mio::run(&a, s),
        Driver::Tokio => self::tokio::run(&a, s),
    }
}

/// Tells the user the connection is open and how to use it (interactive
/// mode).
fn connected(url: &str, info: &OpenInfo) {
    eprintln!(
        "wsx: connected to {url} ({}); type lines to send, end with EOF (Ctrl-D) to close",
        crate::describe::negotiated(info)
    );
}

/// Where received messages go.
struct Output {
    file: Option<File>,
}

impl Output {
    /// Text to stdout; binary as hex, or appended to `binary_out`.
    fn new(binary_out: Option<&Path>) -> Output {
        let file = binary_out.and_then(|p| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| eprintln!("wsx: {}: {e}", p.display()))
                .ok()
        });
        Output { file }
    }

    /// Prints or stores one message.
    fn message(&mut self, kind: MessageKind, data: &[u8]) {
        let stdout = ::std::io::stdout();
        let mut o = stdout.lock();
        match kind {
            MessageKind::Text => {
                let _ = writeln!(o, "{}", String::from_utf8_lossy(data));
            }
            MessageKind::Binary => match self.file.as_mut() {
                Some(f) => {
                    let _ = f.write_all(data);
                }
                None => {
                    let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
                    let _ = writeln!(o, "{hex}");
                }
            },
        }
        let _ = o.flush();
    }
}
