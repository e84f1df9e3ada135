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

use std::collections::BTreeMap;

use prost::Message as _;
use rumour_core::{Identity, Node, OwnNamespace, Record, Versioned};
use rumour_proto::v1;

use crate::data_dir::{Batch, DataDir, DataDirError, Saved};

/// What a node starts its life with, read from its data dir.
pub(crate) struct Life {
    /// The node's key pair.
    pub(crate) identity: Identity,
    /// The incarnation to start at: above every one used before.
    pub(crate) incarnation: u32,
    /// The namespace to restore (`None` on a fresh dir).
    pub(crate) namespace: Option<OwnNamespace>,
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
        Ok(Life {
            identity: Identity::from_secret(dir.secret_key()),
            incarnation: incarnation.max(saved.incarnation.saturating_add(1)),
            namespace,
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
    batch: Batch,
}

impl Durable {
    /// Start keeping `node`'s namespace in `dir`: the node has restored
    /// what the dir held (or the dir is fresh), at `incarnation`.
    pub(crate) fn start(
        dir: DataDir,
        node: &Node,
        incarnation: u32,
    ) -> Result<Durable, DataDirError> {
        let own = node.own_namespace_since(0);
        let mut d = Durable {
            dir,
            version: own.version,
            horizon: own.horizon,
            collectable: BTreeMap::new(),
            slots: BTreeMap::new(),
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
        if own.version == self.version && own.horizon == self.horizon {
            return Ok(false);
        }
        self.batch.clear();
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
        Ok(true)
    }

    /// The dir.
    pub(crate) fn dir(&self) -> &DataDir {
        &self.dir
    }
}
