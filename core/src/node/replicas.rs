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
    Datum, DatumId, Delta, DigestEntry, Message, Metadata, OwnNamespace, Page, PushPull,
    PushPullKind, Record,
};
use crate::store::{Entry, Limits, Order, Refusal, Signer, Store};
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
    /// The owner audited last.
    audited: Option<Arc<str>>,
}

/// A targeted pull: what follows `line`'s version of its owner's
/// namespace, checkpoint included.
fn pull(line: DigestEntry) -> Message {
    Message::push_pull(PushPull {
        kind: PushPullKind::Pull,
        digest: Some(vec![line]),
        ..PushPull::default()
    })
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
            audited: None,
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

    /// Take back our own namespace from a data dir (see
    /// [`Store::restore_own`]); its events move the Lamport clock.
    pub(crate) fn restore(&mut self, cx: &mut Ctx, saved: &OwnNamespace) -> Result<(), Error> {
        self.store.restore_own(cx.now, saved, &cx.verified)?;
        for r in &saved.records {
            if let Record::Event { lamport, .. } = &r.record {
                self.lamport = self.lamport.max(*lamport);
            }
        }
        Ok(())
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
                let Some((key, owner_addr)) = m.owner_signer(&d.owner) else {
                    cx.stats.data_unknown_owner += 1;
                    return Receipt::Refused;
                };
                let signer = Signer {
                    key: &key,
                    verified: &cx.verified,
                    from_owner: from == Some(owner_addr),
                };
                let applied = self.store.apply(cx.now, d, from, signer);
                self.note_findings(cx);
                match applied {
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
                    // Counted by the store's findings.
                    Err(Refusal::Withheld) => Receipt::Refused,
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
    pub(crate) fn apply_synced(
        &mut self,
        cx: &mut Ctx,
        m: &Membership,
        from: SocketAddr,
        d: &Delta,
    ) -> bool {
        let Some((key, owner_addr)) = m.owner_signer(&d.owner) else {
            cx.stats.data_unknown_owner += 1;
            return false;
        };
        let signer = Signer {
            key: &key,
            verified: &cx.verified,
            from_owner: from == owner_addr,
        };
        let applied = self.store.apply(cx.now, d, None, signer);
        self.note_findings(cx);
        match applied {
            Ok(changes) => {
                cx.stats.deltas_applied += 1;
                self.report(cx, changes);
                true
            }
            // Counted by the store's findings.
            Err(Refusal::Withheld) => false,
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

    /// Count what checkpoints showed.
    fn note_findings(&mut self, cx: &mut Ctx) {
        let f = self.store.take_findings();
        cx.stats.checkpoints_proven += f.proven;
        cx.stats.replicas_withheld += f.withheld;
        cx.stats.replicas_repaired += f.repaired;
        cx.stats.deltas_staged += f.staged;
    }

    /// Sign a checkpoint of our own namespace if it moved (each gossip
    /// round).
    pub(crate) fn checkpoint_own(&mut self) {
        self.store.checkpoint_own();
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
        self.pull_rest(cx, from, owner, generation);
    }

    /// Ask `from` for what follows our line of `owner` (staged pieces
    /// included) in the given generation: for a gap, and at once again when
    /// an answer was cut short (each answer brings at least a record).
    pub(crate) fn pull_rest(
        &mut self,
        cx: &mut Ctx,
        from: SocketAddr,
        owner: &Arc<str>,
        generation: u32,
    ) {
        let line = self
            .store
            .line_of(owner)
            .filter(|l| l.generation == generation)
            .unwrap_or_else(|| DigestEntry {
                owner: owner.clone(),
                generation,
                version: 0,
                unproven: false,
                reset_at: 0,
            });
        cx.stats.gap_pulls += 1;
        cx.send(from, pull(line));
    }

    /// Audit up to `audits_per_probe` replicas that hold no checkpoint at
    /// their version, owners taken in turn, each once: ask its owner, which
    /// always holds its own, for what follows our version, checkpoint
    /// included. Once per probe period, so a replica is proven (or found
    /// short) within one period per `audits_per_probe` unproven replicas,
    /// at the cost of one small exchange each.
    pub(crate) fn audit(&mut self, cx: &mut Ctx, m: &Membership) {
        let mut first: Option<Arc<str>> = None;
        for _ in 0..cx.config.audits_per_probe {
            let Some(line) = self.store.next_unproven(self.audited.as_deref()) else {
                return;
            };
            if first.as_ref() == Some(&line.owner) {
                // Round to the first again: each was audited once.
                return;
            }
            first.get_or_insert_with(|| line.owner.clone());
            self.audited = Some(line.owner.clone());
            let Some(owner) = m.live(&line.owner) else {
                continue;
            };
            cx.stats.checkpoint_audits += 1;
            cx.send(owner.addr(), pull(line));
        }
    }

    /// Deltas a peer with `digest` lacks, within `room` bytes, and the owner
    /// they stopped at if the room ran out. Owners are served in page order
    /// through `page`, or else round-robin from a random start. With
    /// `only_listed`, only owners the digest names are served (a targeted
    /// pull); otherwise owners it lacks are sent from scratch.
    pub(crate) fn deltas_for(
        &self,
        cx: &mut Ctx,
        digest: &[DigestEntry],
        room: usize,
        page: Option<&Page>,
        only_listed: bool,
    ) -> (Vec<Delta>, Option<Arc<str>>) {
        let order = match page {
            Some(page) => Order::Page(page),
            None => Order::From(cx.rng.random_range(0..self.store.owners().count().max(1))),
        };
        self.store.deltas_for(digest, room, order, only_listed)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::harness::*;
    use crate::*;

    fn entry(key: &str, value: &str) -> Record {
        Record::Entry {
            key: Arc::from(key),
            value: Some(Arc::from(value.as_bytes())),
        }
    }

    fn eager(d: Delta) -> Message {
        Message::Eager(Eager {
            data: vec![Datum::Delta(d)],
            ..Eager::default()
        })
    }

    fn delta(owner: &str, generation: u32, from: u64, records: Vec<Versioned>) -> Delta {
        let to = records.last().map_or(from, |r| r.version);
        Delta {
            owner: Arc::from(owner),
            generation,
            from,
            to,
            reset: false,
            horizon: 0,
            sender_version: to,
            records,
            horizon_signature: None,
            checkpoint: None,
        }
    }

    #[test]
    fn a_record_its_owner_did_not_sign_never_lands_nor_takes_its_version() {
        // Scenario: c pushes a to take b's version 1 under its own key (and an
        // unsigned copy). a refuses both and counts them; b's real version 1 then
        // reaches a and c, and the forged key is nowhere.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(1));
        let (generation, _) = h.node("b").namespace_version("b").unwrap();
        let forged = h
            .identity("c")
            .versioned("b", generation, 1, entry("pwned", "x"));
        let mut unsigned = forged.clone();
        unsigned.signature = Signature::default();
        h.inject(
            h.addr("c"),
            "a",
            eager(delta("b", generation, 0, vec![forged])),
        );
        h.inject(
            h.addr("c"),
            "a",
            eager(delta("b", generation, 0, vec![unsigned])),
        );
        h.run_for(ms(10));
        assert_eq!(h.node("a").stats().records_bad_signature, 2);
        assert_eq!(h.node("a").namespace_version("b"), None);
        assert_eq!(
            h.act("b", |n, now| n.put(now, "real", "1".as_bytes())),
            Ok(1)
        );
        h.run_for(secs(2));
        for x in ["a", "c"] {
            assert_eq!(value(&h, x, "b", "real").as_deref(), Some("1"), "at {x}");
            assert_eq!(value(&h, x, "b", "pwned"), None, "at {x}");
        }
    }

    #[test]
    fn a_replayed_record_under_another_version_is_refused() {
        // Scenario: b writes x=1 (version 1). c replays b's genuine signed record as
        // version 2 of b's stream. a refuses it: the signature covers the version.
        // b's real version 2 is then applied.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(1));
        h.act("b", |n, now| n.put(now, "x", "1".as_bytes()))
            .unwrap();
        h.run_for(secs(1));
        let own = h.node("b").own_namespace_since(0);
        let mut replayed = own.records[0].clone();
        replayed.version = 2;
        h.inject(
            h.addr("c"),
            "a",
            eager(delta("b", own.generation, 1, vec![replayed])),
        );
        h.run_for(ms(10));
        assert_eq!(h.node("a").stats().records_bad_signature, 1);
        assert_eq!(
            h.node("a").namespace_version("b"),
            Some((own.generation, 1))
        );
        h.act("b", |n, now| n.put(now, "y", "2".as_bytes()))
            .unwrap();
        h.run_for(secs(2));
        assert_eq!(value(&h, "a", "b", "y").as_deref(), Some("2"));
    }

    /// a, b and c; a is cut off from b and c while b writes x (version 1)
    /// and y (version 2). Returns the cut and b's namespace.
    fn a_cut_off_while_b_writes_x_and_y() -> (Harness, u64, OwnNamespace) {
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(1));
        let cut = h.partition(&["a"], &["b", "c"]);
        for (k, v) in [("x", "1"), ("y", "2")] {
            h.act("b", |n, now| n.put(now, k, v.as_bytes())).unwrap();
        }
        let own = h.node("b").own_namespace_since(0);
        (h, cut, own)
    }

    #[test]
    fn checking_ahead_a_batch_with_a_forgery_in_it_changes_no_outcome() {
        // Scenario: a is cut off while b writes x (version 1) and y (version
        // 2). Then a takes in, checked ahead as one batch, b's version 1, a
        // forgery of b's version 2 under c's key, and b's real version 2. The batch fails
        // as a whole; each record is then checked on its own: the forgery is
        // refused and both real records land.
        let (mut h, cut, own) = a_cut_off_while_b_writes_x_and_y();
        let forged = h
            .identity("c")
            .versioned("b", own.generation, 2, entry("y", "pwned"));
        let msgs = vec![
            eager(delta("b", own.generation, 0, vec![own.records[0].clone()])),
            eager(delta("b", own.generation, 1, vec![forged])),
            eager(delta("b", own.generation, 1, vec![own.records[1].clone()])),
        ];
        h.act("a", |n, _| n.check_ahead(&msgs));
        // From an address off the partition's rules.
        let outsider = "127.0.0.1:9999".parse().unwrap();
        for m in msgs {
            h.inject(outsider, "a", m);
        }
        h.allow(cut);
        h.run_for(ms(10));
        assert_eq!(h.node("a").stats().records_bad_signature, 1);
        assert_eq!(
            h.node("a").namespace_version("b"),
            Some((own.generation, 2))
        );
        assert_eq!(value(&h, "a", "b", "x").as_deref(), Some("1"));
        assert_eq!(value(&h, "a", "b", "y").as_deref(), Some("2"));
    }

    /// b, c and d each write a key; returns, for each instant at which
    /// a audited, the owners it asked, and when a held every replica
    /// proven. No push-pull in the window: only audits prove them.
    fn audits_of_three_fresh_replicas(per_period: u32) -> (Vec<Vec<String>>, Option<Time>) {
        let config = Config {
            audits_per_probe: per_period,
            push_pull_interval: secs(60),
            timer_phase: crate::TimerPhase::Aligned,
            ..Config::local()
        };
        let mut h = Harness::with_config(&["a", "b", "c", "d"], config);
        h.run_for(ms(1));
        let since = h.now;
        for owner in ["b", "c", "d"] {
            h.act(owner, |n, now| n.put(now, "k", b"v")).unwrap();
        }
        let mut proven = None;
        while h.now < since + secs(3) {
            h.step();
            let digest = h.node("a").digest();
            let all = ["b", "c", "d"].iter().all(|o| {
                digest
                    .iter()
                    .any(|e| &*e.owner == *o && e.version == 1 && !e.unproven)
            });
            if all && proven.is_none() {
                proven = Some(h.now);
            }
        }
        let mut rounds: std::collections::BTreeMap<Time, Vec<String>> = Default::default();
        for s in h.messages("a", "*", "push-pull/pull") {
            if s.at > since {
                rounds.entry(s.at).or_default().push(s.to.clone());
            }
        }
        (rounds.into_values().collect(), proven)
    }

    #[test]
    fn unproven_replicas_are_audited_a_few_a_probe_period_each_once() {
        // Scenario: b, c and d each write a key, which reaches a down the tree unproven
        // (no checkpoint at its version). With four audits a probe period, a asks all three
        // owners at its next probe, each once, and holds all three proven a round trip later;
        // with one a period, it takes three periods, one owner each.
        let (rounds, proven) = audits_of_three_fresh_replicas(4);
        assert_eq!(rounds.len(), 1, "{rounds:?}");
        let mut asked = rounds[0].clone();
        asked.sort();
        assert_eq!(asked, ["b", "c", "d"]);
        let four = proven.expect("all proven");
        let (rounds, proven) = audits_of_three_fresh_replicas(1);
        assert_eq!(rounds.len(), 3, "{rounds:?}");
        assert!(rounds.iter().all(|r| r.len() == 1), "{rounds:?}");
        let one = proven.expect("all proven");
        let period = Config::local().probe_period;
        assert!(one >= four + period * 2, "{one:?} {four:?}");
    }

    #[test]
    fn a_record_withheld_by_a_relay_is_found_and_fetched_by_anti_entropy() {
        // Scenario: a is cut off while b writes x (version 1) and y (version
        // 2). c hands a b's versions 1 to 2 with x withheld, all signatures
        // good. Once a syncs with a peer holding b's checkpoint at version 2,
        // a sees its replica short, refetches b's stream, and x lands.
        let (mut h, cut, own) = a_cut_off_while_b_writes_x_and_y();
        let mut withheld = delta("b", own.generation, 0, vec![own.records[1].clone()]);
        withheld.to = 2;
        let outsider = "127.0.0.1:9999".parse().unwrap();
        h.inject(outsider, "a", eager(withheld));
        h.run_for(ms(10));
        assert_eq!(
            h.node("a").namespace_version("b"),
            Some((own.generation, 2))
        );
        assert_eq!(value(&h, "a", "b", "x"), None);
        h.allow(cut);
        let pp = h.node("a").config().push_pull_interval;
        h.run_for(pp * 4);
        assert_eq!(value(&h, "a", "b", "x").as_deref(), Some("1"));
        assert_eq!(value(&h, "a", "b", "y").as_deref(), Some("2"));
        let s = h.node("a").stats();
        assert_eq!((s.replicas_withheld, s.replicas_repaired), (1, 1));
        // Nobody else was ever short.
        for x in ["b", "c"] {
            assert_eq!(h.node(x).stats().replicas_withheld, 0, "at {x}");
        }
    }

    #[test]
    fn a_reset_or_a_new_life_the_owner_did_not_sign_is_refused() {
        // Scenario: b writes two keys. c sends a a reset of b's namespace carrying
        // nothing (signed by c, then unsigned), and a newer generation of b with no
        // record of it. a refuses all three and keeps b's replica whole.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(1));
        h.act("b", |n, now| n.put(now, "x", "1".as_bytes()))
            .unwrap();
        h.act("b", |n, now| n.put(now, "y", "2".as_bytes()))
            .unwrap();
        h.run_for(secs(1));
        let (generation, _) = h.node("b").namespace_version("b").unwrap();
        let mut reset = delta("b", generation, 0, vec![]);
        reset.reset = true;
        reset.to = 3;
        reset.sender_version = 3;
        reset.horizon = 3;
        reset.horizon_signature = Some(h.identity("c").sign_horizon("b", generation, 3));
        h.inject(h.addr("c"), "a", eager(reset.clone()));
        h.run_for(ms(10));
        assert_eq!(h.node("a").stats().records_bad_signature, 1);
        reset.horizon_signature = None;
        h.inject(h.addr("c"), "a", eager(reset));
        h.run_for(ms(10));
        assert_eq!(h.node("a").stats().records_bad_signature, 2);
        let mut newer = delta("b", generation + 1, 0, vec![]);
        newer.to = 1;
        newer.sender_version = 1;
        h.inject(h.addr("c"), "a", eager(newer));
        h.run_for(ms(10));
        assert_eq!(h.node("a").stats().records_bad_signature, 3);
        assert_eq!(h.node("a").namespace_version("b"), Some((generation, 2)));
        assert_eq!(value(&h, "a", "b", "x").as_deref(), Some("1"));
        assert_eq!(value(&h, "a", "b", "y").as_deref(), Some("2"));
    }

    #[test]
    fn metadata_its_publisher_did_not_sign_is_refused() {
        // Scenario: c publishes metadata in b's name, signed with c's key. a refuses
        // it; b's own publication is then taken.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(1));
        let forged = h.identity("c").metadata("b", 9, b"forged");
        h.inject(
            h.addr("c"),
            "a",
            Message::Eager(Eager {
                data: vec![Datum::Metadata(forged)],
                ..Eager::default()
            }),
        );
        h.run_for(ms(10));
        assert_eq!(h.node("a").stats().records_bad_signature, 1);
        assert!(h.node("a").metadata().is_none());
        h.act("b", |n, now| n.publish_metadata(now, b"real"))
            .unwrap();
        h.run_for(secs(2));
        assert_eq!(
            h.node("a").metadata().map(|m| &*m.value),
            Some(&b"real"[..])
        );
    }
}
