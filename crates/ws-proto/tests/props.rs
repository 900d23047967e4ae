//! Property tests: random message sequences under random chunking arrive
//! exactly as sent, in both directions, with and without compression.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use common::*;
use proptest::prelude::*;
use ws_proto::{DeflateConfig, MessageKind};

#[derive(Clone, Debug)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        ".{0,200}".prop_map(Msg::Text),
        proptest::collection::vec(any::<u8>(), 0..3000).prop_map(Msg::Binary),
        // Compressible runs.
        (any::<u8>(), 0usize..5000).prop_map(|(b, n)| Msg::Binary(vec![b; n])),
    ]
}

fn run(msgs: &[Msg], seed: u64, max_chunk: usize, frag: usize, deflate: bool, dir: Dir) {
    let d = deflate.then(DeflateConfig::default);
    let chunking = Chunking::Random {
        seed,
        max: max_chunk,
    };
    // Tiny fragment sizes make thousands of frames per message: lift the
    // fragment limit (its own test is in limits.rs).
    let limits = ws_proto::Limits::default().max_fragments(1 << 20);
    let mut p = Pair::open(
        client_cfg()
            .fragment_size(frag)
            .deflate(d.clone())
            .limits(limits.clone()),
        server_cfg().fragment_size(frag).deflate(d).limits(limits),
        chunking,
    );
    assert_eq!(p.client.deflate_params().is_some(), deflate);
    for m in msgs {
        match m {
            Msg::Text(t) => p.conn(dir).send_text(t).unwrap(),
            Msg::Binary(b) => p.conn(dir).send_binary(b.clone()).unwrap(),
        }
    }
    p.drive();
    let got = messages(p.events_at(dir));
    assert_eq!(got.len(), msgs.len());
    for (g, m) in got.iter().zip(msgs) {
        match m {
            Msg::Text(t) => {
                assert_eq!(g.kind, MessageKind::Text);
                assert_eq!(g.as_text(), Some(t.as_str()));
            }
            Msg::Binary(b) => {
                assert_eq!(g.kind, MessageKind::Binary);
                assert_eq!(&g.data[..], &b[..]);
            }
        }
    }
    assert!(p.client_closed().is_none() && p.server_closed().is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn messages_arrive_as_sent(
        msgs in proptest::collection::vec(msg(), 0..12),
        seed in any::<u64>(),
        max_chunk in 1usize..2000,
        frag in prop_oneof![Just(32767usize), 1usize..700],
        deflate in any::<bool>(),
        to_server in any::<bool>(),
    ) {
        let dir = if to_server { Dir::ClientToServer } else { Dir::ServerToClient };
        run(&msgs, seed, max_chunk, frag, deflate, dir);
    }
}
