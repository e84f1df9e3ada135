//! The simulator's event queue: events by time, and those of one instant
//! in the order they were scheduled.
//!
//! A radix heap (Ahuja, Mehlhorn, Orlin and Tarjan, "Faster algorithms for
//! the shortest path problem", 1990): the simulated clock never goes back,
//! so every event scheduled is at or after the last one taken, and an
//! event waits in the bucket of the highest bit in which its time differs
//! from that last one. Taking the next event empties the lowest bucket
//! into lower ones around its earliest time. An event is appended where
//! it goes and a bucket is emptied in order, so events of one instant
//! leave in the order they came: the same order as a binary heap on (time,
//! sequence number), whose every push and pop walked a path of the heap.

use std::collections::VecDeque;

/// Events of type `T` by time (in microseconds), first in first out
/// within one instant.
#[derive(Debug)]
pub(crate) struct EventQueue<T> {
    /// The time of the last event taken (bucket 0 holds events at it).
    last: u64,
    /// Bucket `b > 0` holds events whose time first differs from `last` in
    /// bit `b - 1`, counted from the least significant.
    buckets: Vec<VecDeque<(u64, T)>>,
    len: usize,
    /// Events scheduled before the last one taken (none in a run whose
    /// clock only moves forward), with their sequence numbers: each is
    /// earlier than every event in the buckets.
    late: Vec<(u64, u64, T)>,
    seq: u64,
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        EventQueue {
            last: 0,
            buckets: (0..=64).map(|_| VecDeque::new()).collect(),
            len: 0,
            late: Vec::new(),
            seq: 0,
        }
    }
}

impl<T> EventQueue<T> {
    fn bucket(&self, at: u64) -> usize {
        (u64::BITS - (at ^ self.last).leading_zeros()) as usize
    }

    /// Schedule `event` at `at`.
    pub(crate) fn push(&mut self, at: u64, event: T) {
        self.seq += 1;
        self.len += 1;
        if at < self.last {
            self.late.push((at, self.seq, event));
            return;
        }
        let b = self.bucket(at);
        self.buckets[b].push_back((at, event));
    }

    /// The time of the next event, if any.
    pub(crate) fn next_at(&mut self) -> Option<u64> {
        if let Some(at) = self.late.iter().map(|e| e.0).min() {
            return Some(at);
        }
        self.fill_first();
        self.buckets[0].front().map(|e| e.0)
    }

    /// Take the next event: the earliest, and of those the first scheduled.
    pub(crate) fn pop(&mut self) -> Option<(u64, T)> {
        if !self.late.is_empty() {
            let first = (0..self.late.len())
                .min_by_key(|&i| (self.late[i].0, self.late[i].1))
                .expect("not empty");
            let (at, _, event) = self.late.remove(first);
            self.len -= 1;
            return Some((at, event));
        }
        self.fill_first();
        let next = self.buckets[0].pop_front()?;
        self.len -= 1;
        Some(next)
    }

    /// How many events wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// If bucket 0 is empty, move the lowest non-empty bucket down around
    /// its earliest time, which becomes `last`.
    fn fill_first(&mut self) {
        if !self.buckets[0].is_empty() {
            return;
        }
        let Some(b) = (1..self.buckets.len()).find(|&b| !self.buckets[b].is_empty()) else {
            return;
        };
        let moving = std::mem::take(&mut self.buckets[b]);
        self.last = moving.iter().map(|e| e.0).min().expect("not empty");
        for (at, event) in moving {
            let to = self.bucket(at);
            self.buckets[to].push_back((at, event));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    proptest! {
        /// Against a binary heap on (time, sequence number): the same
        /// events in the same order, whatever the pushes and pops between.
        #[test]
        fn events_leave_as_a_heap_on_time_and_sequence_would_give_them(
            ops in proptest::collection::vec((any::<bool>(), 0u64..3, 0u64..2_000), 1..400),
        ) {
            let mut q = EventQueue::default();
            let mut heap = BinaryHeap::new();
            let (mut now, mut seq) = (0u64, 0u64);
            for (pop, scale, delay) in ops {
                if pop {
                    let want = heap.pop().map(|Reverse((at, _, id))| (at, id));
                    prop_assert_eq!(q.next_at(), want.map(|w| w.0));
                    let got = q.pop();
                    prop_assert_eq!(got, want);
                    if let Some((at, _)) = got {
                        now = at;
                    }
                } else {
                    // Now, soon, or far: ties at one instant are common.
                    let at = now + delay * [0, 1, 1_000][scale as usize];
                    seq += 1;
                    q.push(at, seq);
                    heap.push(Reverse((at, seq, seq)));
                }
                prop_assert_eq!(q.len(), heap.len());
            }
            while let Some(Reverse((at, _, id))) = heap.pop() {
                prop_assert_eq!(q.pop(), Some((at, id)));
            }
            prop_assert_eq!(q.pop(), None);
        }
    }

    #[test]
    fn an_event_scheduled_before_the_last_taken_still_comes_first() {
        let mut q = EventQueue::default();
        q.push(10, "a");
        q.push(20, "b");
        assert_eq!(q.pop(), Some((10, "a")));
        q.push(5, "late");
        q.push(5, "later");
        q.push(10, "c");
        assert_eq!(q.next_at(), Some(5));
        assert_eq!(q.pop(), Some((5, "late")));
        assert_eq!(q.pop(), Some((5, "later")));
        assert_eq!(q.pop(), Some((10, "c")));
        assert_eq!(q.pop(), Some((20, "b")));
        assert_eq!(q.pop(), None);
    }
}
