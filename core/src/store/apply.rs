//! Applying a peer's delta: an admission check that changes nothing, then
//! one of two appliers (replace the replica, for a reset or an owner's new
//! life; or extend it), then the gap buffer.
//!
//! The gap buffer is the one place a delta waits for the versions before
//! it. A rumoured delta that would skip versions is held there with the
//! peer that pushed it; once the replica reaches its versions, by whatever
//! path, it leaves the buffer and is handed back ([`Store::take_released`])
//! so that the broadcast tree passes it on, since the peers below expect it.
//!
//! A delta may carry the owner's checkpoint at its `to`. Once the replica
//! reaches that version, its live digest must match: then the replica is
//! proven whole at that version; if not, a record was withheld somewhere
//! on the way, and the replica starts a repair: a pass over the owner's
//! stream from version 0, merged into what it holds (nothing is dropped
//! while the pass runs, so a reader never sees the replica emptied), ended
//! by a checkpoint that must match, at which point held entries the pass
//! never saw (deletes that were withheld and then collected) go.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::{applied, stage, Namespace, Refusal, Store};
use crate::checkpoint::{Checkpoint, LiveDigest};
use crate::events::Event;
use crate::identity::{
    checkpoint_statement, horizon_statement, record_statement, PublicKey, Signature, Verified,
};
use crate::message::{Delta, Record, Versioned};
use crate::time::Time;

/// Who may write a namespace, and the memory of signatures already checked.
#[derive(Clone, Copy)]
pub(crate) struct Signer<'a> {
    /// The owner's public key, as its membership binds it.
    pub key: &'a PublicKey,
    pub verified: &'a Verified,
    /// The delta came straight from the owner (its member address): its
    /// word on its own version stands.
    pub from_owner: bool,
}

/// What the admission check found.
struct Admitted {
    /// The delta replaces the replica (a reset, or the owner's newer life).
    replace: bool,
    newer_life: bool,
    /// The version the replica held before.
    held_version: u64,
}

impl Store {
    /// Apply a delta from a peer. On success returns the changes, in
    /// version order; on refusal nothing changed, except that a rumoured
    /// delta (`pushed_by` set) refused for a gap is held until the versions
    /// before it arrive.
    ///
    /// Nothing is held or applied before the owner's signatures on it
    /// check out: every record's, and the signed horizon a reset or a new
    /// life needs (see [`Store::verify`]).
    pub(crate) fn apply(
        &mut self,
        now: Time,
        d: &Delta,
        pushed_by: Option<SocketAddr>,
        signer: Signer<'_>,
    ) -> Result<Vec<Event>, Refusal> {
        if self.repairing(d) {
            return self.apply_repair(now, d, signer);
        }
        if let Some(staged) = self.continue_stage(now, d, signer) {
            return staged;
        }
        if let Some(proved) = self.prove_in_place(d, signer) {
            return proved;
        }
        let admitted = match self.admit(d) {
            Err(Refusal::Gap) => {
                if let Some(peer) = pushed_by {
                    // Held under its generation: a life the replica does
                    // not know yet needs the same proof as when applied.
                    let newer_life = self
                        .spaces
                        .get(&d.owner)
                        .is_none_or(|ns| ns.generation < d.generation);
                    self.verify(d, newer_life, signer)?;
                    self.hold(d, peer);
                }
                return Err(Refusal::Gap);
            }
            other => other?,
        };
        self.verify(d, admitted.newer_life, signer)?;
        if stage::cut(d) {
            // Cut again where a stage of the same life already reaches, and
            // of the same version if a reset: it brings nothing. A reset of
            // another version starts the stage over.
            let staged = self.spaces.get(&d.owner).and_then(|ns| ns.stage.as_ref());
            if staged.is_some_and(|s| {
                s.generation == d.generation
                    && s.to >= d.to
                    && s.reset_at() == if d.reset { d.sender_version } else { 0 }
            }) {
                return Err(Refusal::Duplicate);
            }
            let base = if admitted.replace {
                0
            } else {
                admitted.held_version
            };
            self.start_stage(d, base);
            return Ok(Vec::new());
        }
        self.apply_admitted(now, d, &admitted, signer)
    }

    /// Apply a delta whole at its `to`: the merged pieces of a cut one.
    pub(super) fn apply_whole(
        &mut self,
        now: Time,
        d: &Delta,
        signer: Signer<'_>,
    ) -> Result<Vec<Event>, Refusal> {
        let admitted = self.admit(d)?;
        self.verify(d, admitted.newer_life, signer)?;
        self.apply_admitted(now, d, &admitted, signer)
    }

    /// Apply an admitted, verified delta that is whole.
    fn apply_admitted(
        &mut self,
        now: Time,
        d: &Delta,
        admitted: &Admitted,
        signer: Signer<'_>,
    ) -> Result<Vec<Event>, Refusal> {
        if admitted.replace {
            if let Some(cp) = &d.checkpoint {
                // A reset or a new life from scratch holds the owner's whole
                // namespace at `to`: it must be what the checkpoint says.
                if digest_of(&d.records) != cp.digest {
                    self.findings.withheld += 1;
                    return Err(Refusal::Withheld);
                }
            }
        }
        let mut changes = if admitted.replace {
            self.replace(now, d, admitted)
        } else {
            self.extend(now, d, admitted.held_version)
        };
        self.keep_signed_horizon(d);
        self.settle(d);
        self.release(now, &d.owner, &mut changes, signer);
        Ok(changes)
    }

    // ----- checkpoints and repair ------------------------------------------

    /// A replica that reached a delta's `to` holds the checkpoint that came
    /// with it if its digest matches, and starts a repair if not.
    fn settle(&mut self, d: &Delta) {
        let Some(cp) = d.checkpoint.clone() else {
            return;
        };
        let mut withheld = false;
        let mut proven = false;
        self.touch(&d.owner, |ns| {
            if ns.generation != d.generation || ns.version != d.to || ns.repair.is_some() {
                return;
            }
            if ns.digest == cp.digest {
                proven = ns.proof.is_none();
                ns.proof = Some(cp);
            } else {
                withheld = true;
                ns.proof = None;
                ns.repair = Some(Box::default());
            }
        });
        self.findings.proven += proven as u64;
        self.findings.withheld += withheld as u64;
    }

    /// A checkpoint at exactly the version held (a peer at the same version
    /// holds one, we do not): check it in place. `None` if `d` is not that.
    fn prove_in_place(
        &mut self,
        d: &Delta,
        signer: Signer<'_>,
    ) -> Option<Result<Vec<Event>, Refusal>> {
        let cp = d.checkpoint.as_ref()?;
        let ns = self.spaces.get(&d.owner)?;
        if d.reset || ns.generation != d.generation || ns.version != d.to || ns.repair.is_some() {
            return None;
        }
        if ns.proof.is_some() {
            return Some(Err(Refusal::Duplicate));
        }
        if !checkpoint_signed(d, cp, signer) {
            return Some(Err(Refusal::BadSignature));
        }
        self.settle(d);
        Some(Ok(Vec::new()))
    }

    /// Whether `d` belongs to the repair pass of its owner's replica.
    fn repairing(&self, d: &Delta) -> bool {
        self.spaces.get(&d.owner).is_some_and(|ns| {
            ns.generation == d.generation && ns.repair.as_ref().is_some_and(|r| d.from <= r.upto)
        })
    }

    /// Merge a delta of the repair pass: records newer than what is held
    /// for their key replace it, nothing is dropped. A checkpoint at the
    /// version held ends the pass: if what is held, less the entries the
    /// pass never saw, matches it, those entries go and the replica is
    /// proven whole; if not, the pass starts over.
    fn apply_repair(
        &mut self,
        now: Time,
        d: &Delta,
        signer: Signer<'_>,
    ) -> Result<Vec<Event>, Refusal> {
        if d.owner == self.me {
            return Err(Refusal::OwnNamespace);
        }
        if !self.well_formed(d) {
            return Err(Refusal::Malformed);
        }
        self.verify(d, false, signer)?;
        let owner = d.owner.clone();
        let held = self.spaces[&owner].version;
        let mut changes = Vec::new();
        for r in &d.records {
            // Events below the version held were delivered (or are past
            // what checkpoints cover).
            if matches!(r.record, Record::Event { .. }) && r.version <= held {
                continue;
            }
            if let Some(c) = self.apply_record(now, &owner, r) {
                changes.push(c);
            }
        }
        self.touch(&owner, |ns| {
            if let Some(repair) = &mut ns.repair {
                repair.upto = repair.upto.max(d.to);
            }
        });
        if d.to > held {
            self.set_version(&owner, d.generation, d.to);
        }
        self.keep_signed_horizon(d);
        if let Some(cp) = d.checkpoint.clone() {
            if d.to == self.spaces[&owner].version {
                self.end_repair(&owner, cp, d.to, &mut changes);
            }
        }
        Ok(changes)
    }

    /// End a repair pass that reached `version` with the owner's checkpoint
    /// for it (see [`Store::apply_repair`]).
    fn end_repair(
        &mut self,
        owner: &Arc<str>,
        cp: Arc<Checkpoint>,
        version: u64,
        changes: &mut Vec<Event>,
    ) {
        let ns = &self.spaces[owner];
        let seen = &ns.repair.as_ref().expect("repairing").seen;
        let unseen: Vec<(Arc<str>, u64, bool)> = ns
            .entries
            .iter()
            .filter(|(k, _)| !seen.contains(*k))
            .map(|(k, e)| (k.clone(), e.version, e.value.is_some()))
            .collect();
        let mut digest = ns.digest;
        for (_, v, live) in &unseen {
            if *live {
                digest.remove(*v);
            }
        }
        if digest != cp.digest {
            // Still not the owner's: start over.
            self.findings.withheld += 1;
            self.touch(owner, |ns| ns.repair = Some(Box::default()));
            return;
        }
        self.touch(owner, |ns| {
            for (key, v, live) in &unseen {
                ns.entries.remove(key);
                ns.stream.remove(v);
                if *live {
                    ns.live -= 1;
                    changes.push(Event::EntryChanged {
                        owner: owner.clone(),
                        key: key.clone(),
                        version,
                        value: None,
                    });
                }
            }
            ns.digest = digest;
            ns.repair = None;
            ns.proof = Some(cp);
        });
        self.findings.repaired += 1;
        self.findings.proven += 1;
    }

    /// Whether the owner signed everything in `d` this replica would act
    /// on: every record, and for a reset or the owner's new life the signed
    /// horizon (a new life may instead be proven by a record of it). Costs
    /// one batch verification of the records not seen before.
    pub(super) fn verify(
        &self,
        d: &Delta,
        newer_life: bool,
        signer: Signer<'_>,
    ) -> Result<(), Refusal> {
        let check = |bytes: &[u8], sig| signer.verified.check(signer.key, bytes, sig);
        let statements: Vec<Vec<u8>> = d
            .records
            .iter()
            .map(|r| record_statement(&d.owner, d.generation, r.version, &r.record))
            .collect();
        let checkpoint = d.checkpoint.as_ref().map(|cp| {
            let bytes = checkpoint_statement(&d.owner, d.generation, d.to, &cp.digest);
            (bytes, cp.signature)
        });
        let mut signed: Vec<(&PublicKey, &[u8], &Signature)> = statements
            .iter()
            .zip(&d.records)
            .map(|(bytes, r)| (signer.key, bytes.as_slice(), &r.signature))
            .collect();
        if let Some((bytes, sig)) = &checkpoint {
            signed.push((signer.key, bytes.as_slice(), sig));
        }
        if !signer.verified.check_all(&signed) {
            return Err(Refusal::BadSignature);
        }
        let horizon_signed = match &d.horizon_signature {
            Some(sig) => {
                if !check(&horizon_statement(&d.owner, d.generation, d.horizon), sig) {
                    return Err(Refusal::BadSignature);
                }
                true
            }
            None => false,
        };
        let proven = horizon_signed || (newer_life && !d.reset && !d.records.is_empty());
        if (d.reset || newer_life) && !proven {
            return Err(Refusal::Unproven);
        }
        // The version a delta reaches is not signed: the owner's word must
        // stand behind it. A record at it, a checkpoint at it, or a signed
        // horizon at or past it (the records up to the horizon may have
        // been collected). Else a relay could move a replica to a version
        // the owner has not written, and every write up to it would be
        // refused as a duplicate.
        let reach = d.records.last().map_or(d.from, |r| r.version);
        let reach = reach.max(if horizon_signed { d.horizon } else { 0 });
        if d.to > reach && d.checkpoint.is_none() {
            return Err(Refusal::Unproven);
        }
        Ok(())
    }

    /// Keep the owner's signed horizon a delta brought (already verified),
    /// if it is newer than the one held.
    fn keep_signed_horizon(&mut self, d: &Delta) {
        let (Some(sig), Some(ns)) = (d.horizon_signature, self.spaces.get_mut(&d.owner)) else {
            return;
        };
        if ns.generation == d.generation && ns.signed_horizon.is_none_or(|(h, _)| h <= d.horizon) {
            ns.signed_horizon = Some((d.horizon, sig));
        }
    }

    /// Check a delta's shape without touching anything.
    pub(super) fn well_formed(&self, d: &Delta) -> bool {
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

    /// Whether `d` may be applied, and how. Changes nothing.
    fn admit(&self, d: &Delta) -> Result<Admitted, Refusal> {
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
                return Err(Refusal::Gap);
            }
            if d.to <= base && !newer_life {
                return Err(Refusal::Duplicate);
            }
        }
        let replace = d.reset || newer_life;
        if self.live_after(d, replace) > self.limits.max_keys {
            return Err(Refusal::Malformed);
        }
        Ok(Admitted {
            replace,
            newer_life,
            held_version,
        })
    }

    /// The live key count after applying `d`, counted only when the delta
    /// could reach the limit at all.
    fn live_after(&self, d: &Delta, replace: bool) -> usize {
        let ns = self.spaces.get(&d.owner);
        let base_live = if replace { 0 } else { ns.map_or(0, |n| n.live) };
        let puts = d
            .records
            .iter()
            .filter(|r| matches!(r.record, Record::Entry { value: Some(_), .. }))
            .count();
        let mut live = base_live;
        if base_live + puts <= self.limits.max_keys {
            return live;
        }
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
        live
    }

    /// Replace the replica with the delta's contents (a reset, or the
    /// owner's newer life), reporting what that changed.
    fn replace(&mut self, now: Time, d: &Delta, a: &Admitted) -> Vec<Event> {
        let mut changes = Vec::new();
        let owner = d.owner.clone();
        let old = self.spaces.remove(&owner);
        if let Some(old) = &old {
            self.summary ^= old.line_hash(&owner, false);
        }
        let mut ns = Namespace::new(d.generation);
        if d.reset && d.to < d.horizon {
            ns.floor = d.horizon;
        }
        ns.horizon = if d.reset { d.horizon } else { 0 };
        if let Some(old) = &old {
            if old.generation == d.generation {
                // Rumours waiting for a gap of the same life still count.
                ns.pending = old.pending.clone();
            }
        }
        self.spaces.insert(owner.clone(), ns);
        // Events of a reset at or below the version we held were delivered.
        let delivered = |r: &crate::message::Versioned| {
            matches!(r.record, Record::Event { .. }) && !a.newer_life && r.version <= a.held_version
        };
        let old_entries = old.map(|o| o.entries).unwrap_or_default();
        if old_entries.is_empty() {
            // No entries held before: every applied record is a change.
            for r in &d.records {
                if let Some(c) = self.apply_record(now, &owner, r) {
                    if !delivered(r) {
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
                    changes.push(Event::EntryChanged {
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
                    Record::Event { .. } => !delivered(r),
                };
                if report {
                    changes.push(applied(&owner, r));
                }
            }
        }
        self.set_version(&owner, d.generation, d.to);
        changes
    }

    /// Extend the replica with the delta's records after the version held.
    fn extend(&mut self, now: Time, d: &Delta, held_version: u64) -> Vec<Event> {
        let owner = d.owner.clone();
        let mut changes = Vec::new();
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
        changes
    }

    // ----- the gap buffer ------------------------------------------------

    /// Hold a rumoured delta pushed by `peer` until the versions before it
    /// arrive.
    fn hold(&mut self, d: &Delta, peer: SocketAddr) {
        let max = self.limits.max_held;
        let ns = self
            .spaces
            .entry(d.owner.clone())
            .or_insert_with(|| Namespace::new(d.generation));
        if ns.generation < d.generation {
            // Rumours of an older life are of no use any more.
            ns.pending.clear();
        }
        if ns.pending.len() >= max {
            if let Some((&last, _)) = ns.pending.last_key_value() {
                if last <= d.from {
                    return;
                }
                ns.pending.remove(&last);
            }
        }
        ns.pending.insert(d.from, (d.clone(), peer));
    }

    /// The replica of `owner` moved on: held deltas it now covers leave the
    /// buffer, and those that follow on apply in turn. Every delta that left
    /// is handed back for the tree.
    fn release(
        &mut self,
        now: Time,
        owner: &Arc<str>,
        changes: &mut Vec<Event>,
        signer: Signer<'_>,
    ) {
        loop {
            let next = {
                let Some(ns) = self.spaces.get_mut(owner) else {
                    return;
                };
                let version = ns.version;
                let (covered, waiting): (BTreeMap<_, _>, BTreeMap<_, _>) =
                    std::mem::take(&mut ns.pending)
                        .into_iter()
                        .partition(|(_, (p, _))| p.to <= version);
                ns.pending = waiting;
                self.released.extend(covered.into_values());
                match ns.pending.first_key_value() {
                    Some((&from, _)) if from <= version => ns.pending.remove(&from),
                    _ => return,
                }
            };
            let Some((d, peer)) = next else { return };
            let signer = Signer {
                from_owner: false,
                ..signer
            };
            if let Ok(more) = self.apply(now, &d, None, signer) {
                changes.extend(more);
                self.released.push((d, peer));
            }
        }
    }

    /// The held deltas that left the gap buffer since the last call, with
    /// the peers that pushed them, in version order.
    pub(crate) fn take_released(&mut self) -> Vec<(Delta, SocketAddr)> {
        let mut released = std::mem::take(&mut self.released);
        released.sort_by(|(a, _), (b, _)| {
            (&a.owner, a.generation, a.to).cmp(&(&b.owner, b.generation, b.to))
        });
        released
    }
}

/// Whether the owner signed `cp` as its checkpoint at `d.to`.
fn checkpoint_signed(d: &Delta, cp: &Checkpoint, signer: Signer<'_>) -> bool {
    let bytes = checkpoint_statement(&d.owner, d.generation, d.to, &cp.digest);
    signer.verified.check(signer.key, &bytes, &cp.signature)
}

/// The live digest of a run of records that starts a replica from scratch:
/// each key's last record, counted if it has a value.
fn digest_of(records: &[Versioned]) -> LiveDigest {
    let mut last: BTreeMap<&str, (u64, bool)> = BTreeMap::new();
    for r in records {
        if let Record::Entry { key, value } = &r.record {
            let e = last.entry(key).or_insert((0, false));
            if r.version > e.0 {
                *e = (r.version, value.is_some());
            }
        }
    }
    let mut digest = LiveDigest::default();
    for (version, live) in last.into_values() {
        if live {
            digest.add(version);
        }
    }
    digest
}
