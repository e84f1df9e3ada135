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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::membership::Membership;
use super::outbox::Ctx;
use super::replicas::Replicas;
use super::timers::{advance, first_tick};
use crate::member::MemberState;
use crate::message::{DigestEntry, Message, PushPull, PushPullKind};
use crate::time::Time;

/// Room kept beside the deltas of a push-pull for the length prefixes of the
/// envelope and the deltas field to grow.
const DELTAS_SLACK: usize = 16;

/// A join in progress: the seeds, knocked on again until one answers.
#[derive(Debug)]
struct Joining {
    seeds: Vec<SocketAddr>,
    next: Time,
    backoff: Duration,
}

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
    /// The first push-pull round at or after this also knocks on one
    /// address of the reconnect list.
    next_reconnect: Time,
    /// Addresses this node opened an exchange with (a summary or a join)
    /// and when, until they answer: members in their answer were asked for,
    /// and are not held to the introduction cap. Entries older than a
    /// push-pull interval are dropped each round.
    opened: BTreeMap<SocketAddr, Time>,
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

/// `p` with our digest, asking for what we lack, and our metadata register.
fn with_digest(mut p: PushPull, r: &Replicas) -> PushPull {
    p.digest = Some(r.store().digest());
    p.metadata = r.metadata().cloned();
    p
}

/// `p` filled with the deltas a peer with digest `theirs` lacks, in the
/// room left by the rest of the message.
fn with_deltas(
    cx: &mut Ctx,
    r: &Replicas,
    p: PushPull,
    theirs: &[DigestEntry],
    only_listed: bool,
) -> PushPull {
    let msg = Message::PushPull(p);
    let room = cx.room(&msg, DELTAS_SLACK);
    let Message::PushPull(mut p) = msg else {
        unreachable!("wrapped just above")
    };
    p.deltas = r.deltas_for(cx, theirs, room, only_listed);
    p
}

impl AntiEntropy {
    pub(crate) fn new(cx: &mut Ctx) -> AntiEntropy {
        let c = &cx.config;
        let next_round = first_tick(c.timer_phase, c.push_pull_interval, cx.now, &mut cx.rng);
        AntiEntropy {
            next_round,
            catch_up: None,
            joining: None,
            next_reconnect: cx.now + c.reconnect_interval,
            opened: BTreeMap::new(),
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

    /// When the join is to be tried again, while one is unanswered.
    pub(crate) fn join_deadline(&self) -> Option<Time> {
        self.joining.as_ref().map(|j| j.next)
    }

    /// Stop joining (the node leaves).
    pub(crate) fn stop(&mut self) {
        self.joining = None;
    }

    // ----- join ----------------------------------------------------------

    /// Join through `seeds`: a state sync with each, retried every one or
    /// two probe periods until one answers.
    pub(crate) fn join(
        &mut self,
        cx: &mut Ctx,
        m: &Membership,
        r: &Replicas,
        seeds: Vec<SocketAddr>,
    ) {
        for seed in &seeds {
            self.open(cx, *seed);
            Self::send_join(cx, m, r, *seed);
        }
        let c = &cx.config;
        let backoff = c.probe_period;
        if c.probe_period < c.push_pull_interval {
            self.catch_up = Some(c.probe_period);
            self.next_round = cx.now + c.probe_period;
        }
        self.joining = Some(Joining {
            seeds,
            next: cx.now + backoff,
            backoff,
        });
    }

    fn send_join(cx: &mut Ctx, m: &Membership, r: &Replicas, seed: SocketAddr) {
        let mut join = with_digest(opening(PushPullKind::Join, m, r), r);
        join.members = vec![m.self_update(cx, MemberState::Alive)];
        cx.send(seed, Message::PushPull(join));
    }

    /// Knock on the seeds again.
    pub(crate) fn retry_join(&mut self, cx: &mut Ctx, m: &Membership, r: &Replicas) {
        let Some(j) = &mut self.joining else { return };
        if cx.now < j.next {
            return;
        }
        let longest = cx.config.probe_period * cx.config.join_retry_max_periods;
        j.backoff = (j.backoff * 2).min(longest);
        j.next = cx.now + j.backoff;
        let seeds = j.seeds.clone();
        for seed in seeds {
            self.open(cx, seed);
            Self::send_join(cx, m, r, seed);
        }
    }

    // ----- rounds --------------------------------------------------------

    /// The push-pull round: open an exchange with each of the round's
    /// peers (see [`Membership::push_pull_peers`]). Each opening is only a
    /// summary, so a round costs a few dozen bytes per peer when all agree.
    pub(crate) fn round(&mut self, cx: &mut Ctx, m: &mut Membership, r: &Replicas) {
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
        for peer in m.push_pull_peers(cx) {
            self.open(cx, peer.addr());
            let msg = opening(PushPullKind::Summary, m, r);
            cx.send(peer.addr(), Message::PushPull(msg));
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
        cx.send(addr, Message::PushPull(msg));
    }

    fn open(&mut self, cx: &Ctx, addr: SocketAddr) {
        self.opened.insert(addr, cx.now);
    }

    /// Whether a `Sync` or `Reply` from `from` answers an exchange this
    /// node opened (each opening is answered once).
    pub(crate) fn answers_ours(&mut self, from: SocketAddr) -> bool {
        self.opened.remove(&from).is_some()
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
            cx.send(peer.addr(), Message::PushPull(msg));
        }
    }

    // ----- the steps -----------------------------------------------------

    /// `Summary`: answer with a `Sync` of what differs, or stay silent. A
    /// summary of 0 opens an exchange of namespaces only.
    pub(crate) fn on_summary(
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
        let mut sync = opening(PushPullKind::Sync, m, r);
        if members {
            sync.member_digest = Some(m.digest());
        }
        if state {
            sync = with_digest(sync, r);
        }
        cx.send(from, Message::PushPull(sync));
    }

    /// `Join` or `Sync` (already merged): answer with a `Reply` holding
    /// our members for a join, or, for a membership digest, the members
    /// they lack and the names of those we want; and, if their digest
    /// came, ours with the deltas they lack.
    pub(crate) fn on_sync(
        &mut self,
        cx: &mut Ctx,
        m: &Membership,
        r: &Replicas,
        from: SocketAddr,
        p: &PushPull,
    ) {
        let mut reply = opening(PushPullKind::Reply, m, r);
        if p.kind == PushPullKind::Join {
            reply.members = m.full_state();
        } else if let Some(lines) = &p.member_digest {
            (reply.members, reply.wanted) = m.compare(lines);
            if !reply.wanted.is_empty() {
                // The members asked for come in the closing message: an
                // answer, not an introduction.
                self.open(cx, from);
            }
        }
        if let Some(theirs) = &p.digest {
            reply = with_digest(reply, r);
            reply = with_deltas(cx, r, reply, theirs, false);
        }
        cx.send(from, Message::PushPull(reply));
    }

    /// `Reply` (already merged): close with the members they want and the
    /// `Deltas` they lack, and end a join that this answers.
    pub(crate) fn on_reply(
        &mut self,
        cx: &mut Ctx,
        m: &Membership,
        r: &Replicas,
        from: SocketAddr,
        p: &PushPull,
    ) {
        let mut close = opening(PushPullKind::Deltas, m, r);
        close.members = m.news_named(&p.wanted);
        let mut send = !close.members.is_empty();
        if let Some(theirs) = &p.digest {
            close = with_deltas(cx, r, close, theirs, false);
            if !close.deltas.is_empty() || p.metadata.as_ref() != r.metadata() {
                close.metadata = r.metadata().cloned();
                send = true;
            }
        }
        if send {
            cx.send(from, Message::PushPull(close));
        }
        let answered = self
            .joining
            .as_ref()
            .is_some_and(|j| j.seeds.contains(&from));
        if answered || m.table().live_others() > 0 {
            self.joining = None;
        }
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
        let answer = with_deltas(cx, r, opening(PushPullKind::Deltas, m, r), theirs, true);
        if !answer.deltas.is_empty() {
            cx.send(from, Message::PushPull(answer));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::harness::*;
    use crate::*;

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
