//! Checkpoints: the owner's signed word on what its namespace holds, so that
//! a replica can tell a complete run of records from one with a record
//! withheld.
//!
//! Every record is signed, but a run of records is not: the range
//! `(from, to]` of a delta and the contents of a reset are the sender's
//! word. A member relaying an owner's records could skip one the replica
//! lacks, and the replica would believe itself complete up to `to` and
//! never ask again. A checkpoint closes that: the owner signs, for a
//! version of its namespace, the [`LiveDigest`] of its live entries at that
//! version. A replica at the same version computes its own digest (kept up
//! to date as it applies records) and compares: equal means it holds every
//! live entry the owner held; different means something was withheld (or
//! an older version of a key stands in for a newer one), and the replica
//! repairs by fetching the namespace afresh.
//!
//! What is covered is the set of *live* entries (key versions with a
//! value): a withheld put, a withheld overwrite (the older value stays) and
//! a withheld delete (the deleted value stays) all change it. Tombstones
//! and user events are not covered: tombstones leave no trace in what a
//! replica serves, and events are collected after a grace period, at
//! different times on different replicas, so no version pins them.

use std::fmt;

use sha2::{Digest as _, Sha512};

use crate::identity::Signature;

/// An order-independent hash of a set of versions: the sum, modulo 2^512,
/// of SHA-512 over each version (an additive multiset hash). Adding and
/// removing one version costs one SHA-512, whatever the namespace's size.
///
/// Why 512 bits: to make a replica's stale set collide with the owner's,
/// one would pick, for many keys, which of that key's genuine versions the
/// replica holds, so that the differences sum to zero: a k-list sum
/// problem. Wagner's algorithm solves it in about `k * 2^(n / (1 + lg k))`
/// work with lists of that size; at n = 256 and 2^16 keys that is lists
/// of 2^15 versions per key, 2^31 writes in all, within reach of a busy
/// owner. At n = 512 it is 2^30 versions per key and 2^46 writes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LiveDigest(pub [u64; 8]);

impl LiveDigest {
    fn element(version: u64) -> [u64; 8] {
        let mut h = Sha512::new();
        h.update(b"rumour/v1/live\0");
        h.update(version.to_be_bytes());
        let out = h.finalize();
        let mut limbs = [0u64; 8];
        for (limb, chunk) in limbs.iter_mut().zip(out.chunks_exact(8)) {
            *limb = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        }
        limbs
    }

    /// Count `version` in.
    pub fn add(&mut self, version: u64) {
        let e = LiveDigest::element(version);
        let mut carry = false;
        for (a, b) in self.0.iter_mut().zip(e) {
            let (s, c1) = a.overflowing_add(b);
            let (s, c2) = s.overflowing_add(carry as u64);
            *a = s;
            carry = c1 || c2;
        }
    }

    /// Count `version` out (it must have been counted in).
    pub fn remove(&mut self, version: u64) {
        let e = LiveDigest::element(version);
        let mut borrow = false;
        for (a, b) in self.0.iter_mut().zip(e) {
            let (s, b1) = a.overflowing_sub(b);
            let (s, b2) = s.overflowing_sub(borrow as u64);
            *a = s;
            borrow = b1 || b2;
        }
    }

    /// The digest as 64 bytes (little-endian limbs), as signed and sent.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// The digest from its 64 bytes.
    pub fn from_bytes(b: &[u8; 64]) -> LiveDigest {
        let mut limbs = [0u64; 8];
        for (limb, chunk) in limbs.iter_mut().zip(b.chunks_exact(8)) {
            *limb = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        }
        LiveDigest(limbs)
    }
}

impl fmt::Debug for LiveDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LiveDigest({:016x}..)", self.0[7])
    }
}

/// The owner's signature over the live digest of its namespace at the
/// version a delta reaches (its `to`), with the digest itself, so that a
/// receiver tells a forged checkpoint (the signature fails) from a
/// replica that differs (the signature holds, the digests differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The live digest at that version.
    pub digest: LiveDigest,
    /// The owner's signature (see `checkpoint_statement`).
    pub signature: Signature,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_of_the_set_not_of_the_order() {
        let mut a = LiveDigest::default();
        let mut b = LiveDigest::default();
        for v in [1, 5, 9, 1000] {
            a.add(v);
        }
        for v in [1000, 9, 7, 1, 5] {
            b.add(v);
        }
        assert_ne!(a, b);
        b.remove(7);
        assert_eq!(a, b);
        for v in [1, 5, 9, 1000] {
            a.remove(v);
        }
        assert_eq!(a, LiveDigest::default());
        assert_eq!(LiveDigest::from_bytes(&b.to_bytes()), b);
    }

    #[test]
    fn a_stale_version_in_place_of_a_newer_one_changes_the_digest() {
        // The owner holds k at version 7; a replica that missed the
        // overwrite still holds version 3.
        let mut owner = LiveDigest::default();
        let mut replica = LiveDigest::default();
        for v in [1, 2, 7] {
            owner.add(v);
        }
        for v in [1, 2, 3] {
            replica.add(v);
        }
        assert_ne!(owner, replica);
        // Carries propagate across limbs: adding and removing many values
        // returns to the start.
        let mut d = LiveDigest::default();
        for v in 0..2000 {
            d.add(v);
        }
        for v in (0..2000).rev() {
            d.remove(v);
        }
        assert_eq!(d, LiveDigest::default());
    }
}
