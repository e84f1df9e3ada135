//! The protocol state machine of one node, one part per mechanism:
//!
//! - [`probe`]: SWIM's direct probe, ping-req relay and nack, and
//!   Lifeguard's local health;
//! - [`membership`]: the precedence rules, suspicion, refutation, reaping
//!   and leave;
//! - [`gossip`]: the gossip round: membership rumours, and data by the
//!   periodic push/pull modes;
//! - [`plumtree`]: the broadcast tree: eager push, prune, lazy announcement,
//!   graft, adoption;
//! - [`push_pull`]: anti-entropy exchanges and the join;
//! - [`replicas`]: namespaces, metadata and what applying data means;
//! - [`query`]: fresh reads from a key's owner;
//! - [`outbox`]: the context each part works in and the batching outbox;
//!   [`timers`]: what the node waits for. What the node reports is in
//!   [`crate::events`].
//!
//! [`Node`] owns one of each and passes each the others it needs; the data
//! path between them (receipt, spreading, adoption) is in [`dissemination`].

mod dissemination;
mod gossip;
mod membership;
mod outbox;
mod paging;
mod plumtree;
mod probe;
mod push_pull;
mod query;
mod replicas;
mod timers;

use crate::events::{Output, Stats};

use std::net::SocketAddr;
use std::sync::Arc;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use self::gossip::Gossiper;
use self::membership::{Aftermath, Heard, Membership, Status};
use self::outbox::{Ctx, Outbox};
use self::plumtree::Plumtree;
use self::probe::Prober;
use self::push_pull::AntiEntropy;
use self::query::Queries;
use self::replicas::Replicas;
use crate::config::{Config, Dissemination};
use crate::error::Error;
use crate::history::Explanation;
use crate::identity::{record_statement, Checks, Identity, PublicKey, Signature, Verified};
use crate::member::{Incarnation, Member, NodeId};
use crate::message::{
    Datum, Delta, DigestEntry, MemberUpdate, Message, Metadata, OwnNamespace, Record,
};
use crate::store::Entry;
use crate::time::Time;

/// Mixed into a node's seed for the stream that keys the hashes of its
/// membership table and rumour queues.
const TABLE_KEY_STREAM: u64 = 0x6d65_6d62_6572_7321;

/// One rumour node's protocol state machine.
///
/// # Contract
///
/// The node does no I/O and reads no clock. The driver feeds it inputs, each
/// carrying the current time `now` (non-decreasing across calls), and
/// drains it before it waits:
///
/// 1. call an input method: [`handle_message`](Node::handle_message),
///    [`handle_timeout`](Node::handle_timeout), or a command;
/// 2. call [`poll_output`](Node::poll_output) until it returns `None`,
///    sending each [`Output::Send`] and handing each [`Output::Event`] to
///    the application, in the order given;
/// 3. call [`poll_timeout`](Node::poll_timeout) and arrange to call
///    `handle_timeout` at that time (or earlier: an early call does nothing
///    harmful); `None` means no timer is needed (the node has left).
///
/// A driver may feed several inputs that are already waiting before it
/// drains (the network driver takes up to 64 under a backlog), but it never
/// waits with outputs pending: [`is_drained`](Node::is_drained) is its check.
/// The messages queued for one peer between two drains are batched: tree
/// pushes become one [`Eager`](crate::Eager) message, and announcements one
/// [`IHave`](crate::IHave), up to `max_message_size`. What `poll_output`
/// hands out is exactly what goes on the wire.
///
/// Same seed, same inputs: same outputs, bit for bit.
///
/// # Methods
///
/// - construction: [`new`](Node::new);
/// - getters: [`id`](Node::id), [`incarnation`](Node::incarnation),
///   [`config`](Node::config), [`members`](Node::members),
///   [`member`](Node::member), [`explain`](Node::explain),
///   [`alive_members`](Node::alive_members),
///   [`live_members`](Node::live_members), [`health`](Node::health),
///   [`stats`](Node::stats), [`pending_broadcasts`](Node::pending_broadcasts),
///   [`membership_summary`](Node::membership_summary),
///   [`has_left`](Node::has_left), [`get`](Node::get), [`list`](Node::list),
///   [`metadata`](Node::metadata), [`state_summary`](Node::state_summary),
///   [`digest`](Node::digest), [`namespace_version`](Node::namespace_version),
///   [`owners`](Node::owners), [`eager_links`](Node::eager_links);
/// - inputs: [`handle_message`](Node::handle_message),
///   [`handle_timeout`](Node::handle_timeout);
/// - commands: [`join`](Node::join), [`learn_members`](Node::learn_members),
///   [`leave`](Node::leave), [`put`](Node::put), [`put_in`](Node::put_in),
///   [`delete`](Node::delete), [`send_event`](Node::send_event),
///   [`publish_metadata`](Node::publish_metadata),
///   [`query_fresh`](Node::query_fresh);
/// - outputs, in this order before the driver waits:
///   [`poll_output`](Node::poll_output) until `None`, then
///   [`poll_timeout`](Node::poll_timeout); [`is_drained`](Node::is_drained).
#[derive(Debug)]
pub struct Node {
    cx: Ctx,
    membership: Membership,
    probe: Prober,
    gossip: Gossiper,
    anti_entropy: AntiEntropy,
    replicas: Replicas,
    tree: Plumtree,
    queries: Queries,
}

impl Node {
    /// A node named `id` at incarnation `incarnation` (0 for a first start;
    /// a restart should use a higher one than its previous life), with its
    /// own RNG seeded from `seed`. It knows only itself until
    /// [`join`](Node::join).
    ///
    /// Its key pair is drawn from `seed` ([`Identity::from_seed`]), as a
    /// simulated node's is; a node with a stored key starts with
    /// [`with_identity`](Node::with_identity).
    pub fn new(
        id: NodeId,
        incarnation: Incarnation,
        config: Config,
        seed: u64,
        now: Time,
    ) -> Result<Node, Error> {
        let identity = Identity::from_seed(seed);
        Node::with_identity(id, identity, incarnation, config, seed, now)
    }

    /// A node as [`new`](Node::new) makes it, signing with `identity`.
    pub fn with_identity(
        id: NodeId,
        identity: Identity,
        incarnation: Incarnation,
        config: Config,
        seed: u64,
        now: Time,
    ) -> Result<Node, Error> {
        config.validate()?;
        let mut cx = Ctx {
            now,
            me: id,
            config,
            identity,
            verified: Verified::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            stats: Stats::default(),
            out: Outbox::default(),
            health: 0,
        };
        // The order of construction is the order of RNG draws. The keys of
        // the hashes of the membership table and the rumour queues come
        // from a stream of their own, so that they draw nothing from the
        // node's.
        let mut keys = ChaCha8Rng::seed_from_u64(seed ^ TABLE_KEY_STREAM);
        let membership = Membership::new(&mut cx, incarnation, keys.next_u64());
        let probe = Prober::new(&mut cx);
        let gossip = Gossiper::new(&mut cx, keys.next_u64());
        let anti_entropy = AntiEntropy::new(&mut cx);
        let replicas = Replicas::new(&cx, incarnation.0);
        Ok(Node {
            cx,
            membership,
            probe,
            gossip,
            anti_entropy,
            replicas,
            tree: Plumtree::default(),
            queries: Queries::default(),
        })
    }

    /// Remember checked signatures in `verified`, which other nodes of this
    /// process may share (the simulator shares one among all its nodes, so
    /// a statement heard by a thousand nodes is verified once). It changes
    /// no outcome: only signatures that verified are remembered.
    pub fn share_verified(&mut self, verified: Verified) {
        self.cx.verified = verified;
    }

    /// Check ahead, as one batch, the signatures on the records `msgs`
    /// carry for the owners whose key this node holds, and on the members'
    /// signed words they carry that this node does not hold yet, so that
    /// taking the messages in finds them already checked. A batch costs
    /// about half as much a signature as checking them one by one; a fresh
    /// put travels as a one-record delta and a join as one word, and a
    /// join's answer brings every member's word, so a driver calls this
    /// first with what it takes in at once, one message or several.
    ///
    /// It changes nothing but the memory of checked signatures: if any
    /// signature of the batch fails, none is remembered, and each is
    /// checked on its own when its message is taken in (and refused, if it
    /// fails).
    pub fn check_ahead<'a>(&self, msgs: impl IntoIterator<Item = &'a Message>) {
        let mut deltas: Vec<&Delta> = Vec::new();
        let mut statements: Vec<(PublicKey, Vec<u8>, Signature)> = Vec::new();
        let data_deltas = |data: &'a [Datum], into: &mut Vec<&'a Delta>| {
            into.extend(data.iter().filter_map(|datum| match datum {
                Datum::Delta(d) => Some(d),
                Datum::Metadata(_) => None,
            }))
        };
        for msg in msgs {
            match msg {
                Message::Eager(m) => {
                    data_deltas(&m.data, &mut deltas);
                    self.membership.words_to_check(&m.updates, &mut statements);
                }
                Message::DataGossip(m) => data_deltas(&m.data, &mut deltas),
                Message::PushPull(m) => {
                    deltas.extend(&m.deltas);
                    self.membership.words_to_check(&m.members, &mut statements);
                }
                Message::Ping(m) => self.membership.words_to_check(&m.updates, &mut statements),
                Message::PingReq(m) => self.membership.words_to_check(&m.updates, &mut statements),
                Message::Ack(m) => self.membership.words_to_check(&m.updates, &mut statements),
                Message::Gossip(m) => self.membership.words_to_check(&m.updates, &mut statements),
                _ => {}
            }
        }
        for d in deltas {
            if &*d.owner == self.cx.me.name() {
                continue;
            }
            let Some(key) = self.membership.owner_key(&d.owner) else {
                continue;
            };
            for r in &d.records {
                let bytes = record_statement(&d.owner, d.generation, r.version, &r.record);
                statements.push((key, bytes, r.signature));
            }
        }
        // The same word often rides several messages of one batch.
        statements.sort_unstable_by_key(|a| a.2 .0);
        statements.dedup_by(|a, b| a.2 == b.2 && a.0 == b.0 && a.1 == b.1);
        if statements.len() < 2 {
            return;
        }
        let signed: Vec<(&PublicKey, &[u8], &Signature)> = statements
            .iter()
            .map(|(k, b, s)| (k, b.as_slice(), s))
            .collect();
        self.cx.verified.check_all(&signed);
    }

    // ----- getters -------------------------------------------------------

    /// This node's public key, which its membership carries.
    pub fn public_key(&self) -> PublicKey {
        self.cx.identity.public()
    }

    /// This node's identity.
    pub fn id(&self) -> &NodeId {
        &self.cx.me
    }

    /// This node's current incarnation.
    pub fn incarnation(&self) -> Incarnation {
        self.membership.incarnation()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cx.config
    }

    /// Every member this node knows (itself included, dead and left ones
    /// until reaped), ordered by name.
    pub fn members(&self) -> impl Iterator<Item = Member> + '_ {
        self.membership.members()
    }

    /// What this node believes about the member named `name`.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.membership.member(name)
    }

    /// Why this node holds `name` as it does: the member as held, and the
    /// changes of belief about it with their causes, oldest first (see
    /// [`crate::history`]). `None` if this node neither holds nor
    /// remembers it.
    pub fn explain(&self, name: &str) -> Option<Explanation> {
        let member = self.membership.member(name);
        let (changes, dropped) = self.membership.history(name).unwrap_or_default();
        if member.is_none() && changes.is_empty() {
            return None;
        }
        let wanted: std::collections::BTreeSet<SocketAddr> =
            changes.iter().filter_map(|c| c.cause.from()).collect();
        let peers = self
            .membership
            .members()
            .filter(|m| wanted.contains(&m.id.addr()))
            .map(|m| (m.id.addr(), m.id.name().to_string()))
            .collect();
        Some(Explanation {
            name: name.to_string(),
            member,
            changes,
            dropped,
            peers,
        })
    }

    /// Members believed alive, this node included.
    pub fn alive_members(&self) -> usize {
        self.membership.table().alive_others() + usize::from(self.membership.is_running())
    }

    /// Members believed alive or suspect, this node included.
    pub fn live_members(&self) -> usize {
        self.membership.table().live_others() + usize::from(self.membership.is_running())
    }

    /// The local health score (0 is healthy; each point stretches probing).
    pub fn health(&self) -> u32 {
        self.probe.health()
    }

    /// The signature checks this node paid for (the counters
    /// `signatures_verified` and `signatures_batched`), without copying the
    /// other counters.
    pub fn signature_checks(&self) -> Checks {
        self.cx.verified.checks()
    }

    /// News refused for its signature so far: `records_bad_signature`,
    /// `members_bad_signature` and `identity_conflicts` together (a driver
    /// reads it around each message, without copying every counter).
    pub fn refused_unsigned(&self) -> u64 {
        let s = &self.cx.stats;
        s.records_bad_signature + s.members_bad_signature + s.identity_conflicts
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        let checks = self.cx.verified.checks();
        Stats {
            signatures_verified: checks.single,
            signatures_batched: checks.batched,
            ..self.cx.stats.clone()
        }
    }

    /// Records this node holds over every namespace, its own included: one
    /// per key (a value or a tombstone) and one per user event not yet
    /// collected. It walks the namespaces, one step each: sample it, do not
    /// read it per message.
    pub fn held_records(&self) -> usize {
        self.replicas.store().held_records()
    }

    /// Rumours waiting in the broadcast queue.
    pub fn pending_broadcasts(&self) -> usize {
        self.membership.pending_rumours()
    }

    /// An order-independent hash of every (name, incarnation, state) this
    /// node holds. Two nodes with equal summaries hold the same membership
    /// (up to a 2^-64 collision), so a periodic push-pull stops at the summary.
    pub fn membership_summary(&self) -> u64 {
        self.membership.table().summary()
    }

    /// Whether the node has left (it then ignores every input).
    pub fn has_left(&self) -> bool {
        self.membership.status() == Status::Left
    }

    /// The live entry `key` of `owner`'s namespace, as this node holds it.
    pub fn get(&self, owner: &str, key: &str) -> Option<Entry> {
        self.replicas.get(owner, key)
    }

    /// Live entries of `owner`'s namespace whose keys start with `prefix`.
    pub fn list(&self, owner: &str, prefix: &str) -> Vec<Entry> {
        self.replicas.store().list(owner, prefix)
    }

    /// The cluster metadata register, if anyone has published.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.replicas.metadata()
    }

    /// Hash of the digest and the metadata register: equal on two nodes
    /// that hold the same versions of every namespace and the same metadata.
    pub fn state_summary(&self) -> u64 {
        self.replicas.state_summary()
    }

    /// The scuttlebutt digest: the version held of every namespace.
    pub fn digest(&self) -> Vec<DigestEntry> {
        self.replicas.store().digest()
    }

    /// (generation, version) held of `owner`'s namespace.
    pub fn namespace_version(&self, owner: &str) -> Option<(u32, u64)> {
        self.replicas.store().version(owner)
    }

    /// This node's own namespace: its generation, version and horizon, and
    /// the records written after version `after`, for a data dir to keep.
    /// A driver that commits what this returns before acknowledging a write
    /// loses no acknowledged write.
    pub fn own_namespace_since(&self, after: u64) -> OwnNamespace {
        self.replicas.store().own_since(after)
    }

    /// The reconnect list: members forgotten while dead, with the address
    /// a push-pull round knocks on now and then (see
    /// [`Config::reconnect_interval`]), in the order it is walked: (name,
    /// address, when it is next knocked on (about: the first push-pull
    /// round from then), until when it is kept).
    pub fn reconnect_list(&self) -> Vec<(Arc<str>, SocketAddr, Time, Time)> {
        let first = self.anti_entropy.reconnect_due();
        let every = self.cx.config.reconnect_interval;
        self.membership
            .reconnect_list()
            .into_iter()
            .enumerate()
            .map(|(k, (n, a, until))| (n.clone(), a, first + every * k as u32, until))
            .collect()
    }

    /// Owners whose namespaces this node holds (itself included).
    pub fn owners(&self) -> Vec<Arc<str>> {
        self.replicas.store().owners().cloned().collect()
    }

    /// The peers this node pushes fresh data to at once (tree mode), in
    /// address order: with every node's, the broadcast tree's links.
    pub fn eager_links(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.tree.eager_links()
    }

    // ----- inputs --------------------------------------------------------

    /// Handle a message from the node reachable at `from`.
    ///
    /// Any message is accepted: news that loses to what the node knows is
    /// counted and ignored, news that claims this node is suspect or dead is
    /// refuted. Nothing here panics.
    pub fn handle_message(&mut self, now: Time, from: SocketAddr, msg: Message) {
        self.cx.now = now;
        if self.membership.status() == Status::Left {
            self.cx.stats.ignored_after_leave += 1;
            return;
        }
        self.cx.stats.messages_in += 1;
        self.cx.stats.messages_in_by_kind[msg.kind_index()] += 1;
        self.membership.heard_from(&self.cx, from);
        match msg {
            Message::Ping(p) => {
                self.apply_rumours(from, &p.updates);
                self.probe
                    .on_ping(&mut self.cx, &mut self.membership, from, &p);
            }
            Message::PingReq(p) => {
                self.apply_rumours(from, &p.updates);
                self.probe
                    .on_ping_req(&mut self.cx, &mut self.membership, from, &p);
            }
            Message::Ack(a) => {
                self.apply_rumours(from, &a.updates);
                self.probe.on_ack(&mut self.cx, &mut self.membership, a.seq);
            }
            Message::Nack(n) => self.probe.on_nack(&mut self.cx, from, &n),
            Message::Gossip(g) => self.apply_rumours(from, &g.updates),
            Message::PushPull(p) => self.on_push_pull(from, *p),
            Message::DataGossip(r) => {
                self.on_data(from, r.data, false);
                if r.pull {
                    self.gossip
                        .answer_pull(&mut self.cx, &self.membership, from);
                }
            }
            Message::Eager(e) => {
                // Membership news first: a join ahead of the joiner's data.
                self.apply_rumours(from, &e.updates);
                self.on_data(from, e.data, true);
            }
            Message::IHave(i) => {
                let (r, m) = (&self.replicas, &self.membership);
                self.tree
                    .on_ihave(&self.cx, |id| r.holds(m, id), from, i.ids);
            }
            Message::Graft(g) => self.tree.on_graft(&mut self.cx, from, g.ids),
            Message::Prune(_) => self.tree.on_prune(&self.cx, from),
            Message::Query(q) => Queries::on_query(&mut self.cx, &self.replicas, from, &q),
            Message::QueryReply(r) => self.queries.on_reply(&mut self.cx, from, r),
        }
        self.push_news();
    }

    /// Push the membership news of the step just taken down the tree (after
    /// `tree.news_hold`).
    fn push_news(&mut self) {
        let (news, urgent) = self.membership.take_pushed();
        self.tree.hold_news(&mut self.cx, news);
        if urgent || !self.membership.is_running() {
            // A refutation or a leave is not held, nor is anything held
            // with it; and a node leaving runs no timer to push it later.
            self.tree.push_held(&mut self.cx);
        }
    }

    /// Run the timers due at or before `now`, in this order: relay nacks, the probe's ack timeout, the probe
    /// period, the gossip round, the push-pull round, join retries,
    /// suspicion expiry, reaping, tombstone collection, grafts, held membership
    /// news, announcements of data on a lossy network, queries.
    pub fn handle_timeout(&mut self, now: Time) {
        self.cx.now = now;
        match self.membership.status() {
            Status::Left => {}
            Status::Leaving(_) => {
                if now >= self.gossip.deadline() {
                    self.gossip.tick(&self.cx);
                    self.gossip_round();
                    if self.membership.leave_round_done() {
                        self.probe.stop();
                    }
                }
            }
            Status::Running => self.run_due(now),
        }
        self.push_news();
    }

    // ----- commands ------------------------------------------------------

    /// Join a cluster through one or more seed addresses: a push-pull state
    /// sync with each, retried every gossip interval for the first eight
    /// tries and then at doubling gaps (up to `join_retry_max_periods`
    /// probe periods) until one answers.
    pub fn join(&mut self, now: Time, seeds: &[SocketAddr]) -> Result<(), Error> {
        self.cx.now = now;
        if !self.membership.is_running() {
            return Err(Error::Left);
        }
        let me = self.cx.me.addr();
        let seeds: Vec<SocketAddr> = seeds.iter().copied().filter(|s| *s != me).collect();
        if seeds.is_empty() {
            return Err(Error::NoSeeds);
        }
        let (cx, m, r) = (&mut self.cx, &self.membership, &self.replicas);
        self.anti_entropy.join(cx, m, r, seeds);
        Ok(())
    }

    /// Take in a membership list as a state sync would, without sending
    /// anything: unknown members are added, known ones merged by the usual
    /// precedence, and none of it is rumoured on (it is old news to the
    /// rest). News about this node itself is handled as from a peer (a
    /// stale suspicion is refuted). For a driver that starts a node with a
    /// view it already has, such as a simulator starting a formed cluster.
    pub fn learn_members(&mut self, now: Time, members: &[Member]) {
        self.cx.now = now;
        if self.membership.status() == Status::Left {
            return;
        }
        for after in self.membership.learn(&mut self.cx, members) {
            self.follow_up(after);
        }
    }

    /// Open a push-pull with each of `addrs` (counted in
    /// `reconnect_attempts`), as a reconnect knock does: for a driver that
    /// tries its seeds again once the live view has lost members it once
    /// had. An address that answers as a member, or as a stranger that
    /// introduces itself, merges by the usual rules; this node's own
    /// address is skipped.
    pub fn knock(&mut self, now: Time, addrs: &[SocketAddr]) -> Result<(), Error> {
        self.cx.now = now;
        if !self.membership.is_running() {
            return Err(Error::Left);
        }
        let me = self.cx.me.addr();
        for addr in addrs.iter().filter(|a| **a != me) {
            let (cx, m, r) = (&mut self.cx, &self.membership, &self.replicas);
            self.anti_entropy.knock(cx, m, r, *addr);
        }
        Ok(())
    }

    /// Take back a reconnect list as a data dir kept it: (name, address,
    /// until when it is kept), as [`reconnect_list`](Node::reconnect_list)
    /// gave it. Entries already expired at `now`, or for a name this node
    /// knows as a member, are skipped; the list keeps its bound (the
    /// entries that expire first make room). Nothing is sent: the entries
    /// are knocked on every `reconnect_interval`, as any other.
    pub fn restore_reconnect(&mut self, now: Time, entries: &[(Arc<str>, SocketAddr, Time)]) {
        self.cx.now = now;
        self.membership.restore_reconnect(now, entries);
    }

    /// Forget a dead or departed member now rather than at its reap: it
    /// leaves the member table, its namespace is dropped, and it is taken
    /// off the reconnect list for good. Its name is then free, so a node
    /// that lost its key can come back under that name with a new one
    /// (the operator's way to give a name a new identity sooner; other
    /// members still hold the old identity until they forget or reap it).
    /// Returns whether the member was held. A live (alive or suspect)
    /// member, or this node, is refused with [`Error::StillLive`] and
    /// nothing changes.
    pub fn forget(&mut self, now: Time, name: &str) -> Result<bool, Error> {
        self.cx.now = now;
        let held = self.membership.forget(&self.cx, name)?;
        if held {
            self.replicas.forget(name);
        }
        Ok(held)
    }

    /// Leave the cluster gracefully: announce `Left` for a few gossip rounds,
    /// then go quiet for good.
    pub fn leave(&mut self, now: Time) -> Result<(), Error> {
        self.cx.now = now;
        if !self.membership.is_running() {
            return Err(Error::Left);
        }
        self.anti_entropy.stop();
        self.probe.idle();
        self.membership.leave(&mut self.cx);
        self.push_news();
        // The first announcement goes out at once rather than at the next tick.
        self.gossip_round();
        Ok(())
    }

    /// Take back this node's own namespace as a data dir saved it
    /// ([`own_namespace_since`](Node::own_namespace_since)`(0)`), before
    /// joining or writing: the same generation and version counter, so the
    /// node's next write continues the stream its replicas hold. Every
    /// record must carry this node's signature; on any fault
    /// ([`Error::BadSavedNamespace`]) nothing is restored.
    pub fn restore_namespace(&mut self, now: Time, saved: &OwnNamespace) -> Result<(), Error> {
        self.cx.now = now;
        self.replicas.restore(&mut self.cx, saved)
    }

    /// Write `value` under `key` in this node's namespace. Returns the
    /// write's version.
    pub fn put(&mut self, now: Time, key: &str, value: &[u8]) -> Result<u64, Error> {
        let value = Some(Arc::from(value));
        self.write(
            now,
            Record::Entry {
                key: Arc::from(key),
                value,
            },
        )
    }

    /// Write into the namespace named `namespace`, which must be this
    /// node's own: another owner's namespace is refused with
    /// [`Error::NotOwner`].
    pub fn put_in(
        &mut self,
        now: Time,
        namespace: &str,
        key: &str,
        value: &[u8],
    ) -> Result<u64, Error> {
        if namespace != self.cx.me.name() {
            return Err(Error::NotOwner(namespace.to_string()));
        }
        self.put(now, key, value)
    }

    /// Delete `key` from this node's namespace, leaving a tombstone.
    /// Returns the delete's version, or `None` if the key was not live.
    pub fn delete(&mut self, now: Time, key: &str) -> Result<Option<u64>, Error> {
        if self.replicas.get(self.cx.me.name(), key).is_none() {
            if key.is_empty() {
                return Err(Error::EmptyKey);
            }
            return Ok(None);
        }
        let key = Arc::from(key);
        self.write(now, Record::Entry { key, value: None })
            .map(Some)
    }

    /// Send a user event to every live node. Returns its Lamport time, which
    /// with this node's name identifies it.
    pub fn send_event(&mut self, now: Time, name: &str, payload: &[u8]) -> Result<u64, Error> {
        let lamport = self.replicas.next_lamport();
        self.write(
            now,
            Record::Event {
                name: Arc::from(name),
                payload: Arc::from(payload),
                lamport,
            },
        )?;
        Ok(lamport)
    }

    /// Publish the cluster metadata: it replaces the current register
    /// everywhere (last writer wins by Lamport time, then name).
    pub fn publish_metadata(&mut self, now: Time, value: &[u8]) -> Result<u64, Error> {
        self.cx.now = now;
        if !self.membership.is_running() {
            return Err(Error::Left);
        }
        let m = self.replicas.publish(&mut self.cx, value)?;
        let lamport = m.lamport;
        self.spread(Datum::Metadata(m), None);
        Ok(lamport)
    }

    /// Ask `owner` for its current value of `key`. The answer comes as
    /// [`Event::FreshRead`](crate::Event::FreshRead) with the returned id: from the owner, or after
    /// `query_timeout` from the local replica.
    pub fn query_fresh(&mut self, now: Time, owner: &str, key: &str) -> u32 {
        self.cx.now = now;
        let (cx, m, r) = (&mut self.cx, &self.membership, &self.replicas);
        self.queries.ask(cx, m, r, owner, key)
    }

    fn write(&mut self, now: Time, record: Record) -> Result<u64, Error> {
        self.cx.now = now;
        if !self.membership.is_running() {
            return Err(Error::Left);
        }
        let delta = self.replicas.write(&mut self.cx, record)?;
        let version = delta.to;
        self.spread(Datum::Delta(delta), None);
        Ok(version)
    }

    // ----- outputs -------------------------------------------------------

    /// The next output, in the order produced.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.cx.out.pop()
    }

    /// When [`handle_timeout`](Node::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        match self.membership.status() {
            Status::Left => None,
            Status::Leaving(_) => Some(self.gossip.deadline()),
            Status::Running => self.next_deadline(),
        }
    }

    /// Whether every output has been taken: the driver's check that it
    /// drained the node before waiting.
    pub fn is_drained(&self) -> bool {
        self.cx.out.is_empty()
    }

    // ----- membership news -----------------------------------------------

    fn apply_rumours(&mut self, from: SocketAddr, updates: &[MemberUpdate]) {
        if updates.len() > 1 {
            self.membership.read_ahead(updates);
        }
        for u in updates {
            self.apply_news(u, Heard::Rumour(from));
        }
    }

    fn apply_news(&mut self, u: &MemberUpdate, heard: Heard) {
        let after = self.membership.apply(&mut self.cx, u, heard);
        self.follow_up(after);
    }

    /// What a membership change means for the other parts.
    fn follow_up(&mut self, after: Aftermath) {
        if after.suspected {
            self.probe.suspected(&mut self.cx);
        }
        if let Some(addr) = after.departed {
            self.tree.forget_peer(addr);
        }
        if let Some(suspect) = after.final_probe {
            self.probe
                .final_probe(&mut self.cx, &mut self.membership, &suspect);
        }
    }

    /// The gossip round: the data half (while running), then rumours.
    fn gossip_round(&mut self) {
        if self.membership.is_running() {
            let (cx, m) = (&mut self.cx, &mut self.membership);
            match cx.config.dissemination {
                Dissemination::Tree => {
                    let lossy = self.probe.lossy(cx.now);
                    self.tree.announce(cx, m, &mut self.gossip, lossy);
                }
                _ => self.gossip.data_round(cx, m),
            }
        }
        self.gossip
            .spread_rumours(&mut self.cx, &mut self.membership);
    }
}
