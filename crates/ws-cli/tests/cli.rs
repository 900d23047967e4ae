//! CLI tests: run the `wsx` binary against real loopback sockets.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ws_proto::{CloseCode, MessageKind};
use ws_std::{Received, ServeOptions};

mod common;
use common::{connect, serve, wait, WSX};

#[test]
fn serve_and_connect_round_trip_std() {
    let s = serve(&["--driver", "std"]);
    let (code, out, err) = connect(&[&s.url], "hello\nwörld\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hello\nwörld\n");
    assert!(
        err.contains("permessage-deflate"),
        "deflate offered and accepted by default: {err}"
    );
}

#[test]
fn serve_and_connect_round_trip_mio_both_ends() {
    // mio is the default server driver.
    let s = serve(&["--threads", "2"]);
    for driver in ["mio", "std"] {
        let (code, out, err) = connect(&[&s.url, "--driver", driver], "one\ntwo\nthree\n");
        assert_eq!(code, 0, "{driver}: {err}");
        assert_eq!(out, "one\ntwo\nthree\n", "{driver}");
    }
}

#[test]
fn serve_and_connect_round_trip_tokio_both_ends() {
    let s = serve(&["--driver", "tokio", "--threads", "2"]);
    for driver in ["tokio", "mio", "std"] {
        let (code, out, err) = connect(&[&s.url, "--driver", driver], "one\ntwö\nthree\n");
        assert_eq!(code, 0, "{driver}: {err}");
        assert_eq!(out, "one\ntwö\nthree\n", "{driver}");
        assert!(
            err.contains("permessage-deflate"),
            "{driver}: deflate offered and accepted by default: {err}"
        );
    }
    // The tokio client against the other servers.
    for server_driver in ["std", "mio"] {
        let s = serve(&["--driver", server_driver]);
        let (code, out, err) = connect(&[&s.url, "--driver", "tokio"], "x\n");
        assert_eq!((code, out.as_str()), (0, "x\n"), "{server_driver}: {err}");
    }
}

#[test]
fn wss_origin_and_no_deflate_on_the_tokio_driver() {
    let s = serve(&[
        "--driver",
        "tokio",
        "--tls-self-signed",
        "--origin",
        "https://good.example",
    ]);
    assert!(s.url.starts_with("wss://"));
    let url = s.url.replace("127.0.0.1", "localhost");
    for driver in ["tokio", "mio", "std"] {
        let (code, out, err) = connect(
            &[
                &url,
                "--insecure",
                "--driver",
                driver,
                "--header",
                "Origin: https://good.example",
            ],
            "tls\n",
        );
        assert_eq!((code, out.as_str()), (0, "tls\n"), "{driver}: {err}");
    }
    let (code, _, err) = connect(
        &[
            &url,
            "--insecure",
            "--driver",
            "tokio",
            "--header",
            "Origin: https://evil.example",
        ],
        "",
    );
    assert_eq!(code, 1);
    assert!(err.contains("403"), "{err}");
    // Without --insecure the self-signed certificate is refused.
    let (code, _, err) = connect(&[&url, "--driver", "tokio"], "");
    assert_eq!(code, 1);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let s = serve(&["--driver", "tokio", "--no-deflate"]);
    let (code, out, err) = connect(&[&s.url, "--driver", "tokio"], "x\n");
    assert_eq!((code, out.as_str()), (0, "x\n"), "{err}");
    assert!(err.contains("no extensions"), "{err}");
}

#[test]
fn wss_on_the_mio_driver() {
    let s = serve(&["--tls-self-signed"]);
    let url = s.url.replace("127.0.0.1", "localhost");
    for driver in ["mio", "std"] {
        let (code, out, err) = connect(&[&url, "--insecure", "--driver", driver], "tls\n");
        assert_eq!((code, out.as_str()), (0, "tls\n"), "{driver}: {err}");
    }
}

#[test]
fn no_deflate_on_both_sides() {
    let s = serve(&["--driver", "std", "--no-deflate"]);
    let (code, out, err) = connect(&[&s.url], "x\n");
    assert_eq!((code, out.as_str()), (0, "x\n"), "{err}");
    assert!(err.contains("no extensions"), "{err}");
}

#[test]
fn echo_mode_sends_everything_back_and_exit_codes_follow_the_close() {
    for (close, want, driver) in [
        (1000u16, 0, "std"),
        (4001, 3, "std"),
        (1000, 0, "mio"),
        (4001, 3, "mio"),
        (1000, 0, "tokio"),
        (4001, 3, "tokio"),
    ] {
        let (tx, rx) = std::sync::mpsc::channel();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = ws_std::serve(l, ServeOptions::default(), move |mut ws| {
            ws.send_text("ping?").unwrap();
            ws.send_binary(vec![1u8, 2, 3]).unwrap();
            let mut got = Vec::new();
            while got.len() < 2 {
                match ws.recv() {
                    Ok(Received::Message(m)) => got.push((m.kind, m.data.to_vec())),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            ws.close(CloseCode::new(close).unwrap(), "done").unwrap();
            while ws.recv().is_ok() {}
            tx.send(got).unwrap();
        })
        .unwrap();
        let (code, _, err) = connect(
            &["--echo", "--driver", driver, &format!("ws://{addr}/")],
            "",
        );
        assert_eq!(code, want, "close {close} {driver}: {err}");
        let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(
            got,
            vec![
                (MessageKind::Text, b"ping?".to_vec()),
                (MessageKind::Binary, vec![1, 2, 3])
            ]
        );
        server.shutdown();
    }
}

#[test]
fn connection_errors_exit_1_with_a_message() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, err) = connect(&[&format!("ws://127.0.0.1:{port}/")], "");
    assert_eq!(code, 1);
    assert!(err.to_lowercase().contains("refused"), "{err}");
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    let out = Command::new(WSX).args(["connect"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("URL"));
    let out = Command::new(WSX)
        .args(["serve", "--driver", "frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("possible values"), "{err}");
    assert!(err.contains("tokio"), "tokio is one of them: {err}");
    for driver in ["std", "mio", "tokio"] {
        let (code, _, err) = connect(
            &[
                "ws://127.0.0.1:1/",
                "--header",
                "no-colon",
                "--driver",
                driver,
            ],
            "",
        );
        assert_eq!(code, 2, "{driver}");
        assert!(err.contains("Name: value"), "{driver}: {err}");
    }
    let out = Command::new(WSX).args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["serve", "connect", "bench"] {
        let out = Command::new(WSX).args([sub, "--help"]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: wsx"), "{text}");
        assert!(text.contains("--no-deflate") || sub == "bench", "{text}");
    }
}

#[test]
fn origin_allow_list_rejects_with_403() {
    let s = serve(&["--driver", "std", "--origin", "https://good.example"]);
    let (code, _, err) = connect(&[&s.url, "--header", "Origin: https://evil.example"], "");
    assert_eq!(code, 1);
    assert!(err.contains("403"), "{err}");
    let (code, out, err) = connect(
        &[&s.url, "--header", "Origin: https://good.example"],
        "ok\n",
    );
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
}

#[test]
fn broadcast_relays_to_the_other_clients() {
    for driver in ["std", "mio", "tokio"] {
        broadcast_with(driver);
    }
}

fn broadcast_with(driver: &str) {
    let s = serve(&["--driver", driver, "--broadcast"]);
    let url = s.url.clone();
    let offer = ws_std::ClientOptions::default().deflate(Some(ws_proto::DeflateConfig::default()));
    let listener = ws_std::connect(&url, &offer).unwrap();
    // A room answers permessage-deflate without context takeover on its side: a message is
    // then compressed once for all its receivers.
    let agreed = listener.open_info().extensions.clone().unwrap_or_default();
    assert!(
        agreed.starts_with("permessage-deflate") && agreed.contains("server_no_context_takeover"),
        "{driver}: agreed extensions {agreed:?}"
    );
    let (mut reader, _writer) = listener.split();
    let (tx, rx) = std::sync::mpsc::channel();
    // Ends when the connection does (the server is killed on drop).
    std::thread::spawn(move || loop {
        match reader.recv() {
            Ok(Received::Message(m)) => {
                let text = m.as_text().unwrap_or("(binary)").to_string();
                if tx.send(text).is_err() {
                    return;
                }
            }
            Ok(Received::Ping(_) | Received::Pong(_)) => {}
            _ => return,
        }
    });
    // The server puts a connection in its room right after the upgrade:
    // wait (bounded) until another client's probe reaches the listener.
    let prober = ws_std::connect(&url, &ws_std::ClientOptions::default()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        prober.send_text("probe").unwrap();
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => {}
            Err(e) => panic!("{driver}: the listener never received a broadcast: {e}"),
        }
    }
    let _ = prober.close(CloseCode::NORMAL, "");
    let (code, _, err) = connect(&[&url], "to everyone\n");
    assert_eq!(code, 0, "{err}");
    // Probes still in flight may come first.
    let got = loop {
        let m = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("no broadcast from wsx connect");
        if m != "probe" {
            break m;
        }
    };
    assert_eq!(got, "to everyone", "{driver}");
}

#[test]
fn wss_with_a_self_signed_certificate() {
    let s = serve(&["--driver", "std", "--tls-self-signed"]);
    assert!(s.url.starts_with("wss://"));
    let url = s.url.replace("127.0.0.1", "localhost");
    let (code, out, err) = connect(&[&url, "--insecure"], "secret\n");
    assert_eq!((code, out.as_str()), (0, "secret\n"), "{err}");
    let (code, _, err) = connect(&[&url], "");
    assert_eq!(
        code, 1,
        "an untrusted certificate must fail without --insecure"
    );
    assert!(
        err.to_lowercase().contains("tls") || err.to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[test]
fn binary_messages_print_as_hex_or_go_to_a_file() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = ws_std::serve(l, ServeOptions::default(), |mut ws| {
        ws.send_binary(vec![0xde, 0xad, 0xbe, 0xef]).unwrap();
        ws.close(CloseCode::NORMAL, "").unwrap();
        while ws.recv().is_ok() {}
    })
    .unwrap();
    let (code, out, _) = connect(&[&format!("ws://{addr}/")], "");
    assert_eq!((code, out.as_str()), (0, "deadbeef\n"));
    let file = std::env::temp_dir().join(format!("wsx-bin-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let (code, out, _) = connect(
        &[
            &format!("ws://{addr}/"),
            "--binary-out",
            file.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!((code, out.as_str()), (0, ""));
    assert_eq!(std::fs::read(&file).unwrap(), vec![0xde, 0xad, 0xbe, 0xef]);
    let _ = std::fs::remove_file(&file);
    server.shutdown();
}

#[test]
fn bench_prints_a_summary_table() {
    let s = serve(&["--driver", "std"]);
    let child = Command::new(WSX)
        .args([
            "bench", &s.url, "--conns", "2", "--size", "64", "--window", "4", "--secs", "1",
            "--quiet",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, err) = wait(child, Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    let row = out.lines().nth(2).unwrap();
    let cols: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(cols[1], "2");
    let msgs: u64 = cols[5].parse().unwrap();
    assert!(msgs > 100, "{out}");
    assert_eq!(cols[11], "0", "no errors: {out}");
}

/// Runs `wsx bench` against `url` with `args` and returns the csv fields
/// (conns, size, window, deflate, messages, msg/s, MB/s, p50, p99, max, errors).
fn bench_csv(url: &str, args: &[&str]) -> Vec<String> {
    let child = Command::new(WSX)
        .args(["bench", url, "--secs", "1", "--quiet", "--csv"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, err) = wait(child, Duration::from_secs(30));
    assert_eq!(code, 0, "{out}\n{err}");
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("csv,"))
        .unwrap_or_else(|| panic!("no csv line: {out}"));
    let cols: Vec<String> = line.split(',').map(String::from).collect();
    assert_eq!(cols.len(), 11, "{line}");
    cols
}

#[test]
fn bench_on_the_mio_driver_loads_both_servers() {
    for server_driver in ["mio", "std"] {
        let s = serve(&["--driver", server_driver]);
        let cols = bench_csv(
            &s.url,
            &[
                "--driver", "mio", "--conns", "8", "--size", "100", "--window", "4",
            ],
        );
        assert_eq!(cols[0], "8");
        assert_eq!(cols[1], "100");
        assert_eq!(cols[3], "off");
        let msgs: u64 = cols[4].parse().unwrap();
        assert!(msgs > 100, "{server_driver}: {cols:?}");
        let rate: f64 = cols[5].parse().unwrap();
        assert!(rate > 0.0, "{cols:?}");
        assert_eq!(cols[10], "0", "no errors against {server_driver}: {cols:?}");
    }
}

#[test]
fn bench_on_the_mio_driver_with_deflate_text_and_large_messages() {
    let s = serve(&["--driver", "mio"]);
    // Text messages, permessage-deflate negotiated, messages bigger than one
    // read and than one frame (fragment_size 32767; without it every message
    // goes out as one frame).
    let cols = bench_csv(
        &s.url,
        &[
            "--driver",
            "mio",
            "--conns",
            "2",
            "--size",
            "200000",
            "--window",
            "2",
            "--deflate",
            "--text",
            "--fragment-size",
            "32767",
        ],
    );
    assert_eq!(cols[3], "on");
    let msgs: u64 = cols[4].parse().unwrap();
    assert!(msgs > 2, "{cols:?}");
    assert_eq!(cols[10], "0", "no errors: {cols:?}");
}

#[test]
fn bench_on_the_mio_driver_reports_a_dead_server() {
    // Nothing listens there: the run fails with exit code 1 and counts errors.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(WSX)
        .args([
            "bench",
            &format!("ws://127.0.0.1:{port}/"),
            "--driver",
            "mio",
            "--conns",
            "2",
            "--secs",
            "1",
            "--quiet",
            "--csv",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, _err) = wait(child, Duration::from_secs(30));
    assert_eq!(code, 1, "{out}");
}

/// Sends one binary message of `len` bytes to the echo server at `url` and
/// returns the sizes of the frames the echo came back in.
fn echo_frame_sizes(url: &str, len: usize) -> Vec<usize> {
    let cfg = ws_proto::Config::default().streaming(true);
    let mut ws = ws_std::connect(url, &ws_std::ClientOptions::default().config(cfg)).unwrap();
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    ws.send(MessageKind::Binary, payload.clone()).unwrap();
    let mut sizes = Vec::new();
    let mut echoed = Vec::new();
    loop {
        match ws.recv().unwrap() {
            Received::Fragment(f) => {
                sizes.push(f.data.len());
                echoed.extend_from_slice(&f.data);
                if f.fin {
                    break;
                }
            }
            Received::Message(m) => {
                sizes.push(m.data.len());
                echoed.extend_from_slice(&m.data);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(echoed, payload, "the echo is the message");
    let _ = ws.close(CloseCode::NORMAL, "");
    sizes
}

#[test]
fn fragment_size_sets_the_frames_the_server_sends() {
    for driver in ["mio", "std", "tokio"] {
        let s = serve(&[
            "--driver",
            driver,
            "--no-deflate",
            "--fragment-size",
            "1000",
        ]);
        assert_eq!(
            echo_frame_sizes(&s.url, 2500),
            vec![1000, 1000, 500],
            "{driver}"
        );
        let s = serve(&["--driver", driver, "--no-deflate"]);
        assert_eq!(
            echo_frame_sizes(&s.url, 300_000),
            vec![300_000],
            "{driver}: a server's default is one frame per message"
        );
        let s = serve(&["--driver", driver, "--fragment-size", "32767"]);
        assert_eq!(
            echo_frame_sizes(&s.url, 40_000),
            vec![32767, 40_000 - 32767],
            "{driver}"
        );
    }
}

#[test]
fn bench_fragment_size_is_accepted_by_every_driver() {
    let s = serve(&["--driver", "mio"]);
    for driver in ["std", "mio", "tokio"] {
        let cols = bench_csv(
            &s.url,
            &[
                "--driver",
                driver,
                "--conns",
                "2",
                "--size",
                "5000",
                "--window",
                "2",
                "--fragment-size",
                "1000",
            ],
        );
        let msgs: u64 = cols[4].parse().unwrap();
        assert!(msgs > 10, "{driver}: {cols:?}");
        assert_eq!(cols[10], "0", "{driver}: {cols:?}");
    }
}

#[test]
fn std_server_at_its_connection_limit_answers_503_at_once_and_serves_again() {
    at_the_connection_limit("std");
}

#[test]
fn tokio_server_at_its_connection_limit_answers_503_at_once_and_serves_again() {
    at_the_connection_limit("tokio");
}

fn at_the_connection_limit(driver: &str) {
    let s = serve(&["--driver", driver, "--max-connections", "1"]);
    let mut held = ws_std::connect(&s.url, &ws_std::ClientOptions::default()).unwrap();
    held.send_text("in").unwrap();
    assert!(matches!(held.recv().unwrap(), Received::Message(_)));
    // Over the limit: `wsx connect` fails at once with the 503, instead of
    // waiting in the backlog until its handshake times out.
    let t = Instant::now();
    let (code, _, err) = connect(&[&s.url], "x\n");
    assert_eq!(code, 1, "{driver}: {err}");
    assert!(err.contains("503"), "{driver}: {err}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // The slot frees: served again.
    held.close(CloseCode::NORMAL, "").unwrap();
    while held.recv().is_ok() {}
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        // The server frees the slot when its connection thread ends, just
        // after our close completes: retry (bounded) until it has.
        let (code, out, err) = connect(&[&s.url], "again\n");
        if code == 0 || Instant::now() > deadline {
            assert_eq!(code, 0, "{err}");
            break out;
        }
        assert!(err.contains("503"), "{err}");
    };
    assert_eq!(out, "again\n");
}

#[test]
fn bench_on_the_tokio_driver_loads_every_server() {
    for server_driver in ["tokio", "mio", "std"] {
        let s = serve(&["--driver", server_driver]);
        let cols = bench_csv(
            &s.url,
            &[
                "--driver", "tokio", "--conns", "8", "--size", "100", "--window", "4",
            ],
        );
        assert_eq!((cols[0].as_str(), cols[1].as_str()), ("8", "100"));
        assert_eq!(cols[3], "off");
        let msgs: u64 = cols[4].parse().unwrap();
        assert!(msgs > 100, "{server_driver}: {cols:?}");
        assert_eq!(cols[10], "0", "no errors against {server_driver}: {cols:?}");
    }
    // Deflate, text, messages bigger than a read and than a frame, on the
    // tokio server with two workers.
    let s = serve(&["--driver", "tokio", "--threads", "2"]);
    let cols = bench_csv(
        &s.url,
        &[
            "--driver",
            "tokio",
            "--conns",
            "2",
            "--size",
            "200000",
            "--window",
            "2",
            "--deflate",
            "--text",
        ],
    );
    assert_eq!(cols[3], "on");
    let msgs: u64 = cols[4].parse().unwrap();
    assert!(msgs > 2, "{cols:?}");
    assert_eq!(cols[10], "0", "no errors: {cols:?}");
}

#[test]
fn bench_on_the_tokio_driver_reports_a_dead_server_and_bad_arguments() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/");
    let run = |args: &[&str]| {
        let child = Command::new(WSX)
            .args(["bench", &url, "--driver", "tokio", "--secs", "1", "--quiet"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait(child, Duration::from_secs(30))
    };
    // Nothing listens there: exit code 1, the table says what happened.
    let (code, out, err) = run(&["--conns", "2"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
    let (code, _, err) = run(&["--conns", "0"]);
    assert_eq!(code, 2, "{err}");
}

/// `wsx bench --broadcast` against `wsx serve --broadcast` on `driver`:
/// returns the csv fields (subscribers, size, window, messages, deliveries,
/// deliveries/s, MB/s, seconds, p50, p99, max, lost, duplicates, echoes to
/// publisher, errors) after checking the exit code.
fn broadcast_bench(driver: &str, subscribers: &str, messages: &str) -> Vec<String> {
    let s = serve(&["--driver", driver, "--broadcast"]);
    let child = Command::new(WSX)
        .args(["bench", &s.url, "--broadcast", "--subscribers", subscribers])
        .args(["--messages", messages, "--size", "64", "--window", "8"])
        .args(["--timeout", "30", "--quiet", "--csv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, out, err) = wait(child, Duration::from_secs(60));
    assert_eq!(code, 0, "{driver}: {out}\n{err}");
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("csv,"))
        .unwrap_or_else(|| panic!("no csv line: {out}"));
    let cols: Vec<String> = line.split(',').map(String::from).collect();
    assert_eq!(cols.len(), 15, "{line}");
    cols
}

#[test]
fn bench_broadcast_checks_every_delivery_on_every_server_driver() {
    for driver in ["std", "mio", "tokio"] {
        let cols = broadcast_bench(driver, "5", "200");
        assert_eq!(cols[0], "5", "{driver}: {cols:?}");
        assert_eq!(cols[3], "200", "{driver}: {cols:?}");
        // Every subscriber got every message, in order, once.
        assert_eq!(cols[4], "1000", "{driver}: {cols:?}");
        assert_eq!(cols[11], "0", "lost, {driver}: {cols:?}");
        assert_eq!(cols[12], "0", "duplicates, {driver}: {cols:?}");
        assert_eq!(cols[14], "0", "errors, {driver}: {cols:?}");
        // Every driver relays to every *other* connection, as `--help`
        // says: the publisher gets none of its own messages back.
        assert_eq!(cols[13], "0", "echoes to the publisher, {driver}: {cols:?}");
    }
}
