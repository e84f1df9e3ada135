//! The cluster key: who may talk on the peer port.
//!
//! With a [`Keyring`] set, every peer envelope travels sealed: the whole
//! plain [`Envelope`] (sender and body) is encoded, encrypted and
//! authenticated with XChaCha20-Poly1305 under the keyring's primary key,
//! and sent as an envelope holding only its `sealed` field
//! (`Sealed { nonce, ciphertext }`). The associated data binds the
//! keyring's label, so two clusters on one network with the same key but
//! different labels never mix. A receiver tries every key of its ring, in
//! order; what opens with none is refused before the inner envelope is
//! decoded. A keyring holds one primary key (the first, the one that seals)
//! and any number of keys that only open, which is what a rotation needs:
//! install the new key beside the old everywhere, make it primary
//! everywhere, then remove the old.
//!
//! Keys never show: [`ClusterKey`] and [`Keyring`] implement `Debug` by
//! hand, errors name a key by its position, never by its text, and the
//! key's bytes are zeroed when it is dropped. Where a key must be named (in
//! `rumour keys list`), it is by its [`ClusterKey::fingerprint`].
//!
//! A running agent changes its ring while it seals and opens: the ring is
//! held in a [`SharedKeyring`], whose readers take the current ring as an
//! `Arc` and never hold a lock while they seal or open.
//!
//! Each sealed envelope also carries the time it was sealed at (Unix
//! milliseconds, bound into the associated data), and what opens goes
//! through the receiver's [`ReplayWindow`]: an envelope sent outside the
//! window of the receiver's clock, or whose nonce was already taken, is
//! refused (see the `replay` module). A captured envelope replayed later
//! changes nothing.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use prost::Message as _;
use rumour_proto::v1::{Envelope, Sealed};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::replay::{Replay, ReplayWindow, Stamp, PREFIX_LEN};

/// Bytes of a cluster key.
pub const KEY_LEN: usize = 32;
/// Bytes of a nonce (XChaCha20-Poly1305).
pub const NONCE_LEN: usize = 24;
/// Bytes the authentication tag adds to each sealed envelope.
pub const TAG_LEN: usize = 16;

/// What every sealed envelope's associated data starts with, before the
/// label: a fixed context, so a ciphertext made for something else under
/// the same key does not open here.
const AAD_CONTEXT: &[u8] = b"rumour.v1.Envelope\0";

/// What a key's fingerprint hashes before the key, so that the fingerprint
/// is of no use as any other hash of the key.
const FINGERPRINT_CONTEXT: &[u8] = b"rumour.v1.ClusterKey.fingerprint\0";

/// Why a cluster key was refused. Never holds the key's text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not base64 (standard alphabet, padded).
    #[error("the cluster key is not base64 (standard alphabet with = padding; make one with `rumour keygen`)")]
    NotBase64,
    /// The text decodes to a number of bytes other than [`KEY_LEN`].
    #[error("the cluster key decodes to {0} bytes; it must be 32 (make one with `rumour keygen`)")]
    WrongLength(usize),
    /// A keyring needs at least one key.
    #[error("a keyring needs at least one key")]
    Empty,
    /// The operating system's random number generator failed.
    #[error("cannot draw random bytes from the operating system: {0}")]
    Random(String),
}

/// A 32-byte secret shared by every node of a cluster. Written as base64
/// (standard alphabet, padded: 44 characters).
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey(Zeroizing<[u8; KEY_LEN]>);

impl ClusterKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<ClusterKey, KeyError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(&mut key[..]).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(ClusterKey(key))
    }

    /// A key from its base64 text (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<ClusterKey, KeyError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| KeyError::NotBase64)?,
        );
        ClusterKey::from_bytes(&bytes)
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<ClusterKey, KeyError> {
        let key: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| KeyError::WrongLength(bytes.len()))?;
        Ok(ClusterKey(Zeroizing::new(key)))
    }

    /// The key as base64 text, to hand to another node (never to log).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0[..])
    }

    /// The key's raw bytes, to keep in the data dir (never to log).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A short name of the key that can be shown: the first 8 bytes of a
    /// SHA-256 over a fixed context and the key, as 16 hex digits. It tells
    /// keys apart and reveals nothing usable about the key.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new()
            .chain_update(FINGERPRINT_CONTEXT)
            .chain_update(&self.0[..])
            .finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.0).into())
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
}

/// The keys a node seals and opens peer envelopes with, and the label
/// bound to every envelope as associated data.
///
/// The first key is the primary: it seals. Every key opens, tried in
/// order. The keys are a plain ordered list so that a later rotation
/// command is a matter of [`Keyring::install`], [`Keyring::use_primary`]
/// and [`Keyring::remove`].
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<ClusterKey>,
    label: String,
}

impl Keyring {
    /// A keyring of one key, with `label` as associated data (`""` for
    /// none).
    pub fn new(primary: ClusterKey, label: impl Into<String>) -> Keyring {
        Keyring {
            keys: vec![primary],
            label: label.into(),
        }
    }

    /// A keyring from base64 keys, the first the primary. An error names
    /// the key by its position (1-based) among `keys`, never by its text.
    pub fn from_base64<S: AsRef<str>>(
        keys: &[S],
        label: impl Into<String>,
    ) -> Result<Keyring, (usize, KeyError)> {
        let mut parsed = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            parsed.push(ClusterKey::from_base64(k.as_ref()).map_err(|e| (i + 1, e))?);
        }
        let mut parsed = parsed.into_iter();
        let primary = parsed.next().ok_or((0, KeyError::Empty))?;
        let mut ring = Keyring::new(primary, label);
        for k in parsed {
            ring.install(k);
        }
        Ok(ring)
    }

    /// A keyring from raw keys, the first the primary (as a data dir keeps
    /// them).
    pub fn from_bytes<B: AsRef<[u8]>>(
        keys: &[B],
        label: impl Into<String>,
    ) -> Result<Keyring, KeyError> {
        let mut parsed = keys.iter().map(|k| ClusterKey::from_bytes(k.as_ref()));
        let primary = parsed.next().ok_or(KeyError::Empty)??;
        let mut ring = Keyring::new(primary, label);
        for k in parsed {
            ring.install(k?);
        }
        Ok(ring)
    }

    /// Add a key that opens but does not seal (nothing if it is already
    /// in the ring).
    pub fn install(&mut self, key: ClusterKey) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    /// Make `key` the primary, installing it if it is new; the former
    /// primary still opens.
    pub fn use_primary(&mut self, key: ClusterKey) {
        self.keys.retain(|k| *k != key);
        self.keys.insert(0, key);
    }

    /// Remove a key that is not the primary. False if it is the primary
    /// or not in the ring.
    pub fn remove(&mut self, key: &ClusterKey) -> bool {
        match self.keys.iter().position(|k| k == key) {
            Some(i) if i > 0 => {
                self.keys.remove(i);
                true
            }
            _ => false,
        }
    }

    /// The primary key: the one that seals.
    pub fn primary(&self) -> &ClusterKey {
        &self.keys[0]
    }

    /// Every key, the primary first.
    pub fn keys(&self) -> &[ClusterKey] {
        &self.keys
    }

    /// Whether `key` is in the ring.
    pub fn contains(&self, key: &ClusterKey) -> bool {
        self.keys.contains(key)
    }

    /// The same keys under another label.
    pub fn with_label(mut self, label: impl Into<String>) -> Keyring {
        self.label = label.into();
        self
    }

    /// How many keys the ring holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true: a ring has a primary key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The label bound as associated data.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The associated data: the fixed context, the send time (8 bytes,
    /// big-endian; fixed width, so it cannot run into the label) and the
    /// label.
    fn aad(&self, sent_unix_ms: u64) -> Vec<u8> {
        [
            AAD_CONTEXT,
            &sent_unix_ms.to_be_bytes()[..],
            self.label.as_bytes(),
        ]
        .concat()
    }

    /// Encrypt and authenticate `plain` under the primary key with `nonce`,
    /// binding `sent_unix_ms` (the time it is sealed at, which travels in
    /// the clear beside it). The nonce must never have been used with this
    /// key before.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], sent_unix_ms: u64, plain: &[u8]) -> Vec<u8> {
        let aad = self.aad(sent_unix_ms);
        self.keys[0]
            .cipher()
            .encrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any message that fits in memory")
    }

    /// The plaintext of `ciphertext` if it opens with one of the keys (and
    /// this label and send time); `None` otherwise, and for a nonce of the
    /// wrong length.
    pub fn open(&self, nonce: &[u8], sent_unix_ms: u64, ciphertext: &[u8]) -> Option<Vec<u8>> {
        if nonce.len() != NONCE_LEN || ciphertext.len() < TAG_LEN {
            return None;
        }
        let aad = self.aad(sent_unix_ms);
        let nonce = XNonce::from_slice(nonce);
        self.keys.iter().find_map(|k| {
            k.cipher()
                .decrypt(
                    nonce,
                    Payload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .ok()
        })
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field("label", &self.label)
            .finish()
    }
}

/// A node's keyring as it stands, changed at run time by key commands.
///
/// Readers (the sealer, the peer service) take [`SharedKeyring::current`],
/// an `Arc` of the ring of the moment, and seal or open with it lock-free;
/// a change builds a new ring and swaps it in whole, so no reader ever sees
/// half a change.
#[derive(Clone, Debug)]
pub(crate) struct SharedKeyring(Arc<RwLock<Arc<Keyring>>>);

impl SharedKeyring {
    pub(crate) fn new(ring: Keyring) -> SharedKeyring {
        SharedKeyring(Arc::new(RwLock::new(Arc::new(ring))))
    }

    /// The ring of the moment.
    pub(crate) fn current(&self) -> Arc<Keyring> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Put `ring` in place of the current one.
    pub(crate) fn replace(&self, ring: Keyring) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
    }
}

/// Seals one node's outgoing envelopes.
///
/// Nonces: a 16-byte prefix drawn from the operating system's random
/// number generator when the sealer is made (once per agent start),
/// followed by a 64-bit counter that goes up by one per envelope. Within a
/// process a nonce never repeats (the counter would have to wrap; the
/// prefix is redrawn first). Across processes and nodes sharing a key, two
/// nonces meet only if two random 128-bit prefixes do, which is negligible
/// (about n²/2¹²⁹ for n agent starts under one key). Compared with 24 fresh
/// random bytes per envelope, this costs no system call per message and
/// makes "no repeat within a process" a certainty rather than a
/// probability; what it shows an observer (how many envelopes this node
/// sealed since it started) the ciphertexts' timing shows anyway. The
/// prefix also names the sender life to the receivers' replay windows,
/// and the counter is what they keep track of.
pub(crate) struct Sealer {
    keyring: SharedKeyring,
    prefix: [u8; PREFIX_LEN],
    counter: u64,
}

impl Sealer {
    pub(crate) fn new(keyring: SharedKeyring) -> Result<Sealer, KeyError> {
        let mut prefix = [0u8; PREFIX_LEN];
        getrandom::fill(&mut prefix).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Sealer {
            keyring,
            prefix,
            counter: 0,
        })
    }

    fn next_nonce(&mut self) -> [u8; NONCE_LEN] {
        if self.counter == u64::MAX {
            // Unreachable in practice (2⁶⁴ envelopes); a fresh prefix keeps
            // the promise anyway.
            if let Ok(s) = Sealer::new(self.keyring.clone()) {
                self.prefix = s.prefix;
            }
            self.counter = 0;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..PREFIX_LEN].copy_from_slice(&self.prefix);
        nonce[PREFIX_LEN..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter += 1;
        nonce
    }

    /// The sealed form of a plain envelope, under the ring's primary key
    /// of the moment, stamped with the wall clock.
    pub(crate) fn seal(&mut self, plain: &Envelope) -> Envelope {
        self.seal_at(plain, unix_ms())
    }

    /// The sealed form of a plain envelope, stamped as sent at
    /// `sent_unix_ms`.
    pub(crate) fn seal_at(&mut self, plain: &Envelope, sent_unix_ms: u64) -> Envelope {
        let nonce = self.next_nonce();
        let bytes = Zeroizing::new(plain.encode_to_vec());
        Envelope {
            sealed: Some(Sealed {
                nonce: nonce.to_vec(),
                ciphertext: self.keyring.current().seal(&nonce, sent_unix_ms, &bytes),
                sent_unix_ms,
            }),
            ..Envelope::default()
        }
    }
}

/// The wall clock, in milliseconds since the Unix epoch (0 before it).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why an envelope was not let through to decoding.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not sealed with a key of this node (or sealed, at a node without a
    /// key): counted as `rejected_unauthenticated`.
    Unauthenticated(&'static str),
    /// Opened, but the inside is not a plain envelope: counted as
    /// `rejected_malformed`.
    Malformed(String),
    /// Opened, but sent outside the replay window or taken before:
    /// counted as `rejected_stale` or `rejected_replayed`.
    Replay(Replay),
}

/// The plain envelope inside `env`, as this node's keyring (or its
/// absence) requires: with a keyring, `env` must be sealed, open with one
/// of its keys, and pass `window` at the wall clock `now_unix_ms` (which
/// then remembers it); without one, `env` must not be sealed. A refusal
/// changes nothing.
pub(crate) fn open_envelope(
    keyring: Option<&Keyring>,
    window: &ReplayWindow,
    mut env: Envelope,
    now_unix_ms: u64,
) -> Result<Envelope, Refusal> {
    match (keyring, env.sealed.take()) {
        (None, None) => Ok(env),
        (None, Some(_)) => Err(Refusal::Unauthenticated(
            "sealed, but this node has no cluster key",
        )),
        (Some(_), None) => Err(Refusal::Unauthenticated("not sealed with the cluster key")),
        (Some(ring), Some(sealed)) => {
            let plain = Zeroizing::new(
                ring.open(&sealed.nonce, sealed.sent_unix_ms, &sealed.ciphertext)
                    .ok_or(Refusal::Unauthenticated(
                        "does not open with any installed cluster key",
                    ))?,
            );
            // Only what opened reaches the window: an outsider cannot fill it.
            let mut prefix = [0u8; PREFIX_LEN];
            prefix.copy_from_slice(&sealed.nonce[..PREFIX_LEN]);
            let mut counter = [0u8; 8];
            counter.copy_from_slice(&sealed.nonce[PREFIX_LEN..]);
            let stamp = Stamp {
                prefix,
                counter: u64::from_be_bytes(counter),
                sent_unix_ms: sealed.sent_unix_ms,
            };
            window.admit(stamp, now_unix_ms).map_err(Refusal::Replay)?;
            let inner = Envelope::decode(&plain[..])
                .map_err(|e| Refusal::Malformed(format!("sealed envelope: {e}")))?;
            if inner.sealed.is_some() {
                return Err(Refusal::Malformed(
                    "a sealed envelope inside another".into(),
                ));
            }
            Ok(inner)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::SocketAddr;

    fn key(b: u8) -> ClusterKey {
        ClusterKey::from_bytes(&[b; KEY_LEN]).unwrap()
    }

    fn plain() -> Envelope {
        let from: SocketAddr = "127.0.0.1:7946".parse().unwrap();
        rumour_proto::encode_envelope(
            from,
            &rumour_core::Message::Nack(rumour_core::Nack { seq: 7 }),
        )
    }

    /// Open with a fresh replay window, at the wall clock.
    fn open(ring: Option<&Keyring>, env: Envelope) -> Result<Envelope, Refusal> {
        open_envelope(ring, &ReplayWindow::new(), env, unix_ms())
    }

    fn sealer(ring: Keyring) -> Sealer {
        Sealer::new(SharedKeyring::new(ring)).unwrap()
    }

    #[test]
    fn a_sealed_envelope_opens_to_the_same_envelope() {
        let ring = Keyring::new(key(1), "prod");
        let sealed = sealer(ring.clone()).seal(&plain());
        assert!(sealed.from.is_none() && sealed.body.is_none());
        let s = sealed.sealed.as_ref().unwrap();
        assert_eq!(s.nonce.len(), NONCE_LEN);
        assert_eq!(s.ciphertext.len(), plain().encoded_len() + TAG_LEN);
        assert_eq!(open(Some(&ring), sealed), Ok(plain()));
    }

    #[test]
    fn a_tampered_byte_is_refused() {
        let ring = Keyring::new(key(1), "");
        let sealed = sealer(ring.clone()).seal(&plain());
        let s = sealed.sealed.clone().unwrap();
        for i in 0..s.ciphertext.len() {
            let mut bad = s.clone();
            bad.ciphertext[i] ^= 0x01;
            assert!(
                ring.open(&bad.nonce, bad.sent_unix_ms, &bad.ciphertext)
                    .is_none(),
                "byte {i}"
            );
        }
        for i in 0..s.nonce.len() {
            let mut bad = s.clone();
            bad.nonce[i] ^= 0x80;
            assert!(
                ring.open(&bad.nonce, bad.sent_unix_ms, &bad.ciphertext)
                    .is_none(),
                "nonce {i}"
            );
        }
        // The send time is bound too: moving it into the window is no way
        // around the window.
        let mut moved = s.clone();
        moved.sent_unix_ms += 1;
        assert!(ring
            .open(&moved.nonce, moved.sent_unix_ms, &moved.ciphertext)
            .is_none());
        let mut short = s.clone();
        short.nonce.pop();
        assert!(ring
            .open(&short.nonce, short.sent_unix_ms, &short.ciphertext)
            .is_none());
        let mut cut = s;
        cut.ciphertext.truncate(TAG_LEN - 1);
        assert!(ring
            .open(&cut.nonce, cut.sent_unix_ms, &cut.ciphertext)
            .is_none());
    }

    #[test]
    fn a_wrong_label_or_key_is_refused() {
        let sealed = sealer(Keyring::new(key(1), "blue")).seal(&plain());
        for other in [
            Keyring::new(key(1), "green"),
            Keyring::new(key(1), ""),
            Keyring::new(key(2), "blue"),
        ] {
            assert_eq!(
                open(Some(&other), sealed.clone()),
                Err(Refusal::Unauthenticated(
                    "does not open with any installed cluster key"
                )),
                "{other:?}"
            );
        }
    }

    #[test]
    fn plain_at_a_keyed_node_and_sealed_at_an_unkeyed_one_are_refused() {
        let ring = Keyring::new(key(1), "");
        assert!(matches!(
            open(Some(&ring), plain()),
            Err(Refusal::Unauthenticated(_))
        ));
        let sealed = sealer(ring).seal(&plain());
        assert!(matches!(
            open(None, sealed),
            Err(Refusal::Unauthenticated(_))
        ));
        assert_eq!(open(None, plain()), Ok(plain()));
    }

    #[test]
    fn a_ring_opens_with_every_key_and_seals_with_the_first() {
        let old = Keyring::new(key(1), "");
        let mut new = Keyring::new(key(2), "");
        new.install(key(1));
        let by_old = sealer(old.clone()).seal(&plain());
        let by_new = sealer(new.clone()).seal(&plain());
        assert_eq!(open(Some(&new), by_old), Ok(plain()));
        assert_eq!(open(Some(&new), by_new.clone()), Ok(plain()));
        assert!(open(Some(&old), by_new).is_err());
        // Rotation steps.
        let mut ring = old;
        ring.install(key(2));
        ring.install(key(2));
        assert_eq!(ring.len(), 2);
        assert!(!ring.remove(&key(1)), "the primary stays");
        ring.use_primary(key(2));
        assert!(ring.remove(&key(1)));
        assert_eq!(ring, Keyring::new(key(2), ""));
    }

    #[test]
    fn fingerprints_tell_keys_apart_and_show_nothing_of_them() {
        let k = ClusterKey::generate().unwrap();
        let f = k.fingerprint();
        assert_eq!(f.len(), 16);
        assert!(f.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(k.clone().fingerprint(), f, "stable");
        assert_ne!(key(1).fingerprint(), key(2).fingerprint());
        assert!(!k.to_base64().contains(&f));
    }

    #[test]
    fn a_shared_ring_changed_at_run_time_seals_with_its_new_primary() {
        let shared = SharedKeyring::new(Keyring::new(key(1), ""));
        let mut s = Sealer::new(shared.clone()).unwrap();
        let old_only = Keyring::new(key(1), "");
        let new_only = Keyring::new(key(2), "");
        assert!(open(Some(&old_only), s.seal(&plain())).is_ok());
        let mut next = (*shared.current()).clone();
        next.use_primary(key(2));
        shared.replace(next);
        let sealed = s.seal(&plain());
        assert!(open(Some(&old_only), sealed.clone()).is_err());
        assert_eq!(open(Some(&new_only), sealed), Ok(plain()));
        assert_eq!(shared.current().keys(), &[key(2), key(1)]);
    }

    #[test]
    fn nonces_never_repeat() {
        let ring = Keyring::new(key(1), "");
        let mut a = sealer(ring.clone());
        let mut b = sealer(ring);
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            for s in [&mut a, &mut b] {
                let env = s.seal(&plain());
                assert!(seen.insert(env.sealed.unwrap().nonce), "a nonce repeated");
            }
        }
        // The counter's wrap redraws the prefix instead of repeating.
        a.counter = u64::MAX;
        let before = a.prefix;
        let n = a.next_nonce();
        assert_ne!(a.prefix, before);
        assert!(seen.insert(n.to_vec()));
    }

    #[test]
    fn a_replayed_envelope_is_refused_and_another_life_is_not() {
        let ring = Keyring::new(key(1), "");
        let window = ReplayWindow::new();
        let now = unix_ms();
        let mut s = sealer(ring.clone());
        let env = s.seal(&plain());
        assert_eq!(
            open_envelope(Some(&ring), &window, env.clone(), now),
            Ok(plain())
        );
        assert!(matches!(
            open_envelope(Some(&ring), &window, env.clone(), now + 1),
            Err(Refusal::Replay(Replay::Replayed(_)))
        ));
        // The next envelope of the same sender, and one of a sender
        // restarted (a new prefix) whose counter starts again at 0, open.
        assert!(open_envelope(Some(&ring), &window, s.seal(&plain()), now).is_ok());
        let restarted = sealer(ring.clone()).seal(&plain());
        assert!(open_envelope(Some(&ring), &window, restarted.clone(), now).is_ok());
        assert!(open_envelope(Some(&ring), &window, restarted, now).is_err());
        // A refusal for the seal is not remembered: the window only ever
        // sees what opened.
        let other = sealer(Keyring::new(key(2), "")).seal(&plain());
        assert!(matches!(
            open_envelope(Some(&ring), &window, other, now),
            Err(Refusal::Unauthenticated(_))
        ));
    }

    #[test]
    fn an_envelope_sent_outside_the_window_is_refused() {
        let ring = Keyring::new(key(1), "");
        let window = ReplayWindow::new();
        let now = unix_ms();
        let win = crate::replay::REPLAY_WINDOW.as_millis() as u64;
        let mut s = sealer(ring.clone());
        for sent in [now - win - 1, now + win + 1] {
            assert_eq!(
                open_envelope(Some(&ring), &window, s.seal_at(&plain(), sent), now),
                Err(Refusal::Replay(Replay::Stale {
                    sent_unix_ms: sent,
                    now_unix_ms: now
                }))
            );
        }
        // Captured now, replayed a window and a second later: stale, even
        // at a receiver that never saw it.
        let captured = s.seal(&plain());
        assert!(matches!(
            open_envelope(
                Some(&ring),
                &ReplayWindow::new(),
                captured,
                now + win + 1_000
            ),
            Err(Refusal::Replay(Replay::Stale { .. }))
        ));
    }

    #[test]
    fn reordered_envelopes_within_the_window_are_taken_once_each() {
        let ring = Keyring::new(key(1), "");
        let window = ReplayWindow::new();
        let now = unix_ms();
        let mut s = sealer(ring.clone());
        // Two interleaved streams of one sender: evens arrive first, odds
        // after, in reverse.
        let sealed: Vec<Envelope> = (0..400).map(|_| s.seal(&plain())).collect();
        let evens = sealed.iter().step_by(2);
        let odds = sealed.iter().skip(1).step_by(2).rev();
        let order: Vec<&Envelope> = evens.chain(odds).collect();
        for env in &order {
            assert_eq!(
                open_envelope(Some(&ring), &window, (*env).clone(), now),
                Ok(plain())
            );
        }
        for env in &order {
            assert!(matches!(
                open_envelope(Some(&ring), &window, (*env).clone(), now),
                Err(Refusal::Replay(Replay::Replayed(_)))
            ));
        }
    }

    #[test]
    fn keys_parse_from_base64_and_never_show() {
        let k = ClusterKey::generate().unwrap();
        let text = k.to_base64();
        assert_eq!(text.len(), 44);
        assert_eq!(ClusterKey::from_base64(&format!(" {text}\n")).unwrap(), k);
        assert_ne!(ClusterKey::generate().unwrap(), k);
        assert_eq!(
            ClusterKey::from_base64("notbase64!"),
            Err(KeyError::NotBase64)
        );
        assert_eq!(
            ClusterKey::from_base64("c2hvcnQ="),
            Err(KeyError::WrongLength(5))
        );
        let ring = Keyring::from_base64(&[text.as_str(), "bad"], "l").unwrap_err();
        assert_eq!(ring.0, 2);
        let ring = Keyring::from_base64(&[text.as_str()], "l").unwrap();
        for shown in [
            format!("{k:?}"),
            format!("{ring:?}"),
            KeyError::NotBase64.to_string(),
        ] {
            assert!(!shown.contains(&text), "{shown}");
        }
        assert_eq!(format!("{k:?}"), "ClusterKey(<redacted>)");
        assert_eq!(
            format!("{ring:?}"),
            "Keyring { keys: <1 redacted>, label: \"l\" }"
        );
    }
}
