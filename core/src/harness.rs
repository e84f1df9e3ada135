//! A multi-node test harness, in the spirit of quinn-proto's test `Pair` and
//! foca's tests: a few named [`Node`]s on a virtual clock and an explicit
//! network between them.
//!
//! Node `i` of the list (0-based) is at `127.0.0.1:1001 + i` and seeds its
//! RNG with `i`. Every message a node sends is logged and put in flight for
//! a fixed latency. [`Harness::step`] goes to the next deadline, the earliest
//! of every delivery in flight and every node's [`Node::poll_timeout`],
//! advances the clock there, runs that one input and drains the node's
//! [`Node::poll_output`] until `None`, as the node's contract asks. Ties go
//! to deliveries first, in the order sent, then to timers by node index.
//!
//! Tests steer the network with drop rules (a partition is one), hold rules
//! whose catch is released later, and hand-made messages from any address.
//! Only ordered collections are used: same test, same run, bit for bit.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::{
    Config, Event, FreshRead, Gossip, Graft, Identity, Incarnation, Member, MemberState,
    MemberUpdate, Message, Node, NodeId, Output, PushPull, PushPullKind, Time,
};

/// Most steps one drive call takes before it gives up: a loop that never
/// ends is a bug in the test or in the node.
const MAX_STEPS: usize = 100_000;

/// Matches a message by sender name, receiver name and content.
type Rule = Box<dyn Fn(&str, &str, &Message) -> bool>;

/// One message sent, as the log keeps it.
#[derive(Clone, Debug)]
pub(crate) struct Sent {
    /// When it was sent.
    pub at: Time,
    /// Sender and receiver names (an address that is no node's: as text).
    pub from: String,
    pub to: String,
    /// [`kind`] of the message.
    pub kind: &'static str,
    pub msg: Message,
    /// Lost to a drop rule.
    pub dropped: bool,
}

struct Packet {
    from: SocketAddr,
    to: SocketAddr,
    msg: Message,
}

struct Peer {
    name: String,
    node: Node,
    events: Vec<(Time, Event)>,
    /// A stopped node runs no timer and receives nothing: a crash.
    up: bool,
}

/// Named nodes, a virtual clock and the network between them.
#[derive(Default)]
pub(crate) struct Harness {
    /// The virtual clock.
    pub now: Time,
    /// Every message's time in flight.
    pub latency: Duration,
    peers: Vec<Peer>,
    flight: BTreeMap<(Time, u64), Packet>,
    next_packet: u64,
    drops: BTreeMap<u64, Rule>,
    holds: Vec<Rule>,
    held: Vec<Packet>,
    next_rule: u64,
    log: Vec<Sent>,
}

/// A message's kind for the log: [`Message::kind`], and for push-pull its
/// step too (`"push-pull/summary"`, `"push-pull/sync"`, ...).
pub(crate) fn kind(msg: &Message) -> &'static str {
    match msg {
        Message::PushPull(p) => match p.kind {
            PushPullKind::Join => "push-pull/join",
            PushPullKind::Summary => "push-pull/summary",
            PushPullKind::Sync => "push-pull/sync",
            PushPullKind::Reply => "push-pull/reply",
            PushPullKind::Deltas => "push-pull/deltas",
            PushPullKind::Pull => "push-pull/pull",
        },
        m => m.kind(),
    }
}

/// Whether `pattern` names `name`: equal, or `"*"`. For kinds, a prefix up
/// to a `/` matches too (`"push-pull"` matches `"push-pull/sync"`).
fn matches(pattern: &str, name: &str) -> bool {
    pattern == "*"
        || pattern == name
        || name
            .strip_prefix(pattern)
            .is_some_and(|r| r.starts_with('/'))
}

/// A rule matching messages of `kind` from `from` to `to` (see [`matches`]).
fn kind_rule(from: &str, to: &str, kind_: &str) -> impl Fn(&str, &str, &Message) -> bool {
    let (f, t, k) = (from.to_string(), to.to_string(), kind_.to_string());
    move |a, b, m| matches(&f, a) && matches(&t, b) && matches(&k, kind(m))
}

impl Harness {
    /// Nodes named `names` with [`Config::local`], each knowing all others.
    pub fn new(names: &[&str]) -> Harness {
        Harness::with_config(names, Config::local())
    }

    /// Nodes named `names` with `config`, each knowing all others as alive
    /// at incarnation 0 (by [`Node::learn_members`]: nothing is rumoured).
    pub fn with_config(names: &[&str], config: Config) -> Harness {
        let mut h = Harness::strangers(names, config);
        h.introduce_all(names);
        h
    }

    /// Nodes named `names` with `config` that know only themselves.
    pub fn strangers(names: &[&str], config: Config) -> Harness {
        let peers = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let addr = SocketAddr::from(([127, 0, 0, 1], 1001 + i as u16));
                let id = NodeId::new(name, addr).expect("valid name");
                let node = Node::new(id, Incarnation(0), config.clone(), i as u64, Time::ZERO)
                    .expect("valid config");
                let (name, events) = (name.to_string(), Vec::new());
                Peer {
                    name,
                    node,
                    events,
                    up: true,
                }
            })
            .collect();
        let latency = Duration::from_millis(1);
        Harness {
            peers,
            latency,
            ..Harness::default()
        }
    }

    // ----- nodes ---------------------------------------------------------

    fn index(&self, name: &str) -> usize {
        self.peers
            .iter()
            .position(|p| p.name == name)
            .unwrap_or_else(|| panic!("harness: no node named {name:?}"))
    }

    /// The address of node `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.node(name).id().addr()
    }

    /// Node `name`'s key pair (drawn from its seed, its place in the list).
    pub fn identity(&self, name: &str) -> Identity {
        Identity::from_seed(self.index(name) as u64)
    }

    /// Node `name`, to read.
    pub fn node(&self, name: &str) -> &Node {
        &self.peers[self.index(name)].node
    }

    /// Give node `name` a command (`put`, `query_fresh`, ...) at the current
    /// time, then drain its outputs.
    pub fn act<R>(&mut self, name: &str, f: impl FnOnce(&mut Node, Time) -> R) -> R {
        let i = self.index(name);
        let r = f(&mut self.peers[i].node, self.now);
        self.drain(i);
        r
    }

    /// `observer` learns `subject` as `subject` sees itself, rumouring
    /// nothing.
    pub fn introduce(&mut self, observer: &str, subject: &str) {
        let me = self
            .node(subject)
            .member(subject)
            .expect("a node knows itself");
        self.act(observer, |n, now| n.learn_members(now, &[me]));
    }

    /// Every node in `names` learns every other, as [`introduce`](Harness::introduce) does.
    pub fn introduce_all<S: AsRef<str>>(&mut self, names: &[S]) {
        for a in names {
            for b in names.iter().filter(|b| b.as_ref() != a.as_ref()) {
                self.introduce(a.as_ref(), b.as_ref());
            }
        }
    }

    /// Crash node `name`: no more timers, and what is sent to it is lost.
    pub fn stop(&mut self, name: &str) {
        let i = self.index(name);
        self.peers[i].up = false;
    }

    // ----- network -------------------------------------------------------

    /// Drop every message `rule(from, to, msg)` matches, until
    /// [`allow`](Harness::allow) is given the returned id.
    pub fn drop_where(&mut self, rule: impl Fn(&str, &str, &Message) -> bool + 'static) -> u64 {
        self.next_rule += 1;
        self.drops.insert(self.next_rule, Box::new(rule));
        self.next_rule
    }

    /// Drop every message of `kind` from `from` to `to` (each may be `"*"`).
    pub fn drop_kind(&mut self, from: &str, to: &str, kind: &str) -> u64 {
        self.drop_where(kind_rule(from, to, kind))
    }

    /// Cut every message between a node of `one` and a node of `other`.
    pub fn partition(&mut self, one: &[&str], other: &[&str]) -> u64 {
        let one: Vec<String> = one.iter().map(|s| s.to_string()).collect();
        let other: Vec<String> = other.iter().map(|s| s.to_string()).collect();
        let side = |names: &[String], n: &str| names.iter().any(|s| s == n);
        self.drop_where(move |a, b, _| {
            (side(&one, a) && side(&other, b)) || (side(&one, b) && side(&other, a))
        })
    }

    /// Lift drop rule `id`.
    pub fn allow(&mut self, id: u64) {
        self.drops.remove(&id);
    }

    /// Keep back every message of `kind` from `from` to `to` until
    /// [`release`](Harness::release).
    pub fn hold_kind(&mut self, from: &str, to: &str, kind: &str) {
        self.holds.push(Box::new(kind_rule(from, to, kind)));
    }

    /// Lift every hold rule and send what they kept back, in order.
    pub fn release(&mut self) {
        self.holds.clear();
        for p in std::mem::take(&mut self.held) {
            self.fly(p);
        }
    }

    /// Send a hand-made `msg` to node `to` as if from `from`, bypassing
    /// every rule.
    pub fn inject(&mut self, from: SocketAddr, to: &str, msg: Message) {
        let to = self.addr(to);
        self.record(from, to, &msg, false);
        self.fly(Packet { from, to, msg });
    }

    /// The name of the node at `addr`, or the address as text.
    pub fn name_of(&self, addr: SocketAddr) -> String {
        match self.peers.iter().find(|p| p.node.id().addr() == addr) {
            Some(p) => p.name.clone(),
            None => addr.to_string(),
        }
    }

    fn record(&mut self, from: SocketAddr, to: SocketAddr, msg: &Message, dropped: bool) {
        let (from, to) = (self.name_of(from), self.name_of(to));
        let (at, kind, msg) = (self.now, kind(msg), msg.clone());
        let sent = Sent {
            at,
            from,
            to,
            kind,
            msg,
            dropped,
        };
        self.log.push(sent);
    }

    fn fly(&mut self, p: Packet) {
        self.next_packet += 1;
        self.flight
            .insert((self.now + self.latency, self.next_packet), p);
    }

    /// Route what node `i` sends: log it, then drop, hold or fly it.
    fn send(&mut self, from: SocketAddr, to: SocketAddr, msg: Message) {
        let (f, t) = (self.name_of(from), self.name_of(to));
        let dropped = self.drops.values().any(|r| r(&f, &t, &msg));
        self.record(from, to, &msg, dropped);
        let p = Packet { from, to, msg };
        if !dropped && self.holds.iter().any(|r| r(&f, &t, &p.msg)) {
            self.held.push(p);
        } else if !dropped {
            self.fly(p);
        }
    }

    /// Drain node `i`'s outputs until `None`.
    fn drain(&mut self, i: usize) {
        let from = self.peers[i].node.id().addr();
        while let Some(out) = self.peers[i].node.poll_output() {
            match out {
                Output::Send { to, msg } => self.send(from, to, msg),
                Output::Event(e) => self.peers[i].events.push((self.now, e)),
            }
        }
    }

    // ----- driving -------------------------------------------------------

    /// The earliest delivery or timer of a running node.
    pub fn next_deadline(&self) -> Option<Time> {
        let timer = self.next_timer().map(|t| t.0);
        self.next_delivery().into_iter().chain(timer).min()
    }

    fn next_delivery(&self) -> Option<Time> {
        self.flight.keys().next().map(|k| k.0)
    }

    fn next_timer(&self) -> Option<(Time, usize)> {
        let running = self.peers.iter().enumerate().filter(|(_, p)| p.up);
        running
            .filter_map(|(i, p)| p.node.poll_timeout().map(|t| (t, i)))
            .min()
    }

    /// Go to the next deadline and run that one input. Returns `false` when
    /// there is nothing left to run.
    pub fn step(&mut self) -> bool {
        let (delivery, timer) = (self.next_delivery(), self.next_timer());
        if delivery.is_some_and(|d| timer.is_none_or(|(t, _)| d <= t)) {
            let ((at, _), p) = self.flight.pop_first().expect("a delivery");
            self.now = self.now.max(at);
            let to = self.peers.iter().position(|q| q.node.id().addr() == p.to);
            if let Some(i) = to.filter(|&i| self.peers[i].up) {
                self.peers[i].node.handle_message(self.now, p.from, p.msg);
                self.drain(i);
            }
        } else if let Some((t, i)) = timer {
            self.now = self.now.max(t);
            self.peers[i].node.handle_timeout(self.now);
            self.drain(i);
        } else {
            return false;
        }
        true
    }

    /// Run every input due up to `t`, then set the clock to `t`.
    pub fn run_until(&mut self, t: Time) {
        let what = format!("the clock reaching {t}");
        self.wait_for(t - self.now, &what, |h| {
            h.next_deadline().is_none_or(|d| d > t)
        });
        self.now = self.now.max(t);
    }

    /// Run for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Run until nothing is in flight (timers fire meanwhile).
    pub fn settle(&mut self) {
        self.wait_for(Duration::from_secs(60), "the network to settle", |h| {
            h.flight.is_empty()
        });
    }

    /// Step until `cond` holds, and return the time it did; panic naming
    /// `what` if it does not within `within` or [`MAX_STEPS`] steps.
    pub fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        cond: impl Fn(&Harness) -> bool,
    ) -> Time {
        let deadline = self.now + within;
        for _ in 0..MAX_STEPS {
            if cond(self) {
                return self.now;
            }
            if self.next_deadline().is_none_or(|d| d > deadline) || !self.step() {
                panic!("harness: no {what} within {within:?} (now {})", self.now);
            }
        }
        panic!(
            "harness: more than {MAX_STEPS} steps waiting for {what} (now {})",
            self.now
        );
    }

    // ----- records -------------------------------------------------------

    /// Messages sent (dropped ones included) matching `from`, `to` and
    /// `kind` (each may be `"*"`; see [`kind`]), in the order sent.
    pub fn messages(&self, from: &str, to: &str, kind_: &str) -> Vec<&Sent> {
        let hit =
            |s: &&Sent| matches(from, &s.from) && matches(to, &s.to) && matches(kind_, s.kind);
        self.log.iter().filter(hit).collect()
    }

    /// How many such messages were sent.
    pub fn sent(&self, from: &str, to: &str, kind_: &str) -> usize {
        self.messages(from, to, kind_).len()
    }

    /// Every event node `name` reported, with when.
    pub fn events_of(&self, name: &str) -> &[(Time, Event)] {
        &self.peers[self.index(name)].events
    }

    /// What `observer` believes about `subject`.
    pub fn member(&self, observer: &str, subject: &str) -> Option<Member> {
        self.node(observer).member(subject)
    }

    /// `observer`'s belief about `subject` as `"alive@3"`, or `"unknown"`.
    pub fn member_state(&self, observer: &str, subject: &str) -> String {
        match self.member(observer, subject) {
            Some(m) => format!("{}@{}", m.state, m.incarnation),
            None => "unknown".into(),
        }
    }
}

// ----- helpers for the scenario tests ---------------------------------------

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// `name`'s own signed word as `name` holds it, as a rumour carries it.
pub(crate) fn own_news(h: &Harness, name: &str) -> MemberUpdate {
    let m = h.node(name).member(name).expect("a node holds itself");
    MemberUpdate {
        id: m.id,
        incarnation: m.incarnation,
        state: m.state,
        by: None,
        key: m.key,
        signature: m.signature,
    }
}

/// A gossip of `by`'s suspicion of `accused` at `incarnation`, without
/// the accused's word (as accusations travel).
pub(crate) fn accusation(accused: &Member, incarnation: u32, by: &str) -> Message {
    Message::Gossip(Gossip {
        updates: vec![MemberUpdate {
            id: accused.id.clone(),
            incarnation: Incarnation(incarnation),
            state: MemberState::Suspect,
            by: Some(by.into()),
            key: Default::default(),
            signature: Default::default(),
        }],
    })
}

/// What `observer` reported about member `subject`, as (what, incarnation).
pub(crate) fn member_events(
    h: &Harness,
    observer: &str,
    subject: &str,
) -> Vec<(&'static str, u32)> {
    let what = |e: &Event| match e {
        Event::MemberJoined(_) => "joined",
        Event::MemberSuspected(_) => "suspected",
        Event::MemberAlive(_) => "alive",
        Event::MemberDied(_) => "died",
        Event::MemberLeft(_) => "left",
        _ => unreachable!("not a membership event"),
    };
    let events = h.events_of(observer).iter().map(|(_, e)| e);
    events
        .filter_map(|e| Some((what(e), e.member()?)))
        .filter(|(_, m)| m.id.name() == subject)
        .map(|(w, m)| (w, m.incarnation.0))
        .collect()
}

/// The value `observer` holds under `key` of `owner`'s namespace.
pub(crate) fn value(h: &Harness, observer: &str, owner: &str, key: &str) -> Option<String> {
    let e = h.node(observer).get(owner, key)?;
    Some(String::from_utf8_lossy(&e.value).into_owned())
}

/// The fresh reads `name` reported, with when.
pub(crate) fn fresh_reads(h: &Harness, name: &str) -> Vec<(Time, FreshRead)> {
    let events = h.events_of(name).iter();
    events
        .filter_map(|(t, e)| match e {
            Event::FreshRead(r) => Some((*t, r.clone())),
            _ => None,
        })
        .collect()
}

/// The nodes `name` pushes to eagerly, by name.
pub(crate) fn links(h: &Harness, name: &str) -> Vec<String> {
    h.node(name).eager_links().map(|a| h.name_of(a)).collect()
}

/// Wait until every node of `names` has pushed its first grafts and they
/// have landed; then link every pair left unlinked (a node grafted before
/// its own first gossip round grafts no one) with hand-made empty grafts,
/// so that every node pushes to every other.
pub(crate) fn link_all(h: &mut Harness, names: &[&str]) {
    let all: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    h.wait_for(secs(1), "a first eager link each", |h| {
        all.iter().all(|a| h.node(a).eager_links().count() > 0)
    });
    h.settle();
    for x in names {
        for y in names.iter().filter(|y| *y != x) {
            if !links(h, x).contains(&y.to_string()) {
                h.inject(h.addr(y), x, Message::Graft(Graft::default()));
            }
        }
    }
    h.settle();
    for x in names {
        assert_eq!(links(h, x).len(), names.len() - 1, "{x}");
    }
}

pub(crate) fn seq_of(msg: &Message) -> u32 {
    match msg {
        Message::Ping(p) => p.seq,
        Message::PingReq(p) => p.seq,
        Message::Ack(a) => a.seq,
        Message::Nack(n) => n.seq,
        other => panic!("no sequence number in {other:?}"),
    }
}

pub(crate) fn push_pull(msg: &Message) -> &PushPull {
    match msg {
        Message::PushPull(p) => p,
        other => panic!("not a push-pull: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(h: &mut Harness) -> Vec<(Time, String, String, &'static str)> {
        h.act("a", |n, now| n.put(now, "k", b"v").unwrap());
        h.run_for(Duration::from_secs(3));
        h.log
            .iter()
            .map(|s| (s.at, s.from.clone(), s.to.clone(), s.kind))
            .collect()
    }

    #[test]
    fn the_same_test_runs_the_same_twice() {
        let one = run(&mut Harness::new(&["a", "b", "c"]));
        assert!(one.len() > 50, "{}", one.len());
        assert_eq!(one, run(&mut Harness::new(&["a", "b", "c"])));
    }

    #[test]
    fn each_node_counts_what_it_took_in_by_kind() {
        let mut h = Harness::new(&["a", "b", "c"]);
        run(&mut h);
        for name in ["a", "b", "c"] {
            let stats = h.node(name).stats();
            let by_kind = stats.messages_in_by_kind;
            assert_eq!(by_kind.iter().sum::<u64>(), stats.messages_in);
            for (i, kind) in crate::MESSAGE_KINDS.iter().enumerate() {
                // Every message sent to the node and not dropped reached it
                // within the run, but for those still in flight at its end.
                let sent = h
                    .log
                    .iter()
                    .filter(|s| s.to == name && matches(kind, s.kind) && !s.dropped)
                    .count() as u64;
                assert!(
                    by_kind[i] <= sent && sent <= by_kind[i] + 3,
                    "{name} {kind}: {} of {sent}",
                    by_kind[i]
                );
            }
            assert!(by_kind[0] > 0 && by_kind[2] > 0, "pings and acks");
        }
    }

    #[test]
    #[should_panic(expected = "no c knowing d within")]
    fn a_wait_that_never_ends_names_what_it_waited_for() {
        let mut h = Harness::new(&["a", "b", "c"]);
        h.wait_for(Duration::from_secs(1), "c knowing d", |h| {
            h.member("c", "d").is_some()
        });
    }
}
