//! The data path between the parts: what happens to a datum from its
//! receipt (by tree push, periodic gossip or anti-entropy) to its spreading.
//!
//! `replicas` decides what a datum is (fresh, duplicate, gap, refused);
//! this file decides what follows: a fresh datum spreads on, a duplicate
//! pushed along the tree prunes its link unless anti-entropy delivered it
//! first (adoption), a datum ahead of a gap waits in the store's gap buffer
//! while the versions before it are pulled, and is passed on once it applies.

use std::net::SocketAddr;

use super::membership::Heard;
use super::push_pull::AntiEntropy;
use super::replicas::Receipt;
use super::Node;
use crate::config::Dissemination;
use crate::member::MemberState;
use crate::message::{Datum, Gossip, Message, PushPull, PushPullKind};

impl Node {
    /// Start spreading a fresh datum (ours, or first received from `from`):
    /// pushed along the tree at once, and queued for the gossip rounds.
    pub(super) fn spread(&mut self, datum: Datum, from: Option<SocketAddr>) {
        match self.cx.config.dissemination {
            Dissemination::Tree => {
                self.tree.push(&mut self.cx, &datum, from);
                if self.probe.lossy(self.cx.now) {
                    self.tree.announce_soon(&self.cx, datum.id());
                }
            }
            _ => self.tree.remember(&self.cx, &datum),
        }
        self.gossip.queue(&self.cx, datum);
    }

    /// Data from `from`, pushed along the tree (`eager`) or by periodic
    /// gossip.
    pub(super) fn on_data(&mut self, from: SocketAddr, data: Vec<Datum>, eager: bool) {
        let tree = self.cx.config.dissemination == Dissemination::Tree;
        let on_tree = eager && tree;
        // A duplicate over a tree link prunes it, even beside fresh data in
        // the same batch: a second parent that is quicker for some versions
        // is still a second parent, and its pushes arrive out of order.
        let mut prune = false;
        for datum in data {
            let receipt = self
                .replicas
                .receive(&mut self.cx, &self.membership, Some(from), &datum);
            match receipt {
                Receipt::Fresh => {
                    self.tree
                        .arrived(&mut self.cx, &datum.id(), on_tree.then_some(from));
                    self.spread(datum, Some(from));
                    self.spread_released();
                }
                Receipt::Duplicate if on_tree => {
                    if self.tree.arrived_off_tree(self.cx.now, &datum) {
                        // Anti-entropy was quicker than the tree: this push
                        // is the tree's own path here, not a redundant one,
                        // and the peers below still expect it from us.
                        self.cx.stats.tree_adoptions += 1;
                        self.spread(datum, Some(from));
                    } else {
                        prune = true;
                    }
                }
                Receipt::Duplicate => {
                    if !tree {
                        self.gossip.heard_again(&self.cx, &self.membership, &datum);
                    }
                }
                Receipt::Gap => {
                    if let Datum::Delta(d) = &datum {
                        self.replicas
                            .pull_gap(&mut self.cx, from, &d.owner, d.generation);
                    }
                }
                Receipt::Refused => {}
            }
        }
        if prune {
            self.tree.prune(&mut self.cx, from);
        }
    }

    /// Apply the deltas and metadata of a push-pull. Nothing of it is
    /// spread (it is old news to the sender), but the tree notes what came
    /// this way so that its own later push is not taken for a duplicate.
    pub(super) fn merge_data(&mut self, from: SocketAddr, p: &PushPull) {
        let tree = self.cx.config.dissemination == Dissemination::Tree;
        if let Some(m) = &p.metadata {
            let datum = Datum::Metadata(m.clone());
            let receipt = self
                .replicas
                .receive(&mut self.cx, &self.membership, None, &datum);
            if receipt == Receipt::Fresh {
                self.tree.note_off_tree_metadata(&self.cx, datum.id());
            }
        }
        for d in &p.deltas {
            if self
                .replicas
                .apply_synced(&mut self.cx, &self.membership, from, d)
            {
                if d.to < d.sender_version && p.kind == PushPullKind::Deltas {
                    // An answer cut short (a pull's, or an exchange's last
                    // leg): the rest from the same peer, at once.
                    self.replicas
                        .pull_rest(&mut self.cx, from, &d.owner, d.generation);
                }
                if tree {
                    self.tree
                        .note_off_tree(&self.cx, &d.owner, d.generation, d.from, d.to);
                }
                self.spread_released();
            }
        }
    }

    /// Pass on the rumours that waited for a gap and are now held.
    fn spread_released(&mut self) {
        for (datum, from) in self.replicas.take_released() {
            self.spread(datum, Some(from));
        }
    }

    /// One step of a push-pull exchange from `from` (see `push_pull`).
    pub(super) fn on_push_pull(&mut self, from: SocketAddr, mut p: PushPull) {
        AntiEntropy::bound(&mut self.cx, &mut p);
        match p.kind {
            PushPullKind::Summary => {
                let (cx, m, r) = (&mut self.cx, &self.membership, &self.replicas);
                self.anti_entropy.on_summary(cx, m, r, from, &p)
            }
            PushPullKind::Join | PushPullKind::Sync => {
                let asked = p.kind == PushPullKind::Sync && self.anti_entropy.answers_ours(from);
                self.merge(from, &p, asked);
                let (cx, m, r) = (&mut self.cx, &self.membership, &self.replicas);
                self.anti_entropy.on_sync(cx, m, r, from, &p);
                // A joiner this node now holds alive at the address it
                // joined from, and no one else, is welcome.
                let m = &self.membership;
                let joined = p.kind == PushPullKind::Join
                    && p.members.iter().any(|u| {
                        u.id.addr() == from
                            && m.live(u.id.name()).is_some_and(|id| id.addr() == from)
                    });
                if joined && self.cx.config.eager_membership {
                    self.tree.welcome(&self.cx, from);
                }
            }
            PushPullKind::Reply => {
                let asked = self.anti_entropy.answers_ours(from);
                self.merge(from, &p, asked);
                let (cx, m, r) = (&mut self.cx, &self.membership, &self.replicas);
                self.anti_entropy.on_reply(cx, m, r, from, &p);
                let tree = self.cx.config.dissemination == Dissemination::Tree;
                if tree && self.membership.is_running() {
                    self.tree.link_if_alone(&mut self.cx, &mut self.membership);
                }
            }
            PushPullKind::Deltas if !p.members.is_empty() => {
                // The members our `Reply` wanted.
                let asked = self.anti_entropy.answers_ours(from);
                self.merge(from, &p, asked);
            }
            PushPullKind::Deltas => self.merge_data(from, &p),
            PushPullKind::Pull => {
                AntiEntropy::on_pull(&mut self.cx, &self.membership, &self.replicas, from, &p)
            }
        }
    }

    /// Merge the members and data of a push-pull from `from` (`asked`: it
    /// answers an exchange this node opened).
    ///
    /// News in it that this node is suspect or dead is refuted, and the
    /// refutation goes straight back to `from` as well as out as a rumour:
    /// after a partition each side holds the other dead, so the rumour
    /// would reach no one across the cut, and the two would stay apart
    /// until some later exchange happened to carry the refutation. Only a
    /// refutation goes back (this node's incarnation rose while merging):
    /// news that changed nothing draws nothing.
    fn merge(&mut self, from: SocketAddr, p: &PushPull, asked: bool) {
        self.membership
            .check_reconnect_answer(&mut self.cx, from, &p.members);
        let before = self.membership.incarnation();
        for u in &p.members {
            self.apply_news(u, Heard::Sync { from, asked });
        }
        if self.membership.incarnation() > before && self.membership.is_running() {
            self.cx.stats.refutations_returned += 1;
            let alive = self.membership.self_update(&self.cx, MemberState::Alive);
            let msg = Message::Gossip(Gossip {
                updates: vec![alive],
            });
            self.cx.send(from, msg);
        }
        self.merge_data(from, p);
    }

    /// While probes miss acks (a lossy network): one extra exchange of
    /// namespaces each probe period, so that anti-entropy repairs every
    /// loss within one push-pull interval.
    pub(super) fn repair_round(&mut self) {
        AntiEntropy::repair_round(&mut self.cx, &mut self.membership, &self.replicas);
    }
}
