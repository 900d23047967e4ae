//! `wsx connect --driver mio`: one client connection on a ws-mio event loop.

use std::io::BufRead;
use std::time::Duration;

use ws_mio::{ConnId, ConnectOptions, Ctx, EventLoop, Handler, Options};
use ws_proto::{CloseCode, Closed, Message, OpenInfo};

use crate::connect::{exit_code, printable, Output};
use crate::opts::ConnectArgs;

struct Client {
    echo: bool,
    url: String,
    out: Output,
    exit: Option<i32>,
}

impl Handler for Client {
    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, info: &OpenInfo) {
        if self.echo {
            return;
        }
        eprintln!(
            "wsx: connected to {} (protocol {:?}, extensions {:?}); type lines to send, EOF to close",
            self.url, info.protocol, info.extensions
        );
        let handle = ctx.handle();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let Ok(line) = line else { break };
                if handle.send_text(id, &line).is_err() {
                    return;
                }
            }
            let _ = handle.close(id, CloseCode::NORMAL, "");
        });
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        if self.echo {
            let _ = ctx.send(id, m.kind, m.data);
        } else {
            self.out.message(m.kind, &m.data);
        }
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, _id: ConnId, c: &Closed) {
        self.exit = Some(match &c.error {
            None => {
                if !self.echo {
                    eprintln!("wsx: closed: {} {}", c.code, c.reason);
                }
                exit_code(c)
            }
            Some(e) => {
                eprintln!("wsx: {e}");
                1
            }
        });
        ctx.stop();
    }
}

/// Runs the client on a mio loop with the options `connect::options` built
/// and checked; returns the exit code.
pub fn run(a: &ConnectArgs, opts: ws_std::ClientOptions) -> i32 {
    let mut co = ConnectOptions::new().config(opts.config.clone());
    co.protocols = opts.protocols.clone();
    co.origin = opts.origin.clone();
    co.headers = opts.headers.clone();
    // `--insecure` / `--ca`, built once by `connect::options` for both
    // drivers.
    if let Some(cfg) = opts.tls.config.clone() {
        co = co.tls(cfg);
    }
    let client = Client {
        echo: a.echo,
        url: a.url.clone(),
        out: Output::new(a.binary_out.as_deref()),
        exit: None,
    };
    let mut ev = match EventLoop::new(Options::default().config(opts.config.clone()), client) {
        Ok(ev) => ev,
        Err(e) => {
            eprintln!("wsx: {e}");
            return 1;
        }
    };
    if let Err(e) = ev.connect(&a.url, co) {
        eprintln!("wsx: {}", printable(&e.to_string()));
        return 1;
    }
    loop {
        match ev.turn(Some(Duration::from_millis(200))) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                eprintln!("wsx: {e}");
                return 1;
            }
        }
    }
    ev.handler().exit.unwrap_or(1)
}
