//! Per-bin counting on capture time: packets and bytes by class, true
//! class, protocol, service and direction; flows started, ended and active;
//! the fine (0.1 s) byte series of total, TCP and UDP traffic. A bin is
//! emitted once, when a later packet (or a clock tick) passes its end.
//!
//! The hot path neither allocates nor compares strings: classes are
//! indices, and protocol, service and direction names are static strings
//! found by pointer in short vectors.

use crate::types::{Bin, Dim, DimCount, FineStats};

/// Counts under static names, found by pointer first (no string compare
/// in the common case).
#[derive(Default)]
struct StaticCounts(Vec<(&'static str, u64, u64)>);

impl StaticCounts {
    #[inline]
    fn add(&mut self, name: &'static str, bytes: u64) {
        let i = self
            .0
            .iter()
            .position(|e| std::ptr::eq(e.0, name))
            .or_else(|| self.0.iter().position(|e| e.0 == name));
        match i {
            Some(i) => {
                self.0[i].1 += 1;
                self.0[i].2 += bytes;
            }
            None => self.0.push((name, 1, bytes)),
        }
    }

    fn clear(&mut self) {
        for e in &mut self.0 {
            e.1 = 0;
            e.2 = 0;
        }
    }
}

/// What one packet contributes to a bin.
pub struct PacketFacts {
    pub ts_ns: u64,
    pub wire_len: u32,
    /// Index into the class keys (see [`BinAggregator::new`]).
    pub class: usize,
    /// Index into the true-class keys.
    pub true_class: usize,
    pub protocol: &'static str,
    pub service: Option<&'static str>,
    pub direction: Option<&'static str>,
    /// The flow's application so far (IP packets in a flow only).
    pub app: Option<&'static str>,
    /// 0 other, 1 TCP, 2 UDP: which fine series besides the total.
    pub transport: u8,
    pub flow_started: bool,
}

/// Gaps longer than this many empty bins are skipped (a jump in capture
/// time: another file, a clock step), not filled with zeros.
pub const MAX_EMPTY_BINS: u64 = 3600;

/// The bin being filled and its counters.
pub struct BinAggregator {
    bin_ns: u64,
    fine_ns: u64,
    class_keys: Vec<String>,
    true_keys: Vec<String>,
    start_ns: Option<u64>,
    packets: u64,
    bytes: u64,
    classes: Vec<(u64, u64)>,
    true_classes: Vec<(u64, u64)>,
    protocols: StaticCounts,
    services: StaticCounts,
    directions: StaticCounts,
    apps: StaticCounts,
    cross: CrossCounts,
    flows_started: u64,
    flows_ended: StaticCounts,
    fine: [Vec<u64>; 3],
}

/// Counts by (class, protocol, app, direction) together; names found by
/// pointer, and the last entry hit tried first (a bin's packets come in
/// runs of one flow).
#[derive(Default)]
struct CrossCounts {
    entries: Vec<CrossEntry>,
    last: usize,
}

struct CrossEntry {
    class: usize,
    protocol: &'static str,
    app: Option<&'static str>,
    direction: Option<&'static str>,
    packets: u64,
    bytes: u64,
}

fn same(a: Option<&'static str>, b: Option<&'static str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => std::ptr::eq(a, b) || a == b,
        (None, None) => true,
        _ => false,
    }
}

impl CrossCounts {
    #[inline]
    fn add(&mut self, p: &PacketFacts, bytes: u64) {
        let hit = |e: &CrossEntry| {
            e.class == p.class
                && (std::ptr::eq(e.protocol, p.protocol) || e.protocol == p.protocol)
                && same(e.app, p.app)
                && same(e.direction, p.direction)
        };
        let i = match self.entries.get(self.last) {
            Some(e) if hit(e) => self.last,
            _ => match self.entries.iter().position(hit) {
                Some(i) => i,
                None => {
                    self.entries.push(CrossEntry {
                        class: p.class,
                        protocol: p.protocol,
                        app: p.app,
                        direction: p.direction,
                        packets: 0,
                        bytes: 0,
                    });
                    self.entries.len() - 1
                }
            },
        };
        self.last = i;
        let e = &mut self.entries[i];
        e.packets += 1;
        e.bytes += bytes;
    }
}

impl BinAggregator {
    /// `class_keys`: the names of class indices (model classes, then
    /// `unknown`, `pending`, `no-flow`). `bin_ns` must be a multiple of `fine_ns`.
    pub fn new(bin_ns: u64, fine_ns: u64, class_keys: Vec<String>) -> Self {
        let n = (bin_ns / fine_ns) as usize;
        BinAggregator {
            bin_ns,
            fine_ns,
            classes: vec![(0, 0); class_keys.len()],
            class_keys,
            true_keys: Vec::new(),
            true_classes: Vec::new(),
            start_ns: None,
            packets: 0,
            bytes: 0,
            protocols: StaticCounts::default(),
            services: StaticCounts::default(),
            directions: StaticCounts::default(),
            apps: StaticCounts::default(),
            cross: CrossCounts::default(),
            flows_started: 0,
            flows_ended: StaticCounts::default(),
            fine: [vec![0; n], vec![0; n], vec![0; n]],
        }
    }

    /// Names true-class index `i` (grows as labels meet new classes).
    pub fn set_true_key(&mut self, i: usize, name: &str) {
        if self.true_keys.len() <= i {
            self.true_keys.resize(i + 1, String::new());
            self.true_classes.resize(i + 1, (0, 0));
        }
        if self.true_keys[i] != name {
            self.true_keys[i] = name.to_string();
        }
    }

    /// End of the open bin, if one is open.
    pub fn open_end(&self) -> Option<u64> {
        self.start_ns.map(|s| s + self.bin_ns)
    }

    /// Closes every bin that ends at or before `ts_ns`, pushing them to
    /// `out`, and opens the bin holding `ts_ns`. `active` is the number of
    /// open flows now. Returns true when capture time jumped by more than
    /// [`MAX_EMPTY_BINS`]: the empty bins were skipped, the series broke.
    pub fn roll_to(&mut self, ts_ns: u64, active: u64, out: &mut Vec<Bin>) -> bool {
        let Some(start) = self.start_ns else {
            self.start_ns = Some(ts_ns - ts_ns % self.bin_ns);
            return false;
        };
        let end = start + self.bin_ns;
        if ts_ns < end {
            return false;
        }
        out.push(self.take_bin(start, active));
        let gap = (ts_ns - end) / self.bin_ns;
        let jumped = gap > MAX_EMPTY_BINS;
        if !jumped {
            for e in 0..gap {
                out.push(self.take_bin(end + e * self.bin_ns, active));
            }
        }
        self.start_ns = Some(end + gap * self.bin_ns);
        jumped
    }

    /// Counts one packet in the open bin (a timestamp before the bin's
    /// start, a clock going backwards, is counted in the open bin).
    #[inline]
    pub fn add(&mut self, p: &PacketFacts) {
        let start = *self.start_ns.get_or_insert(p.ts_ns - p.ts_ns % self.bin_ns);
        let bytes = p.wire_len as u64;
        self.packets += 1;
        self.bytes += bytes;
        let c = &mut self.classes[p.class];
        c.0 += 1;
        c.1 += bytes;
        if self.true_classes.len() <= p.true_class {
            self.true_classes.resize(p.true_class + 1, (0, 0));
        }
        let t = &mut self.true_classes[p.true_class];
        t.0 += 1;
        t.1 += bytes;
        self.protocols.add(p.protocol, bytes);
        if let Some(s) = p.service {
            self.services.add(s, bytes);
        }
        if let Some(d) = p.direction {
            self.directions.add(d, bytes);
        }
        if let Some(a) = p.app {
            self.apps.add(a, bytes);
        }
        self.cross.add(p, bytes);
        self.flows_started += p.flow_started as u64;
        let i = (p.ts_ns.saturating_sub(start) / self.fine_ns) as usize;
        let i = i.min(self.fine[0].len() - 1);
        self.fine[0][i] += bytes;
        if p.transport == 1 || p.transport == 2 {
            self.fine[p.transport as usize][i] += bytes;
        }
    }

    /// Counts a flow that ended (by its end reason) in the open bin.
    pub fn flow_ended(&mut self, reason: &'static str) {
        self.flows_ended.add(reason, 0);
    }

    fn take_bin(&mut self, start_ns: u64, active: u64) -> Bin {
        let mut counts = Vec::new();
        let mut push = |dim: Dim, key: &str, packets: u64, bytes: u64| {
            if packets > 0 {
                counts.push(DimCount {
                    dim,
                    key: key.to_string(),
                    packets,
                    bytes,
                });
            }
        };
        for (k, c) in self.class_keys.iter().zip(&self.classes) {
            push(Dim::Class, k, c.0, c.1);
        }
        for (i, c) in self.true_classes.iter().enumerate() {
            let key = self
                .true_keys
                .get(i)
                .filter(|k| !k.is_empty())
                .map_or("unlabelled", String::as_str);
            push(Dim::TrueClass, key, c.0, c.1);
        }
        for (dim, sc) in [
            (Dim::Protocol, &self.protocols),
            (Dim::Service, &self.services),
            (Dim::Direction, &self.directions),
            (Dim::App, &self.apps),
        ] {
            for e in &sc.0 {
                push(dim, e.0, e.1, e.2);
            }
        }
        for e in &mut self.cross.entries {
            if e.packets > 0 {
                let key = format!(
                    "{}|{}|{}|{}",
                    self.class_keys.get(e.class).map_or("-", String::as_str),
                    e.protocol,
                    e.app.unwrap_or("-"),
                    e.direction.unwrap_or("-")
                );
                push(Dim::Cross, &key, e.packets, e.bytes);
            }
            (e.packets, e.bytes) = (0, 0);
        }
        counts.sort_by(|a, b| (a.dim, &a.key).cmp(&(b.dim, &b.key)));
        let mut flows_ended: Vec<(String, u64)> = self
            .flows_ended
            .0
            .iter()
            .filter(|e| e.1 > 0)
            .map(|e| (e.0.to_string(), e.1))
            .collect();
        flows_ended.sort();
        let n = self.fine[0].len();
        let fine_bytes = [0, 1, 2].map(|s| std::mem::replace(&mut self.fine[s], vec![0; n]));
        let fine = [0, 1, 2].map(|s| fine_stats(&fine_bytes[s]));
        let bin = Bin {
            start_ns,
            width_ns: self.bin_ns,
            packets: self.packets,
            bytes: self.bytes,
            counts,
            flows_started: self.flows_started,
            flows_ended,
            flows_active: active,
            fine_width_ns: self.fine_ns,
            fine_bytes,
            fine,
            source: String::new(),
            source_ended: false,
        };
        self.packets = 0;
        self.bytes = 0;
        self.classes.iter_mut().for_each(|c| *c = (0, 0));
        self.true_classes.iter_mut().for_each(|c| *c = (0, 0));
        self.protocols.clear();
        self.services.clear();
        self.directions.clear();
        self.apps.clear();
        self.flows_ended.clear();
        self.flows_started = 0;
        bin
    }

    /// Closes the open bin (end of input).
    pub fn finish(&mut self, active: u64) -> Option<Bin> {
        let start = self.start_ns.take()?;
        Some(self.take_bin(start, active))
    }
}

/// Mean, σ/μ (population σ) and peak of a bin's fine values.
pub fn fine_stats(v: &[u64]) -> FineStats {
    if v.is_empty() {
        return FineStats::default();
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<u64>() as f64 / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    FineStats {
        mean,
        cv: (mean > 0.0).then(|| var.sqrt() / mean),
        peak: v.iter().copied().max().unwrap_or(0) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn facts(ts_ns: u64, len: u32, class: usize, transport: u8) -> PacketFacts {
        PacketFacts {
            ts_ns,
            wire_len: len,
            class,
            true_class: 0,
            protocol: if transport == 1 { "TCP" } else { "UDP" },
            service: Some("https"),
            direction: Some("up"),
            app: Some("tls"),
            transport,
            flow_started: false,
        }
    }

    fn agg() -> BinAggregator {
        BinAggregator::new(S, 100 * MS, vec!["web".into(), "unknown".into()])
    }

    #[test]
    fn bins_align_to_the_epoch_fill_quiet_seconds_with_zeros_and_count_every_key() {
        let mut a = agg();
        let t0 = 1_700_000_000 * S + 250 * MS; // .25 s into a second
        let mut out = Vec::new();
        a.roll_to(t0, 0, &mut out);
        a.add(&facts(t0, 100, 0, 1));
        a.add(&facts(t0 + 10 * MS, 50, 1, 2));
        a.add(&facts(t0 + 700 * MS, 30, 0, 1)); // fine bin 9
                                                // 3.1 s later: closes the first bin and two empty ones.
        assert!(!a.roll_to(t0 + 3 * S, 7, &mut out));
        assert_eq!(out.len(), 3);
        let b = &out[0];
        assert_eq!(b.start_ns, 1_700_000_000 * S);
        assert_eq!((b.packets, b.bytes), (3, 180));
        assert_eq!(b.count(Dim::Class, "web"), (2, 130));
        assert_eq!(b.count(Dim::Class, "unknown"), (1, 50));
        assert_eq!(b.count(Dim::Protocol, "TCP"), (2, 130));
        assert_eq!(b.count(Dim::Protocol, "UDP"), (1, 50));
        assert_eq!(b.count(Dim::TrueClass, "unlabelled"), (3, 180));
        assert_eq!(b.count(Dim::App, "tls"), (3, 180));
        assert_eq!(b.flows_active, 7);
        // Fine bins: 150 bytes at index 2 (.25 s), 30 at index 9 (.95 s).
        let mut want = vec![0u64; 10];
        want[2] = 150;
        want[9] = 30;
        assert_eq!(b.fine_bytes[0], want);
        assert_eq!(b.fine_bytes[1][2], 100);
        assert_eq!(b.fine_bytes[2][2], 50);
        // Mean 18, population σ computed by hand: sqrt((132² + 12² + 8·18²)/10).
        let sigma = ((132.0f64.powi(2) + 12.0f64.powi(2) + 8.0 * 18.0f64.powi(2)) / 10.0).sqrt();
        assert_eq!(b.fine[0].mean, 18.0);
        assert!((b.fine[0].cv.unwrap() - sigma / 18.0).abs() < 1e-12);
        assert_eq!(b.fine[0].peak, 150.0);
        for e in &out[1..] {
            assert_eq!((e.packets, e.bytes), (0, 0));
            assert!(e.counts.is_empty());
            assert_eq!(e.fine[0].cv, None);
        }
        assert_eq!(out[2].start_ns, 1_700_000_002 * S);
        // The open bin is the fourth second.
        assert_eq!(a.open_end(), Some(1_700_000_004 * S));
    }

    #[test]
    fn a_jump_in_capture_time_skips_instead_of_filling_hours_of_zeros() {
        let mut a = agg();
        let mut out = Vec::new();
        a.roll_to(10 * S, 0, &mut out);
        a.add(&facts(10 * S, 60, 0, 1));
        assert!(a.roll_to(10 * S + (MAX_EMPTY_BINS + 5) * S, 0, &mut out));
        assert_eq!(out.len(), 1, "only the bin with traffic");
        // A packet older than the open bin is counted in the open bin.
        a.add(&facts(5 * S, 40, 0, 1));
        let b = a.finish(0).unwrap();
        assert_eq!(b.start_ns, 10 * S + (MAX_EMPTY_BINS + 5) * S);
        assert_eq!(b.bytes, 40);
        assert_eq!(b.fine_bytes[0][0], 40);
    }
}
