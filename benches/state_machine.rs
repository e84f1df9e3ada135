//! Benchmarks of the rumour protocol state machine and of simulated clusters.
//!
//! Run them with:
//!
//! ```text
//! cargo bench --bench state_machine            # everything (about 2 to 3 minutes)
//! cargo bench --bench state_machine -- node/   # only the single-node groups
//! cargo bench --bench state_machine -- sim/    # only the simulated clusters
//! ```
//!
//! Groups (each single-node group runs at N = 100 and N = 1000 known
//! members; the node runs the `lan` preset and is built by a `join` answered
//! with a `PushPull` `Reply` listing N alive members):
//!
//! - `node/ping`: `handle_message` of a `Ping` addressed to the node, then
//!   draining `poll_output` (one `Ack`). Throughput: messages.
//! - `node/gossip_known`: a `Gossip` carrying 50 rumours the node already
//!   holds (stale duplicates, the common case at steady state), plus
//!   draining. Throughput: rumours.
//! - `node/gossip_fresh`: a `Gossip` carrying 50 rumours about members the
//!   node has never heard of (50 `MemberJoined` events and 50 new rumours
//!   queued), plus draining. Every iteration gets a freshly built node and
//!   fresh names, built outside the timed section. Throughput: rumours.
//! - `node/push_pull_same`: a full push-pull state (`Reply`, N members plus
//!   the node itself) that equals what the node already holds: the merge
//!   of steady-state anti-entropy, plus draining (nothing to drain).
//!   Throughput: state entries.
//! - `node/push_pull_sync_same`: the same full state as a `Sync`, which the
//!   node merges and answers with its own full state (one `Reply` of N + 1
//!   entries): the passive side of a periodic exchange whose summaries
//!   differed. Throughput: state entries received.
//! - `sim/cluster`: `Sim::new` + `run` of a default scenario (`lan` preset,
//!   1 s start window, one seed, no faults) with n in {50, 200, 500} nodes
//!   and 20 s of simulated time. Before timing each n, one run's
//!   `rounds_to_membership` (gossip rounds from the last start until every
//!   node knows every other), `total_msgs` and wall time are printed to
//!   stderr, so the cost per run can be read next to the protocol's own
//!   figures. 10 samples of one run each; the measurement time stretches to
//!   fit them. Throughput: nodes.
//!
//! Messages are built (cloned) outside the timed section: the figures are
//! the state machine's own cost, not decoding or allocation of the input.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use rumour::core::{
    Config, Gossip, Identity, Incarnation, MemberState, MemberUpdate, Message, Node, NodeId, Ping,
    PushPull, PushPullKind, Time,
};
use rumour::sim::{Scenario, Sim};

/// Cluster sizes the single node is benchmarked at.
const SIZES: [usize; 2] = [100, 1000];
/// Rumours per gossip message.
const RUMOURS: usize = 50;
/// Name of the benchmarked node.
const SELF_NAME: &str = "bench-self";
/// Shortest measurement of one simulated cluster size.
const MIN_SIM_MEASUREMENT: Duration = Duration::from_secs(5);

fn addr(i: u32) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8),
        7946,
    ))
}

fn self_addr() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, 1), 7946))
}

/// The address the node joins through: member 0's.
fn seed_addr() -> SocketAddr {
    addr(0)
}

/// An alive rumour about member `i`, named with `prefix`.
/// Signed by member `i`'s own key, as every member's news is.
fn alive(prefix: &str, i: u32) -> MemberUpdate {
    let id = NodeId::new(&format!("{prefix}-{i}"), addr(i)).expect("valid name");
    Identity::from_seed(u64::from(i)).member_update(&id, Incarnation(0), MemberState::Alive, None)
}

/// N alive members, member 0 at the seed address.
fn members(n: usize) -> Vec<MemberUpdate> {
    (0..n as u32).map(|i| alive("member", i)).collect()
}

/// Drain every output; returns how many there were.
fn drain(node: &mut Node) -> usize {
    let mut k = 0;
    while let Some(out) = node.poll_output() {
        black_box(out);
        k += 1;
    }
    k
}

/// A node that has joined through the seed and learnt `members` from the
/// seed's push-pull reply, with its outputs drained.
fn node_with(members: &[MemberUpdate]) -> Node {
    let id = NodeId::new(SELF_NAME, self_addr()).expect("valid name");
    let mut node = Node::new(id, Incarnation(0), Config::lan(), 7, Time::ZERO).expect("node");
    node.join(Time::ZERO, &[seed_addr()]).expect("join");
    drain(&mut node);
    node.handle_message(
        Time::ZERO,
        seed_addr(),
        Message::push_pull(PushPull {
            kind: PushPullKind::Reply,
            summary: 0,
            members: members.to_vec(),
            ..PushPull::default()
        }),
    );
    drain(&mut node);
    assert_eq!(node.alive_members(), members.len() + 1);
    node
}

/// Handle one message at a fixed instant and drain the outputs.
fn step(node: &mut Node, from: SocketAddr, msg: Message) -> usize {
    node.handle_message(Time::from_micros(1_000), from, msg);
    drain(node)
}

fn node_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("node");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);

    for &n in &SIZES {
        let members = members(n);
        let peer = addr(1);

        // (a) A ping to us: one ack back.
        {
            let mut node = node_with(&members);
            let ping = Message::Ping(Ping {
                seq: 1,
                target: Arc::from(SELF_NAME),
                target_key: None,
                updates: Vec::new(),
            });
            g.throughput(Throughput::Elements(1));
            g.bench_function(BenchmarkId::new("ping", n), |b| {
                b.iter_batched(
                    || ping.clone(),
                    |msg| step(&mut node, peer, msg),
                    BatchSize::SmallInput,
                )
            });
        }

        // (b) 50 rumours we already hold.
        {
            let mut node = node_with(&members);
            let gossip = Message::Gossip(Gossip {
                updates: members.iter().rev().take(RUMOURS).cloned().collect(),
            });
            g.throughput(Throughput::Elements(RUMOURS as u64));
            g.bench_function(BenchmarkId::new("gossip_known", n), |b| {
                b.iter_batched(
                    || gossip.clone(),
                    |msg| step(&mut node, peer, msg),
                    BatchSize::SmallInput,
                )
            });
        }

        // (c) 50 rumours about strangers: a fresh node each time, so it
        // holds N members when the message arrives.
        {
            let mut next = n as u32;
            g.throughput(Throughput::Elements(RUMOURS as u64));
            g.bench_function(BenchmarkId::new("gossip_fresh", n), |b| {
                b.iter_batched(
                    || {
                        let node = node_with(&members);
                        let updates = (next..next + RUMOURS as u32)
                            .map(|i| alive("fresh", i))
                            .collect();
                        next += RUMOURS as u32;
                        (node, Message::Gossip(Gossip { updates }))
                    },
                    |(mut node, msg)| {
                        let k = step(&mut node, peer, msg);
                        debug_assert_eq!(k, RUMOURS);
                        node
                    },
                    BatchSize::SmallInput,
                )
            });
        }

        // (d) Steady-state anti-entropy: a full state equal to ours.
        {
            let mut node = node_with(&members);
            let mut state = members.clone();
            let me = node.member(SELF_NAME).expect("a node knows itself");
            state.push(MemberUpdate {
                id: me.id,
                incarnation: me.incarnation,
                state: me.state,
                by: None,
                key: me.key,
                signature: me.signature,
            });
            let summary = node.membership_summary();
            let push_pull = |kind| {
                Message::push_pull(PushPull {
                    kind,
                    summary,
                    members: state.clone(),
                    ..PushPull::default()
                })
            };
            g.throughput(Throughput::Elements(state.len() as u64));
            for (name, kind) in [
                ("push_pull_same", PushPullKind::Reply),
                ("push_pull_sync_same", PushPullKind::Sync),
            ] {
                let msg = push_pull(kind);
                g.bench_function(BenchmarkId::new(name, n), |b| {
                    b.iter_batched(
                        || msg.clone(),
                        |msg| step(&mut node, seed_addr(), msg),
                        BatchSize::SmallInput,
                    )
                });
                assert_eq!(
                    node.membership_summary(),
                    summary,
                    "the merge changed nothing"
                );
            }
        }
    }
    g.finish();
}

fn sim_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim");
    g.sample_size(10).warm_up_time(Duration::from_secs(1));

    for n in [50, 200, 500] {
        let scenario = Scenario {
            name: format!("bench-{n}"),
            nodes: n,
            duration: Duration::from_secs(20),
            seed: 1,
            preset: "lan".into(),
            ..Scenario::default()
        };
        let started = Instant::now();
        let report = Sim::new(scenario.clone()).expect("valid scenario").run();
        let wall = started.elapsed();
        let rounds = report
            .rounds_to_membership
            .map_or_else(|| "never".to_string(), |r| format!("{r:.1}"));
        eprintln!(
            "sim/cluster/{n}: rounds_to_membership {rounds}, total_msgs {}, \
             final membership {}, one run {wall:.2?}",
            report.total_msgs, report.final_membership
        );
        // Room for the 10 samples even where one run takes seconds (n = 500
        // takes about 3 s on a 2-core machine), without criterion's warning.
        g.measurement_time(MIN_SIM_MEASUREMENT.max(wall * 11));
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("cluster", n), |b| {
            b.iter_batched(
                || scenario.clone(),
                |s| Sim::new(s).expect("valid scenario").run(),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, node_benches, sim_benches);
criterion_main!(benches);
