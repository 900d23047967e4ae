//! `wsx connect --proxy URL`, `--no-proxy`, `--max-redirects N` and the environment's proxy
//! variables (issue 19), with every driver, all on 127.0.0.1: a real proxy (pproxy, started by
//! the test), a fake proxy that refuses (to see the environment's proxy being used), and a
//! redirecting site (ws-testkit's).

#![allow(clippy::unwrap_used)]

mod common;

use common::{connect_env, serve};
use ws_testkit::reach::{pproxy, Fake, FakeProxy, Route, Site};

const DRIVERS: [&str; 3] = ["std", "mio", "tokio"];

/// `wsx connect ARGS` with `env` (the machine's proxy variables cleared) and `stdin`.
fn wsx(args: &[&str], env: &[(&str, &str)], stdin: &str) -> (i32, String, String) {
    connect_env(args, env, stdin)
}

#[test]
fn connect_through_a_proxy_with_every_driver() {
    let site = Site::plain();
    site.route("/echo", Route::Echo);
    let url = format!("{}/echo", site.base());
    for scheme in ["http", "socks5"] {
        let px = pproxy(scheme, None);
        for driver in DRIVERS {
            let (code, out, err) = wsx(
                &["--driver", driver, "--proxy", px.url(), &url],
                &[],
                "hello\n",
            );
            assert_eq!(
                (code, out.as_str()),
                (0, "hello\n"),
                "{scheme} {driver}: {err}"
            );
        }
    }
}

#[test]
fn the_environment_proxy_is_used_and_no_proxy_turns_it_off() {
    let px = FakeProxy::start(Fake::Answer(b"HTTP/1.1 403 Go away\r\n\r\n".to_vec()));
    let proxy = match px.mode("http") {
        ws_net::proxy::ProxyMode::Url(u) => u.to_string(),
        other => panic!("{other:?}"),
    };
    // A name in the reserved .example domain (RFC 2606): only the fake proxy is ever asked
    // for it; going direct, it does not resolve.
    let url = "ws://echo.example/";
    for (i, driver) in DRIVERS.into_iter().enumerate() {
        let (code, _, err) = wsx(&["--driver", driver, url], &[("http_proxy", &proxy)], "");
        assert_eq!(code, 1, "{driver}: {err}");
        assert!(
            err.contains("403 Go away"),
            "{driver}: the proxy from http_proxy: {err}"
        );
        assert_eq!(px.accepted(), i + 1);
        let env = [("http_proxy", proxy.as_str()), ("NO_PROXY", ".example")];
        let (code, _, err) = wsx(&["--driver", driver, url], &env, "");
        assert_eq!(code, 1, "{driver}: {err}");
        assert!(
            !err.contains("403"),
            "{driver}: NO_PROXY names the host: {err}"
        );
        let env = [("http_proxy", proxy.as_str())];
        let (code, _, err) = wsx(&["--driver", driver, "--no-proxy", url], &env, "");
        assert_eq!(code, 1, "{driver}: {err}");
        assert!(!err.contains("403"), "{driver}: --no-proxy: {err}");
        assert_eq!(
            px.accepted(),
            i + 1,
            "{driver}: the proxy was asked while off"
        );
        // Upper-case HTTP_PROXY is never read for ws:// (as curl).
        let env = [("HTTP_PROXY", proxy.as_str())];
        let (code, _, err) = wsx(&["--driver", driver, url], &env, "");
        assert_eq!(code, 1, "{driver}: {err}");
        assert_eq!(px.accepted(), i + 1, "{driver}: HTTP_PROXY was used: {err}");
    }
    let (code, _, err) = wsx(&["--proxy", "ftp://x", "--no-proxy", url], &[], "");
    assert_eq!(code, 2, "--proxy and --no-proxy conflict: {err}");
}

#[test]
fn redirects_are_followed_up_to_max_redirects() {
    let site = Site::plain();
    site.route("/echo", Route::Echo)
        .route("/old", Route::Redirect(301, "/echo".into()));
    let url = format!("{}/old", site.base());
    for driver in DRIVERS {
        let (code, out, err) = wsx(&["--driver", driver, &url], &[], "hello\n");
        assert_eq!((code, out.as_str()), (0, "hello\n"), "{driver}: {err}");
        let (code, _, err) = wsx(&["--driver", driver, "--max-redirects", "0", &url], &[], "");
        assert_eq!(code, 1, "{driver}: {err}");
        assert!(err.contains("301"), "{driver}: {err}");
    }
}

#[test]
fn http2_goes_through_the_proxy_too() {
    let s = serve(&["--http2"]);
    let px = pproxy("http", None);
    let (code, out, err) = wsx(&[&s.url, "--http2", "--proxy", px.url()], &[], "h2\n");
    assert_eq!((code, out.as_str()), (0, "h2\n"), "{err}");
    assert!(err.contains("over HTTP/2"), "{err}");
}

#[test]
fn trust_store_missing_extra_roots_still_work() {
    let site = Site::tls();
    site.route("/echo", Route::Echo);
    let url = format!("{}/echo", site.base());
    let dir = std::env::temp_dir().join(format!("wsx-reach-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, site.ca_pem()).unwrap();
    let ca = ca.to_str().unwrap();
    // A machine without a CA bundle (the variables rustls-native-certs reads point nowhere).
    let none = dir.join("no-such-bundle");
    let none = none.to_str().unwrap();
    let env = [("SSL_CERT_FILE", none), ("SSL_CERT_DIR", none)];
    for driver in DRIVERS {
        let (code, _, err) = wsx(&["--driver", driver, &url], &env, "");
        assert_eq!(code, 1, "{driver}: {err}");
        assert!(
            err.contains(
                "no trusted root certificate could be loaded from the platform's trust store"
            ),
            "{driver}: {err}"
        );
        let (code, out, err) = wsx(&["--driver", driver, "--ca", ca, &url], &env, "hi\n");
        assert_eq!((code, out.as_str()), (0, "hi\n"), "{driver}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
