//! Fair intake: what peers send waits here for the node task, one queue per
//! connection, taken in turn.
//!
//! Every inbound peer connection (one stream of envelopes) has two lanes:
//! membership (probes, acks, nacks, indirect probes and membership
//! rumours: what failure detection runs on, and small) and data
//! (everything else: push-pull, data gossip, tree traffic, queries,
//! cluster requests). The node task takes one message per connection in
//! turn (round robin), and within a connection a membership message before
//! any data. So a peer's probe waits behind at most one message of each
//! other connection, never behind a flood; a chatty or hostile connection
//! gets the node's time that any one connection gets, no more.
//!
//! Memory is bounded three ways: a lane that is full refuses what comes
//! next on it (counted `intake_membership_full` or `intake_data_full`);
//! all lanes together hold at most `inbound_queue` messages, and when that
//! is reached the connection holding the most gives up its oldest message
//! (counted `intake_shed`), so the flooder pays, not the others; and a
//! connection that is read faster than `peer_rate` envelopes a second is
//! not read until its [`Budget`] allows (counted `intake_paced`), which
//! holds back its sender through the transport's flow control and bounds
//! what decoding its envelopes costs.
//!
//! What it must never do: block the node task, or let one connection's
//! messages be dropped because of another's (but for the shedding above,
//! which takes from the largest).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumour_proto::v1::envelope::Body;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::driver::Inbound;

/// Which lane a message waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Failure detection and membership rumours: taken first.
    Membership = 0,
    /// Everything else.
    Data = 1,
}

impl Lane {
    /// The lane of an envelope's body: cheap, before it is decoded further.
    pub(crate) fn of(body: Option<&Body>) -> Lane {
        match body {
            Some(
                Body::Ping(_) | Body::PingReq(_) | Body::Ack(_) | Body::Nack(_) | Body::Gossip(_),
            ) => Lane::Membership,
            _ => Lane::Data,
        }
    }
}

/// Why a message was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// This connection's lane is full.
    LaneFull(Lane),
    /// Every lane together is full and this connection holds the most.
    Shed,
    /// The node task has stopped.
    Closed,
}

/// How much one connection and all of them together may queue.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) membership: usize,
    pub(crate) data: usize,
    pub(crate) total: usize,
}

struct Shared {
    state: Mutex<State>,
    ready: Notify,
    closed: AtomicBool,
    next_id: AtomicU64,
    limits: Limits,
}

#[derive(Default)]
struct State {
    /// Connections with something queued; an emptied one is removed.
    sources: HashMap<u64, Source>,
    /// The turn: each connection with something queued, once.
    turn: VecDeque<u64>,
    total: usize,
}

#[derive(Default)]
struct Source {
    lanes: [VecDeque<Inbound>; 2],
}

impl Source {
    fn len(&self) -> usize {
        self.lanes[0].len() + self.lanes[1].len()
    }
}

/// The peer service's side: hands out one [`Queue`] per connection.
#[derive(Clone)]
pub(crate) struct Intake(Arc<Shared>);

/// One connection's way into the intake.
pub(crate) struct Queue {
    shared: Arc<Shared>,
    id: u64,
}

/// The node task's side. Dropping it closes the intake.
pub(crate) struct Taker(Arc<Shared>);

/// An intake and its taking end.
pub(crate) fn intake(limits: Limits) -> (Intake, Taker) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        ready: Notify::new(),
        closed: AtomicBool::new(false),
        next_id: AtomicU64::new(0),
        limits: Limits {
            membership: limits.membership.max(1),
            data: limits.data.max(1),
            total: limits.total.max(1),
        },
    });
    (Intake(shared.clone()), Taker(shared))
}

impl Intake {
    /// A queue for a new connection.
    pub(crate) fn queue(&self) -> Queue {
        Queue {
            id: self.0.next_id.fetch_add(1, Ordering::Relaxed),
            shared: self.0.clone(),
        }
    }
}

impl Queue {
    /// Queue `msg` in `lane`, or say why not (and how many messages of
    /// other connections were shed to make room: 0 or 1).
    pub(crate) fn push(&self, lane: Lane, msg: Inbound) -> Result<usize, Refused> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Refused::Closed);
        }
        let limits = self.shared.limits;
        let mut state = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *state;
        let mine = state.sources.get(&self.id).map_or(0, Source::len);
        let in_lane = state
            .sources
            .get(&self.id)
            .map_or(0, |s| s.lanes[lane as usize].len());
        let cap = match lane {
            Lane::Membership => limits.membership,
            Lane::Data => limits.data,
        };
        if in_lane >= cap {
            return Err(Refused::LaneFull(lane));
        }
        let mut shed = 0;
        if state.total >= limits.total {
            // Room is made by the connection that holds the most; if that
            // is this one, what it sends now is what goes.
            let (fattest, most) = state
                .sources
                .iter()
                .map(|(id, s)| (*id, s.len()))
                .max_by_key(|(_, n)| *n)
                .unwrap_or((self.id, 0));
            if fattest == self.id || most <= mine {
                return Err(Refused::Shed);
            }
            let source = state.sources.get_mut(&fattest).expect("listed");
            let dropped = source.lanes[Lane::Data as usize]
                .pop_front()
                .or_else(|| source.lanes[Lane::Membership as usize].pop_front());
            debug_assert!(dropped.is_some(), "the fattest holds something");
            state.total -= 1;
            shed = 1;
        }
        let source = state.sources.entry(self.id).or_default();
        if source.len() == 0 {
            state.turn.push_back(self.id);
        }
        source.lanes[lane as usize].push_back(msg);
        state.total += 1;
        self.shared.ready.notify_one();
        Ok(shed)
    }
}

impl Taker {
    /// The next message in turn, if any is queued.
    pub(crate) fn try_take(&mut self) -> Option<Inbound> {
        let mut state = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *state;
        while let Some(id) = state.turn.pop_front() {
            let Some(source) = state.sources.get_mut(&id) else {
                continue;
            };
            let msg = source.lanes[Lane::Membership as usize]
                .pop_front()
                .or_else(|| source.lanes[Lane::Data as usize].pop_front());
            let Some(msg) = msg else {
                // Emptied by shedding.
                state.sources.remove(&id);
                continue;
            };
            state.total -= 1;
            if source.len() == 0 {
                state.sources.remove(&id);
            } else {
                state.turn.push_back(id);
            }
            return Some(msg);
        }
        None
    }

    /// The next message in turn, waiting for one. Cancel-safe: a message
    /// is taken only when the future completes.
    pub(crate) async fn take(&mut self) -> Inbound {
        loop {
            if let Some(msg) = self.try_take() {
                return msg;
            }
            self.0.ready.notified().await;
        }
    }

    /// How many messages wait, over every connection.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.0.state.lock().unwrap().total
    }
}

impl Drop for Taker {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
    }
}

/// A token bucket: how many envelopes one connection may still have read
/// now, refilled at `rate` a second up to `rate` (one second's worth).
pub(crate) struct Budget {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Budget {
    pub(crate) fn new(rate: u32, now: Instant) -> Budget {
        let rate = f64::from(rate.max(1));
        Budget {
            rate,
            tokens: rate,
            at: now,
        }
    }

    /// Spend one envelope's worth at `now`: `None` if there was one, or
    /// how long until there is (nothing spent).
    pub(crate) fn spend(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumour_core::{Message, Nack, Prune};
    use std::net::SocketAddr;

    fn from(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn nack(port: u16, seq: u32) -> Inbound {
        Inbound::Node(from(port), Message::Nack(Nack { seq }))
    }

    fn prune(port: u16) -> Inbound {
        Inbound::Node(from(port), Message::Prune(Prune))
    }

    fn who(msg: &Inbound) -> (u16, bool) {
        match msg {
            Inbound::Node(from, m) => (from.port(), matches!(m, Message::Nack(_))),
            Inbound::Cluster(from, _) => (from.port(), false),
        }
    }

    fn limits() -> Limits {
        Limits {
            membership: 4,
            data: 8,
            total: 12,
        }
    }

    #[test]
    fn connections_are_taken_in_turn_and_membership_first() {
        // Scenario: a flooder's connection queues eight data messages;
        // then an honest peer queues a data message and a probe answer.
        // The honest peer's answer is the second message taken, and its
        // data the fourth.
        let (intake, mut taker) = intake(limits());
        let (flood, honest) = (intake.queue(), intake.queue());
        for _ in 0..8 {
            flood.push(Lane::Data, prune(1)).unwrap();
        }
        honest.push(Lane::Data, prune(2)).unwrap();
        honest.push(Lane::Membership, nack(2, 7)).unwrap();
        let order: Vec<(u16, bool)> = std::iter::from_fn(|| taker.try_take())
            .map(|m| who(&m))
            .collect();
        assert_eq!(order.len(), 10);
        assert_eq!(
            &order[..4],
            &[(1, false), (2, true), (1, false), (2, false)]
        );
        assert!(order[4..].iter().all(|&w| w == (1, false)));
        assert_eq!(taker.queued(), 0);
    }

    #[test]
    fn a_full_lane_refuses_only_its_own_connection() {
        let (intake, mut taker) = intake(limits());
        let (flood, honest) = (intake.queue(), intake.queue());
        for i in 0..4 {
            flood.push(Lane::Membership, nack(1, i)).unwrap();
        }
        assert_eq!(
            flood.push(Lane::Membership, nack(1, 9)),
            Err(Refused::LaneFull(Lane::Membership))
        );
        for _ in 0..8 {
            flood.push(Lane::Data, prune(1)).unwrap();
        }
        assert_eq!(
            flood.push(Lane::Data, prune(1)),
            Err(Refused::LaneFull(Lane::Data))
        );
        // The total (12) is reached: the flooder holds the most, so it
        // gives up its oldest data message to make room for the honest.
        assert_eq!(honest.push(Lane::Membership, nack(2, 1)), Ok(1));
        assert_eq!(taker.queued(), 12);
        let taken: Vec<_> = std::iter::from_fn(|| taker.try_take())
            .map(|m| who(&m))
            .collect();
        assert_eq!(taken.len(), 12);
        assert_eq!(taken[1], (2, true), "the honest answer is taken second");
        drop(taker);
        assert_eq!(honest.push(Lane::Data, prune(2)), Err(Refused::Closed));
    }

    #[test]
    fn when_all_is_full_the_largest_connection_pays() {
        let (intake, mut taker) = intake(Limits {
            membership: 16,
            data: 16,
            total: 10,
        });
        let (flood, honest) = (intake.queue(), intake.queue());
        for _ in 0..10 {
            flood.push(Lane::Data, prune(1)).unwrap();
        }
        assert_eq!(flood.push(Lane::Data, prune(1)), Err(Refused::Shed));
        for i in 0..5 {
            assert_eq!(honest.push(Lane::Membership, nack(2, i)), Ok(1));
        }
        // Now both hold 5: the honest one cannot shed the other further.
        assert_eq!(
            honest.push(Lane::Membership, nack(2, 9)),
            Err(Refused::Shed)
        );
        let taken: Vec<_> = std::iter::from_fn(|| taker.try_take())
            .map(|m| who(&m))
            .collect();
        assert_eq!(taken.iter().filter(|w| w.0 == 2).count(), 5);
        assert_eq!(taken.iter().filter(|w| w.0 == 1).count(), 5);
    }

    #[tokio::test]
    async fn taking_waits_for_a_message() {
        let (intake, mut taker) = intake(limits());
        let q = intake.queue();
        let waiter = tokio::spawn(async move {
            let m = taker.take().await;
            who(&m)
        });
        tokio::task::yield_now().await;
        q.push(Lane::Membership, nack(3, 1)).unwrap();
        assert_eq!(waiter.await.unwrap(), (3, true));
    }

    #[test]
    fn a_budget_allows_its_rate_and_says_how_long_to_wait() {
        let t0 = Instant::now();
        let mut b = Budget::new(100, t0);
        for _ in 0..100 {
            assert_eq!(b.spend(t0), None);
        }
        let wait = b.spend(t0).expect("spent");
        assert!(wait <= Duration::from_millis(10), "{wait:?}");
        assert_eq!(b.spend(t0 + Duration::from_millis(10)), None);
        // Idle time fills it up to one second's worth, no more.
        let later = t0 + Duration::from_secs(60);
        let taken = (0..1000).filter(|_| b.spend(later).is_none()).count();
        assert_eq!(taken, 100);
    }
}
