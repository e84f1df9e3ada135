//! The trace digest's hash: every delivered message and every event goes
//! through it, so it takes a word at a time. It tells runs apart; it is no
//! defence against anyone, and nothing outside one run's report reads it.

use std::hash::Hasher;

/// A word-at-a-time multiplicative hash (the Fx construction).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TraceHash(u64);

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl TraceHash {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for TraceHash {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    fn of<T: Hash>(t: T) -> u64 {
        let mut h = TraceHash::default();
        t.hash(&mut h);
        h.finish()
    }

    #[test]
    fn equal_values_hash_equal_and_neighbours_differ() {
        assert_eq!(of(("node-1", 7u64)), of(("node-1", 7u64)));
        assert_ne!(of(("node-1", 7u64)), of(("node-1", 8u64)));
        assert_ne!(of(("ab", "c")), of(("a", "bc")));
        assert_ne!(of(&b"a"[..]), of(&b"a\0"[..]));
        assert_ne!(of((1u8, 2u8)), of((2u8, 1u8)));
    }
}
