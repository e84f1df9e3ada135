//! The broadcast tree (tree mode, the default): once formed it stays one
//! spanning tree while nothing fails, so every write travels by eager push
//! alone, whatever anti-entropy does meanwhile.
//!
//! Seeded by `RUMOUR_SEED` (default 1); a failure prints the command that
//! replays it.

mod support;

use std::time::Duration;

use rumour::sim::{Scenario, Sim};

fn replay() -> String {
    support::replay_line("tree")
}

/// Writes one push-pull interval apart, each from another node, with
/// anti-entropy running often enough that it hands some writes to some nodes
/// before the tree's push reaches them.
/// That push is the tree's own path, not a redundant one; taking it for a
/// duplicate pruned tree links and cut nodes off until the next repair.
#[test]
fn the_tree_survives_anti_entropy_racing_it() {
    let n = 300;
    let mut s = Scenario {
        name: "tree".into(),
        nodes: n,
        seed: support::seed(),
        formed: true,
        duration: Duration::from_secs(3600),
        ..Scenario::default()
    };
    // Push-pulls every second rather than every ten, so that some run while
    // each write spreads: the race is then near certain, not one in ten.
    s.config
        .insert("push_pull_interval".into(), "1s".to_string().into());
    let mut sim = Sim::new(s).expect("a valid scenario");
    let interval = sim.config().push_pull_interval;
    // The first write prunes the initial random links down to a tree.
    sim.run_for(Duration::from_secs(2));
    sim.put(0, "first", b"x").expect("a valid put");
    sim.run_for(interval);
    let shape = sim.tree_shape();
    assert!(shape.is_spanning_tree(), "{shape:?}\n{}", replay());
    let mut adoptions = 0;
    for w in 0..20 {
        let writer = (w * 37 + 11) % n;
        sim.put(writer, &format!("k{w}"), b"value")
            .expect("a valid put");
        // Grafts wait half a round after an announcement, so whatever holds
        // the write within 50 ms had it by eager push (or anti-entropy).
        sim.run_for(Duration::from_millis(50));
        let update = sim.updates().last().expect("just written");
        assert_eq!(
            update.times.len(),
            update.target,
            "write {w} from node-{writer} reached {} of {} nodes by eager push; tree {:?}\n{}",
            update.times.len(),
            update.target,
            sim.tree_shape(),
            replay()
        );
        sim.run_for(interval);
        let shape = sim.tree_shape();
        assert!(
            shape.is_spanning_tree(),
            "after write {w}: {shape:?}\n{}",
            replay()
        );
        assert_eq!(shape.one_way, 0);
        adoptions = (0..n)
            .filter_map(|i| sim.node(i))
            .map(|x| x.stats().tree_adoptions)
            .sum::<u64>();
    }
    // The race this test is about did happen.
    assert!(
        adoptions > 0,
        "no write reached a node by anti-entropy first; the test shows nothing\n{}",
        replay()
    );
}
