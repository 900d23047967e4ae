//! Client handshake response parser on arbitrary bytes: no panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ws_proto::{handshake, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default().max_handshake_bytes(2048).max_headers(16);
    if let Ok(Some((resp, n))) = handshake::parse_response(data, &limits) {
        assert!(n <= data.len() && n <= 2048);
        let _ = handshake::validate_switching(&resp, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", &["chat".to_string()]);
    }
    let _ = ws_proto::deflate::parse_extensions(&[&String::from_utf8_lossy(data)]);
});
