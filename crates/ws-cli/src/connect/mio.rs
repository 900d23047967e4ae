//! `wsx connect --driver mio`: one client connection on a ws-mio event loop.

use std::io::BufRead;
use std::time::Duration;

use ws_mio::{ConnId, ConnectOptions, Ctx, EventLoop, Handler, Options};
use ws_proto::{CloseCode, Closed, Message, OpenInfo};

use super::{connected, exit_code, failed, Output, Settings};
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
        connected(&self.url, info);
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
                    eprintln!("wsx: closed: {}", crate::describe::closed(c));
                }
                exit_code(c)
            }
            Some(e) => failed(e),
        });
        ctx.stop();
    }
}

/// Runs the client on a mio loop with the settings `connect::settings`
/// built and checked; returns the exit code.
pub(super) fn run(a: &ConnectArgs, s: Settings) -> i32 {
    let mut co = ConnectOptions::new().config(s.config.clone());
    co.request = s.request;
    // `--insecure` / `--ca`, built once by `connect::settings` for every
    // driver.
    if let Some(cfg) = s.tls {
        co = co.tls(cfg);
    }
    let client = Client {
        echo: a.echo,
        url: a.url.clone(),
        out: Output::new(a.binary_out.as_deref()),
        exit: None,
    };
    let mut ev = match EventLoop::new(Options::default().config(s.config), client) {
        Ok(ev) => ev,
        Err(e) => {
            eprintln!("wsx: {e}");
            return 1;
        }
    };
    if let Err(e) = ev.connect(&a.url, co) {
        return failed(&e);
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
