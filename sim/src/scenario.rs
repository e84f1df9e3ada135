//! Scenarios: a cluster, its network and a schedule of faults, read from
//! TOML (the built-in ones live in `sim/scenarios/`) or built in code.
//!
//! This module only describes runs; [`crate::Sim`] executes them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use rumour_core::Config;
use serde::{Deserialize, Deserializer, Serialize};

use crate::net::{duration_str, LinkModel, Topology};
use crate::SimError;

/// The scenarios shipped in `sim/scenarios/`, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("steady", include_str!("../scenarios/steady.toml")),
    ("crash", include_str!("../scenarios/crash.toml")),
    (
        "partition-heal",
        include_str!("../scenarios/partition-heal.toml"),
    ),
    ("lossy", include_str!("../scenarios/lossy.toml")),
    ("churn", include_str!("../scenarios/churn.toml")),
    ("leave", include_str!("../scenarios/leave.toml")),
];

/// A whole simulated run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, shown in reports.
    #[serde(default = "default_name")]
    pub name: String,
    /// What the scenario shows.
    #[serde(default)]
    pub description: String,
    /// Cluster size.
    #[serde(default = "default_nodes")]
    pub nodes: usize,
    /// The run's seed: every random choice of the run derives from it.
    #[serde(default)]
    pub seed: u64,
    /// Simulated time to run.
    #[serde(default = "default_duration", with = "duration_str")]
    pub duration: Duration,
    /// Node 0 starts at time zero; the others at uniformly random instants
    /// within this window, each joining through the seeds.
    #[serde(default = "default_start_window", with = "duration_str")]
    pub start_window: Duration,
    /// The others start no earlier than this, within `start_window`: the
    /// seed comes up first and is waited for, as a deployment (or
    /// `rumour bench`) may start it. Zero, the default, starts them from
    /// time zero.
    #[serde(default, with = "duration_str")]
    pub others_from: Duration,
    /// How many of the first nodes serve as seeds (at least 1).
    #[serde(default = "default_seeds")]
    pub seeds: usize,
    /// Start the cluster formed: every node starts at time zero knowing
    /// every other as alive, as after a completed join, instead of joining
    /// through the seeds. A cold start costs the simulator about n² work
    /// (every join is news to every node); experiments that measure what
    /// happens after formation (dissemination at n = 10,000) skip it. Nodes
    /// restarted later still join through the seeds.
    #[serde(default)]
    pub formed: bool,
    /// The protocol preset: `lan`, `wan` or `local`.
    #[serde(default = "default_preset")]
    pub preset: String,
    /// Protocol fields overriding the preset, with `Config`'s own names and
    /// units (for example `fanout = 4`, `gossip_interval = "100ms"`).
    #[serde(default)]
    pub config: toml::Table,
    /// Align every node's timers (synchronous rounds) instead of random phases.
    #[serde(default)]
    pub lockstep: bool,
    /// The synchronous model of the literature, exactly (implies
    /// `lockstep`): data that periodic gossip carries (a push, a pull's
    /// answer) takes effect at the end of the round it was sent in, so what
    /// a node pushes or answers in a round is what it held at the round's
    /// start. Plain `lockstep` delivers at network speed, so a pull can be
    /// answered with data that arrived earlier in the same round.
    #[serde(default)]
    pub strict: bool,
    /// The link model of every link.
    #[serde(default)]
    pub link: LinkModel,
    /// Which pairs of nodes may talk at all (default: everyone).
    #[serde(default)]
    pub topology: Option<Topology>,
    /// The machine the nodes share, when they share one (as real agents
    /// on one test host do): every delivery takes a core for a while. By
    /// default each node has a machine of its own, and handling a message
    /// takes no time.
    #[serde(default)]
    pub host: Option<Host>,
    /// Traffic figures cover the run from this time on; default: the second
    /// half of the run.
    #[serde(default, with = "opt_duration")]
    pub measure_from: Option<Duration>,
    /// The fault schedule.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Writes, events and metadata the nodes make.
    #[serde(default)]
    pub workload: Workload,
}

/// One machine that every node runs on, with `cores` cores. Real agents
/// side by side on one host behave so: when their work outruns the cores,
/// messages queue for the CPU, not the network.
///
/// A node takes what reaches it as an agent does: a message that finds it
/// idle wakes it, and once a core is free it takes everything that reached
/// it by then as one batch, holding the core for `per_message` each (and
/// `per_wakeup` if it had idled), then its signature checks; what it sends
/// leaves after the whole batch, merged per peer. What reaches it
/// meanwhile waits for its next batch. Timers cost nothing here. `rumour
/// bench --versus-sim` measures the costs on the machine it runs on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Cores the nodes share.
    pub cores: usize,
    /// CPU time to take one message, sending its answers included, its
    /// signature checks apart.
    #[serde(with = "duration_str")]
    pub per_message: Duration,
    /// CPU time of waking a node that had nothing to do for a millisecond
    /// or more, beside its message's: an agent's runtime goes to sleep
    /// when idle, and waking its threads costs more than a message taken
    /// while they are awake.
    #[serde(default, with = "duration_str")]
    pub per_wakeup: Duration,

    /// CPU time of one signature verified on its own: a message's checks
    /// hold the core after `per_message`, and what the node does in answer
    /// leaves after them. Each node counts the statements it meets for the
    /// first time, as an agent with its own memory of checked signatures
    /// verifies them (the simulator's nodes share one, so that each is
    /// verified once).
    #[serde(default, with = "duration_str")]
    pub per_signature: Duration,
    /// The same for a signature verified in a batch.
    #[serde(default, with = "duration_str")]
    pub per_batched_signature: Duration,
    /// CPU time of starting a node, as an agent's process spends from its
    /// launch until it joins: at its start the node waits for a free core
    /// and holds it this long, and only then begins (and joins). While
    /// many start at once, their starts take the cores from the nodes
    /// already running. Only the scenario's own starts pay it: a restart
    /// fault starts its node at once.
    #[serde(default, with = "duration_str")]
    pub per_start: Duration,
    /// How the cores are shared among the work ready for them.
    #[serde(default)]
    pub scheduling: Scheduling,
}

/// How a shared host's cores go round (`[host] scheduling`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduling {
    /// A core to one piece of work at a time (a node's batch, a start),
    /// until it is done, in the order they asked: what asks while every
    /// core is taken waits, and its node's inbox fills meanwhile.
    #[default]
    Fifo,
    /// Every piece ready runs at once, at an equal share of the cores (all
    /// of one while there are no more pieces than cores), as Linux shares
    /// a machine among runnable threads: a node woken by a message starts
    /// on it at once, only slower while the host is busy. The signature
    /// checks a batch met are charged after it, and what it sends leaves
    /// after their time at the share of that moment. A crashed node's
    /// work stops with it.
    Fair,
}

impl Host {
    /// Whether signature checks cost anything here: each node then keeps
    /// a record of the statements it met.
    pub fn counts_checks(&self) -> bool {
        self.per_signature > Duration::ZERO || self.per_batched_signature > Duration::ZERO
    }
}

/// What the nodes write while the scenario runs: a prefill of each node's
/// namespace at start, then random operations at given cluster-wide rates,
/// each at a uniformly random running node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    /// Entries each node writes into its namespace when it starts.
    pub keys_per_node: usize,
    /// Bytes of each written value.
    pub value_size: usize,
    /// Random puts (and deletes) per simulated second, across the cluster.
    pub put_rate: f64,
    /// Of those, the fraction that delete a key instead.
    pub delete_fraction: f64,
    /// User events per simulated second, across the cluster.
    pub event_rate: f64,
    /// Metadata publications per simulated second, across the cluster.
    pub metadata_rate: f64,
    /// Keys a random put picks from (`k0` .. `k{keys-1}`); at least
    /// `keys_per_node` when that is larger.
    pub keys: usize,
    /// When random operations start (default: at the end of the start
    /// window).
    #[serde(with = "opt_duration")]
    pub from: Option<Duration>,
    /// When they stop (default: the end of the run). Traffic after the
    /// stop, once two push-pull intervals have passed, is reported as idle.
    #[serde(with = "opt_duration")]
    pub until: Option<Duration>,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            keys_per_node: 0,
            value_size: 16,
            put_rate: 0.0,
            delete_fraction: 0.0,
            event_rate: 0.0,
            metadata_rate: 0.0,
            keys: 100,
            from: None,
            until: None,
        }
    }
}

impl Workload {
    /// Operations per simulated second, all kinds together.
    pub fn rate(&self) -> f64 {
        self.put_rate + self.event_rate + self.metadata_rate
    }

    fn validate(&self) -> Result<(), SimError> {
        let bad =
            |field: &str, why: &str| Err(SimError::Scenario(format!("`workload.{field}` {why}")));
        for (name, r) in [
            ("put_rate", self.put_rate),
            ("event_rate", self.event_rate),
            ("metadata_rate", self.metadata_rate),
        ] {
            if !(r.is_finite() && r >= 0.0) {
                return bad(name, "must be a non-negative number");
            }
        }
        if !(0.0..=1.0).contains(&self.delete_fraction) {
            return bad("delete_fraction", "must be between 0 and 1");
        }
        if self.keys == 0 {
            return bad("keys", "must be at least 1");
        }
        Ok(())
    }
}

fn default_name() -> String {
    "custom".into()
}
fn default_nodes() -> usize {
    100
}
fn default_duration() -> Duration {
    Duration::from_secs(60)
}
fn default_start_window() -> Duration {
    Duration::from_secs(1)
}
fn default_seeds() -> usize {
    1
}
fn default_preset() -> String {
    "lan".into()
}

mod opt_duration {
    use super::*;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => duration_str::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        duration_str::deserialize(d).map(Some)
    }
}

impl Default for Scenario {
    fn default() -> Self {
        toml::from_str("").expect("an empty scenario takes every default")
    }
}

impl Scenario {
    /// A built-in scenario by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, SimError> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::from_toml(text);
        }
        let text = std::fs::read_to_string(name_or_path).map_err(|e| {
            let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
            SimError::Scenario(format!(
                "{name_or_path:?} is neither a built-in scenario ({}) nor a readable file: {e}",
                names.join(", ")
            ))
        })?;
        Scenario::from_toml(&text)
    }

    /// Parse a scenario from TOML text.
    pub fn from_toml(text: &str) -> Result<Scenario, SimError> {
        let s: Scenario = toml::from_str(text).map_err(|e| SimError::Scenario(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// The protocol configuration: the preset, the overrides, and the
    /// lockstep setting.
    pub fn protocol_config(&self) -> Result<Config, SimError> {
        let preset = Config::preset(&self.preset)?;
        let mut table =
            toml::Table::try_from(&preset).map_err(|e| SimError::Scenario(e.to_string()))?;
        for (k, v) in &self.config {
            table.insert(k.clone(), v.clone());
        }
        let mut config: Config = table.try_into().map_err(|e: toml::de::Error| {
            SimError::Scenario(format!("in [config]: {}", e.message()))
        })?;
        if self.lockstep || self.strict {
            config.timer_phase = rumour_core::TimerPhase::Aligned;
        }
        config.validate()?;
        Ok(config)
    }

    /// Check what can be checked before running.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |field: &str, why: &str| Err(SimError::Scenario(format!("`{field}` {why}")));
        if self.nodes == 0 {
            return bad("nodes", "must be at least 1");
        }
        if self.nodes > 1 << 24 {
            return bad("nodes", "must be at most 16777216");
        }
        if self.seeds == 0 || self.seeds > self.nodes {
            return bad("seeds", "must be between 1 and nodes");
        }
        if self.duration.is_zero() {
            return bad("duration", "must be non-zero");
        }
        if !self.others_from.is_zero() && self.others_from >= self.start_window {
            return bad("others_from", "must be less than start_window");
        }
        self.link.validate()?;
        if let Some(h) = &self.host {
            if h.cores == 0 {
                return bad("host.cores", "must be at least 1");
            }
        }
        if let Some(t) = &self.topology {
            t.validate(self.nodes)?;
        }
        self.protocol_config()?;
        for f in &self.faults {
            f.validate(self.nodes)?;
        }
        self.workload.validate()?;
        let config = self.protocol_config()?;
        if self.workload.value_size > config.max_value_len {
            return bad(
                "workload.value_size",
                "must be at most the config's max_value_len",
            );
        }
        if self.workload.keys_per_node > config.max_keys_per_namespace {
            return bad(
                "workload.keys_per_node",
                "must be at most the config's max_keys_per_namespace",
            );
        }
        Ok(())
    }

    /// The instant from which traffic is measured.
    pub fn measure_from(&self) -> Duration {
        self.measure_from.unwrap_or(self.duration / 2)
    }
}

/// A set of nodes: `"7"`, `"0..50"` (end excluded), `"1,4,9..12"`, `"all"`,
/// `"random:3"` (three running nodes drawn with the run's RNG when the fault
/// fires), or a TOML integer or array of integers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeSet {
    /// Exactly these nodes.
    List(Vec<usize>),
    /// Every node.
    All,
    /// This many distinct running nodes at random.
    Random(usize),
}

impl NodeSet {
    /// The nodes, given the cluster size and which nodes are running.
    pub fn resolve(&self, running: &[bool], rng: &mut ChaCha8Rng) -> Vec<usize> {
        match self {
            NodeSet::List(v) => v.clone(),
            NodeSet::All => (0..running.len()).collect(),
            NodeSet::Random(k) => {
                let up: Vec<usize> = (0..running.len()).filter(|&i| running[i]).collect();
                let mut picked: Vec<usize> = up.choose_multiple(rng, *k).copied().collect();
                picked.sort_unstable();
                picked
            }
        }
    }

    fn validate(&self, nodes: usize) -> Result<(), SimError> {
        if let NodeSet::List(v) = self {
            if let Some(bad) = v.iter().find(|&&i| i >= nodes) {
                return Err(SimError::Scenario(format!(
                    "node {bad} does not exist (the cluster has {nodes})"
                )));
            }
        }
        Ok(())
    }
}

impl FromStr for NodeSet {
    type Err = SimError;
    fn from_str(s: &str) -> Result<NodeSet, SimError> {
        let s = s.trim();
        let err = |why: &str| SimError::Scenario(format!("bad node set {s:?}: {why}"));
        if s == "all" {
            return Ok(NodeSet::All);
        }
        if let Some(k) = s.strip_prefix("random:") {
            return k
                .parse()
                .map(NodeSet::Random)
                .map_err(|_| err("expected random:COUNT"));
        }
        let mut out = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            if let Some((a, b)) = part.split_once("..") {
                let a: usize = a.trim().parse().map_err(|_| err("bad range start"))?;
                let b: usize = b.trim().parse().map_err(|_| err("bad range end"))?;
                if a >= b {
                    return Err(err("empty range"));
                }
                out.extend(a..b);
            } else {
                out.push(
                    part.parse()
                        .map_err(|_| err("expected an index, a range a..b, all or random:K"))?,
                );
            }
        }
        Ok(NodeSet::List(out))
    }
}

impl fmt::Display for NodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeSet::All => f.write_str("all"),
            NodeSet::Random(k) => write!(f, "random:{k}"),
            NodeSet::List(v) => {
                let parts: Vec<String> = v.iter().map(|i| i.to_string()).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

impl<'de> Deserialize<'de> for NodeSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NodeSet, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(usize),
            Many(Vec<usize>),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::One(i) => Ok(NodeSet::List(vec![i])),
            Raw::Many(v) => Ok(NodeSet::List(v)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for NodeSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One scheduled fault, in the simulator's fault vocabulary.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// The nodes stop abruptly: no leave, no further messages.
    Crash {
        /// When.
        #[serde(with = "duration_str")]
        at: Duration,
        /// Which nodes.
        nodes: NodeSet,
    },
    /// Crashed nodes start again with a higher incarnation and rejoin.
    Restart {
        /// When.
        #[serde(with = "duration_str")]
        at: Duration,
        /// Which nodes.
        nodes: NodeSet,
    },
    /// The nodes leave gracefully.
    Leave {
        /// When.
        #[serde(with = "duration_str")]
        at: Duration,
        /// Which nodes.
        nodes: NodeSet,
    },
    /// Split the cluster: nodes in different named groups cannot talk.
    Partition {
        /// When.
        #[serde(with = "duration_str")]
        at: Duration,
        /// Named groups.
        groups: BTreeMap<String, NodeSet>,
    },
    /// Cut one direction only: `from` cannot reach `to`.
    PartitionOneway {
        /// When.
        #[serde(with = "duration_str")]
        at: Duration,
        /// Senders cut off.
        from: NodeSet,
        /// Receivers they cannot reach.
        to: NodeSet,
    },
    /// Remove every partition.
    Heal {
        /// When.
        #[serde(with = "duration_str")]
        at: Duration,
    },
    /// The nodes process every message and timer `delay` late (0 restores them).
    Slow {
        /// When.
        #[serde(with = "duration_str")]
        at: Duration,
        /// Which nodes.
        nodes: NodeSet,
        /// Extra processing delay.
        #[serde(with = "duration_str")]
        delay: Duration,
    },
    /// From `at` until `until`, every `every` one random running node
    /// crashes, and restarts `restart_after` later.
    Churn {
        /// Start.
        #[serde(with = "duration_str")]
        at: Duration,
        /// End (no crash after it).
        #[serde(with = "duration_str")]
        until: Duration,
        /// Time between crashes.
        #[serde(with = "duration_str")]
        every: Duration,
        /// Downtime of each crashed node.
        #[serde(with = "duration_str")]
        restart_after: Duration,
    },
}

impl Fault {
    /// When the fault fires.
    pub fn at(&self) -> Duration {
        match self {
            Fault::Crash { at, .. }
            | Fault::Restart { at, .. }
            | Fault::Leave { at, .. }
            | Fault::Partition { at, .. }
            | Fault::PartitionOneway { at, .. }
            | Fault::Heal { at }
            | Fault::Slow { at, .. }
            | Fault::Churn { at, .. } => *at,
        }
    }

    fn validate(&self, nodes: usize) -> Result<(), SimError> {
        match self {
            Fault::Crash { nodes: s, .. }
            | Fault::Restart { nodes: s, .. }
            | Fault::Leave { nodes: s, .. }
            | Fault::Slow { nodes: s, .. } => s.validate(nodes),
            Fault::Partition { groups, .. } => groups.values().try_for_each(|g| g.validate(nodes)),
            Fault::PartitionOneway { from, to, .. } => {
                from.validate(nodes)?;
                to.validate(nodes)
            }
            Fault::Heal { .. } => Ok(()),
            Fault::Churn { every, .. } if every.is_zero() => {
                Err(SimError::Scenario("churn `every` must be non-zero".into()))
            }
            Fault::Churn { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_validate() {
        for (name, _) in BUILTIN {
            let s = Scenario::load(name).unwrap();
            assert_eq!(&s.name, name);
        }
    }

    #[test]
    fn config_overrides_and_errors_name_the_field() {
        let s = Scenario::from_toml("[config]\nfanout = 5\ngossip_interval = \"100ms\"").unwrap();
        let c = s.protocol_config().unwrap();
        assert_eq!(c.fanout, 5);
        assert_eq!(c.gossip_interval, Duration::from_millis(100));
        let e = Scenario::from_toml("[config]\nfanout = 0").unwrap_err();
        assert!(e.to_string().contains("fanout"), "{e}");
        let e = Scenario::from_toml("[config]\nfanot = 3").unwrap_err();
        assert!(e.to_string().contains("fanot"), "{e}");
        let e = Scenario::from_toml("nodez = 3").unwrap_err();
        assert!(e.to_string().contains("nodez"), "{e}");
    }

    #[test]
    fn node_sets() {
        assert_eq!(
            "1,4..6".parse::<NodeSet>().unwrap(),
            NodeSet::List(vec![1, 4, 5])
        );
        assert_eq!("random:2".parse::<NodeSet>().unwrap(), NodeSet::Random(2));
        assert!("5..5".parse::<NodeSet>().is_err());
        assert!(Scenario::from_toml(
            "nodes = 3\n[[faults]]\nkind = \"crash\"\nat = \"1s\"\nnodes = 7"
        )
        .is_err());
    }
}
