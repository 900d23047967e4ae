//! The event-style client over real loopback sockets. Every case checks that
//! exactly one of on_closed / on_error fired, once.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ws_buf::{BufferPool, PoolConfig};
use ws_proto::{CloseCode, Config, DeflateConfig, MessageKind};
use ws_std::{
    serve, Error, ReadyState, Received, ServeOptions, ServerOptions, TlsClientOptions,
    UpgradeResponse, WebSocketClient,
};

const T: Duration = Duration::from_secs(3);

/// Waits for the terminal callback and for the client to drop its
/// callbacks (its threads are done with them), then checks that it was the
/// only terminal callback.
fn terminal(rec: &Recorder) -> Ev {
    terminal_within(rec, T)
}

fn open_client(rec: &Recorder, b: ws_std::ClientBuilder) -> WebSocketClient {
    let client = open_recorded(rec, b, false);
    assert!(rec.wait(T, |e| e
        .iter()
        .any(|e| matches!(e, Ev::Open(_)) || is_terminal(e))));
    client
}

#[test]
fn open_echo_close_with_states_and_callbacks() {
    let server = echo_server(ServerOptions::default());
    let rec = Recorder::default();
    let b = WebSocketClient::builder(ws_url(server.local_addr(), "/echo"));
    // A second open handler, after the recorder's.
    let client = rec
        .attach(b, false)
        .on_open(move |ws, _| ws.send_text("hello").unwrap())
        .build()
        .unwrap();
    assert_eq!(client.state(), ReadyState::Connecting);
    assert!(!client.is_open());
    let t = Instant::now();
    client.open().unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(50),
        "open() blocked for {:?}",
        t.elapsed()
    );
    assert!(rec.wait(T, |e| e.contains(&Ev::Text("hello".into()))));
    assert_eq!(client.state(), ReadyState::Open);
    assert!(client.is_open());

    client.send_binary(vec![1u8, 2, 3]).unwrap();
    assert!(rec.wait(T, |e| e.contains(&Ev::Binary(vec![1, 2, 3]))
        && e.contains(&Ev::Segment(vec![1, 2, 3]))));
    // The segment handed to on_binary_segment is back in the pool.
    let stats = client.pool().stats();
    assert_eq!(stats.outstanding_segments, 0, "{stats:?}");
    assert!(stats.recycled >= 1, "{stats:?}");

    client.close_with(1000, "bye").unwrap();
    // Closing at once; on a busy machine the IO thread may already have
    // finished the closing handshake, so Closed is fine too — never Open.
    assert!(
        matches!(client.state(), ReadyState::Closing | ReadyState::Closed),
        "{:?}",
        client.state()
    );
    assert!(matches!(client.send_text("late"), Err(Error::Closed)));
    // The server echoes our code and reason.
    assert_eq!(terminal(&rec), Ev::Closed(1000, "bye".into()));
    assert_eq!(client.state(), ReadyState::Closed);
    assert!(matches!(client.close(), Err(Error::Closed)));
    // A closed client cannot be reopened.
    let err = client.open().unwrap_err();
    assert!(matches!(err, Error::AlreadyOpened));
    assert!(err.to_string().contains("cannot be reopened"), "{err}");
    assert!(server.shutdown());
}

#[test]
fn open_twice_is_refused_and_close_before_open_retires() {
    let server = echo_server(ServerOptions::default());
    let rec = Recorder::default();
    let client = open_client(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/")),
    );
    assert!(matches!(client.open(), Err(Error::AlreadyOpened)));
    client.close().unwrap();
    terminal(&rec);

    let never = WebSocketClient::new(ws_url(server.local_addr(), "/")).unwrap();
    never.close().unwrap();
    assert_eq!(never.state(), ReadyState::Closed);
    assert!(matches!(never.open(), Err(Error::AlreadyOpened)));
    assert!(server.shutdown());
}

#[test]
fn server_close_code_and_reason_reach_on_closed() {
    let server = serve(listener(), ServeOptions::default(), |mut ws| {
        let _ = ws.recv();
        ws.close(CloseCode::new(4001).unwrap(), "bye now").unwrap();
        let _ = ws.recv();
    })
    .unwrap();
    let rec = Recorder::default();
    let client = open_client(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/")),
    );
    client.send_text("go").unwrap();
    assert_eq!(terminal(&rec), Ev::Closed(4001, "bye now".into()));
    assert!(server.shutdown());
}

fn error_of(b: ws_std::ClientBuilder) -> String {
    let rec = Recorder::default();
    let client = rec.attach(b, false).build().unwrap();
    client.open().unwrap();
    match terminal(&rec) {
        Ev::Error(e) => {
            assert!(
                !rec.events().iter().any(|e| matches!(e, Ev::Open(_)))
                    || e.starts_with("timeout:Idle")
                    || e == "lost"
            );
            assert_eq!(client.state(), ReadyState::Closed);
            e
        }
        other => panic!("expected on_error, got {other:?}"),
    }
}

#[test]
fn on_error_for_connection_refused() {
    let addr = listener().local_addr().unwrap();
    assert_eq!(
        error_of(WebSocketClient::builder(ws_url(addr, "/"))),
        "connect:ConnectionRefused"
    );
}

#[test]
fn on_error_for_an_unresolvable_host() {
    assert_eq!(
        error_of(WebSocketClient::builder("ws://nothing-here.invalid:9/")),
        "resolve"
    );
}

#[test]
fn on_error_timeout_for_a_server_that_never_answers() {
    let l = listener();
    let addr = l.local_addr().unwrap();
    let (release, held) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let _ = held.recv_timeout(Duration::from_secs(3));
        drop(s);
    });
    let rec = Recorder::default();
    let client = rec
        .attach(
            WebSocketClient::builder(ws_url(addr, "/"))
                .handshake_timeout(Duration::from_millis(150)),
            false,
        )
        .build()
        .unwrap();
    let t = Instant::now();
    client.open().unwrap();
    assert!(rec.wait(T, |e| e.iter().any(is_terminal)));
    let took = t.elapsed();
    assert_eq!(terminal(&rec), Ev::Error("timeout:Handshake".into()));
    assert!(
        took >= Duration::from_millis(140) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    release.send(()).unwrap();
    holder.join().unwrap();
}

#[test]
fn on_error_with_status_and_body_for_401() {
    let options = ServerOptions::default()
        .on_upgrade(|_| UpgradeResponse::reject(401, "no token: send Authorization"));
    let server = serve(listener(), ServeOptions::default().server(options), |_| {}).unwrap();
    let e = error_of(WebSocketClient::builder(ws_url(server.local_addr(), "/")));
    assert_eq!(e, "status:401:no token: send Authorization");
    assert!(server.shutdown());
}

#[test]
fn on_error_for_an_untrusted_certificate() {
    let cert = test_cert();
    let server = echo_server(tls_options(&cert));
    let url = format!("wss://localhost:{}/", server.local_addr().port());
    let mut options = ws_std::ClientOptions::default();
    options.connect_to = Some(server.local_addr());
    assert_eq!(
        error_of(WebSocketClient::builder(url).options(options)),
        "tls"
    );
    assert!(server.shutdown());
}

#[test]
fn on_error_connection_lost_when_the_peer_vanishes_mid_frame() {
    let (addr, h) = raw_upgrade_server(|mut s| {
        s.write_all(&[0x81, 0x7e, 0x01, 0x00, b'h', b'a']).unwrap(); // text, 256 bytes announced, 2 sent
                                                                     // End the stream, then wait (bounded by the read timeout) for the
                                                                     // client to close its side.
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let _ = s.read(&mut [0u8; 64]);
    });
    assert_eq!(
        error_of(WebSocketClient::builder(ws_url(addr, "/"))),
        "lost"
    );
    h.join().unwrap();
}

#[test]
fn on_error_timeout_after_silence() {
    let server = serve(listener(), ServeOptions::default(), |mut ws| {
        let _ = ws.recv(); // reads (so no pings are answered, none are sent) until cut
    })
    .unwrap();
    let t = Instant::now();
    let e = error_of(
        WebSocketClient::builder(ws_url(server.local_addr(), "/"))
            .idle_timeout(Some(Duration::from_millis(250))),
    );
    assert_eq!(e, "timeout:Idle");
    assert!(
        t.elapsed() >= Duration::from_millis(250) && t.elapsed() < Duration::from_secs(10),
        "{:?}",
        t.elapsed()
    );
    assert!(server.shutdown());
}

#[test]
fn keepalive_defaults_and_latency() {
    let b = WebSocketClient::builder("ws://127.0.0.1:1/");
    assert_eq!(b.client_options().config.ping_interval, None);
    assert_eq!(b.client_options().config.idle_timeout, None);
    // One switch turns both on, as Best.HTTP's StartPingThread.
    let b = b.keepalive(true);
    assert_eq!(
        b.client_options().config.ping_interval,
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        b.client_options().config.idle_timeout,
        Some(Duration::from_secs(2))
    );

    // Pings every 50 ms keep a connection with a 1.5 s idle limit alive (the
    // limit is many intervals long: on a busy machine a thread can miss the
    // CPU for a few hundred milliseconds without the peer being silent).
    let idle = Duration::from_millis(1500);
    let server = echo_server(ServerOptions::default());
    let rec = Recorder::default();
    let client = build_recorded(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/"))
            .ping_interval(Some(Duration::from_millis(50)))
            .idle_timeout(Some(idle)),
        false,
    );
    let (pong_tx, pongs) = mpsc::channel();
    client.on_pong(move |_, _| {
        let _ = pong_tx.send(());
    });
    let t = Instant::now();
    client.open().unwrap();
    // Pongs keep arriving past the point where, without them, the idle
    // limit would have ended the connection.
    for _ in 0..10_000 {
        if t.elapsed() >= idle + Duration::from_millis(500) {
            break;
        }
        pongs.recv_timeout(T).expect("the pongs stopped");
    }
    assert!(client.is_open(), "{:?}", rec.events());
    let latency = client.latency().expect("no ping round trip measured");
    assert!(latency < idle, "{latency:?}");
    assert!(client.last_message_received().unwrap().elapsed() < idle);
    client.close().unwrap();
    assert!(matches!(terminal(&rec), Ev::Closed(1000, _)));
    assert!(server.shutdown());
}

#[test]
fn sends_before_open_are_queued_in_order_and_buffered_amount_is_exact() {
    let (tx, rx) = mpsc::channel();
    let server = serve(listener(), ServeOptions::default(), move |mut ws| {
        while let Ok(r) = ws.recv() {
            match r {
                Received::Message(m) => tx.send((m.kind, m.data.to_vec())).unwrap(),
                Received::Closed(c) => tx
                    .send((MessageKind::Text, format!("closed {}", c.code).into_bytes()))
                    .unwrap(),
                _ => {}
            }
        }
    })
    .unwrap();
    let rec = Recorder::default();
    let client = rec
        .attach(
            WebSocketClient::builder(ws_url(server.local_addr(), "/")),
            false,
        )
        .build()
        .unwrap();
    assert_eq!(client.buffered_amount(), 0);
    client.send_text("0123456789").unwrap();
    client.send_binary(vec![9u8; 20]).unwrap();
    assert_eq!(client.buffered_amount(), 30);
    client.open().unwrap();
    // Queued behind the messages, whether or not the handshake is done yet.
    client.close_with(4000, "early").unwrap();
    assert!(matches!(
        client.state(),
        ReadyState::Closing | ReadyState::Closed
    ));
    let got: Vec<_> = (0..3).map(|_| rx.recv_timeout(T).unwrap()).collect();
    assert_eq!(got[0], (MessageKind::Text, b"0123456789".to_vec()));
    assert_eq!(got[1], (MessageKind::Binary, vec![9u8; 20]));
    assert_eq!(got[2].1, b"closed 4000".to_vec());
    assert_eq!(terminal(&rec), Ev::Closed(4000, "early".into()));
    assert_eq!(client.buffered_amount(), 0);
    assert!(server.shutdown());
}

#[test]
fn the_buffer_limit_makes_send_fail_instead_of_growing() {
    // Before open nothing drains, so the arithmetic is exact.
    let client = WebSocketClient::builder("ws://127.0.0.1:9/")
        .max_buffered(100)
        .build()
        .unwrap();
    client.send_binary(vec![0u8; 60]).unwrap();
    match client.send_binary(vec![0u8; 60]) {
        Err(Error::QueueFull {
            buffered: 60,
            limit: 100,
        }) => {}
        other => panic!("{other:?}"),
    }
    client.send_binary(vec![0u8; 40]).unwrap();
    assert_eq!(client.buffered_amount(), 100);
    let e = client.send_text("x").unwrap_err();
    assert!(e.to_string().contains("send queue full"), "{e}");

    // Against a server that never reads, the limit is reached and holds.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let server = serve(listener(), ServeOptions::default(), move |ws| {
        let _ = release_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(5));
        drop(ws);
    })
    .unwrap();
    let rec = Recorder::default();
    let limit = 1 << 20;
    let client = open_client(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/")).max_buffered(limit),
    );
    let chunk = vec![5u8; 256 << 10];
    let mut full = None;
    for i in 0..400 {
        match client.send_binary(chunk.clone()) {
            Ok(()) => {}
            Err(e) => {
                full = Some((i, e));
                break;
            }
        }
        if i % 8 == 7 {
            thread::sleep(Duration::from_millis(2));
        }
    }
    let (_, e) = full.expect("the queue never filled");
    assert!(
        matches!(e, Error::QueueFull { limit: l, .. } if l == limit),
        "{e:?}"
    );
    assert!(client.buffered_amount() <= limit);
    release_tx.send(()).unwrap();
    terminal(&rec);
    assert_eq!(client.buffered_amount(), 0);
    assert!(server.shutdown());
}

#[test]
fn send_as_binary_and_text_return_segments_to_the_pool_once_written() {
    let server = echo_server(ServerOptions::default());
    let pool = BufferPool::new(PoolConfig::default());
    let rec = Recorder::default();
    let client = rec
        .attach(
            WebSocketClient::builder(ws_url(server.local_addr(), "/")).buffer_pool(pool.clone()),
            false,
        )
        .build()
        .unwrap();
    let mut seg = pool.get(100_000);
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    seg.extend_from_slice(&payload);
    client.send_as_binary(seg).unwrap();
    // Queued (not open yet): the segment is still out of the pool.
    assert_eq!(pool.stats().outstanding_segments, 1);
    assert_eq!(client.buffered_amount(), 100_000);

    let mut bad = pool.get(4);
    bad.extend_from_slice(&[0xff, 0xfe]);
    assert!(matches!(client.send_as_text(bad), Err(Error::InvalidUtf8)));
    let mut text = pool.get(16);
    text.extend_from_slice("héllo".as_bytes());
    client.send_as_text(text).unwrap();

    client.open().unwrap();
    assert!(rec.wait(T, |e| e.contains(&Ev::Text("héllo".into()))));
    assert!(rec.events().contains(&Ev::Binary(payload.clone())));
    assert!(rec.events().contains(&Ev::Segment(payload)));
    assert!(
        wait_until(T, || client.buffered_amount() == 0
            && pool.stats().outstanding_segments == 0),
        "{:?}",
        pool.stats()
    );
    client.close().unwrap();
    terminal(&rec);
    assert!(server.shutdown());
}

fn fragments_seen_by_server(
    b: impl FnOnce(String) -> ws_std::ClientBuilder,
    len: usize,
) -> Vec<usize> {
    let (tx, rx) = mpsc::channel();
    let options = ServerOptions::default().config(Config::default().streaming(true));
    let server = serve(
        listener(),
        ServeOptions::default().server(options),
        move |mut ws| {
            let mut sizes = Vec::new();
            while let Ok(Received::Fragment(f)) = ws.recv() {
                sizes.push(f.data.len());
                if f.fin {
                    break;
                }
            }
            tx.send(sizes).unwrap();
            let _ = ws.recv();
        },
    )
    .unwrap();
    let rec = Recorder::default();
    let client = open_client(&rec, b(ws_url(server.local_addr(), "/")));
    client.send_binary(vec![3u8; len]).unwrap();
    let sizes = rx.recv_timeout(T).unwrap();
    client.close().unwrap();
    terminal(&rec);
    assert!(server.shutdown());
    sizes
}

#[test]
fn large_messages_are_fragmented_automatically() {
    assert_eq!(
        fragments_seen_by_server(WebSocketClient::builder, 70_000),
        vec![32767, 32767, 4466]
    );
    assert_eq!(
        fragments_seen_by_server(
            |u| WebSocketClient::builder(u).fragment_size(25_000),
            70_000
        ),
        vec![25_000, 25_000, 20_000]
    );
}

#[test]
fn incomplete_frames_are_delivered_as_they_arrive() {
    // A server sends a message as one frame unless told otherwise.
    let mut opts = ServeOptions::default();
    opts.server.config = opts.server.config.clone().fragment_size(32_767);
    let server = serve(listener(), opts, |mut ws| {
        let _ = ws.recv();
        ws.send_fragment(MessageKind::Text, "hel", false).unwrap();
        ws.send_fragment(MessageKind::Text, "lo ", false).unwrap();
        ws.send_fragment(MessageKind::Text, "world", true).unwrap();
        ws.send_binary(vec![1u8; 40_000]).unwrap(); // two frames of 32,767 at most
        let _ = ws.recv();
    })
    .unwrap();
    let rec = Recorder::default();
    let client = rec
        .attach(
            WebSocketClient::builder(ws_url(server.local_addr(), "/")),
            true,
        )
        .build()
        .unwrap();
    client.open().unwrap();
    assert!(rec.wait(T, |e| e.iter().any(|e| matches!(e, Ev::Open(_)))));
    client.send_text("start").unwrap();
    assert!(rec.wait(T, |e| e
        .iter()
        .filter(|e| matches!(e, Ev::Fragment { .. }))
        .count()
        == 5));
    let frags: Vec<_> = rec
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Ev::Fragment { data, first, fin } => Some((data.len(), first, fin)),
            _ => None,
        })
        .collect();
    assert_eq!(
        frags,
        vec![
            (3, true, false),
            (3, false, false),
            (5, false, true),
            (32767, true, false),
            (7233, false, true)
        ]
    );
    assert!(!rec
        .events()
        .iter()
        .any(|e| matches!(e, Ev::Text(_) | Ev::Binary(_) | Ev::Segment(_))));
    client.close().unwrap();
    terminal(&rec);
    assert!(server.shutdown());
}

#[test]
fn request_hook_origin_and_subprotocols_reach_the_server() {
    let options = ServerOptions::default().on_upgrade(|req| {
        if req.header("authorization") != Some("Bearer t0k3n")
            || req.origin.as_deref() != Some("https://me.example")
        {
            return UpgradeResponse::reject(401, "who are you");
        }
        UpgradeResponse::accept_protocol("chat")
    });
    let server = serve(listener(), ServeOptions::default().server(options), echo).unwrap();
    let rec = Recorder::default();
    let client = open_client(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/"))
            .origin("https://me.example")
            .protocol("superchat")
            .protocol("chat")
            .request_hook(|req| {
                req.headers
                    .push(("Authorization".into(), "Bearer t0k3n".into()))
            }),
    );
    assert_eq!(rec.events()[0], Ev::Open(Some("chat".into())));
    client.close().unwrap();
    terminal(&rec);

    // Without the hook the same server refuses.
    let e = error_of(
        WebSocketClient::builder(ws_url(server.local_addr(), "/")).origin("https://me.example"),
    );
    assert_eq!(e, "status:401:who are you");
    assert!(server.shutdown());
}

/// Whether the permessage-deflate module of ws-proto is the real one (it is
/// a stub while being integrated).

#[test]
fn permessage_deflate_on_and_off() {
    let (tx, rx) = mpsc::channel();
    let options = ServerOptions::default()
        .config(Config::default().deflate(Some(DeflateConfig::default())))
        .on_upgrade(move |req| {
            tx.send(req.extensions.clone()).unwrap();
            UpgradeResponse::accept()
        });
    let server = serve(listener(), ServeOptions::default().server(options), echo).unwrap();
    let text = "compress me ".repeat(5000);

    for on in [false, true] {
        let rec = Recorder::default();
        let deflate = on.then(DeflateConfig::default);
        let (ext_tx, ext_rx) = mpsc::channel();
        let b = WebSocketClient::builder(ws_url(server.local_addr(), "/")).deflate(deflate);
        assert_eq!(b.client_options().config.deflate.is_some(), on);
        let client = rec
            .attach(b, false)
            .on_open(move |_, info| ext_tx.send(info.extensions.clone()).unwrap())
            .build()
            .unwrap();
        client.open().unwrap();
        let offered = rx.recv_timeout(T).unwrap();
        let agreed = ext_rx.recv_timeout(T).unwrap();
        if !on {
            assert!(offered.is_empty(), "{offered:?}");
            assert_eq!(agreed, None);
        } else if deflate_available() {
            assert!(
                offered.iter().any(|e| e.contains("permessage-deflate")),
                "{offered:?}"
            );
            assert!(
                agreed
                    .as_deref()
                    .is_some_and(|e| e.contains("permessage-deflate")),
                "{agreed:?}"
            );
        } else {
            println!("NOTE: ws-proto's permessage-deflate is a stub here; only checking that enabling it does no harm");
        }
        client.send_text(&text).unwrap();
        assert!(rec.wait(T, |e| e.contains(&Ev::Text(text.clone()))));
        client.close().unwrap();
        terminal(&rec);
    }
    assert!(server.shutdown());
}

#[test]
fn wss_event_client() {
    let cert = test_cert();
    let server = echo_server(tls_options(&cert));
    let mut options = ws_std::ClientOptions::default().tls(
        TlsClientOptions::default()
            .add_root_pem(cert.cert_pem.as_bytes())
            .unwrap(),
    );
    options.connect_to = Some(server.local_addr());
    let rec = Recorder::default();
    let client = open_client(
        &rec,
        WebSocketClient::builder(format!("wss://ws.test:{}/", server.local_addr().port()))
            .options(options),
    );
    client.send_text("over tls").unwrap();
    assert!(rec.wait(T, |e| e.contains(&Ev::Text("over tls".into()))));
    client.close().unwrap();
    assert!(matches!(terminal(&rec), Ev::Closed(1000, _)));
    assert!(server.shutdown());
}

// The keepalive switch against a silent server: tests/event_client_seed.rs.

// ----- panicking callbacks ----------------------------------------------------

/// Which callback panics.
#[derive(Clone, Copy, Debug)]
enum Panicky {
    Open,
    Message,
    Binary,
    Segment,
    Fragment,
}

/// Opens a client whose `which` callback panics with "boom in {which:?}"
/// (the others record), makes it fire, and checks the connection is failed
/// as promised: the server gets 1011, exactly one on_error names the panic,
/// both client threads end, the state is Closed and sends fail. Another
/// client of the same server is served all along.
fn a_panicking_callback_fails_only_its_connection(which: Panicky) {
    let (server, closes) = reporting_echo_server();
    let url = ws_url(server.local_addr(), "/");

    let other_rec = Recorder::default();
    let other = open_client(&other_rec, WebSocketClient::builder(url.clone()));

    let rec = Recorder::default();
    let msg = format!("boom in {which:?}");
    let m = msg.clone();
    let b = rec.attach(
        WebSocketClient::builder(url),
        matches!(which, Panicky::Fragment),
    );
    let b = match which {
        Panicky::Open => b.on_open(move |_, _| panic!("{m}")),
        Panicky::Message => b.on_message(move |_, _| panic!("{m}")),
        Panicky::Binary => b.on_binary(move |_, _| panic!("{m}")),
        Panicky::Segment => b.on_binary_segment(move |_, _| panic!("{m}")),
        Panicky::Fragment => b.on_incomplete_frame(move |_, _| panic!("{m}")),
    };
    let client = b.build().unwrap();
    let id = client.id().get();
    client.open().unwrap();
    // Everything but on_open needs the server to send something.
    match which {
        Panicky::Open => {}
        Panicky::Message => client.send_text("trigger").unwrap(),
        _ => client.send_binary(vec![7u8; 10]).unwrap(),
    }
    assert_eq!(
        terminal(&rec),
        Ev::Error(format!("panicked:{msg}")),
        "{which:?}"
    );
    assert_eq!(client.state(), ReadyState::Closed, "{which:?}");
    assert!(
        matches!(client.send_text("after"), Err(Error::Closed)),
        "{which:?}"
    );
    assert!(matches!(client.close(), Err(Error::Closed)));
    // The server saw a close with 1011.
    let (code, reason) = closes.recv_timeout(T).unwrap();
    assert_eq!(code, 1011, "{which:?}: {reason}");
    // Both of the client's threads ended (the IO thread returns right after
    // dropping the callbacks, which `terminal` waited for).
    let prefix = format!("ws#{id}-");
    assert!(
        wait_until(T, || threads_named(&prefix).is_empty()),
        "{which:?}: threads still running: {:?}",
        threads_named(&prefix)
    );
    // Nothing else was delivered after the error.
    assert!(
        matches!(rec.events().last(), Some(Ev::Error(_))),
        "{:?}",
        rec.events()
    );

    // The other connection still works.
    other.send_text("still here").unwrap();
    assert!(other_rec.wait(T, |e| e.contains(&Ev::Text("still here".into()))));
    assert!(other.is_open());
    other.close().unwrap();
    assert_eq!(terminal(&other_rec), Ev::Closed(1000, String::new()));
    assert_eq!(closes.recv_timeout(T).unwrap(), (1000, String::new()));
    assert!(server.shutdown());
}

#[test]
fn a_panic_in_on_message_fails_the_connection_with_1011_and_one_on_error() {
    a_panicking_callback_fails_only_its_connection(Panicky::Message);
}

#[test]
fn a_panic_in_on_open_fails_the_connection_with_1011_and_one_on_error() {
    a_panicking_callback_fails_only_its_connection(Panicky::Open);
}

#[test]
fn a_panic_in_the_binary_callbacks_fails_the_connection_with_1011_and_one_on_error() {
    for which in [Panicky::Binary, Panicky::Segment, Panicky::Fragment] {
        a_panicking_callback_fails_only_its_connection(which);
    }
}

#[test]
fn a_panic_in_on_closed_or_on_error_ends_the_threads_and_nothing_follows() {
    let (server, closes) = reporting_echo_server();
    let url = ws_url(server.local_addr(), "/");

    // on_closed panics after a normal close (the recorder's handler, added
    // first, records it).
    let rec = Recorder::default();
    let client = rec
        .attach(WebSocketClient::builder(url.clone()), false)
        .on_closed(move |_, _, _| panic!("boom in on_closed"))
        .build()
        .unwrap();
    let id = client.id().get();
    client.open().unwrap();
    assert!(rec.wait(T, |e| e.iter().any(|e| matches!(e, Ev::Open(_)))));
    client.close_with(1000, "done").unwrap();
    assert_eq!(terminal(&rec), Ev::Closed(1000, "done".into()));
    assert_eq!(closes.recv_timeout(T).unwrap(), (1000, "done".into()));
    let prefix = format!("ws#{id}-");
    assert!(wait_until(T, || threads_named(&prefix).is_empty()));
    assert_eq!(client.state(), ReadyState::Closed);
    assert!(matches!(client.send_text("after"), Err(Error::Closed)));

    // on_error panics after a failed connection attempt.
    let refused = listener().local_addr().unwrap();
    let rec = Recorder::default();
    let client = rec
        .attach(WebSocketClient::builder(ws_url(refused, "/")), false)
        .on_error(move |_, _| panic!("boom in on_error"))
        .build()
        .unwrap();
    let id = client.id().get();
    client.open().unwrap();
    assert_eq!(
        terminal(&rec),
        Ev::Error("connect:ConnectionRefused".into())
    );
    let prefix = format!("ws#{id}-");
    assert!(wait_until(T, || threads_named(&prefix).is_empty()));
    assert_eq!(client.state(), ReadyState::Closed);
    assert_eq!(rec.events().len(), 1, "{:?}", rec.events());

    // The server still serves.
    let rec = Recorder::default();
    let client = open_client(&rec, WebSocketClient::builder(url));
    client.send_text("echo?").unwrap();
    assert!(rec.wait(T, |e| e.contains(&Ev::Text("echo?".into()))));
    client.close().unwrap();
    terminal(&rec);
    assert!(server.shutdown());
}
