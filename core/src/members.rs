//! The membership table: what this node believes about every member it
//! knows, plus the orders it walks them in (probe ring, gossip peers).
//!
//! Every iteration that feeds a decision goes over the name order (a
//! `BTreeMap`) or the ring (`Vec`, shuffled with the node's own RNG); the
//! entries themselves sit in a hash table that is only looked up.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::PeerSelection;
use crate::identity::{PublicKey, Signature, Word};
use crate::member::{ByName, Incarnation, Member, MemberState, NodeId};
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

#[derive(Debug)]
pub(crate) struct Members {
    me: String,
    /// Lookup only, never iterated: each member's entry by name. A node
    /// looks members up for most news it hears (some seven times per member
    /// in a cold start), and a hash lookup reads one name where a B-tree's
    /// reads a dozen, each behind two pointers.
    map: HashMap<ByName, Entry, KeyedFnv>,
    /// The same names in order: iteration and digest pages walk this.
    order: BTreeMap<ByName, ()>,
    /// Every known member but this node, in probe order.
    ring: Vec<NodeId>,
    probe_cursor: usize,
    gossip_cursor: usize,
    /// Gossip order for [`PeerSelection::LeastRecent`]: front is oldest.
    lru: VecDeque<NodeId>,
    use_lru: bool,
    /// While a bulk merge runs, new members go to the ring's end (it is
    /// shuffled once at the end) instead of each at a random place, which
    /// costs O(n) apiece.
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
            map: HashMap::with_hasher(KeyedFnv(hash_key)),
            order: BTreeMap::new(),
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

    pub(crate) fn get(&self, name: &str) -> Option<(&NodeId, &Entry)> {
        self.map.get_key_value(name).map(|(k, e)| (&k.0, e))
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
        page.walk(&self.order).map(|(k, ())| (&k.0, &self.map[k]))
    }

    /// A member's name at random (of those in the probe ring), if any.
    pub(crate) fn random_name(&self, rng: &mut ChaCha8Rng) -> Option<&str> {
        let n = self.ring.len();
        (n > 0).then(|| self.ring[rng.random_range(0..n)].name())
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&NodeId, &Entry)> {
        self.order.keys().map(|k| (&k.0, &self.map[k]))
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
        if let Some(e) = self.map.get_mut(name) {
            e.pushed = true;
        }
    }

    /// Insert or update a member. A new member enters the probe ring at a
    /// random place (so a burst of joins does not line up behind one another);
    /// a changed address replaces the identity everywhere.
    pub(crate) fn set(&mut self, id: &NodeId, entry: Entry, rng: &mut ChaCha8Rng) {
        let name = id.name();
        self.count(name, &entry, 1);
        // The common case, a known member's new state at the same address,
        // changes the entry in place: no removal and insertion in the tree.
        if let Some((held, _)) = self.map.get_key_value(id.name()) {
            if held.0.addr() == id.addr() {
                let old = std::mem::replace(self.map.get_mut(id.name()).expect("held"), entry);
                self.count(name, &old, -1);
                return;
            }
        }
        match self.map.remove_entry(id.name()) {
            Some((_, old)) => {
                // A new address: the identity is replaced everywhere.
                self.count(name, &old, -1);
                for slot in self.ring.iter_mut().chain(self.lru.iter_mut()) {
                    if slot.name() == name {
                        *slot = id.clone();
                    }
                }
                self.order.remove(name);
                self.order.insert(ByName(id.clone()), ());
                self.map.insert(ByName(id.clone()), entry);
            }
            None => {
                self.order.insert(ByName(id.clone()), ());
                self.map.insert(ByName(id.clone()), entry);
                if name != self.me {
                    if self.bulk {
                        self.ring.push(id.clone());
                    } else {
                        self.enter_ring(id.clone(), rng);
                    }
                    if self.use_lru {
                        self.lru.push_front(id.clone());
                    }
                }
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
    fn enter_ring(&mut self, id: NodeId, rng: &mut ChaCha8Rng) {
        let end = self.ring.len();
        let at = rng.random_range(0..=end);
        self.ring.push(id);
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

    /// End a bulk merge: the probe ring is shuffled afresh and both walks
    /// start over.
    pub(crate) fn end_bulk(&mut self, rng: &mut ChaCha8Rng) {
        if self.bulk {
            self.bulk = false;
            self.ring.shuffle(rng);
            self.probe_cursor = 0;
            self.gossip_cursor = 0;
        }
    }

    /// Forget a member entirely (reaped).
    pub(crate) fn remove(&mut self, name: &str) -> Option<Entry> {
        let (_, e) = self.map.remove_entry(name)?;
        self.order.remove(name);
        self.count(name, &e, -1);
        if let Some(i) = self.ring.iter().position(|m| m.name() == name) {
            self.ring.remove(i);
            if i < self.probe_cursor {
                self.probe_cursor -= 1;
            }
            if i < self.gossip_cursor {
                self.gossip_cursor -= 1;
            }
        }
        if self.use_lru {
            self.lru.retain(|m| m.name() != name);
        }
        Some(e)
    }

    fn is_live(&self, id: &NodeId) -> bool {
        self.map.get(id.name()).is_some_and(|e| e.state.is_live())
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
            let id = &self.ring[self.probe_cursor];
            self.probe_cursor += 1;
            if self.is_live(id) {
                return Some(id.clone());
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
        // Rejection sampling stays cheap while few members are dead; fall
        // back to a full scan when it keeps missing.
        for _ in 0..want * 8 {
            let id = &self.ring[rng.random_range(0..self.ring.len())];
            if self.is_live(id)
                && !except.contains(&id.name())
                && !out.iter().any(|o| o.name() == id.name())
                && accept(id)
            {
                out.push(id.clone());
                if out.len() == want {
                    return out;
                }
            }
        }
        let mut rest: Vec<&NodeId> = self
            .ring
            .iter()
            .filter(|id| {
                self.is_live(id)
                    && !except.contains(&id.name())
                    && !out.iter().any(|o| o.name() == id.name())
                    && accept(id)
            })
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
                    let id = &self.ring[self.gossip_cursor];
                    self.gossip_cursor += 1;
                    if self.is_live(id) && !out.iter().any(|o| o.name() == id.name()) {
                        out.push(id.clone());
                    }
                }
                out
            }
            PeerSelection::LeastRecent => {
                let mut out: Vec<NodeId> = Vec::with_capacity(k);
                let mut skipped = Vec::new();
                while out.len() < k {
                    let Some(id) = self.lru.pop_front() else {
                        break;
                    };
                    if self.is_live(&id) {
                        out.push(id);
                    } else if self.map.contains_key(id.name()) {
                        skipped.push(id);
                    }
                }
                // Dead members keep their place at the front for when they return.
                for id in skipped.into_iter().rev() {
                    self.lru.push_front(id);
                }
                self.lru.extend(out.iter().cloned());
                out
            }
        }
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
