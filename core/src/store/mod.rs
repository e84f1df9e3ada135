//! Namespaces: each owner's stream of versioned records (entries and user
//! events), as the owner writes it and as every replica holds it.
//!
//! Scuttlebutt (van Renesse et al., 2008): an owner stamps each record with
//! the next value of its own counter; a replica of that owner is complete up
//! to a version, so a digest `{owner -> version}` says exactly what a peer
//! lacks, and a delta is the run of records after it. A record superseded
//! by a later version of the same key is dropped, so a delta carries only
//! what still matters. Deletes are tombstones; tombstones and events are
//! collected after a grace period, which raises the namespace's GC horizon:
//! a replica older than a sender's horizon gets a reset, never a delta.
//!
//! A replica keeps the [`LiveDigest`] of what it holds and checks it
//! against the owner's checkpoints (see [`crate::checkpoint`]); one that
//! turns out incomplete is repaired by a pass over the owner's whole
//! stream (see `apply`).

mod apply;
pub(crate) use apply::Signer;
mod deltas;
pub(crate) use deltas::Order;
mod stage;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::{Checkpoint, LiveDigest};
use crate::error::Error;
use crate::events::Event;
use crate::identity::{
    checkpoint_statement, horizon_statement, record_statement, Identity, Signature,
};
use crate::message::{Delta, DigestEntry, OwnNamespace, Page, Record, Versioned};
use crate::summary::Fnv64;
use crate::time::Time;

/// Size limits on what a namespace holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_key_len: usize,
    pub max_value_len: usize,
    pub max_keys: usize,
    /// Rumoured deltas held per owner while versions before them are missing.
    pub max_held: usize,
}

/// A live entry or a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    version: u64,
    value: Option<Arc<[u8]>>,
    signature: Signature,
}

/// What sits at a version of the stream: 24 bytes, since a replica holds
/// one for each of an owner's live keys, and the rarer user event is boxed
/// (in place it made every slot 112 bytes).
#[derive(Clone, Debug)]
enum Slot {
    /// The entry of this key (live or tombstone) has this version.
    Key(Arc<str>),
    /// A user event.
    Event(Box<HeldEvent>),
}

/// A user event held in the stream.
#[derive(Clone, Debug)]
struct HeldEvent {
    name: Arc<str>,
    payload: Arc<[u8]>,
    lamport: u64,
    signature: Signature,
}

/// A replica shown incomplete by a checkpoint, being refetched: a pass
/// over the owner's whole stream, merged into what is held.
#[derive(Clone, Debug, Default)]
struct Repair {
    /// The pass has merged the owner's stream up to this version; peers are
    /// asked for what follows (it is the version the digest advertises).
    upto: u64,
    /// Keys the pass has seen a record of: at the end of the pass, a held
    /// entry it never saw is one whose delete was withheld and collected.
    seen: std::collections::BTreeSet<Arc<str>>,
}

#[derive(Debug, Default)]
struct Namespace {
    generation: u32,
    /// Complete up to this version.
    version: u64,
    /// Tombstones and events up to this version may have been collected.
    horizon: u64,
    /// The owner's signed word on its generation and GC horizon, the
    /// latest held: (horizon, signature). A replica collects nothing above
    /// it, so its own horizon never passes what it can prove.
    signed_horizon: Option<(u64, Signature)>,
    /// After a partial reset: deltas are safe only from senders that have
    /// seen this version (0 when no such constraint).
    floor: u64,
    entries: BTreeMap<Arc<str>, Stored>,
    stream: BTreeMap<u64, Slot>,
    live: usize,
    /// The live digest of `entries`.
    digest: LiveDigest,
    /// The owner's checkpoint at `version`, matched against `digest` (the
    /// owner's own, for our namespace); `None` once the version moves
    /// without one.
    proof: Option<Arc<Checkpoint>>,
    /// Set while the replica is being refetched.
    repair: Option<Box<Repair>>,
    /// The pieces of a delta cut short, held aside until whole.
    stage: Option<Box<stage::Stage>>,
    /// The gap buffer: rumoured deltas waiting for the versions before
    /// them, by `from`, with the peer that pushed each.
    pending: BTreeMap<u64, (Delta, SocketAddr)>,
}

impl Namespace {
    fn new(generation: u32) -> Namespace {
        Namespace {
            generation,
            ..Namespace::default()
        }
    }
}

/// The event that applying record `v` of `owner` reports.
fn applied(owner: &Arc<str>, v: &Versioned) -> Event {
    match &v.record {
        Record::Entry { key, value } => Event::EntryChanged {
            owner: owner.clone(),
            key: key.clone(),
            version: v.version,
            value: value.clone(),
        },
        Record::Event {
            name,
            payload,
            lamport,
        } => Event::UserEvent {
            origin: owner.clone(),
            name: name.clone(),
            payload: payload.clone(),
            lamport: *lamport,
        },
    }
}

/// Why a delta was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A record, or the owner's horizon, whose signature is not the owner's.
    BadSignature,
    /// A reset, or a new life of the owner, without the owner's signed word
    /// for it; or a delta reaching a version nothing signed in it stands
    /// behind (no record, checkpoint or signed horizon at or past it).
    Unproven,
    /// About our own namespace: only we write it.
    OwnNamespace,
    /// From an older life of the owner than the replica we hold.
    StaleGeneration,
    /// Nothing in it we lack.
    Duplicate,
    /// It starts after our version: applying it would skip versions. A
    /// rumoured one is held until the gap fills.
    Gap,
    /// From a sender that has not seen our reset's horizon.
    StaleSource,
    /// Versions out of order or outside its range, or a record over the
    /// size limits, or more live keys than allowed.
    Malformed,
    /// A reset or new life whose records are not the namespace its own
    /// checkpoint (signed by the owner) describes: some were withheld.
    Withheld,
}

/// An owner's entry as a replica holds it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The key.
    pub key: Arc<str>,
    /// The version of its last write.
    pub version: u64,
    /// The value.
    pub value: Arc<[u8]>,
}

/// Every namespace this node holds: its own, written here, and a read-only
/// replica of each other owner's.
#[derive(Debug)]
pub(crate) struct Store {
    me: Arc<str>,
    /// Signs this node's own records and horizon.
    identity: Identity,
    /// Our horizon moved since our last write: the next write carries the
    /// new signed horizon.
    announce_horizon: bool,
    /// Our namespace moved since our last checkpoint: the next gossip
    /// round signs one (so a round with no write costs no lookup).
    checkpoint_due: bool,
    limits: Limits,
    grace: Duration,
    spaces: BTreeMap<Arc<str>, Namespace>,
    /// XOR of `space_hash` over namespaces holding any version.
    summary: u64,
    /// Tombstones and events to collect: (when, owner, generation, version).
    collect: VecDeque<(Time, Arc<str>, u32, u64)>,
    /// Held deltas that left the gap buffer, until the node takes them.
    released: Vec<(Delta, SocketAddr)>,
    /// What checkpoints showed since the node last asked.
    findings: Findings,
}

/// What checkpoints showed: counts for the node's stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Findings {
    pub proven: u64,
    pub withheld: u64,
    pub repaired: u64,
    /// Pieces of cut deltas held aside.
    pub staged: u64,
}

fn space_hash(owner: &str, generation: u32, version: u64) -> u64 {
    let mut h = Fnv64::default();
    h.write(owner.as_bytes());
    h.write(&[0]);
    h.write(&generation.to_le_bytes());
    h.write(&version.to_le_bytes());
    h.finish()
}

impl Namespace {
    /// The digest line this replica advertises, if any: while repairing,
    /// the version the pass has reached; while a cut delta is staged, the
    /// version its pieces reach.
    fn line(&self, owner: &Arc<str>, mine: bool) -> Option<DigestEntry> {
        let (generation, version, reset_at) = match (&self.repair, &self.stage) {
            (Some(r), _) => (self.generation, r.upto, 0),
            (None, Some(s)) => (s.generation, s.to, s.reset_at()),
            (None, None) => (self.generation, self.version, 0),
        };
        if version == 0 && self.repair.is_none() {
            return None;
        }
        Some(DigestEntry {
            owner: owner.clone(),
            generation,
            version,
            unproven: !mine && (self.proof.is_none() || self.stage.is_some()),
            reset_at,
        })
    }

    /// This namespace's share of the store's summary. Whether a line is
    /// proven is left out: two nodes at the same versions skip their
    /// exchange whatever checkpoints they hold (an unproven replica is
    /// audited instead, see [`Store::next_unproven`]), or a cluster under
    /// steady writes would swap whole digests at every push-pull.
    fn line_hash(&self, owner: &Arc<str>, mine: bool) -> u64 {
        self.line(owner, mine)
            .map_or(0, |e| space_hash(&e.owner, e.generation, e.version))
    }

    /// Count the entry at `version` (with or without a value) in or out of
    /// the live digest.
    fn count(&mut self, version: u64, live: bool, add: bool) {
        match (live, add) {
            (false, _) => {}
            (true, true) => self.digest.add(version),
            (true, false) => self.digest.remove(version),
        }
    }
}

impl Store {
    pub(crate) fn new(
        me: Arc<str>,
        generation: u32,
        limits: Limits,
        grace: Duration,
        identity: Identity,
    ) -> Store {
        let mut spaces = BTreeMap::new();
        let mut own = Namespace::new(generation);
        own.signed_horizon = Some((0, identity.sign(&horizon_statement(&me, generation, 0))));
        spaces.insert(me.clone(), own);
        Store {
            me,
            identity,
            announce_horizon: false,
            checkpoint_due: false,
            limits,
            grace,
            spaces,
            summary: 0,
            collect: VecDeque::new(),
            released: Vec::new(),
            findings: Findings::default(),
        }
    }

    /// What checkpoints showed since the last call.
    pub(crate) fn take_findings(&mut self) -> Findings {
        std::mem::take(&mut self.findings)
    }

    /// Change a namespace (which must exist) through `f`, keeping the
    /// summary.
    fn touch<R>(&mut self, owner: &Arc<str>, f: impl FnOnce(&mut Namespace) -> R) -> Option<R> {
        let mine = *owner == self.me;
        let ns = self.spaces.get_mut(owner)?;
        self.summary ^= ns.line_hash(owner, mine);
        let r = f(ns);
        self.summary ^= ns.line_hash(owner, mine);
        Some(r)
    }

    /// Sign a checkpoint of our own namespace at its version, if it moved
    /// since the last one (once per gossip round at most, not per write).
    pub(crate) fn checkpoint_own(&mut self) {
        if !std::mem::take(&mut self.checkpoint_due) {
            return;
        }
        let me = self.me.clone();
        let ns = &self.spaces[&me];
        if ns.proof.is_some() || ns.version == 0 {
            return;
        }
        let statement = checkpoint_statement(&me, ns.generation, ns.version, &ns.digest);
        let proof = Arc::new(Checkpoint {
            digest: ns.digest,
            signature: self.identity.sign(&statement),
        });
        self.touch(&me, |ns| ns.proof = Some(proof));
    }

    /// Order-independent hash of the digest.
    pub(crate) fn summary(&self) -> u64 {
        self.summary
    }

    /// Set a namespace's generation and version, keeping the summary. A
    /// checkpoint held is dropped when they move.
    fn set_version(&mut self, owner: &Arc<str>, generation: u32, version: u64) {
        self.touch(owner, |ns| {
            if (ns.generation, ns.version) != (generation, version) {
                ns.proof = None;
            }
            ns.generation = generation;
            ns.version = version;
            ns.drop_stale_stage();
        });
    }

    fn check_record(&self, record: &Record) -> Result<(), Error> {
        let (key, value) = match record {
            Record::Entry { key, value } => (&**key, value.as_deref().map_or(0, |v| v.len())),
            Record::Event { name, payload, .. } => (&**name, payload.len()),
        };
        if key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if key.len() > self.limits.max_key_len {
            return Err(Error::KeyTooLong {
                len: key.len(),
                max: self.limits.max_key_len,
            });
        }
        if value > self.limits.max_value_len {
            return Err(Error::ValueTooLong {
                len: value,
                max: self.limits.max_value_len,
            });
        }
        Ok(())
    }

    /// Append a record to our own namespace. Returns the one-record delta
    /// to disseminate and the change to report.
    pub(crate) fn write(&mut self, now: Time, record: Record) -> Result<(Delta, Event), Error> {
        self.check_record(&record)?;
        let me = self.me.clone();
        let ns = self.spaces.get(&me).expect("own namespace exists");
        if let Record::Entry {
            key,
            value: Some(_),
        } = &record
        {
            let is_new = ns.entries.get(key).is_none_or(|e| e.value.is_none());
            if is_new && ns.live >= self.limits.max_keys {
                return Err(Error::NamespaceFull {
                    max: self.limits.max_keys,
                });
            }
        }
        let (generation, version) = (ns.generation, ns.version + 1);
        let signature = self
            .identity
            .sign(&record_statement(&me, generation, version, &record));
        let v = Versioned {
            version,
            record,
            signature,
        };
        let change = self
            .apply_record(now, &me, &v)
            .expect("a fresh version always applies");
        self.set_version(&me, generation, version);
        self.checkpoint_due = true;
        let mut d = Delta::single(me.clone(), generation, v);
        if std::mem::take(&mut self.announce_horizon) {
            let ns = &self.spaces[&me];
            d.horizon = ns.horizon;
            d.horizon_signature = ns.signed_horizon.map(|(_, s)| s);
        }
        Ok((d, change))
    }

    /// Put one record into a namespace (which must exist), replacing an
    /// older version of the same key. Returns the change, or `None` if the
    /// record lost to what the replica holds.
    fn apply_record(&mut self, now: Time, owner: &Arc<str>, v: &Versioned) -> Option<Event> {
        let grace = self.grace;
        let ns = self.spaces.get_mut(owner)?;
        let generation = ns.generation;
        match &v.record {
            Record::Entry { key, value } => {
                if let Some(repair) = &mut ns.repair {
                    repair.seen.insert(key.clone());
                }
                if let Some(old) = ns.entries.get(key) {
                    if old.version >= v.version {
                        return None;
                    }
                    let (version, live) = (old.version, old.value.is_some());
                    ns.stream.remove(&version);
                    ns.count(version, live, false);
                    if live {
                        ns.live -= 1;
                    }
                }
                ns.count(v.version, value.is_some(), true);
                if value.is_some() {
                    ns.live += 1;
                } else {
                    self.collect
                        .push_back((now + grace, owner.clone(), generation, v.version));
                }
                ns.entries.insert(
                    key.clone(),
                    Stored {
                        version: v.version,
                        value: value.clone(),
                        signature: v.signature,
                    },
                );
                ns.stream.insert(v.version, Slot::Key(key.clone()));
                Some(applied(owner, v))
            }
            Record::Event {
                name,
                payload,
                lamport,
            } => {
                if ns.stream.contains_key(&v.version) {
                    return None;
                }
                ns.stream.insert(
                    v.version,
                    Slot::Event(Box::new(HeldEvent {
                        name: name.clone(),
                        payload: payload.clone(),
                        lamport: *lamport,
                        signature: v.signature,
                    })),
                );
                self.collect
                    .push_back((now + grace, owner.clone(), generation, v.version));
                Some(applied(owner, v))
            }
        }
    }

    /// Our own namespace: generation, version, horizon, and the records
    /// after version `after` (see [`OwnNamespace`]).
    pub(crate) fn own_since(&self, after: u64) -> OwnNamespace {
        let ns = &self.spaces[&self.me];
        // Below the horizon, versions may be gone: the whole namespace.
        let from = if after < ns.horizon { 0 } else { after };
        let records = ns
            .stream
            .range((std::ops::Bound::Excluded(from), std::ops::Bound::Unbounded))
            .map(|(&version, slot)| ns.versioned(version, slot))
            .collect();
        OwnNamespace {
            generation: ns.generation,
            version: ns.version,
            horizon: ns.horizon,
            records,
        }
    }

    /// Take back our own namespace as a data dir saved it, before anything
    /// was written in this life. Every record must be signed by our key
    /// (checked with `verified`); what fails changes nothing.
    pub(crate) fn restore_own(
        &mut self,
        now: Time,
        saved: &OwnNamespace,
        verified: &crate::identity::Verified,
    ) -> Result<(), Error> {
        let bad = |why: String| Err(Error::BadSavedNamespace(why));
        let me = self.me.clone();
        if self.spaces[&me].version > 0 {
            return bad("this node has already written in this life".into());
        }
        if saved.horizon > saved.version {
            return bad(format!(
                "horizon {} is past version {}",
                saved.horizon, saved.version
            ));
        }
        let key = self.identity.public();
        let mut last = 0;
        for r in &saved.records {
            if r.version <= last || r.version > saved.version {
                return bad(format!(
                    "record version {} out of order or past version {}",
                    r.version, saved.version
                ));
            }
            last = r.version;
            self.check_record(&r.record)
                .or_else(|e| bad(format!("record version {}: {e}", r.version)))?;
        }
        // Checked in batches; a batch that fails is gone through one by one
        // to name the record.
        for chunk in saved.records.chunks(512) {
            let statements: Vec<Vec<u8>> = chunk
                .iter()
                .map(|r| record_statement(&me, saved.generation, r.version, &r.record))
                .collect();
            let signed: Vec<(&crate::identity::PublicKey, &[u8], &Signature)> = statements
                .iter()
                .zip(chunk)
                .map(|(b, r)| (&key, b.as_slice(), &r.signature))
                .collect();
            if verified.check_all(&signed) {
                continue;
            }
            for (bytes, r) in statements.iter().zip(chunk) {
                if !verified.check(&key, bytes, &r.signature) {
                    return bad(format!(
                        "record version {} is not signed by this node's key",
                        r.version
                    ));
                }
            }
        }
        let mut ns = Namespace::new(saved.generation);
        ns.horizon = saved.horizon;
        let statement = horizon_statement(&me, saved.generation, saved.horizon);
        ns.signed_horizon = Some((saved.horizon, self.identity.sign(&statement)));
        self.spaces.insert(me.clone(), ns);
        for r in &saved.records {
            let collected = match &r.record {
                Record::Entry { value, .. } => value.is_none(),
                Record::Event { .. } => true,
            };
            if !(collected && r.version <= saved.horizon) {
                self.apply_record(now, &me, r);
            }
        }
        self.set_version(&me, saved.generation, saved.version);
        self.announce_horizon = saved.horizon > 0;
        self.checkpoint_due = true;
        Ok(())
    }

    /// Collect tombstones and events whose grace has passed. A replica
    /// collects only up to the owner's signed horizon; what lies above it
    /// waits another grace period.
    pub(crate) fn collect_garbage(&mut self, now: Time) {
        let mut later = Vec::new();
        while let Some((at, _, _, _)) = self.collect.front() {
            if *at > now {
                break;
            }
            let (_, owner, generation, version) = self.collect.pop_front().expect("front");
            let mine = owner == self.me;
            let Some(ns) = self.spaces.get_mut(&owner) else {
                continue;
            };
            if ns.generation != generation {
                continue;
            }
            if !mine && ns.signed_horizon.is_none_or(|(h, _)| h < version) {
                later.push((now + self.grace, owner, generation, version));
                continue;
            }
            match ns.stream.get(&version) {
                Some(Slot::Event(_)) => {}
                Some(Slot::Key(key)) => {
                    let tomb = ns
                        .entries
                        .get(key)
                        .is_some_and(|e| e.version == version && e.value.is_none());
                    if !tomb {
                        continue;
                    }
                    let key = key.clone();
                    ns.entries.remove(&key);
                }
                None => continue,
            }
            ns.stream.remove(&version);
            ns.horizon = ns.horizon.max(version);
            if mine && ns.signed_horizon.is_none_or(|(h, _)| h < ns.horizon) {
                let statement = horizon_statement(&owner, generation, ns.horizon);
                ns.signed_horizon = Some((ns.horizon, self.identity.sign(&statement)));
                self.announce_horizon = true;
            }
        }
        self.collect.extend(later);
    }

    /// When the next tombstone or event is due for collection.
    pub(crate) fn next_collection(&self) -> Option<Time> {
        self.collect.front().map(|c| c.0)
    }

    /// Every namespace holding any version, for a peer to diff against.
    pub(crate) fn digest(&self) -> Vec<DigestEntry> {
        self.spaces
            .iter()
            .filter_map(|(owner, ns)| ns.line(owner, *owner == self.me))
            .collect()
    }

    /// The digest line of `owner`, if any (see [`Store::digest`]).
    pub(crate) fn line_of(&self, owner: &str) -> Option<DigestEntry> {
        let (owner, ns) = self.spaces.get_key_value(owner)?;
        ns.line(owner, *owner == self.me)
    }

    /// The digest lines of the namespaces named in `page`, in page order.
    pub(crate) fn digest_in<'a>(
        &'a self,
        page: &'a Page,
    ) -> impl Iterator<Item = DigestEntry> + 'a {
        page.walk(&self.spaces)
            .filter_map(|(owner, ns)| ns.line(owner, *owner == self.me))
    }

    /// The digest line of the first replica after `after` (in name order,
    /// wrapping) that holds no checkpoint at its version and is not being
    /// repaired: the next one to audit.
    pub(crate) fn next_unproven(&self, after: Option<&str>) -> Option<DigestEntry> {
        use std::ops::Bound::{Excluded, Unbounded};
        let unproven = |(owner, ns): (&Arc<str>, &Namespace)| {
            // A staged replica is audited too: the owner goes on with its
            // pieces, or starts them anew if they were of a version it
            // never reached.
            let open = *owner != self.me
                && ns.repair.is_none()
                && (ns.stage.is_some() || ns.proof.is_none() && ns.version > 0);
            open.then(|| ns.line(owner, false)).flatten()
        };
        let start = after.map_or(Unbounded, Excluded);
        self.spaces
            .range::<str, _>((start, Unbounded))
            .find_map(unproven)
            .or_else(|| self.spaces.iter().find_map(unproven))
    }

    /// A live entry.
    pub(crate) fn get(&self, owner: &str, key: &str) -> Option<Entry> {
        let e = self.spaces.get(owner)?.entries.get_key_value(key)?;
        Some(Entry {
            key: e.0.clone(),
            version: e.1.version,
            value: e.1.value.clone()?,
        })
    }

    /// The record of `key` held for `owner`, tombstones included:
    /// (generation, version, value).
    pub(crate) fn lookup(&self, owner: &str, key: &str) -> (u32, u64, Option<Arc<[u8]>>) {
        let Some(ns) = self.spaces.get(owner) else {
            return (0, 0, None);
        };
        match ns.entries.get(key) {
            Some(e) => (ns.generation, e.version, e.value.clone()),
            None => (ns.generation, 0, None),
        }
    }

    /// Live entries of `owner` whose keys start with `prefix`, in key order.
    pub(crate) fn list(&self, owner: &str, prefix: &str) -> Vec<Entry> {
        let Some(ns) = self.spaces.get(owner) else {
            return Vec::new();
        };
        ns.entries
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, e)| {
                Some(Entry {
                    key: k.clone(),
                    version: e.version,
                    value: e.value.clone()?,
                })
            })
            .collect()
    }

    /// (generation, version) held of `owner`.
    pub(crate) fn version(&self, owner: &str) -> Option<(u32, u64)> {
        self.spaces.get(owner).map(|ns| (ns.generation, ns.version))
    }

    /// Forget an owner's namespace (the owner was reaped).
    pub(crate) fn remove(&mut self, owner: &str) {
        if owner == &*self.me {
            return;
        }
        if let Some((owner, ns)) = self.spaces.remove_entry(owner) {
            self.summary ^= ns.line_hash(&owner, false);
        }
    }

    /// Records held over every namespace: one per key (a value or a
    /// tombstone) and one per user event not yet collected, each a slot of
    /// its namespace's stream. One step per namespace, so a driver
    /// that reports it samples it rather than reading it per message.
    pub(crate) fn held_records(&self) -> usize {
        self.spaces.values().map(|ns| ns.stream.len()).sum()
    }

    /// Owners held, in name order.
    pub(crate) fn owners(&self) -> impl Iterator<Item = &Arc<str>> {
        self.spaces.keys()
    }

    /// Tombstones held for `owner` (for tests and metrics).
    #[cfg(test)]
    fn tombstones(&self, owner: &str) -> usize {
        self.spaces.get(owner).map_or(0, |ns| {
            ns.entries.values().filter(|e| e.value.is_none()).count()
        })
    }
}

#[cfg(test)]
mod tests;
