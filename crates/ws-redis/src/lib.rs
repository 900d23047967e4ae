//! Rooms that span processes: each server's local rooms joined through Redis
//! pub/sub (the way Socket.IO's Redis adapter and Centrifugo's Redis broker
//! do it), for `wsx serve --broadcast --redis redis://HOST:PORT`.
//!
//! - Every message a server receives from one of its clients is delivered
//!   to the room's local members at once by the server (sender excluded,
//!   its own room code), and handed to [`Bridge::publish`], which publishes
//!   it once on the room's channel ([`wire::channel`]), with the server's
//!   id, the connection's id and a publish number ([`wire`]).
//! - Every server subscribes to every room's channel
//!   ([`wire::CHANNEL_PATTERN`]) and hands each message of *another* server
//!   to its local room (`deliver`); its own messages, already delivered
//!   locally, are skipped. So the sender never gets its message back and no
//!   member gets it twice; local delivery goes on while Redis is down.
//! - Order per publisher: one connection's messages enter the publish queue
//!   in order, go out in order on one Redis connection, and Redis delivers
//!   them in order to every subscriber connection, read by one thread.
//! - Nothing is unbounded: the publish queue has
//!   [`BridgeOptions::publish_queue`] places (full: the message is dropped
//!   for the other servers and counted); the subscriber reads one message
//!   at a time (a server that cannot keep up makes Redis's output buffer
//!   for it grow until Redis disconnects it, `client-output-buffer-limit
//!   pubsub`; the bridge then subscribes again and counts the gap).
//! - Failures: Redis unreachable at [`Bridge::start`] is an error; lost
//!   later, both threads reconnect with exponential backoff (bounded by
//!   [`BridgeOptions::backoff_max`]); what could not be published is
//!   counted (`not_published`), what other servers published while we were
//!   not subscribed shows as gaps in their publish numbers (`missed`); both
//!   are logged, at most one line per 5 s per kind ([`Stats`]).
//! - A channel message that is not an envelope (anybody with access to
//!   Redis can publish) is counted (`malformed`) and dropped.
//!
//! Built with the default feature `bridge`; without it only [`wire`] (the
//! format, no Redis client) is built.

// Without `bridge` the links to the bridge's items have nothing to point at.
#![cfg_attr(not(feature = "bridge"), allow(rustdoc::broken_intra_doc_links))]
#![forbid(unsafe_code)]

pub mod wire;

#[cfg(feature = "bridge")]
mod bridge;
#[cfg(feature = "bridge")]
pub use bridge::{Bridge, BridgeOptions, StartError, Stats};
