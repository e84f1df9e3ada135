//! The broadcast tree: Plumtree (Leitão et al., 2007) over the full
//! membership instead of a partial view.
//!
//! Fresh data is pushed at once, on first receipt, along eager links; a
//! duplicate prunes the link it came over (`Prune`), so eager links thin to
//! a spanning tree. Ids of fresh data are announced (`IHave`, the lazy
//! push) to random peers each gossip round; a node that hears of something
//! it lacks asks the announcer for it after a short wait (`Graft`), which
//! also links it back into the tree. Beyond the paper:
//!
//! - **adoption**: a push of data that anti-entropy delivered first is the
//!   tree's own path, not a duplicate: the link stays and the data goes on;
//! - **hot lazy links**: a pruned link hears a few ids once a round for one
//!   push-pull interval, so a tree cut by two racing prunes finds its pieces
//!   (the last few pruned only: `hot_lazy_links`);
//! - **mending**: while grafts are seen, or probes miss acks, announcements
//!   last longer and go to more peers;
//! - **held rumours**: a push that arrives before the versions it follows
//!   waits in the store's gap buffer, and is passed on down the tree once
//!   the gap fills.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::gossip::Gossiper;
use super::membership::Membership;
use super::outbox::Ctx;
use super::replicas::Replicas;
use crate::member::NodeId;
use crate::message::{Datum, DatumId, Eager, Graft, IHave, MemberUpdate, Message, Prune};
use crate::time::Time;
use crate::wire;

/// Room kept for the envelope's length prefix in an announcement.
const LENGTH_PREFIX_SLACK: usize = 4;
/// Room kept for the envelope's length prefix in a push of membership news.
const NEWS_SLACK: usize = 2;

/// A push of data down one eager link.
fn data_push(data: Vec<Datum>) -> Message {
    Message::Eager(Eager {
        data,
        updates: Vec::new(),
    })
}

/// A push of membership news down one eager link.
fn news_push(updates: Vec<MemberUpdate>) -> Message {
    Message::Eager(Eager {
        data: Vec::new(),
        updates,
    })
}

/// Data heard of but not held.
#[derive(Debug)]
struct Missing {
    /// Who announced it, asked in turn.
    announcers: VecDeque<SocketAddr>,
    /// When to ask the next announcer.
    deadline: Time,
    /// When to give up asking and leave it to anti-entropy.
    expires: Time,
}

/// A run of an owner's versions that arrived by anti-entropy.
#[derive(Debug)]
struct OffTree {
    generation: u32,
    /// Versions after this one...
    from: u64,
    /// ...up to this one.
    to: u64,
    until: Time,
}

/// This node's links in the broadcast tree and what it remembers to repair it.
#[derive(Debug, Default)]
pub(crate) struct Plumtree {
    /// Peers fresh data is pushed to at once.
    eager: BTreeSet<SocketAddr>,
    /// Recently pruned links, until when they stay hot.
    lazy: BTreeMap<SocketAddr, Time>,
    /// Fresh data remembered while this node had no eager link (its own
    /// writes before it joined): pushed down the first links it gets.
    /// At most `max_broadcasts`, the oldest dropped.
    unpushed: VecDeque<DatumId>,
    /// Until when this node announces harder: it sent or answered a graft
    /// lately, so the tree is missing nodes around it.
    mending_until: Time,
    /// Data heard of but not held, with who has it.
    missing: BTreeMap<DatumId, Missing>,
    /// `missing` by deadline, so that timers never walk `missing` (a burst
    /// of writes makes it long). An entry whose datum left `missing` or
    /// whose deadline moved is stale and skipped.
    missing_due: BTreeSet<(Time, DatumId)>,
    /// Recent data, to answer grafts: at most `max_broadcasts`, none kept
    /// past two push-pull intervals (see [`Plumtree::expire`]).
    recent: BTreeMap<DatumId, Datum>,
    /// Ids of `recent`, oldest first, with when each arrived.
    recent_order: VecDeque<(Time, DatumId)>,
    /// Versions that arrived by anti-entropy (push-pull or a pull) rather
    /// than along the tree, per owner, until when they count as recent:
    /// the tree's own push of them comes after and is not a duplicate.
    off_tree: BTreeMap<Arc<str>, OffTree>,
    /// The same for the metadata register.
    off_tree_metadata: Option<(DatumId, Time)>,
    /// Newcomers whose join this node answered, until when membership news
    /// is pushed to them too (see [`Plumtree::welcome`]), oldest first.
    newcomers: VecDeque<(SocketAddr, Time)>,
    /// Membership news held for `tree.news_hold`, each with the address it
    /// came from, so that a burst goes down each link in one message.
    held: Vec<(MemberUpdate, Option<SocketAddr>)>,
    /// When the held news goes, if any is held.
    held_until: Option<Time>,
    /// Fresh data to announce off the tree soon, on a lossy network (see
    /// [`Plumtree::announce_soon`]), and when.
    soon: Vec<DatumId>,
    soon_at: Option<Time>,
    /// No announcement off the tree soon before this: one a gossip round.
    soon_after: Time,
}

/// The most ids one announcement off the tree soon carries; the rest wait
/// for the gossip rounds.
const SOON_KEPT: usize = 16;

impl Plumtree {
    /// The eager links, in address order.
    pub(crate) fn eager_links(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.eager.iter().copied()
    }

    // ----- eager push ----------------------------------------------------

    /// Remember a fresh datum (to answer grafts) and push it along every
    /// eager link but the one it came over.
    pub(crate) fn push(&mut self, cx: &mut Ctx, datum: &Datum, from: Option<SocketAddr>) {
        self.remember(cx, datum);
        if self.eager.is_empty() {
            if self.unpushed.len() >= cx.config.max_broadcasts {
                self.unpushed.pop_front();
            }
            self.unpushed.push_back(datum.id());
        }
        for &p in &self.eager {
            if Some(p) != from {
                cx.send(p, data_push(vec![datum.clone()]));
            }
        }
    }

    /// Remember a fresh datum without pushing it (the periodic modes).
    pub(crate) fn remember(&mut self, cx: &Ctx, datum: &Datum) {
        let id = datum.id();
        if self.recent.insert(id.clone(), datum.clone()).is_none() {
            self.recent_order.push_back((cx.now, id));
        }
        while self.recent_order.len() > cx.config.max_broadcasts {
            if let Some((_, old)) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    /// A fresh datum arrived: it is no longer missing, and when it came by
    /// eager push its link is a tree link.
    pub(crate) fn arrived(&mut self, cx: &mut Ctx, id: &DatumId, eager_from: Option<SocketAddr>) {
        self.missing.remove(id);
        if let Some(from) = eager_from {
            self.eager.insert(from);
            self.push_unpushed(cx);
        }
    }

    /// A duplicate came by eager push over the link from `from`: prune it.
    pub(crate) fn prune(&mut self, cx: &mut Ctx, from: SocketAddr) {
        self.eager.remove(&from);
        self.keep_lazy(cx, from);
        cx.stats.prunes += 1;
        cx.send(from, Message::Prune(Prune));
    }

    /// The peer at `from` pruned its link to us.
    pub(crate) fn on_prune(&mut self, cx: &Ctx, from: SocketAddr) {
        self.eager.remove(&from);
        self.keep_lazy(cx, from);
    }

    /// A link was pruned: keep it hot for announcements for a while, and
    /// no more than `hot_lazy_links` of them, the longest hot let go.
    fn keep_lazy(&mut self, cx: &Ctx, peer: SocketAddr) {
        self.lazy.retain(|_, until| *until > cx.now);
        self.lazy
            .insert(peer, cx.now + cx.config.push_pull_interval);
        while self.lazy.len() > cx.config.tree.hot_lazy_links {
            let oldest = self
                .lazy
                .iter()
                .min_by_key(|&(addr, until)| (*until, *addr))
                .map(|(addr, _)| *addr);
            if let Some(addr) = oldest {
                self.lazy.remove(&addr);
            }
        }
    }

    /// A member is no longer live: stop pushing to it.
    pub(crate) fn forget_peer(&mut self, addr: SocketAddr) {
        self.eager.remove(&addr);
        self.lazy.remove(&addr);
    }

    // ----- adoption ------------------------------------------------------

    /// Whether a datum we hold came by anti-entropy lately and has not come
    /// along the tree since (what did is in `recent`).
    pub(crate) fn arrived_off_tree(&self, now: Time, datum: &Datum) -> bool {
        let id = datum.id();
        if self.recent.contains_key(&id) {
            return false;
        }
        match &id {
            DatumId::Record {
                owner,
                generation,
                version,
            } => self.off_tree.get(owner).is_some_and(|o| {
                o.until > now
                    && o.generation == *generation
                    && o.from < *version
                    && *version <= o.to
            }),
            DatumId::Metadata { .. } => self
                .off_tree_metadata
                .as_ref()
                .is_some_and(|(held, until)| *held == id && *until > now),
        }
    }

    /// Versions `from+1..=to` of `owner` arrived by anti-entropy.
    pub(crate) fn note_off_tree(
        &mut self,
        cx: &Ctx,
        owner: &Arc<str>,
        generation: u32,
        from: u64,
        to: u64,
    ) {
        let now = cx.now;
        let until = now + cx.config.push_pull_interval;
        match self.off_tree.get_mut(owner) {
            // Contiguous with a run still current: extend it.
            Some(o) if o.generation == generation && o.until > now && o.to >= from => {
                o.to = o.to.max(to);
                o.from = o.from.min(from);
                o.until = until;
            }
            _ => {
                let run = OffTree {
                    generation,
                    from,
                    to,
                    until,
                };
                self.off_tree.insert(owner.clone(), run);
            }
        }
    }

    /// The metadata register `id` arrived by anti-entropy.
    pub(crate) fn note_off_tree_metadata(&mut self, cx: &Ctx, id: DatumId) {
        self.off_tree_metadata = Some((id, cx.now + cx.config.push_pull_interval));
    }

    /// Forget what is no longer recent (each push-pull round): runs of
    /// anti-entropy arrivals, and data that came a push-pull interval ago
    /// or more. A graft for such data comes too late to matter: its
    /// grafter gave up asking a push-pull interval after it heard of it,
    /// and anti-entropy brings it (a graft left unanswered turns to the
    /// next announcer, then to a pull). Without this an idle node kept
    /// its last `max_broadcasts` data for good, values and all.
    pub(crate) fn expire(&mut self, now: Time, interval: Duration) {
        while let Some((at, _)) = self.recent_order.front() {
            if *at + interval > now {
                break;
            }
            if let Some((_, old)) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
        self.off_tree.retain(|_, o| o.until > now);
        if self
            .off_tree_metadata
            .as_ref()
            .is_some_and(|(_, until)| *until <= now)
        {
            self.off_tree_metadata = None;
        }
    }

    /// With no eager link, link to `fanout` random live peers (a graft
    /// with no ids): each gossip round, and as soon as a join is answered,
    /// so that a newcomer hears the tree's pushes from then on rather than
    /// from its first gossip round.
    pub(crate) fn link_if_alone(&mut self, cx: &mut Ctx, m: &mut Membership) {
        if !self.eager.is_empty() {
            return;
        }
        let peers = m
            .table_mut()
            .random_live(cx.config.fanout, &[], &mut cx.rng);
        for p in peers {
            self.eager.insert(p.addr());
            cx.send(p.addr(), Message::Graft(Graft::default()));
        }
        self.push_unpushed(cx);
    }

    /// Push what was remembered while no eager link existed down the links
    /// there are now. Announcements alone lost it: while many nodes write at
    /// once, an id waits in a queue of thousands, and a 1,400-byte
    /// announcement holds some 70.
    fn push_unpushed(&mut self, cx: &mut Ctx) {
        if self.eager.is_empty() || self.unpushed.is_empty() {
            return;
        }
        let data: Vec<Datum> = std::mem::take(&mut self.unpushed)
            .iter()
            .filter_map(|id| self.recent.get(id).cloned())
            .collect();
        for datum in data {
            for &p in &self.eager {
                cx.send(p, data_push(vec![datum.clone()]));
            }
        }
    }

    /// This node answered `joiner`'s join: push it the membership news of
    /// the next quarter of a gossip interval too, as if it were an eager
    /// link (long enough for the answer to arrive and the joiner's grafts
    /// to land on a LAN; a whole interval cost 12% more messages in a
    /// 1,000-node cold start for the same gain). The
    /// answer carries the members known when it was made, and the joiner
    /// links into the tree only once it has the answer; news that passed
    /// this node in between (another join, in a cold start where every
    /// join comes through the seeds) would otherwise reach the joiner only
    /// by a gossip round. Data does not use this: the tree's shape is
    /// untouched.
    pub(crate) fn welcome(&mut self, cx: &Ctx, joiner: SocketAddr) {
        let until = cx.now + cx.config.gossip_interval / 4;
        self.newcomers.retain(|(a, t)| *a != joiner && *t > cx.now);
        self.newcomers.push_back((joiner, until));
    }

    /// Membership news of the step just taken: held for `tree.news_hold`
    /// from the first of a burst (pushed at once if that is zero), then
    /// pushed with whatever came meanwhile (see [`Plumtree::push_news`]).
    pub(crate) fn hold_news(
        &mut self,
        cx: &mut Ctx,
        news: Vec<(MemberUpdate, Option<SocketAddr>)>,
    ) {
        if news.is_empty() {
            return;
        }
        self.held.extend(news);
        let until = *self
            .held_until
            .get_or_insert(cx.now + cx.config.tree.news_hold);
        if cx.now >= until {
            self.push_held(cx);
        }
    }

    /// When the held membership news goes, if any is held.
    pub(crate) fn news_deadline(&self) -> Option<Time> {
        self.held_until
    }

    /// Push the held membership news now.
    pub(crate) fn push_held(&mut self, cx: &mut Ctx) {
        if self.held.is_empty() {
            return;
        }
        self.held_until = None;
        let news = std::mem::take(&mut self.held);
        self.push_news(cx, &news);
    }

    /// Membership news (`Config::eager_membership`): pushed at once along
    /// every eager link but the one it came over, and to the newcomers
    /// still welcome (see [`Plumtree::welcome`]), as many to an `Eager` as
    /// fit. A duplicate prunes nothing: the links are shaped by data, and
    /// the news only floods them; the gossip rounds still carry it too.
    fn push_news(&mut self, cx: &mut Ctx, news: &[(MemberUpdate, Option<SocketAddr>)]) {
        if news.is_empty() {
            return;
        }
        while self.newcomers.front().is_some_and(|(_, t)| *t <= cx.now) {
            self.newcomers.pop_front();
        }
        let newcomers = self
            .newcomers
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| !self.eager.contains(a));
        let room = cx.room(&news_push(Vec::new()), NEWS_SLACK);
        // Sized once, not once a link.
        let sizes: Vec<usize> = news
            .iter()
            .map(|(u, _)| wire::update_field_len(u))
            .collect();
        for link in self.eager.iter().copied().chain(newcomers) {
            let mut updates = Vec::with_capacity(news.len());
            let mut left = room;
            for ((u, _), &size) in news
                .iter()
                .zip(&sizes)
                .filter(|((_, source), _)| *source != Some(link))
            {
                if size > left && !updates.is_empty() {
                    let full = std::mem::take(&mut updates);
                    cx.send(link, news_push(full));
                    left = room;
                }
                left = left.saturating_sub(size);
                updates.push(u.clone());
            }
            if !updates.is_empty() {
                cx.send(link, news_push(updates));
            }
        }
    }

    // ----- lazy push and graft -------------------------------------------

    /// The gossip round's part: link to `fanout` random peers if this node
    /// has no eager link, then announce the ids of fresh data to random
    /// peers and, a few of them, over the hot lazy links.
    pub(crate) fn announce(
        &mut self,
        cx: &mut Ctx,
        m: &mut Membership,
        fresh: &mut Gossiper,
        lossy: bool,
    ) {
        let now = cx.now;
        let t = &cx.config.tree;
        let (rounds, fanout) = if now < self.mending_until || lossy {
            (t.mending_announce_rounds, t.mending_announce_peers)
        } else {
            (t.announce_rounds, t.announce_peers)
        };
        let lazy_ids = t.lazy_announce_ids;
        self.link_if_alone(cx, m);
        if fresh.is_empty() {
            return;
        }
        let room = cx.room(&Message::IHave(IHave::default()), LENGTH_PREFIX_SLACK);
        let ids = fresh.take_ids(room, rounds);
        let peers: Vec<SocketAddr> = m
            .table_mut()
            .random_live(fanout, &[], &mut cx.rng)
            .iter()
            .map(NodeId::addr)
            .collect();
        for p in &peers {
            let ihave = IHave { ids: ids.clone() };
            cx.send(*p, Message::IHave(ihave));
        }
        // Recently pruned links hear of some of it too: if two broadcasts
        // raced and cut the tree, the cut runs along them, and one id the
        // piece lacks is enough for it to graft back (the versions before
        // it follow by a gap pull). Once a round and a few ids, so that a
        // burst of writes costs one small message per link and round.
        let few: Vec<DatumId> = ids.iter().take(lazy_ids).cloned().collect();
        for (&p, &until) in &self.lazy {
            if until > now && !self.eager.contains(&p) && !peers.contains(&p) {
                let ihave = IHave { ids: few.clone() };
                cx.send(p, Message::IHave(ihave));
            }
        }
    }

    /// On a lossy network, a fresh datum is announced soon, not only from
    /// the next gossip round on: `tree.graft_wait` after it arrived, to
    /// `tree.lossy_announce_peers` random live peers off the tree, with
    /// whatever else arrived meanwhile. A push lost on its way down the
    /// tree leaves the node below, and everything under it, waiting for an
    /// announcement; from the gossip rounds alone one came some half a
    /// round later on average, and the slowest of many such waits set how
    /// long a write took to reach everyone. Waiting a graft's wait first
    /// gives the tree's own push that long to arrive before anyone below
    /// hears of the datum, so that a slow hop does not draw a graft (a
    /// version that announced at once did worse on 200 nodes sharing two
    /// cores: README, "Writes on a lossy network announced soon"). At most
    /// one such announcement goes a gossip round, of at most
    /// [`SOON_KEPT`] ids: under a heavy write load the gossip rounds'
    /// announcements carry the rest.
    pub(crate) fn announce_soon(&mut self, cx: &Ctx, id: DatumId) {
        if cx.config.tree.lossy_announce_peers == 0 || self.soon.len() >= SOON_KEPT {
            return;
        }
        self.soon.push(id);
        let at = (cx.now + cx.config.tree.graft_wait).max(self.soon_after);
        self.soon_at.get_or_insert(at);
    }

    /// When the data to announce soon is announced, if any.
    pub(crate) fn soon_deadline(&self) -> Option<Time> {
        self.soon_at
    }

    /// Announce the data noted by [`Plumtree::announce_soon`].
    pub(crate) fn announce_noted(&mut self, cx: &mut Ctx, m: &mut Membership) {
        self.soon_at = None;
        self.soon_after = cx.now + cx.config.gossip_interval;
        let ids = std::mem::take(&mut self.soon);
        let eager = &self.eager;
        let peers = m.table_mut().random_live_where(
            cx.config.tree.lossy_announce_peers,
            &[],
            &mut cx.rng,
            |id| !eager.contains(&id.addr()),
        );
        for p in peers {
            cx.stats.announced_soon += 1;
            let ihave = IHave { ids: ids.clone() };
            cx.send(p.addr(), Message::IHave(ihave));
        }
    }

    /// An announcement: note what we lack and who has it; a graft follows
    /// after `tree.graft_wait` unless it arrives meanwhile.
    pub(crate) fn on_ihave(
        &mut self,
        cx: &Ctx,
        holds: impl Fn(&DatumId) -> bool,
        from: SocketAddr,
        ids: Vec<DatumId>,
    ) {
        let wait = cx.config.tree.graft_wait;
        for id in ids {
            if holds(&id) {
                continue;
            }
            let id_for_due = id.clone();
            let missing = self.missing.entry(id).or_insert_with(|| Missing {
                announcers: VecDeque::new(),
                deadline: cx.now + wait,
                expires: cx.now + cx.config.push_pull_interval,
            });
            self.missing_due.insert((missing.deadline, id_for_due));
            if missing.announcers.len() < cx.config.tree.max_announcers
                && !missing.announcers.contains(&from)
            {
                missing.announcers.push_back(from);
            }
        }
    }

    /// A graft: link the grafter eagerly, send what it asked for, and tell
    /// it what else arrived lately (it was cut off, and may have missed
    /// that too).
    pub(crate) fn on_graft(&mut self, cx: &mut Ctx, from: SocketAddr, ids: Vec<DatumId>) {
        self.eager.insert(from);
        self.lazy.remove(&from);
        self.push_unpushed(cx);
        let t = &cx.config.tree;
        let window = cx.config.gossip_interval * t.recent_rounds_on_graft;
        let max_recent = t.max_recent_on_graft;
        if !ids.is_empty() {
            self.mending_until = cx.now + cx.config.gossip_interval * t.mending_rounds;
        }
        let data: Vec<Datum> = ids
            .iter()
            .filter_map(|id| self.recent.get(id).cloned())
            .collect();
        if !data.is_empty() {
            cx.send(from, data_push(data));
        }
        if ids.is_empty() {
            return;
        }
        let now = cx.now;
        let others: Vec<DatumId> = self
            .recent_order
            .iter()
            .rev()
            .take_while(|(at, _)| now - *at <= window)
            .map(|(_, id)| id)
            .filter(|id| !ids.contains(id))
            .take(max_recent)
            .cloned()
            .collect();
        if !others.is_empty() {
            cx.send(from, Message::IHave(IHave { ids: others }));
        }
    }

    /// When the next missing datum is due to be asked for.
    pub(crate) fn graft_deadline(&self) -> Option<Time> {
        self.missing_due.first().map(|(at, _)| *at)
    }

    /// Ask for what is still missing: each from its next announcer (a
    /// graft), or, once every announcer was asked and nothing came (loss),
    /// from a random live peer, most of which hold it by now.
    pub(crate) fn graft_missing(&mut self, cx: &mut Ctx, m: &mut Membership, r: &mut Replicas) {
        let now = cx.now;
        let mut due: Vec<DatumId> = Vec::new();
        while let Some((at, _)) = self.missing_due.first() {
            if *at > now {
                break;
            }
            let (at, id) = self.missing_due.pop_first().expect("first exists");
            if self.missing.get(&id).is_some_and(|m| m.deadline == at) {
                due.push(id);
            }
        }
        let mut grafts: BTreeMap<SocketAddr, Vec<DatumId>> = BTreeMap::new();
        let mut pulls: Vec<DatumId> = Vec::new();
        let wait = cx.config.tree.graft_wait;
        for id in due {
            if r.holds(m, &id) {
                self.missing.remove(&id);
                continue;
            }
            let Some(missing) = self.missing.get_mut(&id) else {
                continue;
            };
            if missing.expires <= now {
                self.missing.remove(&id);
                continue;
            }
            missing.deadline = now + wait;
            self.missing_due.insert((missing.deadline, id.clone()));
            match missing.announcers.pop_front() {
                Some(a) => grafts.entry(a).or_default().push(id),
                None => pulls.push(id),
            }
        }
        if !grafts.is_empty() {
            self.mending_until = now + cx.config.gossip_interval * cx.config.tree.mending_rounds;
        }
        for (to, ids) in grafts {
            cx.stats.grafts += 1;
            self.eager.insert(to);
            self.lazy.remove(&to);
            cx.send(to, Message::Graft(Graft { ids }));
        }
        self.push_unpushed(cx);
        if !pulls.is_empty() {
            if let Some(peer) = m.table_mut().random_live(1, &[], &mut cx.rng).pop() {
                self.pull_missing(cx, r, peer.addr(), pulls);
            }
        }
    }

    /// Ask `peer` for data still missing: records by a targeted pull of
    /// their owners (it answers with all it holds), metadata by a graft.
    fn pull_missing(
        &mut self,
        cx: &mut Ctx,
        r: &mut Replicas,
        peer: SocketAddr,
        ids: Vec<DatumId>,
    ) {
        let mut meta = Vec::new();
        let mut owners = BTreeMap::new();
        for id in ids {
            match id {
                DatumId::Record {
                    owner, generation, ..
                } => {
                    let g = owners.entry(owner).or_insert(generation);
                    *g = (*g).max(generation);
                }
                m @ DatumId::Metadata { .. } => meta.push(m),
            }
        }
        // One pull per owner: it brings every version the peer holds.
        for (owner, generation) in owners {
            r.pull_gap(cx, peer, &owner, generation);
        }
        if !meta.is_empty() {
            cx.stats.grafts += 1;
            cx.send(peer, Message::Graft(Graft { ids: meta }));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::harness::*;
    use crate::*;

    /// 20 nodes that know each other run for a second (each grafts eager
    /// links in its first gossip rounds); then `new` joins through n00 and
    /// n05 leaves. Whether every node knew of the join, and then of the
    /// leave, within `within` of each.
    fn news_everywhere_within(eager_membership: bool, within: Duration) -> (bool, bool) {
        let config = Config {
            eager_membership,
            ..Config::local()
        };
        news_everywhere_within_under(config, within)
    }

    fn news_everywhere_within_under(config: Config, within: Duration) -> (bool, bool) {
        let old: Vec<String> = (0..20).map(|i| format!("n{i:02}")).collect();
        let mut all: Vec<&str> = old.iter().map(String::as_str).collect();
        all.push("new");
        let mut h = Harness::strangers(&all, config);
        h.introduce_all(&old);
        h.run_for(secs(1));
        let seed = h.addr("n00");
        h.act("new", |n, now| n.join(now, &[seed])).unwrap();
        h.run_for(within);
        let joined = old.iter().all(|o| h.member(o, "new").is_some());
        h.run_for(secs(1));
        h.act("n05", |n, now| n.leave(now)).unwrap();
        h.run_for(within);
        let left = old
            .iter()
            .filter(|o| *o != "n05")
            .all(|o| h.member_state(o, "n05").starts_with("left"));
        (joined, left)
    }

    #[test]
    fn membership_news_rides_the_eager_links() {
        // Scenario: see `news_everywhere_within`. With eager_membership, the seed pushes the join
        // down its eager links at once and every node passes it on, as fresh data goes; the
        // leaver pushes its own Left the same way: all 20 hear of each within 15 ms (1 ms a
        // hop, and 1 ms held at each, `tree.news_hold` of the local preset). Gossip rounds are 100 ms apart and a rumour goes to 3 peers a round, so without
        // it (the same seeds and run) some node has not heard of either by then.
        assert_eq!(news_everywhere_within(true, ms(15)), (true, true));
        assert_eq!(news_everywhere_within(false, ms(15)), (false, false));
    }

    /// 20 nodes that know each other (eager links grafted), then three
    /// joiners through n00 within 2 ms, with membership news held `hold`:
    /// the pushes down the tree n00 sent in the next 30 ms, and whether every
    /// old node knew all three joiners by then.
    fn a_burst_of_joins(hold: Duration) -> (usize, bool) {
        let old: Vec<String> = (0..20).map(|i| format!("n{i:02}")).collect();
        let mut all: Vec<&str> = old.iter().map(String::as_str).collect();
        all.extend(["p", "q", "r"]);
        let mut config = Config::local();
        config.tree.news_hold = hold;
        let mut h = Harness::strangers(&all, config);
        h.introduce_all(&old);
        h.run_for(secs(1));
        let before = h.sent("n00", "*", "eager");
        let seed = h.addr("n00");
        for j in ["p", "q", "r"] {
            h.act(j, |n, now| n.join(now, &[seed])).unwrap();
            h.run_for(ms(1));
        }
        h.run_for(ms(27));
        let sent = h.sent("n00", "*", "eager") - before;
        let known = old
            .iter()
            .all(|o| ["p", "q", "r"].iter().all(|j| h.member(o, j).is_some()));
        (sent, known)
    }

    #[test]
    fn held_membership_news_goes_down_each_link_once_for_a_burst() {
        // Scenario: see `a_burst_of_joins`. Pushed at once, each of the
        // three joins goes down each of n00's eager links (and to the
        // joiners welcomed) in a message of its own; held 3 ms from the
        // first, they share one a link. Both ways every node knows all
        // three within 30 ms (a hop is 1 ms, plus 3 held).
        let (at_once, known_at_once) = a_burst_of_joins(Duration::ZERO);
        let (held, known_held) = a_burst_of_joins(ms(3));
        assert!(known_at_once && known_held, "{known_at_once} {known_held}");
        assert!(
            held >= 1 && held * 2 <= at_once,
            "held {held}, at once {at_once}"
        );
    }

    #[test]
    fn a_leave_is_not_held() {
        // Scenario: see `news_everywhere_within`, with membership news held
        // 50 ms. The join waits at every hop, so within 15 ms not every
        // node knows of it; the leave is urgent and goes at once at every
        // hop, so all 19 know within 15 ms, as when nothing is held.
        let mut config = Config::local();
        config.tree.news_hold = ms(50);
        assert_eq!(news_everywhere_within_under(config, ms(15)), (false, true));
    }

    #[test]
    fn writes_made_before_the_first_link_go_down_it() {
        // Scenario: 10 nodes that know each other have grafted their eager links. "w" writes
        // three keys while it knows nobody, then learns the 10. Announcements and push-pulls are
        // all lost, so only eager pushes can carry the writes: w pushes them down the links it
        // grafts in its first gossip round, and every node holds them within two rounds (200 ms).
        // Before, they waited in w's announcement queue, and here never arrived.
        let old: Vec<String> = (0..10).map(|i| format!("n{i:02}")).collect();
        let mut all: Vec<&str> = old.iter().map(String::as_str).collect();
        all.push("w");
        let mut h = Harness::strangers(&all, Config::local());
        h.introduce_all(&old);
        h.run_for(secs(1));
        for k in ["a", "b", "c"] {
            h.act("w", |n, now| n.put(now, k, b"v")).unwrap();
        }
        h.drop_where(|_, _, m| matches!(m, Message::IHave(_) | Message::PushPull(_)));
        h.introduce_all(&all);
        h.wait_for(ms(200), "every node holding w's three keys", |h| {
            old.iter().all(|o| h.node(o).list("w", "").len() == 3)
        });
    }

    /// 20 nodes n00..n19 that know each other, a second after they met
    /// (their eager links grafted), and "p" and "q" who know no one.
    fn twenty_and_two_strangers() -> Harness {
        let old: Vec<String> = (0..20).map(|i| format!("n{i:02}")).collect();
        let mut all: Vec<&str> = old.iter().map(String::as_str).collect();
        all.extend(["p", "q"]);
        let mut h = Harness::strangers(&all, Config::local());
        h.introduce_all(&old);
        h.run_for(secs(1));
        h
    }

    #[test]
    fn a_newcomer_links_into_the_tree_when_its_join_is_answered() {
        // Scenario: 20 nodes that know each other have grafted their eager links. "p" joins
        // through n00, and 5 ms later "q" joins through n07, most likely before p's first gossip
        // round (rounds are 100 ms apart, at a random phase; with this seed it has not come, as
        // the same test without the graft fails). p grafts as soon as its join is answered, so it
        // is in the tree when q's join is pushed down it: p knows q within 10 ms.
        let mut h = twenty_and_two_strangers();
        let (n00, n07) = (h.addr("n00"), h.addr("n07"));
        h.act("p", |n, now| n.join(now, &[n00])).unwrap();
        h.run_for(ms(5));
        assert!(h.sent("p", "*", "graft") > 0, "p has not grafted");
        h.act("q", |n, now| n.join(now, &[n07])).unwrap();
        h.run_for(ms(10));
        assert_eq!(h.member_state("p", "q"), "alive@0");
        assert!(h.node("p").eager_links().count() > 0);
    }

    #[test]
    fn a_joiner_hears_of_the_joins_its_seed_takes_after_answering_it() {
        // Scenario: 20 nodes that know each other have grafted their eager links. "p" joins
        // through n00, whose answer is held on the way (a slow stream): p is in nobody's tree
        // and knows no one. "q" then joins through n00 too. n00 answered p's join within the
        // last quarter round, so it pushes q's join to p as down an eager link: p knows q two
        // hops (2 ms) after q joined, before its own answer has come (without the welcome, p
        // heard of q only from a gossip round or a push-pull, the same test failing).
        let mut h = twenty_and_two_strangers();
        let n00 = h.addr("n00");
        h.hold_kind("n00", "p", "push-pull");
        h.act("p", |n, now| n.join(now, &[n00])).unwrap();
        h.run_for(ms(3));
        h.act("q", |n, now| n.join(now, &[n00])).unwrap();
        h.run_for(ms(3));
        assert_eq!(h.member_state("p", "q"), "alive@0");
        assert_eq!(h.sent("n00", "p", "eager"), 1, "q's join, pushed");
        assert!(h.member("p", "n05").is_none(), "p's answer came");
        h.release();
        h.run_for(ms(5));
        assert_eq!(h.node("p").alive_members(), 22);
    }

    #[test]
    fn a_join_sent_from_an_address_not_the_joiners_is_answered_but_not_welcomed() {
        // Scenario: p's join to n00 is caught on the way and replayed to n00 from an outsider's
        // address. n00 takes p's signed alive (at p's own address) and answers the outsider, as
        // any join is answered; but it holds no member alive at the outsider's address, so the
        // outsider gets none of the news that follows: q's join, 5 ms later, goes down n00's
        // eager links and not to it. Only an address this node holds alive for a signed join is
        // pushed to.
        let mut h = twenty_and_two_strangers();
        let n00 = h.addr("n00");
        h.drop_kind("p", "n00", "push-pull/join");
        h.act("p", |n, now| n.join(now, &[n00])).unwrap();
        h.run_for(ms(2));
        let join = h.messages("p", "n00", "push-pull/join")[0].msg.clone();
        let outsider: std::net::SocketAddr = "10.9.9.9:7946".parse().unwrap();
        h.inject(outsider, "n00", join);
        h.run_for(ms(2));
        assert_eq!(h.member_state("n00", "p"), "alive@0");
        assert!(
            h.sent("n00", &outsider.to_string(), "push-pull") > 0,
            "answered"
        );
        h.act("q", |n, now| n.join(now, &[n00])).unwrap();
        h.run_for(ms(5));
        assert!(h.sent("n00", "*", "eager") > 0, "q's join pushed");
        assert_eq!(h.sent("n00", &outsider.to_string(), "eager"), 0);
    }

    #[test]
    fn a_burst_of_joins_through_one_seed_is_known_everywhere_within_a_round_and_a_half() {
        // Scenario: 60 strangers all join through n00 at the same instant. Each join's answer is
        // a snapshot: a joiner misses the joins n00 takes in after answering it, and n00 has no
        // eager link yet when the first joins arrive. A node that holds a member from its join's
        // answer passes the member's news on down the tree the first time it hears it as a
        // rumour, so the pushes go through nodes that knew it already: every node knows all 60
        // within one and a half gossip rounds (150 ms; without that pass-on it fails), well before
        // the catch-up push-pull a probe period (500 ms) after each join, which completed the
        // view before.
        let names: Vec<String> = (0..60).map(|i| format!("n{i:02}")).collect();
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut h = Harness::strangers(&all, Config::local());
        let seed = h.addr("n00");
        for n in &all[1..] {
            h.act(n, |node, now| node.join(now, &[seed])).unwrap();
        }
        h.wait_for(ms(150), "every node knowing all 60", |h| {
            all.iter().all(|x| h.node(x).alive_members() == 60)
        });
    }

    #[test]
    fn membership_news_is_pushed_on_once_and_repeats_go_nowhere() {
        // Scenario: a, b and c know each other and have grafted their eager links; d knows only
        // itself. c sends a d's own signed alive ten times over (a stranger's introduction, as
        // gossip). The first changes a's view, so a pushes it along its eager links (but not back
        // to c); the nine repeats change nothing and a passes none of them on. A peer cannot make
        // the tree echo a message: each genuine change costs a node one push per link.
        let mut h = Harness::strangers(&["a", "b", "c", "d"], Config::local());
        h.introduce_all(&["a", "b", "c"]);
        h.run_for(secs(1));
        let links: Vec<_> = h.node("a").eager_links().collect();
        assert!(!links.is_empty(), "a grafted no eager link");
        let before = h.sent("a", "*", "eager");
        let alive = own_news(&h, "d");
        for _ in 0..10 {
            let news = Message::Gossip(Gossip {
                updates: vec![alive.clone()],
            });
            h.inject(h.addr("c"), "a", news);
        }
        h.run_for(ms(2));
        assert_eq!(h.member_state("a", "d"), "alive@0");
        let pushes = h.sent("a", "*", "eager") - before;
        let to_others = links.iter().filter(|l| **l != h.addr("c")).count();
        assert!(to_others > 0, "a's only eager link is c");
        assert_eq!(pushes, to_others, "one push per eager link but c's");
        assert_eq!(h.sent("a", "c", "eager"), 0);
    }

    #[test]
    fn a_duplicate_eager_push_prunes_its_link() {
        // Scenario: a, b and c start fully linked (by their first gossip rounds' grafts and
        // hand-made ones). a writes x and pushes it to b and c; each passes it on to the other, so
        // b and c each get a duplicate, answer it with a Prune, and drop that link. The tree left
        // is b-a-c, and a second write reaches both with no duplicate.
        let mut h = Harness::new(&["a", "b", "c"]);
        link_all(&mut h, &["a", "b", "c"]);
        h.act("a", |n, now| n.put(now, "x", b"1")).unwrap();
        h.settle();
        assert_eq!(h.sent("b", "c", "prune"), 1);
        assert_eq!(h.sent("c", "b", "prune"), 1);
        assert_eq!(h.node("b").stats().prunes, 1);
        assert_eq!(links(&h, "a"), ["b", "c"]);
        assert_eq!(links(&h, "b"), ["a"]);
        assert_eq!(links(&h, "c"), ["a"]);
        let duplicates = |h: &Harness| {
            ["b", "c"]
                .map(|n| h.node(n).stats().data_duplicates)
                .iter()
                .sum::<u64>()
        };
        assert_eq!(duplicates(&h), 2);
        h.act("a", |n, now| n.put(now, "y", b"2")).unwrap();
        h.settle();
        assert_eq!(value(&h, "b", "a", "y").as_deref(), Some("2"));
        assert_eq!(value(&h, "c", "a", "y").as_deref(), Some("2"));
        assert_eq!(h.sent("*", "*", "prune"), 2);
        assert_eq!(duplicates(&h), 2);
    }

    #[test]
    fn only_the_last_pruned_links_stay_hot() {
        // Scenario: 20 nodes, all linked to n00. Nineteen prunes reach n00 one after another (as on
        // a lossy network, where links are grafted and pruned without pause). n00 then writes x:
        // its next gossip round announces x to its random peers and to the hot lazy links, which
        // are only the last `hot_lazy_links` (8) pruned, not all nineteen (without the bound, 16 or
        // more are told).
        let names: Vec<String> = (0..20).map(|i| format!("n{i:02}")).collect();
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut h = Harness::new(&all);
        link_all(&mut h, &all);
        for (i, n) in all[1..].iter().enumerate() {
            h.inject(h.addr(n), "n00", Message::Prune(Prune));
            h.run_for(ms(1 + i as u64 % 2));
        }
        assert!(links(&h, "n00").is_empty());
        let before = h.sent("n00", "*", "ihave");
        h.act("n00", |n, now| n.put(now, "x", b"1")).unwrap();
        h.run_for(Config::local().gossip_interval);
        let announced: std::collections::BTreeSet<String> = h.messages("n00", "*", "ihave")
            [before..]
            .iter()
            .map(|s| s.to.clone())
            .collect();
        let t = Config::local().tree;
        assert_eq!((t.hot_lazy_links, t.mending_announce_peers), (8, 2));
        assert!(!announced.is_empty());
        assert!(announced.len() <= 8 + 2, "{announced:?}");
    }

    #[test]
    fn an_announcement_of_missing_data_leads_to_a_graft() {
        // Scenario: hand-made Prunes from b's address make a and c stop pushing to b. a writes x;
        // only c gets it eagerly. a's and c's next gossip rounds announce x (IHave); b lacks it,
        // waits `tree.graft_wait` (25 ms; it waited half a gossip interval, 50 ms, before it was
        // configured) for a push that does not come, grafts the first announcer, and gets x in the
        // answer; the grafted node pushes to b again from then on.
        let mut h = Harness::new(&["a", "b", "c"]);
        link_all(&mut h, &["a", "b", "c"]);
        h.inject(h.addr("b"), "a", Message::Prune(Prune));
        h.inject(h.addr("b"), "c", Message::Prune(Prune));
        h.settle();
        assert_eq!(
            (links(&h, "a"), links(&h, "c")),
            (vec!["c".into()], vec!["a".into()])
        );
        h.act("a", |n, now| n.put(now, "x", b"1")).unwrap();
        h.wait_for(secs(1), "x reaching b", |h| {
            value(h, "b", "a", "x").is_some()
        });
        let x = DatumId::Record {
            owner: "a".into(),
            generation: 0,
            version: 1,
        };
        let has_x = |m: &Message| match m {
            Message::IHave(i) => i.ids.contains(&x),
            Message::Graft(g) => g.ids.contains(&x),
            Message::Eager(e) => e.data.iter().any(|d| d.id() == x),
            _ => false,
        };
        let first = |from: &str, kind: &str| {
            let found = h
                .messages(from, "b", kind)
                .into_iter()
                .find(|s| has_x(&s.msg));
            found
                .cloned()
                .unwrap_or_else(|| panic!("no {kind} of x to b"))
        };
        let ihave = first("*", "ihave");
        let grafts = h.messages("b", "*", "graft");
        let grafts: Vec<_> = grafts.into_iter().filter(|s| has_x(&s.msg)).collect();
        assert_eq!(grafts.len(), 1);
        let graft = grafts[0].clone();
        assert!(has_x(&graft.msg) && graft.to == ihave.from, "{graft:?}");
        let wait = Config::local().tree.graft_wait;
        assert_eq!(graft.at, ihave.at + h.latency + wait);
        let answer = first(&graft.to, "eager");
        assert_eq!(answer.at, graft.at + h.latency);
        assert_eq!(h.node("b").stats().grafts, 1);
        assert!(links(&h, &graft.to).contains(&"b".to_string()));
    }

    #[test]
    fn on_a_lossy_network_a_write_is_announced_off_the_tree_soon() {
        // Scenario: a, b and c all linked; hand-made Prunes from b's address make a and c stop
        // pushing to b, as a push lost on its way to b would leave it. When a's probes go
        // unanswered (a direct ack dropped), a counts the network lossy; it then writes x. With
        // `tree.lossy_announce_peers` 1, a announces x `tree.graft_wait` later to its one live
        // peer off the tree, b, which grafts a graft's wait after that and holds x a few
        // milliseconds later (53 ms after the write). With 0, b hears of x only from a gossip
        // round's announcement (116 ms). On a network without loss nothing is announced soon.
        let run = |peers: usize, lossy: bool| {
            let mut config = Config::local();
            config.tree.lossy_announce_peers = peers;
            let mut h = Harness::with_config(&["a", "b", "c"], config);
            link_all(&mut h, &["a", "b", "c"]);
            if lossy {
                let acks = h.drop_kind("*", "a", "ack");
                h.wait_for(secs(5), "a probe of a's to go unanswered", |h| {
                    h.sent("a", "*", "ping-req") > 0
                });
                h.allow(acks);
            }
            h.inject(h.addr("b"), "a", Message::Prune(Prune));
            h.inject(h.addr("b"), "c", Message::Prune(Prune));
            h.settle();
            let wrote = h.now;
            h.act("a", |n, now| n.put(now, "x", b"1")).unwrap();
            let held = h.wait_for(secs(1), "x reaching b", |h| {
                value(h, "b", "a", "x").is_some()
            });
            (held - wrote, h.node("a").stats().announced_soon)
        };
        let wait = Config::local().tree.graft_wait;
        let (soon, announced) = run(1, true);
        assert_eq!(announced, 1);
        assert!(soon <= 2 * wait + ms(5), "{soon:?}");
        let (from_rounds, announced) = run(0, true);
        assert_eq!(announced, 0);
        assert!(from_rounds >= 2 * soon, "{from_rounds:?} against {soon:?}");
        let (_, announced) = run(1, false);
        assert_eq!(announced, 0);
    }

    #[test]
    fn recent_data_answers_grafts_for_a_push_pull_interval_and_is_then_forgotten() {
        // Scenario: a writes x, which reaches b. A graft for x from b's address is answered with
        // x while a still counts it as recent; two push-pull intervals later a has forgotten it,
        // and the same graft brings no push of x (anti-entropy would carry it now).
        let mut h = Harness::new(&["a", "b"]);
        link_all(&mut h, &["a", "b"]);
        h.act("a", |n, now| n.put(now, "x", b"1")).unwrap();
        h.settle();
        let x = DatumId::Record {
            owner: "a".into(),
            generation: 0,
            version: 1,
        };
        let pushes_of_x = |h: &Harness| {
            let pushes = h.messages("a", "b", "eager");
            let of_x = |s: &&&Sent| matches!(&s.msg, Message::Eager(e) if e.data.iter().any(|d| d.id() == x));
            pushes.iter().filter(of_x).count()
        };
        let graft = Message::Graft(Graft {
            ids: vec![x.clone()],
        });
        let before = pushes_of_x(&h);
        h.inject(h.addr("b"), "a", graft.clone());
        h.settle();
        assert_eq!(
            pushes_of_x(&h),
            before + 1,
            "a recent datum answers a graft"
        );
        h.run_for(Config::local().push_pull_interval * 2 + ms(10));
        let before = pushes_of_x(&h);
        h.inject(h.addr("b"), "a", graft);
        h.settle();
        assert_eq!(
            pushes_of_x(&h),
            before,
            "forgotten after two push-pull intervals"
        );
    }

    #[test]
    fn data_that_came_by_anti_entropy_adopts_the_later_eager_push() {
        // Scenario: a's eager push of x to b is held back in the network, and so are a's
        // announcements, so x reaches b first by a periodic push-pull. When the held push is
        // finally delivered it is a duplicate, but of data that came off the tree: b counts a tree
        // adoption, keeps the link to a and sends no Prune.
        let mut h = Harness::new(&["a", "b"]);
        link_all(&mut h, &["a", "b"]);
        h.hold_kind("a", "b", "eager");
        h.hold_kind("a", "b", "ihave");
        h.act("a", |n, now| n.put(now, "x", b"1")).unwrap();
        h.wait_for(secs(12), "x reaching b by push-pull", |h| {
            value(h, "b", "a", "x").is_some()
        });
        assert_eq!(h.sent("a", "b", "eager"), 1, "held, not delivered");
        assert_eq!(h.node("b").stats().tree_adoptions, 0);
        h.release();
        h.settle();
        let stats = h.node("b").stats();
        assert_eq!((stats.tree_adoptions, stats.prunes), (1, 0));
        assert_eq!(h.sent("b", "a", "prune"), 0);
        assert_eq!(links(&h, "b"), ["a"]);
        assert_eq!(links(&h, "a"), ["b"]);
    }
}
