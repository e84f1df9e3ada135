//! The three systems behind one small interface the scenario drives.

pub mod chitchat;
mod chitchat_transport;
pub mod foca;
mod foca_kv;
mod foca_timers;
pub mod rumour;

use std::sync::Arc;

use crate::link::Counters;
use crate::spec::Spec;

/// n nodes of one system on loopback UDP, all in this process. Node 0 is
/// the seed every other node joins through.
pub(crate) trait Cluster: Sized {
    /// Bind every node's socket and start it; every node but 0 joins node 0.
    /// Every datagram goes through a [`crate::link::Link`] sharing `counters`.
    async fn start(spec: &Spec, counters: Arc<Counters>) -> anyhow::Result<Self>;

    /// Members node `i` counts as live, itself included.
    async fn known(&self, i: usize) -> usize;

    /// Node `i` writes `key = value` in its own state.
    async fn write(&self, i: usize, key: &str, value: &str);

    /// Whether node `j` holds `key = value` as written by node `owner`.
    async fn holds(&self, j: usize, owner: usize, key: &str, value: &str) -> bool;

    /// Dead declarations so far (no node ever fails, so all are false).
    fn false_dead(&self) -> u64;

    /// Node `i`'s own counters, where the system keeps any (`--verbose`
    /// prints how the last node's moved during a slow write).
    async fn counters(&self, _i: usize) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Stop every node.
    async fn stop(self);
}
