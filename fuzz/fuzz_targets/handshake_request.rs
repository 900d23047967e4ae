//! Server handshake parser on arbitrary bytes: no panic; a success consumed
//! at most the input and at most the head limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ws_proto::{handshake, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default().max_handshake_bytes(2048).max_headers(16);
    match handshake::parse_request(data, &limits) {
        Ok(Some((req, n))) => {
            assert!(n <= data.len() && n <= 2048);
            assert_eq!(handshake::accept_key(req.key.as_bytes()).len(), 28);
        }
        Ok(None) => assert!(data.len() <= 2048),
        Err(rej) => assert!((400..=505).contains(&rej.status)),
    }
});
