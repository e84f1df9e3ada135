//! The broadcast queue: rumours waiting to ride on outgoing messages, each
//! sent a bounded number of times: urgent ones first (Lifeguard puts a
//! refutation and a leave ahead of other news), then least-sent and newest
//! first.

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;

use crate::identity::{PublicKey, Signature, Word};
use crate::member::{ByName, Incarnation, MemberState, NodeId};
use crate::message::MemberUpdate;
use crate::summary::KeyedFnv;
use crate::wire;

/// Something the queue spreads: news with a key, where newer news under the
/// same key replaces the older.
pub(crate) trait Rumour: Clone {
    /// What identifies the news.
    type Key: Clone + Eq + Hash;
    fn key(&self) -> Self::Key;
    /// Whether `other` is the very same news (not just the same key).
    fn same_news(&self, other: &Self) -> bool;
}

/// A membership rumour as the queue keeps it: a [`MemberUpdate`] whose
/// word (the member's key and signature, 96 bytes) sits behind a shared
/// pointer, the one its table entry holds, or is left out, as an
/// accusation travels. In a cold start each of n nodes queues up to
/// `max_broadcasts` rumours (at 10,000 nodes every queue was full), each
/// carrying its word inline before.
#[derive(Clone, Debug)]
pub(crate) struct News {
    id: NodeId,
    incarnation: Incarnation,
    state: MemberState,
    by: Option<Arc<str>>,
    word: Option<Arc<Word>>,
}

impl News {
    /// `update` as queued, with `word` its key and signature (none for an
    /// update whose word is left out).
    pub(crate) fn new(update: MemberUpdate, word: Option<Arc<Word>>) -> News {
        News {
            id: update.id,
            incarnation: update.incarnation,
            state: update.state,
            by: update.by,
            word,
        }
    }

    /// The update as it goes on the wire.
    pub(crate) fn update(&self) -> MemberUpdate {
        let (key, signature) = match &self.word {
            Some(w) => (w.key, w.signature),
            None => (PublicKey::default(), Signature::default()),
        };
        MemberUpdate {
            id: self.id.clone(),
            incarnation: self.incarnation,
            state: self.state,
            by: self.by.clone(),
            key,
            signature,
        }
    }

    /// Whether `u` is this very news (the same incarnation and state).
    pub(crate) fn is(&self, u: &MemberUpdate) -> bool {
        self.incarnation == u.incarnation && self.state == u.state
    }
}

impl Rumour for News {
    /// The member's name (a shared handle: taking a key copies no bytes).
    type Key = ByName;
    fn key(&self) -> ByName {
        ByName(self.id.clone())
    }
    fn same_news(&self, other: &Self) -> bool {
        self.incarnation == other.incarnation && self.state == other.state
    }
}

/// How soon a rumour goes, ahead of its transmission count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Urgency {
    /// A refutation or a leave: it ends suspicions and timers elsewhere,
    /// so it goes before anything else.
    Urgent,
    /// Everything else.
    Normal,
}

/// Queue order: urgent first, then fewest transmissions, then newest.
type Priority = (Urgency, u32, Reverse<u64>);

#[derive(Debug)]
struct Queued<T> {
    update: T,
    /// Its encoded size in a message, computed once.
    size: usize,
}

/// Retransmit-limited rumour queue (one rumour per key: newer news about a
/// member replaces the older).
#[derive(Debug)]
pub(crate) struct BroadcastQueue<T: Rumour> {
    /// Boxed, so that the tree's inserts and removals move pointers, not
    /// rumours.
    queue: BTreeMap<Priority, Box<Queued<T>>>,
    /// Lookup only (never iterated): where each key's rumour sits. Keys
    /// are names peers choose, so the hash is keyed (see [`KeyedFnv`]).
    by_member: HashMap<T::Key, Priority, KeyedFnv>,
    next_seq: u64,
}

impl<T: Rumour> BroadcastQueue<T> {
    /// An empty queue whose index hashes with `hash_key`.
    pub(crate) fn new(hash_key: u64) -> Self {
        BroadcastQueue {
            queue: BTreeMap::new(),
            by_member: HashMap::with_hasher(KeyedFnv(hash_key)),
            next_seq: 0,
        }
    }
}

/// The smallest an update can encode to; packing stops below it.
const MIN_UPDATE_LEN: usize = 8;
/// Rumours too big for the room left that packing looks past before it
/// stops, so that a long queue costs no more than a short one per message.
const MAX_MISSES: usize = 8;

impl BroadcastQueue<News> {
    /// Queue a membership rumour.
    pub(crate) fn push_update(&mut self, news: News, urgency: Urgency, max: usize) {
        let size = wire::update_field_len(&news.update());
        self.push_with(news, size, urgency, max);
    }
}

/// What one [`BroadcastQueue::pack`] took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Packed {
    /// Encoded bytes taken.
    pub(crate) bytes: usize,
    /// Urgent rumours among those taken.
    pub(crate) urgent: usize,
}

impl<T: Rumour> BroadcastQueue<T> {
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queue a rumour of `size` encoded bytes, replacing any older one with
    /// the same key. Past `max` rumours, the most-sent oldest ones are
    /// dropped.
    pub(crate) fn push(&mut self, update: T, size: usize, max: usize) {
        self.push_with(update, size, Urgency::Normal, max);
    }

    /// [`Self::push`] at a given urgency.
    pub(crate) fn push_with(&mut self, update: T, size: usize, urgency: Urgency, max: usize) {
        let name = update.key();
        if let Some(old) = self.by_member.remove(&name) {
            self.queue.remove(&old);
        }
        let prio = (urgency, 0, Reverse(self.next_seq));
        self.next_seq += 1;
        self.queue.insert(prio, Box::new(Queued { update, size }));
        self.by_member.insert(name, prio);
        while self.queue.len() > max {
            if let Some((_, q)) = self.queue.pop_last() {
                self.by_member.remove(&q.update.key());
            }
        }
    }

    /// Move rumours into `out` while they fit in `budget` bytes, each counted
    /// as one more transmission; those sent `limit` times leave the queue.
    /// Returns the bytes used and how many were urgent.
    pub(crate) fn pack(&mut self, budget: usize, limit: u32, out: &mut Vec<T>) -> Packed {
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
        let mut urgent = 0;
        for prio in taken {
            let q = self.queue.remove(&prio).expect("taken from the queue");
            out.push(q.update.clone());
            urgent += usize::from(prio.0 == Urgency::Urgent);
            let key = q.update.key();
            self.requeue(key, prio, q, prio.1 + 1, limit);
        }
        Packed {
            bytes: used,
            urgent,
        }
    }

    /// Put a rumour taken out at `prio` back as sent `sent` times, or drop
    /// it once that reaches `limit`.
    fn requeue(&mut self, key: T::Key, prio: Priority, q: Box<Queued<T>>, sent: u32, limit: u32) {
        if sent >= limit {
            self.by_member.remove(&key);
        } else {
            let next = (prio.0, sent, prio.2);
            if let Some(p) = self.by_member.get_mut(&key) {
                *p = next;
            }
            self.queue.insert(next, q);
        }
    }

    /// A peer sent us news we already had. If we are still spreading the same
    /// news, count the duplicate as `weight` of its transmissions: a rumour
    /// that keeps coming back is already widespread (Demers et al.'s
    /// "counter" rumour mongering, with duplicates as the feedback), so it
    /// yields room to fresher ones. Returns whether a queued rumour was aged.
    pub(crate) fn heard_again(&mut self, update: &T, weight: u32, limit: u32) -> bool {
        self.heard_again_under(&update.key(), |q| q.same_news(update), weight, limit)
    }

    /// [`Self::heard_again`] for a rumour whose key the caller holds
    /// borrowed (a member's name): no key is built. `same` tells whether
    /// the queued rumour is the news heard.
    pub(crate) fn heard_again_under<Q>(
        &mut self,
        key: &Q,
        same: impl FnOnce(&T) -> bool,
        weight: u32,
        limit: u32,
    ) -> bool
    where
        T::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // One lookup of the key and one of the queue: this runs for most
        // news a node hears.
        let Some(slot) = self.by_member.get_mut(key) else {
            return false;
        };
        let prio = *slot;
        let Some(q) = self.queue.remove(&prio) else {
            return false;
        };
        if !same(&q.update) {
            self.queue.insert(prio, q);
            return false;
        }
        let sent = prio.1.saturating_add(weight);
        if sent >= limit {
            self.by_member.remove(key);
        } else {
            let next = (prio.0, sent, prio.2);
            *slot = next;
            self.queue.insert(next, q);
        }
        true
    }

    /// Forget any rumour under `key` (for a member: it was reaped).
    pub(crate) fn forget<Q>(&mut self, key: &Q)
    where
        T::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(p) = self.by_member.remove(key) {
            self.queue.remove(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(name: &str, inc: u32) -> News {
        let u = MemberUpdate {
            id: NodeId::new(name, "127.0.0.1:1".parse().unwrap()).unwrap(),
            incarnation: Incarnation(inc),
            state: MemberState::Alive,
            by: None,
            key: Default::default(),
            signature: Default::default(),
        };
        News::new(u, None)
    }

    fn names(v: &[News]) -> Vec<&str> {
        v.iter().map(|u| u.id.name()).collect()
    }

    #[test]
    fn queued_news_goes_out_as_it_came_in_less_than_half_the_room() {
        // A signed join goes out word for word; an accusation, whose word is left out, goes out
        // without one. Queued, either takes under half the bytes of the update (the word sits
        // behind the pointer the member's table entry shares).
        let identity = crate::identity::Identity::from_seed(3);
        let id = NodeId::new("a", "127.0.0.1:1".parse().unwrap()).unwrap();
        let join = identity.member_update(&id, Incarnation(0), MemberState::Alive, None);
        let word = Arc::new(Word {
            key: join.key,
            signature: join.signature,
        });
        assert_eq!(News::new(join.clone(), Some(word)).update(), join);
        let accusation = MemberUpdate {
            state: MemberState::Suspect,
            by: Some("b".into()),
            ..join
        }
        .as_rumour();
        assert!(accusation.word_elided());
        assert_eq!(News::new(accusation.clone(), None).update(), accusation);
        assert!(std::mem::size_of::<News>() * 2 < std::mem::size_of::<MemberUpdate>());
    }

    #[test]
    fn newest_and_least_sent_first_until_the_limit() {
        let mut q = BroadcastQueue::new(5);
        q.push_update(update("a", 0), Urgency::Normal, 100);
        q.push_update(update("b", 0), Urgency::Normal, 100);
        let mut out = vec![];
        q.pack(1000, 2, &mut out);
        assert_eq!(names(&out), ["b", "a"]);
        q.push_update(update("c", 0), Urgency::Normal, 100);
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
        let mut q = BroadcastQueue::new(5);
        q.push_update(update("a", 0), Urgency::Normal, 100);
        q.push_update(update("a", 1), Urgency::Normal, 100);
        assert_eq!(q.len(), 1);
        let one = wire::update_field_len(&update("a", 1).update());
        let mut out = vec![];
        assert_eq!(q.pack(one - 1, 4, &mut out).bytes, 0);
        assert!(out.is_empty());
        assert_eq!(q.pack(one, 4, &mut out).bytes, one);
        assert_eq!(out[0].incarnation, Incarnation(1));
    }

    #[test]
    fn bounded_by_dropping_the_most_sent() {
        let mut q = BroadcastQueue::new(5);
        q.push_update(update("old", 0), Urgency::Normal, 2);
        let mut out = vec![];
        q.pack(1000, 10, &mut out);
        q.push_update(update("x", 0), Urgency::Normal, 2);
        q.push_update(update("y", 0), Urgency::Normal, 2);
        assert_eq!(q.len(), 2);
        out.clear();
        q.pack(1000, 10, &mut out);
        assert_eq!(names(&out), ["y", "x"]);
    }

    #[test]
    fn urgent_rumours_go_first_whatever_their_count() {
        let mut q = BroadcastQueue::new(5);
        q.push_update(update("refuted", 1), Urgency::Urgent, 100);
        let mut out = vec![];
        q.pack(1000, 10, &mut out);
        q.push_update(update("fresh", 0), Urgency::Normal, 100);
        out.clear();
        // The urgent rumour was sent once and the other never, yet it leads.
        let one = wire::update_field_len(&update("refuted", 1).update());
        let packed = q.pack(1000, 10, &mut out);
        assert_eq!(names(&out), ["refuted", "fresh"]);
        assert_eq!(packed.urgent, 1);
        // With room for one, only the urgent one goes.
        out.clear();
        assert_eq!(q.pack(one, 10, &mut out).urgent, 1);
        assert_eq!(names(&out), ["refuted"]);
    }
    #[test]
    fn a_rumour_heard_back_k_times_leaves_the_queue_at_any_cluster_size() {
        // Demers et al.'s counter: `stop_after_duplicates` duplicates end a
        // rumour whatever n is (and so whatever its send limit), and one
        // fewer does not. Other news under another key is untouched. (Which
        // news counts this way is the caller's: `Membership::heard_again`.)
        let c = crate::Config::lan();
        let k = c.stop_after_duplicates;
        for n in [1, 9, 100, 1_000, 10_000, 100_000] {
            let limit = c.retransmit_limit(n);
            let weight = c.duplicate_weight(limit);
            let mut q = BroadcastQueue::new(5);
            q.push_update(update("a", 0), Urgency::Normal, 100);
            q.push_update(update("b", 0), Urgency::Normal, 100);
            for _ in 1..k {
                assert!(q.heard_again(&update("a", 0), weight, limit));
            }
            assert_eq!(q.len(), 2, "n = {n}: {} duplicates keep it", k - 1);
            // A duplicate of older news is not the queued rumour.
            q.push_update(update("b", 1), Urgency::Normal, 100);
            assert!(!q.heard_again(&update("b", 0), weight, limit));
            assert!(q.heard_again(&update("a", 0), weight, limit));
            let mut out = vec![];
            q.pack(1000, limit, &mut out);
            assert_eq!(names(&out), ["b"], "n = {n}: the k-th ends it");
        }
    }
}
