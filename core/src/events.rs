//! What a node reports: the events it sees, the outputs it asks its driver
//! to carry out, and the counters of what it has seen and done.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::member::Member;
use crate::message::{Message, Metadata};

/// Something that happened, as this node sees it: to the membership, to
/// replicated state, or an answer to a query.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A member was seen for the first time, or came back after dying or
    /// leaving.
    MemberJoined(Member),
    /// A member became suspect.
    MemberSuspected(Member),
    /// A suspect refuted its suspicion with a higher incarnation.
    MemberAlive(Member),
    /// A member's suspicion expired: it is considered dead.
    MemberDied(Member),
    /// A member left gracefully.
    MemberLeft(Member),
    /// An entry of a namespace was written or deleted: emitted once per
    /// applied change, never for a stale one.
    EntryChanged {
        /// The namespace's owner.
        owner: Arc<str>,
        /// The key.
        key: Arc<str>,
        /// The version of the change.
        version: u64,
        /// The new value, `None` if deleted.
        value: Option<Arc<[u8]>>,
    },
    /// A user event, delivered once.
    UserEvent {
        /// The node that sent it.
        origin: Arc<str>,
        /// Its name.
        name: Arc<str>,
        /// Its payload.
        payload: Arc<[u8]>,
        /// The origin's Lamport time; with `origin` it identifies the event.
        lamport: u64,
    },
    /// The cluster metadata register changed.
    MetadataChanged(Metadata),
    /// The answer to a [`Node::query_fresh`](crate::Node::query_fresh).
    FreshRead(FreshRead),
}

impl Event {
    /// The member a membership event is about.
    pub fn member(&self) -> Option<&Member> {
        match self {
            Event::MemberJoined(m)
            | Event::MemberSuspected(m)
            | Event::MemberAlive(m)
            | Event::MemberDied(m)
            | Event::MemberLeft(m) => Some(m),
            _ => None,
        }
    }
}

/// What the node asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// Deliver `msg` to the node at `to`, stamped as coming from this node's
    /// address.
    Send {
        /// Destination address.
        to: SocketAddr,
        /// The message.
        msg: Message,
    },
    /// Report an event to the application.
    Event(Event),
}

/// Counters of what the node has seen and done, for metrics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages handled.
    pub messages_in: u64,
    /// Messages emitted.
    pub messages_out: u64,
    /// Probes sent (direct pings of the probe cycle).
    pub probes: u64,
    /// Probes that ended with neither a direct nor an indirect ack.
    pub failed_probes: u64,
    /// Times this node refuted a suspicion or death claim about itself.
    pub refutations: u64,
    /// Members this node declared dead itself, its suspicion of them having
    /// timed out (news of a death heard from others is not counted).
    pub deaths_declared: u64,
    /// Transmissions of urgent membership rumours (refutations and
    /// leaves, sent ahead of other news when `refutations_first` is on),
    /// counted apart from the rest.
    pub urgent_rumours_sent: u64,
    /// Announcements of fresh data sent off the tree soon after it arrived,
    /// on a lossy network, beside those of the gossip rounds.
    pub announced_soon: u64,
    /// Refutations sent straight back to the peer whose push-pull said this
    /// node was suspect or dead: a peer it may hold dead itself, whom no
    /// rumour would reach.
    pub refutations_returned: u64,
    /// Pings that carried this node's suspicion of their target
    /// (Lifeguard's buddy system, `buddy_system`).
    pub buddy_warnings: u64,
    /// Second direct pings sent beside the ping-reqs (`fallback_ping`).
    pub fallback_pings: u64,
    /// Suspicions whose verdict was held for a final ping of the suspect
    /// (`final_probe`).
    pub final_probes: u64,
    /// Push-pull pages sent to go on from where an answer was cut short
    /// (paged anti-entropy).
    pub pages_sent: u64,
    /// Push-pull answers whose page matched no page this node sent (out of
    /// range, repeated, stale or unasked): not gone on from.
    pub pages_ignored: u64,
    /// Push-pull pages sent again, their answer not come within a quarter
    /// gossip interval (a lost page or answer).
    pub pages_resent: u64,
    /// Digests (membership or namespace) or wanted lists longer than one
    /// message could hold, cut to the limit before use.
    pub digests_truncated: u64,
    /// Acks or nacks matching no outstanding probe (late or duplicated).
    pub stale_acks: u64,
    /// Pings addressed to another name than ours.
    pub misdirected: u64,
    /// News that lost to what we already knew (stale incarnations, duplicates).
    pub stale_updates: u64,
    /// Accusations (suspicions, deaths) that came without the accused's
    /// word, refused because this node holds no word of the accused for
    /// that incarnation and address; and news other than an accusation
    /// that came without its word.
    pub words_missing: u64,
    /// News claiming a known name at another address while it is live.
    pub address_conflicts: u64,
    /// Deaths of live members taken only as suspicions: learned by a
    /// push-pull, or about a member heard from directly within the
    /// suspicion timeout (stale news, as at a partition's heal). Counted
    /// once per suspicion so raised, not per copy of the news.
    pub deaths_doubted: u64,
    /// Ping-reqs refused: their target is not a live member at the address
    /// named (a relay pings no address a stranger chooses).
    pub ping_reqs_refused: u64,
    /// Members new to this node refused because the senders at their
    /// introducer's address had introduced `max_introductions` this probe
    /// period (see [`crate::Config::max_introductions`]).
    pub introductions_capped: u64,
    /// Messages ignored because the node has left.
    pub ignored_after_leave: u64,
    /// Deltas (rumoured or synced) applied to a replica.
    pub deltas_applied: u64,
    /// Data we already held (duplicates, stale generations, our own).
    pub data_duplicates: u64,
    /// Deltas that would skip versions: not applied (a rumoured one is held
    /// until the gap fills).
    pub deltas_gap: u64,
    /// Deltas refused as malformed: versions out of order or out of range,
    /// records over the size limits, too many keys.
    pub deltas_malformed: u64,
    /// Deltas refused after a partial reset, from a sender behind its horizon.
    pub deltas_stale_source: u64,
    /// Data about owners that are not live members.
    pub data_unknown_owner: u64,
    /// Records, horizons and metadata refused because their owner did not
    /// sign them (or a reset came without the owner's signed horizon).
    pub records_bad_signature: u64,
    /// Replicas without a checkpoint at their version audited: their owner
    /// asked for it.
    pub checkpoint_audits: u64,
    /// Replicas proven whole: a checkpoint of the owner at the replica's
    /// version matched what the replica holds.
    pub checkpoints_proven: u64,
    /// A checkpoint of the owner (its signature good) showed a replica
    /// lacking records (withheld, or an older version standing in for a
    /// newer one): the replica is refetched, or the reset was refused.
    pub replicas_withheld: u64,
    /// Replicas refetched after a checkpoint showed them incomplete, and
    /// proven whole again.
    pub replicas_repaired: u64,
    /// Pieces of a delta cut short by its message's budget, held aside
    /// until the rest arrives (a replica never shows part of a version).
    pub deltas_staged: u64,
    /// Membership news refused because the member did not sign it.
    pub members_bad_signature: u64,
    /// Membership news refused because it names a known member under
    /// another key than the one its name is bound to.
    pub identity_conflicts: u64,
    /// Push-pulls opened with an address of the reconnect list.
    pub reconnect_attempts: u64,
    /// Reconnect entries dropped because their address answered as another
    /// node (another name, or the same name under another key).
    pub reconnect_mismatches: u64,
    /// Grafts sent (tree mode): data heard of and asked for.
    pub grafts: u64,
    /// Prunes sent (tree mode): duplicates that cut an eager link.
    pub prunes: u64,
    /// Pulls sent for versions missing before a rumour we hold.
    pub gap_pulls: u64,
    /// Eager pushes of data that had already arrived by anti-entropy, taken
    /// as the tree's own delivery (passed on, link kept) instead of as a
    /// duplicate that prunes.
    pub tree_adoptions: u64,
    /// Signatures this node verified one at a time. A statement verified
    /// once is remembered, and not verified again while remembered; where
    /// nodes share that memory, see [`crate::Verified`] for whom it counts.
    pub signatures_verified: u64,
    /// Signatures this node verified in batches (about half the cost each).
    pub signatures_batched: u64,
    /// `messages_in` by kind, in the order of
    /// [`MESSAGE_KINDS`](crate::MESSAGE_KINDS); listed by
    /// [`Stats::counters`] as [`MESSAGES_IN_BY_KIND`].
    pub messages_in_by_kind: [u64; 13],
}

/// The counter names of [`Stats::messages_in_by_kind`]: `messages_in_`
/// and the kind, its dashes as underscores.
pub const MESSAGES_IN_BY_KIND: [&str; 13] = [
    "messages_in_ping",
    "messages_in_ping_req",
    "messages_in_ack",
    "messages_in_nack",
    "messages_in_gossip",
    "messages_in_push_pull",
    "messages_in_data_gossip",
    "messages_in_eager",
    "messages_in_ihave",
    "messages_in_graft",
    "messages_in_prune",
    "messages_in_query",
    "messages_in_query_reply",
];

impl Stats {
    /// Every counter with its field name, in declaration order.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        // Destructured without `..`: a new field must be listed here.
        let Stats {
            messages_in,
            messages_out,
            probes,
            failed_probes,
            refutations,
            deaths_declared,
            urgent_rumours_sent,
            announced_soon,
            refutations_returned,
            buddy_warnings,
            fallback_pings,
            final_probes,
            pages_sent,
            pages_ignored,
            pages_resent,
            digests_truncated,
            stale_acks,
            misdirected,
            stale_updates,
            words_missing,
            address_conflicts,
            deaths_doubted,
            ping_reqs_refused,
            introductions_capped,
            ignored_after_leave,
            deltas_applied,
            data_duplicates,
            deltas_gap,
            deltas_malformed,
            deltas_stale_source,
            data_unknown_owner,
            records_bad_signature,
            checkpoint_audits,
            checkpoints_proven,
            replicas_withheld,
            replicas_repaired,
            deltas_staged,
            members_bad_signature,
            identity_conflicts,
            reconnect_attempts,
            reconnect_mismatches,
            grafts,
            prunes,
            gap_pulls,
            tree_adoptions,
            signatures_verified,
            signatures_batched,
            messages_in_by_kind,
        } = self;
        let by_kind = MESSAGES_IN_BY_KIND.iter().zip(messages_in_by_kind);
        let mut counters = vec![
            ("messages_in", *messages_in),
            ("messages_out", *messages_out),
            ("probes", *probes),
            ("failed_probes", *failed_probes),
            ("refutations", *refutations),
            ("deaths_declared", *deaths_declared),
            ("urgent_rumours_sent", *urgent_rumours_sent),
            ("announced_soon", *announced_soon),
            ("refutations_returned", *refutations_returned),
            ("buddy_warnings", *buddy_warnings),
            ("fallback_pings", *fallback_pings),
            ("final_probes", *final_probes),
            ("pages_sent", *pages_sent),
            ("pages_ignored", *pages_ignored),
            ("pages_resent", *pages_resent),
            ("digests_truncated", *digests_truncated),
            ("stale_acks", *stale_acks),
            ("misdirected", *misdirected),
            ("stale_updates", *stale_updates),
            ("words_missing", *words_missing),
            ("address_conflicts", *address_conflicts),
            ("deaths_doubted", *deaths_doubted),
            ("ping_reqs_refused", *ping_reqs_refused),
            ("introductions_capped", *introductions_capped),
            ("ignored_after_leave", *ignored_after_leave),
            ("deltas_applied", *deltas_applied),
            ("data_duplicates", *data_duplicates),
            ("deltas_gap", *deltas_gap),
            ("deltas_malformed", *deltas_malformed),
            ("deltas_stale_source", *deltas_stale_source),
            ("data_unknown_owner", *data_unknown_owner),
            ("records_bad_signature", *records_bad_signature),
            ("checkpoint_audits", *checkpoint_audits),
            ("checkpoints_proven", *checkpoints_proven),
            ("replicas_withheld", *replicas_withheld),
            ("replicas_repaired", *replicas_repaired),
            ("deltas_staged", *deltas_staged),
            ("members_bad_signature", *members_bad_signature),
            ("identity_conflicts", *identity_conflicts),
            ("reconnect_attempts", *reconnect_attempts),
            ("reconnect_mismatches", *reconnect_mismatches),
            ("grafts", *grafts),
            ("prunes", *prunes),
            ("gap_pulls", *gap_pulls),
            ("tree_adoptions", *tree_adoptions),
            ("signatures_verified", *signatures_verified),
            ("signatures_batched", *signatures_batched),
        ];
        counters.extend(by_kind.map(|(name, n)| (*name, *n)));
        counters
    }
}

/// Where a freshest read's answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadSource {
    /// The owner answered.
    Owner,
    /// The owner did not answer in time (or is not a live member, or is
    /// this node): the answer is this node's replica.
    Replica,
}

/// The answer to [`Node::query_fresh`](crate::Node::query_fresh).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FreshRead {
    /// The id `query_fresh` returned.
    pub id: u32,
    /// The owner asked about.
    pub owner: Arc<str>,
    /// The key asked about.
    pub key: Arc<str>,
    /// Who answered.
    pub source: ReadSource,
    /// The generation of the owner's namespace the answer is from.
    pub generation: u32,
    /// The version of the key's last write (0: never written, or its
    /// tombstone collected).
    pub version: u64,
    /// The value, `None` if absent or deleted.
    pub value: Option<Arc<[u8]>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MESSAGE_KINDS;

    #[test]
    fn each_kind_has_its_counter_named_after_it() {
        for (kind, name) in MESSAGE_KINDS.iter().zip(MESSAGES_IN_BY_KIND) {
            assert_eq!(name, format!("messages_in_{}", kind.replace('-', "_")));
        }
        let mut stats = Stats::default();
        stats.messages_in_by_kind[7] = 3;
        let counters = stats.counters();
        assert!(counters.contains(&("messages_in_eager", 3)));
        let names: std::collections::BTreeSet<_> = counters.iter().map(|c| c.0).collect();
        assert_eq!(names.len(), counters.len(), "no name twice");
    }
}
