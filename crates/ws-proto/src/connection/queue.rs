//! A queue that costs one pointer while it has never been used (or was
//! released): most connections never queue a control frame or a pong, and
//! an idle one has no event waiting.

use std::collections::vec_deque::{self, VecDeque};
use std::ops::RangeBounds;

/// A `VecDeque` allocated on the first push and freed by
/// [`release`](Self::release) once empty. Its methods are those of
/// `VecDeque` the connection uses.
// The box is the point: one pointer in the connection instead of a
// `VecDeque`'s four words while the queue is unused.
#[allow(clippy::box_collection)]
pub(super) struct LazyQueue<T>(Option<Box<VecDeque<T>>>);

impl<T> Default for LazyQueue<T> {
    fn default() -> Self {
        LazyQueue(None)
    }
}

impl<T> LazyQueue<T> {
    pub(super) fn new() -> Self {
        Self::default()
    }

    fn make(&mut self) -> &mut VecDeque<T> {
        self.0.get_or_insert_with(Box::default)
    }

    pub(super) fn push_back(&mut self, v: T) {
        self.make().push_back(v);
    }

    pub(super) fn pop_front(&mut self) -> Option<T> {
        self.0.as_mut()?.pop_front()
    }

    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn clear(&mut self) {
        if let Some(q) = self.0.as_mut() {
            q.clear();
        }
    }

    pub(super) fn get(&self, i: usize) -> Option<&T> {
        self.0.as_ref()?.get(i)
    }

    pub(super) fn iter(&self) -> vec_deque::Iter<'_, T> {
        self.0.as_ref().map(|q| q.iter()).unwrap_or_default()
    }

    pub(super) fn drain<R: RangeBounds<usize>>(&mut self, range: R) -> vec_deque::Drain<'_, T> {
        self.make().drain(range)
    }

    /// Whether it holds an allocation but no item.
    pub(super) fn has_spare(&self) -> bool {
        self.0.is_some() && self.is_empty()
    }

    /// Frees the allocation if the queue is empty.
    pub(super) fn release(&mut self) {
        if self.is_empty() {
            self.0 = None;
        }
    }
}
