//! Whatever bytes a peer sends, decoding answers `Ok` or a typed
//! `DecodeError` and never panics. One story per refusal, then arbitrary
//! and mutated bytes.
//! Case count: `PROPTEST_CASES` (default 256).

mod strategy;

use std::net::SocketAddr;

use proptest::prelude::*;
use prost::Message as _;
use rumour_core::MAX_NAME_LEN;
use rumour_proto::v1::{self, envelope::Body};
use rumour_proto::{decode_bytes, decode_envelope, encode_envelope, DecodeError};

fn sender() -> v1::Address {
    v1::Address {
        ip: vec![10, 0, 0, 1],
        port: 7946,
    }
}

fn member(name: &str) -> v1::MemberUpdate {
    v1::MemberUpdate {
        name: name.into(),
        addr: Some(v1::Address {
            ip: vec![10, 0, 0, 2],
            port: 7946,
        }),
        incarnation: 1,
        state: v1::State::Suspect.into(),
        by: "n1".into(),
        key: vec![1; 32],
        signature: vec![2; 64],
    }
}

fn envelope(body: Body) -> v1::Envelope {
    v1::Envelope {
        from: Some(sender()),
        body: Some(body),
        sealed: None,
    }
}

fn gossip(u: v1::MemberUpdate) -> v1::Envelope {
    envelope(Body::Gossip(v1::Gossip { updates: vec![u] }))
}

fn delta(from: u64, to: u64, versions: &[u64]) -> v1::Delta {
    v1::Delta {
        owner: "n1".into(),
        generation: 1,
        from,
        to,
        records: versions
            .iter()
            .map(|&version| v1::Versioned {
                version,
                record: Some(v1::versioned::Record::Entry(v1::EntryRecord {
                    key: "k".into(),
                    value: b"v".to_vec(),
                    deleted: false,
                })),
                signature: vec![3; 64],
            })
            .collect(),
        ..v1::Delta::default()
    }
}

fn eager(d: v1::Datum) -> v1::Envelope {
    envelope(Body::Eager(v1::Eager {
        data: vec![d],
        ..Default::default()
    }))
}

fn eager_delta(d: v1::Delta) -> v1::Envelope {
    eager(v1::Datum {
        datum: Some(v1::datum::Datum::Delta(d)),
    })
}

fn ihave(id: v1::datum_id::Id) -> v1::Envelope {
    envelope(Body::Ihave(v1::IHave {
        ids: vec![v1::DatumId { id: Some(id) }],
    }))
}

fn bad_name(env: v1::Envelope, field: &str) {
    match decode_envelope(env) {
        Err(DecodeError::BadName(why)) => assert!(why.starts_with(field), "{why}"),
        other => panic!("expected a bad name in {field}, got {other:?}"),
    }
}

#[test]
fn the_hand_built_envelopes_are_valid() {
    // Scenario: every refusal below changes one thing in a valid message.
    assert!(decode_envelope(gossip(member("n2"))).is_ok());
    assert!(decode_envelope(eager_delta(delta(3, 9, &[4, 7, 9]))).is_ok());
    assert!(decode_envelope(eager_delta(delta(3, 3, &[]))).is_ok());
    let mut long = member(&"x".repeat(MAX_NAME_LEN));
    long.by = "y".repeat(MAX_NAME_LEN);
    assert!(decode_envelope(gossip(long)).is_ok());
}

#[test]
fn too_large_is_refused_before_decoding() {
    // Scenario: garbage longer than the limit is refused for its size, not
    // for being garbage: the decoder never saw it.
    let garbage = [0xff; 64];
    assert_eq!(
        decode_bytes(&garbage, 63),
        Err(DecodeError::TooLarge { len: 64, max: 63 })
    );
    let bytes = gossip(member("n2")).encode_to_vec();
    assert!(decode_bytes(&bytes, bytes.len()).is_ok());
    assert_eq!(
        decode_bytes(&bytes, bytes.len() - 1),
        Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: bytes.len() - 1
        })
    );
}

#[test]
fn broken_protobuf() {
    let bytes = gossip(member("n2")).encode_to_vec();
    // Truncated.
    assert!(matches!(
        decode_bytes(&bytes[..bytes.len() - 3], usize::MAX),
        Err(DecodeError::Protobuf(_))
    ));
    // A wrong wire type: field 1 (from) as a varint.
    assert!(matches!(
        decode_bytes(&[0x08, 0x01], usize::MAX),
        Err(DecodeError::Protobuf(_))
    ));
    // A name that is not UTF-8.
    let ping = envelope(Body::Ping(v1::Ping {
        seq: 1,
        target: "n\u{e9}".into(),
        target_key: None,
        updates: vec![],
    }))
    .encode_to_vec();
    let at = ping
        .iter()
        .position(|&b| b == 0xc3)
        .expect("é's first byte");
    let mut bad = ping.clone();
    bad[at] = 0xff;
    assert!(decode_bytes(&ping, usize::MAX).is_ok());
    assert!(matches!(
        decode_bytes(&bad, usize::MAX),
        Err(DecodeError::Protobuf(_))
    ));
}

#[test]
fn empty_bytes_are_an_envelope_without_sender() {
    assert_eq!(
        decode_bytes(&[], usize::MAX),
        Err(DecodeError::MissingField("Envelope.from"))
    );
}

#[test]
fn missing_fields() {
    let missing =
        |env, field| assert_eq!(decode_envelope(env), Err(DecodeError::MissingField(field)));

    let mut env = gossip(member("n2"));
    env.from = None;
    missing(env, "Envelope.from");

    let mut env = gossip(member("n2"));
    env.body = None;
    missing(env, "Envelope.body");

    let mut u = member("n2");
    u.addr = None;
    missing(gossip(u), "MemberUpdate.addr");

    let req = v1::PingReq {
        seq: 1,
        target: "n2".into(),
        target_addr: None,
        updates: vec![],
    };
    missing(envelope(Body::PingReq(req)), "PingReq.target_addr");

    let mut d = delta(0, 1, &[1]);
    d.records[0].record = None;
    missing(eager_delta(d), "Versioned.record");

    missing(eager(v1::Datum { datum: None }), "Datum.datum");

    let ids = vec![v1::DatumId { id: None }];
    missing(envelope(Body::Graft(v1::Graft { ids })), "DatumId.id");
}

#[test]
fn bad_addresses() {
    let bad = |env, field, ip_len, port| {
        assert_eq!(
            decode_envelope(env),
            Err(DecodeError::BadAddress {
                field,
                ip_len,
                port
            })
        )
    };
    for ip_len in [0, 1, 5, 15, 17] {
        let mut env = gossip(member("n2"));
        env.from = Some(v1::Address {
            ip: vec![1; ip_len],
            port: 1,
        });
        bad(env, "Envelope.from", ip_len, 1);
    }
    let mut env = gossip(member("n2"));
    env.from = Some(v1::Address {
        ip: vec![0; 16],
        port: 65_536,
    });
    bad(env, "Envelope.from", 16, 65_536);

    let mut u = member("n2");
    u.addr = Some(v1::Address {
        ip: vec![10, 0, 0],
        port: 1,
    });
    bad(gossip(u), "MemberUpdate.addr", 3, 1);

    let req = v1::PingReq {
        seq: 1,
        target: "n2".into(),
        target_addr: Some(v1::Address {
            ip: vec![10, 0, 0, 2],
            port: u32::MAX,
        }),
        updates: vec![],
    };
    bad(
        envelope(Body::PingReq(req)),
        "PingReq.target_addr",
        4,
        u32::MAX,
    );

    // The edges that are fine: port 65535 and port 0, v4 and v6.
    let mut env = gossip(member("n2"));
    env.from = Some(v1::Address {
        ip: vec![0; 16],
        port: 65_535,
    });
    let (from, _) = decode_envelope(env).unwrap();
    assert_eq!(from, "[::]:65535".parse::<SocketAddr>().unwrap());
    assert_eq!(
        SocketAddr::try_from(v1::Address {
            ip: vec![127, 0, 0, 1],
            port: 0
        }),
        Ok("127.0.0.1:0".parse().unwrap())
    );
}

#[test]
fn bad_names() {
    let too_long = "x".repeat(MAX_NAME_LEN + 1);
    for bad in ["", too_long.as_str()] {
        bad_name(gossip(member(bad)), "MemberUpdate.name");

        let mut u = member("n2");
        u.by = bad.into();
        if !bad.is_empty() {
            // An empty `by` is `None`, not an error.
            bad_name(gossip(u), "MemberUpdate.by");
        }

        let ping = v1::Ping {
            seq: 1,
            target: bad.into(),
            target_key: None,
            updates: vec![],
        };
        bad_name(envelope(Body::Ping(ping)), "Ping.target");

        let req = v1::PingReq {
            seq: 1,
            target: bad.into(),
            target_addr: Some(sender()),
            updates: vec![],
        };
        bad_name(envelope(Body::PingReq(req)), "PingReq.target");

        let mut d = delta(0, 1, &[1]);
        d.owner = bad.into();
        bad_name(eager_delta(d), "Delta.owner");

        let m = v1::Metadata {
            lamport: 1,
            origin: bad.into(),
            value: vec![1],
            signature: vec![3; 64],
        };
        bad_name(
            eager(v1::Datum {
                datum: Some(v1::datum::Datum::Metadata(m)),
            }),
            "Metadata.origin",
        );

        let digest = v1::Digest {
            entries: vec![v1::DigestEntry {
                owner: bad.into(),
                generation: 1,
                version: 1,
                unproven: false,
                reset_at: 0,
            }],
        };
        let pp = v1::PushPull {
            digest: Some(digest),
            ..v1::PushPull::default()
        };
        bad_name(envelope(Body::PushPull(pp)), "DigestEntry.owner");

        let record = v1::RecordId {
            owner: bad.into(),
            generation: 1,
            version: 1,
        };
        bad_name(ihave(v1::datum_id::Id::Record(record)), "RecordId.owner");

        let meta = v1::MetadataId {
            lamport: 1,
            origin: bad.into(),
        };
        bad_name(ihave(v1::datum_id::Id::Metadata(meta)), "MetadataId.origin");
    }
}

#[test]
fn unknown_enum_values() {
    for value in [4, 100, -1, i32::MIN] {
        let mut u = member("n2");
        u.state = value;
        assert_eq!(
            decode_envelope(gossip(u)),
            Err(DecodeError::UnknownEnum {
                field: "MemberUpdate.state",
                value
            })
        );
    }
    for value in [6, -1] {
        let pp = v1::PushPull {
            kind: value,
            ..v1::PushPull::default()
        };
        assert_eq!(
            decode_envelope(envelope(Body::PushPull(pp))),
            Err(DecodeError::UnknownEnum {
                field: "PushPull.kind",
                value
            })
        );
    }
}

#[test]
fn bad_delta_ranges() {
    let bad = |d, from, to, record| {
        assert_eq!(
            decode_envelope(eager_delta(d)),
            Err(DecodeError::BadRange { from, to, record })
        )
    };
    // Reversed.
    bad(delta(5, 4, &[]), 5, 4, None);
    // A record at `from` is not after it.
    bad(delta(5, 9, &[5]), 5, 9, Some(5));
    // A record past `to`.
    bad(delta(5, 9, &[6, 10]), 5, 9, Some(10));
    // Repeated and falling versions.
    bad(delta(5, 9, &[6, 6]), 5, 9, Some(6));
    bad(delta(5, 9, &[8, 7]), 5, 9, Some(7));
    // Inside a push-pull too.
    let pp = v1::PushPull {
        deltas: vec![delta(2, 1, &[])],
        ..v1::PushPull::default()
    };
    assert_eq!(
        decode_envelope(envelope(Body::PushPull(pp))),
        Err(DecodeError::BadRange {
            from: 2,
            to: 1,
            record: None
        })
    );
}

#[test]
fn absent_values_that_carry_one() {
    let mut d = delta(0, 1, &[1]);
    d.records[0].record = Some(v1::versioned::Record::Entry(v1::EntryRecord {
        key: "k".into(),
        value: b"v".to_vec(),
        deleted: true,
    }));
    assert_eq!(
        decode_envelope(eager_delta(d)),
        Err(DecodeError::ValueConflict("EntryRecord"))
    );
    let reply = v1::QueryReply {
        id: 1,
        value: b"v".to_vec(),
        found: false,
        ..v1::QueryReply::default()
    };
    assert_eq!(
        decode_envelope(envelope(Body::QueryReply(reply))),
        Err(DecodeError::ValueConflict("QueryReply"))
    );
}

#[test]
fn errors_become_invalid_argument() {
    let status = tonic::Status::from(DecodeError::MissingField("Envelope.body"));
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "missing field Envelope.body");
}

/// Decoding accepted input, re-encoding it and decoding again gives the
/// same message: whatever the decoder lets through, the encoder can send.
fn check_stable(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok((from, msg)) = decode_bytes(bytes, usize::MAX) {
        let again = encode_envelope(from, &msg).encode_to_vec();
        prop_assert_eq!(decode_bytes(&again, usize::MAX), Ok((from, msg)));
    }
    Ok(())
}

/// How to damage a valid encoding.
#[derive(Debug, Clone)]
enum Damage {
    Flip { at: usize, bits: u8 },
    Truncate { at: usize },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 1..=u8::MAX).prop_map(|(at, bits)| Damage::Flip { at, bits }),
        any::<usize>().prop_map(|at| Damage::Truncate { at }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Damage::Insert { at, byte }),
        any::<usize>().prop_map(|at| Damage::Remove { at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, d: &Damage) {
    let len = bytes.len();
    match *d {
        Damage::Flip { at, bits } => bytes[at % len] ^= bits,
        Damage::Truncate { at } => bytes.truncate(at % len),
        Damage::Insert { at, byte } => bytes.insert(at % (len + 1), byte),
        Damage::Remove { at } => {
            bytes.remove(at % len);
        }
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_stable(&bytes)?;
    }

    #[test]
    fn damaged_envelopes_never_panic(
        (from, msg) in strategy::envelope(),
        damage in proptest::collection::vec(damage(), 1..4),
    ) {
        let mut bytes = encode_envelope(from, &msg).encode_to_vec();
        for d in &damage {
            if bytes.is_empty() {
                break;
            }
            apply(&mut bytes, d);
        }
        check_stable(&bytes)?;
    }

    #[test]
    fn oversized_input_is_refused_first(
        bytes in proptest::collection::vec(any::<u8>(), 1..256),
        short in 1usize..256,
    ) {
        let max = bytes.len().saturating_sub(short);
        prop_assert_eq!(
            decode_bytes(&bytes, max),
            Err(DecodeError::TooLarge { len: bytes.len(), max })
        );
    }
}

#[test]
fn keys_and_signatures_of_the_wrong_length_are_refused() {
    let mut u = member("n2");
    u.key = vec![1; 31];
    let e = decode_envelope(gossip(u)).unwrap_err();
    assert_eq!(
        e,
        DecodeError::BadKeyLength {
            field: "MemberUpdate.key",
            len: 31,
            expected: 32
        }
    );
    let mut u = member("n2");
    u.signature = vec![];
    let e = decode_envelope(gossip(u)).unwrap_err();
    assert!(matches!(
        e,
        DecodeError::BadKeyLength {
            field: "MemberUpdate.signature",
            len: 0,
            ..
        }
    ));
    let mut d = delta(0, 1, &[1]);
    d.records[0].signature = vec![3; 65];
    let e = decode_envelope(eager_delta(d)).unwrap_err();
    assert!(matches!(
        e,
        DecodeError::BadKeyLength {
            field: "Versioned.signature",
            len: 65,
            ..
        }
    ));
    let mut d = delta(0, 1, &[1]);
    d.horizon_signature = vec![3; 10];
    let e = decode_envelope(eager_delta(d)).unwrap_err();
    assert!(matches!(
        e,
        DecodeError::BadKeyLength {
            field: "Delta.horizon_signature",
            ..
        }
    ));
}

#[test]
fn a_word_is_left_out_whole_or_not_at_all() {
    // Both halves absent: an accusation without its word, which the core judges.
    let mut u = member("n2");
    u.key = vec![];
    u.signature = vec![];
    let (_, msg) = decode_envelope(gossip(u)).unwrap();
    let rumour_core::Message::Gossip(g) = msg else {
        panic!("not a gossip: {msg:?}")
    };
    assert!(g.updates[0].word_elided());
    // Half a word is malformed.
    let mut u = member("n2");
    u.key = vec![];
    let e = decode_envelope(gossip(u)).unwrap_err();
    assert!(matches!(
        e,
        DecodeError::BadKeyLength {
            field: "MemberUpdate.key",
            len: 0,
            ..
        }
    ));
}
