//! The send path every driver goes through: the loss hook and the counters.
//!
//! A datagram handed to [`Link::admit`] is dropped with probability `loss`
//! (a seeded RNG per node), before it reaches the socket. What does reach
//! the socket is counted: datagrams, payload bytes (what the system handed
//! to the transport) and wire bytes (payload plus IPv4 and UDP headers).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// An IPv4 header repeated in each further fragment.
const IP_HEADER: usize = 20;
/// Ethernet MTU: the largest IP packet before fragmentation on a LAN.
const MTU: usize = 1500;

/// Bytes a datagram of `payload` bytes takes on an IPv4 network with a
/// 1500-byte MTU: the UDP and IP headers, plus one IP header for each
/// further fragment of a datagram that does not fit one packet. Loopback
/// itself has a 64 KiB MTU; the figure is what a LAN would carry.
pub fn wire_len(payload: usize) -> usize {
    let per_fragment = MTU - IP_HEADER; // fragment payloads are 8-byte aligned: 1480
    let ip_payload = payload + 8;
    let fragments = ip_payload.div_ceil(per_fragment).max(1);
    ip_payload + IP_HEADER * fragments
}

/// Totals over every node of one run.
#[derive(Debug, Default)]
pub struct Counters {
    datagrams: AtomicU64,
    payload: AtomicU64,
    wire: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
}

/// A reading of [`Counters`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub datagrams: u64,
    pub payload: u64,
    pub wire: u64,
    pub dropped: u64,
    pub errors: u64,
}

impl Counters {
    pub fn totals(&self) -> Totals {
        Totals {
            datagrams: self.datagrams.load(Relaxed),
            payload: self.payload.load(Relaxed),
            wire: self.wire.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }
}

/// One node's send path.
pub struct Link {
    rng: StdRng,
    loss: f64,
    counters: Arc<Counters>,
}

impl Link {
    /// The link of node `index` (its RNG is seeded from `seed` and `index`).
    pub fn new(seed: u64, index: u64, loss: f64, counters: Arc<Counters>) -> Link {
        let mix = seed ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Link {
            rng: StdRng::seed_from_u64(mix),
            loss,
            counters,
        }
    }

    /// Whether the next datagram goes out; `false` drops it (and counts it
    /// as dropped).
    pub fn admit(&mut self) -> bool {
        if self.loss > 0.0 && self.rng.random::<f64>() < self.loss {
            self.counters.dropped.fetch_add(1, Relaxed);
            return false;
        }
        true
    }

    /// A datagram of `payload` bytes was handed to the socket.
    pub fn sent(&self, payload: usize) {
        self.counters.datagrams.fetch_add(1, Relaxed);
        self.counters.payload.fetch_add(payload as u64, Relaxed);
        self.counters
            .wire
            .fetch_add(wire_len(payload) as u64, Relaxed);
    }

    /// The socket refused a datagram.
    pub fn failed(&self) {
        self.counters.errors.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_adds_headers_and_fragments() {
        assert_eq!(wire_len(100), 128);
        assert_eq!(wire_len(1472), 1500);
        // 1473 B of UDP payload: 1481 B of IP payload, two fragments.
        assert_eq!(wire_len(1473), 1473 + 8 + 40);
    }

    #[test]
    fn loss_is_seeded_and_near_its_rate() {
        let counters = Arc::new(Counters::default());
        let mut a = Link::new(7, 3, 0.2, counters.clone());
        let mut b = Link::new(7, 3, 0.2, counters);
        let run_a: Vec<bool> = (0..10_000).map(|_| a.admit()).collect();
        let run_b: Vec<bool> = (0..10_000).map(|_| b.admit()).collect();
        assert_eq!(run_a, run_b);
        let dropped = run_a.iter().filter(|x| !**x).count();
        assert!((1800..2200).contains(&dropped), "{dropped}");
    }
}
