//! Shared bits of the peer echo servers: the message-size limit every server
//! gets, argument parsing and the start-up line the scripts wait for.

use std::net::SocketAddr;

/// Largest message (and frame) every server accepts: 4 MiB, the same as
/// `wsx serve --max-message` (its default).
pub const MAX_MESSAGE: usize = 4 << 20;

/// `NAME [ADDR]`: the listen address (default 127.0.0.1:9001).
pub fn listen_addr() -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9001".to_string());
    if let Some(extra) = args.next() {
        return Err(format!("unexpected argument {extra:?}; usage: SERVER [ADDR]").into());
    }
    Ok(addr.parse()?)
}

/// Prints the line the scripts wait for (same shape as `wsx serve`).
pub fn announce(addr: SocketAddr) {
    use std::io::Write;
    println!("listening on ws://{addr} (pid {})", std::process::id());
    let _ = std::io::stdout().flush();
}
