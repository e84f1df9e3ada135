//! The messages nodes exchange: SWIM probes, gossip carrying rumours, and
//! push-pull state sync. Their exact encoded size is in [`crate::wire`].

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Included, Unbounded};
use std::sync::Arc;

use crate::checkpoint::Checkpoint;
use crate::identity::{PublicKey, Signature};
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
    /// The member's public key.
    pub key: PublicKey,
    /// The member's own signature behind the news: over `Left` at this
    /// incarnation and address for a leave, over `Alive` for anything else
    /// (an accusation stands on the accused's own word that it reached the
    /// incarnation).
    pub signature: Signature,
}

impl MemberUpdate {
    /// Whether the member's word (its key and signature) was left out, as
    /// an accusation's rumour does: both all zero on the wire's behalf,
    /// which no real key and signature are (an all-zero Ed25519 key is
    /// refused as weak, and verifies nothing).
    pub fn word_elided(&self) -> bool {
        self.key == PublicKey::default() && self.signature == Signature::default()
    }

    /// This news as a rumour carries it. A suspicion or a death stands on
    /// the accused's word for the incarnation it names, and every node that
    /// could act on the accusation holds that word already: the rumour
    /// leaves it out (96 of some 130 bytes) and each receiver takes it
    /// back from its own table, refusing the accusation where it holds no
    /// word for that incarnation. Joins, refutations and leaves are new
    /// words, and carry them.
    pub fn as_rumour(&self) -> MemberUpdate {
        match self.state {
            MemberState::Suspect | MemberState::Dead => MemberUpdate {
                key: PublicKey::default(),
                signature: Signature::default(),
                ..self.clone()
            },
            MemberState::Alive | MemberState::Left => self.clone(),
        }
    }
}

/// A direct probe: "are you alive?".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ping {
    /// Matches the ack to the probe.
    pub seq: u32,
    /// The intended member's name; another node now at its address ignores
    /// the probe.
    pub target: Arc<str>,
    /// The fingerprint ([`PublicKey::fingerprint`]) of the key the prober
    /// holds for the target. A node of that name under another key (one
    /// restarted without its data dir) ignores the probe, so that its old
    /// identity is suspected, declared dead and in time reaped, which frees
    /// the name for the new key. `None` asks for no key (seven pings in
    /// eight, to keep probes small).
    ///
    /// [`PublicKey::fingerprint`]: crate::PublicKey::fingerprint
    pub target_key: Option<u64>,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PushPullKind {
    /// A joiner's opening: its own state; the seed answers with `Reply`.
    #[default]
    Join,
    /// The periodic opening: only the membership summary. A peer whose
    /// summary differs answers with `Sync`; one that agrees stays silent.
    Summary,
    /// Full state, expecting the other side's full state as `Reply`.
    Sync,
    /// Full state, closing the membership exchange; with a digest, it asks
    /// for the `Deltas` the sender lacks.
    Reply,
    /// Closing a namespace exchange: only the deltas the receiver lacks.
    Deltas,
    /// A targeted pull: the digest lines of owners the sender is behind on
    /// (it heard of a version it cannot apply yet). Answered with `Deltas`.
    Pull,
}

/// A push-pull state sync message.
///
/// Membership and namespaces are synced side by side: each has its own
/// summary, and only the parts whose summaries differ are exchanged.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct PushPull {
    /// The step of the exchange.
    pub kind: PushPullKind,
    /// The sender's membership summary (see [`crate::Node::membership_summary`]).
    pub summary: u64,
    /// Members as news: in a join's `Reply`, every member the sender
    /// knows, itself included; in a `Reply` to a `Sync`, the members whose
    /// line in the `Sync`'s membership digest is missing or older than the
    /// sender's; in a closing `Deltas`, the members the `Reply` asked for
    /// (`wanted`). Empty when the membership summaries agree.
    pub members: Vec<MemberUpdate>,
    /// A `Sync`'s membership digest: one line per member the sender knows
    /// (itself included), sent instead of the members themselves when the
    /// membership summaries differ; a line costs a name and two numbers, a
    /// member's signed news some 150 bytes.
    pub member_digest: Option<Vec<MemberLine>>,
    /// In a `Reply`: the members of the `Sync`'s membership digest that
    /// the sender lacks or holds older news of, to be sent in the closing
    /// `Deltas`.
    pub wanted: Vec<Arc<str>>,
    /// The sender's state summary: a hash of its digest and metadata
    /// register (see [`crate::Node::state_summary`]).
    pub state_summary: u64,
    /// The sender's scuttlebutt digest, asking for the deltas it lacks; only
    /// sent when the state summaries differ.
    pub digest: Option<Vec<DigestEntry>>,
    /// Deltas the receiver lacks, computed from the receiver's digest.
    pub deltas: Vec<Delta>,
    /// The sender's cluster metadata register, sent with a digest or deltas.
    pub metadata: Option<Metadata>,
    /// The names the digests and the answer cover, when not every name
    /// (`None`: all of them). In a `Join` or `Sync`, the page its digests
    /// list; in a `Reply`, the part of that page it answered in full (cut
    /// where the message ran out of room), which the other side goes on
    /// from.
    pub page: Option<Page>,
}

/// A page of a push-pull exchange: the names (members and namespace
/// owners alike) from `from`, in name order, up to but not including `to`;
/// a `to` at or before `from` wraps past the last name to the first.
///
/// A digest too large for one message is sent page by page: each exchange
/// moves at most `max_message_size` bytes each way, and an answer cut short
/// tells the other side where to go on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Page {
    /// The first name of the page (`""`: from the first name).
    pub from: Arc<str>,
    /// The first name past the page; `None`: up to the last name, without
    /// wrapping.
    pub to: Option<Arc<str>>,
}

impl Page {
    /// Whether `name` is in the page.
    pub fn contains(&self, name: &str) -> bool {
        let from = &*self.from;
        match self.to.as_deref() {
            None => name >= from,
            Some(to) if from < to => from <= name && name < to,
            // Wraps past the last name (or runs all the way round).
            Some(to) => name >= from || name < to,
        }
    }

    /// Where `name` falls going round from the page's start: names at or
    /// after `from` first, then the names before it.
    pub fn order<'a>(&self, name: &'a str) -> (bool, &'a str) {
        (name < &*self.from, name)
    }

    /// The entries of `map` named in the page, in page order.
    pub(crate) fn walk<'a, K, V>(
        &'a self,
        map: &'a BTreeMap<K, V>,
    ) -> impl Iterator<Item = (&'a K, &'a V)> + 'a
    where
        K: Borrow<str> + Ord,
    {
        let from: &str = &self.from;
        map.range::<str, _>((Included(from), Unbounded))
            .chain(map.range::<str, _>((Unbounded, Excluded(from))))
            .take_while(|(k, _)| self.contains((*k).borrow()))
    }
}

/// One line of a membership digest: what a node holds of a member,
/// without the signed word behind it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemberLine {
    /// The member's name.
    pub name: Arc<str>,
    /// Its incarnation as held.
    pub incarnation: Incarnation,
    /// Its state as held.
    pub state: MemberState,
}

/// One record of an owner's version stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Record {
    /// A put (`value` set) or a delete (`value` is `None`: a tombstone).
    Entry {
        /// The key.
        key: Arc<str>,
        /// The value, or `None` for a tombstone.
        value: Option<Arc<[u8]>>,
    },
    /// A user event, kept in the stream for the event retention so that
    /// anti-entropy delivers it to nodes the rumour missed.
    Event {
        /// The event's name.
        name: Arc<str>,
        /// Its payload.
        payload: Arc<[u8]>,
        /// The origin's Lamport time when it sent the event.
        lamport: u64,
    },
}

/// A record with the version its owner gave it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Versioned {
    /// The owner's counter value for this record.
    pub version: u64,
    /// The record.
    pub record: Record,
    /// The owner's signature over owner, generation, version and record.
    pub signature: Signature,
}

/// A run of one owner's records: every record the sender holds with a
/// version in `(from, to]`, in version order. Records superseded by a later
/// version of the same key are absent, so versions may jump inside the run,
/// but the run covers its whole range: a replica at version `from` (or
/// later) that applies it is complete up to `to`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Delta {
    /// The owner's name.
    pub owner: Arc<str>,
    /// The owner's generation: the incarnation it started its life with.
    /// A higher generation replaces the replica of an older life.
    pub generation: u32,
    /// Versions after this one are covered (0 on a reset).
    pub from: u64,
    /// Versions up to this one are covered.
    pub to: u64,
    /// A reset: the receiver drops its replica of this owner before applying,
    /// because it is older than the sender's GC horizon and a tombstone it
    /// needs may be gone.
    pub reset: bool,
    /// The sender's GC horizon for this owner: tombstones and events with
    /// versions up to it may have been dropped.
    pub horizon: u64,
    /// The highest version the sender holds of this owner.
    pub sender_version: u64,
    /// The records.
    pub records: Vec<Versioned>,
    /// The owner's signature over its generation and `horizon`: required
    /// for a reset, a horizon above 0, and a delta that starts a replica's
    /// new life without a record of it.
    pub horizon_signature: Option<Signature>,
    /// The owner's checkpoint at version `to`: sent only by a sender that
    /// holds the owner's whole namespace at `to` and the checkpoint for it.
    pub checkpoint: Option<Arc<Checkpoint>>,
}

impl Delta {
    /// The one-record delta of a fresh write: version `v.version`, right
    /// after the one before it.
    pub fn single(owner: Arc<str>, generation: u32, v: Versioned) -> Delta {
        Delta {
            owner,
            generation,
            from: v.version - 1,
            to: v.version,
            reset: false,
            horizon: 0,
            sender_version: v.version,
            records: vec![v],
            horizon_signature: None,
            checkpoint: None,
        }
    }
}

/// One line of a scuttlebutt digest: the highest version held of an owner.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DigestEntry {
    /// The owner's name.
    pub owner: Arc<str>,
    /// The generation held.
    pub generation: u32,
    /// The highest version held: the replica is complete up to it.
    pub version: u64,
    /// The replica holds no checkpoint of the owner at `version` (none came
    /// with what brought it there): a peer holding one sends it.
    pub unproven: bool,
    /// The replica is taking a reset (or the owner's new life) in pieces,
    /// all of the owner's namespace as of this version, and its pieces
    /// reach `version`: a peer at exactly this version goes on from
    /// there. 0 when not.
    pub reset_at: u64,
}

/// The cluster-wide metadata register: last writer wins, ordered by
/// `(lamport, origin)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Metadata {
    /// The publisher's Lamport time.
    pub lamport: u64,
    /// The publisher's name (breaks ties).
    pub origin: Arc<str>,
    /// The published bytes.
    pub value: Arc<[u8]>,
    /// The publisher's signature over origin, Lamport time and value.
    pub signature: Signature,
}

impl Metadata {
    /// Whether this register value wins over `other`.
    pub fn beats(&self, other: &Metadata) -> bool {
        (self.lamport, &*self.origin) > (other.lamport, &*other.origin)
    }
}

/// Something disseminated by the data plane.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Datum {
    /// Records of an owner (a fresh put, delete or event is a one-record
    /// delta).
    Delta(Delta),
    /// A metadata publication.
    Metadata(Metadata),
}

/// The identity of a [`Datum`], for lazy announcements and grafts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DatumId {
    /// Version `to` of an owner's stream, in a generation.
    Record {
        /// The owner.
        owner: Arc<str>,
        /// Its generation.
        generation: u32,
        /// The version.
        version: u64,
    },
    /// A metadata publication.
    Metadata {
        /// Its Lamport time.
        lamport: u64,
        /// Its publisher.
        origin: Arc<str>,
    },
}

impl Datum {
    /// The datum's identity.
    pub fn id(&self) -> DatumId {
        match self {
            Datum::Delta(d) => DatumId::Record {
                owner: d.owner.clone(),
                generation: d.generation,
                version: d.to,
            },
            Datum::Metadata(m) => DatumId::Metadata {
                lamport: m.lamport,
                origin: m.origin.clone(),
            },
        }
    }
}

/// Periodic data gossip of the `push`, `pull` and `push-and-pull` modes: fresh
/// data pushed to a peer, and/or a request for the peer's fresh data.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct DataGossip {
    /// Data pushed.
    pub data: Vec<Datum>,
    /// Set on a pull: the receiver answers with its own fresh data.
    pub pull: bool,
}

/// Eager push along the broadcast tree: fresh data (`tree` mode) and
/// membership news (`Config::eager_membership`) forwarded at once, on first
/// receipt.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Eager {
    /// The data.
    pub data: Vec<Datum>,
    /// Membership news (`Config::eager_membership`): joins, refutations,
    /// deaths and leaves, each checked and applied as a rumour is.
    pub updates: Vec<MemberUpdate>,
}

/// Lazy push (`tree` mode): "I have these", sent each gossip round to peers
/// off the tree, so that a node the tree missed can graft itself back.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct IHave {
    /// What the sender holds.
    pub ids: Vec<DatumId>,
}

/// "Send me these, and push to me eagerly from now on" (`tree` mode). With
/// no ids it only asks to join the sender's tree links.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Graft {
    /// What the sender is missing.
    pub ids: Vec<DatumId>,
}

/// "Stop pushing to me eagerly" (`tree` mode): sent on a duplicate, so the
/// eager links thin to a tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Prune;

/// A freshest-read query, sent to a key's owner.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Query {
    /// Matches the answer to the query.
    pub id: u32,
    /// The key asked for.
    pub key: Arc<str>,
}

/// The owner's answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueryReply {
    /// The query's id.
    pub id: u32,
    /// The owner's generation.
    pub generation: u32,
    /// The version of the key's record, 0 if the owner never wrote it (or
    /// its tombstone was collected).
    pub version: u64,
    /// The value, `None` if absent or deleted.
    pub value: Option<Arc<[u8]>>,
}

/// A protocol message.
///
/// A push-pull, the largest kind by far (280 bytes) and the rarest, is
/// boxed: every other kind is 64 bytes or less, and each message queued
/// (a node's outbox, a simulator's events) moved the largest kind's room.
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
    /// Membership rumours, gossiped.
    Gossip(Gossip),
    /// State sync (boxed: see [`Message::push_pull`]).
    PushPull(Box<PushPull>),
    /// Periodic data gossip (push, pull, push-and-pull modes).
    DataGossip(DataGossip),
    /// Eager push along the broadcast tree.
    Eager(Eager),
    /// Lazy announcement of held data.
    IHave(IHave),
    /// Request for missing data, and to be pushed to eagerly.
    Graft(Graft),
    /// Request to stop eager pushes.
    Prune(Prune),
    /// Freshest-read query.
    Query(Query),
    /// Answer to a freshest-read query.
    QueryReply(QueryReply),
}

/// The names of the message kinds ([`Message::kind`]), in the order of
/// [`Message::kind_index`].
pub const MESSAGE_KINDS: [&str; 13] = [
    "ping",
    "ping-req",
    "ack",
    "nack",
    "gossip",
    "push-pull",
    "data-gossip",
    "eager",
    "ihave",
    "graft",
    "prune",
    "query",
    "query-reply",
];

impl Message {
    /// A push-pull message.
    pub fn push_pull(p: PushPull) -> Message {
        Message::PushPull(Box::new(p))
    }

    /// A short name of the message kind, for logs and counters: one of
    /// [`MESSAGE_KINDS`].
    pub fn kind(&self) -> &'static str {
        MESSAGE_KINDS[self.kind_index()]
    }

    /// The place of this message's kind in [`MESSAGE_KINDS`].
    pub fn kind_index(&self) -> usize {
        match self {
            Message::Ping(_) => 0,
            Message::PingReq(_) => 1,
            Message::Ack(_) => 2,
            Message::Nack(_) => 3,
            Message::Gossip(_) => 4,
            Message::PushPull(_) => 5,
            Message::DataGossip(_) => 6,
            Message::Eager(_) => 7,
            Message::IHave(_) => 8,
            Message::Graft(_) => 9,
            Message::Prune(_) => 10,
            Message::Query(_) => 11,
            Message::QueryReply(_) => 12,
        }
    }

    /// Whether a datagram transport carries this kind in one datagram:
    /// probes and their answers, membership rumours, tree traffic and data
    /// gossip, the small and frequent kinds SWIM was built around, and the
    /// opening of a push-pull exchange (two summaries, a few dozen bytes).
    /// The rest of a push-pull exchange (digests, members, deltas) and a
    /// query go by stream, so a round in which both sides agree opens no
    /// connection. The node packs these kinds to
    /// [`Config::datagram_size`](crate::Config::datagram_size).
    pub fn rides_datagrams(&self) -> bool {
        match self {
            Message::Ping(_)
            | Message::PingReq(_)
            | Message::Ack(_)
            | Message::Nack(_)
            | Message::Gossip(_)
            | Message::DataGossip(_)
            | Message::Eager(_)
            | Message::IHave(_)
            | Message::Graft(_)
            | Message::Prune(_) => true,
            Message::PushPull(p) => p.kind == PushPullKind::Summary,
            Message::Query(_) | Message::QueryReply(_) => false,
        }
    }

    /// The membership rumours a probe or gossip message carries, to fill.
    pub(crate) fn rumours_mut(&mut self) -> Option<&mut Vec<MemberUpdate>> {
        match self {
            Message::Ping(m) => Some(&mut m.updates),
            Message::PingReq(m) => Some(&mut m.updates),
            Message::Ack(m) => Some(&mut m.updates),
            Message::Gossip(m) => Some(&mut m.updates),
            _ => None,
        }
    }
}

/// A node's own namespace as a data dir keeps it: what
/// [`Node::own_namespace_since`](crate::Node::own_namespace_since) hands out
/// and [`Node::restore_namespace`](crate::Node::restore_namespace) takes back.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OwnNamespace {
    /// The generation: the life the namespace belongs to.
    pub generation: u32,
    /// The version counter: every version up to it was written.
    pub version: u64,
    /// Tombstones and events up to this version have been collected.
    pub horizon: u64,
    /// Records, in version order: each the latest of its key (or an event)
    /// with a version after the one asked from.
    pub records: Vec<Versioned>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_pull_past_its_opening_and_queries_go_by_stream_the_rest_by_datagram() {
        assert!(Message::Nack(Nack { seq: 1 }).rides_datagrams());
        assert!(Message::Prune(Prune).rides_datagrams());
        assert!(Message::IHave(IHave::default()).rides_datagrams());
        let step = |kind| {
            Message::push_pull(PushPull {
                kind,
                ..PushPull::default()
            })
        };
        assert!(step(PushPullKind::Summary).rides_datagrams());
        for kind in [
            PushPullKind::Join,
            PushPullKind::Sync,
            PushPullKind::Reply,
            PushPullKind::Deltas,
            PushPullKind::Pull,
        ] {
            assert!(!step(kind).rides_datagrams(), "{kind:?}");
        }
        let query = Query {
            id: 1,
            key: Arc::from("k"),
        };
        assert!(!Message::Query(query).rides_datagrams());
    }
}
