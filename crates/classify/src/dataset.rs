//! Datasets built from captures and labels; grouped splits and k-fold.

use std::collections::{BTreeMap, HashMap};

use capture::CaptureReader;
use flow::{FlowConfig, FlowRecord, FlowTable};

use crate::evidence::TokenEvidence;
use crate::features::{evidence_tokens, flow_features};
use crate::labels::{base_name, LabelStats, Labels};
use crate::rng::Rng;
use crate::{ClassifyError, Result};

/// Rows with their classes and groups (capture file or session).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub x: Vec<Vec<f32>>,
    pub y: Vec<usize>,
    pub groups: Vec<String>,
    pub class_names: Vec<String>,
    /// 0 for a whole flow, k for a flow's first k packets.
    pub prefix: Vec<u32>,
    /// Application tokens of each row ([`crate::features::evidence_tokens`]),
    /// empty for rows pushed without them.
    pub tokens: Vec<Vec<String>>,
}

/// Train / test row indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    pub fn push(&mut self, x: Vec<f32>, y: usize, group: &str, prefix: u32) {
        self.push_with_tokens(x, vec![], y, group, prefix);
    }

    /// A row with its application tokens (for [`crate::evidence`]).
    pub fn push_with_tokens(
        &mut self,
        x: Vec<f32>,
        tokens: Vec<String>,
        y: usize,
        group: &str,
        prefix: u32,
    ) {
        self.tokens.push(tokens);
        self.x.push(x);
        self.y.push(y);
        self.groups.push(group.to_string());
        self.prefix.push(prefix);
    }

    /// Rows per class.
    pub fn class_counts(&self) -> Vec<u64> {
        let mut c = vec![0u64; self.class_names.len()];
        for &y in &self.y {
            c[y] += 1;
        }
        c
    }

    /// Rows `idx` as (x, y).
    pub fn subset(&self, idx: &[usize]) -> (Vec<Vec<f32>>, Vec<usize>) {
        (
            idx.iter().map(|&i| self.x[i].clone()).collect(),
            idx.iter().map(|&i| self.y[i]).collect(),
        )
    }

    /// Training rows `idx` with learned token evidence appended: the
    /// evidence table of all of them, and each row's evidence from the
    /// *other* groups only ([`TokenEvidence::features_leave_group_out`]).
    pub fn training_rows(&self, idx: &[usize]) -> (Vec<Vec<f32>>, Vec<usize>, TokenEvidence) {
        let k = self.class_names.len();
        let (ev, rows) =
            TokenEvidence::features_leave_group_out(&self.tokens, &self.y, &self.groups, k, idx);
        let (mut x, y) = self.subset(idx);
        for (r, e) in x.iter_mut().zip(rows) {
            r.extend(e);
        }
        (x, y, ev)
    }

    /// Rows `idx` with the evidence of `ev` appended (held-out rows).
    pub fn rows_with_evidence(
        &self,
        idx: &[usize],
        ev: &TokenEvidence,
    ) -> (Vec<Vec<f32>>, Vec<usize>) {
        let (mut x, y) = self.subset(idx);
        for (r, &i) in x.iter_mut().zip(idx) {
            r.extend(ev.features(&self.tokens[i]));
        }
        (x, y)
    }

    /// Groups with their majority class, sorted by name (deterministic).
    fn group_classes(&self) -> Vec<(String, usize)> {
        let mut m: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for (g, &y) in self.groups.iter().zip(&self.y) {
            m.entry(g)
                .or_insert_with(|| vec![0; self.class_names.len()])[y] += 1;
        }
        m.into_iter()
            .map(|(g, c)| {
                let best = (0..c.len())
                    .max_by_key(|&i| (c[i], std::cmp::Reverse(i)))
                    .unwrap_or(0);
                (g.to_string(), best)
            })
            .collect()
    }

    fn split_from(&self, test_groups: &[String]) -> Split {
        let set: std::collections::HashSet<&str> = test_groups.iter().map(String::as_str).collect();
        let (mut train, mut test) = (vec![], vec![]);
        for (i, g) in self.groups.iter().enumerate() {
            if set.contains(g.as_str()) {
                test.push(i);
            } else {
                train.push(i);
            }
        }
        Split { train, test }
    }

    /// Holds out about `test_fraction` of the groups, stratified by each
    /// group's majority class (at least one group of a class with two or
    /// more groups). A group is never on both sides.
    pub fn split_by_group(&self, test_fraction: f64, seed: u64) -> Split {
        let mut rng = Rng::new(seed);
        let mut by_class: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (g, c) in self.group_classes() {
            by_class.entry(c).or_default().push(g);
        }
        let mut test = vec![];
        for (_, mut gs) in by_class {
            rng.shuffle(&mut gs);
            let mut n = (gs.len() as f64 * test_fraction).round() as usize;
            if gs.len() >= 2 {
                n = n.clamp(1, gs.len() - 1);
            } else {
                n = 0;
            }
            test.extend(gs.into_iter().take(n));
        }
        self.split_from(&test)
    }

    /// `k` folds over groups (stratified by majority class): each group is
    /// in the test side of exactly one fold.
    pub fn kfold_by_group(&self, k: usize, seed: u64) -> Vec<Split> {
        let k = k.max(2);
        let mut rng = Rng::new(seed);
        let mut by_class: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (g, c) in self.group_classes() {
            by_class.entry(c).or_default().push(g);
        }
        let mut folds: Vec<Vec<String>> = vec![vec![]; k];
        let mut next = rng.below(k);
        for (_, mut gs) in by_class {
            rng.shuffle(&mut gs);
            for g in gs {
                folds[next % k].push(g);
                next += 1;
            }
        }
        folds.iter().map(|t| self.split_from(t)).collect()
    }
}

/// How to build a dataset.
#[derive(Debug, Clone, Default)]
pub struct DatasetOptions {
    pub flow_config: FlowConfig,
    /// Also add the first k packets of each flow as rows (early
    /// classification), for each k here with the flow longer than k.
    pub prefix_packets: Vec<usize>,
    /// Group by the label's session (generator labels) instead of capture file.
    pub group_by_session: bool,
}

/// Per-capture counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureStats {
    pub frames: u64,
    pub flows: u64,
    pub labelled: u64,
}

/// Builds a [`Dataset`] capture by capture.
pub struct DatasetBuilder {
    pub labels: Labels,
    pub opts: DatasetOptions,
    data: Dataset,
}

impl DatasetBuilder {
    pub fn new(labels: Labels, opts: DatasetOptions) -> Self {
        DatasetBuilder {
            labels,
            opts,
            data: Dataset::default(),
        }
    }

    /// Reads one capture: every finished flow with a label becomes a row
    /// (plus prefix rows). Returns the capture's counts; a damaged capture
    /// is an error (the rows of the flows decoded before the damage stay in
    /// the dataset: see [`add_capture_partial`](Self::add_capture_partial)).
    pub fn add_capture(&mut self, path: &str) -> Result<CaptureStats> {
        match self.add_capture_partial(path) {
            (st, None) => Ok(st),
            (_, Some(e)) => Err(e),
        }
    }

    /// Reads one capture as far as it can be read: every flow with a label
    /// becomes a row (plus prefix rows). Where the capture is damaged,
    /// reading stops there, the flows decoded before the damage are ended
    /// and kept, and the error (naming the file and the byte offset) comes
    /// back beside the counts. A capture that cannot be opened gives the
    /// error and no rows.
    pub fn add_capture_partial(&mut self, path: &str) -> (CaptureStats, Option<ClassifyError>) {
        let cap_err = |source| ClassifyError::Capture {
            path: path.to_string(),
            source: Box::new(source),
        };
        let mut st = CaptureStats::default();
        let mut reader = match CaptureReader::open(path) {
            Ok(r) => r,
            Err(e) => return (st, Some(cap_err(e))),
        };
        let name = base_name(path).to_string();
        let mut table = FlowTable::new(self.opts.flow_config.clone());
        // flow id -> prefix snapshots taken so far.
        let mut prefixes: HashMap<u64, Vec<(usize, FlowRecord)>> = HashMap::new();
        let mut done: Vec<FlowRecord> = vec![];
        let mut stopped = None;
        loop {
            let frame = match reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    stopped = Some(cap_err(e));
                    break;
                }
            };
            st.frames += 1;
            let pkt = decode::decode(frame.linktype, frame.data);
            let placed = table.process(&pkt, frame.ts_ns, frame.wire_len, &mut |r| done.push(r));
            // A prefix row is the flow table's own record of the flow's
            // first k packets: exactly what the streaming classifier judges
            // at packet k (`StreamingClassifier` snapshots the same table),
            // so training and serving see the same features.
            if let Some(pl) = placed {
                let n = pl.position as usize;
                if self.opts.prefix_packets.contains(&n) {
                    if let Some(rec) = table.snapshot(&pl) {
                        prefixes.entry(pl.flow_id).or_default().push((n, rec));
                    }
                }
            }
            for r in done.drain(..) {
                let pre = prefixes.remove(&r.id).unwrap_or_default();
                self.add_record(&name, &r, pre, &mut st);
            }
        }
        // End of input, or the damage: the flows seen so far end here.
        table.flush(&mut |r| done.push(r));
        for r in done.drain(..) {
            let pre = prefixes.remove(&r.id).unwrap_or_default();
            self.add_record(&name, &r, pre, &mut st);
        }
        (st, stopped)
    }

    fn add_record(
        &mut self,
        name: &str,
        r: &FlowRecord,
        pre: Vec<(usize, FlowRecord)>,
        st: &mut CaptureStats,
    ) {
        st.flows += 1;
        let Some(m) = self.labels.lookup(Some(name), r) else {
            return;
        };
        st.labelled += 1;
        let group = if self.opts.group_by_session {
            m.group.unwrap_or_else(|| name.to_string())
        } else {
            name.to_string()
        };
        self.data
            .push_with_tokens(flow_features(r), evidence_tokens(r), m.class, &group, 0);
        for (k, p) in pre {
            // Only flows that continue beyond the prefix: the whole flow is already a row otherwise.
            if (r.packets() as usize) > k {
                self.data.push_with_tokens(
                    flow_features(&p),
                    evidence_tokens(&p),
                    m.class,
                    &group,
                    k as u32,
                );
            }
        }
    }

    /// The dataset and the labelling counts.
    pub fn finish(mut self) -> (Dataset, LabelStats) {
        self.data.class_names = self.labels.class_names().to_vec();
        (self.data, self.labels.stats())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Dataset {
        let mut d = Dataset {
            class_names: vec!["a".into(), "b".into(), "c".into()],
            ..Default::default()
        };
        for g in 0..12 {
            for r in 0..(3 + g % 4) {
                d.push(vec![g as f32, r as f32], g % 3, &format!("g{g}"), 0);
            }
        }
        d
    }

    #[test]
    fn group_split_never_leaks() {
        let d = toy();
        for seed in 0..20 {
            let s = d.split_by_group(0.25, seed);
            assert_eq!(s.train.len() + s.test.len(), d.len());
            let tr: std::collections::HashSet<&String> =
                s.train.iter().map(|&i| &d.groups[i]).collect();
            assert!(s.test.iter().all(|&i| !tr.contains(&d.groups[i])));
            // Every class is on both sides (stratified by group class).
            for c in 0..3 {
                assert!(s.test.iter().any(|&i| d.y[i] == c));
                assert!(s.train.iter().any(|&i| d.y[i] == c));
            }
            assert_eq!(s, d.split_by_group(0.25, seed), "deterministic");
        }
    }

    #[test]
    fn kfold_covers_each_group_once() {
        let d = toy();
        let folds = d.kfold_by_group(4, 9);
        assert_eq!(folds.len(), 4);
        let mut seen = vec![0; d.len()];
        for f in &folds {
            let tr: std::collections::HashSet<&String> =
                f.train.iter().map(|&i| &d.groups[i]).collect();
            assert!(f.test.iter().all(|&i| !tr.contains(&d.groups[i])));
            for &i in &f.test {
                seen[i] += 1;
            }
        }
        assert!(seen.iter().all(|&s| s == 1));
    }
}
