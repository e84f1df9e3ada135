//! What one run measured: the line a child process prints as JSON.

use serde::{Deserialize, Serialize};

use crate::spec::{Spec, System};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub system: System,
    pub version: String,
    pub n: usize,
    pub loss: f64,
    pub seed: u64,
    /// Rounds from the first node's start until every node knew all n;
    /// `None` if some had not by the formation timeout.
    pub formed_rounds: Option<f64>,
    /// Nodes that did not know all n at the formation timeout.
    pub formed_short: usize,
    pub writes: u32,
    /// Writes some node still lacked after the write timeout.
    pub writes_lost: u32,
    /// Rounds until every node held a write, over the delivered writes.
    pub write_rounds_mean: Option<f64>,
    pub write_rounds_max: Option<f64>,
    /// Per node per second over the idle window.
    pub idle_msgs: f64,
    pub idle_payload_bytes: f64,
    pub idle_wire_bytes: f64,
    pub idle_secs: f64,
    /// CPU time over the idle window divided by its length.
    pub cpu_cores: Option<f64>,
    /// VmHWM of the run's process, at its end.
    pub peak_rss_kib: Option<u64>,
    /// Dead declarations during the whole run, by any node about any other.
    pub false_dead: u64,
    /// The machine's 1-minute load average at the end of the idle window
    /// (this run counts in it; on 2 cores, above ~2 means other jobs ran).
    pub load_1min: Option<f64>,
    /// Datagrams dropped by the loss hook during the whole run.
    pub dropped: u64,
    /// Datagrams the socket refused during the whole run.
    pub send_errors: u64,
}

impl RunResult {
    pub fn new(spec: &Spec) -> RunResult {
        RunResult {
            system: spec.system,
            version: spec.system.version().to_string(),
            n: spec.n,
            loss: spec.loss,
            seed: spec.seed,
            formed_rounds: None,
            formed_short: spec.n,
            writes: spec.timings.writes,
            writes_lost: 0,
            write_rounds_mean: None,
            write_rounds_max: None,
            idle_msgs: 0.0,
            idle_payload_bytes: 0.0,
            idle_wire_bytes: 0.0,
            idle_secs: 0.0,
            cpu_cores: None,
            peak_rss_kib: None,
            false_dead: 0,
            load_1min: None,
            dropped: 0,
            send_errors: 0,
        }
    }

    /// Record the rounds of the delivered writes.
    pub fn set_writes(&mut self, delivered: &[f64]) {
        if delivered.is_empty() {
            return;
        }
        self.write_rounds_mean = Some(delivered.iter().sum::<f64>() / delivered.len() as f64);
        self.write_rounds_max = Some(delivered.iter().copied().fold(0.0, f64::max));
    }
}
