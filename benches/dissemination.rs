//! Benchmarks of the data plane: applying a replicated namespace, and
//! spreading one write through a simulated cluster.
//!
//! Run them with:
//!
//! ```text
//! cargo bench --bench dissemination             # everything (about 1 to 2 minutes)
//! cargo bench --bench dissemination -- apply/   # only the delta application
//! cargo bench --bench dissemination -- rounds/  # only the simulated clusters
//! ```
//!
//! Groups:
//!
//! - `apply/delta`: a replica applying one owner's whole namespace of
//!   1,000 entries (keys `key-0000`.., values of 16 to 64 bytes, each
//!   signed) carried by one `PushPull` `Deltas` message (256 KiB messages), plus draining its outputs (1,000
//!   `EntryChanged` events). Everything is built through the public API: the
//!   owner (`lan` preset) writes the 1,000 entries with `put`; a replica
//!   joins it by a hand-run exchange of their messages; the message is the
//!   owner's answer to a `Pull` with an empty digest line. Every iteration
//!   gets a fresh replica that knows the owner as a live member and holds
//!   none of its data, built outside the timed section. Throughput: records.
//! - `identity`: signing one record (`sign_record`, what every write
//!   costs its owner), verifying it (`verify_record`, what every replica
//!   pays once per record), and verifying one already checked
//!   (`verify_record_seen_before`, a hash).
//! - `rounds/update`: one `put` spreading through a simulated cluster of
//!   n in {50, 200, 1000} nodes (`lan` preset, tree dissemination, no
//!   faults), timed from the `put` until the update tracker reports that
//!   every other running node holds it, stepping the simulation 1 ms at a
//!   time. One cluster per n is built and run until its membership
//!   converged, outside the timing; the timed updates then follow each
//!   other in that cluster, written by rotating nodes. After each n, the
//!   simulated gossip rounds from write to full dissemination of every
//!   update measured (warm-up included) are printed to stderr as
//!   `rounds to all: n=.., updates .., mean .., p99 .., max ..`, since
//!   criterion reports only wall time. A round is the `lan` gossip interval
//!   (200 ms); the tree pushes fresh data on receipt, so a write usually
//!   reaches everyone within a fraction of one. The timed section includes
//!   the background protocol traffic of the simulated interval. Throughput:
//!   nodes reached.

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use rumour::core::{
    Config, DigestEntry, Identity, Incarnation, Message, Node, NodeId, Output, PushPull,
    PushPullKind, Record, Time, Verified,
};
use rumour::sim::{Scenario, Sim};

/// Entries in the owner's namespace, all carried by the one delta.
const ENTRIES: usize = 1000;
/// Name of the writing node.
const OWNER: &str = "owner";
/// Name of the replica.
const REPLICA: &str = "replica";
/// Cluster sizes of the dissemination runs.
const CLUSTERS: [usize; 3] = [50, 200, 1000];
/// Simulated time given to the membership to converge before any write.
const CONVERGE: Duration = Duration::from_secs(10);
/// Latest the membership may converge.
const CONVERGE_MAX: Duration = Duration::from_secs(60);
/// Simulation step while waiting for an update to spread.
const STEP: Duration = Duration::from_millis(1);
/// Longest simulated time one update may take to reach every node.
const SPREAD_MAX: Duration = Duration::from_secs(30);

fn addr(last: u8) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last), 7946))
}

fn owner_addr() -> SocketAddr {
    addr(1)
}

fn replica_addr() -> SocketAddr {
    addr(2)
}

/// A node on the `lan` preset with 256 KiB messages: 1,000 signed entries
/// (about 130 bytes each) then fit one delta, as 1,000 unsigned ones fit
/// the preset's 64 KiB.
fn new_node(name: &str, at: SocketAddr, seed: u64) -> Node {
    let id = NodeId::new(name, at).expect("valid name");
    let config = Config {
        max_message_size: 256 * 1024,
        ..Config::lan()
    };
    Node::new(id, Incarnation(0), config, seed, Time::ZERO).expect("node")
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

/// Deliver every message `a` and `b` send each other until both are quiet;
/// returns the messages `a` sent to `b`. Anything else (events, messages
/// to other addresses) is dropped.
fn exchange(now: Time, a: &mut Node, b: &mut Node) -> Vec<Message> {
    let (a_addr, b_addr) = (a.id().addr(), b.id().addr());
    let mut from_a = Vec::new();
    loop {
        let mut quiet = true;
        while let Some(out) = a.poll_output() {
            if let Output::Send { to, msg } = out {
                if to == b_addr {
                    from_a.push(msg.clone());
                    b.handle_message(now, a_addr, msg);
                    quiet = false;
                }
            }
        }
        while let Some(out) = b.poll_output() {
            if let Output::Send { to, msg } = out {
                if to == a_addr {
                    a.handle_message(now, b_addr, msg);
                    quiet = false;
                }
            }
        }
        if quiet {
            return from_a;
        }
    }
}

/// The value of entry `i`: 16 to 64 bytes.
fn value(i: usize) -> Vec<u8> {
    let len = 16 + (i * 37) % 49;
    (0..len).map(|j| (i + j) as u8).collect()
}

/// What the `apply` bench needs: the owner's membership reply (its data
/// stripped), which makes a fresh replica know the owner, and the owner's
/// `Deltas` message carrying its whole namespace.
struct Fixture {
    membership: Message,
    deltas: Message,
}

impl Fixture {
    fn new() -> Fixture {
        let mut owner = new_node(OWNER, owner_addr(), 1);
        for i in 0..ENTRIES {
            owner
                .put(Time::ZERO, &format!("key-{i:04}"), &value(i))
                .expect("put");
        }
        drain(&mut owner);

        // The replica joins through the owner; the owner answers the join
        // with a `Reply` listing both members (and the data the replica's
        // empty digest lacks).
        let mut replica = new_node(REPLICA, replica_addr(), 2);
        replica.join(Time::ZERO, &[owner_addr()]).expect("join");
        let sent = exchange(Time::ZERO, &mut owner, &mut replica);
        let reply = sent
            .into_iter()
            .find_map(|m| match m {
                Message::PushPull(p) if p.kind == PushPullKind::Reply => Some(p),
                _ => None,
            })
            .expect("the owner answers the join with a Reply");
        assert_eq!(replica.alive_members(), 2, "the replica knows the owner");
        let membership = Message::push_pull(PushPull {
            deltas: Vec::new(),
            metadata: None,
            ..*reply
        });

        // A targeted pull from nothing: the answer is the whole namespace.
        owner.handle_message(
            Time::ZERO,
            replica_addr(),
            Message::push_pull(PushPull {
                kind: PushPullKind::Pull,
                digest: Some(vec![DigestEntry {
                    owner: Arc::from(OWNER),
                    generation: 0,
                    version: 0,
                    unproven: false,
                    reset_at: 0,
                }]),
                ..PushPull::default()
            }),
        );
        let mut deltas = None;
        while let Some(out) = owner.poll_output() {
            match out {
                Output::Send {
                    to,
                    msg: Message::PushPull(p),
                } if to == replica_addr() && p.kind == PushPullKind::Deltas => {
                    deltas = Some(p);
                }
                other => {
                    black_box(other);
                }
            }
        }
        let deltas = deltas.expect("the owner answers the pull with Deltas");
        assert_eq!(deltas.deltas.len(), 1, "one owner, one delta");
        let records = deltas.deltas[0].records.len();
        assert_eq!(
            records,
            ENTRIES,
            "every entry fits in the delta (max_message_size {})",
            owner.config().max_message_size
        );
        Fixture {
            membership,
            deltas: Message::PushPull(deltas),
        }
    }

    /// A replica that knows the owner as a live member and holds none of
    /// its data.
    fn replica(&self) -> Node {
        let mut replica = new_node(REPLICA, replica_addr(), 2);
        replica.join(Time::ZERO, &[owner_addr()]).expect("join");
        drain(&mut replica);
        replica.handle_message(Time::ZERO, owner_addr(), self.membership.clone());
        drain(&mut replica);
        debug_assert!(replica
            .member(OWNER)
            .is_some_and(|m| m.state.is_live() && replica.list(OWNER, "").is_empty()));
        replica
    }
}

/// Handle the delta at a fixed instant and drain the outputs.
fn apply(replica: &mut Node, msg: Message) -> usize {
    replica.handle_message(Time::from_micros(1_000), owner_addr(), msg);
    drain(replica)
}

fn apply_benches(c: &mut Criterion) {
    let fixture = Fixture::new();
    {
        let mut replica = fixture.replica();
        assert!(replica.list(OWNER, "").is_empty());
        apply(&mut replica, fixture.deltas.clone());
        assert_eq!(
            replica.list(OWNER, "").len(),
            ENTRIES,
            "the replica applied every entry"
        );
    }

    let mut g = c.benchmark_group("apply");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .throughput(Throughput::Elements(ENTRIES as u64));
    g.bench_function(BenchmarkId::new("delta", ENTRIES), |b| {
        b.iter_batched(
            || (fixture.replica(), fixture.deltas.clone()),
            |(mut replica, msg)| {
                apply(&mut replica, msg);
                replica
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// A cluster of `n` nodes whose membership has converged.
fn converged(n: usize) -> Sim {
    let scenario = Scenario::from_toml(&format!(
        "name = \"dissemination-{n}\"\nnodes = {n}\nduration = \"60s\"\nseed = 1\n"
    ))
    .expect("valid scenario");
    let mut sim = Sim::new(scenario).expect("valid scenario");
    sim.run_until(Time::ZERO + CONVERGE);
    while sim.check_membership().is_err() && sim.now() < Time::ZERO + CONVERGE_MAX {
        sim.run_for(Duration::from_secs(1));
    }
    if let Err(e) = sim.check_membership() {
        panic!("n = {n}: membership not converged by {CONVERGE_MAX:?}: {e}");
    }
    sim
}

/// Node `writer` puts one key; step until every other node holds it.
/// Returns the simulated time it took.
fn spread(sim: &mut Sim, writer: usize) -> Duration {
    sim.put(writer, "k", b"v").expect("put");
    let deadline = sim.now() + SPREAD_MAX;
    loop {
        let u = sim.updates().last().expect("the put is tracked");
        if let Some(done) = u.complete {
            return done.saturating_since(u.at);
        }
        assert!(
            sim.now() < deadline,
            "n = {}: update by node {writer} held by {} of {} after {SPREAD_MAX:?}",
            sim.len(),
            u.held,
            u.target
        );
        sim.run_for(STEP);
    }
}

fn rounds_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("rounds");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500));

    for n in CLUSTERS {
        g.measurement_time(if n >= 1000 {
            Duration::from_secs(5)
        } else {
            Duration::from_secs(2)
        });
        g.throughput(Throughput::Elements(n as u64 - 1));
        // Built on the first call, so that a filter skipping this size
        // skips its setup too.
        let mut sim: Option<Sim> = None;
        let mut rounds: Vec<f64> = Vec::new();
        let mut writes = 0usize;
        g.bench_function(BenchmarkId::new("update", n), |b| {
            let sim = sim.get_or_insert_with(|| {
                let started = Instant::now();
                let sim = converged(n);
                eprintln!(
                    "rounds/update/{n}: membership converged at {:.1} s simulated, \
                     set up in {:.2?}",
                    sim.now().as_secs_f64(),
                    started.elapsed()
                );
                sim
            });
            let interval = sim.config().gossip_interval;
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Rotate the writer over the cluster with a stride
                    // coprime to n, so writes come from everywhere.
                    let writer = (writes * 7919) % n;
                    writes += 1;
                    let t = Instant::now();
                    let took = spread(sim, writer);
                    total += t.elapsed();
                    rounds.push(took.as_secs_f64() / interval.as_secs_f64());
                }
                total
            })
        });
        let Some(sim) = sim else { continue };
        let interval = sim.config().gossip_interval;
        rounds.sort_by(f64::total_cmp);
        let mean = rounds.iter().sum::<f64>() / rounds.len() as f64;
        let p99 = rounds[(rounds.len() * 99).div_ceil(100) - 1];
        let max = rounds[rounds.len() - 1];
        eprintln!(
            "rounds to all: n={n}, updates {}, mean {mean:.3}, p99 {p99:.3}, max {max:.3} \
             (gossip interval {interval:?}; simulated mean {:.1?}, p99 {:.1?}, max {:.1?})",
            rounds.len(),
            interval.mul_f64(mean),
            interval.mul_f64(p99),
            interval.mul_f64(max),
        );
        if let Err(e) = sim.check_membership() {
            panic!("n = {n}: membership no longer agrees: {e}");
        }
    }
    g.finish();
}

/// The cost of one record's signature: the owner signing it on write, and
/// a replica verifying it (with a fresh memory of checked signatures, so
/// nothing is remembered between iterations).
fn identity_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("identity");
    let owner = Identity::from_seed(1);
    let record = |i: u64| Record::Entry {
        key: Arc::from(format!("key-{i:04}").as_str()),
        value: Some(Arc::from(value(i as usize).as_slice())),
    };
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("sign_record", |b| {
        b.iter(|| {
            i += 1;
            black_box(owner.versioned(OWNER, 1, i, record(i)))
        })
    });
    let signed = owner.versioned(OWNER, 1, 7, record(7));
    let key = owner.public();
    g.bench_function("verify_record", |b| {
        b.iter_batched(
            Verified::new,
            |v| assert!(v.verify_record(&key, OWNER, 1, black_box(&signed))),
            BatchSize::SmallInput,
        )
    });
    let remembered = Verified::new();
    g.bench_function("verify_record_seen_before", |b| {
        b.iter(|| assert!(remembered.verify_record(&key, OWNER, 1, black_box(&signed))))
    });
    g.finish();
}

criterion_group!(benches, apply_benches, rounds_benches, identity_benches);
criterion_main!(benches);
