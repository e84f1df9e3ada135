//! rumour-sim: a seeded discrete-event simulator for rumour clusters.
//!
//! It runs the very state machine that ships ([`rumour_core::Node`]) over a
//! simulated network ([`net`]) with scheduled faults ([`scenario`]), and
//! measures convergence, failure detection, false positives and traffic
//! ([`metrics`]). Virtual time is in microseconds; one ChaCha RNG per run
//! comes from the seed and one per node from it, so the same scenario gives
//! the same run, bit for bit ([`Report::trace_digest`]).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod error;
pub mod experiment;
mod host;
pub mod metrics;
pub mod net;
pub mod plot;
mod queue;
pub mod report_dir;
pub mod scenario;
mod trace;
pub mod updates;
mod world;

pub use error::SimError;
pub use metrics::Report;
pub use scenario::{Fault, Host, NodeSet, Scenario, Scheduling, Workload};
pub use world::{node_addr, node_identity, node_index, node_name, Sim, TreeShape};
