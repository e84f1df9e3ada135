//! What a node waits for: one list of its timers, in the order
//! [`handle_timeout`](super::Node::handle_timeout) runs them.
//!
//! The periodic timers are fixed slots owned by their parts; the timers
//! with many instances (relay waits, suspicions, grafts, queries, reaps,
//! tombstone collection) are kept by their parts in order of deadline, so
//! that each kind's next deadline is a lookup. The table asks each part
//! for that deadline rather than holding a copy that could go stale:
//! `poll_timeout` is the minimum over the kinds, and `handle_timeout` runs
//! only the kinds that are due.

use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::TimerPhase;
use crate::time::Time;

/// Every kind of timer a node has, in the order they run when several are
/// due at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// A ping-req relay's wait for the target's ack ran out: send a nack.
    Relay,
    /// A direct probe's ack did not come within the probe timeout: ask
    /// others to probe (ping-req).
    ProbeTimeout,
    /// The probe period: conclude the last probe, start the next.
    Probe,
    /// The gossip round: membership rumours and the data half (tree
    /// announcements, or the periodic push/pull modes).
    Gossip,
    /// The push-pull round: open anti-entropy exchanges.
    PushPull,
    /// Knock on the seeds again while the join is unanswered.
    JoinRetry,
    /// A suspicion timed out: the suspect is declared dead.
    Suspicion,
    /// A dead or left member is forgotten.
    Reap,
    /// Tombstones and events past their grace are collected.
    Collection,
    /// Data heard of but missing: graft from an announcer.
    Graft,
    /// A fresh read the owner did not answer: answer from the replica.
    Query,
}

impl Timer {
    /// All kinds, in running order.
    pub(crate) const ALL: [Timer; 11] = [
        Timer::Relay,
        Timer::ProbeTimeout,
        Timer::Probe,
        Timer::Gossip,
        Timer::PushPull,
        Timer::JoinRetry,
        Timer::Suspicion,
        Timer::Reap,
        Timer::Collection,
        Timer::Graft,
        Timer::Query,
    ];
}

/// The first tick of a periodic timer started at `now`: a random phase in
/// the period, or aligned to a multiple of it (lockstep).
pub(crate) fn first_tick(
    phase: TimerPhase,
    period: Duration,
    now: Time,
    rng: &mut ChaCha8Rng,
) -> Time {
    match phase {
        TimerPhase::Random => {
            now + Duration::from_micros(rng.random_range(0..period.as_micros().max(1) as u64))
        }
        TimerPhase::Aligned => {
            let p = period.as_micros().max(1) as u64;
            Time::from_micros(now.as_micros().div_ceil(p) * p)
        }
    }
}

/// The next tick of a periodic timer: one period on, unless the driver was
/// so late that it would already be due again.
pub(crate) fn advance(at: Time, period: Duration, now: Time) -> Time {
    let next = at + period;
    if next <= now {
        now + period
    } else {
        next
    }
}
