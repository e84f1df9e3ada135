//! SWIM failure detection: the direct probe, the ping-req relay, the nack,
//! and Lifeguard's local health.
//!
//! Each probe period the node pings one member (shuffled round robin). No
//! ack within the probe timeout: it asks `indirect_probes` others to ping
//! the member for it (ping-req), and pings it once more itself
//! (`fallback_ping`). A relay whose own ping goes unanswered
//! says so with a nack, which proves the path to the relay works. Nothing by
//! the end of the period: the member becomes suspect. Missed nacks and
//! failed probes raise the local health score, which stretches this node's
//! own probe period and timeout (the trouble may be ours).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use super::membership::Membership;
use super::outbox::Ctx;
use super::timers::advance;
use crate::health::LocalHealth;
use crate::history::{ProbeFailure, RelayAnswer};
use crate::member::{Incarnation, MemberState, NodeId};
use crate::message::{Ack, MemberUpdate, Message, Nack, Ping, PingReq};
use crate::time::Time;

/// Room kept for the envelope's length prefix to grow as rumours fill a
/// probe message.
const LENGTH_PREFIX_SLACK: usize = 2;

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
        /// Relays asked, and whether each has nacked.
        relays: Vec<(NodeId, bool)>,
        /// The direct probe's timeout in force.
        timeout: std::time::Duration,
        /// Relays that ever spoke to this node first-hand: only their
        /// missing nacks count against our health (Lifeguard). A relay never
        /// heard from (asked only when no other is live) may not exist, and
        /// its silence says nothing about us.
        expected_nacks: u32,
        nacks: u32,
    },
}

/// What a failed probe's missing nacks add to this node's local health
/// (Lifeguard), of `expected` nacks owed and `nacks` received. A nack
/// proves that this node's messages go out and the answers come back in
/// time; when one came, the silent relays are the ones in trouble or out
/// of reach (across a partition about half of them are), and the probe
/// counts once, as a failed probe. When none came, each missing nack
/// counts: a slow or cut-off node hears none, and it is the node Lifeguard
/// slows down. Charging every missing nack whatever came left a node that
/// probed across a 30 s partition at a raised health long after the heal,
/// and a crash then took it twice as long to detect (README, "Local health
/// after a partition").
fn missed_nacks_charge(expected: u32, nacks: u32) -> i32 {
    let missed = expected.saturating_sub(nacks) as i32;
    if nacks > 0 {
        missed.min(1)
    } else {
        missed
    }
}

/// A ping-req this node serves: it pinged a target on the requester's behalf.
#[derive(Debug)]
struct Relay {
    seq: u32,
    requester: SocketAddr,
    requester_seq: u32,
    deadline: Time,
}

/// The prober: this node's probe cycle, the relays it serves, its health.
#[derive(Debug)]
pub(crate) struct Prober {
    probe: Probe,
    /// Few at a time: one per ping-req served within a probe timeout.
    relays: Vec<Relay>,
    next_seq: u32,
    next_probe: Time,
    health: LocalHealth,
    /// Until when the network counts as lossy: set by a probe that missed
    /// its ack. Meanwhile each probe period adds a push-pull, so that
    /// anti-entropy repairs every loss within one push-pull interval.
    lossy_until: Time,
    /// The sequence numbers of the last final probes (`final_probe`),
    /// whose acks are expected outside any probe.
    final_seqs: VecDeque<u32>,
}

/// The most final probes whose acks are told apart from stale ones.
const FINAL_SEQS: usize = 16;

impl Prober {
    pub(crate) fn new(cx: &mut Ctx) -> Prober {
        let first = super::timers::first_tick(
            cx.config.timer_phase,
            cx.config.probe_period,
            cx.now,
            &mut cx.rng,
        );
        Prober {
            probe: Probe::Idle,
            relays: Vec::new(),
            next_seq: 0,
            next_probe: first,
            health: LocalHealth::new(cx.config.health_max),
            lossy_until: Time::ZERO,
            final_seqs: VecDeque::new(),
        }
    }

    /// The local health score.
    pub(crate) fn health(&self) -> u32 {
        self.health.score()
    }

    /// Lifeguard: being suspected hints that this node is the slow one.
    pub(crate) fn suspected(&mut self, cx: &mut Ctx) {
        self.adjust_health(cx, 1);
    }

    /// Move the local health score, and tell the context.
    fn adjust_health(&mut self, cx: &mut Ctx, delta: i32) {
        self.health.apply(delta);
        cx.health = self.health.score();
    }

    /// Whether probes have been missing acks lately.
    pub(crate) fn lossy(&self, now: Time) -> bool {
        now < self.lossy_until
    }

    /// Drop the probe in flight (the node leaves; relays it serves still
    /// answer while it announces its departure).
    pub(crate) fn idle(&mut self) {
        self.probe = Probe::Idle;
    }

    /// Stop probing and relaying (the node went quiet).
    pub(crate) fn stop(&mut self) {
        self.probe = Probe::Idle;
        self.relays.clear();
    }

    fn take_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    // ----- messages ------------------------------------------------------

    /// `msg` with as many rumours riding along as fit.
    fn with_rumours(cx: &mut Ctx, m: &mut Membership, mut msg: Message) -> Message {
        let room = cx.room(&msg, LENGTH_PREFIX_SLACK);
        if let Some(updates) = msg.rumours_mut() {
            m.piggyback(cx, room, updates);
        }
        msg
    }

    /// A ping to `target`, naming the key it should answer under if
    /// `with_key`. Lifeguard's buddy system: if this node holds the target
    /// suspect, the ping carries the suspicion first, so that the target
    /// refutes it at once and its ack carries the refutation back, instead
    /// of waiting for the rumour to reach it.
    fn ping(
        cx: &mut Ctx,
        m: &mut Membership,
        seq: u32,
        target: &NodeId,
        with_key: bool,
    ) -> Message {
        let target_key = m
            .table()
            .get(target.name())
            .filter(|_| with_key)
            .map(|(_, e)| e.key().fingerprint());
        let mut updates = Vec::new();
        if cx.config.buddy_system {
            if let Some(suspicion) = m.suspicion_of(target) {
                cx.stats.buddy_warnings += 1;
                updates.push(suspicion);
            }
        }
        let buddy = !updates.is_empty();
        let ping = Ping {
            seq,
            target: Arc::from(target.name()),
            target_key,
            updates,
        };
        let mut ping = Self::with_rumours(cx, m, Message::Ping(ping));
        if let (true, Message::Ping(p)) = (buddy, &mut ping) {
            // The queue's copy of the same suspicion, if it rode along, is
            // the warning already sent.
            let warning = p.updates.remove(0);
            p.updates
                .retain(|u| u.id != warning.id || u.incarnation != warning.incarnation);
            p.updates.insert(0, warning);
        }
        ping
    }

    /// A suspicion's final probe: one more ping of `suspect`, carrying
    /// the suspicion, outside the probe rotation. Its ack brings the
    /// refutation if the suspect is alive; the verdict waits for it in
    /// [`Membership::expire_suspicions`].
    pub(crate) fn final_probe(&mut self, cx: &mut Ctx, m: &mut Membership, suspect: &NodeId) {
        let seq = self.take_seq();
        if self.final_seqs.len() == FINAL_SEQS {
            self.final_seqs.pop_front();
        }
        self.final_seqs.push_back(seq);
        let ping = Self::ping(cx, m, seq, suspect, true);
        cx.send(suspect.addr(), ping);
    }

    fn ack(cx: &mut Ctx, m: &mut Membership, seq: u32) -> Message {
        let ack = Ack {
            seq,
            updates: Vec::new(),
        };
        Self::with_rumours(cx, m, Message::Ack(ack))
    }

    /// A ping for this node: ack it, unless it is meant for another name
    /// (a previous owner of our address) or for this name under another key
    /// (this node's previous life, which lost its key).
    pub(crate) fn on_ping(&mut self, cx: &mut Ctx, m: &mut Membership, from: SocketAddr, p: &Ping) {
        let my_key = cx.identity.public().fingerprint();
        if &*p.target != cx.me.name() || p.target_key.is_some_and(|k| k != my_key) {
            cx.stats.misdirected += 1;
            return;
        }
        let ack = Self::ack(cx, m, p.seq);
        cx.send(from, ack);
    }

    /// Relay side of a ping-req: ping the target for the requester and wait
    /// a little less than a probe timeout for its ack.
    pub(crate) fn on_ping_req(
        &mut self,
        cx: &mut Ctx,
        m: &mut Membership,
        from: SocketAddr,
        p: &PingReq,
    ) {
        // Only a live member at the address we hold for it: a relay pings
        // no address a stranger names (SWIM's relay knows the target).
        if m.live(p.target.name())
            .is_none_or(|id| id.addr() != p.target.addr())
        {
            cx.stats.ping_reqs_refused += 1;
            return;
        }
        let seq = self.take_seq();
        // A relay always names the key: the direct probe that led here
        // may have failed for it.
        let ping = Self::ping(cx, m, seq, &p.target, true);
        cx.send(p.target.addr(), ping);
        let wait = self.health.scale(cx.config.probe_timeout) * 4 / 5;
        self.relays.push(Relay {
            seq,
            requester: from,
            requester_seq: p.seq,
            deadline: cx.now + wait,
        });
    }

    /// An ack: it answers our probe, or a ping we sent as a relay (then it
    /// goes back to the requester), or nothing (late or duplicated).
    pub(crate) fn on_ack(&mut self, cx: &mut Ctx, m: &mut Membership, seq: u32) {
        match &self.probe {
            Probe::Direct { seq: s, .. } | Probe::Indirect { seq: s, .. } if *s == seq => {
                self.probe = Probe::Idle;
                self.adjust_health(cx, -1);
                return;
            }
            _ => {}
        }
        if let Some(i) = self.relays.iter().position(|r| r.seq == seq) {
            let relay = self.relays.swap_remove(i);
            let ack = Self::ack(cx, m, relay.requester_seq);
            cx.send(relay.requester, ack);
            return;
        }
        if let Some(i) = self.final_seqs.iter().position(|s| *s == seq) {
            self.final_seqs.remove(i);
            return;
        }
        cx.stats.stale_acks += 1;
    }

    /// A relay's nack: the path to the relay works.
    pub(crate) fn on_nack(&mut self, cx: &mut Ctx, from: SocketAddr, n: &Nack) {
        // Only a relay asked, and only once: a nack vouches for this node's
        // own links (see `missed_nacks_charge`), so one from anyone else,
        // or a copy, must not.
        let counted = match &mut self.probe {
            Probe::Indirect {
                seq, nacks, relays, ..
            } if *seq == n.seq => match relays.iter_mut().find(|(r, _)| r.addr() == from) {
                Some((_, nacked)) if !*nacked => {
                    *nacked = true;
                    *nacks += 1;
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !counted {
            cx.stats.stale_acks += 1;
        }
    }

    // ----- the probe cycle -----------------------------------------------

    /// When the probe period ends.
    pub(crate) fn period_deadline(&self) -> Time {
        self.next_probe
    }

    /// When the direct ping's ack is due, if one is awaited.
    pub(crate) fn ack_deadline(&self) -> Option<Time> {
        match self.probe {
            Probe::Direct { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    /// When the first relay's wait runs out.
    pub(crate) fn relay_deadline(&self) -> Option<Time> {
        self.relays.iter().map(|r| r.deadline).min()
    }

    /// Start the next probe period: ping the next member of the ring.
    pub(crate) fn start(&mut self, cx: &mut Ctx, m: &mut Membership) {
        let now = cx.now;
        let period = self.health.scale(cx.config.probe_period);
        self.next_probe = if self.health.score() == 0 {
            advance(self.next_probe, period, now)
        } else {
            now + period
        };
        let Some(target) = m.table_mut().next_probe_target(&mut cx.rng) else {
            return;
        };
        let incarnation = m
            .table()
            .get(target.name())
            .map_or(Incarnation(0), |(_, e)| e.incarnation);
        let seq = self.take_seq();
        // One direct ping in eight names the key it expects (9 bytes more):
        // one failed probe is enough to start the suspicion of an identity
        // whose name is now answered under another key. Drawn from the
        // sequence number by a multiplicative hash, so that no target
        // escapes it by the round-robin's period.
        let with_key = seq.wrapping_mul(0x9e37_79b1) >> 29 == 0;
        let ping = Self::ping(cx, m, seq, &target, with_key);
        cx.stats.probes += 1;
        cx.send(target.addr(), ping);
        self.probe = Probe::Direct {
            target,
            incarnation,
            seq,
            deadline: now + self.health.scale(cx.config.probe_timeout),
        };
    }

    /// The direct ping went unanswered: the network loses messages (or the
    /// member is gone), so the data plane repairs harder for a while; ask
    /// others to probe.
    pub(crate) fn ack_timed_out(&mut self, cx: &mut Ctx, m: &mut Membership) {
        self.lossy_until = cx.now + cx.config.push_pull_interval;
        self.probe_indirectly(cx, m);
    }

    /// Ping-req: ask `indirect_probes` live members to probe the target.
    fn probe_indirectly(&mut self, cx: &mut Ctx, m: &mut Membership) {
        let timeout = self.health.scale(cx.config.probe_timeout);
        let Probe::Direct {
            target,
            incarnation,
            seq,
            ..
        } = std::mem::replace(&mut self.probe, Probe::Idle)
        else {
            return;
        };
        // Relays are members that have spoken to this node first-hand: a
        // member never heard from may not exist (a fake that a stranger
        // announced), and could neither relay nor nack. Only when there is
        // none are others asked.
        let (k, except) = (cx.config.indirect_probes, &[target.name()]);
        let mut relays = m
            .table()
            .random_live_where(k, except, &mut cx.rng, |id| m.heard_ever(id.addr()));
        if relays.is_empty() {
            relays = m.table().random_live(k, except, &mut cx.rng);
        }
        for relay in &relays {
            let req = PingReq {
                seq,
                target: target.clone(),
                updates: Vec::new(),
            };
            let req = Self::with_rumours(cx, m, Message::PingReq(req));
            cx.send(relay.addr(), req);
        }
        if cx.config.fallback_ping {
            // One more direct chance beside the relays' (memberlist's
            // fallback probe): a lost ping or ack is no verdict.
            let again = Self::ping(cx, m, seq, &target, true);
            cx.stats.fallback_pings += 1;
            cx.send(target.addr(), again);
        }
        let expected_nacks = relays.iter().filter(|r| m.heard_ever(r.addr())).count() as u32;
        self.probe = Probe::Indirect {
            target,
            incarnation,
            seq,
            relays: relays.into_iter().map(|r| (r, false)).collect(),
            timeout,
            expected_nacks,
            nacks: 0,
        };
    }

    /// End the previous probe period: a probe still unanswered fails, and
    /// its target is to become suspect (returned with what the probe saw,
    /// for membership to apply). Missing nacks mean the trouble may be ours
    /// (Lifeguard), so they raise the local health score.
    pub(crate) fn conclude(
        &mut self,
        cx: &mut Ctx,
        m: &mut Membership,
    ) -> Option<(MemberUpdate, ProbeFailure)> {
        if matches!(self.probe, Probe::Direct { .. }) {
            self.probe_indirectly(cx, m);
        }
        let Probe::Indirect {
            target,
            incarnation,
            relays,
            timeout,
            expected_nacks,
            nacks,
            ..
        } = std::mem::replace(&mut self.probe, Probe::Idle)
        else {
            return None;
        };
        cx.stats.failed_probes += 1;
        let delta = if !m.heard_ever(target.addr()) {
            // A member that never spoke to us may not exist (a fake a
            // stranger announced): that it does not answer says nothing
            // about our own network.
            0
        } else if !relays.is_empty() {
            missed_nacks_charge(expected_nacks, nacks)
        } else {
            1
        };
        self.adjust_health(cx, delta);
        let (id, e) = m.table().get(target.name())?;
        // A suspect that fails our own probe too gets our confirmation.
        if !e.state.is_live() || id.addr() != target.addr() || e.incarnation != incarnation {
            return None;
        }
        let suspect = MemberUpdate {
            id: id.clone(),
            incarnation: e.incarnation,
            state: MemberState::Suspect,
            by: Some(Arc::from(cx.me.name())),
            key: e.key(),
            signature: e.signature(),
        };
        let failure = ProbeFailure {
            timeout,
            relays: relays
                .into_iter()
                .map(|(r, nacked)| RelayAnswer {
                    name: Arc::from(r.name()),
                    nacked,
                })
                .collect(),
        };
        Some((suspect, failure))
    }

    /// Relays whose wait ran out tell their requesters so with a nack.
    pub(crate) fn expire_relays(&mut self, cx: &mut Ctx) {
        let mut i = 0;
        while i < self.relays.len() {
            if self.relays[i].deadline <= cx.now {
                let r = self.relays.swap_remove(i);
                let nack = Message::Nack(Nack {
                    seq: r.requester_seq,
                });
                cx.send(r.requester, nack);
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::harness::*;
    use crate::*;
    use std::time::Duration;

    #[test]
    fn a_ping_is_acked() {
        // Scenario: a, b and c probe each other for two seconds on a perfect network; every ping a
        // sends is acked by its target, and no one is suspected.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(2));
        h.settle();
        let pings = h.messages("a", "*", "ping");
        assert!(pings.len() >= 3, "a sent {} pings", pings.len());
        for p in pings {
            let acks = h.messages(&p.to, "a", "ack");
            let acked = acks.iter().any(|a| seq_of(&a.msg) == seq_of(&p.msg));
            assert!(
                acked,
                "a's ping {} to {} was not acked",
                seq_of(&p.msg),
                p.to
            );
        }
        assert_eq!(h.sent("*", "*", "ping-req"), 0);
        assert_eq!(h.node("a").stats().failed_probes, 0);
        for (x, y) in [("a", "b"), ("a", "c"), ("b", "c"), ("c", "a")] {
            assert_eq!(h.member_state(x, y), "alive@0");
            assert_eq!(member_events(&h, x, y), [("joined", 0)]);
        }
    }

    #[test]
    fn a_lost_direct_ping_is_answered_through_a_relay() {
        // Scenario: every direct ping from a to c is lost. a's probe of c times out, a sends b a
        // ping-req about c, b pings c, c acks b, and b relays the ack to a under a's sequence
        // number: a never suspects c.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.drop_kind("a", "c", "ping");
        let is_req_about_c =
            |m: &Message| matches!(m, Message::PingReq(r) if r.target.name() == "c");
        h.wait_for(secs(3), "a ping-req from a to b about c", |h| {
            h.messages("a", "b", "ping-req")
                .iter()
                .any(|s| is_req_about_c(&s.msg))
        });
        let req = h.messages("a", "b", "ping-req")[0].clone();
        let seq = seq_of(&req.msg);
        h.run_for(ms(10));
        let relayed = |s: &&crate::harness::Sent| s.at > req.at;
        assert!(h.messages("b", "c", "ping").iter().any(relayed));
        assert!(h.messages("c", "b", "ack").iter().any(relayed));
        let back = h.messages("b", "a", "ack");
        let back: Vec<_> = back.iter().filter(|s| seq_of(&s.msg) == seq).collect();
        assert_eq!(back.len(), 1, "b relays c's ack to a once");
        assert_eq!(back[0].at - req.at, h.latency * 3, "a -> b -> c -> b -> a");
        h.run_for(secs(5));
        assert!(h.sent("a", "c", "ping") >= 3, "a keeps probing c directly");
        assert_eq!(h.member_state("a", "c"), "alive@0");
        assert_eq!(member_events(&h, "a", "c"), [("joined", 0)]);
        assert_eq!(h.node("a").stats().failed_probes, 0);
    }

    #[test]
    fn a_relay_that_cannot_reach_the_target_answers_with_a_nack() {
        // Scenario: c has crashed. a's probe of c times out and a sends b a ping-req; b's ping to c
        // goes unanswered, and after its wait (4/5 of the probe timeout) b answers a with a nack,
        // proof that a's own links work: a's local health stays at 0.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.stop("c");
        h.wait_for(secs(3), "a nack from b to a", |h| {
            h.sent("b", "a", "nack") > 0
        });
        let nack = h.messages("b", "a", "nack")[0].clone();
        let reqs = h.messages("a", "b", "ping-req");
        let req = reqs.iter().find(|r| seq_of(&r.msg) == seq_of(&nack.msg));
        let req = req.expect("the nack answers a's ping-req");
        let wait = Config::local().probe_timeout * 4 / 5;
        assert_eq!(nack.at - req.at, h.latency + wait);
        assert!(h
            .messages("b", "c", "ping")
            .iter()
            .any(|p| p.at == req.at + h.latency));
        h.wait_for(secs(1), "a suspecting c", |h| {
            h.member_state("a", "c") == "suspect@0"
        });
        assert_eq!(h.node("a").health(), 0, "the nack vouches for a");
    }

    /// a, b, c, d and e run for 2 s (a's health still 0); then c crashes
    /// and a's ping-reqs to `silent` are lost. `meanwhile` runs once a has
    /// asked its relays about c, with the probe's sequence number; the
    /// harness is returned once a's probe of c has failed.
    fn failed_probe_of_crashed_c(
        silent: &[&str],
        meanwhile: impl FnOnce(&mut Harness, u32),
    ) -> Harness {
        let mut h = Harness::new(&["a", "b", "c", "d", "e"]);
        h.run_for(secs(2));
        assert_eq!(h.node("a").health(), 0);
        h.stop("c");
        for relay in silent {
            h.drop_kind("a", relay, "ping-req");
        }
        h.wait_for(secs(10), "a asking relays about c", |h| {
            h.messages("a", "*", "ping-req")
                .iter()
                .any(|s| matches!(&s.msg, Message::PingReq(r) if r.target.name() == "c"))
        });
        let seq = seq_of(&h.messages("a", "*", "ping-req")[0].msg);
        meanwhile(&mut h, seq);
        h.wait_for(secs(10), "a's probe of c failing", |h| {
            h.node("a").stats().failed_probes > 0
        });
        h
    }

    #[test]
    fn a_nack_from_no_relay_asked_or_a_copy_vouches_for_nothing() {
        // Scenario: c has crashed and a's ping-reqs reach none of its
        // relays (b, d and e). Under the probe's sequence number, first a
        // stranger sends a nack: it is counted as stale and the failed
        // probe charges all three missing nacks. Run again with relay b's
        // nack arriving twice: the first vouches for a (health 1), the
        // copy is stale.
        let run = |from_b: bool| {
            let mut stale = 0;
            let h = failed_probe_of_crashed_c(&["b", "d", "e"], |h, seq| {
                let before = h.node("a").stats().stale_acks;
                let nack = || Message::Nack(Nack { seq });
                if from_b {
                    let b = h.addr("b");
                    h.inject(b, "a", nack());
                    h.inject(b, "a", nack());
                } else {
                    let stranger: std::net::SocketAddr = "127.0.0.1:9999".parse().unwrap();
                    h.inject(stranger, "a", nack());
                }
                h.run_for(ms(1));
                stale = h.node("a").stats().stale_acks - before;
            });
            (stale, h.node("a").health())
        };
        assert_eq!(run(false), (1, 3), "a stranger's nack vouches for nothing");
        assert_eq!(run(true), (1, 1), "b's nack counts once");
    }

    #[test]
    fn one_nack_is_enough_to_vouch_for_the_prober_and_none_charges_each_missing_one() {
        // Scenario: c has crashed, and a's ping-reqs never reach d or e (as
        // across a partition), while b nacks: the failed probe raises a's
        // health by one, not by the two nacks missing. Run again with b cut
        // off from a as well: no nack comes, and each of the three missing
        // ones counts.
        let health_after_failed_probe = |silent: &[&str]| {
            let h = failed_probe_of_crashed_c(silent, |_, _| {});
            (h.node("a").health(), h.sent("b", "a", "nack"))
        };
        let (health, nacks) = health_after_failed_probe(&["d", "e"]);
        assert!(nacks > 0);
        assert_eq!(health, 1, "b's nack vouches for a");
        let (health, nacks) = health_after_failed_probe(&["b", "d", "e"]);
        assert_eq!(nacks, 0);
        assert_eq!(health, 3, "three nacks missing");
    }

    #[test]
    fn a_relay_pings_only_a_live_member_at_its_address() {
        // Scenario: a stranger asks b to ping an unknown name, and c at an
        // address c does not have. b pings neither address and counts both;
        // asked to ping c at c's address, it does.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.run_for(secs(1));
        let stranger: std::net::SocketAddr = "127.0.0.1:9999".parse().unwrap();
        let elsewhere: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
        let req = |name: &str, addr| {
            Message::PingReq(PingReq {
                seq: 7,
                target: NodeId::new(name, addr).unwrap(),
                updates: Vec::new(),
            })
        };
        h.inject(stranger, "b", req("zz", elsewhere));
        h.inject(stranger, "b", req("c", elsewhere));
        h.run_for(ms(50));
        assert_eq!(h.sent("b", &elsewhere.to_string(), "*"), 0);
        assert_eq!(h.node("b").stats().ping_reqs_refused, 2);
        let before = h.sent("b", "c", "ping");
        h.inject(stranger, "b", req("c", h.addr("c")));
        h.run_for(ms(1));
        assert_eq!(h.sent("b", "c", "ping"), before + 1);
    }

    #[test]
    fn a_silent_member_is_suspected_then_declared_dead() {
        // Scenario: c crashes. Probes of c fail, directly and through the relay, so a suspects c
        // (MemberSuspected); c never refutes, and when the suspicion times out a declares c dead
        // (MemberDied), as does b.
        let mut h = Harness::new(&["a", "b", "c"]);
        h.stop("c");
        let suspected = h.wait_for(secs(3), "a suspecting c", |h| {
            member_events(h, "a", "c").contains(&("suspected", 0))
        });
        assert_eq!(h.member_state("a", "c"), "suspect@0");
        let failed = ["a", "b"].map(|n| h.node(n).stats().failed_probes);
        assert!(failed.iter().sum::<u64>() >= 1);
        let declared = |h: &Harness| ["a", "b"].map(|n| h.node(n).stats().deaths_declared);
        assert_eq!(declared(&h), [0, 0]);
        let died = h.wait_for(secs(10), "a declaring c dead", |h| {
            member_events(h, "a", "c").contains(&("died", 0))
        });
        // The first to hold c dead declared it so itself (the other may
        // have too, or taken the news).
        let [by_a, by_b] = declared(&h);
        assert!((1..=2).contains(&(by_a + by_b)), "{by_a} {by_b}");
        assert_eq!(h.member_state("a", "c"), "dead@0");
        let (min, max) = (Config::local().suspicion_min, Config::local().suspicion_max);
        let waited = died - suspected;
        assert!(
            min <= waited && waited <= max,
            "dead {waited:?} after the suspicion"
        );
        let expected = [("joined", 0), ("suspected", 0), ("died", 0)];
        assert_eq!(member_events(&h, "a", "c"), expected);
        h.wait_for(secs(1), "b declaring c dead", |h| {
            h.member_state("b", "c") == "dead@0"
        });
    }

    /// a suspects b, cut off from it, and probes it for 6 s more before
    /// the wall is lifted. Returns how many of a's pings to b behind the
    /// wall carried the suspicion (and how many were sent), how long after
    /// the lift a saw b's refutation (if within 5 s), and the harness.
    fn suspected_behind_a_wall(buddy: bool) -> (usize, usize, Option<Duration>, Harness) {
        let config = Config {
            buddy_system: buddy,
            // One mechanism at a time: no second ping to tell it either.
            fallback_ping: false,
            suspicion_min: secs(20),
            suspicion_max: secs(30),
            // No push-pull in the story's window: rumours and probes only.
            push_pull_interval: secs(60),
            ..Config::local()
        };
        let mut h = Harness::with_config(&["a", "b"], config.clone());
        h.run_for(secs(1));
        let wall = h.drop_where(|from, to, _| from == "b" || to == "b");
        h.wait_for(secs(5), "a suspecting b", |h| {
            h.member_state("a", "b").starts_with("suspect")
        });
        let since = h.now;
        h.run_for(secs(6));
        h.allow(wall);
        let pings: Vec<&Ping> = h
            .messages("a", "b", "ping")
            .into_iter()
            .filter(|s| s.at > since)
            .map(|s| match &s.msg {
                Message::Ping(p) => p,
                _ => unreachable!("filtered by kind"),
            })
            .collect();
        let told = pings
            .iter()
            .filter(|p| {
                p.updates
                    .first()
                    .is_some_and(|u| u.id.name() == "b" && u.state == MemberState::Suspect)
                    && p.updates.iter().filter(|u| u.id.name() == "b").count() == 1
            })
            .count();
        let sent = pings.len();
        // a's failed probes stretched its probe period (Lifeguard): the
        // next ping may take a few periods.
        let lifted = h.now;
        let mut refuted = None;
        while h.now < lifted + secs(5) && refuted.is_none() {
            h.step();
            if h.member_state("a", "b") == "alive@1" {
                refuted = Some(h.now - lifted);
            }
        }
        (told, sent, refuted, h)
    }

    #[test]
    fn a_probe_of_a_suspect_tells_it_so_and_the_ack_brings_the_refutation() {
        // Scenario (Lifeguard's buddy system): a suspects b, whose messages are lost; then b hears
        // nothing for 3 s while a keeps probing it, long after a's suspicion rumour has run out of
        // sends (a cluster of two sends it once). With the buddy system every one of those pings
        // carries the suspicion, first and once; when the wall lifts, b refutes on a's next ping and
        // its ack brings alive@1 back to a. Without it no ping carries it, and 5 s after the lift b
        // still does not know it is suspected (push-pull, which would tell it, is a minute away).
        let (told, sent, refuted, h) = suspected_behind_a_wall(true);
        assert!(sent >= 2, "{sent} pings");
        assert_eq!(told, sent);
        let refuted = refuted.expect("a sees b's refutation");
        // The ping and the ack are the only messages a sends b and b
        // answers in that time: rumours about b ran out long ago.
        let pings_after = h.messages("a", "b", "ping").len() - sent;
        assert!(pings_after >= 1 && refuted < secs(5), "{refuted:?}");
        assert_eq!(h.node("b").stats().refutations, 1);
        assert!(h.node("a").stats().buddy_warnings >= sent as u64);
        let (told, sent, refuted, h) = suspected_behind_a_wall(false);
        assert!(sent >= 2, "{sent} pings");
        assert_eq!(told, 0);
        assert_eq!(refuted, None);
        assert_eq!(h.node("b").stats().refutations, 0);
        assert!(h.member_state("a", "b").starts_with("suspect"));
    }

    /// a's probe of b with one of b's acks lost and every ping-req a
    /// sends lost too; returns what a reported about b.
    fn probe_with_a_lost_ack(fallback: bool) -> Vec<(&'static str, u32)> {
        let config = Config {
            fallback_ping: fallback,
            ..Config::local()
        };
        let mut h = Harness::with_config(&["a", "b", "c"], config);
        h.run_for(secs(1));
        let lost = std::cell::Cell::new(false);
        h.drop_where(move |from, to, m| {
            let first = from == "b" && to == "a" && matches!(m, Message::Ack(_)) && !lost.get();
            lost.set(lost.get() || first);
            first || (from == "a" && matches!(m, Message::PingReq(_)))
        });
        h.run_for(secs(2));
        member_events(&h, "a", "b")
    }

    /// Whether `m`, not an ack, carries b alive past incarnation 0: its
    /// refutation.
    fn carries_b_refutation(m: &Message) -> bool {
        let refutes = |name: &str, incarnation: Incarnation, state: MemberState| {
            name == "b" && incarnation > Incarnation(0) && state == MemberState::Alive
        };
        if let Message::PushPull(p) = m {
            return p
                .members
                .iter()
                .any(|u| refutes(u.id.name(), u.incarnation, u.state));
        }
        if let Message::Eager(e) = m {
            return e
                .updates
                .iter()
                .any(|u| refutes(u.id.name(), u.incarnation, u.state));
        }
        let mut m = m.clone();
        let ack = matches!(m, Message::Ack(_));
        !ack && m.rumours_mut().is_some_and(|updates| {
            updates
                .iter()
                .any(|u| refutes(u.id.name(), u.incarnation, u.state))
        })
    }

    /// a is told, in a rumour from c, that b is suspect, and nobody
    /// confirms it; every message that would bring b's refutation to a is
    /// lost, acks apart, and nobody probes or push-pulls in the window
    /// (aligned timers: both at 0 and 60 s). Returns b as a holds it
    /// 100 ms and 1 s after the suspicion's deadline, the pings a sent b
    /// after the rumour (when and whether each carried the suspicion
    /// first), that deadline, and the harness.
    fn a_refutation_missed(
        final_probe: bool,
        b_alive: bool,
    ) -> (String, String, Vec<(Time, bool)>, Time, Harness) {
        let config = Config {
            final_probe,
            timer_phase: TimerPhase::Aligned,
            probe_period: secs(60),
            push_pull_interval: secs(60),
            ..Config::local()
        };
        let max = config.suspicion_max;
        let mut h = Harness::with_config(&["a", "b", "c"], config);
        h.run_for(secs(1));
        h.drop_where(|_, to, m| to == "a" && carries_b_refutation(m));
        if !b_alive {
            h.stop("b");
        }
        let b = h.node("c").member("b").unwrap();
        let told = h.now;
        h.inject(h.addr("c"), "a", accusation(&b, 0, "c"));
        h.run_for(ms(1));
        assert_eq!(h.member_state("a", "b"), "suspect@0");
        let suspected = h
            .events_of("a")
            .iter()
            .rev()
            .find(|(_, e)| matches!(e, Event::MemberSuspected(_)))
            .map(|(at, _)| *at)
            .expect("a suspects b");
        let deadline = suspected + max;
        h.run_until(deadline + ms(100));
        let soon = h.member_state("a", "b");
        h.run_for(ms(900));
        let later = h.member_state("a", "b");
        let pings = h
            .messages("a", "b", "ping")
            .into_iter()
            .filter(|s| s.at > told)
            .map(|s| match &s.msg {
                Message::Ping(p) => (
                    s.at,
                    p.updates
                        .first()
                        .is_some_and(|u| u.id.name() == "b" && u.state == MemberState::Suspect),
                ),
                _ => unreachable!("filtered by kind"),
            })
            .collect();
        (soon, later, pings, deadline, h)
    }

    #[test]
    fn an_unconfirmed_suspicion_pings_the_suspect_before_its_verdict() {
        // Scenario: a holds b suspect on c's word alone, and b's refutation never reaches a
        // (nobody probes b or push-pulls in the window). With the final probe, a pings b at
        // the deadline, carrying the suspicion, and b's ack brings the refutation: b is not
        // declared dead. Without it, a declares b dead at the deadline. A b that really is down
        // is declared dead a probe timeout (200 ms) after the deadline.
        let (soon, later, pings, deadline, h) = a_refutation_missed(true, true);
        assert_eq!(pings.len(), 1, "{pings:?}");
        assert_eq!(pings[0], (deadline, true));
        assert_eq!((soon.as_str(), later.as_str()), ("alive@1", "alive@1"));
        assert_eq!(h.node("a").stats().final_probes, 1);
        assert_eq!(h.node("a").stats().deaths_declared, 0);
        assert_eq!(h.node("a").stats().stale_acks, 0);

        let (soon, later, pings, _, h) = a_refutation_missed(false, true);
        assert!(pings.is_empty(), "{pings:?}");
        assert_eq!((soon.as_str(), later.as_str()), ("dead@0", "dead@0"));
        assert_eq!(h.node("a").stats().final_probes, 0);

        let (soon, later, pings, deadline, h) = a_refutation_missed(true, false);
        assert_eq!(pings, [(deadline, true)]);
        assert_eq!((soon.as_str(), later.as_str()), ("suspect@0", "dead@0"));
        let died = member_events(&h, "a", "b");
        assert_eq!(died.last(), Some(&("died", 0)), "{died:?}");
    }

    #[test]
    fn a_lost_ack_is_answered_by_the_fallback_ping() {
        // Scenario: b's ack to one of a's pings is lost and no relay can help (a's ping-reqs are
        // lost). With the fallback ping, a pings b once more beside the ping-reqs, b's second ack
        // arrives and b is never suspected; without it, b is suspected (and refutes).
        assert_eq!(probe_with_a_lost_ack(true), [("joined", 0)]);
        let without = probe_with_a_lost_ack(false);
        assert!(without.contains(&("suspected", 0)), "{without:?}");
    }
}
