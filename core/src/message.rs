//! The messages nodes exchange: SWIM probes, gossip carrying rumours, and
//! push-pull state sync. Their exact encoded size is in [`crate::wire`].

use std::sync::Arc;

use crate::member::{Incarnation, MemberState, NodeId};

/// One piece of news about a member: the unit that rumours carry and that
/// push-pull exchanges in bulk.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemberUpdate {
    /// The member the news is about.
    pub id: NodeId,
    /// Its incarnation when the news was made.
    pub incarnation: Incarnation,
    /// Its state in the news.
    pub state: MemberState,
    /// For suspect and dead: the name of the member that declared it, so
    /// that independent confirmations can be counted.
    pub by: Option<Arc<str>>,
}

/// A direct probe: "are you alive?".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ping {
    /// Matches the ack to the probe.
    pub seq: u32,
    /// The intended member's name; another node now at its address ignores
    /// the probe.
    pub target: Arc<str>,
    /// Rumours riding along.
    pub updates: Vec<MemberUpdate>,
}

/// An indirect probe request: "probe `target` for me and tell me".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PingReq {
    /// The sequence number the answer (ack or nack) must carry.
    pub seq: u32,
    /// The member to probe.
    pub target: NodeId,
    /// Rumours riding along.
    pub updates: Vec<MemberUpdate>,
}

/// The answer to a ping, or a relayed answer to a ping-req.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ack {
    /// The probe's sequence number.
    pub seq: u32,
    /// Rumours riding along.
    pub updates: Vec<MemberUpdate>,
}

/// Sent by a ping-req relay whose own probe timed out: proof that the relay
/// and the path to it work (Lifeguard), so the requester's health is fine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Nack {
    /// The ping-req's sequence number.
    pub seq: u32,
}

/// A gossip message: rumours sent to `fanout` peers each gossip interval.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Gossip {
    /// The rumours.
    pub updates: Vec<MemberUpdate>,
}

/// Which step of a push-pull exchange a [`PushPull`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PushPullKind {
    /// A joiner's opening: its own state; the seed answers with `Reply`.
    Join,
    /// The periodic opening: only the membership summary. A peer whose
    /// summary differs answers with `Sync`; one that agrees stays silent.
    Summary,
    /// Full state, expecting the other side's full state as `Reply`.
    Sync,
    /// Full state, closing the exchange.
    Reply,
}

/// A push-pull state sync message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PushPull {
    /// The step of the exchange.
    pub kind: PushPullKind,
    /// The sender's membership summary (see [`crate::Node::membership_summary`]).
    pub summary: u64,
    /// Every member the sender knows, itself included (empty for `Summary`).
    pub members: Vec<MemberUpdate>,
}

/// A protocol message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// A direct probe.
    Ping(Ping),
    /// An indirect probe request.
    PingReq(PingReq),
    /// A probe's answer.
    Ack(Ack),
    /// A relay's negative answer.
    Nack(Nack),
    /// Rumours.
    Gossip(Gossip),
    /// State sync.
    PushPull(PushPull),
}

impl Message {
    /// A short name of the message kind, for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Ping(_) => "ping",
            Message::PingReq(_) => "ping-req",
            Message::Ack(_) => "ack",
            Message::Nack(_) => "nack",
            Message::Gossip(_) => "gossip",
            Message::PushPull(_) => "push-pull",
        }
    }

    /// The rumours or state entries the message carries.
    pub fn updates(&self) -> &[MemberUpdate] {
        match self {
            Message::Ping(m) => &m.updates,
            Message::PingReq(m) => &m.updates,
            Message::Ack(m) => &m.updates,
            Message::Nack(_) => &[],
            Message::Gossip(m) => &m.updates,
            Message::PushPull(m) => &m.members,
        }
    }
}
