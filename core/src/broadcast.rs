//! The broadcast queue: rumours waiting to ride on outgoing messages, each
//! sent a bounded number of times, least-sent and newest first.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use crate::message::MemberUpdate;
use crate::summary::Fnv64;
use crate::wire;

/// Queue order: fewest transmissions first, then newest first.
type Priority = (u32, Reverse<u64>);

#[derive(Debug)]
struct Queued {
    update: MemberUpdate,
    /// `wire::update_field_len(&update)`, computed once.
    size: usize,
}

/// Retransmit-limited rumour queue (one rumour per member: newer news about a
/// member replaces the older).
#[derive(Debug, Default)]
pub(crate) struct BroadcastQueue {
    queue: BTreeMap<Priority, Queued>,
    /// Lookup only (never iterated): where each member's rumour sits.
    by_member: HashMap<Arc<str>, Priority, BuildHasherDefault<Fnv64>>,
    next_seq: u64,
}

/// The smallest an update can encode to; packing stops below it.
const MIN_UPDATE_LEN: usize = 8;
/// Rumours too big for the room left that packing looks past before it
/// stops, so that a long queue costs no more than a short one per message.
const MAX_MISSES: usize = 8;

impl BroadcastQueue {
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queue a rumour, replacing any older one about the same member. Past
    /// `max` rumours, the most-sent oldest ones are dropped.
    pub(crate) fn push(&mut self, update: MemberUpdate, max: usize) {
        let name: Arc<str> = Arc::from(update.id.name());
        if let Some(old) = self.by_member.remove(&name) {
            self.queue.remove(&old);
        }
        let prio = (0, Reverse(self.next_seq));
        self.next_seq += 1;
        let size = wire::update_field_len(&update);
        self.queue.insert(prio, Queued { update, size });
        self.by_member.insert(name, prio);
        while self.queue.len() > max {
            if let Some((_, q)) = self.queue.pop_last() {
                self.by_member.remove(q.update.id.name());
            }
        }
    }

    /// Move rumours into `out` while they fit in `budget` bytes, each counted
    /// as one more transmission; those sent `limit` times leave the queue.
    /// Returns the bytes used.
    pub(crate) fn pack(&mut self, budget: usize, limit: u32, out: &mut Vec<MemberUpdate>) -> usize {
        let mut used = 0;
        let mut taken: Vec<Priority> = Vec::new();
        let mut misses = 0;
        for (prio, q) in &self.queue {
            if budget - used < MIN_UPDATE_LEN || misses == MAX_MISSES {
                break;
            }
            if q.size <= budget - used {
                used += q.size;
                taken.push(*prio);
            } else {
                misses += 1;
            }
        }
        for prio in taken {
            let q = self.queue.remove(&prio).expect("taken from the queue");
            out.push(q.update.clone());
            let sent = prio.0 + 1;
            if sent >= limit {
                self.by_member.remove(q.update.id.name());
            } else {
                let next = (sent, prio.1);
                if let Some(p) = self.by_member.get_mut(q.update.id.name()) {
                    *p = next;
                }
                self.queue.insert(next, q);
            }
        }
        used
    }

    /// A peer sent us news we already had. If we are still spreading the same
    /// news, count the duplicate as one of its transmissions: a rumour that
    /// keeps coming back is already widespread (Demers et al.'s "counter"
    /// rumour mongering, with duplicates as the feedback), so it yields room
    /// to fresher ones. Returns whether a queued rumour was aged.
    pub(crate) fn heard_again(&mut self, update: &MemberUpdate, weight: u32, limit: u32) -> bool {
        let Some(prio) = self.by_member.get(update.id.name()).copied() else {
            return false;
        };
        let Some(q) = self.queue.get(&prio) else {
            return false;
        };
        if q.update.incarnation != update.incarnation || q.update.state != update.state {
            return false;
        }
        let q = self.queue.remove(&prio).expect("looked up");
        let sent = prio.0.saturating_add(weight);
        if sent >= limit {
            self.by_member.remove(update.id.name());
        } else {
            let next = (sent, prio.1);
            if let Some(p) = self.by_member.get_mut(update.id.name()) {
                *p = next;
            }
            self.queue.insert(next, q);
        }
        true
    }

    /// Forget any rumour about `name` (its member was reaped).
    pub(crate) fn forget(&mut self, name: &str) {
        if let Some(p) = self.by_member.remove(name) {
            self.queue.remove(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{Incarnation, MemberState, NodeId};

    fn update(name: &str, inc: u32) -> MemberUpdate {
        MemberUpdate {
            id: NodeId::new(name, "127.0.0.1:1".parse().unwrap()).unwrap(),
            incarnation: Incarnation(inc),
            state: MemberState::Alive,
            by: None,
        }
    }

    fn names(v: &[MemberUpdate]) -> Vec<&str> {
        v.iter().map(|u| u.id.name()).collect()
    }

    #[test]
    fn newest_and_least_sent_first_until_the_limit() {
        let mut q = BroadcastQueue::default();
        q.push(update("a", 0), 100);
        q.push(update("b", 0), 100);
        let mut out = vec![];
        q.pack(1000, 2, &mut out);
        assert_eq!(names(&out), ["b", "a"]);
        q.push(update("c", 0), 100);
        out.clear();
        q.pack(1000, 2, &mut out);
        // c is unsent, so it leads; a and b reach their limit and leave.
        assert_eq!(names(&out), ["c", "b", "a"]);
        out.clear();
        q.pack(1000, 2, &mut out);
        assert_eq!(names(&out), ["c"]);
        assert!(q.is_empty());
    }

    #[test]
    fn newer_news_replaces_older_and_budget_is_respected() {
        let mut q = BroadcastQueue::default();
        q.push(update("a", 0), 100);
        q.push(update("a", 1), 100);
        assert_eq!(q.len(), 1);
        let one = wire::update_field_len(&update("a", 1));
        let mut out = vec![];
        assert_eq!(q.pack(one - 1, 4, &mut out), 0);
        assert!(out.is_empty());
        assert_eq!(q.pack(one, 4, &mut out), one);
        assert_eq!(out[0].incarnation, Incarnation(1));
    }

    #[test]
    fn bounded_by_dropping_the_most_sent() {
        let mut q = BroadcastQueue::default();
        q.push(update("old", 0), 2);
        let mut out = vec![];
        q.pack(1000, 10, &mut out);
        q.push(update("x", 0), 2);
        q.push(update("y", 0), 2);
        assert_eq!(q.len(), 2);
        out.clear();
        q.pack(1000, 10, &mut out);
        assert_eq!(names(&out), ["y", "x"]);
    }
}
