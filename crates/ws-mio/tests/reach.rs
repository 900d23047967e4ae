//! Proxies and redirects (issue 19) through ws-mio's `connect`: the cases of
//! `ws_testkit::reach` (real pproxy proxies, hostile fake proxies, a redirecting site), all on
//! 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{client, Ev};
use ws_mio::ConnectOptions;
use ws_proto::{Config, MessageKind};
use ws_testkit::reach::{ReachClient, Try, LIMIT};

struct Mio;

impl ReachClient for Mio {
    fn echo(t: &Try<'_>) -> Result<String, String> {
        let (url, request, ca_pem, timeout) = (t.url, t.request, t.ca_pem, t.timeout);
        let mut options = ConnectOptions::default()
            .config(Config::default().handshake_timeout(timeout))
            .request(request.clone());
        if !ca_pem.is_empty() {
            let roots = ws_net::tls::certs_from_pem(ca_pem).unwrap();
            let cfg = ws_net::tls::client_config(rustls::RootCertStore::empty(), &roots).unwrap();
            options = options.tls(cfg);
        }
        let (group, rx) = client();
        let handle = group.handle();
        let (tx, connected) = std::sync::mpsc::channel();
        let url = url.to_string();
        handle
            .run_on(0, move |ctx| {
                let _ = tx.send(ctx.connect(&url, options).map_err(|e| e.to_string()));
            })
            .unwrap();
        let result = match connected.recv_timeout(LIMIT).unwrap() {
            Err(e) => Err(e),
            Ok(id) => loop {
                match rx.recv_timeout(LIMIT + timeout) {
                    Ok((_, Ev::Open(..))) => {
                        handle
                            .run_on(0, move |ctx| {
                                let _ = ctx.send(id, MessageKind::Text, "hello");
                            })
                            .unwrap();
                    }
                    Ok((_, Ev::Msg(_, m))) => {
                        break Ok(m.as_text().unwrap_or_default().to_string())
                    }
                    Ok((_, Ev::Closed(_, c))) => {
                        break Err(c
                            .error
                            .as_ref()
                            .map_or_else(|| format!("{c:?}"), |e| e.to_string()))
                    }
                    Ok(_) => {}
                    Err(_) => break Err("no echo and no error".into()),
                }
            },
        };
        group.shutdown(Duration::from_millis(200));
        group.join().unwrap();
        result
    }
}

ws_testkit::reach_tests!(Mio);

#[test]
fn https_proxy_unsupported() {
    ws_testkit::reach::cases::https_proxy_unsupported::<Mio>();
}
