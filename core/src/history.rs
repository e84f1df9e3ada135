//! Explained failure decisions: for each member, a bounded history of this
//! node's changes of belief about it, each with its cause.
//!
//! A change records when it happened, the new state and incarnation, why
//! (this node's own failed probe with what each relay answered, a rumour or
//! a push-pull from a named peer, a suspicion that ran out, a refutation, a
//! reap), this node's Lifeguard local health at the time, and, for a
//! suspicion, every confirmation that came in and the timeout in force as
//! Lifeguard computes it from them. [`Node::explain`](crate::Node::explain)
//! returns it as an [`Explanation`].
//!
//! The history is bounded twice: each member's changes are kept within
//! `Config::history_bytes` (1 KB by default; oldest dropped first, counted in
//! [`Explanation::dropped`]), and the histories of members the node has
//! forgotten are kept for the last [`FORGOTTEN_KEPT`] of them. A member that
//! only ever joined has no history: the table's `since` says when.

use std::collections::{BTreeMap, VecDeque};
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;
use std::time::Duration;

use crate::member::{Incarnation, Member, MemberState};
use crate::time::Time;

/// Members no longer held whose histories are kept, most recently
/// forgotten first to stay.
pub const FORGOTTEN_KEPT: usize = 256;

/// Why this node changed its belief about a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// This node's own probe failed: the direct ping went unanswered within
    /// the probe timeout, and no relay brought an ack before the probe
    /// period ended.
    Probe(ProbeFailure),
    /// A rumour (piggybacked or gossiped) from the node at `from`. For a
    /// suspicion or a death, `by` is the member that declared it.
    Rumour {
        /// The sender of the rumour.
        from: SocketAddr,
        /// Who declared the suspicion or death.
        by: Option<Arc<str>>,
        /// News of a death doubted and taken as a suspicion: it came while
        /// the member had itself been heard from within the suspicion
        /// timeout.
        doubted: bool,
    },
    /// A push-pull state sync from the node at `from`.
    Sync {
        /// The peer of the exchange.
        from: SocketAddr,
        /// Who declared the suspicion or death.
        by: Option<Arc<str>>,
        /// News of a death taken as a suspicion (a sync's view may be old).
        doubted: bool,
    },
    /// The suspicion ran its timeout, shortened by its confirmations,
    /// without a refutation: this node's own verdict.
    SuspicionTimedOut,
    /// This node refuted news about itself (it was suspected or declared
    /// dead) by raising its incarnation.
    Refuted {
        /// The state the news claimed.
        claimed: MemberState,
        /// Who declared it, if the news said.
        by: Option<Arc<str>>,
    },
    /// The member was forgotten `dead_reap_after` after it died or left.
    Reaped,
    /// An operator forgot the member.
    Forgotten,
}

/// This node's failed probe of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFailure {
    /// The probe timeout in force (Lifeguard stretches it with the local
    /// health score).
    pub timeout: Duration,
    /// The relays asked to probe indirectly, and what each answered.
    pub relays: Vec<RelayAnswer>,
}

/// A relay of an indirect probe, and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAnswer {
    /// The relay's name.
    pub name: Arc<str>,
    /// Whether it answered with a nack (its own ping of the target went
    /// unanswered too, and the path to the relay works); `false`: it did
    /// not answer at all.
    pub nacked: bool,
}

/// A confirmation of a suspicion by another member (Lifeguard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// The member that confirmed.
    pub by: Arc<str>,
    /// When this node heard of it.
    pub at: Time,
    /// The suspicion timeout in force after it, counted from the
    /// suspicion's start.
    pub timeout: Duration,
}

/// One change of this node's belief about a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// When it changed.
    pub at: Time,
    /// The new state.
    pub state: MemberState,
    /// The incarnation it holds the member at.
    pub incarnation: Incarnation,
    /// Why.
    pub cause: Cause,
    /// This node's local health score at the time (0 is healthy).
    pub health: u32,
    /// For a suspicion: the timeout in force when it started, counted from
    /// then.
    pub timeout: Option<Duration>,
    /// For a suspicion: each independent confirmation, in order.
    pub confirmations: Vec<Confirmation>,
}

/// What this node knows and remembers of a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The member's name.
    pub name: String,
    /// The member as this node holds it now; `None` once forgotten.
    pub member: Option<Member>,
    /// The changes kept, oldest first.
    pub changes: Vec<Change>,
    /// Older changes dropped to keep the history within its bound.
    pub dropped: u32,
    /// The names of the peers the causes name by address, as this node
    /// holds them now.
    pub peers: BTreeMap<SocketAddr, String>,
}

impl Cause {
    /// The peer this news came from, if it came from one.
    pub fn from(&self) -> Option<SocketAddr> {
        match self {
            Cause::Rumour { from, .. } | Cause::Sync { from, .. } => Some(*from),
            _ => None,
        }
    }
}

impl Change {
    /// A change with no suspicion attached (no timeout, no confirmation).
    pub(crate) fn plain(
        at: Time,
        state: MemberState,
        incarnation: Incarnation,
        cause: Cause,
        health: u32,
    ) -> Change {
        Change {
            at,
            state,
            incarnation,
            cause,
            health,
            timeout: None,
            confirmations: Vec::new(),
        }
    }

    /// The bytes a history holds for this change: as kept (see
    /// `Config::history_bytes`), its confirmations and relays, and every
    /// name in full (counted even where shared).
    pub fn bytes(&self) -> usize {
        Kept::new(self.clone()).bytes()
    }
}

/// A peer's address as a history keeps it: an IPv4 one in place (16
/// bytes where a `SocketAddr` takes 32), an IPv6 one boxed (rare enough
/// on a cluster's peer port to pay a box).
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeptAddr {
    V4([u8; 4], u16),
    V6(Box<SocketAddrV6>),
}

impl KeptAddr {
    fn new(addr: SocketAddr) -> KeptAddr {
        match addr {
            SocketAddr::V4(a) => KeptAddr::V4(a.ip().octets(), a.port()),
            SocketAddr::V6(a) => KeptAddr::V6(Box::new(a)),
        }
    }

    fn get(&self) -> SocketAddr {
        match self {
            KeptAddr::V4(ip, port) => SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(*ip), *port)),
            KeptAddr::V6(a) => SocketAddr::V6(**a),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            KeptAddr::V4(..) => 0,
            KeptAddr::V6(_) => size_of::<SocketAddrV6>(),
        }
    }
}

/// A [`Cause`] as a history keeps it: addresses compact, a failed probe's
/// relays boxed (most causes are rumours).
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeptCause {
    Probe(Box<ProbeFailure>),
    Rumour {
        from: KeptAddr,
        by: Option<Arc<str>>,
        doubted: bool,
    },
    Sync {
        from: KeptAddr,
        by: Option<Arc<str>>,
        doubted: bool,
    },
    SuspicionTimedOut,
    Refuted {
        claimed: MemberState,
        by: Option<Arc<str>>,
    },
    Reaped,
    Forgotten,
}

impl KeptCause {
    fn new(cause: Cause) -> KeptCause {
        match cause {
            Cause::Probe(p) => KeptCause::Probe(Box::new(p)),
            Cause::Rumour { from, by, doubted } => KeptCause::Rumour {
                from: KeptAddr::new(from),
                by,
                doubted,
            },
            Cause::Sync { from, by, doubted } => KeptCause::Sync {
                from: KeptAddr::new(from),
                by,
                doubted,
            },
            Cause::SuspicionTimedOut => KeptCause::SuspicionTimedOut,
            Cause::Refuted { claimed, by } => KeptCause::Refuted { claimed, by },
            Cause::Reaped => KeptCause::Reaped,
            Cause::Forgotten => KeptCause::Forgotten,
        }
    }

    fn get(&self) -> Cause {
        match self {
            KeptCause::Probe(p) => Cause::Probe((**p).clone()),
            KeptCause::Rumour { from, by, doubted } => Cause::Rumour {
                from: from.get(),
                by: by.clone(),
                doubted: *doubted,
            },
            KeptCause::Sync { from, by, doubted } => Cause::Sync {
                from: from.get(),
                by: by.clone(),
                doubted: *doubted,
            },
            KeptCause::SuspicionTimedOut => Cause::SuspicionTimedOut,
            KeptCause::Refuted { claimed, by } => Cause::Refuted {
                claimed: *claimed,
                by: by.clone(),
            },
            KeptCause::Reaped => Cause::Reaped,
            KeptCause::Forgotten => Cause::Forgotten,
        }
    }

    /// The bytes held beyond the cause itself: boxes and names.
    fn bytes(&self) -> usize {
        let by = |b: &Option<Arc<str>>| b.as_ref().map_or(0, |n| n.len());
        match self {
            KeptCause::Probe(p) => {
                size_of::<ProbeFailure>()
                    + p.relays
                        .iter()
                        .map(|r| size_of::<RelayAnswer>() + r.name.len())
                        .sum::<usize>()
            }
            KeptCause::Rumour { from, by: b, .. } | KeptCause::Sync { from, by: b, .. } => {
                from.bytes() + by(b)
            }
            KeptCause::Refuted { by: b, .. } => by(b),
            KeptCause::SuspicionTimedOut | KeptCause::Reaped | KeptCause::Forgotten => 0,
        }
    }
}

/// A suspicion's part of a change: its timeout and confirmations.
#[derive(Debug, Default)]
struct KeptSuspicion {
    timeout: Option<Duration>,
    confirmations: Vec<Confirmation>,
}

/// A [`Change`] as a history keeps it, 72 bytes where a `Change` takes
/// 120: a node keeps one for each change of belief about each
/// member, and a cluster forming on busy machines changes its mind about
/// most members a few times. A suspicion's part is boxed, and only a
/// suspicion has one.
#[derive(Debug)]
struct Kept {
    at: Time,
    incarnation: Incarnation,
    health: u32,
    state: MemberState,
    cause: KeptCause,
    suspicion: Option<Box<KeptSuspicion>>,
}

impl Kept {
    fn new(change: Change) -> Kept {
        let suspicion = (change.timeout.is_some() || !change.confirmations.is_empty()).then(|| {
            Box::new(KeptSuspicion {
                timeout: change.timeout,
                confirmations: change.confirmations,
            })
        });
        Kept {
            at: change.at,
            incarnation: change.incarnation,
            health: change.health,
            state: change.state,
            cause: KeptCause::new(change.cause),
            suspicion,
        }
    }

    fn get(&self) -> Change {
        let (timeout, confirmations) = match &self.suspicion {
            Some(s) => (s.timeout, s.confirmations.clone()),
            None => (None, Vec::new()),
        };
        Change {
            at: self.at,
            state: self.state,
            incarnation: self.incarnation,
            cause: self.cause.get(),
            health: self.health,
            timeout,
            confirmations,
        }
    }

    /// The bytes this change holds: itself, its boxes, its confirmations
    /// and relays, and every name in full (counted even where shared).
    fn bytes(&self) -> usize {
        let suspicion = self.suspicion.as_ref().map_or(0, |s| {
            size_of::<KeptSuspicion>()
                + s.confirmations
                    .iter()
                    .map(|c| size_of::<Confirmation>() + c.by.len())
                    .sum::<usize>()
        });
        size_of::<Kept>() + self.cause.bytes() + suspicion
    }
}

/// One member's changes and how many older ones were dropped.
#[derive(Debug, Default)]
struct Record {
    changes: VecDeque<Kept>,
    bytes: usize,
    dropped: u32,
    /// Among the forgotten.
    retired: bool,
}

impl Record {
    fn push(&mut self, change: Kept, limit: usize) {
        self.bytes += change.bytes();
        if one_more_exactly(self.changes.len(), self.changes.capacity()) {
            self.changes.reserve_exact(1);
        }
        self.changes.push_back(change);
        self.trim(limit);
    }

    fn trim(&mut self, limit: usize) {
        while self.bytes > limit && self.changes.len() > 1 {
            let old = self.changes.pop_front().expect("more than one");
            self.bytes -= old.bytes();
            self.dropped += 1;
        }
    }
}

/// Below this many, a history's changes and a suspicion's confirmations
/// grow one at a time; from it, by doubling.
const GROWN_ONE_AT_A_TIME: usize = 4;

/// A `VecDeque` or `Vec` takes room for four at its first push, and a
/// change is 72 bytes as kept; a node holds a history for each member it
/// changed its mind about, and many hold one or two changes, a suspicion
/// one or two confirmations. Room is taken for one at a time up to
/// [`GROWN_ONE_AT_A_TIME`]: whether a list of `len` with room for
/// `capacity` takes room for exactly one more before its next push.
fn one_more_exactly(len: usize, capacity: usize) -> bool {
    len == capacity && len < GROWN_ONE_AT_A_TIME
}

/// Every member's history, as one node keeps it.
#[derive(Debug)]
pub(crate) struct History {
    /// The most bytes per member (`Config::history_bytes`); 0 keeps none.
    limit: usize,
    /// By member name: deterministic order, one lookup per change.
    records: BTreeMap<Arc<str>, Record>,
    /// Members forgotten, oldest first: their histories go past
    /// `FORGOTTEN_KEPT`.
    forgotten: VecDeque<Arc<str>>,
}

impl History {
    /// An empty history keeping at most `limit` bytes per member.
    pub(crate) fn new(limit: usize) -> History {
        History {
            limit,
            records: BTreeMap::new(),
            forgotten: VecDeque::new(),
        }
    }

    /// Record a change of belief about `name`.
    pub(crate) fn record(&mut self, name: &Arc<str>, change: Change) {
        if self.limit == 0 {
            return;
        }
        let record = self.records.entry(name.clone()).or_default();
        if record.retired {
            // Back in the table: its history is a live one again.
            record.retired = false;
            if let Some(i) = self.forgotten.iter().position(|n| n == name) {
                self.forgotten.remove(i);
            }
        }
        record.push(Kept::new(change), self.limit);
    }

    /// A confirmation of the suspicion `name` is under, with the timeout
    /// now in force; kept on the suspicion's change.
    pub(crate) fn confirm(&mut self, name: &str, confirmation: Confirmation) {
        let Some(record) = self.records.get_mut(name) else {
            return;
        };
        let Some(last) = record.changes.back_mut() else {
            return;
        };
        if last.state != MemberState::Suspect {
            return;
        }
        let mut added = size_of::<Confirmation>() + confirmation.by.len();
        if last.suspicion.is_none() {
            added += size_of::<KeptSuspicion>();
        }
        let c = &mut last
            .suspicion
            .get_or_insert_with(Box::default)
            .confirmations;
        if one_more_exactly(c.len(), c.capacity()) {
            c.reserve_exact(1);
        }
        c.push(confirmation);
        record.bytes += added;
        record.trim(self.limit);
    }

    /// `name` left the table (reaped or forgotten, with that change
    /// recorded first): its history is kept among the last
    /// `FORGOTTEN_KEPT` forgotten.
    pub(crate) fn retire(&mut self, name: &Arc<str>) {
        match self.records.get_mut(name) {
            Some(r) if !r.retired => r.retired = true,
            _ => return,
        }
        self.forgotten.push_back(name.clone());
        while self.forgotten.len() > FORGOTTEN_KEPT {
            if let Some(old) = self.forgotten.pop_front() {
                self.records.remove(&old);
            }
        }
    }

    /// The history of `name`: its changes, oldest first, and how many
    /// were dropped; `None` if nothing is remembered.
    pub(crate) fn of(&self, name: &str) -> Option<(Vec<Change>, u32)> {
        let r = self.records.get(name)?;
        Some((r.changes.iter().map(Kept::get).collect(), r.dropped))
    }

    /// Whether anything is remembered of `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.records.contains_key(name)
    }

    /// The bytes `name`'s history holds (see [`Change::bytes`]).
    #[cfg(test)]
    pub(crate) fn bytes(&self, name: &str) -> usize {
        self.records.get(name).map_or(0, |r| r.bytes)
    }

    /// The changes `name`'s history has room for, and the confirmations
    /// its last change has room for.
    #[cfg(test)]
    pub(crate) fn room(&self, name: &str) -> (usize, usize) {
        self.records.get(name).map_or((0, 0), |r| {
            let last = r.changes.back().and_then(|c| c.suspicion.as_ref());
            let last = last.map_or(0, |s| s.confirmations.capacity());
            (r.changes.capacity(), last)
        })
    }

    /// How many members have a history.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::*;
    use crate::{Config, MemberState};

    /// The states of `observer`'s history of `subject`, as `"suspect@0"`.
    fn states(h: &Harness, observer: &str, subject: &str) -> Vec<String> {
        let e = h.node(observer).explain(subject).expect("explained");
        e.changes
            .iter()
            .map(|c| format!("{}@{}", c.state, c.incarnation))
            .collect()
    }

    #[test]
    fn a_crash_is_explained_by_failed_probes_confirmations_and_the_timeout() {
        // Scenario: d crashes among a, b, c and d. Each survivor keeps a
        // history of d: suspected at incarnation 0, then dead, then reaped.
        // Whoever suspected d by its own probe records the relays it asked,
        // every one of which (alive) nacked. Whoever declared d dead itself
        // did so exactly when the timeout in force after the last
        // confirmation ran out, counted from the suspicion's start, and
        // each confirmation shortened it.
        let mut h = Harness::new(&["a", "b", "c", "d"]);
        h.run_for(secs(2));
        h.stop("d");
        h.wait_for(secs(30), "every survivor declaring d dead", |h| {
            ["a", "b", "c"]
                .iter()
                .all(|o| h.member_state(o, "d") == "dead@0")
        });
        let (mut probes, mut verdicts) = (0, 0);
        for o in ["a", "b", "c"] {
            let e = h.node(o).explain("d").unwrap();
            assert_eq!(states(&h, o, "d"), ["suspect@0", "dead@0"], "at {o}");
            let (suspect, dead) = (&e.changes[0], &e.changes[1]);
            assert!(suspect.at < dead.at);
            if let Cause::Probe(p) = &suspect.cause {
                probes += 1;
                assert!(!p.relays.is_empty(), "{o} asked relays");
                assert!(p.relays.iter().all(|r| r.nacked), "{o}: {:?}", p.relays);
                assert!(p.relays.iter().all(|r| &*r.name != "d" && &*r.name != o));
                assert_eq!(p.timeout, Config::local().probe_timeout);
            }
            let start_timeout = suspect.timeout.expect("a suspicion has a timeout");
            assert_eq!(start_timeout, Config::local().suspicion_max);
            let mut last = start_timeout;
            for c in &suspect.confirmations {
                assert!(c.timeout < last, "{o}: a confirmation shortens the timeout");
                assert!(c.at >= suspect.at && c.at <= dead.at);
                last = c.timeout;
            }
            if dead.cause == Cause::SuspicionTimedOut {
                verdicts += 1;
                assert_eq!(
                    dead.at,
                    suspect.at + last,
                    "{o}: dead when the timeout ran out"
                );
            }
            assert_eq!(e.member.unwrap().state, MemberState::Dead);
        }
        // A member that only ever joined has no history, yet is explained.
        let b = h.node("a").explain("b").unwrap();
        assert!(b.changes.is_empty() && b.member.is_some());
        assert!(h.node("a").explain("nobody").is_none());
        assert!(probes >= 1, "someone's own probe failed");
        assert!(verdicts >= 1, "someone's suspicion timed out");
        // The reap is the last change, and the history outlives the member.
        h.run_for(Config::local().dead_reap_after + secs(1));
        let e = h.node("a").explain("d").expect("remembered after the reap");
        assert!(e.member.is_none());
        assert_eq!(e.changes.last().unwrap().cause, Cause::Reaped);
    }

    #[test]
    fn a_refutation_is_explained_on_both_sides() {
        // Scenario: b is cut off until a suspects it, then the cut heals
        // before the suspicion runs out. a's history of b: suspected at 0,
        // alive at 1 (b's refutation, heard as a rumour). b's history of
        // itself: it refuted a suspicion by raising its incarnation to 1.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(2));
        let cut = h.partition(&["b"], &["a", "c"]);
        h.wait_for(secs(10), "a suspecting b", |h| {
            h.member_state("a", "b") == "suspect@0"
        });
        h.allow(cut);
        h.wait_for(secs(10), "a holding b alive again", |h| {
            h.member_state("a", "b") == "alive@1"
        });
        assert_eq!(states(&h, "a", "b"), ["suspect@0", "alive@1"]);
        let back = &h.node("a").explain("b").unwrap().changes[1];
        assert!(
            matches!(
                back.cause,
                Cause::Rumour { by: None, .. } | Cause::Sync { by: None, .. }
            ),
            "{:?}",
            back.cause
        );
        let own = h.node("b").explain("b").unwrap();
        assert_eq!(own.changes.len(), 1);
        let refuted = &own.changes[0];
        assert_eq!(refuted.incarnation, Incarnation(1));
        assert!(
            matches!(
                refuted.cause,
                Cause::Refuted {
                    claimed: MemberState::Suspect,
                    by: Some(_)
                }
            ),
            "{:?}",
            refuted.cause
        );
    }

    pub(super) fn suspicion(at: u64, relays: usize) -> Change {
        Change {
            at: Time::from_micros(at),
            state: MemberState::Suspect,
            incarnation: Incarnation(1),
            cause: Cause::Probe(ProbeFailure {
                timeout: Duration::from_millis(500),
                relays: (0..relays)
                    .map(|i| RelayAnswer {
                        name: Arc::from(format!("relay-with-a-long-name-{i}")),
                        nacked: i % 2 == 0,
                    })
                    .collect(),
            }),
            health: 0,
            timeout: Some(Duration::from_secs(5)),
            confirmations: Vec::new(),
        }
    }

    #[test]
    fn a_members_history_stays_within_its_bytes_dropping_the_oldest() {
        let mut h = History::new(1024);
        let name: Arc<str> = Arc::from("m");
        for i in 0..50u64 {
            h.record(&name, suspicion(i, 3));
            for c in 0..5 {
                h.confirm(
                    "m",
                    Confirmation {
                        by: Arc::from(format!("confirmer-number-{c}")),
                        at: Time::from_micros(i),
                        timeout: Duration::from_secs(4),
                    },
                );
            }
            assert!(h.bytes("m") <= 1024, "{} bytes", h.bytes("m"));
        }
        let (changes, dropped) = h.of("m").unwrap();
        assert!(!changes.is_empty());
        assert_eq!(changes.len() as u32 + dropped, 50);
        assert_eq!(changes.last().unwrap().at, Time::from_micros(49));
        assert_eq!(changes.last().unwrap().confirmations.len(), 5);
        let held: usize = changes.iter().map(Change::bytes).sum();
        assert_eq!(held, h.bytes("m"), "the running count is exact");
    }

    #[test]
    fn forgotten_members_keep_their_history_for_the_last_few() {
        let mut h = History::new(1024);
        for i in 0..FORGOTTEN_KEPT + 10 {
            let name: Arc<str> = Arc::from(format!("m{i}"));
            h.record(&name, suspicion(i as u64, 0));
            h.retire(&name);
        }
        assert_eq!(h.len(), FORGOTTEN_KEPT);
        assert!(h.of("m0").is_none(), "the first forgotten went first");
        assert!(h.of(&format!("m{}", FORGOTTEN_KEPT + 9)).is_some());
        // A member back in the table is no longer among the forgotten.
        let back: Arc<str> = Arc::from("m20");
        h.record(&back, suspicion(1, 0));
        for i in 0..FORGOTTEN_KEPT {
            let name: Arc<str> = Arc::from(format!("n{i}"));
            h.record(&name, suspicion(1, 0));
            h.retire(&name);
        }
        assert!(
            h.of("m20").is_some(),
            "a member held again keeps its history"
        );
    }

    #[test]
    fn a_confirmation_goes_only_on_a_suspicion() {
        let mut h = History::new(1024);
        let name: Arc<str> = Arc::from("m");
        let mut dead = suspicion(1, 0);
        dead.state = MemberState::Dead;
        dead.cause = Cause::SuspicionTimedOut;
        h.record(&name, dead);
        h.confirm(
            "m",
            Confirmation {
                by: Arc::from("x"),
                at: Time::from_micros(2),
                timeout: Duration::from_secs(1),
            },
        );
        assert!(h.of("m").unwrap().0[0].confirmations.is_empty());
        h.confirm(
            "nobody",
            Confirmation {
                by: Arc::from("x"),
                at: Time::from_micros(2),
                timeout: Duration::from_secs(1),
            },
        );
        assert!(h.of("nobody").is_none());
    }
}

#[cfg(test)]
mod off {
    use super::*;

    #[test]
    fn a_change_is_kept_in_half_the_room_and_given_back_as_it_came() {
        let v4: SocketAddr = "10.1.2.3:7946".parse().unwrap();
        let v6: SocketAddr = "[fe80::1%2]:7946".parse().unwrap();
        let by = Some(Arc::from("accuser"));
        let causes = [
            Cause::Probe(ProbeFailure {
                timeout: Duration::from_millis(500),
                relays: vec![RelayAnswer {
                    name: Arc::from("relay"),
                    nacked: true,
                }],
            }),
            Cause::Rumour {
                from: v4,
                by: by.clone(),
                doubted: true,
            },
            Cause::Sync {
                from: v6,
                by: None,
                doubted: false,
            },
            Cause::SuspicionTimedOut,
            Cause::Refuted {
                claimed: MemberState::Dead,
                by,
            },
            Cause::Reaped,
            Cause::Forgotten,
        ];
        for cause in causes {
            let mut change = super::tests::suspicion(7, 3);
            change.cause = cause;
            change.confirmations.push(Confirmation {
                by: Arc::from("confirmer"),
                at: Time::from_micros(9),
                timeout: Duration::from_secs(3),
            });
            assert_eq!(Kept::new(change.clone()).get(), change);
            let plain = Change::plain(
                Time::ZERO,
                MemberState::Alive,
                Incarnation(1),
                change.cause,
                2,
            );
            let kept = Kept::new(plain.clone());
            assert!(kept.suspicion.is_none());
            assert_eq!(kept.get(), plain);
        }
        let (kept, change) = (size_of::<Kept>(), size_of::<Change>());
        assert!(
            kept <= 72 && kept * 3 <= change * 2,
            "{kept} bytes of {change}"
        );
    }

    #[test]
    fn a_history_takes_room_for_the_changes_and_confirmations_it_holds() {
        let mut h = History::new(1024);
        let name: Arc<str> = Arc::from("m");
        let change = |state, inc| {
            Change::plain(
                Time::ZERO,
                state,
                Incarnation(inc),
                Cause::SuspicionTimedOut,
                0,
            )
        };
        h.record(&name, change(MemberState::Suspect, 0));
        assert_eq!(h.room("m"), (1, 0));
        let confirm = |by: &str| Confirmation {
            by: Arc::from(by),
            at: Time::ZERO,
            timeout: Duration::from_secs(1),
        };
        h.confirm("m", confirm("a"));
        assert_eq!(h.room("m"), (1, 1));
        h.confirm("m", confirm("b"));
        assert_eq!(h.room("m"), (1, 2));
        h.record(&name, change(MemberState::Alive, 1));
        assert_eq!(h.room("m"), (2, 0));
        for inc in 2..6 {
            h.record(&name, change(MemberState::Alive, inc));
        }
        // Past four, growth doubles as usual.
        assert_eq!(h.room("m").0, 8);
    }

    #[test]
    fn a_limit_of_zero_keeps_nothing() {
        let mut h = History::new(0);
        let change = Change {
            at: Time::ZERO,
            state: MemberState::Dead,
            incarnation: Incarnation(0),
            cause: Cause::Reaped,
            health: 0,
            timeout: None,
            confirmations: Vec::new(),
        };
        h.record(&Arc::from("m"), change);
        assert!(!h.has("m"));
    }
}
