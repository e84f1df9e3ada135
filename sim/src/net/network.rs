//! The network in force: the link model, the partition and one-way cut
//! state and the topology's adjacency, and [`Network::transmit`], the one
//! function that decides each message's fate.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use petgraph::graphmap::UnGraphMap;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{duration_str, Latency, NetError};

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
    /// Messages that go by stream (every message without
    /// `Config::datagram_size`, else those that do not ride datagrams or
    /// do not fit one) behave as on the agent's TCP links: never lost to
    /// `loss`, but each loss of the segment costs a retransmission timeout
    /// (200 ms, doubling); a new stream's lost SYN or SYN-ACK costs what
    /// the agent's link pays for a failed connect, [`CONNECT_TIMEOUT`] and
    /// then [`RECONNECT_BACKOFF`] (doubling, to at most
    /// [`RECONNECT_BACKOFF_MAX`]) before it dials again; and a stream
    /// delivers in order. Off by default: every message is lost as a
    /// datagram.
    pub tcp_streams: bool,
    /// Each node holds what it sends to an address it does not vouch for
    /// to the bytes it received from there, as an agent without a cluster
    /// key or peer TLS does (its reply budget): it vouches for the members
    /// it holds, in any state, and its seeds; a send that would take what
    /// went to an address past what came from it is dropped whole, and
    /// counted (`Report::replies_over_budget`). The agent's bound on its
    /// accounts (4,096, idle ones dropped after 60 s) is not modelled.
    /// Off by default.
    pub reply_budget: bool,
}

/// Linux's minimum retransmission timeout, where a stream's round trip is
/// far below it (loopback, a LAN).
const STREAM_RTO: Duration = Duration::from_millis(200);
/// How long the agent's link waits for a connection before it gives up on
/// the try (`TransportConfig::connect_timeout`). It is the initial
/// retransmission timeout of a SYN (RFC 6298), so a lost SYN or SYN-ACK
/// ends the try rather than being sent again.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The agent's link's first wait after a failed connect, doubling with
/// each failure (`TransportConfig::backoff_min`).
pub const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// The most the agent's link waits between connects (the top of
/// `TransportConfig::backoff_max`, which is a fifth of the push-pull
/// interval; four failed tries in a row, where the two differ, are rare).
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Time a new stream's handshake loses to `k` failed connects, where each
/// try fails with probability `p` (its SYN or SYN-ACK lost) and `u` is a
/// uniform draw: each failure costs [`CONNECT_TIMEOUT`] and the backoff
/// after it, [`RECONNECT_BACKOFF`] doubling to [`RECONNECT_BACKOFF_MAX`].
fn failed_connects(u: f64, p: f64) -> Duration {
    let k = losses(u, p);
    (0..k)
        .map(|i| CONNECT_TIMEOUT + (RECONNECT_BACKOFF * (1u32 << i)).min(RECONNECT_BACKOFF_MAX))
        .sum()
}

/// How many tries in a row are lost, each with probability `p`, for a
/// uniform draw `u`: `k` losses come with probability `p^k (1 - p)`, which
/// is `p^(k+1) <= u < p^k`, i.e. `k = floor(ln u / ln p)` when `u < p`.
/// At most [`MAX_RETRANSMISSIONS`].
fn losses(u: f64, p: f64) -> u32 {
    if p <= 0.0 || u >= p {
        0
    } else if p >= 1.0 {
        MAX_RETRANSMISSIONS
    } else {
        ((u.ln() / p.ln()).floor() as u32).clamp(1, MAX_RETRANSMISSIONS)
    }
}

/// Time a packet lost with probability `p` at each try spends on
/// retransmissions, each try's timeout double the last, from `rto`; `u` is
/// a uniform draw (see [`losses`]).
fn retransmissions(u: f64, p: f64, rto: Duration) -> Duration {
    rto * ((1u32 << losses(u, p)) - 1)
}

/// Retransmissions after which a stream message is delivered anyway (a
/// real stream would break and its sender reconnect; the model keeps it
/// simple).
const MAX_RETRANSMISSIONS: u32 = 8;

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
            tcp_streams: false,
            reply_budget: false,
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

    /// What happens to one message from `from` to `to` that goes by stream
    /// under [`LinkModel::tcp_streams`]: a partition or the topology drops
    /// it; loss only delays it (see there). `new_stream` adds the
    /// handshake. Consumes exactly four draws from `rng`.
    pub fn transmit_stream(
        &mut self,
        from: usize,
        to: usize,
        new_stream: bool,
        rng: &mut ChaCha8Rng,
    ) -> Fate {
        let draws: [f64; 4] = std::array::from_fn(|_| rng.random::<f64>());
        let [segment, handshake, lat_a, lat_b] = draws;
        if let Some(reason) = self.blocked(from, to) {
            return Fate::Dropped(reason);
        }
        let m = &self.model;
        let mut first =
            m.latency.sample_from(lat_a, lat_b) + retransmissions(segment, m.loss, STREAM_RTO);
        if new_stream {
            // A SYN or its SYN-ACK lost: either costs the handshake's timeout.
            let p = 1.0 - (1.0 - m.loss).powi(2);
            first += failed_connects(handshake, p);
        }
        Fate::Delivered {
            first,
            duplicate: None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Topology;
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
    fn a_stream_loses_nothing_and_pays_a_timeout_per_loss() {
        // At 20% loss a stream message always arrives: 80% at the link's
        // latency (1 ms here), 16% after one timeout (200 ms), 3.2% after
        // two (600 ms), and so on; a new stream's handshake adds what the
        // agent's link pays per failed connect: 1 s and a backoff of 100 ms,
        // then 1 s and 200 ms, and so on, where each try fails when its SYN
        // or SYN-ACK is lost (36%). A partition still drops it.
        let mut net = Network::new(
            8,
            LinkModel {
                loss: 0.2,
                tcp_streams: true,
                ..model("1ms")
            },
        );
        let mut r = rng(4);
        let delays = |net: &mut Network, r: &mut ChaCha8Rng, new: bool| -> Vec<Duration> {
            (0..10_000)
                .map(|i| match net.transmit_stream(i % 7, (i + 1) % 7, new, r) {
                    Fate::Delivered { first, duplicate } => {
                        assert_eq!(duplicate, None);
                        first
                    }
                    f => panic!("a stream lost a message: {f:?}"),
                })
                .collect()
        };
        let ms = |d: u64| Duration::from_millis(d);
        let old = delays(&mut net, &mut r, false);
        let count = |v: &[Duration], d: Duration| v.iter().filter(|x| **x == d).count();
        // Binomial sds: 40, 37, 18; 5 sd either side.
        assert!((7_800..=8_200).contains(&count(&old, ms(1))));
        assert!((1_415..=1_785).contains(&count(&old, ms(201))));
        assert!((230..=410).contains(&count(&old, ms(601))));
        assert!(old.iter().all(|d| *d <= ms(1) + ms(200) * 255));
        let new = delays(&mut net, &mut r, true);
        let shaken = new.iter().filter(|d| **d >= ms(1101)).count();
        // 1 - 0.8² = 36% (sd 48).
        assert!((3_360..=3_840).contains(&shaken), "{shaken}");
        // One failed connect and no lost segment: 0.36 × 0.64 × 0.8 =
        // 18.4% (sd 39); two: 0.36² × 0.64 × 0.8 = 6.6% (sd 25).
        assert!((1_650..=2_040).contains(&count(&new, ms(1_101))));
        assert!((540..=790).contains(&count(&new, ms(2_301))));
        net.partition(&[vec![0, 1, 2], vec![3, 4, 5, 6, 7]]);
        assert_eq!(
            net.transmit_stream(0, 3, false, &mut r),
            Fate::Dropped(DropReason::Partition)
        );
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
