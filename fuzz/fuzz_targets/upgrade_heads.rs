//! Heads handed over by another HTTP stack (`ws_proto::upgrade`), both roles, HTTP/1.1 and
//! HTTP/2, with permessage-deflate and a second extension (RSV2) configured: arbitrary
//! header lists never panic, an accepted request's response headers are always writable
//! (token names, no control bytes in values) and its extension answer parses again.
#![no_main]
use std::any::Any;
use std::sync::Arc;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ws_proto::extension::{parse_extensions, Extension, ExtensionFactory, Params, Rsv};
use ws_proto::upgrade::{ClientUpgrade, Http, ServerUpgrade};
use ws_proto::{handshake, Accept, ClientRequest, Config, MessageKind, ProtocolError};

/// Accepts any offer that has at most one parameter, echoing it back.
#[derive(Debug)]
struct Echo;

#[derive(Debug)]
struct Nop;

impl ExtensionFactory for Echo {
    fn name(&self) -> &str {
        "x-echo"
    }
    fn client_offers(&self) -> Vec<Params> {
        vec![vec![("p".into(), Some("1".into()))]]
    }
    fn client_accept(&self, answer: &Params) -> Result<Box<dyn Extension>, String> {
        (answer.len() <= 1).then(|| Box::new(Nop) as Box<dyn Extension>).ok_or("too many".into())
    }
    fn server_accept(&self, offer: &Params) -> Option<(Params, Box<dyn Extension>)> {
        (offer.len() <= 1).then(|| (offer.clone(), Box::new(Nop) as Box<dyn Extension>))
    }
}

impl Extension for Nop {
    fn name(&self) -> &str {
        "x-echo"
    }
    fn rsv(&self) -> Rsv {
        Rsv::RSV2
    }
    fn encode(&mut self, _: MessageKind, _: &[u8], _: &mut BytesMut) -> bool {
        false
    }
    fn decode(&mut self, p: &[u8], _: bool, out: &mut BytesMut, limit: usize) -> Result<(), ProtocolError> {
        if out.len() + p.len() > limit {
            return Err(ProtocolError::MessageTooLarge { limit });
        }
        out.extend_from_slice(p);
        Ok(())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let headers: Vec<(String, String)> = text
        .split('\n')
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        .take(64)
        .collect();
    let version = if selector & 1 == 0 { Http::V1 } else { Http::V2 };
    let method = if selector & 2 == 0 { "GET" } else { "CONNECT" };
    let cfg = Config::default()
        .deflate(Some(Default::default()))
        .extension(Arc::new(Echo))
        .rng_seed([3; 32]);
    if let Ok(up) = ServerUpgrade::new(method, "/x", version, headers.clone()) {
        let protocol = up.request().protocols.first().cloned();
        let mut accept = Accept::new();
        if let Some(p) = protocol.filter(|_| selector & 4 != 0) {
            accept = accept.protocol(p);
        }
        if let Ok((resp, upgraded)) = up.accept(&cfg, accept) {
            for (n, v) in &resp.headers {
                assert!(handshake::valid_header(n, v), "{n:?}: {v:?}");
            }
            if let Some(answer) = upgraded.extensions() {
                assert!(parse_extensions(&[answer]).is_ok(), "{answer:?}");
            }
        }
    }
    // The same list as a response to our request.
    let req = ClientRequest::new("example.com", "/x").protocol("chat");
    if let Ok(client) = ClientUpgrade::new(&cfg, &req, version) {
        let status = if selector & 8 == 0 { 101 } else { 200 };
        let _ = client.finish(status, headers);
    }
});
