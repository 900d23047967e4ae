//! `wsx connect` with an argument that would break the upgrade request (the
//! invalid requests every client must refuse, `ws_testkit::bad_request`: a
//! header value with CR/LF or another control byte, a header name that is
//! not a token, CR/LF in the origin, a subprotocol that is not a token, a
//! space in the path...), on every driver (std, mio, tokio): exit code 2 (bad
//! argument), a clear message on one line of stderr naming the field, and no
//! connection at the silent listener standing in for the server. Also: the
//! origin allow-list of `wsx serve` matches case-insensitively on every driver.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ws_std::{ClientOptions, Error};

// The kit's list of invalid requests, included from its one source (this
// package does not depend on the kit; the file uses only std, ws-net and
// ws-proto).
#[allow(dead_code)]
#[path = "../../ws-testkit/src/bad_request.rs"]
mod bad_request;

use bad_request::{SilentListener, BAD_REQUESTS};

const WSX: &str = env!("CARGO_BIN_EXE_wsx");

/// Runs `wsx connect --driver DRIVER --timeout 2 ARGS...` to completion (a
/// regression that connects to the silent listener fails after 2 s instead
/// of hanging).
fn wsx_connect(driver: &str, args: &[&str]) -> Output {
    Command::new(WSX)
        .args(["connect", "--driver", driver, "--timeout", "2"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run wsx")
}

/// The kit's invalid requests as `wsx connect` arguments: (arguments
/// before the URL, URL path, text stderr must contain). A request hook has
/// no argument, and a NUL cannot be passed in an argument.
fn cases() -> Vec<(Vec<String>, &'static str, String)> {
    BAD_REQUESTS
        .iter()
        .filter(|c| c.hook.is_none())
        .filter(|c| !c.header.is_some_and(|(_, v)| v.contains('\0')))
        .map(|c| {
            let mut args = Vec::new();
            if let Some((name, value)) = c.header {
                args.extend(["-H".to_string(), format!("{name}: {value}")]);
            }
            if let Some(origin) = c.origin {
                args.extend(["-H".to_string(), format!("Origin: {origin}")]);
            }
            if let Some(protocol) = c.protocol {
                args.extend(["--protocol".to_string(), protocol.to_string()]);
            }
            (args, c.path, c.message())
        })
        .collect()
}

fn refuses_bad_arguments_with(driver: &str) {
    let l = SilentListener::new();
    for (args, path, expected) in cases() {
        let url = l.url(path);
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.push(&url);
        let out = wsx_connect(driver, &all);
        let err = String::from_utf8_lossy(&out.stderr);
        let what = format!("--driver {driver} {all:?}");
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(err.contains(&expected), "{what}: {err}");
        // One line, control characters escaped.
        assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err:?}");
        assert!(
            !err.trim_end().contains(['\r', '\u{1}', '\u{7f}']),
            "{what}: {err:?}"
        );
        assert!(out.stdout.is_empty(), "{what}");
        l.assert_no_connection(&what);
    }
}

#[test]
fn connect_std_refuses_bad_arguments_before_connecting() {
    refuses_bad_arguments_with("std");
}

#[test]
fn connect_mio_refuses_bad_arguments_before_connecting() {
    refuses_bad_arguments_with("mio");
}

#[test]
fn connect_tokio_refuses_bad_arguments_before_connecting() {
    refuses_bad_arguments_with("tokio");
}

/// The control: a valid `wsx connect` does reach the same kind of listener,
/// with its `-H` header and its `-H 'Origin: ...'` as the request's Origin.
fn valid_arguments_reach_the_listener_with(driver: &str) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let child = Command::new(WSX)
        .args(["connect", "--driver", driver, "--timeout", "10"])
        .args(["-H", "X-Marker: valid", "-H", "Origin: http://localhost"])
        .arg(format!("ws://{addr}/valid"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wsx");
    let _guard = Kill(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let head = l.accept().map(|(mut s, _)| {
            s.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            String::from_utf8_lossy(&head).into_owned()
        });
        let _ = tx.send(head);
    });
    let head = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("wsx connected")
        .expect("accept");
    assert!(
        head.starts_with("GET /valid HTTP/1.1\r\n"),
        "{driver}: {head}"
    );
    assert!(head.contains("\r\nX-Marker: valid\r\n"), "{driver}: {head}");
    assert!(
        head.contains("\r\nOrigin: http://localhost\r\n"),
        "{driver}: {head}"
    );
}

/// Kills the child on drop (the valid client waits for an answer).
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn valid_arguments_reach_the_listener() {
    valid_arguments_reach_the_listener_with("std");
    valid_arguments_reach_the_listener_with("mio");
    valid_arguments_reach_the_listener_with("tokio");
}

/// `wsx serve --driver DRIVER ARGS` on a free port; its URL once listening.
fn serve(driver: &str, args: &[&str]) -> (Kill, String) {
    let mut child = Command::new(WSX)
        .args(["serve", "127.0.0.1:0", "--quiet", "--driver", driver])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run wsx serve");
    let stdout = child.stdout.take().expect("stdout");
    let guard = Kill(child);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("wsx serve printed its listening line");
    let url = line
        .trim()
        .strip_prefix("wsx: listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    (guard, url)
}

#[test]
fn serve_origin_allow_list_is_case_insensitive_on_every_driver() {
    for driver in ["std", "mio", "tokio"] {
        let (_server, url) = serve(driver, &["--origin", "https://Good.Example"]);
        for origin in ["https://good.example", "HTTPS://GOOD.EXAMPLE"] {
            let ws = ws_std::connect(&url, &ClientOptions::default().origin(origin));
            assert!(ws.is_ok(), "{driver} {origin}: {:?}", ws.err());
        }
        match ws_std::connect(
            &url,
            &ClientOptions::default().origin("https://evil.example"),
        ) {
            Err(Error::Handshake(e)) => assert!(e.to_string().contains("403"), "{driver}: {e}"),
            other => panic!("{driver}: expected 403, got {:?}", other.err()),
        }
    }
}
