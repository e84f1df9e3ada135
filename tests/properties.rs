//! Property tests of membership under loss, partitions and crashes, run in
//! the simulator.
//!
//! Each case draws a seed, a cluster size (3 to 64), a loss rate (0 to 20%),
//! a schedule of partitions that all heal, and a few crashes. The case count
//! comes from `PROPTEST_CASES` (default 12, sized for CI). A failure prints
//! the case and a scenario file that replays it with `rumour sim --scenario`.

mod support;

use std::time::Duration;

use proptest::prelude::*;
use rumour::core::Config;
use rumour::sim::{Fault, NodeSet, Report, Scenario, Sim};

/// One partition: from `at` for `lasts`, nodes `0..split` cut from the rest.
#[derive(Clone, Debug)]
struct Split {
    at: Duration,
    lasts: Duration,
    split_frac: f64,
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    nodes: usize,
    loss: f64,
    splits: Vec<Split>,
    /// (when, fraction of the cluster picking the node)
    crashes: Vec<(Duration, f64)>,
}

/// Partitions of the first property last at most this long: well under
/// `dead_reap_after`, so neither side forgets the other before the heal.
/// The second property takes partitions past it (`LONG_PARTITIONS`).
const MAX_PARTITION: Duration = Duration::from_secs(60);

/// Partitions of the long-partition property: from past `dead_reap_after`
/// (LAN 120 s after the death, which takes up to `suspicion_max` more: by
/// then both sides have forgotten each other, keeping only the reconnect
/// list) to 15 minutes.
const LONG_PARTITIONS: std::ops::RangeInclusive<u64> = 150..=900;

fn case() -> impl Strategy<Value = Case> {
    let split =
        (10u64..60, 1u64..=MAX_PARTITION.as_secs(), 0.1f64..0.9).prop_map(|(at, lasts, f)| Split {
            at: Duration::from_secs(at),
            lasts: Duration::from_secs(lasts),
            split_frac: f,
        });
    let crash = (5u64..60, 0.0f64..1.0).prop_map(|(at, f)| (Duration::from_secs(at), f));
    (
        any::<u64>(),
        3usize..=64,
        prop_oneof![Just(0.0), 0.0f64..0.2],
        prop::collection::vec(split, 0..=2),
        prop::collection::vec(crash, 0..=2),
    )
        .prop_map(|(seed, nodes, loss, splits, crashes)| Case {
            seed,
            nodes,
            loss,
            splits,
            crashes,
        })
}

/// How long after the last heal or crash every live node must again see
/// exactly the live members as alive, from the LAN preset:
///
/// - a crash is detected within `3 * probe_period + suspicion_max`;
/// - after a heal, the sides find each other through push-pull: each round
///   goes to live members and to the next dead one in name order, so a node
///   with `d` dead tries each within `d` intervals, and with several nodes a
///   side some pair across the cut has synced within two; the refutations it
///   triggers go straight back across it, then spread as rumours and through
///   further syncs: two more intervals;
/// - loss of up to 20% can cost each of those steps a retry: one more interval.
fn settle_bound(c: &Config) -> Duration {
    let detect = c.probe_period * 3 + c.suspicion_max;
    let reunite = c.push_pull_interval * 5;
    detect.max(reunite) + c.suspicion_max
}

fn scenario(case: &Case) -> (Scenario, Duration) {
    let mut s = Scenario {
        name: "property".into(),
        nodes: case.nodes,
        seed: case.seed,
        ..Scenario::default()
    };
    s.link.loss = case.loss;
    let mut last = Duration::from_secs(2);
    let mut splits = case.splits.clone();
    splits.sort_by_key(|p| p.at);
    // Partitions never overlap: each starts after the previous heal.
    let mut free_from = Duration::ZERO;
    for p in &splits {
        let at = p.at.max(free_from);
        let heal = at + p.lasts;
        let k = ((case.nodes as f64 * p.split_frac) as usize).clamp(1, case.nodes - 1);
        s.faults.push(Fault::Partition {
            at,
            groups: [
                ("a".to_string(), NodeSet::List((0..k).collect())),
                ("b".to_string(), NodeSet::List((k..case.nodes).collect())),
            ]
            .into_iter()
            .collect(),
        });
        s.faults.push(Fault::Heal { at: heal });
        free_from = heal + Duration::from_secs(1);
        last = last.max(heal);
    }
    for (at, f) in &case.crashes {
        // Node 0 is the seed; keep it up so the cluster stays joinable.
        if case.nodes > 3 {
            let i = 1 + ((case.nodes - 1) as f64 * f) as usize % (case.nodes - 1);
            s.faults.push(Fault::Crash {
                at: *at,
                nodes: NodeSet::List(vec![i]),
            });
            last = last.max(*at);
        }
    }
    s.faults.sort_by_key(|f| f.at());
    let bound = settle_bound(&s.protocol_config().expect("lan preset"));
    s.duration = last + bound;
    (s, last)
}

fn replay(s: &Scenario) -> String {
    format!(
        "replay: save this as case.toml and run `rumour sim --scenario case.toml`\n{}",
        toml::to_string(s).unwrap_or_else(|e| format!("(could not render: {e})"))
    )
}

fn run(case: &Case) -> (Report, Result<(), String>, Scenario) {
    let (s, _) = scenario(case);
    let mut sim = Sim::new(s.clone()).expect("generated scenarios are valid");
    sim.run_until(rumour::core::Time::ZERO + s.duration);
    let check = sim.check_membership();
    (sim.report(), check, s)
}

/// A case whose partitions outlast the reap: a smaller cluster, up to 10%
/// loss, one or two partitions, no crash.
fn long_case() -> impl Strategy<Value = Case> {
    let split = (10u64..60, LONG_PARTITIONS, 0.1f64..0.9).prop_map(|(at, lasts, f)| Split {
        at: Duration::from_secs(at),
        lasts: Duration::from_secs(lasts),
        split_frac: f,
    });
    (
        any::<u64>(),
        3usize..=12,
        prop_oneof![Just(0.0), 0.0f64..0.1],
        prop::collection::vec(split, 1..=2),
    )
        .prop_map(|(seed, nodes, loss, splits)| Case {
            seed,
            nodes,
            loss,
            splits,
            crashes: Vec::new(),
        })
}

/// How long after a heal past the reap the sides take to find each other:
/// each node knocks on one forgotten member every `reconnect_interval`,
/// and with no crash every member on its list is across the cut and
/// answers, so the first knock after the heal reunites the sides (one more
/// interval for a knock lost to loss); then they settle as after any heal.
/// The target is `reconnect_interval` plus one push-pull interval.
fn long_settle_bound(c: &Config) -> Duration {
    c.reconnect_interval * 2 + settle_bound(c)
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Each case simulates up to half an hour: a third of the cases.
        cases: (support::cases() / 3).max(1),
        ..support::proptest_config()
    })]

    /// Partitions longer than `dead_reap_after`, so each side declares the
    /// other dead and forgets it: after the last heal, within
    /// `long_settle_bound`, every node again sees every node alive, with
    /// no operator action (the reconnect list knocks).
    #[test]
    fn membership_heals_after_partitions_past_the_reap(case in long_case()) {
        let (mut s, last) = scenario(&case);
        let c = s.protocol_config().expect("lan preset");
        s.duration = last + long_settle_bound(&c);
        let mut sim = Sim::new(s.clone()).expect("generated scenarios are valid");
        sim.run_until(rumour::core::Time::ZERO + s.duration);
        let check = sim.check_membership();
        prop_assert!(check.is_ok(), "{}\n{case:?}\n{}", check.unwrap_err(), replay(&s));
        // The sides did forget each other: the heal came from knocks.
        let knocks = sim.report().node_counters["reconnect_attempts"];
        prop_assert!(knocks > 0, "no reconnect knock\n{case:?}\n{}", replay(&s));
    }
}

proptest! {
    #![proptest_config(support::proptest_config())]

    /// After the last heal and crash, within `settle_bound`, every live node
    /// sees exactly the live members as alive, and no crashed node is alive
    /// or suspect anywhere. With loss up to 10% and no partition, no live
    /// node is ever declared dead.
    #[test]
    fn membership_converges_after_faults(case in case()) {
        let (report, check, s) = run(&case);
        prop_assert!(check.is_ok(), "{} at {:.1}s\n{case:?}\n{}", check.unwrap_err(), report.simulated_s, replay(&s));
        if case.loss <= 0.10 && case.splits.is_empty() {
            prop_assert_eq!(report.false_positives, 0, "{:?}\n{}", case, replay(&s));
        }
    }
}

/// The headline target, at a CI-sized scale: 10% loss, no partition, no
/// false positive.
#[test]
fn no_false_positives_at_ten_percent_loss() {
    let mut s = Scenario::load("lossy").unwrap();
    s.nodes = 64;
    s.duration = Duration::from_secs(180);
    s.seed = 3;
    let report = Sim::new(s.clone()).unwrap().run();
    assert_eq!(report.false_positives, 0, "{}", replay(&s));
    assert_eq!(report.final_membership, "agrees", "{}", replay(&s));
}
