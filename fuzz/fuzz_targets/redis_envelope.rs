//! The Redis channel format (`ws_redis::wire`): what anybody with access to the Redis server can
//! publish on a room's channel. Arbitrary channel names and payloads never panic the decoder;
//! whatever it accepts is within the payload limit, valid UTF-8 when text, and encodes back to
//! the same bytes.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ws_proto::MessageKind;
use ws_redis::wire;

fuzz_target!(|data: &[u8]| {
    let (limit, rest) = match data.split_first() {
        Some((l, rest)) => (usize::from(*l) * 64, rest),
        None => (0, data),
    };
    // The first bytes up to a NUL (if any) are a channel name, the rest the payload.
    let (channel, payload) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    if let Ok(room) = wire::room_of(channel) {
        assert_eq!(wire::channel(room).as_bytes(), channel);
    }
    if let Ok(env) = wire::decode(Bytes::copy_from_slice(payload), limit) {
        assert!(env.payload.len() <= limit);
        if env.kind == MessageKind::Text {
            assert!(std::str::from_utf8(&env.payload).is_ok());
        }
        let again = wire::encode(env.origin, env.conn, env.seq, env.kind, &env.payload);
        assert_eq!(&again[..], payload);
    }
});
