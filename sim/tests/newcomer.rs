//! How long a newcomer takes to receive everything a formed cluster holds:
//! every member, and every record of every namespace, by paged push-pull.
//!
//! A measurement, not a check for CI (it builds a cluster of `NODES`
//! nodes): run it in release,
//!
//! ```text
//! NODES=10000 MAX_MESSAGE_SIZE=1400 cargo test --release -p rumour-sim \
//!     --test newcomer -- --ignored --nocapture
//! ```
//!
//! The cluster starts formed, each node writes `KEYS` entries (default 10),
//! and once every record is everywhere the last node is
//! crashed and started afresh: no data, no members, one seed. The figure is
//! the simulated time from its start until it knows every member and holds
//! every other owner's namespace at the version node 0 holds.

use std::time::{Duration, Instant};

use rumour_sim::{node_name, Scenario, Sim};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether node `new` holds every member and every namespace (but its
/// own) as node `reference` does.
fn holds_everything(sim: &Sim, new: usize, reference: usize, n: usize) -> bool {
    let (Some(a), Some(b)) = (sim.node(new), sim.node(reference)) else {
        return false;
    };
    a.members().count() == n
        && (0..n)
            .filter(|&o| o != new)
            .all(|o| a.namespace_version(&node_name(o)) == b.namespace_version(&node_name(o)))
}

#[test]
#[ignore = "a measurement: run in release with --ignored (see the file's head)"]
fn a_newcomer_receives_everything() {
    let (n, keys) = (env("NODES", 1000), env("KEYS", 10));
    let max = env("MAX_MESSAGE_SIZE", 65536);
    let value_len = max.min(16384) / 4;
    let toml = format!(
        "name = \"newcomer\"\nnodes = {n}\nformed = true\nduration = \"600s\"\n\
         [workload]\nkeys_per_node = {keys}\n\
         [config]\nmax_message_size = {max}\nmax_value_len = {value_len}\n"
    );
    let wall = Instant::now();
    let mut sim = Sim::new(Scenario::from_toml(&toml).expect("scenario")).expect("sim");
    // Formation and the first spread of every record.
    while !holds_everything(&sim, 1, 0, n) {
        assert!(
            sim.now().as_secs_f64() < 300.0,
            "the cluster had not converged in 300 s"
        );
        sim.run_for(Duration::from_secs(5));
    }
    let formed = sim.now();
    let new = n - 1;
    sim.crash(new);
    sim.run_for(Duration::from_millis(1));
    sim.restart(new);
    let start = sim.now();
    let step = Duration::from_millis(5);
    while !holds_everything(&sim, new, 0, n) {
        assert!(
            sim.now() - start < Duration::from_secs(60),
            "no catch-up in 60 s"
        );
        sim.run_for(step);
    }
    let took = sim.now() - start;
    let stats = sim.node(new).expect("running").stats();
    let pages = stats.pages_sent;
    if std::env::var("TRACE").is_ok() {
        eprintln!("{stats:?}");
    }
    println!(
        "newcomer at n = {n}, {keys} keys per node, max_message_size {max}: every member and \
         record after {:.3} s simulated (to within {} ms), {pages} pages asked for \
         (the cluster held every record at {:.0} s); {:.1} s wall in all",
        took.as_secs_f64(),
        step.as_millis(),
        formed.as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );
}
