use std::time::{Duration, Instant};

/// Paces a replay so that frames are released at their capture-time spacing,
/// scaled by `speed` (2.0 = twice as fast). `None` means as fast as possible.
///
/// The first frame anchors capture time to the wall clock; each later frame
/// waits until `anchor + (ts - first_ts) / speed`. Sleeping happens only when
/// the replay is ahead by more than a millisecond, so bursts cost no syscalls.
#[derive(Debug)]
pub struct Pacer {
    speed: Option<f64>,
    anchor: Option<(Instant, u64)>,
    /// How far behind schedule the replay has fallen at worst.
    pub max_lag: Duration,
}

impl Pacer {
    pub fn new(speed: Option<f64>) -> Self {
        Pacer {
            speed: speed.filter(|s| s.is_finite() && *s > 0.0),
            anchor: None,
            max_lag: Duration::ZERO,
        }
    }

    /// Anchors capture time `ts_ns` to the wall-clock instant `at` (instead
    /// of the first frame's time to the moment it arrives): a source whose
    /// timestamps are already wall-clock times (the generator started
    /// "now") then releases each frame at its own time.
    pub fn anchored(mut self, at: Instant, ts_ns: u64) -> Self {
        self.anchor = Some((at, ts_ns));
        self
    }

    /// How long until the frame stamped `ts_ns` is due, or `None` when it
    /// is due now (or there is no pacing). The first frame anchors the clock.
    pub fn due_in(&mut self, ts_ns: u64) -> Option<Duration> {
        let speed = self.speed?;
        let (t0, ts0) = *self.anchor.get_or_insert((Instant::now(), ts_ns));
        // Out-of-order timestamps are released at once rather than rewinding.
        let offset_ns = ts_ns.saturating_sub(ts0) as f64 / speed;
        let due = t0 + Duration::from_nanos(offset_ns as u64);
        let now = Instant::now();
        if due > now {
            let ahead = due - now;
            // Sleeping happens only when ahead by more than a millisecond.
            (ahead > Duration::from_millis(1)).then_some(ahead)
        } else {
            self.max_lag = self.max_lag.max(now - due);
            None
        }
    }

    /// The capture time that corresponds to now, once anchored (for clock
    /// ticks while a paced replay waits).
    pub fn capture_now(&self) -> Option<u64> {
        let speed = self.speed?;
        let (t0, ts0) = self.anchor?;
        Some(ts0 + (t0.elapsed().as_nanos() as f64 * speed) as u64)
    }

    /// Blocks until the frame stamped `ts_ns` is due.
    pub fn wait(&mut self, ts_ns: u64) {
        if let Some(d) = self.due_in(ts_ns) {
            std::thread::sleep(d);
        }
    }
}
