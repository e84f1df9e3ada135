//! Cluster requests: one agent asks every live member, each answers.
//!
//! A client call that must act on the whole cluster (the key commands of
//! `rumour keys`, the queries of `rumour query`) becomes a
//! [`pb::ClusterRequest`] that the agent receiving the call sends to every
//! member it asks (those it sees alive or suspect, maybe narrowed by a
//! filter), over the peer links, and acts on itself. Each member answers
//! once with a [`pb::ClusterReply`] of the same id, sent to the request's
//! sender: at once, or later (a query that a subscribed client answers).
//! The caller gets each answer as it arrives and learns when the last
//! member it asked has answered, or, at its timeout, who did not answer;
//! it never waits past the last answer.
//!
//! This module owns the request table and the dispatch of a request to the
//! code that answers it; what a command does lives with the command (see
//! `key_commands` and `query`). Which requests a node takes at all is the
//! peer service's rule: key commands only sealed with the cluster key,
//! queries sealed or, at a node without a key, from the connection's own
//! host (see `peer`). A member never forwards a request: the fan-out
//! happens only at the agent a client called.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rumour_proto::v1::{self as pb, cluster_reply, cluster_request, envelope::Body, Envelope};
use tokio::sync::mpsc;
use tracing::debug;

use crate::driver::{Driver, Handle};
use crate::error::ApiError;
use crate::stats::bump;

/// A request or a reply, opened and taken off the peer port, on its way to
/// the node task.
#[derive(Debug)]
pub(crate) enum ClusterMessage {
    /// Another agent asks this one.
    Request(pb::ClusterRequest),
    /// A member answers a request this agent sent.
    Reply(pb::ClusterReply),
}

/// One member's answer to a request, and how long after the request
/// started it came in.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Answered {
    pub(crate) name: String,
    pub(crate) answer: cluster_reply::Answer,
    pub(crate) elapsed: Duration,
}

/// The answers to one request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Gathered {
    /// Each member's answer (this agent's included), by member name.
    pub(crate) answers: Vec<(String, cluster_reply::Answer)>,
    /// Members asked that did not answer in time, by name.
    pub(crate) no_answer: Vec<String>,
}

/// How a member answers a request.
pub(crate) enum Answering {
    /// With this, now.
    Now(cluster_reply::Answer),
    /// Later, through [`Driver::send_reply`] (a query waiting for a
    /// subscribed client's answer).
    Later,
    /// Never (a command it must not act on).
    Silent,
}

/// Where an answer given later goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplyTo {
    /// To the agent listening on `addr`, for its request `id`.
    Peer { addr: SocketAddr, id: u64 },
    /// To this agent's own request `id`.
    Own { id: u64 },
}

/// One request still waiting for answers.
struct Pending {
    /// Members not yet heard from: name → the address asked.
    waiting: HashMap<String, SocketAddr>,
    answers: mpsc::UnboundedSender<Answered>,
    started: Instant,
    /// When the caller stops waiting; past it the entry is swept.
    deadline: Instant,
    /// A query (which counts against the concurrent-query limit).
    query: bool,
}

/// The node task's table of requests it sent and still waits on.
#[derive(Default)]
pub(crate) struct Requests {
    next_id: u64,
    pending: HashMap<u64, Pending>,
}

impl Requests {
    /// Forget requests nobody waits on any more: past their deadline, or
    /// whose caller went away.
    fn sweep(&mut self, now: Instant) {
        self.pending
            .retain(|_, p| now < p.deadline && !p.answers.is_closed());
    }

    /// Queries under way (after a sweep).
    pub(crate) fn queries_under_way(&mut self, now: Instant) -> usize {
        self.sweep(now);
        self.pending.values().filter(|p| p.query).count()
    }
}

/// What the node task hands the caller when it sends a request.
pub(crate) struct Started {
    pub(crate) id: u64,
    /// Every member asked, by name.
    pub(crate) asked: Vec<String>,
    pub(crate) answers: mpsc::UnboundedReceiver<Answered>,
    /// When the request went out: answers' times count from here.
    pub(crate) started: Instant,
}

impl Driver {
    /// The members a request goes to: every live member whose name
    /// `wanted`, this node always (if `wanted`), by name.
    pub(crate) fn live_targets(&self, wanted: impl Fn(&str) -> bool) -> Vec<(String, SocketAddr)> {
        let me = self.node.id();
        let mut targets: Vec<(String, SocketAddr)> = self
            .node
            .members()
            .filter(|m| m.state.is_live() && m.id.name() != me.name() && wanted(m.id.name()))
            .map(|m| (m.id.name().to_string(), m.id.addr()))
            .collect();
        if wanted(me.name()) {
            targets.push((me.name().to_string(), me.addr()));
        }
        targets.sort();
        targets
    }

    /// Send `command` to `targets`, act on it here if this node is one of
    /// them, and remember whom to wait for until `timeout` has passed.
    pub(crate) fn start_request(
        &mut self,
        command: cluster_request::Command,
        targets: Vec<(String, SocketAddr)>,
        timeout: Duration,
        query: bool,
    ) -> Started {
        let me = self.node.id().clone();
        let now = Instant::now();
        self.requests.sweep(now);
        let id = self.requests.next_id;
        self.requests.next_id += 1;
        let env = envelope(
            me.addr(),
            Body::ClusterRequest(pb::ClusterRequest {
                id,
                command: Some(command.clone()),
            }),
        );
        let mut waiting = HashMap::new();
        let mut asked = Vec::with_capacity(targets.len());
        let mut here = false;
        for (name, addr) in targets {
            if name == me.name() {
                here = true;
            } else {
                self.links.send_envelope(addr, env.clone());
                waiting.insert(name.clone(), addr);
            }
            asked.push(name);
        }
        asked.sort();
        let (tx, rx) = mpsc::unbounded_channel();
        if here {
            match answer(self, &command, ReplyTo::Own { id }, me.addr()) {
                Answering::Now(own) => {
                    let _ = tx.send(Answered {
                        name: me.name().to_string(),
                        answer: own,
                        elapsed: now.elapsed(),
                    });
                }
                Answering::Later => {
                    waiting.insert(me.name().to_string(), me.addr());
                }
                Answering::Silent => {}
            }
        }
        if !waiting.is_empty() {
            self.requests.pending.insert(
                id,
                Pending {
                    waiting,
                    answers: tx,
                    started: now,
                    deadline: now + timeout,
                    query,
                },
            );
        }
        Started {
            id,
            asked,
            answers: rx,
            started: now,
        }
    }

    /// Take in a request or reply that came on the peer port from the
    /// agent listening on `from`.
    pub(crate) fn receive_cluster(&mut self, from: SocketAddr, msg: ClusterMessage) {
        match msg {
            ClusterMessage::Request(r) => {
                let Some(command) = &r.command else {
                    debug!(peer = %from, "a cluster request without a command");
                    return;
                };
                let to = ReplyTo::Peer {
                    addr: from,
                    id: r.id,
                };
                if let Answering::Now(a) = answer(self, command, to, from) {
                    self.send_reply(to, a);
                }
            }
            ClusterMessage::Reply(r) => self.take_reply(from, r),
        }
    }

    /// Answer a request: send the reply to the agent that asked, or take
    /// it in as a reply to this agent's own request.
    pub(crate) fn send_reply(&mut self, to: ReplyTo, answer: cluster_reply::Answer) {
        let me = self.node.id().clone();
        let reply = |id| pb::ClusterReply {
            id,
            name: me.name().to_string(),
            answer: Some(answer),
        };
        match to {
            ReplyTo::Peer { addr, id } => {
                let env = envelope(me.addr(), Body::ClusterReply(reply(id)));
                self.links.send_envelope(addr, env);
            }
            ReplyTo::Own { id } => self.take_reply(me.addr(), reply(id)),
        }
    }

    /// A member's reply, from the agent listening on `from`, to a request
    /// of this agent. Taken only from the member asked, at the address it
    /// was asked at, while the request is waited on; anything else is
    /// counted (`cluster_replies_ignored`) and dropped.
    fn take_reply(&mut self, from: SocketAddr, r: pb::ClusterReply) {
        let Some(pending) = self.requests.pending.get_mut(&r.id) else {
            // Late (the caller gave up) or unknown.
            bump(&self.stats.cluster_replies_ignored);
            return;
        };
        if pending.waiting.get(&r.name) != Some(&from) {
            bump(&self.stats.cluster_replies_ignored);
            debug!(peer = %from, member = r.name, "a cluster reply from a member not asked");
            return;
        }
        pending.waiting.remove(&r.name);
        let mut gone = false;
        if let Some(answer) = r.answer {
            let answered = Answered {
                name: r.name,
                answer,
                elapsed: pending.started.elapsed(),
            };
            gone = pending.answers.send(answered).is_err();
        }
        if pending.waiting.is_empty() || gone {
            // Dropping the sender tells the caller it has them all.
            self.requests.pending.remove(&r.id);
        }
    }
}

/// This node's answer to `command` from the agent on `asker`, which
/// `reply_to` reaches.
fn answer(
    d: &mut Driver,
    command: &cluster_request::Command,
    reply_to: ReplyTo,
    asker: SocketAddr,
) -> Answering {
    match command {
        cluster_request::Command::Keys(k) => match crate::key_commands::apply(d, k) {
            Some(a) => Answering::Now(cluster_reply::Answer::Keys(a)),
            None => Answering::Silent,
        },
        cluster_request::Command::Query(q) => crate::query::serve(d, q, reply_to, asker),
    }
}

fn envelope(from: SocketAddr, body: Body) -> Envelope {
    Envelope {
        from: Some(from.into()),
        body: Some(body),
        sealed: None,
    }
}

/// The caller's end of a request: each answer as it comes, until every
/// member asked has answered or the timeout has passed.
pub(crate) struct Gatherer {
    handle: Handle,
    id: u64,
    answers: mpsc::UnboundedReceiver<Answered>,
    deadline: tokio::time::Instant,
    timed_out: bool,
}

impl Gatherer {
    pub(crate) fn new(handle: Handle, started: Started, timeout: Duration) -> Gatherer {
        Gatherer {
            handle,
            id: started.id,
            answers: started.answers,
            deadline: tokio::time::Instant::from_std(started.started) + timeout,
            timed_out: false,
        }
    }

    /// The next answer; `None` once every member asked has answered, or
    /// the timeout has passed and what came in by then was handed out.
    pub(crate) async fn next(&mut self) -> Option<Answered> {
        if self.timed_out {
            return self.answers.try_recv().ok();
        }
        match tokio::time::timeout_at(self.deadline, self.answers.recv()).await {
            Ok(answer) => answer,
            Err(_) => {
                // Stop waiting; answers already queued still count.
                self.timed_out = true;
                let id = self.id;
                let _ = self
                    .handle
                    .call(move |d| d.requests.pending.remove(&id).is_some())
                    .await;
                self.answers.try_recv().ok()
            }
        }
    }
}

impl Handle {
    /// Ask every live member (this agent included) with `command`: the
    /// answers once all came in, or at `timeout` what came and who did not
    /// answer. `check` runs on the node task first; its error is returned
    /// and nothing is sent.
    pub(crate) async fn ask_cluster(
        &self,
        command: cluster_request::Command,
        timeout: Duration,
        check: impl FnOnce(&Driver) -> Result<(), ApiError> + Send + 'static,
    ) -> Result<Gathered, ApiError> {
        let started = self
            .call(move |d| {
                check(d)?;
                let targets = d.live_targets(|_| true);
                Ok::<_, ApiError>(d.start_request(command, targets, timeout, false))
            })
            .await??;
        let asked = started.asked.clone();
        let mut gatherer = Gatherer::new(self.clone(), started, timeout);
        let mut answers = Vec::new();
        while let Some(a) = gatherer.next().await {
            answers.push((a.name, a.answer));
        }
        answers.sort_by(|a, b| a.0.cmp(&b.0));
        let no_answer = asked
            .into_iter()
            .filter(|n| !answers.iter().any(|(a, _)| a == n))
            .collect();
        Ok(Gathered { answers, no_answer })
    }
}
