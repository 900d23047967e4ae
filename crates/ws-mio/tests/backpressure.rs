//! Backpressure and fairness over loopback: a reader that stops reading, a
//! buffer pool over budget, a peer that floods.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use common::*;
use ws_buf::{BufferPool, PoolConfig};
use ws_mio::{ConnId, ConnectOptions, Ctx, Decision, Handler, LoopGroup, Options};
use ws_proto::{Bytes, Config, Limits, Message, OpenInfo, UpgradeRequest};

/// What the flooding server reports.
#[derive(Debug)]
enum Flood {
    Backpressure { sent: usize, buffered: usize },
    Drain,
    Done { sent: usize },
}

/// Floods connections that asked for `/slow` (refilling on every drain
/// until `cap` bytes were queued) and echoes the others.
struct Flooder {
    tx: Sender<Flood>,
    slow: Vec<ConnId>,
    sent: usize,
    cap: usize,
    chunk: Bytes,
}

impl Flooder {
    fn new(tx: Sender<Flood>, cap: usize) -> Flooder {
        Flooder::with_chunk(tx, cap, 256 << 10)
    }

    /// Floods with messages of `chunk` bytes.
    fn with_chunk(tx: Sender<Flood>, cap: usize, chunk: usize) -> Flooder {
        Flooder {
            tx,
            slow: Vec::new(),
            sent: 0,
            cap,
            chunk: Bytes::from(vec![0xabu8; chunk]),
        }
    }

    fn fill(&mut self, ctx: &mut Ctx<'_>, id: ConnId) {
        // Bounded: at most cap / chunk sends.
        while self.sent < self.cap {
            match ctx.send_binary(id, self.chunk.clone()) {
                Ok(()) => self.sent += self.chunk.len(),
                Err(e) => {
                    assert!(e.is_backpressure(), "{e}");
                    return;
                }
            }
        }
        let _ = self.tx.send(Flood::Done { sent: self.sent });
    }
}

impl Handler for Flooder {
    fn on_upgrade(&mut self, _: &mut Ctx<'_>, id: ConnId, req: &UpgradeRequest) -> Decision {
        if req.path == "/slow" {
            self.slow.push(id);
        }
        Decision::accept()
    }
    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &OpenInfo) {
        if self.slow.contains(&id) {
            self.fill(ctx, id);
        }
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        if !self.slow.contains(&id) {
            ctx.send(id, m.kind, m.data).unwrap();
        }
    }
    fn on_backpressure(&mut self, ctx: &mut Ctx<'_>, id: ConnId, buffered: usize) {
        let limit = ctx.connection(id).map(|c| c.buffered_amount()).unwrap_or(0);
        assert!(limit <= 1 << 20);
        let _ = self.tx.send(Flood::Backpressure {
            sent: self.sent,
            buffered,
        });
    }
    fn on_drain(&mut self, ctx: &mut Ctx<'_>, id: ConnId) {
        let _ = self.tx.send(Flood::Drain);
        self.fill(ctx, id);
    }
}

fn flood_config() -> Config {
    Config::default().limits(Limits::default().max_send_queue(1 << 20))
}

/// Reads and discards from `s` until `total` bytes were read (or EOF).
fn drain_socket(mut s: std::net::TcpStream, total: usize) -> usize {
    let mut buf = vec![0u8; 256 << 10];
    let mut got = 0;
    let deadline = Instant::now() + WAIT;
    while got < total && Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

#[test]
fn slow_reader_hits_backpressure_and_memory_stays_bounded() {
    let (tx, rx) = mpsc::channel();
    let cap = 64 << 20;
    let server = LoopGroup::builder()
        .loops(1)
        .options(Options::default().config(flood_config()))
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn(move |_| Flooder::new(tx.clone(), cap))
        .unwrap();
    let raw = raw_client(server.local_addr().unwrap(), "/slow");

    // The server fills the socket and the queue, then is refused.
    let mut last = None;
    let deadline = Instant::now() + WAIT;
    // Settle: no more progress for 300 ms means the kernel buffers are full.
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(300)) {
            Ok(Flood::Backpressure { sent, buffered }) => last = Some((sent, buffered)),
            Ok(Flood::Drain) => {}
            Ok(Flood::Done { sent }) => panic!("the kernel took all {sent} bytes"),
            Err(_) if last.is_some() => break,
            Err(_) => {}
        }
    }
    let (sent, buffered) = last.expect("no backpressure reported");
    assert!(buffered <= 1 << 20, "{buffered}");
    let h = server.handle().clone();
    let (queued, pool) = on_loop(&h, 0, |ctx| {
        let id = ctx.connection_ids()[0];
        (ctx.buffered_amount(id).unwrap(), ctx.pool().stats())
    });
    eprintln!(
        "slow reader: {sent} bytes queued in total before the stall; core queue {queued} B; pool outstanding {} B",
        pool.outstanding_bytes
    );
    // Bounded: the core's queue is at its limit, and the driver keeps at
    // most one unwritten remainder (one 64 KiB class segment).
    assert!(queued <= 1 << 20, "{queued}");
    assert!(pool.outstanding_bytes <= 64 << 10, "{pool:?}");
    assert!(sent < cap, "{sent}");

    // Reading again lets the queue drain: the application hears about it.
    let reader = std::thread::spawn(move || drain_socket(raw, 8 << 20));
    let drained = (0..1000).any(|_| matches!(rx.recv_timeout(WAIT), Ok(Flood::Drain)));
    assert!(drained, "no on_drain after the reader resumed");
    assert!(reader.join().unwrap() >= 8 << 20);
}

#[test]
fn reading_pauses_while_the_pool_is_over_budget() {
    // A pool that fits one 16 KiB read and nothing else: while a slow
    // reader's unwritten remainder holds a segment, no read can happen.
    // (Small messages: the remainder of large payloads, which go out
    // without a copy, stays in the message's own bytes, not in the pool.)
    let pool = BufferPool::new(PoolConfig::default().with_max_outstanding_bytes(16 << 10));
    let options = Options::default()
        .config(flood_config())
        .pool(pool)
        .read_size(16 << 10);
    let (tx, rx) = mpsc::channel();
    let cap = 24 << 20;
    let server = LoopGroup::builder()
        .loops(1)
        .options(options)
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn(move |_| Flooder::with_chunk(tx.clone(), cap, ws_proto::VECTORED_MIN / 2))
        .unwrap();
    let addr = server.local_addr().unwrap();

    // An ordinary client, open before the flood starts.
    let (client, crx) = client();
    let ch = client.handle().clone();
    let id = connect(&ch, &format!("ws://{addr}/"), ConnectOptions::default());
    wait_open(&crx, id);
    ch.send_text(id, "before").unwrap();
    assert_eq!(wait_msg(&crx, id).as_text(), Some("before"));

    // The slow reader stalls the server's writes; its remainder holds the
    // pool's whole budget.
    let raw = raw_client(addr, "/slow");
    let deadline = Instant::now() + WAIT;
    loop {
        match rx.recv_timeout(Duration::from_millis(300)) {
            Ok(Flood::Backpressure { .. }) => break,
            Ok(Flood::Done { sent }) => panic!("the kernel took all {sent} bytes"),
            _ => assert!(Instant::now() < deadline, "no backpressure"),
        }
    }
    // Wait for the pool to be over budget: no read buffer to be had.
    let h = server.handle().clone();
    wait_until("the pool to refuse a read buffer", || {
        on_loop(&h, 0, |ctx| ctx.pool().try_get(16 << 10).is_none())
    });
    let pauses_before = on_loop(&h, 0, |ctx| ctx.loop_stats().read_pauses);

    // The ordinary client's message is not read while the pool is full: the
    // loop tries, pauses that connection's reading, and echoes nothing.
    ch.send_text(id, "during").unwrap();
    wait_until("reading to pause", || {
        on_loop(&h, 0, |ctx| ctx.loop_stats().read_pauses) > pauses_before
    });
    let early = crx.try_recv();
    assert!(
        !matches!(early, Ok((_, Ev::Msg(..)))),
        "echoed while the pool was over budget: {early:?}"
    );
    let outstanding = on_loop(&h, 0, |ctx| ctx.pool().outstanding_bytes());
    assert!(outstanding <= 64 << 10, "{outstanding}");

    // Once the slow reader reads everything, buffers come back and reading
    // resumes: the echo arrives.
    let reader = std::thread::spawn(move || drain_socket(raw, cap));
    assert_eq!(wait_msg(&crx, id).as_text(), Some("during"));
    drop(reader);
}

#[test]
fn a_flooding_peer_does_not_starve_the_others() {
    /// Echoes everything except what arrives on `/flood`.
    struct Quiet {
        flood: Vec<ConnId>,
    }
    impl Handler for Quiet {
        fn on_upgrade(&mut self, _: &mut Ctx<'_>, id: ConnId, req: &UpgradeRequest) -> Decision {
            if req.path == "/flood" {
                self.flood.push(id);
            }
            Decision::accept()
        }
        fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
            if !self.flood.contains(&id) {
                ctx.send(id, m.kind, m.data).unwrap();
            }
        }
    }
    let server = LoopGroup::builder()
        .loops(1)
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn(|_| Quiet { flood: Vec::new() })
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (client, crx) = client();
    let ch = client.handle().clone();
    let id = connect(&ch, &format!("ws://{addr}/"), ConnectOptions::default());
    wait_open(&crx, id);

    // 256 MiB of 1 MiB frames as fast as the socket takes them.
    let mut raw = raw_client(addr, "/flood");
    let frame = client_frame(0x2, &vec![0x5a; 1 << 20], true);
    let (done_tx, done_rx) = mpsc::channel();
    let flooder = std::thread::spawn(move || {
        for _ in 0..256 {
            if raw.write_all(&frame).is_err() {
                break;
            }
        }
        let _ = done_tx.send(());
    });
    // Round trips on the other connection keep completing meanwhile: once
    // the server is busy reading the flood (a few MiB in), time them.
    let sh = server.handle().clone();
    wait_until("the flood to reach the server", || {
        on_loop(&sh, 0, |ctx| ctx.loop_stats().bytes_read) >= 4 << 20
    });
    let mut worst = Duration::ZERO;
    let mut during = 0;
    for i in 0..20 {
        let t = Instant::now();
        ch.send_text(id, &format!("rt {i}")).unwrap();
        assert_eq!(
            wait_msg(&crx, id).as_text(),
            Some(format!("rt {i}").as_str())
        );
        worst = worst.max(t.elapsed());
        if done_rx.try_recv().is_err() {
            during += 1;
        }
    }
    eprintln!("worst round trip during the flood: {worst:?} ({during}/20 while flooding)");
    assert!(worst < Duration::from_secs(1), "{worst:?}");
    assert!(during > 0, "the flood finished before any round trip");
    flooder.join().unwrap();
}
