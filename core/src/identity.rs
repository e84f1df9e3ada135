//! Who said it: every node's Ed25519 key pair, the statements a node signs,
//! and the check every replica makes before it believes one.
//!
//! A node signs what only it may say: its own membership (`Alive` at an
//! incarnation and address, or `Left`), every record of its namespace, the
//! facts that let a replica reset its replica (generation and GC horizon),
//! and the metadata register when it publishes it. Others' accusations
//! (suspect, dead) are not signed by the accused, but each carries the
//! accused's own signed `Alive` at the accusation's incarnation, so nobody
//! can accuse a member at an incarnation it never reached.
//!
//! Signed bytes are canonical: a domain tag naming the statement, then each
//! field length-prefixed or fixed-width, so no statement of one kind reads
//! as another and no field can bleed into its neighbour.
//!
//! Ed25519 signing is deterministic, so the simulator and the agent run the
//! same code and the same seed gives the same run. Verification is the
//! costly half (about 40 µs a signature, half that in a batch); [`Verified`] remembers signatures
//! already checked, and drivers that run many nodes in one process (the
//! simulator) may share one between them.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand::RngCore;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::member::{Incarnation, Member, MemberState, NodeId};
use crate::message::{MemberUpdate, Metadata, Record, Versioned};
use crate::time::Time;

/// A member's public key: what its statements are checked against.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct PublicKey(pub [u8; 32]);

/// Hashes the first 8 bytes: enough to tell keys apart in a table or a
/// trace digest (equal keys hash equal), at a quarter of the cost.
impl Hash for PublicKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0[..8]);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl PublicKey {
    /// The key's first 8 bytes as a number: enough to tell an honest
    /// node's old key from its new one in a probe.
    pub fn fingerprint(&self) -> u64 {
        u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes"))
    }

    /// All 32 bytes in hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for PublicKey {
    /// The first 8 bytes in hex: enough to tell keys apart in a listing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

/// Hashes the first 8 bytes (equal signatures hash equal): a signature
/// follows from what it signs, which is hashed beside it, so the rest
/// would only slow the simulator's trace digest down.
impl Hash for Signature {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0[..8]);
    }
}

impl Default for Signature {
    fn default() -> Signature {
        Signature([0; 64])
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "..)")
    }
}

/// A node's key pair. The secret half never leaves it: `Debug` shows only
/// the public key.
#[derive(Clone)]
pub struct Identity {
    key: Arc<SigningKey>,
    public: PublicKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.public)
    }
}

impl Identity {
    /// The key pair of a 32-byte secret (an Ed25519 seed), as a data dir
    /// stores it.
    pub fn from_secret(secret: [u8; 32]) -> Identity {
        let key = SigningKey::from_bytes(&secret);
        let public = PublicKey(key.verifying_key().to_bytes());
        Identity {
            key: Arc::new(key),
            public,
        }
    }

    /// A key pair drawn from a seeded RNG: for nodes without a stored key,
    /// such as the simulator's, whose runs must repeat bit for bit.
    pub fn from_seed(seed: u64) -> Identity {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6964_656e_7469_7479);
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        Identity::from_secret(secret)
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// News about `id` (which should be this identity's own member) at
    /// `incarnation` in `state`, standing on this identity's signed word:
    /// its `Left` for a leave, its `Alive` for anything else. An
    /// accusation (`Suspect`, `Dead`, with `by`) carries the accused's word.
    pub fn member_update(
        &self,
        id: &NodeId,
        incarnation: Incarnation,
        state: MemberState,
        by: Option<Arc<str>>,
    ) -> MemberUpdate {
        let statement = member_statement(id.name(), &id.addr(), incarnation, state, &self.public);
        MemberUpdate {
            id: id.clone(),
            incarnation,
            state,
            by,
            key: self.public,
            signature: self.sign(&statement),
        }
    }

    /// Record `version` of `owner`'s stream in `generation`, signed by this
    /// identity (which is `owner`'s only if this is `owner`'s key).
    pub fn versioned(
        &self,
        owner: &str,
        generation: u32,
        version: u64,
        record: Record,
    ) -> Versioned {
        let signature = self.sign(&record_statement(owner, generation, version, &record));
        Versioned {
            version,
            record,
            signature,
        }
    }

    /// This identity's signature on `owner`'s generation and GC horizon.
    pub fn sign_horizon(&self, owner: &str, generation: u32, horizon: u64) -> Signature {
        self.sign(&horizon_statement(owner, generation, horizon))
    }

    /// `owner`'s checkpoint at `version` of a generation, for the live
    /// digest `digest`, signed by this identity.
    pub fn checkpoint(
        &self,
        owner: &str,
        generation: u32,
        version: u64,
        digest: crate::checkpoint::LiveDigest,
    ) -> crate::checkpoint::Checkpoint {
        crate::checkpoint::Checkpoint {
            digest,
            signature: self.sign(&checkpoint_statement(owner, generation, version, &digest)),
        }
    }

    /// The metadata register published by `origin`, signed by this identity.
    pub fn metadata(&self, origin: &str, lamport: u64, value: &[u8]) -> Metadata {
        Metadata {
            lamport,
            origin: Arc::from(origin),
            value: Arc::from(value),
            signature: self.sign(&metadata_statement(origin, lamport, value)),
        }
    }

    /// This identity's signed word that `id` is alive at `incarnation`, as
    /// the [`Member`] a formed cluster hands every node (see
    /// [`Node::learn_members`](crate::Node::learn_members)).
    pub fn introduce(&self, id: &NodeId, incarnation: Incarnation, now: Time) -> Member {
        let state = MemberState::Alive;
        let statement = member_statement(id.name(), &id.addr(), incarnation, state, &self.public);
        Member {
            id: id.clone(),
            incarnation,
            state,
            since: now,
            key: self.public,
            signature: self.sign(&statement),
        }
    }

    /// Sign canonical bytes.
    pub(crate) fn sign(&self, bytes: &[u8]) -> Signature {
        Signature(self.key.sign(bytes).to_bytes())
    }
}

/// Signatures this node (or every node of one process) has already
/// checked, so that the same statement heard again costs a hash, not a
/// verification. Cloning shares the memory. A hit changes no outcome: only
/// signatures that verified are remembered, under a hash of key, statement
/// and signature together.
///
/// Several statements checked together ([`Verified::check_all`], a delta's
/// records) are verified as one batch, about half the cost of checking them
/// one by one.
#[derive(Clone, Debug, Default)]
pub struct Verified {
    memory: Arc<Mutex<Memory>>,
    /// What this holder verified (see [`Verified::holder`]).
    ledger: Arc<Mutex<Ledger>>,
}

/// The signature checks one holder paid for: the verifications a node
/// runs with a memory of its own, counted for a host's CPU (see
/// [`Verified::checks`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checks {
    /// Signatures verified one at a time.
    pub single: u64,
    /// Signatures verified in batches (about half the cost each).
    pub batched: u64,
}

/// One holder's count of [`Checks`]. With a memory of its own, what the
/// memory verified is what the holder paid for. With a shared memory, a
/// statement another holder verified first is a hit there, so the holder
/// keeps its own record of what it has met (by a 64-bit prefix of the
/// tag), to count what it would have verified alone.
#[derive(Debug, Default)]
struct Ledger {
    /// Lookup only (never iterated): a count depends on what is in it,
    /// not on its order.
    met: Option<HashSet<u64>>,
    checks: Checks,
}

impl Ledger {
    /// Count the statements of `tags` this holder has not met, as one
    /// batch if several. `verified` is what the memory itself verified
    /// (counted when the holder keeps no record of its own).
    fn count(&mut self, tags: &[[u8; 32]], verified: usize) {
        let fresh = match &mut self.met {
            None => verified,
            Some(met) => {
                if met.len() + tags.len() > VERIFIED_KEPT {
                    met.clear();
                }
                tags.iter()
                    .filter(|t| met.insert(u64::from_le_bytes(t[..8].try_into().expect("8 bytes"))))
                    .count()
            }
        };
        match fresh {
            0 => {}
            1 => self.checks.single += 1,
            n => self.checks.batched += n as u64,
        }
    }
}

#[derive(Debug, Default)]
struct Memory {
    seen: HashSet<[u8; 32]>,
    /// Keys already decompressed and found usable (not of small order).
    keys: HashMap<[u8; 32], VerifyingKey>,
    /// Members' signed words already held in a table, by signature: a
    /// table entry points at the one copy (see [`Verified::share_word`]).
    words: HashMap<[u8; 64], Arc<Word>>,
    /// Members' words that verified, by signature, with what they say: a
    /// memory shared by several holders answers a word heard again from
    /// these fields, without building its statement or hashing it (see
    /// [`Verified::check_word`]).
    said: HashMap<[u8; 64], Said>,
}

/// What a member's verified word says (the fields of its
/// [`member_statement`]), and the statement's tag.
#[derive(Debug)]
struct Said {
    key: PublicKey,
    name: Box<str>,
    addr: SocketAddr,
    incarnation: Incarnation,
    left: bool,
    tag: [u8; 32],
}

/// A member's key and its signature over its own word (its `Alive` or
/// `Left` at an incarnation and address), as membership tables hold them:
/// shared, so that every entry for the same word (in one node's table,
/// and in every node's when nodes share their memory of checked
/// signatures, as the simulator's do) points at one copy.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) key: PublicKey,
    pub(crate) signature: Signature,
}

/// Words shared before that memory starts over (entries keep theirs).
const WORDS_KEPT: usize = 1 << 20;

/// Remembered signatures before the memory starts over.
const VERIFIED_KEPT: usize = 1 << 20;
/// Decompressed keys a memory shared by several holders (the simulator's
/// nodes) keeps before it starts over: every key of a large cluster.
const KEYS_KEPT: usize = 1 << 16;
/// The same for a memory of one holder (an agent's node). A member's key
/// verifies its signed word once per incarnation, so a key kept for every
/// member (some 230 bytes each, decompressed) mostly sat unused: the keys
/// were the largest part of the heap of 100 or 200 nodes formed in one
/// process. What a key kept saves is its decompression on each record of
/// a burst of writes, and a burst comes from a few writers at a time.
const KEYS_KEPT_ALONE: usize = 16;

impl Verified {
    /// A fresh, unshared memory.
    pub fn new() -> Verified {
        Verified::default()
    }

    /// This memory, shared, for another holder with [`Checks`] of its own:
    /// it counts what the memory verified for it (a statement another
    /// holder verified first is a hit, and free).
    pub fn share(&self) -> Verified {
        Verified {
            memory: self.memory.clone(),
            ledger: Arc::default(),
        }
    }

    /// This memory, shared, for another holder that counts its own
    /// [`Checks`]: each statement it meets for the first time counts as a
    /// verification, as it would with a memory of its own, whether or not
    /// another holder verified it first. The simulator gives one to each
    /// node when a host's CPU is modelled.
    pub fn holder(&self) -> Verified {
        Verified {
            memory: self.memory.clone(),
            ledger: Arc::new(Mutex::new(Ledger {
                met: Some(HashSet::new()),
                checks: Checks::default(),
            })),
        }
    }

    /// The signature checks this holder paid for so far.
    pub fn checks(&self) -> Checks {
        self.ledger.lock().expect("never poisoned").checks
    }

    /// Whether record `v` of `owner`'s stream in `generation` carries the
    /// signature of `key` (as a replica checks it before applying).
    pub fn verify_record(
        &self,
        key: &PublicKey,
        owner: &str,
        generation: u32,
        v: &Versioned,
    ) -> bool {
        let bytes = record_statement(owner, generation, v.version, &v.record);
        self.check(key, &bytes, &v.signature)
    }

    /// The shared copy of a member's signed word: the one already held if
    /// any, a new one otherwise. Only what a table keeps comes here, so it
    /// holds words that were verified (or are this node's own).
    ///
    /// A memory with one holder keeps no copies: its node's table holds
    /// each word once anyway, and the copies kept here (never dropped while
    /// the memory has room, old incarnations' words among them) were a
    /// fifth of the heap of 200 nodes forming in one process. Copies pay
    /// where many tables share one memory, as the simulator's nodes do.
    pub(crate) fn share_word(&self, key: &PublicKey, signature: &Signature) -> Arc<Word> {
        let word = || {
            Arc::new(Word {
                key: *key,
                signature: *signature,
            })
        };
        if self.alone() {
            return word();
        }
        let mut memory = self.memory.lock().expect("never poisoned");
        if let Some(w) = memory.words.get(&signature.0) {
            if w.key == *key {
                return w.clone();
            }
        }
        if memory.words.len() >= WORDS_KEPT {
            memory.words.clear();
        }
        let word = word();
        memory.words.insert(signature.0, word.clone());
        word
    }

    /// Whether `signature` is `key`'s over the word a member signed of
    /// itself: `name` alive (or left, if `state` is `Left`) at
    /// `incarnation` and `addr` ([`member_statement`]). The same outcome
    /// and the same [`Checks`] as [`Verified::check`] of that statement; a
    /// memory shared by several holders (the simulator's nodes, who all
    /// hear every member's word) answers a word it verified before from
    /// its fields, without building the statement or hashing it.
    pub(crate) fn check_word(
        &self,
        id: &NodeId,
        incarnation: Incarnation,
        state: MemberState,
        key: &PublicKey,
        signature: &Signature,
    ) -> bool {
        let (name, addr, left) = (id.name(), id.addr(), state == MemberState::Left);
        if !self.alone() {
            let memory = self.memory.lock().expect("never poisoned");
            if let Some(said) = memory.said.get(&signature.0) {
                if said.key == *key
                    && said.incarnation == incarnation
                    && said.left == left
                    && said.addr == addr
                    && *said.name == *name
                {
                    let tag = said.tag;
                    drop(memory);
                    self.count(&[tag], 0);
                    return true;
                }
            }
        }
        let statement = member_statement(name, &addr, incarnation, state, key);
        if !self.check(key, &statement, signature) {
            return false;
        }
        if !self.alone() {
            let mut memory = self.memory.lock().expect("never poisoned");
            if memory.said.len() >= WORDS_KEPT {
                memory.said.clear();
            }
            let said = Said {
                key: *key,
                name: name.into(),
                addr,
                incarnation,
                left,
                tag: tag(key, &statement, signature),
            };
            memory.said.insert(signature.0, said);
        }
        true
    }

    /// Whether `signature` is `key`'s over `bytes`.
    /// The one-statement case of [`Verified::check_all`], on every
    /// membership update's path, so without its vectors.
    pub(crate) fn check(&self, key: &PublicKey, bytes: &[u8], signature: &Signature) -> bool {
        let tag = tag(key, bytes, signature);
        let kept = self.keys_kept();
        let vk = {
            let mut memory = self.memory.lock().expect("never poisoned");
            if memory.seen.contains(&tag) {
                self.count(&[tag], 0);
                return true;
            }
            match memory.key(key, kept) {
                Some(vk) => vk,
                None => return false,
            }
        };
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        let ok = vk.verify_strict(bytes, &sig).is_ok();
        self.count(&[tag], 1);
        if ok {
            self.remember([tag].into_iter());
        }
        ok
    }

    /// Whether this memory has one holder (a node's own, not shared).
    fn alone(&self) -> bool {
        Arc::strong_count(&self.memory) == 1
    }

    /// How many decompressed keys this memory keeps: few if it has one
    /// holder (see [`KEYS_KEPT_ALONE`]).
    fn keys_kept(&self) -> usize {
        if self.alone() {
            KEYS_KEPT_ALONE
        } else {
            KEYS_KEPT
        }
    }

    /// Count in this holder's ledger: see [`Ledger::count`].
    fn count(&self, tags: &[[u8; 32]], verified: usize) {
        self.ledger
            .lock()
            .expect("never poisoned")
            .count(tags, verified);
    }

    /// Whether every statement of `signed` carries the signature of the key
    /// beside it. Those not seen before are verified together: one with
    /// `verify_strict`, several as one batch. A batch accepts only what the
    /// key's holder signed; what it may accept beyond `verify_strict`
    /// (signatures built with a small-order component) only the holder
    /// can make, for its own statements, where it could as well sign two
    /// different records under one version.
    pub(crate) fn check_all(&self, signed: &[(&PublicKey, &[u8], &Signature)]) -> bool {
        let tags: Vec<[u8; 32]> = signed.iter().map(|(k, b, s)| tag(k, b, s)).collect();
        let kept = self.keys_kept();
        let (keys, fresh) = {
            let mut memory = self.memory.lock().expect("never poisoned");
            let fresh: Vec<usize> = (0..signed.len())
                .filter(|&i| !memory.seen.contains(&tags[i]))
                .collect();
            let mut keys = Vec::with_capacity(fresh.len());
            for &i in &fresh {
                match memory.key(signed[i].0, kept) {
                    Some(vk) => keys.push(vk),
                    None => return false,
                }
            }
            (keys, fresh)
        };
        self.count(&tags, fresh.len());
        let ok = match fresh.as_slice() {
            [] => return true,
            [one] => {
                let (_, bytes, sig) = signed[*one];
                let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
                keys[0].verify_strict(bytes, &sig).is_ok()
            }
            many => {
                let messages: Vec<&[u8]> = many.iter().map(|&i| signed[i].1).collect();
                let sigs: Vec<ed25519_dalek::Signature> = many
                    .iter()
                    .map(|&i| ed25519_dalek::Signature::from_bytes(&signed[i].2 .0))
                    .collect();
                ed25519_dalek::verify_batch(&messages, &sigs, &keys).is_ok()
            }
        };
        if ok {
            self.remember(fresh.iter().map(|&i| tags[i]));
        }
        ok
    }

    /// Remember signatures that verified, starting over when full.
    fn remember(&self, tags: impl ExactSizeIterator<Item = [u8; 32]>) {
        let mut memory = self.memory.lock().expect("never poisoned");
        if memory.seen.len() + tags.len() > VERIFIED_KEPT {
            memory.seen.clear();
        }
        memory.seen.extend(tags);
    }
}

impl Memory {
    /// `key` decompressed, or `None` if it is no usable key.
    /// At most `kept` keys are kept (see [`KEYS_KEPT`]).
    fn key(&mut self, key: &PublicKey, kept: usize) -> Option<VerifyingKey> {
        if let Some(vk) = self.keys.get(&key.0) {
            return Some(*vk);
        }
        let vk = VerifyingKey::from_bytes(&key.0)
            .ok()
            .filter(|k| !k.is_weak())?;
        if self.keys.len() >= kept {
            self.keys.clear();
        }
        self.keys.insert(key.0, vk);
        Some(vk)
    }
}

/// What the memory of checked signatures is keyed by.
fn tag(key: &PublicKey, bytes: &[u8], signature: &Signature) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(key.0);
    h.update(signature.0);
    h.update(bytes);
    h.finalize().into()
}

// ----- canonical statements ----------------------------------------------

/// Canonical bytes: a domain tag, then fields, each length-prefixed or of
/// fixed width.
struct Statement(Vec<u8>);

impl Statement {
    fn new(tag: &str) -> Statement {
        let mut s = Statement(Vec::with_capacity(128));
        s.bytes(tag.as_bytes());
        s
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Statement {
        self.0.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }
    fn u64(&mut self, v: u64) -> &mut Statement {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u8(&mut self, v: u8) -> &mut Statement {
        self.0.push(v);
        self
    }
    fn addr(&mut self, a: &SocketAddr) -> &mut Statement {
        match a {
            SocketAddr::V4(v4) => self.u8(4).bytes(&v4.ip().octets()),
            SocketAddr::V6(v6) => self.u8(6).bytes(&v6.ip().octets()),
        };
        self.u64(a.port() as u64)
    }
}

/// What a member says of itself: alive (or left) at an incarnation, at an
/// address, under a key. Suspect and dead are others' words; the member's
/// own statement behind them is its `Alive`.
pub(crate) fn member_statement(
    name: &str,
    addr: &SocketAddr,
    incarnation: Incarnation,
    state: MemberState,
    key: &PublicKey,
) -> Vec<u8> {
    let left = state == MemberState::Left;
    let mut s = Statement::new(if left {
        "rumour/v1/left"
    } else {
        "rumour/v1/alive"
    });
    s.bytes(name.as_bytes())
        .addr(addr)
        .u64(incarnation.0 as u64)
        .bytes(&key.0);
    s.0
}

/// A record as its owner wrote it: owner, generation, version and content.
pub(crate) fn record_statement(
    owner: &str,
    generation: u32,
    version: u64,
    record: &Record,
) -> Vec<u8> {
    let mut s = Statement::new("rumour/v1/record");
    s.bytes(owner.as_bytes())
        .u64(generation as u64)
        .u64(version);
    match record {
        Record::Entry { key, value } => {
            s.u8(1).bytes(key.as_bytes());
            match value {
                Some(v) => s.u8(1).bytes(v),
                None => s.u8(0),
            };
        }
        Record::Event {
            name,
            payload,
            lamport,
        } => {
            s.u8(2).bytes(name.as_bytes()).bytes(payload).u64(*lamport);
        }
    }
    s.0
}

/// An owner's word on its namespace's life and GC horizon: versions up to
/// `horizon` of generation `generation` may be gone, so a replica older than
/// it is reset.
pub(crate) fn horizon_statement(owner: &str, generation: u32, horizon: u64) -> Vec<u8> {
    let mut s = Statement::new("rumour/v1/horizon");
    s.bytes(owner.as_bytes())
        .u64(generation as u64)
        .u64(horizon);
    s.0
}

/// The owner's word that its live entries at `version` of a generation
/// hash to `digest` (a checkpoint, see [`crate::checkpoint`]).
pub(crate) fn checkpoint_statement(
    owner: &str,
    generation: u32,
    version: u64,
    digest: &crate::checkpoint::LiveDigest,
) -> Vec<u8> {
    let mut s = Statement::new("rumour/v1/checkpoint");
    s.bytes(owner.as_bytes())
        .u64(generation as u64)
        .u64(version)
        .bytes(&digest.to_bytes());
    s.0
}

/// The metadata register as its publisher wrote it.
pub(crate) fn metadata_statement(origin: &str, lamport: u64, value: &[u8]) -> Vec<u8> {
    let mut s = Statement::new("rumour/v1/metadata");
    s.bytes(origin.as_bytes()).u64(lamport).bytes(value);
    s.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_key_and_bytes() {
        let a = Identity::from_seed(1);
        let b = Identity::from_seed(2);
        let v = Verified::new();
        let msg = horizon_statement("a", 1, 5);
        let sig = a.sign(&msg);
        assert!(v.check(&a.public(), &msg, &sig));
        assert!(!v.check(&b.public(), &msg, &sig));
        assert!(!v.check(&a.public(), &horizon_statement("a", 1, 6), &sig));
        let mut bent = sig;
        bent.0[10] ^= 1;
        assert!(!v.check(&a.public(), &msg, &bent));
        // Remembered: a second check of the good one still passes, and a
        // bad one after it still fails.
        assert!(v.check(&a.public(), &msg, &sig));
        assert!(!v.check(&a.public(), &msg, &bent));
    }

    #[test]
    fn each_holder_counts_what_it_would_verify_with_a_memory_of_its_own() {
        let a = Identity::from_seed(1);
        let msgs: Vec<Vec<u8>> = (0..4).map(|h| horizon_statement("a", 1, h)).collect();
        let sigs: Vec<Signature> = msgs.iter().map(|m| a.sign(m)).collect();
        let key = a.public();
        let three: Vec<(&PublicKey, &[u8], &Signature)> = (1..4)
            .map(|i| (&key, msgs[i].as_slice(), &sigs[i]))
            .collect();
        let checks = |single, batched| Checks { single, batched };
        // A memory of its own: what it verified, once each.
        let own = Verified::new();
        assert!(own.check(&key, &msgs[0], &sigs[0]));
        assert!(own.check(&key, &msgs[0], &sigs[0]));
        assert!(own.check_all(&three));
        assert!(own.check_all(&three));
        assert_eq!(own.checks(), checks(1, 3));
        // Two holders of one memory: the second verifies nothing (every
        // statement is a hit) but counts what it met first, as the first did.
        let first = own.holder();
        let second = own.holder();
        for h in [&first, &second] {
            assert!(h.check(&key, &msgs[0], &sigs[0]));
            assert!(h.check_all(&three));
            assert!(h.check(&key, &msgs[1], &sigs[1]));
            assert_eq!(h.checks(), checks(1, 3));
        }
        // A plain share counts only what the memory verified for it: here,
        // nothing.
        let shared = own.share();
        assert!(shared.check(&key, &msgs[2], &sigs[2]));
        assert_eq!(shared.checks(), checks(0, 0));
        assert_eq!(own.checks(), checks(1, 3), "each holder counts apart");
    }

    #[test]
    fn a_word_heard_again_is_answered_by_what_it_says_and_only_that() {
        let a = Identity::from_seed(1);
        let addr: SocketAddr = "10.0.0.1:7946".parse().unwrap();
        let id = NodeId::new("a", addr).unwrap();
        let alive = a.member_update(&id, Incarnation(3), MemberState::Alive, None);
        let (key, sig) = (alive.key, alive.signature);
        let other_addr = NodeId::new("a", "10.0.0.2:7946".parse().unwrap()).unwrap();
        let other_name = NodeId::new("b", addr).unwrap();
        let own = Verified::new();
        let first = own.holder();
        let second = own.holder();
        for v in [&own, &first, &second, &own, &first] {
            assert!(v.check_word(&id, Incarnation(3), MemberState::Alive, &key, &sig));
            // A suspicion or death rests on the same word.
            assert!(v.check_word(&id, Incarnation(3), MemberState::Dead, &key, &sig));
        }
        // Each holder counts the word once, as with a memory of its own.
        let one = Checks {
            single: 1,
            batched: 0,
        };
        assert_eq!(
            (own.checks(), first.checks(), second.checks()),
            (one, one, one)
        );
        // The same signature, replayed under anything it did not say.
        for v in [&own, &first] {
            let other = Identity::from_seed(2).public();
            for (id, incarnation, state, key) in [
                (&other_addr, 3, MemberState::Alive, &key),
                (&other_name, 3, MemberState::Alive, &key),
                (&id, 4, MemberState::Alive, &key),
                (&id, 3, MemberState::Left, &key),
                (&id, 3, MemberState::Alive, &other),
            ] {
                assert!(!v.check_word(id, Incarnation(incarnation), state, key, &sig));
            }
        }
        // The same as `check` of the statement.
        let alone = Verified::new();
        let statement = member_statement("a", &addr, Incarnation(3), MemberState::Alive, &key);
        assert!(alone.check(&key, &statement, &sig));
        assert!(alone.check_word(&id, Incarnation(3), MemberState::Alive, &key, &sig));
        assert_eq!(alone.checks(), one);
        assert_eq!(
            alone.memory.lock().unwrap().said.len(),
            0,
            "a lone memory keeps none"
        );
        assert_eq!(own.memory.lock().unwrap().said.len(), 1);
    }

    #[test]
    fn words_are_shared_only_between_holders_of_one_memory() {
        let a = Identity::from_seed(1);
        let sig = a.sign(b"word");
        let alone = Verified::new();
        let (w1, w2) = (
            alone.share_word(&a.public(), &sig),
            alone.share_word(&a.public(), &sig),
        );
        assert!(!Arc::ptr_eq(&w1, &w2));
        assert_eq!(alone.memory.lock().unwrap().words.len(), 0);
        let shared = Verified::new();
        let other = shared.share();
        let (w1, w2) = (
            shared.share_word(&a.public(), &sig),
            other.share_word(&a.public(), &sig),
        );
        assert!(Arc::ptr_eq(&w1, &w2));
        assert_eq!((w1.key, w1.signature), (a.public(), sig));
    }

    #[test]
    fn a_memory_of_its_own_keeps_few_keys_and_checks_the_same() {
        // 100 writers' keys each verify one statement, then each its second:
        // a node's own memory keeps no more than KEYS_KEPT_ALONE of them
        // decompressed, one shared with another holder keeps them all, and
        // every check comes out the same (a forgery still fails).
        let writers: Vec<Identity> = (0..100).map(Identity::from_seed).collect();
        let (alone, shared) = (Verified::new(), Verified::new());
        let other = shared.share();
        for round in 0..2 {
            for (i, w) in writers.iter().enumerate() {
                let msg = horizon_statement("w", 1, round);
                let sig = w.sign(&msg);
                for v in [&alone, &other] {
                    assert!(v.check(&w.public(), &msg, &sig), "writer {i}");
                    let forged = &writers[(i + 1) % writers.len()].public();
                    assert!(!v.check(forged, &msg, &sig), "writer {i}");
                }
            }
        }
        let kept = |v: &Verified| v.memory.lock().unwrap().keys.len();
        assert!(kept(&alone) <= KEYS_KEPT_ALONE, "{}", kept(&alone));
        assert_eq!(kept(&shared), 100);
    }

    #[test]
    fn a_batch_passes_only_if_every_signature_in_it_does() {
        let (a, b) = (Identity::from_seed(1), Identity::from_seed(2));
        let (ka, kb) = (a.public(), b.public());
        let msgs: Vec<Vec<u8>> = (0..6).map(|h| horizon_statement("a", 1, h)).collect();
        let sigs: Vec<Signature> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| if i % 2 == 0 { a.sign(m) } else { b.sign(m) })
            .collect();
        fn batch<'a>(
            keys: [&'a PublicKey; 2],
            msgs: &'a [Vec<u8>],
            sigs: &'a [Signature],
        ) -> Vec<(&'a PublicKey, &'a [u8], &'a Signature)> {
            (0..6)
                .map(|i| (keys[i % 2], msgs[i].as_slice(), &sigs[i]))
                .collect()
        }
        let keys = [&ka, &kb];
        // One bent signature, or one under the wrong key, fails the batch
        // and leaves nothing remembered.
        let v = Verified::new();
        let mut bent = sigs.clone();
        bent[3].0[40] ^= 1;
        assert!(!v.check_all(&batch(keys, &msgs, &bent)));
        assert!(!v.check(&kb, &msgs[3], &bent[3]));
        let mut swapped = batch(keys, &msgs, &sigs);
        swapped[2].0 = &kb;
        assert!(!v.check_all(&swapped));
        assert!(v.memory.lock().unwrap().seen.is_empty());
        // The honest batch passes, and each of its statements is then
        // remembered.
        assert!(v.check_all(&batch(keys, &msgs, &sigs)));
        assert_eq!(v.memory.lock().unwrap().seen.len(), 6);
        assert!(v.check(&ka, &msgs[0], &sigs[0]));
        // A key of small order is no key.
        let weak = PublicKey([0; 32]);
        assert!(!v.check(&weak, &msgs[0], &sigs[0]));
    }

    #[test]
    fn statements_of_different_kinds_never_share_bytes() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let k = PublicKey([1; 32]);
        let alive = member_statement("a", &addr, Incarnation(1), MemberState::Alive, &k);
        let left = member_statement("a", &addr, Incarnation(1), MemberState::Left, &k);
        // Suspect and dead stand on the member's own alive statement.
        let suspect = member_statement("a", &addr, Incarnation(1), MemberState::Suspect, &k);
        assert_ne!(alive, left);
        assert_eq!(alive, suspect);
        // Field boundaries are unambiguous: "ab" + "c" is not "a" + "bc".
        let r1 = Record::Entry {
            key: "c".into(),
            value: Some(Arc::from(&b"x"[..])),
        };
        assert_ne!(
            record_statement("ab", 1, 1, &r1),
            record_statement("a", 1, 1, &r1)
        );
    }

    #[test]
    fn seeded_identities_repeat_and_differ() {
        assert_eq!(
            Identity::from_seed(7).public(),
            Identity::from_seed(7).public()
        );
        assert_ne!(
            Identity::from_seed(7).public(),
            Identity::from_seed(8).public()
        );
        assert!(!format!("{:?}", Identity::from_seed(7)).contains("secret"));
    }
}
