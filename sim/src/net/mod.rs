//! The simulated network: what happens to each message between two nodes.
//!
//! This module owns the link model (latency, loss, duplication, reordering),
//! the fault state that cuts links (symmetric `partition`, one-way
//! `partition_oneway`, `heal`) and the `topology` that restricts which pairs
//! may talk at all. [`Network::transmit`] is the single place where a
//! message's fate is decided.
//!
//! It must never read a clock, spawn threads or touch a global RNG: every
//! random choice comes from the `ChaCha8Rng` the caller passes in, so a run is
//! a pure function of its seed. It must never iterate a hash container where
//! order matters, and never panic on user input (spec strings, node lists):
//! bad strings give a [`NetError`], out-of-range node ids are ignored or
//! treated as unreachable. It hands back delays, never absolute times, so it
//! stays independent of how the simulator keeps time.
//!
//! `transmit` runs for every message (around 10^7 per run), so it is O(1)
//! apart from a binary search over one node's neighbours or the one-way cuts,
//! and it never allocates.
//!
//! The parts: `latency` reads, prints and samples per-link delays;
//! `topology` turns a named shape into a graph of who may talk to whom;
//! `network` holds the link model, the cuts and the topology in force, and
//! decides each message's fate; `error` says why a spec was rejected.

mod error;
mod latency;
mod network;
mod topology;

pub use error::NetError;
pub use latency::Latency;
pub use network::{DropReason, Fate, LinkModel, Network};
pub use topology::Topology;

/// Durations in spec strings are read and written by the core's own
/// functions, so `--duration`, `latency` and `[config]` share one syntax.
pub use rumour_core::{duration_str, format_duration};
