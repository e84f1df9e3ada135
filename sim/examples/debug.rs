use rumour_sim::{Scenario, Sim};
use std::time::Duration;
fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let mut s = Scenario::load("steady").unwrap();
    s.nodes = n;
    let mut sim = Sim::new(s).unwrap();
    for step in 0..30 {
        sim.run_for(Duration::from_millis(500));
        let mut v: Vec<usize> = (0..n)
            .filter_map(|i| sim.node(i).map(|x| x.alive_members()))
            .collect();
        v.sort();
        let q: Vec<usize> = (0..n)
            .filter_map(|i| sim.node(i).map(|x| x.pending_broadcasts()))
            .collect();
        println!(
            "t={:.1}s alive min {} p10 {} med {} max {}  queue max {} mean {:.0}",
            (step + 1) as f64 * 0.5,
            v[0],
            v[v.len() / 10],
            v[v.len() / 2],
            v[v.len() - 1],
            q.iter().max().unwrap(),
            q.iter().sum::<usize>() as f64 / v.len() as f64
        );
    }
    let (si, s) = (0..n)
        .filter_map(|i| sim.node(i).map(|x| (i, x)))
        .min_by_key(|(_, x)| x.alive_members())
        .unwrap();
    let missing: Vec<usize> = (0..n)
        .filter(|&j| s.member(&rumour_sim::node_name(j)).is_none())
        .collect();
    println!("straggler {si} misses {missing:?}; stats {:?}", s.stats());
    for m in missing.iter().take(3) {
        let knows = (0..n)
            .filter(|&i| {
                sim.node(i)
                    .unwrap()
                    .member(&rumour_sim::node_name(*m))
                    .is_some()
            })
            .count();
        let known_by_m = sim.node(*m).unwrap().alive_members();
        let m_knows_s = sim
            .node(*m)
            .unwrap()
            .member(&rumour_sim::node_name(si))
            .is_some();
        println!("  {m}: known by {knows}; it sees {known_by_m}; knows straggler {m_knows_s}");
    }
}
#[allow(dead_code)]
fn unused() {}
