//! Sliding Hurst points of the *summed* traffic, made from the store.
//!
//! In a scale-out deployment each analysis node sees some partitions only,
//! so the Hurst windows of its pipelines describe a part of the traffic, and
//! a Hurst parameter does not add up over parts. The store, though, holds
//! the 0.1 s series summed over every source. [`SummedHurst`] reads that sum
//! back once every source has passed a window's end, and makes the point
//! with the same estimators and settings as the local pipeline. Points are
//! keyed by series and end, so two nodes making the same point, or a node
//! making it again after a restart, store one row.

use pipeline::{HurstPoint, SeriesName};

use crate::query::{History, Metric, SeriesQuery};
use crate::StoreError;

/// Makes the points due, in order, one window step at a time.
#[derive(Debug, Clone)]
pub struct SummedHurst {
    /// Window and step, in fine bins, and the fine bin's width.
    window: u64,
    every: u64,
    fine_ns: u64,
    /// End of the next point to make (`None`: not placed yet), and of the
    /// first point of the current run of windows (a gap starts a new run).
    next_end_ns: Option<u64>,
    segment_first_ns: Option<u64>,
    /// The finest tier's first bin when the next point was placed.
    placed_by_first_ns: Option<u64>,
    /// Per source: its newest bin end, when it last moved, and whether it
    /// is left out of the watermark.
    sources: std::collections::HashMap<String, SourceMark>,
}

#[derive(Debug, Clone)]
struct SourceMark {
    end: u64,
    moved: std::time::Instant,
    ended: bool,
    stalled: bool,
}

/// How long a source far behind the others may stand still before the
/// points stop waiting for it (wall time).
pub const STALLED_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

impl SummedHurst {
    /// Windows of `window` fine bins of `fine_ns`, one every `every` bins
    /// (the pipeline's `--hurst-window`, `--hurst-every`).
    pub fn new(window: usize, every: usize, fine_ns: u64) -> SummedHurst {
        SummedHurst {
            window: window.max(1) as u64,
            every: every.max(1) as u64,
            fine_ns: fine_ns.max(1),
            next_end_ns: None,
            segment_first_ns: None,
            placed_by_first_ns: None,
            sources: Default::default(),
        }
    }

    fn window_ns(&self) -> u64 {
        self.window * self.fine_ns
    }

    fn every_ns(&self) -> u64 {
        self.every * self.fine_ns
    }

    /// End of the next point to make, once placed.
    pub fn next_end_ns(&self) -> Option<u64> {
        self.next_end_ns
    }

    /// The time up to which every source has stored its bins, from each
    /// source's newest bin end and whether that bin was its last (`ends`,
    /// as `source_extents` reads them) at wall time `now`. A source that
    /// ended, or that is more than a window behind the newest and has not
    /// moved for [`STALLED_AFTER`] (a capture node that died, a capture
    /// replayed from another day), does not hold the points back; when it
    /// moves again, the points made past its old end are made again (a
    /// point is keyed by its end, so it replaces the old one).
    pub fn watermark(
        &mut self,
        sources: impl IntoIterator<Item = (String, crate::SourceExtent)>,
        now: std::time::Instant,
    ) -> Option<u64> {
        let mut rewind_to: Option<u64> = None;
        let mut earliest = |t: u64| rewind_to = Some(rewind_to.map_or(t, |r: u64| r.min(t)));
        for (source, e) in sources {
            let mark = SourceMark {
                end: e.bins_end_ns,
                moved: now,
                ended: e.ended,
                stalled: false,
            };
            match self.sources.get_mut(&source) {
                Some(s) if s.end != mark.end => {
                    if s.stalled {
                        earliest(s.end);
                    }
                    *s = mark;
                }
                Some(s) => s.ended = mark.ended,
                None => {
                    // A source first seen (another node's partition stored
                    // later than its peers): the points over its bins are
                    // made again with them.
                    earliest(e.bins_start_ns);
                    self.sources.insert(source, mark);
                }
            }
        }
        if let Some(old_end) = rewind_to {
            self.rewind(old_end);
        }
        let newest = self.sources.values().map(|s| s.end).max()?;
        let floor = newest.saturating_sub(self.window_ns());
        for s in self.sources.values_mut() {
            s.stalled = s.ended || (s.end < floor && now.duration_since(s.moved) >= STALLED_AFTER);
        }
        // With every source ended or stalled, what is stored is all there is.
        let live = self
            .sources
            .values()
            .filter(|s| !s.stalled)
            .map(|s| s.end)
            .min();
        Some(live.unwrap_or(newest)).filter(|&w| w > 0)
    }

    /// Makes the points ending after `old_end` again (not before the start
    /// of the current run of windows, which a gap began).
    fn rewind(&mut self, old_end: u64) {
        let (Some(next), Some(first)) = (self.next_end_ns, self.segment_first_ns) else {
            return;
        };
        let every = self.every_ns();
        let mut n = next;
        while n >= first + every && n - every > old_end {
            n -= every;
        }
        self.next_end_ns = Some(n.max(first));
    }

    /// The first point on the clock (multiples of the step since the
    /// epoch, as the pipeline places its windows) at least a window after
    /// `t`.
    fn first_after(&self, t: u64) -> u64 {
        (t + self.window_ns()).div_ceil(self.every_ns()) * self.every_ns()
    }

    /// Places the next point: after the newest point the store holds (a
    /// restart, or another node, made it), else a window after the finest
    /// tier's first bin. Placed again earlier when bins older than those
    /// it was placed by arrive (a source that started earlier was stored
    /// later). `None` while the store holds no bins.
    fn place(&mut self, history: &dyn History) -> Result<Option<u64>, StoreError> {
        let extent = history.extent()?;
        let Some(first) = extent.tiers.first().and_then(|t| t.first_ns) else {
            return Ok(self.next_end_ns);
        };
        match (self.next_end_ns, self.placed_by_first_ns) {
            (Some(next), Some(by)) if first >= by => return Ok(Some(next)),
            (Some(next), Some(_)) => {
                let earlier = self.first_after(first).min(next);
                self.next_end_ns = Some(earlier);
                self.segment_first_ns = Some(earlier);
                self.placed_by_first_ns = Some(first);
                return Ok(Some(earlier));
            }
            _ => {}
        }
        let last = extent
            .tiers
            .first()
            .and_then(|t| t.last_ns)
            .unwrap_or(first);
        let stored = history.hurst(SeriesName::Total, first, last.saturating_add(1))?;
        let next = match stored.last() {
            Some(p) => (p.end_ns + 1).div_ceil(self.every_ns()) * self.every_ns(),
            None => self.first_after(first),
        };
        self.next_end_ns = Some(next);
        self.segment_first_ns = Some(next);
        self.placed_by_first_ns = Some(first);
        Ok(Some(next))
    }

    /// The points (total, TCP, UDP) whose windows end at or before
    /// `watermark_ns`, at most `max_steps` window steps of them. A window
    /// with a gap (no bins stored: the service was down) gives no point;
    /// the next is placed one window after the gap, as the pipeline
    /// restarts its windows after a jump in time.
    pub fn due(
        &mut self,
        history: &dyn History,
        watermark_ns: u64,
        max_steps: usize,
    ) -> Result<Vec<HurstPoint>, StoreError> {
        let mut out = Vec::new();
        // Placed once per call (an extent query); the steps move it on.
        if self.place(history)?.is_none() {
            return Ok(out);
        }
        for _ in 0..max_steps {
            let Some(end) = self.next_end_ns else {
                break;
            };
            if end > watermark_ns {
                break;
            }
            let from = end.saturating_sub(self.window_ns());
            let series = history.series(&SeriesQuery {
                metric: Metric::FineBytes,
                dim: None,
                from_ns: from,
                to_ns: end,
                step_ns: self.fine_ns,
                top: 3,
                filter: Vec::new(),
            })?;
            match last_gap(&series.lines, series.times_ns.len(), self.window) {
                Some(gap) => {
                    // A new run of windows one window after the gap, as
                    // the pipeline starts again after a jump in time. A
                    // gap to the window's end may go on for years: the
                    // store says where the bins begin again.
                    let mut gap_end = from + (gap as u64 + 1) * self.fine_ns;
                    if gap_end >= end {
                        match history.first_bin_from(end)? {
                            Some(t) => gap_end = t,
                            None => break,
                        }
                    }
                    let next = self.first_after(gap_end).max(end + self.every_ns());
                    self.next_end_ns = Some(next);
                    self.segment_first_ns = Some(next);
                }
                None => {
                    for s in SeriesName::ALL {
                        let Some(line) = series.lines.iter().find(|l| l.key == s.as_str()) else {
                            continue;
                        };
                        let values: Vec<f64> =
                            line.values.iter().map(|v| v.unwrap_or(0.0)).collect();
                        out.push(HurstPoint::of_window(s, end, self.fine_ns, &values));
                    }
                    self.next_end_ns = Some(end + self.every_ns());
                }
            }
        }
        Ok(out)
    }
}

/// Index of the last fine bin of the window the store does not hold (all
/// series share the bins), or of the last slot when the answer is short.
fn last_gap(lines: &[crate::query::SeriesLine], steps: usize, window: u64) -> Option<usize> {
    let window = window as usize;
    if steps < window || lines.is_empty() {
        return Some(window.saturating_sub(1));
    }
    (0..window).rev().find(|&i| {
        lines
            .iter()
            .any(|l| l.values.get(i).is_none_or(|v| v.is_none()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_waits_for_live_sources_not_for_stalled_ones() {
        use std::time::{Duration, Instant};
        let mut h = SummedHurst::new(100, 10, 1_000);
        let t0 = Instant::now();
        let ext = |end: u64, ended: bool| crate::SourceExtent {
            bins_start_ns: 0,
            bins_end_ns: end,
            windows_end_ns: 0,
            ended,
        };
        let marks = |v: &[(&str, u64)]| {
            v.iter()
                .map(|(s, e)| (s.to_string(), ext(*e, false)))
                .collect::<Vec<_>>()
        };
        // Window 100 µs: a source 100 µs behind the newest still counts.
        assert_eq!(
            h.watermark(marks(&[("a", 500_000), ("b", 499_950), ("c", 499_900)]), t0),
            Some(499_900)
        );
        // One far behind holds the others back until it stalls.
        let far = marks(&[("a", 600_000), ("b", 599_950), ("c", 10_000)]);
        assert_eq!(h.watermark(far.clone(), t0), Some(10_000));
        assert_eq!(
            h.watermark(far.clone(), t0 + Duration::from_secs(29)),
            Some(10_000)
        );
        let t1 = t0 + STALLED_AFTER + Duration::from_secs(1);
        assert_eq!(h.watermark(far, t1), Some(599_950));
        // Points made meanwhile are made again once it moves.
        h.next_end_ns = Some(100_000);
        h.segment_first_ns = Some(50_000);
        let moved = marks(&[("a", 600_000), ("b", 599_950), ("c", 20_000)]);
        assert_eq!(h.watermark(moved, t1), Some(20_000));
        // Every 10 µs from 50 µs: the first point past 10 µs is at 50 µs.
        assert_eq!(h.next_end_ns(), Some(50_000));
        h.next_end_ns = Some(100_000);
        h.rewind(72_000);
        assert_eq!(h.next_end_ns(), Some(80_000));
        assert_eq!(
            SummedHurst::new(100, 10, 1_000).watermark(Vec::new(), t0),
            None
        );
        // A source that ended holds nothing back, at once.
        let mut h = SummedHurst::new(100, 10, 1_000);
        let ended = vec![
            ("a".to_string(), ext(600_000, false)),
            ("c".to_string(), ext(10_000, true)),
        ];
        assert_eq!(h.watermark(ended, t0), Some(600_000));
        // And when all have ended, everything stored is due.
        let all = vec![
            ("a".to_string(), ext(600_000, true)),
            ("c".to_string(), ext(10_000, true)),
        ];
        assert_eq!(h.watermark(all, t0), Some(600_000));
        // A source seen late makes the points over its bins again.
        h.next_end_ns = Some(100_000);
        h.segment_first_ns = Some(50_000);
        let late = crate::SourceExtent {
            bins_start_ns: 61_000,
            ..ext(120_000, false)
        };
        h.watermark(vec![("d".to_string(), late)], t0);
        assert_eq!(h.next_end_ns(), Some(70_000));
    }
}
