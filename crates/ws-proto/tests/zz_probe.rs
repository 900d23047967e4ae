use std::time::{Duration, Instant};
use ws_proto::{Accept, Config, Connection, Event};
use ws_testkit::alloc::heap_balance;
ws_testkit::counting_allocator!();

#[test]
fn probe() {
    let req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let cfg = std::sync::Arc::new(Config::default());
    let t0 = Instant::now();
    let b0 = heap_balance();
    let mut c = Box::new(Connection::server(cfg.clone(), t0));
    eprintln!("new: {}", heap_balance() - b0);
    c.handle_input(t0, req);
    eprintln!("after input: {}", heap_balance() - b0);
    while let Some(e) = c.poll_event() {
        if let Event::UpgradeRequest(_) = e { c.accept(Accept::new()).unwrap(); }
        eprintln!("  ev: {}", heap_balance() - b0);
    }
    let mut buf = vec![0u8; 4096];
    while let Some(_) = c.poll_transmit(t0, &mut buf) {}
    drop(buf);
    eprintln!("after open: {} retained {}", heap_balance() - b0, c.retained_bytes());
    while let Some(_) = c.poll_event() {}
    eprintln!("poll_timeout {:?}", c.poll_timeout().map(|t| t - t0));
    c.handle_timeout(t0 + Duration::from_secs(2));
    eprintln!("after timeout: {} poll_timeout {:?}", heap_balance() - b0, c.poll_timeout().map(|t| t - t0));
}
