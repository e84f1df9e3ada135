//! What a run measured: membership convergence, failure detection, false
//! positives, traffic and state size. Fed by the event loop; it never
//! touches the nodes' decisions.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rumour_core::{Config, Event, Node, Time};
use serde::Serialize;

use crate::scenario::Scenario;
use crate::world::node_name;

#[derive(Debug, Clone)]
struct Crash {
    node: usize,
    at: Time,
    first_suspect: Option<Time>,
    all_dead: Option<Time>,
}

/// A graceful leave, and when every running node first held the leaver
/// gone (left, or dead).
#[derive(Debug, Clone)]
struct Leave {
    node: usize,
    at: Time,
    all_gone: Option<Time>,
}

/// Running tallies of a simulation.
#[derive(Debug)]
pub struct Metrics {
    gossip_interval: Duration,
    measure_from: Time,
    end: Time,
    initial_starts: usize,
    last_start: Time,
    running: Vec<bool>,
    running_count: usize,
    /// Node i sees as many alive members as are running.
    ok: Vec<bool>,
    ok_count: usize,
    converged_at: Option<Time>,
    /// Node i holds as many members alive or suspect as are running.
    holds_all: Vec<bool>,
    holds_all_count: usize,
    all_known_at: Option<Time>,
    /// The last heal of a partition, and when every running node next saw
    /// every running node alive.
    healed: Option<(Time, Option<Time>)>,
    crashes: Vec<Crash>,
    leaves: Vec<Leave>,
    false_positives: u64,
    false_deaths: Vec<FalseDeath>,
    false_suspicions: u64,
    msgs: u64,
    bytes: u64,
    msgs_window: u64,
    bytes_window: u64,
    /// From when traffic counts as idle (no writes any more), if ever.
    quiet_from: Option<Time>,
    bytes_quiet: u64,
    peak_members: usize,
    peak_broadcasts: usize,
    peak_held: usize,
    /// When each node's held records are next sampled (a walk over its
    /// namespaces, so once per simulated second per node at most).
    held_due: Vec<Time>,
    events: u64,
    by_kind: BTreeMap<&'static str, KindTally>,
    /// Alive members each running node last saw, and their sum.
    known: Vec<usize>,
    known_sum: u64,
    /// The next bucket boundary whose membership is not sampled yet.
    next_sample: Time,
    series: Series,
}

/// How often a node's held records are sampled.
const HELD_SAMPLE: Duration = Duration::from_secs(1);

/// Most buckets a run's series holds: longer runs get wider buckets.
const MAX_BUCKETS: u64 = 3000;

/// Time-bucketed series of a run, for plots: fixed buckets of one gossip
/// interval (wider for runs of more than [`MAX_BUCKETS`] intervals),
/// filled in simulated time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Width of one bucket.
    pub bucket: Duration,
    /// Membership at each bucket boundary `k * bucket`, k = 0, 1, ...: the
    /// state after every event before that instant.
    pub membership: Vec<MembershipSample>,
    /// Message kinds, in the order they first appeared; indexes
    /// [`BucketTraffic::by_kind`].
    pub kinds: Vec<&'static str>,
    /// Messages and bytes sent in each bucket `[k * bucket, (k+1) * bucket)`.
    pub traffic: Vec<BucketTraffic>,
    /// Suspicions and deaths announced in each bucket.
    pub suspicions: Vec<BucketSuspicions>,
    /// When each crash happened.
    pub crashes: Vec<Time>,
}

/// Membership as of one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MembershipSample {
    /// Running nodes.
    pub running: usize,
    /// Running nodes whose view is complete (they see every running node
    /// alive).
    pub complete: usize,
    /// Alive members seen, summed over running nodes.
    pub known: u64,
}

/// Traffic of one bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketTraffic {
    /// Messages sent.
    pub msgs: u64,
    /// Encoded bytes sent.
    pub bytes: u64,
    /// By kind, indexed like [`Series::kinds`] (shorter when later kinds
    /// had not appeared yet).
    pub by_kind: Vec<KindTally>,
}

/// Suspicions and deaths of one bucket, each observer counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketSuspicions {
    /// Members suspected.
    pub suspected: u64,
    /// Of those, suspicions of a running member.
    pub false_suspected: u64,
    /// Members declared dead.
    pub died: u64,
    /// Of those, running members declared dead (false positives).
    pub false_died: u64,
}

/// The bucket width for a run of `end` with this gossip interval.
fn bucket_width(gossip_interval: Duration, end: Time) -> Duration {
    let gi = gossip_interval.as_micros().max(1) as u64;
    let per = end.as_micros().div_ceil(gi).div_ceil(MAX_BUCKETS).max(1);
    Duration::from_micros(gi * per)
}

/// Set `flag` to `to`, and `count` (how many such flags are set) with it.
fn set_counted(flag: &mut bool, count: &mut usize, to: bool) {
    if *flag != to {
        *flag = to;
        if to {
            *count += 1;
        } else {
            *count -= 1;
        }
    }
}

impl Metrics {
    /// Tallies for `n` nodes; traffic counts from `measure_from` to `end`.
    pub fn new(n: usize, gossip_interval: Duration, measure_from: Time, end: Time) -> Metrics {
        Metrics {
            gossip_interval,
            measure_from,
            end,
            initial_starts: 0,
            last_start: Time::ZERO,
            running: vec![false; n],
            running_count: 0,
            ok: vec![false; n],
            ok_count: 0,
            converged_at: None,
            holds_all: vec![false; n],
            holds_all_count: 0,
            all_known_at: None,
            healed: None,
            crashes: Vec::new(),
            leaves: Vec::new(),
            false_positives: 0,
            false_deaths: Vec::new(),
            false_suspicions: 0,
            msgs: 0,
            bytes: 0,
            msgs_window: 0,
            bytes_window: 0,
            quiet_from: None,
            bytes_quiet: 0,
            peak_members: 0,
            peak_broadcasts: 0,
            peak_held: 0,
            held_due: vec![Time::ZERO; n],
            events: 0,
            by_kind: BTreeMap::new(),
            known: vec![0; n],
            known_sum: 0,
            next_sample: Time::ZERO,
            series: Series {
                bucket: bucket_width(gossip_interval, end),
                ..Series::default()
            },
        }
    }

    /// The time-bucketed series so far.
    pub fn series(&self) -> &Series {
        &self.series
    }

    /// The next boundary at which membership is to be sampled.
    pub(crate) fn next_sample(&self) -> Time {
        self.next_sample
    }

    /// Sample membership at every boundary up to and including `at`: the
    /// caller has applied every event before those boundaries and none
    /// after.
    pub(crate) fn sample_until(&mut self, at: Time) {
        while self.next_sample <= at {
            self.series.membership.push(MembershipSample {
                running: self.running_count,
                complete: self.ok_count,
                known: self.known_sum,
            });
            self.next_sample += self.series.bucket;
        }
    }

    fn bucket(&self, now: Time) -> usize {
        (now.as_micros() / self.series.bucket.as_micros().max(1) as u64) as usize
    }

    /// Traffic from `at` to the end is idle traffic.
    pub(crate) fn quiet_from(&mut self, at: Time) {
        self.quiet_from = Some(at);
    }

    pub(crate) fn started(&mut self, now: Time) {
        if self.initial_starts < self.running.len() {
            self.initial_starts += 1;
            self.last_start = now;
        }
    }

    pub(crate) fn crashed(&mut self, i: usize, now: Time) {
        self.series.crashes.push(now);
        self.crashes.push(Crash {
            node: i,
            at: now,
            first_suspect: None,
            all_dead: None,
        });
    }

    pub(crate) fn left(&mut self, i: usize, now: Time) {
        self.leaves.push(Leave {
            node: i,
            at: now,
            all_gone: None,
        });
    }

    /// The set of running nodes changed: every node must be re-checked.
    pub(crate) fn recount(&mut self, running: &[bool]) {
        for (i, &r) in running.iter().enumerate() {
            if !r && self.known[i] > 0 {
                self.known_sum -= self.known[i] as u64;
                self.known[i] = 0;
            }
        }
        self.running.copy_from_slice(running);
        self.running_count = running.iter().filter(|r| **r).count();
        self.ok.iter_mut().for_each(|o| *o = false);
        self.ok_count = 0;
        self.holds_all.iter_mut().for_each(|o| *o = false);
        self.holds_all_count = 0;
    }

    pub(crate) fn observe_state(&mut self, i: usize, node: &Node, now: Time) {
        let alive = node.alive_members();
        if self.running[i] {
            self.known_sum = self.known_sum - self.known[i] as u64 + alive as u64;
            self.known[i] = alive;
        }
        let ok = self.running[i] && alive == self.running_count;
        set_counted(&mut self.ok[i], &mut self.ok_count, ok);
        self.peak_broadcasts = self.peak_broadcasts.max(node.pending_broadcasts());
        self.peak_members = self.peak_members.max(node.live_members());
        if now >= self.held_due[i] {
            self.held_due[i] = now + HELD_SAMPLE;
            self.peak_held = self.peak_held.max(node.held_records());
        }
        let holds = self.running[i] && node.live_members() == self.running_count;
        set_counted(&mut self.holds_all[i], &mut self.holds_all_count, holds);
        let all_started = self.initial_starts == self.running.len();
        if self.all_known_at.is_none() && all_started && self.holds_all_count == self.running_count
        {
            self.all_known_at = Some(now);
        }
        if self.converged_at.is_none() && all_started && self.ok_count == self.running_count {
            self.converged_at = Some(now);
        }
        self.note_healed(now);
    }

    /// A partition was healed at `now`: time until every running node sees
    /// every running node alive again (see [`Report::heal_members_ms`]).
    pub(crate) fn heal(&mut self, now: Time) {
        self.healed = Some((now, None));
        self.note_healed(now);
    }

    fn note_healed(&mut self, now: Time) {
        if let Some((_, at @ None)) = &mut self.healed {
            if self.ok_count == self.running_count {
                *at = Some(now);
            }
        }
    }

    pub(crate) fn sent(&mut self, _from: usize, now: Time, kind: &'static str, bytes: usize) {
        let k = self.by_kind.entry(kind).or_default();
        k.msgs += 1;
        k.bytes += bytes as u64;
        self.msgs += 1;
        self.bytes += bytes as u64;
        let b = self.bucket(now);
        let series = &mut self.series;
        let kind_index = match series.kinds.iter().position(|k| *k == kind) {
            Some(x) => x,
            None => {
                series.kinds.push(kind);
                series.kinds.len() - 1
            }
        };
        if series.traffic.len() <= b {
            series.traffic.resize_with(b + 1, BucketTraffic::default);
        }
        let t = &mut series.traffic[b];
        t.msgs += 1;
        t.bytes += bytes as u64;
        if t.by_kind.len() <= kind_index {
            t.by_kind.resize(kind_index + 1, KindTally::default());
        }
        t.by_kind[kind_index].msgs += 1;
        t.by_kind[kind_index].bytes += bytes as u64;
        if now >= self.measure_from && now < self.end {
            self.msgs_window += 1;
            self.bytes_window += bytes as u64;
        }
        if self.quiet_from.is_some_and(|q| now >= q) && now < self.end {
            self.bytes_quiet += bytes as u64;
        }
    }

    pub(crate) fn event(
        &mut self,
        now: Time,
        observer: usize,
        e: &Event,
        about: Option<usize>,
        about_running: bool,
    ) {
        self.events += 1;
        let Some(about) = about else { return };
        if matches!(e, Event::MemberSuspected(_) | Event::MemberDied(_)) {
            let b = self.bucket(now);
            if self.series.suspicions.len() <= b {
                self.series
                    .suspicions
                    .resize(b + 1, BucketSuspicions::default());
            }
            let s = &mut self.series.suspicions[b];
            match (e, about_running) {
                (Event::MemberSuspected(_), false) => s.suspected += 1,
                (Event::MemberSuspected(_), true) => {
                    s.suspected += 1;
                    s.false_suspected += 1;
                }
                (_, false) => s.died += 1,
                (_, true) => {
                    s.died += 1;
                    s.false_died += 1;
                }
            }
        }
        match e {
            Event::MemberSuspected(_) | Event::MemberDied(_) if about_running => {
                if matches!(e, Event::MemberDied(_)) {
                    self.false_positives += 1;
                    if self.false_deaths.len() < FALSE_DEATHS_LISTED {
                        self.false_deaths.push(FalseDeath {
                            at_ms: now.as_secs_f64() * 1e3,
                            observer: node_name(observer),
                            member: node_name(about),
                        });
                    }
                } else {
                    self.false_suspicions += 1;
                }
            }
            Event::MemberSuspected(_) | Event::MemberDied(_) => {
                if let Some(c) = self.open_crash(about) {
                    c.first_suspect.get_or_insert(now);
                }
            }
            _ => {}
        }
    }

    /// Every running node holds `node` gone: the end of its latest crash
    /// or leave, whichever came last.
    pub(crate) fn gone_everywhere(&mut self, node: usize, now: Time) {
        let crashed = self
            .crashes
            .iter()
            .rposition(|c| c.node == node)
            .map(|x| (self.crashes[x].at, x));
        let left = self
            .leaves
            .iter()
            .rposition(|l| l.node == node)
            .map(|x| (self.leaves[x].at, x));
        match (crashed, left) {
            (Some((c_at, c)), Some((l_at, _))) if c_at >= l_at => {
                self.crashes[c].all_dead.get_or_insert(now);
            }
            (Some((_, c)), None) => {
                self.crashes[c].all_dead.get_or_insert(now);
            }
            (_, Some((_, l))) => {
                self.leaves[l].all_gone.get_or_insert(now);
            }
            (None, None) => {}
        }
    }

    fn open_crash(&mut self, node: usize) -> Option<&mut Crash> {
        self.crashes.iter_mut().rev().find(|c| c.node == node)
    }

    /// The report as of `now`.
    pub fn report(&self, scenario: &Scenario, config: &Config, now: Time, digest: u64) -> Report {
        let n = scenario.nodes.max(1) as f64;
        let window = (now.min(self.end) - self.measure_from).as_secs_f64();
        let per_node_s = |x: u64| {
            if window > 0.0 {
                x as f64 / n / window
            } else {
                0.0
            }
        };
        let detect = sorted_ms(self.crashes.iter().map(|c| (c.at, c.all_dead)));
        let first = sorted_ms(self.crashes.iter().map(|c| (c.at, c.first_suspect)));
        let left = sorted_ms(self.leaves.iter().map(|l| (l.at, l.all_gone)));
        let gi = self.gossip_interval.as_secs_f64();
        let since_last_start = self
            .converged_at
            .map(|t| (t - self.last_start).as_secs_f64());
        let known_since_last_start = self
            .all_known_at
            .map(|t| (t - self.last_start).as_secs_f64());
        let idle = self.quiet_from.and_then(|q| {
            let secs = (now.min(self.end).max(q) - q).as_secs_f64();
            (secs > 0.0).then(|| self.bytes_quiet as f64 / n / secs)
        });
        let heal_at = self.healed.map(|(h, _)| h);
        Report {
            heal_at_ms: heal_at.map(|h| h.as_secs_f64() * 1e3),
            heal_members_ms: self
                .healed
                .and_then(|(h, at)| at.map(|a| (a - h).as_secs_f64() * 1e3)),
            heal_data_ms: None,
            scenario: scenario.name.clone(),
            nodes: scenario.nodes,
            seed: scenario.seed,
            preset: scenario.preset.clone(),
            lockstep: scenario.lockstep || scenario.strict,
            strict: scenario.strict,
            loss: scenario.link.loss,
            latency: scenario.link.latency.to_string(),
            simulated_s: now.as_secs_f64(),
            gossip_interval_ms: gi * 1e3,
            last_start_ms: self.last_start.as_secs_f64() * 1e3,
            membership_ms: since_last_start.map(|s| s * 1e3),
            rounds_to_membership: since_last_start.map(|s| s / gi),
            rounds_to_members_known: known_since_last_start.map(|s| s / gi),
            crashes: self.crashes.len(),
            detected: detect.len(),
            first_suspicion_p50_ms: percentile(&first, 0.50),
            detection_p50_ms: percentile(&detect, 0.50),
            detection_p99_ms: percentile(&detect, 0.99),
            detection_max_ms: detect.last().copied(),
            detection_bound_ms: (config.probe_period * 3 + config.suspicion_max).as_secs_f64()
                * 1e3,
            leaves: self.leaves.len(),
            leaves_seen: left.len(),
            leave_seen_p50_ms: percentile(&left, 0.50),
            leave_seen_max_ms: left.last().copied(),
            false_positives: self.false_positives,
            false_deaths: self.false_deaths.clone(),
            false_suspicions: self.false_suspicions,
            msgs_per_node_per_s: per_node_s(self.msgs_window),
            bytes_per_node_per_s: per_node_s(self.bytes_window),
            measured_from_s: self.measure_from.as_secs_f64(),
            total_msgs: self.msgs,
            total_bytes: self.bytes,
            peak_members: self.peak_members,
            peak_broadcasts: self.peak_broadcasts,
            peak_held_records: self.peak_held,
            events: self.events,
            by_kind: self.by_kind.clone(),
            trace_digest: format!("{digest:016x}"),
            final_membership: String::new(),
            wall_ms: None,
            updates: 0,
            update_rounds_mean: None,
            update_rounds_p50: None,
            update_rounds_p99: None,
            update_rounds_max: None,
            update_delivery_ratio: None,
            idle_bytes_per_node_per_s: idle,
            data_bytes: 0,
            node_counters: BTreeMap::new(),
            intake_batches: 0,
            intake_after_idle: 0,
            replies_over_budget: 0,
        }
    }
}

/// Messages and bytes of one kind.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct KindTally {
    /// Messages sent.
    pub msgs: u64,
    /// Encoded bytes sent.
    pub bytes: u64,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// False deaths a report names; the rest are only counted.
pub const FALSE_DEATHS_LISTED: usize = 16;

/// A running node declared dead by another.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FalseDeath {
    /// When (simulated milliseconds).
    pub at_ms: f64,
    /// The node that declared it.
    pub observer: String,
    /// The node declared dead.
    pub member: String,
}

/// What a run measured. Times are simulated; `wall_ms` is filled in by the
/// caller that timed the run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Cluster size.
    pub nodes: usize,
    /// The run's seed.
    pub seed: u64,
    /// Protocol preset.
    pub preset: String,
    /// Whether timers were aligned (synchronous rounds).
    pub lockstep: bool,
    /// Whether gossiped data took effect only at the end of its round (the
    /// strict synchronous model, see [`crate::Scenario::strict`]).
    pub strict: bool,
    /// Link loss probability.
    pub loss: f64,
    /// Link latency.
    pub latency: String,
    /// Simulated seconds run.
    pub simulated_s: f64,
    /// The gossip interval: one round.
    pub gossip_interval_ms: f64,
    /// When the last node of the cold start started.
    pub last_start_ms: f64,
    /// Time from the last start until every running node saw every running
    /// node alive (None: never within the run).
    pub membership_ms: Option<f64>,
    /// `membership_ms` in gossip rounds.
    pub rounds_to_membership: Option<f64>,
    /// Gossip rounds from the last start until every running node held
    /// every running node as a member, alive or suspect (None: never within
    /// the run). Under loss `rounds_to_membership` also waits for a moment
    /// with no false suspicion anywhere, which in a large cluster is luck;
    /// this is how long the news of the members took to reach everyone.
    pub rounds_to_members_known: Option<f64>,
    /// Crashes during the run.
    pub crashes: usize,
    /// Crashes that every running node came to consider dead.
    pub detected: usize,
    /// Median time from a crash to its first suspicion anywhere.
    pub first_suspicion_p50_ms: Option<f64>,
    /// Median time from a crash until every running node considers it dead.
    pub detection_p50_ms: Option<f64>,
    /// 99th percentile of the same.
    pub detection_p99_ms: Option<f64>,
    /// Worst of the same.
    pub detection_max_ms: Option<f64>,
    /// The bound the design promises: `probe_period * 3 + suspicion_max`.
    pub detection_bound_ms: f64,
    /// Graceful leaves during the run.
    pub leaves: usize,
    /// Leaves that every running node came to hold gone (left or dead).
    pub leaves_seen: usize,
    /// Median time from a leave until every running node held it gone.
    pub leave_seen_p50_ms: Option<f64>,
    /// Longest time from a leave until every running node held it gone.
    pub leave_seen_max_ms: Option<f64>,
    /// When the last partition was healed, if one was.
    pub heal_at_ms: Option<f64>,
    /// From the last heal until every running node saw every running node
    /// alive (None: no heal, or not within the run).
    pub heal_members_ms: Option<f64>,
    /// From the last heal until every write made before it, by a node
    /// running at the end, was held by every node running at the end (0 if
    /// all got there before the heal; None: no heal, or some write never
    /// got everywhere). A crashed owner's writes are left out: once it is
    /// dead its namespace is no one's to pass on.
    pub heal_data_ms: Option<f64>,
    /// Times a running node was declared dead by some node.
    pub false_positives: u64,
    /// The first [`FALSE_DEATHS_LISTED`] of them: when, by whom, whom, so
    /// that `--explain` can be pointed at the member.
    pub false_deaths: Vec<FalseDeath>,
    /// Times a running node was suspected by some node (most are refuted).
    pub false_suspicions: u64,
    /// Messages sent per node per second, over the measurement window.
    pub msgs_per_node_per_s: f64,
    /// Encoded bytes sent per node per second, over the measurement window.
    pub bytes_per_node_per_s: f64,
    /// Start of the measurement window (simulated seconds).
    pub measured_from_s: f64,
    /// Messages sent in the whole run.
    pub total_msgs: u64,
    /// Bytes sent in the whole run.
    pub total_bytes: u64,
    /// Most live members any node held.
    pub peak_members: usize,
    /// Longest broadcast queue any node held.
    pub peak_broadcasts: usize,
    /// Most records (keys, tombstones and events, over every namespace)
    /// any node held, sampled once per simulated second per node.
    pub peak_held_records: usize,
    /// Membership events emitted, all nodes together.
    pub events: u64,
    /// Messages and bytes of the whole run, by message kind.
    pub by_kind: BTreeMap<&'static str, KindTally>,
    /// Hash of every delivered message and event, in order.
    pub trace_digest: String,
    /// At the end of a full run: `agrees` if every running node sees exactly
    /// the running nodes as alive, else the first disagreement found.
    pub final_membership: String,
    /// Wall-clock time of the run, when measured by the caller.
    pub wall_ms: Option<f64>,
    /// Writes tracked (the workload's puts and deletes after the prefill).
    pub updates: usize,
    /// Mean rounds from a write until every node running at the time held
    /// it, over writes that got there.
    pub update_rounds_mean: Option<f64>,
    /// Median of the same.
    pub update_rounds_p50: Option<f64>,
    /// 99th percentile of the same.
    pub update_rounds_p99: Option<f64>,
    /// Largest of the same.
    pub update_rounds_max: Option<f64>,
    /// Of all (write, node running at the time) pairs, the fraction where
    /// the node held the write at the end.
    pub update_delivery_ratio: Option<f64>,
    /// Bytes/node/s once the workload stopped (from two push-pull intervals
    /// after its end), or over the measured window with no workload.
    pub idle_bytes_per_node_per_s: Option<f64>,
    /// Data-plane bytes sent in the run: entries, events, metadata, their
    /// announcements, digests and deltas.
    pub data_bytes: u64,
    /// Every node counter (`rumour_core::Stats`), summed over the nodes
    /// running at the end.
    pub node_counters: BTreeMap<&'static str, u64>,
    /// On a shared host (`[host]`), the batches of messages the nodes took
    /// (all that reached a node together, taken at once), as the agents
    /// count `intake_batches`; 0 without a host.
    pub intake_batches: u64,
    /// Of those, the batches that woke a node idle for 1 ms or more, as
    /// the agents count `intake_after_idle`.
    pub intake_after_idle: u64,
    /// Under `[link] reply_budget`, the sends dropped for going past an
    /// address's budget, as the agents count `replies_over_budget`.
    pub replies_over_budget: u64,
}

impl Report {
    /// Fill in the per-update figures from the tracker.
    /// `running`: which nodes run at the end (for [`Report::heal_data_ms`]).
    pub fn add_updates(&mut self, tracker: &crate::updates::Tracker, running: &[bool]) {
        let gi = self.gossip_interval_ms / 1e3;
        let mut rounds: Vec<f64> = tracker
            .updates()
            .filter_map(|u| u.complete.map(|t| (t - u.at).as_secs_f64() / gi))
            .collect();
        rounds.sort_by(f64::total_cmp);
        let (held, target) = tracker.updates().fold((0usize, 0usize), |(h, t), u| {
            (h + u.held.min(u.target), t + u.target)
        });
        self.updates = tracker.len();
        self.update_rounds_mean =
            (!rounds.is_empty()).then(|| rounds.iter().sum::<f64>() / rounds.len() as f64);
        self.update_rounds_p50 = percentile(&rounds, 0.50);
        self.update_rounds_p99 = percentile(&rounds, 0.99);
        self.update_rounds_max = rounds.last().copied();
        self.update_delivery_ratio = (target > 0).then(|| held as f64 / target as f64);
        if let Some(heal) = self.heal_at_ms {
            // Held by every node running at the end: a node that crashed
            // after the heal never completes a write it had not yet got,
            // and one that crashed before its writes crossed takes them
            // with it (the other side holds it dead from the cut).
            let everywhere = |u: &crate::updates::Update| {
                let all = running.iter().enumerate().all(|(i, &r)| !r || u.holds(i));
                let last = u.times.iter().max().copied().unwrap_or(u.at);
                all.then(|| last.as_secs_f64() * 1e3 - heal)
            };
            self.heal_data_ms = tracker
                .updates()
                .filter(|u| u.at.as_secs_f64() * 1e3 < heal && running[u.owner])
                .map(everywhere)
                .try_fold(0.0f64, |worst, t| t.map(|t| worst.max(t)));
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} ms"));
        let rounds = |v: Option<f64>| v.map_or("never".to_string(), |v| format!("{v:.2}"));
        writeln!(
            f,
            "scenario {} · {} nodes · seed {} · {} preset{} · loss {:.0}% · latency {}",
            self.scenario,
            self.nodes,
            self.seed,
            self.preset,
            match (self.lockstep, self.strict) {
                (_, true) => " · strict lockstep",
                (true, false) => " · lockstep",
                _ => "",
            },
            self.loss * 100.0,
            self.latency
        )?;
        writeln!(f, "  simulated                 {:.1} s", self.simulated_s)?;
        writeln!(
            f,
            "  membership converged      {} rounds after the last start ({}); every member known after {} rounds",
            rounds(self.rounds_to_membership),
            ms(self.membership_ms),
            rounds(self.rounds_to_members_known)
        )?;
        writeln!(
            f,
            "  crashes detected          {} of {} (first suspicion p50 {}, dead everywhere p50 {}, p99 {}; bound {:.0} ms)",
            self.detected,
            self.crashes,
            ms(self.first_suspicion_p50_ms),
            ms(self.detection_p50_ms),
            ms(self.detection_p99_ms),
            self.detection_bound_ms
        )?;
        if self.heal_at_ms.is_some() {
            writeln!(
                f,
                "  after the heal            all see all alive after {}, every earlier write everywhere after {}",
                ms(self.heal_members_ms),
                ms(self.heal_data_ms)
            )?;
        }
        if self.leaves > 0 {
            writeln!(
                f,
                "  leaves seen everywhere    {} of {} (p50 {}, max {})",
                self.leaves_seen,
                self.leaves,
                ms(self.leave_seen_p50_ms),
                ms(self.leave_seen_max_ms)
            )?;
        }
        writeln!(
            f,
            "  false positives           {} declared dead, {} suspected",
            self.false_positives, self.false_suspicions
        )?;
        if let Some(d) = self.false_deaths.first() {
            writeln!(
                f,
                "  first false death         {} declared {} dead at {:.0} ms",
                d.observer, d.member, d.at_ms
            )?;
        }
        writeln!(
            f,
            "  traffic (from {:.0} s)      {:.2} msgs/node/s, {:.0} B/node/s",
            self.measured_from_s, self.msgs_per_node_per_s, self.bytes_per_node_per_s
        )?;
        writeln!(
            f,
            "  peak state                {} members, {} queued rumours, {} records held",
            self.peak_members, self.peak_broadcasts, self.peak_held_records
        )?;
        if self.updates > 0 {
            writeln!(
                f,
                "  updates                   {} written, {:.4} delivered; rounds to all: mean {}, p50 {}, p99 {}, max {}",
                self.updates,
                self.update_delivery_ratio.unwrap_or(0.0),
                rounds(self.update_rounds_mean),
                rounds(self.update_rounds_p50),
                rounds(self.update_rounds_p99),
                rounds(self.update_rounds_max)
            )?;
        }
        if let Some(idle) = self.idle_bytes_per_node_per_s {
            writeln!(f, "  idle traffic              {idle:.0} B/node/s")?;
        }
        if !self.final_membership.is_empty() {
            writeln!(f, "  membership at the end     {}", self.final_membership)?;
        }
        if let Some(w) = self.wall_ms {
            writeln!(f, "  wall time                 {w:.0} ms")?;
        }
        write!(f, "  trace digest              {}", self.trace_digest)
    }
}

/// The milliseconds from each start to its end, for those that ended, sorted.
fn sorted_ms(spans: impl Iterator<Item = (Time, Option<Time>)>) -> Vec<f64> {
    let mut ms: Vec<f64> = spans
        .filter_map(|(from, to)| to.map(|t| (t - from).as_secs_f64() * 1e3))
        .collect();
    ms.sort_by(f64::total_cmp);
    ms
}
