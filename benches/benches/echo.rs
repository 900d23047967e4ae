//! Loopback echo through each driver: a ws-std client (blocking) sends one
//! message and waits for its echo from a ws-std server (thread per
//! connection) or a ws-mio server (one event loop). Measures the round trip
//! per message; compare the two rows of a size in the same run.
//!
//! `cargo bench -p ws-benches --bench echo`
#![allow(missing_docs, reason = "a benchmark binary")]
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    reason = "a benchmark binary"
)]

use std::net::{SocketAddr, TcpListener};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ws_mio::{ConnId, Ctx, Handler, LoopGroup, Options};
use ws_proto::{Bytes, Message, MessageKind};
use ws_std::{serve, ClientOptions, Received, ServeOptions, WebSocket};

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        let _ = ctx.send(id, m.kind, m.data);
    }
}

fn std_echo(mut ws: WebSocket) {
    while let Ok(r) = ws.recv() {
        let sent = match r {
            Received::Message(m) => ws.send(m.kind, m.data),
            Received::Closed(_) => return,
            _ => Ok(()),
        };
        if sent.is_err() {
            return;
        }
    }
}

fn bench_driver(c: &mut Criterion, name: &str, addr: SocketAddr) {
    let mut g = c.benchmark_group("echo_loopback");
    for size in [16usize, 1024, 64 << 10] {
        let url = format!("ws://{addr}/");
        let mut ws = ws_std::connect(&url, &ClientOptions::default()).unwrap();
        let payload = Bytes::from(vec![b'x'; size]);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
            b.iter(|| {
                ws.send(MessageKind::Binary, payload.clone()).unwrap();
                loop {
                    if let Received::Message(m) = ws.recv().unwrap() {
                        assert_eq!(m.data.len(), size);
                        break;
                    }
                }
            })
        });
        let _ = ws.close(ws_proto::CloseCode::NORMAL, "");
    }
    g.finish();
}

fn echo(c: &mut Criterion) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let std_server = serve(listener, ServeOptions::default(), std_echo).unwrap();
    bench_driver(c, "ws-std", std_server.local_addr());
    drop(std_server);

    let group = LoopGroup::builder()
        .loops(1)
        .options(Options::default())
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn(|_| Echo)
        .unwrap();
    bench_driver(c, "ws-mio", group.local_addr().unwrap());
    group.shutdown(std::time::Duration::from_millis(200));
    let _ = group.join();
}

criterion_group!(benches, echo);
criterion_main!(benches);
