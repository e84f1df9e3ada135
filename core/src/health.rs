//! Lifeguard local health: a node that misses acks and nacks suspects
//! itself first, and slows its own probing instead of accusing others.

use std::time::Duration;

/// The local health score, 0 (healthy) to `max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalHealth {
    score: u32,
    max: u32,
}

impl LocalHealth {
    pub(crate) fn new(max: u32) -> LocalHealth {
        LocalHealth { score: 0, max }
    }

    pub(crate) fn score(&self) -> u32 {
        self.score
    }

    /// Raise (positive) or lower (negative) the score, within 0..=max.
    pub(crate) fn apply(&mut self, delta: i32) {
        let s = self.score as i64 + delta as i64;
        self.score = s.clamp(0, self.max as i64) as u32;
    }

    /// A probe duration stretched by the score: `d * (score + 1)`.
    pub(crate) fn scale(&self, d: Duration) -> Duration {
        d * (self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_bounded_and_scales_timeouts() {
        let mut h = LocalHealth::new(3);
        h.apply(-1);
        assert_eq!(h.score(), 0);
        h.apply(2);
        assert_eq!(
            h.scale(Duration::from_millis(500)),
            Duration::from_millis(1500)
        );
        h.apply(5);
        assert_eq!(h.score(), 3);
    }
}
