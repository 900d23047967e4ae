//! The in-memory `Pair` harness: a client and a server `Connection` joined by
//! a simulated link with a virtual clock.
#![allow(dead_code, clippy::disallowed_methods, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use ws_proto::{
    Accept, ClientRequest, Closed, Config, Connection, Event, Transmit, VectoredTransmit,
};

/// How the link cuts the byte stream before delivery.
#[derive(Clone, Copy, Debug)]
pub enum Chunking {
    /// Everything a side transmitted, in one `handle_input` call.
    Whole,
    /// One byte per call.
    OneByte,
    /// Random pieces of 1..=max bytes, from a seed. This chunking also drives
    /// the zero-copy paths: each side transmits with `poll_transmit_vectored`
    /// and receives by reading into `receive_buffer`.
    Random { seed: u64, max: usize },
}

/// Direction of travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    ClientToServer,
    ServerToClient,
}

type Tamper = Box<dyn FnMut(Dir, &mut Vec<u8>)>;

pub struct Pair {
    pub client: Connection,
    pub server: Connection,
    pub now: Instant,
    pub client_events: Vec<Event>,
    pub server_events: Vec<Event>,
    chunking: Chunking,
    rng: StdRng,
    /// Bytes a side produced that the other has not been fed yet.
    c2s: Vec<u8>,
    s2c: Vec<u8>,
    c2s_eof: bool,
    s2c_eof: bool,
    c2s_eof_delivered: bool,
    s2c_eof_delivered: bool,
    /// When true, the server stops reading (a slow reader).
    pub server_paused: bool,
    pub client_paused: bool,
    /// Link cut: nothing more is delivered either way.
    pub cut: bool,
    pub tamper: Option<Tamper>,
    /// Transmit buffer size each side uses.
    pub transmit_buf: usize,
}

pub fn seed(n: u8) -> [u8; 32] {
    [n; 32]
}

pub fn client_cfg() -> Config {
    Config::default().rng_seed(seed(1))
}

pub fn server_cfg() -> Config {
    Config::default().rng_seed(seed(2))
}

impl Pair {
    pub fn new(client: Config, server: Config, chunking: Chunking) -> Pair {
        Pair::with_request(
            client,
            server,
            chunking,
            ClientRequest::new("localhost", "/"),
        )
    }

    pub fn with_request(
        client: Config,
        server: Config,
        chunking: Chunking,
        req: ClientRequest,
    ) -> Pair {
        let now = Instant::now();
        Pair::with_connections(
            Connection::client(client, &req, now).expect("a valid request"),
            Connection::server(server, now),
            chunking,
            now,
        )
    }

    /// A pair of connections built elsewhere (e.g. `Connection::upgraded`), whole chunks.
    #[allow(dead_code)]
    pub fn from_connections(client: Connection, server: Connection) -> Pair {
        Pair::with_connections(client, server, Chunking::Whole, Instant::now())
    }

    fn with_connections(
        client: Connection,
        server: Connection,
        chunking: Chunking,
        now: Instant,
    ) -> Pair {
        Pair {
            client,
            server,
            now,
            client_events: Vec::new(),
            server_events: Vec::new(),
            chunking,
            rng: StdRng::seed_from_u64(match chunking {
                Chunking::Random { seed, .. } => seed,
                _ => 0,
            }),
            c2s: Vec::new(),
            s2c: Vec::new(),
            c2s_eof: false,
            s2c_eof: false,
            c2s_eof_delivered: false,
            s2c_eof_delivered: false,
            server_paused: false,
            client_paused: false,
            cut: false,
            tamper: None,
            transmit_buf: 4096,
        }
    }

    /// A pair that has completed the opening handshake (Open events consumed).
    pub fn open(client: Config, server: Config, chunking: Chunking) -> Pair {
        let mut p = Pair::new(client, server, chunking);
        p.handshake();
        p
    }

    pub fn handshake(&mut self) {
        self.drive();
        let req = self
            .server_events
            .iter()
            .any(|e| matches!(e, Event::UpgradeRequest(_)));
        assert!(req, "no upgrade request: {:?}", self.server_events);
        self.server.accept(Accept::new()).unwrap();
        self.drive();
        assert!(
            self.client_events
                .iter()
                .any(|e| matches!(e, Event::Open(_))),
            "{:?}",
            self.client_events
        );
        assert!(self
            .server_events
            .iter()
            .any(|e| matches!(e, Event::Open(_))));
        self.client_events.clear();
        self.server_events.clear();
    }

    pub fn conn(&mut self, d: Dir) -> &mut Connection {
        match d {
            Dir::ClientToServer => &mut self.client,
            Dir::ServerToClient => &mut self.server,
        }
    }

    /// Events received by the side at the end of direction `d`.
    pub fn events_at(&mut self, d: Dir) -> &mut Vec<Event> {
        match d {
            Dir::ClientToServer => &mut self.server_events,
            Dir::ServerToClient => &mut self.client_events,
        }
    }

    /// Moves bytes until nothing changes (bounded).
    pub fn drive(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                return;
            }
        }
        panic!("pair did not settle");
    }

    fn step(&mut self) -> bool {
        let mut progress = false;
        let mut buf = vec![0u8; self.transmit_buf];
        // Transmit from both sides into the link.
        let vectored = matches!(self.chunking, Chunking::Random { .. });
        progress |= transmit(
            &mut self.client,
            self.now,
            &mut buf,
            vectored,
            &mut self.c2s,
            &mut self.c2s_eof,
        );
        progress |= transmit(
            &mut self.server,
            self.now,
            &mut buf,
            vectored,
            &mut self.s2c,
            &mut self.s2c_eof,
        );
        if let Some(t) = self.tamper.as_mut() {
            if !self.c2s.is_empty() {
                t(Dir::ClientToServer, &mut self.c2s);
            }
            if !self.s2c.is_empty() {
                t(Dir::ServerToClient, &mut self.s2c);
            }
        }
        if !self.cut {
            if !self.server_paused {
                progress |= self.deliver(Dir::ClientToServer);
            }
            if !self.client_paused {
                progress |= self.deliver(Dir::ServerToClient);
            }
        }
        while let Some(e) = self.client.poll_event() {
            progress = true;
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            progress = true;
            self.server_events.push(e);
        }
        progress
    }

    fn deliver(&mut self, d: Dir) -> bool {
        let now = self.now;
        let mut data = std::mem::take(match d {
            Dir::ClientToServer => &mut self.c2s,
            Dir::ServerToClient => &mut self.s2c,
        });
        let progressed = !data.is_empty();
        let mut pos = 0;
        while pos < data.len() {
            let n = match self.chunking {
                Chunking::Whole => data.len() - pos,
                Chunking::OneByte => 1,
                Chunking::Random { max, .. } => {
                    self.rng.random_range(1..=max.max(1)).min(data.len() - pos)
                }
            };
            let piece = &data[pos..pos + n];
            let to = match d {
                Dir::ClientToServer => &mut self.server,
                Dir::ServerToClient => &mut self.client,
            };
            if matches!(self.chunking, Chunking::Random { .. }) {
                // Read into the lent room, as a driver reading a socket
                // does (a read takes what fits).
                let mut at = 0;
                while at < n {
                    let room = to.receive_buffer(n - at);
                    assert!(!room.is_empty(), "no room lent");
                    let k = room.len().min(n - at);
                    room[..k].copy_from_slice(&piece[at..at + k]);
                    to.handle_received(now, k);
                    at += k;
                }
            } else {
                to.handle_input(now, piece);
            }
            pos += n;
        }
        data.clear();
        let (eof, delivered) = match d {
            Dir::ClientToServer => (self.c2s_eof, &mut self.c2s_eof_delivered),
            Dir::ServerToClient => (self.s2c_eof, &mut self.s2c_eof_delivered),
        };
        if eof && !*delivered {
            *delivered = true;
            match d {
                Dir::ClientToServer => self.server.handle_eof(now),
                Dir::ServerToClient => self.client.handle_eof(now),
            }
            return true;
        }
        progressed
    }

    /// Advances the virtual clock, firing due timers on both sides, in steps
    /// that stop at each deadline.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        for _ in 0..10_000 {
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .filter(|t| *t <= end)
                .min();
            match next {
                Some(t) => {
                    self.now = self.now.max(t);
                    self.client.handle_timeout(self.now);
                    self.server.handle_timeout(self.now);
                    self.drive();
                }
                None => {
                    self.now = end;
                    self.drive();
                    return;
                }
            }
        }
        panic!("timers did not settle");
    }

    /// Bytes waiting in the link towards the side at the end of `d`.
    pub fn in_flight(&self, d: Dir) -> usize {
        match d {
            Dir::ClientToServer => self.c2s.len(),
            Dir::ServerToClient => self.s2c.len(),
        }
    }

    /// Injects raw bytes as if sent in direction `d`.
    pub fn inject(&mut self, d: Dir, bytes: &[u8]) {
        match d {
            Dir::ClientToServer => self.server.handle_input(self.now, bytes),
            Dir::ServerToClient => self.client.handle_input(self.now, bytes),
        }
        self.drive();
    }

    pub fn client_closed(&self) -> Option<&Closed> {
        closed_of(&self.client_events)
    }

    pub fn server_closed(&self) -> Option<&Closed> {
        closed_of(&self.server_events)
    }
}

pub fn closed_of(events: &[Event]) -> Option<&Closed> {
    let n = events
        .iter()
        .filter(|e| matches!(e, Event::Closed(_)))
        .count();
    assert!(n <= 1, "more than one Closed event: {events:?}");
    match events.last() {
        Some(Event::Closed(c)) => Some(c),
        _ => {
            assert_eq!(n, 0, "Closed was not the last event: {events:?}");
            None
        }
    }
}

/// Data messages in events.
pub fn messages(events: &[Event]) -> Vec<ws_proto::Message> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// Encodes a frame as a peer would (mask when `mask` is Some).
pub fn frame(fin: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    frame_rsv(fin, 0, opcode, mask, payload)
}

pub fn frame_rsv(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(mbit | len as u8);
    } else if len <= 0xFFFF {
        out.push(mbit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mbit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ m[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A client frame (masked with a fixed key).
pub fn cframe(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, opcode, Some([0x11, 0x22, 0x33, 0x44]), payload)
}

pub const ALL_CHUNKINGS: [Chunking; 3] = [
    Chunking::Whole,
    Chunking::OneByte,
    Chunking::Random { seed: 7, max: 13 },
];
pub const BOTH_DIRS: [Dir; 2] = [Dir::ClientToServer, Dir::ServerToClient];

/// Drains one side's output into the link; whether anything came out.
fn transmit(
    conn: &mut Connection,
    now: Instant,
    buf: &mut [u8],
    vectored: bool,
    link: &mut Vec<u8>,
    eof: &mut bool,
) -> bool {
    let mut progress = false;
    if vectored {
        while let Some(t) = conn.poll_transmit_vectored(now, buf) {
            progress = true;
            match t {
                VectoredTransmit::Data(n) => link.extend_from_slice(&buf[..n]),
                VectoredTransmit::DataThen(n, payload) => {
                    link.extend_from_slice(&buf[..n]);
                    link.extend_from_slice(&payload);
                }
                VectoredTransmit::Shutdown => *eof = true,
            }
        }
    } else {
        while let Some(t) = conn.poll_transmit(now, buf) {
            progress = true;
            match t {
                Transmit::Data(n) => link.extend_from_slice(&buf[..n]),
                Transmit::Shutdown => *eof = true,
            }
        }
    }
    progress
}
