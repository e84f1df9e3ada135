//! Cluster requests: one agent asks every live member, each answers.
//!
//! A client call that must act on the whole cluster (the key commands of
//! `rumour keys`) becomes a [`ClusterRequest`] that the agent receiving the
//! call sends to every member it sees alive or suspect, over the peer
//! links, and acts on itself. Each member answers with a [`ClusterReply`]
//! of the same id, sent to the request's sender. The caller gets every
//! answer as soon as the last member it asked has answered, or, at its
//! timeout, what came in by then and the names of those that did not
//! answer; it never waits past the last answer.
//!
//! This module owns the request table and the dispatch of a request to the
//! code that answers it; what a command does lives with the command (see
//! `key_commands`). It never answers a request that came without the
//! cluster key: requests travel sealed, and a node without a keyring drops
//! them (the peer service refuses them first).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use rumour_proto::v1::{self as pb, cluster_reply, cluster_request, envelope::Body, Envelope};
use tokio::sync::mpsc;
use tracing::debug;

use crate::driver::{Driver, Handle};
use crate::error::ApiError;

/// A request or a reply, opened and taken off the peer port, on its way to
/// the node task.
#[derive(Debug)]
pub(crate) enum ClusterMessage {
    /// Another agent asks this one.
    Request(pb::ClusterRequest),
    /// A member answers a request this agent sent.
    Reply(pb::ClusterReply),
}

/// The answers to one request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Gathered {
    /// Each member's answer (this agent's included), by member name.
    pub(crate) answers: Vec<(String, cluster_reply::Answer)>,
    /// Members asked that did not answer in time, by name.
    pub(crate) no_answer: Vec<String>,
}

/// One request still waiting for answers.
struct Pending {
    /// Members not yet heard from: name → the address asked.
    waiting: HashMap<String, SocketAddr>,
    answers: mpsc::UnboundedSender<(String, cluster_reply::Answer)>,
}

/// The node task's table of requests it sent and still waits on.
#[derive(Default)]
pub(crate) struct Requests {
    next_id: u64,
    pending: HashMap<u64, Pending>,
}

/// What the node task hands the caller when it sends a request.
struct Started {
    id: u64,
    asked: Vec<String>,
    answers: mpsc::UnboundedReceiver<(String, cluster_reply::Answer)>,
}

impl Driver {
    /// Send `command` to every live member, act on it here, and remember
    /// whom to wait for.
    fn start_request(&mut self, command: cluster_request::Command) -> Started {
        let me = self.node.id().clone();
        let id = self.requests.next_id;
        self.requests.next_id += 1;
        let waiting: HashMap<String, SocketAddr> = self
            .node
            .members()
            .filter(|m| m.state.is_live() && m.id.name() != me.name())
            .map(|m| (m.id.name().to_string(), m.id.addr()))
            .collect();
        let env = envelope(
            me.addr(),
            Body::ClusterRequest(pb::ClusterRequest {
                id,
                command: Some(command.clone()),
            }),
        );
        for addr in waiting.values() {
            self.links.send_envelope(*addr, env.clone());
        }
        let mut asked: Vec<String> = waiting.keys().cloned().collect();
        asked.push(me.name().to_string());
        asked.sort();
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(own) = answer(self, &command) {
            let _ = tx.send((me.name().to_string(), own));
        }
        if !waiting.is_empty() {
            self.requests.pending.insert(
                id,
                Pending {
                    waiting,
                    answers: tx,
                },
            );
        }
        Started {
            id,
            asked,
            answers: rx,
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
                let Some(answer) = answer(self, command) else {
                    return;
                };
                let env = envelope(
                    self.node.id().addr(),
                    Body::ClusterReply(pb::ClusterReply {
                        id: r.id,
                        name: self.node.id().name().to_string(),
                        answer: Some(answer),
                    }),
                );
                self.links.send_envelope(from, env);
            }
            ClusterMessage::Reply(r) => {
                let Some(pending) = self.requests.pending.get_mut(&r.id) else {
                    // Late (the caller gave up) or unknown.
                    return;
                };
                // Only the member asked, from the address it was asked at.
                if pending.waiting.get(&r.name) != Some(&from) {
                    debug!(peer = %from, member = r.name, "a cluster reply from a member not asked");
                    return;
                }
                pending.waiting.remove(&r.name);
                if let Some(answer) = r.answer {
                    let _ = pending.answers.send((r.name, answer));
                }
                if pending.waiting.is_empty() {
                    // Dropping the sender tells the caller it has them all.
                    self.requests.pending.remove(&r.id);
                }
            }
        }
    }
}

/// This node's answer to `command`; `None` to stay silent (a command it
/// must not act on).
fn answer(d: &mut Driver, command: &cluster_request::Command) -> Option<cluster_reply::Answer> {
    match command {
        cluster_request::Command::Keys(k) => {
            crate::key_commands::apply(d, k).map(cluster_reply::Answer::Keys)
        }
    }
}

fn envelope(from: SocketAddr, body: Body) -> Envelope {
    Envelope {
        from: Some(from.into()),
        body: Some(body),
        sealed: None,
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
        let Started {
            id,
            asked,
            answers: mut rx,
        } = self
            .call(move |d| {
                check(d)?;
                Ok::<_, ApiError>(d.start_request(command))
            })
            .await??;
        let mut answers = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(a)) => answers.push(a),
                // Every member asked has answered.
                Ok(None) => break,
                Err(_) => {
                    // Stop waiting; answers already queued still count.
                    let _ = self.call(move |d| d.requests.pending.remove(&id)).await;
                    while let Ok(a) = rx.try_recv() {
                        answers.push(a);
                    }
                    break;
                }
            }
        }
        answers.sort_by(|a, b| a.0.cmp(&b.0));
        let no_answer = asked
            .into_iter()
            .filter(|n| !answers.iter().any(|(a, _)| a == n))
            .collect();
        Ok(Gathered { answers, no_answer })
    }
}
