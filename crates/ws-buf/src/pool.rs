//! The buffer pool.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::{BufferSegment, PoolConfig};

/// A free list of idle storage blocks of one size class.
type FreeList = Mutex<Vec<Box<[u8]>>>;

/// A pool of reusable, fixed-capacity byte buffers.
///
/// Cloning a `BufferPool` is cheap (an [`Arc`] clone) and every clone shares the same free lists
/// and counters. The pool is `Send + Sync` and never blocks on anything but short, uncontended
/// per-size-class locks.
///
/// See the [crate documentation](crate) for an overview and an example.
#[derive(Clone)]
pub struct BufferPool {
    inner: Arc<Inner>,
}

/// A snapshot of a pool's counters, returned by [`BufferPool::stats`].
///
/// The counters are read one by one without a global lock, so a snapshot taken while other
/// threads use the pool may be slightly inconsistent (for example a segment in transit between
/// the free list and a caller may be missing from both `idle_*` and `outstanding_*`). Once the
/// pool is quiescent the snapshot is exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Segments handed out and not yet returned. A frozen segment counts until the last
    /// [`Bytes`](bytes::Bytes) clone referring to it is dropped.
    pub outstanding_segments: usize,
    /// Sum of the capacities of the outstanding segments.
    pub outstanding_bytes: usize,
    /// Storage blocks sitting in the free lists, ready for reuse.
    pub idle_segments: usize,
    /// Sum of the capacities of the idle storage blocks (never more than
    /// [`PoolConfig::max_idle_bytes`]).
    pub idle_bytes: usize,
    /// Segments served by reusing idle storage.
    pub hits: u64,
    /// Segments served by allocating new storage (including oversize segments).
    /// `hits + misses` is the number of segments ever handed out.
    pub misses: u64,
    /// Requests larger than the largest size class, served with an exact-size, unpooled
    /// segment (also counted in `misses`).
    pub oversize: u64,
    /// [`BufferPool::try_get`] calls refused because of the outstanding-bytes budget.
    pub refused: u64,
    /// Returned storage blocks that were put back on a free list.
    pub recycled: u64,
    /// Storage blocks freed by the pool: returned oversize segments, returns that would have
    /// exceeded [`PoolConfig::max_idle_bytes`], and blocks dropped by [`BufferPool::trim`].
    /// (Storage of segments that outlive the pool is freed without being counted.)
    /// While the pool is alive and nothing is outstanding, `misses == freed + idle_segments`.
    pub freed: u64,
}

/// Shared state of a pool. Segments hold a `Weak` link to it.
pub(crate) struct Inner {
    /// Normalized configuration.
    config: PoolConfig,
    /// One free list per size class, same order as `config.size_classes`.
    free_lists: Box<[FreeList]>,
    outstanding_segments: AtomicUsize,
    outstanding_bytes: AtomicUsize,
    idle_segments: AtomicUsize,
    /// Reserved before a block is pushed, released after it is popped: always at least the
    /// real idle total and never more than `config.max_idle_bytes`.
    idle_bytes: AtomicUsize,
    hits: AtomicU64,
    misses: AtomicU64,
    oversize: AtomicU64,
    refused: AtomicU64,
    recycled: AtomicU64,
    freed: AtomicU64,
}

/// Locks a free list. The lists are always consistent (push/pop/take only), so a poisoned lock
/// is simply recovered.
fn lock(list: &FreeList) -> MutexGuard<'_, Vec<Box<[u8]>>> {
    list.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Allocates zero-initialised storage.
fn allocate(capacity: usize) -> Box<[u8]> {
    vec![0u8; capacity].into_boxed_slice()
}

impl Inner {
    /// Index of the smallest class that fits `min_len`, `None` for oversize requests.
    fn class_index(&self, min_len: usize) -> Option<usize> {
        let classes = &self.config.size_classes;
        let index = classes.partition_point(|&class| class < min_len);
        (index < classes.len()).then_some(index)
    }

    /// Capacity of the segment that would serve `min_len`.
    fn capacity_for(&self, class: Option<usize>, min_len: usize) -> usize {
        class
            .and_then(|index| self.config.size_classes.get(index).copied())
            .unwrap_or(min_len)
    }

    /// Takes idle storage of `class` or allocates `capacity` bytes, counting the hit or miss.
    fn acquire(&self, class: Option<usize>, capacity: usize) -> Box<[u8]> {
        if let Some(list) = class.and_then(|index| self.free_lists.get(index)) {
            let popped = {
                let mut list = lock(list);
                let popped = list.pop();
                if popped.is_some() {
                    self.idle_segments.fetch_sub(1, Relaxed);
                }
                popped
            };
            if let Some(storage) = popped {
                self.idle_bytes.fetch_sub(storage.len(), Relaxed);
                self.hits.fetch_add(1, Relaxed);
                return storage;
            }
        } else {
            self.oversize.fetch_add(1, Relaxed);
        }
        self.misses.fetch_add(1, Relaxed);
        allocate(capacity)
    }

    /// Takes back the storage of a dropped segment (called from `BufferSegment::drop`).
    pub(crate) fn give_back(&self, class: Option<usize>, storage: Box<[u8]>) {
        let capacity = storage.len();
        let list = class.and_then(|index| self.free_lists.get(index));
        match list {
            Some(list) if self.reserve_idle(capacity) => {
                let mut list = lock(list);
                list.push(storage);
                self.idle_segments.fetch_add(1, Relaxed);
                drop(list);
                self.recycled.fetch_add(1, Relaxed);
            }
            _ => {
                drop(storage);
                self.freed.fetch_add(1, Relaxed);
            }
        }
        self.outstanding_bytes.fetch_sub(capacity, Relaxed);
        self.outstanding_segments.fetch_sub(1, Relaxed);
    }

    /// Reserves `capacity` idle bytes if that stays within `max_idle_bytes`.
    fn reserve_idle(&self, capacity: usize) -> bool {
        let max = self.config.max_idle_bytes;
        self.idle_bytes
            .fetch_update(Relaxed, Relaxed, |idle| {
                idle.checked_add(capacity).filter(|&total| total <= max)
            })
            .is_ok()
    }

    /// Reserves `capacity` outstanding bytes if that stays within `max_outstanding_bytes`.
    fn reserve_outstanding(&self, capacity: usize) -> bool {
        let max = self.config.max_outstanding_bytes;
        self.outstanding_bytes
            .fetch_update(Relaxed, Relaxed, |outstanding| {
                outstanding
                    .checked_add(capacity)
                    .filter(|&total| total <= max)
            })
            .is_ok()
    }
}

impl BufferPool {
    /// Creates a pool with the given configuration (its size classes are normalized, see
    /// [`PoolConfig::size_classes`]). No storage is allocated up front.
    pub fn new(config: PoolConfig) -> Self {
        let config = config.normalized();
        let free_lists = config
            .size_classes
            .iter()
            .map(|_| Mutex::new(Vec::new()))
            .collect();
        Self {
            inner: Arc::new(Inner {
                config,
                free_lists,
                outstanding_segments: AtomicUsize::new(0),
                outstanding_bytes: AtomicUsize::new(0),
                idle_segments: AtomicUsize::new(0),
                idle_bytes: AtomicUsize::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                oversize: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                recycled: AtomicU64::new(0),
                freed: AtomicU64::new(0),
            }),
        }
    }

    /// Returns an empty segment with capacity of at least `min_len` bytes.
    ///
    /// The capacity is that of the smallest size class that fits, reusing idle storage of that
    /// class when there is some (a *hit*) and allocating otherwise (a *miss*). A request larger
    /// than the largest class gets a segment of exactly `min_len` bytes that is freed, not
    /// pooled, when dropped (a miss and an *oversize*).
    ///
    /// This always succeeds and ignores [`PoolConfig::max_outstanding_bytes`] (use
    /// [`try_get`](BufferPool::try_get) for backpressure).
    ///
    /// # Panics
    ///
    /// Panics (like `Vec`) if an oversize `min_len` exceeds `isize::MAX`; allocation failure
    /// aborts as usual.
    pub fn get(&self, min_len: usize) -> BufferSegment {
        let inner = &*self.inner;
        let class = inner.class_index(min_len);
        let storage = inner.acquire(class, inner.capacity_for(class, min_len));
        inner.outstanding_bytes.fetch_add(storage.len(), Relaxed);
        inner.outstanding_segments.fetch_add(1, Relaxed);
        BufferSegment::new(storage, class, Arc::downgrade(&self.inner))
    }

    /// Like [`get`](BufferPool::get), but returns `None` when handing out the segment would
    /// push the outstanding bytes over [`PoolConfig::max_outstanding_bytes`].
    ///
    /// Never blocks and never exceeds the budget, even under concurrent use. A `None` is the
    /// backpressure signal: stop reading until segments have been dropped. It also answers
    /// `None`, instead of panicking, for oversize requests beyond `isize::MAX`.
    pub fn try_get(&self, min_len: usize) -> Option<BufferSegment> {
        let inner = &*self.inner;
        let class = inner.class_index(min_len);
        let capacity = inner.capacity_for(class, min_len);
        if capacity > isize::MAX as usize || !inner.reserve_outstanding(capacity) {
            inner.refused.fetch_add(1, Relaxed);
            return None;
        }
        let storage = inner.acquire(class, capacity);
        inner.outstanding_segments.fetch_add(1, Relaxed);
        Some(BufferSegment::new(
            storage,
            class,
            Arc::downgrade(&self.inner),
        ))
    }

    /// Whether [`try_get`](BufferPool::try_get)`(min_len)` would succeed now, without taking
    /// anything: a driver that reads into other memory asks this to apply the same
    /// backpressure (stop reading while the pool's budget is spent).
    pub fn can_get(&self, min_len: usize) -> bool {
        let inner = &*self.inner;
        let capacity = inner.capacity_for(inner.class_index(min_len), min_len);
        capacity <= isize::MAX as usize
            && self
                .outstanding_bytes()
                .checked_add(capacity)
                .is_some_and(|total| total <= inner.config.max_outstanding_bytes)
    }

    /// The pool's (normalized) configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// A snapshot of the pool's counters.
    pub fn stats(&self) -> PoolStats {
        let inner = &*self.inner;
        PoolStats {
            outstanding_segments: inner.outstanding_segments.load(Relaxed),
            outstanding_bytes: inner.outstanding_bytes.load(Relaxed),
            idle_segments: inner.idle_segments.load(Relaxed),
            idle_bytes: inner.idle_bytes.load(Relaxed),
            hits: inner.hits.load(Relaxed),
            misses: inner.misses.load(Relaxed),
            oversize: inner.oversize.load(Relaxed),
            refused: inner.refused.load(Relaxed),
            recycled: inner.recycled.load(Relaxed),
            freed: inner.freed.load(Relaxed),
        }
    }

    /// Total capacity of the segments handed out and not yet returned.
    pub fn outstanding_bytes(&self) -> usize {
        self.inner.outstanding_bytes.load(Relaxed)
    }

    /// `true` when the outstanding bytes have reached (or, through [`get`](BufferPool::get),
    /// exceeded) [`PoolConfig::max_outstanding_bytes`], so that no non-empty
    /// [`try_get`](BufferPool::try_get) can currently succeed.
    pub fn is_over_budget(&self) -> bool {
        self.outstanding_bytes() >= self.inner.config.max_outstanding_bytes
    }

    /// Frees all idle storage. Outstanding segments are unaffected and still return to the
    /// pool when dropped.
    pub fn trim(&self) {
        let inner = &*self.inner;
        for list in inner.free_lists.iter() {
            let taken = {
                let mut list = lock(list);
                let taken = std::mem::take(&mut *list);
                inner.idle_segments.fetch_sub(taken.len(), Relaxed);
                taken
            };
            let bytes: usize = taken.iter().map(|storage| storage.len()).sum();
            let count = taken.len() as u64;
            drop(taken);
            inner.idle_bytes.fetch_sub(bytes, Relaxed);
            inner.freed.fetch_add(count, Relaxed);
        }
    }
}

impl Default for BufferPool {
    /// A pool with [`PoolConfig::default()`].
    fn default() -> Self {
        Self::new(PoolConfig::default())
    }
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("config", self.config())
            .field("stats", &self.stats())
            .finish()
    }
}
