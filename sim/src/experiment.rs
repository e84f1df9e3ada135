//! The dissemination experiment: how many rounds one update takes to reach
//! every node, and what it costs, for each dissemination mode, set beside
//! the synchronous-round theory.
//!
//! Each run starts a cluster (one seed, LAN preset unless told otherwise),
//! waits for membership to converge, warms the data plane with a few writes
//! (the broadcast tree forms from its first broadcasts), then writes
//! `updates` single updates, each from a random node, one at a time, each
//! followed by one push-pull interval of quiet. Per update it records the rounds (elapsed
//! time / gossip interval) to reach every other node, and the data-plane
//! messages and bytes sent during its window.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rumour_core::{Dissemination, Time};
use serde::Serialize;

use crate::{Scenario, Sim, SimError};

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Cluster sizes.
    pub nodes: Vec<usize>,
    /// Modes.
    pub modes: Vec<Dissemination>,
    /// Peers per round (and per eager push in tree mode: the initial eager
    /// links).
    pub fanout: usize,
    /// Runs per (n, mode, phase), seeds `seed`, `seed + 1`, ...
    pub seeds: u64,
    /// First seed.
    pub seed: u64,
    /// Measured updates per run.
    pub updates: usize,
    /// Message loss.
    pub loss: f64,
    /// Random timer phases, lockstep, strict lockstep, or several.
    pub phases: Vec<Phases>,
    /// Protocol preset.
    pub preset: String,
    /// Start each cluster formed rather than through one seed (see
    /// [`Scenario::formed`]).
    pub formed: bool,
}

/// How the nodes' rounds line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phases {
    /// Each node's timers at a random phase, as in a real cluster.
    Random,
    /// Aligned timers, messages at network speed (a pull may be answered
    /// with data that arrived earlier in the same round).
    Lockstep,
    /// The synchronous model exactly: aligned timers, and gossiped data
    /// takes effect at the end of its round (see [`Scenario::strict`]).
    Strict,
}

impl Phases {
    /// Its name in tables: `random`, `lockstep` or `strict`.
    pub fn name(self) -> &'static str {
        match self {
            Phases::Random => "random",
            Phases::Lockstep => "lockstep",
            Phases::Strict => "strict",
        }
    }
}

/// One line of the result.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Cluster size.
    pub nodes: usize,
    /// Mode.
    pub mode: String,
    /// Fanout.
    pub fanout: usize,
    /// Whether timers were aligned (synchronous rounds).
    pub lockstep: bool,
    /// `random`, `lockstep` or `strict` (see [`Phases`]).
    pub phases: String,
    /// Updates measured (over all seeds).
    pub updates: usize,
    /// Fraction of updates that reached every node within the window.
    pub delivery_ratio: f64,
    /// Rounds to reach 50% of the other nodes, mean.
    pub rounds_50: f64,
    /// Rounds to reach 99%, mean.
    pub rounds_99: f64,
    /// Rounds to reach 100%, mean.
    pub rounds_mean: f64,
    /// Rounds to reach 100%, 99th percentile.
    pub rounds_p99: f64,
    /// Rounds to reach 100%, largest.
    pub rounds_max: f64,
    /// Data-plane messages sent per node per update.
    pub msgs_per_node: f64,
    /// Data-plane bytes sent per node per update.
    pub bytes_per_node: f64,
    /// Encoded size of one update.
    pub update_bytes: f64,
    /// `bytes_per_node / update_bytes`: copies' worth of bytes each node
    /// receives per update (all data-plane traffic counted, except the
    /// push-pull openings that are sent whether or not anything changed).
    pub redundancy: f64,
    /// Mean rounds of the idealised synchronous model of the mode (seeded
    /// Monte Carlo: no latency, no loss), if the mode has one.
    pub model_rounds: Option<f64>,
    /// The closed-form reference, in words.
    pub theory: String,
    /// Infection curve: mean fraction of nodes holding the update after
    /// each whole round, from round 0 (the write).
    pub curve: Vec<f64>,
}

/// Run the plan; `progress` is told about each finished run.
pub fn run(plan: &Plan, mut progress: impl FnMut(&str)) -> Result<Vec<Row>, SimError> {
    let mut rows = Vec::new();
    for &n in &plan.nodes {
        for &mode in &plan.modes {
            for &phases in &plan.phases {
                let mut all = Vec::new();
                for s in 0..plan.seeds {
                    let seed = plan.seed + s;
                    let runs = run_one(plan, n, mode, phases, seed)?;
                    progress(&format!(
                        "n={n} mode={mode} {} seed={seed}: {} updates",
                        phases.name(),
                        runs.len()
                    ));
                    all.extend(runs);
                }
                rows.push(summarise(plan, n, mode, phases, &all));
            }
        }
    }
    Ok(rows)
}

struct Measured {
    rounds_50: Option<f64>,
    rounds_99: Option<f64>,
    rounds_100: Option<f64>,
    msgs: u64,
    bytes: u64,
    size: usize,
    curve: Vec<f64>,
}

fn scenario(plan: &Plan, n: usize, mode: Dissemination, phases: Phases, seed: u64) -> String {
    let lockstep = phases == Phases::Lockstep;
    let strict = phases == Phases::Strict;
    format!(
        "name = \"dissemination\"\nnodes = {n}\nseed = {seed}\nduration = \"1h\"\npreset = \"{}\"\nlockstep = {lockstep}\nstrict = {strict}\nformed = {}\n[config]\ndissemination = \"{mode}\"\nfanout = {}\n[link]\nloss = {}\n",
        plan.preset, plan.formed, plan.fanout, plan.loss
    )
}

fn run_one(
    plan: &Plan,
    n: usize,
    mode: Dissemination,
    phases: Phases,
    seed: u64,
) -> Result<Vec<Measured>, SimError> {
    let s = Scenario::from_toml(&scenario(plan, n, mode, phases, seed))?;
    let mut sim = Sim::new(s)?;
    let gi = sim.config().gossip_interval;
    // Each update gets one push-pull interval to reach everyone.
    let window = sim.config().push_pull_interval;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xd155_e111);
    // Membership first: at most two minutes of simulated time.
    let mut t = Duration::from_secs(5);
    sim.run_until(Time::ZERO + t);
    while sim.check_membership().is_err() && t < Duration::from_secs(120) {
        t += Duration::from_secs(1);
        sim.run_until(Time::ZERO + t);
    }
    // Warm-up writes: the broadcast tree prunes itself on the first ones.
    for w in 0..5 {
        let i = rng.random_range(0..n);
        let _ = sim.put(i, &format!("warm-{w}"), b"warm-up");
        sim.run_for(Duration::from_secs(1));
    }
    sim.run_for(window);
    let mut out = Vec::new();
    for u in 0..plan.updates {
        let i = rng.random_range(0..n);
        if phases == Phases::Strict {
            // The model's round 0 starts with one node informed: write at
            // the end of a round, so that the writer's first round is the
            // next one.
            let end = crate::world::round_end(sim.now(), gi);
            sim.run_until(end);
        }
        let (m0, b0) = sim.data_traffic();
        let value = format!("value-{u:08}");
        if sim.put(i, &format!("key-{u}"), value.as_bytes()).is_err() {
            continue;
        }
        sim.run_for(window);
        let (m1, b1) = sim.data_traffic();
        let update = sim.updates().last().expect("just written");
        let rounds = |t: Option<Time>| t.map(|t| (t - update.at).as_secs_f64() / gi.as_secs_f64());
        let whole = (window.as_secs_f64() / gi.as_secs_f64()) as usize;
        let mut curve = vec![0.0; whole + 1];
        for (r, c) in curve.iter_mut().enumerate() {
            let until = update.at + gi * r as u32;
            let held = update.times.iter().filter(|t| **t <= until).count();
            *c = (held + 1) as f64 / (update.target + 1) as f64;
        }
        out.push(Measured {
            rounds_50: rounds(update.time_to(0.5)),
            rounds_99: rounds(update.time_to(0.99)),
            rounds_100: rounds(update.complete),
            msgs: m1 - m0,
            bytes: b1 - b0,
            size: update.size,
            curve,
        });
    }
    Ok(out)
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn summarise(plan: &Plan, n: usize, mode: Dissemination, phases: Phases, all: &[Measured]) -> Row {
    let mut full: Vec<f64> = all.iter().filter_map(|m| m.rounds_100).collect();
    full.sort_by(f64::total_cmp);
    let p99 = if full.is_empty() {
        f64::NAN
    } else {
        full[((0.99 * full.len() as f64).ceil() as usize).clamp(1, full.len()) - 1]
    };
    let r50: Vec<f64> = all.iter().filter_map(|m| m.rounds_50).collect();
    let r99: Vec<f64> = all.iter().filter_map(|m| m.rounds_99).collect();
    let count = all.len().max(1) as f64;
    let msgs = all.iter().map(|m| m.msgs).sum::<u64>() as f64 / count / n as f64;
    let bytes = all.iter().map(|m| m.bytes).sum::<u64>() as f64 / count / n as f64;
    let size = all.iter().map(|m| m.size).sum::<usize>() as f64 / count;
    let len = all.iter().map(|m| m.curve.len()).max().unwrap_or(0);
    let curve = (0..len)
        .map(|r| {
            mean(
                &all.iter()
                    .filter_map(|m| m.curve.get(r).copied())
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let (model_rounds, theory) = reference(mode, plan.fanout, n, plan.seed);
    Row {
        nodes: n,
        mode: mode.to_string(),
        fanout: plan.fanout,
        lockstep: phases != Phases::Random,
        phases: phases.name().to_string(),
        updates: all.len(),
        delivery_ratio: full.len() as f64 / count,
        rounds_50: mean(&r50),
        rounds_99: mean(&r99),
        rounds_mean: mean(&full),
        rounds_p99: p99,
        rounds_max: full.last().copied().unwrap_or(f64::NAN),
        msgs_per_node: msgs,
        bytes_per_node: bytes,
        update_bytes: size,
        redundancy: bytes / size,
        model_rounds,
        theory,
        curve,
    }
}

/// The synchronous-round reference for a mode: a seeded Monte Carlo of the
/// idealised model, and the closed form.
pub fn reference(mode: Dissemination, k: usize, n: usize, seed: u64) -> (Option<f64>, String) {
    let nf = n as f64;
    let theory = match mode {
        Dissemination::Push if k == 1 => {
            format!("log2 n + ln n = {:.1} (Pittel 1987)", nf.log2() + nf.ln())
        }
        Dissemination::Push => format!(
            "≥ log_{} n = {:.1} (counting bound)",
            k + 1,
            nf.ln() / ((k + 1) as f64).ln()
        ),
        Dissemination::PushAndPull if k == 1 => format!(
            "log3 n + O(log log n): {:.1} + O({:.1}) (Karp et al. 2000)",
            nf.ln() / 3f64.ln(),
            nf.ln().ln()
        ),
        Dissemination::PushAndPull => format!(
            "≥ log_{} n = {:.1} (counting bound)",
            2 * k + 1,
            nf.ln() / ((2 * k + 1) as f64).ln()
        ),
        Dissemination::Pull => format!(
            "log2 n + O(log log n): {:.1} + O({:.1}) (Karp et al. 2000, pull)",
            nf.log2(),
            nf.ln().ln()
        ),
        Dissemination::Tree => "eager push at network speed; lazy repair per round".into(),
    };
    if mode == Dissemination::Tree || n < 2 {
        return (None, theory);
    }
    let trials = if n > 5000 { 20 } else { 100 };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7e0_1e55);
    let mut total = 0usize;
    for _ in 0..trials {
        total += model_rounds(mode, k, n, &mut rng);
    }
    (Some(total as f64 / trials as f64), theory)
}

/// The infection curve of the synchronous model of a mode: the mean
/// fraction of the `n` nodes informed after each whole round, from round 0
/// (one node) until every trial informed everyone. None for the tree, which
/// has no round model.
pub fn model_curve(mode: Dissemination, k: usize, n: usize, seed: u64) -> Option<Vec<f64>> {
    if mode == Dissemination::Tree || n < 2 {
        return None;
    }
    let trials = if n > 5000 { 20 } else { 100 };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7e0_1e55);
    let runs: Vec<Vec<usize>> = (0..trials)
        .map(|_| {
            let mut counts = Vec::new();
            model_trial(mode, k, n, &mut rng, |c| counts.push(c));
            counts
        })
        .collect();
    let len = runs.iter().map(Vec::len).max().unwrap_or(0);
    // A finished trial stays at n.
    Some(
        (0..len)
            .map(|r| {
                let sum: usize = runs.iter().map(|c| c.get(r).copied().unwrap_or(n)).sum();
                sum as f64 / trials as f64 / n as f64
            })
            .collect(),
    )
}

/// One trial of the synchronous model: rounds until all `n` are informed.
fn model_rounds(mode: Dissemination, k: usize, n: usize, rng: &mut ChaCha8Rng) -> usize {
    model_trial(mode, k, n, rng, |_| {})
}

/// One trial of the synchronous model, telling `after` how many nodes are
/// informed at round 0 and after each round; returns the rounds taken.
fn model_trial(
    mode: Dissemination,
    k: usize,
    n: usize,
    rng: &mut ChaCha8Rng,
    mut after: impl FnMut(usize),
) -> usize {
    let mut informed = vec![false; n];
    informed[rng.random_range(0..n)] = true;
    let mut count = 1;
    let mut rounds = 0;
    after(count);
    let push = matches!(mode, Dissemination::Push | Dissemination::PushAndPull);
    let pull = matches!(mode, Dissemination::Pull | Dissemination::PushAndPull);
    while count < n && rounds < 10_000 {
        rounds += 1;
        let before = informed.clone();
        for i in 0..n {
            for _ in 0..k {
                let mut j = rng.random_range(0..n - 1);
                if j >= i {
                    j += 1;
                }
                if push && before[i] && !informed[j] {
                    informed[j] = true;
                    count += 1;
                }
                if pull && before[j] && !informed[i] {
                    informed[i] = true;
                    count += 1;
                }
            }
        }
        after(count);
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_matches_the_known_figures() {
        // Push-pull with one peer takes about log3 n + ln ln n rounds; push
        // with fanout 3 at least log4 n.
        let (pp, _) = reference(Dissemination::PushAndPull, 1, 1000, 1);
        let pp = pp.unwrap();
        assert!((7.0..11.0).contains(&pp), "{pp}");
        let (push3, _) = reference(Dissemination::Push, 3, 1000, 1);
        let push3 = push3.unwrap();
        assert!(push3 >= (1000f64).ln() / 4f64.ln(), "{push3}");
        assert!(push3 < 12.0, "{push3}");
    }
}
