//! How a formed cluster spreads its first writes when every node writes at
//! once: every half second, the (node, owner, version) slots not yet held,
//! the broadcast tree's pieces, and the owners whose writes are at under a
//! tenth of the nodes.
//!
//! A measurement, not a check for CI: run it in release,
//!
//! ```text
//! NODES=500 MAX_MESSAGE_SIZE=1400 cargo test --release -p rumour-sim \
//!     --test first_writes -- --ignored --nocapture
//! ```

use std::time::Duration;

use rumour_sim::{node_name, Scenario, Sim};

const KEYS: u64 = 10;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The version `i` holds of `o`'s namespace (0 if none).
fn held(sim: &Sim, i: usize, o: usize) -> u64 {
    sim.node(i)
        .and_then(|n| n.namespace_version(&node_name(o)))
        .map_or(0, |(_, v)| v)
}

#[test]
#[ignore = "a measurement: run in release with --ignored (see the file's head)"]
fn first_writes_spread() {
    let (n, max) = (env("NODES", 500), env("MAX_MESSAGE_SIZE", 1400));
    let toml = format!(
        "name = \"first-writes\"\nnodes = {n}\nformed = true\nduration = \"600s\"\n\
         [workload]\nkeys_per_node = {KEYS}\n\
         [config]\nmax_message_size = {max}\nmax_value_len = 350\n"
    );
    let mut sim = Sim::new(Scenario::from_toml(&toml).expect("scenario")).expect("sim");
    let slots = n * (n - 1) * KEYS as usize;
    for step in 1..=12 {
        sim.run_for(Duration::from_millis(500));
        let mut missing = 0;
        let mut thin = 0;
        for o in 0..n {
            let mut whole = 0;
            for i in (0..n).filter(|&i| i != o) {
                let v = held(&sim, i, o).min(KEYS);
                missing += (KEYS - v) as usize;
                whole += usize::from(v == KEYS);
            }
            thin += usize::from(whole * 10 < n - 1);
        }
        let tree = sim.tree_shape();
        println!(
            "{:>4.1} s: {missing} of {slots} slots missing; {thin} owners at under a tenth of the nodes; tree: {} links, {} pieces",
            step as f64 * 0.5,
            tree.links,
            tree.pieces
        );
    }
}
