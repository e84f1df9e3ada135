//! Whatever peers send, a node never panics, never loses itself, and never
//! lets its incarnation go backwards: stale news is ignored, news of its own
//! suspicion or death is refuted. Messages come from known and unknown
//! senders, duplicated and reordered, with random sequence numbers; data
//! messages carry deltas that skip, overlap, reset, break the limits or
//! claim the node's own namespace.
//! Case count: `PROPTEST_CASES` (default 64).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use rumour_core::*;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 7946))
}

fn id(i: u8) -> NodeId {
    NodeId::new(&format!("n{i}"), addr(i)).unwrap()
}

/// Member `i`'s key pair (n0 is the node under test).
fn ident(i: u8) -> Identity {
    Identity::from_seed(1000 + i as u64)
}

/// A stranger who signs records and metadata in others' names. Its key is
/// never bound to any name, so nothing it signs may land.
fn forger() -> Identity {
    Identity::from_seed(7)
}

/// A stranger who claims members' names with its own key: the first key a
/// name is heard with binds it, so it wins names not yet heard of, and
/// nothing else.
fn claimant() -> Identity {
    Identity::from_seed(8)
}

fn state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Alive),
        Just(MemberState::Suspect),
        Just(MemberState::Dead),
        Just(MemberState::Left)
    ]
}

/// News about one of six members; n0 is the node under test, and some news
/// gives a known name another address. Most news stands on the member's own
/// signed word; some is signed by a stranger's key (a name claimed with a
/// second key), and some carries a signature bent out of shape.
fn update() -> impl Strategy<Value = MemberUpdate> {
    (
        0u8..6,
        0u8..8,
        0u32..5,
        state(),
        proptest::option::of(0u8..6),
        0u8..6,
    )
        .prop_map(|(who, at, inc, state, by, sig)| {
            let id = if at >= 6 {
                NodeId::new(&format!("n{who}"), addr(at + 10)).unwrap()
            } else {
                id(who)
            };
            let by = by.map(|b| Arc::from(format!("n{b}").as_str()));
            let signer = if sig == 0 { claimant() } else { ident(who) };
            let mut u = signer.member_update(&id, Incarnation(inc), state, by);
            if sig == 1 {
                u.signature.0[0] ^= 1;
            }
            u
        })
}

fn message() -> impl Strategy<Value = Message> {
    let updates = || prop::collection::vec(update(), 0..6);
    prop_oneof![
        (any::<u32>(), 0u8..6, any::<Option<u64>>(), updates()).prop_map(
            |(seq, t, target_key, updates)| Message::Ping(Ping {
                seq,
                target: Arc::from(format!("n{t}").as_str()),
                target_key,
                updates
            })
        ),
        (any::<u32>(), 0u8..6, updates()).prop_map(|(seq, t, updates)| Message::PingReq(PingReq {
            seq,
            target: id(t),
            updates
        })),
        (0u32..8, updates()).prop_map(|(seq, updates)| Message::Ack(Ack { seq, updates })),
        (0u32..8).prop_map(|seq| Message::Nack(Nack { seq })),
        updates().prop_map(|updates| Message::Gossip(Gossip { updates })),
        (0u8..4, any::<u64>(), updates()).prop_map(|(k, summary, members)| {
            let kind = [
                PushPullKind::Join,
                PushPullKind::Summary,
                PushPullKind::Sync,
                PushPullKind::Reply,
            ][k as usize];
            Message::push_pull(PushPull {
                kind,
                summary,
                members,
                ..PushPull::default()
            })
        }),
        (0u8..5, any::<u64>(), deltas(), prop::option::of(metadata())).prop_map(
            |(k, state_summary, deltas, metadata)| {
                let kind = [
                    PushPullKind::Join,
                    PushPullKind::Summary,
                    PushPullKind::Sync,
                    PushPullKind::Reply,
                    PushPullKind::Deltas,
                ][k as usize];
                let digest = (k % 2 == 0).then(|| {
                    deltas
                        .iter()
                        .map(|d| DigestEntry {
                            owner: d.owner.clone(),
                            generation: d.generation,
                            version: d.from,
                            unproven: d.reset,
                            reset_at: 0,
                        })
                        .collect()
                });
                Message::push_pull(PushPull {
                    kind,
                    state_summary,
                    digest,
                    deltas,
                    metadata,
                    ..PushPull::default()
                })
            }
        ),
        (data(), any::<bool>())
            .prop_map(|(data, pull)| Message::DataGossip(DataGossip { data, pull })),
        (data(), updates()).prop_map(|(data, updates)| Message::Eager(Eager { data, updates })),
        ids().prop_map(|ids| Message::IHave(IHave { ids })),
        ids().prop_map(|ids| Message::Graft(Graft { ids })),
        Just(Message::Prune(Prune)),
        (any::<u32>(), "[a-c]{0,3}").prop_map(|(id, key)| Message::Query(Query {
            id,
            key: Arc::from(key.as_str())
        })),
        (
            0u32..4,
            0u64..5,
            prop::option::of(prop::collection::vec(any::<u8>(), 0..4))
        )
            .prop_map(|(id, version, value)| Message::QueryReply(QueryReply {
                id,
                generation: 0,
                version,
                value: value.map(|v| Arc::from(v.as_slice())),
            })),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (
            "[a-c]{0,3}",
            prop::option::of(prop::collection::vec(any::<u8>(), 0..4))
        )
            .prop_map(|(key, value)| Record::Entry {
                key: Arc::from(key.as_str()),
                value: value.map(|v| Arc::from(v.as_slice())),
            }),
        ("[a-c]{0,3}", any::<u64>()).prop_map(|(name, lamport)| Record::Event {
            name: Arc::from(name.as_str()),
            payload: Arc::from(&b"p"[..]),
            lamport,
        }),
    ]
}

/// Deltas about n0 (the node itself) to n5, with versions that may be out
/// of order, out of range, or skip.
fn delta() -> impl Strategy<Value = Delta> {
    (
        0u8..6,
        0u32..3,
        0u64..6,
        0u64..8,
        any::<bool>(),
        prop::collection::vec((0u64..10, record(), 0u8..4), 0..5),
        0u8..3,
        (0u8..3, 0u64..4),
    )
        .prop_map(
            |(owner, generation, from, len, reset, records, horizon_sig, (cp, digest))| {
                let name = format!("n{owner}");
                let sign = |version, record, sig: u8| {
                    if sig == 0 {
                        // Forged records write the key "forged".
                        let record = Record::Entry {
                            key: Arc::from("forged"),
                            value: Some(Arc::from(&b"x"[..])),
                        };
                        forger().versioned(&name, generation, version, record)
                    } else {
                        ident(owner).versioned(&name, generation, version, record)
                    }
                };
                let horizon_signature = match horizon_sig {
                    0 => None,
                    1 => Some(forger().sign_horizon(&name, generation, from)),
                    _ => Some(ident(owner).sign_horizon(&name, generation, from)),
                };
                // A checkpoint over some live digest (rarely the true one),
                // by a forger or by the owner itself.
                let mut live = LiveDigest::default();
                live.add(digest);
                let checkpoint = match cp {
                    0 => None,
                    1 => Some(Arc::new(forger().checkpoint(
                        &name,
                        generation,
                        from + len,
                        live,
                    ))),
                    _ => Some(Arc::new(ident(owner).checkpoint(
                        &name,
                        generation,
                        from + len,
                        live,
                    ))),
                };
                Delta {
                    owner: Arc::from(name.as_str()),
                    generation,
                    from: if reset { 0 } else { from },
                    to: from + len,
                    reset,
                    horizon: from,
                    sender_version: from + len + 1,
                    records: records
                        .into_iter()
                        .map(|(version, record, sig)| sign(version, record, sig))
                        .collect(),
                    horizon_signature,
                    checkpoint,
                }
            },
        )
}

fn deltas() -> impl Strategy<Value = Vec<Delta>> {
    prop::collection::vec(delta(), 0..4)
}

fn metadata() -> impl Strategy<Value = Metadata> {
    (0u64..10, 0u8..6, any::<bool>()).prop_map(|(lamport, o, forged)| {
        if forged {
            forger().metadata(&format!("n{o}"), lamport, b"forged")
        } else {
            ident(o).metadata(&format!("n{o}"), lamport, b"m")
        }
    })
}

fn data() -> impl Strategy<Value = Vec<Datum>> {
    prop::collection::vec(
        prop_oneof![
            3 => delta().prop_map(Datum::Delta),
            1 => metadata().prop_map(Datum::Metadata),
        ],
        0..4,
    )
}

fn ids() -> impl Strategy<Value = Vec<DatumId>> {
    prop::collection::vec(
        (0u8..6, 0u64..8).prop_map(|(o, version)| DatumId::Record {
            owner: Arc::from(format!("n{o}").as_str()),
            generation: 0,
            version,
        }),
        0..4,
    )
}

/// An input: a message from sender `from` (0..12, so half are strangers),
/// or a tick `dt` milliseconds later.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // test inputs, held a few at a time
enum Input {
    Msg(u8, Message),
    Tick(u64),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        3 => (0u8..12, message()).prop_map(|(f, m)| Input::Msg(f, m)),
        1 => (0u64..3000).prop_map(Input::Tick),
    ]
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_node_survives_any_sequence_of_messages(seed in any::<u64>(), inputs in prop::collection::vec(input(), 1..120)) {
        let mut node = Node::with_identity(id(0), ident(0), Incarnation(1), Config::lan(), seed, Time::ZERO).unwrap();
        node.join(Time::ZERO, &[addr(1)]).unwrap();
        let mut now = Time::ZERO;
        let mut incarnation = node.incarnation();
        // The key each name was first heard with: a name keeps it while held.
        let mut bound = std::collections::BTreeMap::new();
        for input in inputs {
            match input {
                Input::Msg(from, msg) => node.handle_message(now, addr(from), msg),
                Input::Tick(ms) => {
                    now += Duration::from_millis(ms);
                    node.handle_timeout(now);
                }
            }
            while let Some(out) = node.poll_output() {
                if let Output::Event(e) = &out {
                    if let Some(m) = e.member() {
                        prop_assert_ne!(m.id.name(), "n0", "a node reports no event about itself");
                    }
                    if let Event::EntryChanged { owner, key, .. } = e {
                        prop_assert_ne!(&**owner, "n0", "no one else writes our namespace");
                        prop_assert_ne!(&**key, "forged", "a record its owner did not sign");
                    }
                    if let Event::MetadataChanged(m) = e {
                        prop_assert_ne!(&*m.value, b"forged", "metadata its publisher did not sign");
                    }
                }
            }
            let held: Vec<Member> = node.members().collect();
            bound.retain(|name: &String, _| held.iter().any(|m| m.id.name() == name));
            for m in held {
                let key = *bound.entry(m.id.name().to_owned()).or_insert(m.key);
                prop_assert_eq!(key, m.key, "a held name changed its key");
            }
            let me = node.member("n0").expect("a node always knows itself");
            prop_assert_eq!(me.key, ident(0).public());
            prop_assert_eq!(me.state, MemberState::Alive);
            prop_assert_eq!(me.incarnation, node.incarnation());
            prop_assert!(node.incarnation() >= incarnation, "incarnation went backwards");
            incarnation = node.incarnation();
            let deadline = node.poll_timeout().expect("a running node always has a timer");
            prop_assert!(deadline > Time::ZERO);
            prop_assert!(node.alive_members() <= node.live_members());
            prop_assert!(node.live_members() <= node.members().count());
            prop_assert_eq!(node.namespace_version("n0"), Some((1, 0)), "our namespace is ours alone");
            for owner in node.owners() {
                for e in node.list(&owner, "") {
                    prop_assert!(!e.key.is_empty());
                }
            }
        }
    }
}

#[test]
fn news_of_our_death_is_refuted_with_a_higher_incarnation() {
    let mut node = Node::with_identity(
        id(0),
        ident(0),
        Incarnation(3),
        Config::lan(),
        1,
        Time::ZERO,
    )
    .unwrap();
    let dead = ident(0).member_update(
        &id(0),
        Incarnation(3),
        MemberState::Dead,
        Some(Arc::from("n1")),
    );
    node.handle_message(
        Time::ZERO,
        addr(9),
        Message::Gossip(Gossip {
            updates: vec![dead.clone()],
        }),
    );
    assert_eq!(node.incarnation(), Incarnation(4));
    assert_eq!(node.stats().refutations, 1);
    // The same stale claim again changes nothing but is answered.
    node.handle_message(
        Time::ZERO,
        addr(9),
        Message::Gossip(Gossip {
            updates: vec![dead],
        }),
    );
    assert_eq!(node.incarnation(), Incarnation(4));
    assert_eq!(node.stats().refutations, 1);
}

#[test]
fn a_ping_for_another_name_or_key_is_ignored_and_counted() {
    let mut node = Node::new(id(0), Incarnation(0), Config::lan(), 1, Time::ZERO).unwrap();
    let ping = Message::Ping(Ping {
        seq: 7,
        target: Arc::from("someone-else"),
        target_key: None,
        updates: vec![],
    });
    node.handle_message(Time::ZERO, addr(5), ping);
    assert!(node.poll_output().is_none());
    assert_eq!(node.stats().misdirected, 1);
    // Our name under another key: meant for a previous life of ours that
    // lost its key, so no ack keeps that identity alive.
    let mine = node.public_key().fingerprint();
    let ping = Message::Ping(Ping {
        seq: 7,
        target: Arc::from("n0"),
        target_key: Some(mine ^ 1),
        updates: vec![],
    });
    node.handle_message(Time::ZERO, addr(5), ping);
    assert!(node.poll_output().is_none());
    assert_eq!(node.stats().misdirected, 2);
    for target_key in [Some(mine), None] {
        let ping = Message::Ping(Ping {
            seq: 7,
            target: Arc::from("n0"),
            target_key,
            updates: vec![],
        });
        node.handle_message(Time::ZERO, addr(5), ping);
        match node.poll_output() {
            Some(Output::Send {
                to,
                msg: Message::Ack(a),
            }) => assert_eq!((to, a.seq), (addr(5), 7)),
            other => panic!("expected an ack, got {other:?}"),
        }
    }
}
