//! Unit tests.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use bytes::Bytes;

use crate::{BufferPool, BufferSegment, CapacityError, PoolConfig, PoolStats};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

fn small_pool() -> BufferPool {
    BufferPool::new(
        PoolConfig::default()
            .with_size_classes([64, 1024])
            .with_max_idle_bytes(4 * KIB)
            .with_max_outstanding_bytes(4 * KIB),
    )
}

#[test]
fn send_sync() {
    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send::<BufferSegment>();
    assert_send_sync::<BufferPool>();
    assert_send_sync::<PoolConfig>();
    assert_send_sync::<PoolStats>();
    assert_send_sync::<CapacityError>();
}

#[test]
fn default_config() {
    let config = PoolConfig::default();
    assert_eq!(config.size_classes, [256, 4 * KIB, 16 * KIB, 64 * KIB, MIB]);
    assert_eq!(config.max_idle_bytes, 16 * MIB);
    assert_eq!(config.max_outstanding_bytes, 256 * MIB);
    assert_eq!(PoolConfig::new(), config);
    assert_eq!(BufferPool::default().config(), &config);
}

#[test]
fn config_setters_and_normalization() {
    let pool = BufferPool::new(
        PoolConfig::default()
            .with_size_classes(vec![4096, 0, 512, 4096, usize::MAX, 128])
            .with_max_idle_bytes(7)
            .with_max_outstanding_bytes(9),
    );
    assert_eq!(pool.config().size_classes, [128, 512, 4096]);
    assert_eq!(pool.config().max_idle_bytes, 7);
    assert_eq!(pool.config().max_outstanding_bytes, 9);
}

#[test]
fn class_selection_picks_smallest_fitting_class() {
    let pool = BufferPool::default();
    let cases = [
        (0, 256),
        (1, 256),
        (256, 256),
        (257, 4 * KIB),
        (4 * KIB, 4 * KIB),
        (4 * KIB + 1, 16 * KIB),
        (16 * KIB, 16 * KIB),
        (16 * KIB + 1, 64 * KIB),
        (64 * KIB + 1, MIB),
        (MIB, MIB),
    ];
    for (request, expected) in cases {
        let segment = pool.get(request);
        assert_eq!(segment.capacity(), expected, "get({request})");
        assert!(segment.is_empty());
        let segment = pool.try_get(request).unwrap();
        assert_eq!(segment.capacity(), expected, "try_get({request})");
    }
    let stats = pool.stats();
    assert_eq!(stats.oversize, 0);
}

#[test]
fn new_storage_is_zeroed() {
    let pool = small_pool();
    let mut segment = pool.get(1000);
    assert!(segment.unfilled_mut().iter().all(|&b| b == 0));
    assert_eq!(segment.unfilled_mut().len(), 1024);
}

#[test]
fn reuse_is_a_hit_and_reuses_the_storage() {
    let pool = small_pool();
    let first = pool.get(10);
    let ptr = first.storage_ptr();
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.misses), (0, 1));
    assert_eq!(stats.outstanding_segments, 1);
    assert_eq!(stats.outstanding_bytes, 64);
    drop(first);

    let stats = pool.stats();
    assert_eq!(stats.outstanding_segments, 0);
    assert_eq!(stats.outstanding_bytes, 0);
    assert_eq!(stats.idle_segments, 1);
    assert_eq!(stats.idle_bytes, 64);
    assert_eq!(stats.recycled, 1);

    // Another class does not take it.
    let other = pool.get(100);
    assert_eq!(other.capacity(), 1024);
    assert_eq!(pool.stats().misses, 2);
    assert_eq!(pool.stats().idle_segments, 1);

    let second = pool.get(64);
    assert_eq!(second.storage_ptr(), ptr);
    assert!(second.is_empty(), "a reused segment starts empty");
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.misses), (1, 2));
    assert_eq!(stats.idle_segments, 0);
    assert_eq!(stats.idle_bytes, 0);
}

#[test]
fn reused_segment_starts_empty_even_if_storage_is_stale() {
    let pool = small_pool();
    let mut segment = pool.get(64);
    segment.extend_from_slice(b"secret");
    drop(segment);
    let mut segment = pool.get(64);
    assert_eq!(pool.stats().hits, 1);
    assert_eq!(segment.len(), 0);
    assert_eq!(segment.as_slice(), b"");
    // Stale bytes may show through the spare capacity (documented), but never as data.
    assert_eq!(segment.unfilled_mut().len(), 64);
}

#[test]
fn idle_cap_is_respected() {
    let pool = small_pool(); // 4 KiB idle max, classes 64 and 1024
    let segments: Vec<_> = (0..5).map(|_| pool.get(1024)).collect();
    assert_eq!(pool.stats().outstanding_bytes, 5 * KIB);
    drop(segments);
    let stats = pool.stats();
    assert_eq!(stats.idle_segments, 4);
    assert_eq!(stats.idle_bytes, 4 * KIB);
    assert_eq!(stats.recycled, 4);
    assert_eq!(stats.freed, 1);
    assert_eq!(stats.outstanding_segments, 0);
    assert_eq!(stats.outstanding_bytes, 0);

    // Full: a small one does not fit either.
    drop(pool.get(1));
    let stats = pool.stats();
    assert_eq!(stats.idle_segments, 4);
    assert_eq!(stats.idle_bytes, 4 * KIB);
    assert_eq!(stats.freed, 2);
}

#[test]
fn zero_idle_cap_pools_nothing() {
    let pool = BufferPool::new(PoolConfig::default().with_max_idle_bytes(0));
    drop(pool.get(10));
    drop(pool.get(10));
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.misses), (0, 2));
    assert_eq!(stats.idle_segments, 0);
    assert_eq!(stats.freed, 2);
}

#[test]
fn try_get_refuses_over_budget_and_recovers() {
    let pool = small_pool(); // 4 KiB budget
    let a = pool.try_get(1000).unwrap();
    let b = pool.try_get(1000).unwrap();
    let c = pool.try_get(1000).unwrap();
    assert_eq!(pool.outstanding_bytes(), 3 * KIB);
    assert!(!pool.is_over_budget());
    let d = pool.try_get(1000).unwrap();
    assert_eq!(pool.outstanding_bytes(), 4 * KIB);
    assert!(pool.is_over_budget());

    // Refused: no growth, no hit/miss, no blocking.
    assert!(pool.try_get(1).is_none());
    assert!(pool.try_get(1000).is_none());
    let stats = pool.stats();
    assert_eq!(stats.refused, 2);
    assert_eq!(stats.outstanding_segments, 4);
    assert_eq!(stats.hits + stats.misses, 4);

    // Recovery after a drop.
    drop(a);
    assert!(!pool.is_over_budget());
    assert!(pool.try_get(1000).is_some()); // the idle storage is reused
    assert_eq!(pool.stats().hits, 1);
    let small = pool.try_get(64).unwrap();
    assert_eq!(pool.outstanding_bytes(), 3 * KIB + 64);
    assert!(pool.try_get(1000).is_none());
    drop(small);
    let e = pool.try_get(1000).unwrap();
    drop((b, c, d, e));
    assert_eq!(pool.outstanding_bytes(), 0);
}

#[test]
fn try_get_counts_frozen_bytes_against_the_budget() {
    let pool = small_pool();
    let mut segment = pool.try_get(4 * KIB).unwrap(); // oversize: exactly 4 KiB
    segment.extend_from_slice(b"x");
    let bytes = segment.freeze();
    assert!(pool.try_get(1).is_none());
    let clone = bytes.clone();
    drop(bytes);
    assert!(pool.try_get(1).is_none());
    drop(clone);
    assert!(pool.try_get(1).is_some());
}

#[test]
fn try_get_refuses_oversize_beyond_budget_and_unallocatable() {
    let pool = small_pool();
    assert!(pool.try_get(4 * KIB + 1).is_none());
    assert!(pool.try_get(usize::MAX).is_none());
    let unlimited = BufferPool::new(PoolConfig::default().with_max_outstanding_bytes(usize::MAX));
    assert!(unlimited.try_get(usize::MAX).is_none());
    assert!(unlimited.try_get(isize::MAX as usize + 1).is_none());
    assert_eq!(unlimited.stats().refused, 2);
    assert_eq!(unlimited.outstanding_bytes(), 0);
}

#[test]
fn get_ignores_the_budget() {
    let pool = small_pool();
    let held: Vec<_> = (0..6).map(|_| pool.get(1024)).collect();
    assert_eq!(pool.outstanding_bytes(), 6 * KIB);
    assert!(pool.is_over_budget());
    assert!(pool.try_get(1).is_none());
    drop(held);
    assert!(!pool.is_over_budget());
}

#[test]
fn oversize_is_exact_and_not_pooled() {
    let pool = small_pool();
    let mut segment = pool.get(5000);
    assert_eq!(segment.capacity(), 5000);
    segment.extend_from_slice(&[1; 6000]);
    assert_eq!(segment.len(), 5000);
    let stats = pool.stats();
    assert_eq!((stats.hits, stats.misses, stats.oversize), (0, 1, 1));
    assert_eq!(stats.outstanding_bytes, 5000);
    drop(segment);
    let stats = pool.stats();
    assert_eq!(stats.idle_segments, 0);
    assert_eq!(stats.idle_bytes, 0);
    assert_eq!(stats.freed, 1);
    assert_eq!(stats.outstanding_bytes, 0);
    // Even with plenty of idle room, oversize storage is not kept.
    let roomy = BufferPool::new(
        PoolConfig::default()
            .with_size_classes([64])
            .with_max_idle_bytes(usize::MAX),
    );
    drop(roomy.get(65));
    assert_eq!(roomy.stats().idle_segments, 0);
    drop(roomy.get(65));
    let stats = roomy.stats();
    assert_eq!((stats.hits, stats.misses, stats.oversize), (0, 2, 2));
}

#[test]
fn empty_class_list_makes_everything_exact_size() {
    let pool = BufferPool::new(PoolConfig::default().with_size_classes(Vec::new()));
    assert_eq!(pool.get(0).capacity(), 0);
    assert_eq!(pool.get(17).capacity(), 17);
    assert_eq!(pool.try_get(33).unwrap().capacity(), 33);
    let stats = pool.stats();
    assert_eq!(stats.oversize, 3);
    assert_eq!(stats.idle_segments, 0);
    assert_eq!(stats.freed, 3);
}

#[test]
fn dropping_the_pool_before_segments_is_safe() {
    let pool = small_pool();
    let mut segment = pool.get(10);
    let mut oversize = pool.get(10_000);
    let mut frozen = pool.get(10);
    frozen.extend_from_slice(b"frozen");
    let frozen = frozen.freeze();
    drop(pool.get(10)); // leave something idle too
    drop(pool);

    segment.extend_from_slice(b"still usable");
    assert_eq!(&segment[..], b"still usable");
    oversize.extend_from_slice(b"x");
    drop(segment);
    drop(oversize);
    assert_eq!(frozen, &b"frozen"[..]);
    let clone = frozen.clone();
    drop(frozen);
    assert_eq!(clone, &b"frozen"[..]);
    drop(clone);
}

#[test]
fn clones_share_the_pool() {
    let pool = small_pool();
    let clone = pool.clone();
    drop(clone.get(10));
    assert_eq!(pool.stats().idle_segments, 1);
    // A segment from a clone outlives that clone and still returns to the shared pool.
    let segment = clone.get(10);
    drop(clone);
    assert_eq!(pool.stats().hits, 1);
    drop(segment);
    assert_eq!(pool.stats().idle_segments, 1);
}

#[test]
fn trim_frees_idle_storage_only() {
    let pool = small_pool();
    let held = pool.get(1024);
    drop(pool.get(10));
    drop(pool.get(1000));
    let stats = pool.stats();
    assert_eq!(stats.idle_segments, 2);
    assert_eq!(stats.idle_bytes, 64 + 1024);
    pool.trim();
    let stats = pool.stats();
    assert_eq!(stats.idle_segments, 0);
    assert_eq!(stats.idle_bytes, 0);
    assert_eq!(stats.freed, 2);
    assert_eq!(stats.outstanding_segments, 1);
    drop(held);
    let stats = pool.stats();
    assert_eq!(stats.idle_segments, 1);
    assert_eq!(stats.misses, stats.freed + stats.idle_segments as u64);
    pool.trim();
    pool.trim();
    assert_eq!(pool.stats().idle_bytes, 0);
}

#[test]
fn exposes_exactly_the_filled_bytes() {
    let pool = small_pool();
    let mut segment = pool.get(64);
    assert_eq!(segment.len(), 0);
    assert!(segment.is_empty());
    assert_eq!(segment.capacity(), 64);
    assert_eq!(segment.remaining_capacity(), 64);
    assert!(segment.as_ref().is_empty());
    assert!(segment.as_slice().is_empty());
    assert!(segment.as_mut_slice().is_empty());
    assert!(segment.as_mut().is_empty());
    assert!(segment.iter().next().is_none());

    assert_eq!(segment.extend_from_slice(b"abc"), 3);
    assert_eq!(segment.len(), 3);
    assert!(!segment.is_empty());
    assert_eq!(segment.remaining_capacity(), 61);
    assert_eq!(segment.as_ref(), b"abc");
    assert_eq!(segment.as_slice(), b"abc");
    assert_eq!(&*segment, b"abc");
    assert_eq!(segment.len(), (*segment).len());

    segment.as_mut()[0] = b'x';
    segment.as_mut_slice()[1] = b'y';
    segment[2] = b'z';
    assert_eq!(segment.as_slice(), b"xyz");
    assert_eq!(segment.as_mut_slice().len(), 3);
}

#[test]
fn extend_from_slice_copies_what_fits() {
    let pool = small_pool();
    let mut segment = pool.get(64);
    let data: Vec<u8> = (0..100).collect();
    assert_eq!(segment.extend_from_slice(&data[..60]), 60);
    assert_eq!(segment.extend_from_slice(&data[60..]), 4);
    assert_eq!(segment.len(), 64);
    assert!(segment.is_full());
    assert_eq!(segment.remaining_capacity(), 0);
    assert_eq!(segment.as_slice(), &data[..64]);
    assert_eq!(segment.extend_from_slice(b"more"), 0);
    assert_eq!(segment.extend_from_slice(b""), 0);
    assert_eq!(segment.as_slice(), &data[..64]);
}

#[test]
fn try_extend_from_slice_is_all_or_nothing() {
    let pool = small_pool();
    let mut segment = pool.get(64);
    segment.try_extend_from_slice(&[7; 60]).unwrap();
    let err = segment.try_extend_from_slice(b"hello").unwrap_err();
    assert_eq!(err.requested(), 5);
    assert_eq!(err.available(), 4);
    assert_eq!(
        err.to_string(),
        "cannot append 5 bytes to a buffer segment with 4 bytes of remaining capacity"
    );
    assert_eq!(segment.len(), 60, "nothing copied on error");
    segment.try_extend_from_slice(b"four").unwrap();
    segment.try_extend_from_slice(b"").unwrap();
    assert!(segment.is_full());
    let err: Box<dyn std::error::Error> =
        Box::new(segment.try_extend_from_slice(b"!").unwrap_err());
    assert!(err.to_string().contains("0 bytes"));
}

#[test]
fn unfilled_mut_then_advance() {
    let pool = small_pool();
    let mut segment = pool.get(64);
    segment.extend_from_slice(b"ab");
    let spare = segment.unfilled_mut();
    assert_eq!(spare.len(), 62);
    spare[..3].copy_from_slice(b"cde");
    spare[3] = b'!'; // written but not advanced over: not exposed
    segment.advance(3);
    assert_eq!(segment.as_slice(), b"abcde");
    assert_eq!(segment.unfilled_mut()[0], b'!');
    segment.advance(0);
    assert_eq!(segment.len(), 5);
    let rest = segment.remaining_capacity();
    segment.advance(rest);
    assert!(segment.is_full());
    assert!(segment.unfilled_mut().is_empty());
}

#[test]
#[should_panic(expected = "exceeds the remaining capacity")]
fn advance_past_capacity_panics() {
    let pool = small_pool();
    let mut segment = pool.get(64);
    segment.extend_from_slice(b"abc");
    segment.advance(62);
}

#[test]
fn clear_and_truncate() {
    let pool = small_pool();
    let mut segment = pool.get(64);
    segment.extend_from_slice(b"hello world");
    segment.truncate(100);
    assert_eq!(segment.as_slice(), b"hello world");
    segment.truncate(5);
    assert_eq!(segment.as_slice(), b"hello");
    assert_eq!(segment.remaining_capacity(), 59);
    segment.clear();
    assert!(segment.is_empty());
    assert_eq!(segment.capacity(), 64);
    segment.extend_from_slice(b"again");
    assert_eq!(segment.as_slice(), b"again");
    segment.truncate(0);
    assert!(segment.is_empty());
}

#[test]
fn debug_shows_len_and_capacity_not_contents() {
    let pool = small_pool();
    let mut segment = pool.get(64);
    segment.extend_from_slice(b"SECRETDATA");
    let text = format!("{segment:?}");
    assert!(text.contains("len: 10"), "{text}");
    assert!(text.contains("capacity: 64"), "{text}");
    assert!(!text.contains("SECRET"), "{text}");
    assert!(!text.contains("83"), "{text}"); // b'S' as a number
    let pool_text = format!("{pool:?}");
    assert!(pool_text.contains("outstanding_segments: 1"), "{pool_text}");
}

#[test]
fn io_write_appends_until_full() {
    let pool = small_pool();
    let mut segment = pool.get(64);
    let n = 12;
    write!(segment, "ab-{n}").unwrap();
    assert_eq!(segment.as_slice(), b"ab-12");
    segment.flush().unwrap();
    let err = segment.write_all(&[0; 100]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WriteZero);
    assert!(segment.is_full());
    assert_eq!(segment.write(b"x").unwrap(), 0);
}

#[test]
fn freeze_is_zero_copy_and_exposes_only_filled_bytes() {
    let pool = small_pool();
    let mut segment = pool.get(1024);
    segment.extend_from_slice(b"payload");
    let ptr = segment.as_slice().as_ptr();
    let bytes = segment.freeze();
    assert_eq!(bytes.as_ptr(), ptr, "no copy");
    assert_eq!(bytes.len(), 7);
    assert_eq!(bytes, &b"payload"[..]);
    let tail = bytes.slice(3..);
    assert_eq!(tail.as_ptr(), ptr.wrapping_add(3));
    assert_eq!(tail, &b"load"[..]);
}

#[test]
fn frozen_storage_returns_after_the_last_clone() {
    let pool = small_pool();
    let mut segment = pool.get(1000);
    segment.extend_from_slice(b"hello");
    let ptr = segment.as_slice().as_ptr();
    let bytes = segment.freeze();
    let clone = bytes.clone();
    let slice = bytes.slice(1..3);
    let idle = || pool.stats().idle_segments;
    assert_eq!(pool.stats().outstanding_segments, 1);
    assert_eq!(idle(), 0);

    drop(bytes);
    assert_eq!(idle(), 0);
    assert_eq!(clone, &b"hello"[..]);
    drop(clone);
    assert_eq!(idle(), 0);
    assert_eq!(pool.stats().outstanding_segments, 1);
    assert_eq!(slice, &b"el"[..]);
    drop(slice);
    let stats = pool.stats();
    assert_eq!(stats.idle_segments, 1);
    assert_eq!(stats.idle_bytes, 1024);
    assert_eq!(stats.outstanding_segments, 0);
    assert_eq!(stats.outstanding_bytes, 0);

    // And it is the same storage that is handed out next.
    let reused = pool.get(1024);
    assert_eq!(pool.stats().hits, 1);
    assert_eq!(reused.storage_ptr(), ptr);
}

#[test]
fn freeze_survives_sending_to_another_thread() {
    let pool = small_pool();
    let mut segment = pool.get(64);
    segment.extend_from_slice(b"across");
    let bytes = segment.freeze();
    let handle = std::thread::spawn(move || bytes == Bytes::from_static(b"across"));
    assert!(handle.join().unwrap());
    assert_eq!(pool.stats().idle_segments, 1);
}

#[test]
fn freezing_an_empty_segment_returns_storage_immediately() {
    let pool = small_pool();
    let bytes = pool.get(10).freeze();
    assert!(bytes.is_empty());
    let stats = pool.stats();
    assert_eq!(stats.outstanding_segments, 0);
    assert_eq!(stats.idle_segments, 1);
}

#[test]
fn stats_track_outstanding_segments() {
    let pool = small_pool();
    let a = pool.get(1);
    let b = pool.get(100);
    let c = pool.get(2000);
    let stats = pool.stats();
    assert_eq!(stats.outstanding_segments, 3);
    assert_eq!(stats.outstanding_bytes, 64 + 1024 + 2000);
    assert_eq!(pool.outstanding_bytes(), stats.outstanding_bytes);
    drop((a, b, c));
    assert_eq!(
        pool.stats(),
        PoolStats {
            outstanding_segments: 0,
            outstanding_bytes: 0,
            idle_segments: 2,
            idle_bytes: 64 + 1024,
            hits: 0,
            misses: 3,
            oversize: 1,
            refused: 0,
            recycled: 2,
            freed: 1,
        }
    );
}

/// Test helper: the start of a segment's storage (filled or not).
trait StoragePtr {
    fn storage_ptr(&self) -> *const u8;
}

impl StoragePtr for BufferSegment {
    fn storage_ptr(&self) -> *const u8 {
        self.as_slice().as_ptr()
    }
}

#[test]
fn can_get_answers_like_try_get_without_taking() {
    let pool = small_pool();
    let mut held = Vec::new();
    for _ in 0..8 {
        let can = pool.can_get(1000);
        let before = pool.outstanding_bytes();
        assert_eq!(pool.outstanding_bytes(), before, "can_get takes nothing");
        match pool.try_get(1000) {
            Some(seg) => {
                assert!(can, "try_get granted what can_get refused");
                held.push(seg);
            }
            None => assert!(!can, "can_get promised what try_get refused"),
        }
    }
    assert_eq!(held.len(), 4, "4 KiB budget, 1 KiB segments");
    assert!(!pool.can_get(1));
    held.pop();
    assert!(pool.can_get(1000));
    assert!(!pool.can_get(usize::MAX));
}
