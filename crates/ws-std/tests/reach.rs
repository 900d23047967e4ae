//! Proxies and redirects (issue 19) through ws-std's blocking client and its event client:
//! the cases of `ws_testkit::reach` (real pproxy proxies, hostile fake proxies, a redirecting
//! site), all on 127.0.0.1.

use std::sync::mpsc;
use std::time::Duration;

use ws_net::request::RequestOptions;
use ws_proto::Config;
use ws_std::{connect, ClientOptions, Received, TlsClientOptions, WebSocketClient};
use ws_testkit::reach::{ReachClient, Try, LIMIT};

fn options(request: &RequestOptions, ca_pem: &[u8], timeout: Duration) -> ClientOptions {
    let mut tls = TlsClientOptions::default();
    if !ca_pem.is_empty() {
        tls = tls.add_root_pem(ca_pem).expect("the site's certificate");
    }
    ClientOptions::default()
        .config(Config::default().handshake_timeout(timeout))
        .request(request.clone())
        .tls(tls)
}

/// The blocking client.
struct Blocking;

impl ReachClient for Blocking {
    fn echo(t: &Try<'_>) -> Result<String, String> {
        let (url, request, ca_pem, timeout) = (t.url, t.request, t.ca_pem, t.timeout);
        let mut ws = connect(url, &options(request, ca_pem, timeout)).map_err(|e| e.to_string())?;
        ws.send_text("hello").map_err(|e| e.to_string())?;
        for _ in 0..16 {
            match ws.recv().map_err(|e| e.to_string())? {
                Received::Message(m) => return Ok(m.as_text().unwrap_or_default().to_string()),
                Received::Closed(c) => return Err(format!("closed: {c:?}")),
                _ => {}
            }
        }
        Err("no echo in 16 receives".into())
    }
}

mod blocking {
    use super::*;
    ws_testkit::reach_tests!(Blocking);

    #[test]
    fn https_proxy_unsupported() {
        ws_testkit::reach::cases::https_proxy_unsupported::<Blocking>();
    }
}

/// The event client: its builder's proxy and redirect settings come from the same
/// `RequestOptions` (`ClientBuilder::options`).
struct Events;

impl ReachClient for Events {
    fn echo(t: &Try<'_>) -> Result<String, String> {
        let (url, request, ca_pem, timeout) = (t.url, t.request, t.ca_pem, t.timeout);
        let (tx, rx) = mpsc::channel::<Result<String, String>>();
        let (t1, t2) = (tx.clone(), tx);
        let client = WebSocketClient::builder(url)
            .options(options(request, ca_pem, timeout))
            .on_open(|c, _| {
                let _ = c.send_text("hello");
            })
            .on_message(move |_, text| {
                let _ = t1.send(Ok(text.to_string()));
            })
            .on_error(move |_, e| {
                let _ = t2.send(Err(e.to_string()));
            })
            .build()
            .map_err(|e| e.to_string())?;
        client.open().map_err(|e| e.to_string())?;
        let r = rx
            .recv_timeout(LIMIT + timeout)
            .unwrap_or_else(|_| Err("no echo and no error".into()));
        let _ = client.close();
        r
    }
}

mod events {
    use super::*;
    ws_testkit::reach_tests!(Events);
}
