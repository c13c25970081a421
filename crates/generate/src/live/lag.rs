//! How late live sends are against their model times.
//!
//! Every send that the class models schedule at a point in time — each
//! 20 ms RTP/comfort-noise tick of a call, each ICMP echo, each chunk of a
//! paced transfer (due when the bytes before it have left at the link
//! rate), and the start of each session, page, video segment and DNS
//! lookup after a model wait (idle, think, parsing, buffer or gap time) —
//! records `lag = actual − scheduled` (0 when early). A run that keeps up
//! has lags of scheduler jitter (well under a millisecond on an idle
//! machine); one that falls behind shows lags that grow through the run,
//! so the report gives the first and second half separately.
//!
//! Lags go into a log-linear histogram (exact below 64 µs, then 32
//! sub-buckets per octave, so a quantile is within 1/32 ≈ 3 % of the
//! true value; the maximum and mean are exact), lock-free per class.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::Class;

/// A send later than this (one VoIP packet interval) counts as late.
pub const LATE_MS: f64 = 20.0;

const EXACT: u64 = 64;
const SUB: u64 = 32;
const OCTAVES: u64 = 40;
const BUCKETS: usize = (EXACT + OCTAVES * SUB) as usize;

fn bucket(us: u64) -> usize {
    if us < EXACT {
        return us as usize;
    }
    let m = 63 - us.leading_zeros() as u64; // ≥ 6
    let i = EXACT + (m - 6) * SUB + ((us >> (m - 5)) & (SUB - 1));
    (i as usize).min(BUCKETS - 1)
}

/// Largest lag (µs) that falls in bucket `i`.
fn bucket_top(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let k = i - EXACT;
    let (m, s) = (k / SUB + 6, k % SUB);
    ((SUB + s + 1) << (m - 5)) - 1
}

struct Hist {
    b: Vec<AtomicU64>,
    n: AtomicU64,
    sum_us: AtomicU64,
    max_us: AtomicU64,
    late: AtomicU64,
}

impl Hist {
    fn new() -> Hist {
        Hist {
            b: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            n: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
            late: AtomicU64::new(0),
        }
    }

    fn add(&self, us: u64) {
        self.b[bucket(us)].fetch_add(1, Relaxed);
        self.n.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
        if us as f64 > LATE_MS * 1e3 {
            self.late.fetch_add(1, Relaxed);
        }
    }

    fn stats(&self) -> LagStats {
        let n = self.n.load(Relaxed);
        if n == 0 {
            return LagStats::default();
        }
        let counts: Vec<u64> = self.b.iter().map(|c| c.load(Relaxed)).collect();
        let max = self.max_us.load(Relaxed);
        let q = |p: f64| {
            let want = ((p * n as f64).ceil() as u64).clamp(1, n);
            let mut acc = 0;
            for (i, c) in counts.iter().enumerate() {
                acc += c;
                if acc >= want {
                    return bucket_top(i).min(max) as f64 / 1e3;
                }
            }
            max as f64 / 1e3
        };
        LagStats {
            sends: n,
            mean_ms: self.sum_us.load(Relaxed) as f64 / n as f64 / 1e3,
            p50_ms: q(0.5),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: max as f64 / 1e3,
            late: self.late.load(Relaxed),
        }
    }
}

/// Lag figures of a set of sends (milliseconds).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LagStats {
    pub sends: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Sends later than [`LATE_MS`].
    pub late: u64,
}

impl fmt::Display for LagStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let share = if self.sends == 0 {
            0.0
        } else {
            100.0 * self.late as f64 / self.sends as f64
        };
        write!(
            f,
            "{} sends, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms, mean {:.3} ms, {} ({:.3} %) later than {LATE_MS} ms",
            self.sends, self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms, self.mean_ms, self.late, share
        )
    }
}

/// Lag of a live run: all sends, each half of the run, and per class.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LagReport {
    pub all: LagStats,
    /// Sends scheduled in the first half of the run.
    pub first_half: LagStats,
    /// Sends scheduled in the second half (growth here means falling behind).
    pub second_half: LagStats,
    /// By generator class, classes without sends left out.
    pub by_class: Vec<(Class, LagStats)>,
}

impl fmt::Display for LagReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "lag behind model time (actual − scheduled send): {}",
            self.all
        )?;
        writeln!(f, "  first half:  {}", self.first_half)?;
        write!(f, "  second half: {}", self.second_half)?;
        for (c, s) in &self.by_class {
            write!(f, "\n  {:<15}{s}", format!("{c}:"))?;
        }
        Ok(())
    }
}

/// Shared recorder.
pub(crate) struct Lag {
    start: Instant,
    half_ns: u64,
    all: Hist,
    halves: [Hist; 2],
    by_class: Vec<Hist>,
}

impl Lag {
    pub fn new(start: Instant, duration_ns: u64) -> Lag {
        Lag {
            start,
            half_ns: duration_ns / 2,
            all: Hist::new(),
            halves: [Hist::new(), Hist::new()],
            by_class: Class::ALL.iter().map(|_| Hist::new()).collect(),
        }
    }

    /// Records a send of `class` scheduled at `due` that happened at `now`.
    pub fn record(&self, class: Class, due: Instant, now: Instant) {
        let us = now.saturating_duration_since(due).as_micros() as u64;
        let half = due.saturating_duration_since(self.start).as_nanos() as u64 >= self.half_ns;
        self.all.add(us);
        self.halves[usize::from(half)].add(us);
        let i = Class::ALL.iter().position(|c| *c == class).unwrap_or(0);
        self.by_class[i].add(us);
    }

    /// Records a send scheduled at `due` that happens now.
    pub fn record_now(&self, class: Class, due: Instant) {
        self.record(class, due, Instant::now());
    }

    pub fn report(&self) -> LagReport {
        LagReport {
            all: self.all.stats(),
            first_half: self.halves[0].stats(),
            second_half: self.halves[1].stats(),
            by_class: Class::ALL
                .iter()
                .zip(&self.by_class)
                .map(|(c, h)| (*c, h.stats()))
                .filter(|(_, s)| s.sends > 0)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut last = 0;
        for us in [0u64, 1, 63, 64, 65, 66, 127, 128, 1000, 12_345, 1 << 30] {
            let b = bucket(us);
            assert!(b >= last, "{us}");
            last = b;
            assert!(
                bucket_top(b) >= us,
                "{us} above its bucket top {}",
                bucket_top(b)
            );
            if b > 0 {
                assert!(bucket_top(b - 1) < us, "{us} belongs lower");
            }
            // Relative width at most 1/32.
            assert!(
                (bucket_top(b) - us) as f64 <= us as f64 / 32.0 + 1.0,
                "{us}"
            );
        }
    }

    #[test]
    fn quantiles_of_a_known_sample() {
        let t0 = Instant::now();
        let lag = Lag::new(t0, 2_000_000_000);
        // 1000 sends: lags 0, 1, …, 999 ms, all in the first second.
        for k in 0..1000u64 {
            let due = t0 + Duration::from_micros(k * 100);
            lag.record(Class::Voip, due, due + Duration::from_millis(k));
        }
        let r = lag.report();
        assert_eq!(r.all.sends, 1000);
        assert_eq!(r.first_half.sends, 1000);
        assert_eq!(r.second_half.sends, 0);
        // Exact: mean 499.5 ms, max 999 ms; late = lags above 20 ms = 979.
        assert!((r.all.mean_ms - 499.5).abs() < 1e-9, "{}", r.all.mean_ms);
        assert_eq!(r.all.max_ms, 999.0);
        assert_eq!(r.all.late, 979);
        // Quantiles within the bucket resolution (1/32) above the exact ones.
        for (got, exact) in [(r.all.p50_ms, 499.0), (r.all.p99_ms, 989.0)] {
            assert!(
                got >= exact && got <= exact * (1.0 + 1.0 / 32.0),
                "{got} vs {exact}"
            );
        }
        assert_eq!(r.by_class.len(), 1);
        assert_eq!(r.by_class[0].0, Class::Voip);
        // Early sends count as zero lag.
        lag.record(Class::Web, t0 + Duration::from_secs(1), t0);
        assert_eq!(lag.report().second_half.max_ms, 0.0);
    }
}
