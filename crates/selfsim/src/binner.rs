//! Streaming binning of (time, size) events into bytes-per-bin and
//! packets-per-bin series.
use serde::Serialize;
use std::collections::VecDeque;

/// Bytes and packets per bin, with bookkeeping of disorder.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BinnedSeries {
    pub bin_width_s: f64,
    /// Time of the start of bin 0, in ns on the events' clock.
    pub origin_ns: u64,
    pub bytes: Vec<f64>,
    pub packets: Vec<f64>,
    /// Events accepted.
    pub events: u64,
    /// Events earlier than their predecessor (placed if their bin was open).
    pub out_of_order: u64,
    /// Events dropped because their bin was already closed (or before the origin).
    pub late: u64,
}

/// Error for an event that cannot be binned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BinError {
    #[error("event time {0} is not a finite non-negative number of seconds")]
    BadTime(f64),
    #[error("event size {0} is not a finite non-negative number")]
    BadSize(f64),
    #[error("event at {t_ns} ns would open {bins} empty bins (limit {limit}); clock jump?")]
    GapTooLarge { t_ns: u64, bins: u64, limit: u64 },
}

/// Streaming binner. Events should arrive in time order; an event earlier
/// than the newest one is counted as out of order and still placed if its
/// bin is among the `open_bins` most recent bins, otherwise counted as late.
#[derive(Debug, Clone)]
pub struct Binner {
    width_ns: u64,
    origin_ns: Option<u64>,
    open_bins: usize,
    /// Index of the first open bin.
    open_start: u64,
    open: VecDeque<(f64, f64)>,
    closed_bytes: Vec<f64>,
    closed_packets: Vec<f64>,
    events: u64,
    out_of_order: u64,
    late: u64,
    last_ns: Option<u64>,
    max_gap_bins: u64,
}

impl Default for Binner {
    /// 0.1 s bins (the reference study's bin width), 2 open bins.
    fn default() -> Self {
        Binner::new(100_000_000)
    }
}

impl Binner {
    /// Bins of `width_ns` nanoseconds (clamped to >= 1); the origin is the
    /// first event's time unless set with [`Binner::with_origin_ns`].
    pub fn new(width_ns: u64) -> Self {
        Binner {
            width_ns: width_ns.max(1),
            origin_ns: None,
            open_bins: 2,
            open_start: 0,
            open: VecDeque::new(),
            closed_bytes: Vec::new(),
            closed_packets: Vec::new(),
            events: 0,
            out_of_order: 0,
            late: 0,
            last_ns: None,
            max_gap_bins: 100_000_000,
        }
    }

    /// Bins of `width_s` seconds.
    pub fn with_width_secs(width_s: f64) -> Self {
        Binner::new((width_s * 1e9).round().max(1.0) as u64)
    }

    /// Fixes the start of bin 0 (e.g. the capture start).
    pub fn with_origin_ns(mut self, origin_ns: u64) -> Self {
        self.origin_ns = Some(origin_ns);
        self
    }

    /// How many of the most recent bins still accept out-of-order events
    /// (at least 1: the current bin).
    pub fn with_open_bins(mut self, n: usize) -> Self {
        self.open_bins = n.max(1);
        self
    }

    /// Largest number of bins one event may open past the newest bin
    /// (default 1e8, i.e. 800 MB of series); a larger jump is an error so a
    /// corrupt timestamp cannot exhaust memory.
    pub fn with_max_gap_bins(mut self, n: u64) -> Self {
        self.max_gap_bins = n.max(1);
        self
    }

    pub fn bin_width_s(&self) -> f64 {
        self.width_ns as f64 * 1e-9
    }

    /// Adds an event at `t_ns` nanoseconds with `size` bytes.
    pub fn push_ns(&mut self, t_ns: u64, size: u64) -> Result<(), BinError> {
        self.add(t_ns, size as f64)
    }

    /// Adds an event at `t_s` seconds with `size` bytes.
    pub fn push_secs(&mut self, t_s: f64, size: f64) -> Result<(), BinError> {
        if !(t_s.is_finite() && t_s >= 0.0) {
            return Err(BinError::BadTime(t_s));
        }
        if !(size.is_finite() && size >= 0.0) {
            return Err(BinError::BadSize(size));
        }
        self.add((t_s * 1e9).round() as u64, size)
    }

    fn add(&mut self, t: u64, size: f64) -> Result<(), BinError> {
        let origin = *self.origin_ns.get_or_insert(t);
        if t >= origin {
            let idx = (t - origin) / self.width_ns;
            let end = self.open_start + self.open.len() as u64;
            if idx >= end && idx - end >= self.max_gap_bins {
                return Err(BinError::GapTooLarge {
                    t_ns: t,
                    bins: idx - end,
                    limit: self.max_gap_bins,
                });
            }
        }
        if let Some(last) = self.last_ns {
            if t < last {
                self.out_of_order += 1;
            }
        }
        self.last_ns = Some(self.last_ns.map_or(t, |l| l.max(t)));
        if t < origin {
            self.late += 1;
            return Ok(());
        }
        let idx = (t - origin) / self.width_ns;
        if idx < self.open_start {
            self.late += 1;
            return Ok(());
        }
        self.open_through(idx);
        let slot = &mut self.open[(idx - self.open_start) as usize];
        slot.0 += size;
        slot.1 += 1.0;
        self.events += 1;
        self.close_excess();
        Ok(())
    }

    /// Opens empty bins up to and including bin `idx`.
    fn open_through(&mut self, idx: u64) {
        while idx >= self.open_start + self.open.len() as u64 {
            self.open.push_back((0.0, 0.0));
        }
    }

    /// Closes the bins that fell out of the reorder window.
    fn close_excess(&mut self) {
        while self.open.len() > self.open_bins {
            let (b, p) = self.open.pop_front().expect("non-empty");
            self.closed_bytes.push(b);
            self.closed_packets.push(p);
            self.open_start += 1;
        }
    }

    /// Moves the clock to `t_ns` without an event: closes the bins an event
    /// at `t_ns` would close, so a live consumer sees bins close during
    /// silence. Does nothing before the first event (no origin yet) or for
    /// a time at or before the newest open bin; an event may still arrive
    /// for any bin left open. Refuses a jump of `max_gap_bins` or more, like
    /// an event.
    pub fn advance_ns(&mut self, t_ns: u64) -> Result<(), BinError> {
        let Some(origin) = self.origin_ns else {
            return Ok(());
        };
        if t_ns < origin {
            return Ok(());
        }
        let idx = (t_ns - origin) / self.width_ns;
        let end = self.open_start + self.open.len() as u64;
        if idx < end {
            return Ok(());
        }
        if idx - end >= self.max_gap_bins {
            return Err(BinError::GapTooLarge {
                t_ns,
                bins: idx - end,
                limit: self.max_gap_bins,
            });
        }
        self.open_through(idx);
        self.close_excess();
        Ok(())
    }

    /// The bins closed so far and not yet drained, oldest first (bytes,
    /// packets): a consumer that keeps its own position reads new bins
    /// without taking them, so [`Binner::finish`] still returns the whole
    /// series.
    pub fn closed(&self) -> (&[f64], &[f64]) {
        (&self.closed_bytes, &self.closed_packets)
    }

    /// Takes the bins closed since the last call (bytes, packets), for
    /// streaming consumers such as [`crate::SlidingHurst`].
    pub fn drain_closed(&mut self) -> (Vec<f64>, Vec<f64>) {
        (
            std::mem::take(&mut self.closed_bytes),
            std::mem::take(&mut self.closed_packets),
        )
    }

    /// Closes all bins and returns those not yet drained. The last bin ends
    /// at the last event, so it is usually partial.
    pub fn finish(mut self) -> BinnedSeries {
        for (b, p) in self.open.drain(..) {
            self.closed_bytes.push(b);
            self.closed_packets.push(p);
        }
        BinnedSeries {
            bin_width_s: self.width_ns as f64 * 1e-9,
            origin_ns: self.origin_ns.unwrap_or(0),
            bytes: self.closed_bytes,
            packets: self.closed_packets,
            events: self.events,
            out_of_order: self.out_of_order,
            late: self.late,
        }
    }
}

/// Bins event times (seconds) with optional sizes; without sizes every
/// event counts 0 bytes and only `packets` is meaningful.
pub fn bin_events_secs(
    times: &[f64],
    sizes: Option<&[f64]>,
    width_s: f64,
) -> Result<BinnedSeries, BinError> {
    let mut b = Binner::with_width_secs(width_s);
    for (i, &t) in times.iter().enumerate() {
        b.push_secs(t, sizes.map_or(0.0, |s| s[i]))?;
    }
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_in_order_events_with_gaps() {
        let mut b = Binner::new(10).with_origin_ns(0);
        for (t, s) in [(0, 100), (5, 50), (12, 10), (45, 1)] {
            b.push_ns(t, s).unwrap();
        }
        let r = b.finish();
        assert_eq!(r.bytes, vec![150.0, 10.0, 0.0, 0.0, 1.0]);
        assert_eq!(r.packets, vec![2.0, 1.0, 0.0, 0.0, 1.0]);
        assert_eq!((r.events, r.out_of_order, r.late), (4, 0, 0));
    }

    #[test]
    fn out_of_order_events_placed_or_counted_late() {
        let mut b = Binner::new(10).with_origin_ns(0).with_open_bins(2);
        b.push_ns(25, 1).unwrap(); // bin 2; open bins are 1..=2 after closing
        b.push_ns(15, 2).unwrap(); // bin 1: still open -> placed, out of order
        b.push_ns(3, 4).unwrap(); // bin 0: closed -> late
        let r = b.finish();
        assert_eq!(r.bytes, vec![0.0, 2.0, 1.0]);
        assert_eq!((r.events, r.out_of_order, r.late), (2, 2, 1));
    }

    #[test]
    fn streaming_drain_equals_batch() {
        let times: Vec<u64> = (0..1000).map(|i| i * 7 + (i % 3)).collect();
        let mut a = Binner::new(50);
        let mut got = Vec::new();
        for &t in &times {
            a.push_ns(t, 1).unwrap();
            got.extend(a.drain_closed().1);
        }
        got.extend(a.finish().packets);
        let mut b = Binner::new(50);
        for &t in &times {
            b.push_ns(t, 1).unwrap();
        }
        assert_eq!(got, b.finish().packets);
        assert_eq!(got.iter().sum::<f64>(), 1000.0);
    }

    #[test]
    fn advancing_the_clock_closes_bins_without_events() {
        let mut b = Binner::new(10).with_origin_ns(0).with_open_bins(2);
        // No event yet: nothing to close, no origin needed.
        let mut fresh = Binner::new(10);
        fresh.advance_ns(1_000).unwrap();
        assert_eq!(fresh.closed().0.len(), 0);
        b.push_ns(3, 5).unwrap();
        assert_eq!(b.closed().0, &[] as &[f64]);
        // At t = 47 the open bins are 3 and 4 (two open bins); 0..=2 closed.
        b.advance_ns(47).unwrap();
        assert_eq!(b.closed().0, &[5.0, 0.0, 0.0]);
        // Going back in time changes nothing; bin 3 still takes an event.
        b.advance_ns(20).unwrap();
        b.push_ns(36, 7).unwrap();
        assert_eq!(b.closed().0.len(), 3);
        let r = b.finish();
        assert_eq!(r.bytes, vec![5.0, 0.0, 0.0, 7.0, 0.0]);
        assert_eq!((r.events, r.out_of_order, r.late), (2, 0, 0));
        // A clock far ahead is refused like an event.
        let mut b = Binner::new(10).with_max_gap_bins(100);
        b.push_ns(0, 1).unwrap();
        assert!(matches!(
            b.advance_ns(10_000),
            Err(BinError::GapTooLarge { .. })
        ));
    }

    #[test]
    fn rejects_bad_values() {
        let mut b = Binner::default();
        assert!(matches!(
            b.push_secs(f64::NAN, 1.0),
            Err(BinError::BadTime(_))
        ));
        assert!(matches!(b.push_secs(1.0, -5.0), Err(BinError::BadSize(_))));
        assert!(matches!(b.push_secs(-1.0, 5.0), Err(BinError::BadTime(_))));
        // A corrupt far-future timestamp is refused instead of allocating.
        let mut b = Binner::new(10).with_max_gap_bins(1000);
        b.push_ns(0, 1).unwrap();
        assert!(matches!(
            b.push_ns(1_000_000, 1),
            Err(BinError::GapTooLarge { .. })
        ));
        b.push_ns(9_000, 1).unwrap();
        assert_eq!(b.finish().packets.len(), 901);
    }
}
