//! Staging: a delta cut short by its message's budget is held aside until
//! the rest of it arrives, so that a replica only ever shows its owner's
//! namespace as of a version the owner passed through.
//!
//! A delta carries the records its sender holds now, in version order; cut
//! after version `t`, it leaves out every key rewritten after `t`, even
//! those whose earlier value was live at `t`. Applied as it came, the
//! replica would show a namespace its owner never had: live keys missing.
//! So the pieces of a cut delta are merged aside (each key's latest record
//! kept), the digest advertises how far the pieces reach (so peers send
//! what follows), and the merge is applied in one step once the pieces
//! reach every sender's version seen along the way. Applied then, it is
//! the owner's namespace at that version: a key's last write up to it lies
//! in some piece's range, and that piece's sender, at or below the end,
//! still held that write.
//!
//! A whole piece that stops below a version an earlier sender reported
//! (peers at different versions served the pieces, or a tree push of the
//! next write came in between) is merged, and the stage waits for the
//! rest. A sender's version is not signed, so a relay can overstate it;
//! the owner's own whole piece (which the replica's audit asks for) ends
//! the wait, since no honest sender is ahead of the owner.
//!
//! A reset is cut the same way, but the sender rule that keeps a cut
//! delta safe (go on only from a version at or past one's own GC horizon,
//! so every tombstone after it is still there) would send the reset again
//! from 0 every time: a reset bigger than one message never arrived. So a
//! staged reset is of one version, its first piece's sender's: the digest
//! line says which (`reset_at`), a peer at exactly that version goes on
//! from where the pieces reach (that version's namespace needs no
//! tombstone), a peer past it starts the reset anew, and pieces from any
//! other version are refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Namespace, Refusal, Store};
use crate::events::Event;
use crate::identity::Signature;
use crate::message::{Delta, Record, Versioned};
use crate::time::Time;

use super::apply::Signer;

/// The merged pieces of a delta cut short.
#[derive(Clone, Debug)]
pub(super) struct Stage {
    pub(super) generation: u32,
    /// The version held when the first piece came (0 when the pieces
    /// replace the replica).
    from: u64,
    /// The pieces reach this version.
    pub(super) to: u64,
    /// The highest version a piece's sender reported holding.
    need: u64,
    /// The first piece replaces the replica (a reset).
    reset: bool,
    horizon: u64,
    horizon_signature: Option<Signature>,
    /// Each key's latest record, and every event, by version.
    records: BTreeMap<u64, Versioned>,
    /// Where each key's record sits in `records`.
    keys: BTreeMap<Arc<str>, u64>,
}

impl Stage {
    /// A stage from the first piece of a cut delta, which extends a replica
    /// held at `base` (0 when it replaces it).
    fn new(d: &Delta, base: u64) -> Stage {
        let mut stage = Stage {
            generation: d.generation,
            from: d.from,
            to: base,
            need: 0,
            reset: d.reset,
            horizon: d.horizon,
            horizon_signature: d.horizon_signature,
            records: BTreeMap::new(),
            keys: BTreeMap::new(),
        };
        stage.merge(d);
        stage
    }

    /// Take the records of `d` past what the stage reaches.
    fn merge(&mut self, d: &Delta) {
        for r in d.records.iter().filter(|r| r.version > self.to) {
            if let Record::Entry { key, .. } = &r.record {
                if let Some(old) = self.keys.insert(key.clone(), r.version) {
                    self.records.remove(&old);
                }
            }
            self.records.insert(r.version, r.clone());
        }
        self.to = d.to;
        self.need = self.need.max(d.sender_version);
        // The latest signed horizon, which may be what proves `to`.
        if d.horizon_signature.is_some()
            && (self.horizon_signature.is_none() || d.horizon >= self.horizon)
        {
            self.horizon = d.horizon;
            self.horizon_signature = d.horizon_signature;
        }
    }

    /// For a staged reset, the version it is of: every piece comes from a
    /// sender at that version (a reset is sent because tombstones were
    /// collected, so only that version's namespace fits the first piece).
    /// 0 for any other stage.
    pub(super) fn reset_at(&self) -> u64 {
        if self.reset {
            self.need
        } else {
            0
        }
    }

    /// The merged delta, whole at `to`, with the last piece's checkpoint.
    fn into_delta(self, owner: Arc<str>, last: &Delta) -> Delta {
        Delta {
            owner,
            generation: self.generation,
            from: self.from,
            to: self.to,
            reset: self.reset,
            horizon: self.horizon,
            sender_version: self.to,
            records: self.records.into_values().collect(),
            horizon_signature: self.horizon_signature,
            checkpoint: last.checkpoint.clone(),
        }
    }
}

/// Whether a delta stops short of what its sender holds.
pub(super) fn cut(d: &Delta) -> bool {
    d.to < d.sender_version
}

impl Store {
    /// Hold the first piece of a cut delta (admitted and verified) aside.
    /// `base` is the version it extends (0 if it replaces the replica).
    pub(super) fn start_stage(&mut self, d: &Delta, base: u64) {
        let stage = Stage::new(d, base);
        self.findings.staged += 1;
        self.spaces
            .entry(d.owner.clone())
            .or_insert_with(|| Namespace::new(d.generation));
        self.touch(&d.owner, |ns| ns.stage = Some(Box::new(stage)));
    }

    /// A piece that follows on a staged cut delta: merged, and once the
    /// pieces are whole, applied as one delta (or dropped, see the module
    /// doc). `None` if `d` does not follow on a stage.
    pub(super) fn continue_stage(
        &mut self,
        now: Time,
        d: &Delta,
        signer: Signer<'_>,
    ) -> Option<Result<Vec<Event>, Refusal>> {
        let stage = self.spaces.get(&d.owner)?.stage.as_ref()?;
        if d.reset || d.generation != stage.generation || d.from > stage.to || d.to <= stage.to {
            return None;
        }
        if stage.reset && d.from == 0 {
            // The owner's namespace from scratch: it starts over.
            return None;
        }
        if !self.well_formed(d) {
            return Some(Err(Refusal::Malformed));
        }
        if stage.reset && d.sender_version != stage.need {
            // Not of the version the reset is: its records need tombstones
            // the reset's sender may have collected.
            return Some(Err(Refusal::StaleSource));
        }
        if let Err(e) = self.verify(d, false, signer) {
            return Some(Err(e));
        }
        let owner = d.owner.clone();
        // The owner's own whole piece reaches its version, which no honest
        // sender's can pass: what stands in the way is an overstatement.
        let owners_word = !cut(d) && signer.from_owner;
        let mut stage = None;
        self.touch(&owner, |ns| {
            let s = ns.stage.as_mut().expect("checked above");
            s.merge(d);
            if s.to >= s.need || owners_word {
                stage = ns.stage.take();
            }
        });
        let Some(stage) = stage else {
            self.findings.staged += 1;
            return Some(Ok(Vec::new()));
        };
        let whole = stage.into_delta(owner, d);
        Some(self.apply_whole(now, &whole, signer))
    }
}

impl Namespace {
    /// Drop a stage the replica has caught up with by another path.
    pub(super) fn drop_stale_stage(&mut self) {
        if self.stage.as_ref().is_some_and(|s| {
            s.generation < self.generation
                || (s.generation == self.generation && s.to <= self.version)
        }) {
            self.stage = None;
        }
    }
}
