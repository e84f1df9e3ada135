//! Push-pull anti-entropy: periodic exchanges that repair whatever rumours
//! and the tree missed (loss, partitions, late joiners), and the join.
//!
//! Membership and namespaces are compared by summary and exchanged only
//! where they differ:
//!
//! ```text
//! A -> B  Summary  {summaries}
//! B -> A  Sync     {membership digest if memberships differ, digest if states differ}
//! A -> B  Reply    {members B lacks, members A wants, A's digest, deltas B lacks}
//! B -> A  Deltas   {members A wants, deltas A lacks}
//! ```
//!
//! Membership goes by digest too: a line per member (name, incarnation,
//! state: some 15 bytes where a member's signed news is some 150), and
//! only the members one side holds newer news of travel in full. Under
//! loss, where summaries rarely agree for long, that is what keeps
//! anti-entropy cheap.
//!
//! A join opens with `Join` {the joiner, its digest} and the seed answers
//! as to a `Sync`. A node that holds a rumour it cannot apply yet (a gap)
//! sends a `Pull` with the digest lines it is behind on, answered with
//! `Deltas`. Merging what arrives is the node's business: this part builds
//! and answers the steps.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::membership::Membership;
use super::outbox::Ctx;
use super::paging::{cut_within, fill, side_by_side};
use super::replicas::Replicas;
use super::timers::{advance, first_tick};
use crate::member::{MemberState, MAX_NAME_LEN};
use crate::message::{DigestEntry, MemberLine, Message, Page, PushPull, PushPullKind};
use crate::time::Time;

/// Room kept beside the deltas of a push-pull for the length prefixes of the
/// envelope and the deltas field to grow.
const DELTAS_SLACK: usize = 16;

/// Room kept for a page's end (a cut may set it to any name, up to the
/// longest) and the length prefixes of the digests beside it. The page's
/// start is in the message when its room is measured.
const PAGE_SLACK: usize = (MAX_NAME_LEN + 3) + 3 * DELTAS_SLACK;

/// The fewest bytes a digest line takes (a one-byte name and two small
/// numbers): a digest with more lines than a message of this many bytes
/// holds cannot have come from an honest sender.
const SMALLEST_LINE: usize = 6;

/// The most pages awaiting an answer at once (each exchange in flight has
/// one; entries also expire after a push-pull interval).
const MAX_PAGING: usize = 1024;
/// How many times a page whose answer did not come is sent again.
const PAGE_RESENDS: u8 = 2;

/// How long a page's answer is waited for before the page goes again: a
/// quarter of a gossip interval, many round trips on a LAN.
fn page_wait(cx: &Ctx) -> Duration {
    cx.config.gossip_interval / 4
}

/// A page this node sent a peer (in a `Join` or `Sync`), until the answer.
#[derive(Debug)]
struct Paging {
    /// Where the exchange's first page started: it stops when it comes
    /// round to it.
    origin: Arc<str>,
    /// The page sent (`None`: every name).
    sent: Option<Page>,
    /// Which digests the pages carry.
    members: bool,
    data: bool,
    /// This node opened the exchange (a join): the answers' members were
    /// asked for.
    asked: bool,
    at: Time,
    /// How many times this page was sent again, its answer not come.
    resent: u8,
}

/// A join in progress: the seeds, knocked on again until one answers.
#[derive(Debug)]
struct Joining {
    seeds: Vec<SocketAddr>,
    next: Time,
    backoff: Duration,
    /// Tries sent so far, the first included.
    tries: u32,
}

/// Tries of an unanswered join sent one gossip interval apart before the
/// gaps start to double. On a lossy network a try fails when the join or
/// its answer is lost: at 20% loss each way, 1 − 0.8² = 36% of tries. With
/// doubling from the first retry (tries at 0, 0.2, 0.6, 1.4 and 3 s on the
/// LAN preset), 50 nodes joining at once through one seed at 20% loss
/// formed only at 3 or 5 s, waiting for their last node. Eight steady
/// tries (the last 1.4 s after the first on the LAN preset) leave a node
/// outside with a chance of 0.36⁸, under 1 in 3,000, for eight small
/// datagrams; a seed that is down is knocked on less often from then on.
const JOIN_STEADY_TRIES: u32 = 8;

/// The push-pull schedule and the join.
#[derive(Debug)]
pub(crate) struct AntiEntropy {
    next_round: Time,
    /// After a join, push-pulls come early and back off (doubling from one
    /// probe period) until they reach `push_pull_interval`: a node that
    /// joined during a burst of joins catches up with the members whose
    /// rumours ran out before it was known to their spreaders.
    catch_up: Option<Duration>,
    joining: Option<Joining>,
    /// After a join is answered: the seed, and when to walk its membership
    /// once more (see [`AntiEntropy::recheck`]).
    recheck: Option<(SocketAddr, Time)>,
    /// The first push-pull round at or after this also knocks on one
    /// address of the reconnect list.
    next_reconnect: Time,
    /// Addresses this node opened an exchange with (a summary or a join)
    /// and when, until they answer: members in their answer were asked for,
    /// and are not held to the introduction cap. Entries older than a
    /// push-pull interval are dropped each round.
    opened: BTreeMap<SocketAddr, Time>,
    /// The pages this node sent, by peer and first name, until answered:
    /// an answer names the page it answers by its first name, so pages of
    /// two exchanges in flight with one peer are told apart.
    paging: BTreeMap<(SocketAddr, Arc<str>), Paging>,
    /// The pages of `paging` this node asked for, by when each goes again
    /// if unanswered, so that timers never walk `paging`. An entry whose
    /// page was answered, or sent anew since, is stale and skipped.
    page_due: BTreeSet<(Time, SocketAddr, Arc<str>)>,
    /// Whether an exchange since the last round found summaries apart
    /// (one this node answered with a sync, or one of its own that was
    /// answered): the next round then opens with `push_pull_peers`
    /// peers, and else with one.
    differed: bool,
}

/// An exchange's opening: both summaries, nothing else.
fn opening(kind: PushPullKind, m: &Membership, r: &Replicas) -> PushPull {
    PushPull {
        kind,
        summary: m.table().summary(),
        state_summary: r.state_summary(),
        ..PushPull::default()
    }
}

/// `p` and the bytes left in it, keeping `slack`.
fn room(cx: &Ctx, p: PushPull, slack: usize) -> (PushPull, usize) {
    let msg = Message::push_pull(p);
    let room = cx.room(&msg, slack);
    let Message::PushPull(p) = msg else {
        unreachable!("wrapped just above")
    };
    (*p, room)
}

/// `p` with our digests for the names of `page`: the membership digest
/// (with `members`) and the namespace digest and metadata register (with
/// `data`), as many names as fit; the page, cut where they stopped, goes
/// along unless it is every name.
fn with_page(
    cx: &Ctx,
    m: &Membership,
    r: &Replicas,
    mut p: PushPull,
    mut page: Page,
    members: bool,
    data: bool,
) -> PushPull {
    if data {
        p.metadata = r.metadata().cloned();
    }
    p.page = Some(page.clone());
    let (mut p, left) = room(cx, p, PAGE_SLACK);
    let lines = members.then(|| m.lines_in(&page)).into_iter().flatten();
    let entries = data
        .then(|| r.store().digest_in(&page))
        .into_iter()
        .flatten();
    let (taken, cut) = fill(side_by_side(&page, lines, entries), left);
    let (lines, entries): (Vec<_>, Vec<_>) = taken.into_iter().unzip();
    if members {
        p.member_digest = Some(lines.into_iter().flatten().collect());
    }
    if data {
        p.digest = Some(entries.into_iter().flatten().collect());
    }
    if let Some(cut) = cut.filter(|c| cut_within(&page, c)) {
        page.to = Some(cut);
    }
    p.page = (page != Page::default()).then_some(page);
    p
}

/// The page from `from` round to `origin`, where an exchange started.
fn round_from(from: Arc<str>, origin: &Arc<str>) -> Page {
    Page {
        from,
        to: (!origin.is_empty()).then(|| origin.clone()),
    }
}

/// `p` filled with the deltas a peer with digest `theirs` lacks, in the
/// room left by the rest of the message (keeping `slack`), through `page`
/// if given; and the owner they stopped at if the room ran out.
fn with_deltas(
    cx: &mut Ctx,
    r: &Replicas,
    p: PushPull,
    theirs: &[DigestEntry],
    page: Option<&Page>,
    only_listed: bool,
    slack: usize,
) -> (PushPull, Option<Arc<str>>) {
    let (mut p, left) = room(cx, p, slack);
    let cut;
    (p.deltas, cut) = r.deltas_for(cx, theirs, left, page, only_listed);
    (p, cut)
}

/// The most lines a digest in a message of `max` bytes can hold.
fn line_limit(max: usize) -> usize {
    max / SMALLEST_LINE
}

impl AntiEntropy {
    pub(crate) fn new(cx: &mut Ctx) -> AntiEntropy {
        let c = &cx.config;
        let next_round = first_tick(c.timer_phase, c.push_pull_interval, cx.now, &mut cx.rng);
        AntiEntropy {
            next_round,
            catch_up: None,
            joining: None,
            recheck: None,
            next_reconnect: cx.now + c.reconnect_interval,
            opened: BTreeMap::new(),
            paging: BTreeMap::new(),
            page_due: BTreeSet::new(),
            differed: true,
        }
    }

    /// The first push-pull round at or after this knocks on the reconnect
    /// list.
    pub(crate) fn reconnect_due(&self) -> Time {
        self.next_reconnect
    }

    /// When the next push-pull round is due.
    pub(crate) fn deadline(&self) -> Time {
        self.next_round
    }

    /// When the join is to be tried again, while one is unanswered, when
    /// its seed's membership is to be walked once more, or when a page
    /// whose answer has not come goes again.
    pub(crate) fn join_deadline(&self) -> Option<Time> {
        let retry = self.joining.as_ref().map(|j| j.next);
        let recheck = self.recheck.map(|(_, at)| at);
        let resend = self.page_due.first().map(|(at, _, _)| *at);
        retry.into_iter().chain(recheck).chain(resend).min()
    }

    /// Stop joining (the node leaves).
    pub(crate) fn stop(&mut self) {
        self.joining = None;
    }

    // ----- join ----------------------------------------------------------

    /// Join through `seeds`: a state sync with each, retried every gossip
    /// interval for the first [`JOIN_STEADY_TRIES`] tries and then at
    /// doubling gaps (up to `join_retry_max_periods` probe periods) until
    /// one answers: under loss a join or its answer is lost often, and a
    /// node outside the cluster has nothing better to do than knock again.
    pub(crate) fn join(
        &mut self,
        cx: &mut Ctx,
        m: &Membership,
        r: &Replicas,
        seeds: Vec<SocketAddr>,
    ) {
        for seed in &seeds {
            self.send_join(cx, m, r, *seed);
        }
        let c = &cx.config;
        let backoff = c.gossip_interval.min(c.probe_period);
        if c.probe_period < c.push_pull_interval {
            self.catch_up = Some(c.probe_period);
            self.next_round = cx.now + c.probe_period;
        }
        self.joining = Some(Joining {
            seeds,
            next: cx.now + backoff,
            backoff,
            tries: 1,
        });
    }

    /// A join: ourselves, and our namespace digest (its first page). The
    /// seed answers with the members of that page, and the join goes on
    /// page by page while answers are cut short.
    fn send_join(&mut self, cx: &mut Ctx, m: &Membership, r: &Replicas, seed: SocketAddr) {
        self.open(cx, seed);
        let mut join = opening(PushPullKind::Join, m, r);
        join.members = vec![m.self_update(cx, MemberState::Alive)];
        let join = with_page(cx, m, r, join, Page::default(), false, true);
        self.sent_page(cx, seed, Arc::from(""), &join, true, 0);
        cx.send(seed, Message::push_pull(join));
    }

    /// Note the page of `p` (a `Join` or `Sync`), sent to `to`.
    fn sent_page(
        &mut self,
        cx: &Ctx,
        to: SocketAddr,
        origin: Arc<str>,
        p: &PushPull,
        asked: bool,
        resent: u8,
    ) {
        let paging = Paging {
            origin,
            sent: p.page.clone(),
            // A join's answer carries members: its next pages ask for them.
            members: p.member_digest.is_some() || p.kind == PushPullKind::Join,
            data: p.digest.is_some(),
            asked,
            at: cx.now,
            resent,
        };
        let from = paging
            .sent
            .as_ref()
            .map_or_else(|| Arc::from(""), |g| g.from.clone());
        let room = self.paging.len() < MAX_PAGING;
        let due = (cx.now + page_wait(cx), to, from.clone());
        match self.paging.entry((to, from)) {
            // A join's pages go on whatever else is exchanged meanwhile.
            Entry::Occupied(e) if e.get().asked && !asked => return,
            Entry::Occupied(mut e) => {
                e.insert(paging);
            }
            Entry::Vacant(e) if room => {
                e.insert(paging);
            }
            Entry::Vacant(_) => return,
        }
        // Only the pages of an exchange this node asked for go again.
        if asked {
            self.page_due.insert(due);
        }
    }

    /// Walk `seed`'s membership and namespaces once more, all the way
    /// round, a gossip interval after it answered our join. The join's
    /// answer is a snapshot: a member that joined through the same seed
    /// just after it, whose push down the tree passed before this node
    /// grafted, is in no page of it, and with small messages its rumour
    /// may wait behind a burst of others. Digests only where both agree.
    fn walk(&mut self, cx: &mut Ctx, m: &Membership, r: &Replicas, seed: SocketAddr) {
        self.open(cx, seed);
        let sync = opening(PushPullKind::Sync, m, r);
        let sync = with_page(cx, m, r, sync, Page::default(), true, true);
        self.sent_page(cx, seed, Arc::from(""), &sync, true, 0);
        cx.send(seed, Message::push_pull(sync));
    }

    /// Knock on the seeds again, or walk the seed's membership once more
    /// when that is due.
    pub(crate) fn retry_join(&mut self, cx: &mut Ctx, m: &Membership, r: &Replicas) {
        self.resend_pages(cx, m, r);
        if let Some((seed, at)) = self.recheck {
            if cx.now >= at {
                self.recheck = None;
                self.walk(cx, m, r, seed);
            }
        }
        let Some(j) = &mut self.joining else { return };
        if cx.now < j.next {
            return;
        }
        j.tries += 1;
        if j.tries >= JOIN_STEADY_TRIES {
            let longest = cx.config.probe_period * cx.config.join_retry_max_periods;
            j.backoff = (j.backoff * 2).min(longest);
        }
        j.next = cx.now + j.backoff;
        let seeds = j.seeds.clone();
        for seed in seeds {
            self.send_join(cx, m, r, seed);
        }
    }

    // ----- rounds --------------------------------------------------------

    /// The push-pull round: open an exchange with each of the round's
    /// peers (see [`Membership::push_pull_peers`]). Each opening is only a
    /// summary, so a round costs a few dozen bytes per peer when all agree.
    /// After a round in which every exchange found the summaries equal,
    /// on a network not `lossy` and outside a join's catch-up, one peer
    /// is enough: anti-entropy backs off while there is nothing to repair,
    /// and the first difference any exchange finds brings the full round
    /// back.
    pub(crate) fn round(&mut self, cx: &mut Ctx, m: &mut Membership, r: &Replicas, lossy: bool) {
        let busy = self.differed || lossy || self.catch_up.is_some();
        self.differed = false;
        let count = if busy { cx.config.push_pull_peers } else { 1 };
        let now = cx.now;
        let interval = cx.config.push_pull_interval;
        self.next_round = match self.catch_up {
            Some(gap) => {
                let gap = gap * 2;
                self.catch_up = (gap < interval).then_some(gap);
                now + gap.min(interval)
            }
            None => advance(self.next_round, interval, now),
        };
        self.opened.retain(|_, at| *at + interval > now);
        self.paging.retain(|_, p| p.at + interval > now);
        for peer in m.push_pull_peers(cx, count) {
            self.open(cx, peer.addr());
            let msg = opening(PushPullKind::Summary, m, r);
            cx.send(peer.addr(), Message::push_pull(msg));
        }
        if now >= self.next_reconnect {
            self.next_reconnect = now + cx.config.reconnect_interval;
            if let Some(addr) = m.next_reconnect(now) {
                self.knock(cx, m, r, addr);
            }
        }
    }

    /// Open an exchange with `addr`, a member or not (a seed given at
    /// start, say): a summary, as a reconnect knock sends.
    pub(crate) fn knock(&mut self, cx: &mut Ctx, m: &Membership, r: &Replicas, addr: SocketAddr) {
        cx.stats.reconnect_attempts += 1;
        self.open(cx, addr);
        let msg = opening(PushPullKind::Summary, m, r);
        cx.send(addr, Message::push_pull(msg));
    }

    fn open(&mut self, cx: &Ctx, addr: SocketAddr) {
        self.opened.insert(addr, cx.now);
    }

    /// Whether a `Sync` or `Reply` from `from` answers an exchange this
    /// node opened (each opening is answered once).
    pub(crate) fn answers_ours(&mut self, from: SocketAddr) -> bool {
        let ours = self.opened.remove(&from).is_some();
        self.differed |= ours;
        ours
    }

    /// While the network is lossy: one extra opening, of namespaces only,
    /// with one random live member. It costs a summary when the two agree.
    pub(crate) fn repair_round(cx: &mut Ctx, m: &mut Membership, r: &Replicas) {
        if let Some(peer) = m.table_mut().random_live(1, &[], &mut cx.rng).pop() {
            // No membership summary: namespaces only. Membership has its
            // own repair, and under loss its summaries rarely agree.
            let msg = PushPull {
                summary: 0,
                ..opening(PushPullKind::Summary, m, r)
            };
            cx.send(peer.addr(), Message::push_pull(msg));
        }
    }

    // ----- the steps -----------------------------------------------------

    /// `Summary`: answer with a `Sync` of what differs, or stay silent. A
    /// summary of 0 opens an exchange of namespaces only. The digests go
    /// in one page if they fit, and else from a random member's name.
    pub(crate) fn on_summary(
        &mut self,
        cx: &mut Ctx,
        m: &Membership,
        r: &Replicas,
        from: SocketAddr,
        p: &PushPull,
    ) {
        let members = p.summary != 0 && p.summary != m.table().summary();
        let state = p.state_summary != r.state_summary();
        if !members && !state {
            return;
        }
        self.differed = true;
        let opening = || opening(PushPullKind::Sync, m, r);
        let mut sync = with_page(cx, m, r, opening(), Page::default(), members, state);
        let mut origin = Arc::from("");
        if sync.page.is_some() {
            origin = m.random_name(cx);
            let page = round_from(origin.clone(), &origin);
            sync = with_page(cx, m, r, opening(), page, members, state);
        }
        self.sent_page(cx, from, origin, &sync, false, 0);
        cx.send(from, Message::push_pull(sync));
    }

    /// Cut a peer's digests to what one message could hold, counting it.
    pub(crate) fn bound(cx: &mut Ctx, p: &mut PushPull) {
        let limit = line_limit(cx.config.max_message_size);
        let mut cut = false;
        if let Some(lines) = &mut p.member_digest {
            cut |= lines.len() > limit;
            lines.truncate(limit);
        }
        if let Some(entries) = &mut p.digest {
            cut |= entries.len() > limit;
            entries.truncate(limit);
        }
        cut |= p.wanted.len() > limit;
        p.wanted.truncate(limit);
        if cut {
            cx.stats.digests_truncated += 1;
        }
    }

    /// `Join` or `Sync` (already merged): answer with a `Reply` for the
    /// page of their digests (all of it if none is named). For a join, or
    /// a membership digest, the members of the page they lack and, before
    /// them, the names of those we want; if their namespace digest came,
    /// ours for the page, with the deltas they lack. Each part goes in
    /// page order until the message is full; the `Reply`'s page says how
    /// far it got.
    pub(crate) fn on_sync(
        &mut self,
        cx: &mut Ctx,
        m: &Membership,
        r: &Replicas,
        from: SocketAddr,
        p: &PushPull,
    ) {
        let page = p.page.clone().unwrap_or_default();
        let mut to = page.to.clone();
        // A part cut at the page's first name got nowhere past it (the
        // room went to the parts before, or to part of that name's delta):
        // the answer then ends at its start, covering nothing, and the
        // other side sends the same page again, now showing what this one
        // brought. No later part may go on past it: a page whose end is
        // its start would run all the way round.
        let mut stopped = false;
        // Whether `cut` stops the answer at the page's start.
        let cut_at = |cut: Option<Arc<str>>, to: &mut Option<Arc<str>>| match cut {
            Some(c) if c == page.from => {
                *to = Some(c);
                true
            }
            Some(c) if cut_within(&page, &c) => {
                *to = Some(c);
                false
            }
            _ => false,
        };
        let mut reply = opening(PushPullKind::Reply, m, r);
        reply.page = Some(Page {
            from: page.from.clone(),
            to: None,
        });
        let none: &[MemberLine] = &[];
        let lines = match p.kind {
            PushPullKind::Join => Some(none),
            _ => p.member_digest.as_deref(),
        };
        if let Some(lines) = lines {
            let (mut reply_, left) = room(cx, reply, PAGE_SLACK);
            let cut;
            (reply_.members, reply_.wanted, cut) = m.compare(lines, &page, left);
            stopped = cut_at(cut, &mut to);
            if !reply_.wanted.is_empty() {
                // The members asked for come in the closing message: an
                // answer, not an introduction.
                self.open(cx, from);
            }
            reply = reply_;
        }
        if let Some(theirs) = &p.digest {
            reply.metadata = r.metadata().cloned();
            // The deltas first: a digest of a long page could fill the
            // message, and the deltas are what the other side came for.
            let mut digest = Vec::new();
            if !stopped {
                let covered = Page {
                    from: page.from.clone(),
                    to: to.clone(),
                };
                let cut;
                (reply, cut) = with_deltas(cx, r, reply, theirs, Some(&covered), false, PAGE_SLACK);
                stopped = cut_at(cut, &mut to);
            }
            if !stopped {
                let covered = Page {
                    from: page.from.clone(),
                    to: to.clone(),
                };
                let left;
                (reply, left) = room(cx, reply, PAGE_SLACK);
                let cut;
                (digest, cut) = fill(r.store().digest_in(&covered), left);
                stopped = cut_at(cut, &mut to);
            }
            // An answer that covers nothing has no digest: an empty one
            // would say that this node holds nothing.
            reply.digest = (!stopped).then_some(digest);
        }
        reply.page = (p.page.is_some() || to.is_some()).then_some(Page {
            from: page.from,
            to,
        });
        cx.send(from, Message::push_pull(reply));
    }

    /// `Reply` (already merged): close with the members they want and the
    /// `Deltas` they lack (of the page the reply covered), end a join that
    /// this answers, and go on with the next page if the reply was cut
    /// short.
    pub(crate) fn on_reply(
        &mut self,
        cx: &mut Ctx,
        m: &Membership,
        r: &Replicas,
        from: SocketAddr,
        p: &PushPull,
    ) {
        let close = opening(PushPullKind::Deltas, m, r);
        let (mut close, left) = room(cx, close, DELTAS_SLACK);
        close.members = m.news_named(&p.wanted, left);
        let mut send = !close.members.is_empty();
        if let Some(theirs) = &p.digest {
            (close, _) = with_deltas(cx, r, close, theirs, p.page.as_ref(), false, DELTAS_SLACK);
            if !close.deltas.is_empty() || p.metadata.as_ref() != r.metadata() {
                close.metadata = r.metadata().cloned();
                send = true;
            }
        }
        if send {
            cx.send(from, Message::push_pull(close));
        }
        let answered = self
            .joining
            .as_ref()
            .is_some_and(|j| j.seeds.contains(&from));
        if answered {
            self.recheck = Some((from, cx.now + cx.config.gossip_interval));
        }
        if answered || m.table().live_others() > 0 {
            self.joining = None;
        }
        self.next_page(cx, m, r, from, p);
    }

    /// After a `Reply` from `from`: if it answered a page we sent only up
    /// to a cut, send the page from the cut round to where the exchange
    /// started; if it answered the page in full and brought anything, send
    /// our next page. An answer whose page matches none we sent is counted
    /// and not gone on from.
    fn next_page(
        &mut self,
        cx: &mut Ctx,
        m: &Membership,
        r: &Replicas,
        from: SocketAddr,
        p: &PushPull,
    ) {
        let Some(covered) = &p.page else {
            // The answer to an exchange in one message: it is over.
            self.paging.remove(&(from, Arc::from("")));
            return;
        };
        let Some(paging) = self.paging.remove(&(from, covered.from.clone())) else {
            cx.stats.pages_ignored += 1;
            return;
        };
        let sent = paging.sent.clone().unwrap_or_default();
        let brought = !p.members.is_empty() || !p.deltas.is_empty();
        if covered.to == sent.to {
            // Answered in full: our next page, if this one was not our
            // last and the answer brought anything, or the exchange is our
            // join or its walk (which go all the way round: a page whose
            // members the newcomer knew already says nothing of the
            // next); in a round, a page that differed in nothing ends it.
            match sent.to.clone().filter(|b| *b != paging.origin) {
                Some(b) if brought || paging.asked => self.send_page(cx, m, r, from, b, paging, 0),
                _ => {}
            }
            return;
        }
        let Some(cut) = covered.to.clone() else {
            cx.stats.pages_ignored += 1;
            return;
        };
        if cut == sent.from {
            // Cut at its start: the same page again, if the answer brought
            // anything (what it brought shows in our digests now).
            if !brought {
                return;
            }
        } else if !cut_within(&sent, &cut) {
            cx.stats.pages_ignored += 1;
            return;
        }
        self.send_page(cx, m, r, from, cut, paging, 0);
    }

    /// Send again, up to `PAGE_RESENDS` times, each page of an exchange
    /// this node asked for (its join's walk of the seed, and the walk once
    /// more) whose answer has not come within `page_wait`: a lost page, or
    /// a lost answer, would otherwise end the walk there, and what the
    /// later pages hold would wait for a catch-up round seconds later (a
    /// walk has a dozen pages with small messages; at 10% loss one in five
    /// is lost one way or the other). The join's first page is the join's
    /// own retry's. A page that answers another node's summary is not sent
    /// again: a summary is a few bytes and its answer a page, and one
    /// spoofed summary is not to bring three.
    fn resend_pages(&mut self, cx: &mut Ctx, m: &Membership, r: &Replicas) {
        let now = cx.now;
        let wait = page_wait(cx);
        while let Some((at, to, from)) = self.page_due.first().cloned() {
            if at > now {
                break;
            }
            self.page_due.pop_first();
            let key = (to, from.clone());
            let due = self
                .paging
                .get(&key)
                .is_some_and(|p| p.asked && p.at + wait <= now && p.resent < PAGE_RESENDS);
            let joining = self.joining.as_ref().is_some_and(|j| j.seeds.contains(&to));
            if !due || joining {
                continue;
            }
            let Some(paging) = self.paging.remove(&key) else {
                continue;
            };
            let resent = paging.resent + 1;
            cx.stats.pages_resent += 1;
            self.send_page(cx, m, r, to, from, paging, resent);
        }
    }

    /// Go on with the exchange `paging` with `to`: the page from `from`,
    /// sent `resent` times before (its answer lost).
    #[allow(clippy::too_many_arguments)]
    fn send_page(
        &mut self,
        cx: &mut Ctx,
        m: &Membership,
        r: &Replicas,
        to: SocketAddr,
        from: Arc<str>,
        paging: Paging,
        resent: u8,
    ) {
        let page = round_from(from, &paging.origin);
        let next = opening(PushPullKind::Sync, m, r);
        let next = with_page(cx, m, r, next, page, paging.members, paging.data);
        if paging.asked {
            self.open(cx, to);
        }
        self.sent_page(cx, to, paging.origin, &next, paging.asked, resent);
        cx.stats.pages_sent += 1;
        cx.send(to, Message::push_pull(next));
    }

    /// `Pull`: the deltas of the owners asked for.
    pub(crate) fn on_pull(
        cx: &mut Ctx,
        m: &Membership,
        r: &Replicas,
        from: SocketAddr,
        p: &PushPull,
    ) {
        let Some(theirs) = &p.digest else { return };
        let pull = opening(PushPullKind::Deltas, m, r);
        let (answer, _) = with_deltas(cx, r, pull, theirs, None, true, DELTAS_SLACK);
        if !answer.deltas.is_empty() {
            cx.send(from, Message::push_pull(answer));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::harness::*;
    use crate::*;

    #[test]
    fn an_unanswered_join_is_tried_every_gossip_interval_eight_times_then_less_often() {
        // Scenario: b joins through a, and every answer from a is lost.
        // b tries every gossip interval (100 ms) eight times, then waits
        // twice as long each time, up to two probe periods (1 s). Once the
        // answers get through, the next try joins b.
        let mut h = Harness::strangers(&["a", "b"], Config::local());
        let lost = h.drop_kind("a", "b", "*");
        let seed = h.addr("a");
        h.act("b", |n, now| n.join(now, &[seed])).unwrap();
        h.run_for(secs(5));
        let tries: Vec<u64> = h
            .messages("b", "a", "push-pull/join")
            .iter()
            .map(|m| m.at.as_micros() / 1000)
            .collect();
        let gaps: Vec<u64> = tries.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps[..7], [100; 7], "{tries:?}");
        assert_eq!(gaps[7..10], [200, 400, 800], "{tries:?}");
        assert!(gaps[10..].iter().all(|&g| g == 1000), "{tries:?}");
        h.allow(lost);
        h.run_for(secs(1));
        assert!(h.node("b").member("a").is_some());
    }

    #[test]
    fn a_joiner_walks_its_seed_once_more_and_finds_who_joined_just_after() {
        // Scenario: p joins through n00; 2 ms later, once n00 has answered p, q joins through n00
        // too. p's answer is a snapshot without q, and every message to p but push-pulls is lost
        // (no push, rumour or piggyback brings q). A gossip interval (100 ms) after its join was
        // answered, p walks n00's membership once more, all the way round, and finds q: p knows q
        // within 150 ms, long before its first catch-up push-pull (a probe period, 500 ms).
        let names: Vec<String> = (0..10).map(|i| format!("n{i:02}")).collect();
        let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
        all.extend(["p", "q"]);
        let mut h = Harness::strangers(&all, Config::local());
        h.introduce_all(&names);
        h.run_for(secs(1));
        h.drop_where(|_, to, m| to == "p" && !matches!(m, Message::PushPull(_)));
        let seed = h.addr("n00");
        h.act("p", |n, now| n.join(now, &[seed])).unwrap();
        h.run_for(ms(2));
        assert!(
            h.node("p").members().count() > 1,
            "p's join was not answered"
        );
        h.act("q", |n, now| n.join(now, &[seed])).unwrap();
        h.run_for(ms(50));
        assert!(
            h.node("p").member("q").is_none(),
            "q reached p some other way"
        );
        h.wait_for(ms(100), "p knowing q", |h| {
            h.node("p").member("q").is_some()
        });
    }

    #[test]
    fn a_quiet_round_opens_with_one_peer_and_a_difference_brings_back_all() {
        // Scenario: five nodes agree on everything, rounds aligned every 5 s. The first round
        // opens with three peers, each quiet round after with one. Then b writes a key whose
        // pushes and announcements never reach a: a's one exchange of the next round finds the
        // summaries apart (and brings the key), so a's round after that opens with all three
        // peers again, and the next, quiet again, with one.
        let config = Config {
            timer_phase: TimerPhase::Aligned,
            ..Config::local()
        };
        let pp = config.push_pull_interval;
        let mut h = Harness::with_config(&["a", "b", "c", "d", "e"], config);
        let opened = |h: &Harness, round: u32| {
            let at = Time::ZERO + pp * round;
            h.messages("a", "*", "push-pull/summary")
                .into_iter()
                .filter(|s| s.at >= at && s.at < at + ms(100))
                .count()
        };
        h.run_for(pp * 3 + ms(200));
        assert_eq!(
            [opened(&h, 0), opened(&h, 1), opened(&h, 2), opened(&h, 3)],
            [3, 1, 1, 1]
        );
        h.drop_where(|_, to, m| to == "a" && matches!(m, Message::Eager(_) | Message::IHave(_)));
        h.act("b", |n, now| n.put(now, "k", b"v")).unwrap();
        h.run_for(pp);
        assert!(
            value(&h, "a", "b", "k").is_some(),
            "the round brought b's key"
        );
        h.run_for(pp * 2);
        assert_eq!([opened(&h, 4), opened(&h, 5), opened(&h, 6)], [1, 3, 1]);
    }

    #[test]
    fn the_dead_are_knocked_on_in_turn() {
        // Scenario: of five nodes, b, c, d and e crash; a declares all four dead. From then on
        // each of a's push-pull rounds opens with one dead member, the next in name order, so in
        // any four rounds each of the four gets exactly one summary (random picks would give
        // that one time in ten), well before the reap forgets them.
        let mut h = Harness::new(&["a", "b", "c", "d", "e"]);
        h.run_for(ms(50));
        for x in ["b", "c", "d", "e"] {
            h.stop(x);
        }
        h.wait_for(secs(30), "a holding the four dead", |h| {
            ["b", "c", "d", "e"]
                .iter()
                .all(|x| h.member_state("a", x).starts_with("dead"))
        });
        let from = h.sent("a", "*", "push-pull/summary");
        let pp = Config::local().push_pull_interval;
        h.run_for(pp * 4);
        let knocks: Vec<&str> = h.messages("a", "*", "push-pull/summary")[from..]
            .iter()
            .map(|s| s.to.as_str())
            .collect();
        assert_eq!(knocks.len(), 4, "{knocks:?}");
        let mut seen = knocks.clone();
        seen.sort();
        assert_eq!(seen, ["b", "c", "d", "e"], "{knocks:?}");
        let walk = ["b", "c", "d", "e", "b", "c", "d"];
        assert!(walk.windows(4).any(|w| w == knocks), "{knocks:?}");
    }

    #[test]
    fn a_refutation_goes_back_to_the_peer_that_said_this_node_was_dead() {
        // Scenario: a and b are cut apart until each holds the other dead, then the cut heals.
        // Each knocks on its dead with a push-pull round. In the first exchange across, each
        // hears from the other that it is dead and refutes; the refutation goes straight back
        // as a Gossip (a rumour would reach no one: each holds the other dead), so both see
        // each other alive within that exchange, not an exchange later.
        let mut h = Harness::new(&["a", "b"]);
        h.run_for(ms(50));
        let cut = h.partition(&["a"], &["b"]);
        h.wait_for(secs(30), "a and b holding each other dead", |h| {
            h.member_state("a", "b").starts_with("dead")
                && h.member_state("b", "a").starts_with("dead")
        });
        h.allow(cut);
        let before = h.sent("*", "*", "push-pull/summary");
        h.wait_for(
            Config::local().push_pull_interval * 2,
            "a summary across",
            |h| h.sent("*", "*", "push-pull/summary") > before,
        );
        h.wait_for(ms(100), "a and b alive to each other", |h| {
            h.member_state("a", "b").starts_with("alive")
                && h.member_state("b", "a").starts_with("alive")
        });
        let returned =
            h.node("a").stats().refutations_returned + h.node("b").stats().refutations_returned;
        assert!(returned >= 1, "{returned}");
        let back = h.messages("*", "*", "gossip");
        assert!(back.iter().any(|s| match &s.msg {
            Message::Gossip(g) => g
                .updates
                .iter()
                .any(|u| u.id.name() == s.from && u.state == MemberState::Alive),
            _ => false,
        }));
    }

    #[test]
    fn a_forged_death_in_a_push_pull_draws_nothing_back() {
        // Scenario: a stranger sends a a push-pull Deltas saying a is dead, signed under a key
        // that is not a's. a refuses it (an identity conflict): its incarnation stays, and
        // nothing goes back to the stranger; only a refutation is returned, and there was none.
        let mut h = Harness::new(&["a", "b"]);
        h.run_for(ms(50));
        let stranger: std::net::SocketAddr = "10.9.9.9:7946".parse().unwrap();
        let a = h.node("a").member("a").unwrap();
        let forged = Identity::from_seed(777).member_update(
            &a.id,
            Incarnation(a.incarnation.0 + 1),
            MemberState::Dead,
            None,
        );
        let deltas = PushPull {
            kind: PushPullKind::Deltas,
            members: vec![forged],
            ..PushPull::default()
        };
        h.inject(stranger, "a", Message::push_pull(deltas));
        h.run_for(secs(1));
        assert_eq!(
            h.member_state("a", "a"),
            format!("alive@{}", a.incarnation.0)
        );
        assert_eq!(h.node("a").stats().identity_conflicts, 1);
        assert_eq!(h.node("a").stats().refutations_returned, 0);
        assert_eq!(h.sent("a", &stranger.to_string(), "*"), 0);
    }

    #[test]
    fn an_answer_to_a_summary_is_not_sent_again() {
        // Scenario: a stranger's address sends a a summary that differs from a's (a spoofed one
        // would look the same), and never answers. a answers with one Sync page; a page of an
        // exchange a asked for would go again after a quarter gossip interval, but this one is
        // not: in a second, one Sync to that address and nothing sent again. A few bytes of
        // summary bring one page, however the answer fares.
        let mut h = Harness::new(&["a", "b"]);
        h.run_for(ms(50));
        let stranger: std::net::SocketAddr = "10.9.9.9:7946".parse().unwrap();
        let summary = PushPull {
            kind: PushPullKind::Summary,
            summary: 12345,
            ..PushPull::default()
        };
        h.inject(stranger, "a", Message::push_pull(summary));
        h.run_for(secs(1));
        assert_eq!(h.sent("a", &stranger.to_string(), "push-pull/sync"), 1);
        assert_eq!(h.node("a").stats().pages_resent, 0);
    }

    #[test]
    fn equal_summaries_stop_at_the_opening() {
        // Scenario: a and b hold the same membership and no data. For two push-pull intervals each
        // opens exchanges with a bare Summary; the summaries agree, so no Sync, Reply or Deltas
        // ever follows.
        let mut h = Harness::new(&["a", "b"]);
        h.run_for(Config::local().push_pull_interval * 2 + ms(10));
        assert!(h.sent("a", "b", "push-pull/summary") >= 2);
        assert!(h.sent("b", "a", "push-pull/summary") >= 2);
        for kind in ["push-pull/sync", "push-pull/reply", "push-pull/deltas"] {
            assert_eq!(h.sent("*", "*", kind), 0, "{kind}");
        }
        for s in h.messages("*", "*", "push-pull/summary") {
            let p = push_pull(&s.msg);
            assert!(p.members.is_empty() && p.digest.is_none() && p.deltas.is_empty());
        }
    }

    #[test]
    fn different_membership_is_exchanged_by_digest() {
        // Scenario: a knows b and c, but b and c have never heard of each other, and nothing is
        // rumoured. Their summaries differ from a's, so exchanges with a go Summary -> Sync
        // (membership digest: no member in full) -> Reply (the members the other side lacks, and
        // the names it wants) -> Deltas (the members wanted), until b and c know each other as
        // alive; no data differs, so no data digest.
        let mut h = Harness::strangers(&["a", "b", "c"], Config::local());
        for (x, y) in [("a", "b"), ("b", "a"), ("a", "c"), ("c", "a")] {
            h.introduce(x, y);
        }
        h.run_for(secs(1));
        assert_eq!(h.member_state("b", "c"), "unknown");
        h.wait_for(secs(12), "b and c knowing each other", |h| {
            h.member_state("b", "c") == "alive@0" && h.member_state("c", "b") == "alive@0"
        });
        let syncs = h.messages("*", "*", "push-pull/sync");
        assert!(!syncs.is_empty());
        for s in syncs {
            let p = push_pull(&s.msg);
            let lines = p.member_digest.as_ref().map_or(0, Vec::len);
            assert!(
                p.members.is_empty() && lines >= 2 && p.digest.is_none(),
                "{p:?}"
            );
        }
        // Each side sends only what the other lacks: c reaches b in a reply
        // or in a closing message that b's reply wanted.
        let carried_c_to_b = h
            .messages("*", "b", "push-pull")
            .iter()
            .any(|s| push_pull(&s.msg).members.iter().any(|u| u.id.name() == "c"));
        assert!(carried_c_to_b);
        let wanted = h.messages("*", "*", "push-pull/reply");
        assert!(wanted.iter().any(|s| !push_pull(&s.msg).wanted.is_empty()));
        for s in h.messages("*", "*", "push-pull/deltas") {
            let p = push_pull(&s.msg);
            assert!(!p.members.is_empty() && p.deltas.is_empty(), "{p:?}");
        }
        let summary = h.node("a").membership_summary();
        assert_eq!(h.node("b").membership_summary(), summary);
        assert_eq!(h.node("c").membership_summary(), summary);
    }

    #[test]
    fn different_state_is_exchanged_as_deltas() {
        // Scenario: a writes x and b writes y while every data-plane message between them is lost
        // (eager pushes, announcements, grafts, prunes). Their state summaries differ, so a
        // push-pull goes Summary -> Sync (digest) -> Reply (digest and deltas) -> Deltas, and both
        // end up holding both keys.
        let mut h = Harness::new(&["a", "b"]);
        h.drop_where(|_, _, m| {
            matches!(
                m,
                Message::Eager(_) | Message::IHave(_) | Message::Graft(_) | Message::Prune(_)
            )
        });
        h.act("a", |n, now| n.put(now, "x", b"1")).unwrap();
        h.act("b", |n, now| n.put(now, "y", b"2")).unwrap();
        h.run_for(ms(500));
        assert_eq!(value(&h, "b", "a", "x"), None);
        h.wait_for(secs(12), "a and b converging", |h| {
            value(h, "b", "a", "x").as_deref() == Some("1")
                && value(h, "a", "b", "y").as_deref() == Some("2")
        });
        let syncs = h.messages("*", "*", "push-pull/sync");
        assert!(!syncs.is_empty());
        let p = push_pull(&syncs[0].msg);
        assert!(p.members.is_empty() && p.digest.is_some(), "{p:?}");
        assert!(h.sent("*", "*", "push-pull/reply") >= 1);
        assert!(h.sent("*", "*", "push-pull/deltas") >= 1);
        assert_eq!(h.node("a").state_summary(), h.node("b").state_summary());
    }
}
