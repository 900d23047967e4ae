//! Fixed-capacity pooled segments.

use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::sync::Weak;

use bytes::Bytes;

use crate::pool::Inner;

/// A fixed-capacity byte buffer borrowed from a [`BufferPool`](crate::BufferPool).
///
/// A segment owns `capacity()` bytes of storage of which the first `len()` are *filled*.
/// Every read accessor ([`as_slice`](BufferSegment::as_slice), [`AsRef`], [`Deref`],
/// [`freeze`](BufferSegment::freeze), ...) exposes the filled bytes only, never the whole
/// capacity. Bytes are added with [`extend_from_slice`](BufferSegment::extend_from_slice) /
/// [`try_extend_from_slice`](BufferSegment::try_extend_from_slice) or by writing into
/// [`unfilled_mut`](BufferSegment::unfilled_mut) and then calling
/// [`advance`](BufferSegment::advance) (the pattern for socket reads). The capacity never
/// changes.
///
/// Dropping the segment returns its storage to the pool it came from (if the pool still exists
/// and its idle limit allows it); otherwise the storage is freed.
pub struct BufferSegment {
    /// The whole storage; `storage.len()` is the capacity.
    storage: Box<[u8]>,
    /// Number of filled bytes at the start of `storage`.
    len: usize,
    /// Size class index in the pool, `None` for an oversize (unpooled) segment
    /// (a `u32`: a pool has a handful of classes, and a segment waiting in a
    /// connection's session is 8 bytes smaller for it).
    class: Option<u32>,
    /// The pool to return the storage to.
    pool: Weak<Inner>,
}

/// Error returned by [`BufferSegment::try_extend_from_slice`] when the data does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityError {
    requested: usize,
    available: usize,
}

impl CapacityError {
    /// Number of bytes that were to be appended.
    pub fn requested(&self) -> usize {
        self.requested
    }

    /// Remaining capacity of the segment at the time of the call.
    pub fn available(&self) -> usize {
        self.available
    }
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot append {} bytes to a buffer segment with {} bytes of remaining capacity",
            self.requested, self.available
        )
    }
}

impl std::error::Error for CapacityError {}

impl BufferSegment {
    /// Wraps storage handed out by a pool.
    pub(crate) fn new(storage: Box<[u8]>, class: Option<usize>, pool: Weak<Inner>) -> Self {
        Self {
            storage,
            len: 0,
            // A class index past u32::MAX cannot exist; were it to, the
            // storage would be freed instead of pooled.
            class: class.and_then(|c| u32::try_from(c).ok()),
            pool,
        }
    }

    /// Number of filled bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when no bytes are filled.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Total (fixed) capacity in bytes.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.storage.len()
    }

    /// Bytes that can still be appended: `capacity() - len()`.
    #[inline]
    pub fn remaining_capacity(&self) -> usize {
        self.storage.len() - self.len
    }

    /// `true` when `len() == capacity()`.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == self.storage.len()
    }

    /// The filled bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[..self.len]
    }

    /// The filled bytes, mutably.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[..self.len]
    }

    /// Appends as much of `data` as fits and returns the number of bytes copied
    /// (`min(data.len(), remaining_capacity())`).
    pub fn extend_from_slice(&mut self, data: &[u8]) -> usize {
        let count = data.len().min(self.remaining_capacity());
        let end = self.len + count;
        self.storage[self.len..end].copy_from_slice(&data[..count]);
        self.len = end;
        count
    }

    /// Appends all of `data`, or nothing (and an error) if it does not fit.
    pub fn try_extend_from_slice(&mut self, data: &[u8]) -> Result<(), CapacityError> {
        let available = self.remaining_capacity();
        if data.len() > available {
            return Err(CapacityError {
                requested: data.len(),
                available,
            });
        }
        self.extend_from_slice(data);
        Ok(())
    }

    /// The spare capacity after the filled bytes (`remaining_capacity()` bytes), to be written
    /// into directly, e.g. by a socket read; follow with [`advance`](BufferSegment::advance) to
    /// mark the written prefix as filled.
    ///
    /// The storage is initialised (zeroed) when first allocated, so this is a plain `&mut [u8]`.
    /// It is *not* re-zeroed when reused or after [`clear`](BufferSegment::clear) /
    /// [`truncate`](BufferSegment::truncate): the slice may contain stale bytes left by an
    /// earlier user of the same storage (from this pool, i.e. from this process). Never treat
    /// its contents as data; only the bytes you wrote and then `advance`d over are yours.
    #[inline]
    pub fn unfilled_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.len..]
    }

    /// Marks the first `n` bytes of [`unfilled_mut`](BufferSegment::unfilled_mut) as filled.
    ///
    /// # Panics
    ///
    /// Panics if `n > remaining_capacity()`. That can only be a bug in the caller (a reader
    /// never reports more bytes than the slice it was given), never a result of peer data.
    #[inline]
    pub fn advance(&mut self, n: usize) {
        let remaining = self.remaining_capacity();
        assert!(
            n <= remaining,
            "BufferSegment::advance({n}) exceeds the remaining capacity ({remaining})"
        );
        self.len += n;
    }

    /// Empties the segment (the capacity is kept; the storage is not zeroed).
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Shortens the filled part to `len` bytes; no effect if `len >= self.len()`.
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Converts the segment into an immutable [`Bytes`] holding exactly the filled bytes,
    /// without copying.
    ///
    /// The `Bytes` (and all of its clones and slices) keep the whole storage alive; it returns
    /// to the pool when the last of them is dropped, and counts as outstanding until then. An
    /// empty segment yields [`Bytes::new()`] and its storage is returned immediately.
    pub fn freeze(self) -> Bytes {
        if self.is_empty() {
            return Bytes::new();
        }
        Bytes::from_owner(self)
    }
}

impl Drop for BufferSegment {
    fn drop(&mut self) {
        let storage = std::mem::take(&mut self.storage);
        if let Some(pool) = self.pool.upgrade() {
            let class = self.class.and_then(|c| usize::try_from(c).ok());
            pool.give_back(class, storage);
        }
        // Otherwise the pool is gone and `storage` is simply freed here.
    }
}

impl AsRef<[u8]> for BufferSegment {
    /// The filled bytes.
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsMut<[u8]> for BufferSegment {
    /// The filled bytes.
    #[inline]
    fn as_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl Deref for BufferSegment {
    type Target = [u8];

    /// The filled bytes.
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for BufferSegment {
    /// The filled bytes.
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl fmt::Debug for BufferSegment {
    /// Prints the length and capacity, never the contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferSegment")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl io::Write for BufferSegment {
    /// Appends as much of `buf` as fits; returns `Ok(0)` once the segment is full (so
    /// `write_all` fails with [`io::ErrorKind::WriteZero`]).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.extend_from_slice(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
