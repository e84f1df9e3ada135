//! Per-update dissemination tracking: when each write reached each node.
//!
//! A node holds an update (owner, generation, version) once its replica of
//! that owner is complete up to the version: scuttlebutt replicas never skip
//! a version, so "version held >= v" is exactly "has seen write v or
//! something newer of the same key".

use std::collections::BTreeMap;
use std::sync::Arc;

use rumour_core::Time;

/// One tracked write.
#[derive(Debug, Clone)]
pub struct Update {
    /// When the owner wrote it.
    pub at: Time,
    /// The writing node.
    pub owner: usize,
    /// Encoded size of its one-record delta.
    pub size: usize,
    /// Nodes other than the owner that were running when it was written.
    pub target: usize,
    /// Which nodes hold it (bit per node).
    holders: Vec<u64>,
    /// How many nodes hold it.
    pub held: usize,
    /// When each holder got it, in order (kept for infection curves).
    pub times: Vec<Time>,
    /// When it reached every target node.
    pub complete: Option<Time>,
}

impl Update {
    /// Whether node `i` holds it.
    pub fn holds(&self, i: usize) -> bool {
        self.holders[i / 64] >> (i % 64) & 1 == 1
    }

    /// Time for the update to reach fraction `q` of its targets.
    pub fn time_to(&self, q: f64) -> Option<Time> {
        let need = ((q * self.target as f64).ceil() as usize).max(1);
        if self.target == 0 {
            return Some(self.at);
        }
        self.times.get(need - 1).copied()
    }
}

/// Every tracked update, and each node's progress through each owner.
#[derive(Debug, Default)]
pub struct Tracker {
    n: usize,
    /// (owner name, generation) -> version -> update.
    updates: BTreeMap<(Arc<str>, u32), BTreeMap<u64, Update>>,
    /// Per node: (owner, generation) -> highest version counted.
    counted: Vec<BTreeMap<(Arc<str>, u32), u64>>,
    order: Vec<(Arc<str>, u32, u64)>,
}

impl Tracker {
    /// A tracker for `n` nodes.
    pub fn new(n: usize) -> Tracker {
        Tracker {
            n,
            updates: BTreeMap::new(),
            counted: vec![BTreeMap::new(); n],
            order: Vec::new(),
        }
    }

    /// Owner `owner` (named `name`, in `generation`) wrote `version` at `at`.
    #[allow(clippy::too_many_arguments)]
    pub fn wrote(
        &mut self,
        at: Time,
        owner: usize,
        name: Arc<str>,
        generation: u32,
        version: u64,
        size: usize,
        target: usize,
    ) {
        let mut holders = vec![0u64; self.n.div_ceil(64)];
        holders[owner / 64] |= 1 << (owner % 64);
        let key = (name.clone(), generation);
        self.counted[owner].insert(key.clone(), version);
        self.updates.entry(key).or_default().insert(
            version,
            Update {
                at,
                owner,
                size,
                target,
                holders,
                held: 0,
                times: Vec::new(),
                complete: (target == 0).then_some(at),
            },
        );
        self.order.push((name, generation, version));
    }

    /// Node `i` now holds `owner`'s namespace (in `generation`) up to
    /// `version`.
    pub fn progress(
        &mut self,
        at: Time,
        i: usize,
        owner: &Arc<str>,
        generation: u32,
        version: u64,
    ) {
        let key = (owner.clone(), generation);
        let Some(by_version) = self.updates.get_mut(&key) else {
            return;
        };
        let counted = self.counted[i].entry(key).or_insert(0);
        if version <= *counted {
            return;
        }
        for (_, u) in by_version.range_mut(*counted + 1..=version) {
            let (w, b) = (i / 64, i % 64);
            if u.holders[w] >> b & 1 == 1 {
                continue;
            }
            u.holders[w] |= 1 << b;
            u.held += 1;
            u.times.push(at);
            if u.held >= u.target && u.complete.is_none() {
                u.complete = Some(at);
            }
        }
        *counted = version;
    }

    /// Node `i` restarted: its replicas start again from nothing.
    pub fn restarted(&mut self, i: usize) {
        self.counted[i].clear();
    }

    /// Every tracked update, in the order written.
    pub fn updates(&self) -> impl Iterator<Item = &Update> {
        self.order
            .iter()
            .filter_map(|(o, g, v)| self.updates.get(&(o.clone(), *g))?.get(v))
    }

    /// Number of tracked updates.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing was tracked.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The most recently tracked update.
    pub fn last(&self) -> Option<&Update> {
        let (o, g, v) = self.order.last()?;
        self.updates.get(&(o.clone(), *g))?.get(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn progress_counts_each_holder_once_and_completes() {
        let mut t = Tracker::new(3);
        let a: Arc<str> = Arc::from("a");
        t.wrote(Time::ZERO, 0, a.clone(), 0, 1, 40, 2);
        t.wrote(Time::ZERO, 0, a.clone(), 0, 2, 40, 2);
        let t1 = Time::ZERO + Duration::from_millis(100);
        t.progress(t1, 1, &a, 0, 2);
        t.progress(t1, 1, &a, 0, 2);
        let u: Vec<&Update> = t.updates().collect();
        assert_eq!(u[0].held, 1);
        assert!(u[0].holds(1) && !u[0].holds(2));
        assert_eq!(u[0].complete, None);
        let t2 = t1 + Duration::from_millis(100);
        t.progress(t2, 2, &a, 0, 1);
        let u: Vec<&Update> = t.updates().collect();
        assert_eq!(u[0].complete, Some(t2));
        assert_eq!(u[1].complete, None);
        assert_eq!(u[0].time_to(0.5), Some(t1));
    }
}
