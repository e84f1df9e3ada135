//! Membership stories: small clusters in the simulator, each test one thing
//! that happens to a cluster and what every node must come to believe.
//!
//! Every run is seeded; a failing assertion names the seed, and the same
//! seed replays the same run bit for bit.

use std::time::Duration;

use rumour::core::{Event, MemberState, Time};
use rumour::sim::{node_name, Scenario, Sim};

/// The seed of every story: change it to replay another run of the same story.
const SEED: u64 = 1;

// ----- helpers ------------------------------------------------------------

/// A cluster of `nodes` on a quiet LAN, started from time zero through
/// node 0 (the only seed), recording every membership event.
fn cluster(nodes: usize) -> Sim {
    let mut s = Scenario::default();
    s.name = "story".into();
    s.nodes = nodes;
    s.seed = SEED;
    s.preset = "lan".into();
    // Long enough that the scenario's end never matters: stories drive time.
    s.duration = Duration::from_secs(3600);
    let mut sim = Sim::new(s).expect("a valid scenario");
    sim.record_events();
    sim
}

/// Run a freshly started cluster until every node sees every node alive,
/// and forget the events of the cold start.
fn settled(nodes: usize) -> Sim {
    let mut sim = cluster(nodes);
    run_until_agreed(&mut sim, Duration::from_secs(30), "the cold start");
    sim.take_events();
    sim
}

/// Step one probe period at a time until `check_membership` agrees, for at
/// most `within`; panics with the last disagreement otherwise.
fn run_until_agreed(sim: &mut Sim, within: Duration, what: &str) -> Time {
    run_until(sim, within, what, |sim| sim.check_membership())
}

/// Step one probe period at a time until `done` holds, for at most
/// `within`; returns the first instant it was seen to hold.
fn run_until(
    sim: &mut Sim,
    within: Duration,
    what: &str,
    done: impl Fn(&Sim) -> Result<(), String>,
) -> Time {
    let step = sim.config().probe_period;
    let deadline = sim.now() + within;
    loop {
        match done(sim) {
            Ok(()) => return sim.now(),
            Err(why) if sim.now() >= deadline => panic!(
                "{what}: not done within {within:?} (seed {SEED}, now {}): {why}",
                sim.now()
            ),
            Err(_) => sim.run_for(step),
        }
    }
}

/// What `observer` believes about node `about`; `None` if it does not know
/// it (or has reaped it), or if `observer` is not running.
fn belief(sim: &Sim, observer: usize, about: usize) -> Option<MemberState> {
    sim.node(observer)?
        .member(&node_name(about))
        .map(|m| m.state)
}

/// Every running node but `about` believes `state` of it.
fn everyone_else_believes(sim: &Sim, about: usize, state: MemberState) -> Result<(), String> {
    for i in (0..sim.len()).filter(|&i| i != about && sim.is_running(i)) {
        let b = belief(sim, i, about);
        if b != Some(state) {
            return Err(format!(
                "{} sees {} as {b:?}",
                node_name(i),
                node_name(about)
            ));
        }
    }
    Ok(())
}

/// The recorded events about node `about`, as (time, observer, event).
fn events_about(events: &[(Time, usize, Event)], about: usize) -> Vec<&(Time, usize, Event)> {
    let name = node_name(about);
    events
        .iter()
        .filter(|(_, _, e)| e.member().id.name() == name)
        .collect()
}

fn is_suspected(e: &Event) -> bool {
    matches!(e, Event::MemberSuspected(_))
}
fn is_alive_again(e: &Event) -> bool {
    matches!(e, Event::MemberAlive(_))
}
fn is_died(e: &Event) -> bool {
    matches!(e, Event::MemberDied(_))
}
fn is_left(e: &Event) -> bool {
    matches!(e, Event::MemberLeft(_))
}
fn is_joined(e: &Event) -> bool {
    matches!(e, Event::MemberJoined(_))
}

/// The observers that emitted a matching event.
fn observers(events: &[&(Time, usize, Event)], kind: fn(&Event) -> bool) -> Vec<usize> {
    let mut v: Vec<usize> = events
        .iter()
        .filter(|(_, _, e)| kind(e))
        .map(|(_, o, _)| *o)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn others(n: usize, except: usize) -> Vec<usize> {
    (0..n).filter(|&i| i != except).collect()
}

// ----- stories ----------------------------------------------------------------

#[test]
fn three_nodes_join_through_one_seed_and_all_see_each_other() {
    // Scenario: alpha (node-0) is the seed; bravo and charlie start within
    // the first second and join through alpha alone. Neither has heard of
    // the other, so each must learn of its peer from alpha's rumours or a
    // push-pull. Within a few seconds all three see all three alive, and
    // each announced the other two with a MemberJoined event.
    let mut sim = cluster(3);
    let (alpha, bravo, charlie) = (0, 1, 2);

    sim.run_for(Duration::from_secs(10));

    for observer in [alpha, bravo, charlie] {
        let node = sim.node(observer).expect("running");
        assert_eq!(
            node.alive_members(),
            3,
            "{} (seed {SEED})",
            node_name(observer)
        );
        for about in [alpha, bravo, charlie] {
            assert_eq!(
                belief(&sim, observer, about),
                Some(MemberState::Alive),
                "{} about {} (seed {SEED})",
                node_name(observer),
                node_name(about)
            );
        }
    }
    sim.check_membership().unwrap();

    let events = sim.take_events();
    for observer in [alpha, bravo, charlie] {
        for about in others(3, observer) {
            let joined = events.iter().any(|(_, o, e)| {
                *o == observer && is_joined(e) && e.member().id.name() == node_name(about)
            });
            assert!(
                joined,
                "{} never announced {} joining (seed {SEED})",
                node_name(observer),
                node_name(about)
            );
        }
    }
    let complaints = events
        .iter()
        .filter(|(_, _, e)| !is_joined(e))
        .collect::<Vec<_>>();
    assert!(
        complaints.is_empty(),
        "a quiet start raised {complaints:?} (seed {SEED})"
    );
}

#[test]
fn a_crash_is_detected_by_everyone_within_the_bound() {
    // Scenario: five nodes agree; delta (node-3) crashes without a word.
    // Its next prober misses a direct and an indirect ack and suspects it;
    // the suspicion spreads and, unrefuted, expires. The design promises
    // that everyone holds delta dead within probe_period * 3 +
    // suspicion_max of the crash, and nobody declares it dead before
    // someone suspected it.
    let mut sim = settled(5);
    let delta = 3;
    let c = sim.config().clone();
    let bound = c.probe_period * 3 + c.suspicion_max;

    let crashed_at = sim.now();
    sim.crash(delta);
    sim.run_for(bound);

    everyone_else_believes(&sim, delta, MemberState::Dead).unwrap_or_else(|e| {
        panic!("{bound:?} after the crash: {e} (seed {SEED})");
    });

    let events = sim.take_events();
    let about = events_about(&events, delta);
    assert_eq!(
        observers(&about, is_died),
        others(5, delta),
        "everyone else announces the death (seed {SEED})"
    );
    let first_suspicion = about
        .iter()
        .find(|(_, _, e)| is_suspected(e))
        .map(|(t, _, _)| *t)
        .expect("someone suspected delta first");
    let first_death = about
        .iter()
        .find(|(_, _, e)| is_died(e))
        .map(|(t, _, _)| *t)
        .expect("someone declared delta dead");
    assert!(
        first_suspicion < first_death,
        "suspected at {first_suspicion}, dead at {first_death} (seed {SEED})"
    );
    assert!(first_suspicion > crashed_at);
    for (t, o, e) in &about {
        if is_died(e) {
            assert!(
                *t - crashed_at <= bound,
                "{} declared delta dead {:?} after the crash, bound {bound:?} (seed {SEED})",
                node_name(*o),
                *t - crashed_at
            );
        }
    }
    // Nobody else was harmed.
    for (_, _, e) in &events {
        assert_eq!(
            e.member().id.name(),
            node_name(delta),
            "{e:?} (seed {SEED})"
        );
    }
}

#[test]
fn a_slow_node_is_suspected_and_refutes() {
    // Scenario: five nodes agree; echo (node-4) turns slow and answers every
    // ping later than the probe timeout, so its probers suspect it. Echo
    // still hears the rumour of its own suspicion, refutes it with a higher
    // incarnation, and everyone takes it back as alive. It is slow for a few
    // seconds only, well under suspicion_min, and never declared dead.
    let mut sim = settled(5);
    let echo = 4;
    let c = sim.config().clone();
    let before = sim.node(echo).unwrap().incarnation();

    // Slower than the probe timeout (and the relays' share of it), so both
    // the direct and the indirect probe of echo miss.
    sim.set_slow(echo, c.probe_timeout + c.probe_timeout / 2);
    sim.run_for(c.suspicion_min - c.probe_period);
    sim.set_slow(echo, Duration::ZERO);
    run_until_agreed(&mut sim, c.push_pull_interval, "after echo recovers");
    // A while longer: any suspicion still pending would expire now.
    sim.run_for(c.suspicion_max);
    sim.check_membership().unwrap();

    let after = sim.node(echo).unwrap().incarnation();
    assert!(
        after > before,
        "echo refuted: incarnation {before} -> {after} (seed {SEED})"
    );
    for i in others(5, echo) {
        let m = sim.node(i).unwrap().member(&node_name(echo)).unwrap();
        assert_eq!(
            (m.state, m.incarnation),
            (MemberState::Alive, after),
            "{} about echo (seed {SEED})",
            node_name(i)
        );
    }

    let events = sim.take_events();
    let about = events_about(&events, echo);
    assert!(
        !observers(&about, is_suspected).is_empty(),
        "nobody suspected slow echo (seed {SEED})"
    );
    assert!(
        !observers(&about, is_alive_again).is_empty(),
        "nobody saw echo's refutation (seed {SEED})"
    );
    assert!(
        observers(&about, is_died).is_empty(),
        "echo was declared dead: {about:?} (seed {SEED})"
    );
}

#[test]
fn a_briefly_isolated_node_refutes_after_the_heal() {
    // Scenario: five nodes agree; charlie (node-2) is cut off for less than
    // suspicion_min. Its probers suspect it, and it suspects them. When the
    // network heals, charlie learns it is suspect and refutes; it is back
    // alive everywhere and nobody was declared dead.
    let mut sim = settled(5);
    let charlie = 2;
    let c = sim.config().clone();
    let before = sim.node(charlie).unwrap().incarnation();

    sim.network()
        .partition(&[vec![charlie], others(5, charlie)]);
    sim.run_for(c.suspicion_min / 2);
    sim.network().heal();
    run_until_agreed(&mut sim, c.push_pull_interval, "after the heal");
    sim.run_for(c.suspicion_max);
    sim.check_membership().unwrap();

    let after = sim.node(charlie).unwrap().incarnation();
    assert!(
        after > before,
        "charlie refuted: incarnation {before} -> {after} (seed {SEED})"
    );
    let events = sim.take_events();
    let about = events_about(&events, charlie);
    assert!(!observers(&about, is_suspected).is_empty(), "seed {SEED}");
    assert!(!observers(&about, is_alive_again).is_empty(), "seed {SEED}");
    let deaths: Vec<_> = events.iter().filter(|(_, _, e)| is_died(e)).collect();
    assert!(deaths.is_empty(), "{deaths:?} (seed {SEED})");
}

#[test]
fn a_partition_heals_and_both_sides_agree_again() {
    // Scenario: six nodes split three against three, long enough that each
    // side declares the other dead. Then the network heals. No probe or
    // rumour crosses to a member believed dead; what reunites the sides is
    // the occasional push-pull a node opens with a dead member, and then the
    // refutations it provokes, which the next push-pull carries across.
    //
    // Bound: two push-pull intervals (one exchange to provoke the
    // refutations, one to carry them back) plus three probe periods for the
    // rumours to reach everyone. All of it falls inside dead_reap_after, so
    // the dead entries are still there to be revived.
    let mut sim = settled(6);
    let west = vec![0, 1, 2];
    let east = vec![3, 4, 5];
    let c = sim.config().clone();

    sim.network().partition(&[west.clone(), east.clone()]);
    let split = |sim: &Sim| -> Result<(), String> {
        for (side, other) in [(&west, &east), (&east, &west)] {
            for &i in side {
                for &j in other {
                    let b = belief(sim, i, j);
                    if b != Some(MemberState::Dead) {
                        return Err(format!("{} sees {} as {b:?}", node_name(i), node_name(j)));
                    }
                }
            }
        }
        Ok(())
    };
    let detection = c.probe_period * 3 + c.suspicion_max;
    run_until(
        &mut sim,
        detection * 2,
        "each side declares the other dead",
        split,
    );
    // Inside each side, nothing changed.
    for (side, _) in [(&west, &east), (&east, &west)] {
        for &i in side {
            for &j in side {
                assert_eq!(belief(&sim, i, j), Some(MemberState::Alive), "seed {SEED}");
            }
        }
    }

    sim.network().heal();
    let bound = c.push_pull_interval * 2 + c.probe_period * 3;
    assert!(bound < c.dead_reap_after);
    let healed_at = sim.now();
    let agreed_at = run_until_agreed(&mut sim, bound, "after the heal");
    assert!(agreed_at - healed_at <= bound);
    for i in 0..6 {
        assert_eq!(sim.node(i).unwrap().alive_members(), 6, "seed {SEED}");
    }
}

#[test]
fn a_graceful_leave_is_seen_as_left_not_dead() {
    // Scenario: five nodes agree; bravo (node-1) leaves. It announces its
    // departure for a few gossip rounds and goes quiet. Everyone else holds
    // it as left, with a MemberLeft event, and nobody ever declares it dead.
    // Bravo's slot reports it no longer running.
    let mut sim = settled(5);
    let bravo = 1;
    let c = sim.config().clone();

    sim.leave(bravo);
    sim.run_for(c.probe_period * 3);

    assert!(!sim.is_running(bravo), "bravo still runs (seed {SEED})");
    assert!(sim.node(bravo).is_none());
    everyone_else_believes(&sim, bravo, MemberState::Left)
        .unwrap_or_else(|e| panic!("{e} (seed {SEED})"));
    sim.check_membership().unwrap();

    // Long enough for any wrong suspicion of bravo to expire.
    sim.run_for(c.probe_period * 3 + c.suspicion_max);
    everyone_else_believes(&sim, bravo, MemberState::Left)
        .unwrap_or_else(|e| panic!("{e} (seed {SEED})"));

    let events = sim.take_events();
    let about = events_about(&events, bravo);
    assert_eq!(observers(&about, is_left), others(5, bravo), "seed {SEED}");
    assert!(
        observers(&about, is_died).is_empty(),
        "bravo was declared dead: {about:?} (seed {SEED})"
    );
}

#[test]
fn a_crashed_node_restarts_with_a_higher_incarnation_and_is_alive_again() {
    // Scenario: five nodes agree; delta (node-3) crashes and everyone
    // declares it dead. Delta restarts with a higher incarnation and rejoins
    // through the seed; its alive news overrides the old death, so everyone
    // announces it joined again and holds it alive at the new incarnation.
    let mut sim = settled(5);
    let delta = 3;
    let c = sim.config().clone();
    let first_life = sim.node(delta).unwrap().incarnation();

    sim.crash(delta);
    assert!(!sim.is_running(delta));
    run_until(
        &mut sim,
        c.probe_period * 3 + c.suspicion_max,
        "everyone declares delta dead",
        |sim| everyone_else_believes(sim, delta, MemberState::Dead),
    );
    sim.take_events();

    sim.restart(delta);
    let second_life = sim.node(delta).expect("delta runs again").incarnation();
    assert!(second_life > first_life, "{first_life} -> {second_life}");
    run_until_agreed(&mut sim, c.push_pull_interval, "after delta restarts");

    for i in others(5, delta) {
        let m = sim.node(i).unwrap().member(&node_name(delta)).unwrap();
        assert_eq!(
            (m.state, m.incarnation),
            (MemberState::Alive, second_life),
            "{} about delta (seed {SEED})",
            node_name(i)
        );
    }
    let events = sim.take_events();
    let about = events_about(&events, delta);
    assert_eq!(
        observers(&about, is_joined),
        others(5, delta),
        "seed {SEED}"
    );
    assert!(
        observers(&about, is_died).is_empty(),
        "{about:?} (seed {SEED})"
    );
}
