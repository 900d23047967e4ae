//! A second WebSocket extension, written only against ws-proto's public API, to show (and
//! test) the extension interface: `x-xor` XORs every payload byte of a message with a key the
//! client offers, and marks transformed messages with RSV3. It is negotiated between our
//! client and our server alone and together with permessage-deflate.
//!
//! Run: `cargo run -p ws-proto --example xor_extension` (an in-memory client and server
//! exchange messages and print what was agreed and what went over the wire). Its tests run
//! with `cargo test -p ws-proto --example xor_extension`, and as part of `cargo test`.
//!
//! (Toy only: XOR with a fixed key hides nothing.)

// An example program, not the core: it reads the clock to drive the connections.
#![allow(clippy::disallowed_methods)]

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use ws_proto::extension::{Extension, ExtensionFactory, Params, Rsv};
use ws_proto::{
    Accept, ClientRequest, Config, Connection, Event, Message, MessageKind, ProtocolError, Transmit,
};

/// The registered name of the toy extension.
const NAME: &str = "x-xor";

/// Negotiates `x-xor; key=N` (N in 1..=255). The client offers its key; the server accepts any
/// valid key, unless it was built with `refuse`.
#[derive(Debug)]
struct XorFactory {
    key: u8,
    refuse: bool,
}

impl XorFactory {
    fn shared(key: u8) -> Arc<dyn ExtensionFactory> {
        Arc::new(XorFactory { key, refuse: false })
    }
}

/// The key parameter of an offer or answer: exactly one `key=N`, N in 1..=255.
fn key_of(params: &Params) -> Result<u8, String> {
    match params.as_slice() {
        [(name, Some(v))] if name.eq_ignore_ascii_case("key") => match v.parse::<u8>() {
            Ok(k) if k != 0 => Ok(k),
            _ => Err(format!("bad key {v:?}")),
        },
        _ => Err("expected exactly one parameter, key=N".into()),
    }
}

impl ExtensionFactory for XorFactory {
    fn name(&self) -> &str {
        NAME
    }

    fn client_offers(&self) -> Vec<Params> {
        vec![vec![("key".into(), Some(self.key.to_string()))]]
    }

    fn client_accept(&self, answer: &Params) -> Result<Box<dyn Extension>, String> {
        let key = key_of(answer)?;
        if key != self.key {
            return Err(format!(
                "server answered key {key}, we offered {}",
                self.key
            ));
        }
        Ok(Box::new(Xor { key }))
    }

    fn server_accept(&self, offer: &Params) -> Option<(Params, Box<dyn Extension>)> {
        if self.refuse {
            return None;
        }
        let key = key_of(offer).ok()?;
        Some((
            vec![("key".into(), Some(key.to_string()))],
            Box::new(Xor { key }),
        ))
    }
}

/// The per-connection state: the agreed key.
#[derive(Debug)]
struct Xor {
    key: u8,
}

impl Extension for Xor {
    fn name(&self) -> &str {
        NAME
    }

    fn rsv(&self) -> Rsv {
        Rsv::RSV3
    }

    fn encode(&mut self, _kind: MessageKind, payload: &[u8], out: &mut BytesMut) -> bool {
        out.extend(payload.iter().map(|b| b ^ self.key));
        true
    }

    fn decode(
        &mut self,
        payload: &[u8],
        _fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), ProtocolError> {
        if out.len().saturating_add(payload.len()) > limit {
            return Err(ProtocolError::MessageTooLarge { limit });
        }
        out.extend(payload.iter().map(|b| b ^ self.key));
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Moves bytes both ways until nothing moves (a shutdown reaches the other side as end of
/// input); returns the wire bytes each side sent and the events each side saw (client, server).
fn pump(client: &mut Connection, server: &mut Connection) -> [(Vec<u8>, Vec<Event>); 2] {
    let now = Instant::now();
    let mut out: [(Vec<u8>, Vec<Event>); 2] = Default::default();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..10_000 {
        let mut moved = false;
        for from_client in [true, false] {
            let (a, b, log) = if from_client {
                (&mut *client, &mut *server, 0)
            } else {
                (&mut *server, &mut *client, 1)
            };
            while let Some(t) = a.poll_transmit(now, &mut buf) {
                moved = true;
                match t {
                    Transmit::Data(n) => {
                        b.handle_input(now, &buf[..n]);
                        out[log].0.extend_from_slice(&buf[..n]);
                    }
                    Transmit::Shutdown => b.handle_eof(now),
                }
            }
        }
        for (conn, log) in [(&mut *client, 0usize), (&mut *server, 1usize)] {
            while let Some(ev) = conn.poll_event() {
                if let Event::UpgradeRequest(_) = ev {
                    conn.accept(Accept::new()).expect("accept");
                }
                out[log].1.push(ev);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    out
}

/// A client and a server with these configurations, after the handshake.
fn open_pair(client: Config, server: Config) -> (Connection, Connection) {
    let now = Instant::now();
    let req = ClientRequest::new("example.com", "/");
    let mut c = Connection::client(client, &req, now).expect("valid request");
    let mut s = Connection::server(server, now);
    let [(_, ce), _] = pump(&mut c, &mut s);
    assert!(ce.iter().any(|e| matches!(e, Event::Open(_))), "{ce:?}");
    (c, s)
}

fn messages(events: &[Event]) -> Vec<&Message> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn main() {
    let cfg = || {
        Config::default()
            .deflate(Some(Default::default()))
            .extension(XorFactory::shared(42))
    };
    let (mut c, mut s) = open_pair(cfg(), cfg());
    println!("agreed: {}", c.extensions().unwrap_or("(none)"));
    c.send_text("hello, extensions").expect("send");
    let [(wire, _), (_, server_events)] = pump(&mut c, &mut s);
    println!("client sent {} wire bytes", wire.len());
    for m in messages(&server_events) {
        println!("server got: {:?}", String::from_utf8_lossy(&m.data));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // In tests a panic is a failed test.
mod tests {
    use super::*;
    use ws_proto::deflate::DeflateFactory;
    use ws_proto::{CloseCode, HandshakeError, Limits};

    fn xor_only(key: u8) -> Config {
        Config::default().extension(XorFactory::shared(key))
    }

    fn both(key: u8) -> Config {
        Config::default()
            .deflate(Some(Default::default()))
            .extension(XorFactory::shared(key))
    }

    /// Every size, both kinds, both directions, fragmented and not: what was sent arrives.
    fn round_trips(c: &mut Connection, s: &mut Connection) {
        for (i, len) in [0usize, 1, 31, 32, 1000, 40_000, 200_000]
            .into_iter()
            .enumerate()
        {
            let data: Vec<u8> = (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect();
            c.send(MessageKind::Binary, data.clone()).unwrap();
            s.send_text(std::str::from_utf8(&data).unwrap()).unwrap();
            let [(_, ce), (_, se)] = pump(c, s);
            let (cm, sm) = (messages(&ce), messages(&se));
            assert_eq!(cm.len(), 1, "len {len}: {ce:?}");
            assert_eq!(sm.len(), 1, "len {len}: {se:?}");
            assert_eq!(
                (sm[0].kind, &sm[0].data[..]),
                (MessageKind::Binary, &data[..])
            );
            assert_eq!(
                (cm[0].kind, &cm[0].data[..]),
                (MessageKind::Text, &data[..])
            );
        }
    }

    #[test]
    fn alone_it_transforms_every_message_and_sets_rsv3() {
        let (mut c, mut s) = open_pair(xor_only(7), xor_only(0));
        assert_eq!(c.extensions(), Some("x-xor; key=7"));
        assert_eq!(s.extensions(), Some("x-xor; key=7"));
        let names: Vec<&str> = c.negotiated_extensions().map(|e| e.name()).collect();
        assert_eq!(names, ["x-xor"]);
        c.send_binary(&b"abc"[..]).unwrap();
        let [(wire, _), (_, se)] = pump(&mut c, &mut s);
        // Header: FIN + RSV3 + binary; masked, length 3; then the masked, XORed payload.
        assert_eq!(wire[0], 0x80 | 0x10 | 0x2, "{wire:?}");
        let key = [wire[2], wire[3], wire[4], wire[5]];
        let payload: Vec<u8> = wire[6..9].iter().zip(key).map(|(b, k)| b ^ k).collect();
        assert_eq!(payload, [b'a' ^ 7, b'b' ^ 7, b'c' ^ 7]);
        assert_eq!(&messages(&se)[0].data[..], b"abc");
        round_trips(&mut c, &mut s);
    }

    #[test]
    fn together_with_deflate_both_apply_in_the_agreed_order() {
        let (mut c, mut s) = open_pair(both(9).fragment_size(1000), both(0).fragment_size(777));
        let agreed = c.extensions().unwrap().to_string();
        assert!(
            agreed.starts_with("permessage-deflate") && agreed.ends_with("x-xor; key=9"),
            "{agreed}"
        );
        assert_eq!(s.extensions(), Some(agreed.as_str()));
        assert!(c.deflate_params().is_some());
        c.send_binary(vec![b'z'; 4000]).unwrap();
        let [(wire, _), (_, se)] = pump(&mut c, &mut s);
        // Compressed (RSV1) and XORed (RSV3) on the first frame; 4000 equal bytes deflate
        // to a few bytes.
        assert_eq!(wire[0] & 0x70, 0x40 | 0x10, "{:#x}", wire[0]);
        assert!(wire.len() < 100, "{}", wire.len());
        assert_eq!(&messages(&se)[0].data[..], &[b'z'; 4000][..]);
        round_trips(&mut c, &mut s);
    }

    #[test]
    fn a_server_without_it_declines_and_rsv3_is_then_a_protocol_error() {
        let (mut c, mut s) =
            open_pair(both(5), Config::default().deflate(Some(Default::default())));
        assert_eq!(c.extensions(), s.extensions());
        assert!(!c.extensions().unwrap().contains("x-xor"));
        round_trips(&mut c, &mut s);
        // A frame with RSV3 that no negotiated extension owns: 1002.
        let now = Instant::now();
        s.handle_input(now, &[0x80 | 0x10 | 0x2, 0x80, 1, 2, 3, 4]);
        let [(_, _), (_, se)] = pump(&mut c, &mut s);
        let closed = se.iter().find_map(|e| match e {
            Event::Closed(c) => Some(c),
            _ => None,
        });
        assert_eq!(closed.unwrap().code, CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn the_server_chooses_per_request() {
        let now = Instant::now();
        let req = ClientRequest::new("example.com", "/plain");
        for (accept, expect) in [
            (Accept::new(), Some("permessage-deflate, x-xor; key=3")),
            (
                Accept::new().decline("permessage-deflate"),
                Some("x-xor; key=3"),
            ),
            (Accept::new().decline("X-XOR"), Some("permessage-deflate")),
            (Accept::new().extensions(vec![]), None),
            (
                Accept::new().extensions(vec![Arc::new(DeflateFactory::default())]),
                Some("permessage-deflate"),
            ),
        ] {
            let mut c = Connection::client(both(3), &req, now).unwrap();
            let mut s = Connection::server(both(0), now);
            let mut buf = vec![0u8; 4096];
            while let Some(Transmit::Data(n)) = c.poll_transmit(now, &mut buf) {
                s.handle_input(now, &buf[..n]);
            }
            assert!(matches!(s.poll_event(), Some(Event::UpgradeRequest(_))));
            s.accept(accept).unwrap();
            while let Some(Transmit::Data(n)) = s.poll_transmit(now, &mut buf) {
                c.handle_input(now, &buf[..n]);
            }
            assert!(matches!(c.poll_event(), Some(Event::Open(_))));
            assert_eq!(c.extensions(), expect);
            assert_eq!(s.extensions(), expect);
            let [_, (_, se)] = {
                c.send_text("per request").unwrap();
                pump(&mut c, &mut s)
            };
            assert_eq!(&messages(&se)[0].data[..], b"per request");
        }
    }

    #[test]
    fn the_client_refuses_answers_it_cannot_take() {
        let now = Instant::now();
        let req = ClientRequest::new("example.com", "/");
        let answer_with = |ext: &str| {
            let mut c = Connection::client(xor_only(4), &req, now).unwrap();
            let mut buf = vec![0u8; 4096];
            let Some(Transmit::Data(n)) = c.poll_transmit(now, &mut buf) else {
                panic!("no request")
            };
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let key = request
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap()
                .to_string();
            let accept = ws_proto::handshake::accept_key(key.as_bytes());
            let resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: {ext}\r\n\r\n"
            );
            c.handle_input(now, resp.as_bytes());
            // A failed handshake shuts the transport down; the server's end follows.
            while c.poll_transmit(now, &mut buf).is_some() {}
            c.handle_eof(now);
            let mut events = Vec::new();
            while let Some(e) = c.poll_event() {
                events.push(e);
            }
            events
        };
        for (ext, why) in [
            ("x-xor; key=5", "we offered 4"),
            ("x-xor; key=4, x-xor; key=4", "more than once"),
            ("permessage-deflate", "did not offer"),
            ("x-xor", "exactly one parameter"),
            ("x-xor; key=4; key=4", "exactly one parameter"),
            ("x-xor;", "malformed"),
        ] {
            let events = answer_with(ext);
            let Some(Event::Closed(closed)) = events.last() else {
                panic!("{ext}: {events:?}")
            };
            let Some(ws_proto::ConnectionError::Handshake(HandshakeError::Extension(e))) =
                &closed.error
            else {
                panic!("{ext}: {closed:?}")
            };
            assert!(e.contains(why), "{ext}: {e}");
        }
        // The right answer opens.
        let events = answer_with("x-xor; key=4");
        assert!(matches!(events.first(), Some(Event::Open(_))), "{events:?}");
    }

    #[test]
    fn a_server_factory_may_decline_an_offer() {
        let refusing: Arc<dyn ExtensionFactory> = Arc::new(XorFactory {
            key: 0,
            refuse: true,
        });
        let (c, s) = open_pair(xor_only(8), Config::default().extension(refusing));
        assert_eq!((c.extensions(), s.extensions()), (None, None));
    }

    #[test]
    fn the_decoded_size_is_bounded_by_the_message_limit() {
        let small = xor_only(0).limits(Limits::default().max_message_size(1000));
        let (mut c, mut s) = open_pair(xor_only(2).fragment_size(300), small);
        c.send_binary(vec![1u8; 1000]).unwrap();
        let [_, (_, se)] = pump(&mut c, &mut s);
        assert_eq!(messages(&se)[0].data.len(), 1000);
        c.send_binary(vec![1u8; 1001]).unwrap();
        let [_, (_, se)] = pump(&mut c, &mut s);
        let closed = se.iter().find_map(|e| match e {
            Event::Closed(c) => Some(c),
            _ => None,
        });
        assert_eq!(closed.unwrap().code, CloseCode::MESSAGE_TOO_BIG);
    }

    #[test]
    fn an_offer_that_is_not_tokens_is_refused_before_anything_is_sent() {
        #[derive(Debug)]
        struct Bad;
        impl ExtensionFactory for Bad {
            fn name(&self) -> &str {
                "bad"
            }
            fn client_offers(&self) -> Vec<Params> {
                vec![vec![("p".into(), Some("a\r\nInjected: yes".into()))]]
            }
            fn client_accept(&self, _: &Params) -> Result<Box<dyn Extension>, String> {
                Err("never".into())
            }
            fn server_accept(&self, _: &Params) -> Option<(Params, Box<dyn Extension>)> {
                None
            }
        }
        let cfg = Config::default().extension(Arc::new(Bad));
        let err =
            Connection::client(cfg, &ClientRequest::new("h", "/"), Instant::now()).unwrap_err();
        assert!(
            matches!(&err, ws_proto::Error::InvalidRequest { field, .. } if field == "Sec-WebSocket-Extensions"),
            "{err:?}"
        );
    }
}
