//! The event client's Best.HTTP-like surface (issue 18), over loopback:
//! several handlers per event, dispatch from the application's thread,
//! streaming routing, the keepalive switch, and the calls the seed has.
//! Every wait is on an event or a condition, bounded.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ws_proto::{Config, DeflateConfig, MessageKind};
use ws_std::{
    serve, Delivery, Error, ReadyState, Received, ServeOptions, ServerOptions, WebSocketClient,
};

const T: Duration = Duration::from_secs(5);

/// A handler that records `name:text` for each text message.
fn label(rec: &Recorder, name: &'static str) -> impl FnMut(&WebSocketClient, &str) + Send {
    let r = rec.clone();
    move |_, t| r.push(Ev::Text(format!("{name}:{t}")))
}

/// Adds the terminal handlers that record into `rec`.
fn record_terminal(rec: &Recorder, client: &WebSocketClient) {
    let r = rec.clone();
    client.on_closed(move |_, code, reason| r.push(Ev::Closed(code.as_u16(), reason.into())));
    let r = rec.clone();
    client.on_error(move |_, e| r.push(Ev::Error(classify(e))));
}

/// Waits until the client has delivered its terminal event, and checks
/// that there was exactly one.
fn finished(rec: &Recorder, client: &WebSocketClient) -> Ev {
    assert!(wait_until(T, || client.is_finished()), "{:?}", rec.events());
    assert_eq!(client.state(), ReadyState::Closed);
    let (closed, errors) = rec.terminal_counts();
    assert_eq!(closed + errors, 1, "{:?}", rec.events());
    rec.events().into_iter().find(is_terminal).unwrap()
}

/// What a game loop does, event-driven: dispatch whenever something is
/// queued, until the terminal event has been delivered (bounded).
fn dispatch_until_finished(client: &WebSocketClient) {
    for _ in 0..1000 {
        if client.is_finished() {
            break;
        }
        wait_until(T, || client.pending_events() > 0 || client.is_finished());
        client.dispatch();
    }
}

// ----- 1. handlers like C# events -----------------------------------------------

#[test]
fn several_handlers_per_event_run_in_the_order_added_and_can_be_removed() {
    let server = echo_server(ServerOptions::default());
    let rec = Recorder::default();
    // A client from `new` takes handlers; the builder's come first.
    let client = WebSocketClient::builder(ws_url(server.local_addr(), "/"))
        .on_message(label(&rec, "builder"))
        .build()
        .unwrap();
    let a = client.on_message(label(&rec, "a"));
    let b = client.on_message(label(&rec, "b"));
    client.on_message(label(&rec, "c"));
    for n in ["1", "2"] {
        let r = rec.clone();
        client.on_open(move |_, _| r.push(Ev::Open(Some(n.into()))));
    }
    record_terminal(&rec, &client);
    assert!(client.remove_handler(b));
    assert!(!client.remove_handler(b), "removed twice");

    client.open().unwrap();
    client.send_text("x").unwrap();
    assert!(rec.wait(T, |e| e.contains(&Ev::Text("c:x".into()))));
    // Delivered on the IO thread: nothing waits for `dispatch`.
    assert_eq!(client.delivery(), Delivery::IoThread);
    assert_eq!(client.pending_events(), 0);
    assert_eq!(client.dispatch(), 0);
    assert_eq!(
        rec.events(),
        vec![
            Ev::Open(Some("1".into())),
            Ev::Open(Some("2".into())),
            Ev::Text("builder:x".into()),
            Ev::Text("a:x".into()),
            Ev::Text("c:x".into()),
        ]
    );

    // Added while open: sees the next messages. Added from inside a handler:
    // from the next message on.
    let r = rec.clone();
    client.on_message(move |ws, t| {
        r.push(Ev::Text(format!("d:{t}")));
        if t == "y" {
            ws.on_message(label(&r, "e"));
        }
    });
    client.send_text("y").unwrap();
    client.send_text("z").unwrap();
    assert!(rec.wait(T, |e| e.contains(&Ev::Text("e:z".into()))));
    let texts: Vec<String> = rec
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Ev::Text(t) if !t.ends_with(":x") => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        [
            "builder:y",
            "a:y",
            "c:y",
            "d:y",
            "builder:z",
            "a:z",
            "c:z",
            "d:z",
            "e:z"
        ]
    );

    // Removed while open: not called for later messages.
    assert!(client.remove_handler(a));
    client.send_text("w").unwrap();
    assert!(rec.wait(T, |e| e.contains(&Ev::Text("e:w".into()))));
    assert!(!rec.events().contains(&Ev::Text("a:w".into())));

    client.close().unwrap();
    assert_eq!(finished(&rec, &client), Ev::Closed(1000, String::new()));
    // After the terminal event a new handler is dropped at once (it could
    // hold a clone of the client).
    let token = Arc::new(());
    let held = token.clone();
    client.on_message(move |_, _| {
        let _ = &held;
    });
    assert_eq!(Arc::strong_count(&token), 1);
    assert!(server.shutdown());
}

#[test]
fn handlers_of_a_client_closed_before_open_are_dropped() {
    let client = WebSocketClient::new("ws://127.0.0.1:1/").unwrap();
    let token = Arc::new(());
    let held = token.clone();
    let id = client.on_open(move |_, _| {
        let _ = &held;
    });
    assert_eq!(Arc::strong_count(&token), 2);
    client.close().unwrap();
    assert!(client.is_finished());
    assert_eq!(Arc::strong_count(&token), 1);
    assert!(!client.remove_handler(id));
}

// ----- 2. dispatch from the application's thread --------------------------------

#[test]
fn dispatch_runs_every_handler_on_the_calling_thread_in_order_with_one_terminal_event() {
    let server = echo_server(ServerOptions::default());
    let rec = Recorder::default();
    let me = thread::current().id();
    let elsewhere = Arc::new(AtomicUsize::new(0));
    let reentered = Arc::new(AtomicUsize::new(0));
    let check = {
        let elsewhere = elsewhere.clone();
        move || {
            if thread::current().id() != me {
                elsewhere.fetch_add(1, Ordering::SeqCst);
            }
        }
    };
    let (c1, c2, c3) = (check.clone(), check.clone(), check.clone());
    let (r1, r2, r3) = (rec.clone(), rec.clone(), rec.clone());
    let re = reentered.clone();
    let client = WebSocketClient::builder(ws_url(server.local_addr(), "/"))
        .delivery(Delivery::Dispatch)
        .on_open(move |ws, _| {
            c1();
            r1.push(Ev::Open(None));
            for t in ["a", "b", "c"] {
                ws.send_text(t).unwrap();
            }
        })
        .on_message(move |ws, t| {
            c2();
            // Dispatching from inside a handler does nothing.
            re.fetch_add(ws.dispatch(), Ordering::SeqCst);
            r2.push(Ev::Text(t.into()));
            if t == "c" {
                ws.close_with(1000, "done").unwrap();
            }
        })
        .on_closed(move |_, code, reason| {
            c3();
            r3.push(Ev::Closed(code.as_u16(), reason.into()));
        })
        .build()
        .unwrap();
    let r = rec.clone();
    client.on_error(move |_, e| {
        check();
        r.push(Ev::Error(classify(e)));
    });
    assert_eq!(client.delivery(), Delivery::Dispatch);
    client.open().unwrap();

    // The open event waits for us.
    assert!(wait_until(T, || client.pending_events() == 1));
    assert!(rec.events().is_empty(), "{:?}", rec.events());
    assert_eq!(client.dispatch(), 1);
    assert_eq!(rec.events(), vec![Ev::Open(None)]);

    // A game loop: dispatch whenever something is queued, until the end.
    dispatch_until_finished(&client);
    assert_eq!(finished(&rec, &client), Ev::Closed(1000, "done".into()));
    assert_eq!(
        rec.events(),
        vec![
            Ev::Open(None),
            Ev::Text("a".into()),
            Ev::Text("b".into()),
            Ev::Text("c".into()),
            Ev::Closed(1000, "done".into()),
        ]
    );
    assert_eq!(
        elsewhere.load(Ordering::SeqCst),
        0,
        "a handler ran elsewhere"
    );
    assert_eq!(reentered.load(Ordering::SeqCst), 0);
    assert_eq!(client.dispatch(), 0);
    assert_eq!(client.pending_events(), 0);
    assert!(server.shutdown());
}

#[test]
fn dispatch_delivers_a_failed_connection_as_one_error() {
    let refused = listener().local_addr().unwrap();
    let rec = Recorder::default();
    let client = WebSocketClient::builder(ws_url(refused, "/"))
        .delivery(Delivery::Dispatch)
        .build()
        .unwrap();
    record_terminal(&rec, &client);
    client.open().unwrap();
    assert!(wait_until(T, || client.pending_events() == 1));
    assert_eq!(client.state(), ReadyState::Closed);
    assert!(!client.is_finished(), "delivered before dispatch");
    assert_eq!(client.dispatch(), 1);
    assert_eq!(
        finished(&rec, &client),
        Ev::Error("connect:ConnectionRefused".into())
    );
}

#[test]
fn a_panic_in_dispatch_fails_the_connection_with_1011_and_one_error() {
    let (server, closes) = reporting_echo_server();
    let rec = Recorder::default();
    let client = WebSocketClient::builder(ws_url(server.local_addr(), "/"))
        .delivery(Delivery::Dispatch)
        .on_message(|_, _| panic!("boom in dispatch"))
        .build()
        .unwrap();
    client.on_message(label(&rec, "after the panic"));
    record_terminal(&rec, &client);
    client.open().unwrap();
    client.send_text("one").unwrap();
    client.send_text("two").unwrap();
    dispatch_until_finished(&client);
    assert_eq!(
        finished(&rec, &client),
        Ev::Error("panicked:boom in dispatch".into())
    );
    // Nothing after the panicking handler ran: not the next handler of that
    // message, not the next message.
    assert_eq!(rec.events().len(), 1, "{:?}", rec.events());
    assert_eq!(closes.recv_timeout(T).unwrap().0, 1011);
    assert!(matches!(client.send_text("late"), Err(Error::Closed)));
    assert!(server.shutdown());
}

#[test]
fn the_dispatch_queue_is_bounded_and_loses_nothing() {
    const COUNT: usize = 100;
    const LEN: usize = 1000;
    let server = serve(listener(), ServeOptions::default(), |mut ws| {
        let _ = ws.recv();
        for i in 0..COUNT {
            let mut m = vec![0u8; LEN];
            m[..8].copy_from_slice(&(i as u64).to_be_bytes());
            if ws.send_binary(m).is_err() {
                return;
            }
        }
        let _ = ws.recv();
    })
    .unwrap();
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    // Eight events of 1,000 bytes (each costs its payload + 64).
    let limit = 8 * (LEN + 64);
    let client = WebSocketClient::builder(ws_url(server.local_addr(), "/"))
        .delivery(Delivery::Dispatch)
        .max_pending(limit)
        .on_binary(move |_, b| {
            let n = u64::from_be_bytes(b[..8].try_into().unwrap());
            g.lock().unwrap().push(n as usize);
        })
        .build()
        .unwrap();
    let rec = Recorder::default();
    record_terminal(&rec, &client);
    client.open().unwrap();
    client.send_text("go").unwrap();
    // The open event plus messages fill the queue to its limit, no further.
    assert!(wait_until(T, || client.pending_events() == 8));
    let mut most = 0;
    for _ in 0..10_000 {
        if got.lock().unwrap().len() == COUNT {
            break;
        }
        wait_until(T, || client.pending_events() > 0);
        most = most.max(client.pending_events());
        client.dispatch();
    }
    assert!(most <= 8, "{most} events queued");
    assert_eq!(*got.lock().unwrap(), (0..COUNT).collect::<Vec<_>>());
    client.close().unwrap();
    dispatch_until_finished(&client);
    assert_eq!(finished(&rec, &client), Ev::Closed(1000, String::new()));
    assert!(server.shutdown());
}

// ----- 3. streaming as in the seed ----------------------------------------------

#[test]
fn only_fragmented_messages_go_to_the_incomplete_frame_handler() {
    let server = serve(listener(), ServeOptions::default(), |mut ws| {
        let _ = ws.recv();
        ws.send_text("whole").unwrap();
        ws.send_fragment(MessageKind::Text, "hel", false).unwrap();
        ws.send_fragment(MessageKind::Text, "lo", true).unwrap();
        ws.send_binary(vec![1u8, 2, 3]).unwrap();
        ws.send_fragment(MessageKind::Binary, vec![4u8], false)
            .unwrap();
        ws.send_fragment(MessageKind::Binary, vec![5u8], true)
            .unwrap();
        ws.send_text("end").unwrap();
        let _ = ws.recv();
    })
    .unwrap();
    let rec = Recorder::default();
    let client = open_recorded(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/")),
        true,
    );
    client.send_text("go").unwrap();
    assert!(rec.wait(T, |e| e.contains(&Ev::Text("end".into()))));
    let frag = |d: &[u8], first, fin| Ev::Fragment {
        data: d.to_vec(),
        first,
        fin,
    };
    let events: Vec<Ev> = rec
        .events()
        .into_iter()
        .filter(|e| !matches!(e, Ev::Open(_)))
        .collect();
    assert_eq!(
        events,
        vec![
            Ev::Text("whole".into()),
            frag(b"hel", true, false),
            frag(b"lo", false, true),
            Ev::Segment(vec![1, 2, 3]),
            Ev::Binary(vec![1, 2, 3]),
            frag(&[4], true, false),
            frag(&[5], false, true),
            Ev::Text("end".into()),
        ]
    );
    client.close().unwrap();
    assert!(matches!(terminal_within(&rec, T), Ev::Closed(1000, _)));
    assert!(server.shutdown());
}

// ----- 4. the keepalive switch --------------------------------------------------

/// A server that never sends anything (no pongs either) and reports when
/// each ping arrived, counted from the upgrade.
fn silent_server() -> (ws_std::ServerHandle, mpsc::Receiver<Duration>) {
    let (tx, rx) = mpsc::channel();
    let options = ServerOptions::default().config(Config::default().auto_pong(false));
    let server = serve(
        listener(),
        ServeOptions::default().server(options),
        move |mut ws| {
            let start = Instant::now();
            recv_each(&mut ws, |_, r| {
                if let Received::Ping(_) = r {
                    let _ = tx.send(start.elapsed());
                }
            });
        },
    )
    .unwrap();
    (server, rx)
}

#[test]
fn keepalive_alone_pings_every_second_and_ends_a_silent_link_after_two() {
    let b = WebSocketClient::builder("ws://127.0.0.1:1/").keepalive(true);
    let config = &b.client_options().config;
    assert_eq!(config.ping_interval, Some(Duration::from_secs(1)));
    assert_eq!(config.idle_timeout, Some(Duration::from_secs(2)));
    let b = b.keepalive(false);
    assert_eq!(b.client_options().config.ping_interval, None);
    assert_eq!(b.client_options().config.idle_timeout, None);

    let (server, pings) = silent_server();
    let rec = Recorder::default();
    let t = Instant::now();
    let _client = open_recorded(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/")).keepalive(true),
        false,
    );
    let first = pings.recv_timeout(T).unwrap();
    assert!(
        first >= Duration::from_millis(900) && first < Duration::from_secs(10),
        "first ping after {first:?}"
    );
    assert_eq!(terminal_within(&rec, T), Ev::Error("timeout:Idle".into()));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "ended after {took:?}"
    );
    assert!(server.shutdown());
}

#[test]
fn keepalive_intervals_are_adjustable() {
    let (server, pings) = silent_server();
    let rec = Recorder::default();
    let silence = Duration::from_millis(600);
    let t = Instant::now();
    let _client = open_recorded(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/"))
            .keepalive(true)
            .ping_interval(Some(Duration::from_millis(100)))
            .idle_timeout(Some(silence)),
        false,
    );
    let first = pings.recv_timeout(T).unwrap();
    assert!(first >= Duration::from_millis(90), "{first:?}");
    assert_eq!(terminal_within(&rec, T), Ev::Error("timeout:Idle".into()));
    let took = t.elapsed();
    assert!(
        took >= silence && took < Duration::from_secs(10),
        "ended after {took:?}"
    );
    assert!(server.shutdown());
}

#[test]
fn keepalive_without_the_idle_limit_keeps_a_silent_link_open() {
    let (server, pings) = silent_server();
    let rec = Recorder::default();
    let client = open_recorded(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/"))
            .keepalive(true)
            .ping_interval(Some(Duration::from_millis(250)))
            .idle_timeout(None),
        false,
    );
    // Ten pings take 2.5 s or more: past the 2 s the switch alone allows.
    let mut last = Duration::ZERO;
    for _ in 0..10 {
        last = pings.recv_timeout(T).unwrap();
    }
    assert!(last >= Duration::from_secs(2), "{last:?}");
    assert!(client.is_open(), "{:?}", rec.events());
    client.close().unwrap();
    // The silent server never echoes the close: the close timeout ends it,
    // as an error or a close, exactly once.
    let _ = terminal_within(&rec, Duration::from_secs(15));
    assert!(server.shutdown());
}

#[test]
fn keepalive_without_pings_still_ends_a_silent_link() {
    let (server, pings) = silent_server();
    let rec = Recorder::default();
    let t = Instant::now();
    let client = open_recorded(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/"))
            .keepalive(true)
            .ping_interval(None),
        false,
    );
    assert_eq!(terminal_within(&rec, T), Ev::Error("timeout:Idle".into()));
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(pings.try_recv().is_err(), "a ping was sent");
    drop(client);
    assert!(server.shutdown());
}

// ----- 5. the calls the seed has ------------------------------------------------

#[test]
fn ping_on_ping_and_on_pong() {
    let (tx, rx) = mpsc::channel();
    let server = serve(listener(), ServeOptions::default(), move |mut ws| {
        recv_each(&mut ws, |ws, r| match r {
            Received::Ping(p) => tx.send(p.to_vec()).unwrap(),
            Received::Message(_) => ws.ping("from server").unwrap(),
            _ => {}
        })
    })
    .unwrap();
    let rec = Recorder::default();
    let client = build_recorded(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/")),
        false,
    );
    let r = rec.clone();
    client.on_pong(move |_, p| r.push(Ev::Text(format!("pong:{}", String::from_utf8_lossy(p)))));
    let r = rec.clone();
    client.on_ping(move |_, p| r.push(Ev::Text(format!("ping:{}", String::from_utf8_lossy(p)))));
    // A ping before open is queued like a message.
    let payload = String::from("from client");
    client.ping(payload.as_bytes()).unwrap();
    client.open().unwrap();
    assert_eq!(rx.recv_timeout(T).unwrap(), b"from client");
    assert!(rec.wait(T, |e| e.contains(&Ev::Text("pong:from client".into()))));
    assert!(client.latency().is_some());
    client.send_text("ping me").unwrap();
    assert!(rec.wait(T, |e| e.contains(&Ev::Text("ping:from server".into()))));
    // A control payload is at most 125 bytes.
    let e = client.ping([0u8; 126]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Command(ws_proto::Error::ControlPayloadTooLong(126))
        ),
        "{e:?}"
    );
    client.close().unwrap();
    assert!(matches!(terminal_within(&rec, T), Ev::Closed(1000, _)));
    assert!(server.shutdown());
}

#[test]
fn fragment_wise_sends_are_ordered_checked_and_bounded_by_the_queue() {
    let (tx, rx) = mpsc::channel();
    let options = ServerOptions::default().config(Config::default().streaming(true));
    let server = serve(
        listener(),
        ServeOptions::default().server(options),
        move |mut ws| {
            recv_each(&mut ws, |_, r| {
                if let Received::Fragment(f) = r {
                    tx.send((f.data.to_vec(), f.fin)).unwrap();
                }
            })
        },
    )
    .unwrap();
    let rec = Recorder::default();
    let client = build_recorded(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/")).max_buffered(10),
        false,
    );
    // Before open: the pieces wait in the queue and count against its limit.
    client.send_binary_fragment(&[1u8; 6][..], false).unwrap();
    assert_eq!(client.buffered_amount(), 6);
    let full = client.send_binary_fragment(vec![2u8; 6], false);
    assert!(matches!(full, Err(Error::QueueFull { .. })), "{full:?}");
    // While the message is open nothing else may start, not even a piece of
    // another kind; a ping may go between pieces.
    let e = client.send_text("interloper").unwrap_err();
    assert!(
        matches!(e, Error::Command(ws_proto::Error::FragmentSequence)),
        "{e:?}"
    );
    assert!(client.send_text_fragment("x", true).is_err());
    client.ping(b"between").unwrap();
    client.send_binary_fragment(vec![3u8; 4], true).unwrap();
    client.open().unwrap();
    assert_eq!(rx.recv_timeout(T).unwrap(), (vec![1u8; 6], false));
    assert_eq!(rx.recv_timeout(T).unwrap(), (vec![3u8; 4], true));
    // Text pieces are &str: the whole message is UTF-8.
    client.send_text_fragment("hé", false).unwrap();
    client.send_text_fragment("llo", true).unwrap();
    assert_eq!(
        rx.recv_timeout(T).unwrap(),
        ("hé".as_bytes().to_vec(), false)
    );
    assert_eq!(rx.recv_timeout(T).unwrap(), (b"llo".to_vec(), true));
    // Whole messages are allowed again.
    client.send_text("after").unwrap();
    assert_eq!(rx.recv_timeout(T).unwrap(), (b"after".to_vec(), true));
    client.close().unwrap();
    assert!(matches!(terminal_within(&rec, T), Ev::Closed(1000, _)));
    assert!(server.shutdown());
}

#[test]
fn send_uncompressed_skips_permessage_deflate() {
    if !deflate_available() {
        println!("NOTE: permessage-deflate is a stub in this build; nothing to skip");
        return;
    }
    let (tx, rx) = mpsc::channel();
    let options =
        ServerOptions::default().config(Config::default().deflate(Some(DeflateConfig::default())));
    let server = serve(
        listener(),
        ServeOptions::default().server(options),
        move |mut ws| {
            // Wire bytes per message (the client sends nothing else between).
            let mut last = ws.stats().bytes_in;
            recv_each(&mut ws, |ws, r| {
                if let Received::Message(m) = r {
                    let now = ws.stats().bytes_in;
                    tx.send((m.data.len() as u64, now - last)).unwrap();
                    last = now;
                }
            })
        },
    )
    .unwrap();
    let rec = Recorder::default();
    let client = open_recorded(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/"))
            .deflate(Some(DeflateConfig::default())),
        false,
    );
    let text = "squeeze me ".repeat(1000);
    client.send_text(&text).unwrap();
    let (len, wire) = rx.recv_timeout(T).unwrap();
    assert_eq!(len, text.len() as u64);
    assert!(
        wire < len / 4,
        "compressed: {wire} bytes on the wire for {len}"
    );
    client
        .send_uncompressed(MessageKind::Text, text.as_bytes())
        .unwrap();
    let (len, wire) = rx.recv_timeout(T).unwrap();
    assert_eq!(len, text.len() as u64);
    assert!(
        wire >= len,
        "uncompressed: {wire} bytes on the wire for {len}"
    );
    let e = client
        .send_uncompressed(MessageKind::Text, &[0xffu8, 0xfe][..])
        .unwrap_err();
    assert!(matches!(e, Error::InvalidUtf8), "{e:?}");
    client.close().unwrap();
    assert!(matches!(terminal_within(&rec, T), Ev::Closed(1000, _)));
    assert!(server.shutdown());
}

#[test]
fn close_defaults_to_1000_and_integer_codes_are_validated() {
    let client = WebSocketClient::new("ws://127.0.0.1:1/").unwrap();
    for (code, why) in [
        (
            1005,
            "(no status code) may not be sent: it is only reported",
        ),
        (
            1006,
            "(abnormal closure, no close frame) may not be sent: it is only reported",
        ),
        (
            1015,
            "(TLS handshake failure) may not be sent: it is only reported",
        ),
        (1004, "reserved by RFC 6455"),
        (2999, "reserved by RFC 6455"),
        (0, "out of range"),
        (999, "out of range"),
        (5000, "out of range"),
        (65535, "out of range"),
    ] {
        let e = client.close_with(code, "").unwrap_err();
        assert!(
            matches!(e, Error::Command(ws_proto::Error::InvalidCloseCode(c)) if c == code),
            "{code}: {e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains(&code.to_string()) && text.contains(why),
            "{text}"
        );
    }
    let e = client.close_with(4000, &"r".repeat(124)).unwrap_err();
    assert!(
        matches!(e, Error::Command(ws_proto::Error::CloseReasonTooLong(124))),
        "{e:?}"
    );
    // Nothing was closed by the refused calls.
    assert_eq!(client.state(), ReadyState::Connecting);

    let (server, closes) = reporting_echo_server();
    let url = ws_url(server.local_addr(), "/");
    for (close, expected) in [(None, (1000, "")), (Some(4000), (4000, "game over"))] {
        let rec = Recorder::default();
        let client = rec
            .attach(WebSocketClient::builder(url.clone()), false)
            .build()
            .unwrap();
        client.open().unwrap();
        match close {
            None => client.close().unwrap(),
            Some(code) => client.close_with(code, "game over").unwrap(),
        }
        let (code, reason) = closes.recv_timeout(T).unwrap();
        assert_eq!((code, reason.as_str()), expected);
        assert_eq!(
            terminal_within(&rec, T),
            Ev::Closed(expected.0, expected.1.into())
        );
        assert!(matches!(client.close(), Err(Error::Closed)));
    }
    assert!(server.shutdown());
}

#[test]
fn send_binary_takes_a_borrowed_slice() {
    let server = echo_server(ServerOptions::default());
    let rec = Recorder::default();
    let client = open_recorded(
        &rec,
        WebSocketClient::builder(ws_url(server.local_addr(), "/")),
        false,
    );
    {
        // Not 'static: a local buffer, sent from a sub-slice, then dropped.
        let local: Vec<u8> = (0u8..10).collect();
        client.send_binary(&local[2..5]).unwrap();
        client.send_binary(&local).unwrap();
    }
    client.send_binary(b"abc").unwrap();
    assert!(rec.wait(T, |e| e.contains(&Ev::Binary(b"abc".to_vec()))));
    let binaries: Vec<Vec<u8>> = rec
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Ev::Binary(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(
        binaries,
        vec![vec![2, 3, 4], (0u8..10).collect(), b"abc".to_vec()]
    );
    client.close().unwrap();
    assert!(matches!(terminal_within(&rec, T), Ev::Closed(1000, _)));
    assert!(server.shutdown());
}

#[test]
fn the_log_context_is_named_sanitized_and_changeable() {
    let client = WebSocketClient::builder("ws://127.0.0.1:1/")
        .log_context("lobby")
        .build()
        .unwrap();
    let n = client.id().get();
    assert_eq!(client.log_context().as_deref(), Some("lobby"));
    assert_eq!(client.id().to_string(), format!("[ws#{n} lobby]"));
    // A name cannot break a log line or grow it without bound.
    client.set_log_context(Some("evil\r\n[ws#1] forged line"));
    assert_eq!(
        client.id().to_string(),
        format!("[ws#{n} evil??[ws#1] forged line]")
    );
    client.set_log_context(Some(&"x".repeat(1000)));
    assert_eq!(client.log_context().unwrap().chars().count(), 64);
    client.set_log_context(None);
    assert_eq!(client.id().to_string(), format!("[ws#{n}]"));
    // Named again, then dropped: the name goes with the client.
    client.set_log_context(Some("gone"));
    let id = client.id();
    drop(client);
    assert_eq!(id.name(), None);
}
