//! Interop over HTTP/2 (RFC 8441) with a peer nobody here wrote the HTTP/2 of: Node's built-in
//! `http2` module with `enableConnectProtocol` (`tests/interop/h2_peer.js`), as the client of
//! our server and as the server of our client. Messages of 0 B to 4 MiB, text and binary,
//! fragments (our client sends 32,767-byte frames), pings, and the close codes both ways.
//!
//! Node must be installed (`node` on PATH; Debian: `apt-get install nodejs`): without it the
//! tests fail saying so.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use common::{bounded, cert};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use ws_tokio::h2::{Http2Mode, Http2Options};
use ws_tokio::{CloseCode, Config, ConnectOptions, Decision, TlsOptions};

/// The Node peer script.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/h2_peer.js")
}

/// `node h2_peer.js ARGS`, stdout piped, killed on drop.
fn node(args: &[&str]) -> Child {
    match Command::new("node")
        .arg(script())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run node ({e}): the HTTP/2 interop tests need Node.js (its built-in http2 \
             module); install it, e.g. `apt-get install nodejs`"
        ),
    }
}

/// Writes `text` to a fresh file in a temporary directory; returns its path.
fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ws-tokio-h2-node-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The value of `key=` in a line of `key=value` words.
fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_http2_client_against_our_server() {
    let c = cert();
    let ca = temp_file("ca.pem", &c.pem);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = ws_tokio::h2::server_tls_config(&c.server);
    // (messages echoed, close code) per WebSocket our server served.
    let served = Arc::new(Mutex::new(Vec::new()));
    let served2 = served.clone();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = tokio_rustls::TlsAcceptor::from(tls)
            .accept(tcp)
            .await
            .unwrap();
        assert!(ws_tokio::h2::is_h2(&tls), "Node chose h2");
        let config =
            Config::default().limits(ws_tokio::Limits::default().max_message_size(16 << 20));
        let _ = ws_tokio::h2::serve_connection(
            tls,
            config,
            &Http2Options::default(),
            |_| Decision::accept(),
            |mut ws| {
                let served = served2.clone();
                tokio::spawn(async move {
                    let mut n = 0;
                    while let Some(Ok(m)) = ws.next().await {
                        n += 1;
                        if ws.send(m).await.is_err() {
                            break;
                        }
                    }
                    let code = ws.close_info().map(|c| c.code.as_u16());
                    served.lock().unwrap().push((n, code));
                });
            },
        )
        .await;
    });
    let mut child = node(&["client", &port.to_string(), ca.to_str().unwrap()]);
    let out = child.stdout.take().unwrap();
    let line = bounded("node's verdict", async {
        BufReader::new(out)
            .lines()
            .next_line()
            .await
            .unwrap()
            .unwrap_or_default()
    })
    .await;
    let status = bounded("node to exit", child.wait()).await.unwrap();
    assert!(line.starts_with("ok "), "node client: {line}");
    assert!(status.success(), "{line}");
    assert_eq!(field(&line, "messages"), 8, "{line}");
    assert_eq!(field(&line, "close"), 4000, "{line}");
    bounded("our side's close", async {
        loop {
            if let Some(&(n, code)) = served.lock().unwrap().first() {
                assert_eq!((n, code), (8, Some(4000)));
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_http2_client_against_node_server() {
    let c = cert();
    let cert_path = temp_file("cert.pem", &c.pem);
    let key_path = temp_file("key.pem", &c.key_pem);
    let mut child = node(&[
        "server",
        cert_path.to_str().unwrap(),
        key_path.to_str().unwrap(),
    ]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = bounded("node to listen", lines.next_line())
        .await
        .unwrap()
        .unwrap_or_default();
    let port: u16 = first
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("node server said {first:?}"));
    let options = ConnectOptions::default()
        .config(Config::default().limits(ws_tokio::Limits::default().max_message_size(16 << 20)))
        .tls(
            TlsOptions::default()
                .add_root_pem(c.pem.as_bytes())
                .unwrap(),
        );
    let http2 = Http2Options::default().mode(Http2Mode::Force);
    let url = format!("wss://localhost:{port}/ours");
    let mut ws = bounded(
        "connect",
        ws_tokio::h2::connect_with(&url, &options, &http2),
    )
    .await
    .unwrap();
    assert_eq!(ws.with_io(|t| t.http()), ws_proto::upgrade::Http::V2);
    let sizes = [
        0usize,
        1,
        125,
        126,
        65_535,
        65_536,
        100_000,
        1 << 20,
        4 << 20,
    ];
    let mut total = 0;
    for (i, &n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..n).map(|k| b'a' + ((k + i) % 26) as u8).collect();
        let msg = if i % 2 == 0 {
            ws_tokio::text(String::from_utf8(data.clone()).unwrap())
        } else {
            ws_tokio::binary(data.clone())
        };
        let kind = msg.kind;
        ws.send(msg).await.unwrap();
        let back = bounded("an echo", ws.next()).await.unwrap().unwrap();
        assert_eq!(back.kind, kind, "message {i}");
        assert!(back.data == data, "echo {i} ({n} bytes) differs");
        total += n as u64;
    }
    ws.close_with(CloseCode::new(4001).unwrap(), "done")
        .await
        .unwrap();
    while bounded("the close", ws.next()).await.is_some() {}
    let closed = ws.close_info().unwrap();
    assert_eq!(closed.code.as_u16(), 4001);
    assert!(closed.clean, "{closed:?}");
    let summary = bounded("node's summary", lines.next_line())
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(field(&summary, "code"), 4001, "{summary}");
    assert_eq!(field(&summary, "messages"), sizes.len() as u64, "{summary}");
    assert_eq!(field(&summary, "bytes"), total, "{summary}");
    assert_eq!(field(&summary, "max"), 4 << 20, "{summary}");
}
