//! A client driving many connections on a few event loops: opens them (a
//! bounded number in flight per loop, spread over several source
//! addresses), holds them idle, sends one message on every connection and
//! checks every echo, then closes them all.
//!
//! ```text
//! cargo run --release -p ws-mio --example load_client -- ws://127.0.0.1:9001/ \
//!     [--connections N] [--loops L] [--window W] [--sources 127.0.0.2-127.0.0.9] \
//!     [--hold SECS] [--go-file PATH] [--size BYTES]
//! ```
//!
//! With `--go-file`, the echo phase starts only once that file exists (so
//! several client processes can start it together).
//!
//! It prints machine-readable lines: `OPEN`, `HOLD`, `ECHO`, `DONE`.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ws_mio::{ConnId, ConnectOptions, Ctx, Handler, LoopGroup, Options};
use ws_proto::{Closed, Message, OpenInfo};

/// Counters shared by all loops and the main thread.
#[derive(Default)]
struct Shared {
    opened: AtomicUsize,
    failed: AtomicUsize,
    echoed: AtomicUsize,
    wrong: AtomicUsize,
    closed: AtomicUsize,
}

/// Settings of one run.
struct Plan {
    url: String,
    addr: SocketAddr,
    per_loop: Vec<usize>,
    window: usize,
    sources: Vec<IpAddr>,
    size: usize,
}

/// One loop's share of the connections.
struct Load {
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    index: usize,
    started: usize,
    in_flight: usize,
    open: HashSet<ConnId>,
}

impl Load {
    /// Opens connections until `window` are in flight or all were started.
    fn fill(&mut self, ctx: &mut Ctx<'_>) {
        let target = self.plan.per_loop.get(self.index).copied().unwrap_or(0);
        while self.in_flight < self.plan.window && self.started < target {
            let n = self.started * self.plan.per_loop.len() + self.index;
            let mut opts = ConnectOptions::default().addr(self.plan.addr);
            if let Some(ip) = self.plan.sources.get(n % self.plan.sources.len().max(1)) {
                opts = opts.bind(*ip);
            }
            self.started += 1;
            match ctx.connect(&self.plan.url, opts) {
                Ok(_) => self.in_flight += 1,
                Err(e) => {
                    eprintln!("connect failed: {e}");
                    self.shared.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The message every connection sends: its id, padded to `size` bytes.
fn payload(id: ConnId, size: usize) -> String {
    let mut s = format!("{:020}", id.as_u64());
    while s.len() < size {
        s.push('.');
    }
    s
}

impl Handler for Load {
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        self.fill(ctx);
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &OpenInfo) {
        self.in_flight -= 1;
        self.open.insert(id);
        self.shared.opened.fetch_add(1, Ordering::Relaxed);
        self.fill(ctx);
    }

    fn on_message(&mut self, _: &mut Ctx<'_>, id: ConnId, m: Message) {
        let ok = m.as_text() == Some(payload(id, self.plan.size).as_str());
        let counter = if ok {
            &self.shared.echoed
        } else {
            &self.shared.wrong
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, id: ConnId, c: &Closed) {
        if self.open.remove(&id) {
            self.shared.closed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.in_flight -= 1;
            let n = self.shared.failed.fetch_add(1, Ordering::Relaxed);
            if n < 10 {
                eprintln!("connection failed: {:?}", c.error);
            }
            self.fill(ctx);
        }
    }
}

/// Parses `a.b.c.d-a.b.c.e` or a comma list into addresses.
fn parse_sources(s: &str) -> Result<Vec<IpAddr>, Box<dyn std::error::Error>> {
    if let Some((a, b)) = s.split_once('-') {
        let (a, b): (Ipv4Addr, Ipv4Addr) = (a.parse()?, b.parse()?);
        let (a, b) = (u32::from(a), u32::from(b));
        return Ok((a..=b).map(|v| IpAddr::V4(Ipv4Addr::from(v))).collect());
    }
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| Ok(x.parse()?))
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: load_client URL [--connections N] ...")?;
    let mut connections = 1000usize;
    let mut loops = 2usize;
    let mut window = 512usize;
    let mut sources = Vec::new();
    let mut hold = Duration::from_secs(0);
    let mut size = 32usize;
    let mut go_file: Option<std::path::PathBuf> = None;
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--connections" => connections = value()?.parse()?,
            "--loops" => loops = value()?.parse::<usize>()?.max(1),
            "--window" => window = value()?.parse::<usize>()?.max(1),
            "--sources" => sources = parse_sources(&value()?)?,
            "--hold" => hold = Duration::from_secs_f64(value()?.parse()?),
            "--size" => size = value()?.parse()?,
            "--go-file" => go_file = Some(value()?.into()),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let parsed = ws_net::url::WsUrl::parse(&url)?;
    let addr = (parsed.host(), parsed.port())
        .to_socket_addrs()?
        .next()
        .ok_or("URL does not resolve")?;
    let per_loop = (0..loops)
        .map(|i| connections / loops + usize::from(i < connections % loops))
        .collect();
    let plan = Arc::new(Plan {
        url,
        addr,
        per_loop,
        window,
        sources,
        size,
    });
    let shared = Arc::new(Shared::default());

    let start = Instant::now();
    let (p, s) = (plan.clone(), shared.clone());
    let group = LoopGroup::builder()
        .loops(loops)
        .options(Options::default().max_connections(connections + 16))
        .thread_name("load")
        .spawn(move |index| Load {
            plan: p.clone(),
            shared: s.clone(),
            index,
            started: 0,
            in_flight: 0,
            open: HashSet::new(),
        })?;

    // Phase 1: open everything.
    let deadline = start + Duration::from_secs(600);
    let mut last_report = Instant::now();
    while shared.opened.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
        < connections
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!(
                "  ... {} open, {} failed after {:.1}s",
                shared.opened.load(Ordering::Relaxed),
                shared.failed.load(Ordering::Relaxed),
                start.elapsed().as_secs_f64()
            );
        }
    }
    let opened = shared.opened.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "OPEN n={opened} failed={} secs={secs:.2} rate={:.0}/s",
        shared.failed.load(Ordering::Relaxed),
        opened as f64 / secs
    );

    // Phase 2: hold them idle (the caller measures the server meanwhile).
    println!("HOLD secs={:.1}", hold.as_secs_f64());
    std::thread::sleep(hold);
    if let Some(go) = &go_file {
        let until = Instant::now() + Duration::from_secs(900);
        while !go.exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    // Phase 3: one message on every connection; every echo is checked.
    let t0 = Instant::now();
    for i in 0..loops {
        let size = plan.size;
        group.handle().run_on(i, move |ctx| {
            for id in ctx.connection_ids() {
                if let Err(e) = ctx.send_text(id, &payload(id, size)) {
                    eprintln!("send to {id} failed: {e}");
                }
            }
        })?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while shared.echoed.load(Ordering::Relaxed) + shared.wrong.load(Ordering::Relaxed) < opened
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let echoed = shared.echoed.load(Ordering::Relaxed);
    println!(
        "ECHO ok={echoed} wrong={} of={opened} secs={:.3}",
        shared.wrong.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64()
    );

    // Phase 4: close everything (1001) and leave.
    group.shutdown(Duration::from_secs(30));
    group.join()?;
    println!(
        "DONE closed={} failed={} total_secs={:.1}",
        shared.closed.load(Ordering::Relaxed),
        shared.failed.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    if echoed == opened && opened == connections {
        Ok(())
    } else {
        Err("not every connection opened and echoed".into())
    }
}
