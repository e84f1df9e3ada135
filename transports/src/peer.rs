//! The peer service: the receiving end of other nodes' links, and the
//! checks every peer envelope passes, by stream or by datagram.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message as _;
use rumour_proto::v1::envelope::Body;
use rumour_proto::v1::peer_server::Peer;
use rumour_proto::v1::{cluster_reply, cluster_request, Envelope, StreamSummary};
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::{debug, warn};

use crate::cluster_request::ClusterMessage;
use crate::driver::Inbound;
use crate::intake::{Budget, Intake, Lane, Queue, Refused};
use crate::keyring::{open_envelope, unix_ms, Refusal, SharedKeyring};
use crate::replay::{Replay, ReplayWindow, REPLAY_WINDOW};
use crate::reply_budget::ReplyBudget;

use crate::stats::{add, bump, TransportStats};

/// Reads each envelope of a peer's stream and queues what [`Reception`]
/// lets in for the node, in the connection's own lanes of the intake (see
/// the `intake` module), at most `rate` envelopes a second per connection.
/// Oversized envelopes are refused by tonic on their length prefix, before
/// decoding (see `PeerServer::max_decoding_message_size`); the rest is
/// refused or let in by [`Reception::admit`], the same for a datagram.
pub(crate) struct PeerService {
    pub(crate) intake: Intake,
    /// Envelopes read per connection per second, at most.
    pub(crate) rate: u32,
    pub(crate) reception: Arc<Reception>,
}

/// What lets a peer's envelope through to the node, whichever way it came
/// (a stream or a datagram). With a cluster key, envelopes that do not
/// open with it are refused first, before their inside is decoded;
/// envelopes that open but were sent outside the replay window, or were
/// taken before, are refused next; malformed ones are refused last. All
/// are counted, and the node keeps serving. Cluster requests and replies
/// go to the node task as such; key commands only from a sealed envelope
/// (a node without a key refuses them as unauthenticated), queries from a
/// sealed envelope or, at a node without a key, under the sender-address
/// rule.
pub(crate) struct Reception {
    /// Without a key, refuse envelopes whose sender address is on another
    /// host than the connection or datagram they came by.
    pub(crate) check_sender_address: bool,
    pub(crate) stats: Arc<TransportStats>,
    pub(crate) keyring: Option<SharedKeyring>,
    /// Which sealed envelopes were taken (used only with a key), over
    /// every stream and datagram.
    pub(crate) replay: ReplayWindow,
    pub(crate) refusals: RefusalLog,
    /// Without a key or peer TLS: credited with what each sender address
    /// sent, which bounds what the node sends back to one it does not
    /// hold as a member.
    pub(crate) reply_budget: Option<Arc<ReplyBudget>>,
}

impl Reception {
    /// The lane and inbound message of an envelope that came from `remote`
    /// (a connection's peer, or a datagram's source), or `None` if it is
    /// refused: counted, and logged at most once per address per interval.
    pub(crate) fn admit(
        &self,
        env: Envelope,
        remote: Option<SocketAddr>,
    ) -> Option<(Lane, Inbound)> {
        let bytes = env.encoded_len() as u64;
        self.admit_sized(env, remote, bytes)
    }

    /// [`Reception::admit`] for a datagram from `source`: a plain envelope
    /// that names no sender is taken as sent from `source`
    /// (`rumour_proto::sender_from_source`). The reply budget is credited
    /// with the bytes that came, not with the sender's address filled in.
    pub(crate) fn admit_datagram(
        &self,
        mut env: Envelope,
        source: SocketAddr,
    ) -> Option<(Lane, Inbound)> {
        let bytes = env.encoded_len() as u64;
        rumour_proto::sender_from_source(&mut env, source);
        self.admit_sized(env, Some(source), bytes)
    }

    /// [`Reception::admit`] of an envelope `bytes` long as it came.
    fn admit_sized(
        &self,
        env: Envelope,
        remote: Option<SocketAddr>,
        bytes: u64,
    ) -> Option<(Lane, Inbound)> {
        let ring = self.keyring.as_ref().map(SharedKeyring::current);
        let opened =
            open_envelope(ring.as_deref(), &self.replay, env, unix_ms()).and_then(|env| {
                if ring.is_none() && needs_key(env.body.as_ref()) {
                    return Err(Refusal::Unauthenticated(
                        "a key command, which this node takes only sealed with a cluster key, and it has none",
                    ));
                }
                Ok(env)
            });
        let ip = remote.map_or(IpAddr::from([0, 0, 0, 0]), |r| r.ip().to_canonical());
        let env = match opened {
            Ok(env) => env,
            Err(Refusal::Unauthenticated(why)) => {
                bump(&self.stats.rejected_unauthenticated);
                if self.refusals.should_log(ip, Instant::now()) {
                    warn!(
                        ?remote,
                        why,
                        "refused a peer message: wrong or missing cluster key (logged once per address every {}s)",
                        self.refusals.interval.as_secs()
                    );
                }
                return None;
            }
            Err(Refusal::Replay(replay)) => {
                let log = self.refusals.should_log(ip, Instant::now());
                match replay {
                    Replay::Stale {
                        sent_unix_ms,
                        now_unix_ms,
                    } => {
                        bump(&self.stats.rejected_stale);
                        if log {
                            warn!(
                                ?remote,
                                sent_unix_ms,
                                now_unix_ms,
                                "refused a sealed peer message sent more than {}s from this node's clock: a replay, or clocks too far apart (logged once per address every {}s)",
                                REPLAY_WINDOW.as_secs(),
                                self.refusals.interval.as_secs()
                            );
                        }
                    }
                    Replay::Replayed(why) => {
                        bump(&self.stats.rejected_replayed);
                        if log {
                            warn!(
                                ?remote,
                                why,
                                "refused a replayed sealed peer message (logged once per address every {}s)",
                                self.refusals.interval.as_secs()
                            );
                        }
                    }
                }
                return None;
            }
            Err(Refusal::Malformed(e)) => {
                bump(&self.stats.rejected_malformed);
                debug!(?remote, error = %e, "refused a malformed peer message");
                return None;
            }
        };
        let lane = Lane::of(env.body.as_ref());
        let inbound = match inbound(env) {
            Ok(inbound) => inbound,
            Err(e) => {
                bump(&self.stats.rejected_malformed);
                debug!(?remote, error = %e, "refused a malformed peer message");
                return None;
            }
        };
        let from = match &inbound {
            Inbound::Node(from, _) | Inbound::Cluster(from, _) => *from,
        };
        // Without a key nothing vouches for `from`, and replies go there:
        // only the connection's (or datagram's) own host may be named.
        let unvouched = ring.is_none() && self.check_sender_address;
        if let (true, Some(remote)) = (unvouched, remote) {
            if !same_host(from.ip(), remote.ip()) {
                bump(&self.stats.rejected_address_mismatch);
                if self.refusals.should_log(ip, Instant::now()) {
                    warn!(
                        ?remote,
                        %from,
                        "refused a peer message whose sender address is on another host than its connection (logged once per address every {}s)",
                        self.refusals.interval.as_secs()
                    );
                }
                return None;
            }
        }
        if let Some(budget) = &self.reply_budget {
            budget.received(from, bytes, Instant::now());
        }
        bump(&self.stats.received);
        Some((lane, inbound))
    }
}

/// Queue what [`Reception`] let in, counting what the intake refuses;
/// `Err` once the node task has stopped.
pub(crate) fn enqueue(
    queue: &Queue,
    lane: Lane,
    inbound: Inbound,
    stats: &TransportStats,
) -> Result<(), Stopped> {
    match queue.push(lane, inbound) {
        Ok(shed) => add(&stats.intake_shed, shed as u64),
        Err(Refused::LaneFull(Lane::Membership)) => bump(&stats.intake_membership_full),
        Err(Refused::LaneFull(Lane::Data)) => bump(&stats.intake_data_full),
        Err(Refused::Shed) => bump(&stats.intake_shed),
        Err(Refused::Closed) => return Err(Stopped),
    }
    Ok(())
}

/// The node task has stopped: nothing more is taken in.
#[derive(Debug)]
pub(crate) struct Stopped;

/// Which remote addresses were last warned about, so that a peer sending
/// with the wrong key (or none) is logged at most once per `interval`, and
/// a flood from many addresses cannot grow the map past `capacity`.
pub(crate) struct RefusalLog {
    last: Mutex<HashMap<IpAddr, Instant>>,
    interval: Duration,
    capacity: usize,
}

impl RefusalLog {
    pub(crate) fn new(interval: Duration, capacity: usize) -> RefusalLog {
        RefusalLog {
            last: Mutex::new(HashMap::new()),
            interval,
            capacity,
        }
    }

    /// Whether to log a refusal from `ip` now (and remember that it was).
    /// When the map is full, entries older than the interval are dropped;
    /// if it is still full, the refusal goes unlogged (it is counted
    /// anyway).
    pub(crate) fn should_log(&self, ip: IpAddr, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = last.get_mut(&ip) {
            if now.duration_since(*t) < self.interval {
                return false;
            }
            *t = now;
            return true;
        }
        if last.len() >= self.capacity {
            let interval = self.interval;
            last.retain(|_, t| now.duration_since(*t) < interval);
            if last.len() >= self.capacity {
                return false;
            }
        }
        last.insert(ip, now);
        true
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn stream(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<StreamSummary>, Status> {
        let remote = request.remote_addr();
        let mut stream = request.into_inner();
        let mut summary = StreamSummary::default();
        let queue = self.intake.queue();
        let mut budget = Budget::new(self.rate, tokio::time::Instant::now());
        loop {
            while let Some(wait) = budget.spend(tokio::time::Instant::now()) {
                // Not reading holds the sender back through HTTP/2 flow
                // control, and costs this node nothing meanwhile.
                bump(&self.reception.stats.intake_paced);
                tokio::time::sleep(wait).await;
            }
            match stream.message().await {
                Ok(Some(env)) => {
                    let stats = &self.reception.stats;
                    add(&stats.bytes_received, env.encoded_len() as u64);
                    match self.reception.admit(env, remote) {
                        Some((lane, inbound)) => {
                            summary.received += 1;
                            if enqueue(&queue, lane, inbound, stats).is_err() {
                                return Err(Status::unavailable("the node has stopped"));
                            }
                        }
                        None => summary.rejected += 1,
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    if status.code() == Code::OutOfRange {
                        bump(&self.reception.stats.rejected_oversized);
                        debug!(
                            ?remote,
                            message = status.message(),
                            "refused an oversized peer message"
                        );
                    } else {
                        debug!(?remote, %status, "peer stream broke");
                    }
                    return Err(status);
                }
            }
        }
        Ok(Response::new(summary))
    }
}

/// Whether two addresses are the same host: equal (IPv4-mapped IPv6 as
/// IPv4), or both loopback.
fn same_host(a: IpAddr, b: IpAddr) -> bool {
    let (a, b) = (a.to_canonical(), b.to_canonical());
    a == b || (a.is_loopback() && b.is_loopback())
}

/// Whether a body is taken only sealed with a cluster key: a key command
/// or its reply (a node without a key refuses them even in plaintext).
/// Queries and their replies are not: a keyless cluster answers them like
/// any other keyless message, to the sender's own host (see `query`).
fn needs_key(body: Option<&Body>) -> bool {
    match body {
        Some(Body::ClusterRequest(r)) => {
            !matches!(r.command, Some(cluster_request::Command::Query(_)))
        }
        Some(Body::ClusterReply(r)) => !matches!(r.answer, Some(cluster_reply::Answer::Query(_))),
        _ => false,
    }
}

/// What an opened envelope is for: the node, or (a cluster request or
/// reply) the agent.
fn inbound(mut env: Envelope) -> Result<Inbound, rumour_proto::DecodeError> {
    let msg = match env.body.take() {
        Some(Body::ClusterRequest(r)) => ClusterMessage::Request(r),
        Some(Body::ClusterReply(r)) => ClusterMessage::Reply(r),
        body => {
            env.body = body;
            let (from, msg) = rumour_proto::decode_envelope(env)?;
            return Ok(Inbound::Node(from, msg));
        }
    };
    let from = env
        .from
        .ok_or(rumour_proto::DecodeError::MissingField("Envelope.from"))?
        .try_into()?;
    Ok(Inbound::Cluster(from, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_without_its_sender_is_credited_with_the_bytes_that_came() {
        // A keyless node's reply budget for an outsider is what the outsider
        // sent: a datagram that names no sender is taken as from its source,
        // and credited with its own length, not with the address filled in.
        let budget = Arc::new(ReplyBudget::new(16, Duration::from_secs(60)));
        let reception = Reception {
            check_sender_address: true,
            stats: Arc::default(),
            keyring: None,
            replay: ReplayWindow::new(),
            refusals: RefusalLog::new(Duration::from_secs(10), 16),
            reply_budget: Some(budget.clone()),
        };
        let source: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let nack = rumour_core::Message::Nack(rumour_core::Nack { seq: 3 });
        let env = rumour_proto::datagram_envelope(&nack);
        let came = env.encoded_len() as u64;
        let named = rumour_proto::encode_envelope(source, &nack).encoded_len() as u64;
        assert!(came + 10 <= named);
        let (_, inbound) = reception.admit_datagram(env, source).expect("taken");
        assert!(matches!(inbound, Inbound::Node(from, _) if from == source));
        let now = Instant::now();
        assert!(budget.spend(source, came, now));
        assert!(!budget.spend(source, 1, now), "credited more than came");
    }

    #[test]
    fn a_sender_may_name_only_its_connections_host() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(same_host(ip("10.0.0.1"), ip("10.0.0.1")));
        assert!(same_host(ip("10.0.0.1"), ip("::ffff:10.0.0.1")));
        assert!(same_host(ip("127.0.0.1"), ip("127.0.0.2")));
        assert!(same_host(ip("::1"), ip("127.0.0.1")));
        assert!(!same_host(ip("10.0.0.1"), ip("10.0.0.2")));
        assert!(!same_host(ip("127.0.0.1"), ip("10.0.0.1")));
        assert!(!same_host(ip("0.0.0.0"), ip("10.0.0.1")));
    }

    #[test]
    fn refusals_are_logged_once_per_address_per_interval_in_bounded_memory() {
        let log = RefusalLog::new(Duration::from_secs(10), 3);
        let t0 = Instant::now();
        let ip = |i: u8| IpAddr::from([10, 0, 0, i]);
        assert!(log.should_log(ip(1), t0));
        assert!(!log.should_log(ip(1), t0 + Duration::from_secs(9)));
        assert!(log.should_log(ip(1), t0 + Duration::from_secs(10)));
        assert!(log.should_log(ip(2), t0));
        assert!(log.should_log(ip(3), t0));
        // Full, and every entry is recent: a new address goes unlogged and
        // is not remembered.
        assert!(!log.should_log(ip(4), t0 + Duration::from_secs(1)));
        assert_eq!(log.last.lock().unwrap().len(), 3);
        // Once entries age out, they make room.
        assert!(log.should_log(ip(4), t0 + Duration::from_secs(30)));
        assert!(log.last.lock().unwrap().len() <= 3);
    }
}
