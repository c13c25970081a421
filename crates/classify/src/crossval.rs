//! Grouped cross-validation whose figures carry their uncertainty.
//!
//! Every group (capture file or session) is held out once per seed; the
//! class probabilities of the held-out whole flows are kept
//! ([`HeldOut`]), so the figures, their intervals, the model choice and
//! the calibration all come from the same predictions of models that never
//! saw the capture. [`Figures`] pools them over folds and seeds and adds a
//! bootstrap interval over groups (captures are the unit that varies: a
//! flow-level bootstrap would pretend the flows of one capture are
//! independent) and the spread over seeds.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::dataset::Dataset;
use crate::metrics::Evaluation;
use crate::models::{argmax, class_weights, Classifier, Model, ModelKind};
use crate::rng::Rng;
use crate::Result;

/// How training rows are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weighting {
    /// Every row weighs 1: the classes weigh what the training mix gives
    /// them (right when the traffic to classify has the same mix).
    None,
    /// Each class weighs the same in total ([`class_weights`]).
    #[default]
    Class,
    /// As `Class`, and within a class each group weighs about the same
    /// (rows of a group of n rows weigh 1/√n before renormalising), so one
    /// capture with hundreds of flows of one service does not stand for
    /// its whole class.
    ClassAndGroup,
}

/// Row weights of the training rows `idx` of `ds`.
pub fn row_weights(ds: &Dataset, idx: &[usize], weighting: Weighting) -> Vec<f32> {
    let k = ds.class_names.len();
    let y: Vec<usize> = idx.iter().map(|&i| ds.y[i]).collect();
    if weighting == Weighting::None {
        return vec![1.0; y.len()];
    }
    let mut w = class_weights(&y, k);
    if weighting == Weighting::ClassAndGroup {
        let mut size: std::collections::HashMap<&str, f32> = Default::default();
        for &i in idx {
            *size.entry(ds.groups[i].as_str()).or_default() += 1.0;
        }
        // Per class: total before and after, to keep each class's total.
        let mut totals = vec![(0f64, 0f64); k];
        for (j, &i) in idx.iter().enumerate() {
            totals[y[j]].0 += w[j] as f64;
            w[j] /= size[ds.groups[i].as_str()].sqrt();
            totals[y[j]].1 += w[j] as f64;
        }
        for (j, wj) in w.iter_mut().enumerate() {
            let (a, b) = totals[y[j]];
            *wj *= (a / b.max(1e-12)) as f32;
        }
    }
    w
}

/// What to cross-validate.
#[derive(Debug, Clone)]
pub struct CvOptions {
    pub folds: usize,
    /// One full k-fold per seed (the folds and the learners' draws both
    /// depend on it).
    pub seeds: Vec<u64>,
    /// Learned token evidence ([`Dataset::training_rows`]).
    pub evidence: bool,
    /// Catalogue weight applied to the held-out probabilities, as the
    /// model file will ([`crate::model_file::catalogue_adjust`]).
    pub catalogue_weight: f32,
    /// Train on the prefix rows of the training flows too (as `train`
    /// writes its model for streaming); held-out figures are always on
    /// whole flows.
    pub train_prefix: bool,
    pub weighting: Weighting,
}

impl Default for CvOptions {
    fn default() -> Self {
        CvOptions {
            folds: 5,
            seeds: vec![1],
            evidence: true,
            catalogue_weight: crate::model_file::CATALOGUE_WEIGHT,
            train_prefix: true,
            weighting: Weighting::Class,
        }
    }
}

/// One learner's held-out predictions over one seed's k folds.
#[derive(Debug, Clone)]
pub struct HeldOut {
    pub kind: ModelKind,
    pub seed: u64,
    /// Dataset rows (whole flows), each held out exactly once.
    pub rows: Vec<usize>,
    /// Their class probabilities (catalogue applied, no temperature).
    pub proba: Vec<Vec<f32>>,
    /// Fitting seconds summed over the folds, and the number of fits.
    pub train_s: f64,
    pub fits: usize,
    /// Prediction seconds and predictions (one thread).
    pub predict_s: f64,
    pub predictions: u64,
}

/// Runs `opts.folds`-fold cross-validation grouped by `ds.groups` for each
/// seed and learner. `progress` hears one line per fold.
pub fn cross_validate(
    ds: &Dataset,
    kinds: &[ModelKind],
    opts: &CvOptions,
    mut progress: impl FnMut(&str),
) -> Result<Vec<HeldOut>> {
    let k = ds.class_names.len();
    let mut out: Vec<HeldOut> = Vec::new();
    for &seed in &opts.seeds {
        let splits = ds.kfold_by_group(opts.folds, seed);
        let first = out.len();
        for &kind in kinds {
            out.push(HeldOut {
                kind,
                seed,
                rows: vec![],
                proba: vec![],
                train_s: 0.0,
                fits: 0,
                predict_s: 0.0,
                predictions: 0,
            });
        }
        for (fi, split) in splits.iter().enumerate() {
            let train: Vec<usize> = split
                .train
                .iter()
                .copied()
                .filter(|&i| opts.train_prefix || ds.prefix[i] == 0)
                .collect();
            let test: Vec<usize> = split
                .test
                .iter()
                .copied()
                .filter(|&i| ds.prefix[i] == 0)
                .collect();
            if test.is_empty() || train.is_empty() {
                continue;
            }
            let (xtr, ytr, xte) = if opts.evidence {
                let (xtr, ytr, ev) = ds.training_rows(&train);
                let (xte, _) = ds.rows_with_evidence(&test, &ev);
                (xtr, ytr, xte)
            } else {
                let (xtr, ytr) = ds.subset(&train);
                let (xte, _) = ds.subset(&test);
                (xtr, ytr, xte)
            };
            let w = row_weights(ds, &train, opts.weighting);
            for (ki, &kind) in kinds.iter().enumerate() {
                let h = &mut out[first + ki];
                let mut m = Model::new(kind, seed);
                let t = Instant::now();
                m.fit(&xtr, &ytr, k, Some(&w))?;
                h.train_s += t.elapsed().as_secs_f64();
                h.fits += 1;
                let t = Instant::now();
                for (x, &i) in xte.iter().zip(&test) {
                    let mut p = m.predict_proba(x);
                    if opts.evidence {
                        crate::model_file::catalogue_adjust(&mut p, x, opts.catalogue_weight);
                    }
                    h.rows.push(i);
                    h.proba.push(p);
                }
                h.predict_s += t.elapsed().as_secs_f64();
                h.predictions += xte.len() as u64;
                progress(&format!(
                    "seed {seed} fold {}/{}: {} trained on {} rows, {} held-out flows",
                    fi + 1,
                    splits.len(),
                    kind.name(),
                    xtr.len(),
                    test.len()
                ));
            }
        }
    }
    Ok(out)
}

/// An interval (2.5 and 97.5 percentiles).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{:.3}, {:.3}]", self.lo, self.hi)
    }
}

/// Held-out figures of one learner over some of the groups, pooled over
/// its seeds.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Pooled confusion over folds and seeds (argmax answers).
    pub eval: Evaluation,
    /// 95 % bootstrap intervals over groups (resampled with replacement).
    pub accuracy_ci: Interval,
    pub macro_f1_ci: Interval,
    pub class_f1_ci: Vec<Interval>,
    /// Macro-F1 of each seed's k-fold (spread over seeds).
    pub seed_macro_f1: Vec<f64>,
    pub groups: usize,
}

impl Figures {
    /// Mean and (population) standard deviation of the per-seed macro-F1.
    pub fn seed_spread(&self) -> (f64, f64) {
        let n = self.seed_macro_f1.len().max(1) as f64;
        let m = self.seed_macro_f1.iter().sum::<f64>() / n;
        let v = self
            .seed_macro_f1
            .iter()
            .map(|x| (x - m).powi(2))
            .sum::<f64>()
            / n;
        (m, v.sqrt())
    }
}

/// Figures of `held` (one learner, any number of seeds) over the groups
/// `keep` accepts, with `reps` bootstrap resamples of the groups. None
/// when no held-out flow is kept.
pub fn figures(
    ds: &Dataset,
    held: &[&HeldOut],
    keep: &dyn Fn(&str) -> bool,
    reps: usize,
    seed: u64,
) -> Option<Figures> {
    let k = ds.class_names.len();
    // Per group: confusion summed over seeds.
    let mut per_group: BTreeMap<&str, Vec<Vec<u64>>> = BTreeMap::new();
    let mut seed_f1 = vec![];
    for h in held {
        let mut cm = vec![vec![0u64; k + 1]; k];
        for (&i, p) in h.rows.iter().zip(&h.proba) {
            let g = ds.groups[i].as_str();
            if !keep(g) {
                continue;
            }
            let (t, a) = (ds.y[i], argmax(p));
            cm[t][a] += 1;
            per_group
                .entry(g)
                .or_insert_with(|| vec![vec![0u64; k + 1]; k])[t][a] += 1;
        }
        if cm.iter().flatten().sum::<u64>() > 0 {
            seed_f1.push(Evaluation::from_confusion(&ds.class_names, cm).macro_f1);
        }
    }
    if per_group.is_empty() {
        return None;
    }
    let groups: Vec<&Vec<Vec<u64>>> = per_group.values().collect();
    let sum = |pick: &mut dyn FnMut() -> usize| {
        let mut cm = vec![vec![0u64; k + 1]; k];
        for _ in 0..groups.len() {
            let g = groups[pick()];
            for (r, gr) in cm.iter_mut().zip(g) {
                for (v, gv) in r.iter_mut().zip(gr) {
                    *v += gv;
                }
            }
        }
        Evaluation::from_confusion(&ds.class_names, cm)
    };
    let mut i = 0;
    let eval = sum(&mut || {
        i += 1;
        i - 1
    });
    let mut rng = Rng::new(seed ^ 0x5eed_b007);
    let (mut accs, mut f1s) = (vec![], vec![]);
    let mut class_f1: Vec<Vec<f64>> = vec![vec![]; k];
    for _ in 0..reps {
        let e = sum(&mut || rng.below(groups.len()));
        accs.push(e.accuracy);
        f1s.push(e.macro_f1);
        for (c, s) in e.per_class.iter().enumerate() {
            // A resample without the class says nothing about its F1.
            if s.support > 0 {
                class_f1[c].push(s.f1);
            }
        }
    }
    Some(Figures {
        eval,
        accuracy_ci: percentile_interval(&mut accs),
        macro_f1_ci: percentile_interval(&mut f1s),
        class_f1_ci: class_f1
            .iter_mut()
            .map(|v| percentile_interval(v))
            .collect(),
        seed_macro_f1: seed_f1,
        groups: groups.len(),
    })
}

fn percentile_interval(v: &mut [f64]) -> Interval {
    if v.is_empty() {
        return Interval::default();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
    Interval {
        lo: at(0.025),
        hi: at(0.975),
    }
}

/// Held-out probabilities and truths of `held` (pooled over seeds): the
/// input of calibration and coverage figures.
pub fn pooled_probabilities(ds: &Dataset, held: &[&HeldOut]) -> (Vec<Vec<f32>>, Vec<usize>) {
    let mut p = vec![];
    let mut y = vec![];
    for h in held {
        for (&i, q) in h.rows.iter().zip(&h.proba) {
            p.push(q.clone());
            y.push(ds.y[i]);
        }
    }
    (p, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups of two well-separated classes, plus `noisy` groups whose
    /// flows sit between them.
    fn dataset(groups: usize, per_group: usize, seed: u64) -> Dataset {
        let mut r = Rng::new(seed);
        let mut ds = Dataset {
            class_names: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        for g in 0..groups {
            let y = g % 2;
            for _ in 0..per_group {
                let centre = if y == 0 { -1.0 } else { 1.0 };
                let x = vec![
                    (centre + 0.8 * r.normal()) as f32,
                    (0.5 * r.normal()) as f32,
                ];
                ds.push(x, y, &format!("g{g}.pcap"), 0);
            }
        }
        ds
    }

    #[test]
    fn every_whole_flow_is_held_out_once_per_seed_and_never_trained_on() {
        let mut ds = dataset(10, 20, 3);
        // Prefix rows are never scored.
        ds.push(vec![0.0, 0.0], 0, "g0.pcap", 8);
        let opts = CvOptions {
            folds: 5,
            seeds: vec![1, 2],
            evidence: false,
            ..Default::default()
        };
        let held = cross_validate(&ds, &[ModelKind::Forest], &opts, |_| {}).unwrap();
        assert_eq!(held.len(), 2);
        for h in &held {
            let mut rows = h.rows.clone();
            rows.sort();
            assert_eq!(rows, (0..200).collect::<Vec<_>>());
            assert_eq!(h.fits, 5);
        }
        let f = figures(&ds, &[&held[0], &held[1]], &|_| true, 200, 1).unwrap();
        assert_eq!(f.eval.n, 400);
        assert_eq!(f.groups, 10);
        assert_eq!(f.seed_macro_f1.len(), 2);
        // Separable enough: the pooled figure is high and inside its interval.
        assert!(f.eval.accuracy > 0.8, "{}", f.eval.accuracy);
        assert!(f.macro_f1_ci.lo <= f.eval.macro_f1 && f.eval.macro_f1 <= f.macro_f1_ci.hi);
        // Only some groups.
        let g = figures(&ds, &[&held[0]], &|g| g == "g1.pcap", 50, 1).unwrap();
        assert_eq!((g.eval.n, g.groups), (20, 1));
        assert!(figures(&ds, &[&held[0]], &|_| false, 50, 1).is_none());
    }

    #[test]
    fn the_bootstrap_interval_is_over_groups() {
        // One class per group and a learner that gets some groups wholly
        // wrong: flows within a group are not independent, so the interval
        // must be wide, far wider than a flow-level one would be.
        let ds = dataset(8, 50, 5);
        let mut h = HeldOut {
            kind: ModelKind::Forest,
            seed: 1,
            rows: (0..ds.len()).collect(),
            proba: vec![],
            train_s: 0.0,
            fits: 1,
            predict_s: 0.0,
            predictions: 0,
        };
        for i in 0..ds.len() {
            let g: usize = ds.groups[i][1..ds.groups[i].len() - 5].parse().unwrap();
            let right = g < 6; // groups 6 and 7 entirely wrong
            let y = ds.y[i];
            let a = if right { y } else { 1 - y };
            let mut p = vec![0.0; 2];
            p[a] = 1.0;
            h.proba.push(p);
        }
        let f = figures(&ds, &[&h], &|_| true, 1000, 7).unwrap();
        assert!((f.eval.accuracy - 0.75).abs() < 1e-9);
        assert!(
            f.accuracy_ci.lo < 0.6 && f.accuracy_ci.hi > 0.9,
            "{}",
            f.accuracy_ci
        );
    }

    #[test]
    fn group_weighting_evens_out_captures_within_a_class() {
        let mut ds = Dataset {
            class_names: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        for _ in 0..100 {
            ds.push(vec![0.0], 0, "big.pcap", 0);
        }
        for _ in 0..4 {
            ds.push(vec![0.0], 0, "small.pcap", 0);
        }
        for _ in 0..10 {
            ds.push(vec![0.0], 1, "b.pcap", 0);
        }
        let idx: Vec<usize> = (0..ds.len()).collect();
        let plain = row_weights(&ds, &idx, Weighting::Class);
        let grouped = row_weights(&ds, &idx, Weighting::ClassAndGroup);
        let total = |w: &[f32], r: std::ops::Range<usize>| w[r].iter().sum::<f32>();
        // Class totals unchanged.
        assert!((total(&plain, 0..104) - total(&grouped, 0..104)).abs() < 1e-3);
        assert!((total(&plain, 104..114) - total(&grouped, 104..114)).abs() < 1e-3);
        // big.pcap : small.pcap goes from 100:4 to 10:2 (√n each).
        let ratio = total(&grouped, 0..100) / total(&grouped, 100..104);
        assert!((ratio - 5.0).abs() < 1e-3, "{ratio}");
    }
}
