//! The README's demo (`scripts/demo.sh`) with this build's wsx: its verdict
//! line and exit code, and that it never talks to a server it did not
//! start.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{wait, WSX};

/// Runs the demo with `PORT=port` (none: the default, a free port).
fn demo(port: Option<u16>) -> (i32, String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/demo.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(script)
        .env("WSX", WSX)
        .env_remove("PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = port {
        cmd.env("PORT", p.to_string());
    }
    wait(cmd.spawn().unwrap(), Duration::from_secs(120))
}

#[test]
fn the_demo_ends_with_a_verdict_and_labels_every_line() {
    let (code, out, err) = demo(None);
    assert_eq!(code, 0, "{out}\n{err}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("demo: OK"), "{out}");
    for line in out.lines() {
        assert!(
            ["demo: ", "[server] ", "[client] "]
                .iter()
                .any(|p| line.starts_with(p)),
            "unlabelled line {line:?} in\n{out}"
        );
    }
    assert!(out.contains("[client] over permessage-deflate"), "{out}");
    assert!(out.contains("closed: 1000 (normal closure)"), "{out}");
    assert!(!out.contains("Some(") && !out.contains("None"), "{out}");
}

#[test]
fn a_taken_port_stops_the_demo_at_once_without_touching_the_other_server() {
    let foreign = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = foreign.local_addr().unwrap().port();
    let (code, out, err) = demo(Some(port));
    assert_eq!(code, 1, "{out}\n{err}");
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("demo: FAILED"), "{out}");
    assert!(last.contains("could not listen"), "{out}");
    // Nobody connected to the foreign listener.
    foreign.set_nonblocking(true).unwrap();
    assert_eq!(
        foreign.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
}
