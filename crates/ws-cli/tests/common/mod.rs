//! What the `wsx` binary tests share: a `wsx serve` killed on drop, a
//! `wsx connect` with stdin, and a bounded wait for any child's exit.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const WSX: &str = env!("CARGO_BIN_EXE_wsx");

/// A running `wsx serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `wsx serve 127.0.0.1:0 --quiet ARGS`, once it listens.
pub fn serve(args: &[&str]) -> Server {
    serve_at("127.0.0.1:0", args)
}

/// `wsx serve ADDR --quiet ARGS`, once it listens (its URL read from the
/// listening line).
pub fn serve_at(addr: &str, args: &[&str]) -> Server {
    let mut child = Command::new(WSX)
        .args(["serve", addr, "--quiet"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The listening line comes once the socket is bound; wait for it
    // (bounded: a wsx that never prints it fails the test).
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wsx serve {args:?} printed no listening line within 20 s");
        }
    };
    let url = line
        .trim()
        .strip_prefix("wsx: listening on ")
        .expect(&line)
        .to_string();
    Server { child, url }
}

/// Every proxy variable (curl's names): cleared for each `wsx connect`, so the machine's own
/// never apply.
pub const PROXY_VARS: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// Runs `wsx connect` with stdin, returning (exit code, stdout, stderr), bounded in time.
pub fn connect(args: &[&str], stdin: &str) -> (i32, String, String) {
    connect_env(args, &[], stdin)
}

/// [`connect`] with these environment variables (after clearing [`PROXY_VARS`]).
pub fn connect_env(args: &[&str], env: &[(&str, &str)], stdin: &str) -> (i32, String, String) {
    let mut cmd = Command::new(WSX);
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd
        .arg("connect")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    wait(child, Duration::from_secs(20))
}

pub fn wait(mut child: Child, limit: Duration) -> (i32, String, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            let mut err = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code().unwrap_or(-1), out, err);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("wsx did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
