//! Connection life cycle over loopback: closing from each side, a vanishing
//! peer, keepalive and close timeouts, graceful shutdown, cross-thread
//! commands, several loops.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use ws_mio::{ConnId, ConnectOptions, Ctx, Decision, Handler, LoopGroup, Options};
use ws_proto::{
    CloseCode, Closed, Config, ConnectionError, HandshakeError, Initiator, Message, UpgradeRequest,
};

#[test]
fn client_closes() {
    let (server, srx) = echo_server(1, Options::default());
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (client, rx) = client();
    let h = client.handle().clone();
    let id = connect(&h, &url, ConnectOptions::default());
    wait_open(&rx, id);
    let sid = wait_any_open(&srx);
    h.close(id, CloseCode::NORMAL, "bye").unwrap();
    let c = wait_closed(&rx, id);
    assert!(c.clean, "{c:?}");
    assert_eq!(c.code, CloseCode::NORMAL);
    assert_eq!(c.initiator, Initiator::Local);
    let s = wait_closed(&srx, sid);
    assert!(s.clean, "{s:?}");
    assert_eq!(
        (s.code, s.reason.as_str(), s.initiator),
        (CloseCode::NORMAL, "bye", Initiator::Remote)
    );
    // The id is gone on both sides.
    let gone = on_loop(&h, 0, move |ctx| {
        ctx.state(id).is_none() && ctx.connection_count() == 0
    });
    assert!(gone);
    assert!(
        h.send_text(id, "late").is_ok(),
        "queued; dropped by the loop"
    );
}

/// Closes a connection with 4000 when it says "close me".
struct Closer;
impl Handler for Closer {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        if m.as_text() == Some("close me") {
            ctx.close(id, CloseCode::new(4000).unwrap(), "as you wish")
                .unwrap();
        }
    }
}

#[test]
fn server_closes() {
    let server = LoopGroup::builder()
        .loops(1)
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn(|_| Closer)
        .unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (client, rx) = client();
    let h = client.handle().clone();
    let id = connect(&h, &url, ConnectOptions::default());
    wait_open(&rx, id);
    h.send_text(id, "close me").unwrap();
    let c = wait_closed(&rx, id);
    assert!(c.clean, "{c:?}");
    assert_eq!((c.code.as_u16(), c.reason.as_str()), (4000, "as you wish"));
    assert_eq!(c.initiator, Initiator::Remote);
}

#[test]
fn vanishing_peer_ends_with_an_error() {
    let (server, srx) = echo_server(1, Options::default());
    let addr = server.local_addr().unwrap();
    let mut raw = raw_client(addr, "/");
    let sid = wait_any_open(&srx);
    // Half a frame: a header announcing 100 bytes and 10 of them, then gone.
    let frame = client_frame(0x2, &[7u8; 100], true);
    raw.write_all(&frame[..16]).unwrap();
    drop(raw);
    let c = wait_closed(&srx, sid);
    assert!(!c.clean, "{c:?}");
    assert_eq!(c.code, CloseCode::ABNORMAL);
    assert!(
        matches!(
            c.error,
            Some(ConnectionError::ConnectionLost | ConnectionError::Io(_))
        ),
        "{c:?}"
    );
}

#[test]
fn connect_refused_and_upgrade_rejected_reach_on_close() {
    // Nothing listens on this port any more.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (client, rx) = client();
    let h = client.handle().clone();
    let id = connect(
        &h,
        &format!("ws://127.0.0.1:{port}/"),
        ConnectOptions::default(),
    );
    let c = wait_closed(&rx, id);
    assert!(matches!(c.error, Some(ConnectionError::Io(_))), "{c:?}");

    struct Rejecter;
    impl Handler for Rejecter {
        fn on_upgrade(&mut self, _: &mut Ctx<'_>, _: ConnId, _: &UpgradeRequest) -> Decision {
            Decision::reject(403, "no")
        }
        fn on_message(&mut self, _: &mut Ctx<'_>, _: ConnId, _: Message) {}
    }
    let server = LoopGroup::builder()
        .loops(1)
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn(|_| Rejecter)
        .unwrap();
    let id = connect(
        &h,
        &format!("ws://{}/", server.local_addr().unwrap()),
        ConnectOptions::default(),
    );
    let c = wait_closed(&rx, id);
    assert!(
        matches!(
            &c.error,
            Some(ConnectionError::Handshake(HandshakeError::Status {
                status: 403,
                ..
            }))
        ),
        "{c:?}"
    );
}

#[test]
fn keepalive_keeps_a_responsive_peer_and_drops_a_silent_one() {
    // The idle timeout is many ping intervals long: on a busy machine a
    // thread can miss the CPU for a few hundred milliseconds, and a
    // responsive peer must not be dropped for that.
    let idle = Duration::from_millis(1500);
    let cfg = Config::default()
        .ping_interval(Some(Duration::from_millis(100)))
        .idle_timeout(Some(idle));
    let (server, srx) = echo_server(1, Options::default().config(cfg));
    let addr = server.local_addr().unwrap();

    // A responsive ws-mio client (automatic pongs) outlives the idle timeout.
    let (client, rx) = client();
    let h = client.handle().clone();
    let id = connect(&h, &format!("ws://{addr}/"), ConnectOptions::default());
    wait_open(&rx, id);
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < idle + Duration::from_millis(500) {
        if let Ok((_, ev)) = rx.recv_timeout(Duration::from_millis(50)) {
            match ev {
                Ev::Ping(i, _) if i == id => pings += 1,
                Ev::Closed(i, c) if i == id => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }
    assert!(
        pings >= 4,
        "{pings} pings in {:?}",
        idle + Duration::from_millis(500)
    );
    assert_eq!(
        on_loop(&h, 0, move |ctx| ctx.state(id)),
        Some(ws_proto::State::Open)
    );

    // A raw peer that never reads nor answers is failed by the idle timeout.
    let _raw = raw_client(addr, "/silent");
    let sid = wait_for(&srx, "silent open", |_, ev| match ev {
        Ev::Upgrade(i, p) if p == "/silent" => Some(*i),
        _ => None,
    });
    let t0 = Instant::now();
    let c = wait_closed(&srx, sid);
    let took = t0.elapsed();
    assert_eq!(c.error, Some(ConnectionError::IdleTimeout), "{c:?}");
    // Not before the idle timeout (less the time the upgrade event took to
    // reach us); the upper bound is the wait's.
    assert!(took >= idle - Duration::from_millis(250), "{took:?}");
}

#[test]
fn close_timeout_fires_when_the_peer_never_answers() {
    let (tx, rx) = mpsc::channel();
    struct Report(mpsc::Sender<(Closed, Instant)>);
    impl Handler for Report {
        fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &ws_proto::OpenInfo) {
            ctx.close(id, CloseCode::NORMAL, "").unwrap();
        }
        fn on_message(&mut self, _: &mut Ctx<'_>, _: ConnId, _: Message) {}
        fn on_close(&mut self, _: &mut Ctx<'_>, _: ConnId, c: &Closed) {
            let _ = self.0.send((c.clone(), Instant::now()));
        }
    }
    let cfg = Config::default().close_timeout(Duration::from_millis(200));
    let server = LoopGroup::builder()
        .loops(1)
        .options(Options::default().config(cfg))
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn(move |_| Report(tx.clone()))
        .unwrap();
    let mut raw = raw_client(server.local_addr().unwrap(), "/");
    let t0 = Instant::now();
    // The close frame arrives; the peer never answers it.
    let (op, payload) = read_frame(&mut raw).unwrap();
    assert_eq!((op, &payload[..2]), (0x8, &1000u16.to_be_bytes()[..]));
    let (c, at) = rx.recv_timeout(WAIT).unwrap();
    assert_eq!(c.error, Some(ConnectionError::CloseTimeout), "{c:?}");
    let took = at - t0;
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The server then shut the socket.
    let mut rest = Vec::new();
    let _ = raw.read_to_end(&mut rest);
}

#[test]
fn graceful_shutdown_sends_1001_and_drops_stragglers() {
    let (server, srx) = echo_server(2, Options::default());
    let addr = server.local_addr().unwrap();
    let (client, rx) = client();
    let h = client.handle().clone();
    let url = format!("ws://{addr}/");
    let ids: Vec<ConnId> = (0..20)
        .map(|_| connect(&h, &url, ConnectOptions::default()))
        .collect();
    wait_all_open(&rx, &ids);
    // A raw peer that will ignore the close frame.
    let _straggler = raw_client(addr, "/straggler");
    let mut server_opens = 0;
    while server_opens < 21 {
        wait_for(&srx, "server opens", |_, ev| {
            matches!(ev, Ev::Open(..)).then_some(())
        });
        server_opens += 1;
    }

    let t0 = Instant::now();
    server.shutdown(Duration::from_millis(500));
    // Every ws-mio client sees a clean 1001.
    for (_, c) in wait_all_closed(&rx, &ids) {
        assert_eq!(c.code, CloseCode::GOING_AWAY, "{c:?}");
        assert!(c.clean, "{c:?}");
    }
    // The loops finish once the straggler is dropped at the deadline.
    server.join().unwrap();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // Every server connection got exactly one on_close.
    let closes: Vec<Closed> = srx
        .try_iter()
        .filter_map(|(_, ev)| match ev {
            Ev::Closed(_, c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(closes.len(), 21, "{closes:?}");
    assert_eq!(closes.iter().filter(|c| !c.clean).count(), 1, "{closes:?}");
    // New connections are refused.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn handle_sends_and_closes_from_another_thread() {
    let (server, srx) = echo_server(1, Options::default());
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (client, rx) = client();
    let id = connect(client.handle(), &url, ConnectOptions::default());
    wait_open(&rx, id);
    let sid = wait_any_open(&srx);
    let sh = server.handle().clone();
    let t = std::thread::spawn(move || {
        for i in 0..100 {
            sh.send_text(sid, &format!("push {i}")).unwrap();
        }
        sh.close(sid, CloseCode::new(4001).unwrap(), "done")
            .unwrap();
    });
    for i in 0..100 {
        assert_eq!(
            wait_msg(&rx, id).as_text(),
            Some(format!("push {i}").as_str())
        );
    }
    let c = wait_closed(&rx, id);
    assert_eq!(c.code.as_u16(), 4001);
    t.join().unwrap();
    // A handle to a loop that has exited reports it.
    let h = client.handle().clone();
    drop(client);
    assert!(matches!(h.send_text(id, "x"), Err(ws_mio::Error::LoopGone)));
}

#[test]
fn two_loops_share_the_listener() {
    /// Answers every message with its loop index.
    struct WhichLoop;
    impl Handler for WhichLoop {
        fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: Message) {
            let i = ctx.loop_index();
            ctx.send_text(id, &i.to_string()).unwrap();
        }
    }
    let server = LoopGroup::builder()
        .loops(2)
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn(|_| WhichLoop)
        .unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (client, rx) = client();
    let h = client.handle().clone();
    let ids: Vec<ConnId> = (0..64)
        .map(|_| connect(&h, &url, ConnectOptions::default()))
        .collect();
    wait_all_open(&rx, &ids);
    for id in &ids {
        h.send_text(*id, "which?").unwrap();
    }
    let mut seen = HashSet::new();
    for _ in &ids {
        let m = wait_for(&rx, "answers", |_, ev| match ev {
            Ev::Msg(_, m) => Some(m.clone()),
            _ => None,
        });
        seen.insert(m.as_text().unwrap().to_string());
    }
    assert_eq!(seen, HashSet::from(["0".to_string(), "1".to_string()]));
    // Broadcast through the handle reaches connections on both loops.
    server
        .handle()
        .broadcast(ws_proto::MessageKind::Text, "all")
        .unwrap();
    for _ in &ids {
        let m = wait_for(&rx, "broadcast", |_, ev| match ev {
            Ev::Msg(_, m) => Some(m.clone()),
            _ => None,
        });
        assert_eq!(m.as_text(), Some("all"));
    }
}

#[test]
fn stop_closes_everything_with_on_close() {
    let (server, srx) = echo_server(1, Options::default());
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (client, rx) = client();
    let ids: Vec<ConnId> = (0..5)
        .map(|_| connect(client.handle(), &url, ConnectOptions::default()))
        .collect();
    wait_all_open(&rx, &ids);
    client.handle().stop();
    for (_, c) in wait_all_closed(&rx, &ids) {
        assert!(matches!(c.error, Some(ConnectionError::Io(_))), "{c:?}");
    }
    client.join().unwrap();
    // The server sees the peers vanish.
    for _ in &ids {
        wait_for(&srx, "server closes", |_, ev| {
            matches!(ev, Ev::Closed(..)).then_some(())
        });
    }
}

#[test]
fn deferred_upgrade_is_accepted_later_from_another_thread() {
    fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
    assert_shareable::<ws_mio::Handle>();

    /// Defers every upgrade and reports the id.
    struct Later(mpsc::Sender<ConnId>);
    impl Handler for Later {
        fn on_upgrade(&mut self, _: &mut Ctx<'_>, id: ConnId, _: &UpgradeRequest) -> Decision {
            let _ = self.0.send(id);
            Decision::Defer
        }
        fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
            ctx.send(id, m.kind, m.data).unwrap();
        }
    }
    let (tx, ids) = mpsc::channel();
    let server = LoopGroup::builder()
        .loops(1)
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn(move |_| Later(tx.clone()))
        .unwrap();
    let (client, rx) = client();
    let h = client.handle().clone();
    let id = connect(
        &h,
        &format!("ws://{}/", server.local_addr().unwrap()),
        ConnectOptions::default(),
    );
    let sid = ids.recv_timeout(WAIT).unwrap();
    // Nothing happens until the application decides.
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    let accepted = on_loop(server.handle(), 0, move |ctx| {
        ctx.accept(sid, ws_proto::Accept::new()).is_ok()
    });
    assert!(accepted);
    wait_open(&rx, id);
    h.send_text(id, "late but fine").unwrap();
    assert_eq!(wait_msg(&rx, id).as_text(), Some("late but fine"));
}

/// A large frame that arrives slowly, in pieces far apart, is not silence:
/// while the loop sleeps until the rest of the frame is there (the socket's
/// receive low-water mark, `ws_net::low_water`), its idle timer still reads
/// what came and counts it as activity. Each piece is far smaller than the
/// rest of the frame, and the frame takes longer than the idle timeout.
#[test]
fn a_large_frame_trickling_in_is_not_taken_for_silence() {
    let idle = Duration::from_millis(1500);
    let cfg = Config::default().idle_timeout(Some(idle));
    let (server, srx) = echo_server(1, Options::default().config(cfg));
    let addr = server.local_addr().unwrap();
    let mut raw = raw_client(addr, "/slow");
    let sid = wait_for(&srx, "slow open", |_, ev| match ev {
        Ev::Upgrade(i, p) if p == "/slow" => Some(*i),
        _ => None,
    });
    let payload: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let frame = client_frame(0x2, &payload, true);
    let pieces: Vec<&[u8]> = frame.chunks(50_000).collect();
    let started = Instant::now();
    for piece in &pieces {
        raw.write_all(piece).unwrap();
        // The sender's pace (the scenario), not a wait for the server.
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(started.elapsed() > idle * 2, "{:?}", started.elapsed());
    let (op, echoed) = read_frame(&mut raw).expect("the echo");
    assert_eq!(op, 0x2);
    assert!(echoed == payload, "echo differs");
    assert!(
        srx.try_iter()
            .all(|(_, ev)| !matches!(ev, Ev::Closed(i, _) if i == sid)),
        "closed while the frame was arriving"
    );
}
