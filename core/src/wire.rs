//! The exact encoded size of every message, kept in one place.
//!
//! Sizes follow the protobuf encoding of the peer schema
//! (`proto/rumour/v1/peer.proto`): an `Envelope` holding the sender's address
//! and a `oneof` body. The simulator counts bytes with these functions
//! instead of encoding; `proto/tests/roundtrip.rs` checks them against
//! prost's `encoded_len` for every kind. The fields they follow:
//!
//! ```text
//! message Address      { bytes ip = 1; uint32 port = 2; }
//! message MemberUpdate { string name = 1; Address addr = 2; uint32 incarnation = 3;
//!                        State state = 4; string by = 5; bytes key = 6; bytes signature = 7; }
//! message Ping         { uint32 seq = 1; string target = 2; repeated MemberUpdate updates = 3; }
//! message PingReq      { uint32 seq = 1; string target = 2; Address target_addr = 3;
//!                        repeated MemberUpdate updates = 4; }
//! message Ack          { uint32 seq = 1; repeated MemberUpdate updates = 2; }
//! message Nack         { uint32 seq = 1; }
//! message Gossip       { repeated MemberUpdate updates = 1; }
//! message PushPull     { Kind kind = 1; fixed64 summary = 2; repeated MemberUpdate members = 3;
//!                        fixed64 state_summary = 4; Digest digest = 5; repeated Delta deltas = 6;
//!                        Metadata metadata = 7; MemberDigest member_digest = 8;
//!                        repeated string wanted = 9; Page page = 10; }
//! message MemberLine   { string name = 1; uint32 incarnation = 2; State state = 3; }
//! message MemberDigest { repeated MemberLine lines = 1; }
//! message Page         { string from = 1; string to = 2; }
//! message EntryRecord  { string key = 1; bytes value = 2; bool deleted = 3; }
//! message EventRecord  { string name = 1; bytes payload = 2; uint64 lamport = 3; }
//! message Versioned    { uint64 version = 1; oneof record { EntryRecord entry = 2;
//!                        EventRecord event = 3; } bytes signature = 4; }
//! message Delta        { string owner = 1; uint32 generation = 2; uint64 from = 3; uint64 to = 4;
//!                        bool reset = 5; uint64 horizon = 6; uint64 sender_version = 7;
//!                        repeated Versioned records = 8; bytes horizon_signature = 9;
//!                        bytes checkpoint_digest = 10; bytes checkpoint_signature = 11; }
//! message DigestEntry  { string owner = 1; uint32 generation = 2; uint64 version = 3;
//!                        bool unproven = 4; uint64 reset_at = 5; }
//! message Digest       { repeated DigestEntry entries = 1; }
//! message Metadata     { uint64 lamport = 1; string origin = 2; bytes value = 3;
//!                        bytes signature = 4; }
//! message Datum        { oneof datum { Delta delta = 1; Metadata metadata = 2; } }
//! message RecordId     { string owner = 1; uint32 generation = 2; uint64 version = 3; }
//! message MetadataId   { uint64 lamport = 1; string origin = 2; }
//! message DatumId      { oneof id { RecordId record = 1; MetadataId metadata = 2; } }
//! message DataGossip   { repeated Datum data = 1; bool pull = 2; }
//! message Eager        { repeated Datum data = 1; repeated MemberUpdate updates = 2; }
//! message IHave        { repeated DatumId ids = 1; }
//! message Graft        { repeated DatumId ids = 1; }
//! message Prune        { }
//! message Query        { uint32 id = 1; string key = 2; }
//! message QueryReply   { uint32 id = 1; uint32 generation = 2; uint64 version = 3; bytes value = 4;
//!                        bool found = 5; }
//! message Envelope     { Address from = 1; oneof body { Ping ping = 2; PingReq ping_req = 3;
//!                        Ack ack = 4; Nack nack = 5; Gossip gossip = 6; PushPull push_pull = 7;
//!                        DataGossip data_gossip = 8; Eager eager = 9; IHave ihave = 10; Graft graft = 11;
//!                        Prune prune = 12; Query query = 13; QueryReply query_reply = 14; } }
//! ```
//!
//! Proto3 omits fields equal to their default (0, empty), and so do these
//! sizes. Enum values are numbered from 0 in declaration order (alive = 0,
//! join = 0).

use std::net::SocketAddr;

use crate::member::MemberState;
use crate::message::{
    Datum, DatumId, Delta, DigestEntry, MemberLine, MemberUpdate, Message, Metadata, Page,
    PushPull, PushPullKind, Record, Versioned,
};

/// Bytes of a public key field (32 bytes, always present).
pub const KEY_FIELD: usize = len_field(32);

/// Bytes of a signature field (64 bytes, always present).
pub const SIGNATURE_FIELD: usize = len_field(64);

/// Bytes of a base-128 varint.
pub const fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Bytes of an optional varint field (tag + value), 0 when the value is 0.
const fn varint_field(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        1 + varint_len(v)
    }
}

/// Bytes of a length-delimited field holding `len` bytes (tag + length + body).
pub const fn len_field(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Bytes of a length-delimited field, 0 when empty (proto3 omits it).
const fn opt_len_field(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len_field(len)
    }
}

/// Encoded `Address` body.
pub fn addr_len(addr: &SocketAddr) -> usize {
    let ip = match addr {
        SocketAddr::V4(_) => 4,
        SocketAddr::V6(_) => 16,
    };
    len_field(ip) + varint_field(addr.port() as u64)
}

fn state_code(s: MemberState) -> u64 {
    match s {
        MemberState::Alive => 0,
        MemberState::Suspect => 1,
        MemberState::Dead => 2,
        MemberState::Left => 3,
    }
}

fn kind_code(k: PushPullKind) -> u64 {
    match k {
        PushPullKind::Join => 0,
        PushPullKind::Summary => 1,
        PushPullKind::Sync => 2,
        PushPullKind::Reply => 3,
        PushPullKind::Deltas => 4,
        PushPullKind::Pull => 5,
    }
}

/// Bytes of a bool field: 2 when set, 0 when false.
const fn bool_field(b: bool) -> usize {
    if b {
        2
    } else {
        0
    }
}

/// Encoded `Versioned` body.
pub fn versioned_len(v: &Versioned) -> usize {
    let record = match &v.record {
        Record::Entry { key, value } => {
            opt_len_field(key.len())
                + value.as_ref().map_or(0, |v| opt_len_field(v.len()))
                + bool_field(value.is_none())
        }
        Record::Event {
            name,
            payload,
            lamport,
        } => opt_len_field(name.len()) + opt_len_field(payload.len()) + varint_field(*lamport),
    };
    // The oneof is always present, even when its body is empty.
    varint_field(v.version) + len_field(record) + SIGNATURE_FIELD
}

/// Encoded `Delta` body without its records.
pub fn delta_head_len(d: &Delta) -> usize {
    opt_len_field(d.owner.len())
        + varint_field(d.generation as u64)
        + varint_field(d.from)
        + varint_field(d.to)
        + bool_field(d.reset)
        + varint_field(d.horizon)
        + varint_field(d.sender_version)
        + d.horizon_signature.map_or(0, |_| SIGNATURE_FIELD)
        // The digest is 64 bytes too.
        + d.checkpoint.as_ref().map_or(0, |_| 2 * SIGNATURE_FIELD)
}

/// Encoded `Delta` body.
pub fn delta_len(d: &Delta) -> usize {
    delta_head_len(d)
        + d.records
            .iter()
            .map(|r| len_field(versioned_len(r)))
            .sum::<usize>()
}

/// Encoded `Metadata` body.
pub fn metadata_len(m: &Metadata) -> usize {
    varint_field(m.lamport)
        + opt_len_field(m.origin.len())
        + opt_len_field(m.value.len())
        + SIGNATURE_FIELD
}

/// Encoded `Datum` body.
pub fn datum_len(d: &Datum) -> usize {
    match d {
        Datum::Delta(d) => len_field(delta_len(d)),
        Datum::Metadata(m) => len_field(metadata_len(m)),
    }
}

/// What one datum adds to a message: tag, length and body.
pub fn datum_field_len(d: &Datum) -> usize {
    len_field(datum_len(d))
}

/// Encoded `DatumId` body.
pub fn datum_id_len(id: &DatumId) -> usize {
    match id {
        DatumId::Record {
            owner,
            generation,
            version,
        } => len_field(
            opt_len_field(owner.len()) + varint_field(*generation as u64) + varint_field(*version),
        ),
        DatumId::Metadata { lamport, origin } => {
            len_field(varint_field(*lamport) + opt_len_field(origin.len()))
        }
    }
}

/// What one datum id adds to a message.
pub fn datum_id_field_len(id: &DatumId) -> usize {
    len_field(datum_id_len(id))
}

/// Encoded `DigestEntry` body.
pub fn digest_entry_len(e: &DigestEntry) -> usize {
    opt_len_field(e.owner.len())
        + varint_field(e.generation as u64)
        + varint_field(e.version)
        + bool_field(e.unproven)
        + varint_field(e.reset_at)
}

/// Encoded `Digest` body.
pub fn digest_len(entries: &[DigestEntry]) -> usize {
    entries.iter().map(|e| len_field(digest_entry_len(e))).sum()
}

/// Encoded `MemberLine` body.
pub fn member_line_len(l: &MemberLine) -> usize {
    opt_len_field(l.name.len())
        + varint_field(l.incarnation.0 as u64)
        + varint_field(state_code(l.state))
}

/// What the lines of a membership digest add to a message (the whole
/// `member_digest` field).
pub fn member_digest_field_len(lines: &[MemberLine]) -> usize {
    len_field(lines.iter().map(|l| len_field(member_line_len(l))).sum())
}

/// Encoded `Page` body.
pub fn page_len(p: &Page) -> usize {
    opt_len_field(p.from.len()) + p.to.as_ref().map_or(0, |t| opt_len_field(t.len()))
}

/// Encoded `MemberUpdate` body.
pub fn update_len(u: &MemberUpdate) -> usize {
    opt_len_field(u.id.name().len())
        + len_field(addr_len(&u.id.addr()))
        + varint_field(u.incarnation.0 as u64)
        + varint_field(state_code(u.state))
        + u.by.as_ref().map_or(0, |b| opt_len_field(b.len()))
        + if u.word_elided() {
            0
        } else {
            KEY_FIELD + SIGNATURE_FIELD
        }
}

/// What one update adds to a message: its field tag, length and body.
pub fn update_field_len(u: &MemberUpdate) -> usize {
    len_field(update_len(u))
}

/// Encoded body of a message, without the envelope.
pub fn body_len(msg: &Message) -> usize {
    let updates = |us: &[MemberUpdate]| us.iter().map(update_field_len).sum::<usize>();
    match msg {
        Message::Ping(p) => {
            varint_field(p.seq as u64)
                + opt_len_field(p.target.len())
                + p.target_key.map_or(0, |_| 1 + 8)
                + updates(&p.updates)
        }
        Message::PingReq(p) => {
            varint_field(p.seq as u64)
                + opt_len_field(p.target.name().len())
                + len_field(addr_len(&p.target.addr()))
                + updates(&p.updates)
        }
        Message::Ack(a) => varint_field(a.seq as u64) + updates(&a.updates),
        Message::Nack(n) => varint_field(n.seq as u64),
        Message::Gossip(g) => updates(&g.updates),
        Message::PushPull(p) => {
            varint_field(kind_code(p.kind))
                + if p.summary == 0 { 0 } else { 1 + 8 }
                + updates(&p.members)
                + p.member_digest
                    .as_deref()
                    .map_or(0, member_digest_field_len)
                + p.wanted.iter().map(|w| len_field(w.len())).sum::<usize>()
                + p.page.as_ref().map_or(0, |g| len_field(page_len(g)))
                + push_pull_data_len(p)
        }
        Message::DataGossip(r) => {
            r.data.iter().map(datum_field_len).sum::<usize>() + bool_field(r.pull)
        }
        Message::Eager(e) => {
            e.data.iter().map(datum_field_len).sum::<usize>() + updates(&e.updates)
        }
        Message::IHave(i) => i.ids.iter().map(datum_id_field_len).sum(),
        Message::Graft(g) => g.ids.iter().map(datum_id_field_len).sum(),
        Message::Prune(_) => 0,
        Message::Query(q) => varint_field(q.id as u64) + opt_len_field(q.key.len()),
        Message::QueryReply(r) => {
            varint_field(r.id as u64)
                + varint_field(r.generation as u64)
                + varint_field(r.version)
                + r.value.as_ref().map_or(0, |v| opt_len_field(v.len()))
                + bool_field(r.value.is_some())
        }
    }
}

/// The namespace fields of a push-pull: state summary, digest, deltas and
/// metadata.
fn push_pull_data_len(p: &PushPull) -> usize {
    (if p.state_summary == 0 { 0 } else { 1 + 8 })
        + p.digest.as_ref().map_or(0, |d| len_field(digest_len(d)))
        + p.deltas
            .iter()
            .map(|d| len_field(delta_len(d)))
            .sum::<usize>()
        + p.metadata
            .as_ref()
            .map_or(0, |m| len_field(metadata_len(m)))
}

/// Bytes of `msg` that belong to the data plane (entries, events, metadata
/// and their announcements, digests and deltas), sent by a node at `from`:
/// the whole message for data-plane kinds, and the digest, deltas and
/// metadata fields of a push-pull (plus its envelope when it carries no
/// membership). Used to measure what each update costs.
pub fn data_plane_len(from: &SocketAddr, msg: &Message) -> usize {
    match msg {
        Message::DataGossip(_)
        | Message::Eager(_)
        | Message::IHave(_)
        | Message::Graft(_)
        | Message::Prune(_)
        | Message::Query(_)
        | Message::QueryReply(_) => message_len(from, msg),
        Message::PushPull(p) => {
            let data = push_pull_data_len(p);
            let membership =
                !p.members.is_empty() || p.member_digest.is_some() || !p.wanted.is_empty();
            if !membership && (p.digest.is_some() || !p.deltas.is_empty()) {
                message_len(from, msg)
            } else {
                data
            }
        }
        _ => 0,
    }
}

/// Encoded size of a whole envelope: sender address plus body.
pub fn envelope_len(from: &SocketAddr, body_len: usize) -> usize {
    len_field(addr_len(from)) + len_field(body_len)
}

/// Encoded size of `msg` sent by a node reachable at `from`.
pub fn message_len(from: &SocketAddr, msg: &Message) -> usize {
    envelope_len(from, body_len(msg))
}

/// Encoded size of `msg` in a datagram sent from the sender's own peer
/// address, whose envelope leaves the sender out (the receiver takes the
/// datagram's source address): [`message_len`] less the address field.
pub fn datagram_len(msg: &Message) -> usize {
    len_field(body_len(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{Incarnation, NodeId};
    use crate::message::*;
    use std::sync::Arc;

    #[test]
    fn varints() {
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(u64::MAX), 10);
    }

    #[test]
    fn sizes_by_hand() {
        let addr: SocketAddr = "10.0.0.1:7946".parse().unwrap();
        let id = NodeId::new("node-1", addr).unwrap();
        let u = MemberUpdate {
            id,
            incarnation: Incarnation(3),
            state: MemberState::Suspect,
            by: Some(Arc::from("node-2")),
            key: crate::identity::PublicKey([1; 32]),
            signature: crate::identity::Signature([2; 64]),
        };
        // name 1+1+6, addr 1+1+(1+1+4 + 1+2), inc 1+1, state 1+1, by 1+1+6,
        // key 1+1+32, signature 1+1+64
        assert_eq!(update_len(&u), 8 + 11 + 2 + 2 + 8 + 34 + 66);
        // As a rumour, the accusation leaves the word out.
        assert_eq!(update_len(&u.as_rumour()), 8 + 11 + 2 + 2 + 8);
        let ack = Message::Ack(Ack {
            seq: 0,
            updates: vec![],
        });
        assert_eq!(body_len(&ack), 0);
        assert_eq!(message_len(&addr, &ack), 1 + 1 + 9 + 1 + 1);
        let g = Message::Gossip(Gossip {
            updates: vec![u.clone(), u],
        });
        assert_eq!(body_len(&g), 2 * (3 + 131));
    }
}
