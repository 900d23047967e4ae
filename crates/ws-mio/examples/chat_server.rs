//! A broadcast (chat) server: every message from any client goes to every
//! connected client, across all event loops.
//!
//! ```text
//! cargo run -p ws-mio --example chat_server -- [ADDR] [LOOPS]
//! ```
//!
//! Try it with any WebSocket client, e.g. two `websocat ws://127.0.0.1:9002/`.

use std::net::SocketAddr;

use ws_mio::{ConnId, Ctx, Handler, LoopGroup};
use ws_proto::{Closed, Message, MessageKind, OpenInfo};

/// Relays messages to everyone, with the sender's id in front.
struct Chat;

impl Handler for Chat {
    fn on_open(&mut self, ctx: &mut Ctx<'_>, id: ConnId, _: &OpenInfo) {
        announce(ctx, format!("* {id} joined"));
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, id: ConnId, m: Message) {
        let line = match m.as_text() {
            Some(t) => format!("{id}: {t}"),
            None => format!("{id} sent {} bytes of binary", m.data.len()),
        };
        announce(ctx, line);
    }

    fn on_close(&mut self, ctx: &mut Ctx<'_>, id: ConnId, c: &Closed) {
        announce(ctx, format!("* {id} left ({})", c.code));
    }

    fn on_backpressure(&mut self, ctx: &mut Ctx<'_>, id: ConnId, buffered: usize) {
        // A client that does not keep up is dropped rather than buffered for.
        eprintln!("{id} is {buffered} bytes behind; closing it");
        let _ = ctx.close(id, ws_proto::CloseCode::POLICY_VIOLATION, "too slow");
    }
}

/// Broadcasts a line to every loop (this one included).
fn announce(ctx: &mut Ctx<'_>, line: String) {
    println!("{line}");
    if let Err(e) = ctx.handle().broadcast(MessageKind::Text, line.into_bytes()) {
        eprintln!("broadcast failed: {e}");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:9002".into())
        .parse()?;
    let loops: usize = match args.next() {
        Some(n) => n.parse()?,
        None => 2,
    };
    let group = LoopGroup::builder()
        .loops(loops)
        .listen(addr)
        .spawn(|_| Chat)?;
    println!(
        "chat on ws://{}/ with {loops} loops",
        group.local_addr().ok_or("no address")?
    );
    group.join()?;
    Ok(())
}
