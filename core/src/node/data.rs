//! The data plane of a node: its namespace and replicas, user events and
//! cluster metadata, how fresh data spreads (a broadcast tree, or periodic
//! push, pull or push-pull), and freshest reads.
//!
//! The tree is Plumtree's (Leitão et al., 2007) without its partial view:
//! fresh data is pushed at once, on first receipt, to the node's eager
//! peers; a duplicate prunes the link it came over, so eager links thin to a
//! spanning tree; ids of fresh data are announced (lazy push) to random
//! peers each gossip round, and a node that hears of something it lacks
//! grafts itself back by asking the announcer for it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::*;
use crate::config::Dissemination;
use crate::store::{Change, Entry, Refusal};

/// How many gossip rounds each fresh datum's id is announced in (tree mode).
const ANNOUNCE_ROUNDS: u32 = 2;
/// Random peers each round's announcement goes to (tree mode).
const ANNOUNCE_PEERS: usize = 1;
/// While this node has seen grafts lately (the tree is missing nodes, from
/// loss or from pruning into pieces), announcements last this many rounds...
const NEEDED_ANNOUNCE_ROUNDS: u32 = 5;
/// ...and go to this many random peers each round.
const NEEDED_ANNOUNCE_PEERS: usize = 2;
/// Gossip rounds a graft (sent or answered) keeps announcements stronger.
const NEEDED_ROUNDS: u32 = 10;
/// Announcers remembered per missing datum.
const MAX_ANNOUNCERS: usize = 4;
/// A graft is answered with the ids of what arrived in this many last
/// gossip rounds too.
const RECENT_ROUNDS_ON_GRAFT: u32 = 5;
/// At most this many of them, newest first.
const MAX_RECENT_ON_GRAFT: usize = 64;
/// Ids each recently pruned link is told of per gossip round.
const LAZY_ANNOUNCE_IDS: usize = 16;
/// Rumours remembered while they wait for a gap to fill.
const MAX_HELD: usize = 256;

/// Where a freshest read's answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadSource {
    /// The owner answered.
    Owner,
    /// The owner did not answer in time (or is not a live member, or is
    /// this node): the answer is this node's replica.
    Replica,
}

/// The answer to [`Node::query_fresh`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FreshRead {
    /// The id `query_fresh` returned.
    pub id: u32,
    /// The owner asked about.
    pub owner: Arc<str>,
    /// The key asked about.
    pub key: Arc<str>,
    /// Who answered.
    pub source: ReadSource,
    /// The generation of the owner's namespace the answer is from.
    pub generation: u32,
    /// The version of the key's last write (0: never written, or its
    /// tombstone collected).
    pub version: u64,
    /// The value, `None` if absent or deleted.
    pub value: Option<Arc<[u8]>>,
}

#[derive(Debug)]
pub(super) struct Missing {
    announcers: VecDeque<SocketAddr>,
    deadline: Time,
    /// When to give up asking and leave it to anti-entropy.
    expires: Time,
}

/// A run of an owner's versions that arrived by anti-entropy.
#[derive(Debug)]
struct OffTree {
    generation: u32,
    /// Versions after this one...
    from: u64,
    /// ...up to this one.
    to: u64,
    until: Time,
}

#[derive(Debug, Default)]
pub(super) struct Tree {
    /// Peers fresh data is pushed to at once.
    eager: BTreeSet<SocketAddr>,
    /// Recently pruned links, until when they stay "hot": each gossip
    /// round's announcement goes over them too (a few ids of it). Two broadcasts racing over a cycle can
    /// prune both of its links, cutting the tree in two; the cut always runs
    /// along a link just pruned, so announcing over those links finds every
    /// piece (Plumtree's lazy links, kept only while the tree is settling).
    lazy: BTreeMap<SocketAddr, Time>,
    /// Rumours held for a gap, with who pushed them: once the versions
    /// before them arrive and they apply, they are passed on like fresh
    /// ones, since the peers below this node expect them from it.
    held: BTreeMap<DatumId, (Datum, SocketAddr)>,
    /// Until when this node announces harder: it sent or answered a graft
    /// lately, so the tree is missing nodes around it.
    needed_until: Time,
    /// Data heard of but not held, with who has it.
    missing: BTreeMap<DatumId, Missing>,
    /// `missing` by deadline, so that timers never walk `missing` (a burst
    /// of writes makes it long). An entry whose datum left `missing` or
    /// whose deadline moved is stale and skipped.
    missing_due: BTreeSet<(Time, DatumId)>,
    /// Recent data, to answer grafts and pulls.
    recent: BTreeMap<DatumId, Datum>,
    /// Versions that arrived by anti-entropy (push-pull or a pull) rather
    /// than along the tree, per owner, until when they count as recent:
    /// the tree's own push of them comes after and is not a duplicate.
    off_tree: BTreeMap<Arc<str>, OffTree>,
    /// The same for the metadata register.
    off_tree_metadata: Option<(DatumId, Time)>,
    /// Ids of `recent`, oldest first, with when each arrived.
    recent_order: VecDeque<(Time, DatumId)>,
}

#[derive(Debug)]
pub(super) struct PendingQuery {
    id: u32,
    owner: Arc<str>,
    key: Arc<str>,
    to: SocketAddr,
    deadline: Time,
}

/// What receiving a datum did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Receipt {
    Fresh,
    Duplicate,
    /// Held until the versions before it arrive.
    Gap,
    Refused,
}

impl Node {
    // ----- commands ------------------------------------------------------

    /// Write `value` under `key` in this node's namespace. Returns the
    /// write's version.
    pub fn put(&mut self, now: Time, key: &str, value: &[u8]) -> Result<u64, Error> {
        self.write_record(
            now,
            Record::Entry {
                key: Arc::from(key),
                value: Some(Arc::from(value)),
            },
        )
    }

    /// Write into the namespace named `namespace`, which must be this
    /// node's own: another owner's namespace is refused with
    /// [`Error::NotOwner`].
    pub fn put_in(
        &mut self,
        now: Time,
        namespace: &str,
        key: &str,
        value: &[u8],
    ) -> Result<u64, Error> {
        if namespace != self.me.name() {
            return Err(Error::NotOwner(namespace.to_string()));
        }
        self.put(now, key, value)
    }

    /// Delete `key` from this node's namespace, leaving a tombstone.
    /// Returns the delete's version, or `None` if the key was not live.
    pub fn delete(&mut self, now: Time, key: &str) -> Result<Option<u64>, Error> {
        if self.store.get(self.me.name(), key).is_none() {
            if key.is_empty() {
                return Err(Error::EmptyKey);
            }
            return Ok(None);
        }
        self.write_record(
            now,
            Record::Entry {
                key: Arc::from(key),
                value: None,
            },
        )
        .map(Some)
    }

    /// Send a user event to every live node. Returns its Lamport time, which
    /// with this node's name identifies it.
    pub fn send_event(&mut self, now: Time, name: &str, payload: &[u8]) -> Result<u64, Error> {
        let lamport = self.lamport + 1;
        self.write_record(
            now,
            Record::Event {
                name: Arc::from(name),
                payload: Arc::from(payload),
                lamport,
            },
        )?;
        Ok(lamport)
    }

    /// Publish the cluster metadata: it replaces the current register
    /// everywhere (last writer wins by Lamport time, then name).
    pub fn publish_metadata(&mut self, now: Time, value: &[u8]) -> Result<u64, Error> {
        if self.status != Status::Running {
            return Err(Error::Left);
        }
        if value.len() > self.config.max_value_len {
            return Err(Error::ValueTooLong {
                len: value.len(),
                max: self.config.max_value_len,
            });
        }
        self.lamport += 1;
        let m = Metadata {
            lamport: self.lamport,
            origin: self.my_name.clone(),
            value: Arc::from(value),
        };
        self.metadata = Some(m.clone());
        self.outputs
            .push_back(Output::Event(Event::MetadataChanged(m.clone())));
        self.spread(now, Datum::Metadata(m), None);
        Ok(self.lamport)
    }

    /// Ask `owner` for its current value of `key`. The answer comes as
    /// [`Event::FreshRead`] with the returned id: from the owner, or after
    /// `query_timeout` from the local replica.
    pub fn query_fresh(&mut self, now: Time, owner: &str, key: &str) -> u32 {
        self.next_query = self.next_query.wrapping_add(1);
        let id = self.next_query;
        let owner_id = self
            .members
            .get(owner)
            .filter(|(_, e)| e.state.is_live())
            .map(|(id, _)| id.clone());
        match owner_id {
            Some(to) if owner != self.me.name() && self.status == Status::Running => {
                self.queries.push(PendingQuery {
                    id,
                    owner: Arc::from(owner),
                    key: Arc::from(key),
                    to: to.addr(),
                    deadline: now + self.config.query_timeout,
                });
                self.send(
                    to.addr(),
                    Message::Query(Query {
                        id,
                        key: Arc::from(key),
                    }),
                );
            }
            _ => {
                let source = if owner == self.me.name() {
                    ReadSource::Owner
                } else {
                    ReadSource::Replica
                };
                self.answer_locally(id, Arc::from(owner), Arc::from(key), source);
            }
        }
        id
    }

    // ----- reads ---------------------------------------------------------

    /// The live entry `key` of `owner`'s namespace, as this node holds it.
    pub fn get(&self, owner: &str, key: &str) -> Option<Entry> {
        self.store.get(owner, key)
    }

    /// Live entries of `owner`'s namespace whose keys start with `prefix`.
    pub fn list(&self, owner: &str, prefix: &str) -> Vec<Entry> {
        self.store.list(owner, prefix)
    }

    /// The cluster metadata register, if anyone has published.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// Hash of the digest and the metadata register: equal on two nodes
    /// that hold the same versions of every namespace and the same metadata.
    pub fn state_summary(&self) -> u64 {
        let m = self.metadata.as_ref().map_or(0, |m| {
            let mut h = crate::summary::Fnv64::default();
            h.write(&m.lamport.to_le_bytes());
            h.write(m.origin.as_bytes());
            h.finish()
        });
        self.store.summary() ^ m
    }

    /// The scuttlebutt digest: the version held of every namespace.
    pub fn digest(&self) -> Vec<DigestEntry> {
        self.store.digest()
    }

    /// (generation, version) held of `owner`'s namespace.
    pub fn namespace_version(&self, owner: &str) -> Option<(u32, u64)> {
        self.store.version(owner)
    }

    /// Owners whose namespaces this node holds (itself included).
    pub fn owners(&self) -> Vec<Arc<str>> {
        self.store.owners().cloned().collect()
    }

    /// The peers this node pushes fresh data to at once (tree mode).
    pub fn eager_peers(&self) -> usize {
        self.tree.eager.len()
    }

    /// The addresses of those peers, in address order: with every node's,
    /// the broadcast tree's links (for simulators and diagnostics).
    pub fn eager_links(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.tree.eager.iter().copied()
    }

    // ----- internals -----------------------------------------------------

    fn write_record(&mut self, now: Time, record: Record) -> Result<u64, Error> {
        if self.status != Status::Running {
            return Err(Error::Left);
        }
        let (delta, change) = self.store.write(now, record)?;
        let version = delta.to;
        self.report(vec![change]);
        self.spread(now, Datum::Delta(delta), None);
        Ok(version)
    }

    fn answer_locally(&mut self, id: u32, owner: Arc<str>, key: Arc<str>, source: ReadSource) {
        let (generation, version, value) = self.store.lookup(&owner, &key);
        self.outputs
            .push_back(Output::Event(Event::FreshRead(FreshRead {
                id,
                owner,
                key,
                source,
                generation,
                version,
                value,
            })));
    }

    fn report(&mut self, changes: Vec<Change>) {
        for c in changes {
            let event = match c {
                Change::Entry {
                    owner,
                    key,
                    version,
                    value,
                } => Event::EntryChanged {
                    owner,
                    key,
                    version,
                    value,
                },
                Change::Event {
                    origin,
                    name,
                    payload,
                    lamport,
                    version: _,
                } => {
                    self.lamport = self.lamport.max(lamport);
                    Event::UserEvent {
                        origin,
                        name,
                        payload,
                        lamport,
                    }
                }
            };
            self.outputs.push_back(Output::Event(event));
        }
    }

    fn remember(&mut self, now: Time, datum: &Datum) {
        let id = datum.id();
        if self.tree.recent.insert(id.clone(), datum.clone()).is_none() {
            self.tree.recent_order.push_back((now, id));
        }
        while self.tree.recent_order.len() > self.config.max_broadcasts {
            if let Some((_, old)) = self.tree.recent_order.pop_front() {
                self.tree.recent.remove(&old);
            }
        }
    }

    /// Start spreading a fresh datum (ours, or first received from `from`).
    pub(super) fn spread(&mut self, now: Time, datum: Datum, from: Option<SocketAddr>) {
        self.remember(now, &datum);
        let max = self.config.max_broadcasts;
        match self.config.dissemination {
            Dissemination::Tree => {
                let peers: Vec<SocketAddr> = self
                    .tree
                    .eager
                    .iter()
                    .copied()
                    .filter(|p| Some(*p) != from)
                    .collect();
                for p in peers {
                    self.send(
                        p,
                        Message::Eager(Eager {
                            data: vec![datum.clone()],
                        }),
                    );
                }
                let size = wire::datum_id_field_len(&datum.id());
                self.data.push(datum, size, max);
            }
            _ => {
                let size = wire::datum_field_len(&datum);
                self.data.push(datum, size, max);
            }
        }
    }

    fn owner_live(&self, owner: &str) -> bool {
        owner == self.me.name()
            || self
                .members
                .get(owner)
                .is_some_and(|(_, e)| e.state.is_live())
    }

    /// We hold a rumour of `owner` we cannot apply yet: pull the versions
    /// before it from `from`, which applied it and so holds them. At most
    /// once per owner per half gossip interval.
    fn pull_gap(&mut self, now: Time, from: SocketAddr, owner: &Arc<str>, generation: u32) {
        let wait = self.config.gossip_interval / 2;
        if self.pulled.get(owner).is_some_and(|t| now < *t + wait) {
            return;
        }
        self.pulled.insert(owner.clone(), now);
        let version = match self.store.version(owner) {
            Some((g, v)) if g == generation => v,
            _ => 0,
        };
        let digest = vec![DigestEntry {
            owner: owner.clone(),
            generation,
            version,
        }];
        let msg = PushPull {
            kind: PushPullKind::Pull,
            digest: Some(digest),
            ..PushPull::default()
        };
        self.stats.gap_pulls += 1;
        self.send(from, Message::PushPull(msg));
    }

    /// Ask `peer` for data heard of but still missing after every announcer
    /// was asked: records by a targeted pull of their owners (it answers
    /// with what it holds), metadata by a graft.
    fn pull_missing(&mut self, now: Time, peer: SocketAddr, ids: Vec<DatumId>) {
        let mut meta = Vec::new();
        let mut owners = BTreeMap::new();
        for id in ids {
            match id {
                DatumId::Record {
                    owner, generation, ..
                } => {
                    let g = owners.entry(owner).or_insert(generation);
                    *g = (*g).max(generation);
                }
                m @ DatumId::Metadata { .. } => meta.push(m),
            }
        }
        // One pull per owner: it brings every version the peer holds.
        for (owner, generation) in owners {
            self.pull_gap(now, peer, &owner, generation);
        }
        if !meta.is_empty() {
            self.stats.grafts += 1;
            self.send(peer, Message::Graft(Graft { ids: meta }));
        }
    }

    fn receive(&mut self, now: Time, datum: &Datum) -> Receipt {
        match datum {
            Datum::Delta(d) => {
                if !self.owner_live(&d.owner) {
                    self.stats.data_unknown_owner += 1;
                    return Receipt::Refused;
                }
                match self.store.apply(now, d, true) {
                    Ok(changes) => {
                        self.stats.deltas_applied += 1;
                        self.report(changes);
                        Receipt::Fresh
                    }
                    Err(Refusal::Duplicate | Refusal::OwnNamespace | Refusal::StaleGeneration) => {
                        self.stats.data_duplicates += 1;
                        Receipt::Duplicate
                    }
                    Err(Refusal::Gap) => {
                        self.stats.deltas_gap += 1;
                        Receipt::Gap
                    }
                    Err(Refusal::StaleSource) => {
                        self.stats.deltas_stale_source += 1;
                        Receipt::Refused
                    }
                    Err(Refusal::Malformed) => {
                        self.stats.deltas_malformed += 1;
                        Receipt::Refused
                    }
                }
            }
            Datum::Metadata(m) => {
                if m.value.len() > self.config.max_value_len || m.origin.is_empty() {
                    self.stats.deltas_malformed += 1;
                    return Receipt::Refused;
                }
                self.lamport = self.lamport.max(m.lamport);
                if self.metadata.as_ref().is_none_or(|cur| m.beats(cur)) {
                    self.metadata = Some(m.clone());
                    self.outputs
                        .push_back(Output::Event(Event::MetadataChanged(m.clone())));
                    Receipt::Fresh
                } else {
                    self.stats.data_duplicates += 1;
                    Receipt::Duplicate
                }
            }
        }
    }

    /// Data arrived from `from`, pushed eagerly along the tree (`eager`) or
    /// by periodic gossip.
    pub(super) fn on_data(&mut self, now: Time, from: SocketAddr, data: Vec<Datum>, eager: bool) {
        let tree = self.config.dissemination == Dissemination::Tree;
        let mut prune = false;
        for datum in data {
            match self.receive(now, &datum) {
                Receipt::Fresh => {
                    self.tree.missing.remove(&datum.id());
                    if eager && tree {
                        self.tree.eager.insert(from);
                    }
                    let owner = match &datum {
                        Datum::Delta(d) => Some(d.owner.clone()),
                        Datum::Metadata(_) => None,
                    };
                    self.spread(now, datum, Some(from));
                    if let Some(owner) = owner {
                        self.release_held(now, &owner);
                    }
                }
                Receipt::Duplicate => {
                    if eager && tree && self.arrived_off_tree(now, &datum) {
                        // Anti-entropy was quicker than the tree: this push
                        // is the tree's own path here, not a redundant one,
                        // and the peers below still expect it from us.
                        self.stats.tree_adoptions += 1;
                        self.spread(now, datum, Some(from));
                    } else if eager && tree {
                        prune = true;
                    } else if !tree {
                        let limit = self.config.retransmit_limit(self.members.live_others() + 1);
                        self.data
                            .heard_again(&datum, self.config.retransmit_mult, limit);
                    }
                }
                Receipt::Gap => {
                    if let Datum::Delta(d) = &datum {
                        self.pull_gap(now, from, &d.owner, d.generation);
                        if self.tree.held.len() >= MAX_HELD {
                            self.tree.held.pop_first();
                        }
                        self.tree.held.insert(datum.id(), (datum.clone(), from));
                    }
                }
                Receipt::Refused => {}
            }
        }
        if prune {
            self.tree.eager.remove(&from);
            self.keep_lazy(now, from);
            self.stats.prunes += 1;
            self.send(from, Message::Prune(Prune));
        }
    }

    /// Whether a datum we hold came by anti-entropy lately and has not come
    /// along the tree since (what did is in `recent`).
    fn arrived_off_tree(&self, now: Time, datum: &Datum) -> bool {
        let id = datum.id();
        if self.tree.recent.contains_key(&id) {
            return false;
        }
        match &id {
            DatumId::Record {
                owner,
                generation,
                version,
            } => self.tree.off_tree.get(owner).is_some_and(|o| {
                o.until > now
                    && o.generation == *generation
                    && o.from < *version
                    && *version <= o.to
            }),
            DatumId::Metadata { .. } => self
                .tree
                .off_tree_metadata
                .as_ref()
                .is_some_and(|(held, until)| *held == id && *until > now),
        }
    }

    /// Versions `from+1..=to` of `owner` arrived by anti-entropy.
    fn note_off_tree(&mut self, now: Time, owner: &Arc<str>, generation: u32, from: u64, to: u64) {
        let until = now + self.config.push_pull_interval;
        match self.tree.off_tree.get_mut(owner) {
            // Contiguous with a run still current: extend it.
            Some(o) if o.generation == generation && o.until > now && o.to >= from => {
                o.to = o.to.max(to);
                o.from = o.from.min(from);
                o.until = until;
            }
            _ => {
                self.tree.off_tree.insert(
                    owner.clone(),
                    OffTree {
                        generation,
                        from,
                        to,
                        until,
                    },
                );
            }
        }
    }

    /// Forget runs of anti-entropy arrivals that are no longer recent.
    pub(super) fn expire_off_tree(&mut self, now: Time) {
        self.tree.off_tree.retain(|_, o| o.until > now);
        if self
            .tree
            .off_tree_metadata
            .as_ref()
            .is_some_and(|(_, until)| *until <= now)
        {
            self.tree.off_tree_metadata = None;
        }
    }

    /// Pass on the held rumours of `owner` that have applied since.
    fn release_held(&mut self, now: Time, owner: &Arc<str>) {
        let first = DatumId::Record {
            owner: owner.clone(),
            generation: 0,
            version: 0,
        };
        let last = DatumId::Record {
            owner: owner.clone(),
            generation: u32::MAX,
            version: u64::MAX,
        };
        let ready: Vec<DatumId> = self
            .tree
            .held
            .range(first..=last)
            .map(|(id, _)| id)
            .filter(|id| self.holds(id))
            .cloned()
            .collect();
        for id in ready {
            if let Some((datum, from)) = self.tree.held.remove(&id) {
                self.spread(now, datum, Some(from));
            }
        }
    }

    pub(super) fn on_rumours(&mut self, now: Time, from: SocketAddr, r: Rumours) {
        self.on_data(now, from, r.data, false);
        if r.pull {
            let data = self.pack_data();
            if !data.is_empty() {
                self.send(from, Message::Rumours(Rumours { data, pull: false }));
            }
        }
    }

    pub(super) fn on_ihave(&mut self, now: Time, from: SocketAddr, ids: Vec<DatumId>) {
        let wait = self.config.gossip_interval / 2;
        for id in ids {
            if self.holds(&id) {
                continue;
            }
            let id_for_due = id.clone();
            let m = self.tree.missing.entry(id).or_insert_with(|| Missing {
                announcers: VecDeque::new(),
                deadline: now + wait,
                expires: now + self.config.push_pull_interval,
            });
            let due = (m.deadline, id_for_due);
            self.tree.missing_due.insert(due);
            if m.announcers.len() < MAX_ANNOUNCERS && !m.announcers.contains(&from) {
                m.announcers.push_back(from);
            }
        }
    }

    pub(super) fn on_graft(&mut self, now: Time, from: SocketAddr, ids: Vec<DatumId>) {
        self.tree.eager.insert(from);
        self.tree.lazy.remove(&from);
        if !ids.is_empty() {
            self.tree.needed_until = now + self.config.gossip_interval * NEEDED_ROUNDS;
        }
        let data: Vec<Datum> = ids
            .iter()
            .filter_map(|id| self.tree.recent.get(id).cloned())
            .collect();
        if !data.is_empty() {
            self.send(from, Message::Eager(Eager { data }));
        }
        if ids.is_empty() {
            return;
        }
        // A graft means the grafter was cut off from the tree; whatever else
        // arrived here lately it may have missed too, and the random
        // announcements of those may have passed it by. Tell it.
        let window = self.config.gossip_interval * RECENT_ROUNDS_ON_GRAFT;
        let others: Vec<DatumId> = self
            .tree
            .recent_order
            .iter()
            .rev()
            .take_while(|(at, _)| now - *at <= window)
            .map(|(_, id)| id)
            .filter(|id| !ids.contains(id))
            .take(MAX_RECENT_ON_GRAFT)
            .cloned()
            .collect();
        if !others.is_empty() {
            self.send(from, Message::IHave(IHave { ids: others }));
        }
    }

    pub(super) fn on_prune(&mut self, now: Time, from: SocketAddr) {
        self.tree.eager.remove(&from);
        self.keep_lazy(now, from);
    }

    /// A link was pruned: keep it hot for announcements for a while.
    fn keep_lazy(&mut self, now: Time, peer: SocketAddr) {
        self.tree.lazy.retain(|_, until| *until > now);
        self.tree
            .lazy
            .insert(peer, now + self.config.push_pull_interval);
    }

    pub(super) fn on_query(&mut self, from: SocketAddr, q: Query) {
        let (generation, version, value) = self.store.lookup(self.me.name(), &q.key);
        self.send(
            from,
            Message::QueryReply(QueryReply {
                id: q.id,
                generation,
                version,
                value,
            }),
        );
    }

    pub(super) fn on_query_reply(&mut self, from: SocketAddr, r: QueryReply) {
        let Some(i) = self
            .queries
            .iter()
            .position(|q| q.id == r.id && q.to == from)
        else {
            self.stats.stale_acks += 1;
            return;
        };
        let q = self.queries.swap_remove(i);
        self.outputs
            .push_back(Output::Event(Event::FreshRead(FreshRead {
                id: q.id,
                owner: q.owner,
                key: q.key,
                source: ReadSource::Owner,
                generation: r.generation,
                version: r.version,
                value: r.value,
            })));
    }

    /// Whether this node holds `id` (or something newer), or has no use for
    /// it (an owner that is not a live member).
    fn holds(&self, id: &DatumId) -> bool {
        match id {
            DatumId::Record {
                owner,
                generation,
                version,
            } => {
                if !self.owner_live(owner) {
                    return true;
                }
                self.store
                    .version(owner)
                    .is_some_and(|(g, v)| g > *generation || (g == *generation && v >= *version))
            }
            DatumId::Metadata { lamport, origin } => self
                .metadata
                .as_ref()
                .is_some_and(|m| (m.lamport, &*m.origin) >= (*lamport, &**origin)),
        }
    }

    fn pack_data(&mut self) -> Vec<Datum> {
        let mut data = Vec::new();
        if self.data.is_empty() {
            return data;
        }
        let base = wire::message_len(&self.me.addr(), &Message::Rumours(Rumours::default())) + 4;
        let budget = self.config.max_message_size.saturating_sub(base);
        let limit = self.config.retransmit_limit(self.members.live_others() + 1);
        self.data.pack(budget, limit, &mut data);
        data
    }

    /// The data half of a gossip round.
    pub(super) fn data_round(&mut self, now: Time) {
        let k = self.config.fanout;
        match self.config.dissemination {
            Dissemination::Tree => {
                if self.tree.eager.is_empty() {
                    let peers = self.members.random_live(k, &[], &mut self.rng);
                    for p in peers {
                        self.tree.eager.insert(p.addr());
                        self.send(p.addr(), Message::Graft(Graft::default()));
                    }
                }
                if self.data.is_empty() {
                    return;
                }
                let mut data = Vec::new();
                let base =
                    wire::message_len(&self.me.addr(), &Message::IHave(IHave::default())) + 4;
                let budget = self.config.max_message_size.saturating_sub(base);
                let needed = now < self.tree.needed_until || now < self.lossy_until;
                let (rounds, fanout) = if needed {
                    (NEEDED_ANNOUNCE_ROUNDS, NEEDED_ANNOUNCE_PEERS)
                } else {
                    (ANNOUNCE_ROUNDS, ANNOUNCE_PEERS)
                };
                self.data.pack(budget, rounds, &mut data);
                let ids: Vec<DatumId> = data.iter().map(Datum::id).collect();
                let peers: Vec<SocketAddr> = self
                    .members
                    .random_live(fanout, &[], &mut self.rng)
                    .iter()
                    .map(NodeId::addr)
                    .collect();
                for p in &peers {
                    self.send(*p, Message::IHave(IHave { ids: ids.clone() }));
                }
                // Recently pruned links hear of some of it too: if two
                // broadcasts raced and cut the tree, the cut runs along them,
                // and one id the piece lacks is enough for it to graft back
                // (the versions before it follow by a gap pull). Once a
                // round and a few ids, so that a burst of writes costs one
                // small message per link and round.
                let few: Vec<DatumId> = ids.iter().take(LAZY_ANNOUNCE_IDS).cloned().collect();
                let lazy: Vec<SocketAddr> = self
                    .tree
                    .lazy
                    .iter()
                    .filter(|(p, until)| {
                        **until > now && !self.tree.eager.contains(*p) && !peers.contains(*p)
                    })
                    .map(|(p, _)| *p)
                    .collect();
                for p in lazy {
                    self.send(p, Message::IHave(IHave { ids: few.clone() }));
                }
            }
            Dissemination::Push | Dissemination::PushPull => {
                if self.data.is_empty() && self.config.dissemination == Dissemination::Push {
                    return;
                }
                let pull = self.config.dissemination == Dissemination::PushPull;
                let peers = self
                    .members
                    .gossip_peers(k, self.config.peer_selection, &mut self.rng);
                for p in peers {
                    let data = self.pack_data();
                    if data.is_empty() && !pull {
                        break;
                    }
                    self.send(p.addr(), Message::Rumours(Rumours { data, pull }));
                }
            }
            Dissemination::Pull => {
                let peers = self
                    .members
                    .gossip_peers(k, self.config.peer_selection, &mut self.rng);
                for p in peers {
                    self.send(
                        p.addr(),
                        Message::Rumours(Rumours {
                            data: Vec::new(),
                            pull: true,
                        }),
                    );
                }
            }
        }
    }

    /// Grafts whose wait is over, queries past their timeout, tombstones
    /// past their grace.
    pub(super) fn data_timers(&mut self, now: Time) {
        self.store.collect_garbage(now);
        let mut due: Vec<DatumId> = Vec::new();
        while let Some((at, _)) = self.tree.missing_due.first() {
            if *at > now {
                break;
            }
            let (at, id) = self.tree.missing_due.pop_first().expect("first");
            if self.tree.missing.get(&id).is_some_and(|m| m.deadline == at) {
                due.push(id);
            }
        }
        let mut grafts: BTreeMap<SocketAddr, Vec<DatumId>> = BTreeMap::new();
        let mut pulls: Vec<DatumId> = Vec::new();
        let wait = self.config.gossip_interval / 2;
        for id in due {
            if self.holds(&id) {
                self.tree.missing.remove(&id);
                continue;
            }
            let Some(m) = self.tree.missing.get_mut(&id) else {
                continue;
            };
            if m.expires <= now {
                self.tree.missing.remove(&id);
                continue;
            }
            m.deadline = now + wait;
            self.tree.missing_due.insert((m.deadline, id.clone()));
            match m.announcers.pop_front() {
                Some(a) => grafts.entry(a).or_default().push(id.clone()),
                // Every announcer was asked and nothing came (loss): ask
                // random peers, most of which hold it by now.
                None => pulls.push(id.clone()),
            }
        }
        if !grafts.is_empty() {
            self.tree.needed_until = now + self.config.gossip_interval * NEEDED_ROUNDS;
        }
        for (to, ids) in grafts {
            self.stats.grafts += 1;
            self.tree.eager.insert(to);
            self.tree.lazy.remove(&to);
            self.send(to, Message::Graft(Graft { ids }));
        }
        if !pulls.is_empty() {
            if let Some(peer) = self.members.random_live(1, &[], &mut self.rng).pop() {
                self.pull_missing(now, peer.addr(), pulls);
            }
        }
        let mut i = 0;
        while i < self.queries.len() {
            if self.queries[i].deadline <= now {
                let q = self.queries.swap_remove(i);
                self.answer_locally(q.id, q.owner, q.key, ReadSource::Replica);
            } else {
                i += 1;
            }
        }
    }

    /// The earliest data-plane timer.
    pub(super) fn data_deadline(&self) -> Option<Time> {
        let graft = self.tree.missing_due.first().map(|(at, _)| *at);
        let query = self.queries.iter().map(|q| q.deadline).min();
        let collect = self.store.next_collection();
        [graft, query, collect].into_iter().flatten().min()
    }

    /// A member is no longer live: stop pushing to it.
    pub(super) fn data_forget_peer(&mut self, addr: SocketAddr) {
        self.tree.eager.remove(&addr);
        self.tree.lazy.remove(&addr);
    }

    /// Deltas a peer with `digest` lacks, within `budget` bytes.
    /// With `only_listed`, only owners the digest names are served (a
    /// targeted pull); otherwise owners it lacks are sent from scratch.
    pub(super) fn deltas_for(
        &mut self,
        digest: &[DigestEntry],
        budget: usize,
        only_listed: bool,
    ) -> Vec<Delta> {
        let start = self.rng.random_range(0..self.store.owners().count().max(1));
        self.store.deltas_for(digest, budget, start, only_listed)
    }

    /// Apply deltas and metadata from a push-pull.
    pub(super) fn merge_data(&mut self, now: Time, deltas: &[Delta], metadata: Option<&Metadata>) {
        if let Some(m) = metadata {
            let datum = Datum::Metadata(m.clone());
            if self.receive(now, &datum) == Receipt::Fresh {
                self.tree.off_tree_metadata =
                    Some((datum.id(), now + self.config.push_pull_interval));
            }
        }
        for d in deltas {
            if !self.owner_live(&d.owner) {
                self.stats.data_unknown_owner += 1;
                continue;
            }
            match self.store.apply(now, d, false) {
                Ok(changes) => {
                    self.stats.deltas_applied += 1;
                    self.report(changes);
                    if self.config.dissemination == Dissemination::Tree {
                        self.note_off_tree(now, &d.owner, d.generation, d.from, d.to);
                    }
                    self.release_held(now, &d.owner);
                }
                Err(Refusal::Gap) => self.stats.deltas_gap += 1,
                Err(Refusal::Malformed) => self.stats.deltas_malformed += 1,
                Err(Refusal::StaleSource) => self.stats.deltas_stale_source += 1,
                Err(_) => self.stats.data_duplicates += 1,
            }
        }
    }
}
