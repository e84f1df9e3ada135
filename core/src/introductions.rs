//! The introduction cap: how many members new to this node the senders at
//! one IP address may introduce per window (`dead_reap_after`).
//!
//! A stranger that can reach the peer port can announce members that do not
//! exist. Each one signs its own word, so signatures do not stop them when
//! the cluster has no key; what bounds the damage is the rate at which any
//! one address may add names to this node's table. The address is the one
//! the message came from, which the transport checks against the
//! connection's own (a sender cannot claim another host's address), so a
//! sender cannot spread its introductions over borrowed addresses.
//!
//! The window is the reap delay: a fake member is reaped one
//! `dead_reap_after` after it is declared dead, so one address keeps at most
//! about two windows' worth of its fakes in a table at a time.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::time::Time;

/// Introductions counted per sender address over the current window.
#[derive(Debug, Default)]
pub(crate) struct Introductions {
    window_start: Time,
    counts: BTreeMap<IpAddr, u32>,
}

impl Introductions {
    /// Whether one more member introduced by `from` is taken at `now`: at
    /// most `cap` per address in each `window` (counting starts afresh at
    /// the first introduction a whole window after the last start).
    pub(crate) fn admit(&mut self, now: Time, from: IpAddr, window: Duration, cap: u32) -> bool {
        if now >= self.window_start + window {
            self.window_start = now;
            self.counts.clear();
        }
        if self.full(now, from, window, cap) {
            return false;
        }
        let count = self.counts.entry(host(from)).or_insert(0);
        *count += 1;
        true
    }

    /// Whether [`Introductions::admit`] would refuse `from` at `now`,
    /// without counting anything.
    pub(crate) fn full(&self, now: Time, from: IpAddr, window: Duration, cap: u32) -> bool {
        now < self.window_start + window && self.counts.get(&host(from)).is_some_and(|c| *c >= cap)
    }
}

/// One key per host, as the transport's sender-address rule sees hosts:
/// every loopback address is the one local host, and an IPv4-mapped IPv6
/// address is its IPv4 address.
fn host(ip: IpAddr) -> IpAddr {
    let ip = ip.to_canonical();
    if ip.is_loopback() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        ip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn each_address_gets_the_cap_per_window_and_no_more() {
        let mut intro = Introductions::default();
        let t0 = Time::ZERO + SECOND;
        let taken = (0..10)
            .filter(|_| intro.admit(t0, ip(1), SECOND, 4))
            .count();
        assert_eq!(taken, 4);
        // `full` says so without counting, until the window ends.
        assert!(intro.full(t0, ip(1), SECOND, 4));
        assert!(!intro.full(t0, ip(2), SECOND, 4));
        assert!(!intro.full(t0 + SECOND, ip(1), SECOND, 4));
        // Another address has its own count.
        assert!(intro.admit(t0, ip(2), SECOND, 4));
        // Every loopback address is one host, and so is an IPv4 address in
        // its IPv6 form.
        let lo = |s: &str| s.parse::<IpAddr>().unwrap();
        let taken = [
            "127.0.0.1",
            "127.0.0.2",
            "::1",
            "::ffff:127.0.0.3",
            "127.9.9.9",
        ]
        .iter()
        .filter(|a| intro.admit(t0, lo(a), SECOND, 4))
        .count();
        assert_eq!(taken, 4);
        assert!(!intro.admit(t0, lo("::ffff:10.0.0.1"), SECOND, 4));
        // Still the same window.
        assert!(!intro.admit(t0 + SECOND / 2, ip(1), SECOND, 4));
        // A new window starts the count over.
        let taken = (0..10)
            .filter(|_| intro.admit(t0 + SECOND, ip(1), SECOND, 4))
            .count();
        assert_eq!(taken, 4);
    }
}
