//! Replicated state as this node holds it: its own namespace and a replica
//! of every live member's, the cluster metadata register, and the Lamport
//! clock of events and metadata.
//!
//! It decides whether a datum is fresh, a duplicate, ahead of a gap, or to
//! be refused, and reports every applied change as an event. How data
//! travels is the tree's and anti-entropy's business, not this part's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use rand::Rng;

use super::membership::Membership;
use super::outbox::Ctx;
use crate::error::Error;
use crate::events::Event;
use crate::identity::metadata_statement;
use crate::message::{
    Datum, DatumId, Delta, DigestEntry, Message, Metadata, PushPull, PushPullKind, Record,
};
use crate::store::{Entry, Limits, Refusal, Signer, Store};
use crate::summary::Fnv64;
use crate::time::Time;

/// What receiving a datum did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Receipt {
    /// Applied: it was new here.
    Fresh,
    /// Already held (or our own, or of an older life).
    Duplicate,
    /// Ahead of a gap: it cannot apply until the versions before it arrive.
    Gap,
    /// Refused: malformed, from a stale source, or of an owner that is not a
    /// live member.
    Refused,
}

/// The namespaces, the metadata register and the Lamport clock.
#[derive(Debug)]
pub(crate) struct Replicas {
    store: Store,
    lamport: u64,
    metadata: Option<Metadata>,
    /// When we last pulled each owner's missing versions.
    pulled: BTreeMap<Arc<str>, Time>,
}

impl Replicas {
    /// This node's own namespace, empty, in generation `generation`.
    pub(crate) fn new(cx: &Ctx, generation: u32) -> Replicas {
        let c = &cx.config;
        let limits = Limits {
            max_key_len: c.max_key_len,
            max_value_len: c.max_value_len,
            max_keys: c.max_keys_per_namespace,
            max_held: c.max_held,
        };
        let store = Store::new(
            Arc::from(cx.me.name()),
            generation,
            limits,
            c.tombstone_grace,
            cx.identity.clone(),
        );
        Replicas {
            store,
            lamport: 0,
            metadata: None,
            pulled: BTreeMap::new(),
        }
    }

    // ----- reads ---------------------------------------------------------

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    pub(crate) fn get(&self, owner: &str, key: &str) -> Option<Entry> {
        self.store.get(owner, key)
    }

    /// Hash of the digest and the metadata register: equal on two nodes
    /// that hold the same versions of every namespace and the same metadata.
    pub(crate) fn state_summary(&self) -> u64 {
        let m = self.metadata.as_ref().map_or(0, |m| {
            let mut h = Fnv64::default();
            h.write(&m.lamport.to_le_bytes());
            h.write(m.origin.as_bytes());
            h.finish()
        });
        self.store.summary() ^ m
    }

    /// Whether this node holds `id` (or something newer), or has no use for
    /// it (an owner that is not a live member).
    pub(crate) fn holds(&self, m: &Membership, id: &DatumId) -> bool {
        match id {
            DatumId::Record {
                owner,
                generation,
                version,
            } => {
                if !m.owner_live(owner) {
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

    // ----- writes --------------------------------------------------------

    /// Write a record into this node's namespace; returns its one-record
    /// delta, to spread.
    pub(crate) fn write(&mut self, cx: &mut Ctx, record: Record) -> Result<Delta, Error> {
        let (delta, change) = self.store.write(cx.now, record)?;
        self.report(cx, vec![change]);
        Ok(delta)
    }

    /// The Lamport time the next user event gets.
    pub(crate) fn next_lamport(&self) -> u64 {
        self.lamport + 1
    }

    /// Publish the metadata register; returns it, to spread.
    pub(crate) fn publish(&mut self, cx: &mut Ctx, value: &[u8]) -> Result<Metadata, Error> {
        if value.len() > cx.config.max_value_len {
            return Err(Error::ValueTooLong {
                len: value.len(),
                max: cx.config.max_value_len,
            });
        }
        self.lamport += 1;
        let statement = metadata_statement(cx.me.name(), self.lamport, value);
        let m = Metadata {
            lamport: self.lamport,
            origin: Arc::from(cx.me.name()),
            value: Arc::from(value),
            signature: cx.identity.sign(&statement),
        };
        self.metadata = Some(m.clone());
        cx.emit(Event::MetadataChanged(m.clone()));
        Ok(m)
    }

    // ----- receipt -------------------------------------------------------

    /// Take in a datum pushed by `from` along the tree or by gossip. A delta
    /// that would skip versions waits in the store's gap buffer.
    pub(crate) fn receive(
        &mut self,
        cx: &mut Ctx,
        m: &Membership,
        from: Option<SocketAddr>,
        datum: &Datum,
    ) -> Receipt {
        match datum {
            Datum::Delta(d) => {
                let Some(key) = m.owner_key(&d.owner) else {
                    cx.stats.data_unknown_owner += 1;
                    return Receipt::Refused;
                };
                let signer = Signer {
                    key: &key,
                    verified: &cx.verified,
                };
                match self.store.apply(cx.now, d, from, signer) {
                    Ok(changes) => {
                        cx.stats.deltas_applied += 1;
                        self.report(cx, changes);
                        Receipt::Fresh
                    }
                    Err(Refusal::Duplicate | Refusal::OwnNamespace | Refusal::StaleGeneration) => {
                        cx.stats.data_duplicates += 1;
                        Receipt::Duplicate
                    }
                    Err(Refusal::Gap) => {
                        cx.stats.deltas_gap += 1;
                        Receipt::Gap
                    }
                    Err(Refusal::StaleSource) => {
                        cx.stats.deltas_stale_source += 1;
                        Receipt::Refused
                    }
                    Err(Refusal::Malformed) => {
                        cx.stats.deltas_malformed += 1;
                        Receipt::Refused
                    }
                    Err(Refusal::BadSignature | Refusal::Unproven) => {
                        cx.stats.records_bad_signature += 1;
                        Receipt::Refused
                    }
                }
            }
            Datum::Metadata(meta) => {
                if meta.value.len() > cx.config.max_value_len || meta.origin.is_empty() {
                    cx.stats.deltas_malformed += 1;
                    return Receipt::Refused;
                }
                if self.metadata.as_ref() == Some(meta) {
                    cx.stats.data_duplicates += 1;
                    return Receipt::Duplicate;
                }
                if !metadata_signed(cx, m, meta) {
                    return Receipt::Refused;
                }
                self.lamport = self.lamport.max(meta.lamport);
                if self.metadata.as_ref().is_none_or(|cur| meta.beats(cur)) {
                    self.metadata = Some(meta.clone());
                    cx.emit(Event::MetadataChanged(meta.clone()));
                    Receipt::Fresh
                } else {
                    cx.stats.data_duplicates += 1;
                    Receipt::Duplicate
                }
            }
        }
    }

    /// Apply a delta from anti-entropy (no gap is held: anti-entropy comes
    /// again). Returns whether it applied.
    pub(crate) fn apply_synced(&mut self, cx: &mut Ctx, m: &Membership, d: &Delta) -> bool {
        let Some(key) = m.owner_key(&d.owner) else {
            cx.stats.data_unknown_owner += 1;
            return false;
        };
        let signer = Signer {
            key: &key,
            verified: &cx.verified,
        };
        match self.store.apply(cx.now, d, None, signer) {
            Ok(changes) => {
                cx.stats.deltas_applied += 1;
                self.report(cx, changes);
                true
            }
            Err(Refusal::Gap) => {
                cx.stats.deltas_gap += 1;
                false
            }
            Err(Refusal::Malformed) => {
                cx.stats.deltas_malformed += 1;
                false
            }
            Err(Refusal::StaleSource) => {
                cx.stats.deltas_stale_source += 1;
                false
            }
            Err(Refusal::BadSignature | Refusal::Unproven) => {
                cx.stats.records_bad_signature += 1;
                false
            }
            Err(_) => {
                cx.stats.data_duplicates += 1;
                false
            }
        }
    }

    /// Rumours that waited for a gap and are now held, with who pushed
    /// them: to pass on down the tree.
    pub(crate) fn take_released(&mut self) -> Vec<(Datum, SocketAddr)> {
        let released = self.store.take_released().into_iter();
        released.map(|(d, from)| (Datum::Delta(d), from)).collect()
    }

    /// Report applied changes; a user event moves the Lamport clock.
    fn report(&mut self, cx: &mut Ctx, changes: Vec<Event>) {
        for event in changes {
            if let Event::UserEvent { lamport, .. } = &event {
                self.lamport = self.lamport.max(*lamport);
            }
            cx.emit(event);
        }
    }

    // ----- anti-entropy --------------------------------------------------

    /// We hold a rumour of `owner` we cannot apply yet: pull the versions
    /// before it from `from`, which applied it and so holds them. At most
    /// once per owner per half gossip interval.
    pub(crate) fn pull_gap(
        &mut self,
        cx: &mut Ctx,
        from: SocketAddr,
        owner: &Arc<str>,
        generation: u32,
    ) {
        let wait = cx.config.gossip_interval / 2;
        if self.pulled.get(owner).is_some_and(|t| cx.now < *t + wait) {
            return;
        }
        self.pulled.insert(owner.clone(), cx.now);
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
        cx.stats.gap_pulls += 1;
        cx.send(from, Message::PushPull(msg));
    }

    /// Deltas a peer with `digest` lacks, within `room` bytes, owners served
    /// round-robin from a random start. With `only_listed`, only owners the
    /// digest names are served (a targeted pull); otherwise owners it lacks
    /// are sent from scratch.
    pub(crate) fn deltas_for(
        &self,
        cx: &mut Ctx,
        digest: &[DigestEntry],
        room: usize,
        only_listed: bool,
    ) -> Vec<Delta> {
        let start = cx.rng.random_range(0..self.store.owners().count().max(1));
        self.store.deltas_for(digest, room, start, only_listed)
    }

    // ----- upkeep --------------------------------------------------------

    /// When the next tombstone or event is due for collection.
    pub(crate) fn collection_deadline(&self) -> Option<Time> {
        self.store.next_collection()
    }

    pub(crate) fn collect_garbage(&mut self, now: Time) {
        self.store.collect_garbage(now);
    }

    /// A member was reaped: drop its namespace.
    pub(crate) fn forget(&mut self, owner: &str) {
        self.store.remove(owner);
    }
}

/// Whether the metadata register's publisher, a member this node knows,
/// signed it. Counts a refusal.
fn metadata_signed(cx: &mut Ctx, m: &Membership, meta: &Metadata) -> bool {
    let Some(key) = m.owner_key(&meta.origin) else {
        cx.stats.data_unknown_owner += 1;
        return false;
    };
    let statement = metadata_statement(&meta.origin, meta.lamport, &meta.value);
    if !cx.verified.check(&key, &statement, &meta.signature) {
        cx.stats.records_bad_signature += 1;
        return false;
    }
    true
}
