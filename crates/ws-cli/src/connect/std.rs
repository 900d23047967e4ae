//! `wsx connect --driver std`: one blocking ws-std connection; in
//! interactive mode a thread sends the stdin lines while this one prints.

use std::io::BufRead;

use ws_proto::CloseCode;
use ws_std::{ClientOptions, Received, TlsClientOptions};

use super::{connected, exit_code, failed, Output, Settings};
use crate::opts::ConnectArgs;

/// ws-std's client options for the settings `connect::settings` built and
/// checked.
fn options(s: Settings) -> ClientOptions {
    let mut opts = ClientOptions::default().config(s.config);
    opts.request = s.request;
    if let Some(cfg) = s.tls {
        opts = opts.tls(TlsClientOptions::default().config(cfg));
    }
    opts
}

/// Runs the client on the calling thread; returns the exit code.
pub(super) fn run(a: &ConnectArgs, s: Settings) -> i32 {
    let mut ws = match ws_std::connect(&a.url, &options(s)) {
        Ok(ws) => ws,
        Err(e) => {
            return failed(&e);
        }
    };
    if a.echo {
        loop {
            match ws.recv() {
                Ok(Received::Message(m)) => {
                    let _ = ws.send(m.kind, m.data);
                }
                Ok(Received::Closed(c)) => return exit_code(&c),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("wsx: {e}");
                    return 1;
                }
            }
        }
    }
    connected(&a.url, ws.open_info());
    let writer = ws.writer();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if writer.send_text(&line).is_err() {
                return;
            }
        }
        let _ = writer.close(CloseCode::NORMAL, "");
    });
    let mut out = Output::new(a.binary_out.as_deref());
    loop {
        match ws.recv() {
            Ok(Received::Message(m)) => out.message(m.kind, &m.data),
            Ok(Received::Closed(c)) => {
                eprintln!("wsx: closed: {}", crate::describe::closed(&c));
                return exit_code(&c);
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("wsx: {e}");
                return 1;
            }
        }
    }
}
