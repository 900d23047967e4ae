//! Proxies and redirects (issue 19) through ws-tokio's `connect_with`: the cases of
//! `ws_testkit::reach` (real pproxy proxies, hostile fake proxies, a redirecting site), all on
//! 127.0.0.1.

#![allow(clippy::unwrap_used)]

use futures_util::{SinkExt, StreamExt};
use ws_proto::Config;
use ws_testkit::reach::{ReachClient, Try, LIMIT};
use ws_tokio::{ConnectOptions, TlsOptions};

struct Tokio;

async fn echo(url: &str, options: ConnectOptions) -> Result<String, String> {
    let mut ws = ws_tokio::connect_with(url, &options)
        .await
        .map_err(|e| e.to_string())?;
    ws.send(ws_tokio::text("hello"))
        .await
        .map_err(|e| e.to_string())?;
    let m = ws
        .next()
        .await
        .ok_or("closed without an echo")?
        .map_err(|e| e.to_string())?;
    Ok(m.as_text().unwrap_or_default().to_string())
}

impl ReachClient for Tokio {
    fn echo(t: &Try<'_>) -> Result<String, String> {
        let (url, request, ca_pem, timeout) = (t.url, t.request, t.ca_pem, t.timeout);
        let mut tls = TlsOptions::default();
        if !ca_pem.is_empty() {
            tls = tls.add_root_pem(ca_pem).unwrap();
        }
        let options = ConnectOptions::default()
            .config(Config::default().handshake_timeout(timeout))
            .request(request.clone())
            .tls(tls);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            match tokio::time::timeout(LIMIT + timeout, echo(url, options)).await {
                Ok(r) => r,
                Err(_) => Err("no echo and no error".into()),
            }
        })
    }
}

ws_testkit::reach_tests!(Tokio);

#[test]
fn https_proxy() {
    ws_testkit::reach::cases::https_proxy::<Tokio>();
}
