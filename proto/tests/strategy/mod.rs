//! Arbitrary core messages of all 13 kinds, as a node could send them: any
//! address (v4 and v6, port 0 included), names of 1 to `MAX_NAME_LEN`
//! bytes (ASCII and multi-byte), zero, small and huge numbers, empty,
//! absent and large (over 16 KiB) values, and deltas whose records are
//! strictly increasing inside `(from, to]`.
//!
//! Zero is drawn often on purpose: proto3 omits default fields, and those
//! are where a size computation goes wrong.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use rumour_core::*;

pub fn u32s() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), 1..300u32, any::<u32>()]
}

pub fn u64s() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), 1..300u64, any::<u64>()]
}

pub fn addr() -> impl Strategy<Value = SocketAddr> {
    let port = prop_oneof![Just(0u16), Just(7946u16), any::<u16>()];
    prop_oneof![
        (any::<[u8; 4]>(), port.clone()).prop_map(SocketAddr::from),
        // Flow info and scope id are not on the wire: they stay 0.
        (any::<[u8; 16]>(), port)
            .prop_map(|(ip, port)| SocketAddr::from((Ipv6Addr::from(ip), port))),
    ]
}

/// A valid node name: 1 to `MAX_NAME_LEN` bytes.
pub fn name() -> impl Strategy<Value = Arc<str>> {
    prop_oneof![
        4 => "[a-z][a-z0-9-]{0,15}",
        1 => "[a-z]{120,128}",
        // At most 4 bytes a char: at most 128 bytes.
        1 => "\\PC{1,32}",
    ]
    .prop_map(|s: String| Arc::from(s.as_str()))
}

/// A key, event name or query key: any string, empty included (the core
/// checks their limits, not the wire).
pub fn key() -> impl Strategy<Value = Arc<str>> {
    prop_oneof![Just(String::new()), "[a-z/]{1,20}", "\\PC{1,200}"]
        .prop_map(|s: String| Arc::from(s.as_str()))
}

pub fn bytes() -> impl Strategy<Value = Arc<[u8]>> {
    prop_oneof![
        2 => Just(Vec::new()),
        4 => vec(any::<u8>(), 1..40),
        1 => vec(any::<u8>(), 100..300),
        // Lengths with a 3-byte varint.
        1 => (16_000usize..17_000).prop_map(|n| vec![0xa5; n]),
    ]
    .prop_map(|v| Arc::from(v.as_slice()))
}

pub fn state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Alive),
        Just(MemberState::Suspect),
        Just(MemberState::Dead),
        Just(MemberState::Left),
    ]
}

pub fn kind() -> impl Strategy<Value = PushPullKind> {
    prop_oneof![
        Just(PushPullKind::Join),
        Just(PushPullKind::Summary),
        Just(PushPullKind::Sync),
        Just(PushPullKind::Reply),
        Just(PushPullKind::Deltas),
        Just(PushPullKind::Pull),
    ]
}

pub fn public_key() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 32]>().prop_map(PublicKey)
}

pub fn signature() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        Signature(s)
    })
}

pub fn update() -> impl Strategy<Value = MemberUpdate> {
    (
        name(),
        addr(),
        u32s(),
        state(),
        option::of(name()),
        public_key(),
        signature(),
    )
        .prop_map(
            |(name, addr, incarnation, state, by, key, signature)| MemberUpdate {
                id: NodeId::new(&name, addr).expect("strategy names are valid"),
                incarnation: Incarnation(incarnation),
                state,
                by,
                key,
                signature,
            },
        )
}

pub fn updates() -> impl Strategy<Value = Vec<MemberUpdate>> {
    prop_oneof![4 => vec(update(), 0..5), 1 => vec(update(), 20..40)]
}

pub fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (key(), option::of(bytes())).prop_map(|(key, value)| Record::Entry { key, value }),
        (key(), bytes(), u64s()).prop_map(|(name, payload, lamport)| Record::Event {
            name,
            payload,
            lamport
        }),
    ]
}

/// A delta whose records climb strictly inside `(from, to]`, possibly with
/// gaps (superseded records), and possibly none.
pub fn delta() -> impl Strategy<Value = Delta> {
    (
        name(),
        u32s(),
        prop_oneof![Just(0u64), 1..1000u64, 0..1u64 << 62],
        vec((1..1000u64, record(), signature()), 0..4),
        prop_oneof![Just(0u64), 1..1000u64],
        any::<bool>(),
        u64s(),
        u64s(),
        option::of(signature()),
        option::of((prop::array::uniform8(any::<u64>()), signature())),
    )
        .prop_map(
            |(
                owner,
                generation,
                from,
                steps,
                tail,
                reset,
                horizon,
                sender_version,
                horizon_signature,
                checkpoint,
            )| {
                let mut version = from;
                let records = steps
                    .into_iter()
                    .map(|(gap, record, signature)| {
                        version += gap;
                        Versioned {
                            version,
                            record,
                            signature,
                        }
                    })
                    .collect();
                Delta {
                    owner,
                    generation,
                    from,
                    to: version + tail,
                    reset,
                    horizon,
                    sender_version,
                    records,
                    horizon_signature,
                    checkpoint: checkpoint.map(|(digest, signature)| {
                        Arc::new(Checkpoint {
                            digest: LiveDigest(digest),
                            signature,
                        })
                    }),
                }
            },
        )
}

pub fn metadata() -> impl Strategy<Value = Metadata> {
    (u64s(), name(), bytes(), signature()).prop_map(|(lamport, origin, value, signature)| {
        Metadata {
            lamport,
            origin,
            value,
            signature,
        }
    })
}

pub fn digest_entry() -> impl Strategy<Value = DigestEntry> {
    (name(), u32s(), u64s(), any::<bool>(), u64s()).prop_map(
        |(owner, generation, version, unproven, reset_at)| DigestEntry {
            owner,
            generation,
            version,
            unproven,
            reset_at,
        },
    )
}

pub fn datum() -> impl Strategy<Value = Datum> {
    prop_oneof![
        3 => delta().prop_map(Datum::Delta),
        1 => metadata().prop_map(Datum::Metadata),
    ]
}

pub fn datum_id() -> impl Strategy<Value = DatumId> {
    prop_oneof![
        (name(), u32s(), u64s()).prop_map(|(owner, generation, version)| DatumId::Record {
            owner,
            generation,
            version
        }),
        (u64s(), name()).prop_map(|(lamport, origin)| DatumId::Metadata { lamport, origin }),
    ]
}

pub fn member_line() -> impl Strategy<Value = MemberLine> {
    (name(), u32s(), state()).prop_map(|(name, incarnation, state)| MemberLine {
        name,
        incarnation: Incarnation(incarnation),
        state,
    })
}

pub fn push_pull() -> impl Strategy<Value = PushPull> {
    (
        (kind(), u64s(), updates(), u64s()),
        option::of(vec(digest_entry(), 0..5)),
        vec(delta(), 0..3),
        option::of(metadata()),
        option::of(vec(member_line(), 0..5)),
        vec(name(), 0..3),
        option::of(page()),
    )
        .prop_map(
            |(
                (kind, summary, members, state_summary),
                digest,
                deltas,
                metadata,
                member_digest,
                wanted,
                page,
            )| {
                PushPull {
                    kind,
                    summary,
                    members,
                    state_summary,
                    digest,
                    deltas,
                    metadata,
                    member_digest,
                    wanted,
                    page,
                }
            },
        )
}

/// A page: from the first name or a name, to a name or all the way round.
pub fn page() -> impl Strategy<Value = Page> {
    (option::of(name()), option::of(name())).prop_map(|(from, to)| Page {
        from: from.unwrap_or_else(|| Arc::from("")),
        to,
    })
}

/// Any message, all 13 kinds equally likely.
pub fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (u32s(), name(), any::<Option<u64>>(), updates()).prop_map(
            |(seq, target, target_key, updates)| Message::Ping(Ping {
                seq,
                target,
                target_key,
                updates
            })
        ),
        (u32s(), update(), updates()).prop_map(|(seq, target, updates)| {
            Message::PingReq(PingReq {
                seq,
                target: target.id,
                updates,
            })
        }),
        (u32s(), updates()).prop_map(|(seq, updates)| Message::Ack(Ack { seq, updates })),
        u32s().prop_map(|seq| Message::Nack(Nack { seq })),
        updates().prop_map(|updates| Message::Gossip(Gossip { updates })),
        push_pull().prop_map(Message::push_pull),
        (vec(datum(), 0..4), any::<bool>())
            .prop_map(|(data, pull)| Message::DataGossip(DataGossip { data, pull })),
        (vec(datum(), 0..4), updates())
            .prop_map(|(data, updates)| Message::Eager(Eager { data, updates })),
        vec(datum_id(), 0..6).prop_map(|ids| Message::IHave(IHave { ids })),
        vec(datum_id(), 0..6).prop_map(|ids| Message::Graft(Graft { ids })),
        Just(Message::Prune(Prune)),
        (u32s(), key()).prop_map(|(id, key)| Message::Query(Query { id, key })),
        (u32s(), u32s(), u64s(), option::of(bytes())).prop_map(
            |(id, generation, version, value)| Message::QueryReply(QueryReply {
                id,
                generation,
                version,
                value,
            })
        ),
    ]
}

/// A sender's address and its message.
pub fn envelope() -> impl Strategy<Value = (SocketAddr, Message)> {
    (addr(), message())
}
