//! Pool configuration.

/// One kibibyte.
const KIB: usize = 1024;
/// One mebibyte.
const MIB: usize = 1024 * KIB;

/// Configuration of a [`BufferPool`](crate::BufferPool).
///
/// The struct is `#[non_exhaustive]` so that fields can be added later; build it from
/// [`PoolConfig::default()`] and adjust it with the `with_*` setters (or by assigning the public
/// fields of a default value).
///
/// ```
/// use ws_buf::PoolConfig;
///
/// let config = PoolConfig::default()
///     .with_size_classes([1024, 8192])
///     .with_max_idle_bytes(1 << 20)
///     .with_max_outstanding_bytes(64 << 20);
/// assert_eq!(config.size_classes, vec![1024, 8192]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Capacities (in bytes) of the pooled segment sizes.
    ///
    /// A request is served from the smallest class that is at least as large as the request;
    /// a request larger than every class gets an exact-size segment that is never pooled.
    /// [`BufferPool::new`](crate::BufferPool::new) sorts the classes, removes duplicates and
    /// drops zero (and unallocatable, `> isize::MAX`) entries. An empty list is allowed: every
    /// segment is then exact-size and unpooled.
    ///
    /// Default: [`PoolConfig::DEFAULT_SIZE_CLASSES`].
    pub size_classes: Vec<usize>,
    /// Upper bound on the bytes of storage the pool keeps idle (in its free lists, summed over
    /// all classes). Storage returned while the idle total would exceed this is freed instead.
    ///
    /// Default: [`PoolConfig::DEFAULT_MAX_IDLE_BYTES`] (16 MiB).
    pub max_idle_bytes: usize,
    /// Budget for the total capacity of the segments handed out and not yet returned (including
    /// storage kept alive by frozen [`Bytes`](bytes::Bytes)).
    /// [`BufferPool::try_get`](crate::BufferPool::try_get) refuses requests that would exceed it;
    /// [`BufferPool::get`](crate::BufferPool::get) ignores it.
    ///
    /// Default: [`PoolConfig::DEFAULT_MAX_OUTSTANDING_BYTES`] (256 MiB).
    pub max_outstanding_bytes: usize,
}

impl PoolConfig {
    /// Default size classes: 256 B, 4 KiB, 16 KiB, 64 KiB and 1 MiB.
    ///
    /// * 256 B: control frames (at most 125 bytes of payload plus a 14-byte header) and small
    ///   text messages;
    /// * 4 KiB: a page; typical small messages and handshake requests/responses;
    /// * 16 KiB: the maximum TLS record payload, a good socket read size;
    /// * 64 KiB: large socket reads and medium messages;
    /// * 1 MiB: assembling large messages. Anything larger is allocated exactly and not pooled.
    pub const DEFAULT_SIZE_CLASSES: [usize; 5] = [256, 4 * KIB, 16 * KIB, 64 * KIB, MIB];
    /// Default [`max_idle_bytes`](PoolConfig::max_idle_bytes): 16 MiB.
    pub const DEFAULT_MAX_IDLE_BYTES: usize = 16 * MIB;
    /// Default [`max_outstanding_bytes`](PoolConfig::max_outstanding_bytes): 256 MiB.
    pub const DEFAULT_MAX_OUTSTANDING_BYTES: usize = 256 * MIB;

    /// Same as [`PoolConfig::default()`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the size classes (any order; see [`PoolConfig::size_classes`]).
    #[must_use]
    pub fn with_size_classes(mut self, size_classes: impl Into<Vec<usize>>) -> Self {
        self.size_classes = size_classes.into();
        self
    }

    /// Sets [`PoolConfig::max_idle_bytes`].
    #[must_use]
    pub fn with_max_idle_bytes(mut self, max_idle_bytes: usize) -> Self {
        self.max_idle_bytes = max_idle_bytes;
        self
    }

    /// Sets [`PoolConfig::max_outstanding_bytes`].
    #[must_use]
    pub fn with_max_outstanding_bytes(mut self, max_outstanding_bytes: usize) -> Self {
        self.max_outstanding_bytes = max_outstanding_bytes;
        self
    }

    /// Sorted, deduplicated, allocatable, non-zero size classes.
    pub(crate) fn normalized(mut self) -> Self {
        self.size_classes
            .retain(|&class| class > 0 && class <= isize::MAX as usize);
        self.size_classes.sort_unstable();
        self.size_classes.dedup();
        self
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            size_classes: Self::DEFAULT_SIZE_CLASSES.to_vec(),
            max_idle_bytes: Self::DEFAULT_MAX_IDLE_BYTES,
            max_outstanding_bytes: Self::DEFAULT_MAX_OUTSTANDING_BYTES,
        }
    }
}
