//! The reply budget: until a sender is authenticated, the node sends it at
//! most as many bytes as it received from it.
//!
//! Authenticated means, for an address the node sends to:
//! - with a cluster key, or mutual TLS on the peer port, every address:
//!   only a key (or certificate) holder can make the node send anything,
//!   so the budget is off (the agent builds none);
//! - without either, an address of a member the node holds, in any state
//!   (the core applies a joiner's own signed `Alive` before it builds the
//!   answer to its Join, so a genuine joiner gets its full answer), an
//!   address on its reconnect list (former members it knocks on), or an
//!   address the operator told it to join or knock on (seeds).
//!
//! Every other address has an account: the encoded bytes of the envelopes
//! that named it as their sender (after the sender-address rule, so on the
//! sender's own host) and the encoded bytes the node sent it. A send that
//! would take what was sent past what was received is refused whole (the
//! caller drops and counts it as `replies_over_budget`). A 16-byte Join
//! can then no longer draw a 65 KB answer from a node that does not hold
//! its sender as a member.
//!
//! Memory is bounded: at most `capacity` accounts; when full, accounts
//! idle longer than `idle` are dropped, and if none is, the new address
//! gets no account (so nothing is sent to it). Dropping an account drops
//! what was received with what was sent, so over every account's lifetime
//! an address never gets more than it sent. Seeds are capped the same way
//! (the oldest named goes first).
//!
//! What it must never do: let an unauthenticated address get more bytes
//! than it sent, or make a decision in hash order (every map is a
//! `BTreeMap`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Accounts kept at most (addresses not authenticated that sent lately).
pub(crate) const ACCOUNTS: usize = 4096;
/// An account idle this long may be dropped to make room.
pub(crate) const ACCOUNT_IDLE: Duration = Duration::from_secs(60);
/// Seed addresses vouched for at most.
const SEEDS: usize = 1024;

/// The per-address budget of one node without a cluster key. Shared by
/// the peer service (which credits) and the links (which spend).
pub(crate) struct ReplyBudget {
    state: Mutex<State>,
    capacity: usize,
    idle: Duration,
}

#[derive(Default)]
struct State {
    accounts: BTreeMap<SocketAddr, Account>,
    /// Addresses of the members (and reconnect entries) the node holds.
    members: BTreeSet<SocketAddr>,
    /// Addresses the operator named, and in which order (to drop the
    /// oldest when full).
    seeds: BTreeMap<SocketAddr, u64>,
    next_seed: u64,
}

struct Account {
    received: u64,
    sent: u64,
    touched: Instant,
}

impl State {
    fn vouched(&self, addr: &SocketAddr) -> bool {
        self.members.contains(addr) || self.seeds.contains_key(addr)
    }
}

impl ReplyBudget {
    pub(crate) fn new(capacity: usize, idle: Duration) -> ReplyBudget {
        ReplyBudget {
            state: Mutex::new(State::default()),
            capacity: capacity.max(1),
            idle,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `bytes` arrived in an envelope naming `from` as its sender.
    pub(crate) fn received(&self, from: SocketAddr, bytes: u64, now: Instant) {
        let mut state = self.lock();
        if state.vouched(&from) {
            return;
        }
        if !state.accounts.contains_key(&from) && state.accounts.len() >= self.capacity {
            let idle = self.idle;
            state
                .accounts
                .retain(|_, a| now.saturating_duration_since(a.touched) < idle);
            if state.accounts.len() >= self.capacity {
                return;
            }
        }
        let account = state.accounts.entry(from).or_insert(Account {
            received: 0,
            sent: 0,
            touched: now,
        });
        account.received = account.received.saturating_add(bytes);
        account.touched = now;
    }

    /// Whether `bytes` may go to `to` now; if so, and `to` is not
    /// authenticated, they are spent from its account.
    pub(crate) fn spend(&self, to: SocketAddr, bytes: u64, now: Instant) -> bool {
        let mut state = self.lock();
        if state.vouched(&to) {
            return true;
        }
        let Some(account) = state.accounts.get_mut(&to) else {
            return false;
        };
        match account.sent.checked_add(bytes) {
            Some(sent) if sent <= account.received => {
                account.sent = sent;
                account.touched = now;
                true
            }
            _ => false,
        }
    }

    /// The addresses of the members the node holds now (replacing the
    /// last ones given).
    pub(crate) fn vouch_for_members(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        let members: BTreeSet<SocketAddr> = addrs.into_iter().collect();
        let mut state = self.lock();
        state.members = members;
    }

    /// Addresses the operator told the node to join or knock on.
    pub(crate) fn vouch_for_seeds(&self, addrs: &[SocketAddr]) {
        let mut state = self.lock();
        for addr in addrs {
            let seq = state.next_seed;
            state.next_seed += 1;
            state.seeds.insert(*addr, seq);
            if state.seeds.len() > SEEDS {
                let oldest = state
                    .seeds
                    .iter()
                    .min_by_key(|(_, seq)| **seq)
                    .map(|(a, _)| *a);
                if let Some(oldest) = oldest {
                    state.seeds.remove(&oldest);
                }
            }
        }
    }

    /// How many accounts are kept.
    #[cfg(test)]
    fn accounts(&self) -> usize {
        self.lock().accounts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn an_outsider_gets_at_most_what_it_sent() {
        // Scenario: an outsider sends 16 bytes, then 10 more. Its 65 KB
        // answer is refused; answers that fit are taken from the balance,
        // and the balance never goes below zero.
        let budget = ReplyBudget::new(16, ACCOUNT_IDLE);
        let t0 = Instant::now();
        let outsider = addr(9);
        assert!(!budget.spend(outsider, 1, t0), "nothing received yet");
        budget.received(outsider, 16, t0);
        assert!(!budget.spend(outsider, 65_179, t0));
        assert!(budget.spend(outsider, 10, t0));
        assert!(!budget.spend(outsider, 7, t0), "6 bytes left");
        budget.received(outsider, 10, t0);
        assert!(budget.spend(outsider, 16, t0));
        assert!(!budget.spend(outsider, 1, t0), "all spent");
    }

    #[test]
    fn members_and_seeds_are_not_budgeted() {
        let budget = ReplyBudget::new(16, ACCOUNT_IDLE);
        let t0 = Instant::now();
        budget.vouch_for_members([addr(1), addr(2)]);
        budget.vouch_for_seeds(&[addr(3)]);
        for a in [addr(1), addr(2), addr(3)] {
            assert!(budget.spend(a, 65_179, t0));
            budget.received(a, 100, t0);
        }
        assert_eq!(budget.accounts(), 0, "no account for vouched addresses");
        // A member that is gone is an outsider again, starting from zero.
        budget.vouch_for_members([addr(1)]);
        assert!(!budget.spend(addr(2), 1, t0));
        assert!(budget.spend(addr(3), 1, t0), "seeds stay");
    }

    #[test]
    fn accounts_are_bounded_and_idle_ones_make_room() {
        let budget = ReplyBudget::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for port in 1..=3 {
            budget.received(addr(port), 100, t0);
        }
        // Full, and every account is recent: a fourth address gets no
        // account, so nothing goes to it.
        budget.received(addr(4), 100, t0 + Duration::from_secs(1));
        assert_eq!(budget.accounts(), 3);
        assert!(!budget.spend(addr(4), 1, t0));
        // Address 1 stays active; the others go idle and make room.
        assert!(budget.spend(addr(1), 50, t0 + Duration::from_secs(30)));
        let later = t0 + Duration::from_secs(61);
        budget.received(addr(4), 100, later);
        assert_eq!(budget.accounts(), 2);
        assert!(budget.spend(addr(4), 100, later));
        assert!(
            budget.spend(addr(1), 50, later),
            "address 1 kept its balance"
        );
        assert!(!budget.spend(addr(2), 1, later), "dropped with its credit");
    }

    #[test]
    fn seeds_are_bounded_oldest_first() {
        let budget = ReplyBudget::new(1, ACCOUNT_IDLE);
        let t0 = Instant::now();
        let seeds: Vec<SocketAddr> = (0..=SEEDS as u16).map(|i| addr(10_000 + i)).collect();
        budget.vouch_for_seeds(&seeds);
        assert!(!budget.spend(seeds[0], 1, t0), "the oldest went");
        assert!(budget.spend(seeds[1], 1, t0));
        assert!(budget.spend(seeds[SEEDS], 1, t0));
    }
}
