//! Interop with the Python `websockets` package, in both roles, on
//! 127.0.0.1. The virtualenv (and `websockets` in it) comes from
//! tests/interop/setup_venv.sh, which these tests run through the kit
//! (`ws_testkit::interop::python`, shared with ws-tokio's interop tests);
//! they never skip: when python3 is missing, or the virtualenv cannot be set
//! up, they fail saying what to install.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ws_proto::{CloseCode, DeflateConfig, MessageKind};
use ws_std::{
    connect, serve, ClientOptions, Received, ServeOptions, ServerOptions, UpgradeResponse,
    WebSocketClient,
};
use ws_testkit::interop::{dir as interop_dir, python};

const T: Duration = Duration::from_secs(5);

/// A running Python echo server; killed on drop.
struct PyServer {
    child: Child,
    port: u16,
}

impl PyServer {
    fn start(py: &Path) -> PyServer {
        let mut child = Command::new(py)
            .arg(interop_dir().join("echo_server.py"))
            .args(["--lifetime", "30"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the Python server did not start");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad port line {line:?}"));
        PyServer { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn real_deflate() -> bool {
    !ws_proto::deflate::client_offer_header(&DeflateConfig::default()).is_empty()
}

fn blocking_roundtrip(url: &str, deflate: bool) {
    let options = ClientOptions::default()
        .protocol("chat")
        .deflate(deflate.then(DeflateConfig::default));
    let mut ws = connect(url, &options).unwrap();
    assert_eq!(ws.open_info().protocol.as_deref(), Some("chat"));
    let ext = ws.open_info().extensions.clone();
    if deflate && real_deflate() {
        assert!(
            ext.as_deref()
                .is_some_and(|e| e.contains("permessage-deflate")),
            "{ext:?}"
        );
    } else {
        assert_eq!(ext, None);
    }
    let text = "héllo python ".repeat(3000);
    ws.send_text(&text).unwrap();
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    ws.send_binary(blob.clone()).unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        match ws.recv().unwrap() {
            Received::Message(m) => got.push(m),
            Received::Ping(_) | Received::Pong(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got[0].as_text(), Some(text.as_str()));
    assert_eq!(
        (got[1].kind, &got[1].data[..]),
        (MessageKind::Binary, &blob[..])
    );
    ws.close(CloseCode::NORMAL, "rust done").unwrap();
    loop {
        match ws.recv() {
            Ok(Received::Closed(c)) => {
                assert!(c.clean, "{c:?}");
                // Python `websockets` echoes our code and reason.
                assert_eq!(
                    (c.code, c.reason.as_str()),
                    (CloseCode::NORMAL, "rust done")
                );
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn rust_blocking_client_against_python_server() {
    let py = python();
    let server = PyServer::start(&py);
    blocking_roundtrip(&server.url("/"), false);
    if !real_deflate() {
        println!("NOTE: ws-proto's permessage-deflate is a stub here; the deflate case runs without compression");
    }
    blocking_roundtrip(&server.url("/"), true);
}

#[test]
fn rust_event_client_against_python_server() {
    let py = python();
    let server = PyServer::start(&py);

    let rec = Recorder::default();
    let client = rec
        .attach(
            WebSocketClient::builder(server.url("/"))
                .protocol("chat")
                .keepalive(true),
            false,
        )
        .build()
        .unwrap();
    client.send_text("queued before open").unwrap();
    client.open().unwrap();
    assert!(rec.wait(T, |e| e.contains(&Ev::Text("queued before open".into()))));
    assert_eq!(rec.events()[0], Ev::Open(Some("chat".into())));
    client.send_binary(vec![0u8, 1, 2, 255]).unwrap();
    assert!(rec.wait(T, |e| e.contains(&Ev::Binary(vec![0, 1, 2, 255]))));
    // Our code and reason, echoed by Python `websockets`.
    client.close_with(4001, "bye now").unwrap();
    assert_eq!(terminal_within(&rec, T), Ev::Closed(4001, "bye now".into()));

    // The Python server closes with its own code and reason.
    let rec = Recorder::default();
    let client = rec
        .attach(
            WebSocketClient::builder(server.url("/close")).protocol("chat"),
            false,
        )
        .build()
        .unwrap();
    client.open().unwrap();
    client.send_text("close please").unwrap();
    assert_eq!(
        terminal_within(&rec, T),
        Ev::Closed(4000, "python bye".into())
    );
}

fn run_python_client(py: &Path, url: &str, extra: &[&str]) -> String {
    let mut child = Command::new(py)
        .arg(interop_dir().join("echo_client.py"))
        .arg(url)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the Python client hung");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "python client failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn python_client_against_rust_server() {
    let py = python();
    let (tx, rx) = mpsc::channel();
    let options = ServerOptions::default()
        .config(ws_proto::Config::default().deflate(Some(DeflateConfig::default())))
        .on_upgrade(|req| {
            if req.protocols.iter().any(|p| p == "chat") {
                UpgradeResponse::accept_protocol("chat")
            } else {
                UpgradeResponse::reject(400, "chat only")
            }
        });
    let server = serve(
        listener(),
        ServeOptions::default().server(options),
        move |mut ws| {
            let mut close = None;
            for _ in 0..100 {
                match ws.recv() {
                    Ok(Received::Message(m)) => ws.send(m.kind, m.data).unwrap(),
                    Ok(Received::Closed(c)) => {
                        close = Some((c.code, c.reason, c.clean));
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            tx.send(close).unwrap();
        },
    )
    .unwrap();
    let url = format!("ws://127.0.0.1:{}/", server.local_addr().port());
    for extra in [&["--no-deflate"][..], &[][..]] {
        let out = run_python_client(&py, &url, extra);
        assert!(out.starts_with("OK protocol=chat"), "{out}");
        if extra.is_empty() && real_deflate() {
            assert!(out.contains("permessage-deflate"), "{out}");
        }
        // Our echo carried Python's code and reason (checked there too).
        assert!(
            out.contains("close_code=1000 close_reason='python done'"),
            "{out}"
        );
        let close = rx.recv_timeout(T).unwrap().unwrap();
        assert_eq!(close, (CloseCode::NORMAL, "python done".to_string(), true));
    }

    // A close code and reason of the application's own: the Python client
    // fails unless our server's closing frame carries both.
    let out = run_python_client(
        &py,
        &url,
        &["--close-code", "4001", "--close-reason", "bye now"],
    );
    assert!(
        out.contains("close_code=4001 close_reason='bye now'"),
        "{out}"
    );
    let close = rx.recv_timeout(T).unwrap().unwrap();
    assert_eq!(
        close,
        (CloseCode::new(4001).unwrap(), "bye now".to_string(), true)
    );
    assert!(server.shutdown());
}
