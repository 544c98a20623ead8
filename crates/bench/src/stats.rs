//! Measurement primitives: HDR latency histograms (recorded in ns, reported in µs) and rates over
//! a measured interval. Each task records into its own histogram; they are merged once at the end
//! so the hot path never shares a cache line.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency histogram in nanoseconds, 1 ns to 1 h at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("static histogram bounds are valid")
}

/// Nanoseconds from `epoch` to `at`; the tool's clock, shared by every task of one process.
pub fn ns_since(epoch: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(epoch).as_nanos() as u64
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// `None` for an empty histogram: no samples is not the same as zero latency.
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        Some(Percentiles {
            count: h.len(),
            mean: h.mean() / 1_000.0,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        })
    }
}

/// Messages and body bytes over a measured interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rate {
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub msgs_per_sec: f64,
    /// 10^6 body bytes per second.
    pub mb_per_sec: f64,
}

impl Rate {
    pub fn new(messages: u64, bytes: u64, elapsed: Duration) -> Rate {
        let seconds = elapsed.as_secs_f64();
        let per = |v: u64| {
            if seconds > 0.0 {
                v as f64 / seconds
            } else {
                0.0
            }
        };
        Rate {
            messages,
            bytes,
            seconds,
            msgs_per_sec: per(messages),
            mb_per_sec: per(bytes) / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_in_microseconds_and_rates_divide() {
        let mut h = histogram();
        for v in 1..=1000u64 {
            h.record(v * 1_000).unwrap();
        }
        let p = Percentiles::of(&h).unwrap();
        assert!(
            (p.p50 - 500.0).abs() < 1.0 && (p.max - 1000.0).abs() < 1.0,
            "{p:?}"
        );
        assert_eq!(Percentiles::of(&histogram()), None);
        let r = Rate::new(1000, 2_000_000, Duration::from_millis(500));
        assert_eq!((r.msgs_per_sec, r.mb_per_sec), (2000.0, 4.0));
    }
}
