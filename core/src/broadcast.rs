//! The broadcast queue: rumours waiting to ride on outgoing messages, each
//! sent a bounded number of times: urgent ones first (Lifeguard puts a
//! refutation and a leave ahead of other news), then least-sent and newest
//! first.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use hashbrown::HashTable;

use crate::identity::{PublicKey, Signature, Word};
use crate::member::{ByName, Incarnation, MemberState, NodeId};
use crate::members::grow;
use crate::message::MemberUpdate;
use crate::summary::KeyedFnv;
use crate::wire;

/// Something the queue spreads: news with a key, where newer news under the
/// same key replaces the older.
pub(crate) trait Rumour: Clone {
    /// What identifies the news.
    type Key: Clone + Eq + Hash + std::fmt::Debug;
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

/// Bits of a [`Rank`] that hold the sequence number (reversed: the
/// newest ranks first), below the transmission count and the urgency.
const SEQ_BITS: u32 = 48;
/// Bits of a [`Rank`] that hold the transmission count.
const SENT_BITS: u32 = 15;
/// The largest transmission count a rank holds: a limit at or past it
/// counts as it (retransmit limits are some tens).
const SENT_MAX: u32 = (1 << SENT_BITS) - 1;
const SEQ_MAX: u64 = (1 << SEQ_BITS) - 1;

/// Queue order, packed in one word so that the queue's tree compares and
/// holds integers: urgent first, then fewest transmissions, then newest.
type Rank = u64;

fn rank(urgency: Urgency, sent: u32, seq: u64) -> Rank {
    debug_assert!(seq <= SEQ_MAX);
    (u64::from(urgency as u8) << (SEQ_BITS + SENT_BITS))
        | (u64::from(sent.min(SENT_MAX)) << SEQ_BITS)
        | (SEQ_MAX - seq)
}

fn urgency_of(rank: Rank) -> Urgency {
    if rank >> (SEQ_BITS + SENT_BITS) == Urgency::Urgent as u64 {
        Urgency::Urgent
    } else {
        Urgency::Normal
    }
}

fn sent_of(rank: Rank) -> u32 {
    ((rank >> SEQ_BITS) & u64::from(SENT_MAX)) as u32
}

fn seq_of(rank: Rank) -> u64 {
    SEQ_MAX - (rank & SEQ_MAX)
}

/// One queued rumour.
#[derive(Debug)]
struct Slot<T: Rumour> {
    /// The update's key, kept so that a lookup by a borrowed key (a
    /// member's name) builds none.
    key: T::Key,
    update: T,
    /// Its encoded size in a message, computed once.
    size: u32,
    rank: Rank,
}

/// Retransmit-limited rumour queue (one rumour per key: newer news about a
/// member replaces the older).
///
/// The rumours sit in a dense array of slots (a removed one's slot is
/// taken by the last); the order and the index hold slot numbers. In a
/// cold start every node's queue fills to `max_broadcasts` (4,096), and a
/// boxed rumour, a B-tree of tuple keys and a hash map of them took some
/// 160 bytes a rumour; this some 100.
#[derive(Debug)]
pub(crate) struct BroadcastQueue<T: Rumour> {
    /// The slot of each rumour, by rank.
    queue: BTreeMap<Rank, u32>,
    slots: Vec<Slot<T>>,
    /// Lookup only (never iterated): the slot of each key's rumour. Keys
    /// are names peers choose, so the hash is keyed (see [`KeyedFnv`]).
    index: HashTable<u32>,
    hasher: KeyedFnv,
    next_seq: u64,
}

impl<T: Rumour> BroadcastQueue<T> {
    /// An empty queue whose index hashes with `hash_key`.
    pub(crate) fn new(hash_key: u64) -> Self {
        BroadcastQueue {
            queue: BTreeMap::new(),
            slots: Vec::new(),
            index: HashTable::new(),
            hasher: KeyedFnv(hash_key),
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

    /// The slot of the rumour under `key`, if any.
    fn slot_of<Q>(&self, key: &Q) -> Option<u32>
    where
        T::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slots = &self.slots;
        self.index
            .find(self.hasher.hash_one(key), |&i| {
                slots[i as usize].key.borrow() == key
            })
            .copied()
    }

    /// The slot a lookup under `key` will most likely find, read ahead of
    /// the lookup as `Members::likely_slot` is.
    pub(crate) fn likely_slot<Q>(&self, key: &Q) -> Option<u32>
    where
        T::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.index
            .find(self.hasher.hash_one(key), |_| true)
            .copied()
    }

    /// Read slot `i` as a lookup will (see `Members::read_slot`).
    pub(crate) fn read_slot(&self, i: u32) -> u64 {
        self.slots.get(i as usize).map_or(0, |slot| slot.rank)
    }

    /// The next sequence number; past the rank's room, the queued
    /// rumours are numbered afresh in the same order.
    fn next_seq(&mut self) -> u64 {
        if self.next_seq > SEQ_MAX {
            let mut held: Vec<(u64, u32)> =
                self.queue.iter().map(|(&r, &i)| (seq_of(r), i)).collect();
            held.sort_unstable();
            self.queue.clear();
            for (seq, (_, i)) in held.into_iter().enumerate() {
                let slot = &mut self.slots[i as usize];
                slot.rank = rank(urgency_of(slot.rank), sent_of(slot.rank), seq as u64);
                self.queue.insert(slot.rank, i);
            }
            self.next_seq = self.queue.len() as u64;
        }
        self.next_seq += 1;
        self.next_seq - 1
    }

    /// Queue a rumour of `size` encoded bytes, replacing any older one with
    /// the same key. Past `max` rumours, the most-sent oldest ones are
    /// dropped.
    pub(crate) fn push(&mut self, update: T, size: usize, max: usize) {
        self.push_with(update, size, Urgency::Normal, max);
    }

    /// [`Self::push`] at a given urgency.
    pub(crate) fn push_with(&mut self, update: T, size: usize, urgency: Urgency, max: usize) {
        let key = update.key();
        let rank = rank(urgency, 0, self.next_seq());
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        match self.slot_of(&key) {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                self.queue.remove(&slot.rank);
                slot.update = update;
                slot.size = size;
                slot.rank = rank;
                self.queue.insert(rank, i);
            }
            None => {
                let i = u32::try_from(self.slots.len()).expect("a queue holds fewer than 2^32");
                let hash = self.hasher.hash_one(&key);
                grow(&mut self.slots);
                self.slots.push(Slot {
                    key,
                    update,
                    size,
                    rank,
                });
                let (slots, hasher) = (&self.slots, self.hasher);
                self.index
                    .insert_unique(hash, i, |&j| hasher.hash_one(&slots[j as usize].key));
                self.queue.insert(rank, i);
            }
        }
        while self.queue.len() > max {
            if let Some((_, i)) = self.queue.pop_last() {
                self.drop_slot(i);
            }
        }
    }

    /// Take the rumour in slot `i` (already out of the order) out of the
    /// queue: the last slot takes its place.
    fn drop_slot(&mut self, i: u32) {
        let hasher = self.hasher;
        let at = |j: u32| move |&k: &u32| k == j;
        if let Ok(found) = self
            .index
            .find_entry(hasher.hash_one(&self.slots[i as usize].key), at(i))
        {
            found.remove();
        }
        let last = u32::try_from(self.slots.len() - 1).expect("a queue holds fewer than 2^32");
        if i != last {
            let moved = &self.slots[last as usize];
            if let Some(k) = self.index.find_mut(hasher.hash_one(&moved.key), at(last)) {
                *k = i;
            }
            if let Some(k) = self.queue.get_mut(&moved.rank) {
                *k = i;
            }
        }
        self.slots.swap_remove(i as usize);
        // A cold start's burst fills the queue once: give the room back.
        if self.slots.capacity() > 64 && self.slots.len() * 4 < self.slots.capacity() {
            self.slots.shrink_to(self.slots.len() * 2);
        }
    }

    /// Move rumours into `out` while they fit in `budget` bytes, each counted
    /// as one more transmission; those sent `limit` times leave the queue.
    /// Returns the bytes used and how many were urgent.
    pub(crate) fn pack(&mut self, budget: usize, limit: u32, out: &mut Vec<T>) -> Packed {
        let mut used = 0;
        let mut taken: Vec<Rank> = Vec::new();
        let mut misses = 0;
        for (&rank, &i) in &self.queue {
            if budget - used < MIN_UPDATE_LEN || misses == MAX_MISSES {
                break;
            }
            let size = self.slots[i as usize].size as usize;
            if size <= budget - used {
                used += size;
                taken.push(rank);
            } else {
                misses += 1;
            }
        }
        let mut urgent = 0;
        for rank in taken {
            let i = self.queue.remove(&rank).expect("taken from the queue");
            out.push(self.slots[i as usize].update.clone());
            urgent += usize::from(urgency_of(rank) == Urgency::Urgent);
            self.requeue(i, sent_of(rank) + 1, limit);
        }
        Packed {
            bytes: used,
            urgent,
        }
    }

    /// Put the rumour in slot `i`, out of the order, back as sent `sent`
    /// times, or drop it once that reaches `limit`.
    fn requeue(&mut self, i: u32, sent: u32, limit: u32) {
        if sent >= limit.min(SENT_MAX) {
            self.drop_slot(i);
        } else {
            let slot = &mut self.slots[i as usize];
            slot.rank = rank(urgency_of(slot.rank), sent, seq_of(slot.rank));
            self.queue.insert(slot.rank, i);
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
        // One lookup of the key and one change of the order: this runs for
        // most news a node hears.
        let Some(i) = self.slot_of(key) else {
            return false;
        };
        let slot = &self.slots[i as usize];
        if !same(&slot.update) {
            return false;
        }
        let rank = slot.rank;
        self.queue.remove(&rank);
        self.requeue(i, sent_of(rank).saturating_add(weight), limit);
        true
    }

    /// Forget any rumour under `key` (for a member: it was reaped).
    pub(crate) fn forget<Q>(&mut self, key: &Q)
    where
        T::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(i) = self.slot_of(key) {
            self.queue.remove(&self.slots[i as usize].rank);
            self.drop_slot(i);
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

    /// The queue as it was specified: rumours in a plain list, sorted by
    /// (urgency, transmissions, newest) whenever it is read.
    #[derive(Default)]
    struct Model {
        /// (name, incarnation, urgency, sent, seq, size)
        held: Vec<(String, u32, Urgency, u32, u64, usize)>,
        seq: u64,
    }

    impl Model {
        fn sort(&mut self) {
            self.held
                .sort_by_key(|&(_, _, u, sent, seq, _)| (u, sent, std::cmp::Reverse(seq)));
        }
        fn push(&mut self, name: &str, inc: u32, urgency: Urgency, max: usize) {
            self.held.retain(|h| h.0 != name);
            let size = wire::update_field_len(&update(name, inc).update());
            self.held
                .push((name.to_owned(), inc, urgency, 0, self.seq, size));
            self.seq += 1;
            self.sort();
            self.held.truncate(max);
        }
        fn pack(&mut self, budget: usize, limit: u32) -> Vec<(String, u32)> {
            self.sort();
            let (mut used, mut misses, mut out) = (0, 0, Vec::new());
            for h in self.held.iter_mut() {
                if budget - used < MIN_UPDATE_LEN || misses == MAX_MISSES {
                    break;
                }
                if h.5 <= budget - used {
                    used += h.5;
                    out.push((h.0.clone(), h.1));
                    h.3 += 1;
                } else {
                    misses += 1;
                }
            }
            self.held.retain(|h| h.3 < limit);
            out
        }
        fn heard_again(&mut self, name: &str, inc: u32, weight: u32, limit: u32) -> bool {
            let Some(h) = self.held.iter_mut().find(|h| h.0 == name && h.1 == inc) else {
                return false;
            };
            h.3 = h.3.saturating_add(weight);
            self.held.retain(|h| h.3 < limit);
            true
        }
    }

    #[test]
    fn the_queue_agrees_with_its_plain_model_through_pushes_packs_repeats_and_drops() {
        // Slots are taken by the last when a rumour leaves, ranks are packed
        // integers, and sequence numbers are given out afresh once they run
        // past the rank's room (forced here, 40 pushes before it): through
        // 4,000 random steps, what each pack sends and what stays queued
        // are the plain model's.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        let mut q = BroadcastQueue::new(9);
        q.next_seq = SEQ_MAX - 40;
        let mut model = Model::default();
        let names: Vec<String> = (0..60).map(|i| format!("m{i}")).collect();
        let one = wire::update_field_len(&update("m10", 0).update());
        for step in 0..4_000 {
            let name = &names[rng.random_range(0..names.len())];
            let inc = rng.random_range(0..3u32);
            match rng.random_range(0..10) {
                0..=3 => {
                    let urgency = if rng.random_bool(0.1) {
                        Urgency::Urgent
                    } else {
                        Urgency::Normal
                    };
                    q.push_update(update(name, inc), urgency, 40);
                    model.push(name, inc, urgency, 40);
                }
                4..=6 => {
                    let weight = rng.random_range(1..4);
                    let got = q.heard_again(&update(name, inc), weight, 6);
                    assert_eq!(got, model.heard_again(name, inc, weight, 6), "step {step}");
                }
                7 => {
                    q.forget(name.as_str());
                    model.held.retain(|h| h.0 != *name);
                }
                _ => {
                    let budget = one * rng.random_range(1..12);
                    let mut out = Vec::new();
                    q.pack(budget, 6, &mut out);
                    let sent: Vec<(String, u32)> = out
                        .iter()
                        .map(|n| (n.id.name().to_owned(), n.incarnation.0))
                        .collect();
                    assert_eq!(sent, model.pack(budget, 6), "step {step}");
                }
            }
            assert_eq!(q.len(), model.held.len(), "step {step}");
            assert_eq!(q.slots.len(), q.len());
        }
        assert!(q.next_seq < SEQ_MAX, "numbered afresh");
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
