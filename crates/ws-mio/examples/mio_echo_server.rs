//! An echo server on N event loops (one per CPU by default).
//!
//! ```text
//! cargo run --release -p ws-mio --example mio_echo_server -- [ADDR] [LOOPS] [--for SECS] [--quiet] [--reuse-port]
//! ```
//!
//! Defaults: `127.0.0.1:9001`, one loop per CPU, run until killed. Every
//! second it prints a `stats` line (connections held, accepted so far) when
//! something changed, unless `--quiet`. `--reuse-port` lets several server
//! processes share the address (the kernel spreads connections over them).

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ws_mio::{ConnId, Ctx, Handler, LoopGroup, LoopStats, Options};
use ws_proto::Message;

/// Sends every message back as it came.
struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        if let Err(e) = ctx.send(id, m.kind, m.data) {
            eprintln!("echo to {id} refused: {e}");
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut addr: SocketAddr = "127.0.0.1:9001".parse()?;
    let mut loops = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut run_for = None;
    let mut quiet = false;
    let mut reuse_port = None;
    let mut positional = 0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--for" => {
                run_for = Some(Duration::from_secs(
                    args.next().ok_or("--for SECS")?.parse()?,
                ))
            }
            "--quiet" => quiet = true,
            "--reuse-port" => reuse_port = Some(true),
            _ if positional == 0 => {
                addr = a.parse()?;
                positional += 1;
            }
            _ => loops = a.parse()?,
        }
    }
    let mut builder = LoopGroup::builder()
        .loops(loops)
        .options(Options::default())
        .listen(addr);
    if let Some(on) = reuse_port {
        builder = builder.reuse_port(on);
    }
    let group = builder.spawn(|_| Echo)?;
    let bound = group.local_addr().ok_or("no address")?;
    println!(
        "listening on {bound} with {loops} loops (pid {})",
        std::process::id()
    );
    let start = Instant::now();
    let mut last = (usize::MAX, u64::MAX);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if run_for.is_some_and(|d| start.elapsed() >= d) {
            break;
        }
        let Some(total) = stats(&group, loops) else {
            break;
        };
        if !quiet && (total.connections, total.accepted) != last {
            last = (total.connections, total.accepted);
            println!(
                "stats t={:.1}s connections={} accepted={}",
                start.elapsed().as_secs_f64(),
                total.connections,
                total.accepted
            );
        }
    }
    group.shutdown(Duration::from_secs(5));
    group.join()?;
    Ok(())
}

/// Sums the counters of every loop.
fn stats(group: &LoopGroup, loops: usize) -> Option<LoopStats> {
    let (tx, rx) = mpsc::channel();
    for i in 0..loops {
        let tx = tx.clone();
        group
            .handle()
            .run_on(i, move |ctx| {
                let _ = tx.send(ctx.loop_stats());
            })
            .ok()?;
    }
    let mut total = LoopStats::default();
    for _ in 0..loops {
        let s = rx.recv_timeout(Duration::from_secs(5)).ok()?;
        total.connections += s.connections;
        total.accepted += s.accepted;
    }
    Some(total)
}
