//! Per-link latency: the `Latency` distribution, its text form (`"5ms"`,
//! `"1ms..10ms"`, `"tail:2ms..50ms"`) and how a delay is drawn from it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rumour_core::format_duration;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::NetError;

fn parse_duration(text: &str) -> Result<Duration, NetError> {
    rumour_core::parse_duration(text).map_err(|reason| NetError::Duration {
        input: text.to_string(),
        reason,
    })
}

/// The standard normal quantile at 0.99: turns a p99/median ratio into a
/// log-normal sigma.
const Z_99: f64 = 2.326_347_874_040_841;

/// How far past p99 a long-tail sample may go; a single absurd sample would
/// otherwise hold a message for hours of simulated time and stall a run.
const TAIL_CAP: f64 = 100.0;

/// Per-link latency distribution.
///
/// Text form (used by `FromStr`, `Display` and serde): `"5ms"` is fixed,
/// `"1ms..10ms"` is uniform, `"tail:2ms..50ms"` is a long tail given as
/// median..p99.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Latency {
    /// Every message takes exactly this long.
    Fixed(Duration),
    /// Uniform between `min` and `max`, both inclusive.
    Uniform {
        /// Shortest delay.
        min: Duration,
        /// Longest delay.
        max: Duration,
    },
    /// Long-tailed: log-normal with the given median and 99th percentile (p99 >= median).
    LongTail {
        /// Half the messages are faster than this.
        median: Duration,
        /// 99% of the messages are faster than this.
        p99: Duration,
    },
}

impl Latency {
    /// Checks the parameters: `min <= max`, and `0 < median <= p99`.
    pub fn validate(&self) -> Result<(), NetError> {
        let reason = match *self {
            Latency::Fixed(_) => None,
            Latency::Uniform { min, max } if min > max => Some("min is greater than max"),
            Latency::Uniform { .. } => None,
            Latency::LongTail { median, .. } if median.is_zero() => {
                Some("median must be above zero")
            }
            Latency::LongTail { median, p99 } if p99 < median => {
                Some("p99 is less than the median")
            }
            Latency::LongTail { .. } => None,
        };
        match reason {
            None => Ok(()),
            Some(reason) => Err(NetError::Latency {
                input: self.to_string(),
                reason: reason.to_string(),
            }),
        }
    }

    /// Draws one delay.
    ///
    /// Always consumes exactly two `f64` draws from `rng`, whatever the
    /// variant, so changing the latency shape does not shift every later
    /// random choice of a run. Never panics, even on parameters that fail
    /// [`Latency::validate`]; long-tail samples are capped at 100 × p99.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> Duration {
        let a = rng.random::<f64>();
        let b = rng.random::<f64>();
        self.sample_from(a, b)
    }

    /// Turns two uniform numbers in `[0, 1)` into a delay.
    pub(super) fn sample_from(&self, a: f64, b: f64) -> Duration {
        match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } => {
                let (lo, hi) = (nanos_u64(min.min(max)), nanos_u64(min.max(max)));
                let span = hi - lo;
                // Scaling one f64 instead of rejection sampling keeps the
                // number of draws fixed; the bias is below 2^-53 per value.
                let offset = ((a * (span as f64 + 1.0)) as u64).min(span);
                Duration::from_nanos(lo + offset)
            }
            Latency::LongTail { median, p99 } => {
                if median.is_zero() {
                    return Duration::ZERO;
                }
                let m = median.as_nanos() as f64;
                let p = p99.as_nanos() as f64;
                let sigma = (p / m).ln() / Z_99;
                // Box–Muller; 1 - a lies in (0, 1] so ln never sees zero.
                let z = (-2.0 * (1.0 - a).ln()).sqrt() * (std::f64::consts::TAU * b).cos();
                let x = m * (sigma * z).exp();
                let cap = m.max(p) * TAIL_CAP;
                // `as u64` saturates and maps NaN to zero, so this cannot panic.
                Duration::from_nanos(x.clamp(0.0, cap) as u64)
            }
        }
    }
}

fn nanos_u64(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl FromStr for Latency {
    type Err = NetError;

    fn from_str(text: &str) -> Result<Latency, NetError> {
        let err = |reason: String| NetError::Latency {
            input: text.to_string(),
            reason,
        };
        let dur = |s: &str| parse_duration(s).map_err(|e| err(e.to_string()));
        let t = text.trim();
        let latency = if let Some(rest) = t.strip_prefix("tail:") {
            let (median, p99) = rest
                .split_once("..")
                .ok_or_else(|| err("expected tail:MEDIAN..P99, e.g. tail:2ms..50ms".into()))?;
            Latency::LongTail {
                median: dur(median)?,
                p99: dur(p99)?,
            }
        } else if let Some((min, max)) = t.split_once("..") {
            Latency::Uniform {
                min: dur(min)?,
                max: dur(max)?,
            }
        } else {
            Latency::Fixed(dur(t)?)
        };
        latency.validate().map_err(|e| match e {
            NetError::Latency { reason, .. } => err(reason),
            other => other,
        })?;
        Ok(latency)
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Latency::Fixed(d) => f.write_str(&format_duration(d)),
            Latency::Uniform { min, max } => {
                write!(f, "{}..{}", format_duration(min), format_duration(max))
            }
            Latency::LongTail { median, p99 } => {
                write!(
                    f,
                    "tail:{}..{}",
                    format_duration(median),
                    format_duration(p99)
                )
            }
        }
    }
}

impl Serialize for Latency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Latency, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    #[test]
    fn uniform_latency_stays_in_bounds_and_covers_them() {
        let lat: Latency = "1ms..2ms".parse().unwrap();
        let mut r = rng(4);
        let samples: Vec<Duration> = (0..10_000).map(|_| lat.sample(&mut r)).collect();
        let (lo, hi) = (Duration::from_millis(1), Duration::from_millis(2));
        assert!(samples.iter().all(|d| (lo..=hi).contains(d)));
        assert!(samples.iter().any(|d| *d < lo + Duration::from_micros(20)));
        assert!(samples.iter().any(|d| *d > hi - Duration::from_micros(20)));
    }

    #[test]
    fn long_tail_has_requested_median_and_p99() {
        let lat: Latency = "tail:2ms..50ms".parse().unwrap();
        let mut r = rng(5);
        let mut s: Vec<f64> = (0..40_000)
            .map(|_| lat.sample(&mut r).as_secs_f64() * 1e3)
            .collect();
        s.sort_by(f64::total_cmp);
        let median = s[s.len() / 2];
        let p99 = s[s.len() * 99 / 100];
        assert!((1.8..2.2).contains(&median), "median {median}ms");
        assert!((40.0..62.0).contains(&p99), "p99 {p99}ms");
        assert!(*s.last().unwrap() <= 5_000.0, "cap at 100 x p99");
    }

    #[test]
    fn latency_text_round_trips() {
        for text in ["5ms", "250us", "1ms..10ms", "tail:2ms..50ms"] {
            let lat: Latency = text.parse().unwrap();
            assert_eq!(lat.to_string(), text);
            assert_eq!(lat.to_string().parse::<Latency>().unwrap(), lat);
        }
        for text in ["1.5ms", "1.5s", "0us..1250us"] {
            let lat: Latency = text.parse().unwrap();
            assert_eq!(lat.to_string().parse::<Latency>().unwrap(), lat, "{text}");
        }
        assert_eq!("1000ms".parse::<Latency>().unwrap().to_string(), "1s");
        assert_eq!("0.5ms".parse::<Latency>().unwrap().to_string(), "500us");
        assert_eq!(
            " 1 ms .. 2ms ".parse::<Latency>().unwrap(),
            Latency::Uniform {
                min: Duration::from_millis(1),
                max: Duration::from_millis(2)
            }
        );
        assert_eq!(parse_duration("0.1ms").unwrap(), Duration::from_micros(100));
    }

    #[test]
    fn latency_parse_errors_say_what_is_wrong() {
        let msg = |t: &str| t.parse::<Latency>().unwrap_err().to_string();
        assert!(msg("5").contains("missing unit"));
        assert!(msg("5min").contains("unknown unit"));
        assert!(msg("ms").contains("missing number"));
        assert!(msg("-1ms").contains("non-negative"));
        assert!(msg("1.2.3ms").contains("non-negative"));
        assert!(msg("5ms..1ms").contains("min is greater than max"));
        assert!(msg("tail:5ms").contains("tail:MEDIAN..P99"));
        assert!(msg("tail:5ms..1ms").contains("p99 is less than the median"));
        assert!(msg("tail:0ms..1ms").contains("median must be above zero"));
        assert!(msg("99999999999999999999999s").contains("too large"));
    }
}
