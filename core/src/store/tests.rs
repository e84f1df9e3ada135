//! Unit tests of the store.

use super::*;
use crate::identity::Verified;

const LIMITS: Limits = Limits {
    max_key_len: 16,
    max_value_len: 64,
    max_keys: 4,
    max_held: 64,
};
const GRACE: Duration = Duration::from_secs(10);
/// The peer that pushed a rumoured delta.
const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7946);

fn store(name: &str) -> Store {
    Store::new(Arc::from(name), 0, LIMITS, GRACE, ident(name))
}

/// Each test node's key pair, drawn from its name.
fn ident(name: &str) -> Identity {
    let mut h = Fnv64::default();
    h.write(name.as_bytes());
    Identity::from_seed(h.finish())
}

/// Apply as a replica does, with the owner's key as membership binds it.
fn apply(
    s: &mut Store,
    now: Time,
    d: &Delta,
    pushed_by: Option<SocketAddr>,
) -> Result<Vec<Event>, Refusal> {
    let key = ident(&d.owner).public();
    let verified = Verified::new();
    s.apply(
        now,
        d,
        pushed_by,
        Signer {
            key: &key,
            verified: &verified,
            from_owner: false,
        },
    )
}

fn put(key: &str, value: &str) -> Record {
    Record::Entry {
        key: Arc::from(key),
        value: Some(Arc::from(value.as_bytes())),
    }
}

fn del(key: &str) -> Record {
    Record::Entry {
        key: Arc::from(key),
        value: None,
    }
}

fn value(s: &Store, owner: &str, key: &str) -> Option<String> {
    s.get(owner, key)
        .map(|e| String::from_utf8(e.value.to_vec()).unwrap())
}

/// Bring `to` up to `from`, with `from`'s checkpoint if it is the owner.
fn sync(from: &mut Store, to: &mut Store, now: Time) -> Vec<Event> {
    from.checkpoint_own();
    let deltas = from
        .deltas_for(&to.digest(), 1 << 20, Order::From(0), false)
        .0;
    let mut changes = vec![];
    for d in deltas {
        changes.extend(apply(to, now, &d, None).unwrap());
    }
    changes
}

#[test]
fn owner_writes_and_replica_catches_up_by_digest() {
    let mut a = store("a");
    let mut b = store("b");
    let t = Time::ZERO;
    a.write(t, put("x", "1")).unwrap();
    a.write(t, put("y", "2")).unwrap();
    a.write(t, put("x", "3")).unwrap();
    assert_eq!(a.version("a"), Some((0, 3)));
    let changes = sync(&mut a, &mut b, t);
    // Version 1 was superseded: only y@2 and x@3 travel.
    assert_eq!(changes.len(), 2);
    assert_eq!(value(&b, "a", "x").as_deref(), Some("3"));
    assert_eq!(b.summary(), {
        let mut a2 = a.summary();
        a2 ^= 0;
        a2
    });
    assert!(a
        .deltas_for(&b.digest(), 1 << 20, Order::From(0), false)
        .0
        .is_empty());
    // Nothing about b's own (empty) namespace travels back.
    assert!(b
        .deltas_for(&a.digest(), 1 << 20, Order::From(0), false)
        .0
        .is_empty());
}

#[test]
fn rumours_apply_in_order_and_hold_gaps() {
    let mut a = store("a");
    let mut b = store("b");
    let t = Time::ZERO;
    let (d1, _) = a.write(t, put("x", "1")).unwrap();
    let (d2, _) = a.write(t, put("y", "2")).unwrap();
    assert_eq!(apply(&mut b, t, &d2, Some(PEER)), Err(Refusal::Gap));
    assert_eq!(b.get("a", "y"), None);
    assert!(b.take_released().is_empty(), "still waiting");
    let changes = apply(&mut b, t, &d1, Some(PEER)).unwrap();
    assert_eq!(changes.len(), 2, "the held delta follows");
    assert_eq!(b.version("a"), Some((0, 2)));
    assert_eq!(
        b.take_released(),
        vec![(d2, PEER)],
        "handed back to pass on"
    );
    assert_eq!(apply(&mut b, t, &d1, Some(PEER)), Err(Refusal::Duplicate));
}

#[test]
fn a_held_delta_that_anti_entropy_covers_is_handed_back() {
    let mut a = store("a");
    let mut b = store("b");
    let t = Time::ZERO;
    let (_, _) = a.write(t, put("x", "1")).unwrap();
    let (d2, _) = a.write(t, put("y", "2")).unwrap();
    assert_eq!(apply(&mut b, t, &d2, Some(PEER)), Err(Refusal::Gap));
    // Anti-entropy brings versions 1 and 2 at once.
    let changes = sync(&mut a, &mut b, t);
    assert_eq!(changes.len(), 2);
    assert_eq!(b.take_released(), vec![(d2, PEER)]);
    assert!(b.take_released().is_empty(), "once");
}

#[test]
fn gap_without_hold_changes_nothing() {
    let mut a = store("a");
    let mut b = store("b");
    let t = Time::ZERO;
    a.write(t, put("x", "1")).unwrap();
    let (d2, _) = a.write(t, put("y", "2")).unwrap();
    let before = b.summary();
    assert_eq!(apply(&mut b, t, &d2, None), Err(Refusal::Gap));
    assert_eq!(b.summary(), before);
    assert_eq!(b.version("a"), None);
}

#[test]
fn own_namespace_and_malformed_deltas_are_refused() {
    let mut a = store("a");
    let mut b = store("b");
    let t = Time::ZERO;
    let (d, _) = a.write(t, put("x", "1")).unwrap();
    assert_eq!(apply(&mut a, t, &d, None), Err(Refusal::OwnNamespace));
    let mut bad = d.clone();
    bad.records[0].version = 5;
    assert_eq!(apply(&mut b, t, &bad, None), Err(Refusal::Malformed));
    let mut long = d.clone();
    long.records[0].record = put("a-key-far-too-long-for-limits", "v");
    assert_eq!(apply(&mut b, t, &long, None), Err(Refusal::Malformed));
    let mut backwards = d;
    backwards.to = 0;
    assert_eq!(apply(&mut b, t, &backwards, None), Err(Refusal::Malformed));
    assert_eq!(b.version("a"), None);
}

#[test]
fn limits_are_typed_errors_that_change_nothing() {
    let mut a = store("a");
    let t = Time::ZERO;
    assert_eq!(a.write(t, put("", "v")).unwrap_err(), Error::EmptyKey);
    assert!(matches!(
        a.write(t, put("k", &"v".repeat(65))).unwrap_err(),
        Error::ValueTooLong { len: 65, max: 64 }
    ));
    for i in 0..4 {
        a.write(t, put(&format!("k{i}"), "v")).unwrap();
    }
    assert_eq!(
        a.write(t, put("k9", "v")).unwrap_err(),
        Error::NamespaceFull { max: 4 }
    );
    // Overwriting an existing key is fine at the limit.
    a.write(t, put("k0", "w")).unwrap();
    assert_eq!(a.version("a"), Some((0, 5)));
    // A replica refuses a delta that would exceed the limit.
    let mut big = store("big");
    big.limits.max_keys = 10;
    for i in 0..6 {
        big.write(t, put(&format!("k{i}"), "v")).unwrap();
    }
    let d = big.deltas_for(&[], 1 << 20, Order::From(0), false).0;
    assert_eq!(apply(&mut a, t, &d[0], None), Err(Refusal::Malformed));
    assert_eq!(a.version("big"), None);
}

#[test]
fn tombstones_are_collected_and_stale_replicas_reset() {
    let t0 = Time::ZERO;
    let mut a = store("a");
    let mut b = store("b");
    a.write(t0, put("x", "1")).unwrap();
    a.write(t0, put("y", "1")).unwrap();
    sync(&mut a, &mut b, t0);
    // b is cut off; a deletes x and, after the grace, forgets the tombstone.
    a.write(t0, del("x")).unwrap();
    a.write(t0, put("z", "1")).unwrap();
    assert_eq!(a.tombstones("a"), 1);
    a.collect_garbage(t0 + GRACE);
    assert_eq!(a.tombstones("a"), 0);
    // b is behind a's horizon: it gets a reset, and x does not survive.
    let d = a.deltas_for(&b.digest(), 1 << 20, Order::From(0), false).0;
    assert!(d[0].reset);
    let changes = sync(&mut a, &mut b, t0 + GRACE);
    assert_eq!(value(&b, "a", "x"), None);
    assert_eq!(value(&b, "a", "z").as_deref(), Some("1"));
    assert!(changes
        .iter()
        .any(|c| matches!(c, Event::EntryChanged { key, value: None, .. } if &**key == "x")));
    // y did not change, so it is not reported again.
    assert!(!changes
        .iter()
        .any(|c| matches!(c, Event::EntryChanged { key, .. } if &**key == "y")));
    assert_eq!(a.summary(), b.summary());
}

/// A store that holds 100 keys.
fn roomy(name: &str) -> Store {
    let mut s = store(name);
    s.limits.max_keys = 100;
    s
}

/// Owner `a` with k0..k9 written, k9 then deleted and collected (horizon
/// 11), and `c`, a replica synced before the delete.
fn collected_owner(t0: Time) -> (Store, Store) {
    let mut a = roomy("a");
    let mut c = roomy("c");
    for i in 0..10 {
        a.write(t0, put(&format!("k{i}"), "v")).unwrap();
    }
    sync(&mut a, &mut c, t0);
    a.write(t0, del("k9")).unwrap();
    a.collect_garbage(t0 + GRACE);
    (a, c)
}

#[test]
fn partial_reset_only_trusts_senders_past_the_horizon() {
    let t0 = Time::ZERO;
    let (mut a, stale) = collected_owner(t0);
    let mut b = roomy("b");
    // A reset that only fits three records (78 bytes each, signature
    // included, beside the checkpoint's 132) stops short of the horizon:
    // it is staged, and b still shows nothing of a.
    let d = a
        .deltas_for(&b.digest(), 3 * 78 + 110 + 132, Order::From(0), false)
        .0;
    assert!(d[0].reset && d[0].to < d[0].horizon, "{:?}", d[0]);
    assert_eq!(apply(&mut b, t0, &d[0], None), Ok(vec![]));
    assert!(b.list("a", "k").is_empty());
    // The stale replica (still holding k9) is behind the version the reset
    // is of: it sends nothing. Made to go on anyway, it is refused.
    let line = b.digest();
    assert_eq!(line[0].reset_at, 11);
    assert!(stale
        .deltas_for(&line, 1 << 20, Order::From(0), false)
        .0
        .is_empty());
    let blind: Vec<DigestEntry> = line
        .into_iter()
        .map(|e| DigestEntry { reset_at: 0, ..e })
        .collect();
    let from_stale = stale.deltas_for(&blind, 1 << 20, Order::From(0), false).0;
    assert_eq!(from_stale[0].from, d[0].to);
    assert_eq!(
        apply(&mut b, t0, &from_stale[0], None),
        Err(Refusal::StaleSource)
    );
    assert!(b.list("a", "k").is_empty());
    sync(&mut a, &mut b, t0);
    assert_eq!(value(&b, "a", "k9"), None);
    assert_eq!(b.list("a", "k").len(), 9);
    assert_eq!(a.summary(), b.summary());
}

/// A delta cut short leaves out every key rewritten past the cut, even
/// one live at it; its pieces are held aside until the rest arrives, so
/// the replica never shows a namespace the owner never had.
#[test]
fn a_delta_cut_short_is_staged_until_whole() {
    let t0 = Time::ZERO;
    let mut a = store("a");
    let mut b = store("b");
    a.write(t0, put("x", "1")).unwrap();
    sync(&mut a, &mut b, t0);
    a.write(t0, put("y", "1")).unwrap(); // 2
    a.write(t0, put("z", "1")).unwrap(); // 3
    a.write(t0, put("y", "2")).unwrap(); // 4: y@2 is gone from a's stream
    a.write(t0, put("w", "1")).unwrap(); // 5
                                         // Room for one record: z@3 alone, cut short of 5.
    let first = a.deltas_for(&b.digest(), 2 * 78, Order::From(0), false).0;
    assert_eq!(
        (first[0].from, first[0].to, first[0].records.len()),
        (1, 3, 1)
    );
    assert_eq!(apply(&mut b, t0, &first[0], None), Ok(vec![]));
    // b still shows a at version 1, and advertises the stage's reach.
    assert_eq!(b.version("a"), Some((0, 1)));
    assert_eq!(b.list("a", "").len(), 1);
    let line = b.digest().into_iter().find(|e| &*e.owner == "a").unwrap();
    assert_eq!((line.version, line.unproven), (3, true));
    // The same piece again brings nothing.
    assert_eq!(apply(&mut b, t0, &first[0], None), Err(Refusal::Duplicate));
    // The rest goes on from 3 and is whole: applied in one step.
    let rest = a.deltas_for(&b.digest(), 1 << 20, Order::From(0), false).0;
    assert_eq!((rest[0].from, rest[0].to), (3, 5));
    let changes = apply(&mut b, t0, &rest[0], None).unwrap();
    assert_eq!(changes.len(), 3, "z, y and w: {changes:?}");
    assert_eq!(b.version("a"), Some((0, 5)));
    assert_eq!(value(&b, "a", "y").as_deref(), Some("2"));
    assert_eq!(b.list("a", "").len(), 4);
    assert_eq!(a.summary(), b.summary());
    assert_eq!(b.take_findings().staged, 1);
}

#[test]
fn a_new_generation_replaces_the_old_life() {
    let t0 = Time::ZERO;
    let mut old = store("a");
    let mut b = store("b");
    old.write(t0, put("x", "1")).unwrap();
    old.write(t0, put("y", "1")).unwrap();
    sync(&mut old, &mut b, t0);
    let mut new = Store::new(Arc::from("a"), 1, LIMITS, GRACE, ident("a"));
    let (d, _) = new.write(t0, put("z", "2")).unwrap();
    let changes = apply(&mut b, t0, &d, Some(PEER)).unwrap();
    assert_eq!(b.version("a"), Some((1, 1)));
    assert_eq!(value(&b, "a", "x"), None);
    assert_eq!(value(&b, "a", "z").as_deref(), Some("2"));
    assert_eq!(changes.len(), 3, "x and y deleted, z written: {changes:?}");
    // The old life's deltas are now stale.
    let d = old.deltas_for(&[], 1 << 20, Order::From(0), false).0;
    assert_eq!(
        apply(&mut b, t0, &d[0], None),
        Err(Refusal::StaleGeneration)
    );
    // An empty new life resets a replica through the digest exchange.
    let mut c = store("c");
    sync(&mut old, &mut c, t0);
    let empty = Store::new(Arc::from("a"), 2, LIMITS, GRACE, ident("a"));
    let mut digest = c.digest();
    digest.retain(|e| &*e.owner == "a");
    let d = empty.deltas_for(&digest, 1 << 20, Order::From(0), false).0;
    assert!(d[0].reset && d[0].records.is_empty());
    apply(&mut c, t0, &d[0], None).unwrap();
    assert_eq!(value(&c, "a", "x"), None);
    assert_eq!(c.version("a"), Some((2, 0)));
    assert!(c.digest().iter().all(|e| &*e.owner != "a"));
}

#[test]
fn events_are_delivered_once_and_collected() {
    let t0 = Time::ZERO;
    let mut a = store("a");
    let mut b = store("b");
    let ev = Record::Event {
        name: Arc::from("deploy"),
        payload: Arc::from(&b"v2"[..]),
        lamport: 7,
    };
    let (d, _) = a.write(t0, ev).unwrap();
    assert_eq!(apply(&mut b, t0, &d, Some(PEER)).unwrap().len(), 1);
    assert_eq!(apply(&mut b, t0, &d, Some(PEER)), Err(Refusal::Duplicate));
    assert!(sync(&mut a, &mut b, t0).is_empty());
    b.collect_garbage(t0 + GRACE);
    assert_eq!(b.version("a"), Some((0, 1)));
    assert!(sync(&mut a, &mut b, t0).is_empty());
}

#[test]
fn a_reset_never_rolls_a_replica_back_and_reports_a_delete_once() {
    let t0 = Time::ZERO;
    let mut a = store("a");
    let mut b = store("b");
    a.write(t0, put("x", "1")).unwrap();
    a.write(t0, del("y")).unwrap();
    a.collect_garbage(t0 + GRACE);
    let reset = a.deltas_for(&[], 1 << 20, Order::From(0), false).0;
    assert!(reset[0].reset);
    sync(&mut a, &mut b, t0);
    a.write(t0, put("z", "1")).unwrap();
    sync(&mut a, &mut b, t0);
    // b is past the horizon and ahead of the old reset: refused.
    assert_eq!(apply(&mut b, t0, &reset[0], None), Err(Refusal::Duplicate));
    assert_eq!(b.version("a"), Some((0, 3)));
    // A targeted pull serves only the owners it names.
    assert!(a
        .deltas_for(&[], 1 << 20, Order::From(0), true)
        .0
        .is_empty());

    // A legitimate reset that carries a tombstone of a key the replica
    // holds live reports the delete once.
    let mut c = store("c");
    let mut d = store("d");
    c.write(t0, put("k", "1")).unwrap();
    c.write(t0, put("old", "1")).unwrap();
    sync(&mut c, &mut d, t0);
    c.write(t0, del("old")).unwrap();
    let t1 = t0 + GRACE;
    c.collect_garbage(t1);
    c.write(t1, del("k")).unwrap();
    let reset = c.deltas_for(&d.digest(), 1 << 20, Order::From(0), false).0;
    assert!(reset[0].reset);
    let changes = apply(&mut d, t1, &reset[0], None).unwrap();
    let k_deletes = changes
        .iter()
        .filter(|ch| matches!(ch, Event::EntryChanged { key, value: None, .. } if &**key == "k"))
        .count();
    assert_eq!(k_deletes, 1, "{changes:?}");
}

#[test]
fn list_by_prefix() {
    let mut a = store("a");
    let t = Time::ZERO;
    for k in ["app/1", "app/2", "b", "apz"] {
        a.write(t, put(k, "v")).unwrap();
    }
    a.write(t, del("app/2")).unwrap();
    let keys: Vec<_> = a.list("a", "app/").iter().map(|e| e.key.clone()).collect();
    assert_eq!(keys, vec![Arc::from("app/1")]);
    assert_eq!(a.list("a", "").len(), 3);
}

/// Scenarios of the store seen from whole nodes, on the test harness.
mod scenarios {
    use crate::harness::*;
    use crate::*;

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

/// `d` with the records at `versions` taken out, and no checkpoint: what a
/// relay that withholds them sends.
fn withholding(mut d: Delta, versions: &[u64]) -> Delta {
    d.records.retain(|r| !versions.contains(&r.version));
    d.checkpoint = None;
    d
}

#[test]
fn a_withheld_record_is_found_by_a_checkpoint_and_refetched() {
    // Scenario: a writes k1, k2, k3. A relay hands b versions 1 to 3 without
    // k2, which b takes as complete. a's checkpoint at version 3 shows b's
    // replica short; b repairs with a pass over a's stream, k2 arrives, and
    // b is proven whole: its digest line matches a's.
    let t = Time::ZERO;
    let mut a = store("a");
    let mut b = store("b");
    for k in ["k1", "k2", "k3"] {
        a.write(t, put(k, "v")).unwrap();
    }
    let full = a
        .deltas_for(&b.digest(), 1 << 20, Order::From(0), false)
        .0
        .remove(0);
    apply(&mut b, t, &withholding(full, &[2]), None).unwrap();
    assert_eq!(b.version("a"), Some((0, 3)));
    assert_eq!(value(&b, "a", "k2"), None);
    assert!(b.digest()[0].unproven);
    // The owner's checkpoint alone, as to a peer at its own version.
    a.checkpoint_own();
    let only = a.deltas_for(&b.digest(), 1 << 20, Order::From(0), false).0;
    assert!(only[0].records.is_empty() && only[0].checkpoint.is_some());
    assert_eq!(apply(&mut b, t, &only[0], None), Ok(vec![]));
    assert_eq!(b.take_findings().withheld, 1);
    // Repairing: b asks for a's stream from scratch, and serves none of it.
    assert_eq!(b.digest()[0].version, 0);
    assert!(b
        .deltas_for(&store("c").digest(), 1 << 20, Order::From(0), false)
        .0
        .is_empty());
    let changes = sync(&mut a, &mut b, t);
    assert_eq!(value(&b, "a", "k2").as_deref(), Some("v"));
    assert_eq!(changes.len(), 1, "only k2 is new: {changes:?}");
    let f = b.take_findings();
    assert_eq!((f.repaired, f.proven, f.withheld), (1, 1, 0));
    assert!(!b.digest()[0].unproven);
    assert_eq!(a.summary(), b.summary());
}

#[test]
fn a_withheld_overwrite_and_a_withheld_delete_since_collected_are_repaired() {
    // Scenario: b holds x=1 and y=1. a then writes x=2, deletes y and writes
    // z; a relay hands b only z, and a collects y's tombstone. The repair
    // pass (a reset, since b asks from scratch and a's horizon is past 0)
    // brings x=2, and y, which the pass never shows, goes.
    let t0 = Time::ZERO;
    let mut a = store("a");
    let mut b = store("b");
    a.write(t0, put("x", "1")).unwrap();
    a.write(t0, put("y", "1")).unwrap();
    sync(&mut a, &mut b, t0);
    a.write(t0, put("x", "2")).unwrap();
    a.write(t0, del("y")).unwrap();
    a.write(t0, put("z", "1")).unwrap();
    let d = a
        .deltas_for(&b.digest(), 1 << 20, Order::From(0), false)
        .0
        .remove(0);
    apply(&mut b, t0, &withholding(d, &[3, 4]), None).unwrap();
    assert_eq!(value(&b, "a", "y").as_deref(), Some("1"));
    a.collect_garbage(t0 + GRACE);
    sync(&mut a, &mut b, t0 + GRACE);
    assert_eq!(b.take_findings().withheld, 1);
    let changes = sync(&mut a, &mut b, t0 + GRACE);
    assert_eq!(value(&b, "a", "x").as_deref(), Some("2"));
    assert_eq!(value(&b, "a", "y"), None);
    assert_eq!(value(&b, "a", "z").as_deref(), Some("1"));
    assert!(changes
        .iter()
        .any(|c| matches!(c, Event::EntryChanged { key, value: None, .. } if &**key == "y")));
    assert_eq!(b.take_findings().repaired, 1);
    assert_eq!(a.summary(), b.summary());
}

#[test]
fn a_reset_short_of_its_checkpoint_and_a_forged_checkpoint_change_nothing() {
    // Scenario: c is behind a's horizon. A reset with a record taken out but
    // a's checkpoint kept is refused; so is a checkpoint whose digest was
    // bent. b, at a's version, refuses a forged checkpoint and stays as it
    // was (not repairing).
    let t0 = Time::ZERO;
    let mut a = store("a");
    let mut b = store("b");
    let mut c = store("c");
    a.write(t0, put("x", "1")).unwrap();
    a.write(t0, del("x")).unwrap();
    a.write(t0, put("y", "1")).unwrap();
    a.write(t0, put("z", "1")).unwrap();
    a.collect_garbage(t0 + GRACE);
    a.checkpoint_own();
    let reset = a
        .deltas_for(&c.digest(), 1 << 20, Order::From(0), false)
        .0
        .remove(0);
    assert!(reset.reset && reset.checkpoint.is_some());
    let mut short = reset.clone();
    short.records.retain(|r| r.version != 3);
    assert_eq!(apply(&mut c, t0, &short, None), Err(Refusal::Withheld));
    let mut bent = reset.clone();
    Arc::make_mut(bent.checkpoint.as_mut().unwrap())
        .digest
        .add(99);
    assert_eq!(apply(&mut c, t0, &bent, None), Err(Refusal::BadSignature));
    assert_eq!(c.version("a"), None);
    apply(&mut c, t0, &reset, None).unwrap();
    assert_eq!(c.take_findings().proven, 1);

    let d = a
        .deltas_for(&b.digest(), 1 << 20, Order::From(0), false)
        .0
        .remove(0);
    apply(&mut b, t0, &withholding(d, &[]), None).unwrap();
    let mut forged = a
        .deltas_for(&b.digest(), 1 << 20, Order::From(0), false)
        .0
        .remove(0);
    Arc::make_mut(forged.checkpoint.as_mut().unwrap()).signature = Signature([7; 64]);
    assert_eq!(apply(&mut b, t0, &forged, None), Err(Refusal::BadSignature));
    assert!(b.digest()[0].unproven && b.digest()[0].version == 4);
    assert_eq!(b.take_findings(), Findings::default());
}

/// A reset bigger than one message arrives in pieces, all of one version,
/// and shows only once whole (it used to be sent again from version 0 at
/// every exchange, cut at the same place, and never arrived).
#[test]
fn a_reset_bigger_than_a_message_arrives_in_pieces() {
    let t0 = Time::ZERO;
    let (mut a, _) = collected_owner(t0);
    let mut b = roomy("b");
    a.checkpoint_own();
    let mut pieces = 0;
    loop {
        let d = a
            .deltas_for(&b.digest(), 3 * 78 + 110 + 132, Order::From(0), false)
            .0;
        let Some(d) = d.first() else { break };
        assert_eq!(d.reset, pieces == 0, "{d:?}");
        let shown = b.list("a", "k").len();
        apply(&mut b, t0, d, None).unwrap();
        pieces += 1;
        assert!(pieces < 10, "no end to the pieces");
        let now = b.list("a", "k").len();
        assert!(
            now == 0 || now == 9,
            "part of a reset shown: {shown} -> {now}"
        );
    }
    assert!(pieces > 1, "the reset fitted one message");
    assert_eq!(b.list("a", "k").len(), 9);
    assert_eq!(b.version("a"), Some((0, 11)));
    assert_eq!(a.summary(), b.summary());
    assert_eq!(
        b.take_findings().proven,
        1,
        "the last piece's checkpoint proves it"
    );
}

/// A relay that says its sender holds more than it does (the field is not
/// signed) has the stage wait for a version nobody else holds; the
/// owner's own whole piece, which the replica's audit asks for, ends the
/// wait.
#[test]
fn a_piece_that_overstates_its_senders_version_waits_for_the_owner() {
    let t0 = Time::ZERO;
    let mut a = store("a");
    let mut b = store("b");
    a.write(t0, put("x", "1")).unwrap();
    a.write(t0, put("y", "1")).unwrap();
    a.write(t0, put("x", "2")).unwrap();
    let mut first = a.deltas_for(&b.digest(), 2 * 78, Order::From(0), false).0;
    assert_eq!((first[0].to, first[0].sender_version), (2, 3));
    first[0].sender_version = 1_000;
    assert_eq!(apply(&mut b, t0, &first[0], None), Ok(vec![]));
    // The rest, relayed: merged, but short of the version claimed.
    let rest = a.deltas_for(&b.digest(), 1 << 20, Order::From(0), false).0;
    assert_eq!(apply(&mut b, t0, &rest[0], None), Ok(vec![]));
    assert!(b.list("a", "").is_empty(), "nothing shown");
    // The audit asks the owner, which answers from where the stage reaches.
    let line = vec![b.next_unproven(None).expect("audited")];
    assert_eq!(line[0].version, 3);
    a.write(t0, put("z", "1")).unwrap();
    let own = a.deltas_for(&line, 1 << 20, Order::From(0), false).0;
    let key = ident("a").public();
    let verified = Verified::new();
    let signer = Signer {
        key: &key,
        verified: &verified,
        from_owner: true,
    };
    assert_eq!(b.apply(t0, &own[0], None, signer).unwrap().len(), 3);
    assert_eq!(value(&b, "a", "x").as_deref(), Some("2"));
    assert_eq!(a.summary(), b.summary());
}

/// The version a delta reaches is not signed, so a relay could raise it:
/// the replica would believe itself complete up to a version the owner has
/// not written, and refuse every real write up to it as a duplicate. A
/// delta must reach no further than a record, a checkpoint or a signed
/// horizon in it.
#[test]
fn a_delta_reaching_past_what_it_proves_is_refused() {
    let t0 = Time::ZERO;
    let mut a = store("a");
    let mut b = store("b");
    let (d1, _) = a.write(t0, put("x", "1")).unwrap();
    let mut raised = d1.clone();
    (raised.to, raised.sender_version) = (1_000, 1_000);
    assert_eq!(apply(&mut b, t0, &raised, None), Err(Refusal::Unproven));
    assert_eq!(
        apply(&mut b, t0, &raised, Some(PEER)),
        Err(Refusal::Unproven)
    );
    assert_eq!(b.version("a"), None, "nothing held or applied");
    // The owner's real writes land.
    apply(&mut b, t0, &d1, None).unwrap();
    let (d2, _) = a.write(t0, put("x", "2")).unwrap();
    apply(&mut b, t0, &d2, None).unwrap();
    assert_eq!(value(&b, "a", "x").as_deref(), Some("2"));
    // A genuine delta whose last versions were collected reaches them on
    // the owner's signed horizon.
    a.write(t0, del("x")).unwrap();
    a.collect_garbage(t0 + GRACE);
    let d = a.deltas_for(&b.digest(), 1 << 20, Order::From(0), false).0;
    assert!(d[0].records.is_empty() && d[0].to == 3, "{:?}", d[0]);
    apply(&mut b, t0, &d[0], None).unwrap();
    assert_eq!(b.version("a"), Some((0, 3)));
    assert_eq!(value(&b, "a", "x"), None);
}

/// A reset's first piece whose sender's version was overstated would have
/// every honest peer wait for a version nobody holds; the owner, asked by
/// the audit, knows better and starts the reset anew.
#[test]
fn a_reset_of_a_version_nobody_holds_is_started_anew_by_its_owner() {
    let t0 = Time::ZERO;
    let (mut a, _) = collected_owner(t0);
    let mut b = roomy("b");
    let mut c = roomy("c");
    sync(&mut a, &mut c, t0);
    let budget = 3 * 78 + 110 + 132;
    let mut first = a.deltas_for(&b.digest(), budget, Order::From(0), false).0;
    first[0].sender_version = 1_000;
    apply(&mut b, t0, &first[0], None).unwrap();
    assert_eq!(b.digest()[0].reset_at, 1_000);
    // A replica at the real version waits; the audit asks the owner.
    assert!(c
        .deltas_for(&b.digest(), budget, Order::From(0), false)
        .0
        .is_empty());
    let audit = b
        .next_unproven(None)
        .expect("the staged replica is audited");
    let mut pieces = 0;
    let mut line = vec![audit];
    loop {
        let d = a.deltas_for(&line, budget, Order::From(0), false).0;
        let Some(d) = d.first() else { break };
        apply(&mut b, t0, d, None).unwrap();
        pieces += 1;
        assert!(pieces < 10, "no end to the pieces");
        line = b.digest();
    }
    assert_eq!(b.list("a", "k").len(), 9);
    assert_eq!(a.summary(), b.summary());
}

#[test]
fn a_stream_slot_takes_24_bytes_and_an_event_survives_the_box() {
    assert!(
        std::mem::size_of::<Slot>() <= 24,
        "{}",
        std::mem::size_of::<Slot>()
    );
    let mut a = store("a");
    let mut b = store("b");
    let t = Time::ZERO;
    let event = Record::Event {
        name: Arc::from("deploy"),
        payload: Arc::from(&b"v2"[..]),
        lamport: 7,
    };
    a.write(t, put("x", "1")).unwrap();
    a.write(t, event.clone()).unwrap();
    let changes = sync(&mut a, &mut b, t);
    assert!(changes.iter().any(|c| matches!(c,
        Event::UserEvent { name, payload, lamport: 7, .. } if &**name == "deploy" && &**payload == b"v2")), "{changes:?}");
    // And b serves it on, from its own stream.
    let mut c = store("c");
    let d = b.deltas_for(&c.digest(), 1 << 20, Order::From(0), false).0;
    assert!(d[0].records.iter().any(|v| v.record == event));
    for d in d {
        apply(&mut c, t, &d, None).unwrap();
    }
    assert_eq!(c.version("a"), Some((0, 2)));
}
