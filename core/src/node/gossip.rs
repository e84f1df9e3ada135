//! The gossip round and rumour mongering.
//!
//! Every `gossip_interval`, membership rumours go to `fanout` peers (when
//! there is news), and fresh data goes out by the configured mode: the
//! tree's announcements (see `plumtree`), or one of the classic periodic
//! modes kept for experiments: `push` (rumour mongering of data with a
//! retransmit budget), `pull` (ask `fanout` peers for their fresh data) and
//! `push-and-pull` (both at once, Karp et al.'s exchange). None of these is
//! the anti-entropy push-pull, which compares whole digests (`push_pull`).

use std::net::SocketAddr;

use super::membership::Membership;
use super::outbox::Ctx;
use super::timers::{advance, first_tick};
use crate::broadcast::{BroadcastQueue, Rumour};
use crate::config::Dissemination;
use crate::message::{DataGossip, Datum, DatumId, Gossip, Message};
use crate::time::Time;
use crate::wire;

/// Room kept for the envelope's length prefix in a gossip message.
const GOSSIP_SLACK: usize = 2;
/// Room kept for the envelope's length prefix in a data message.
const DATA_SLACK: usize = 4;

/// Fresh data as its queue holds it: in tree mode only its id, which is
/// all an announcement carries (the datum itself is remembered once, by
/// the tree, to answer grafts); in the periodic modes the datum, to push.
#[derive(Clone, Debug)]
enum Fresh {
    /// To announce (tree mode).
    Announce(DatumId),
    /// To push (the periodic modes).
    Push(Datum),
}

impl Fresh {
    fn id(&self) -> DatumId {
        match self {
            Fresh::Announce(id) => id.clone(),
            Fresh::Push(d) => d.id(),
        }
    }
}

impl Rumour for Fresh {
    type Key = DatumId;
    fn key(&self) -> DatumId {
        self.id()
    }
    fn same_news(&self, _: &Self) -> bool {
        true
    }
}

/// The gossip round's timer and the queue of fresh data.
#[derive(Debug)]
pub(crate) struct Gossiper {
    next_round: Time,
    /// Fresh data waiting to be gossiped (or, in tree mode, announced).
    fresh: BroadcastQueue<Fresh>,
}

impl Gossiper {
    /// `hash_key` keys the name lookups of its queue of fresh data.
    pub(crate) fn new(cx: &mut Ctx, hash_key: u64) -> Gossiper {
        let c = &cx.config;
        let next_round = first_tick(c.timer_phase, c.gossip_interval, cx.now, &mut cx.rng);
        Gossiper {
            next_round,
            fresh: BroadcastQueue::new(hash_key),
        }
    }

    /// When the next gossip round is due.
    pub(crate) fn deadline(&self) -> Time {
        self.next_round
    }

    /// A round is starting: schedule the next.
    pub(crate) fn tick(&mut self, cx: &Ctx) {
        self.next_round = advance(self.next_round, cx.config.gossip_interval, cx.now);
    }

    /// Membership rumours to `fanout` peers, as many as fit in a message.
    pub(crate) fn spread_rumours(&mut self, cx: &mut Ctx, m: &mut Membership) {
        if m.pending_rumours() == 0 {
            return;
        }
        let c = &cx.config;
        let peers = m
            .table_mut()
            .gossip_peers(c.fanout, c.peer_selection, &mut cx.rng);
        for peer in peers {
            let mut msg = Message::Gossip(Gossip {
                updates: Vec::new(),
            });
            let room = cx.room(&msg, GOSSIP_SLACK);
            if let Some(updates) = msg.rumours_mut() {
                m.piggyback(cx, room, updates);
                if updates.is_empty() {
                    break;
                }
            }
            cx.send(peer.addr(), msg);
        }
    }

    // ----- the fresh-data queue ------------------------------------------

    /// Queue a fresh datum: its id to announce (tree), or itself to push.
    pub(crate) fn queue(&mut self, cx: &Ctx, datum: Datum) {
        let (fresh, size) = match cx.config.dissemination {
            Dissemination::Tree => {
                let id = datum.id();
                let size = wire::datum_id_field_len(&id);
                (Fresh::Announce(id), size)
            }
            _ => {
                let size = wire::datum_field_len(&datum);
                (Fresh::Push(datum), size)
            }
        };
        self.fresh.push(fresh, size, cx.config.max_broadcasts);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.fresh.is_empty()
    }

    /// The ids of fresh data that fit in `room`, each counted as one more
    /// of its `rounds` announcements.
    pub(crate) fn take_ids(&mut self, room: usize, rounds: u32) -> Vec<DatumId> {
        let mut fresh = Vec::new();
        self.fresh.pack(room, rounds, &mut fresh);
        fresh.iter().map(Fresh::id).collect()
    }

    /// A datum came again: it is widespread, so it yields to fresher news.
    pub(crate) fn heard_again(&mut self, cx: &Ctx, m: &Membership, datum: &Datum) {
        let limit = m.retransmit_limit(cx);
        let again = Fresh::Announce(datum.id());
        // Data keeps the old counter (each duplicate as `retransmit_mult`
        // sends): the push modes are measured against the model's
        // dissemination (docs/dissemination.md).
        let mult = cx.config.retransmit_mult;
        self.fresh.heard_again(&again, mult, limit);
    }

    fn pack(&mut self, cx: &Ctx, m: &Membership) -> Vec<Datum> {
        if self.fresh.is_empty() {
            return Vec::new();
        }
        let mut fresh = Vec::new();
        let room = cx.room(&Message::DataGossip(DataGossip::default()), DATA_SLACK);
        let limit = m.retransmit_limit(cx);
        self.fresh.pack(room, limit, &mut fresh);
        let pushed = fresh.into_iter().filter_map(|f| match f {
            Fresh::Push(d) => Some(d),
            Fresh::Announce(_) => None,
        });
        pushed.collect()
    }

    // ----- the periodic modes --------------------------------------------

    /// The data half of a gossip round in the `push`, `pull` and
    /// `push-and-pull` modes.
    pub(crate) fn data_round(&mut self, cx: &mut Ctx, m: &mut Membership) {
        let c = &cx.config;
        let (k, selection, mode) = (c.fanout, c.peer_selection, c.dissemination);
        match mode {
            Dissemination::Tree => {}
            Dissemination::Push | Dissemination::PushAndPull => {
                if self.fresh.is_empty() && mode == Dissemination::Push {
                    return;
                }
                let pull = mode == Dissemination::PushAndPull;
                let peers = m.table_mut().gossip_peers(k, selection, &mut cx.rng);
                for p in peers {
                    let data = self.pack(cx, m);
                    if data.is_empty() && !pull {
                        break;
                    }
                    cx.send(p.addr(), Message::DataGossip(DataGossip { data, pull }));
                }
            }
            Dissemination::Pull => {
                let peers = m.table_mut().gossip_peers(k, selection, &mut cx.rng);
                for p in peers {
                    let ask = DataGossip {
                        data: Vec::new(),
                        pull: true,
                    };
                    cx.send(p.addr(), Message::DataGossip(ask));
                }
            }
        }
    }

    /// A peer asked for our fresh data.
    pub(crate) fn answer_pull(&mut self, cx: &mut Ctx, m: &Membership, from: SocketAddr) {
        let data = self.pack(cx, m);
        if !data.is_empty() {
            cx.send(from, Message::DataGossip(DataGossip { data, pull: false }));
        }
    }
}
