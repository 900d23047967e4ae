//! Keepalive, latency and timeouts on tokio's clock. The paused-clock tests run over in-memory
//! pipes (`tokio::io::duplex`): the runtime moves the clock forward only when every task waits,
//! so a deadline fires exactly when nothing else can happen, and nothing sleeps to synchronise.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::{bounded, connect, echo_server};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;
use ws_tokio::{ClientRequest, Config, ConnectionError, Decision, Error, WebSocketStream};

const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A server stream over a pipe whose other end is driven by hand: the request is written,
/// the 101 read, and after that the peer says nothing.
async fn server_with_silent_peer(cfg: Config) -> (WebSocketStream<DuplexStream>, DuplexStream) {
    let (ours, mut peer) = tokio::io::duplex(1 << 20);
    let accepting = tokio::spawn(ws_tokio::accept_with(ours, cfg, |_| Decision::accept()));
    peer.write_all(REQUEST).await.unwrap();
    read_head(&mut peer).await;
    (accepting.await.unwrap().unwrap(), peer)
}

/// Reads a 101 response head byte by byte (nothing after it).
async fn read_head(peer: &mut (impl tokio::io::AsyncRead + Unpin)) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        peer.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
        assert!(head.len() < 4096);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
}

/// Keepalive pings go out every second; a peer that answers nothing is dropped at the idle
/// timeout, and the stream reports why.
#[tokio::test(start_paused = true)]
async fn a_silent_peer_gets_pings_then_times_out() {
    let cfg = Config::default()
        .ping_interval(Some(Duration::from_secs(1)))
        .idle_timeout(Some(Duration::from_secs(5)));
    let (mut ws, mut peer) = server_with_silent_peer(cfg).await;
    let start = Instant::now();
    let first = ws.next().await;
    let waited = start.elapsed();
    assert!(
        matches!(
            first,
            Some(Err(Error::Connection(ConnectionError::IdleTimeout)))
        ),
        "{first:?}"
    );
    assert!(ws.next().await.is_none());
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    // The peer was sent a ping (unmasked, opcode 0x9, 8-byte payload) each second.
    let mut wire = Vec::new();
    peer.read_to_end(&mut wire).await.unwrap();
    let pings = wire.windows(2).filter(|w| w == &[0x89, 0x08]).count();
    assert!((4..=5).contains(&pings), "{pings} pings in {wire:02x?}");
}

/// Pings answered by a live peer keep the connection up past the idle timeout, and give a
/// latency.
#[tokio::test(start_paused = true)]
async fn keepalive_with_a_live_peer_stays_open() {
    let (a, b) = tokio::io::duplex(1 << 20);
    let server = tokio::spawn(async move {
        let mut ws = ws_tokio::accept(a).await.unwrap();
        // Reading answers the pings.
        while let Some(Ok(m)) = ws.next().await {
            ws.send(m).await.unwrap();
        }
        ws.close_info()
    });
    let cfg = Config::default()
        .ping_interval(Some(Duration::from_secs(1)))
        .idle_timeout(Some(Duration::from_secs(3)));
    let req = ClientRequest::new("example.com", "/");
    let mut ws = ws_tokio::client(b, &req, cfg).await.unwrap();
    let start = Instant::now();
    // Nothing arrives for 20 s (of the paused clock), but the connection stays up.
    let quiet = tokio::time::timeout(Duration::from_secs(20), ws.next()).await;
    assert!(quiet.is_err(), "{quiet:?}");
    assert!(start.elapsed() >= Duration::from_secs(20));
    assert!(ws.with_connection(|c| c.is_open()));
    assert!(ws.with_connection(|c| c.latency()).is_some());
    assert!(ws.with_connection(|c| c.stats().frames_in) >= 19);
    ws.close().await.unwrap();
    assert!(ws.next().await.is_none());
    assert!(ws.close_info().unwrap().clean);
    assert!(server.await.unwrap().unwrap().clean);
}

/// A server that never answers the upgrade: the client gives up at the handshake timeout.
#[tokio::test(start_paused = true)]
async fn the_handshake_times_out() {
    let (ours, _peer) = tokio::io::duplex(1 << 16);
    let cfg = Config::default().handshake_timeout(Duration::from_secs(2));
    let start = Instant::now();
    let r = ws_tokio::client(ours, &ClientRequest::new("example.com", "/"), cfg).await;
    let e = r.unwrap_err();
    assert!(
        matches!(e, Error::Connection(ConnectionError::HandshakeTimeout)),
        "{e:?}"
    );
    assert!(start.elapsed() >= Duration::from_secs(2) && start.elapsed() < Duration::from_secs(3));
}

/// Our close frame is never answered: the stream ends at the close timeout.
#[tokio::test(start_paused = true)]
async fn an_unanswered_close_times_out() {
    let cfg = Config::default().close_timeout(Duration::from_secs(3));
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(ws_tokio::accept(a));
    let mut ws = ws_tokio::client(b, &ClientRequest::new("example.com", "/"), cfg)
        .await
        .unwrap();
    // The server side exists but is never polled again.
    let _silent = server.await.unwrap().unwrap();
    let start = Instant::now();
    ws.close_with(ws_tokio::CloseCode::NORMAL, "bye")
        .await
        .unwrap();
    let end = ws.next().await;
    assert!(
        matches!(
            end,
            Some(Err(Error::Connection(ConnectionError::CloseTimeout)))
        ),
        "{end:?}"
    );
    assert!(ws.next().await.is_none());
    assert!(start.elapsed() >= Duration::from_secs(3) && start.elapsed() < Duration::from_secs(4));
    assert!(!ws.close_info().unwrap().clean);
}

/// Over real loopback TCP: a ping's round trip shows up as the latency.
#[tokio::test(flavor = "current_thread")]
async fn ping_gives_a_latency() {
    let addr = echo_server(Config::default()).await;
    let mut ws = connect(addr, Config::default()).await;
    assert!(ws.with_connection(|c| c.latency()).is_none());
    ws.ping(&b"are you there"[..]).await.unwrap();
    // The pong precedes the echo of a message sent after the ping.
    ws.send(ws_tokio::text("after the ping")).await.unwrap();
    let echo = bounded("echo", ws.next()).await.unwrap().unwrap();
    assert_eq!(echo.as_text(), Some("after the ping"));
    let rtt = ws.with_connection(|c| c.latency()).unwrap();
    assert!(rtt < Duration::from_secs(5), "{rtt:?}");
    // Too long a ping is local misuse.
    let long = vec![0u8; 126];
    assert!(matches!(
        ws.ping(long).await,
        Err(Error::Command(ws_proto::Error::ControlPayloadTooLong(126)))
    ));
}

/// A peer that floods messages and never answers our close: the close timeout still fires
/// (deadlines are checked on every drive, not only when the socket has nothing to read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_close_timeout_fires_under_a_flood() {
    use tokio::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = Config::default().close_timeout(Duration::from_millis(300));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = ws_tokio::accept_with(tcp, cfg, |_| Decision::accept())
            .await
            .unwrap();
        // Wait for the flood to start, then close.
        ws.next().await.unwrap().unwrap();
        ws.close_with(ws_tokio::CloseCode::NORMAL, "enough")
            .await
            .unwrap();
        let start = Instant::now();
        let mut last = None;
        // Bounded: the peer writes at most 200,000 chunks.
        while let Some(r) = ws.next().await {
            last = Some(r.map(|_| ()));
        }
        (start.elapsed(), last, ws.close_info().unwrap())
    });
    let mut peer = TcpStream::connect(addr).await.unwrap();
    peer.write_all(REQUEST).await.unwrap();
    read_head(&mut peer).await;
    // Masked binary frames of 4 bytes, 8,192 of them per write.
    let frame = [
        0x82u8,
        0x84,
        1,
        2,
        3,
        4,
        b'a' ^ 1,
        b'b' ^ 2,
        b'c' ^ 3,
        b'd' ^ 4,
    ];
    let chunk: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * 8192)
        .collect();
    let flood = tokio::spawn(async move {
        for _ in 0..200_000 {
            if peer.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let (waited, last, closed) = bounded("server", server).await.unwrap();
    assert!(
        matches!(
            last,
            Some(Err(Error::Connection(ConnectionError::CloseTimeout)))
        ),
        "{last:?}"
    );
    assert!(!closed.clean);
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    flood.abort();
}

/// Over real TCP, with the server woken once per large frame
/// (`wake_on_whole_frames`): a 600 KB frame sent in 50 KB pieces 300 ms apart (3.6 s, past
/// the 1.5 s idle timeout; every piece far below the rest of the frame, so the kernel reports
/// none of them) is echoed, not failed as silence: the timers read what arrived first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_frame_trickling_in_is_not_taken_for_silence() {
    use ws_testkit::attacker::wire;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let idle = Duration::from_millis(1500);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let cfg = Config::default().idle_timeout(Some(idle));
        let mut ws = ws_tokio::accept_with(tcp, cfg, |_| Decision::accept())
            .await
            .unwrap();
        ws.wake_on_whole_frames();
        let m = ws.next().await.unwrap().unwrap();
        ws.send(m).await.unwrap();
    });
    let payload: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    let expected = payload.clone();
    let client = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut s = wire::upgrade(addr, "/slow", "");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let frame = wire::frame(wire::FIN | 0x2, true, &payload);
        let started = std::time::Instant::now();
        for piece in frame.chunks(50_000) {
            s.write_all(piece).unwrap();
            // The sender's pace (the scenario), not a wait for the server.
            std::thread::sleep(Duration::from_millis(300));
        }
        assert!(started.elapsed() > idle * 2);
        wire::read_frame(&mut s).expect("the echo")
    });
    let echo = bounded("the echo", client).await.unwrap();
    assert_eq!(echo.opcode(), 0x2);
    assert!(echo.payload == expected, "echo differs");
    bounded("the server", server).await.unwrap();
}
