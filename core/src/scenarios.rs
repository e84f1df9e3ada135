//! Scenario tests of whole mechanisms, run on the [`Harness`]: a few named
//! nodes on a virtual clock with a network the test controls. One module per
//! mechanism, so each can move next to that mechanism's code. Every test
//! opens with a `// Scenario:` line that tells its story.

use std::time::Duration;

use crate::harness::Harness;
use crate::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What `observer` reported about member `subject`, as (what, incarnation).
fn member_events(h: &Harness, observer: &str, subject: &str) -> Vec<(&'static str, u32)> {
    let what = |e: &Event| match e {
        Event::MemberJoined(_) => "joined",
        Event::MemberSuspected(_) => "suspected",
        Event::MemberAlive(_) => "alive",
        Event::MemberDied(_) => "died",
        Event::MemberLeft(_) => "left",
        _ => unreachable!("not a membership event"),
    };
    let events = h.events_of(observer).iter().map(|(_, e)| e);
    events
        .filter_map(|e| Some((what(e), e.member()?)))
        .filter(|(_, m)| m.id.name() == subject)
        .map(|(w, m)| (w, m.incarnation.0))
        .collect()
}

/// The value `observer` holds under `key` of `owner`'s namespace.
fn value(h: &Harness, observer: &str, owner: &str, key: &str) -> Option<String> {
    let e = h.node(observer).get(owner, key)?;
    Some(String::from_utf8_lossy(&e.value).into_owned())
}

/// The fresh reads `name` reported, with when.
fn fresh_reads(h: &Harness, name: &str) -> Vec<(Time, FreshRead)> {
    let events = h.events_of(name).iter();
    events
        .filter_map(|(t, e)| match e {
            Event::FreshRead(r) => Some((*t, r.clone())),
            _ => None,
        })
        .collect()
}

/// The nodes `name` pushes to eagerly, by name.
fn links(h: &Harness, name: &str) -> Vec<String> {
    h.node(name).eager_links().map(|a| h.name_of(a)).collect()
}

/// Wait until every node of `names` has pushed its first grafts and they
/// have landed; then link every pair left unlinked (a node grafted before
/// its own first gossip round grafts no one) with hand-made empty grafts,
/// so that every node pushes to every other.
fn link_all(h: &mut Harness, names: &[&str]) {
    let all: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    h.wait_for(secs(1), "a first eager link each", |h| {
        all.iter().all(|a| h.node(a).eager_links().count() > 0)
    });
    h.settle();
    for x in names {
        for y in names.iter().filter(|y| *y != x) {
            if !links(h, x).contains(&y.to_string()) {
                h.inject(h.addr(y), x, Message::Graft(Graft::default()));
            }
        }
    }
    h.settle();
    for x in names {
        assert_eq!(links(h, x).len(), names.len() - 1, "{x}");
    }
}

fn seq_of(msg: &Message) -> u32 {
    match msg {
        Message::Ping(p) => p.seq,
        Message::PingReq(p) => p.seq,
        Message::Ack(a) => a.seq,
        Message::Nack(n) => n.seq,
        other => panic!("no sequence number in {other:?}"),
    }
}

fn push_pull(msg: &Message) -> &PushPull {
    match msg {
        Message::PushPull(p) => p,
        other => panic!("not a push-pull: {other:?}"),
    }
}

mod probe {
    use super::*;

    #[test]
    fn a_ping_is_acked() {
        // Scenario: a, b and c probe each other for two seconds on a perfect network; every ping a
        // sends is acked by its target, and no one is suspected.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(2));
        h.settle();
        let pings = h.messages("a", "*", "ping");
        assert!(pings.len() >= 3, "a sent {} pings", pings.len());
        for p in pings {
            let acks = h.messages(&p.to, "a", "ack");
            let acked = acks.iter().any(|a| seq_of(&a.msg) == seq_of(&p.msg));
            assert!(
                acked,
                "a's ping {} to {} was not acked",
                seq_of(&p.msg),
                p.to
            );
        }
        assert_eq!(h.sent("*", "*", "ping-req"), 0);
        assert_eq!(h.node("a").stats().failed_probes, 0);
        for (x, y) in [("a", "b"), ("a", "c"), ("b", "c"), ("c", "a")] {
            assert_eq!(h.member_state(x, y), "alive@0");
            assert_eq!(member_events(&h, x, y), [("joined", 0)]);
        }
    }

    #[test]
    fn a_lost_direct_ping_is_answered_through_a_relay() {
        // Scenario: every direct ping from a to c is lost. a's probe of c times out, a sends b a
        // ping-req about c, b pings c, c acks b, and b relays the ack to a under a's sequence
        // number: a never suspects c.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.drop_kind("a", "c", "ping");
        let is_req_about_c =
            |m: &Message| matches!(m, Message::PingReq(r) if r.target.name() == "c");
        h.wait_for(secs(3), "a ping-req from a to b about c", |h| {
            h.messages("a", "b", "ping-req")
                .iter()
                .any(|s| is_req_about_c(&s.msg))
        });
        let req = h.messages("a", "b", "ping-req")[0].clone();
        let seq = seq_of(&req.msg);
        h.run_for(ms(10));
        let relayed = |s: &&crate::harness::Sent| s.at > req.at;
        assert!(h.messages("b", "c", "ping").iter().any(relayed));
        assert!(h.messages("c", "b", "ack").iter().any(relayed));
        let back = h.messages("b", "a", "ack");
        let back: Vec<_> = back.iter().filter(|s| seq_of(&s.msg) == seq).collect();
        assert_eq!(back.len(), 1, "b relays c's ack to a once");
        assert_eq!(back[0].at - req.at, h.latency * 3, "a -> b -> c -> b -> a");
        h.run_for(secs(5));
        assert!(h.sent("a", "c", "ping") >= 3, "a keeps probing c directly");
        assert_eq!(h.member_state("a", "c"), "alive@0");
        assert_eq!(member_events(&h, "a", "c"), [("joined", 0)]);
        assert_eq!(h.node("a").stats().failed_probes, 0);
    }

    #[test]
    fn a_relay_that_cannot_reach_the_target_answers_with_a_nack() {
        // Scenario: c has crashed. a's probe of c times out and a sends b a ping-req; b's ping to c
        // goes unanswered, and after its wait (4/5 of the probe timeout) b answers a with a nack,
        // proof that a's own links work: a's local health stays at 0.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.stop("c");
        h.wait_for(secs(3), "a nack from b to a", |h| {
            h.sent("b", "a", "nack") > 0
        });
        let nack = h.messages("b", "a", "nack")[0].clone();
        let reqs = h.messages("a", "b", "ping-req");
        let req = reqs.iter().find(|r| seq_of(&r.msg) == seq_of(&nack.msg));
        let req = req.expect("the nack answers a's ping-req");
        let wait = Config::local().probe_timeout * 4 / 5;
        assert_eq!(nack.at - req.at, h.latency + wait);
        assert!(h
            .messages("b", "c", "ping")
            .iter()
            .any(|p| p.at == req.at + h.latency));
        h.wait_for(secs(1), "a suspecting c", |h| {
            h.member_state("a", "c") == "suspect@0"
        });
        assert_eq!(h.node("a").health(), 0, "the nack vouches for a");
    }

    #[test]
    fn a_silent_member_is_suspected_then_declared_dead() {
        // Scenario: c crashes. Probes of c fail, directly and through the relay, so a suspects c
        // (MemberSuspected); c never refutes, and when the suspicion times out a declares c dead
        // (MemberDied), as does b.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.stop("c");
        let suspected = h.wait_for(secs(3), "a suspecting c", |h| {
            member_events(h, "a", "c").contains(&("suspected", 0))
        });
        assert_eq!(h.member_state("a", "c"), "suspect@0");
        let failed = ["a", "b"].map(|n| h.node(n).stats().failed_probes);
        assert!(failed.iter().sum::<u64>() >= 1);
        let died = h.wait_for(secs(10), "a declaring c dead", |h| {
            member_events(h, "a", "c").contains(&("died", 0))
        });
        assert_eq!(h.member_state("a", "c"), "dead@0");
        let (min, max) = (Config::local().suspicion_min, Config::local().suspicion_max);
        let waited = died - suspected;
        assert!(
            min <= waited && waited <= max,
            "dead {waited:?} after the suspicion"
        );
        let expected = [("joined", 0), ("suspected", 0), ("died", 0)];
        assert_eq!(member_events(&h, "a", "c"), expected);
        h.wait_for(secs(1), "b declaring c dead", |h| {
            h.member_state("b", "c") == "dead@0"
        });
    }
}

mod membership {
    use super::*;

    #[test]
    fn a_suspected_member_refutes_with_a_higher_incarnation() {
        // Scenario: a hand-made gossip from a's address tells b and c that a suspects c at
        // incarnation 0. b starts suspecting c; c refutes: it bumps its incarnation to 1 and
        // rumours itself alive, so b and a end up seeing c alive at incarnation 1, and c is never
        // declared dead.
        let mut h = Harness::new(&["a", "b", "c"]);
        let c = h.node("c").id().clone();
        let rumour = Message::Gossip(Gossip {
            updates: vec![MemberUpdate {
                id: c,
                incarnation: Incarnation(0),
                state: MemberState::Suspect,
                by: Some("a".into()),
            }],
        });
        h.inject(h.addr("a"), "b", rumour.clone());
        h.inject(h.addr("a"), "c", rumour);
        h.wait_for(ms(10), "c refuting", |h| {
            h.node("c").incarnation() == Incarnation(1)
        });
        assert_eq!(h.node("c").stats().refutations, 1);
        assert_eq!(h.member_state("b", "c"), "suspect@0");
        h.wait_for(secs(2), "a and b seeing c alive at 1", |h| {
            h.member_state("a", "c") == "alive@1" && h.member_state("b", "c") == "alive@1"
        });
        let alive_at_1 = |u: &MemberUpdate| {
            u.id.name() == "c" && u.incarnation == Incarnation(1) && u.state == MemberState::Alive
        };
        let from_c = h.messages("c", "*", "*");
        assert!(from_c.iter().any(|s| s
            .msg
            .clone()
            .rumours_mut()
            .is_some_and(|us| us.iter().any(alive_at_1))));
        let b_saw = member_events(&h, "b", "c");
        assert_eq!(b_saw, [("joined", 0), ("suspected", 0), ("alive", 1)]);
        h.run_for(secs(8));
        for x in ["a", "b"] {
            assert_eq!(h.member_state(x, "c"), "alive@1");
            assert!(!member_events(&h, x, "c").contains(&("died", 0)));
        }
    }

    #[test]
    fn a_graceful_leave_is_seen_as_left_not_as_a_failure() {
        // Scenario: c leaves: it announces Left for a few gossip rounds, then goes quiet. a and b
        // see c as left (MemberLeft), never suspect it, and c sends nothing more.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(1));
        h.act("c", |n, now| n.leave(now)).unwrap();
        let quiet = h.wait_for(secs(1), "c going quiet", |h| h.node("c").has_left());
        h.run_for(secs(10));
        for x in ["a", "b"] {
            assert_eq!(h.member_state(x, "c"), "left@0");
            assert_eq!(member_events(&h, x, "c"), [("joined", 0), ("left", 0)]);
        }
        assert!(h.messages("c", "*", "*").iter().all(|s| s.at <= quiet));
    }
}

mod push_pull {
    use super::*;

    #[test]
    fn equal_summaries_stop_at_the_opening() {
        // Scenario: a and b hold the same membership and no data. For two push-pull intervals each
        // opens exchanges with a bare Summary; the summaries agree, so no Sync, Reply or Deltas
        // ever follows.
        let mut h = Harness::new(&["a", "b"]);
        h.run_for(Config::local().push_pull_interval * 2 + ms(10));
        assert!(h.sent("a", "b", "push-pull/summary") >= 2);
        assert!(h.sent("b", "a", "push-pull/summary") >= 2);
        for kind in ["push-pull/sync", "push-pull/reply", "push-pull/deltas"] {
            assert_eq!(h.sent("*", "*", kind), 0, "{kind}");
        }
        for s in h.messages("*", "*", "push-pull/summary") {
            let p = push_pull(&s.msg);
            assert!(p.members.is_empty() && p.digest.is_none() && p.deltas.is_empty());
        }
    }

    #[test]
    fn different_membership_is_exchanged_in_full() {
        // Scenario: a knows b and c, but b and c have never heard of each other, and nothing is
        // rumoured. Their summaries differ from a's, so exchanges with a go Summary -> Sync ->
        // Reply with full membership, until b and c know each other as alive; no data differs, so
        // no digest and no Deltas.
        let mut h = Harness::strangers(&["a", "b", "c"], Config::local());
        for (x, y) in [("a", "b"), ("b", "a"), ("a", "c"), ("c", "a")] {
            h.introduce(x, y);
        }
        h.run_for(secs(1));
        assert_eq!(h.member_state("b", "c"), "unknown");
        h.wait_for(secs(12), "b and c knowing each other", |h| {
            h.member_state("b", "c") == "alive@0" && h.member_state("c", "b") == "alive@0"
        });
        let syncs = h.messages("*", "*", "push-pull/sync");
        assert!(!syncs.is_empty() && h.sent("*", "*", "push-pull/reply") >= 1);
        for s in syncs {
            let p = push_pull(&s.msg);
            assert!(p.members.len() >= 2 && p.digest.is_none(), "{p:?}");
        }
        assert_eq!(h.sent("*", "*", "push-pull/deltas"), 0);
        let summary = h.node("a").membership_summary();
        assert_eq!(h.node("b").membership_summary(), summary);
        assert_eq!(h.node("c").membership_summary(), summary);
    }

    #[test]
    fn different_state_is_exchanged_as_deltas() {
        // Scenario: a writes x and b writes y while every data-plane message between them is lost
        // (eager pushes, announcements, grafts, prunes). Their state summaries differ, so a
        // push-pull goes Summary -> Sync (digest) -> Reply (digest and deltas) -> Deltas, and both
        // end up holding both keys.
        let mut h = Harness::new(&["a", "b"]);
        h.drop_where(|_, _, m| {
            matches!(
                m,
                Message::Eager(_) | Message::IHave(_) | Message::Graft(_) | Message::Prune(_)
            )
        });
        h.act("a", |n, now| n.put(now, "x", b"1")).unwrap();
        h.act("b", |n, now| n.put(now, "y", b"2")).unwrap();
        h.run_for(ms(500));
        assert_eq!(value(&h, "b", "a", "x"), None);
        h.wait_for(secs(12), "a and b converging", |h| {
            value(h, "b", "a", "x").as_deref() == Some("1")
                && value(h, "a", "b", "y").as_deref() == Some("2")
        });
        let syncs = h.messages("*", "*", "push-pull/sync");
        assert!(!syncs.is_empty());
        let p = push_pull(&syncs[0].msg);
        assert!(p.members.is_empty() && p.digest.is_some(), "{p:?}");
        assert!(h.sent("*", "*", "push-pull/reply") >= 1);
        assert!(h.sent("*", "*", "push-pull/deltas") >= 1);
        assert_eq!(h.node("a").state_summary(), h.node("b").state_summary());
    }
}

mod plumtree {
    use super::*;

    #[test]
    fn a_duplicate_eager_push_prunes_its_link() {
        // Scenario: a, b and c start fully linked (by their first gossip rounds' grafts and
        // hand-made ones). a writes x and pushes it to b and c; each passes it on to the other, so
        // b and c each get a duplicate, answer it with a Prune, and drop that link. The tree left
        // is b-a-c, and a second write reaches both with no duplicate.
        let mut h = Harness::new(&["a", "b", "c"]);
        link_all(&mut h, &["a", "b", "c"]);
        h.act("a", |n, now| n.put(now, "x", b"1")).unwrap();
        h.settle();
        assert_eq!(h.sent("b", "c", "prune"), 1);
        assert_eq!(h.sent("c", "b", "prune"), 1);
        assert_eq!(h.node("b").stats().prunes, 1);
        assert_eq!(links(&h, "a"), ["b", "c"]);
        assert_eq!(links(&h, "b"), ["a"]);
        assert_eq!(links(&h, "c"), ["a"]);
        let duplicates = |h: &Harness| {
            ["b", "c"]
                .map(|n| h.node(n).stats().data_duplicates)
                .iter()
                .sum::<u64>()
        };
        assert_eq!(duplicates(&h), 2);
        h.act("a", |n, now| n.put(now, "y", b"2")).unwrap();
        h.settle();
        assert_eq!(value(&h, "b", "a", "y").as_deref(), Some("2"));
        assert_eq!(value(&h, "c", "a", "y").as_deref(), Some("2"));
        assert_eq!(h.sent("*", "*", "prune"), 2);
        assert_eq!(duplicates(&h), 2);
    }

    #[test]
    fn an_announcement_of_missing_data_leads_to_a_graft() {
        // Scenario: hand-made Prunes from b's address make a and c stop pushing to b. a writes x;
        // only c gets it eagerly. a's and c's next gossip rounds announce x (IHave); b lacks it,
        // waits half a gossip interval for a push that does not come, grafts the first announcer,
        // and gets x in the answer; the grafted node pushes to b again from then on.
        let mut h = Harness::new(&["a", "b", "c"]);
        link_all(&mut h, &["a", "b", "c"]);
        h.inject(h.addr("b"), "a", Message::Prune(Prune));
        h.inject(h.addr("b"), "c", Message::Prune(Prune));
        h.settle();
        assert_eq!(
            (links(&h, "a"), links(&h, "c")),
            (vec!["c".into()], vec!["a".into()])
        );
        h.act("a", |n, now| n.put(now, "x", b"1")).unwrap();
        h.wait_for(secs(1), "x reaching b", |h| {
            value(h, "b", "a", "x").is_some()
        });
        let x = DatumId::Record {
            owner: "a".into(),
            generation: 0,
            version: 1,
        };
        let has_x = |m: &Message| match m {
            Message::IHave(i) => i.ids.contains(&x),
            Message::Graft(g) => g.ids.contains(&x),
            Message::Eager(e) => e.data.iter().any(|d| d.id() == x),
            _ => false,
        };
        let first = |from: &str, kind: &str| {
            let found = h
                .messages(from, "b", kind)
                .into_iter()
                .find(|s| has_x(&s.msg));
            found
                .cloned()
                .unwrap_or_else(|| panic!("no {kind} of x to b"))
        };
        let ihave = first("*", "ihave");
        let grafts = h.messages("b", "*", "graft");
        let grafts: Vec<_> = grafts.into_iter().filter(|s| has_x(&s.msg)).collect();
        assert_eq!(grafts.len(), 1);
        let graft = grafts[0].clone();
        assert!(has_x(&graft.msg) && graft.to == ihave.from, "{graft:?}");
        let wait = Config::local().gossip_interval / 2;
        assert_eq!(graft.at, ihave.at + h.latency + wait);
        let answer = first(&graft.to, "eager");
        assert_eq!(answer.at, graft.at + h.latency);
        assert_eq!(h.node("b").stats().grafts, 1);
        assert!(links(&h, &graft.to).contains(&"b".to_string()));
    }

    #[test]
    fn data_that_came_by_anti_entropy_adopts_the_later_eager_push() {
        // Scenario: a's eager push of x to b is held back in the network, and so are a's
        // announcements, so x reaches b first by a periodic push-pull. When the held push is
        // finally delivered it is a duplicate, but of data that came off the tree: b counts a tree
        // adoption, keeps the link to a and sends no Prune.
        let mut h = Harness::new(&["a", "b"]);
        link_all(&mut h, &["a", "b"]);
        h.hold_kind("a", "b", "eager");
        h.hold_kind("a", "b", "ihave");
        h.act("a", |n, now| n.put(now, "x", b"1")).unwrap();
        h.wait_for(secs(12), "x reaching b by push-pull", |h| {
            value(h, "b", "a", "x").is_some()
        });
        assert_eq!(h.sent("a", "b", "eager"), 1, "held, not delivered");
        assert_eq!(h.node("b").stats().tree_adoptions, 0);
        h.release();
        h.settle();
        let stats = h.node("b").stats();
        assert_eq!((stats.tree_adoptions, stats.prunes), (1, 0));
        assert_eq!(h.sent("b", "a", "prune"), 0);
        assert_eq!(links(&h, "b"), ["a"]);
        assert_eq!(links(&h, "a"), ["b"]);
    }
}

mod store {
    use super::*;

    #[test]
    fn a_replica_past_the_gc_horizon_is_reset() {
        // Scenario: with a tombstone grace of 1 s, a writes x and b replicates it. Then b is cut
        // off; a deletes x, and a grace later collects the tombstone, raising its GC horizon past
        // b's replica. When the partition heals, b's digest is behind a's horizon, so a sends its
        // whole namespace as a reset: b drops x, reports the deletion, and x never comes back.
        let config = Config {
            tombstone_grace: secs(1),
            ..Config::local()
        };
        let mut h = Harness::with_config(&["a", "b"], config);
        link_all(&mut h, &["a", "b"]);
        h.act("a", |n, now| n.put(now, "x", b"1")).unwrap();
        h.wait_for(ms(10), "b replicating x", |h| {
            value(h, "b", "a", "x").is_some()
        });
        let cut = h.partition(&["a"], &["b"]);
        let deleted = h.act("a", |n, now| n.delete(now, "x")).unwrap();
        assert_eq!(deleted, Some(2));
        h.run_for(ms(1500));
        h.allow(cut);
        h.wait_for(secs(12), "b dropping x", |h| {
            value(h, "b", "a", "x").is_none()
        });
        let deltas = h.messages("a", "b", "push-pull");
        let deltas = deltas.iter().flat_map(|s| &push_pull(&s.msg).deltas);
        let resets: Vec<&Delta> = deltas.filter(|d| d.reset).collect();
        assert_eq!(resets.len(), 1, "{resets:?}");
        let r = resets[0];
        assert_eq!((r.from, r.to, r.horizon), (0, 2, 2));
        assert!(r.records.is_empty(), "the tombstone is gone: {r:?}");
        let gone = h.events_of("b").iter().any(|(_, e)| {
            matches!(e, Event::EntryChanged { owner, key, value: None, .. }
                if &**owner == "a" && &**key == "x")
        });
        assert!(gone, "b reports x deleted");
        h.run_for(secs(12));
        assert_eq!(value(&h, "b", "a", "x"), None);
        assert_eq!(h.node("b").namespace_version("a"), Some((0, 2)));
        assert_eq!(h.node("a").state_summary(), h.node("b").state_summary());
    }
}

mod query {
    use super::*;

    #[test]
    fn a_fresh_read_is_answered_by_the_owner() {
        // Scenario: b writes k = v1, which a replicates; then b's data to a is held back and b
        // writes k = v2. a's query_fresh(b, k) goes to b, whose reply carries v2
        // (ReadSource::Owner) one round trip later, while a's replica still says v1.
        let mut h = Harness::new(&["a", "b"]);
        link_all(&mut h, &["a", "b"]);
        h.act("b", |n, now| n.put(now, "k", b"v1")).unwrap();
        h.wait_for(ms(10), "a replicating k", |h| {
            value(h, "a", "b", "k").is_some()
        });
        for kind in ["eager", "ihave", "push-pull"] {
            h.hold_kind("b", "a", kind);
        }
        h.act("b", |n, now| n.put(now, "k", b"v2")).unwrap();
        let asked = h.now;
        let id = h.act("a", |n, now| n.query_fresh(now, "b", "k"));
        let t = h.wait_for(secs(1), "a's fresh read", |h| {
            !fresh_reads(h, "a").is_empty()
        });
        let (_, r) = fresh_reads(&h, "a").remove(0);
        assert_eq!((r.id, r.source, r.version), (id, ReadSource::Owner, 2));
        assert_eq!(r.value.as_deref(), Some(&b"v2"[..]));
        assert_eq!(t - asked, h.latency * 2);
        assert_eq!(value(&h, "a", "b", "k").as_deref(), Some("v1"));
    }

    #[test]
    fn a_fresh_read_falls_back_to_the_replica_after_the_timeout() {
        // Scenario: b writes k = v1, which a replicates; then every query reply from b to a is
        // lost. a's query_fresh(b, k) hears nothing from b, and exactly query_timeout later a
        // answers from its own replica: v1, ReadSource::Replica.
        let mut h = Harness::new(&["a", "b"]);
        link_all(&mut h, &["a", "b"]);
        h.act("b", |n, now| n.put(now, "k", b"v1")).unwrap();
        h.wait_for(ms(10), "a replicating k", |h| {
            value(h, "a", "b", "k").is_some()
        });
        h.drop_kind("b", "a", "query-reply");
        let asked = h.now;
        let id = h.act("a", |n, now| n.query_fresh(now, "b", "k"));
        let t = h.wait_for(secs(2), "a's fresh read", |h| {
            !fresh_reads(h, "a").is_empty()
        });
        assert_eq!(t - asked, Config::local().query_timeout);
        let (_, r) = fresh_reads(&h, "a").remove(0);
        assert_eq!((r.id, r.source, r.version), (id, ReadSource::Replica, 1));
        assert_eq!(r.value.as_deref(), Some(&b"v1"[..]));
        assert_eq!(h.sent("a", "b", "query"), 1);
        let replies = h.messages("b", "a", "query-reply");
        assert!(replies.len() == 1 && replies[0].dropped, "sent, and lost");
    }
}
