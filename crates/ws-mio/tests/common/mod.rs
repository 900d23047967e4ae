//! Shared helpers of the loopback tests: an event recorder handler, client
//! and server groups, and a raw `std::net` peer that speaks just enough
//! WebSocket to misbehave.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use ws_mio::{ConnId, ConnectOptions, Ctx, Decision, Handle, Handler, LoopGroup, Options};
use ws_proto::{Bytes, Closed, Message, OpenInfo, UpgradeRequest};
use ws_testkit::attacker::wire;

/// How long any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// What a [`Recorder`] saw.
#[derive(Debug, Clone)]
pub enum Ev {
    Upgrade(ConnId, String),
    Open(ConnId, OpenInfo),
    Msg(ConnId, Message),
    Ping(ConnId, Bytes),
    Pong(ConnId, Bytes),
    Closed(ConnId, Closed),
    Backpressure(ConnId, usize),
    Drain(ConnId),
}

impl Ev {
    pub fn id(&self) -> ConnId {
        match self {
            Ev::Upgrade(id, _)
            | Ev::Open(id, _)
            | Ev::Msg(id, _)
            | Ev::Ping(id, _)
            | Ev::Pong(id, _)
            | Ev::Closed(id, _)
            | Ev::Backpressure(id, _)
            | Ev::Drain(id) => *id,
        }
    }
}

/// A handler that forwards every event to a channel and, when `echo` is
/// set, echoes messages back.
pub struct Recorder {
    pub tx: Sender<(usize, Ev)>,
    pub echo: bool,
}

impl Handler for Recorder {
    fn on_upgrade(&mut self, ctx: &mut Ctx<'_>, id: ConnId, req: &UpgradeRequest) -> Decision {
        let _ = self
            .tx
            .send((ctx.loop_index(), Ev::Upgrade(id, req.path.clone())));
        Decision::accept()
    }
    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, info: &OpenInfo) {
        let _ = self.tx.send((ctx.loop_index(), Ev::Open(id, info.clone())));
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        if self.echo {
            ctx.send(id, m.kind, m.data.clone()).unwrap();
        }
        let _ = self.tx.send((ctx.loop_index(), Ev::Msg(id, m)));
    }
    fn on_ping(&mut self, ctx: &mut Ctx<'_>, id: ConnId, p: &Bytes) {
        let _ = self.tx.send((ctx.loop_index(), Ev::Ping(id, p.clone())));
    }
    fn on_pong(&mut self, ctx: &mut Ctx<'_>, id: ConnId, p: &Bytes) {
        let _ = self.tx.send((ctx.loop_index(), Ev::Pong(id, p.clone())));
    }
    fn on_close(&mut self, ctx: &mut Ctx<'_>, id: ConnId, c: &Closed) {
        let _ = self.tx.send((ctx.loop_index(), Ev::Closed(id, c.clone())));
    }
    fn on_backpressure(&mut self, ctx: &mut Ctx<'_>, id: ConnId, n: usize) {
        let _ = self.tx.send((ctx.loop_index(), Ev::Backpressure(id, n)));
    }
    fn on_drain(&mut self, ctx: &mut Ctx<'_>, id: ConnId) {
        let _ = self.tx.send((ctx.loop_index(), Ev::Drain(id)));
    }
}

/// A group of `loops` loops whose handlers record (and echo when `echo`).
pub fn recording_group(
    loops: usize,
    options: Options,
    listen: bool,
    echo: bool,
) -> (LoopGroup, Receiver<(usize, Ev)>) {
    let (tx, rx) = mpsc::channel();
    let mut b = LoopGroup::builder().loops(loops).options(options);
    if listen {
        b = b.listen("127.0.0.1:0".parse().unwrap());
    }
    let g = b
        .spawn(move |_| Recorder {
            tx: tx.clone(),
            echo,
        })
        .unwrap();
    (g, rx)
}

/// An echo server group (recording its events).
pub fn echo_server(loops: usize, options: Options) -> (LoopGroup, Receiver<(usize, Ev)>) {
    recording_group(loops, options, true, true)
}

/// A client group with one loop (recording its events, not echoing).
pub fn client() -> (LoopGroup, Receiver<(usize, Ev)>) {
    recording_group(1, Options::default(), false, false)
}

/// Opens a connection on loop 0 of `handle`'s group and returns its id.
pub fn connect(handle: &Handle, url: &str, opts: ConnectOptions) -> ConnId {
    let (tx, rx) = mpsc::channel();
    let url = url.to_string();
    handle
        .run_on(0, move |ctx| {
            let _ = tx.send(ctx.connect(&url, opts));
        })
        .unwrap();
    rx.recv_timeout(WAIT).unwrap().unwrap()
}

/// Runs `f` on loop `index` and returns its result.
pub fn on_loop<R: Send + 'static>(
    handle: &Handle,
    index: usize,
    f: impl FnOnce(&mut Ctx<'_>) -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    handle
        .run_on(index, move |ctx| {
            let _ = tx.send(f(ctx));
        })
        .unwrap();
    rx.recv_timeout(WAIT).unwrap()
}

/// Waits for the first event matching `pred` (others are dropped).
pub fn wait_for<T>(
    rx: &Receiver<(usize, Ev)>,
    what: &str,
    mut pred: impl FnMut(usize, &Ev) -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((l, ev)) => {
                if let Some(t) = pred(l, &ev) {
                    return t;
                }
            }
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

/// Waits until `cond` holds (the kit's bounded poll); panics naming `what`
/// if it does not within [`WAIT`].
pub fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    assert!(
        ws_testkit::wait::wait_until(WAIT, cond),
        "timed out waiting for {what}"
    );
}

/// Waits for `Open` of `id`.
pub fn wait_open(rx: &Receiver<(usize, Ev)>, id: ConnId) -> OpenInfo {
    wait_for(rx, "open", |_, ev| match ev {
        Ev::Open(i, info) if *i == id => Some(info.clone()),
        Ev::Closed(i, c) if *i == id => panic!("closed instead of open: {c:?}"),
        _ => None,
    })
}

/// Waits for a message on `id`.
pub fn wait_msg(rx: &Receiver<(usize, Ev)>, id: ConnId) -> Message {
    wait_for(rx, "message", |_, ev| match ev {
        Ev::Msg(i, m) if *i == id => Some(m.clone()),
        Ev::Closed(i, c) if *i == id => panic!("closed instead of message: {c:?}"),
        _ => None,
    })
}

/// Waits for `Closed` of `id`.
pub fn wait_closed(rx: &Receiver<(usize, Ev)>, id: ConnId) -> Closed {
    wait_for(rx, "closed", |_, ev| match ev {
        Ev::Closed(i, c) if *i == id => Some(c.clone()),
        _ => None,
    })
}

/// Waits for the next server-side `Open` (any id).
pub fn wait_any_open(rx: &Receiver<(usize, Ev)>) -> ConnId {
    wait_for(rx, "open", |_, ev| match ev {
        Ev::Open(i, _) => Some(*i),
        _ => None,
    })
}

// ----- a raw peer ---------------------------------------------------------

/// Connects and completes the upgrade (the kit's [`wire::upgrade`]), with
/// [`WAIT`] to read and no write timeout.
pub fn raw_client(addr: SocketAddr, path: &str) -> TcpStream {
    let s = wire::upgrade(addr, path, "");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(None).unwrap();
    s
}

/// A masked client frame (the kit's [`wire::frame`]).
pub fn client_frame(opcode: u8, payload: &[u8], fin: bool) -> Vec<u8> {
    wire::frame(if fin { wire::FIN } else { 0 } | opcode, true, payload)
}

/// Reads one server frame (the kit's [`wire::read_frame`]): `(opcode,
/// payload)`, or `None` at the end of the stream.
pub fn read_frame(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    wire::read_frame(s).map(|f| (f.opcode(), f.payload))
}

/// The soft limit on open files of this process.
pub fn fd_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024)
}

/// Waits for `Open` of every id in `ids` (in any order).
pub fn wait_all_open(rx: &Receiver<(usize, Ev)>, ids: &[ConnId]) {
    let mut left: std::collections::HashSet<ConnId> = ids.iter().copied().collect();
    while !left.is_empty() {
        let id = wait_for(rx, "opens", |_, ev| match ev {
            Ev::Open(i, _) => Some(*i),
            Ev::Closed(i, c) if left.contains(i) => panic!("closed instead of open: {c:?}"),
            _ => None,
        });
        left.remove(&id);
    }
}

/// Waits for `Closed` of every id in `ids` (in any order); returns them.
pub fn wait_all_closed(rx: &Receiver<(usize, Ev)>, ids: &[ConnId]) -> Vec<(ConnId, Closed)> {
    let mut left: std::collections::HashSet<ConnId> = ids.iter().copied().collect();
    let mut out = Vec::new();
    while !left.is_empty() {
        let (id, c) = wait_for(rx, "closes", |_, ev| match ev {
            Ev::Closed(i, c) if left.contains(i) => Some((*i, c.clone())),
            _ => None,
        });
        left.remove(&id);
        out.push((id, c));
    }
    out
}
