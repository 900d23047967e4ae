//! Interop with the Python `websockets` package, in both roles, on 127.0.0.1: our
//! `connect_with` against its server, its client against our `accept_with` server, with and
//! without permessage-deflate, with close codes and reasons both ways.
//!
//! The Python side is ws-std's, used from where it lives (not copied):
//! `crates/ws-std/tests/interop/{setup_venv.sh, echo_server.py, echo_client.py}`. The
//! virtualenv (with `websockets` in it) is the one `setup_venv.sh` makes, found by the kit
//! (`ws_testkit::interop::python`), as for ws-std's interop tests. These tests never skip:
//! when python3 is missing, or the virtualenv cannot be set up, they fail saying what to
//! install.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use ws_testkit::interop::{dir as interop_dir, python};
use ws_tokio::{Accept, CloseCode, ConnectOptions, Decision, DeflateConfig, MessageKind};

/// Every wait is bounded by this.
const T: Duration = Duration::from_secs(15);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(T, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {T:?}"))
}

fn real_deflate() -> bool {
    !ws_proto::deflate::client_offer_header(&DeflateConfig::default()).is_empty()
}

/// The Python echo server (killed when dropped) and its port.
async fn python_server(py: &Path) -> (Child, u16) {
    let mut child = Command::new(py)
        .arg(interop_dir().join("echo_server.py"))
        .args(["--lifetime", "60"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    bounded(
        "the Python server's port",
        tokio::io::BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("bad port line {line:?}"));
    (child, port)
}

/// Text and binary round trips, then our close with code and reason, echoed by Python.
async fn round_trip(url: &str, deflate: bool) {
    let options = ConnectOptions::default()
        .protocol("chat")
        .deflate(deflate.then(DeflateConfig::default));
    let mut ws = bounded("connect", ws_tokio::connect_with(url, &options))
        .await
        .unwrap();
    let info = ws.open_info().unwrap();
    assert_eq!(info.protocol.as_deref(), Some("chat"));
    if deflate && real_deflate() {
        assert!(
            info.extensions
                .as_deref()
                .is_some_and(|e| e.contains("permessage-deflate")),
            "{info:?}"
        );
    } else {
        assert_eq!(info.extensions, None);
    }
    let text = "héllo python ".repeat(3000);
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    ws.feed(ws_tokio::text(text.clone())).await.unwrap();
    ws.send(ws_tokio::binary(blob.clone())).await.unwrap();
    let first = bounded("text echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(first.as_text(), Some(text.as_str()));
    let second = bounded("binary echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(
        (second.kind, &second.data[..]),
        (MessageKind::Binary, &blob[..])
    );
    ws.close_with(CloseCode::NORMAL, "rust done").await.unwrap();
    assert!(bounded("end", ws.next()).await.is_none());
    let c = ws.close_info().unwrap();
    assert!(c.clean, "{c:?}");
    // Python `websockets` echoes our code and reason.
    assert_eq!(
        (c.code, c.reason.as_str()),
        (CloseCode::NORMAL, "rust done")
    );
}

#[test]
fn tokio_client_against_python_server() {
    let py = python();
    runtime().block_on(async {
        let (_server, port) = python_server(&py).await;
        let url = format!("ws://127.0.0.1:{port}/");
        round_trip(&url, false).await;
        if !real_deflate() {
            println!("NOTE: ws-proto's permessage-deflate is a stub here; the deflate case runs without compression");
        }
        round_trip(&url, true).await;

        // The Python server closes with its own code and reason.
        let options = ConnectOptions::default().protocol("chat");
        let url = format!("ws://127.0.0.1:{port}/close");
        let mut ws = bounded("connect", ws_tokio::connect_with(&url, &options))
            .await
            .unwrap();
        ws.send(ws_tokio::text("close please")).await.unwrap();
        assert!(bounded("end", ws.next()).await.is_none());
        let c = ws.close_info().unwrap();
        assert!(c.clean, "{c:?}");
        assert_eq!(
            (c.code.as_u16(), c.reason.as_str(), c.initiator),
            (4000, "python bye", ws_tokio::Initiator::Remote)
        );
    });
}

/// Runs ws-std's Python client against `url` and returns what it printed; fails the test if
/// it fails or hangs.
async fn python_client(py: &Path, url: &str, extra: &[&str]) -> String {
    let child = Command::new(py)
        .arg(interop_dir().join("echo_client.py"))
        .arg(url)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = bounded("the Python client", child.wait_with_output())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "python client failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn python_client_against_tokio_server() {
    let py = python();
    runtime().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // How each connection closed: code, reason, clean.
        let (tx, mut closes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let cfg = ws_tokio::Config::default().deflate(Some(DeflateConfig::default()));
                    let ws = ws_tokio::accept_with(tcp, cfg, |req| {
                        if req.protocols.iter().any(|p| p == "chat") {
                            Decision::Accept(Accept::new().protocol("chat"))
                        } else {
                            Decision::reject(400, "chat only")
                        }
                    })
                    .await;
                    let Ok(mut ws) = ws else { return };
                    while let Some(Ok(m)) = ws.next().await {
                        if ws.send(m).await.is_err() {
                            break;
                        }
                    }
                    let c = ws.close_info().unwrap();
                    let _ = tx.send((c.code, c.reason, c.clean));
                });
            }
        });
        let url = format!("ws://127.0.0.1:{port}/");
        for extra in [&["--no-deflate"][..], &[][..]] {
            let out = python_client(&py, &url, extra).await;
            assert!(out.starts_with("OK protocol=chat"), "{out}");
            if extra.is_empty() && real_deflate() {
                assert!(out.contains("permessage-deflate"), "{out}");
            }
            // Our echo carried Python's code and reason (checked there too).
            assert!(
                out.contains("close_code=1000 close_reason='python done'"),
                "{out}"
            );
            let close = bounded("the server's end", closes.recv()).await.unwrap();
            assert_eq!(close, (CloseCode::NORMAL, "python done".to_string(), true));
        }

        // A close code and reason of the application's own: the Python client fails unless
        // our server's closing frame carries both.
        let out = python_client(
            &py,
            &url,
            &["--close-code", "4001", "--close-reason", "bye now"],
        )
        .await;
        assert!(
            out.contains("close_code=4001 close_reason='bye now'"),
            "{out}"
        );
        let close = bounded("the server's end", closes.recv()).await.unwrap();
        assert_eq!(
            close,
            (CloseCode::new(4001).unwrap(), "bye now".to_string(), true)
        );
    });
}
