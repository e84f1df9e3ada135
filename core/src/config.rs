//! Protocol configuration: every timing and size constant of the protocol,
//! as documented data with presets and validation.
//!
//! A [`Config`] is plain data. [`Config::validate`] checks the constraints
//! written on each field and names the first field that breaks one.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// How a node picks the peers it gossips to each gossip interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerSelection {
    /// Each peer drawn uniformly at random from the live members.
    #[default]
    Random,
    /// Walk a shuffled list of members, reshuffled after each full pass.
    RoundRobin,
    /// The members contacted longest ago (never contacted first).
    LeastRecent,
}

impl FromStr for PeerSelection {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "random" => Ok(PeerSelection::Random),
            "round-robin" => Ok(PeerSelection::RoundRobin),
            "least-recent" => Ok(PeerSelection::LeastRecent),
            _ => Err(ConfigError::new(
                "peer_selection",
                format!("unknown strategy {s:?} (expected random, round-robin or least-recent)"),
            )),
        }
    }
}

/// How entries, events and metadata spread before anti-entropy repairs the
/// rest. Membership news always rides on probes and gossip (SWIM).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dissemination {
    /// Plumtree-style broadcast tree: fresh data is pushed at once, on first
    /// receipt, along eager links that duplicates prune to a spanning tree;
    /// each gossip round, ids of fresh data are announced to
    /// `tree.announce_peers` random peers, and a node that misses something
    /// grafts itself back. As fast
    /// as the network and about one copy of each update per node.
    #[default]
    Tree,
    /// Rumour mongering: each gossip round, fresh data is pushed to `fanout`
    /// random peers, each datum `retransmit_limit` times.
    Push,
    /// Each gossip round, a node asks `fanout` random peers for their fresh
    /// data.
    Pull,
    /// Both at once (Karp et al.'s push&pull): each gossip round, a node
    /// pushes its fresh data to `fanout` random peers and asks them for
    /// theirs. Not to be confused with the anti-entropy push-pull, which
    /// runs in every mode.
    PushAndPull,
}

impl FromStr for Dissemination {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "tree" => Ok(Dissemination::Tree),
            "push" => Ok(Dissemination::Push),
            "pull" => Ok(Dissemination::Pull),
            "push-and-pull" => Ok(Dissemination::PushAndPull),
            _ => Err(ConfigError::new(
                "dissemination",
                format!("unknown mode {s:?} (expected tree, push, pull or push-and-pull)"),
            )),
        }
    }
}

impl std::fmt::Display for Dissemination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dissemination::Tree => "tree",
            Dissemination::Push => "push",
            Dissemination::Pull => "pull",
            Dissemination::PushAndPull => "push-and-pull",
        })
    }
}

/// Where a node's periodic timers (probe, gossip, push-pull) fall.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimerPhase {
    /// Each timer starts at a random offset within its period, as on real
    /// machines whose processes start at unrelated instants.
    #[default]
    Random,
    /// Timers fire at whole multiples of their period since time zero, so all
    /// nodes act in lockstep: the synchronous-round model of the literature.
    Aligned,
}

/// The protocol's constants. Durations are written in TOML as strings such
/// as `"500ms"`, `"1s"` or `"2m"`.
///
/// The defaults are [`Config::lan`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Time between two SWIM probes sent by this node.
    /// LAN default 1 s. Must be greater than `probe_timeout`.
    #[serde(with = "duration_str")]
    pub probe_period: Duration,
    /// How long a direct probe waits for its ack before indirect probes are
    /// sent. Local health stretches it (see `health_max`).
    /// LAN default 500 ms. Must be non-zero and less than `probe_period`.
    #[serde(with = "duration_str")]
    pub probe_timeout: Duration,
    /// Number of members asked to probe a target that missed its direct ack.
    /// LAN default 8 (SWIM's papers and memberlist use 3). They cost only
    /// when a direct probe fails, and each one more divides the chance of a
    /// false suspicion: at 20% loss a relay's round trip (four legs) fails
    /// 59% of the time, so 3 relays all fail 20% of the time and 8 fail
    /// 1.5%; every suspicion avoided saves a suspicion and a refutation
    /// rumoured to every node. Measured: 1,000 nodes at 20% loss send
    /// 4.2 KB/node/s with 8 against 48.6 KB/node/s with 3 (README, "Lossy
    /// networks"). May be 0 (no indirect probing).
    pub indirect_probes: usize,
    /// The shortest suspicion timeout, reached once `suspicion_confirmations`
    /// independent members have confirmed a suspicion.
    /// LAN default 4 s. Must be non-zero.
    #[serde(with = "duration_str")]
    pub suspicion_min: Duration,
    /// The suspicion timeout with no confirmation; it shrinks on a log scale
    /// towards `suspicion_min` as confirmations arrive (Lifeguard).
    /// LAN default 12 s. Must be at least `suspicion_min`.
    #[serde(with = "duration_str")]
    pub suspicion_max: Duration,
    /// Independent confirmations after which the suspicion timeout is
    /// `suspicion_min`. LAN default 3. Must be at least 1.
    pub suspicion_confirmations: u32,
    /// Ceiling of the local health score. A node that misses acks and nacks
    /// raises its score and multiplies its probe period and timeout by
    /// `score + 1`. LAN default 8. 0 disables local health.
    pub health_max: u32,
    /// How long a dead or left member is kept before it is forgotten. While
    /// kept, its state keeps spreading through push-pull and each push-pull
    /// round also knocks on one dead member, so a partition shorter than this
    /// heals by itself. A dead member then goes on the reconnect list (see
    /// `reconnect_interval`). LAN default 2 min. Must be non-zero.
    #[serde(with = "duration_str")]
    pub dead_reap_after: Duration,
    /// How often a push-pull round also knocks on one address of the
    /// reconnect list: members forgotten while dead (not those that left),
    /// tried in name order, so that a partition longer than
    /// `dead_reap_after` heals too. Checked once per push-pull round. LAN
    /// default 30 s. Must be non-zero.
    #[serde(with = "duration_str")]
    pub reconnect_interval: Duration,
    /// How long a forgotten dead member stays on the reconnect list. LAN
    /// default 24 h. Must be non-zero.
    #[serde(with = "duration_str")]
    pub reconnect_timeout: Duration,
    /// Time between two gossip rounds. "Rounds" in every report are elapsed
    /// time divided by this. LAN default 200 ms. Must be non-zero.
    #[serde(with = "duration_str")]
    pub gossip_interval: Duration,
    /// Peers sent a gossip message each gossip round. LAN default 3. At least 1.
    pub fanout: usize,
    /// Each rumour is retransmitted `retransmit_mult * ceil(log2(n + 1))`
    /// times, n being the live members, fewer when peers tell it back (see
    /// `stop_after_duplicates`). LAN default 4. At least 1.
    pub retransmit_mult: u32,
    /// A member's first word (alive at incarnation 0: a join) heard back
    /// from peers this many times leaves the broadcast queue
    /// (Demers et al.'s counter `k`: the duplicates are the feedback that
    /// the news is widespread), however many sends it had left. The same
    /// `k` at every cluster size, as in the paper, so that what each node
    /// receives of a join does not grow with n. Later news (accusations,
    /// refutations, leaves) counts each duplicate as `retransmit_mult` sends,
    /// lasting some ceil(log2(n + 1)) duplicates. LAN default 4. At least 1.
    pub stop_after_duplicates: u32,
    /// Most rumours waiting in the broadcast queue; past it the most-sent,
    /// oldest rumours are dropped (push-pull repairs what they would have
    /// carried). LAN default 4096. At least 16.
    pub max_broadcasts: usize,
    /// Most members new to this node that the senders at one IP address may
    /// introduce in one `dead_reap_after`. Members in the answer to an
    /// exchange this node opened (its join, its push-pull rounds) are not
    /// counted. This caps what unasked strangers can add to the membership
    /// table when the cluster has no key (with a key they add nothing):
    /// a node learns each member once, so a cluster of at most this many
    /// nodes plus one never reaches it honestly, whatever their addresses;
    /// a larger one reaches it only in a join storm, and its own push-pulls
    /// bring the rest. Several agents on one host share their host's cap.
    /// LAN default 1024. At least 1.
    pub max_introductions: u32,
    /// Lifeguard's buddy system: a probe of a member this node holds
    /// suspect carries the suspicion, so the member refutes it on the spot
    /// and its ack carries the refutation back. LAN default on.
    pub buddy_system: bool,
    /// When a direct ping goes unanswered, ping the target once more
    /// beside the ping-reqs (memberlist's fallback probe): under loss, one
    /// more independent chance for it to answer before it is suspected.
    /// LAN default on.
    pub fallback_ping: bool,
    /// Before a suspicion that no other member confirmed becomes a death,
    /// ping the suspect once more, carrying the suspicion as the buddy
    /// system does, and wait a probe timeout: a live suspect whose
    /// refutation never reached this node answers with it. A suspicion
    /// others confirmed is independent evidence and is not held. A dead
    /// suspect costs one more ping and one probe timeout before it is
    /// declared. LAN default on.
    pub final_probe: bool,
    /// Refutations and leaves go first in the broadcast queue, ahead of
    /// other news, however often they were sent (Lifeguard). LAN default
    /// on.
    pub refutations_first: bool,
    /// Joins, refutations, deaths and leaves also go at once down the
    /// broadcast tree's eager links, as fresh data does, besides the gossip
    /// rounds: membership news then reaches the cluster in about as many
    /// hops as data, not rounds. Suspicions stay with the gossip rounds.
    /// LAN default on.
    pub eager_membership: bool,
    /// The most bytes of explained changes kept per member (see
    /// [`crate::history`]): past it the oldest go. 0 keeps no history
    /// (`Node::explain` then shows the member only). LAN default 1024, at
    /// most 65536.
    pub history_bytes: u32,
    /// Time between two push-pull exchanges with one random peer. Each opens
    /// with the membership summary alone (a few dozen bytes); only a peer
    /// whose summary differs answers, with its membership digest, and only
    /// the members one side holds newer news of travel in full. After a join the
    /// first exchanges come sooner, one probe period apart and doubling up to
    /// this interval. LAN default 10 s. Must be non-zero.
    #[serde(with = "duration_str")]
    pub push_pull_interval: Duration,
    /// Peers each push-pull round opens an exchange with. More peers repair
    /// lost updates sooner under loss, for a summary message each when
    /// nothing differs. A round after one in which every exchange found the
    /// summaries equal, on a network that has not lost a probe lately,
    /// opens with one peer (see `AntiEntropy::round`). LAN default 3. At
    /// least 1.
    pub push_pull_peers: usize,
    /// Largest encoded message, in bytes, for probes, acks and gossip.
    /// Rumours are packed up to it. Push-pull state is not bounded by it.
    /// Default 65536: the transport is gRPC over TCP, so a message is not
    /// bound to one datagram, and a burst of joins spreads in a few rounds
    /// instead of queueing behind a 1400-byte budget (a datagram transport
    /// sets `datagram_size` instead). At least 512.
    pub max_message_size: usize,
    /// Size the node packs the kinds a datagram transport sends by datagram
    /// to (probes, acks, rumours, tree pushes and announcements, data
    /// gossip; see [`Message::rides_datagrams`](crate::Message::rides_datagrams)):
    /// their rumours and batches fill at most this many bytes, and a single
    /// record too large for it goes in a message of its own, up to
    /// `max_message_size` (which such a transport then sends by stream).
    /// Push-pull pages and queries still fill `max_message_size`. Default
    /// none: every kind is packed to `max_message_size`. If set, at least
    /// 256 and at most `max_message_size`.
    pub datagram_size: Option<usize>,
    /// How gossip peers are picked. LAN default `random`.
    pub peer_selection: PeerSelection,
    /// Where periodic timers start. Default `random`; the simulator's
    /// `--lockstep` sets `aligned`.
    pub timer_phase: TimerPhase,
    /// How entries, events and metadata spread. Default `tree`; `push`,
    /// `pull` and `push-and-pull` are the classic periodic modes, kept for
    /// experiments. Each uses `fanout`.
    pub dissemination: Dissemination,
    /// Longest key, in bytes. Default 512. At least 1.
    pub max_key_len: usize,
    /// Longest value, event payload or metadata, in bytes. Default 16 KiB.
    /// A record of the longest key and value must fit in `max_message_size`
    /// with room to spare (256 bytes).
    pub max_value_len: usize,
    /// Most live keys in one namespace. Default 10,000. At least 1.
    pub max_keys_per_namespace: usize,
    /// How long tombstones and user events are kept before they are
    /// collected. A replica that has not synced an owner for longer gets
    /// that owner's whole namespace afresh (a reset), never deltas, so a
    /// deleted key never comes back. LAN default 5 min. Must be non-zero.
    #[serde(with = "duration_str")]
    pub tombstone_grace: Duration,
    /// How long a freshest read waits for the owner before it falls back to
    /// the local replica. LAN default 1 s. Must be non-zero.
    #[serde(with = "duration_str")]
    pub query_timeout: Duration,
    /// Gossip rounds a leaving node announces `Left` before it goes quiet.
    /// Default 3. Must be at least 1.
    pub leave_rounds: u32,
    /// The longest wait between two tries of an unanswered join, in probe
    /// periods (the first eight tries go one gossip interval apart, or one
    /// probe period if that is shorter, and then the waits double). Default 2: a node outside
    /// the cluster has nothing better to do than knock again, and on a lossy
    /// network each try fails with the chance that the request or the answer
    /// is lost. Must be at least 1.
    pub join_retry_max_periods: u32,
    /// Rumours of data held while the versions before them are missing, per
    /// owner (the gap buffer; past it, the furthest ahead are dropped, and
    /// anti-entropy brings them). Default 64. Must be at least 1.
    pub max_held: usize,
    /// Replicas audited per probe period: each replica that holds no
    /// checkpoint at its version asks its owner for what follows it,
    /// checkpoint included, owners taken in turn. A record withheld from
    /// a replica is found within one probe period per this many replicas
    /// held unproven; writes cost up to this many small exchanges per
    /// replica per period. LAN default 4. Must be at least 1.
    pub audits_per_probe: u32,
    /// The broadcast tree (`dissemination = "tree"`).
    pub tree: TreeConfig,
}

/// The broadcast tree's constants. Rounds are gossip rounds
/// (`gossip_interval`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TreeConfig {
    /// Rounds each fresh datum's id is announced (lazy push). Default 2.
    /// Must be at least 1.
    pub announce_rounds: u32,
    /// Random live peers each round's announcement goes to. Default 1.
    pub announce_peers: usize,
    /// While the tree is mending (this node sent or answered a graft
    /// lately, or its probes miss acks), announcements last this many
    /// rounds... Default 5. Must be at least `announce_rounds`.
    pub mending_announce_rounds: u32,
    /// ...and go to this many random peers each round. Default 2.
    pub mending_announce_peers: usize,
    /// While this node's probes miss acks (a lossy network), fresh data is
    /// also announced `graft_wait` after it arrived to this many random
    /// live peers off the tree, not only from the next gossip round on: a
    /// push lost on the way down leaves a whole subtree waiting for an
    /// announcement. 0 turns it off. Default 1.
    pub lossy_announce_peers: usize,
    /// Rounds a graft (sent or answered) keeps the tree mending. Default 10.
    pub mending_rounds: u32,
    /// Announcers remembered per missing datum, asked in turn. Default 4.
    /// Must be at least 1.
    pub max_announcers: usize,
    /// A graft is also answered with the ids of what arrived in this many
    /// last rounds (the grafter may have missed those too). Default 5.
    pub recent_rounds_on_graft: u32,
    /// At most this many of them, newest first. Default 64.
    pub max_recent_on_graft: usize,
    /// Ids each recently pruned link is told of per round, so that a tree
    /// cut by racing prunes finds its pieces. Default 16.
    pub lazy_announce_ids: usize,
    /// At most this many recently pruned links stay hot, the most recently
    /// pruned kept. Racing writes prune a handful of links at once; on a
    /// lossy network links are grafted and pruned without pause, and
    /// without a bound every link pruned within a push-pull interval heard
    /// an announcement each round (some 45 per node and round at 100 nodes
    /// and 20% loss, 79 KB/node/s under 20 puts/s). Those announcements
    /// also mend the tree faster, so the bound trades bytes for rounds:
    /// 4, 8 and 16 gave 17.7, 22.3 and 31.6 KB/node/s, with writes
    /// everywhere after 2.44, 2.2 and 2.04 rounds on average (1.92
    /// unbounded; README, "Lossy networks"). Default 8; 0 keeps none hot.
    pub hot_lazy_links: usize,
    /// How long a node that heard of a datum it lacks (an announcement)
    /// waits for it to arrive down the tree before it grafts, and then
    /// between grafts to its further announcers. An announcement goes out
    /// on the announcer's next gossip round, by when a push down the tree
    /// has had milliseconds to arrive on a LAN; the wait needs to cover
    /// only how far the tree's path lags the announcer's, and every lost
    /// push or graft costs one more wait. Half a gossip round before:
    /// at 20% loss writes took 2.2 rounds to reach 100 nodes and 3.35 to
    /// reach 1,000 on average; at 25 ms, 0.9 and 1.3, with no change
    /// without loss (README, "Lossy networks"). LAN and local default
    /// 25 ms; WAN 250 ms. Must be non-zero.
    #[serde(with = "duration_str")]
    pub graft_wait: Duration,
    /// How long membership news waits before going down the tree's eager
    /// links, from the first of a burst, so that the news of a burst (a
    /// cold start's joins) goes down each link in one message rather than
    /// one at a time. A refutation or a leave is not held (it ends
    /// suspicions elsewhere), and takes anything held along with it. At
    /// 1,000 nodes from a cold start, 3 ms sends 0.64 M
    /// messages instead of 2.85 M, with every member known everywhere
    /// after 0.074 rounds instead of 0.015 (README, "Membership news held
    /// 3 ms"). Zero pushes each step's news at once. LAN and WAN default
    /// 3 ms; local 1 ms (its timers are faster, its hops quicker).
    #[serde(with = "duration_str")]
    pub news_hold: Duration,
}

impl Default for TreeConfig {
    fn default() -> Self {
        TreeConfig {
            announce_rounds: 2,
            announce_peers: 1,
            mending_announce_rounds: 5,
            mending_announce_peers: 2,
            lossy_announce_peers: 1,
            mending_rounds: 10,
            max_announcers: 4,
            recent_rounds_on_graft: 5,
            max_recent_on_graft: 64,
            lazy_announce_ids: 16,
            hot_lazy_links: 8,
            graft_wait: Duration::from_millis(25),
            news_hold: Duration::from_millis(3),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::lan()
    }
}

impl Config {
    /// A local-area network: sub-millisecond latency, rare loss. Timings
    /// follow the usual SWIM deployments (1 s probes, 200 ms gossip to 3).
    pub fn lan() -> Config {
        Config {
            probe_period: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            indirect_probes: 8,
            suspicion_min: Duration::from_secs(4),
            suspicion_max: Duration::from_secs(12),
            suspicion_confirmations: 3,
            health_max: 8,
            dead_reap_after: Duration::from_secs(120),
            reconnect_interval: Duration::from_secs(30),
            reconnect_timeout: Duration::from_secs(24 * 3600),
            gossip_interval: Duration::from_millis(200),
            fanout: 3,
            retransmit_mult: 4,
            stop_after_duplicates: 4,
            max_broadcasts: 4096,
            max_introductions: 1024,
            buddy_system: true,
            fallback_ping: true,
            final_probe: true,
            refutations_first: true,
            eager_membership: true,
            history_bytes: 1024,
            push_pull_interval: Duration::from_secs(10),
            push_pull_peers: 3,
            max_message_size: 65536,
            datagram_size: None,
            peer_selection: PeerSelection::Random,
            timer_phase: TimerPhase::Random,
            dissemination: Dissemination::Tree,
            max_key_len: 512,
            max_value_len: 16 * 1024,
            max_keys_per_namespace: 10_000,
            tombstone_grace: Duration::from_secs(300),
            query_timeout: Duration::from_secs(1),
            leave_rounds: 3,
            join_retry_max_periods: 2,
            max_held: 64,
            audits_per_probe: 4,
            tree: TreeConfig::default(),
        }
    }

    /// A wide-area network: tens to hundreds of milliseconds of latency, so
    /// slower probes, longer suspicion and wider gossip.
    pub fn wan() -> Config {
        Config {
            probe_period: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(3),
            indirect_probes: 4,
            suspicion_min: Duration::from_secs(20),
            suspicion_max: Duration::from_secs(60),
            dead_reap_after: Duration::from_secs(300),
            reconnect_interval: Duration::from_secs(60),
            gossip_interval: Duration::from_millis(500),
            fanout: 4,
            push_pull_interval: Duration::from_secs(30),
            tombstone_grace: Duration::from_secs(900),
            query_timeout: Duration::from_secs(5),
            tree: TreeConfig {
                graft_wait: Duration::from_millis(250),
                ..TreeConfig::default()
            },
            ..Config::lan()
        }
    }

    /// One machine (loopback): fast timers for development and tests.
    pub fn local() -> Config {
        Config {
            probe_period: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(200),
            suspicion_min: Duration::from_secs(2),
            suspicion_max: Duration::from_secs(6),
            dead_reap_after: Duration::from_secs(60),
            reconnect_interval: Duration::from_secs(5),
            gossip_interval: Duration::from_millis(100),
            push_pull_interval: Duration::from_secs(5),
            tombstone_grace: Duration::from_secs(60),
            query_timeout: Duration::from_millis(500),
            tree: TreeConfig {
                news_hold: Duration::from_millis(1),
                ..TreeConfig::default()
            },
            ..Config::lan()
        }
    }

    /// A preset by name: `lan`, `wan` or `local`.
    pub fn preset(name: &str) -> Result<Config, ConfigError> {
        match name {
            "lan" => Ok(Config::lan()),
            "wan" => Ok(Config::wan()),
            "local" => Ok(Config::local()),
            _ => Err(ConfigError::new(
                "preset",
                format!("unknown preset {name:?} (expected lan, wan or local)"),
            )),
        }
    }

    /// Check every constraint documented on the fields; the error names the
    /// first field that breaks one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn nonzero(field: &'static str, d: Duration) -> Result<(), ConfigError> {
            if d.is_zero() {
                return Err(ConfigError::new(field, "must be non-zero"));
            }
            Ok(())
        }
        nonzero("probe_period", self.probe_period)?;
        nonzero("probe_timeout", self.probe_timeout)?;
        if self.probe_timeout >= self.probe_period {
            return Err(ConfigError::new(
                "probe_timeout",
                "must be less than probe_period",
            ));
        }
        nonzero("suspicion_min", self.suspicion_min)?;
        if self.suspicion_max < self.suspicion_min {
            return Err(ConfigError::new(
                "suspicion_max",
                "must be at least suspicion_min",
            ));
        }
        if self.suspicion_confirmations == 0 {
            return Err(ConfigError::new(
                "suspicion_confirmations",
                "must be at least 1",
            ));
        }
        nonzero("dead_reap_after", self.dead_reap_after)?;
        nonzero("reconnect_interval", self.reconnect_interval)?;
        nonzero("reconnect_timeout", self.reconnect_timeout)?;
        nonzero("gossip_interval", self.gossip_interval)?;
        if self.fanout == 0 {
            return Err(ConfigError::new("fanout", "must be at least 1"));
        }
        if self.retransmit_mult == 0 {
            return Err(ConfigError::new("retransmit_mult", "must be at least 1"));
        }
        if self.history_bytes > 65536 {
            return Err(ConfigError::new("history_bytes", "must be at most 65536"));
        }
        if self.max_introductions == 0 {
            return Err(ConfigError::new("max_introductions", "must be at least 1"));
        }
        if self.max_broadcasts < 16 {
            return Err(ConfigError::new("max_broadcasts", "must be at least 16"));
        }
        nonzero("push_pull_interval", self.push_pull_interval)?;
        nonzero("tree.graft_wait", self.tree.graft_wait)?;
        if self.push_pull_peers == 0 {
            return Err(ConfigError::new("push_pull_peers", "must be at least 1"));
        }
        if self.max_message_size < 512 {
            return Err(ConfigError::new(
                "max_message_size",
                "must be at least 512 bytes",
            ));
        }
        if let Some(size) = self.datagram_size {
            if size < 256 || size > self.max_message_size {
                return Err(ConfigError::new(
                    "datagram_size",
                    format!(
                        "must be at least 256 bytes and at most max_message_size ({})",
                        self.max_message_size
                    ),
                ));
            }
        }
        if self.max_key_len == 0 {
            return Err(ConfigError::new("max_key_len", "must be at least 1"));
        }
        if self.max_key_len + self.max_value_len + RECORD_SLACK > self.max_message_size {
            return Err(ConfigError::new(
                "max_value_len",
                format!(
                    "max_key_len + max_value_len + {RECORD_SLACK} must fit in max_message_size ({})",
                    self.max_message_size
                ),
            ));
        }
        if self.max_keys_per_namespace == 0 {
            return Err(ConfigError::new(
                "max_keys_per_namespace",
                "must be at least 1",
            ));
        }
        nonzero("tombstone_grace", self.tombstone_grace)?;
        nonzero("query_timeout", self.query_timeout)?;
        for (field, value) in [
            ("leave_rounds", self.leave_rounds as usize),
            (
                "join_retry_max_periods",
                self.join_retry_max_periods as usize,
            ),
            ("max_held", self.max_held),
            ("audits_per_probe", self.audits_per_probe as usize),
            ("stop_after_duplicates", self.stop_after_duplicates as usize),
            ("tree.announce_rounds", self.tree.announce_rounds as usize),
            ("tree.max_announcers", self.tree.max_announcers),
        ] {
            if value == 0 {
                return Err(ConfigError::new(field, "must be at least 1"));
            }
        }
        if self.tree.mending_announce_rounds < self.tree.announce_rounds {
            return Err(ConfigError::new(
                "tree.mending_announce_rounds",
                "must be at least tree.announce_rounds",
            ));
        }
        Ok(())
    }

    /// How many times each rumour is sent, for `members` live members.
    pub fn retransmit_limit(&self, members: usize) -> u32 {
        let n = members as u64 + 1;
        // ceil(log2(n)), with n >= 1.
        let log = 64 - (n - 1).leading_zeros();
        self.retransmit_mult.saturating_mul(log.max(1))
    }

    /// How many sends one duplicate of a rumour counts as, when each rumour
    /// is sent `limit` times: `stop_after_duplicates` duplicates use the
    /// whole limit up.
    pub fn duplicate_weight(&self, limit: u32) -> u32 {
        limit.div_ceil(self.stop_after_duplicates.max(1)).max(1)
    }
}

/// Room a message needs beside one record of the longest key and value:
/// envelope, delta head, owner name.
const RECORD_SLACK: usize = 256;

/// Parse a duration written as a number and a unit: `us`, `ms`, `s`, `m` or
/// `h` (for example `250ms`, `1.5s`, `10m`). A decimal part is converted
/// exactly (`0.1ms` is 100 µs), truncating below a nanosecond; whitespace
/// around the text and between number and unit is allowed.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const NANOS: [(&str, u128); 5] = [
        ("us", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
    ];
    let err = |why: &str| format!("bad duration {text:?}: {why}");
    let t = text.trim();
    let split = t
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| err("missing unit (expected us, ms, s, m or h)"))?;
    let (number, unit) = (t[..split].trim_end(), &t[split..]);
    let scale = NANOS
        .iter()
        .find(|(u, _)| *u == unit)
        .map(|(_, n)| *n)
        .ok_or_else(|| err("unknown unit (expected us, ms, s, m or h)"))?;
    if number.is_empty() {
        return Err(err("missing number before the unit"));
    }
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(frac) || (whole.is_empty() && frac.is_empty()) {
        return Err(err("not a non-negative decimal number"));
    }
    if whole.len() > 20 {
        return Err(err("too large"));
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| err("too large"))?
    };
    let frac = &frac[..frac.len().min(9)];
    let frac_nanos = if frac.is_empty() {
        0
    } else {
        let f: u128 = frac
            .parse()
            .map_err(|_| err("not a non-negative decimal number"))?;
        f * scale / 10u128.pow(frac.len() as u32)
    };
    let nanos = u64::try_from(whole * scale + frac_nanos).map_err(|_| err("too large"))?;
    Ok(Duration::from_nanos(nanos))
}

/// A duration in the shortest exact form [`parse_duration`] reads back.
pub fn format_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us % 3_600_000_000 == 0 && us > 0 {
        format!("{}h", us / 3_600_000_000)
    } else if us % 60_000_000 == 0 && us > 0 {
        format!("{}m", us / 60_000_000)
    } else if us % 1_000_000 == 0 {
        format!("{}s", us / 1_000_000)
    } else if us % 1000 == 0 {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

/// Serde adapter storing a `Duration` as text (`"500ms"`), for
/// `#[serde(with = "rumour_core::duration_str")]`.
pub mod duration_str {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// Write `d` in the form [`parse_duration`] reads back.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    /// Read a duration written as [`parse_duration`] accepts.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for name in ["lan", "wan", "local"] {
            Config::preset(name).unwrap().validate().unwrap();
        }
        assert_eq!(Config::preset("moon").unwrap_err().field, "preset");
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = Config::lan();
        c.probe_timeout = c.probe_period;
        assert_eq!(c.validate().unwrap_err().field, "probe_timeout");
        let mut c = Config::lan();
        c.suspicion_max = c.suspicion_min / 2;
        let err = c.validate().unwrap_err();
        assert_eq!(err.field, "suspicion_max");
        assert!(err.to_string().contains("suspicion_max"), "{err}");
        let c = Config {
            fanout: 0,
            ..Config::lan()
        };
        assert_eq!(c.validate().unwrap_err().field, "fanout");
        let c = Config {
            stop_after_duplicates: 0,
            ..Config::lan()
        };
        assert_eq!(c.validate().unwrap_err().field, "stop_after_duplicates");
        let c = Config {
            max_value_len: 65536,
            ..Config::lan()
        };
        assert_eq!(c.validate().unwrap_err().field, "max_value_len");
        let mut c = Config::lan();
        c.tree.graft_wait = Duration::ZERO;
        assert_eq!(c.validate().unwrap_err().field, "tree.graft_wait");
        assert_eq!("push-and-pull".parse(), Ok(Dissemination::PushAndPull));
        assert_eq!(
            "flood".parse::<Dissemination>().unwrap_err().field,
            "dissemination"
        );
    }

    #[test]
    fn retransmit_limit_grows_with_log_n() {
        let c = Config::lan();
        assert_eq!(c.retransmit_limit(0), 4);
        assert_eq!(c.retransmit_limit(1), 4);
        assert_eq!(c.retransmit_limit(3), 8);
        assert_eq!(c.retransmit_limit(1000), 40);
    }

    #[test]
    fn durations_round_trip() {
        for s in ["250ms", "1s", "10m", "2h", "15us"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(
            parse_duration(" 0.1 ms").unwrap(),
            Duration::from_micros(100)
        );
        assert!(parse_duration("-1ms").unwrap_err().contains("non-negative"));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }
}
