//! The counting global allocator: one wrapper over [`System`] that keeps,
//! for each thread, two tallies:
//!
//! - the number of allocation calls (`alloc`, `alloc_zeroed`, `realloc`):
//!   [`allocations`], [`count`]. The zero-allocation tests and the `allocs`
//!   benchmark read it;
//! - the heap balance (bytes allocated minus bytes freed) and its peak since
//!   [`heap_reset`]: [`heap_peak`]. The hostile-peer suites bound with it the
//!   heap growth of the thread under attack (a ws-std connection thread, a
//!   ws-mio loop thread), whatever the attacker's threads allocate meanwhile.
//!
//! Both tallies belong to the thread that allocates, so tests running in
//! parallel in one binary do not see each other's allocations. A thread
//! reads its own tallies; to measure another thread (a server under test)
//! from the test thread, that thread calls [`watch_this_thread`] and its
//! allocation calls are also added to one shared count,
//! [`watched_allocations`], which any thread reads.
//!
//! A `#[global_allocator]` must be declared in each test binary (the
//! attribute does not cross crates): [`counting_allocator!`] declares it.
//! Without it every tally stays at zero; [`installed`] tells.
//!
//! [`counting_allocator!`]: crate::counting_allocator

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    /// Allocation calls made on this thread.
    static CALLS: Cell<u64> = const { Cell::new(0) };
    /// Bytes allocated minus bytes freed on this thread since `heap_reset`.
    static BALANCE: Cell<isize> = const { Cell::new(0) };
    /// The largest `BALANCE` since `heap_reset`.
    static PEAK: Cell<isize> = const { Cell::new(0) };
    /// This thread's allocation calls also go to `WATCHED`.
    static IS_WATCHED: Cell<bool> = const { Cell::new(false) };
}

/// Allocation calls made on the watched threads since they were watched.
static WATCHED: AtomicU64 = AtomicU64::new(0);

/// Notes an allocation call that moved the heap balance by `bytes`.
///
/// `try_with` throughout: a thread-local being torn down is never touched
/// (these are const-initialised and need no destructor, so they never
/// allocate either).
fn note(call: bool, bytes: isize) {
    if call {
        let _ = CALLS.try_with(|c| c.set(c.get() + 1));
        if IS_WATCHED.try_with(Cell::get).unwrap_or(false) {
            WATCHED.fetch_add(1, Ordering::SeqCst);
        }
    }
    let _ = BALANCE.try_with(|b| {
        let v = b.get() + bytes;
        b.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

/// The counting allocator: forwards everything to [`System`] and keeps the
/// per-thread tallies of this module. Declare it with
/// [`counting_allocator!`](crate::counting_allocator).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

// SAFETY: every call is forwarded to `System` unchanged; the tallies are
// const-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(l) };
        note(true, if p.is_null() { 0 } else { size(l.size()) });
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(l) };
        note(true, if p.is_null() { 0 } else { size(l.size()) });
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(p, l) };
        note(false, -size(l.size()));
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let q = unsafe { System.realloc(p, l, new) };
        note(
            true,
            if q.is_null() {
                0
            } else {
                size(new) - size(l.size())
            },
        );
        q
    }
}

/// An allocation size as a balance step (sizes never exceed `isize::MAX`).
fn size(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

/// Allocation calls (`alloc`, `alloc_zeroed`, `realloc`) made on this
/// thread so far.
pub fn allocations() -> u64 {
    CALLS.try_with(Cell::get).unwrap_or(0)
}

/// From now on, the allocation calls of this thread are also counted in
/// [`watched_allocations`], which other threads can read: a test measures
/// the thread of the server under test from its own thread.
pub fn watch_this_thread() {
    let _ = IS_WATCHED.try_with(|w| w.set(true));
}

/// Allocation calls made so far on the threads that called
/// [`watch_this_thread`] (after they called it), read from any thread. A
/// test takes the difference between two reads; the count is shared by the
/// whole binary, so watch one thread at a time.
pub fn watched_allocations() -> u64 {
    WATCHED.load(Ordering::SeqCst)
}

/// Runs `f` and returns the allocation calls it made on this thread, with
/// its result.
pub fn count<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = allocations();
    let r = f();
    (allocations() - before, r)
}

/// Starts measuring this thread's heap growth from now.
pub fn heap_reset() {
    let _ = BALANCE.try_with(|b| b.set(0));
    let _ = PEAK.try_with(|p| p.set(0));
}

/// The largest heap growth (bytes allocated minus bytes freed) of this
/// thread since [`heap_reset`] (or since it started).
pub fn heap_peak() -> usize {
    PEAK.try_with(|p| usize::try_from(p.get()).unwrap_or(0))
        .unwrap_or(0)
}

/// The heap balance of this thread now: bytes allocated minus bytes freed
/// since [`heap_reset`] (or since it started). Negative when the thread
/// freed more than it allocated since then. Take the difference of two
/// reads to measure what the thread holds for something (e.g. idle
/// connections) without counting transient allocations.
pub fn heap_balance() -> isize {
    BALANCE.try_with(Cell::get).unwrap_or(0)
}

/// Whether [`CountingAlloc`] is this binary's global allocator (an
/// allocation made now is counted).
pub fn installed() -> bool {
    let (n, b) = count(|| Box::new(std::hint::black_box(7u64)));
    drop(std::hint::black_box(b));
    n > 0
}

/// Declares [`CountingAlloc`] as the global allocator of the binary it is
/// written in (a test file or a benchmark):
///
/// ```
/// ws_testkit::counting_allocator!();
///
/// fn main() {
///     assert!(ws_testkit::alloc::installed());
///     let (n, v) = ws_testkit::alloc::count(|| vec![1u8; 64]);
///     assert_eq!((n, v.len()), (1, 64));
/// }
/// ```
#[macro_export]
macro_rules! counting_allocator {
    () => {
        #[global_allocator]
        static COUNTING_ALLOC: $crate::alloc::CountingAlloc = $crate::alloc::CountingAlloc;
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::counting_allocator!();

    #[test]
    fn heap_growth_is_the_peak_of_this_thread() {
        heap_reset();
        let big = std::hint::black_box(vec![0u8; 1 << 20]);
        drop(big);
        let small = std::hint::black_box(vec![0u8; 1 << 10]);
        let peak = heap_peak();
        assert!((1 << 20..2 << 20).contains(&peak), "{peak}");
        // Another thread's allocations are its own.
        std::thread::spawn(|| drop(std::hint::black_box(vec![0u8; 8 << 20])))
            .join()
            .unwrap();
        assert_eq!(heap_peak(), peak);
        drop(small);
    }

    #[test]
    fn a_watched_thread_is_counted_from_another() {
        let (ready, go) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let t = std::thread::spawn(move || {
            watch_this_thread();
            ready.0.send(()).unwrap();
            go.1.recv().unwrap();
            for i in 0..100u32 {
                drop(std::hint::black_box(Box::new(i)));
            }
        });
        ready.1.recv().unwrap();
        let before = watched_allocations();
        go.0.send(()).unwrap();
        t.join().unwrap();
        // At least the hundred boxes (a test running in parallel may watch
        // a thread too).
        assert!(watched_allocations() - before >= 100);
    }

    #[test]
    fn count_sees_every_allocation_call_of_this_thread() {
        let (n, v) = count(|| {
            let mut v = Vec::with_capacity(1);
            v.extend_from_slice(&[1u8; 100]); // a realloc
            v
        });
        assert_eq!((n, v.len()), (2, 100));
        let (n, ()) = count(|| {
            std::thread::spawn(|| {
                for i in 0..1000u32 {
                    drop(std::hint::black_box(Box::new(i)));
                }
            })
            .join()
            .unwrap();
        });
        // Spawning allocates here; the other thread's thousand boxes are
        // not counted.
        assert!(n > 0 && n < 100, "{n}");
    }
}
