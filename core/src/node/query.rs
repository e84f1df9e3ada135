//! Fresh reads: ask a key's owner for its current value, and fall back to
//! the local replica when the owner does not answer in time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use super::membership::Membership;
use super::outbox::Ctx;
use super::replicas::Replicas;
use crate::events::{Event, FreshRead, ReadSource};
use crate::message::{Message, Query, QueryReply};
use crate::time::Time;

#[derive(Debug)]
struct Pending {
    owner: Arc<str>,
    key: Arc<str>,
    to: SocketAddr,
    deadline: Time,
}

/// Fresh reads waiting for their owners.
#[derive(Debug, Default)]
pub(crate) struct Queries {
    pending: BTreeMap<u32, Pending>,
    /// `pending` by deadline.
    due: BTreeSet<(Time, u32)>,
    next_id: u32,
}

impl Queries {
    /// Ask `owner` for `key`; the answer comes as an event with the
    /// returned id, at once when the owner is this node or not live.
    pub(crate) fn ask(
        &mut self,
        cx: &mut Ctx,
        m: &Membership,
        r: &Replicas,
        owner: &str,
        key: &str,
    ) -> u32 {
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let to = m.live(owner).map(|o| o.addr());
        match to {
            Some(to) if owner != cx.me.name() && m.is_running() => {
                let deadline = cx.now + cx.config.query_timeout;
                let pending = Pending {
                    owner: Arc::from(owner),
                    key: Arc::from(key),
                    to,
                    deadline,
                };
                if let Some(old) = self.pending.insert(id, pending) {
                    // The ids wrapped around onto a read still waiting.
                    self.due.remove(&(old.deadline, id));
                }
                self.due.insert((deadline, id));
                let ask = Query {
                    id,
                    key: Arc::from(key),
                };
                cx.send(to, Message::Query(ask));
            }
            _ => {
                let source = if owner == cx.me.name() {
                    ReadSource::Owner
                } else {
                    ReadSource::Replica
                };
                answer_locally(cx, r, id, Arc::from(owner), Arc::from(key), source);
            }
        }
        id
    }

    /// The owner's side: answer from our own namespace.
    pub(crate) fn on_query(cx: &mut Ctx, r: &Replicas, from: SocketAddr, q: &Query) {
        let (generation, version, value) = r.store().lookup(cx.me.name(), &q.key);
        let reply = QueryReply {
            id: q.id,
            generation,
            version,
            value,
        };
        cx.send(from, Message::QueryReply(reply));
    }

    /// The owner answered (or someone claims to: only the address asked
    /// counts).
    pub(crate) fn on_reply(&mut self, cx: &mut Ctx, from: SocketAddr, reply: QueryReply) {
        let Some(q) = self.pending.get(&reply.id).filter(|q| q.to == from) else {
            cx.stats.stale_acks += 1;
            return;
        };
        self.due.remove(&(q.deadline, reply.id));
        let q = self.pending.remove(&reply.id).expect("found above");
        cx.emit(Event::FreshRead(FreshRead {
            id: reply.id,
            owner: q.owner,
            key: q.key,
            source: ReadSource::Owner,
            generation: reply.generation,
            version: reply.version,
            value: reply.value,
        }));
    }

    /// When the first unanswered read times out.
    pub(crate) fn deadline(&self) -> Option<Time> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Reads whose owners did not answer in time get the replica's value.
    pub(crate) fn expire(&mut self, cx: &mut Ctx, r: &Replicas) {
        while let Some(&(at, id)) = self.due.first() {
            if at > cx.now {
                break;
            }
            self.due.pop_first();
            if let Some(q) = self.pending.remove(&id) {
                answer_locally(cx, r, id, q.owner, q.key, ReadSource::Replica);
            }
        }
    }
}

fn answer_locally(
    cx: &mut Ctx,
    r: &Replicas,
    id: u32,
    owner: Arc<str>,
    key: Arc<str>,
    source: ReadSource,
) {
    let (generation, version, value) = r.store().lookup(&owner, &key);
    cx.emit(Event::FreshRead(FreshRead {
        id,
        owner,
        key,
        source,
        generation,
        version,
        value,
    }));
}

#[cfg(test)]
mod tests {
    use crate::harness::*;
    use crate::*;

    #[test]
    fn a_fresh_read_is_answered_by_the_owner() {
        // Scenario: b writes k = v1, which a replicates; then b's data to a is held back and b
        // writes k = v2. a's query_fresh(b, k) goes to b, whose reply carries v2
        // (ReadSource::Owner) one round trip later, while a's replica still says v1.
        let mut h = Harness::new(&["a", "b"]);
        link_all(&mut h, &["a", "b"]);
        h.act("b", |n, now| n.put(now, "k", b"v1")).unwrap();
        h.wait_for(ms(10), "a replicating k", |h| {
            value(h, "a", "b", "k").is_some()
        });
        for kind in ["eager", "ihave", "push-pull"] {
            h.hold_kind("b", "a", kind);
        }
        h.act("b", |n, now| n.put(now, "k", b"v2")).unwrap();
        let asked = h.now;
        let id = h.act("a", |n, now| n.query_fresh(now, "b", "k"));
        let t = h.wait_for(secs(1), "a's fresh read", |h| {
            !fresh_reads(h, "a").is_empty()
        });
        let (_, r) = fresh_reads(&h, "a").remove(0);
        assert_eq!((r.id, r.source, r.version), (id, ReadSource::Owner, 2));
        assert_eq!(r.value.as_deref(), Some(&b"v2"[..]));
        assert_eq!(t - asked, h.latency * 2);
        assert_eq!(value(&h, "a", "b", "k").as_deref(), Some("v1"));
    }

    #[test]
    fn a_fresh_read_falls_back_to_the_replica_after_the_timeout() {
        // Scenario: b writes k = v1, which a replicates; then every query reply from b to a is
        // lost. a's query_fresh(b, k) hears nothing from b, and exactly query_timeout later a
        // answers from its own replica: v1, ReadSource::Replica.
        let mut h = Harness::new(&["a", "b"]);
        link_all(&mut h, &["a", "b"]);
        h.act("b", |n, now| n.put(now, "k", b"v1")).unwrap();
        h.wait_for(ms(10), "a replicating k", |h| {
            value(h, "a", "b", "k").is_some()
        });
        h.drop_kind("b", "a", "query-reply");
        let asked = h.now;
        let id = h.act("a", |n, now| n.query_fresh(now, "b", "k"));
        let t = h.wait_for(secs(2), "a's fresh read", |h| {
            !fresh_reads(h, "a").is_empty()
        });
        assert_eq!(t - asked, Config::local().query_timeout);
        let (_, r) = fresh_reads(&h, "a").remove(0);
        assert_eq!((r.id, r.source, r.version), (id, ReadSource::Replica, 1));
        assert_eq!(r.value.as_deref(), Some(&b"v1"[..]));
        assert_eq!(h.sent("a", "b", "query"), 1);
        let replies = h.messages("b", "a", "query-reply");
        assert!(replies.len() == 1 && replies[0].dropped, "sent, and lost");
    }
}
