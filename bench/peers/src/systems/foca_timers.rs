//! foca's timer events, delivered in deadline order (then in the order
//! they were asked for), as foca requires of its runtime.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use foca::Timer;
use tokio::time::Instant;

pub struct Timers<T> {
    order: BinaryHeap<Reverse<(Instant, u64)>>,
    events: HashMap<u64, Timer<T>>,
    next: u64,
}

impl<T> Timers<T> {
    pub fn new() -> Timers<T> {
        Timers {
            order: BinaryHeap::new(),
            events: HashMap::new(),
            next: 0,
        }
    }

    pub fn add(&mut self, at: Instant, event: Timer<T>) {
        self.order.push(Reverse((at, self.next)));
        self.events.insert(self.next, event);
        self.next += 1;
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.order.peek().map(|Reverse((at, _))| *at)
    }

    /// The next event due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer<T>> {
        let Reverse((at, seq)) = *self.order.peek()?;
        if at > now {
            return None;
        }
        self.order.pop();
        self.events.remove(&seq)
    }
}
