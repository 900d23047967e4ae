//! `wsx serve --driver tokio --http2` and `wsx connect --http2` / `wsx bench --http2`:
//! WebSockets over HTTP/2 with TLS (ALPN) and without (prior knowledge), the fallback to
//! HTTP/1.1 against a server without HTTP/2, and `--http2` refused on other drivers.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{connect, serve, wait, WSX};

#[test]
fn connect_speaks_http2_with_tls_and_by_prior_knowledge() {
    for tls in [true, false] {
        let extra: &[&str] = if tls { &["--tls-self-signed"] } else { &[] };
        let s = serve(&[&["--http2"][..], extra].concat());
        let url = s.url.replace("127.0.0.1", "localhost");
        let mut args = vec![url.as_str(), "--http2"];
        if tls {
            args.push("--insecure");
        }
        let (code, out, err) = connect(&args, "one\ntwo\n");
        assert_eq!((code, out.as_str()), (0, "one\ntwo\n"), "tls={tls}: {err}");
        assert!(err.contains("over HTTP/2"), "tls={tls}: {err}");
        assert!(err.contains("closed: 1000"), "tls={tls}: {err}");
        // The same listener serves HTTP/1.1 upgrades.
        let mut args = vec![url.as_str(), "--driver", "tokio"];
        if tls {
            args.push("--insecure");
        }
        let (code, out, err) = connect(&args, "h1\n");
        assert_eq!((code, out.as_str()), (0, "h1\n"), "tls={tls}: {err}");
    }
}

#[test]
fn connect_falls_back_to_http1_when_the_server_has_no_http2() {
    // The mio server speaks HTTP/1.1 only (ALPN http/1.1).
    let s = serve(&["--driver", "mio", "--tls-self-signed"]);
    let (code, out, err) = connect(&[&s.url, "--http2", "--insecure"], "fallback\n");
    assert_eq!((code, out.as_str()), (0, "fallback\n"), "{err}");
    assert!(err.contains("over HTTP/1.1"), "{err}");
}

#[test]
fn bench_runs_every_connection_on_one_http2_connection() {
    let s = serve(&["--http2"]);
    let child = Command::new(WSX)
        .args([
            "bench", &s.url, "--driver", "tokio", "--http2", "--conns", "8",
        ])
        .args(["--size", "256", "--secs", "1", "--quiet", "--csv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, err) = wait(child, Duration::from_secs(60));
    assert_eq!(code, 0, "{out}\n{err}");
    let cols: Vec<&str> = out
        .lines()
        .find_map(|l| l.strip_prefix("csv,"))
        .unwrap()
        .split(',')
        .collect();
    assert!(cols[4].parse::<u64>().unwrap() > 100, "{cols:?}");
    assert_eq!(cols[10], "0", "no errors: {cols:?}");
}

#[test]
fn http2_needs_the_tokio_driver() {
    for args in [
        &["serve", "127.0.0.1:0", "--http2", "--driver", "mio"][..],
        &["connect", "ws://127.0.0.1:9/", "--http2", "--driver", "std"][..],
        &["bench", "ws://127.0.0.1:9/", "--http2", "--driver", "mio"][..],
    ] {
        let out = Command::new(WSX)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--http2 needs --driver tokio"),
            "{args:?}: {err}"
        );
    }
}
