//! Every log line of the crate carries its connection's id (`[ws#N]`).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::*;
use ws_std::{connect, serve, ClientOptions, ServeOptions, ServerOptions, WebSocketClient};

struct Capture(Mutex<Vec<(String, String)>>);

/// The level of each captured line, in the same order.
static LEVELS: Mutex<Vec<log::Level>> = Mutex::new(Vec::new());

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let mut lines = self.0.lock().unwrap();
        lines.push((record.target().to_string(), record.args().to_string()));
        LEVELS.lock().unwrap().push(record.level());
    }
    fn flush(&self) {}
}

static LOGGER: Capture = Capture(Mutex::new(Vec::new()));

#[test]
fn every_line_names_its_connection() {
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    let server = echo_server(ServerOptions::default());
    let rec = Recorder::default();
    let client = build_recorded(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/")),
        false,
    );
    client.open().unwrap();
    assert!(rec.wait(Duration::from_secs(3), |e| e
        .iter()
        .any(|e| matches!(e, Ev::Open(_)))));
    client.close().unwrap();
    assert!(rec.wait_terminal(Duration::from_secs(3)).is_some());
    // A failing connection logs too.
    let failing = rec_error("ws://nowhere.invalid/");
    // A named connection (Best.HTTP's logging context) carries its name on
    // every line, the driver's included.
    let rec = Recorder::default();
    let named = rec
        .attach(
            WebSocketClient::builder(ws_url(server.local_addr(), "/")).log_context("lobby\n7"),
            false,
        )
        .build()
        .unwrap();
    let named_prefix = format!("[ws#{} lobby?7]", named.id().get());
    named.open().unwrap();
    assert!(rec.wait(Duration::from_secs(3), |e| e
        .iter()
        .any(|e| matches!(e, Ev::Open(_)))));
    named.close().unwrap();
    assert!(rec.wait_terminal(Duration::from_secs(3)).is_some());
    assert!(server.shutdown());

    let lines: Vec<(String, String)> = LOGGER.0.lock().unwrap().clone();
    let ours: Vec<&String> = lines
        .iter()
        .filter(|(t, _)| t.starts_with("ws_std"))
        .map(|(_, m)| m)
        .collect();
    assert!(ours.len() >= 6, "{ours:#?}");
    for line in &ours {
        assert!(
            line.starts_with("[ws#"),
            "line without a connection id: {line}"
        );
    }
    let id = client.id().to_string();
    let of_client: Vec<_> = ours.iter().filter(|l| l.starts_with(&id)).collect();
    assert!(
        of_client.iter().any(|l| l.contains("connecting")),
        "{of_client:#?}"
    );
    assert!(
        of_client.iter().any(|l| l.contains("open")),
        "{of_client:#?}"
    );
    assert!(
        of_client.iter().any(|l| l.contains("closed")),
        "{of_client:#?}"
    );
    // The server side of the connection logs under its own id.
    assert!(
        ours.iter()
            .any(|l| !l.starts_with(&id) && l.contains("accepted")),
        "{ours:#?}"
    );
    let number = named_prefix.split(' ').next().unwrap().to_string() + " ";
    let of_named: Vec<_> = ours.iter().filter(|l| l.starts_with(&number)).collect();
    assert!(of_named.len() >= 3, "{of_named:#?}");
    for line in &of_named {
        assert!(line.starts_with(&named_prefix), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
    assert!(
        of_named.iter().any(|l| l.contains("connecting"))
            && of_named.iter().any(|l| l.contains("closed")),
        "{of_named:#?}"
    );
    let failing = failing.to_string();
    assert!(
        ours.iter()
            .any(|l| l.starts_with(&failing) && l.contains("failed")),
        "{ours:#?}"
    );

    // At the connection limit every client is refused, and the warning
    // about it is rate-limited: one line (two if the burst straddled the
    // 5 s interval on a crawling machine) for 10 refusals.
    let before = LOGGER.0.lock().unwrap().len();
    let server = serve(listener(), ServeOptions::default().max_connections(1), echo).unwrap();
    let url = ws_url(server.local_addr(), "/");
    let mut held = connect(&url, &ClientOptions::default()).unwrap();
    assert!(wait_until(Duration::from_secs(10), || server
        .active_connections()
        == 1));
    for _ in 0..10 {
        assert!(connect(&url, &ClientOptions::default()).is_err());
    }
    held.send_text("still served").unwrap();
    assert!(held.recv().is_ok());
    assert!(server.shutdown());
    let lines: Vec<(String, String)> = LOGGER.0.lock().unwrap()[before..].to_vec();
    let levels: Vec<log::Level> = LEVELS.lock().unwrap()[before..].to_vec();
    let limit_lines: Vec<&String> = lines
        .iter()
        .zip(&levels)
        .filter(|((t, m), l)| {
            t.starts_with("ws_std")
                && **l == log::Level::Warn
                && m.contains("at the connection limit")
        })
        .map(|((_, m), _)| m)
        .collect();
    assert!((1..=2).contains(&limit_lines.len()), "{limit_lines:#?}");
    assert!(limit_lines[0].starts_with("[ws#"), "{limit_lines:#?}");
    assert!(limit_lines[0].contains("503"), "{limit_lines:#?}");
    // Each refusal's own lines are at debug level, not info or above.
    let refusals: Vec<log::Level> = lines
        .iter()
        .zip(&levels)
        .filter(|((t, m), _)| {
            t.starts_with("ws_std") && m.contains("rejecting the upgrade with 503")
        })
        .map(|(_, l)| *l)
        .collect();
    assert_eq!(refusals, vec![log::Level::Debug; 10], "{lines:#?}");
}

fn rec_error(url: &str) -> ws_std::ConnId {
    let rec = Recorder::default();
    let client = rec
        .attach(WebSocketClient::builder(url), false)
        .build()
        .unwrap();
    client.open().unwrap();
    assert!(matches!(
        rec.wait_terminal(Duration::from_secs(3)),
        Some(Ev::Error(_))
    ));
    client.id()
}
