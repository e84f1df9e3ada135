//! The exact encoded size of every message, kept in one place.
//!
//! Sizes follow the protobuf encoding of the peer schema: an `Envelope`
//! holding the sender's address and a `oneof` body. Until the generated code
//! exists this module is the schema's single source of truth for sizes:
//!
//! ```text
//! message Address      { bytes ip = 1; uint32 port = 2; }
//! message MemberUpdate { string name = 1; Address addr = 2; uint32 incarnation = 3;
//!                        State state = 4; string by = 5; }
//! message Ping         { uint32 seq = 1; string target = 2; repeated MemberUpdate updates = 3; }
//! message PingReq      { uint32 seq = 1; string target = 2; Address target_addr = 3;
//!                        repeated MemberUpdate updates = 4; }
//! message Ack          { uint32 seq = 1; repeated MemberUpdate updates = 2; }
//! message Nack         { uint32 seq = 1; }
//! message Gossip       { repeated MemberUpdate updates = 1; }
//! message PushPull     { Kind kind = 1; fixed64 summary = 2; repeated MemberUpdate members = 3; }
//! message Envelope     { Address from = 1; oneof body { Ping ping = 2; PingReq ping_req = 3;
//!                        Ack ack = 4; Nack nack = 5; Gossip gossip = 6; PushPull push_pull = 7; } }
//! ```
//!
//! Proto3 omits fields equal to their default (0, empty), and so do these
//! sizes. Enum values are numbered from 0 in declaration order (alive = 0,
//! join = 0).

use std::net::SocketAddr;

use crate::member::MemberState;
use crate::message::{MemberUpdate, Message, PushPullKind};

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
    }
}

/// Encoded `MemberUpdate` body.
pub fn update_len(u: &MemberUpdate) -> usize {
    opt_len_field(u.id.name().len())
        + len_field(addr_len(&u.id.addr()))
        + varint_field(u.incarnation.0 as u64)
        + varint_field(state_code(u.state))
        + u.by.as_ref().map_or(0, |b| opt_len_field(b.len()))
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
            varint_field(p.seq as u64) + opt_len_field(p.target.len()) + updates(&p.updates)
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
        }
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
        };
        // name 1+1+6, addr 1+1+(1+1+4 + 1+2), inc 1+1, state 1+1, by 1+1+6
        assert_eq!(update_len(&u), 8 + 11 + 2 + 2 + 8);
        let ack = Message::Ack(Ack {
            seq: 0,
            updates: vec![],
        });
        assert_eq!(body_len(&ack), 0);
        assert_eq!(message_len(&addr, &ack), 1 + 1 + 9 + 1 + 1);
        let g = Message::Gossip(Gossip {
            updates: vec![u.clone(), u],
        });
        assert_eq!(body_len(&g), 2 * (2 + 31));
    }
}
