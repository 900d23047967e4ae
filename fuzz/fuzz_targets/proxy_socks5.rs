//! SOCKS5 answers (method choice, username/password status, connect reply) on arbitrary
//! bytes, fed in arbitrary pieces, with and without credentials: no panic, bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ws_net::proxy::{ProxyHandshake, ProxyStep, ProxyUrl};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    let proxy = if mode & 1 == 0 { "socks5://127.0.0.1:1080" } else { "socks5://user:pw@127.0.0.1:1080" };
    let host = if mode & 2 == 0 { "example.com" } else { "::1" };
    let split = usize::from(mode >> 2).max(1);
    let Ok(proxy) = ProxyUrl::parse(proxy) else { return };
    let Ok(mut hs) = ProxyHandshake::new(&proxy, host, 443) else { return };
    let mut sent = 0usize;
    for piece in data.chunks(split) {
        while let Some(out) = hs.transmit() {
            sent += out.len();
            assert!(sent < 1024);
        }
        match hs.receive(piece) {
            Ok(ProxyStep::Done) | Err(_) => break,
            Ok(ProxyStep::NeedMore) => {}
        }
    }
});
