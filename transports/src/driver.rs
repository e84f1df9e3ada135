//! The node task: the one owner of a node's state machine.
//!
//! It selects over inbound peer messages, client commands (jobs), the
//! node's next timer (`poll_timeout`) and shutdown, then hands every output
//! to the peer links or the event stream. Nothing else touches the node.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rumour_core::{Event, FreshRead, Message, Node, Output, Time};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::cluster_request::{ClusterMessage, Requests};
use crate::durable::Durable;
use crate::error::ApiError;
use crate::intake::Taker;
use crate::keyring::SharedKeyring;
use crate::link::Links;
use crate::peer::RefusalLog;
use crate::query::Queries;
use crate::seed::{resolve_seeds, Seed, SeedResolver};
use crate::stats::{bump, TransportStats};

/// An event and its place in the agent's event sequence (from 1).
#[derive(Clone, Debug)]
pub struct Sequenced {
    /// Position in the sequence; a watcher that sees a gap fell behind.
    pub seq: u64,
    /// The event.
    pub event: Event,
    /// When the agent took it in: its wall clock, in microseconds since
    /// the Unix epoch.
    pub at_unix_micros: u64,
}

/// A command run on the node task with the node in hand.
pub(crate) type Job = Box<dyn FnOnce(&mut Driver) + Send>;

/// The node task's state.
pub(crate) struct Driver {
    /// Whether the driver waited at least [`IDLE_WAKE`] for its last input
    /// (see `TransportStats::intake_after_idle`).
    woke_idle: bool,
    pub(crate) node: Node,
    start: Instant,
    start_unix_ms: u64,
    pub(crate) fresh: HashMap<u32, oneshot::Sender<FreshRead>>,
    /// The cluster keyring the links seal with and the peer service opens
    /// with; `None` for a node without a key.
    pub(crate) keyring: Option<SharedKeyring>,
    /// Cluster requests this node sent and still waits on.
    pub(crate) requests: Requests,
    /// Queries this node serves to its subscribed clients, and the
    /// subscriptions.
    pub(crate) queries: Queries,
    /// The transport's counters.
    pub(crate) stats: Arc<TransportStats>,
    events: broadcast::Sender<Arc<Sequenced>>,
    seq: u64,
    pub(crate) links: Links,
    /// Set once shutdown was asked for: the node is leaving.
    pub(crate) stopping: bool,
    /// The node's data dir, opened at start; `None` when the agent keeps
    /// nothing on disk. Closed when the node task ends.
    pub(crate) durable: Option<Durable>,
    /// Answers to the API calls of the batch being taken in: sent once
    /// what they wrote is on disk.
    replies: Vec<Reply>,
    /// Peers whose unsigned or wrongly signed news was last logged.
    refusals: RefusalLog,
    /// The most live members (this node included) the node has held,
    /// less those that left since: fewer live now means the view lost
    /// members to failure or a partition, and the seeds are worth trying
    /// again (see [`retry_seeds`]).
    pub(crate) peak_live: usize,
    /// The live members (alive or suspect, this node included) as last
    /// counted, and when that count last changed: the wall clock, in
    /// microseconds since the Unix epoch.
    pub(crate) live: usize,
    pub(crate) live_since_unix_micros: u64,
    /// When the node began to run, its join (if any) leaving then, in
    /// microseconds since the Unix epoch: set as the node task starts,
    /// after the agent's setup.
    pub(crate) start_unix_micros: u64,
    /// The membership summary whose member addresses the reply budget
    /// last took, if any.
    vouched: Option<u64>,
}

/// An API call's answer, waiting for the batch's commit.
type Reply = Box<dyn FnOnce() + Send>;

impl Driver {
    pub(crate) fn now(&self) -> Time {
        Time::from_micros(self.start.elapsed().as_micros() as u64)
    }

    /// Milliseconds since the Unix epoch of a node time.
    pub(crate) fn unix_ms(&self, t: Time) -> u64 {
        self.start_unix_ms + t.as_micros() / 1000
    }

    fn instant(&self, t: Time) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.start + std::time::Duration::from_micros(t.as_micros()))
    }

    /// Begin a graceful stop: leave the cluster, then let the leave rumour
    /// go out before the task ends.
    pub(crate) fn stop(&mut self) {
        if !self.stopping {
            self.stopping = true;
            let now = self.now();
            match self.node.leave(now) {
                Ok(()) => info!("leaving the cluster"),
                Err(e) => debug!(%e, "stop: node had already left"),
            }
        }
    }

    /// Make what the batch wrote durable, then answer its API calls.
    /// Returns false if the data dir failed: the node must stop before
    /// anything it wrote is acknowledged or leaves it.
    fn commit(&mut self) -> bool {
        if let Some(durable) = &mut self.durable {
            if let Err(e) = durable.persist(&self.node) {
                error!(error = %e, "the data dir failed: stopping without acknowledging the last writes");
                self.replies.clear();
                return false;
            }
        }
        for reply in self.replies.drain(..) {
            reply();
        }
        true
    }

    /// Hand a peer's message to the node. News it refuses for its
    /// signature is logged at most once per sender address per interval
    /// (it is counted every time).
    fn receive(&mut self, from: SocketAddr, msg: Message) {
        let now = self.now();
        let before = self.node.refused_unsigned();
        self.node.handle_message(now, from, msg);
        if self.node.refused_unsigned() > before
            && self.refusals.should_log(from.ip(), Instant::now())
        {
            warn!(peer = %from, "refused news that its owner did not sign (counted in records_bad_signature, members_bad_signature, identity_conflicts); it changed nothing. Further refusals from this address in the next 10 s are counted, not logged");
        }
    }

    fn take_in(&mut self, inbound: Inbound) {
        match inbound {
            Inbound::Node(from, msg) => self.receive(from, msg),
            Inbound::Cluster(from, msg) => self.receive_cluster(from, msg),
        }
    }

    /// Take in what arrived together, in order, with the signatures on
    /// their records checked first as one batch.
    fn take_in_all(&mut self, pending: &mut Vec<Inbound>) {
        if !pending.is_empty() {
            bump(&self.stats.intake_batches);
            if std::mem::take(&mut self.woke_idle) {
                bump(&self.stats.intake_after_idle);
            }
        }
        self.node
            .check_ahead(pending.iter().filter_map(|i| match i {
                Inbound::Node(_, msg) => Some(msg),
                Inbound::Cluster(..) => None,
            }));
        for inbound in pending.drain(..) {
            self.take_in(inbound);
        }
        self.vouch_for_members();
    }

    /// Give the reply budget, if any, the addresses of the members the
    /// node holds (in any state) and of its reconnect list, whenever the
    /// membership changed: what goes to them is not budgeted. A joiner is
    /// among them by the time the answer to its Join goes out (the core
    /// applies its own `Alive` first).
    fn vouch_for_members(&mut self) {
        let Some(budget) = self.links.reply_budget() else {
            return;
        };
        let summary = self.node.membership_summary();
        if self.vouched == Some(summary) {
            return;
        }
        let reconnect = self.node.reconnect_list().into_iter().map(|e| e.1);
        budget.vouch_for_members(self.node.members().map(|m| m.id.addr()).chain(reconnect));
        self.vouched = Some(summary);
    }

    /// Vouch for addresses the operator told the node to join or knock on:
    /// what goes to them is not budgeted.
    pub(crate) fn vouch_for_seeds(&self, addrs: &[SocketAddr]) {
        if let Some(budget) = self.links.reply_budget() {
            budget.vouch_for_seeds(addrs);
        }
    }

    /// Hand every pending output to its destination.
    fn flush(&mut self) {
        self.vouch_for_members();
        while let Some(out) = self.node.poll_output() {
            match out {
                Output::Send { to, msg } => self.links.send(to, &msg),
                Output::Event(event) => self.publish(event),
            }
        }
    }

    fn publish(&mut self, event: Event) {
        match &event {
            Event::FreshRead(r) => {
                if let Some(tx) = self.fresh.remove(&r.id) {
                    let _ = tx.send(r.clone());
                }
            }
            Event::MemberJoined(m) => {
                info!(member = m.id.name(), addr = %m.id.addr(), "member joined")
            }
            Event::MemberDied(m) => {
                self.links.drop_link(m.id.addr());
                warn!(member = m.id.name(), "member died")
            }
            Event::MemberLeft(m) => {
                self.links.drop_link(m.id.addr());
                self.peak_live = self.peak_live.saturating_sub(1);
                info!(member = m.id.name(), "member left")
            }
            Event::MemberSuspected(m) => {
                self.links.drop_link(m.id.addr());
                debug!(member = m.id.name(), "member suspected")
            }
            _ => {}
        }
        self.seq += 1;
        // No receiver is fine: nobody watches.
        let _ = self.events.send(Arc::new(Sequenced {
            seq: self.seq,
            event,
            at_unix_micros: unix_micros(),
        }));
    }
}

/// The wall clock, in microseconds since the Unix epoch: the clock an
/// agent stamps its events and status with (`at_unix_micros`,
/// `live_members_since_unix_micros`, `started_unix_micros`), so that whoever
/// compares them with its own reading uses the same one.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A cloneable handle to a running node task.
#[derive(Clone)]
pub struct Handle {
    jobs: mpsc::Sender<Job>,
    events: broadcast::Sender<Arc<Sequenced>>,
    stop: watch::Sender<bool>,
    pub(crate) stats: Arc<TransportStats>,
    start_unix_ms: u64,
    api_addr: SocketAddr,
}

impl Handle {
    /// Run `f` on the node task and return its result.
    pub(crate) async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Driver) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |d| {
            let answer = f(d);
            d.replies.push(Box::new(move || {
                let _ = tx.send(answer);
            }));
        });
        self.jobs.send(job).await.map_err(|_| ApiError::Stopped)?;
        rx.await.map_err(|_| ApiError::Stopped)
    }

    /// A new subscription to the node's events, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Sequenced>> {
        self.events.subscribe()
    }

    /// Ask the agent to leave the cluster and stop.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Milliseconds since the Unix epoch of a node time.
    pub fn unix_ms(&self, t: Time) -> u64 {
        self.start_unix_ms + t.as_micros() / 1000
    }

    /// The client API's address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The transport's counters.
    pub fn transport_stats(&self) -> &TransportStats {
        &self.stats
    }
}

/// What the peer service hands the node task.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A protocol message for the node, from the address its sender
    /// listens on.
    Node(SocketAddr, Message),
    /// A cluster request or reply, for the agent.
    Cluster(SocketAddr, ClusterMessage),
}

/// The receiving ends the node task runs on.
pub(crate) struct Inputs {
    pub(crate) inbound: Taker,
    jobs: mpsc::Receiver<Job>,
    stop: watch::Receiver<bool>,
}

/// Build a driver around `node`, with its handle and inputs.
pub(crate) fn driver(
    node: Node,
    start: Instant,
    links: Links,
    inbound: Taker,
    watch_buffer: usize,
    stats: Arc<TransportStats>,
    api_addr: SocketAddr,
) -> (Driver, Handle, Inputs) {
    let (jobs_tx, jobs_rx) = mpsc::channel(1024);
    let (events, _) = broadcast::channel(watch_buffer.max(1));
    let (stop_tx, stop_rx) = watch::channel(false);
    let start_unix_ms = unix_micros().saturating_sub(start.elapsed().as_micros() as u64) / 1000;
    let d = Driver {
        node,
        start,
        start_unix_ms,
        fresh: HashMap::new(),
        keyring: None,
        requests: Requests::default(),
        queries: Queries::default(),
        stats: stats.clone(),
        events: events.clone(),
        seq: 0,
        links,
        stopping: false,
        durable: None,
        replies: Vec::new(),
        refusals: RefusalLog::new(std::time::Duration::from_secs(10), 4096),
        peak_live: 1,
        live: 1,
        // Both stamped when the node task starts (`run`).
        live_since_unix_micros: 0,
        start_unix_micros: 0,
        vouched: None,
        woke_idle: false,
    };
    let handle = Handle {
        jobs: jobs_tx,
        events,
        stop: stop_tx,
        stats,
        start_unix_ms,
        api_addr,
    };
    let inputs = Inputs {
        inbound,
        jobs: jobs_rx,
        stop: stop_rx,
    };
    (d, handle, inputs)
}

/// Inputs already waiting that the node task takes in after the one it
/// woke for, before it drains the node: under a burst of writes the node
/// then batches what it queues for each peer into one message.
const INPUTS_PER_DRAIN: usize = 64;

/// A wait for input this long counts as idle: what comes after it finds
/// the runtime asleep, and pays for waking it.
const IDLE_WAKE: std::time::Duration = std::time::Duration::from_millis(1);

/// The node task: runs until the node has left after a stop, then flushes
/// the peer links.
pub(crate) async fn run(mut d: Driver, mut inputs: Inputs) {
    let mut stop_open = true;
    let mut pending: Vec<Inbound> = Vec::new();
    // The node begins to run now: what it did at its start (a join) leaves
    // with the first flush below. Its live count (itself) holds from here.
    let began = unix_micros();
    d.start_unix_micros = began;
    d.live_since_unix_micros = began;
    loop {
        if !d.commit() {
            // Fail-stop: nothing of the batch is answered or sent.
            return;
        }
        d.flush();
        let live = d.node.live_members();
        d.peak_live = d.peak_live.max(live);
        if live != d.live {
            d.live = live;
            d.live_since_unix_micros = unix_micros();
        }
        debug_assert!(d.node.is_drained(), "the node is drained before waiting");
        let deadline = d.node.poll_timeout();
        if d.stopping && deadline.is_none() {
            break;
        }
        let sleep_until = deadline.map(|t| d.instant(t));
        let waiting = Instant::now();
        tokio::select! {
            biased;
            changed = inputs.stop.changed(), if stop_open => {
                if changed.is_err() || *inputs.stop.borrow() {
                    d.stop();
                }
                stop_open = changed.is_ok();
            }
            Some(job) = inputs.jobs.recv() => job(&mut d),
            inbound = inputs.inbound.take() => pending.push(inbound),
            () = sleep_opt(sleep_until) => {
                let now = d.now();
                d.node.handle_timeout(now);
            }
        }
        // Messages already waiting are taken in together (their records'
        // signatures checked as one batch), before any job after them.
        for _ in 0..INPUTS_PER_DRAIN {
            if let Ok(job) = inputs.jobs.try_recv() {
                d.take_in_all(&mut pending);
                job(&mut d);
            } else if let Some(inbound) = inputs.inbound.try_take() {
                pending.push(inbound);
            } else {
                break;
            }
        }
        // Counted as woken from idle when the wait was long enough for the
        // runtime's threads to have gone to sleep.
        d.woke_idle = waiting.elapsed() >= IDLE_WAKE;
        d.take_in_all(&mut pending);
        d.links.reap();
    }
    d.flush();
    // Closing the queues lets each link send what it holds, then end.
    let (mut link_tasks, timeout) = d.links.close();
    let _ = tokio::time::timeout(timeout, async {
        while link_tasks.join_next().await.is_some() {}
    })
    .await;
    link_tasks.abort_all();
    if let Some(durable) = d.durable.take() {
        debug!(path = %durable.dir().path().display(), "data dir closed");
    }
    info!("node stopped");
}

/// The seeds an agent was started with, tried again by [`retry_seeds`].
pub(crate) struct Seeds {
    /// As given (`--join`): names are resolved again on every try.
    pub(crate) seeds: Vec<Seed>,
    /// How names are resolved.
    pub(crate) resolver: SeedResolver,
    /// This node's own addresses, skipped.
    pub(crate) own: Vec<SocketAddr>,
}

/// Whether the seeds are worth trying again: the node is alone (it never
/// met anyone, say the first pod of a StatefulSet, or all others are
/// gone), or its live view holds fewer members than it once did (but for
/// those that left).
pub(crate) fn worth_knocking(live: usize, peak_live: usize) -> bool {
    live <= 1 || live < peak_live
}

/// While the seeds are [worth knocking on](worth_knocking), resolve them
/// again (a DNS name may point elsewhere by now, or resolve at last) and
/// knock on every address with a push-pull, this node's own skipped. This
/// is how a node that started alone finds the others once they are up,
/// and how one whose whole view was reaped, or that restarted past its
/// reconnect list, finds the cluster again. While alone it tries after
/// `first`, then backs off, doubling, to `every`; otherwise it looks every
/// `every`. Idle cost: one call on the node task per interval; while
/// members are missing, one summary per seed address per try. Ends when
/// the node task does.
pub(crate) async fn retry_seeds(
    handle: Handle,
    seeds: Seeds,
    first: std::time::Duration,
    every: std::time::Duration,
) {
    let mut delay = first.min(every);
    loop {
        tokio::time::sleep(delay).await;
        let Ok((live, peak)) = handle.call(|d| (d.node.live_members(), d.peak_live)).await else {
            return;
        };
        delay = if live <= 1 {
            (delay * 2).min(every)
        } else {
            every
        };
        if !worth_knocking(live, peak) {
            continue;
        }
        let (addrs, unresolved) = resolve_seeds(&seeds.seeds, &seeds.resolver, &seeds.own).await;
        for (seed, e) in unresolved {
            debug!(seed, error = %e, "a seed does not resolve");
        }
        if addrs.is_empty() {
            continue;
        }
        debug!(seeds = ?addrs, live, "members are missing: knocking on the seeds again");
        let knocked = handle
            .call(move |d| {
                let now = d.now();
                d.vouch_for_seeds(&addrs);
                d.node.knock(now, &addrs)
            })
            .await;
        if knocked.is_err() {
            return;
        }
    }
}

async fn sleep_opt(until: Option<tokio::time::Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::worth_knocking;

    #[test]
    fn a_lone_node_knocks_until_it_meets_someone_and_a_whole_view_does_not() {
        // The first pod: alone from the start.
        assert!(worth_knocking(1, 1));
        // Met one other, both live: nothing missing.
        assert!(!worth_knocking(2, 2));
        // Lost one of three to a failure.
        assert!(worth_knocking(2, 3));
        // All others gone: alone again.
        assert!(worth_knocking(1, 3));
        // A view that grew past its old peak is whole.
        assert!(!worth_knocking(5, 4));
    }
}
