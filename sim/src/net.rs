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

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use petgraph::graphmap::UnGraphMap;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a spec string or a link model was rejected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum NetError {
    /// A duration such as `"5ms"` could not be read.
    #[error("{reason}")]
    Duration {
        /// The text that was given.
        input: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A latency spec such as `"1ms..5ms"` could not be read or is inconsistent.
    #[error("bad latency {input:?}: {reason}")]
    Latency {
        /// The text that was given (or the latency, displayed).
        input: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A link-model probability is outside `[0, 1]` or not finite.
    #[error("link model field `{field}` must be a probability in [0, 1], got {value}")]
    Probability {
        /// The name of the offending field.
        field: &'static str,
        /// The value it had.
        value: f64,
    },
    /// A topology spec such as `"random:4"` could not be read or does not fit the cluster.
    #[error("bad topology {input:?}: {reason}")]
    Topology {
        /// The text that was given (or the topology, displayed).
        input: String,
        /// What was wrong with it.
        reason: String,
    },
}

// ---------------------------------------------------------------------------
// Durations as text
// ---------------------------------------------------------------------------

/// Durations in spec strings are read and written by the core's own
/// functions, so `--duration`, `latency` and `[config]` share one syntax.
pub use rumour_core::{duration_str, format_duration};

fn parse_duration(text: &str) -> Result<Duration, NetError> {
    rumour_core::parse_duration(text).map_err(|reason| NetError::Duration {
        input: text.to_string(),
        reason,
    })
}

// ---------------------------------------------------------------------------
// Latency
// ---------------------------------------------------------------------------

/// The standard normal quantile at 0.99: turns a p99/median ratio into a
/// log-normal sigma.
const Z_99: f64 = 2.326_347_874_040_841;

/// How far past p99 a long-tail sample may go; a single absurd sample would
/// otherwise hold a message for hours of simulated time and stall a run.
const TAIL_CAP: f64 = 100.0;

/// Per-link latency distribution.
///
/// Text form (used by `FromStr`, `Display` and serde): `"5ms"` is fixed,
/// `"1ms..10ms"` is uniform, `"tail:2ms..50ms"` is a long tail given as
/// median..p99.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Latency {
    /// Every message takes exactly this long.
    Fixed(Duration),
    /// Uniform between `min` and `max`, both inclusive.
    Uniform {
        /// Shortest delay.
        min: Duration,
        /// Longest delay.
        max: Duration,
    },
    /// Long-tailed: log-normal with the given median and 99th percentile (p99 >= median).
    LongTail {
        /// Half the messages are faster than this.
        median: Duration,
        /// 99% of the messages are faster than this.
        p99: Duration,
    },
}

impl Latency {
    /// Checks the parameters: `min <= max`, and `0 < median <= p99`.
    pub fn validate(&self) -> Result<(), NetError> {
        let reason = match *self {
            Latency::Fixed(_) => None,
            Latency::Uniform { min, max } if min > max => Some("min is greater than max"),
            Latency::Uniform { .. } => None,
            Latency::LongTail { median, .. } if median.is_zero() => {
                Some("median must be above zero")
            }
            Latency::LongTail { median, p99 } if p99 < median => {
                Some("p99 is less than the median")
            }
            Latency::LongTail { .. } => None,
        };
        match reason {
            None => Ok(()),
            Some(reason) => Err(NetError::Latency {
                input: self.to_string(),
                reason: reason.to_string(),
            }),
        }
    }

    /// Draws one delay.
    ///
    /// Always consumes exactly two `f64` draws from `rng`, whatever the
    /// variant, so changing the latency shape does not shift every later
    /// random choice of a run. Never panics, even on parameters that fail
    /// [`Latency::validate`]; long-tail samples are capped at 100 × p99.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> Duration {
        let a = rng.random::<f64>();
        let b = rng.random::<f64>();
        self.sample_from(a, b)
    }

    /// Turns two uniform numbers in `[0, 1)` into a delay.
    fn sample_from(&self, a: f64, b: f64) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } => {
                let (lo, hi) = (nanos_u64(min.min(max)), nanos_u64(min.max(max)));
                let span = hi - lo;
                // Scaling one f64 instead of rejection sampling keeps the
                // number of draws fixed; the bias is below 2^-53 per value.
                let offset = ((a * (span as f64 + 1.0)) as u64).min(span);
                Duration::from_nanos(lo + offset)
            }
            Latency::LongTail { median, p99 } => {
                if median.is_zero() {
                    return Duration::ZERO;
                }
                let m = median.as_nanos() as f64;
                let p = p99.as_nanos() as f64;
                let sigma = (p / m).ln() / Z_99;
                // Box–Muller; 1 - a lies in (0, 1] so ln never sees zero.
                let z = (-2.0 * (1.0 - a).ln()).sqrt() * (std::f64::consts::TAU * b).cos();
                let x = m * (sigma * z).exp();
                let cap = m.max(p) * TAIL_CAP;
                // `as u64` saturates and maps NaN to zero, so this cannot panic.
                Duration::from_nanos(x.clamp(0.0, cap) as u64)
            }
        }
    }
}

fn nanos_u64(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl FromStr for Latency {
    type Err = NetError;

    fn from_str(text: &str) -> Result<Latency, NetError> {
        let err = |reason: String| NetError::Latency {
            input: text.to_string(),
            reason,
        };
        let dur = |s: &str| parse_duration(s).map_err(|e| err(e.to_string()));
        let t = text.trim();
        let latency = if let Some(rest) = t.strip_prefix("tail:") {
            let (median, p99) = rest
                .split_once("..")
                .ok_or_else(|| err("expected tail:MEDIAN..P99, e.g. tail:2ms..50ms".into()))?;
            Latency::LongTail {
                median: dur(median)?,
                p99: dur(p99)?,
            }
        } else if let Some((min, max)) = t.split_once("..") {
            Latency::Uniform {
                min: dur(min)?,
                max: dur(max)?,
            }
        } else {
            Latency::Fixed(dur(t)?)
        };
        latency.validate().map_err(|e| match e {
            NetError::Latency { reason, .. } => err(reason),
            other => other,
        })?;
        Ok(latency)
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Latency::Fixed(d) => f.write_str(&format_duration(d)),
            Latency::Uniform { min, max } => {
                write!(f, "{}..{}", format_duration(min), format_duration(max))
            }
            Latency::LongTail { median, p99 } => {
                write!(
                    f,
                    "tail:{}..{}",
                    format_duration(median),
                    format_duration(p99)
                )
            }
        }
    }
}

impl Serialize for Latency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Latency, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// Link model
// ---------------------------------------------------------------------------

/// How every link behaves, apart from partitions and topology.
///
/// The default is a quiet LAN: latency uniform in 200us..1ms, no loss, no
/// duplication, no reordering, and a 5ms reorder window that only matters
/// once `reorder` is raised. In a scenario file every field is optional and
/// durations are text: `latency = "1ms..5ms"`, `reorder_window = "10ms"`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkModel {
    /// Delay of each delivered copy.
    pub latency: Latency,
    /// Probability a message is dropped, in `[0, 1]`.
    pub loss: f64,
    /// Probability a delivered message arrives twice; the second copy has its own latency sample.
    pub duplicate: f64,
    /// Probability a message is held back an extra uniform delay in
    /// `0..reorder_window`, so later messages overtake it.
    pub reorder: f64,
    /// Upper bound (exclusive) of the extra hold-back for reordered messages.
    #[serde(with = "duration_str")]
    pub reorder_window: Duration,
}

impl Default for LinkModel {
    fn default() -> LinkModel {
        LinkModel {
            latency: Latency::Uniform {
                min: Duration::from_micros(200),
                max: Duration::from_millis(1),
            },
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_window: Duration::from_millis(5),
        }
    }
}

impl LinkModel {
    /// Checks that every probability is finite and in `[0, 1]` and that the
    /// latency parameters are consistent; the error names the field.
    pub fn validate(&self) -> Result<(), NetError> {
        for (field, value) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(NetError::Probability { field, value });
            }
        }
        self.latency.validate()
    }
}

// ---------------------------------------------------------------------------
// Network
// ---------------------------------------------------------------------------

/// What happened to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// The message never arrives.
    Dropped(DropReason),
    /// The message arrives after `first`; if `duplicate` is set a second copy
    /// arrives after that delay too (measured from the send, like `first`).
    Delivered {
        /// Delay of the first (or only) copy.
        first: Duration,
        /// Delay of the extra copy, if the link duplicated the message.
        duplicate: Option<Duration>,
    },
}

/// Why a message was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Random loss on the link.
    Loss,
    /// A `partition` or `partition_oneway` cut separates the two nodes.
    Partition,
    /// The topology has no edge between the two nodes (or a node id is outside the network).
    Topology,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::Loss => "loss",
            DropReason::Partition => "partition",
            DropReason::Topology => "topology",
        })
    }
}

/// Neighbour lists packed into two vectors (compressed sparse rows), so a
/// 10,000-node sparse graph costs two allocations and a lookup is a binary
/// search within one node's slice.
#[derive(Clone, Debug)]
struct Adjacency {
    /// `neighbours[start[i]..start[i + 1]]` are node i's neighbours, sorted.
    start: Vec<usize>,
    neighbours: Vec<u32>,
}

impl Adjacency {
    fn new(nodes: usize, graph: &UnGraphMap<u32, ()>) -> Adjacency {
        // Edges touching ids outside the network are dropped here so the hot
        // path never has to think about them.
        let inside = |a: u32, b: u32| a != b && (a as usize) < nodes && (b as usize) < nodes;
        let mut degree = vec![0usize; nodes + 1];
        for (a, b, ()) in graph.all_edges() {
            if inside(a, b) {
                degree[a as usize] += 1;
                degree[b as usize] += 1;
            }
        }
        let mut start = Vec::with_capacity(nodes + 1);
        let mut total = 0;
        for d in &degree[..nodes] {
            start.push(total);
            total += d;
        }
        start.push(total);
        let mut fill = start.clone();
        let mut neighbours = vec![0u32; total];
        for (a, b, ()) in graph.all_edges() {
            if inside(a, b) {
                neighbours[fill[a as usize]] = b;
                fill[a as usize] += 1;
                neighbours[fill[b as usize]] = a;
                fill[b as usize] += 1;
            }
        }
        for i in 0..nodes {
            neighbours[start[i]..start[i + 1]].sort_unstable();
        }
        Adjacency { start, neighbours }
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        let Ok(b) = u32::try_from(b) else {
            return false;
        };
        self.neighbours[self.start[a]..self.start[a + 1]]
            .binary_search(&b)
            .is_ok()
    }
}

/// The simulated network between `nodes` nodes numbered `0..nodes`.
///
/// Holds the [`LinkModel`], the partition state and the optional topology.
/// A message from a node to itself always passes partitions and topology
/// (loss and latency still apply).
#[derive(Clone, Debug)]
pub struct Network {
    nodes: usize,
    model: LinkModel,
    /// Symmetric partition group of each node; nodes in different groups cannot talk.
    group: Vec<u32>,
    /// Whether `group` actually separates anyone, so the common unpartitioned
    /// case skips the lookup.
    split: bool,
    /// One-way cut class of each node: classes are refined on every
    /// `partition_oneway` so each cut's sender and receiver sets are unions of
    /// classes, which lets a cut be a single (class, class) pair.
    class: Vec<u32>,
    /// Sorted, deduplicated (sender class, receiver class) pairs that are cut.
    cuts: Vec<(u32, u32)>,
    topology: Option<Adjacency>,
}

impl Network {
    /// A fully connected, unpartitioned network of `nodes` nodes.
    ///
    /// The model is used as given; check user-supplied models with
    /// [`LinkModel::validate`] first (an out-of-range probability behaves as
    /// if clamped to `[0, 1]`, a NaN one as 0).
    pub fn new(nodes: usize, model: LinkModel) -> Network {
        Network {
            nodes,
            model,
            group: vec![0; nodes],
            split: false,
            class: vec![0; nodes],
            cuts: Vec::new(),
            topology: None,
        }
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The current link model.
    pub fn model(&self) -> &LinkModel {
        &self.model
    }

    /// Replaces the link model; partitions and topology are unaffected.
    pub fn set_model(&mut self, model: LinkModel) {
        self.model = model;
    }

    /// Decide, in this one place, what happens to one message from `from` to `to`.
    ///
    /// Checks run in this order: topology, partition (symmetric, then
    /// one-way), loss; a message that survives gets a latency, may be held
    /// back for reordering, and may be duplicated. The reorder hold-back
    /// applies to the first copy only; the duplicate's delay is an
    /// independent latency sample.
    ///
    /// Every call consumes exactly eight `f64` draws from `rng`, whichever
    /// branch is taken, so adding a partition or changing loss alters only
    /// the fates it touches and not the random stream seen by everything
    /// after it. Node ids outside the network are dropped as
    /// [`DropReason::Topology`].
    pub fn transmit(&mut self, from: usize, to: usize, rng: &mut ChaCha8Rng) -> Fate {
        // Drawn up front, in a fixed order, so consumption never depends on the outcome.
        let draws: [f64; 8] = std::array::from_fn(|_| rng.random::<f64>());
        let [loss, dup, reorder, hold, lat_a, lat_b, dup_a, dup_b] = draws;

        if let Some(reason) = self.blocked(from, to) {
            return Fate::Dropped(reason);
        }
        let m = &self.model;
        if loss < m.loss {
            return Fate::Dropped(DropReason::Loss);
        }
        let mut first = m.latency.sample_from(lat_a, lat_b);
        if reorder < m.reorder {
            let window = m.reorder_window.as_nanos() as f64;
            first += Duration::from_nanos((hold * window) as u64);
        }
        let duplicate = (dup < m.duplicate).then(|| m.latency.sample_from(dup_a, dup_b));
        Fate::Delivered { first, duplicate }
    }

    /// Why a message from `from` to `to` cannot pass right now, ignoring loss.
    fn blocked(&self, from: usize, to: usize) -> Option<DropReason> {
        if from >= self.nodes || to >= self.nodes {
            return Some(DropReason::Topology);
        }
        if from == to {
            return None;
        }
        if let Some(adj) = &self.topology {
            if !adj.connected(from, to) {
                return Some(DropReason::Topology);
            }
        }
        if self.split && self.group[from] != self.group[to] {
            return Some(DropReason::Partition);
        }
        if !self.cuts.is_empty()
            && self
                .cuts
                .binary_search(&(self.class[from], self.class[to]))
                .is_ok()
        {
            return Some(DropReason::Partition);
        }
        None
    }

    /// Split nodes into groups; nodes in different groups cannot exchange
    /// messages in either direction. Nodes listed in no group form one
    /// further implicit group together. Replaces any earlier partition state
    /// (one-way cuts included).
    ///
    /// Ids outside the network are ignored; a node listed in several groups
    /// belongs to the last one.
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        self.heal();
        for (i, members) in groups.iter().enumerate() {
            // Group 0 is the implicit group of unlisted nodes.
            let id = u32::try_from(i + 1).unwrap_or(u32::MAX);
            for &node in members {
                if let Some(g) = self.group.get_mut(node) {
                    *g = id;
                }
            }
        }
        self.split = self.group.iter().any(|&g| g != self.group[0]);
    }

    /// Cut only the direction from every node of `from` to every node of `to`
    /// (the reverse direction still flows). Adds to existing cuts.
    ///
    /// Ids outside the network are ignored.
    pub fn partition_oneway(&mut self, from: &[usize], to: &[usize]) {
        const SENDER: u8 = 1;
        const RECEIVER: u8 = 2;
        let mut mark = vec![0u8; self.nodes];
        for &n in from {
            if let Some(m) = mark.get_mut(n) {
                *m |= SENDER;
            }
        }
        for &n in to {
            if let Some(m) = mark.get_mut(n) {
                *m |= RECEIVER;
            }
        }
        let any = |bit: u8| mark.iter().any(|m| m & bit != 0);
        if !any(SENDER) || !any(RECEIVER) {
            return;
        }

        // Refine classes by (old class, role in this cut). Visiting nodes in
        // index order numbers the new classes deterministically.
        let mut ids: BTreeMap<(u32, u8), u32> = BTreeMap::new();
        let mut origin: Vec<(u32, u8)> = Vec::new();
        for (class, &m) in self.class.iter_mut().zip(&mark) {
            let key = (*class, m);
            let next = u32::try_from(origin.len()).unwrap_or(u32::MAX);
            *class = *ids.entry(key).or_insert_with(|| {
                origin.push(key);
                next
            });
        }

        let old_classes = origin
            .iter()
            .map(|&(c, _)| c as usize + 1)
            .max()
            .unwrap_or(0);
        let mut children: Vec<Vec<u32>> = vec![Vec::new(); old_classes];
        for (new, &(old, _)) in origin.iter().enumerate() {
            children[old as usize].push(new as u32);
        }
        let mut cuts = Vec::new();
        for &(a, b) in &self.cuts {
            for &a2 in children.get(a as usize).map_or(&[][..], Vec::as_slice) {
                for &b2 in children.get(b as usize).map_or(&[][..], Vec::as_slice) {
                    cuts.push((a2, b2));
                }
            }
        }
        let with = |bit: u8| {
            origin
                .iter()
                .enumerate()
                .filter(move |(_, &(_, m))| m & bit != 0)
                .map(|(c, _)| c as u32)
        };
        for s in with(SENDER) {
            for r in with(RECEIVER) {
                cuts.push((s, r));
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        self.cuts = cuts;
    }

    /// Remove every partition and one-way cut (the topology stays).
    pub fn heal(&mut self) {
        self.group.fill(0);
        self.split = false;
        self.class.fill(0);
        self.cuts.clear();
    }

    /// Restrict which pairs may talk: only edges of the graph carry messages
    /// (both directions). Graph nodes are node ids; ids outside the network
    /// and self-loops are ignored, and a node absent from the graph can talk
    /// to no one but itself.
    pub fn set_topology(&mut self, graph: UnGraphMap<u32, ()>) {
        self.topology = Some(Adjacency::new(self.nodes, &graph));
    }

    /// Lift the topology restriction: every pair may talk again (partitions stay).
    pub fn clear_topology(&mut self) {
        self.topology = None;
    }

    /// Whether a message from `from` to `to` could pass partitions and topology now (ignores loss).
    pub fn can_reach(&self, from: usize, to: usize) -> bool {
        self.blocked(from, to).is_none()
    }

    /// Whether any partition or one-way cut is in force.
    pub fn is_partitioned(&self) -> bool {
        self.split || !self.cuts.is_empty()
    }
}

// ---------------------------------------------------------------------------
// Topology builder
// ---------------------------------------------------------------------------

/// A named shape for the topology, built into a graph by [`Topology::build`].
///
/// Text form: `"full"`, `"ring"`, `"star"` (hub 0), `"star:3"`,
/// `"random:4"`, `"grid:10"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topology {
    /// Everyone talks to everyone (no restriction).
    Full,
    /// Node i talks to i - 1 and i + 1, wrapping around.
    Ring,
    /// Every node talks only to the hub.
    Star {
        /// The node at the centre.
        hub: u32,
    },
    /// A ring plus random chords, so each node has about `degree` neighbours.
    RandomRegular {
        /// Target number of neighbours per node (at least 2).
        degree: u32,
    },
    /// Nodes laid out row by row, `width` per row, each talking to its
    /// left, right, up and down neighbours.
    Grid {
        /// Nodes per row (at least 1).
        width: u32,
    },
}

impl Topology {
    /// Checks that the topology makes sense for a cluster of `nodes` nodes
    /// (the star's hub must be one of them).
    pub fn validate(&self, nodes: usize) -> Result<(), NetError> {
        let reason = match *self {
            Topology::Star { hub } if hub as usize >= nodes && nodes > 0 => {
                format!("hub {hub} is not one of the {nodes} nodes")
            }
            Topology::RandomRegular { degree } if degree < 2 => {
                "degree must be at least 2 to stay connected".to_string()
            }
            Topology::Grid { width: 0 } => "width must be at least 1".to_string(),
            _ => return Ok(()),
        };
        Err(NetError::Topology {
            input: self.to_string(),
            reason,
        })
    }

    /// Builds the graph over nodes `0..nodes`, or `None` for [`Topology::Full`]
    /// (no restriction).
    ///
    /// Every node appears in the graph, and every graph built is connected:
    /// - `Ring`: a cycle (one edge for two nodes).
    /// - `Star`: edges hub–i; a hub outside the cluster falls back to node 0
    ///   (use [`Topology::validate`] to reject it instead).
    /// - `RandomRegular`: a ring, plus chords paired at random (configuration
    ///   model, a few rounds, skipping self-loops and repeats) until nodes
    ///   reach `degree` neighbours. Degrees are approximate: a few nodes may
    ///   end one or two short. Degrees below 2 give the plain ring; degrees at
    ///   or above `nodes - 1` give the complete graph. Only this variant uses `rng`.
    /// - `Grid`: row-major layout; the last row may be partial. Width 0 is treated as 1.
    pub fn build(&self, nodes: usize, rng: &mut ChaCha8Rng) -> Option<UnGraphMap<u32, ()>> {
        let n = u32::try_from(nodes).unwrap_or(u32::MAX);
        let mut g = UnGraphMap::with_capacity(nodes, nodes.saturating_mul(2));
        for i in 0..n {
            g.add_node(i);
        }
        match *self {
            Topology::Full => return None,
            Topology::Ring => add_ring(&mut g, n),
            Topology::Star { hub } => {
                let hub = if hub < n { hub } else { 0 };
                for i in (0..n).filter(|&i| i != hub) {
                    g.add_edge(hub, i, ());
                }
            }
            Topology::RandomRegular { degree } => {
                add_ring(&mut g, n);
                add_random_chords(&mut g, n, degree, rng);
            }
            Topology::Grid { width } => {
                let w = width.max(1);
                for i in 0..n {
                    if i % w + 1 < w && i + 1 < n {
                        g.add_edge(i, i + 1, ());
                    }
                    if let Some(below) = i.checked_add(w).filter(|&b| b < n) {
                        g.add_edge(i, below, ());
                    }
                }
            }
        }
        Some(g)
    }
}

fn add_ring(g: &mut UnGraphMap<u32, ()>, n: u32) {
    if n < 2 {
        return;
    }
    for i in 0..n - 1 {
        g.add_edge(i, i + 1, ());
    }
    if n > 2 {
        g.add_edge(n - 1, 0, ());
    }
}

/// Tops every node up towards `degree` neighbours by pairing shuffled
/// "stubs" (one per missing neighbour). Pairs that would be self-loops or
/// repeats are retried in later rounds; what remains after that is left
/// short, which is why the result is only approximately regular.
fn add_random_chords(g: &mut UnGraphMap<u32, ()>, n: u32, degree: u32, rng: &mut ChaCha8Rng) {
    const ROUNDS: usize = 8;
    let target = degree.min(n.saturating_sub(1)) as usize;
    let mut stubs: Vec<u32> = Vec::new();
    for i in 0..n {
        let have = g.neighbors(i).count();
        stubs.extend(std::iter::repeat_n(i, target.saturating_sub(have)));
    }
    for _ in 0..ROUNDS {
        if stubs.len() < 2 {
            break;
        }
        // Fisher–Yates by hand so the order depends only on rand's
        // random_range, not on a library shuffle that might change.
        for i in (1..stubs.len()).rev() {
            let j = rng.random_range(0..=i);
            stubs.swap(i, j);
        }
        let mut left = Vec::new();
        for pair in stubs.chunks(2) {
            match *pair {
                [a, b] if a != b && !g.contains_edge(a, b) => {
                    g.add_edge(a, b, ());
                }
                _ => left.extend_from_slice(pair),
            }
        }
        if left.len() == stubs.len() {
            break;
        }
        stubs = left;
    }
}

impl FromStr for Topology {
    type Err = NetError;

    fn from_str(text: &str) -> Result<Topology, NetError> {
        let err = |reason: &str| NetError::Topology {
            input: text.to_string(),
            reason: reason.to_string(),
        };
        let t = text.trim();
        let (name, arg) = match t.split_once(':') {
            Some((name, arg)) => (name.trim(), Some(arg.trim())),
            None => (t, None),
        };
        let number = |what: &str| -> Result<u32, NetError> {
            arg.ok_or_else(|| err(&format!("{name} needs a {what}, e.g. {name}:4")))?
                .parse()
                .map_err(|_| err(&format!("{what} must be a non-negative integer")))
        };
        let topology = match (name, arg) {
            ("full", None) => Topology::Full,
            ("ring", None) => Topology::Ring,
            ("star", None) => Topology::Star { hub: 0 },
            ("star", Some(_)) => Topology::Star {
                hub: number("hub")?,
            },
            ("random", _) => Topology::RandomRegular {
                degree: number("degree")?,
            },
            ("grid", _) => Topology::Grid {
                width: number("width")?,
            },
            ("full" | "ring", Some(_)) => return Err(err("takes no argument")),
            _ => return Err(err(
                "unknown topology (expected full, ring, star[:HUB], random:DEGREE or grid:WIDTH)",
            )),
        };
        // Only the node-count-independent checks apply here.
        match topology.validate(usize::MAX) {
            Err(NetError::Topology { reason, .. }) => Err(err(&reason)),
            _ => Ok(topology),
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Topology::Full => f.write_str("full"),
            Topology::Ring => f.write_str("ring"),
            Topology::Star { hub } => write!(f, "star:{hub}"),
            Topology::RandomRegular { degree } => write!(f, "random:{degree}"),
            Topology::Grid { width } => write!(f, "grid:{width}"),
        }
    }
}

impl Serialize for Topology {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Topology {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Topology, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    fn model(latency: &str) -> LinkModel {
        LinkModel {
            latency: latency.parse().unwrap(),
            ..LinkModel::default()
        }
    }

    fn fates(net: &mut Network, count: usize, seed: u64) -> Vec<Fate> {
        let mut r = rng(seed);
        (0..count)
            .map(|i| net.transmit(i % 7, (i + 1) % 7, &mut r))
            .collect()
    }

    #[test]
    fn loss_zero_delivers_everything() {
        let mut net = Network::new(8, LinkModel::default());
        assert!(fates(&mut net, 5_000, 1).iter().all(|f| matches!(
            f,
            Fate::Delivered {
                duplicate: None,
                ..
            }
        )));
    }

    #[test]
    fn loss_rate_is_close_to_configured() {
        let mut net = Network::new(
            8,
            LinkModel {
                loss: 0.2,
                ..LinkModel::default()
            },
        );
        let dropped = fates(&mut net, 10_000, 2)
            .iter()
            .filter(|f| **f == Fate::Dropped(DropReason::Loss))
            .count();
        // Binomial sd is 40; 5 sd either side.
        assert!((1_800..=2_200).contains(&dropped), "dropped {dropped}");
    }

    #[test]
    fn fixed_latency_is_exact() {
        let mut net = Network::new(8, model("3ms"));
        for f in fates(&mut net, 1_000, 3) {
            assert_eq!(
                f,
                Fate::Delivered {
                    first: Duration::from_millis(3),
                    duplicate: None
                }
            );
        }
    }

    #[test]
    fn uniform_latency_stays_in_bounds_and_covers_them() {
        let lat: Latency = "1ms..2ms".parse().unwrap();
        let mut r = rng(4);
        let samples: Vec<Duration> = (0..10_000).map(|_| lat.sample(&mut r)).collect();
        let (lo, hi) = (Duration::from_millis(1), Duration::from_millis(2));
        assert!(samples.iter().all(|d| (lo..=hi).contains(d)));
        assert!(samples.iter().any(|d| *d < lo + Duration::from_micros(20)));
        assert!(samples.iter().any(|d| *d > hi - Duration::from_micros(20)));
    }

    #[test]
    fn long_tail_has_requested_median_and_p99() {
        let lat: Latency = "tail:2ms..50ms".parse().unwrap();
        let mut r = rng(5);
        let mut s: Vec<f64> = (0..40_000)
            .map(|_| lat.sample(&mut r).as_secs_f64() * 1e3)
            .collect();
        s.sort_by(f64::total_cmp);
        let median = s[s.len() / 2];
        let p99 = s[s.len() * 99 / 100];
        assert!((1.8..2.2).contains(&median), "median {median}ms");
        assert!((40.0..62.0).contains(&p99), "p99 {p99}ms");
        assert!(*s.last().unwrap() <= 5_000.0, "cap at 100 x p99");
    }

    #[test]
    fn duplication_rate_is_close_to_configured() {
        let mut net = Network::new(
            8,
            LinkModel {
                duplicate: 0.3,
                ..LinkModel::default()
            },
        );
        let dups = fates(&mut net, 10_000, 6)
            .iter()
            .filter(|f| {
                matches!(
                    f,
                    Fate::Delivered {
                        duplicate: Some(_),
                        ..
                    }
                )
            })
            .count();
        assert!((2_770..=3_230).contains(&dups), "dups {dups}");
    }

    #[test]
    fn reorder_holds_back_within_window() {
        let mut net = Network::new(
            8,
            LinkModel {
                latency: Latency::Fixed(Duration::from_millis(1)),
                reorder: 1.0,
                reorder_window: Duration::from_millis(4),
                ..LinkModel::default()
            },
        );
        let firsts: Vec<Duration> = fates(&mut net, 2_000, 7)
            .into_iter()
            .map(|f| match f {
                Fate::Delivered { first, .. } => first,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let (lo, hi) = (Duration::from_millis(1), Duration::from_millis(5));
        assert!(firsts.iter().all(|d| *d >= lo && *d < hi));
        assert!(firsts.iter().any(|d| *d > Duration::from_millis(4)));
    }

    #[test]
    fn partition_blocks_across_groups_only() {
        let mut net = Network::new(6, LinkModel::default());
        net.partition(&[vec![0, 1], vec![2, 3]]);
        assert!(net.is_partitioned());
        assert!(net.can_reach(0, 1) && net.can_reach(1, 0) && net.can_reach(2, 3));
        assert!(!net.can_reach(0, 2) && !net.can_reach(2, 0));
        // 4 and 5 are unlisted: their own implicit group.
        assert!(net.can_reach(4, 5));
        assert!(!net.can_reach(4, 0) && !net.can_reach(3, 5));
        assert!(net.can_reach(2, 2));
        assert_eq!(
            net.transmit(1, 3, &mut rng(8)),
            Fate::Dropped(DropReason::Partition)
        );
    }

    #[test]
    fn oneway_cut_blocks_one_direction_and_accumulates() {
        let mut net = Network::new(5, LinkModel::default());
        net.partition_oneway(&[0, 1], &[2]);
        assert!(net.is_partitioned());
        assert!(!net.can_reach(0, 2) && !net.can_reach(1, 2));
        assert!(net.can_reach(2, 0) && net.can_reach(2, 1) && net.can_reach(0, 1));
        net.partition_oneway(&[3], &[0]);
        assert!(!net.can_reach(3, 0) && net.can_reach(0, 3));
        assert!(
            !net.can_reach(0, 2) && !net.can_reach(1, 2),
            "earlier cut survives refinement"
        );
        assert!(net.can_reach(3, 2) && net.can_reach(4, 0) && net.can_reach(1, 0));
    }

    #[test]
    fn heal_restores_everything_but_topology() {
        let mut net = Network::new(4, LinkModel::default());
        net.set_topology(Topology::Ring.build(4, &mut rng(9)).unwrap());
        net.partition(&[vec![0]]);
        net.partition_oneway(&[1], &[2]);
        net.heal();
        assert!(!net.is_partitioned());
        assert!(net.can_reach(0, 1) && net.can_reach(1, 2) && net.can_reach(3, 0));
        assert!(!net.can_reach(0, 2), "topology stays after heal");
    }

    #[test]
    fn ring_topology_allows_neighbours_only() {
        let mut net = Network::new(10, LinkModel::default());
        net.set_topology(Topology::Ring.build(10, &mut rng(10)).unwrap());
        for a in 0..10 {
            for b in 0..10 {
                let neighbours = (a + 1) % 10 == b || (b + 1) % 10 == a || a == b;
                assert_eq!(net.can_reach(a, b), neighbours, "{a} -> {b}");
            }
        }
        assert_eq!(
            net.transmit(0, 5, &mut rng(1)),
            Fate::Dropped(DropReason::Topology)
        );
        assert_eq!(
            net.transmit(0, 10, &mut rng(1)),
            Fate::Dropped(DropReason::Topology)
        );
        net.clear_topology();
        assert!(net.can_reach(0, 5));
    }

    fn connected(g: &UnGraphMap<u32, ()>, n: u32) -> bool {
        let mut seen = vec![false; n as usize];
        let mut stack = vec![0u32];
        seen[0] = true;
        while let Some(v) = stack.pop() {
            for w in g.neighbors(v) {
                if !seen[w as usize] {
                    seen[w as usize] = true;
                    stack.push(w);
                }
            }
        }
        seen.iter().all(|s| *s)
    }

    #[test]
    fn built_topologies_are_connected_and_shaped() {
        let g = Topology::RandomRegular { degree: 6 }
            .build(1_000, &mut rng(11))
            .unwrap();
        assert!(connected(&g, 1_000));
        let degrees: Vec<usize> = (0..1_000).map(|i| g.neighbors(i).count()).collect();
        assert!(degrees.iter().all(|&d| (4..=6).contains(&d)));
        assert!(degrees.iter().filter(|&&d| d == 6).count() >= 990);

        let g = Topology::Grid { width: 4 }.build(10, &mut rng(0)).unwrap();
        assert!(connected(&g, 10));
        assert!(g.contains_edge(0, 4) && g.contains_edge(8, 9) && !g.contains_edge(3, 4));

        let g = Topology::Star { hub: 3 }.build(6, &mut rng(0)).unwrap();
        assert_eq!(g.edge_count(), 5);
        assert!(g.contains_edge(3, 0) && !g.contains_edge(0, 1));
        assert!(Topology::Full.build(6, &mut rng(0)).is_none());
        assert!(Topology::Star { hub: 6 }.validate(6).is_err());
    }

    #[test]
    fn same_seed_same_fates_other_seed_differs() {
        let m = LinkModel {
            loss: 0.1,
            duplicate: 0.1,
            reorder: 0.1,
            latency: "tail:1ms..20ms".parse().unwrap(),
            ..LinkModel::default()
        };
        let mut a = Network::new(7, m.clone());
        let mut b = Network::new(7, m);
        assert_eq!(fates(&mut a, 2_000, 12), fates(&mut b, 2_000, 12));
        assert_ne!(fates(&mut a, 2_000, 12), fates(&mut b, 2_000, 13));
    }

    #[test]
    fn rng_consumption_does_not_depend_on_fate() {
        let mut cut = Network::new(
            4,
            LinkModel {
                loss: 0.5,
                ..LinkModel::default()
            },
        );
        cut.partition(&[vec![0]]);
        let mut open = Network::new(4, model("1ms"));
        let (mut r1, mut r2) = (rng(14), rng(14));
        for i in 0..100 {
            cut.transmit(0, i % 4, &mut r1);
            open.transmit(1, 2, &mut r2);
        }
        assert_eq!(r1.random::<u64>(), r2.random::<u64>());
    }

    #[test]
    fn latency_text_round_trips() {
        for text in ["5ms", "250us", "1ms..10ms", "tail:2ms..50ms"] {
            let lat: Latency = text.parse().unwrap();
            assert_eq!(lat.to_string(), text);
            assert_eq!(lat.to_string().parse::<Latency>().unwrap(), lat);
        }
        for text in ["1.5ms", "1.5s", "0us..1250us"] {
            let lat: Latency = text.parse().unwrap();
            assert_eq!(lat.to_string().parse::<Latency>().unwrap(), lat, "{text}");
        }
        assert_eq!("1000ms".parse::<Latency>().unwrap().to_string(), "1s");
        assert_eq!("0.5ms".parse::<Latency>().unwrap().to_string(), "500us");
        assert_eq!(
            " 1 ms .. 2ms ".parse::<Latency>().unwrap(),
            Latency::Uniform {
                min: Duration::from_millis(1),
                max: Duration::from_millis(2)
            }
        );
        assert_eq!(parse_duration("0.1ms").unwrap(), Duration::from_micros(100));
    }

    #[test]
    fn latency_parse_errors_say_what_is_wrong() {
        let msg = |t: &str| t.parse::<Latency>().unwrap_err().to_string();
        assert!(msg("5").contains("missing unit"));
        assert!(msg("5min").contains("unknown unit"));
        assert!(msg("ms").contains("missing number"));
        assert!(msg("-1ms").contains("non-negative"));
        assert!(msg("1.2.3ms").contains("non-negative"));
        assert!(msg("5ms..1ms").contains("min is greater than max"));
        assert!(msg("tail:5ms").contains("tail:MEDIAN..P99"));
        assert!(msg("tail:5ms..1ms").contains("p99 is less than the median"));
        assert!(msg("tail:0ms..1ms").contains("median must be above zero"));
        assert!(msg("99999999999999999999999s").contains("too large"));
    }

    #[test]
    fn topology_text_round_trips_and_rejects_nonsense() {
        for text in ["full", "ring", "star:3", "random:4", "grid:10"] {
            let t: Topology = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
        assert_eq!(
            "star".parse::<Topology>().unwrap(),
            Topology::Star { hub: 0 }
        );
        for bad in [
            "mesh", "random", "random:x", "random:1", "grid:0", "ring:3", "star:-1",
        ] {
            assert!(bad.parse::<Topology>().is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn link_model_from_toml_and_validation() {
        #[derive(Deserialize, Serialize)]
        struct Scenario {
            link: LinkModel,
            topology: Topology,
        }
        let s: Scenario = toml::from_str(
            "topology = \"random:4\"\n[link]\nlatency = \"1ms..5ms\"\nloss = 0.1\nreorder_window = \"10ms\"\n",
        )
        .unwrap();
        assert_eq!(s.topology, Topology::RandomRegular { degree: 4 });
        assert_eq!(s.link.latency.to_string(), "1ms..5ms");
        assert_eq!(s.link.reorder_window, Duration::from_millis(10));
        assert_eq!(s.link.duplicate, 0.0);
        let back: Scenario = toml::from_str(&toml::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.link, s.link);
        assert!(
            toml::from_str::<Scenario>("topology = \"ring\"\n[link]\nlatency = \"5\"\n").is_err()
        );
        assert!(toml::from_str::<Scenario>("topology = \"ring\"\n[link]\nlos = 0.1\n").is_err());

        assert!(LinkModel::default().validate().is_ok());
        let err = LinkModel {
            duplicate: 1.5,
            ..LinkModel::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("`duplicate`"));
        let err = LinkModel {
            reorder: f64::NAN,
            ..LinkModel::default()
        }
        .validate()
        .unwrap_err();
        assert!(matches!(
            err,
            NetError::Probability {
                field: "reorder",
                ..
            }
        ));
    }
}
