//! A redirect's Location (ws-net redirect policy) on arbitrary strings: no panic; a followed
//! redirect is a valid WebSocket URL and never a downgrade.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ws_net::redirect::Redirects;
use ws_net::url::WsUrl;

fuzz_target!(|data: &[u8]| {
    let Some((&status, data)) = data.split_first() else { return };
    let location = String::from_utf8_lossy(data);
    let Ok(base) = WsUrl::parse("wss://user:pw@example.com:8443/a/b?c") else { return };
    let mut r = Redirects::new(base, 3);
    let status = [301, 302, 303, 307, 308, 200][usize::from(status) % 6];
    let headers = vec![("Location".to_string(), location.into_owned())];
    if let Ok(Some(next)) = r.follow(status, &headers) {
        assert!(next.is_secure());
        let again = next.to_string();
        assert!(WsUrl::parse(&again).is_ok(), "{again}");
    }
    let _ = ws_net::redirect::resolve_location(r.current(), &String::from_utf8_lossy(data));
});
