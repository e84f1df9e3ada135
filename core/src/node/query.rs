//! Fresh reads: ask a key's owner for its current value, and fall back to
//! the local replica when the owner does not answer in time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use super::events::{Event, FreshRead, ReadSource};
use super::membership::Membership;
use super::outbox::Ctx;
use super::replicas::Replicas;
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
