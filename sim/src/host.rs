//! The shared host's cores, shared fairly: every piece of work that is
//! ready runs at once, each at an equal share of the cores (all of one
//! while there are no more pieces than cores), as Linux's scheduler
//! shares a machine among runnable threads. This is `[host] scheduling =
//! "fair"`; the other way, `"fifo"`, gives a core to one piece at a time
//! in the order they asked (in `world.rs`).
//!
//! The ideal of processor sharing, kept by a virtual clock: the service
//! every running piece has had since the host began. It advances at
//! `min(cores, running) / running` of real time, so a piece that needs `d`
//! of CPU and starts when the clock reads `v` is done when it reads
//! `v + d`: one ordered set of those readings tells which finishes first,
//! without touching the others at each change.

use std::collections::BTreeMap;
use std::time::Duration;

use rumour_core::Time;

/// Pieces of work sharing `cores` cores fairly, each carrying a `J` to
/// hand back when it is done.
#[derive(Debug)]
pub(crate) struct FairShare<J> {
    cores: u64,
    /// Service per running piece since the host began, in nanoseconds of
    /// one core.
    clock: u128,
    /// When `clock` was last brought up to date.
    at: Time,
    /// The running pieces by the clock's reading when each is done (and a
    /// sequence number: equal readings finish in the order they started).
    running: BTreeMap<(u128, u64), J>,
    seq: u64,
}

impl<J> FairShare<J> {
    /// An idle host of `cores` cores (at least one).
    pub(crate) fn new(cores: usize) -> Self {
        FairShare {
            cores: cores.max(1) as u64,
            clock: 0,
            at: Time::ZERO,
            running: BTreeMap::new(),
            seq: 0,
        }
    }

    /// How much longer than its CPU time a piece takes when it runs now
    /// beside what runs: `(running + 1) / cores`, at least 1.
    pub(crate) fn stretch(&self, cpu: Duration) -> Duration {
        let beside = self.running.len() as u64 + 1;
        if beside <= self.cores {
            return cpu;
        }
        let ns = cpu.as_nanos() * u128::from(beside) / u128::from(self.cores);
        Duration::from_nanos(ns.min(u128::from(u64::MAX)) as u64)
    }

    /// Bring the virtual clock up to `now`.
    fn advance(&mut self, now: Time) {
        let elapsed = now.saturating_since(self.at).as_nanos();
        self.at = self.at.max(now);
        let n = self.running.len() as u64;
        if n == 0 {
            return;
        }
        self.clock += elapsed * u128::from(n.min(self.cores)) / u128::from(n);
    }

    /// Start a piece needing `cpu` of one core's time, at `now`.
    pub(crate) fn start(&mut self, now: Time, cpu: Duration, job: J) {
        self.advance(now);
        self.seq += 1;
        self.running
            .insert((self.clock + cpu.as_nanos(), self.seq), job);
    }

    /// Keep only the running pieces `keep` says yes to, from `now`: the
    /// others stop, and free their share of the cores at once.
    pub(crate) fn retain(&mut self, now: Time, mut keep: impl FnMut(&J) -> bool) {
        self.advance(now);
        self.running.retain(|_, job| keep(job));
    }

    /// When the first running piece will be done, as things stand.
    pub(crate) fn next_done(&self) -> Option<Time> {
        let (&(done, _), _) = self.running.first_key_value()?;
        let n = self.running.len() as u64;
        let left = done.saturating_sub(self.clock);
        // Real time for `left` of service at `min(n, cores) / n`, rounded
        // up to the clock's microsecond.
        let ns = (left * u128::from(n)).div_ceil(u128::from(n.min(self.cores)));
        let us = ns.div_ceil(1000).min(u128::from(u64::MAX)) as u64;
        Some(self.at + Duration::from_micros(us))
    }

    /// The pieces done by `now`, in the order they finish.
    pub(crate) fn take_done(&mut self, now: Time) -> Vec<J> {
        let due = self.next_done().is_some_and(|t| t <= now);
        self.advance(now);
        // The first is due by construction; rounding to microseconds must
        // not leave it a nanosecond short.
        if due {
            if let Some((&(done, _), _)) = self.running.first_key_value() {
                self.clock = self.clock.max(done);
            }
        }
        let mut done = Vec::new();
        while let Some(entry) = self.running.first_entry() {
            if entry.key().0 > self.clock {
                break;
            }
            done.push(entry.remove());
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn at(n: u64) -> Time {
        Time::ZERO + ms(n)
    }

    /// Run the host until idle, returning each piece's label with the
    /// millisecond it was done.
    fn finish(host: &mut FairShare<&'static str>) -> Vec<(&'static str, u64)> {
        let mut out = Vec::new();
        while let Some(t) = host.next_done() {
            for j in host.take_done(t) {
                out.push((j, t.saturating_since(Time::ZERO).as_millis() as u64));
            }
        }
        out
    }

    #[test]
    fn pieces_within_the_cores_run_at_full_speed() {
        let mut host = FairShare::new(2);
        host.start(at(0), ms(10), "a");
        host.start(at(0), ms(30), "b");
        assert_eq!(finish(&mut host), [("a", 10), ("b", 30)]);
    }

    #[test]
    fn more_pieces_than_cores_share_them_equally() {
        // Three pieces of 30 ms on one core: each runs at a third, all
        // done at 90 ms. On two cores, at two thirds: 45 ms.
        for (cores, end) in [(1, 90), (2, 45)] {
            let mut host = FairShare::new(cores);
            for j in ["a", "b", "c"] {
                host.start(at(0), ms(30), j);
            }
            assert_eq!(finish(&mut host), [("a", end), ("b", end), ("c", end)]);
        }
    }

    #[test]
    fn a_short_piece_that_comes_late_is_not_queued_behind_a_long_one() {
        // One core: a 100 ms piece from 0, a 2 ms piece at 10 ms. Shared,
        // the short one takes 4 ms (half the core), done at 14 ms, and
        // delays the long one by its 2 ms: done at 102 ms. In a queue it
        // would wait until 100 ms.
        let mut host = FairShare::new(1);
        host.start(at(0), ms(100), "long");
        assert_eq!(host.next_done(), Some(at(100)));
        host.start(at(10), ms(2), "short");
        assert_eq!(host.stretch(ms(2)), ms(6), "beside two, a third");
        assert_eq!(finish(&mut host), [("short", 14), ("long", 102)]);
    }

    #[test]
    fn a_piece_stopped_frees_its_share_at_once() {
        // Two 20 ms pieces on one core, each at half: at 10 ms each has
        // had 5 ms. One stops then; the other runs alone, its 15 ms left
        // done at 25 ms.
        let mut host = FairShare::new(1);
        host.start(at(0), ms(20), "kept");
        host.start(at(0), ms(20), "stopped");
        host.retain(at(10), |j| *j != "stopped");
        assert_eq!(finish(&mut host), [("kept", 25)]);
    }
}
