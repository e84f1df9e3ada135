//! Counters of the transport: what was sent, dropped, refused.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$meta:meta])* $name:ident,)*) => {
        /// Counters of one agent's transport. Cheap to bump from any task.
        #[derive(Debug, Default)]
        pub struct TransportStats {
            $($(#[$meta])* pub $name: AtomicU64,)*
        }

        impl TransportStats {
            /// Every counter by name, in declaration order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Envelopes handed to a peer stream, or sent in a datagram.
    sent,
    /// Encoded bytes of the envelopes sent (protobuf, without gRPC, IP or
    /// UDP framing).
    bytes_sent,
    /// Envelopes dropped because the peer's queue was full.
    send_queue_full,
    /// Envelopes lost because the peer could not be reached or its stream
    /// broke or stalled past the send timeout.
    send_failed,
    /// Connections opened to peers.
    connects,
    /// Connection attempts that failed (each followed by a backoff).
    connect_failures,
    /// Envelopes received and decoded (by stream or datagram), and let
    /// through to the intake.
    received,
    /// Encoded bytes of the envelopes received (datagrams whole, refused
    /// ones too).
    bytes_received,
    /// Envelopes refused as malformed (bad address, name, enum, range).
    rejected_malformed,
    /// Envelopes refused for their size, before decoding.
    rejected_oversized,
    /// Envelopes refused before decoding for not opening with the cluster
    /// key: unsealed at a node with a key, sealed with a key (or label) this
    /// node does not hold, tampered with, or sealed at a node without a key.
    rejected_unauthenticated,
    /// Sealed envelopes that opened but were refused because their nonce
    /// was taken before (a replay), or is further behind its sender's
    /// newest than the replay window tells apart.
    rejected_replayed,
    /// Sealed envelopes that opened but were refused because they were
    /// sent more than the replay window (60 s) from this node's clock: an
    /// old capture replayed, or clocks too far apart.
    rejected_stale,
    /// Envelopes refused at a node without a cluster key because the
    /// sender address written in them, where replies would go, is on
    /// another host than the connection they came on (loopback counts as
    /// one host): a reply would have reflected traffic at a third party.
    rejected_address_mismatch,
    /// Envelopes not sent, at a node without a cluster key (or peer TLS),
    /// to an address not authenticated (not a member, not a seed) because
    /// it would have received more bytes than it sent (see
    /// `reply_budget`): an amplification refused.
    replies_over_budget,
    /// Membership messages (probes, acks, nacks, indirect probes,
    /// membership rumours) dropped because their connection's membership
    /// lane was full.
    intake_membership_full,
    /// Other messages dropped because their connection's data lane was
    /// full.
    intake_data_full,
    /// Messages dropped because every connection's lanes together were
    /// full: each from the connection that held the most.
    intake_shed,
    /// Times reading a peer connection waited because it sent faster than
    /// `peer_rate`.
    intake_paced,
    /// Times the node woke to take in peer messages: each time, it takes
    /// all that arrived together (`received` over this is the mean batch),
    /// and what it sends in answer leaves merged.
    intake_batches,
    /// Of those, the times the node had waited 1 ms or more for input
    /// before: its runtime asleep, the wake-up costs more than the
    /// message (a shared host's model charges it, see `rumour bench
    /// --versus-sim`).
    intake_after_idle,
    /// Envelopes sent in a UDP datagram (also counted in `sent`).
    datagrams_sent,
    /// Bytes of the datagrams sent (also counted in `bytes_sent`; no UDP
    /// or IP header).
    datagram_bytes_sent,
    /// Envelopes the UDP transport would have sent in a datagram but were
    /// over `max_message_size` sealed and framed, so went by stream.
    datagrams_over_limit,
    /// Datagrams received, whatever became of them.
    datagrams_received,
    /// Datagrams dropped because their source address sent more than
    /// `peer_rate` a second.
    datagrams_paced,
    /// Client API calls refused for a missing or wrong API token.
    api_unauthenticated,
    /// Answers to a query (`AnswerQuery`) ignored because no query of
    /// that id waited for one: unknown, answered already, or timed out.
    query_answers_ignored,
    /// Replies from members to a cluster request (a query, a key command)
    /// ignored because it was no longer waited on (it had ended, or timed
    /// out) or was not asked of that member at that address.
    cluster_replies_ignored,
}

/// Add one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Add `n` to a counter.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}
