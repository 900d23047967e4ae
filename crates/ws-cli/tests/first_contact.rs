//! What a new user meets first: exit codes and messages of `wsx` for bad
//! arguments, host names, dead servers, untrusted certificates, and the
//! progress bar outside a terminal.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{connect, serve, serve_at, wait, WSX};

const DRIVERS: [&str; 3] = ["std", "mio", "tokio"];

/// A loopback port nothing listens on (bound, then released).
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `wsx` with `args` (stdin closed), bounded in time: (code, stdout, stderr).
fn wsx(args: &[&str]) -> (i32, String, String) {
    let child = Command::new(WSX)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait(child, Duration::from_secs(60))
}

#[test]
fn bad_argument_values_exit_2_with_the_reason() {
    // Inside an argument, not only clap's own checks.
    for (args, says) in [
        (&["connect", "http://127.0.0.1:9/"][..], "ws or wss"),
        (&["connect", "127.0.0.1:9001"][..], "ws://host"),
        (&["bench", "http://127.0.0.1:9/"][..], "ws or wss"),
        (
            &["bench", "ws://127.0.0.1:9/", "--conns", "0"][..],
            "positive",
        ),
        (
            &["bench", "ws://127.0.0.1:9/", "--ca", "/nonexistent/ca.pem"][..],
            "ca.pem",
        ),
    ] {
        let (code, out, err) = wsx(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            out.is_empty(),
            "{args:?}: nothing measured or printed: {out}"
        );
    }
    for driver in DRIVERS {
        for addr in [
            "notanaddr",
            "127.0.0.1",
            "127.0.0.1:99999",
            "no-such-host.invalid:9001",
        ] {
            let (code, _, err) = wsx(&["serve", addr, "--driver", driver]);
            assert_eq!(code, 2, "serve {addr} --driver {driver}: {err}");
            assert!(err.contains("cannot listen on"), "{driver} {addr}: {err}");
        }
    }
}

#[test]
fn serve_takes_host_names_on_every_driver() {
    for driver in DRIVERS {
        let s = serve_at("localhost:0", &["--driver", driver]);
        // localhost resolves to a loopback address (v4 or v6).
        assert!(
            s.url.starts_with("ws://127.") || s.url.starts_with("ws://[::1]"),
            "{driver}: {}",
            s.url
        );
        let (code, out, err) = connect(&[&s.url], "by name\n");
        assert_eq!((code, out.as_str()), (0, "by name\n"), "{driver}: {err}");
    }
}

#[test]
fn bench_against_a_dead_server_fails_once_and_fast_on_every_driver() {
    let url = format!("ws://127.0.0.1:{}/", dead_port());
    for driver in DRIVERS {
        let (code, out, err) = wsx(&[
            "bench", &url, "--driver", driver, "--conns", "5", "--secs", "30",
        ]);
        assert_eq!(code, 1, "{driver}: {err}");
        // One clear error, no table (no NaN), and no 30-second run.
        assert_eq!(err.matches("wsx:").count(), 1, "{driver}: {err}");
        assert!(err.contains("refused"), "{driver}: {err}");
        assert!(err.contains("nothing was measured"), "{driver}: {err}");
        assert!(
            !out.contains('|') && !out.contains("NaN"),
            "{driver}: {out}"
        );
    }
    let (code, out, err) = wsx(&["bench", &url, "--broadcast", "--subscribers", "3"]);
    assert_eq!(code, 1, "broadcast: {err}");
    assert_eq!(err.matches("wsx:").count(), 1, "broadcast: {err}");
    assert!(!out.contains("NaN"), "{out}");
}

#[test]
fn untrusted_certificates_say_how_to_trust_them_and_bench_takes_ca_and_insecure() {
    let s = serve(&["--driver", "mio", "--tls-self-signed"]);
    let pem = std::env::temp_dir().join(format!("wsx-self-signed-{}.pem", s.child.id()));
    for driver in DRIVERS {
        let (code, _, err) = connect(&[&s.url, "--driver", driver], "");
        assert_eq!(code, 1, "{driver}: {err}");
        assert!(
            err.contains("--ca") && err.contains("--insecure"),
            "{driver}: the error says the fix: {err}"
        );
    }
    let base = ["bench", &s.url, "--conns", "2", "--secs", "0.5", "--quiet"];
    let (code, out, err) = wsx(&base);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--ca") && !out.contains('|'), "{out}\n{err}");
    for driver in DRIVERS {
        let pem = pem.to_str().unwrap();
        for trust in [&["--insecure"][..], &["--ca", pem][..]] {
            let (code, out, err) = wsx(&[&base[..], &["--driver", driver], trust].concat());
            assert_eq!(code, 0, "{driver} {trust:?}: {err}");
            assert!(out.contains("| conns |"), "{driver} {trust:?}: {out}");
        }
    }
}

#[test]
fn progress_is_drawn_on_a_terminal_or_on_request_only() {
    let s = serve(&["--driver", "mio"]);
    let run = |extra: &[&str]| {
        let args = [&["bench", &s.url, "--conns", "1", "--secs", "1"], extra].concat();
        let (code, _, err) = wsx(&args);
        assert_eq!(code, 0, "{err}");
        err
    };
    // stderr is a pipe here, as in a log: no bar, no carriage return.
    let err = run(&[]);
    assert!(!err.contains('\r') && !err.contains("msg/s"), "{err:?}");
    let err = run(&["--progress"]);
    assert!(err.contains('\r') && err.contains("msg/s"), "{err:?}");
}

#[test]
fn top_level_help_lists_the_exit_codes() {
    for args in [&["--help"][..], &["connect", "--help"][..]] {
        let (code, out, _) = wsx(args);
        assert_eq!(code, 0);
        assert!(out.contains("Exit codes:"), "{args:?}: {out}");
        for c in ["0 ", "1 ", "2 ", "3 "] {
            assert!(out.contains(&format!("  {c}")), "{args:?} lists {c}: {out}");
        }
    }
}
