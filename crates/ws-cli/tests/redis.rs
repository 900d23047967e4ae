//! `wsx serve --broadcast --redis`: rooms spanning three `wsx` processes
//! over a real `redis-server` on 127.0.0.1 (started here on a free port,
//! stopped by PID). Every client of a room on every process gets every
//! message of the others once, in order per publisher, never its own;
//! rooms are separate; a Redis restart mid-way: local delivery goes on,
//! the loss is logged, delivery resumes; garbage on the channel is counted
//! and dropped. Needs `redis-server` (Debian package; scripts/test.sh
//! installs it): without it every test here fails, saying so.
//!
//! Every wait is on an event (a message, a log line, a process exit),
//! bounded in time; the only repeated send is the sync round (a message
//! every 100 ms until every member has one: proof that every server
//! registered its members and is subscribed).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use common::WSX;
use ws_proto::MessageKind;
use ws_std::{Received, WsWriter};

/// Longest any one wait of these tests may take.
const LIMIT: Duration = Duration::from_secs(60);

/// A `redis-server` of ours on 127.0.0.1, killed (by PID) on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    /// Starts `redis-server` on `port` (0: a free one) and waits for it to
    /// accept connections.
    fn start(port: u16) -> Redis {
        let port = if port == 0 { free_port() } else { port };
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot run redis-server ({e}): install redis-server (Debian package; scripts/test.sh installs it)"
            ),
        };
        let lines = lines_of(child.stdout.take().unwrap());
        let ready = wait_line(&lines, LIMIT, |l| l.contains("Ready to accept connections"));
        if ready.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redis-server on port {port} not ready within {LIMIT:?}");
        }
        Redis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL, by PID) and waits for it to be gone.
    fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The lines of `r`, read on a thread of their own.
fn lines_of(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (bounded) for a line matching `pred`.
fn wait_line(
    lines: &Receiver<String>,
    limit: Duration,
    pred: impl Fn(&str) -> bool,
) -> Option<String> {
    let end = Instant::now() + limit;
    loop {
        let left = end.checked_duration_since(Instant::now())?;
        match lines.recv_timeout(left) {
            Ok(l) if pred(&l) => return Some(l),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// A `wsx serve --broadcast --redis URL ARGS` (tokio driver unless ARGS
/// say `--driver mio`), killed on drop; its log lines (stderr) on a
/// channel.
struct Wsx {
    child: Child,
    url: String,
    log: Receiver<String>,
    /// Every log line read so far.
    seen: Vec<String>,
}

impl Wsx {
    fn start(redis: &str, args: &[&str]) -> Wsx {
        let mut child = Command::new(WSX)
            .args(["serve", "127.0.0.1:0", "--broadcast", "--redis", redis])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = lines_of(child.stdout.take().unwrap());
        let log = lines_of(child.stderr.take().unwrap());
        let Some(line) = wait_line(&out, Duration::from_secs(20), |l| {
            l.starts_with("wsx: listening on ")
        }) else {
            let _ = child.kill();
            let _ = child.wait();
            let log: Vec<String> = log.try_iter().collect();
            panic!("wsx serve --redis {redis} did not listen within 20 s: {log:?}");
        };
        let url = line
            .trim()
            .strip_prefix("wsx: listening on ")
            .unwrap()
            .to_string();
        Wsx {
            child,
            url,
            log,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a log line containing `text`.
    fn wait_log(&mut self, text: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(text)) {
            return l.clone();
        }
        let end = Instant::now() + LIMIT;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(text) {
                        return l;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no log line with {text:?} within {LIMIT:?}; log: {:?}",
            self.seen
        );
    }

    /// Still running, and logged no panic.
    fn assert_healthy(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "wsx exited");
        self.seen.extend(self.log.try_iter());
        assert!(
            !self.seen.iter().any(|l| l.contains("panicked")),
            "{:?}",
            self.seen
        );
    }
}

impl Drop for Wsx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client: its writer here, its reader on a thread sending
/// (client index, text) to the test's channel.
struct Client {
    idx: usize,
    w: WsWriter,
}

fn client(url: &str, idx: usize, events: &Sender<(usize, String)>) -> Client {
    let ws = ws_std::connect(url, &ws_std::ClientOptions::default()).unwrap();
    let (mut r, w) = ws.split();
    let events = events.clone();
    std::thread::spawn(move || loop {
        match r.recv() {
            Ok(Received::Message(m)) if m.kind == MessageKind::Text => {
                let text = String::from_utf8_lossy(&m.data).into_owned();
                if events.send((idx, text)).is_err() {
                    break;
                }
            }
            Ok(Received::Closed(_)) | Err(_) => break,
            Ok(_) => {}
        }
    });
    Client { idx, w }
}

/// Everything a test saw: per client, the data messages in arrival order.
#[derive(Default)]
struct Seen {
    data: HashMap<usize, Vec<String>>,
    synced: HashMap<usize, bool>,
}

impl Seen {
    fn note(&mut self, (idx, text): (usize, String)) {
        if text.starts_with('S') {
            self.synced.insert(idx, true);
        } else {
            self.data.entry(idx).or_default().push(text);
        }
    }
}

/// The sync round: `from` sends a sync message every 100 ms until every
/// one of `members` has received one (each server then has its members in
/// the room and its subscription up, and `from`'s server publishes).
fn sync(from: &Client, members: &[usize], events: &Receiver<(usize, String)>, seen: &mut Seen) {
    for i in members {
        seen.synced.remove(i);
    }
    let end = Instant::now() + LIMIT;
    for round in 0u64.. {
        assert!(
            Instant::now() < end,
            "sync from client {} not done within {LIMIT:?}",
            from.idx
        );
        if members.iter().all(|i| seen.synced.get(i) == Some(&true)) {
            return;
        }
        from.w.send_text(&format!("S{round}")).unwrap();
        let tick = Instant::now() + Duration::from_millis(100);
        while let Some(left) = tick.checked_duration_since(Instant::now()) {
            match events.recv_timeout(left) {
                Ok(ev) => seen.note(ev),
                Err(_) => break,
            }
        }
    }
}

/// Waits (bounded) until each client of `want` has `n` data messages.
fn collect(want: &[usize], n: usize, events: &Receiver<(usize, String)>, seen: &mut Seen) {
    let end = Instant::now() + LIMIT;
    while !want
        .iter()
        .all(|i| seen.data.get(i).map_or(0, Vec::len) >= n)
    {
        let Some(left) = end.checked_duration_since(Instant::now()) else {
            let got: Vec<(usize, usize)> = want
                .iter()
                .map(|i| (*i, seen.data.get(i).map_or(0, Vec::len)))
                .collect();
            panic!("not every client got {n} messages within {LIMIT:?}: {got:?}");
        };
        if let Ok(ev) = events.recv_timeout(left) {
            seen.note(ev);
        }
    }
}

/// Client `to` got exactly messages `0..k` of every sender in `senders`
/// (`tag`), each once, in order per sender, and none of its own.
fn check_exactly_once(seen: &Seen, to: usize, tag: &str, senders: &[usize], k: usize) {
    let mut per: HashMap<usize, Vec<usize>> = HashMap::new();
    for m in seen.data.get(&to).map_or(&[][..], Vec::as_slice) {
        let mut parts = m.split(' ');
        if parts.next() != Some(tag) {
            continue;
        }
        let from: usize = parts.next().unwrap().parse().unwrap();
        let i: usize = parts.next().unwrap().parse().unwrap();
        assert_ne!(from, to, "client {to} got its own message {m:?}");
        per.entry(from).or_default().push(i);
    }
    for s in senders.iter().filter(|s| **s != to) {
        let got = per.remove(s).unwrap_or_default();
        let want: Vec<usize> = (0..k).collect();
        assert_eq!(got, want, "client {to}: messages {tag} of client {s}");
    }
    assert!(
        per.is_empty(),
        "client {to}: {tag} messages of unexpected senders {per:?}"
    );
}

#[test]
fn three_processes_every_member_once_in_order_rooms_apart() {
    let redis = Redis::start(0);
    // tokio, mio with two event loops (members of a room on both), tokio.
    let mut servers: Vec<Wsx> = [&[][..], &["--driver", "mio", "--threads", "2"], &[]]
        .iter()
        .map(|args| Wsx::start(&redis.url(), args))
        .collect();
    let (tx, events) = channel();
    // Room /a: two clients per process (0..6); room /b: one per process (6..9).
    let mut a = Vec::new();
    let mut b = Vec::new();
    for (s, srv) in servers.iter().enumerate() {
        for j in 0..2 {
            a.push(client(&format!("{}/a", srv.url), s * 2 + j, &tx));
        }
        b.push(client(&format!("{}/b?x=1", srv.url), 6 + s, &tx));
    }
    let a_ids: Vec<usize> = a.iter().map(|c| c.idx).collect();
    let b_ids: Vec<usize> = b.iter().map(|c| c.idx).collect();
    let mut seen = Seen::default();
    for c in &a {
        let others: Vec<usize> = a_ids.iter().copied().filter(|i| *i != c.idx).collect();
        sync(c, &others, &events, &mut seen);
    }
    for c in &b {
        let others: Vec<usize> = b_ids.iter().copied().filter(|i| *i != c.idx).collect();
        sync(c, &others, &events, &mut seen);
    }
    // Every /a client publishes K messages, interleaved.
    const K: usize = 40;
    for i in 0..K {
        for c in &a {
            c.w.send_text(&format!("A {} {i}", c.idx)).unwrap();
        }
    }
    collect(&a_ids, K * (a.len() - 1), &events, &mut seen);
    for to in &a_ids {
        check_exactly_once(&seen, *to, "A", &a_ids, K);
    }
    // Room /b heard nothing of /a; now its own messages, only there.
    for c in &b {
        c.w.send_text(&format!("B {} 0", c.idx)).unwrap();
    }
    collect(&b_ids, b.len() - 1, &events, &mut seen);
    // Whatever else arrived by now is checked too (nothing of /a in /b).
    for ev in events.try_iter() {
        seen.note(ev);
    }
    for to in &b_ids {
        check_exactly_once(&seen, *to, "B", &b_ids, 1);
    }
    for to in &a_ids {
        check_exactly_once(&seen, *to, "A", &a_ids, K);
    }
    for s in &mut servers {
        s.assert_healthy();
    }
}

#[test]
fn redis_restart_mid_way_delivery_resumes_loss_logged() {
    let redis = Redis::start(0);
    let url = redis.url();
    // Process 0 (two local clients, perhaps on two loops) is mio.
    let mut servers: Vec<Wsx> = [&["--driver", "mio", "--threads", "2"][..], &[], &[]]
        .iter()
        .map(|args| Wsx::start(&url, args))
        .collect();
    let (tx, events) = channel();
    // Clients 0 and 1 on process 0, 2 on process 1, 3 on process 2; room /r.
    let c: Vec<Client> = [0usize, 0, 1, 2]
        .iter()
        .enumerate()
        .map(|(i, s)| client(&format!("{}/r", servers[*s].url), i, &tx))
        .collect();
    let all: Vec<usize> = (0..c.len()).collect();
    let mut seen = Seen::default();
    for from in [&c[0], &c[2]] {
        let others: Vec<usize> = all.iter().copied().filter(|i| *i != from.idx).collect();
        sync(from, &others, &events, &mut seen);
    }
    const K: usize = 20;
    for i in 0..K {
        c[2].w.send_text(&format!("P {} {i}", 2)).unwrap();
    }
    collect(&[0, 1, 3], K, &events, &mut seen);
    for to in [0, 1, 3] {
        check_exactly_once(&seen, to, "P", &[2], K);
    }

    // Redis goes away: local delivery on process 0 goes on, the loss of
    // what process 0 could not publish is logged.
    let port = redis.kill();
    for s in &mut servers {
        s.wait_log("redis: subscription lost");
    }
    for i in 0..K {
        c[0].w.send_text(&format!("L 0 {i}")).unwrap();
    }
    collect(&[1], K * 2, &events, &mut seen);
    let line = servers[0].wait_log("not published");
    assert!(line.contains("not published in all"), "{line}");

    // Redis is back on the same port: every server subscribes again, and
    // messages flow again, once each, in order.
    let _redis = Redis::start(port);
    for s in &mut servers {
        s.wait_log("redis: subscription back");
    }
    for from in [&c[0], &c[2], &c[3]] {
        let others: Vec<usize> = all.iter().copied().filter(|i| *i != from.idx).collect();
        sync(from, &others, &events, &mut seen);
    }
    for i in 0..K {
        c[3].w.send_text(&format!("Q 3 {i}")).unwrap();
        c[0].w.send_text(&format!("R 0 {i}")).unwrap();
    }
    // 1: P, L, Q, R; 0: P, Q; 2: Q, R; 3: P, R.
    collect(&[1], K * 4, &events, &mut seen);
    collect(&[0, 2, 3], K * 2, &events, &mut seen);
    check_exactly_once(&seen, 1, "L", &[0], K);
    for to in [0, 1, 2] {
        check_exactly_once(&seen, to, "Q", &[3], K);
    }
    for to in [1, 2, 3] {
        check_exactly_once(&seen, to, "R", &[0], K);
    }
    for s in &mut servers {
        s.assert_healthy();
    }
}

/// Publishes `payload` on `channel` over a raw RESP connection (what
/// `redis-cli PUBLISH` does, with any bytes).
fn raw_publish(port: u16, channel: &[u8], payload: &[u8]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut cmd = b"*3\r\n$7\r\nPUBLISH\r\n".to_vec();
    for part in [channel, payload] {
        cmd.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        cmd.extend_from_slice(part);
        cmd.extend_from_slice(b"\r\n");
    }
    s.write_all(&cmd).unwrap();
    // The reply (":N" subscribers) says Redis has handed it on.
    let mut line = String::new();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    BufReader::new(s).read_line(&mut line).unwrap();
    assert!(line.starts_with(':'), "{line:?}");
}

#[test]
fn garbage_on_the_channel_is_counted_and_dropped() {
    let redis = Redis::start(0);
    let mut srv = Wsx::start(&redis.url(), &[]);
    let (tx, events) = channel();
    let c = client(&format!("{}/h", srv.url), 0, &tx);
    let mut seen = Seen::default();
    let good = |text: &str| ws_redis::wire::encode(99, 1, 1, MessageKind::Text, text.as_bytes());
    let mut bad_kind = good("x");
    bad_kind[28] = 7;
    let hostile: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"wsx:room:/h".to_vec(), b"garbage".to_vec()),
        (b"wsx:room:/h".to_vec(), Vec::new()),
        (b"wsx:room:/h".to_vec(), bad_kind),
        (
            b"wsx:room:/h".to_vec(),
            ws_redis::wire::encode(99, 1, 2, MessageKind::Text, &[0xff, 0xc0]),
        ),
        (b"wsx:room:\xff\xfe".to_vec(), good("bad room")),
        (b"wsx:room:/h".to_vec(), vec![0u8; 100_000]),
    ];
    // Until the server's subscription and the member are both in place:
    // a valid envelope from a made-up server, sent until it arrives.
    let end = Instant::now() + LIMIT;
    while !seen.data.contains_key(&0) {
        assert!(
            Instant::now() < end,
            "no valid envelope delivered within {LIMIT:?}"
        );
        raw_publish(redis.port, b"wsx:room:/h", &good("ready"));
        if let Ok(ev) = events.recv_timeout(Duration::from_millis(100)) {
            seen.note(ev);
        }
    }
    for (ch, p) in &hostile {
        raw_publish(redis.port, ch, p);
    }
    // Redis delivers one publisher's messages in order: once this one is
    // here, every hostile one before it was handled.
    raw_publish(
        redis.port,
        b"wsx:room:/h",
        &ws_redis::wire::encode(99, 1, 3, MessageKind::Text, b"after"),
    );
    let end = Instant::now() + LIMIT;
    while !seen
        .data
        .get(&0)
        .is_some_and(|v| v.iter().any(|m| m == "after"))
    {
        let left = end
            .checked_duration_since(Instant::now())
            .expect("\"after\" not delivered in time");
        if let Ok(ev) = events.recv_timeout(left) {
            seen.note(ev);
        }
    }
    let got = &seen.data[&0];
    assert!(got.iter().all(|m| m == "ready" || m == "after"), "{got:?}");
    let line = srv.wait_log("malformed message");
    assert!(line.contains("dropped"), "{line}");
    srv.assert_healthy();
    drop(c);
}

/// `wsx serve 127.0.0.1:0 ARGS` until it exits (bounded): (code, stdout, stderr).
fn serve_exit(args: &[&str]) -> (i32, String, String) {
    let child = Command::new(WSX)
        .args(["serve", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait(child, LIMIT)
}

#[test]
fn redis_unreachable_at_start_is_exit_1_and_std_refuses_redis() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    for driver in ["tokio", "mio"] {
        let (code, out, err) = serve_exit(&["--broadcast", "--driver", driver, "--redis", &url]);
        assert_eq!(code, 1, "{driver}: {err}");
        assert!(err.contains("cannot reach Redis"), "{driver}: {err}");
        assert!(!out.contains("listening"), "{driver}: {out}");
    }
    let (code, _, err) = serve_exit(&["--broadcast", "--driver", "std", "--redis", &url]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--redis needs --driver tokio or mio"), "{err}");
    // --redis without --broadcast: a usage error.
    let (code, _, err) = serve_exit(&["--redis", &url]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--broadcast"), "{err}");
}
