//! The event client in a fixed-rate loop (a game's or a UI's): handlers run
//! inside `client.dispatch()`, once per frame, on the loop's own thread, as
//! Best.HTTP's do on Unity's main thread.
//!
//! ```text
//! cargo run -p ws-std --example game_loop -- [URL] [COUNT] [-v]
//! ```
//!
//! Sends a message every 10th frame of a 60 Hz loop, COUNT times (default
//! 5), prints the echoes as the frames dispatch them, then closes and stops
//! at the close event. Without a URL it starts its own echo server on a
//! loopback port. `cargo test -p ws-std --example game_loop` runs it.

#[path = "common/args.rs"]
mod args;
#[path = "common/logger.rs"]
mod logger;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ws_std::{serve, Delivery, Received, ServeOptions, ServerHandle, WebSocketClient};

/// What the loop saw.
#[derive(Debug, Default)]
struct Outcome {
    /// Frames run.
    frames: u32,
    /// The echoes, in the order the handlers got them.
    echoes: Vec<String>,
    /// The terminal event: "closed CODE REASON" or "error ...".
    end: Option<String>,
    /// Whether every handler ran on the loop's thread.
    on_loop_thread: bool,
}

/// Runs the loop at `fps` frames per second until the connection ends (or
/// for at most a minute).
fn run(url: &str, count: usize, fps: u32) -> Result<Outcome, Box<dyn std::error::Error>> {
    let seen = Arc::new(Mutex::new(Outcome {
        on_loop_thread: true,
        ..Outcome::default()
    }));
    let loop_thread = thread::current().id();
    let note = {
        let seen = seen.clone();
        move |f: &dyn Fn(&mut Outcome)| {
            let mut o = seen.lock().unwrap_or_else(|p| p.into_inner());
            o.on_loop_thread &= thread::current().id() == loop_thread;
            f(&mut o);
        }
    };
    let (n1, n2, n3) = (note.clone(), note.clone(), note);
    let client = WebSocketClient::builder(url)
        .delivery(Delivery::Dispatch)
        .log_context("game")
        .build()?;
    client.on_open(|ws, _| println!("{} open", ws.id()));
    client.on_message(move |ws, text| {
        println!("< {text}");
        n1(&|o| o.echoes.push(text.to_string()));
        if text == format!("move {}", count - 1) {
            let _ = ws.close_with(1000, "done");
        }
    });
    client.on_closed(move |_, code, reason| {
        println!("closed: {code} {reason:?}");
        n2(&|o| o.end = Some(format!("closed {code} {reason}")));
    });
    client.on_error(move |_, e| {
        println!("error: {e}");
        n3(&|o| o.end = Some(format!("error {e}")));
    });
    client.open()?;

    let frame = Duration::from_secs(1) / fps.max(1);
    let mut next = Instant::now();
    let mut sent = 0;
    // A minute of frames at most.
    for n in 0..fps.saturating_mul(60) {
        // Input and network: the handlers run here, on this thread.
        client.dispatch();
        if client.is_finished() {
            break;
        }
        // Update: a move every 10th frame, once the connection is up.
        if n % 10 == 0 && sent < count && client.is_open() {
            client.send_text(&format!("move {sent}"))?;
            sent += 1;
        }
        seen.lock().unwrap_or_else(|p| p.into_inner()).frames = n + 1;
        // Render, then wait for the next frame.
        next += frame;
        thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let outcome = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(outcome)
}

/// An echo server on a free loopback port.
fn local_echo_server() -> std::io::Result<ServerHandle> {
    serve(
        TcpListener::bind("127.0.0.1:0")?,
        ServeOptions::default(),
        |mut ws| {
            while let Ok(Received::Message(m)) = ws.recv() {
                if ws.send(m.kind, m.data).is_err() {
                    break;
                }
            }
        },
    )
    .map_err(|e| std::io::Error::other(e.to_string()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args::Args {
        url,
        count,
        verbose,
    } = args::parse(5);
    logger::init(verbose);
    let (url, server) = match url {
        Some(u) => (u, None),
        None => {
            let s = local_echo_server()?;
            (format!("ws://{}/", s.local_addr()), Some(s))
        }
    };
    let outcome = run(&url, count, 60)?;
    println!(
        "{} frames, {} echoes, end: {}",
        outcome.frames,
        outcome.echoes.len(),
        outcome.end.as_deref().unwrap_or("none (gave up)")
    );
    if let Some(s) = server {
        s.shutdown();
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_gets_every_echo_in_order_then_one_close_on_its_own_thread() {
        let server = local_echo_server().unwrap();
        let outcome = run(&format!("ws://{}/", server.local_addr()), 3, 100).unwrap();
        assert_eq!(outcome.echoes, ["move 0", "move 1", "move 2"]);
        assert_eq!(outcome.end.as_deref(), Some("closed 1000 done"));
        assert!(outcome.on_loop_thread);
        // At least the frames that sent the three moves, ten apart.
        assert!(outcome.frames > 20, "{}", outcome.frames);
        assert!(server.shutdown());
    }
}
