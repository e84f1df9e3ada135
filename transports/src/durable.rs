//! Nothing acknowledged is lost: the agent's side of the data dir.
//!
//! At start the node takes back its key, generation, version counter and
//! records from the dir ([`Life::load`]). While it runs, the node task
//! takes in a batch of inputs, then commits every record its namespace
//! gained in one durable transaction ([`Durable::persist`]), and only then
//! answers the API calls of the batch and sends the node's messages. So a
//! write is acknowledged, and leaves the node, only once it is on disk: a
//! `kill -9` loses nothing acknowledged, and a restarted node never reuses
//! a version its replicas already hold for another record.
//!
//! The dir also keeps a snapshot of the members the node knows, dead and
//! left ones included: a node restarted without seeds rejoins through
//! them. It is rewritten when a member is learned or forgotten, and at
//! most every few seconds for other changes, together with the reconnect
//! list (members forgotten while dead, knocked on until
//! `reconnect_timeout`), which a restarted node takes back: a partition
//! that outlasts a restart still heals.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use rumour_core::{Identity, MemberUpdate, Node, OwnNamespace, Record, Time, Versioned};
use rumour_proto::v1;

use crate::data_dir::{Batch, DataDir, DataDirError, Reconnect, Saved};

/// What a node starts its life with, read from its data dir.
pub(crate) struct Life {
    /// The node's key pair.
    pub(crate) identity: Identity,
    /// The incarnation to start at: above every one used before.
    pub(crate) incarnation: u32,
    /// The namespace to restore (`None` on a fresh dir).
    pub(crate) namespace: Option<OwnNamespace>,
    /// The members the dir last knew of, as their signed news.
    pub(crate) members: Vec<MemberUpdate>,
    /// The reconnect list the dir last knew: (name, address, until when
    /// it is kept in ms since the Unix epoch).
    pub(crate) reconnect: Vec<(Arc<str>, SocketAddr, u64)>,
}

/// How many members of a snapshot a seedless restart joins through.
const SNAPSHOT_SEEDS: usize = 3;

impl Life {
    /// Seeds for a restart without any: a few members of the snapshot
    /// other than `me`, live ones first, in name order.
    pub(crate) fn snapshot_seeds(&self, me: &str) -> Vec<SocketAddr> {
        let mut members: Vec<&MemberUpdate> =
            self.members.iter().filter(|m| m.id.name() != me).collect();
        members.sort_by_key(|m| (!m.state.is_live(), m.id.name().to_string()));
        members
            .into_iter()
            .take(SNAPSHOT_SEEDS)
            .map(|m| m.id.addr())
            .collect()
    }

    /// The reconnect list in a node's time, for a node whose time zero is
    /// `start_unix_ms`: entries that have expired are left out.
    pub(crate) fn reconnect_at(&self, start_unix_ms: u64) -> Vec<(Arc<str>, SocketAddr, Time)> {
        self.reconnect
            .iter()
            .filter(|(_, _, until)| *until > start_unix_ms)
            .map(|(n, a, until)| {
                let left = (until - start_unix_ms).saturating_mul(1000);
                (n.clone(), *a, Time::from_micros(left))
            })
            .collect()
    }
}

impl Life {
    /// Read the dir: the key, the highest incarnation used, and the
    /// namespace. A record that does not decode is a damaged store.
    pub(crate) fn load(dir: &DataDir, incarnation: u32) -> Result<Life, DataDirError> {
        let saved = dir.load()?;
        let namespace = match saved.generation {
            Some(generation) => Some(namespace(dir, &saved, generation)?),
            None => None,
        };
        let mut members = Vec::with_capacity(saved.members.len());
        for (name, bytes) in &saved.members {
            let damaged = |what: String| DataDirError::Corrupt {
                path: dir.db_path().to_path_buf(),
                what: format!("member {name:?} {what}"),
            };
            let decoded = v1::MemberUpdate::decode(bytes.as_slice())
                .map_err(|e| damaged(format!("does not decode: {e}")))?;
            let m = MemberUpdate::try_from(decoded)
                .map_err(|e| damaged(format!("is malformed: {e}")))?;
            members.push(m);
        }
        let mut reconnect = Vec::with_capacity(saved.reconnect.len());
        for r in &saved.reconnect {
            let addr = r.addr.parse().map_err(|e| DataDirError::Corrupt {
                path: dir.db_path().to_path_buf(),
                what: format!("reconnect entry {:?} has address {:?}: {e}", r.name, r.addr),
            })?;
            reconnect.push((Arc::from(r.name.as_str()), addr, r.until_unix_ms));
        }
        Ok(Life {
            identity: Identity::from_secret(dir.secret_key()),
            incarnation: incarnation.max(saved.incarnation.saturating_add(1)),
            namespace,
            members,
            reconnect,
        })
    }
}

fn namespace(dir: &DataDir, saved: &Saved, generation: u32) -> Result<OwnNamespace, DataDirError> {
    let damaged = |what: String| DataDirError::Corrupt {
        path: dir.db_path().to_path_buf(),
        what,
    };
    let mut records = Vec::with_capacity(saved.records.len());
    for r in &saved.records {
        let decoded = v1::Versioned::decode(r.bytes.as_slice())
            .map_err(|e| damaged(format!("record {:?} does not decode: {e}", r.slot)))?;
        let v = Versioned::try_from(decoded)
            .map_err(|e| damaged(format!("record {:?} is malformed: {e}", r.slot)))?;
        if v.version != r.version || slot(&v) != r.slot {
            return Err(damaged(format!(
                "record {:?} holds version {} of slot {:?}",
                r.slot,
                v.version,
                slot(&v)
            )));
        }
        records.push(v);
    }
    Ok(OwnNamespace {
        generation,
        version: saved.version,
        horizon: saved.horizon,
        records,
    })
}

/// Where a record lives in the dir: an entry replaces its key's earlier
/// write; each event has its own slot.
fn slot(v: &Versioned) -> String {
    match &v.record {
        Record::Entry { key, .. } => format!("k/{key}"),
        Record::Event { .. } => format!("e/{}", v.version),
    }
}

/// Whether the record goes once the horizon passes it (a tombstone or an
/// event).
fn collectable(v: &Versioned) -> bool {
    match &v.record {
        Record::Entry { value, .. } => value.is_none(),
        Record::Event { .. } => true,
    }
}

/// The open data dir and what it holds of the node's namespace.
pub(crate) struct Durable {
    dir: DataDir,
    /// The namespace's version and horizon as committed.
    version: u64,
    horizon: u64,
    /// Tombstones and events in the dir, by version: removed once the
    /// horizon passes them.
    collectable: BTreeMap<u64, String>,
    /// The version each slot holds.
    slots: BTreeMap<String, u64>,
    /// The membership as last kept: its summary, how many members, when.
    members: (u64, usize, Instant),
    /// The Unix time (ms) of the node's time zero: the reconnect list is
    /// kept in Unix time, which outlives the process.
    start_unix_ms: u64,
    batch: Batch,
}

/// The longest a change of known members' states waits to be kept.
const MEMBERS_EVERY: Duration = Duration::from_secs(5);

impl Durable {
    /// Start keeping `node`'s namespace in `dir`: the node has restored
    /// what the dir held (or the dir is fresh), at `incarnation`.
    /// `start_unix_ms` is the Unix time (ms) of the node's time zero.
    pub(crate) fn start(
        dir: DataDir,
        node: &Node,
        incarnation: u32,
        start_unix_ms: u64,
    ) -> Result<Durable, DataDirError> {
        let own = node.own_namespace_since(0);
        let mut d = Durable {
            dir,
            version: own.version,
            horizon: own.horizon,
            collectable: BTreeMap::new(),
            slots: BTreeMap::new(),
            members: (0, 0, Instant::now()),
            start_unix_ms,
            batch: Batch::new(),
        };
        for v in &own.records {
            d.track(v);
        }
        d.batch
            .set_generation(own.generation)
            .set_incarnation(incarnation);
        d.dir.commit(&d.batch)?;
        d.batch.clear();
        Ok(d)
    }

    fn track(&mut self, v: &Versioned) {
        let slot = slot(v);
        if let Some(old) = self.slots.insert(slot.clone(), v.version) {
            self.collectable.remove(&old);
        }
        if collectable(v) {
            self.collectable.insert(v.version, slot);
        }
    }

    /// Commit what the node's namespace gained since the last commit, in
    /// one durable transaction. Returns whether anything was written.
    pub(crate) fn persist(&mut self, node: &Node) -> Result<bool, DataDirError> {
        let own = node.own_namespace_since(self.version);
        let members = self.members_due(node);
        if own.version == self.version && own.horizon == self.horizon && !members {
            return Ok(false);
        }
        self.batch.clear();
        if members {
            self.batch.replace_members(node.members().map(|m| {
                let news = MemberUpdate {
                    id: m.id.clone(),
                    incarnation: m.incarnation,
                    state: m.state,
                    by: None,
                    key: m.key,
                    signature: m.signature,
                };
                let bytes = v1::MemberUpdate::from(&news).encode_to_vec();
                (m.id.name().to_string(), bytes)
            }));
            // The list changes when a member is forgotten while dead or
            // comes back, both of which change the member count.
            let start = self.start_unix_ms;
            self.batch
                .replace_reconnect(node.reconnect_list().into_iter().map(
                    |(name, addr, _, until)| Reconnect {
                        name: name.to_string(),
                        addr: addr.to_string(),
                        until_unix_ms: start + until.as_micros() / 1000,
                    },
                ));
        }
        // Removals first: a slot collected and written again in one batch
        // keeps the new record.
        let gone: Vec<(u64, String)> = self
            .collectable
            .range(..=own.horizon)
            .map(|(v, s)| (*v, s.clone()))
            .collect();
        for (_, slot) in &gone {
            self.batch.remove_record(slot.clone());
        }
        for v in &own.records {
            let bytes = v1::Versioned::from(v).encode_to_vec();
            self.batch.put_record(slot(v), v.version, bytes);
        }
        self.batch.set_version(own.version).set_horizon(own.horizon);
        self.dir.commit(&self.batch)?;
        for (version, slot) in gone {
            self.collectable.remove(&version);
            self.slots.remove(&slot);
        }
        for v in &own.records {
            self.track(v);
        }
        self.version = own.version;
        self.horizon = own.horizon;
        if members {
            let count = node.members().count();
            self.members = (node.membership_summary(), count, Instant::now());
        }
        Ok(true)
    }

    /// Whether the member snapshot is to be rewritten: a member was learned
    /// or forgotten, or states changed and the last snapshot is old enough.
    fn members_due(&self, node: &Node) -> bool {
        let (summary, count, at) = self.members;
        if node.membership_summary() == summary {
            return false;
        }
        node.members().count() != count || at.elapsed() >= MEMBERS_EVERY
    }

    /// The dir.
    pub(crate) fn dir(&self) -> &DataDir {
        &self.dir
    }

    /// The dir, to write what is not the namespace (the keyring).
    pub(crate) fn dir_mut(&mut self) -> &mut DataDir {
        &mut self.dir
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use rumour_core::{Config, Incarnation, NodeId, Time};

    use super::*;

    fn node(name: &str, port: u16, identity: Identity) -> Node {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let id = NodeId::new(name, addr).unwrap();
        Node::with_identity(id, identity, Incarnation(1), Config::local(), 1, Time::ZERO).unwrap()
    }

    #[test]
    fn a_restart_takes_back_its_writes_and_the_members_it_knew() {
        let path = std::env::temp_dir().join(format!("rumour-durable-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let dir = DataDir::open(&path, "a").unwrap();
        let life = Life::load(&dir, 1).unwrap();
        assert!(life.namespace.is_none() && life.members.is_empty());
        let mut a = node("a", 1, life.identity.clone());
        let mut durable = Durable::start(dir, &a, life.incarnation, 0).unwrap();
        let others: Vec<_> = ["b", "c"]
            .iter()
            .zip([2, 3])
            .map(|(n, port)| {
                let id = NodeId::new(n, SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
                Identity::from_seed(port as u64).introduce(&id, Incarnation(0), Time::ZERO)
            })
            .collect();
        a.learn_members(Time::ZERO, &others);
        a.put(Time::ZERO, "x", b"1").unwrap();
        a.put(Time::ZERO, "x", b"2").unwrap();
        a.put(Time::ZERO, "y", b"3").unwrap();
        a.delete(Time::ZERO, "y").unwrap();
        assert!(durable.persist(&a).unwrap());
        assert!(
            !durable.persist(&a).unwrap(),
            "nothing new, nothing written"
        );
        let saved = a.own_namespace_since(0);
        drop(durable);

        let dir = DataDir::open(&path, "a").unwrap();
        let life = Life::load(&dir, 1).unwrap();
        assert_eq!(life.incarnation, 2, "above the one used before");
        assert_eq!(life.identity.public(), a.public_key());
        assert_eq!(life.namespace.as_ref(), Some(&saved));
        let mut back = node("a", 1, life.identity.clone());
        back.restore_namespace(Time::ZERO, life.namespace.as_ref().unwrap())
            .unwrap();
        assert_eq!(back.own_namespace_since(0), saved);
        assert_eq!(back.put(Time::ZERO, "z", b"4").unwrap(), saved.version + 1);
        let seeds = life.snapshot_seeds("a");
        let want: Vec<SocketAddr> = ["127.0.0.1:2", "127.0.0.1:3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(seeds, want);
        drop(dir);
        let _ = std::fs::remove_dir_all(&path);
    }

    #[test]
    fn the_reconnect_list_outlives_a_restart() {
        // Kept in Unix time: taken back at a later start with what is left
        // of its time, and not at all once expired.
        let path = std::env::temp_dir().join(format!("rumour-reconnect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let dir = DataDir::open(&path, "a").unwrap();
        let life = Life::load(&dir, 1).unwrap();
        assert!(life.reconnect.is_empty());
        let mut a = node("a", 1, life.identity.clone());
        let start = 1_700_000_000_000;
        let mut durable = Durable::start(dir, &a, life.incarnation, start).unwrap();
        let b = SocketAddr::from(([127, 0, 0, 1], 2));
        let hour = std::time::Duration::from_secs(3600);
        a.restore_reconnect(Time::ZERO, &[(Arc::from("b"), b, Time::ZERO + hour)]);
        assert!(durable.persist(&a).unwrap());
        drop(durable);

        let dir = DataDir::open(&path, "a").unwrap();
        let life = Life::load(&dir, 1).unwrap();
        assert_eq!(life.reconnect, vec![(Arc::from("b"), b, start + 3_600_000)]);
        let later = life.reconnect_at(start + 600_000);
        assert_eq!(
            later,
            vec![(Arc::from("b"), b, Time::ZERO + (hour - hour / 6))]
        );
        assert!(life.reconnect_at(start + 3_600_000).is_empty(), "expired");
        let mut back = node("a", 1, life.identity.clone());
        back.restore_reconnect(Time::ZERO, &later);
        let list = back.reconnect_list();
        assert_eq!((&*list[0].0, list[0].1), ("b", b));
        drop(dir);
        let _ = std::fs::remove_dir_all(&path);
    }

    #[test]
    fn a_record_not_signed_by_the_node_is_a_damaged_store() {
        let mut a = node("a", 1, Identity::from_seed(1));
        a.put(Time::ZERO, "x", b"1").unwrap();
        let saved = a.own_namespace_since(0);
        let mut other = node("a", 1, Identity::from_seed(2));
        let e = other.restore_namespace(Time::ZERO, &saved).unwrap_err();
        assert!(
            e.to_string().contains("not signed by this node's key"),
            "{e}"
        );
        assert_eq!(other.own_namespace_since(0).version, 0, "nothing restored");
    }
}
