//! The context every part of a node works in, and its outbox.
//!
//! A part of the node (probe, membership, push-pull, tree, ...) owns its own
//! state and receives a [`Ctx`]: the time of the input being handled, the
//! configuration, the node's RNG, its counters, and the [`Outbox`] where
//! what it wants sent or reported goes. Parts never reach into each other's
//! fields; the node hands each the others it needs as arguments.
//!
//! The outbox batches: a tree push, an announcement or a membership rumour
//! queued for a peer that already has one of the same kind waiting is
//! merged into it, up to the size its kind is packed to, so a driver sends
//! exactly the messages the node built and a simulator counts exactly what
//! a transport ships. A driver that takes in what arrived together before
//! it drains the outbox (as the agent does) sends one message per peer and
//! kind where it would have sent one per message taken: the membership
//! news each message brought goes down each tree link in one rumour.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::events::{Event, Output, Stats};
use crate::identity::{Identity, Verified};
use crate::member::NodeId;
use crate::message::Message;
use crate::time::Time;
use crate::wire;

/// Outputs' room kept between bursts.
const OUTPUTS_KEPT: usize = 64;

/// What every part of a node works with while it handles one input.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The time of the input being handled.
    pub(crate) now: Time,
    /// This node's identity (its address stamps every message).
    pub(crate) me: NodeId,
    pub(crate) config: Config,
    /// This node's key pair: signs its own statements and records.
    pub(crate) identity: Identity,
    /// Signatures already checked (maybe shared with other nodes of the
    /// process).
    pub(crate) verified: Verified,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) stats: Stats,
    pub(crate) out: Outbox,
    /// Lifeguard's local health score as the prober last set it, for the
    /// parts that record it (membership's history).
    pub(crate) health: u32,
}

impl Ctx {
    /// Queue `msg` for `to`.
    pub(crate) fn send(&mut self, to: SocketAddr, msg: Message) {
        if self.out.merge(to, &msg, self.limit(&msg), &self.me.addr()) {
            return;
        }
        self.stats.messages_out += 1;
        self.out.push(Output::Send { to, msg });
    }

    /// Report `event` to the application.
    pub(crate) fn emit(&mut self, event: Event) {
        self.out.push(Output::Event(event));
    }

    /// The bytes left in a message whose head is `msg`, keeping `slack`
    /// bytes for the envelope's length prefix to grow as the body fills.
    pub(crate) fn room(&self, msg: &Message, slack: usize) -> usize {
        let used = wire::message_len(&self.me.addr(), msg);
        self.limit(msg).saturating_sub(used + slack)
    }

    /// The size messages of `msg`'s kind are packed to: `datagram_size`
    /// for the kinds that ride datagrams, if set, else `max_message_size`.
    fn limit(&self, msg: &Message) -> usize {
        match self.config.datagram_size {
            Some(size) if msg.rides_datagrams() => size,
            _ => self.config.max_message_size,
        }
    }
}

/// Outputs waiting for the driver, with where each peer's open batch sits.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    queue: VecDeque<Output>,
    /// Outputs taken so far: `queue[i]` is output number `taken + i`.
    taken: u64,
    /// Per peer, the output number of its last queued tree push and
    /// announcement, and that message's encoded body size. Cleared when the
    /// queue drains, so an index never outlives its output.
    open: BTreeMap<SocketAddr, Batch>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Batch {
    eager: Option<(u64, usize)>,
    ihave: Option<(u64, usize)>,
    gossip: Option<(u64, usize)>,
}

impl Outbox {
    fn push(&mut self, out: Output) {
        self.queue.push_back(out);
    }

    /// Merge `msg` into a message of its kind already queued for `to`, if
    /// both fit in `max` bytes together. Returns whether it was merged;
    /// otherwise `msg` opens the batch for its kind.
    fn merge(&mut self, to: SocketAddr, msg: &Message, max: usize, me: &SocketAddr) -> bool {
        let (Message::Eager(_) | Message::IHave(_) | Message::Gossip(_)) = msg else {
            return false;
        };
        let number = self.taken + self.queue.len() as u64;
        // Each kind is repeated fields only, so bodies add up exactly.
        let body = wire::body_len(msg);
        let batch = self.open.entry(to).or_default();
        let slot = match msg {
            Message::Eager(_) => &mut batch.eager,
            Message::IHave(_) => &mut batch.ihave,
            _ => &mut batch.gossip,
        };
        if let Some((at, open_body)) = *slot {
            let fits = wire::envelope_len(me, open_body + body) <= max;
            if let (true, Some(Output::Send { msg: open, .. })) = (
                fits,
                at.checked_sub(self.taken)
                    .and_then(|i| self.queue.get_mut(i as usize)),
            ) {
                match (open, msg) {
                    (Message::Eager(a), Message::Eager(b)) => {
                        a.data.extend(b.data.iter().cloned());
                        a.updates.extend(b.updates.iter().cloned());
                    }
                    (Message::IHave(a), Message::IHave(b)) => a.ids.extend(b.ids.iter().cloned()),
                    (Message::Gossip(a), Message::Gossip(b)) => {
                        a.updates.extend(b.updates.iter().cloned())
                    }
                    _ => unreachable!("a batch indexes a message of its own kind"),
                }
                *slot = Some((at, open_body + body));
                return true;
            }
        }
        *slot = Some((number, body));
        false
    }

    /// The next output, in the order produced.
    pub(crate) fn pop(&mut self) -> Option<Output> {
        let out = self.queue.pop_front();
        match out {
            Some(_) => self.taken += 1,
            None => {
                // Drained: every batch is on its way.
                self.open.clear();
                if self.queue.capacity() > OUTPUTS_KEPT {
                    // A burst (a state sync with thousands of members) grew
                    // the queue; give the memory back rather than hold it.
                    self.queue.shrink_to(OUTPUTS_KEPT);
                }
            }
        }
        out
    }

    /// Whether nothing waits for the driver.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rand::SeedableRng;

    use super::*;
    use crate::message::{Datum, Eager, IHave, Metadata, Nack};

    fn cx(max_message_size: usize) -> Ctx {
        let me = NodeId::new("a", "127.0.0.1:1001".parse().unwrap()).unwrap();
        Ctx {
            now: Time::ZERO,
            me,
            config: Config {
                max_message_size,
                ..Config::lan()
            },
            identity: Identity::from_seed(0),
            verified: Verified::new(),
            rng: ChaCha8Rng::seed_from_u64(0),
            stats: Stats::default(),
            out: Outbox::default(),
            health: 0,
        }
    }

    fn push(n: u64) -> Message {
        let m = Metadata {
            lamport: n,
            origin: Arc::from("a"),
            value: Arc::from(&[0u8; 100][..]),
            signature: Default::default(),
        };
        Message::Eager(Eager {
            data: vec![Datum::Metadata(m)],
            ..Eager::default()
        })
    }

    fn sent(cx: &mut Ctx) -> Vec<(SocketAddr, Message)> {
        std::iter::from_fn(|| cx.out.pop())
            .filter_map(|o| match o {
                Output::Send { to, msg } => Some((to, msg)),
                Output::Event(_) => None,
            })
            .collect()
    }

    #[test]
    fn pushes_to_one_peer_merge_until_the_size_limit() {
        let (b, c) = (
            "127.0.0.1:1002".parse().unwrap(),
            "127.0.0.1:1003".parse().unwrap(),
        );
        let mut cx = cx(800);
        for n in 1..=6 {
            cx.send(b, push(n));
        }
        cx.send(c, push(7));
        cx.send(b, Message::Nack(Nack { seq: 1 }));
        cx.send(b, Message::IHave(IHave::default()));
        let out = sent(&mut cx);
        let eager: Vec<usize> = out
            .iter()
            .filter_map(|(to, m)| match m {
                Message::Eager(e) if *to == b => Some(e.data.len()),
                _ => None,
            })
            .collect();
        // About 180 bytes a push: four fit in 800, the rest open a second.
        assert_eq!(eager, [4, 2]);
        for (_, m) in &out {
            assert!(wire::message_len(&cx.me.addr(), m) <= 800, "{m:?}");
        }
        assert_eq!(out.len(), 5, "two to b, one to c, the nack, the ihave");
        assert_eq!(cx.stats.messages_out, 5, "counted as sent, not as asked");
    }

    fn big_push(len: usize) -> Message {
        let mut m = push(0);
        if let Message::Eager(e) = &mut m {
            if let Datum::Metadata(d) = &mut e.data[0] {
                d.value = Arc::from(vec![0u8; len]);
            }
        }
        m
    }

    #[test]
    fn datagram_kinds_pack_to_the_datagram_size_and_a_big_record_goes_alone() {
        let b: SocketAddr = "127.0.0.1:1002".parse().unwrap();
        let mut cx = cx(1 << 16);
        cx.config.datagram_size = Some(800);
        for n in 1..=6 {
            cx.send(b, push(n));
        }
        cx.send(b, big_push(4000));
        cx.send(b, push(7));
        let sizes: Vec<usize> = sent(&mut cx)
            .iter()
            .map(|(_, m)| wire::message_len(&cx.me.addr(), m))
            .collect();
        // Four small pushes fill 800 bytes, two more open a second batch;
        // the 4,000-byte record cannot join it and goes alone, and the one
        // after it opens a third.
        assert_eq!(sizes.len(), 4, "{sizes:?}");
        assert!(sizes[..2].iter().all(|&s| s <= 800), "{sizes:?}");
        assert!(sizes[2] > 4000, "{sizes:?}");
        // Rumours and announcements fill the datagram; a push-pull page the
        // whole message.
        let gossip = Message::Gossip(crate::message::Gossip {
            updates: Vec::new(),
        });
        assert!(cx.room(&gossip, 0) < 800);
        let pp = Message::push_pull(crate::message::PushPull::default());
        assert!(cx.room(&pp, 0) > 60_000);
    }

    fn rumour(n: u32) -> Message {
        let id = NodeId::new(&format!("m{n}"), "127.0.0.1:2000".parse().unwrap()).unwrap();
        Message::Gossip(crate::message::Gossip {
            updates: vec![crate::message::MemberUpdate {
                id,
                incarnation: crate::Incarnation(n),
                state: crate::MemberState::Alive,
                by: None,
                key: Default::default(),
                signature: Default::default(),
            }],
        })
    }

    #[test]
    fn rumours_to_one_peer_merge_in_order_until_the_datagram_size() {
        // The news of several messages taken together goes down a tree
        // link as one rumour: in the order it came, packed to the datagram
        // size it rides, the next rumour opening a second.
        let (b, c): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1002".parse().unwrap(),
            "127.0.0.1:1003".parse().unwrap(),
        );
        let mut cx = cx(1 << 16);
        // The datagram holds three rumours exactly.
        let mut three = rumour(1);
        if let (Message::Gossip(a), Message::Gossip(b), Message::Gossip(c)) =
            (&mut three, rumour(2), rumour(3))
        {
            a.updates.extend(b.updates.into_iter().chain(c.updates));
        }
        let size = wire::message_len(&cx.me.addr(), &three);
        cx.config.datagram_size = Some(size);
        for n in 1..=5 {
            cx.send(b, rumour(n));
        }
        cx.send(c, rumour(6));
        let out = sent(&mut cx);
        let to_b: Vec<Vec<u32>> = out
            .iter()
            .filter_map(|(to, m)| match m {
                Message::Gossip(g) if *to == b => {
                    Some(g.updates.iter().map(|u| u.incarnation.0).collect())
                }
                _ => None,
            })
            .collect();
        assert_eq!(to_b, [vec![1, 2, 3], vec![4, 5]]);
        for (_, m) in &out {
            assert!(wire::message_len(&cx.me.addr(), m) <= size, "{m:?}");
        }
        assert_eq!(out.len(), 3, "two to b, one to c");
        assert_eq!(cx.stats.messages_out, out.len() as u64);
    }

    #[test]
    fn a_drained_outbox_starts_new_batches() {
        let b: SocketAddr = "127.0.0.1:1002".parse().unwrap();
        let mut cx = cx(1 << 16);
        cx.send(b, push(1));
        assert_eq!(sent(&mut cx).len(), 1);
        cx.send(b, push(2));
        cx.send(b, push(3));
        let out = sent(&mut cx);
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0].1, Message::Eager(e) if e.data.len() == 2));
    }
}
