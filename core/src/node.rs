//! The protocol state machine of one node: SWIM probing with Lifeguard
//! suspicion and local health, rumour mongering, and push-pull state sync;
//! the data plane (namespaces, events, metadata) is in [`data`].

mod data;

pub use data::{FreshRead, ReadSource};

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::broadcast::BroadcastQueue;
use crate::config::{Config, TimerPhase};
use crate::error::Error;
use crate::health::LocalHealth;
use crate::member::{overrides, Incarnation, Member, MemberState, NodeId};
use crate::members::{Entry, Members};
use crate::message::*;
use crate::store::{Limits, Store};
use crate::suspicion::Suspicion;
use crate::time::Time;
use crate::wire;

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
    /// The answer to a [`Node::query_fresh`].
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
    /// Acks or nacks matching no outstanding probe (late or duplicated).
    pub stale_acks: u64,
    /// Pings addressed to another name than ours.
    pub misdirected: u64,
    /// News that lost to what we already knew (stale incarnations, duplicates).
    pub stale_updates: u64,
    /// News claiming a known name at another address while it is live.
    pub address_conflicts: u64,
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
}

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
            stale_acks,
            misdirected,
            stale_updates,
            address_conflicts,
            ignored_after_leave,
            deltas_applied,
            data_duplicates,
            deltas_gap,
            deltas_malformed,
            deltas_stale_source,
            data_unknown_owner,
            grafts,
            prunes,
            gap_pulls,
            tree_adoptions,
        } = self;
        vec![
            ("messages_in", *messages_in),
            ("messages_out", *messages_out),
            ("probes", *probes),
            ("failed_probes", *failed_probes),
            ("refutations", *refutations),
            ("stale_acks", *stale_acks),
            ("misdirected", *misdirected),
            ("stale_updates", *stale_updates),
            ("address_conflicts", *address_conflicts),
            ("ignored_after_leave", *ignored_after_leave),
            ("deltas_applied", *deltas_applied),
            ("data_duplicates", *data_duplicates),
            ("deltas_gap", *deltas_gap),
            ("deltas_malformed", *deltas_malformed),
            ("deltas_stale_source", *deltas_stale_source),
            ("data_unknown_owner", *data_unknown_owner),
            ("grafts", *grafts),
            ("prunes", *prunes),
            ("gap_pulls", *gap_pulls),
            ("tree_adoptions", *tree_adoptions),
        ]
    }
}

#[derive(Debug)]
enum Probe {
    Idle,
    /// Direct ping sent; waiting for the ack until `deadline`.
    Direct {
        target: NodeId,
        /// The life of the target we probe: a failure says nothing about a
        /// later incarnation that turned up meanwhile (a restart).
        incarnation: Incarnation,
        seq: u32,
        deadline: Time,
    },
    /// Ping-reqs sent; waiting for any ack until the probe period ends.
    Indirect {
        target: NodeId,
        incarnation: Incarnation,
        seq: u32,
        expected_nacks: u32,
        nacks: u32,
    },
}

/// A ping-req this node serves: it pinged `target` on the requester's behalf.
#[derive(Debug)]
struct Relay {
    seq: u32,
    requester: SocketAddr,
    requester_seq: u32,
    deadline: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Running,
    /// Announcing Left for this many more gossip rounds, then quiet.
    Leaving(u8),
    Left,
}

/// Gossip rounds a leaving node spends announcing its departure.
const LEAVE_ROUNDS: u8 = 3;

#[derive(Debug)]
struct Joining {
    seeds: Vec<SocketAddr>,
    next: Time,
    backoff: Duration,
}

/// One rumour node's protocol state machine.
///
/// # Contract
///
/// The node does no I/O and reads no clock. The driver feeds it inputs, each
/// carrying the current time `now` (non-decreasing across calls), and after
/// **every** input drains it:
///
/// 1. call one input method: [`handle_message`](Node::handle_message),
///    [`handle_timeout`](Node::handle_timeout), or a command
///    ([`join`](Node::join), [`leave`](Node::leave));
/// 2. call [`poll_output`](Node::poll_output) until it returns `None`,
///    sending each [`Output::Send`] and handing each [`Output::Event`] to
///    the application, in the order given;
/// 3. call [`poll_timeout`](Node::poll_timeout) and arrange to call
///    `handle_timeout` at that time (or earlier: an early call does nothing
///    harmful); `None` means no timer is needed (the node has left).
///
/// Same seed, same inputs: same outputs, bit for bit.
///
/// # Methods
///
/// - construction: [`Node::new`];
/// - getters: [`id`](Node::id), [`incarnation`](Node::incarnation),
///   [`config`](Node::config), [`members`](Node::members),
///   [`member`](Node::member), [`alive_members`](Node::alive_members),
///   [`live_members`](Node::live_members), [`health`](Node::health),
///   [`stats`](Node::stats), [`membership_summary`](Node::membership_summary),
///   [`has_left`](Node::has_left);
/// - inputs: [`handle_message`](Node::handle_message),
///   [`handle_timeout`](Node::handle_timeout);
/// - commands: [`join`](Node::join), [`leave`](Node::leave);
/// - outputs: [`poll_output`](Node::poll_output),
///   [`poll_timeout`](Node::poll_timeout).
#[derive(Debug)]
pub struct Node {
    me: NodeId,
    my_name: Arc<str>,
    incarnation: Incarnation,
    config: Config,
    rng: ChaCha8Rng,
    members: Members,
    broadcasts: BroadcastQueue<MemberUpdate>,
    store: Store,
    lamport: u64,
    metadata: Option<Metadata>,
    /// Fresh data waiting to be gossiped (or, in tree mode, announced).
    data: BroadcastQueue<Datum>,
    tree: data::Tree,
    queries: Vec<data::PendingQuery>,
    next_query: u32,
    /// When we last pulled each owner's missing versions.
    pulled: BTreeMap<Arc<str>, Time>,
    /// Ordered by name, so expiry order is deterministic.
    suspicions: BTreeMap<Arc<str>, Suspicion>,
    health: LocalHealth,
    probe: Probe,
    relays: Vec<Relay>,
    next_seq: u32,
    next_probe: Time,
    next_gossip: Time,
    next_push_pull: Time,
    /// Until when the network counts as lossy: set by a probe that missed
    /// its ack. Meanwhile each probe period adds a push-pull, so that
    /// anti-entropy repairs every loss within one push-pull interval.
    lossy_until: Time,
    /// Dead and left members in the order they are due to be forgotten.
    reap: VecDeque<(Time, Arc<str>, Incarnation)>,
    joining: Option<Joining>,
    /// After a join, push-pulls come early and back off (doubling from one
    /// probe period) until they reach `push_pull_interval`: a node that
    /// joined during a burst of joins catches up with the members whose
    /// rumours ran out before it was known to their spreaders.
    catch_up: Option<Duration>,
    status: Status,
    outputs: VecDeque<Output>,
    stats: Stats,
}

/// The longest wait between join attempts, in probe periods.
const JOIN_BACKOFF_MAX_PERIODS: u32 = 2;

/// Outputs' room kept between bursts.
const OUTPUTS_KEPT: usize = 64;

impl Node {
    /// A node named `id` at incarnation `incarnation` (0 for a first start;
    /// a restart should use a higher one than its previous life), with its
    /// own RNG seeded from `seed`. It knows only itself until
    /// [`join`](Node::join).
    pub fn new(
        id: NodeId,
        incarnation: Incarnation,
        config: Config,
        seed: u64,
        now: Time,
    ) -> Result<Node, Error> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut members = Members::new(&id, config.peer_selection);
        members.set(
            &id,
            Entry {
                incarnation,
                state: MemberState::Alive,
                since: now,
            },
            &mut rng,
        );
        let first = |period: Duration, rng: &mut ChaCha8Rng| match config.timer_phase {
            TimerPhase::Random => {
                now + Duration::from_micros(rng.random_range(0..period.as_micros().max(1) as u64))
            }
            TimerPhase::Aligned => {
                let p = period.as_micros().max(1) as u64;
                Time::from_micros(now.as_micros().div_ceil(p) * p)
            }
        };
        let next_probe = first(config.probe_period, &mut rng);
        let next_gossip = first(config.gossip_interval, &mut rng);
        let next_push_pull = first(config.push_pull_interval, &mut rng);
        let limits = Limits {
            max_key_len: config.max_key_len,
            max_value_len: config.max_value_len,
            max_keys: config.max_keys_per_namespace,
        };
        let store = Store::new(
            Arc::from(id.name()),
            incarnation.0,
            limits,
            config.tombstone_grace,
        );
        Ok(Node {
            store,
            lamport: 0,
            metadata: None,
            data: BroadcastQueue::default(),
            tree: data::Tree::default(),
            queries: Vec::new(),
            next_query: 0,
            pulled: BTreeMap::new(),
            my_name: Arc::from(id.name()),
            me: id,
            incarnation,
            health: LocalHealth::new(config.health_max),
            config,
            rng,
            members,
            broadcasts: BroadcastQueue::default(),
            suspicions: BTreeMap::new(),
            probe: Probe::Idle,
            relays: Vec::new(),
            next_seq: 0,
            next_probe,
            next_gossip,
            next_push_pull,
            lossy_until: Time::ZERO,
            reap: VecDeque::new(),
            joining: None,
            catch_up: None,
            status: Status::Running,
            outputs: VecDeque::new(),
            stats: Stats::default(),
        })
    }

    // ----- getters -------------------------------------------------------

    /// This node's identity.
    pub fn id(&self) -> &NodeId {
        &self.me
    }

    /// This node's current incarnation.
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every member this node knows (itself included, dead and left ones
    /// until reaped), ordered by name.
    pub fn members(&self) -> impl Iterator<Item = Member> + '_ {
        self.members.iter().map(|(id, e)| Members::snapshot(id, e))
    }

    /// What this node believes about the member named `name`.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.members
            .get(name)
            .map(|(id, e)| Members::snapshot(id, e))
    }

    /// Members believed alive, this node included.
    pub fn alive_members(&self) -> usize {
        self.members.alive_others() + usize::from(self.status == Status::Running)
    }

    /// Members believed alive or suspect, this node included.
    pub fn live_members(&self) -> usize {
        self.members.live_others() + usize::from(self.status == Status::Running)
    }

    /// The local health score (0 is healthy; each point stretches probing).
    pub fn health(&self) -> u32 {
        self.health.score()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Rumours waiting in the broadcast queue.
    pub fn pending_broadcasts(&self) -> usize {
        self.broadcasts.len()
    }

    /// An order-independent hash of every (name, incarnation, state) this
    /// node holds. Two nodes with equal summaries hold the same membership
    /// (up to a 2^-64 collision), so a periodic push-pull stops at the summary.
    pub fn membership_summary(&self) -> u64 {
        self.members.summary()
    }

    /// Whether the node has left (it then ignores every input).
    pub fn has_left(&self) -> bool {
        self.status == Status::Left
    }

    // ----- inputs --------------------------------------------------------

    /// Handle a message from the node reachable at `from`.
    ///
    /// Any message is accepted: news that loses to what the node knows is
    /// counted and ignored, news that claims this node is suspect or dead is
    /// refuted. Nothing here panics.
    pub fn handle_message(&mut self, now: Time, from: SocketAddr, msg: Message) {
        if self.status == Status::Left {
            self.stats.ignored_after_leave += 1;
            return;
        }
        self.stats.messages_in += 1;
        match msg {
            Message::Ping(p) => {
                self.apply_rumours(now, &p.updates);
                if &*p.target != self.me.name() {
                    self.stats.misdirected += 1;
                    return;
                }
                let ack = self.ack(p.seq);
                self.send(from, ack);
            }
            Message::PingReq(p) => {
                self.apply_rumours(now, &p.updates);
                let seq = self.take_seq();
                let ping = self.ping(seq, &p.target);
                self.send(p.target.addr(), ping);
                let wait = self.health.scale(self.config.probe_timeout) * 4 / 5;
                self.relays.push(Relay {
                    seq,
                    requester: from,
                    requester_seq: p.seq,
                    deadline: now + wait,
                });
            }
            Message::Ack(a) => {
                self.apply_rumours(now, &a.updates);
                self.on_ack(a.seq);
            }
            Message::Nack(n) => match &mut self.probe {
                Probe::Indirect { seq, nacks, .. } if *seq == n.seq => *nacks += 1,
                _ => self.stats.stale_acks += 1,
            },
            Message::Gossip(g) => self.apply_rumours(now, &g.updates),
            Message::PushPull(p) => self.on_push_pull(now, from, p),
            Message::Rumours(r) => self.on_rumours(now, from, r),
            Message::Eager(e) => self.on_data(now, from, e.data, true),
            Message::IHave(i) => self.on_ihave(now, from, i.ids),
            Message::Graft(g) => self.on_graft(now, from, g.ids),
            Message::Prune(_) => self.on_prune(now, from),
            Message::Query(q) => self.on_query(from, q),
            Message::QueryReply(r) => self.on_query_reply(from, r),
        }
    }

    /// Run every timer due at or before `now`: probe steps, gossip rounds,
    /// push-pull, relay nacks, suspicion expiry, reaping, join retries.
    pub fn handle_timeout(&mut self, now: Time) {
        match self.status {
            Status::Left => return,
            Status::Leaving(_) => {
                if now >= self.next_gossip {
                    self.next_gossip = advance(self.next_gossip, self.config.gossip_interval, now);
                    self.gossip_round(now);
                    if let Status::Leaving(left) = self.status {
                        self.status = if left <= 1 {
                            Status::Left
                        } else {
                            Status::Leaving(left - 1)
                        };
                    }
                    if self.status == Status::Left {
                        self.go_quiet();
                    }
                }
                return;
            }
            Status::Running => {}
        }
        self.expire_relays(now);
        if let Probe::Direct { deadline, .. } = self.probe {
            if now >= deadline {
                // A probe without its ack: the network loses messages (or
                // the member is gone); the data plane repairs harder for a while.
                self.lossy_until = now + self.config.push_pull_interval;
                self.probe_indirectly();
            }
        }
        if now >= self.next_probe {
            self.conclude_probe(now);
            self.start_probe(now);
            if now < self.lossy_until {
                self.repair_round();
            }
        }
        if now >= self.next_gossip {
            self.next_gossip = advance(self.next_gossip, self.config.gossip_interval, now);
            self.gossip_round(now);
        }
        if now >= self.next_push_pull {
            self.next_push_pull = match self.catch_up {
                Some(gap) => {
                    let gap = gap * 2;
                    self.catch_up = (gap < self.config.push_pull_interval).then_some(gap);
                    now + gap.min(self.config.push_pull_interval)
                }
                None => advance(self.next_push_pull, self.config.push_pull_interval, now),
            };
            self.push_pull_round();
            self.expire_off_tree(now);
        }
        self.retry_join(now);
        self.expire_suspicions(now);
        self.reap_dead(now);
        self.data_timers(now);
    }

    // ----- commands ------------------------------------------------------

    /// Join a cluster through one or more seed addresses: a push-pull state
    /// sync with each, retried every one or two probe periods until one answers.
    pub fn join(&mut self, now: Time, seeds: &[SocketAddr]) -> Result<(), Error> {
        if self.status != Status::Running {
            return Err(Error::Left);
        }
        let seeds: Vec<SocketAddr> = seeds
            .iter()
            .copied()
            .filter(|s| *s != self.me.addr())
            .collect();
        if seeds.is_empty() {
            return Err(Error::NoSeeds);
        }
        for seed in &seeds {
            self.send_join(*seed);
        }
        let backoff = self.config.probe_period;
        if self.config.probe_period < self.config.push_pull_interval {
            self.catch_up = Some(self.config.probe_period);
            self.next_push_pull = now + self.config.probe_period;
        }
        self.joining = Some(Joining {
            seeds,
            next: now + backoff,
            backoff,
        });
        Ok(())
    }

    /// Take in a membership list as a state sync would, without sending
    /// anything: unknown members are added, known ones merged by the usual
    /// precedence, and none of it is rumoured on (it is old news to the
    /// rest). News about this node itself is handled as from a peer (a
    /// stale suspicion is refuted). For a driver that starts a node with a
    /// view it already has, such as a simulator starting a formed cluster.
    pub fn learn_members(&mut self, now: Time, members: &[Member]) {
        if self.status == Status::Left {
            return;
        }
        let me = self.me.addr();
        self.members.begin_bulk();
        for m in members {
            let u = MemberUpdate {
                id: m.id.clone(),
                incarnation: m.incarnation,
                state: m.state,
                by: None,
            };
            self.apply_update(now, &u, Some(me));
        }
        self.members.end_bulk(&mut self.rng);
    }

    /// Leave the cluster gracefully: announce `Left` for a few gossip rounds,
    /// then go quiet for good.
    pub fn leave(&mut self, now: Time) -> Result<(), Error> {
        if self.status != Status::Running {
            return Err(Error::Left);
        }
        self.status = Status::Leaving(LEAVE_ROUNDS);
        self.joining = None;
        self.probe = Probe::Idle;
        self.set_self(now, MemberState::Left);
        // The first announcement goes out at once rather than at the next tick.
        self.gossip_round(now);
        Ok(())
    }

    // ----- outputs -------------------------------------------------------

    /// The next output, in the order produced.
    pub fn poll_output(&mut self) -> Option<Output> {
        let out = self.outputs.pop_front();
        if out.is_none() && self.outputs.capacity() > OUTPUTS_KEPT {
            // A burst (a state sync with thousands of members) grew the
            // queue; give the memory back rather than hold it for good.
            self.outputs.shrink_to(OUTPUTS_KEPT);
        }
        out
    }

    /// When [`handle_timeout`](Node::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        match self.status {
            Status::Left => return None,
            Status::Leaving(_) => return Some(self.next_gossip),
            Status::Running => {}
        }
        let mut t = self
            .next_probe
            .min(self.next_gossip)
            .min(self.next_push_pull);
        if let Probe::Direct { deadline, .. } = self.probe {
            t = t.min(deadline);
        }
        if let Some(j) = &self.joining {
            t = t.min(j.next);
        }
        for r in &self.relays {
            t = t.min(r.deadline);
        }
        for s in self.suspicions.values() {
            t = t.min(s.deadline);
        }
        if let Some((at, _, _)) = self.reap.front() {
            t = t.min(*at);
        }
        if let Some(d) = self.data_deadline() {
            t = t.min(d);
        }
        Some(t)
    }

    // ----- probing -------------------------------------------------------

    fn take_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    fn start_probe(&mut self, now: Time) {
        let period = self.health.scale(self.config.probe_period);
        self.next_probe = if self.health.score() == 0 {
            advance(self.next_probe, period, now)
        } else {
            now + period
        };
        let Some(target) = self.members.next_probe_target(&mut self.rng) else {
            return;
        };
        let incarnation = self
            .members
            .get(target.name())
            .map_or(Incarnation(0), |(_, e)| e.incarnation);
        let seq = self.take_seq();
        let ping = self.ping(seq, &target);
        self.stats.probes += 1;
        self.send(target.addr(), ping);
        self.probe = Probe::Direct {
            target,
            incarnation,
            seq,
            deadline: now + self.health.scale(self.config.probe_timeout),
        };
    }

    fn probe_indirectly(&mut self) {
        let Probe::Direct {
            target,
            incarnation,
            seq,
            ..
        } = std::mem::replace(&mut self.probe, Probe::Idle)
        else {
            return;
        };
        let relays =
            self.members
                .random_live(self.config.indirect_probes, &[target.name()], &mut self.rng);
        for relay in &relays {
            let mut msg = PingReq {
                seq,
                target: target.clone(),
                updates: Vec::new(),
            };
            let base = wire::message_len(&self.me.addr(), &Message::PingReq(msg.clone()));
            self.piggyback(base, &mut msg.updates);
            self.send(relay.addr(), Message::PingReq(msg));
        }
        self.probe = Probe::Indirect {
            target,
            incarnation,
            seq,
            expected_nacks: relays.len() as u32,
            nacks: 0,
        };
    }

    fn on_ack(&mut self, seq: u32) {
        match &self.probe {
            Probe::Direct { seq: s, .. } | Probe::Indirect { seq: s, .. } if *s == seq => {
                self.probe = Probe::Idle;
                self.health.apply(-1);
                return;
            }
            _ => {}
        }
        if let Some(i) = self.relays.iter().position(|r| r.seq == seq) {
            let relay = self.relays.swap_remove(i);
            let ack = self.ack(relay.requester_seq);
            self.send(relay.requester, ack);
            return;
        }
        self.stats.stale_acks += 1;
    }

    /// End the previous probe period: a probe still unanswered fails, and the
    /// target becomes suspect. Missing nacks mean the trouble may be ours
    /// (Lifeguard), so they raise the local health score.
    fn conclude_probe(&mut self, now: Time) {
        if matches!(self.probe, Probe::Direct { .. }) {
            self.probe_indirectly();
        }
        let Probe::Indirect {
            target,
            incarnation,
            expected_nacks,
            nacks,
            ..
        } = std::mem::replace(&mut self.probe, Probe::Idle)
        else {
            return;
        };
        self.stats.failed_probes += 1;
        let delta = if expected_nacks > 0 {
            expected_nacks.saturating_sub(nacks) as i32
        } else {
            1
        };
        self.health.apply(delta);
        let Some((id, e)) = self.members.get(target.name()) else {
            return;
        };
        // A suspect that fails our own probe too gets our confirmation.
        if !e.state.is_live() || id.addr() != target.addr() || e.incarnation != incarnation {
            return;
        }
        let update = MemberUpdate {
            id: id.clone(),
            incarnation: e.incarnation,
            state: MemberState::Suspect,
            by: Some(self.my_name.clone()),
        };
        self.apply_update(now, &update, None);
    }

    fn expire_relays(&mut self, now: Time) {
        let mut i = 0;
        while i < self.relays.len() {
            if self.relays[i].deadline <= now {
                let r = self.relays.swap_remove(i);
                self.send(
                    r.requester,
                    Message::Nack(Nack {
                        seq: r.requester_seq,
                    }),
                );
            } else {
                i += 1;
            }
        }
    }

    // ----- rumours -------------------------------------------------------

    fn ping(&mut self, seq: u32, target: &NodeId) -> Message {
        let mut msg = Ping {
            seq,
            target: Arc::from(target.name()),
            updates: Vec::new(),
        };
        let base = wire::message_len(&self.me.addr(), &Message::Ping(msg.clone()));
        self.piggyback(base, &mut msg.updates);
        Message::Ping(msg)
    }

    fn ack(&mut self, seq: u32) -> Message {
        let mut msg = Ack {
            seq,
            updates: Vec::new(),
        };
        let base = wire::message_len(&self.me.addr(), &Message::Ack(msg.clone()));
        self.piggyback(base, &mut msg.updates);
        Message::Ack(msg)
    }

    /// Fill the room left in a message of `base` bytes with rumours. The
    /// envelope's length prefix may grow by a few bytes as the body grows,
    /// so that slack is reserved.
    fn piggyback(&mut self, base: usize, out: &mut Vec<MemberUpdate>) {
        const LENGTH_PREFIX_SLACK: usize = 2;
        let budget = self
            .config
            .max_message_size
            .saturating_sub(base + LENGTH_PREFIX_SLACK);
        if budget == 0 || self.broadcasts.is_empty() {
            return;
        }
        let limit = self.config.retransmit_limit(self.members.live_others() + 1);
        self.broadcasts.pack(budget, limit, out);
    }

    fn gossip_round(&mut self, now: Time) {
        if self.status == Status::Running {
            self.data_round(now);
        }
        if self.broadcasts.is_empty() {
            return;
        }
        let peers = self.members.gossip_peers(
            self.config.fanout,
            self.config.peer_selection,
            &mut self.rng,
        );
        for peer in peers {
            let mut updates = Vec::new();
            let base = wire::message_len(
                &self.me.addr(),
                &Message::Gossip(Gossip {
                    updates: Vec::new(),
                }),
            );
            self.piggyback(base, &mut updates);
            if updates.is_empty() {
                break;
            }
            self.send(peer.addr(), Message::Gossip(Gossip { updates }));
        }
    }

    fn apply_rumours(&mut self, now: Time, updates: &[MemberUpdate]) {
        for u in updates {
            self.apply_update(now, u, None);
        }
    }

    fn rumour(&mut self, update: MemberUpdate) {
        self.broadcasts
            .push_update(update, self.config.max_broadcasts);
    }

    /// Apply one piece of news about a member, by the SWIM precedence rules.
    /// `sync_from` marks news from a push-pull sent by that address. There a
    /// peer's "dead" only makes us suspect (it may be stale; our own
    /// suspicion decides), and members we had not heard of are not rumoured
    /// on: they are old news to the sender, which holds the same state as
    /// everyone it synced with. Only the sender's own introduction (a join)
    /// is rumoured, by the one node that hears it first-hand.
    fn apply_update(&mut self, now: Time, u: &MemberUpdate, sync_from: Option<SocketAddr>) {
        if u.id.name() == self.me.name() {
            self.news_about_me(now, u);
            return;
        }
        let (incarnation, mut state) = (u.incarnation, u.state);
        let Some((held_id, held)) = self.members.get(u.id.name()) else {
            // Only an alive member can be introduced; news of the death or
            // suspicion of a stranger (perhaps one already reaped) is dropped.
            if state == MemberState::Alive {
                let spread = sync_from.is_none_or(|from| from == u.id.addr());
                self.transition(now, &u.id.clone(), incarnation, state, None, spread);
            } else {
                self.stats.stale_updates += 1;
            }
            return;
        };
        let held = *held;
        let held_id = held_id.clone();
        if held_id.addr() != u.id.addr() && (held.state.is_live() || state != MemberState::Alive) {
            self.stats.address_conflicts += 1;
            return;
        }
        if sync_from.is_some() && state == MemberState::Dead {
            state = MemberState::Suspect;
        }
        let by = || u.by.clone().unwrap_or_else(|| self.my_name.clone());
        if overrides(incarnation, state, held.incarnation, held.state) {
            let by = by();
            self.transition(now, &u.id, incarnation, state, Some(by), true);
        } else if state == MemberState::Suspect
            && held.state == MemberState::Suspect
            && incarnation == held.incarnation
        {
            let by = by();
            if let Some(s) = self.suspicions.get_mut(u.id.name()) {
                if s.confirm(&by) {
                    // Pass the confirmation on so others shorten their timers too.
                    self.rumour(MemberUpdate {
                        id: held_id,
                        incarnation,
                        state,
                        by: Some(by),
                    });
                    return;
                }
            }
            self.stats.stale_updates += 1;
        } else {
            self.stats.stale_updates += 1;
            if held.state == MemberState::Alive
                && state != MemberState::Alive
                && incarnation < held.incarnation
            {
                // Someone still spreads a suspicion or death that a refutation
                // already answered; it may have missed the refutation, so the
                // refutation goes round again.
                self.rumour(MemberUpdate {
                    id: held_id,
                    incarnation: held.incarnation,
                    state: MemberState::Alive,
                    by: None,
                });
            } else if sync_from.is_none() {
                let limit = self.config.retransmit_limit(self.members.live_others() + 1);
                self.broadcasts
                    .heard_again(u, self.config.retransmit_mult, limit);
            }
        }
    }

    /// Change our belief about a member, with its event, suspicion timer,
    /// reap schedule and rumour.
    fn transition(
        &mut self,
        now: Time,
        id: &NodeId,
        incarnation: Incarnation,
        state: MemberState,
        by: Option<Arc<str>>,
        spread: bool,
    ) {
        let previous = self.members.get(id.name()).map(|(_, e)| e.state);
        let entry = Entry {
            incarnation,
            state,
            since: now,
        };
        self.members.set(id, entry, &mut self.rng);
        let name: Arc<str> = Arc::from(id.name());
        if state != MemberState::Suspect {
            self.suspicions.remove(&name);
        }
        let snapshot = Members::snapshot(id, &entry);
        let event = match (previous, state) {
            (None, MemberState::Alive) => Some(Event::MemberJoined(snapshot)),
            (Some(MemberState::Dead | MemberState::Left), MemberState::Alive) => {
                Some(Event::MemberJoined(snapshot))
            }
            (Some(MemberState::Suspect), MemberState::Alive) => Some(Event::MemberAlive(snapshot)),
            (Some(MemberState::Alive), MemberState::Suspect) => {
                Some(Event::MemberSuspected(snapshot))
            }
            (Some(p), MemberState::Dead) if p.is_live() => Some(Event::MemberDied(snapshot)),
            (Some(p), MemberState::Left) if p != MemberState::Left => {
                Some(Event::MemberLeft(snapshot))
            }
            _ => None,
        };
        if state == MemberState::Suspect {
            let by = by.clone().unwrap_or_else(|| self.my_name.clone());
            let c = &self.config;
            self.suspicions.insert(
                name.clone(),
                Suspicion::new(
                    incarnation,
                    by,
                    now,
                    c.suspicion_confirmations,
                    c.suspicion_min,
                    c.suspicion_max,
                ),
            );
        }
        if matches!(state, MemberState::Dead | MemberState::Left) {
            self.data_forget_peer(id.addr());
            self.reap
                .push_back((now + self.config.dead_reap_after, name, incarnation));
        }
        if let Some(e) = event {
            self.outputs.push_back(Output::Event(e));
        }
        if spread {
            let by = match state {
                MemberState::Suspect | MemberState::Dead => {
                    by.or_else(|| Some(self.my_name.clone()))
                }
                _ => None,
            };
            self.rumour(MemberUpdate {
                id: id.clone(),
                incarnation,
                state,
                by,
            });
        }
    }

    /// News about this node: refute anything but "alive at our incarnation".
    fn news_about_me(&mut self, now: Time, u: &MemberUpdate) {
        if self.status != Status::Running {
            return;
        }
        if u.state == MemberState::Alive && u.incarnation <= self.incarnation {
            return;
        }
        if u.incarnation < self.incarnation {
            // Old news about a previous incarnation. Someone still spreads
            // it, so someone may not have heard our refutation: say it again.
            self.stats.stale_updates += 1;
            if u.state != MemberState::Alive {
                self.rumour(self.self_update(MemberState::Alive));
            }
            return;
        }
        self.stats.refutations += 1;
        if u.state == MemberState::Suspect {
            // Lifeguard: being suspected hints that we are the slow one.
            self.health.apply(1);
        }
        self.incarnation = u.incarnation.next();
        self.set_self(now, MemberState::Alive);
    }

    fn set_self(&mut self, now: Time, state: MemberState) {
        let entry = Entry {
            incarnation: self.incarnation,
            state,
            since: now,
        };
        let me = self.me.clone();
        self.members.set(&me, entry, &mut self.rng);
        self.rumour(self.self_update(state));
    }

    fn self_update(&self, state: MemberState) -> MemberUpdate {
        MemberUpdate {
            id: self.me.clone(),
            incarnation: self.incarnation,
            state,
            by: None,
        }
    }

    fn expire_suspicions(&mut self, now: Time) {
        let due: Vec<(Arc<str>, Incarnation)> = self
            .suspicions
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(n, s)| (n.clone(), s.incarnation))
            .collect();
        for (name, incarnation) in due {
            self.suspicions.remove(&name);
            let Some((id, e)) = self.members.get(&name) else {
                continue;
            };
            if e.state == MemberState::Suspect && e.incarnation == incarnation {
                let id = id.clone();
                let by = Some(self.my_name.clone());
                self.transition(now, &id, incarnation, MemberState::Dead, by, true);
            }
        }
    }

    fn reap_dead(&mut self, now: Time) {
        while let Some((at, _, _)) = self.reap.front() {
            if *at > now {
                break;
            }
            let (_, name, incarnation) = self.reap.pop_front().expect("front exists");
            let still_gone = self
                .members
                .get(&name)
                .is_some_and(|(_, e)| !e.state.is_live() && e.incarnation == incarnation);
            if still_gone {
                self.members.remove(&name);
                self.broadcasts.forget(&name);
                self.store.remove(&name);
            }
        }
    }

    // ----- push-pull -----------------------------------------------------

    fn full_state(&self) -> Vec<MemberUpdate> {
        self.members
            .iter()
            .map(|(id, e)| MemberUpdate {
                id: id.clone(),
                incarnation: e.incarnation,
                state: e.state,
                by: match e.state {
                    MemberState::Suspect | MemberState::Dead => Some(self.my_name.clone()),
                    _ => None,
                },
            })
            .collect()
    }

    /// A push-pull message of `kind`, with full membership when `members`,
    /// our digest when `digest`, and `deltas`.
    fn push_pull_message(
        &self,
        kind: PushPullKind,
        members: bool,
        digest: bool,
        deltas: Vec<Delta>,
    ) -> PushPull {
        let members = match kind {
            PushPullKind::Join => vec![self.self_update(MemberState::Alive)],
            _ if members => self.full_state(),
            _ => Vec::new(),
        };
        let metadata = (digest || !deltas.is_empty())
            .then(|| self.metadata.clone())
            .flatten();
        PushPull {
            kind,
            summary: self.members.summary(),
            members,
            state_summary: self.state_summary(),
            digest: digest.then(|| self.store.digest()),
            deltas,
            metadata,
        }
    }

    /// Room left for deltas in a push-pull message already `used` bytes long.
    fn delta_budget(&self, used: usize) -> usize {
        self.config.max_message_size.saturating_sub(used + 16)
    }

    fn send_join(&mut self, seed: SocketAddr) {
        let msg = self.push_pull_message(PushPullKind::Join, false, true, Vec::new());
        self.send(seed, Message::PushPull(msg));
    }

    fn retry_join(&mut self, now: Time) {
        let Some(j) = &mut self.joining else { return };
        if now < j.next {
            return;
        }
        // A node outside the cluster has nothing better to do than knock
        // again, and on a lossy network each try fails with the chance
        // that the request or the answer is lost: doubling up to the
        // push-pull interval left 2 of 1,000 joiners out for 15 s at
        // 20% loss. Two probe periods at most.
        j.backoff = (j.backoff * 2).min(self.config.probe_period * JOIN_BACKOFF_MAX_PERIODS);
        j.next = now + j.backoff;
        let seeds = j.seeds.clone();
        for seed in seeds {
            self.send_join(seed);
        }
    }

    /// Open a periodic exchange with one live member and, while any member
    /// is dead, with one random dead member too: if it is back (a healed
    /// partition), the exchange reunites the two sides before its entry is
    /// reaped. Each opening is only a summary, so the probe of the dead costs
    /// a few dozen bytes a round.
    fn push_pull_round(&mut self) {
        let dead: Vec<usize> = (0..self.reap.len())
            .filter(|&i| {
                let name = &self.reap[i].1;
                self.members
                    .get(name)
                    .is_some_and(|(_, e)| e.state == MemberState::Dead)
            })
            .collect();
        let mut peers = self
            .members
            .random_live(self.config.push_pull_peers, &[], &mut self.rng);
        if !dead.is_empty() {
            let name = self.reap[dead[self.rng.random_range(0..dead.len())]]
                .1
                .clone();
            peers.extend(self.members.get(&name).map(|(id, _)| id.clone()));
        }
        for peer in peers {
            let msg = self.push_pull_message(PushPullKind::Summary, false, false, Vec::new());
            self.send(peer.addr(), Message::PushPull(msg));
        }
    }

    /// While the network is lossy: one extra push-pull opening, of
    /// namespaces only, with one random live member. It costs a summary when
    /// the two agree.
    fn repair_round(&mut self) {
        if let Some(peer) = self.members.random_live(1, &[], &mut self.rng).pop() {
            // No membership summary: namespaces only. Membership has its
            // own repair, and under loss its summaries rarely agree.
            let msg = PushPull {
                summary: 0,
                ..self.push_pull_message(PushPullKind::Summary, false, false, Vec::new())
            };
            self.send(peer.addr(), Message::PushPull(msg));
        }
    }

    /// One step of a push-pull exchange. Membership and namespaces are
    /// compared by summary and exchanged only where they differ:
    ///
    /// ```text
    /// A -> B  Summary  {summaries}
    /// B -> A  Sync     {members if they differ, digest if states differ}
    /// A -> B  Reply    {members if asked, A's digest, deltas B lacks}
    /// B -> A  Deltas   {deltas A lacks}
    /// ```
    ///
    /// A join opens with `Join` {the joiner, its digest} and the seed
    /// answers as to a `Sync`.
    fn on_push_pull(&mut self, now: Time, from: SocketAddr, p: PushPull) {
        match p.kind {
            PushPullKind::Summary => {
                // A summary of 0 opens an exchange of namespaces only.
                let members = p.summary != 0 && p.summary != self.members.summary();
                let state = p.state_summary != self.state_summary();
                if members || state {
                    let msg =
                        self.push_pull_message(PushPullKind::Sync, members, state, Vec::new());
                    self.send(from, Message::PushPull(msg));
                }
            }
            PushPullKind::Join | PushPullKind::Sync => {
                self.merge_state(now, from, &p.members);
                self.merge_data(now, &p.deltas, p.metadata.as_ref());
                let members = p.kind == PushPullKind::Join || !p.members.is_empty();
                let digest = p.digest.is_some();
                let mut msg =
                    self.push_pull_message(PushPullKind::Reply, members, digest, Vec::new());
                if let Some(theirs) = &p.digest {
                    let used = wire::message_len(&self.me.addr(), &Message::PushPull(msg.clone()));
                    msg.deltas = self.deltas_for(theirs, self.delta_budget(used), false);
                }
                self.send(from, Message::PushPull(msg));
            }
            PushPullKind::Reply => {
                self.merge_state(now, from, &p.members);
                self.merge_data(now, &p.deltas, p.metadata.as_ref());
                if let Some(theirs) = &p.digest {
                    let base =
                        self.push_pull_message(PushPullKind::Deltas, false, false, Vec::new());
                    let used = wire::message_len(&self.me.addr(), &Message::PushPull(base.clone()));
                    let deltas = self.deltas_for(theirs, self.delta_budget(used), false);
                    if !deltas.is_empty() || p.metadata != self.metadata {
                        let msg = PushPull {
                            metadata: self.metadata.clone(),
                            deltas,
                            ..base
                        };
                        self.send(from, Message::PushPull(msg));
                    }
                }
                if self
                    .joining
                    .as_ref()
                    .is_some_and(|j| j.seeds.contains(&from))
                    || self.members.live_others() > 0
                {
                    self.joining = None;
                }
            }
            PushPullKind::Deltas => {
                self.merge_data(now, &p.deltas, p.metadata.as_ref());
            }
            PushPullKind::Pull => {
                let Some(theirs) = &p.digest else { return };
                let base = self.push_pull_message(PushPullKind::Deltas, false, false, Vec::new());
                let used = wire::message_len(&self.me.addr(), &Message::PushPull(base.clone()));
                let deltas = self.deltas_for(theirs, self.delta_budget(used), true);
                if !deltas.is_empty() {
                    let msg = PushPull { deltas, ..base };
                    self.send(from, Message::PushPull(msg));
                }
            }
        }
    }

    fn merge_state(&mut self, now: Time, from: SocketAddr, members: &[MemberUpdate]) {
        for u in members {
            self.apply_update(now, u, Some(from));
        }
    }

    // ----- plumbing ------------------------------------------------------

    fn send(&mut self, to: SocketAddr, msg: Message) {
        self.stats.messages_out += 1;
        self.outputs.push_back(Output::Send { to, msg });
    }

    fn go_quiet(&mut self) {
        self.suspicions.clear();
        self.relays.clear();
        self.probe = Probe::Idle;
    }
}

/// The next tick of a periodic timer: one period on, unless the driver was
/// so late that it would already be due again.
fn advance(at: Time, period: Duration, now: Time) -> Time {
    let next = at + period;
    if next <= now {
        now + period
    } else {
        next
    }
}
