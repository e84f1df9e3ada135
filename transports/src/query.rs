//! Cluster-wide queries (`rumour query`): ask every live member, stream
//! back each one's answer.
//!
//! A query is a [cluster request](crate::cluster_request) with a name and
//! a payload. The agent a client calls sends it to every member it sees
//! alive or suspect whose name matches the query's filter (itself
//! included), and each member answers once: the agent itself for a
//! built-in name ([`BUILT_IN_QUERIES`]: `ping` answers with the member's
//! name and incarnation), else the clients subscribed to the name at that
//! member ([`Handle::subscribe_queries`]); the first of their answers
//! ([`Handle::answer_query`]) is the member's. A member where nobody is
//! subscribed to the name, or whose subscribers are not keeping up,
//! answers at once with an error, so that a query ends as soon as it can.
//!
//! Limits, each refused before any member is asked and naming the limit
//! (`TransportConfig::query_max_*`): the payload (of a query and of an
//! answer), the members one query may ask, the queries under way at one
//! agent. A member holds at most `query_max_concurrent` queries of one
//! asker (and [`MAX_SERVED_QUERIES`] in all) for its subscribers at once,
//! each until the asker's timeout; past that it answers "busy" at once.
//!
//! Without a cluster key a query travels in plaintext, and anyone who can
//! reach a member's peer port can ask it (as they can send it any other
//! message): its subscribers must treat a query's payload as untrusted.
//! The answer goes only to the sender's own host (the peer service's
//! sender-address rule), one per request, at most the payload limit plus a
//! few hundred bytes; a member never forwards a request. So a query sent
//! to a member's peer port yields what a probe does: one reply, to the
//! sender.
//!
//! What it must never do: block the node task on a client (a subscriber's
//! queue that is full is skipped), or hold a query past its timeout.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rumour_proto::v1::{self as pb, cluster_reply, cluster_request};
use tokio::sync::mpsc;

use crate::cluster_request::{Answered, Answering, Gatherer, ReplyTo};
use crate::config::TransportConfig;
use crate::driver::{Driver, Handle};
use crate::error::ApiError;
use crate::stats::bump;

/// How long a query waits for answers when the caller does not say.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a query may wait.
pub const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest query name, in bytes.
pub const MAX_QUERY_NAME_LEN: usize = 128;
/// Query names the agent answers itself; no client may subscribe to them.
pub const BUILT_IN_QUERIES: [&str; 1] = ["ping"];
/// The longest member name filter, in bytes.
pub const MAX_NAME_FILTER_LEN: usize = 256;
/// The most query subscriptions open at one agent.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// The most names one subscription may take.
pub const MAX_SUBSCRIBED_NAMES: usize = 64;
/// The most queries one member holds for its subscribers at once, over
/// every asker.
pub const MAX_SERVED_QUERIES: usize = 1024;
/// Queries buffered for one subscription; one that falls further behind
/// is skipped (the query is answered by another subscriber, or with an
/// error).
const SUBSCRIPTION_BUFFER: usize = 64;
/// The longest error text a member's answer carries here (longer ones
/// are cut).
const MAX_ERROR_LEN: usize = 256;
/// How big a compiled member name filter may grow.
const NAME_FILTER_SIZE_LIMIT: usize = 1 << 20;

/// The query limits of one agent (from its [`TransportConfig`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueryLimits {
    pub(crate) max_payload: usize,
    pub(crate) max_answers: usize,
    pub(crate) max_concurrent: usize,
}

impl QueryLimits {
    pub(crate) fn of(t: &TransportConfig) -> QueryLimits {
        QueryLimits {
            max_payload: t.query_max_payload,
            max_answers: t.query_max_answers,
            max_concurrent: t.query_max_concurrent.max(1),
        }
    }
}

/// A query to ask the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// The query's name: a built-in one ([`BUILT_IN_QUERIES`]) or one that
    /// clients subscribe to. 1 to [`MAX_QUERY_NAME_LEN`] bytes.
    pub name: String,
    /// The payload, at most `query_max_payload` bytes.
    pub payload: Vec<u8>,
    /// How long to wait for answers: zero means [`DEFAULT_QUERY_TIMEOUT`];
    /// capped at [`MAX_QUERY_TIMEOUT`].
    pub timeout: Duration,
    /// Ask only members whose name this regular expression matches
    /// (unanchored); empty: every live member.
    pub filter_name: String,
}

impl Query {
    /// A query of `name` with an empty payload, the default timeout and no
    /// filter.
    pub fn new(name: impl Into<String>) -> Query {
        Query {
            name: name.into(),
            ..Query::default()
        }
    }
}

/// One member's answer to a query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryAnswer {
    /// The member's name.
    pub member: String,
    /// What it answered (empty with an error).
    pub payload: Vec<u8>,
    /// Why the member gave no answer of its own: nobody there subscribes
    /// to the name, its subscribers are not keeping up, a limit.
    pub error: Option<String>,
    /// From the query's start until the answer came back.
    pub elapsed: Duration,
}

/// How a query ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuerySummary {
    /// Every member asked, by name.
    pub asked: Vec<String>,
    /// The members that answered, in the order their answers came, each
    /// with how long it took.
    pub answered: Vec<(String, Duration)>,
    /// Members asked that did not answer before the timeout, by name.
    pub no_answer: Vec<String>,
    /// From the query's start to its end.
    pub elapsed: Duration,
}

/// What a running query yields: answers as they come, then its summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryEvent {
    /// A member's answer.
    Answer(QueryAnswer),
    /// The end: every member asked answered, or the timeout passed.
    Done(QuerySummary),
}

/// Every answer to a query and its summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryReport {
    /// The answers, in the order they came.
    pub answers: Vec<QueryAnswer>,
    /// How the query ended.
    pub summary: QuerySummary,
}

/// A query under way ([`Handle::query`]).
pub struct QueryStream {
    gatherer: Gatherer,
    asked: Vec<String>,
    answered: Vec<(String, Duration)>,
    started: Instant,
    max_payload: usize,
    done: bool,
}

impl QueryStream {
    /// The members asked, by name.
    pub fn asked(&self) -> &[String] {
        &self.asked
    }

    /// The next answer as it arrives; then, once every member asked has
    /// answered or the timeout has passed, the summary; then `None`.
    pub async fn next(&mut self) -> Option<QueryEvent> {
        if self.done {
            return None;
        }
        match self.gatherer.next().await {
            Some(a) => {
                self.answered.push((a.name.clone(), a.elapsed));
                Some(QueryEvent::Answer(query_answer(a, self.max_payload)))
            }
            None => {
                self.done = true;
                let no_answer = self
                    .asked
                    .iter()
                    .filter(|n| !self.answered.iter().any(|(a, _)| a == *n))
                    .cloned()
                    .collect();
                Some(QueryEvent::Done(QuerySummary {
                    asked: self.asked.clone(),
                    answered: std::mem::take(&mut self.answered),
                    no_answer,
                    elapsed: self.started.elapsed(),
                }))
            }
        }
    }

    /// Wait for the end: every answer and the summary.
    pub async fn collect(mut self) -> QueryReport {
        let mut answers = Vec::new();
        while let Some(e) = self.next().await {
            match e {
                QueryEvent::Answer(a) => answers.push(a),
                QueryEvent::Done(summary) => return QueryReport { answers, summary },
            }
        }
        unreachable!("a query stream ends with its summary")
    }
}

/// A member's reply as the caller sees it. The reply is a peer's input:
/// an answer of the wrong kind, an oversized payload or a long error are
/// not passed on as such.
fn query_answer(a: Answered, max_payload: usize) -> QueryAnswer {
    let (payload, error) = match a.answer {
        cluster_reply::Answer::Query(q) if q.payload.len() > max_payload => (
            Vec::new(),
            Some(format!(
                "an answer of {} bytes, over this agent's payload limit of {max_payload}",
                q.payload.len()
            )),
        ),
        cluster_reply::Answer::Query(q) if q.error.is_empty() => (q.payload, None),
        cluster_reply::Answer::Query(q) => (q.payload, Some(cut(q.error))),
        cluster_reply::Answer::Keys(_) => (Vec::new(), Some("an answer of another kind".into())),
    };
    QueryAnswer {
        member: a.name,
        payload,
        error,
        elapsed: a.elapsed,
    }
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// A query that reached this agent, for a subscribed client to answer
/// with [`Handle::answer_query`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedQuery {
    /// This agent's id of the query.
    pub id: u64,
    /// The query's name.
    pub name: String,
    /// Its payload (untrusted without a cluster key).
    pub payload: Vec<u8>,
    /// The asking member's name, or its address if it is not a live
    /// member here.
    pub asker: String,
    /// How long the asker waits, from when the query arrived.
    pub timeout: Duration,
}

/// The queries of some names that reach this agent
/// ([`Handle::subscribe_queries`]). Dropping it ends the subscription.
pub struct QuerySubscription {
    queries: mpsc::Receiver<ReceivedQuery>,
}

impl QuerySubscription {
    /// The next query, waiting for one; `None` once the agent stopped.
    pub async fn recv(&mut self) -> Option<ReceivedQuery> {
        self.queries.recv().await
    }

    pub(crate) fn into_receiver(self) -> mpsc::Receiver<ReceivedQuery> {
        self.queries
    }
}

/// A query this member holds until a subscriber answers it.
struct Served {
    reply_to: ReplyTo,
    asker: SocketAddr,
    deadline: Instant,
}

struct Subscription {
    names: BTreeSet<String>,
    queries: mpsc::Sender<ReceivedQuery>,
}

/// The node task's side of queries: what it serves to subscribers, and
/// the subscriptions.
pub(crate) struct Queries {
    pub(crate) limits: QueryLimits,
    next_id: u64,
    served: HashMap<u64, Served>,
    subscriptions: Vec<Subscription>,
}

impl Default for Queries {
    fn default() -> Queries {
        Queries::new(QueryLimits::of(&TransportConfig::for_protocol(
            &rumour_core::Config::default(),
        )))
    }
}

impl Queries {
    pub(crate) fn new(limits: QueryLimits) -> Queries {
        Queries {
            limits,
            next_id: 1,
            served: HashMap::new(),
            subscriptions: Vec::new(),
        }
    }

    /// Forget served queries past their timeout, and subscriptions whose
    /// client went away.
    fn sweep(&mut self, now: Instant) {
        self.served.retain(|_, s| now < s.deadline);
        self.subscriptions.retain(|s| !s.queries.is_closed());
    }
}

/// Why `name` cannot name a query, if it cannot.
fn bad_name(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_QUERY_NAME_LEN {
        return Some(format!(
            "a query name of {} bytes (1 to {MAX_QUERY_NAME_LEN})",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Some(format!("{name:?} holds a control character"));
    }
    None
}

fn query_reply(payload: Vec<u8>, error: String) -> Answering {
    Answering::Now(cluster_reply::Answer::Query(pb::QueryAnswer {
        payload,
        error,
    }))
}

fn refuse(error: String) -> Answering {
    query_reply(Vec::new(), error)
}

/// This member's answer to a query from the agent on `asker`: a built-in
/// one now, an error now, or later from a subscriber (through
/// `reply_to`).
pub(crate) fn serve(
    d: &mut Driver,
    q: &pb::QueryCommand,
    reply_to: ReplyTo,
    asker: SocketAddr,
) -> Answering {
    let limits = d.queries.limits;
    if let Some(why) = bad_name(&q.name) {
        return refuse(why);
    }
    if q.payload.len() > limits.max_payload {
        return refuse(format!(
            "a payload of {} bytes, over this member's limit of {} (query_max_payload)",
            q.payload.len(),
            limits.max_payload
        ));
    }
    if q.name == "ping" {
        let me = d.node.id();
        let incarnation = d.node.member(me.name()).map_or(0, |m| m.incarnation.0);
        let text = format!("name={} incarnation={incarnation}", me.name());
        return query_reply(text.into_bytes(), String::new());
    }
    let now = Instant::now();
    d.queries.sweep(now);
    let from_asker = d
        .queries
        .served
        .values()
        .filter(|s| s.asker == asker)
        .count();
    if from_asker >= limits.max_concurrent || d.queries.served.len() >= MAX_SERVED_QUERIES {
        return refuse("busy: too many queries wait for answers at this member".into());
    }
    let timeout = match Duration::from_millis(u64::from(q.timeout_ms)) {
        t if t.is_zero() => DEFAULT_QUERY_TIMEOUT,
        t => t.min(MAX_QUERY_TIMEOUT),
    };
    let asker_name = d
        .node
        .members()
        .find(|m| m.id.addr() == asker && m.state.is_live())
        .map_or_else(|| asker.to_string(), |m| m.id.name().to_string());
    let id = d.queries.next_id;
    let received = ReceivedQuery {
        id,
        name: q.name.clone(),
        payload: q.payload.clone(),
        asker: asker_name,
        timeout,
    };
    let (mut subscribed, mut delivered) = (0, 0);
    for s in d
        .queries
        .subscriptions
        .iter()
        .filter(|s| s.names.contains(&q.name))
    {
        subscribed += 1;
        delivered += usize::from(s.queries.try_send(received.clone()).is_ok());
    }
    if subscribed == 0 {
        return refuse(format!("nobody subscribes to query {:?} here", q.name));
    }
    if delivered == 0 {
        return refuse(format!(
            "the subscribers to query {:?} here are not keeping up",
            q.name
        ));
    }
    d.queries.next_id += 1;
    d.queries.served.insert(
        id,
        Served {
            reply_to,
            asker,
            deadline: now + timeout,
        },
    );
    Answering::Later
}

/// Compile a member name filter, or say why not.
fn name_filter(filter: &str) -> Result<Option<regex::Regex>, ApiError> {
    if filter.is_empty() {
        return Ok(None);
    }
    if filter.len() > MAX_NAME_FILTER_LEN {
        return Err(ApiError::BadNameFilter(format!(
            "{} bytes, over the limit of {MAX_NAME_FILTER_LEN}",
            filter.len()
        )));
    }
    regex::RegexBuilder::new(filter)
        .size_limit(NAME_FILTER_SIZE_LIMIT)
        .build()
        .map(Some)
        .map_err(|e| ApiError::BadNameFilter(one_line(&e.to_string())))
}

/// `s` on one line (a regex error spans several).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Handle {
    /// Ask every live member whose name matches `query.filter_name` (this
    /// agent included) with `query`; answers stream back through the
    /// returned [`QueryStream`], which ends as soon as every member asked
    /// has answered, or at the timeout.
    ///
    /// Errors, each before any member is asked: a bad name
    /// ([`ApiError::BadQueryName`]) or filter ([`ApiError::BadNameFilter`]),
    /// a payload over the limit ([`ApiError::QueryPayloadTooLarge`]), more
    /// members to ask than one query may ([`ApiError::TooManyAnswers`]), as
    /// many queries under way here as may be ([`ApiError::TooManyQueries`]).
    pub async fn query(&self, query: Query) -> Result<QueryStream, ApiError> {
        if let Some(why) = bad_name(&query.name) {
            return Err(ApiError::BadQueryName(why));
        }
        let filter = name_filter(&query.filter_name)?;
        let timeout = match query.timeout {
            t if t.is_zero() => DEFAULT_QUERY_TIMEOUT,
            t => t.min(MAX_QUERY_TIMEOUT),
        };
        let (started, max_payload) = self
            .call(move |d| {
                let limits = d.queries.limits;
                if query.payload.len() > limits.max_payload {
                    return Err(ApiError::QueryPayloadTooLarge {
                        len: query.payload.len(),
                        max: limits.max_payload,
                    });
                }
                if d.requests.queries_under_way(Instant::now()) >= limits.max_concurrent {
                    return Err(ApiError::TooManyQueries {
                        max: limits.max_concurrent,
                    });
                }
                let targets =
                    d.live_targets(|name| filter.as_ref().is_none_or(|f| f.is_match(name)));
                if targets.len() > limits.max_answers {
                    return Err(ApiError::TooManyAnswers {
                        asked: targets.len(),
                        max: limits.max_answers,
                    });
                }
                let command = cluster_request::Command::Query(pb::QueryCommand {
                    name: query.name,
                    payload: query.payload,
                    timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
                });
                let started = d.start_request(command, targets, timeout, true);
                Ok((started, limits.max_payload))
            })
            .await??;
        Ok(QueryStream {
            asked: started.asked.clone(),
            started: started.started,
            gatherer: Gatherer::new(self.clone(), started, timeout),
            answered: Vec::new(),
            max_payload,
            done: false,
        })
    }

    /// Receive the queries of `names` that reach this agent, to answer each
    /// with [`Handle::answer_query`]. Errors: no names, too many, a bad or
    /// built-in name ([`ApiError::BadQueryName`]); as many subscriptions
    /// open here as may be ([`ApiError::TooManySubscriptions`]).
    pub async fn subscribe_queries(&self, names: &[String]) -> Result<QuerySubscription, ApiError> {
        if names.is_empty() || names.len() > MAX_SUBSCRIBED_NAMES {
            return Err(ApiError::BadQueryName(format!(
                "a subscription to {} names (1 to {MAX_SUBSCRIBED_NAMES})",
                names.len()
            )));
        }
        for name in names {
            if let Some(why) = bad_name(name) {
                return Err(ApiError::BadQueryName(why));
            }
            if BUILT_IN_QUERIES.contains(&name.as_str()) {
                return Err(ApiError::BadQueryName(format!(
                    "{name:?} is answered by the agent itself"
                )));
            }
        }
        let names: BTreeSet<String> = names.iter().cloned().collect();
        self.call(move |d| {
            d.queries.sweep(Instant::now());
            if d.queries.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                return Err(ApiError::TooManySubscriptions {
                    max: MAX_SUBSCRIPTIONS,
                });
            }
            let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
            d.queries
                .subscriptions
                .push(Subscription { names, queries: tx });
            Ok(QuerySubscription { queries: rx })
        })
        .await?
    }

    /// Answer the query `id` received through a subscription with
    /// `payload`. Returns whether it was taken: `false` when no query of
    /// that id waits for an answer here (unknown, answered already, timed
    /// out), which is counted (`query_answers_ignored`). A payload over
    /// the limit is [`ApiError::QueryPayloadTooLarge`].
    pub async fn answer_query(&self, id: u64, payload: &[u8]) -> Result<bool, ApiError> {
        let payload = payload.to_vec();
        let taken = self
            .call(move |d| {
                let max = d.queries.limits.max_payload;
                if payload.len() > max {
                    return Err(ApiError::QueryPayloadTooLarge {
                        len: payload.len(),
                        max,
                    });
                }
                d.queries.sweep(Instant::now());
                let Some(served) = d.queries.served.remove(&id) else {
                    return Ok(false);
                };
                let answer = cluster_reply::Answer::Query(pb::QueryAnswer {
                    payload,
                    error: String::new(),
                });
                d.send_reply(served.reply_to, answer);
                Ok(true)
            })
            .await??;
        if !taken {
            bump(&self.stats.query_answers_ignored);
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_filters_are_checked() {
        assert!(bad_name("ping").is_none());
        assert!(bad_name("").is_some());
        assert!(bad_name(&"x".repeat(MAX_QUERY_NAME_LEN + 1)).is_some());
        assert!(bad_name("a\nb").is_some());
        assert!(name_filter("").unwrap().is_none());
        assert!(name_filter("^web-[0-9]+$").unwrap().is_some());
        let e = name_filter("web-(").unwrap_err();
        assert!(
            matches!(e, ApiError::BadNameFilter(ref m) if !m.contains('\n')),
            "{e}"
        );
        assert!(name_filter(&"a".repeat(MAX_NAME_FILTER_LEN + 1)).is_err());
        // A filter that compiles to something huge is refused, not built.
        assert!(name_filter("[a-z]{1000}{1000}").is_err());
    }

    #[test]
    fn a_members_reply_is_checked_before_it_is_passed_on() {
        let reply = |payload: Vec<u8>, error: &str| Answered {
            name: "m".into(),
            answer: cluster_reply::Answer::Query(pb::QueryAnswer {
                payload,
                error: error.into(),
            }),
            elapsed: Duration::from_millis(1),
        };
        let a = query_answer(reply(b"ok".to_vec(), ""), 4);
        assert_eq!((a.payload, a.error), (b"ok".to_vec(), None));
        let a = query_answer(reply(vec![0; 5], ""), 4);
        assert!(a.payload.is_empty());
        assert!(a.error.unwrap().contains("over this agent's payload limit"));
        let a = query_answer(reply(Vec::new(), &"é".repeat(300)), 4);
        assert!(a.error.unwrap().len() <= MAX_ERROR_LEN + '…'.len_utf8());
        let keys = Answered {
            name: "m".into(),
            answer: cluster_reply::Answer::Keys(pb::KeyAnswer::default()),
            elapsed: Duration::ZERO,
        };
        assert_eq!(
            query_answer(keys, 4).error.as_deref(),
            Some("an answer of another kind")
        );
    }
}
