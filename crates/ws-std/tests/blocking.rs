//! The blocking API over real loopback sockets: connect/accept, ws and wss,
//! split use from two threads, timeouts from the core, and failures.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rustls::RootCertStore;
use ws_proto::{CloseCode, Config, HandshakeError, MessageKind, State};
use ws_std::{
    accept, connect, ClientOptions, Error, Received, ServerOptions, Timeout, TlsClientOptions,
    UpgradeResponse, WebSocket,
};

fn recv_message(ws: &mut WebSocket) -> ws_proto::Message {
    for _ in 0..100 {
        match ws.recv().unwrap() {
            Received::Message(m) => return m,
            Received::Ping(_) | Received::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("no message");
}

fn recv_closed(ws: &mut WebSocket) -> ws_proto::Closed {
    for _ in 0..100 {
        match ws.recv() {
            Ok(Received::Closed(c)) => return c,
            Ok(_) => continue,
            Err(e) => panic!("expected a clean close, got {e}"),
        }
    }
    panic!("no close");
}

#[test]
fn echo_over_plain_tcp_and_clean_close_with_shutdown() {
    let server = echo_server(ServerOptions::default());
    let mut ws = connect(
        &ws_url(server.local_addr(), "/echo"),
        &ClientOptions::default(),
    )
    .unwrap();
    assert_eq!(ws.state(), State::Open);
    ws.send_text("hello").unwrap();
    assert_eq!(recv_message(&mut ws).as_text(), Some("hello"));
    ws.send_binary(vec![1u8, 2, 3]).unwrap();
    let m = recv_message(&mut ws);
    assert_eq!(
        (m.kind, &m.data[..]),
        (MessageKind::Binary, &[1u8, 2, 3][..])
    );
    let big = vec![7u8; 200_000];
    ws.send_binary(big.clone()).unwrap();
    assert_eq!(recv_message(&mut ws).data, big);

    // Both ends finish well before the 5 s close timeout: this needs each
    // side's Transmit::Shutdown to become a real TCP FIN.
    let t = Instant::now();
    ws.close(CloseCode::NORMAL, "done").unwrap();
    assert_eq!(ws.state(), State::Closing);
    let c = recv_closed(&mut ws);
    assert!(c.clean, "{c:?}");
    assert_eq!(c.code, CloseCode::NORMAL);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(matches!(ws.recv(), Err(Error::Closed)));
    assert!(matches!(ws.send_text("late"), Err(Error::Closed)));
    assert!(server.shutdown());
}

#[test]
fn accept_inspects_the_request_and_picks_a_subprotocol() {
    let l = listener();
    let addr = l.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let options = ServerOptions::default().on_upgrade(|req| {
            assert_eq!(req.path, "/chat");
            assert_eq!(req.query.as_deref(), Some("room=1"));
            assert_eq!(req.origin.as_deref(), Some("https://app.example"));
            assert_eq!(req.header("x-token"), Some("abc"));
            assert_eq!(req.protocols, vec!["v2", "v1"]);
            UpgradeResponse::accept_protocol("v1")
        });
        let mut ws = accept(s, &options).unwrap();
        assert_eq!(ws.request().unwrap().path, "/chat");
        assert_eq!(ws.open_info().protocol.as_deref(), Some("v1"));
        let m = recv_message(&mut ws);
        ws.send_text(&format!("got {}", m.as_text().unwrap()))
            .unwrap();
        recv_closed(&mut ws)
    });
    let options = ClientOptions::default()
        .origin("https://app.example")
        .protocol("v2")
        .protocol("v1")
        .header("X-Token", "abc");
    let mut ws = connect(&ws_url(addr, "/chat?room=1"), &options).unwrap();
    assert_eq!(ws.open_info().protocol.as_deref(), Some("v1"));
    ws.send_text("x").unwrap();
    assert_eq!(recv_message(&mut ws).as_text(), Some("got x"));
    ws.close(CloseCode::NORMAL, "").unwrap();
    assert!(recv_closed(&mut ws).clean);
    let server_side = server.join().unwrap();
    assert_eq!(server_side.code, CloseCode::NORMAL);
}

#[test]
fn rejected_upgrade_gives_status_and_body_start() {
    let l = listener();
    let addr = l.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let options = ServerOptions::default()
            .on_upgrade(|_| UpgradeResponse::reject(401, "missing token: please log in"));
        accept(s, &options).unwrap_err()
    });
    let err = connect(&ws_url(addr, "/"), &ClientOptions::default()).unwrap_err();
    match &err {
        Error::Handshake(HandshakeError::Status { status, body, .. }) => {
            assert_eq!(*status, 401);
            assert!(body.starts_with(b"missing token"), "{body:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("401"), "{err}");
    let server_err = server.join().unwrap();
    assert!(
        matches!(server_err, Error::Handshake(HandshakeError::Rejected(401))),
        "{server_err:?}"
    );
}

#[test]
fn server_closes_with_code_and_reason() {
    let server = ws_std::serve(listener(), ws_std::ServeOptions::default(), |mut ws| {
        let _ = recv_message(&mut ws);
        ws.close(CloseCode::new(4001).unwrap(), "bye now").unwrap();
        let _ = ws.recv();
    })
    .unwrap();
    let mut ws = connect(&ws_url(server.local_addr(), "/"), &ClientOptions::default()).unwrap();
    ws.send_text("go").unwrap();
    let c = recv_closed(&mut ws);
    assert_eq!(
        (c.code.as_u16(), c.reason.as_str(), c.clean),
        (4001, "bye now", true)
    );
    assert!(server.shutdown());
}

fn tls_server(cert: &TestCert) -> ws_std::ServerHandle {
    let seen = ws_std::serve(
        listener(),
        ws_std::ServeOptions::default().server(tls_options(cert)),
        |mut ws| {
            // Tell the client which SNI name arrived, then echo.
            let sni = ws.tls_server_name().unwrap_or("none").to_string();
            let _ = ws.send_text(&format!("sni={sni}"));
            let _ = ws.recv();
            echo(ws)
        },
    );
    seen.unwrap()
}

fn wss_roundtrip(tls: TlsClientOptions, server: &ws_std::ServerHandle) {
    let url = format!("wss://ws.test:{}/secure", server.local_addr().port());
    let options = ClientOptions::default()
        .tls(tls)
        .connect_to(server.local_addr());
    let mut ws = connect(&url, &options).unwrap();
    assert_eq!(recv_message(&mut ws).as_text(), Some("sni=ws.test"));
    ws.send_text("first").unwrap(); // swallowed by the server's first recv
    ws.send_text("secret").unwrap();
    assert_eq!(recv_message(&mut ws).as_text(), Some("secret"));
    let big = vec![42u8; 300_000];
    ws.send_binary(big.clone()).unwrap();
    assert_eq!(recv_message(&mut ws).data, big);
    ws.close(CloseCode::NORMAL, "tls done").unwrap();
    assert!(recv_closed(&mut ws).clean);
}

#[test]
fn wss_with_a_test_time_certificate_pem_der_and_custom_store() {
    let cert = test_cert();
    let server = tls_server(&cert);
    // Extra trusted certificate, PEM.
    wss_roundtrip(
        TlsClientOptions::default()
            .add_root_pem(cert.cert_pem.as_bytes())
            .unwrap(),
        &server,
    );
    // Extra trusted certificate, DER.
    wss_roundtrip(
        TlsClientOptions::default().add_root_der(cert.cert_der.clone()),
        &server,
    );
    // A custom root store.
    let mut store = RootCertStore::empty();
    store.add(cert.cert_der.clone().into()).unwrap();
    wss_roundtrip(TlsClientOptions::default().root_store(store), &server);
    assert!(server.shutdown());
}

#[test]
fn wss_untrusted_or_wrong_name_is_a_tls_error() {
    let cert = test_cert();
    let server = tls_server(&cert);
    // Default webpki roots do not trust a self-signed certificate.
    let url = format!("wss://ws.test:{}/", server.local_addr().port());
    let err = connect(
        &url,
        &ClientOptions::default().connect_to(server.local_addr()),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    // Trusted, but the URL's host is not a name of the certificate.
    let tls = TlsClientOptions::default().add_root_der(cert.cert_der.clone());
    let url = format!("wss://other.test:{}/", server.local_addr().port());
    let err = connect(
        &url,
        &ClientOptions::default()
            .tls(tls)
            .connect_to(server.local_addr()),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    assert!(err.to_string().starts_with("TLS error"), "{err}");
    assert!(TlsClientOptions::default()
        .add_root_pem(b"not pem")
        .is_err());
    assert!(server.shutdown());
}

/// The server answers only after it has three messages, so the client's
/// reader is blocked in `recv` the whole time the writer sends.
fn split_roundtrip(url: &str, options: &ClientOptions) {
    let ws = connect(url, options).unwrap();
    let (mut reader, writer) = ws.split();
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    static READERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "split-rd-{}",
        READERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let reader_thread = thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            ready_tx.send(()).unwrap(); // next: recv, which blocks
            let mut got = Vec::new();
            for _ in 0..100 {
                match reader.recv() {
                    Ok(Received::Message(m)) => {
                        got.push(m.as_text().unwrap().to_string());
                        tx.send(()).unwrap();
                    }
                    Ok(Received::Closed(c)) => return (got, Some(c)),
                    Ok(_) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            (got, None)
        })
        .unwrap();
    // The reader is in `recv`, and (where the OS tells) asleep in it.
    ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || thread_state(&name)
            .is_none_or(|state| state == 'S')),
        "the reader never blocked"
    );
    let t = Instant::now();
    for i in 0..3 {
        writer.send_text(&format!("m{i}")).unwrap();
    }
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "writer was blocked: {:?}",
        t.elapsed()
    );
    for _ in 0..3 {
        rx.recv_timeout(Duration::from_secs(2)).unwrap();
    }
    writer.close(CloseCode::NORMAL, "").unwrap();
    let (got, closed) = reader_thread.join().unwrap();
    assert_eq!(got, vec!["m0", "m1", "m2"]);
    assert!(closed.unwrap().clean);
}

fn batch_echo(mut ws: WebSocket) {
    let mut batch = Vec::new();
    for _ in 0..100 {
        match ws.recv() {
            Ok(Received::Message(m)) => {
                batch.push(m);
                if batch.len() == 3 {
                    for m in batch.drain(..) {
                        ws.send(m.kind, m.data).unwrap();
                    }
                }
            }
            Ok(Received::Closed(_)) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[test]
fn split_reader_blocked_in_recv_does_not_block_the_writer() {
    let server = ws_std::serve(listener(), ws_std::ServeOptions::default(), batch_echo).unwrap();
    split_roundtrip(&ws_url(server.local_addr(), "/"), &ClientOptions::default());
    assert!(server.shutdown());
}

#[test]
fn split_over_tls_shares_the_session() {
    let cert = test_cert();
    let server = ws_std::serve(
        listener(),
        ws_std::ServeOptions::default().server(tls_options(&cert)),
        batch_echo,
    )
    .unwrap();
    let options = ClientOptions::default()
        .tls(TlsClientOptions::default().add_root_der(cert.cert_der.clone()))
        .connect_to(server.local_addr());
    split_roundtrip(
        &format!("wss://localhost:{}/", server.local_addr().port()),
        &options,
    );
    assert!(server.shutdown());
}

#[test]
fn a_writer_cloned_through_deref_closes_from_another_thread_and_recv_sees_the_close_timeout() {
    // The peer reads everything and never answers, and no timer runs before
    // the close: only the close timeout that the other thread's `close`
    // starts can end the `recv` blocked here, so the reader must notice it.
    let (addr, peer) = raw_upgrade_server(|mut s| {
        let until = Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 256];
        while Instant::now() < until {
            match s.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    });
    let options = ClientOptions::default()
        .config(Config::default().close_timeout(Duration::from_millis(200)));
    let mut ws = connect(&ws_url(addr, "/"), &options).unwrap();
    // `WebSocket` dereferences to its writer: this is a `WsWriter`.
    let writer: ws_std::WsWriter = ws.clone();
    let closer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        writer.close(CloseCode::NORMAL, "bye").unwrap();
    });
    let t = Instant::now();
    let err = loop {
        match ws.recv() {
            Ok(Received::Ping(_) | Received::Pong(_)) => continue,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Timeout(Timeout::Close)), "{err:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(200) && t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    closer.join().unwrap();
    peer.join().unwrap();
}

#[test]
fn read_timeout_comes_from_the_core_idle_deadline() {
    // The server says nothing at all; the client's idle timeout fires from
    // recv's socket read timeout.
    let server = ws_std::serve(listener(), ws_std::ServeOptions::default(), |mut ws| {
        let _ = ws.recv();
    })
    .unwrap();
    let options = ClientOptions::default()
        .config(Config::default().idle_timeout(Some(Duration::from_millis(200))));
    let mut ws = connect(&ws_url(server.local_addr(), "/"), &options).unwrap();
    let t = Instant::now();
    let err = ws.recv().unwrap_err();
    assert!(matches!(err, Error::Timeout(Timeout::Idle)), "{err:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(150) && t.elapsed() < Duration::from_secs(10),
        "{:?}",
        t.elapsed()
    );
    assert!(server.shutdown());
}

#[test]
fn keepalive_pings_give_latency() {
    let server = echo_server(ServerOptions::default());
    let options = ClientOptions::default()
        .config(Config::default().ping_interval(Some(Duration::from_millis(50))));
    let mut ws = connect(&ws_url(server.local_addr(), "/"), &options).unwrap();
    assert!(ws.latency().is_none());
    let mut pongs = 0;
    for _ in 0..20 {
        if let Received::Pong(_) = ws.recv().unwrap() {
            pongs += 1;
            if pongs == 2 {
                break;
            }
        }
    }
    assert_eq!(pongs, 2);
    assert!(ws.latency().unwrap() < Duration::from_millis(500));
    assert!(ws.last_message_received().unwrap().elapsed() < Duration::from_millis(500));
    assert!(server.shutdown());
}

fn fragment_sizes(fragment_size: Option<usize>, len: usize) -> Vec<(usize, bool, bool)> {
    let (tx, rx) = mpsc::channel();
    let server_options = ServerOptions::default().config(Config::default().streaming(true));
    let server = ws_std::serve(
        listener(),
        ws_std::ServeOptions::default().server(server_options),
        move |mut ws| {
            let mut sizes = Vec::new();
            for _ in 0..100 {
                match ws.recv() {
                    Ok(Received::Fragment(f)) => {
                        sizes.push((f.data.len(), f.first, f.fin));
                        if f.fin {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            tx.send(sizes).unwrap();
        },
    )
    .unwrap();
    let mut config = Config::default();
    if let Some(n) = fragment_size {
        config = config.fragment_size(n);
    }
    let ws = connect(
        &ws_url(server.local_addr(), "/"),
        &ClientOptions::default().config(config),
    )
    .unwrap();
    ws.send_binary(vec![1u8; len]).unwrap();
    let sizes = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    drop(ws);
    assert!(server.shutdown());
    sizes
}

#[test]
fn large_messages_are_fragmented_by_the_core() {
    assert_eq!(
        fragment_sizes(None, 100_000),
        vec![
            (32767, true, false),
            (32767, false, false),
            (32767, false, false),
            (1699, false, true)
        ]
    );
    assert_eq!(fragment_sizes(None, 32767), vec![(32767, true, true)]);
    assert_eq!(
        fragment_sizes(Some(40_000), 100_000),
        vec![
            (40_000, true, false),
            (40_000, false, false),
            (20_000, false, true)
        ]
    );
}

#[test]
fn connection_failures_say_what_happened() {
    // Refused: a port that was just free.
    let addr = listener().local_addr().unwrap();
    let err = connect(&ws_url(addr, "/"), &ClientOptions::default()).unwrap_err();
    match &err {
        Error::Connect { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        other => panic!("{other:?}"),
    }
    // Unresolvable: .invalid fails locally.
    let err = connect("ws://no-such-host.invalid/", &ClientOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Resolve { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
    // Not a WebSocket URL.
    assert!(matches!(
        connect("http://x/", &ClientOptions::default()),
        Err(Error::InvalidUrl(_))
    ));
    // A header the hook breaks.
    let hook = ClientOptions::default()
        .request_hook(|r| r.headers.push(("Bad\r\nName".into(), "x".into())));
    assert!(matches!(
        connect(&ws_url(addr, "/"), &hook),
        Err(Error::Command(_))
    ));
}

#[test]
fn a_server_that_never_answers_times_out() {
    let l = listener();
    let addr = l.local_addr().unwrap();
    let (release, held) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let _ = held.recv_timeout(Duration::from_secs(3));
        drop(s);
    });
    let options = ClientOptions::default()
        .config(Config::default().handshake_timeout(Duration::from_millis(200)));
    let t = Instant::now();
    let err = connect(&ws_url(addr, "/"), &options).unwrap_err();
    assert!(matches!(err, Error::Timeout(Timeout::Handshake)), "{err:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(190) && t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    release.send(()).unwrap();
    holder.join().unwrap();
}

#[test]
fn a_peer_vanishing_mid_frame_is_connection_lost() {
    let (addr, h) = raw_upgrade_server(|mut s| {
        // A binary frame announcing 10 bytes, with only 3 of them.
        s.write_all(&[0x82, 0x0a, 1, 2, 3]).unwrap();
        // End the stream, then wait (bounded by the read timeout) for the
        // client to close its side.
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let _ = s.read(&mut [0u8; 64]);
    });
    let mut ws = connect(&ws_url(addr, "/"), &ClientOptions::default()).unwrap();
    let err = ws.recv().unwrap_err();
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err:?}");
    h.join().unwrap();
}

#[test]
fn a_tls_client_meeting_a_plain_server_fails_cleanly() {
    let server = echo_server(ServerOptions::default());
    let url = format!("wss://127.0.0.1:{}/", server.local_addr().port());
    let options = ClientOptions::default()
        .config(Config::default().handshake_timeout(Duration::from_millis(500)));
    let err = connect(&url, &options).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Tls(_) | Error::ConnectionLost { .. } | Error::Timeout(_)
        ),
        "{err:?}"
    );
    drop(TcpStream::connect(server.local_addr()));
    assert!(server.shutdown());
}
