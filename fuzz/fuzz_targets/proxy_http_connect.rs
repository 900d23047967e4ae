//! HTTP CONNECT answer parser (ws-net proxy handshake) on arbitrary bytes, fed in arbitrary
//! pieces: no panic, memory bounded, never "done" with bytes left over.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ws_net::proxy::{ProxyHandshake, ProxyStep, ProxyUrl, MAX_HTTP_ANSWER};

fuzz_target!(|data: &[u8]| {
    let (split, data) = match data.split_first() {
        Some((s, d)) => (usize::from(*s).max(1), d),
        None => return,
    };
    let Ok(proxy) = ProxyUrl::parse("http://u:p@127.0.0.1:3128") else { return };
    let Ok(mut hs) = ProxyHandshake::new(&proxy, "example.com", 443) else { return };
    let _ = hs.transmit();
    let mut fed = 0usize;
    for piece in data.chunks(split) {
        fed += piece.len();
        match hs.receive(piece) {
            Ok(ProxyStep::Done) => {
                assert!(fed <= MAX_HTTP_ANSWER);
                break;
            }
            Ok(ProxyStep::NeedMore) => assert!(fed <= MAX_HTTP_ANSWER),
            Err(_) => break,
        }
    }
});
