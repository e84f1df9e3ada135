//! rumour: gossip membership, failure detection and replicated state.
//!
//! This facade re-exports the protocol core ([`core`]), the wire schema
//! ([`proto`]), the simulator ([`sim`]) and the network agent
//! ([`transport`]); the `rumour` binary is built on it.

#![forbid(unsafe_code)]

pub use rumour_core as core;
pub use rumour_proto as proto;
pub use rumour_sim as sim;
pub use rumour_transport as transport;
