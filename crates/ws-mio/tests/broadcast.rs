//! A room over two loops with `Ctx::broadcast_group`: every message reaches
//! every other connection on both loops, never the sender, and a message is
//! compressed once for all the connections whose deflate parameters allow
//! sharing. Rooms by path with `Ctx::send_prepared`: the same, for the
//! sender's room only.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::*;
use ws_mio::{ConnId, ConnectOptions, Ctx, Handler, LoopGroup, Options};
use ws_proto::{Config, DeflateConfig, Message, PreparedMessage};

/// Relays every message to everybody else and keeps the prepared messages.
struct Room {
    sent: Arc<Mutex<Vec<PreparedMessage>>>,
}

impl Handler for Room {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        let msg = PreparedMessage::new(m.kind, m.data).unwrap();
        ctx.broadcast_group(&msg, Some(id)).unwrap();
        self.sent.lock().unwrap().push(msg);
    }
}

#[test]
fn a_room_over_two_loops_reaches_everybody_else_with_one_compression() {
    let mut deflate = DeflateConfig::default();
    deflate.server_no_context_takeover = true;
    let sent = Arc::new(Mutex::new(Vec::new()));
    let sent2 = sent.clone();
    let server = LoopGroup::builder()
        .loops(2)
        .options(Options::default().config(Config::default().deflate(Some(deflate))))
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn(move |_| Room {
            sent: sent2.clone(),
        })
        .unwrap();
    let url = format!("ws://{}/", server.local_addr().unwrap());
    let (client, rx) = client();
    let h = client.handle().clone();
    let with_deflate =
        ConnectOptions::default().config(Config::default().deflate(Some(DeflateConfig::default())));
    let ids: Vec<ConnId> = (0..20)
        .map(|_| connect(&h, &url, with_deflate.clone()))
        .collect();
    wait_all_open(&rx, &ids);
    // Both loops hold members (the kernel spreads accepted connections).
    let sh = server.handle().clone();
    let per_loop: Vec<usize> = (0..2)
        .map(|i| on_loop(&sh, i, |ctx| ctx.loop_stats().connections))
        .collect();
    assert!(per_loop.iter().all(|&n| n > 0), "{per_loop:?}");

    let text: String = (0..400).map(|i| ["alpha ", "beta "][i % 2]).collect();
    let (a, b) = (ids[0], ids[1]);
    h.send_text(a, &text).unwrap();
    let mut got: HashMap<ConnId, Vec<String>> = HashMap::new();
    for _ in 0..ids.len() - 1 {
        let (id, m) = wait_for(&rx, "the broadcast", |_, ev| match ev {
            Ev::Msg(id, m) => Some((*id, m.as_text().unwrap().to_string())),
            _ => None,
        });
        got.entry(id).or_default().push(m);
    }
    assert!(!got.contains_key(&a), "the sender got its own message");
    assert_eq!(got.len(), ids.len() - 1);
    assert!(got.values().all(|v| v == std::slice::from_ref(&text)));
    // Whatever the sender would get from the first message would arrive
    // before what B sends next.
    h.send_text(b, "from b").unwrap();
    let first_for_a = wait_for(&rx, "b's message at a", |_, ev| match ev {
        Ev::Msg(id, m) if *id == a => Some(m.as_text().unwrap().to_string()),
        _ => None,
    });
    assert_eq!(first_for_a, "from b");
    // One compression for the 19 receivers on both loops.
    let sent = sent.lock().unwrap();
    assert_eq!(sent[0].encodings(), 1, "{:?}", sent[0]);
}

/// Rooms by request path with `Ctx::send_prepared`: each message goes to
/// the other members of the sender's room only.
struct Rooms {
    paths: HashMap<ConnId, String>,
    sent: Arc<Mutex<Vec<PreparedMessage>>>,
}

impl Handler for Rooms {
    fn on_upgrade(
        &mut self,
        _ctx: &mut Ctx<'_>,
        id: ConnId,
        req: &ws_proto::UpgradeRequest,
    ) -> ws_mio::Decision {
        self.paths.insert(id, req.path.clone());
        ws_mio::Decision::accept()
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        let msg = PreparedMessage::new(m.kind, m.data).unwrap();
        let room = self.paths[&id].clone();
        for (to, _) in self
            .paths
            .iter()
            .filter(|(to, p)| **to != id && **p == room)
        {
            ctx.send_prepared(*to, &msg).unwrap();
        }
        self.sent.lock().unwrap().push(msg);
    }
}

#[test]
fn send_prepared_reaches_the_room_only_with_one_compression() {
    let mut deflate = DeflateConfig::default();
    deflate.server_no_context_takeover = true;
    let sent = Arc::new(Mutex::new(Vec::new()));
    let sent2 = sent.clone();
    let server = LoopGroup::builder()
        .loops(1)
        .options(Options::default().config(Config::default().deflate(Some(deflate))))
        .listen("127.0.0.1:0".parse().unwrap())
        .spawn(move |_| Rooms {
            paths: HashMap::new(),
            sent: sent2.clone(),
        })
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (client, rx) = client();
    let h = client.handle().clone();
    let with_deflate =
        ConnectOptions::default().config(Config::default().deflate(Some(DeflateConfig::default())));
    let room: Vec<ConnId> = (0..3)
        .map(|_| connect(&h, &format!("ws://{addr}/room"), with_deflate.clone()))
        .collect();
    let other: Vec<ConnId> = (0..2)
        .map(|_| connect(&h, &format!("ws://{addr}/other"), with_deflate.clone()))
        .collect();
    let all: Vec<ConnId> = room.iter().chain(&other).copied().collect();
    wait_all_open(&rx, &all);

    let text: String = (0..400).map(|i| ["alpha ", "beta "][i % 2]).collect();
    h.send_text(room[0], &text).unwrap();
    // Then a message in the other room: had /other's second member got the
    // first message, it would have come before this one (one loop, in order).
    h.send_text(other[0], "from other").unwrap();
    let mut got: HashMap<ConnId, Vec<String>> = HashMap::new();
    for _ in 0..3 {
        let (id, m) = wait_for(&rx, "the room's messages", |_, ev| match ev {
            Ev::Msg(id, m) => Some((*id, m.as_text().unwrap().to_string())),
            _ => None,
        });
        got.entry(id).or_default().push(m);
    }
    assert_eq!(got.get(&room[1]), Some(&vec![text.clone()]));
    assert_eq!(got.get(&room[2]), Some(&vec![text.clone()]));
    assert_eq!(got.get(&other[1]), Some(&vec!["from other".to_string()]));
    // One compression for the two receivers.
    assert_eq!(sent.lock().unwrap()[0].encodings(), 1);
}
