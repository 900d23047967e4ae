//! Pooled, fixed-capacity byte buffers for zero-allocation WebSocket IO.
//!
//! A [`BufferPool`] hands out [`BufferSegment`]s whose capacity comes from a small set of size
//! classes ([`PoolConfig::size_classes`]). Dropping a segment returns its storage to a per-class
//! free list, so a steady-state connection reads and writes without allocating.
//!
//! * **Exact lengths.** A segment exposes exactly its filled bytes (`len()`, `as_ref()`,
//!   `Deref`), never its whole capacity, so "used the buffer's capacity instead of the number
//!   of bytes read" cannot be written.
//! * **Backpressure.** [`BufferPool::try_get`] never blocks and never grows the pool past
//!   [`PoolConfig::max_outstanding_bytes`]; it answers `None` instead, which tells a driver to
//!   stop reading its socket until buffers come back. [`BufferPool::get`] always succeeds.
//! * **Bounded idle memory.** At most [`PoolConfig::max_idle_bytes`] are kept for reuse;
//!   [`BufferPool::trim`] frees all of them.
//! * **Zero-copy hand-off.** [`BufferSegment::freeze`] turns a segment into a
//!   [`bytes::Bytes`] without copying; the storage returns to the pool once the last clone is
//!   dropped.
//! * **Safe teardown.** Segments hold a weak link to their pool: dropping the pool first is
//!   fine, the segments' storage is then simply freed.
//!
//! # Example
//!
//! ```
//! use ws_buf::{BufferPool, PoolConfig};
//!
//! let pool = BufferPool::new(PoolConfig::default().with_max_outstanding_bytes(1 << 20));
//!
//! // Read into the spare capacity, then mark what was read as filled.
//! let mut segment = pool.try_get(4096).expect("within budget");
//! let read = {
//!     let spare = segment.unfilled_mut();
//!     spare[..5].copy_from_slice(b"hello"); // e.g. `socket.read(spare)?`
//!     5
//! };
//! segment.advance(read);
//! assert_eq!(segment.len(), 5);
//! assert_eq!(segment.capacity(), 4096);
//! assert_eq!(&segment[..], b"hello");
//!
//! // Hand the bytes on without copying.
//! let payload = segment.freeze();
//! assert_eq!(payload, &b"hello"[..]);
//! assert_eq!(pool.stats().outstanding_segments, 1);
//!
//! // The storage goes back to the pool with the last `Bytes`, and is reused.
//! drop(payload);
//! assert_eq!(pool.stats().idle_segments, 1);
//! let again = pool.get(100);
//! assert_eq!(again.capacity(), 256);
//! let _reused = pool.get(3000);
//! assert_eq!(pool.stats().hits, 1);
//! ```
#![forbid(unsafe_code)]

mod config;
mod pool;
mod segment;

pub use config::PoolConfig;
pub use pool::{BufferPool, PoolStats};
pub use segment::{BufferSegment, CapacityError};

#[cfg(test)]
mod tests;
