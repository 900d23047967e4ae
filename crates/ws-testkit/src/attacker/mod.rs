//! A hostile peer over raw `std::net` sockets, shared by the hostile-peer
//! suites of every driver (`crates/ws-std/tests/hostile.rs`,
//! `crates/ws-mio/tests/hostile.rs`).
//!
//! It writes hand-built HTTP heads and frames, and reads back the HTTP
//! status or the close code. Every socket has read and write timeouts, so a
//! bug cannot hang a test: a wait that passes its limit fails the test.
//!
//! - [`wire`]: the limits of the side under attack, frames, heads, sockets;
//! - [`server`]: the attacks on a server (a [`Victim`]);
//! - [`client`]: the attacks on a client, generic over [`ClientDriver`].
//!
//! Everything is re-exported here: `use ws_testkit::attacker::*;`. The
//! heap bound ([`HEAP_BOUND`]) is measured by [`crate::alloc`], whose
//! allocator each suite declares with
//! [`counting_allocator!`](crate::counting_allocator).

pub mod client;
pub mod server;
pub mod wire;

pub use client::{ClientDriver, ClientRun, Failure, FloodRun, Refusal};
pub use server::{still_serves, End, Flood, Victim};
pub use wire::*;
