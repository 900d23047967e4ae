//! `wsx connect`.

use std::io::{BufRead, Write};
use std::time::Duration;

use ws_proto::deflate::DeflateOffer;
use ws_proto::{CloseCode, Closed, MessageKind};
use ws_std::{ClientOptions, Received, TlsClientOptions};

use crate::opts::{ConnectArgs, Driver};

/// Exit code for a close: 0 for a normal one.
pub fn exit_code(c: &Closed) -> i32 {
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

/// Builds the client options from the arguments, and checks the URL and the
/// upgrade request they make with the code every driver uses
/// ([`ws_net::url::WsUrl`], [`ws_net::request::client_request`]): a bad
/// argument (a header value with CR/LF or another control byte, a name that
/// is not a token, a bad origin or subprotocol, a space in the path...) is
/// an error here, before either driver resolves or connects anything.
pub fn options(a: &ConnectArgs) -> Result<ClientOptions, String> {
    let mut cfg = a
        .proto
        .config()
        .handshake_timeout(Duration::from_secs_f64(a.timeout.max(0.001)));
    if let Some(p) = a.ping {
        cfg = cfg.ping_interval(Some(Duration::from_secs_f64(p.max(0.001))));
    }
    if a.deflate_client_no_context_takeover {
        if let Some(d) = cfg.deflate.as_mut() {
            d.offers = vec![DeflateOffer {
                client_no_context_takeover: true,
                ..DeflateOffer::default()
            }];
        }
    }
    let mut opts = ClientOptions::default().config(cfg);
    for h in &a.headers {
        let Some((k, v)) = h.split_once(':') else {
            return Err(format!("--header {h:?} is not 'Name: value'"));
        };
        // The handshake writes Origin itself: `-H 'Origin: ...'` sets it.
        if k.trim().eq_ignore_ascii_case("origin") {
            opts = opts.origin(v.trim());
        } else {
            opts = opts.header(k.trim(), v.trim());
        }
    }
    for p in &a.protocols {
        opts = opts.protocol(p.clone());
    }
    let url = ws_net::url::WsUrl::parse(&a.url).map_err(|e| e.to_string())?;
    ws_net::request::client_request(&url, opts.origin.as_deref(), &opts.protocols, &opts.headers)
        .map_err(|e| e.to_string())?;
    if let Some(cfg) = crate::tls::client(a)? {
        opts = opts.tls(TlsClientOptions::default().config(cfg));
    }
    Ok(opts)
}

/// `msg` with control characters escaped (`\r`, `\n`, `\u{1}`), so an
/// error quoting a bad argument stays on one line of the terminal.
pub fn printable(msg: &str) -> String {
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

/// Runs the client; returns the exit code.
pub fn run(a: ConnectArgs) -> i32 {
    // Exit code 2: a bad argument; nothing was sent.
    let opts = match options(&a) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("wsx: {}", printable(&e));
            return 2;
        }
    };
    if a.driver == Driver::Mio {
        return crate::connect_mio::run(&a, opts);
    }
    let mut ws = match ws_std::connect(&a.url, &opts) {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("wsx: {}", printable(&e.to_string()));
            return 1;
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
    let info = ws.open_info();
    eprintln!(
        "wsx: connected to {} (protocol {:?}, extensions {:?}); type lines to send, EOF to close",
        a.url, info.protocol, info.extensions
    );
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
                eprintln!("wsx: closed: {} {}", c.code, c.reason);
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

/// Where received messages go.
pub struct Output {
    file: Option<std::fs::File>,
}

impl Output {
    /// Text to stdout; binary as hex, or appended to `binary_out`.
    pub fn new(binary_out: Option<&std::path::Path>) -> Output {
        let file = binary_out.and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| eprintln!("wsx: {}: {e}", p.display()))
                .ok()
        });
        Output { file }
    }

    /// Prints or stores one message.
    pub fn message(&mut self, kind: MessageKind, data: &[u8]) {
        let stdout = std::io::stdout();
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
