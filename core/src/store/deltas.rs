//! What a peer lacks: the deltas that bring a replica with a given digest
//! up to this node's, packed into a size budget.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Namespace, Slot, Store};
use crate::message::{Delta, DigestEntry, Page, Record, Versioned};
use crate::wire;

impl Namespace {
    /// The signed record at `version`, which holds `slot`.
    pub(super) fn versioned(&self, version: u64, slot: &Slot) -> Versioned {
        let (record, signature) = match slot {
            Slot::Key(key) => {
                let e = &self.entries[key];
                let record = Record::Entry {
                    key: key.clone(),
                    value: e.value.clone(),
                };
                (record, e.signature)
            }
            Slot::Event(e) => {
                let record = Record::Event {
                    name: e.name.clone(),
                    payload: e.payload.clone(),
                    lamport: e.lamport,
                };
                (record, e.signature)
            }
        };
        Versioned {
            version,
            record,
            signature,
        }
    }
}

/// The order in which [`Store::deltas_for`] serves owners.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Order<'a> {
    /// Every owner, from the one at this index in name order, wrapping.
    From(usize),
    /// The owners of a page, in page order.
    Page(&'a Page),
}

impl Store {
    /// The deltas a peer with `digest` lacks, packed into `budget` bytes,
    /// and the owner they stopped at if the budget ran out first. Owners go
    /// in `order`: from an index in name order (so that a budget too small
    /// for everything serves every owner in turn), or through a page.
    /// With `only_listed`, only owners the digest names are served.
    pub(crate) fn deltas_for(
        &self,
        digest: &[DigestEntry],
        budget: usize,
        order: Order<'_>,
        only_listed: bool,
    ) -> (Vec<Delta>, Option<Arc<str>>) {
        let theirs: BTreeMap<&str, &DigestEntry> = digest.iter().map(|e| (&*e.owner, e)).collect();
        let mut out = Vec::new();
        let mut left = budget;
        let owners: Box<dyn Iterator<Item = (&Arc<str>, &Namespace)>> = match order {
            Order::From(start) => {
                let start = start % self.spaces.len().max(1);
                Box::new(
                    self.spaces
                        .iter()
                        .skip(start)
                        .chain(self.spaces.iter().take(start)),
                )
            }
            Order::Page(page) => Box::new(page.walk(&self.spaces)),
        };
        for (owner, ns) in owners {
            if ns.repair.is_some() {
                // Not known to be whole: nothing to pass on.
                continue;
            }
            let their = theirs.get(&**owner);
            if let (Some(e), Some(cp)) = (their, &ns.proof) {
                if e.unproven && (e.generation, e.version) == (ns.generation, ns.version) {
                    // They hold what we hold, unproven: the checkpoint alone.
                    let d = Delta {
                        owner: owner.clone(),
                        generation: ns.generation,
                        from: ns.version,
                        to: ns.version,
                        reset: false,
                        horizon: 0,
                        sender_version: ns.version,
                        records: Vec::new(),
                        horizon_signature: None,
                        checkpoint: Some(cp.clone()),
                    };
                    let size = wire::len_field(wire::delta_head_len(&d)) + 2;
                    if size > left {
                        return (out, Some(owner.clone()));
                    }
                    left -= size;
                    out.push(d);
                    continue;
                }
            }
            let (reset, from) = match their {
                Some(e) if e.generation > ns.generation => continue,
                // A reset taken in pieces: a sender at exactly the version
                // it is of goes on where the pieces reach (that version's
                // namespace needs no tombstone); one past it starts anew,
                // and so does the owner if the version is past its own
                // (a relay overstated it: the field is not signed).
                Some(e) if e.reset_at != 0 && e.generation == ns.generation => {
                    match ns.version.cmp(&e.reset_at) {
                        std::cmp::Ordering::Equal if e.version < ns.version => (false, e.version),
                        std::cmp::Ordering::Equal => continue,
                        std::cmp::Ordering::Less if *owner != self.me => continue,
                        _ => (ns.horizon > 0, 0),
                    }
                }
                Some(e) if e.generation < ns.generation => (true, 0),
                Some(e) if e.version >= ns.version => continue,
                Some(e) if e.version < ns.horizon => (true, 0),
                Some(e) => (false, e.version),
                None if ns.version == 0 || only_listed => continue,
                None => (ns.horizon > 0, 0),
            };
            // The horizon a peer is told is the owner's signed one, which a
            // replica's own never passes; it comes with its signature when
            // the peer needs it: for a reset, or a replica it starts afresh.
            let (horizon, horizon_signature) = match ns.signed_horizon {
                Some((h, s)) if reset || from == 0 || h > 0 => (h, Some(s)),
                _ => (0, None),
            };
            let mut d = Delta {
                owner: owner.clone(),
                generation: ns.generation,
                from,
                to: ns.version,
                reset,
                horizon,
                sender_version: ns.version,
                records: Vec::new(),
                horizon_signature,
                // Added below if the whole delta fits with it.
                checkpoint: None,
            };
            let head = wire::len_field(wire::delta_head_len(&d)) + 2;
            if head + 16 > left {
                return (out, Some(owner.clone()));
            }
            let mut used = head;
            let mut truncated = false;
            for (&version, slot) in ns.stream.range(from + 1..) {
                let v = ns.versioned(version, slot);
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
                    None => return (out, Some(owner.clone())),
                }
            } else if let Some(proof) = &ns.proof {
                // The owner's checkpoint proves the replica whole; it goes
                // only where the records left room for it, never in their
                // place.
                d.checkpoint = Some(proof.clone());
                let with = wire::len_field(wire::delta_len(&d));
                if with.max(used) > left {
                    d.checkpoint = None;
                } else {
                    used = used.max(with);
                }
            }
            left -= used;
            out.push(d);
            if truncated {
                return (out, Some(owner.clone()));
            }
        }
        (out, None)
    }
}
