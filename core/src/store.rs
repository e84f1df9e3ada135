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

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::message::{Delta, DigestEntry, Record, Versioned};
use crate::summary::Fnv64;
use crate::time::Time;
use crate::wire;

/// Size limits on what a namespace holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_key_len: usize,
    pub max_value_len: usize,
    pub max_keys: usize,
}

/// A live entry or a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    version: u64,
    value: Option<Arc<[u8]>>,
}

/// What sits at a version of the stream.
#[derive(Clone, Debug)]
enum Slot {
    /// The entry of this key (live or tombstone) has this version.
    Key(Arc<str>),
    /// A user event.
    Event {
        name: Arc<str>,
        payload: Arc<[u8]>,
        lamport: u64,
    },
}

/// Most rumoured deltas held per owner while an earlier version is missing.
const MAX_PENDING: usize = 64;

#[derive(Debug, Default)]
struct Namespace {
    generation: u32,
    /// Complete up to this version.
    version: u64,
    /// Tombstones and events up to this version may have been collected.
    horizon: u64,
    /// After a partial reset: deltas are safe only from senders that have
    /// seen this version (0 when no such constraint).
    floor: u64,
    entries: BTreeMap<Arc<str>, Stored>,
    stream: BTreeMap<u64, Slot>,
    live: usize,
    /// Rumoured deltas waiting for the versions before them, by `from`.
    pending: BTreeMap<u64, Delta>,
}

impl Namespace {
    fn new(generation: u32) -> Namespace {
        Namespace {
            generation,
            ..Namespace::default()
        }
    }
}

/// One applied change, reported to the application.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    /// An entry was written or deleted.
    Entry {
        /// The namespace's owner.
        owner: Arc<str>,
        /// The key.
        key: Arc<str>,
        /// The version of the change.
        version: u64,
        /// The new value, `None` if deleted.
        value: Option<Arc<[u8]>>,
    },
    /// A user event arrived.
    Event {
        /// Who sent it.
        origin: Arc<str>,
        /// Its name.
        name: Arc<str>,
        /// Its payload.
        payload: Arc<[u8]>,
        /// The origin's Lamport time when it sent it.
        lamport: u64,
        /// Its version in the origin's stream.
        version: u64,
    },
}

impl Change {
    /// The change that applying record `v` of `owner` makes.
    fn of(owner: &Arc<str>, v: &Versioned) -> Change {
        match &v.record {
            Record::Entry { key, value } => Change::Entry {
                owner: owner.clone(),
                key: key.clone(),
                version: v.version,
                value: value.clone(),
            },
            Record::Event {
                name,
                payload,
                lamport,
            } => Change::Event {
                origin: owner.clone(),
                name: name.clone(),
                payload: payload.clone(),
                lamport: *lamport,
                version: v.version,
            },
        }
    }
}

/// Why a delta was not applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
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
    limits: Limits,
    grace: Duration,
    spaces: BTreeMap<Arc<str>, Namespace>,
    /// XOR of `space_hash` over namespaces holding any version.
    summary: u64,
    /// Tombstones and events to collect: (when, owner, generation, version).
    collect: VecDeque<(Time, Arc<str>, u32, u64)>,
}

fn space_hash(owner: &str, generation: u32, version: u64) -> u64 {
    let mut h = Fnv64::default();
    h.write(owner.as_bytes());
    h.write(&[0]);
    h.write(&generation.to_le_bytes());
    h.write(&version.to_le_bytes());
    h.finish()
}

impl Store {
    pub(crate) fn new(me: Arc<str>, generation: u32, limits: Limits, grace: Duration) -> Store {
        let mut spaces = BTreeMap::new();
        spaces.insert(me.clone(), Namespace::new(generation));
        Store {
            me,
            limits,
            grace,
            spaces,
            summary: 0,
            collect: VecDeque::new(),
        }
    }

    /// Order-independent hash of the digest.
    pub(crate) fn summary(&self) -> u64 {
        self.summary
    }

    /// Set a namespace's generation and version, keeping the summary.
    fn set_version(&mut self, owner: &Arc<str>, generation: u32, version: u64) {
        let Some(ns) = self.spaces.get_mut(owner) else {
            return;
        };
        if ns.version > 0 {
            self.summary ^= space_hash(owner, ns.generation, ns.version);
        }
        ns.generation = generation;
        ns.version = version;
        if version > 0 {
            self.summary ^= space_hash(owner, generation, version);
        }
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
    pub(crate) fn write(&mut self, now: Time, record: Record) -> Result<(Delta, Change), Error> {
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
        let v = Versioned { version, record };
        let change = self
            .apply_record(now, &me, &v)
            .expect("a fresh version always applies");
        self.set_version(&me, generation, version);
        Ok((Delta::single(me, generation, v), change))
    }

    /// Put one record into a namespace (which must exist), replacing an
    /// older version of the same key. Returns the change, or `None` if the
    /// record lost to what the replica holds.
    fn apply_record(&mut self, now: Time, owner: &Arc<str>, v: &Versioned) -> Option<Change> {
        let grace = self.grace;
        let ns = self.spaces.get_mut(owner)?;
        let generation = ns.generation;
        match &v.record {
            Record::Entry { key, value } => {
                if let Some(old) = ns.entries.get(key) {
                    if old.version >= v.version {
                        return None;
                    }
                    ns.stream.remove(&old.version);
                    if old.value.is_some() {
                        ns.live -= 1;
                    }
                }
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
                    },
                );
                ns.stream.insert(v.version, Slot::Key(key.clone()));
                Some(Change::of(owner, v))
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
                    Slot::Event {
                        name: name.clone(),
                        payload: payload.clone(),
                        lamport: *lamport,
                    },
                );
                self.collect
                    .push_back((now + grace, owner.clone(), generation, v.version));
                Some(Change::of(owner, v))
            }
        }
    }

    /// Check a delta's shape without touching anything.
    fn well_formed(&self, d: &Delta) -> bool {
        if d.to < d.from || d.sender_version < d.to || (d.reset && d.from != 0) {
            return false;
        }
        let mut last = d.from;
        for r in &d.records {
            if r.version <= last || r.version > d.to || self.check_record(&r.record).is_err() {
                return false;
            }
            last = r.version;
        }
        true
    }

    /// Apply a delta from a peer. On success returns the changes, in
    /// version order; on refusal nothing changed (a rumoured delta refused
    /// for a gap is held, when `hold_gap`, until the versions before it
    /// arrive).
    pub(crate) fn apply(
        &mut self,
        now: Time,
        d: &Delta,
        hold_gap: bool,
    ) -> Result<Vec<Change>, Refusal> {
        if d.owner == self.me {
            return Err(Refusal::OwnNamespace);
        }
        if !self.well_formed(d) {
            return Err(Refusal::Malformed);
        }
        let (held_gen, held_version, floor) = match self.spaces.get(&d.owner) {
            Some(ns) => (Some(ns.generation), ns.version, ns.floor),
            None => (None, 0, 0),
        };
        let newer_life = held_gen.is_none_or(|g| g < d.generation);
        if held_gen.is_some_and(|g| g > d.generation) {
            return Err(Refusal::StaleGeneration);
        }
        let base = if newer_life { 0 } else { held_version };
        if d.reset && !newer_life && held_version >= d.horizon && d.to <= held_version {
            // A reset we do not need (we are past its horizon) that would
            // roll our replica back.
            return Err(Refusal::Duplicate);
        }
        if !d.reset {
            if !newer_life && floor > d.sender_version {
                return Err(Refusal::StaleSource);
            }
            if d.from > base {
                if hold_gap {
                    self.hold(d, newer_life);
                }
                return Err(Refusal::Gap);
            }
            if d.to <= base && !newer_life {
                return Err(Refusal::Duplicate);
            }
        }
        let replace = d.reset || newer_life;
        // The live key count after applying, checked before any change
        // (only when the delta could reach the limit at all).
        let ns = self.spaces.get(&d.owner);
        let base_live = if replace { 0 } else { ns.map_or(0, |n| n.live) };
        let puts = d
            .records
            .iter()
            .filter(|r| matches!(r.record, Record::Entry { value: Some(_), .. }))
            .count();
        let mut live = base_live;
        if base_live + puts > self.limits.max_keys {
            let mut seen: BTreeMap<&str, bool> = BTreeMap::new();
            for r in &d.records {
                if let Record::Entry { key, value } = &r.record {
                    let held = ns.and_then(|n| n.entries.get(key));
                    if !replace && held.is_some_and(|e| e.version >= r.version) {
                        continue;
                    }
                    let before = match seen.get(&**key) {
                        Some(b) => *b,
                        None => !replace && held.is_some_and(|e| e.value.is_some()),
                    };
                    let after = value.is_some();
                    live = live + after as usize - before as usize;
                    seen.insert(key, after);
                }
            }
        }
        if live > self.limits.max_keys {
            return Err(Refusal::Malformed);
        }

        let mut changes = Vec::new();
        let owner = d.owner.clone();
        if replace {
            let old = self.spaces.remove(&owner);
            if let Some(old) = &old {
                if old.version > 0 {
                    self.summary ^= space_hash(&owner, old.generation, old.version);
                }
            }
            let mut ns = Namespace::new(d.generation);
            if d.reset && d.to < d.horizon {
                ns.floor = d.horizon;
            }
            ns.horizon = if d.reset { d.horizon } else { 0 };
            self.spaces.insert(owner.clone(), ns);
            let old_entries = old.map(|o| o.entries).unwrap_or_default();
            if old_entries.is_empty() {
                // No entries held before: every applied record is a change,
                // but for events a reset repeats that we already delivered.
                for r in &d.records {
                    let seen_event = matches!(r.record, Record::Event { .. })
                        && !newer_life
                        && r.version <= held_version;
                    if let Some(c) = self.apply_record(now, &owner, r) {
                        if !seen_event {
                            changes.push(c);
                        }
                    }
                }
            } else {
                for r in &d.records {
                    self.apply_record(now, &owner, r);
                }
                // Report what the replacement changed: keys gone, and keys
                // whose value differs from what the replica held.
                let ns = self.spaces.get(&owner).expect("just inserted");
                for (key, e) in &old_entries {
                    if e.value.is_some() && !ns.entries.contains_key(key) {
                        changes.push(Change::Entry {
                            owner: owner.clone(),
                            key: key.clone(),
                            version: d.to,
                            value: None,
                        });
                    }
                }
                for r in &d.records {
                    let report = match &r.record {
                        Record::Entry { key, value } => {
                            let same = old_entries.get(key).is_some_and(|o| o.value == *value);
                            !same && ns.entries.get(key).is_some_and(|e| e.version == r.version)
                        }
                        // Events of a reset were already delivered if they
                        // are at or below the version we held.
                        Record::Event { .. } => newer_life || r.version > held_version,
                    };
                    if report {
                        changes.push(Change::of(&owner, r));
                    }
                }
            }
            self.set_version(&owner, d.generation, d.to);
        } else {
            for r in &d.records {
                if r.version <= held_version {
                    continue;
                }
                if let Some(c) = self.apply_record(now, &owner, r) {
                    changes.push(c);
                }
            }
            self.set_version(&owner, d.generation, d.to);
            if let Some(ns) = self.spaces.get_mut(&owner) {
                if ns.floor <= d.to {
                    ns.floor = 0;
                }
            }
        }
        if let Some(ns) = self.spaces.get_mut(&owner) {
            let version = ns.version;
            ns.pending.retain(|_, p| p.to > version);
        }
        self.drain_pending(now, &owner, &mut changes);
        Ok(changes)
    }

    fn hold(&mut self, d: &Delta, newer_life: bool) {
        let ns = self
            .spaces
            .entry(d.owner.clone())
            .or_insert_with(|| Namespace::new(d.generation));
        if newer_life && ns.generation < d.generation {
            // Pending rumours of an older life are of no use any more.
            ns.pending.clear();
        }
        if ns.pending.len() >= MAX_PENDING {
            if let Some((&last, _)) = ns.pending.last_key_value() {
                if last <= d.from {
                    return;
                }
                ns.pending.remove(&last);
            }
        }
        ns.pending.insert(d.from, d.clone());
    }

    fn drain_pending(&mut self, now: Time, owner: &Arc<str>, changes: &mut Vec<Change>) {
        loop {
            let next = {
                let Some(ns) = self.spaces.get_mut(owner) else {
                    return;
                };
                let version = ns.version;
                match ns.pending.first_key_value() {
                    Some((&from, _)) if from <= version => ns.pending.remove(&from),
                    _ => return,
                }
            };
            let Some(d) = next else { return };
            if let Ok(more) = self.apply(now, &d, false) {
                changes.extend(more);
            }
        }
    }

    /// Collect tombstones and events whose grace has passed.
    pub(crate) fn collect_garbage(&mut self, now: Time) {
        while let Some((at, _, _, _)) = self.collect.front() {
            if *at > now {
                break;
            }
            let (_, owner, generation, version) = self.collect.pop_front().expect("front");
            let Some(ns) = self.spaces.get_mut(&owner) else {
                continue;
            };
            if ns.generation != generation {
                continue;
            }
            match ns.stream.get(&version) {
                Some(Slot::Event { .. }) => {}
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
        }
    }

    /// When the next tombstone or event is due for collection.
    pub(crate) fn next_collection(&self) -> Option<Time> {
        self.collect.front().map(|c| c.0)
    }

    /// Every namespace holding any version, for a peer to diff against.
    pub(crate) fn digest(&self) -> Vec<DigestEntry> {
        self.spaces
            .iter()
            .filter(|(_, ns)| ns.version > 0)
            .map(|(owner, ns)| DigestEntry {
                owner: owner.clone(),
                generation: ns.generation,
                version: ns.version,
            })
            .collect()
    }

    /// The deltas a peer with `digest` lacks, packed into `budget` bytes,
    /// starting with the owner after `start` in name order (so that a
    /// budget too small for everything serves every owner in turn).
    /// `owns` says whether an owner is a member worth replicating.
    pub(crate) fn deltas_for(
        &self,
        digest: &[DigestEntry],
        budget: usize,
        start: usize,
        only_listed: bool,
    ) -> Vec<Delta> {
        let theirs: BTreeMap<&str, &DigestEntry> = digest.iter().map(|e| (&*e.owner, e)).collect();
        let mut out = Vec::new();
        let mut left = budget;
        let n = self.spaces.len();
        if n == 0 {
            return out;
        }
        let owners: Vec<(&Arc<str>, &Namespace)> = self.spaces.iter().collect();
        for i in 0..n {
            let (owner, ns) = owners[(start + i) % n];
            let their = theirs.get(&**owner);
            let (reset, from) = match their {
                Some(e) if e.generation > ns.generation => continue,
                Some(e) if e.generation < ns.generation => (true, 0),
                Some(e) if e.version >= ns.version => continue,
                Some(e) if e.version < ns.horizon => (true, 0),
                Some(e) => (false, e.version),
                None if ns.version == 0 || only_listed => continue,
                None => (ns.horizon > 0, 0),
            };
            let mut d = Delta {
                owner: owner.clone(),
                generation: ns.generation,
                from,
                to: ns.version,
                reset,
                horizon: ns.horizon,
                sender_version: ns.version,
                records: Vec::new(),
            };
            let head = wire::len_field(wire::delta_head_len(&d)) + 2;
            if head + 16 > left {
                break;
            }
            let mut used = head;
            let mut truncated = false;
            for (&version, slot) in ns.stream.range(from + 1..) {
                let record = match slot {
                    Slot::Key(key) => {
                        let e = &ns.entries[key];
                        Record::Entry {
                            key: key.clone(),
                            value: e.value.clone(),
                        }
                    }
                    Slot::Event {
                        name,
                        payload,
                        lamport,
                    } => Record::Event {
                        name: name.clone(),
                        payload: payload.clone(),
                        lamport: *lamport,
                    },
                };
                let v = Versioned { version, record };
                let size = wire::len_field(wire::versioned_len(&v));
                if used + size > left {
                    truncated = true;
                    break;
                }
                used += size;
                d.records.push(v);
            }
            if truncated {
                match d.records.last() {
                    Some(last) => d.to = last.version,
                    None => break,
                }
            }
            left -= used;
            out.push(d);
            if truncated {
                break;
            }
        }
        out
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
        if let Some(ns) = self.spaces.remove(owner) {
            if ns.version > 0 {
                self.summary ^= space_hash(owner, ns.generation, ns.version);
            }
        }
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
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_key_len: 16,
        max_value_len: 64,
        max_keys: 4,
    };
    const GRACE: Duration = Duration::from_secs(10);

    fn store(name: &str) -> Store {
        Store::new(Arc::from(name), 0, LIMITS, GRACE)
    }

    fn put(key: &str, value: &str) -> Record {
        Record::Entry {
            key: Arc::from(key),
            value: Some(Arc::from(value.as_bytes())),
        }
    }

    fn del(key: &str) -> Record {
        Record::Entry {
            key: Arc::from(key),
            value: None,
        }
    }

    fn value(s: &Store, owner: &str, key: &str) -> Option<String> {
        s.get(owner, key)
            .map(|e| String::from_utf8(e.value.to_vec()).unwrap())
    }

    fn sync(from: &Store, to: &mut Store, now: Time) -> Vec<Change> {
        let deltas = from.deltas_for(&to.digest(), 1 << 20, 0, false);
        let mut changes = vec![];
        for d in deltas {
            changes.extend(to.apply(now, &d, false).unwrap());
        }
        changes
    }

    #[test]
    fn owner_writes_and_replica_catches_up_by_digest() {
        let mut a = store("a");
        let mut b = store("b");
        let t = Time::ZERO;
        a.write(t, put("x", "1")).unwrap();
        a.write(t, put("y", "2")).unwrap();
        a.write(t, put("x", "3")).unwrap();
        assert_eq!(a.version("a"), Some((0, 3)));
        let changes = sync(&a, &mut b, t);
        // Version 1 was superseded: only y@2 and x@3 travel.
        assert_eq!(changes.len(), 2);
        assert_eq!(value(&b, "a", "x").as_deref(), Some("3"));
        assert_eq!(b.summary(), {
            let mut a2 = a.summary();
            a2 ^= 0;
            a2
        });
        assert!(a.deltas_for(&b.digest(), 1 << 20, 0, false).is_empty());
        // Nothing about b's own (empty) namespace travels back.
        assert!(b.deltas_for(&a.digest(), 1 << 20, 0, false).is_empty());
    }

    #[test]
    fn rumours_apply_in_order_and_hold_gaps() {
        let mut a = store("a");
        let mut b = store("b");
        let t = Time::ZERO;
        let (d1, _) = a.write(t, put("x", "1")).unwrap();
        let (d2, _) = a.write(t, put("y", "2")).unwrap();
        assert_eq!(b.apply(t, &d2, true), Err(Refusal::Gap));
        assert_eq!(b.get("a", "y"), None);
        let changes = b.apply(t, &d1, true).unwrap();
        assert_eq!(changes.len(), 2, "the held delta follows");
        assert_eq!(b.version("a"), Some((0, 2)));
        assert_eq!(b.apply(t, &d1, true), Err(Refusal::Duplicate));
    }

    #[test]
    fn gap_without_hold_changes_nothing() {
        let mut a = store("a");
        let mut b = store("b");
        let t = Time::ZERO;
        a.write(t, put("x", "1")).unwrap();
        let (d2, _) = a.write(t, put("y", "2")).unwrap();
        let before = b.summary();
        assert_eq!(b.apply(t, &d2, false), Err(Refusal::Gap));
        assert_eq!(b.summary(), before);
        assert_eq!(b.version("a"), None);
    }

    #[test]
    fn own_namespace_and_malformed_deltas_are_refused() {
        let mut a = store("a");
        let mut b = store("b");
        let t = Time::ZERO;
        let (d, _) = a.write(t, put("x", "1")).unwrap();
        assert_eq!(a.apply(t, &d, false), Err(Refusal::OwnNamespace));
        let mut bad = d.clone();
        bad.records[0].version = 5;
        assert_eq!(b.apply(t, &bad, false), Err(Refusal::Malformed));
        let mut long = d.clone();
        long.records[0].record = put("a-key-far-too-long-for-limits", "v");
        assert_eq!(b.apply(t, &long, false), Err(Refusal::Malformed));
        let mut backwards = d;
        backwards.to = 0;
        assert_eq!(b.apply(t, &backwards, false), Err(Refusal::Malformed));
        assert_eq!(b.version("a"), None);
    }

    #[test]
    fn limits_are_typed_errors_that_change_nothing() {
        let mut a = store("a");
        let t = Time::ZERO;
        assert_eq!(a.write(t, put("", "v")).unwrap_err(), Error::EmptyKey);
        assert!(matches!(
            a.write(t, put("k", &"v".repeat(65))).unwrap_err(),
            Error::ValueTooLong { len: 65, max: 64 }
        ));
        for i in 0..4 {
            a.write(t, put(&format!("k{i}"), "v")).unwrap();
        }
        assert_eq!(
            a.write(t, put("k9", "v")).unwrap_err(),
            Error::NamespaceFull { max: 4 }
        );
        // Overwriting an existing key is fine at the limit.
        a.write(t, put("k0", "w")).unwrap();
        assert_eq!(a.version("a"), Some((0, 5)));
        // A replica refuses a delta that would exceed the limit.
        let mut big = store("big");
        big.limits.max_keys = 10;
        for i in 0..6 {
            big.write(t, put(&format!("k{i}"), "v")).unwrap();
        }
        let d = big.deltas_for(&[], 1 << 20, 0, false);
        assert_eq!(a.apply(t, &d[0], false), Err(Refusal::Malformed));
        assert_eq!(a.version("big"), None);
    }

    #[test]
    fn tombstones_are_collected_and_stale_replicas_reset() {
        let t0 = Time::ZERO;
        let mut a = store("a");
        let mut b = store("b");
        a.write(t0, put("x", "1")).unwrap();
        a.write(t0, put("y", "1")).unwrap();
        sync(&a, &mut b, t0);
        // b is cut off; a deletes x and, after the grace, forgets the tombstone.
        a.write(t0, del("x")).unwrap();
        a.write(t0, put("z", "1")).unwrap();
        assert_eq!(a.tombstones("a"), 1);
        a.collect_garbage(t0 + GRACE);
        assert_eq!(a.tombstones("a"), 0);
        // b is behind a's horizon: it gets a reset, and x does not survive.
        let d = a.deltas_for(&b.digest(), 1 << 20, 0, false);
        assert!(d[0].reset);
        let changes = sync(&a, &mut b, t0 + GRACE);
        assert_eq!(value(&b, "a", "x"), None);
        assert_eq!(value(&b, "a", "z").as_deref(), Some("1"));
        assert!(changes
            .iter()
            .any(|c| matches!(c, Change::Entry { key, value: None, .. } if &**key == "x")));
        // y did not change, so it is not reported again.
        assert!(!changes
            .iter()
            .any(|c| matches!(c, Change::Entry { key, .. } if &**key == "y")));
        assert_eq!(a.summary(), b.summary());
    }

    #[test]
    fn partial_reset_only_trusts_senders_past_the_horizon() {
        let t0 = Time::ZERO;
        let mut a = store("a");
        a.limits.max_keys = 100;
        let mut b = store("b");
        b.limits.max_keys = 100;
        let mut stale = store("c");
        stale.limits.max_keys = 100;
        for i in 0..10 {
            a.write(t0, put(&format!("k{i}"), "v")).unwrap();
        }
        sync(&a, &mut stale, t0);
        a.write(t0, del("k9")).unwrap();
        a.collect_garbage(t0 + GRACE);
        // A reset that only fits three records stops short of the horizon.
        let d = a.deltas_for(&b.digest(), 3 * 12 + 40, 0, false);
        assert!(d[0].reset && d[0].to < d[0].horizon, "{:?}", d[0]);
        b.apply(t0, &d[0], false).unwrap();
        // The stale replica (still holding k9) is not a safe source.
        let from_stale = stale.deltas_for(&b.digest(), 1 << 20, 0, false);
        assert_eq!(
            b.apply(t0, &from_stale[0], false),
            Err(Refusal::StaleSource)
        );
        sync(&a, &mut b, t0);
        assert_eq!(value(&b, "a", "k9"), None);
        assert_eq!(b.list("a", "k").len(), 9);
        assert_eq!(a.summary(), b.summary());
    }

    #[test]
    fn a_new_generation_replaces_the_old_life() {
        let t0 = Time::ZERO;
        let mut old = store("a");
        let mut b = store("b");
        old.write(t0, put("x", "1")).unwrap();
        old.write(t0, put("y", "1")).unwrap();
        sync(&old, &mut b, t0);
        let mut new = Store::new(Arc::from("a"), 1, LIMITS, GRACE);
        let (d, _) = new.write(t0, put("z", "2")).unwrap();
        let changes = b.apply(t0, &d, true).unwrap();
        assert_eq!(b.version("a"), Some((1, 1)));
        assert_eq!(value(&b, "a", "x"), None);
        assert_eq!(value(&b, "a", "z").as_deref(), Some("2"));
        assert_eq!(changes.len(), 3, "x and y deleted, z written: {changes:?}");
        // The old life's deltas are now stale.
        let d = old.deltas_for(&[], 1 << 20, 0, false);
        assert_eq!(b.apply(t0, &d[0], false), Err(Refusal::StaleGeneration));
        // An empty new life resets a replica through the digest exchange.
        let mut c = store("c");
        sync(&old, &mut c, t0);
        let empty = Store::new(Arc::from("a"), 2, LIMITS, GRACE);
        let mut digest = c.digest();
        digest.retain(|e| &*e.owner == "a");
        let d = empty.deltas_for(&digest, 1 << 20, 0, false);
        assert!(d[0].reset && d[0].records.is_empty());
        c.apply(t0, &d[0], false).unwrap();
        assert_eq!(value(&c, "a", "x"), None);
        assert_eq!(c.version("a"), Some((2, 0)));
        assert!(c.digest().iter().all(|e| &*e.owner != "a"));
    }

    #[test]
    fn events_are_delivered_once_and_collected() {
        let t0 = Time::ZERO;
        let mut a = store("a");
        let mut b = store("b");
        let ev = Record::Event {
            name: Arc::from("deploy"),
            payload: Arc::from(&b"v2"[..]),
            lamport: 7,
        };
        let (d, _) = a.write(t0, ev).unwrap();
        assert_eq!(b.apply(t0, &d, true).unwrap().len(), 1);
        assert_eq!(b.apply(t0, &d, true), Err(Refusal::Duplicate));
        assert!(sync(&a, &mut b, t0).is_empty());
        b.collect_garbage(t0 + GRACE);
        assert_eq!(b.version("a"), Some((0, 1)));
        assert!(sync(&a, &mut b, t0).is_empty());
    }

    #[test]
    fn a_reset_never_rolls_a_replica_back_and_reports_a_delete_once() {
        let t0 = Time::ZERO;
        let mut a = store("a");
        let mut b = store("b");
        a.write(t0, put("x", "1")).unwrap();
        a.write(t0, del("y")).unwrap();
        a.collect_garbage(t0 + GRACE);
        let reset = a.deltas_for(&[], 1 << 20, 0, false);
        assert!(reset[0].reset);
        sync(&a, &mut b, t0);
        a.write(t0, put("z", "1")).unwrap();
        sync(&a, &mut b, t0);
        // b is past the horizon and ahead of the old reset: refused.
        assert_eq!(b.apply(t0, &reset[0], false), Err(Refusal::Duplicate));
        assert_eq!(b.version("a"), Some((0, 3)));
        // A targeted pull serves only the owners it names.
        assert!(a.deltas_for(&[], 1 << 20, 0, true).is_empty());

        // A legitimate reset that carries a tombstone of a key the replica
        // holds live reports the delete once.
        let mut c = store("c");
        let mut d = store("d");
        c.write(t0, put("k", "1")).unwrap();
        c.write(t0, put("old", "1")).unwrap();
        sync(&c, &mut d, t0);
        c.write(t0, del("old")).unwrap();
        let t1 = t0 + GRACE;
        c.collect_garbage(t1);
        c.write(t1, del("k")).unwrap();
        let reset = c.deltas_for(&d.digest(), 1 << 20, 0, false);
        assert!(reset[0].reset);
        let changes = d.apply(t1, &reset[0], false).unwrap();
        let k_deletes = changes
            .iter()
            .filter(|ch| matches!(ch, Change::Entry { key, value: None, .. } if &**key == "k"))
            .count();
        assert_eq!(k_deletes, 1, "{changes:?}");
    }

    #[test]
    fn list_by_prefix() {
        let mut a = store("a");
        let t = Time::ZERO;
        for k in ["app/1", "app/2", "b", "apz"] {
            a.write(t, put(k, "v")).unwrap();
        }
        a.write(t, del("app/2")).unwrap();
        let keys: Vec<_> = a.list("a", "app/").iter().map(|e| e.key.clone()).collect();
        assert_eq!(keys, vec![Arc::from("app/1")]);
        assert_eq!(a.list("a", "").len(), 3);
    }
}
