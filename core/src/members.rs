//! The membership table: what this node believes about every member it
//! knows, plus the orders it walks them in (probe ring, gossip peers).
//!
//! Every iteration that feeds a decision goes over the name order (two
//! sorted runs of slot numbers) or the ring (shuffled with the node's own
//! RNG); the hash index over the slots is only looked up.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::PeerSelection;
use crate::identity::{PublicKey, Signature, Word};
use crate::member::{Incarnation, Member, MemberState, NodeId};
use crate::message::Page;
use crate::summary::{member_hash, KeyedFnv};
use crate::time::Time;

/// What a node holds about one member, beside its identity: 24 bytes, the
/// key and signature behind a shared pointer (a table of n members is held
/// by each of n nodes; see [`Verified::share_word`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) incarnation: Incarnation,
    pub(crate) state: MemberState,
    pub(crate) since: Time,
    /// The member's public key (its name is bound to it until reaped) and
    /// its own signed word at `incarnation` (`Left` if it left, `Alive`
    /// otherwise).
    pub(crate) word: Arc<Word>,
    /// This node has pushed this news down the tree's eager links, or has
    /// no need to (see `Config::eager_membership`): a repeat heard as a
    /// rumour is then passed on no further.
    pub(crate) pushed: bool,
}

impl Entry {
    /// The member's public key.
    pub(crate) fn key(&self) -> PublicKey {
        self.word.key
    }

    /// The member's own signature at `incarnation`.
    pub(crate) fn signature(&self) -> Signature {
        self.word.signature
    }

    /// Whether `key` and `signature` are the word this entry holds.
    pub(crate) fn holds_word(&self, key: &PublicKey, signature: &Signature) -> bool {
        self.word.key == *key && self.word.signature == *signature
    }
}

/// One member as the table holds it.
#[derive(Debug)]
struct Slot {
    id: NodeId,
    entry: Entry,
}

/// Slot numbers in name order, kept as two sorted runs: a long one, and a
/// short one that new names go into and that joins the long one once it
/// outgrows [`short_run`] of it. A name goes in for a few kilobytes
/// moved at most, where one sorted run moves half of it (a join storm puts
/// n names into each of n tables), and each name costs four bytes, where a
/// B-tree of names cost some eighteen.
///
/// In a bulk merge (a formed start hands a node every member at once) new
/// names are only appended to the short run, which is sorted and merged
/// once at its end: n log n compares where placing each name cost some
/// n^1.5.
///
/// The short run keeps each name's first eight bytes beside its slot, so
/// that placing a name in it compares integers and reads a slot's name
/// only on a tie: a join storm places n names in each of n tables, and
/// each compare through the slot was a cache miss.
#[derive(Debug, Default)]
struct NameOrder {
    long: Vec<u32>,
    recent: Vec<u32>,
    /// `prefix` of each name in `recent`, in the same places.
    recent_prefixes: Vec<u64>,
}

/// A name's first eight bytes, big-endian, zero-padded: if one name's
/// prefix is below another's, so is the name.
fn prefix(name: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let n = name.len().min(8);
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    u64::from_be_bytes(bytes)
}

/// How long the short run of the name order grows beside a long run of
/// `n` before the two merge. Each name placed costs some log2 of it in
/// compares and half of it in four-byte moves, and each merge n + it
/// compares: with a compare some 60 times dearer than a move, the cost
/// per name is least near 11 sqrt(n). (At 16 + sqrt(n) the merges were
/// some 11% of the cycles of a 3,000-node cold start.)
fn short_run(n: usize) -> usize {
    16 + 8 * n.isqrt()
}

/// The slot of `name` in the sorted run `run`, or where it would go.
fn seek(run: &[u32], slots: &[Slot], name: &str) -> Result<usize, usize> {
    run.binary_search_by(|&i| slots[i as usize].id.name().cmp(name))
}

impl NameOrder {
    /// Put `slot` in its place, or (in a bulk merge) at the short run's end
    /// until [`NameOrder::settle`].
    fn insert(&mut self, slots: &[Slot], slot: u32, bulk: bool) {
        let name = slots[slot as usize].id.name();
        if bulk {
            self.recent.push(slot);
            self.recent_prefixes.push(prefix(name));
            return;
        }
        let at = self.seek_recent(slots, name).unwrap_or_else(|at| at);
        self.recent.insert(at, slot);
        self.recent_prefixes.insert(at, prefix(name));
        if self.recent.len() > short_run(self.long.len()) {
            self.merge(slots);
        }
    }

    /// The short run joins the long one.
    fn merge(&mut self, slots: &[Slot]) {
        let long = std::mem::take(&mut self.long);
        let recent = std::mem::take(&mut self.recent);
        self.recent_prefixes.clear();
        let n = long.len() + recent.len();
        self.long = Vec::with_capacity(n + n / 8);
        self.long.extend(Merged::new(slots, &long, &recent));
    }

    /// End a bulk merge: the names that came in are sorted and merged (the
    /// merge clears their prefixes, which the sort leaves behind).
    fn settle(&mut self, slots: &[Slot]) {
        let name = |&i: &u32| slots[i as usize].id.name();
        self.recent.sort_unstable_by(|a, b| name(a).cmp(name(b)));
        self.merge(slots);
    }

    /// The place of `name` in the short run, or where it would go.
    fn seek_recent(&self, slots: &[Slot], name: &str) -> Result<usize, usize> {
        let key = prefix(name);
        let (mut low, mut high) = (0, self.recent.len());
        while low < high {
            let mid = low + (high - low) / 2;
            let order = self.recent_prefixes[mid]
                .cmp(&key)
                .then_with(|| slots[self.recent[mid] as usize].id.name().cmp(name));
            match order {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    /// Take `name` out.
    fn remove(&mut self, slots: &[Slot], name: &str) {
        if let Ok(at) = seek(&self.long, slots, name) {
            self.long.remove(at);
        } else if let Ok(at) = self.seek_recent(slots, name) {
            self.recent.remove(at);
            self.recent_prefixes.remove(at);
        }
    }

    /// `name` now sits in slot `to`.
    fn renumber(&mut self, slots: &[Slot], name: &str, to: u32) {
        if let Ok(at) = seek(&self.long, slots, name) {
            self.long[at] = to;
        } else if let Ok(at) = self.seek_recent(slots, name) {
            self.recent[at] = to;
        }
    }

    /// Every slot in name order.
    fn iter<'a>(&'a self, slots: &'a [Slot]) -> Merged<'a> {
        Merged::new(slots, &self.long, &self.recent)
    }

    /// The slots named in `page`, in page order: from its first name to the
    /// last name, then round from the first.
    fn walk<'a>(&'a self, slots: &'a [Slot], page: &'a Page) -> impl Iterator<Item = u32> + 'a {
        let from: &str = &page.from;
        let a = seek(&self.long, slots, from).unwrap_or_else(|at| at);
        let b = self.seek_recent(slots, from).unwrap_or_else(|at| at);
        Merged::new(slots, &self.long[a..], &self.recent[b..])
            .chain(Merged::new(slots, &self.long[..a], &self.recent[..b]))
            .take_while(move |&i| page.contains(slots[i as usize].id.name()))
    }
}

/// Two sorted runs of slots, merged by name.
struct Merged<'a> {
    slots: &'a [Slot],
    a: &'a [u32],
    b: &'a [u32],
}

impl<'a> Merged<'a> {
    fn new(slots: &'a [Slot], a: &'a [u32], b: &'a [u32]) -> Merged<'a> {
        Merged { slots, a, b }
    }
}

impl Iterator for Merged<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        let take_a = match (self.a.first(), self.b.first()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(&x), Some(&y)) => {
                self.slots[x as usize].id.name() < self.slots[y as usize].id.name()
            }
        };
        let run = if take_a { &mut self.a } else { &mut self.b };
        let (&first, rest) = run.split_first().expect("not empty");
        *run = rest;
        Some(first)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.a.len() + self.b.len();
        (n, Some(n))
    }
}

/// The membership table. Each member is one slot of 32 bytes in a dense
/// array, and everything else (the hash index, the name order, the probe
/// ring) holds slot numbers of four bytes: a table of n members is held by
/// each of n nodes, and the simulator holds all n² entries (a hash map of
/// entries, a B-tree of names and a ring of identities took some 84 bytes
/// an entry; this layout some 50).
#[derive(Debug)]
pub(crate) struct Members {
    me: String,
    slots: Vec<Slot>,
    /// Lookup only, never iterated: each member's slot, by its name's hash
    /// under `hasher`. A node looks members up for most news it hears
    /// (some five times per member in a cold start).
    index: HashTable<u32>,
    hasher: KeyedFnv,
    /// The same slots in name order: iteration and digest pages walk this.
    order: NameOrder,
    /// Every known member but this node, in probe order.
    ring: Vec<u32>,
    probe_cursor: usize,
    gossip_cursor: usize,
    /// Gossip order for [`PeerSelection::LeastRecent`]: front is oldest.
    lru: VecDeque<u32>,
    use_lru: bool,
    /// While a bulk merge runs, new members go to the ring's end (it is
    /// shuffled once at the end) instead of each at a random place, which
    /// costs O(n) apiece, and their names to the end of the name order's
    /// short run (sorted once at the end).
    bulk: bool,
    /// Other members alive or suspect.
    live: usize,
    /// Other members alive.
    alive: usize,
    summary: u64,
}

impl Members {
    /// A table for node `me`; `hash_key` keys its name lookups (secret from
    /// peers: see [`KeyedFnv`]).
    pub(crate) fn new(me: &NodeId, selection: PeerSelection, hash_key: u64) -> Members {
        Members {
            me: me.name().to_owned(),
            slots: Vec::new(),
            index: HashTable::new(),
            hasher: KeyedFnv(hash_key),
            order: NameOrder::default(),
            ring: Vec::new(),
            probe_cursor: 0,
            gossip_cursor: 0,
            lru: VecDeque::new(),
            use_lru: selection == PeerSelection::LeastRecent,
            bulk: false,
            live: 0,
            alive: 0,
            summary: 0,
        }
    }

    /// The slot of `name`, if held.
    fn slot_of(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.index
            .find(hash, |&i| self.slots[i as usize].id.name() == name)
            .copied()
    }

    /// The slot a lookup of `name` will most likely find (the first whose
    /// hash tag matches), reading the index as the lookup will: see
    /// [`Members::read_slot`].
    pub(crate) fn likely_slot(&self, name: &str) -> Option<u32> {
        self.index
            .find(self.hasher.hash_one(name), |_| true)
            .copied()
    }

    /// Read slot `i` as a lookup will. With [`Members::likely_slot`], lets
    /// a message's updates have their slots read ahead, all the index
    /// reads first and then all the slot reads, so that the reads of
    /// different updates overlap (the table is one of n that the simulator
    /// visits in turn, and each lookup was three misses in a row). Changes
    /// nothing; returns a value only so that the read is made.
    pub(crate) fn read_slot(&self, i: u32) -> u32 {
        self.slots
            .get(i as usize)
            .map_or(0, |slot| slot.entry.incarnation.0)
    }

    fn id(&self, slot: u32) -> &NodeId {
        &self.slots[slot as usize].id
    }

    /// The member in `slot`, with what is held about it.
    fn pair(&self, slot: u32) -> (&NodeId, &Entry) {
        let slot = &self.slots[slot as usize];
        (&slot.id, &slot.entry)
    }

    pub(crate) fn get(&self, name: &str) -> Option<(&NodeId, &Entry)> {
        self.slot_of(name).map(|i| self.pair(i))
    }

    /// Other members alive or suspect.
    pub(crate) fn live_others(&self) -> usize {
        self.live
    }

    /// Other members alive.
    pub(crate) fn alive_others(&self) -> usize {
        self.alive
    }

    pub(crate) fn summary(&self) -> u64 {
        self.summary
    }

    /// The members named in `page`, in page order.
    pub(crate) fn walk<'a>(
        &'a self,
        page: &'a Page,
    ) -> impl Iterator<Item = (&'a NodeId, &'a Entry)> {
        debug_assert!(
            !self.bulk,
            "the name order is sorted when the bulk merge ends"
        );
        self.order.walk(&self.slots, page).map(|i| self.pair(i))
    }

    /// A member's name at random (of those in the probe ring), if any.
    pub(crate) fn random_name(&self, rng: &mut ChaCha8Rng) -> Option<&str> {
        let n = self.ring.len();
        (n > 0).then(|| self.id(self.ring[rng.random_range(0..n)]).name())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&NodeId, &Entry)> {
        debug_assert!(
            !self.bulk,
            "the name order is sorted when the bulk merge ends"
        );
        self.order.iter(&self.slots).map(|i| self.pair(i))
    }

    pub(crate) fn snapshot(id: &NodeId, e: &Entry) -> Member {
        Member {
            id: id.clone(),
            incarnation: e.incarnation,
            state: e.state,
            since: e.since,
            key: e.key(),
            signature: e.signature(),
        }
    }

    fn count(&mut self, name: &str, e: &Entry, sign: i64) {
        self.summary ^= member_hash(name, e.incarnation, e.state);
        if name == self.me {
            return;
        }
        let add = |c: &mut usize| *c = (*c as i64 + sign) as usize;
        if e.state.is_live() {
            add(&mut self.live);
        }
        if e.state == MemberState::Alive {
            add(&mut self.alive);
        }
    }

    /// Note that this node pushed `name`'s entry down the tree.
    pub(crate) fn mark_pushed(&mut self, name: &str) {
        if let Some(i) = self.slot_of(name) {
            self.slots[i as usize].entry.pushed = true;
        }
    }

    /// Insert or update a member. A new member enters the probe ring at a
    /// random place (so a burst of joins does not line up behind one another);
    /// a changed address replaces the identity everywhere.
    pub(crate) fn set(&mut self, id: &NodeId, entry: Entry, rng: &mut ChaCha8Rng) {
        let name = id.name();
        self.count(name, &entry, 1);
        let (slots, hasher) = (&self.slots, self.hasher);
        let found = self.index.entry(
            hasher.hash_one(name),
            |&i| slots[i as usize].id.name() == name,
            |&j| hasher.hash_one(slots[j as usize].id.name()),
        );
        let i = match found {
            hashbrown::hash_table::Entry::Occupied(at) => {
                let slot = &mut self.slots[*at.get() as usize];
                let old = std::mem::replace(&mut slot.entry, entry);
                if slot.id.addr() != id.addr() {
                    // A new address: the identity is replaced everywhere (the
                    // ring, the order and the index hold the slot).
                    slot.id = id.clone();
                }
                self.count(name, &old, -1);
                return;
            }
            // One probe finds the member or the place for it.
            hashbrown::hash_table::Entry::Vacant(at) => {
                let i = u32::try_from(self.slots.len()).expect("fewer than 2^32 members");
                at.insert(i);
                i
            }
        };
        grow(&mut self.slots);
        self.slots.push(Slot {
            id: id.clone(),
            entry,
        });
        self.order.insert(&self.slots, i, self.bulk);
        if name != self.me {
            if self.bulk {
                grow(&mut self.ring);
                self.ring.push(i);
            } else {
                self.enter_ring(i, rng);
            }
            if self.use_lru {
                self.lru.push_front(i);
            }
        }
    }

    /// Put a new member at a random place in the probe ring, in O(1): a
    /// `Vec::insert` there moves half the ring, and a join storm inserts
    /// n members into each of n tables. The member at that place moves to
    /// the end instead (memberlist does the same), so the ring stays a
    /// random order. Members not yet probed this pass stay past the probe
    /// cursor and those already probed stay before it, so a pass still
    /// probes each member once; the new member lands on either side. The
    /// round-robin gossip walk may meet the moved member twice, or miss it,
    /// in the pass it moves.
    fn enter_ring(&mut self, slot: u32, rng: &mut ChaCha8Rng) {
        let end = self.ring.len();
        let at = rng.random_range(0..=end);
        grow(&mut self.ring);
        self.ring.push(slot);
        if at >= self.probe_cursor {
            self.ring.swap(at, end);
        } else {
            // Probed this pass: the not-yet-probed member at the cursor
            // makes way for it, and the cursor steps past it.
            self.ring.swap(self.probe_cursor, end);
            self.ring.swap(at, self.probe_cursor);
            self.probe_cursor += 1;
            if self.gossip_cursor > at {
                self.gossip_cursor += 1;
            }
        }
    }

    /// Start a bulk merge: see [`Members::end_bulk`].
    pub(crate) fn begin_bulk(&mut self) {
        self.bulk = true;
    }

    /// End a bulk merge: the names that came in take their places in the
    /// name order, the probe ring is shuffled afresh and both walks start
    /// over.
    pub(crate) fn end_bulk(&mut self, rng: &mut ChaCha8Rng) {
        if self.bulk {
            self.bulk = false;
            self.order.settle(&self.slots);
            self.ring.shuffle(rng);
            self.probe_cursor = 0;
            self.gossip_cursor = 0;
        }
    }

    /// Forget a member entirely (reaped). Its slot is taken by the last
    /// one, whose number changes everywhere it is held.
    pub(crate) fn remove(&mut self, name: &str) -> Option<Entry> {
        let i = self.slot_of(name)?;
        let hasher = self.hasher;
        let held = |j: u32| move |&k: &u32| k == j;
        if let Ok(found) = self.index.find_entry(hasher.hash_one(name), held(i)) {
            found.remove();
        }
        debug_assert!(!self.bulk, "no member leaves during a bulk merge");
        self.order.remove(&self.slots, name);
        if let Some(at) = self.ring.iter().position(|&r| r == i) {
            self.ring.remove(at);
            if at < self.probe_cursor {
                self.probe_cursor -= 1;
            }
            if at < self.gossip_cursor {
                self.gossip_cursor -= 1;
            }
        }
        if self.use_lru {
            self.lru.retain(|&m| m != i);
        }
        let last = u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 members");
        if i != last {
            let moved = self.slots[last as usize].id.name();
            if let Some(k) = self.index.find_mut(hasher.hash_one(moved), held(last)) {
                *k = i;
            }
            self.order.renumber(&self.slots, moved, i);
            for r in self.ring.iter_mut().chain(self.lru.iter_mut()) {
                if *r == last {
                    *r = i;
                }
            }
        }
        let e = self.slots.swap_remove(i as usize).entry;
        self.count(name, &e, -1);
        Some(e)
    }

    fn is_live(&self, slot: u32) -> bool {
        self.slots[slot as usize].entry.state.is_live()
    }

    /// The next member to probe, by shuffled round robin over live members.
    pub(crate) fn next_probe_target(&mut self, rng: &mut ChaCha8Rng) -> Option<NodeId> {
        for _ in 0..=self.ring.len() {
            if self.probe_cursor >= self.ring.len() {
                self.ring.shuffle(rng);
                self.probe_cursor = 0;
                self.gossip_cursor = 0;
                if self.ring.is_empty() {
                    return None;
                }
            }
            let slot = self.ring[self.probe_cursor];
            self.probe_cursor += 1;
            if self.is_live(slot) {
                return Some(self.id(slot).clone());
            }
        }
        None
    }

    /// Up to `k` distinct live members, uniformly at random, none named `except`.
    pub(crate) fn random_live(
        &self,
        k: usize,
        except: &[&str],
        rng: &mut ChaCha8Rng,
    ) -> Vec<NodeId> {
        self.random_live_where(k, except, rng, |_| true)
    }

    /// [`Members::random_live`] among the members `accept` takes; the same
    /// draws when it takes them all.
    pub(crate) fn random_live_where(
        &self,
        k: usize,
        except: &[&str],
        rng: &mut ChaCha8Rng,
        accept: impl Fn(&NodeId) -> bool,
    ) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = Vec::with_capacity(k);
        let candidates = self.live.saturating_sub(except.len());
        if k == 0 || self.ring.is_empty() || candidates == 0 {
            return out;
        }
        let want = k.min(candidates);
        let fits = |slot: u32, out: &[NodeId]| {
            let id = self.id(slot);
            self.is_live(slot)
                && !except.contains(&id.name())
                && !out.iter().any(|o| o.name() == id.name())
                && accept(id)
        };
        // Rejection sampling stays cheap while few members are dead; fall
        // back to a full scan when it keeps missing.
        for _ in 0..want * 8 {
            let slot = self.ring[rng.random_range(0..self.ring.len())];
            if fits(slot, &out) {
                out.push(self.id(slot).clone());
                if out.len() == want {
                    return out;
                }
            }
        }
        let mut rest: Vec<&NodeId> = self
            .ring
            .iter()
            .filter(|&&slot| fits(slot, &out))
            .map(|&slot| self.id(slot))
            .collect();
        rest.shuffle(rng);
        out.extend(rest.into_iter().take(want - out.len()).cloned());
        out
    }

    /// The `k` gossip peers of this round, by the configured strategy.
    pub(crate) fn gossip_peers(
        &mut self,
        k: usize,
        strategy: PeerSelection,
        rng: &mut ChaCha8Rng,
    ) -> Vec<NodeId> {
        match strategy {
            PeerSelection::Random => self.random_live(k, &[], rng),
            PeerSelection::RoundRobin => {
                let mut out: Vec<NodeId> = Vec::with_capacity(k);
                for _ in 0..self.ring.len() {
                    if out.len() == k {
                        break;
                    }
                    if self.gossip_cursor >= self.ring.len() {
                        self.gossip_cursor = 0;
                    }
                    let slot = self.ring[self.gossip_cursor];
                    self.gossip_cursor += 1;
                    let id = self.id(slot);
                    if self.is_live(slot) && !out.iter().any(|o| o.name() == id.name()) {
                        out.push(id.clone());
                    }
                }
                out
            }
            PeerSelection::LeastRecent => {
                let mut taken: Vec<u32> = Vec::with_capacity(k);
                let mut skipped = Vec::new();
                while taken.len() < k {
                    let Some(slot) = self.lru.pop_front() else {
                        break;
                    };
                    if self.is_live(slot) {
                        taken.push(slot);
                    } else {
                        skipped.push(slot);
                    }
                }
                // Dead members keep their place at the front for when they return.
                for slot in skipped.into_iter().rev() {
                    self.lru.push_front(slot);
                }
                self.lru.extend(taken.iter().copied());
                taken.iter().map(|&slot| self.id(slot).clone()).collect()
            }
        }
    }
}

/// Room for one more in `v`, a quarter more at a time: a table's arrays
/// (and the rumour queue's) are held n² times over in the simulator, and
/// doubling left up to half of each unused.
pub(crate) fn grow<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 4).max(4));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn id(n: &str) -> NodeId {
        NodeId::new(n, "127.0.0.1:1".parse().unwrap()).unwrap()
    }

    fn entry(state: MemberState) -> Entry {
        Entry {
            incarnation: Incarnation(0),
            state,
            since: Time::ZERO,
            word: Arc::new(Word {
                key: PublicKey::default(),
                signature: Signature::default(),
            }),
            pushed: false,
        }
    }

    fn table(sel: PeerSelection, n: usize, rng: &mut ChaCha8Rng) -> Members {
        let me = id("me");
        let mut m = Members::new(&me, sel, 7);
        m.set(&me, entry(MemberState::Alive), rng);
        for i in 0..n {
            m.set(&id(&format!("n{i}")), entry(MemberState::Alive), rng);
        }
        m
    }

    #[test]
    fn probe_round_robin_visits_every_live_member_once_per_pass() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut m = table(PeerSelection::Random, 10, &mut rng);
        m.set(&id("n3"), entry(MemberState::Dead), &mut rng);
        let mut seen: Vec<String> = (0..9)
            .map(|_| m.next_probe_target(&mut rng).unwrap().name().to_owned())
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9);
        assert!(!seen.contains(&"n3".to_owned()));
        assert_eq!((m.live_others(), m.alive_others()), (9, 9));
    }

    #[test]
    fn members_who_join_mid_pass_leave_the_pass_probing_each_member_once() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut m = table(PeerSelection::Random, 20, &mut rng);
        let probed: Vec<String> = (0..10)
            .map(|_| m.next_probe_target(&mut rng).unwrap().name().to_owned())
            .collect();
        for i in 20..60 {
            m.set(&id(&format!("n{i}")), entry(MemberState::Alive), &mut rng);
        }
        let mut waiting: Vec<String> = (0..20)
            .map(|i| format!("n{i}"))
            .filter(|n| !probed.contains(n))
            .collect();
        // Until every member not yet probed this pass has been, none
        // probed earlier in the pass comes round again.
        let mut steps = 0;
        while !waiting.is_empty() {
            let next = m.next_probe_target(&mut rng).unwrap().name().to_owned();
            assert!(!probed.contains(&next), "{next} probed twice in a pass");
            waiting.retain(|n| *n != next);
            steps += 1;
            assert!(steps <= 50, "the pass never reached {waiting:?}");
        }
    }

    #[test]
    fn summaries_agree_regardless_of_insertion_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let a = table(PeerSelection::Random, 5, &mut rng);
        let mut b = Members::new(&id("me"), PeerSelection::Random, 8);
        for i in (0..5).rev() {
            b.set(&id(&format!("n{i}")), entry(MemberState::Alive), &mut rng);
        }
        b.set(&id("me"), entry(MemberState::Alive), &mut rng);
        assert_eq!(a.summary(), b.summary());
        b.set(&id("n1"), entry(MemberState::Suspect), &mut rng);
        assert_ne!(a.summary(), b.summary());
        b.remove("n1");
        assert_eq!(b.live_others(), 4);
    }

    #[test]
    fn name_order_and_lookups_do_not_depend_on_the_hash_key_or_insertion_order() {
        let names: Vec<String> = (0..300).map(|i| format!("m{}", i * 7919 % 300)).collect();
        let fill = |key: u64, forward: bool| {
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let mut m = Members::new(&id("me"), PeerSelection::Random, key);
            let order: Vec<&String> = if forward {
                names.iter().collect()
            } else {
                names.iter().rev().collect()
            };
            for n in order {
                m.set(&id(n), entry(MemberState::Alive), &mut rng);
            }
            // One member moves to a new address and one is reaped.
            let moved = NodeId::new("m5", "127.0.0.2:2".parse().unwrap()).unwrap();
            m.set(&moved, entry(MemberState::Suspect), &mut rng);
            m.remove("m6");
            m
        };
        let a = fill(1, true);
        let b = fill(u64::MAX, false);
        let listed = |m: &Members| -> Vec<(String, std::net::SocketAddr, MemberState)> {
            m.iter()
                .map(|(id, e)| (id.name().to_owned(), id.addr(), e.state))
                .collect()
        };
        let la = listed(&a);
        assert_eq!(la, listed(&b));
        assert_eq!(la.len(), 299);
        assert!(la.windows(2).all(|w| w[0].0 < w[1].0), "name order");
        let (moved, e) = a.get("m5").expect("held");
        assert_eq!(moved.addr(), "127.0.0.2:2".parse().unwrap());
        assert_eq!(e.state, MemberState::Suspect);
        assert!(a.get("m6").is_none() && b.get("m6").is_none());
        assert_eq!(a.summary(), b.summary());
    }

    #[test]
    fn the_table_agrees_with_a_plain_map_through_joins_moves_and_reaps() {
        // Slots move when a member is reaped (the last takes its place), and
        // names go into the order's short run and merge into the long one:
        // through 3,000 random steps the table lists, finds and walks what a
        // plain sorted map holds, and its ring holds every member but itself.
        // Every 300 steps a bulk merge brings 80 members at once (their
        // names sorted into the order only at its end). Half the names are
        // longer than the eight bytes the short run compares first, and
        // share them ("member-5", "member-50" and "member-512").
        let name_of = |n: u32| {
            if n % 2 == 0 {
                format!("m{n}")
            } else {
                format!("member-{n}")
            }
        };
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut m = Members::new(&id("me"), PeerSelection::LeastRecent, 3);
        let mut model: std::collections::BTreeMap<String, (u16, MemberState)> = Default::default();
        for step in 0..3_000u32 {
            let name = name_of(rng.random_range(0..400u32));
            let port = rng.random_range(1..4u16);
            if step % 300 == 150 {
                m.begin_bulk();
                for _ in 0..80 {
                    let name = name_of(rng.random_range(0..600u32));
                    let at = NodeId::new(&name, ([127, 0, 0, 1], port).into()).unwrap();
                    m.set(&at, entry(MemberState::Alive), &mut rng);
                    model.insert(name, (port, MemberState::Alive));
                }
                m.end_bulk(&mut rng);
            }
            match rng.random_range(0..10) {
                0..=5 => {
                    let state = [MemberState::Alive, MemberState::Suspect, MemberState::Dead]
                        [rng.random_range(0..3)];
                    let at = NodeId::new(&name, ([127, 0, 0, 1], port).into()).unwrap();
                    m.set(&at, entry(state), &mut rng);
                    model.insert(name, (port, state));
                }
                _ => {
                    let gone = m.remove(&name).map(|e| e.state);
                    assert_eq!(gone, model.remove(&name).map(|(_, s)| s), "step {step}");
                }
            }
            if step % 97 == 0 || step % 300 == 150 || step == 2_999 {
                let listed: Vec<(String, u16, MemberState)> = m
                    .iter()
                    .map(|(id, e)| (id.name().to_owned(), id.addr().port(), e.state))
                    .collect();
                let want: Vec<(String, u16, MemberState)> = model
                    .iter()
                    .map(|(n, (p, s))| (n.clone(), *p, *s))
                    .collect();
                assert_eq!(listed, want, "step {step}");
                for (n, (p, s)) in &model {
                    let (held, e) = m.get(n).expect("held");
                    assert_eq!((held.addr().port(), e.state), (*p, *s));
                }
                let page = Page {
                    from: "m2".into(),
                    to: Some("m1".into()),
                };
                let walked: Vec<&str> = m.walk(&page).map(|(id, _)| id.name()).collect();
                let round: Vec<&str> = model
                    .iter()
                    .filter(|(n, _)| n.as_str() >= "m2")
                    .chain(model.iter().filter(|(n, _)| n.as_str() < "m1"))
                    .map(|(n, _)| n.as_str())
                    .collect();
                assert_eq!(walked, round, "step {step}");
                let mut ring: Vec<&str> = m.ring.iter().map(|&i| m.id(i).name()).collect();
                ring.sort();
                assert_eq!(ring, model.keys().map(String::as_str).collect::<Vec<_>>());
                assert_eq!(m.lru.len(), model.len());
                let live = model.values().filter(|(_, s)| s.is_live()).count();
                assert_eq!(m.live_others(), live);
            }
        }
        assert!(
            m.order.long.len() > 100,
            "the short run merged into the long one"
        );
    }

    #[test]
    fn every_strategy_picks_distinct_live_peers() {
        for sel in [
            PeerSelection::Random,
            PeerSelection::RoundRobin,
            PeerSelection::LeastRecent,
        ] {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let mut m = table(sel, 6, &mut rng);
            m.set(&id("n0"), entry(MemberState::Dead), &mut rng);
            for _ in 0..10 {
                let peers = m.gossip_peers(3, sel, &mut rng);
                assert_eq!(peers.len(), 3, "{sel:?}");
                let mut names: Vec<&str> = peers.iter().map(|p| p.name()).collect();
                names.sort();
                names.dedup();
                assert_eq!(names.len(), 3, "{sel:?}");
                assert!(!names.contains(&"n0") && !names.contains(&"me"), "{sel:?}");
            }
        }
    }

    #[test]
    fn least_recent_cycles_through_everyone() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut m = table(PeerSelection::LeastRecent, 6, &mut rng);
        let first = m.gossip_peers(3, PeerSelection::LeastRecent, &mut rng);
        let second = m.gossip_peers(3, PeerSelection::LeastRecent, &mut rng);
        assert!(first
            .iter()
            .all(|a| second.iter().all(|b| a.name() != b.name())));
        let third = m.gossip_peers(3, PeerSelection::LeastRecent, &mut rng);
        assert_eq!(first, third);
    }
}
