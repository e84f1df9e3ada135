//! rumour: gossip membership, failure detection and replicated state.
//!
//! This facade re-exports the protocol core ([`core`]) and the simulator
//! ([`sim`]); the `rumour` binary is built on it.

pub use rumour_core as core;
pub use rumour_sim as sim;
