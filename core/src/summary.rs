//! The membership summary: an order-independent 64-bit hash of what a node
//! believes about every member, kept up to date incrementally so a periodic
//! push-pull can skip the full exchange when both sides already agree.

use crate::member::{Incarnation, MemberState};

/// FNV-1a, 64-bit: stable across platforms and versions, unlike std's hasher.
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    /// Feed bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl std::hash::Hasher for Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        Fnv64::write(self, bytes)
    }
    fn finish(&self) -> u64 {
        Fnv64::finish(self)
    }
}

/// FNV-1a started from a basis mixed with a secret key: the hasher of a
/// node's lookup tables keyed by names peers choose. A peer that does not
/// know the key cannot pick names that collide in one bucket. Lookups only:
/// such a table is never iterated, so the key changes no decision.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KeyedFnv(pub(crate) u64);

impl std::hash::BuildHasher for KeyedFnv {
    type Hasher = Fnv64;
    fn build_hasher(&self) -> Fnv64 {
        Fnv64(Fnv64::default().0 ^ self.0)
    }
}

/// One member's contribution to the summary.
pub(crate) fn member_hash(name: &str, incarnation: Incarnation, state: MemberState) -> u64 {
    let mut h = Fnv64::default();
    h.write(name.as_bytes());
    h.write(&[0xff, state as u8]);
    h.write(&incarnation.0.to_le_bytes());
    // A final avalanche so that XOR-combining nearby values stays well mixed.
    let mut x = h.finish();
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differs_by_each_part() {
        let a = member_hash("a", Incarnation(1), MemberState::Alive);
        assert_ne!(a, member_hash("b", Incarnation(1), MemberState::Alive));
        assert_ne!(a, member_hash("a", Incarnation(2), MemberState::Alive));
        assert_ne!(a, member_hash("a", Incarnation(1), MemberState::Suspect));
        assert_eq!(a, member_hash("a", Incarnation(1), MemberState::Alive));
    }
}
