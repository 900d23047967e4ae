//! Echo over loopback: text, binary, large fragmented messages,
//! permessage-deflate, TLS, and many connections at once.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::time::Duration;
use ws_mio::{tls, ConnId, ConnectOptions, Options};
use ws_proto::{Config, DeflateConfig, MessageKind};

#[test]
fn echoes_text_and_binary() {
    let (server, _srx) = echo_server(1, Options::default());
    let url = format!("ws://{}/echo", server.local_addr().unwrap());
    let (client, rx) = client();
    let h = client.handle().clone();
    let id = connect(&h, &url, ConnectOptions::default());
    wait_open(&rx, id);

    h.send_text(id, "hello, loop").unwrap();
    let m = wait_msg(&rx, id);
    assert_eq!(m.as_text(), Some("hello, loop"));

    let bin: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    h.send_binary(id, bin.clone()).unwrap();
    let m = wait_msg(&rx, id);
    assert_eq!(m.kind, MessageKind::Binary);
    assert_eq!(&m.data[..], &bin[..]);

    // Empty messages too.
    h.send_text(id, "").unwrap();
    assert_eq!(wait_msg(&rx, id).as_text(), Some(""));
}

#[test]
fn echoes_large_fragmented_messages() {
    // Small frames on both sides: a 3 MiB message crosses as ~200 frames
    // each way and many partial socket writes.
    let cfg = Config::default().fragment_size(16 << 10);
    let (server, _srx) = echo_server(1, Options::default().config(cfg.clone()));
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (client, rx) = client();
    let h = client.handle().clone();
    let id = connect(&h, &url, ConnectOptions::default().config(cfg));
    wait_open(&rx, id);
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    h.send_binary(id, big.clone()).unwrap();
    let m = wait_msg(&rx, id);
    assert_eq!(m.data.len(), big.len());
    assert!(m.data[..] == big[..], "payload differs");
    let stats = on_loop(&h, 0, move |ctx| ctx.connection(id).map(|c| c.stats()));
    let stats = stats.unwrap();
    assert!(stats.frames_in >= 190, "{stats:?}");
}

#[test]
fn echoes_with_permessage_deflate() {
    let cfg = Config::default().deflate(Some(DeflateConfig::default()));
    let (server, _srx) = echo_server(1, Options::default().config(cfg.clone()));
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (client, rx) = client();
    let h = client.handle().clone();
    let id = connect(&h, &url, ConnectOptions::default().config(cfg));
    let info = wait_open(&rx, id);
    assert!(
        info.extensions
            .as_deref()
            .unwrap_or("")
            .contains("permessage-deflate"),
        "{info:?}"
    );
    let text = "the quick brown fox jumps over the lazy dog ".repeat(6000);
    for _ in 0..3 {
        h.send_text(id, &text).unwrap();
        assert_eq!(wait_msg(&rx, id).as_text(), Some(text.as_str()));
    }
    h.send_text(id, "short").unwrap();
    assert_eq!(wait_msg(&rx, id).as_text(), Some("short"));
    // Compression worked: far fewer bytes crossed than were sent.
    let out = on_loop(&h, 0, move |ctx| {
        ctx.connection(id).map(|c| c.stats().bytes_out)
    })
    .unwrap();
    assert!(
        out < text.len() as u64,
        "{out} bytes for {} of text",
        3 * text.len()
    );
}

#[test]
fn echoes_over_tls() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let server_tls = tls::server_config(vec![ck.cert.der().clone()], key).unwrap();
    let (tx, _srx) = std::sync::mpsc::channel();
    let server = ws_mio::LoopGroup::builder()
        .loops(1)
        .listen_tls("127.0.0.1:0".parse().unwrap(), server_tls)
        .spawn(move |_| Recorder {
            tx: tx.clone(),
            echo: true,
        })
        .unwrap();
    let addr = server.local_addr().unwrap();
    let client_tls = tls::client_config_trusting(&[ck.cert.der().clone()]).unwrap();
    let (client, rx) = client();
    let h = client.handle().clone();
    let url = format!("wss://localhost:{}/secure", addr.port());
    let id = connect(
        &h,
        &url,
        ConnectOptions::default().tls(client_tls.clone()).addr(addr),
    );
    wait_open(&rx, id);
    h.send_text(id, "over tls").unwrap();
    assert_eq!(wait_msg(&rx, id).as_text(), Some("over tls"));
    let big: Vec<u8> = (0..1u32 << 20).map(|i| (i % 13) as u8).collect();
    h.send_binary(id, big.clone()).unwrap();
    assert!(wait_msg(&rx, id).data[..] == big[..]);
    h.close(id, ws_proto::CloseCode::NORMAL, "bye").unwrap();
    let c = wait_closed(&rx, id);
    assert!(c.clean, "{c:?}");

    // A client that does not trust the certificate fails with an I/O error.
    let untrusting = tls::client_config(rustls::RootCertStore::empty()).unwrap();
    let id = connect(
        &h,
        &url,
        ConnectOptions::default().tls(untrusting).addr(addr),
    );
    let c = wait_closed(&rx, id);
    assert!(
        matches!(c.error, Some(ws_proto::ConnectionError::Io(_))),
        "{c:?}"
    );
}

#[test]
fn a_thousand_connections_at_once() {
    // Client and server live in this process: two descriptors per
    // connection plus a few. With a soft limit under ~2,100 the test scales
    // down (and says so) rather than failing on the environment.
    let limit = fd_limit();
    let n = 1000.min(limit.saturating_sub(100) / 2);
    if n < 1000 {
        eprintln!(
            "note: RLIMIT_NOFILE soft limit {limit}: testing {n} connections instead of 1000"
        );
    }
    let (server, srx) = echo_server(1, Options::default());
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (client, rx) = client();
    let h = client.handle().clone();
    let ids = on_loop(&h, 0, move |ctx| {
        (0..n)
            .map(|_| ctx.connect(&url, ConnectOptions::default()).unwrap())
            .collect::<Vec<_>>()
    });
    let mut open = 0;
    while open < n {
        wait_for(&rx, "opens", |_, ev| match ev {
            common::Ev::Open(..) => Some(()),
            common::Ev::Closed(_, c) => panic!("{c:?}"),
            _ => None,
        });
        open += 1;
    }
    // Every connection echoes one message.
    for (i, id) in ids.iter().enumerate() {
        h.send_text(*id, &format!("m{i}")).unwrap();
    }
    let mut got = 0;
    while got < n {
        wait_for(&rx, "echoes", |_, ev| {
            matches!(ev, common::Ev::Msg(..)).then_some(())
        });
        got += 1;
    }
    // Server side: all held, and idle connections hold no driver buffers.
    let sh = server.handle().clone();
    let (count, extra) = on_loop(&sh, 0, |ctx| {
        let ids = ctx.connection_ids();
        let extra: usize = ids
            .iter()
            .map(|id| {
                ctx.retained_bytes(*id).unwrap() - ctx.connection(*id).unwrap().retained_bytes()
            })
            .sum();
        (ids.len(), extra)
    });
    assert_eq!(count, n);
    assert_eq!(extra, 0, "driver buffers held by idle connections");
    drop(srx);
}

#[test]
fn idle_connection_memory_is_reported() {
    let (server, srx) = echo_server(1, Options::default());
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (client, rx) = client();
    let h = client.handle().clone();
    let id = connect(&h, &url, ConnectOptions::default());
    wait_open(&rx, id);
    h.send_text(id, "x").unwrap();
    wait_msg(&rx, id);
    let sid = wait_any_open(&srx);
    let sh = server.handle().clone();
    // The echo has reached the client, so the server wrote it all: wait for
    // the loop to have settled (no unwritten remainder, nothing borrowed
    // from the pool) instead of guessing how long that takes.
    let settled = || {
        on_loop(&sh, 0, move |ctx| {
            let core = ctx.connection(sid).unwrap().retained_bytes();
            let total = ctx.retained_bytes(sid).unwrap();
            (core, total, ctx.pool().stats().outstanding_bytes)
        })
    };
    wait_until(
        "the idle server connection to hold no driver buffer",
        || {
            let (core, total, outstanding) = settled();
            total == core && outstanding == 0
        },
    );
    let (core, total, _) = settled();
    eprintln!(
        "idle server connection: session {} B (core Connection {} B), core retained {} B, driver extra {} B",
        ws_mio::session_size(),
        ws_mio::connection_size(),
        core,
        total - core
    );
    assert_eq!(
        total, core,
        "the driver holds no buffer for an idle connection"
    );
    let pool = on_loop(&sh, 0, |ctx| ctx.pool().stats());
    assert_eq!(pool.outstanding_bytes, 0, "{pool:?}");
}

/// A connection that has received nothing since its upgrade holds no
/// receive buffer, even before the idle release (a read that finds nothing
/// must not leave the core's read room allocated: at 10,000 idle
/// connections that cost 9 KB each).
#[test]
fn an_open_connection_that_received_nothing_holds_no_buffer() {
    let cfg = Config::default().release_buffers_after(Duration::from_secs(3600));
    let (server, srx) = echo_server(1, Options::default().config(cfg));
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (client, rx) = client();
    let h = client.handle().clone();
    let ids: Vec<ConnId> = (0..20)
        .map(|_| connect(&h, &url, ConnectOptions::default()))
        .collect();
    wait_all_open(&rx, &ids);
    let sids: Vec<ConnId> = ids.iter().map(|_| wait_any_open(&srx)).collect();
    let sh = server.handle().clone();
    let held = on_loop(&sh, 0, move |ctx| {
        sids.iter()
            .map(|&sid| ctx.retained_bytes(sid).unwrap())
            .collect::<Vec<_>>()
    });
    assert!(
        held.iter().all(|&b| b == 0),
        "bytes held per idle connection: {held:?}"
    );
}
