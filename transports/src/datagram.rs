//! The UDP transport: what fits in one datagram travels in one.
//!
//! With `Transport::Udp` the agent binds a UDP socket on the peer port's
//! number (UDP and TCP ports are separate spaces) and sends from it, so a
//! datagram's source is its sender's peer address. Probes, acks,
//! ping-reqs, nacks, membership rumours, tree traffic (Eager, IHave,
//! Graft, Prune), data gossip and the opening summary of a push-pull
//! exchange go in one datagram each, as the same
//! protobuf envelope the streams carry, sealed the same way with a cluster
//! key. The node packs these kinds to the datagram size (`datagram_size`,
//! 1,400 bytes by default, less what sealing adds); one record too large
//! for a datagram goes alone in a message up to `max_message_size`, which
//! travels by stream (counted `datagrams_over_limit`), as do the rest of
//! a push-pull exchange, queries and cluster requests (see
//! [`rumour_core::Message::rides_datagrams`]). Nothing waits on a connection:
//! a send that the socket cannot take at once is dropped (counted
//! `send_failed`); gossip tolerates loss by design.
//!
//! Received datagrams go through the same checks as stream envelopes
//! ([`Reception::admit`]: the cluster key, the replay window, decoding,
//! the sender-address rule against the datagram's source) and into the
//! same fair intake, one queue per source address. A datagram over
//! `max_message_size` is refused before it is decoded (counted
//! `rejected_oversized`), one that does not decode is `rejected_malformed`;
//! a source sending more than `peer_rate` datagrams a second has the rest
//! dropped (counted `datagrams_paced`), since there is no flow control to
//! hold it back with.
//!
//! What it must never do: block the node task, or panic on what arrives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use rumour_proto::v1::Envelope;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tracing::debug;

use crate::intake::{Budget, Intake, Queue};
use crate::peer::{enqueue, Reception};
use crate::stats::{add, bump, TransportStats};

/// The sending side: the node's UDP socket and its size limit.
pub(crate) struct Datagrams {
    socket: Arc<UdpSocket>,
    /// Largest datagram sent, in bytes (the node's `max_message_size`).
    limit: usize,
    stats: Arc<TransportStats>,
    /// The address datagrams leave from, when the socket is bound to one
    /// (not to every interface).
    source: Option<SocketAddr>,
}

impl Datagrams {
    pub(crate) fn new(socket: Arc<UdpSocket>, limit: usize, stats: Arc<TransportStats>) -> Self {
        let source = socket
            .local_addr()
            .ok()
            .filter(|a| !a.ip().is_unspecified());
        Datagrams {
            socket,
            limit,
            stats,
            source,
        }
    }

    /// Whether datagrams leave from `me`, the address the node is known
    /// by: then a plain envelope leaves the sender out, and the receiver
    /// takes the source address for it (`rumour_proto::datagram_envelope`),
    /// some 12 bytes less in each datagram. Bound to every interface, or
    /// known by another address (`--advertise`, a NAT), the source is not
    /// `me`, and every envelope names it.
    pub(crate) fn leaves_from(&self, me: SocketAddr) -> bool {
        self.source == Some(me)
    }

    /// Whether `env` fits in one datagram.
    pub(crate) fn fits(&self, env: &Envelope) -> bool {
        env.encoded_len() <= self.limit
    }

    /// Send `env` (sealed already, with a key) to `to` in one datagram if
    /// it fits: true if it is done with (sent, or dropped by a full socket
    /// buffer), false if it is over the limit and must go by stream.
    pub(crate) fn send(&self, to: SocketAddr, env: &Envelope) -> bool {
        let len = env.encoded_len();
        if len > self.limit {
            bump(&self.stats.datagrams_over_limit);
            return false;
        }
        match self.socket.try_send_to(&env.encode_to_vec(), to) {
            Ok(_) => {
                bump(&self.stats.sent);
                add(&self.stats.bytes_sent, len as u64);
                bump(&self.stats.datagrams_sent);
                add(&self.stats.datagram_bytes_sent, len as u64);
            }
            Err(e) => {
                bump(&self.stats.send_failed);
                debug!(peer = %to, error = %e, "a datagram was not sent");
            }
        }
        true
    }
}

/// Most source addresses the receiver keeps a queue and a budget for; a
/// flood from more is sent through fresh ones (see [`Sources::get`]).
const MAX_SOURCES: usize = 4096;

/// How long a source is remembered after its last datagram, when room is
/// needed.
const SOURCE_IDLE: Duration = Duration::from_secs(60);

/// One source address's way into the intake and its rate budget.
struct Source {
    queue: Queue,
    budget: Budget,
    seen: Instant,
}

/// Every source the receiver heard from lately, in bounded memory.
struct Sources {
    by_addr: HashMap<SocketAddr, Source>,
    intake: Intake,
    rate: u32,
}

impl Sources {
    /// The source at `addr`, made if new. When the map is full, sources
    /// idle for [`SOURCE_IDLE`] are dropped first, and if every one is
    /// recent, all are: they start again with fresh queues and budgets.
    fn get(&mut self, addr: SocketAddr, now: Instant) -> &mut Source {
        if !self.by_addr.contains_key(&addr) && self.by_addr.len() >= MAX_SOURCES {
            self.by_addr
                .retain(|_, s| now.saturating_duration_since(s.seen) < SOURCE_IDLE);
            if self.by_addr.len() >= MAX_SOURCES {
                self.by_addr.clear();
            }
        }
        let (intake, rate) = (&self.intake, self.rate);
        let source = self.by_addr.entry(addr).or_insert_with(|| Source {
            queue: intake.queue(),
            budget: Budget::new(rate, now),
            seen: now,
        });
        source.seen = now;
        source
    }
}

/// Receive datagrams on `socket` and queue what [`Reception`] lets in,
/// until the node task stops taking messages in. `limit` is the largest
/// datagram taken (the node's `max_message_size`); `rate` the datagrams
/// taken from one source address per second.
pub(crate) async fn receive(
    socket: Arc<UdpSocket>,
    limit: usize,
    rate: u32,
    intake: Intake,
    reception: Arc<Reception>,
) {
    let stats = reception.stats.clone();
    let mut sources = Sources {
        by_addr: HashMap::new(),
        intake,
        rate,
    };
    // Room for any datagram, so that an oversized one is seen whole and
    // refused, not cut to the limit and misread.
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            Err(e) => {
                // An error a previous send left on the socket (an ICMP
                // unreachable), or a transient one: the socket still
                // serves.
                debug!(error = %e, "receiving a datagram failed");
                tokio::task::yield_now().await;
                continue;
            }
        };
        add(&stats.bytes_received, n as u64);
        bump(&stats.datagrams_received);
        if n > limit {
            bump(&stats.rejected_oversized);
            debug!(%from, bytes = n, limit, "refused an oversized datagram");
            continue;
        }
        let source = sources.get(from, Instant::now());
        if source.budget.spend(source.seen).is_some() {
            bump(&stats.datagrams_paced);
            continue;
        }
        let env = match Envelope::decode(&buf[..n]) {
            Ok(env) => env,
            Err(e) => {
                bump(&stats.rejected_malformed);
                debug!(%from, error = %e, "refused a datagram that does not decode");
                continue;
            }
        };
        // A plain envelope that names no sender came from its source.
        if let Some((lane, inbound)) = reception.admit_datagram(env, from) {
            if enqueue(&source.queue, lane, inbound, &stats).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_map_stays_bounded() {
        let (intake, _taker) = crate::intake::intake(crate::intake::Limits {
            membership: 1,
            data: 1,
            total: 1,
        });
        let mut sources = Sources {
            by_addr: HashMap::new(),
            intake,
            rate: 10,
        };
        let now = Instant::now();
        for port in 0..(MAX_SOURCES as u16 + 10) {
            sources.get(SocketAddr::from(([127, 0, 0, 1], port)), now);
            assert!(sources.by_addr.len() <= MAX_SOURCES);
        }
    }
}
