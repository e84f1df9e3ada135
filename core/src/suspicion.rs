//! Lifeguard suspicion: a timeout that starts at `suspicion_max` and
//! shrinks on a log scale towards `suspicion_min` as independent members
//! confirm the suspicion.

use std::sync::Arc;
use std::time::Duration;

use crate::member::Incarnation;
use crate::time::Time;

/// One member under suspicion.
#[derive(Debug, Clone)]
pub(crate) struct Suspicion {
    pub(crate) incarnation: Incarnation,
    started: Time,
    /// Distinct suspecters, the first included; at most `needed + 1`.
    suspecters: Vec<Arc<str>>,
    needed: u32,
    min: Duration,
    max: Duration,
    pub(crate) deadline: Time,
    /// Whether the verdict was already held for a final probe.
    final_probe: bool,
}

/// The timeout after `confirmations` independent confirmations when
/// `needed` of them bring it to `min`:
/// `max - (max - min) * ln(c + 1) / ln(needed + 1)`, never below `min`.
pub fn suspicion_timeout(
    confirmations: u32,
    needed: u32,
    min: Duration,
    max: Duration,
) -> Duration {
    if needed == 0 || confirmations >= needed {
        return min;
    }
    let frac = ((confirmations + 1) as f64).ln() / ((needed + 1) as f64).ln();
    let span = (max - min).as_secs_f64();
    let t = max.as_secs_f64() - span * frac;
    Duration::from_secs_f64(t.max(min.as_secs_f64()))
}

impl Suspicion {
    pub(crate) fn new(
        incarnation: Incarnation,
        by: Arc<str>,
        now: Time,
        needed: u32,
        min: Duration,
        max: Duration,
    ) -> Suspicion {
        Suspicion {
            incarnation,
            started: now,
            suspecters: vec![by],
            needed,
            min,
            max,
            deadline: now + suspicion_timeout(0, needed, min, max),
            final_probe: false,
        }
    }

    /// Hold the verdict until `until` for a final probe of the suspect,
    /// if no other member confirmed the suspicion and it was not held
    /// before. Returns whether it was held.
    pub(crate) fn hold_for_final_probe(&mut self, until: Time) -> bool {
        if self.final_probe || self.suspecters.len() > 1 {
            return false;
        }
        self.final_probe = true;
        self.deadline = until;
        true
    }

    /// Who raised the suspicion first.
    pub(crate) fn by(&self) -> Arc<str> {
        self.suspecters[0].clone()
    }

    /// The timeout in force, counted from the suspicion's start.
    pub(crate) fn timeout(&self) -> Duration {
        self.deadline.saturating_since(self.started)
    }

    /// Count `by` as a confirmation. Returns whether it was a new,
    /// independent one (and the deadline moved closer).
    pub(crate) fn confirm(&mut self, by: &str) -> bool {
        if self.suspecters.len() as u32 > self.needed || self.suspecters.iter().any(|s| &**s == by)
        {
            return false;
        }
        self.suspecters.push(Arc::from(by));
        let c = self.suspecters.len() as u32 - 1;
        self.deadline = self.started + suspicion_timeout(c, self.needed, self.min, self.max);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_shrinks_on_a_log_scale() {
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(12));
        assert_eq!(suspicion_timeout(0, 3, min, max), max);
        let one = suspicion_timeout(1, 3, min, max);
        let two = suspicion_timeout(2, 3, min, max);
        assert!(one < max && two < one && two > min, "{one:?} {two:?}");
        // ln 2 / ln 4 = 0.5: halfway.
        assert_eq!(one.as_millis(), 8000);
        assert_eq!(suspicion_timeout(3, 3, min, max), min);
    }

    #[test]
    fn only_independent_confirmations_count() {
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(12));
        let mut s = Suspicion::new(Incarnation(0), "a".into(), Time::ZERO, 3, min, max);
        assert_eq!(s.deadline, Time::ZERO + max);
        assert!(!s.confirm("a"));
        assert!(s.confirm("b"));
        assert!(!s.confirm("b"));
        assert_eq!(s.deadline, Time::ZERO + Duration::from_secs(8));
        assert!(s.confirm("c"));
        assert!(s.confirm("d"));
        assert_eq!(s.deadline, Time::ZERO + min);
        assert!(!s.confirm("e"));
    }
}
