//! One run of one system: formation, writes, then an idle window.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::link::Counters;
use crate::procstat;
use crate::result::RunResult;
use crate::spec::{Spec, GOSSIP_INTERVAL};
use crate::systems::Cluster;

fn rounds(d: Duration) -> f64 {
    d.as_secs_f64() / GOSSIP_INTERVAL.as_secs_f64()
}

/// Start the cluster and measure everything [`RunResult`] holds.
pub(crate) async fn run<C: Cluster>(spec: &Spec) -> anyhow::Result<RunResult> {
    let t = spec.timings;
    let counters = Arc::new(Counters::default());
    let mut result = RunResult::new(spec);

    let start = Instant::now();
    let cluster = C::start(spec, counters.clone()).await?;
    let short = formation(&cluster, spec, start).await;
    result.formed_short = short;
    if short == 0 {
        result.formed_rounds = Some(rounds(start.elapsed()));
    }
    let say = |what: String| {
        if spec.verbose {
            eprintln!("  [{:7.2} s] {what}", start.elapsed().as_secs_f64());
        }
    };
    say(format!("formation: {short} nodes short"));
    if spec.verbose {
        let mut sums: Vec<(&'static str, u64)> = Vec::new();
        for i in 0..spec.n {
            for (k, v) in cluster.counters(i).await {
                match sums.iter_mut().find(|(s, _)| *s == k) {
                    Some((_, sum)) => *sum += v,
                    None => sums.push((k, v)),
                }
            }
        }
        let moved: Vec<String> = sums
            .iter()
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !moved.is_empty() {
            say(format!(
                "formation: counters over all nodes: {}",
                moved.join(", ")
            ));
        }
    }

    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut delivered = Vec::new();
    for w in 0..t.writes {
        let owner = rng.random_range(0..spec.n);
        let key = format!("bench-{w}");
        let value = format!("v{w}-{}", spec.seed);
        let outcome = write(&cluster, spec, owner, &key, &value).await.map(rounds);
        match outcome {
            Some(r) => delivered.push(r),
            None => result.writes_lost += 1,
        }
        say(match outcome {
            Some(r) => format!("write {w} by node {owner}: {r:.2} rounds"),
            None => format!("write {w} by node {owner}: never arrived"),
        });
    }
    result.set_writes(&delivered);

    // A pause before measuring, not a synchronisation: the last write's
    // traffic dies down.
    tokio::time::sleep(t.settle).await;
    let before = (counters.totals(), procstat::cpu_seconds(), Instant::now());
    tokio::time::sleep(t.idle).await;
    let after = (counters.totals(), procstat::cpu_seconds(), Instant::now());
    let secs = (after.2 - before.2).as_secs_f64();
    let per_node_s = |a: u64, b: u64| (a - b) as f64 / spec.n as f64 / secs;
    result.idle_msgs = per_node_s(after.0.datagrams, before.0.datagrams);
    result.idle_payload_bytes = per_node_s(after.0.payload, before.0.payload);
    result.idle_wire_bytes = per_node_s(after.0.wire, before.0.wire);
    result.cpu_cores = match (before.1, after.1) {
        (Some(b), Some(a)) => Some((a - b) / secs),
        _ => None,
    };
    result.idle_secs = secs;
    result.load_1min = procstat::load_1min();
    say(format!(
        "idle: {:.3} cores",
        result.cpu_cores.unwrap_or(f64::NAN)
    ));
    result.false_dead = cluster.false_dead();
    let totals = counters.totals();
    result.dropped = totals.dropped;
    result.send_errors = totals.errors;
    result.peak_rss_kib = procstat::peak_rss_kib();
    cluster.stop().await;
    Ok(result)
}

/// Poll until every node knows all n, or the timeout; the nodes still short.
async fn formation<C: Cluster>(cluster: &C, spec: &Spec, started: Instant) -> usize {
    let deadline = Instant::now() + spec.timings.formation_timeout;
    let mut pending: BTreeSet<usize> = (0..spec.n).collect();
    loop {
        let mut done = Vec::new();
        for &i in &pending {
            if Instant::now() >= deadline {
                break;
            }
            if cluster.known(i).await >= spec.n {
                done.push(i);
            }
        }
        for i in done {
            pending.remove(&i);
        }
        if spec.verbose && !pending.is_empty() {
            let (mut fewest, mut alone) = (spec.n, 0);
            for &i in &pending {
                let known = cluster.known(i).await;
                fewest = fewest.min(known);
                alone += usize::from(known <= 1);
            }
            eprintln!(
                "  [{:7.3} s] formation: {} nodes short, the fewest known {fewest}, {alone} knowing only themselves",
                started.elapsed().as_secs_f64(),
                pending.len()
            );
        }
        if pending.is_empty() || Instant::now() >= deadline {
            return pending.len();
        }
        tokio::time::sleep(spec.timings.poll).await;
    }
}

/// Write on `owner` and poll until every node holds the value: the time
/// it took, or `None` if some node still lacked it at the timeout.
async fn write<C: Cluster>(
    cluster: &C,
    spec: &Spec,
    owner: usize,
    key: &str,
    value: &str,
) -> Option<Duration> {
    let mut before = Vec::new();
    if spec.verbose {
        for j in 0..spec.n {
            before.push(cluster.counters(j).await);
        }
    }
    let start = Instant::now();
    cluster.write(owner, key, value).await;
    let mut pending: BTreeSet<usize> = (0..spec.n).collect();
    loop {
        let mut done = Vec::new();
        for &j in &pending {
            if start.elapsed() >= spec.timings.write_timeout {
                break;
            }
            if cluster.holds(j, owner, key, value).await {
                done.push(j);
            }
        }
        if pending.len() == done.len() && spec.verbose && start.elapsed() > GOSSIP_INTERVAL {
            // A slow write: how the last nodes' counters moved meanwhile.
            for &j in &done {
                let now = cluster.counters(j).await;
                let moved: Vec<String> = now
                    .iter()
                    .zip(&before[j])
                    .filter(|((_, a), (_, b))| a != b)
                    .map(|((k, a), (_, b))| format!("{k} +{}", a - b))
                    .collect();
                eprintln!("    last: node {j}: {}", moved.join(", "));
            }
        }
        for j in done {
            pending.remove(&j);
        }
        if pending.is_empty() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= spec.timings.write_timeout {
            return None;
        }
        tokio::time::sleep(spec.timings.poll).await;
    }
}
