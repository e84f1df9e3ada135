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

use super::Node;
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
    /// Knock on the seeds again while the join is unanswered, walk the
    /// seed once more, or send again a push-pull page whose answer has not
    /// come.
    JoinRetry,
    /// A suspicion timed out: the suspect is declared dead.
    Suspicion,
    /// A dead or left member is forgotten.
    Reap,
    /// Tombstones and events past their grace are collected.
    Collection,
    /// Data heard of but missing: graft from an announcer.
    Graft,
    /// Membership news held for `tree.news_hold` goes down the tree.
    NewsPush,
    /// Fresh data noted on a lossy network is announced off the tree.
    Announce,
    /// A fresh read the owner did not answer: answer from the replica.
    Query,
}

impl Timer {
    /// All kinds, in running order.
    pub(crate) const ALL: [Timer; 13] = [
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
        Timer::NewsPush,
        Timer::Announce,
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

impl Node {
    /// The earliest deadline over every timer.
    pub(super) fn next_deadline(&self) -> Option<Time> {
        Timer::ALL.iter().filter_map(|t| self.deadline(*t)).min()
    }

    /// Run every timer due at `now`, in the order of [`Timer::ALL`]. Each
    /// is checked when its turn comes, as an earlier one may have moved it.
    pub(super) fn run_due(&mut self, now: Time) {
        for timer in Timer::ALL {
            if self.deadline(timer).is_some_and(|at| at <= now) {
                self.run(timer);
            }
        }
    }

    /// When `timer` is next due, if it is set.
    fn deadline(&self, timer: Timer) -> Option<Time> {
        match timer {
            Timer::Relay => self.probe.relay_deadline(),
            Timer::ProbeTimeout => self.probe.ack_deadline(),
            Timer::Probe => Some(self.probe.period_deadline()),
            Timer::Gossip => Some(self.gossip.deadline()),
            Timer::PushPull => Some(self.anti_entropy.deadline()),
            Timer::JoinRetry => self.anti_entropy.join_deadline(),
            Timer::Suspicion => self.membership.suspicion_deadline(),
            Timer::Reap => self.membership.reap_deadline(),
            Timer::Collection => self.replicas.collection_deadline(),
            Timer::Graft => self.tree.graft_deadline(),
            Timer::NewsPush => self.tree.news_deadline(),
            Timer::Announce => self.tree.soon_deadline(),
            Timer::Query => self.queries.deadline(),
        }
    }

    /// Run one due timer.
    fn run(&mut self, timer: Timer) {
        let (cx, m, r) = (&mut self.cx, &mut self.membership, &mut self.replicas);
        match timer {
            Timer::Relay => self.probe.expire_relays(cx),
            Timer::ProbeTimeout => self.probe.ack_timed_out(cx, m),
            Timer::Probe => {
                if let Some((suspect, failure)) = self.probe.conclude(cx, m) {
                    let after = m.apply_found(cx, &suspect, failure);
                    self.follow_up(after);
                }
                let (cx, m) = (&mut self.cx, &mut self.membership);
                self.probe.start(cx, m);
                self.replicas.audit(cx, m);
                if self.probe.lossy(self.cx.now) {
                    self.repair_round();
                }
            }
            Timer::Gossip => {
                r.checkpoint_own();
                self.gossip.tick(cx);
                self.gossip_round();
            }
            Timer::PushPull => {
                let lossy = self.probe.lossy(cx.now);
                self.anti_entropy.round(cx, m, r, lossy);
                self.tree.expire(cx.now, cx.config.push_pull_interval);
            }
            Timer::JoinRetry => self.anti_entropy.retry_join(cx, m, r),
            Timer::Suspicion => {
                for after in m.expire_suspicions(cx) {
                    self.follow_up(after);
                }
            }
            Timer::Reap => {
                for name in m.reap(cx) {
                    r.forget(&name);
                }
            }
            Timer::Collection => r.collect_garbage(cx.now),
            Timer::Graft => self.tree.graft_missing(cx, m, r),
            Timer::NewsPush => self.tree.push_held(cx),
            Timer::Announce => self.tree.announce_noted(cx, m),
            Timer::Query => self.queries.expire(cx, r),
        }
    }
}
