//! Membership: what this node believes about every member, and how that
//! belief changes.
//!
//! It owns the SWIM precedence rules (which news overrides which), the
//! suspicion lifecycle with Lifeguard's shrinking timeout, refutation of
//! news about this node, the broadcast queue of membership rumours, reaping
//! of dead and left members, and this node's own leave. It sends nothing
//! itself but rumours queued for others to piggyback.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::Arc;

use rand::Rng;

use super::outbox::Ctx;
use super::paging::fill;
use crate::broadcast::{BroadcastQueue, News, Urgency};
use crate::error::Error;
use crate::events::Event;
use crate::history::{Cause, Change, Confirmation, History, ProbeFailure};
use crate::identity::{member_statement, PublicKey, Signature};
use crate::introductions::Introductions;
use crate::member::{overrides, Incarnation, Member, MemberState, NodeId};
use crate::members::{Entry, Members};
use crate::message::{MemberLine, MemberUpdate, Page};
use crate::suspicion::Suspicion;
use crate::time::Time;
use crate::wire;

/// Where this node is in its own life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Running,
    /// Announcing Left for this many more gossip rounds, then quiet.
    Leaving(u32),
    Left,
}

/// How news was heard, which decides how far it is trusted and spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heard {
    /// This node's own finding.
    Found,
    /// A rumour (piggybacked or gossiped) from the node at this address.
    Rumour(SocketAddr),
    /// A push-pull state sync from the node at this address; `asked` when
    /// it answers an exchange this node opened (its join or its round).
    Sync { from: SocketAddr, asked: bool },
}

impl Heard {
    fn is_rumour(self) -> bool {
        matches!(self, Heard::Found | Heard::Rumour(_))
    }

    /// The address charged for a member this news introduces, if it is
    /// unasked news from another node.
    fn introducer(self) -> Option<SocketAddr> {
        match self {
            Heard::Rumour(from) | Heard::Sync { from, asked: false } => Some(from),
            Heard::Found | Heard::Sync { asked: true, .. } => None,
        }
    }
}

/// What applying news did that other parts must follow up on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Aftermath {
    /// A member at this address stopped being live (dead or left).
    pub(crate) departed: Option<SocketAddr>,
    /// Someone suspects this node: Lifeguard takes it as a hint that this
    /// node is the slow one.
    pub(crate) suspected: bool,
    /// A suspicion's verdict is held: ping this suspect once more.
    pub(crate) final_probe: Option<NodeId>,
}

/// This node's view of the cluster.
#[derive(Debug)]
pub(crate) struct Membership {
    my_name: Arc<str>,
    incarnation: Incarnation,
    status: Status,
    members: Members,
    rumours: BroadcastQueue<News>,
    /// Ordered by name, so expiry order is deterministic.
    suspicions: BTreeMap<Arc<str>, Suspicion>,
    /// `suspicions` by deadline, earliest first: exactly one entry per
    /// suspicion, moved when a confirmation brings its deadline closer.
    suspicion_due: BTreeSet<(Time, Arc<str>)>,
    /// Dead and left members in the order they are due to be forgotten.
    reap: VecDeque<(Time, Arc<str>, Incarnation)>,
    /// Members forgotten while dead, by name: the address to knock on and
    /// until when (see `Config::reconnect_interval`).
    /// The key the member had, when known (entries a data dir kept have
    /// none, and are checked by name only).
    reconnect: BTreeMap<Arc<str>, (SocketAddr, Time, Option<PublicKey>)>,
    /// The name last knocked on: the list is walked in name order.
    reconnect_cursor: Option<Arc<str>>,
    /// The dead member the last push-pull round went to: the dead are
    /// walked in name order, from a random one, so each gets a round
    /// within as many rounds as there are dead.
    dead_cursor: Option<Arc<str>>,
    /// When a message last came straight from each address: a member heard
    /// from within the suspicion timeout is not taken for dead on another's
    /// word (see [`Membership::apply`]). Entries older than `suspicion_max`
    /// are dropped whenever the map outgrows the membership.
    heard: BTreeMap<SocketAddr, Time>,
    /// Members new to this node per introducing address (the cap on
    /// poisoning, `Config::max_introductions`).
    introductions: Introductions,
    /// Each member's changes of state and their causes.
    history: History,
    /// This node's failed probe, while the suspicion it raises is applied.
    finding: Option<ProbeFailure>,
    /// News to push down the tree's eager links
    /// (`Config::eager_membership`), with the address it came from.
    pushed: Vec<(MemberUpdate, Option<SocketAddr>)>,
    /// Whether any of `pushed` is a refutation or a leave, which is not
    /// held (see `TreeConfig::news_hold`).
    pushed_urgent: bool,
}

/// Most entries of the reconnect list; past it, the one that would expire
/// first makes room.
const RECONNECT_KEPT: usize = 1024;

impl Membership {
    /// A view holding only this node, alive at `incarnation`; `hash_key`
    /// keys the name lookups of its table and of its rumour queue.
    pub(crate) fn new(cx: &mut Ctx, incarnation: Incarnation, hash_key: u64) -> Membership {
        let mut members = Members::new(&cx.me, cx.config.peer_selection, hash_key);
        let entry = Entry {
            incarnation,
            state: MemberState::Alive,
            since: cx.now,
            word: cx.verified.share_word(
                &cx.identity.public(),
                &own_word(cx, incarnation, MemberState::Alive),
            ),
            pushed: true,
        };
        members.set(&cx.me, entry, &mut cx.rng);
        Membership {
            my_name: Arc::from(cx.me.name()),
            incarnation,
            status: Status::Running,
            members,
            rumours: BroadcastQueue::new(hash_key.rotate_left(32)),
            suspicions: BTreeMap::new(),
            suspicion_due: BTreeSet::new(),
            reap: VecDeque::new(),
            reconnect: BTreeMap::new(),
            reconnect_cursor: None,
            dead_cursor: None,
            heard: BTreeMap::new(),
            introductions: Introductions::default(),
            history: History::new(cx.config.history_bytes as usize),
            finding: None,
            pushed: Vec::new(),
            pushed_urgent: false,
        }
    }

    /// A message came straight from `from` (not relayed): whoever sends
    /// from there is alive now.
    pub(crate) fn heard_from(&mut self, cx: &Ctx, from: SocketAddr) {
        self.heard.insert(from, cx.now);
        // Senders that are not members (or no longer are) must not grow
        // the map without bound: past twice the membership, what is older
        // than the suspicion timeout goes.
        if self.heard.len() > 2 * (self.members.live_others() + 1) + 64 {
            let horizon = cx.config.suspicion_max;
            let now = cx.now;
            self.heard
                .retain(|_, at| now.saturating_since(*at) < horizon);
        }
    }

    /// Whether a message ever came straight from `addr` (as far as the map
    /// of senders remembers): a member that has never spoken to this node
    /// may not exist at all.
    pub(crate) fn heard_ever(&self, addr: SocketAddr) -> bool {
        self.heard.contains_key(&addr)
    }

    /// Whether a message came straight from `addr` within the suspicion
    /// timeout (`suspicion_max`) before now.
    fn heard_lately(&self, cx: &Ctx, addr: SocketAddr) -> bool {
        self.heard
            .get(&addr)
            .is_some_and(|at| cx.now.saturating_since(*at) < cx.config.suspicion_max)
    }

    // ----- reads ---------------------------------------------------------

    pub(crate) fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    pub(crate) fn status(&self) -> Status {
        self.status
    }

    pub(crate) fn is_running(&self) -> bool {
        self.status == Status::Running
    }

    /// The member table, for the parts that pick peers from it.
    pub(crate) fn table(&self) -> &Members {
        &self.members
    }

    /// The member table, for picking peers (which moves its cursors).
    pub(crate) fn table_mut(&mut self) -> &mut Members {
        &mut self.members
    }

    pub(crate) fn members(&self) -> impl Iterator<Item = Member> + '_ {
        self.members.iter().map(|(id, e)| Members::snapshot(id, e))
    }

    pub(crate) fn member(&self, name: &str) -> Option<Member> {
        self.members
            .get(name)
            .map(|(id, e)| Members::snapshot(id, e))
    }

    /// The member named `name` if it is alive or suspect.
    pub(crate) fn live(&self, name: &str) -> Option<&NodeId> {
        self.members
            .get(name)
            .filter(|(_, e)| e.state.is_live())
            .map(|(id, _)| id)
    }

    /// Whether `owner` is this node or a live member: whose data is worth
    /// holding.
    pub(crate) fn owner_live(&self, owner: &str) -> bool {
        owner == &*self.my_name || self.live(owner).is_some()
    }

    /// The key of `owner` if it is this node or a live member: who may
    /// sign the data worth holding.
    pub(crate) fn owner_key(&self, owner: &str) -> Option<PublicKey> {
        self.owner_signer(owner).map(|(key, _)| key)
    }

    /// [`Membership::owner_key`] with the owner's address, in one lookup.
    pub(crate) fn owner_signer(&self, owner: &str) -> Option<(PublicKey, SocketAddr)> {
        let (id, e) = self.members.get(owner)?;
        (owner == &*self.my_name || e.state.is_live()).then(|| (e.key(), id.addr()))
    }

    pub(crate) fn pending_rumours(&self) -> usize {
        self.rumours.len()
    }

    /// How many times each rumour is sent in a cluster of this size.
    pub(crate) fn retransmit_limit(&self, cx: &Ctx) -> u32 {
        cx.config.retransmit_limit(self.members.live_others() + 1)
    }

    /// This node's own news in `state`.
    pub(crate) fn self_update(&self, cx: &Ctx, state: MemberState) -> MemberUpdate {
        let signature = match self.members.get(&self.my_name) {
            Some((_, e)) if e.incarnation == self.incarnation && e.state == state => e.signature(),
            _ => own_word(cx, self.incarnation, state),
        };
        MemberUpdate {
            id: cx.me.clone(),
            incarnation: self.incarnation,
            state,
            by: None,
            key: cx.identity.public(),
            signature,
        }
    }

    /// The suspicion this node holds of `target` at the address probed,
    /// as news to hand it (Lifeguard's buddy system), if it holds one.
    pub(crate) fn suspicion_of(&self, target: &NodeId) -> Option<MemberUpdate> {
        let (id, e) = self.members.get(target.name())?;
        if e.state != MemberState::Suspect || id.addr() != target.addr() {
            return None;
        }
        let news = self.news_of(id, e);
        let by = self.suspicions.get(target.name()).map(|s| s.by());
        let warning = MemberUpdate {
            by: by.or(news.by.clone()),
            ..news
        };
        Some(warning.as_rumour())
    }

    /// A member as this node holds it, as news for a state sync.
    fn news_of(&self, id: &NodeId, e: &Entry) -> MemberUpdate {
        MemberUpdate {
            id: id.clone(),
            incarnation: e.incarnation,
            state: e.state,
            by: match e.state {
                MemberState::Suspect | MemberState::Dead => Some(self.my_name.clone()),
                _ => None,
            },
            key: e.key(),
            signature: e.signature(),
        }
    }

    /// The membership digest lines of the members named in `page`, in page
    /// order: what a node holds of each, without the signed word behind it.
    pub(crate) fn lines_in<'a>(&'a self, page: &'a Page) -> impl Iterator<Item = MemberLine> + 'a {
        self.members.walk(page).map(|(id, e)| MemberLine {
            name: Arc::from(id.name()),
            incarnation: e.incarnation,
            state: e.state,
        })
    }

    /// A member's name at random, where a push-pull's first page starts.
    pub(crate) fn random_name(&self, cx: &mut Ctx) -> Arc<str> {
        Arc::from(self.members.random_name(&mut cx.rng).unwrap_or_default())
    }

    /// Compare a page of a peer's membership digest with this node's
    /// members in the page, by the SWIM precedence rules. Returns the news
    /// of each member of the page whose line is missing or older there, in
    /// page order within `room` bytes, with the first member left out if
    /// they did not all fit; and, before them, the names of the members
    /// whose line there is newer, or alive and unknown here (only the alive
    /// can be introduced). A line repeated or outside the page counts once
    /// or not at all.
    pub(crate) fn compare(
        &self,
        theirs: &[MemberLine],
        page: &Page,
        room: usize,
    ) -> (Vec<MemberUpdate>, Vec<Arc<str>>, Option<Arc<str>>) {
        let lines: BTreeMap<&str, &MemberLine> = theirs
            .iter()
            .filter(|l| page.contains(&l.name))
            .map(|l| (&*l.name, l))
            .collect();
        let wanted: Vec<Arc<str>> = lines
            .values()
            .filter(|l| match self.members.get(&l.name) {
                None => l.state == MemberState::Alive,
                Some((_, e)) => overrides(l.incarnation, l.state, e.incarnation, e.state),
            })
            .map(|l| l.name.clone())
            .collect();
        let room = room.saturating_sub(wanted.iter().map(|w| wire::len_field(w.len())).sum());
        let newer = self
            .members
            .walk(page)
            .filter(|(id, e)| match lines.get(id.name()) {
                None => true,
                Some(l) => overrides(e.incarnation, e.state, l.incarnation, l.state),
            });
        let (news, cut) = fill(newer.map(|(id, e)| self.news_of(id, e)), room);
        (news, wanted, cut)
    }

    /// The news of the members named, those this node holds, in name order
    /// within `room` bytes.
    pub(crate) fn news_named(&self, names: &[Arc<str>], room: usize) -> Vec<MemberUpdate> {
        let names: BTreeSet<&str> = names.iter().map(|n| &**n).collect();
        let news = names
            .into_iter()
            .filter_map(|n| self.members.get(n))
            .map(|(id, e)| self.news_of(id, e));
        fill(news, room).0
    }

    /// The peers of a push-pull round: `count` random live members, and
    /// while any member is dead, the next dead one in name order (the
    /// first time, a random one), so that a healed partition finds its
    /// other half before the dead are reaped: with `d` dead, each is
    /// tried within `d` rounds, whatever the draws.
    pub(crate) fn push_pull_peers(&mut self, cx: &mut Ctx, count: usize) -> Vec<NodeId> {
        let dead: BTreeSet<Arc<str>> = self
            .reap
            .iter()
            .map(|(_, name, _)| Arc::clone(name))
            .filter(|name| {
                self.members
                    .get(name)
                    .is_some_and(|(_, e)| e.state == MemberState::Dead)
            })
            .collect();
        let mut peers = self.members.random_live(count, &[], &mut cx.rng);
        let next = match &self.dead_cursor {
            _ if dead.is_empty() => None,
            None => dead.iter().nth(cx.rng.random_range(0..dead.len())),
            Some(last) => dead
                .range((Bound::Excluded(last.clone()), Bound::Unbounded))
                .next()
                .or_else(|| dead.first()),
        };
        if let Some(name) = next.cloned() {
            peers.extend(self.members.get(&name).map(|(id, _)| id.clone()));
            self.dead_cursor = Some(name);
        }
        peers
    }

    // ----- rumours -------------------------------------------------------

    /// Fill up to `room` bytes of `out` with rumours.
    pub(crate) fn piggyback(&mut self, cx: &mut Ctx, room: usize, out: &mut Vec<MemberUpdate>) {
        if room == 0 || self.rumours.is_empty() {
            return;
        }
        let limit = self.retransmit_limit(cx);
        let mut news = Vec::new();
        let packed = self.rumours.pack(room, limit, &mut news);
        out.extend(news.iter().map(News::update));
        cx.stats.urgent_rumours_sent += packed.urgent as u64;
    }

    /// A peer rumoured `u`, which this node holds already: if this node is
    /// still spreading it, the duplicate ages it. A member's first word
    /// (alive at incarnation 0: a join, the bulk of a cold start) stops
    /// after `Config::stop_after_duplicates` duplicates. Later news (an
    /// accusation, a refutation, a restart, a leave) counts each as
    /// `retransmit_mult` sends, so it outlasts some ceil(log2(n + 1))
    /// duplicates: that others keep telling it back says little about
    /// whether the few members it concerns (the accused, its accusers)
    /// have heard it.
    fn heard_again(&mut self, cx: &Ctx, u: &MemberUpdate) {
        let limit = self.retransmit_limit(cx);
        let c = &cx.config;
        let weight = if u.state == MemberState::Alive && u.incarnation == Incarnation(0) {
            c.duplicate_weight(limit)
        } else {
            c.retransmit_mult
        };
        self.rumours
            .heard_again_under(u.id.name(), |q| q.is(u), weight, limit);
    }

    /// Queue `update`; refutations and leaves go first when
    /// `refutations_first` is on.
    fn rumour(&mut self, cx: &Ctx, update: MemberUpdate, urgent: bool) {
        let urgency = if urgent && cx.config.refutations_first {
            Urgency::Urgent
        } else {
            Urgency::Normal
        };
        let update = update.as_rumour();
        // The word behind the pointer the member's entry holds, where it is
        // that word (else one shared through the signature memory).
        let word = (!update.word_elided()).then(|| match self.members.get(update.id.name()) {
            Some((_, e)) if e.holds_word(&update.key, &update.signature) => Arc::clone(&e.word),
            _ => cx.verified.share_word(&update.key, &update.signature),
        });
        self.rumours
            .push_update(News::new(update, word), urgency, cx.config.max_broadcasts);
    }

    /// Note `update` (a join, refutation, death or leave) for the tree's
    /// eager links, unless `eager_membership` is off; `urgent` for a
    /// refutation or a leave.
    fn push(&mut self, cx: &Ctx, update: &MemberUpdate, source: Option<SocketAddr>, urgent: bool) {
        if cx.config.eager_membership {
            self.pushed.push((update.as_rumour(), source));
            self.pushed_urgent |= urgent;
        }
    }

    /// The news noted for the eager links since the last call, each with
    /// the address it came from (not sent back there), and whether any of
    /// it is a refutation or a leave.
    pub(crate) fn take_pushed(&mut self) -> (Vec<(MemberUpdate, Option<SocketAddr>)>, bool) {
        let urgent = std::mem::take(&mut self.pushed_urgent);
        (std::mem::take(&mut self.pushed), urgent)
    }

    // ----- news ----------------------------------------------------------

    /// Apply one piece of news about a member, by the SWIM precedence rules.
    ///
    /// News of a death is doubted, and taken as a suspicion at the same
    /// incarnation (counted in `deaths_doubted`), when it came by a
    /// push-pull ([`Heard::Sync`]: the peer's view may be minutes old, as
    /// after a partition), or when the member itself sent this node a
    /// message within the suspicion timeout (the news is older than what
    /// this node saw first-hand, as when the other side of a healed
    /// partition still rumours its verdict). Either way the member gets its
    /// chance to refute, and this node's own suspicion timer decides.
    ///
    /// Members we had not heard of from a push-pull are not rumoured on: they
    /// are old news to the sender, which holds the same state as everyone
    /// it synced with. Only the sender's own introduction (a join) is
    /// rumoured, by the one node that hears it first-hand.
    ///
    /// News that does not stand on its member's own signed word, under the
    /// key its name is bound to, is refused and counted first.
    pub(crate) fn apply(&mut self, cx: &mut Ctx, u: &MemberUpdate, heard: Heard) -> Aftermath {
        let whole;
        let u = if u.word_elided() && u.id.name() == cx.me.name() {
            // An accusation of this node: it answers from its own words.
            let accused = matches!(u.state, MemberState::Suspect | MemberState::Dead);
            if accused && u.incarnation <= self.incarnation && u.id.addr() == cx.me.addr() {
                return self.refute(cx, u);
            }
            cx.stats.words_missing += 1;
            return Aftermath::default();
        } else if u.word_elided() {
            match self.word_back(cx, u) {
                Some(w) => {
                    whole = w;
                    &whole
                }
                None => return Aftermath::default(),
            }
        } else {
            u
        };
        if let Some(pushed) = self.repeat(cx, u) {
            // Most news a node hears is news it holds already, word for word:
            // it changes nothing, so it is only counted (and ages our own
            // copy of the rumour), with no copy of the entry taken.
            cx.stats.stale_updates += 1;
            if let Heard::Rumour(from) = heard {
                // News this node took from a state sync (a join's answer)
                // never went down the tree from here: the first time it is
                // heard as a rumour it goes on once, so that the tree's
                // pushes pass through nodes that knew it already.
                if !pushed && cx.config.eager_membership {
                    self.members.mark_pushed(u.id.name());
                    self.push(cx, u, Some(from), false);
                }
            }
            if heard.is_rumour() {
                self.heard_again(cx, u);
            }
            return Aftermath::default();
        }
        let held = self
            .members
            .get(u.id.name())
            .map(|(id, e)| (id.clone(), e.clone()));
        if held.is_none() && self.over_cap(cx, u, heard) {
            // Refused before its signature is checked: past the cap, a
            // stranger's fakes cost this node a lookup, not a verification.
            cx.stats.introductions_capped += 1;
            return Aftermath::default();
        }
        if !self.signed(cx, u, held.as_ref()) {
            return Aftermath::default();
        }
        if u.id.name() == cx.me.name() {
            return self.refute(cx, u);
        }
        let (incarnation, mut state) = (u.incarnation, u.state);
        let Some((held_id, held)) = held else {
            // Only an alive member can be introduced; news of the death or
            // suspicion of a stranger (perhaps one already reaped) is dropped.
            if state == MemberState::Alive {
                if let Some(from) = heard.introducer() {
                    let c = &cx.config;
                    let (window, cap) = (c.dead_reap_after, c.max_introductions);
                    if !self.introductions.admit(cx.now, from.ip(), window, cap) {
                        cx.stats.introductions_capped += 1;
                        return Aftermath::default();
                    }
                }
                let spread = match heard {
                    Heard::Sync { from, .. } => from == u.id.addr(),
                    Heard::Found | Heard::Rumour(_) => true,
                };
                let news = MemberUpdate {
                    by: None,
                    ..u.clone()
                };
                let cause = self.cause(heard, None, false);
                return self.transition(cx, news, spread, cause);
            }
            cx.stats.stale_updates += 1;
            return Aftermath::default();
        };
        if held_id.addr() != u.id.addr() && (held.state.is_live() || state != MemberState::Alive) {
            cx.stats.address_conflicts += 1;
            return Aftermath::default();
        }
        let mut doubted = false;
        if state == MemberState::Dead
            && (matches!(heard, Heard::Sync { .. }) || self.heard_lately(cx, held_id.addr()))
        {
            state = MemberState::Suspect;
            doubted = true;
        }
        let by = || u.by.clone().unwrap_or_else(|| self.my_name.clone());
        if overrides(incarnation, state, held.incarnation, held.state) {
            // Counted once, where the doubt raised a suspicion: its repeats
            // only confirm it.
            if doubted && held.state.is_live() {
                cx.stats.deaths_doubted += 1;
            }
            let by = by();
            let accused = matches!(state, MemberState::Suspect | MemberState::Dead);
            let cause = self.cause(heard, accused.then(|| by.clone()), doubted);
            let news = MemberUpdate {
                state,
                by: Some(by),
                ..u.clone()
            };
            return self.transition(cx, news, true, cause);
        }
        if state == MemberState::Suspect
            && held.state == MemberState::Suspect
            && incarnation == held.incarnation
        {
            let by = by();
            if let Some(s) = self.suspicions.get_mut(u.id.name()) {
                let before = s.deadline;
                if s.confirm(&by) {
                    let name: Arc<str> = Arc::from(u.id.name());
                    self.suspicion_due.remove(&(before, name.clone()));
                    self.suspicion_due.insert((s.deadline, name));
                    let confirmation = Confirmation {
                        by: by.clone(),
                        at: cx.now,
                        timeout: s.timeout(),
                    };
                    self.history.confirm(u.id.name(), confirmation);
                    // Pass the confirmation on so others shorten their timers too.
                    let confirmation = MemberUpdate {
                        id: held_id,
                        incarnation,
                        state,
                        by: Some(by),
                        key: held.key(),
                        signature: held.signature(),
                    };
                    self.rumour(cx, confirmation, false);
                    return Aftermath::default();
                }
            }
            cx.stats.stale_updates += 1;
            return Aftermath::default();
        }
        cx.stats.stale_updates += 1;
        if held.state == MemberState::Alive
            && state != MemberState::Alive
            && incarnation < held.incarnation
        {
            // Someone still spreads a suspicion or death that a refutation
            // already answered; it may have missed the refutation, so the
            // refutation goes round again.
            let refutation = self.news_of(&held_id, &held);
            self.rumour(cx, refutation, true);
        } else if heard.is_rumour() {
            self.heard_again(cx, u);
        }
        Aftermath::default()
    }

    /// Apply this node's own finding: its probe of `u`'s member failed, as
    /// `failure` tells.
    pub(crate) fn apply_found(
        &mut self,
        cx: &mut Ctx,
        u: &MemberUpdate,
        failure: ProbeFailure,
    ) -> Aftermath {
        self.finding = Some(failure);
        let after = self.apply(cx, u, Heard::Found);
        self.finding = None;
        after
    }

    /// Why news heard this way changes our belief.
    fn cause(&mut self, heard: Heard, by: Option<Arc<str>>, doubted: bool) -> Cause {
        match heard {
            Heard::Found => Cause::Probe(self.finding.take().unwrap_or(ProbeFailure {
                timeout: std::time::Duration::ZERO,
                relays: Vec::new(),
            })),
            Heard::Rumour(from) => Cause::Rumour { from, by, doubted },
            Heard::Sync { from, .. } => Cause::Sync { from, by, doubted },
        }
    }

    /// The changes this node remembers about `name`, oldest first, and how
    /// many older ones it dropped.
    pub(crate) fn history(&self, name: &str) -> Option<(Vec<Change>, u32)> {
        self.history.of(name)
    }

    /// Take in a whole membership list as a state sync would, without
    /// rumouring it on, inserting new members in bulk.
    pub(crate) fn learn(&mut self, cx: &mut Ctx, members: &[Member]) -> Vec<Aftermath> {
        let me = Heard::Sync {
            from: cx.me.addr(),
            asked: true,
        };
        self.members.begin_bulk();
        let mut after = Vec::new();
        for m in members {
            let u = MemberUpdate {
                id: m.id.clone(),
                incarnation: m.incarnation,
                state: m.state,
                by: None,
                key: m.key,
                signature: m.signature,
            };
            after.push(self.apply(cx, &u, me));
        }
        self.members.end_bulk(&mut cx.rng);
        after
    }

    /// Change our belief about a member to `news` (whose `by` is who
    /// declared a suspicion or death), with its event, suspicion timer,
    /// reap schedule and rumour.
    fn transition(
        &mut self,
        cx: &mut Ctx,
        news: MemberUpdate,
        spread: bool,
        cause: Cause,
    ) -> Aftermath {
        let source = match &cause {
            Cause::Rumour { from, .. } | Cause::Sync { from, .. } => Some(*from),
            _ => None,
        };
        let MemberUpdate {
            id,
            incarnation,
            state,
            by,
            key,
            signature,
        } = news;
        let id = &id;
        let now = cx.now;
        let previous = self.members.get(id.name()).map(|(_, e)| e.state);
        self.reconnect.remove(id.name());
        let entry = Entry {
            incarnation,
            state,
            since: now,
            word: cx.verified.share_word(&key, &signature),
            // Pushed below, with the rumour.
            pushed: spread && state != MemberState::Suspect && cx.config.eager_membership,
        };
        self.members.set(id, entry.clone(), &mut cx.rng);
        let name: Arc<str> = Arc::from(id.name());
        if state != MemberState::Suspect {
            self.end_suspicion(&name);
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
        let mut timeout = None;
        if state == MemberState::Suspect {
            let by = by.clone().unwrap_or_else(|| self.my_name.clone());
            let c = &cx.config;
            let s = Suspicion::new(
                incarnation,
                by,
                now,
                c.suspicion_confirmations,
                c.suspicion_min,
                c.suspicion_max,
            );
            self.end_suspicion(&name);
            self.suspicion_due.insert((s.deadline, name.clone()));
            timeout = Some(s.timeout());
            self.suspicions.insert(name.clone(), s);
        }
        // A first introduction is in the table's `since`; every later
        // change is remembered with its cause.
        if previous.is_some() || self.history.has(&name) {
            let change = Change {
                at: now,
                state,
                incarnation,
                cause,
                health: cx.health,
                timeout,
                confirmations: Vec::new(),
            };
            self.history.record(&name, change);
        }
        let mut after = Aftermath::default();
        if matches!(state, MemberState::Dead | MemberState::Left) {
            after.departed = Some(id.addr());
            self.reap
                .push_back((now + cx.config.dead_reap_after, name, incarnation));
        }
        if let Some(e) = event {
            cx.emit(e);
        }
        if spread {
            let by = match state {
                MemberState::Suspect | MemberState::Dead => {
                    by.or_else(|| Some(self.my_name.clone()))
                }
                _ => None,
            };
            let rumour = MemberUpdate {
                id: id.clone(),
                incarnation,
                state,
                by,
                key,
                signature,
            };
            // A refutation ends suspicion timers wherever it arrives, and a
            // leave spares the cluster probing a member that is gone.
            let refuted = matches!(previous, Some(MemberState::Suspect | MemberState::Dead))
                && state == MemberState::Alive;
            let urgent = refuted || state == MemberState::Left;
            if state != MemberState::Suspect {
                self.push(cx, &rumour, source, urgent);
            }
            self.rumour(cx, rumour, urgent);
        }
        after
    }

    /// Refutation: news about this node that is anything but "alive at our
    /// incarnation" makes it bump its incarnation and rumour itself alive.
    fn refute(&mut self, cx: &mut Ctx, u: &MemberUpdate) -> Aftermath {
        let after = Aftermath::default();
        if self.status != Status::Running {
            return after;
        }
        if u.state == MemberState::Alive && u.incarnation <= self.incarnation {
            return after;
        }
        if u.incarnation < self.incarnation {
            // Old news about a previous incarnation. Someone still spreads
            // it, so someone may not have heard our refutation: say it again.
            cx.stats.stale_updates += 1;
            if u.state != MemberState::Alive {
                let alive = self.self_update(cx, MemberState::Alive);
                self.rumour(cx, alive, true);
            }
            return after;
        }
        cx.stats.refutations += 1;
        self.incarnation = u.incarnation.next();
        self.set_self(cx, MemberState::Alive);
        let cause = Cause::Refuted {
            claimed: u.state,
            by: u.by.clone(),
        };
        let change = Change::plain(
            cx.now,
            MemberState::Alive,
            self.incarnation,
            cause,
            cx.health,
        );
        let me = self.my_name.clone();
        self.history.record(&me, change);
        Aftermath {
            suspected: u.state == MemberState::Suspect,
            ..after
        }
    }

    /// Whether `u` stands on its member's own signed word under the key
    /// its name is bound to (this node's own key, for news about this
    /// node). A word already held was checked when it was taken in.
    /// An accusation that came without the accused's word (see
    /// [`MemberUpdate::as_rumour`]), with the word this node holds for the
    /// same incarnation and address put back; `None`, counted, when it
    /// holds none. Only a suspicion or a death may come without its word.
    ///
    /// An accusation older than a refutation this node holds is stale,
    /// word or none, and sends the refutation round again: its sender
    /// missed it (as when the word came along).
    fn word_back(&mut self, cx: &mut Ctx, u: &MemberUpdate) -> Option<MemberUpdate> {
        if !matches!(u.state, MemberState::Suspect | MemberState::Dead) {
            cx.stats.words_missing += 1;
            return None;
        }
        match self.members.get(u.id.name()) {
            Some((id, e))
                if e.incarnation == u.incarnation
                    && e.state != MemberState::Left
                    && id.addr() == u.id.addr() =>
            {
                Some(MemberUpdate {
                    key: e.key(),
                    signature: e.signature(),
                    ..u.clone()
                })
            }
            Some((id, e)) if e.incarnation > u.incarnation || e.state == MemberState::Left => {
                // Older than what this node holds: stale, word or none.
                cx.stats.stale_updates += 1;
                if e.state == MemberState::Alive && id.addr() == u.id.addr() {
                    let refutation = self.news_of(id, e);
                    self.rumour(cx, refutation, true);
                }
                None
            }
            _ => {
                cx.stats.words_missing += 1;
                None
            }
        }
    }

    /// Read ahead the table entries and queued rumours that taking in
    /// `updates` one by one will look up, a few updates at a time: first
    /// every index, then every slot, so that the reads of different
    /// updates overlap instead of waiting on each other (most news a node
    /// hears is a repeat, two lookups each). Changes nothing.
    pub(crate) fn read_ahead(&self, updates: &[MemberUpdate]) {
        const AHEAD: usize = 16;
        let mut sum = 0u64;
        for chunk in updates.chunks(AHEAD) {
            let mut slots = [(None, None); AHEAD];
            for (u, s) in chunk.iter().zip(slots.iter_mut()) {
                let name = u.id.name();
                *s = (
                    self.members.likely_slot(name),
                    self.rumours.likely_slot(name),
                );
            }
            for &(m, q) in &slots[..chunk.len()] {
                if let Some(i) = m {
                    sum = sum.wrapping_add(u64::from(self.members.read_slot(i)));
                }
                if let Some(i) = q {
                    sum = sum.wrapping_add(self.rumours.read_slot(i));
                }
            }
        }
        std::hint::black_box(sum);
    }

    /// Whether `u`, a member new to this node, is an introduction its
    /// sender's host has no room left for (see [`Introductions`]).
    fn over_cap(&self, cx: &Ctx, u: &MemberUpdate, heard: Heard) -> bool {
        let c = &cx.config;
        u.state == MemberState::Alive
            && u.id.name() != cx.me.name()
            && heard.introducer().is_some_and(|from| {
                let (window, cap) = (c.dead_reap_after, c.max_introductions);
                self.introductions.full(cx.now, from.ip(), window, cap)
            })
    }

    /// If `u` is exactly what this node holds about another member, in a
    /// state that a repeat cannot move (alive, dead or left: a repeated
    /// suspicion may be a new confirmation), under the same signed word:
    /// whether this node pushed that entry down the tree (one lookup
    /// answers both, as most news heard is a repeat).
    fn repeat(&self, cx: &Ctx, u: &MemberUpdate) -> Option<bool> {
        if u.state == MemberState::Suspect || u.id.name() == cx.me.name() {
            return None;
        }
        let (id, e) = self.members.get(u.id.name())?;
        let same = e.state == u.state
            && e.incarnation == u.incarnation
            && id.addr() == u.id.addr()
            && e.holds_word(&u.key, &u.signature);
        same.then_some(e.pushed)
    }

    fn signed(&self, cx: &mut Ctx, u: &MemberUpdate, held: Option<&(NodeId, Entry)>) -> bool {
        match word_check(u, held.map(|(id, e)| (id, e))) {
            WordCheck::Conflict => {
                cx.stats.identity_conflicts += 1;
                return false;
            }
            WordCheck::Held => return true,
            WordCheck::Verify => {}
        }
        if !cx
            .verified
            .check_word(&u.id, u.incarnation, u.state, &u.key, &u.signature)
        {
            cx.stats.members_bad_signature += 1;
            return false;
        }
        true
    }

    /// The signed words among `updates` that taking them in would verify
    /// (news whose word this node holds already, or that leaves it out, is
    /// verified by no one), as statements for `Verified::check_all`: a
    /// driver checks a batch's words together ahead of taking it in
    /// (`Node::check_ahead`).
    pub(crate) fn words_to_check(
        &self,
        updates: &[MemberUpdate],
        out: &mut Vec<(PublicKey, Vec<u8>, Signature)>,
    ) {
        for u in updates {
            if u.word_elided() {
                continue;
            }
            if let WordCheck::Verify = word_check(u, self.members.get(u.id.name())) {
                let bytes =
                    member_statement(u.id.name(), &u.id.addr(), u.incarnation, u.state, &u.key);
                out.push((u.key, bytes, u.signature));
            }
        }
    }

    fn end_suspicion(&mut self, name: &Arc<str>) {
        if let Some(s) = self.suspicions.remove(name) {
            self.suspicion_due.remove(&(s.deadline, name.clone()));
        }
    }

    fn set_self(&mut self, cx: &mut Ctx, state: MemberState) {
        let entry = Entry {
            incarnation: self.incarnation,
            state,
            since: cx.now,
            word: cx.verified.share_word(
                &cx.identity.public(),
                &own_word(cx, self.incarnation, state),
            ),
            pushed: true,
        };
        self.members.set(&cx.me, entry, &mut cx.rng);
        // Only a refutation and a leave change this node's own state.
        let news = self.self_update(cx, state);
        self.push(cx, &news, None, true);
        self.rumour(cx, news, true);
    }

    // ----- leave ---------------------------------------------------------

    /// Start leaving: announce `Left` for a few gossip rounds.
    pub(crate) fn leave(&mut self, cx: &mut Ctx) {
        self.status = Status::Leaving(cx.config.leave_rounds);
        self.set_self(cx, MemberState::Left);
    }

    /// One announcing round of a leave has passed; returns whether the node
    /// is now quiet for good.
    pub(crate) fn leave_round_done(&mut self) -> bool {
        if let Status::Leaving(left) = self.status {
            self.status = if left <= 1 {
                Status::Left
            } else {
                Status::Leaving(left - 1)
            };
        }
        if self.status == Status::Left {
            self.suspicions.clear();
            self.suspicion_due.clear();
            return true;
        }
        false
    }

    // ----- timers --------------------------------------------------------

    /// When the next suspicion may time out.
    pub(crate) fn suspicion_deadline(&self) -> Option<Time> {
        self.suspicion_due.first().map(|(at, _)| *at)
    }

    /// The next address of the reconnect list to knock on, in name order
    /// after the last one; expired entries are dropped first.
    pub(crate) fn next_reconnect(&mut self, now: Time) -> Option<SocketAddr> {
        self.reconnect.retain(|_, (_, until, _)| *until > now);
        let after = self.reconnect_cursor.clone();
        let next = match &after {
            Some(c) => self
                .reconnect
                .range::<Arc<str>, _>((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded))
                .next()
                .or_else(|| self.reconnect.iter().next()),
            None => self.reconnect.iter().next(),
        };
        let (name, (addr, _, _)) = next?;
        self.reconnect_cursor = Some(name.clone());
        Some(*addr)
    }

    /// The reconnect list in the order it is walked from now: (name,
    /// address, until when it is kept).
    pub(crate) fn reconnect_list(&self) -> Vec<(&Arc<str>, SocketAddr, Time)> {
        fn entry<'a>(
            (n, (a, t, _)): (&'a Arc<str>, &(SocketAddr, Time, Option<PublicKey>)),
        ) -> (&'a Arc<str>, SocketAddr, Time) {
            (n, *a, *t)
        }
        let Some(c) = &self.reconnect_cursor else {
            return self.reconnect.iter().map(entry).collect();
        };
        let after = (std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded);
        let upto = (std::ops::Bound::Unbounded, std::ops::Bound::Included(c));
        let mut list: Vec<_> = self
            .reconnect
            .range::<Arc<str>, _>(after)
            .map(entry)
            .collect();
        list.extend(self.reconnect.range::<Arc<str>, _>(upto).map(entry));
        list
    }

    /// Forget `name` now, as the reap would later: a dead or departed
    /// member leaves the table, its rumours and its reconnect entry (an
    /// operator's forget is for good). Returns whether it was held; a name
    /// only on the reconnect list leaves the list. A live member, or this
    /// node, is refused.
    pub(crate) fn forget(&mut self, cx: &Ctx, name: &str) -> Result<bool, Error> {
        if name == &*self.my_name {
            return Err(Error::StillLive(name.to_string()));
        }
        let held = match self.members.get(name) {
            Some((_, e)) if e.state.is_live() => return Err(Error::StillLive(name.to_string())),
            Some((id, _)) => Some(id.addr()),
            None => None,
        };
        self.reconnect.remove(name);
        let Some(addr) = held else {
            return Ok(false);
        };
        self.heard.remove(&addr);
        let name: Arc<str> = Arc::from(name);
        if let Some((_, e)) = self.members.get(&name) {
            let change = Change::plain(cx.now, e.state, e.incarnation, Cause::Forgotten, cx.health);
            self.history.record(&name, change);
            self.history.retire(&name);
        }
        self.members.remove(&name);
        self.rumours.forget(&*name);
        self.end_suspicion(&name);
        Ok(true)
    }

    /// A push-pull from `from` carried `members`: if `from` is the address
    /// of a reconnect entry and the sender's own `Alive` there names another
    /// node, or the same name under another key, the address now belongs to
    /// someone else: the entry is dropped and counted, and never taken for
    /// the member it was (what the sender says of itself is taken as of any
    /// new member).
    pub(crate) fn check_reconnect_answer(
        &mut self,
        cx: &mut Ctx,
        from: SocketAddr,
        members: &[MemberUpdate],
    ) {
        let Some(me) = members
            .iter()
            .find(|u| u.id.addr() == from && u.state == MemberState::Alive)
        else {
            return;
        };
        let before = self.reconnect.len();
        self.reconnect.retain(|name, (addr, _, key)| {
            let other = **name != *me.id.name() || key.is_some_and(|k| k != me.key);
            *addr != from || !other
        });
        cx.stats.reconnect_mismatches += (before - self.reconnect.len()) as u64;
    }

    /// Take back reconnect entries (name, address, until when kept), as a
    /// data dir saved them: entries already expired, or for a name this
    /// node knows as a member, are skipped; the list stays bounded.
    pub(crate) fn restore_reconnect(
        &mut self,
        now: Time,
        entries: &[(Arc<str>, SocketAddr, Time)],
    ) {
        for (name, addr, until) in entries {
            if *until <= now || self.members.get(name).is_some() {
                continue;
            }
            self.reconnect.insert(name.clone(), (*addr, *until, None));
            self.bound_reconnect();
        }
    }

    /// Past `RECONNECT_KEPT` entries, the one that would expire first
    /// makes room.
    fn bound_reconnect(&mut self) {
        while self.reconnect.len() > RECONNECT_KEPT {
            let first = self
                .reconnect
                .iter()
                .min_by_key(|(n, (_, until, _))| (*until, (*n).clone()))
                .map(|(n, _)| n.clone());
            match first {
                Some(n) => self.reconnect.remove(&n),
                None => break,
            };
        }
    }

    /// When the next dead or left member is due to be forgotten.
    pub(crate) fn reap_deadline(&self) -> Option<Time> {
        self.reap.front().map(|(at, _, _)| *at)
    }

    /// Declare dead every suspect whose suspicion timed out, in name order.
    /// Returns what each death left for other parts to do.
    pub(crate) fn expire_suspicions(&mut self, cx: &mut Ctx) -> Vec<Aftermath> {
        let now = cx.now;
        let mut due = BTreeSet::new();
        while let Some((at, _)) = self.suspicion_due.first() {
            if *at > now {
                break;
            }
            let (_, name) = self.suspicion_due.pop_first().expect("first exists");
            if self
                .suspicions
                .get(&name)
                .is_some_and(|s| s.deadline <= now)
            {
                due.insert(name);
            }
        }
        let mut after = Vec::new();
        for name in due {
            let Some(mut s) = self.suspicions.remove(&name) else {
                continue;
            };
            let Some((id, e)) = self.members.get(&name) else {
                continue;
            };
            if e.state == MemberState::Suspect && e.incarnation == s.incarnation {
                let wait = cx.config.probe_timeout * (cx.health + 1);
                if cx.config.final_probe && s.hold_for_final_probe(now + wait) {
                    cx.stats.final_probes += 1;
                    self.suspicion_due.insert((s.deadline, name.clone()));
                    self.suspicions.insert(name, s);
                    after.push(Aftermath {
                        final_probe: Some(id.clone()),
                        ..Aftermath::default()
                    });
                    continue;
                }
                let news = MemberUpdate {
                    id: id.clone(),
                    incarnation: s.incarnation,
                    state: MemberState::Dead,
                    by: Some(self.my_name.clone()),
                    key: e.key(),
                    signature: e.signature(),
                };
                cx.stats.deaths_declared += 1;
                after.push(self.transition(cx, news, true, Cause::SuspicionTimedOut));
            }
        }
        after
    }

    /// Forget the dead and left members whose time is up. Returns their
    /// names, for the parts that hold something of theirs.
    pub(crate) fn reap(&mut self, cx: &Ctx) -> Vec<Arc<str>> {
        let mut reaped = Vec::new();
        while let Some((at, _, _)) = self.reap.front() {
            if *at > cx.now {
                break;
            }
            let (_, name, incarnation) = self.reap.pop_front().expect("front exists");
            let still_gone = self
                .members
                .get(&name)
                .is_some_and(|(_, e)| !e.state.is_live() && e.incarnation == incarnation);
            if still_gone {
                if let Some((id, e)) = self.members.get(&name) {
                    if e.state == MemberState::Dead {
                        let until = cx.now + cx.config.reconnect_timeout;
                        let entry = (id.addr(), until, Some(e.key()));
                        self.reconnect.insert(name.clone(), entry);
                    }
                }
                if let Some((id, e)) = self.members.get(&name) {
                    self.heard.remove(&id.addr());
                    let change =
                        Change::plain(cx.now, e.state, e.incarnation, Cause::Reaped, cx.health);
                    self.history.record(&name, change);
                    self.history.retire(&name);
                }
                self.members.remove(&name);
                self.rumours.forget(&*name);
                reaped.push(name);
            }
            self.bound_reconnect();
        }
        reaped
    }
}

/// This node's signed word about itself: `Alive` (or `Left`) at
/// `incarnation`, at its address, under its key.
fn own_word(cx: &Ctx, incarnation: Incarnation, state: MemberState) -> Signature {
    let key = cx.identity.public();
    let statement = member_statement(cx.me.name(), &cx.me.addr(), incarnation, state, &key);
    cx.identity.sign(&statement)
}

/// What taking in a member's news needs of its signed word, given what
/// this node holds of the member.
enum WordCheck {
    /// The news is under another key than the one held for the name:
    /// refused.
    Conflict,
    /// The word is the one held, verified when it was taken in.
    Held,
    /// A word this node has not verified: check its signature.
    Verify,
}

fn word_check(u: &MemberUpdate, held: Option<(&NodeId, &Entry)>) -> WordCheck {
    let Some((id, e)) = held else {
        return WordCheck::Verify;
    };
    if e.key() != u.key {
        return WordCheck::Conflict;
    }
    let same_word = e.signature() == u.signature
        && e.incarnation == u.incarnation
        && id.addr() == u.id.addr()
        && (e.state == MemberState::Left) == (u.state == MemberState::Left);
    if same_word {
        WordCheck::Held
    } else {
        WordCheck::Verify
    }
}

#[cfg(test)]
mod tests {
    use crate::harness::*;
    use crate::*;

    /// Fake members a stranger announces: each signs its own word under a
    /// key of its own, at an address where nothing answers.
    fn fakes(count: u16) -> Vec<MemberUpdate> {
        (0..count)
            .map(|i| {
                let addr = std::net::SocketAddr::from(([10, 66, (i >> 8) as u8, i as u8], 7946));
                let id = NodeId::new(&format!("fake-{i}"), addr).unwrap();
                Identity::from_seed(1_000 + i as u64).member_update(
                    &id,
                    Incarnation(0),
                    MemberState::Alive,
                    None,
                )
            })
            .collect()
    }

    fn fakes_held(h: &Harness, name: &str) -> usize {
        h.node(name)
            .members()
            .filter(|m| m.id.name().starts_with("fake-"))
            .count()
    }

    #[test]
    fn words_checked_ahead_are_verified_once_as_a_batch_and_a_forgery_among_them_is_still_refused()
    {
        // Scenario: a takes in a gossip of 10 members' fresh words, checked
        // ahead as one batch (as a driver does with what it takes in at
        // once): the batch verifies all 10 and taking the gossip in
        // verifies none again. Then a gossip of 10 more with one word
        // under another member's signature: the batch fails and is
        // remembered nowhere, each word is verified alone as it is taken
        // in, the forgery is refused and the other 9 are taken.
        let mut h = Harness::new(&["a"]);
        h.run_for(ms(10));
        let stranger = std::net::SocketAddr::from(([10, 9, 9, 9], 7946));
        let words = fakes(20);
        let gossip = |updates: &[MemberUpdate]| {
            Message::Gossip(Gossip {
                updates: updates.to_vec(),
            })
        };
        let first = gossip(&words[..10]);
        let before = h.node("a").signature_checks();
        h.act("a", |n, _| n.check_ahead([&first]));
        let ahead = h.node("a").signature_checks();
        assert_eq!(
            (ahead.single, ahead.batched),
            (before.single, before.batched + 10)
        );
        h.inject(stranger, "a", first);
        h.run_for(ms(1));
        assert_eq!(h.node("a").signature_checks(), ahead);
        assert_eq!(fakes_held(&h, "a"), 10);

        let mut second = words[10..].to_vec();
        second[3].signature = second[4].signature;
        let second = gossip(&second);
        h.act("a", |n, _| n.check_ahead([&second]));
        h.inject(stranger, "a", second);
        h.run_for(ms(1));
        let after = h.node("a").signature_checks();
        assert_eq!(
            (after.single, after.batched),
            (ahead.single + 10, ahead.batched + 10)
        );
        assert_eq!(h.node("a").stats().members_bad_signature, 1);
        assert_eq!(fakes_held(&h, "a"), 19);
        assert!(h.node("a").member("fake-13").is_none());
    }

    /// a, b and c, two seconds after a stranger at 10.9.9.9 announced the
    /// same 2,000 fakes to each in 20 gossip envelopes.
    fn poisoned(config: Config) -> Harness {
        let mut h = Harness::with_config(&["a", "b", "c"], config);
        h.run_for(secs(1));
        let stranger = std::net::SocketAddr::from(([10, 9, 9, 9], 7946));
        let fakes = fakes(2_000);
        for node in ["a", "b", "c"] {
            for chunk in fakes.chunks(100) {
                let updates = chunk.to_vec();
                h.inject(stranger, node, Message::Gossip(Gossip { updates }));
            }
        }
        h.run_for(secs(2));
        h
    }

    #[test]
    fn a_crash_is_found_as_fast_with_fakes_in_the_table() {
        // Scenario: a, b and c hold 50 fakes each (the cap) when c crashes.
        // Probes of fakes fail, but fakes are never asked to relay while a
        // member that has spoken to us can be, and their silence is not
        // counted against a's health (Lifeguard), so a keeps probing once a
        // probe period and finds c dead within one probe ring (c's turn
        // comes at the latest after every other member's) plus the
        // suspicion timeout. Before that rule, fakes raised every node's
        // health to its maximum and stretched its probe period ninefold.
        let config = Config {
            max_introductions: 50,
            ..Config::local()
        };
        let local = config.clone();
        let mut h = poisoned(config);
        h.stop("c");
        let ring = local.probe_period * (3 * 50 + 2);
        h.wait_for(
            ring + local.suspicion_max + secs(2),
            "a declaring c dead",
            |h| h.member_state("a", "c").starts_with("dead"),
        );
        assert!(
            h.node("a").health() <= 2,
            "a's health {}",
            h.node("a").health()
        );
    }

    #[test]
    fn a_stranger_adds_at_most_the_cap_and_its_fakes_are_reaped_for_good() {
        // Scenario: a stranger with no key to stop it (the cluster has none)
        // announces 2,000 self-signed fake members in 20 gossip envelopes to
        // each of a, b and c. Each node takes at most `max_introductions`
        // from the stranger's address and as many from its peers' (one
        // address here); an answer to its own push-pull may carry what the
        // others took, so each holds at most three caps' worth. The rest
        // are refused and counted. Nothing answers at the fakes' addresses, so probes
        // declare them dead, and a reap delay later they are gone from every
        // table and stay gone: no node learns a reaped fake back.
        let cap = 50;
        let config = Config {
            max_introductions: cap,
            ..Config::local()
        };
        let reap = config.dead_reap_after;
        let mut h = poisoned(config);
        for node in ["a", "b", "c"] {
            let held = fakes_held(&h, node);
            assert!(
                held > 0 && held <= 3 * cap as usize,
                "{node} holds {held} fakes"
            );
            assert!(h.node(node).stats().introductions_capped >= 2_000 - 3 * cap as u64);
        }
        // Each node probes every member within one ring (at most 3 * cap + 2
        // members, one per probe period: fakes never answer, but neither are
        // they counted as relays that owe a nack, so they do not slow the
        // probing down through Lifeguard's health); a suspicion ends within
        // suspicion_max; the dead are reaped one reap delay later.
        let local = Config::local();
        let bound = local.probe_period * (3 * cap + 2) + local.suspicion_max + reap + secs(5);
        h.wait_for(bound, "every fake reaped", |h| {
            ["a", "b", "c"].iter().all(|n| fakes_held(h, n) == 0)
        });
        h.run_for(reap);
        for node in ["a", "b", "c"] {
            assert_eq!(fakes_held(&h, node), 0, "{node} learned a fake back");
            for other in ["a", "b", "c"] {
                assert_eq!(h.member_state(node, other), "alive@0");
            }
        }
    }

    #[test]
    fn a_join_answer_is_not_capped_but_an_unasked_sync_is() {
        // Scenario: with a cap of 2 introductions per address, z joins
        // through a and learns all five members from a's answer to its own
        // join (asked for, so not counted). A stranger that sends a a sync
        // nobody asked for, carrying ten fake members, adds two.
        let config = Config {
            max_introductions: 2,
            ..Config::local()
        };
        let names = ["a", "b", "c", "d", "e"];
        let mut h = Harness::strangers(&["a", "b", "c", "d", "e", "z"], config);
        for x in names {
            for y in names.iter().filter(|y| **y != x) {
                h.introduce(x, y);
            }
        }
        let seed = h.addr("a");
        h.act("z", |n, now| n.join(now, &[seed])).unwrap();
        h.run_for(ms(20));
        assert_eq!(h.node("z").live_members(), 6, "z and the five");
        let sync = PushPull {
            kind: PushPullKind::Sync,
            members: fakes(10),
            ..PushPull::default()
        };
        let stranger = std::net::SocketAddr::from(([10, 9, 9, 9], 7946));
        let checked = |h: &Harness| {
            let s = h.node("a").stats();
            s.signatures_verified + s.signatures_batched
        };
        let before = checked(&h);
        h.inject(stranger, "a", Message::push_pull(sync));
        h.run_for(ms(20));
        assert_eq!(fakes_held(&h, "a"), 2);
        assert_eq!(h.node("a").stats().introductions_capped, 8);
        // The eight refused cost no signature check: the cap is met first.
        assert_eq!(checked(&h) - before, 2);
    }

    /// Every rumour of a suspicion or a death among the messages sent.
    fn accusations(h: &Harness) -> Vec<MemberUpdate> {
        h.messages("*", "*", "*")
            .iter()
            .filter_map(|s| match &s.msg {
                Message::Eager(e) => Some(e.updates.clone()),
                m => m.clone().rumours_mut().cloned(),
            })
            .flatten()
            .filter(|u| matches!(u.state, MemberState::Suspect | MemberState::Dead))
            .collect()
    }

    #[test]
    fn an_accusation_travels_without_the_accused_s_word() {
        // Scenario: c crashes; a and b suspect it, then declare it dead. Every suspicion and
        // death that rides a probe or a gossip leaves c's key and signature out (96 bytes of
        // some 130), and both still reach the verdict: each takes c's word back from its table.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.stop("c");
        h.wait_for(secs(12), "a and b declaring c dead", |h| {
            h.member_state("a", "c") == "dead@0" && h.member_state("b", "c") == "dead@0"
        });
        let sent = accusations(&h);
        assert!(!sent.is_empty(), "no accusation was rumoured");
        assert!(sent.iter().all(MemberUpdate::word_elided), "{sent:?}");
        for n in ["a", "b"] {
            assert_eq!(h.node(n).stats().words_missing, 0);
            // The verdict holds c's real word, taken back from the table.
            assert_eq!(h.member(n, "c").unwrap().key, h.identity("c").public());
        }
    }

    #[test]
    fn an_accusation_without_a_word_the_receiver_holds_changes_nothing() {
        // Scenario: a hostile peer sends b accusations with no word behind them: of c at an
        // incarnation c never reached (b holds c at 0), of b itself above its incarnation, and
        // an "alive" of c with its word stripped. b holds no word for any of them: each is
        // refused and counted in words_missing, c stays alive at 0 and b does not refute.
        let mut h = Harness::new(&["a", "b", "c"]);
        let c = h.node("b").member("c").unwrap();
        let b = h.node("b").member("b").unwrap();
        let bare = |m: &Member, incarnation: u32, state: MemberState| MemberUpdate {
            id: m.id.clone(),
            incarnation: Incarnation(incarnation),
            state,
            by: Some("a".into()),
            key: Default::default(),
            signature: Default::default(),
        };
        let updates = vec![
            bare(&c, 5, MemberState::Suspect),
            bare(&c, 5, MemberState::Dead),
            bare(&b, 3, MemberState::Suspect),
            bare(&c, 1, MemberState::Alive),
            bare(&c, 0, MemberState::Left),
        ];
        h.inject(h.addr("a"), "b", Message::Gossip(Gossip { updates }));
        h.run_for(ms(1));
        assert_eq!(h.node("b").stats().words_missing, 5);
        assert_eq!(h.member_state("b", "c"), "alive@0");
        assert_eq!(h.node("b").incarnation(), Incarnation(0));
        assert_eq!(h.node("b").stats().refutations, 0);
        // The same accusation at the incarnation b holds is taken: the word is b's own copy.
        let at_0 = bare(&c, 0, MemberState::Suspect);
        h.inject(
            h.addr("a"),
            "b",
            Message::Gossip(Gossip {
                updates: vec![at_0],
            }),
        );
        h.run_for(ms(1));
        assert_eq!(h.member_state("b", "c"), "suspect@0");
        assert_eq!(h.node("b").stats().words_missing, 5);
    }

    #[test]
    fn a_stale_accusation_without_its_word_sends_the_refutation_round_again() {
        // Scenario: c was suspected and refuted (incarnation 1), and the refutation ran out of
        // sends everywhere. Then a peer that missed it still rumours the suspicion at 0, without
        // c's word. b holds c alive at 1, so it has no word to put back: the accusation is stale
        // and changes nothing at b, but b sends the refutation round again, first in its next
        // messages, as it does for a stale accusation that carries the word (the peer that sent
        // it missed the refutation, and a false death waits for it at the end of its timer).
        let mut h = Harness::new(&["a", "b", "c"]);
        let c = h.node("b").member("c").unwrap();
        let accuse = |h: &mut Harness, to: &str| h.inject(h.addr("a"), to, accusation(&c, 0, "a"));
        accuse(&mut h, "c");
        h.wait_for(secs(2), "b seeing c's refutation", |h| {
            h.member_state("b", "c") == "alive@1"
        });
        h.run_for(secs(5));
        let carries_refutation = |m: &Message| {
            let updates = match m {
                Message::Gossip(g) => &g.updates,
                Message::Ping(p) => &p.updates,
                Message::Ack(a) => &a.updates,
                _ => return false,
            };
            updates
                .first()
                .is_some_and(|u| u.id.name() == "c" && u.incarnation == Incarnation(1))
        };
        let sends = |h: &Harness, since: Time| {
            h.messages("b", "*", "*")
                .into_iter()
                .filter(|s| s.at > since && carries_refutation(&s.msg))
                .count()
        };
        let quiet = h.now;
        h.run_for(secs(1));
        assert_eq!(sends(&h, quiet), 0, "the refutation ran out of sends");
        let (stale, missing) = (
            h.node("b").stats().stale_updates,
            h.node("b").stats().words_missing,
        );
        let told = h.now;
        accuse(&mut h, "b");
        h.run_for(ms(300));
        assert!(sends(&h, told) >= 1);
        assert_eq!(h.member_state("b", "c"), "alive@1");
        assert_eq!(h.node("b").stats().stale_updates, stale + 1);
        assert_eq!(h.node("b").stats().words_missing, missing);
    }

    #[test]
    fn an_accused_node_refutes_an_accusation_without_its_word() {
        // Scenario: b is told, with no word attached, that it is suspected at its incarnation:
        // it knows its own words, so it refutes at once (incarnation 1), as it would had the
        // word come along.
        let mut h = Harness::new(&["a", "b", "c"]);
        let b = h.node("a").member("b").unwrap();
        let accusation = MemberUpdate {
            id: b.id,
            incarnation: Incarnation(0),
            state: MemberState::Suspect,
            by: Some("a".into()),
            key: Default::default(),
            signature: Default::default(),
        };
        let rumour = Message::Gossip(Gossip {
            updates: vec![accusation],
        });
        h.inject(h.addr("a"), "b", rumour);
        h.run_for(ms(1));
        assert_eq!(h.node("b").incarnation(), Incarnation(1));
        assert_eq!(h.node("b").stats().refutations, 1);
        h.wait_for(secs(2), "a and c seeing b alive at 1", |h| {
            h.member_state("a", "b") == "alive@1" && h.member_state("c", "b") == "alive@1"
        });
    }

    #[test]
    fn a_suspected_member_refutes_with_a_higher_incarnation() {
        // Scenario: a hand-made gossip from a's address tells b and c that a suspects c at
        // incarnation 0. b starts suspecting c; c refutes: it bumps its incarnation to 1 and
        // rumours itself alive, so b and a end up seeing c alive at incarnation 1, and c is never
        // declared dead.
        let mut h = Harness::new(&["a", "b", "c"]);
        let c = h.node("c").member("c").unwrap();
        let rumour = Message::Gossip(Gossip {
            updates: vec![MemberUpdate {
                id: c.id,
                incarnation: Incarnation(0),
                state: MemberState::Suspect,
                by: Some("a".into()),
                key: c.key,
                signature: c.signature,
            }],
        });
        h.inject(h.addr("a"), "b", rumour.clone());
        h.inject(h.addr("a"), "c", rumour);
        h.wait_for(ms(10), "c refuting", |h| {
            h.node("c").incarnation() == Incarnation(1)
        });
        assert_eq!(h.node("c").stats().refutations, 1);
        assert_eq!(h.member_state("b", "c"), "suspect@0");
        h.wait_for(secs(2), "a and b seeing c alive at 1", |h| {
            h.member_state("a", "c") == "alive@1" && h.member_state("b", "c") == "alive@1"
        });
        let alive_at_1 = |u: &MemberUpdate| {
            u.id.name() == "c" && u.incarnation == Incarnation(1) && u.state == MemberState::Alive
        };
        let from_c = h.messages("c", "*", "*");
        assert!(from_c.iter().any(|s| s
            .msg
            .clone()
            .rumours_mut()
            .is_some_and(|us| us.iter().any(alive_at_1))));
        let b_saw = member_events(&h, "b", "c");
        assert_eq!(b_saw, [("joined", 0), ("suspected", 0), ("alive", 1)]);
        h.run_for(secs(8));
        for x in ["a", "b"] {
            assert_eq!(h.member_state(x, "c"), "alive@1");
            assert!(!member_events(&h, x, "c").contains(&("died", 0)));
        }
    }

    #[test]
    fn a_graceful_leave_is_seen_as_left_not_as_a_failure() {
        // Scenario: c leaves: it announces Left for a few gossip rounds, then goes quiet. a and b
        // see c as left (MemberLeft), never suspect it, and c sends nothing more.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(1));
        h.act("c", |n, now| n.leave(now)).unwrap();
        let quiet = h.wait_for(secs(1), "c going quiet", |h| h.node("c").has_left());
        h.run_for(secs(10));
        for x in ["a", "b"] {
            assert_eq!(h.member_state(x, "c"), "left@0");
            assert_eq!(member_events(&h, x, "c"), [("joined", 0), ("left", 0)]);
        }
        assert!(h.messages("c", "*", "*").iter().all(|s| s.at <= quiet));
    }

    fn gossip(u: MemberUpdate) -> Message {
        Message::Gossip(Gossip { updates: vec![u] })
    }

    #[test]
    fn a_join_stops_after_four_duplicates_and_later_news_outlasts_them() {
        // Scenario: 20 nodes whose own timers stay quiet (gossip, probes and
        // push-pulls an hour apart), so n00's broadcast queue moves only with
        // what it is told. n00 hears x's join and n05 alive at incarnation 1
        // (a refutation, relayed as by a node that never suspected n05), then
        // each back again. With 21 members a rumour goes 4 × 5 = 20 sends: the
        // join, at 5 a duplicate, leaves at the fourth; the later news, at
        // `retransmit_mult` (4) a duplicate, outlasts it.
        let old: Vec<String> = (0..20).map(|i| format!("n{i:02}")).collect();
        let mut all: Vec<&str> = old.iter().map(String::as_str).collect();
        all.push("x");
        let mut c = Config::local();
        c.gossip_interval = secs(3600);
        c.probe_period = secs(3600);
        c.push_pull_interval = secs(3600);
        let mut h = Harness::strangers(&all, c);
        h.introduce_all(&old);
        h.run_for(secs(1));
        let from = h.addr("n01");
        let x = h.node("x").id().clone();
        let join = h
            .identity("x")
            .member_update(&x, Incarnation(0), MemberState::Alive, None);
        let n05 = h.node("n05").id().clone();
        let later = h
            .identity("n05")
            .member_update(&n05, Incarnation(1), MemberState::Alive, None);
        let before = h.node("n00").pending_broadcasts();
        let tell_both = |h: &mut Harness| {
            h.inject(from, "n00", gossip(join.clone()));
            h.inject(from, "n00", gossip(later.clone()));
            h.run_for(ms(5));
        };
        tell_both(&mut h);
        assert_eq!(h.node("n00").pending_broadcasts(), before + 2);
        for _ in 0..3 {
            tell_both(&mut h);
        }
        assert_eq!(
            h.node("n00").pending_broadcasts(),
            before + 2,
            "three keep both"
        );
        tell_both(&mut h);
        assert_eq!(
            h.node("n00").pending_broadcasts(),
            before + 1,
            "the fourth ends the join"
        );
        assert_eq!(h.member_state("n00", "x"), "alive@0");
        assert_eq!(h.member_state("n00", "n05"), "alive@1");
    }

    #[test]
    fn a_name_claimed_with_a_second_key_is_refused() {
        // Scenario: c announces b alive at incarnation 5, at c's address, under c's key
        // (a valid signature of the wrong key), then b left. a refuses both: b's name is
        // bound to b's key. b stays alive at incarnation 0 and at its own address.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(1));
        let b_at_c = NodeId::new("b", h.addr("c")).unwrap();
        let c = h.identity("c");
        let claim = c.member_update(&b_at_c, Incarnation(5), MemberState::Alive, None);
        h.inject(h.addr("c"), "a", gossip(claim));
        let b = h.node("b").id().clone();
        let left = c.member_update(&b, Incarnation(0), MemberState::Left, None);
        h.inject(h.addr("c"), "a", gossip(left));
        h.run_for(ms(10));
        assert_eq!(h.node("a").stats().identity_conflicts, 2);
        assert_eq!(h.member_state("a", "b"), "alive@0");
        assert_eq!(h.node("a").member("b").unwrap().id.addr(), h.addr("b"));
    }

    #[test]
    fn news_the_member_did_not_sign_is_refused() {
        // Scenario: c sends b's key with signatures that are not b's over what they claim:
        // a new address, a leave, and a death at incarnation 2^32-1 standing on b's
        // signature at incarnation 0. a refuses all three, and b never has to refute:
        // its incarnation stays 0 everywhere.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(1));
        let real = h.node("b").member("b").unwrap();
        let word = |id: NodeId, incarnation, state| MemberUpdate {
            id,
            incarnation: Incarnation(incarnation),
            state,
            by: Some("c".into()),
            key: real.key,
            signature: real.signature,
        };
        let moved = NodeId::new("b", h.addr("c")).unwrap();
        h.inject(h.addr("c"), "a", gossip(word(moved, 1, MemberState::Alive)));
        h.inject(
            h.addr("c"),
            "a",
            gossip(word(real.id.clone(), 0, MemberState::Left)),
        );
        h.inject(
            h.addr("c"),
            "a",
            gossip(word(real.id.clone(), u32::MAX, MemberState::Dead)),
        );
        h.inject(
            h.addr("c"),
            "b",
            gossip(word(real.id.clone(), u32::MAX, MemberState::Dead)),
        );
        h.run_for(secs(2));
        assert_eq!(h.node("a").stats().members_bad_signature, 3);
        assert_eq!(h.node("b").stats().members_bad_signature, 1);
        assert_eq!(h.node("b").incarnation(), Incarnation(0));
        for x in ["a", "c"] {
            assert_eq!(h.member_state(x, "b"), "alive@0", "at {x}");
        }
        assert_eq!(h.node("a").member("b").unwrap().id.addr(), h.addr("b"));
    }

    #[test]
    fn an_accusation_at_an_incarnation_the_accused_signed_is_refuted() {
        // Scenario: the control of the test above. c accuses b at b's own signed
        // incarnation 0: a takes it as a suspicion, and b refutes at incarnation 1.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(1));
        let real = h.node("b").member("b").unwrap();
        let suspect = MemberUpdate {
            id: real.id.clone(),
            incarnation: Incarnation(0),
            state: MemberState::Suspect,
            by: Some("c".into()),
            key: real.key,
            signature: real.signature,
        };
        h.inject(h.addr("c"), "a", gossip(suspect.clone()));
        h.inject(h.addr("c"), "b", gossip(suspect));
        h.run_for(secs(2));
        assert_eq!(h.node("a").stats().members_bad_signature, 0);
        assert_eq!(h.node("b").incarnation(), Incarnation(1));
        assert_eq!(h.member_state("a", "b"), "alive@1");
    }

    /// c's word that `name` is dead at incarnation 0, standing on `name`'s
    /// own signed alive.
    fn death_by_c(h: &Harness, name: &str) -> MemberUpdate {
        let m = h.node(name).member(name).unwrap();
        MemberUpdate {
            id: m.id,
            incarnation: Incarnation(0),
            state: MemberState::Dead,
            by: Some("c".into()),
            key: m.key,
            signature: m.signature,
        }
    }

    #[test]
    fn a_death_of_a_member_heard_from_lately_is_only_a_suspicion() {
        // Scenario: a, b and c have been probing one another for a second
        // when c rumours to a that b is dead at incarnation 0 (stale news:
        // b answered a's probes moments ago). a takes it as a suspicion at
        // incarnation 0 and counts it; b hears the suspicion and refutes,
        // and a never declares b dead.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(1));
        assert!(h.sent("b", "a", "*") > 0, "a heard from b directly");
        h.inject(h.addr("c"), "a", gossip(death_by_c(&h, "b")));
        h.run_for(ms(2));
        assert_eq!(h.member_state("a", "b"), "suspect@0");
        assert_eq!(h.node("a").stats().deaths_doubted, 1);
        // The same stale death again: the suspicion it raised stands, and
        // it is not counted twice.
        h.inject(h.addr("c"), "a", gossip(death_by_c(&h, "b")));
        h.run_for(ms(2));
        assert_eq!(h.node("a").stats().deaths_doubted, 1);
        h.wait_for(secs(5), "b refuting at a", |h| {
            h.member_state("a", "b") == "alive@1"
        });
        h.run_for(secs(15));
        assert_eq!(h.member_state("a", "b"), "alive@1");
        assert!(!member_events(&h, "a", "b").contains(&("died", 0)));
    }

    #[test]
    fn a_rumoured_death_of_a_member_not_heard_from_lately_is_taken() {
        // Scenario: the control of the test above. b has been cut off from
        // a for longer than the suspicion timeout (and b is not told), when
        // c rumours b dead at incarnation 0: a takes the death as it comes.
        let mut c = Config::lan();
        // a's own probes of b must not decide first: they never start.
        c.probe_period = secs(3600);
        c.probe_timeout = secs(1);
        c.push_pull_interval = secs(3600);
        let mut h = Harness::with_config(&["a", "b", "c"], c);
        h.drop_kind("b", "a", "*");
        h.drop_kind("a", "b", "*");
        h.run_for(secs(13));
        h.inject(h.addr("c"), "a", gossip(death_by_c(&h, "b")));
        h.run_for(ms(2));
        assert_eq!(h.member_state("a", "b"), "dead@0");
        assert_eq!(h.node("a").stats().deaths_doubted, 0);
    }

    #[test]
    fn a_reconnect_address_that_answers_as_another_node_is_dropped() {
        // Scenario: b and c crash and are forgotten by a, which keeps both on
        // its reconnect list. Then c's address answers as "d", and b's as
        // "b" under a new key. a drops both entries and counts them; "d" is
        // a new member, and neither answer is taken for the old member (the
        // new "b" is a new identity, as after a lost key, not b refuting).
        let config = Config::local();
        let (reap, detect) = (config.dead_reap_after, config.suspicion_max * 2);
        let mut h = Harness::with_config(&["a", "b", "c"], config);
        h.run_for(secs(1));
        let old_b = h.member("a", "b").unwrap();
        h.stop("b");
        h.stop("c");
        h.run_for(reap + detect);
        assert_eq!(h.node("a").reconnect_list().len(), 2);
        let answer = |name: &str, addr, seed| {
            let id = NodeId::new(name, addr).unwrap();
            let me = Identity::from_seed(seed).member_update(
                &id,
                Incarnation(0),
                MemberState::Alive,
                None,
            );
            Message::push_pull(PushPull {
                kind: PushPullKind::Sync,
                members: vec![me],
                ..PushPull::default()
            })
        };
        let (b, c) = (h.addr("b"), h.addr("c"));
        h.inject(c, "a", answer("d", c, 41));
        h.inject(b, "a", answer("b", b, 42));
        h.run_for(ms(1));
        assert!(h.node("a").reconnect_list().is_empty());
        assert_eq!(h.node("a").stats().reconnect_mismatches, 2);
        assert_eq!(h.member_state("a", "d"), "alive@0");
        assert_eq!(h.member_state("a", "c"), "unknown");
        assert_ne!(h.member("a", "b").map(|m| m.key), Some(old_b.key));
    }

    #[test]
    fn an_operator_forgets_a_dead_member_and_its_name_takes_a_new_key() {
        // Scenario: c crashes and its key is lost. Restarted under a new key,
        // it is refused by a, which holds c dead under the old key. a's
        // operator cannot forget b (alive) nor a itself; it forgets c, and
        // c's new key is then taken. Forgetting c again finds nothing.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(1));
        h.stop("c");
        h.wait_for(secs(30), "a holding c dead", |h| {
            h.member_state("a", "c").starts_with("dead")
        });
        let c = NodeId::new("c", h.addr("c")).unwrap();
        let fresh =
            Identity::from_seed(77).member_update(&c, Incarnation(1), MemberState::Alive, None);
        let news = || {
            Message::Gossip(Gossip {
                updates: vec![fresh.clone()],
            })
        };
        h.inject(h.addr("c"), "a", news());
        h.run_for(ms(1));
        assert!(h.member_state("a", "c").starts_with("dead"));
        assert_eq!(h.node("a").stats().identity_conflicts, 1);
        for (name, who) in [("b", "b"), ("a", "a")] {
            assert_eq!(
                h.act("a", |n, now| n.forget(now, name)),
                Err(Error::StillLive(who.into()))
            );
        }
        assert_eq!(h.act("a", |n, now| n.forget(now, "c")), Ok(true));
        assert_eq!(h.member_state("a", "c"), "unknown");
        assert!(h.node("a").reconnect_list().is_empty());
        h.inject(h.addr("c"), "a", news());
        h.run_for(ms(1));
        assert_eq!(h.member("a", "c").map(|m| m.key), Some(fresh.key));
        assert_eq!(h.act("a", |n, now| n.forget(now, "zz")), Ok(false));
    }

    #[test]
    fn a_restored_reconnect_list_is_knocked_on_and_reunites() {
        // Scenario: a and b are strangers, as after a restart that forgot
        // everything but the reconnect list. a takes back an entry for b
        // (kept for an hour) and one already expired for "gone". Within one reconnect interval and one
        // push-pull round, a knocks on b, and the two see each other alive;
        // the expired entry was never taken.
        let config = Config::local();
        let (every, round) = (config.reconnect_interval, config.push_pull_interval);
        let mut h = Harness::strangers(&["a", "b"], config);
        let b = h.addr("b");
        let gone = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
        let entries = [
            (std::sync::Arc::from("b"), b, Time::ZERO + secs(3600)),
            (std::sync::Arc::from("gone"), gone, Time::ZERO),
        ];
        h.act("a", |n, now| n.restore_reconnect(now, &entries));
        let list = h.node("a").reconnect_list();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!((&*list[0].0, list[0].1), ("b", b));
        h.wait_for(every + round, "a and b meeting", |h| {
            h.member_state("a", "b") == "alive@0" && h.member_state("b", "a") == "alive@0"
        });
        assert!(h.node("a").stats().reconnect_attempts >= 1);
        assert!(h.node("a").reconnect_list().is_empty());
    }

    #[test]
    fn a_knock_on_a_seed_reunites_strangers() {
        // Scenario: a driver that lost members knocks on a seed again: a
        // knocks on b, a stranger; one push-pull later each knows the other.
        let mut h = Harness::strangers(&["a", "b"], Config::local());
        let b = h.addr("b");
        h.act("a", |n, now| n.knock(now, &[b, n.id().addr()]))
            .unwrap();
        assert_eq!(
            h.node("a").stats().reconnect_attempts,
            1,
            "its own address is skipped"
        );
        h.wait_for(ms(50), "a and b meeting", |h| {
            h.member_state("a", "b") == "alive@0" && h.member_state("b", "a") == "alive@0"
        });
    }
}
