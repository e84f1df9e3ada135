//! What one run measures: the system, the cluster size, the loss, the seed
//! and the time windows. The parent process hands it to a child as JSON.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The gossip interval every system runs with; rounds are time divided by it.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(200);

/// The systems compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum System {
    Rumour,
    Chitchat,
    Foca,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Rumour => "rumour",
            System::Chitchat => "chitchat",
            System::Foca => "foca",
        }
    }

    /// The version benchmarked (the peers' as locked in Cargo.lock).
    pub fn version(self) -> &'static str {
        match self {
            System::Rumour => "worktree",
            System::Chitchat => crate::systems::chitchat::VERSION,
            System::Foca => crate::systems::foca::VERSION,
        }
    }
}

/// How long each phase may take or lasts.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Timings {
    /// Longest wait for every node to know all n.
    pub formation_timeout: Duration,
    /// Writes measured, one after the other.
    pub writes: u32,
    /// A write not held by every node after this never arrived.
    pub write_timeout: Duration,
    /// Quiet time after the last write, before the idle window.
    pub settle: Duration,
    /// The idle window: traffic and CPU are measured over it.
    pub idle: Duration,
    /// How often conditions are polled.
    pub poll: Duration,
}

impl Timings {
    pub fn full(writes: u32, idle: Duration) -> Timings {
        Timings {
            formation_timeout: Duration::from_secs(60),
            writes,
            write_timeout: Duration::from_secs(20),
            settle: Duration::from_secs(5),
            idle,
            poll: Duration::from_millis(10),
        }
    }

    /// A CI-sized run: a few writes, short windows.
    pub fn quick() -> Timings {
        Timings {
            formation_timeout: Duration::from_secs(5),
            writes: 3,
            write_timeout: Duration::from_secs(2),
            settle: Duration::from_millis(200),
            idle: Duration::from_secs(1),
            poll: Duration::from_millis(10),
        }
    }

    /// An upper bound on one run's duration, for the parent's watchdog.
    pub fn budget(&self) -> Duration {
        self.formation_timeout
            + self.write_timeout * self.writes
            + self.settle
            + self.idle
            + Duration::from_secs(90)
    }
}

/// One run: one system, one n, one loss rate, in its own process.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Spec {
    pub system: System,
    pub n: usize,
    pub loss: f64,
    pub seed: u64,
    pub timings: Timings,
    /// Print each phase's outcome to stderr as it ends.
    pub verbose: bool,
}
