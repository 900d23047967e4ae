//! `wsx connect --driver tokio`: one ws-tokio connection on a
//! current-thread runtime. In interactive mode a thread reads the stdin
//! lines into a channel; the task sends them through the writer half and
//! prints what the reader half yields. `--echo` `feed`s every message back
//! (the replies to one read go out in one write).

use std::io::BufRead;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use ws_proto::{CloseCode, Closed};
use ws_tokio::{ConnectOptions, TlsOptions, WebSocketStream};

use super::{connected, exit_code, failed, Output, Settings};
use crate::opts::ConnectArgs;

/// Lines read from stdin waiting to be sent.
const STDIN_QUEUE: usize = 64;

/// ws-tokio's options for the settings `connect::settings` built and
/// checked.
fn options(s: Settings) -> ConnectOptions {
    let mut opts = ConnectOptions::default().config(s.config);
    opts.request = s.request;
    // `--insecure` / `--ca`, built once by `connect::settings` for every
    // driver.
    if let Some(cfg) = s.tls {
        opts = opts.tls(TlsOptions::default().config(cfg));
    }
    opts
}

/// Runs the client on a current-thread runtime; returns the exit code.
pub(super) fn run(a: &ConnectArgs, s: Settings) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wsx: cannot start the tokio runtime: {e}");
            return 1;
        }
    };
    rt.block_on(client(a, s))
}

async fn client(a: &ConnectArgs, s: Settings) -> i32 {
    if a.http2 {
        return http2(a, s).await;
    }
    match ws_tokio::connect_with(&a.url, &options(s)).await {
        Ok(ws) => session(a, ws).await,
        Err(e) => failed(&e),
    }
}

/// `--http2`: HTTP/2 first (`wss://`: ALPN `h2`, falling back to HTTP/1.1;
/// `ws://`: prior knowledge), then the same session.
async fn http2(a: &ConnectArgs, s: Settings) -> i32 {
    use ws_tokio::h2::{Http2Mode, Http2Options};
    let secure = a
        .url
        .get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case("wss://"));
    let mode = if secure {
        Http2Mode::Try
    } else {
        Http2Mode::PriorKnowledge
    };
    let http2 = Http2Options::default().mode(mode);
    match ws_tokio::h2::connect_with(&a.url, &options(s), &http2).await {
        Ok(ws) => {
            let note = match ws.with_io(|t| t.http()) {
                ws_proto::upgrade::Http::V2 => "over HTTP/2 (RFC 8441 extended CONNECT)",
                ws_proto::upgrade::Http::V1 => {
                    "over HTTP/1.1: the server offers no WebSocket over HTTP/2"
                }
            };
            if !a.echo {
                eprintln!("wsx: {note}");
            }
            session(a, ws).await
        }
        Err(e) => failed(&e),
    }
}

/// An open connection: `--echo`, or the interactive session.
async fn session<S>(a: &ConnectArgs, ws: WebSocketStream<S>) -> i32
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if a.echo {
        return echo(ws).await;
    }
    if let Some(info) = ws.open_info() {
        connected(&a.url, &info);
    }
    let (tx, mut lines) = mpsc::channel::<String>(STDIN_QUEUE);
    // Ends at EOF, or once the connection is gone (the channel closed); the
    // process exits without waiting for it.
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    let (mut reader, mut writer) = ws.split();
    let mut out = Output::new(a.binary_out.as_deref());
    let mut stdin_open = true;
    loop {
        tokio::select! {
            next = reader.next() => match next {
                Some(Ok(m)) => out.message(m.kind, &m.data),
                // The connection ended abnormally: the stream ends next,
                // and `close_info` says how.
                Some(Err(_)) => {}
                None => break,
            },
            line = lines.recv(), if stdin_open => match line {
                Some(line) => {
                    if writer.send(ws_tokio::text(line)).await.is_err() {
                        stdin_open = false;
                    }
                }
                None => {
                    stdin_open = false;
                    let _ = writer.close_with(CloseCode::NORMAL, "").await;
                }
            },
        }
    }
    finish(reader.close_info(), true)
}

/// `--echo`: sends every message back until the peer closes.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>) -> i32 {
    while let Some(next) = ws.next().await {
        if let Ok(m) = next {
            // An error means the connection is closing: reading on shows
            // how it ends.
            let _ = ws.feed(m).await;
        }
    }
    finish(ws.close_info(), false)
}

/// The exit code for how the connection ended (printing it in interactive
/// mode, and any error always).
fn finish(closed: Option<Closed>, interactive: bool) -> i32 {
    match closed {
        Some(c) => match &c.error {
            None => {
                if interactive {
                    eprintln!("wsx: closed: {}", crate::describe::closed(&c));
                }
                exit_code(&c)
            }
            Some(e) => {
                eprintln!("wsx: {e}");
                1
            }
        },
        None => {
            eprintln!("wsx: the connection ended without a close");
            1
        }
    }
}
