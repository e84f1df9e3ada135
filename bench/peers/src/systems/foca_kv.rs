//! Key/value writes for foca: foca has no replicated state of its own, so
//! a write is a custom broadcast (`Foca::add_broadcast`), piggybacked on
//! foca's messages up to `max_transmissions` times, as its documentation
//! describes for a set-key-value operation.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use foca::{BroadcastHandler, Invalidates};
use serde::{Deserialize, Serialize};

use super::foca::FocaId;

/// One write, as broadcast.
#[derive(Serialize, Deserialize)]
pub struct Write {
    pub owner: u32,
    pub key: String,
    pub version: u64,
    pub value: String,
}

impl Write {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("a write encodes")
    }
}

/// What identifies a broadcast in foca's backlog: a newer version of the
/// same key replaces an older one.
pub struct WriteKey {
    owner: u32,
    key: String,
    version: u64,
}

impl Invalidates for WriteKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.owner == other.owner && self.key == other.key && self.version > other.version
    }
}

/// A node's replica of every owner's writes: (owner, key) → (version, value).
pub type Replica = Arc<Mutex<HashMap<(u32, String), (u64, String)>>>;

pub struct KvHandler {
    pub replica: Replica,
}

#[derive(Debug)]
pub struct BadWrite(postcard::Error);

impl fmt::Display for BadWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undecodable write broadcast: {}", self.0)
    }
}

impl std::error::Error for BadWrite {}

impl BroadcastHandler<FocaId> for KvHandler {
    type Key = WriteKey;
    type Error = BadWrite;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&FocaId>,
    ) -> Result<Option<WriteKey>, BadWrite> {
        let w: Write = postcard::from_bytes(data).map_err(BadWrite)?;
        let mut replica = self.replica.lock().unwrap();
        let slot = (w.owner, w.key.clone());
        if replica.get(&slot).is_some_and(|(v, _)| *v >= w.version) {
            return Ok(None);
        }
        replica.insert(slot, (w.version, w.value));
        Ok(Some(WriteKey {
            owner: w.owner,
            key: w.key,
            version: w.version,
        }))
    }
}
