//! Learners behind one [`Classifier`] trait: random forest, multiclass
//! gradient-boosted trees (softmax, one regression tree per class and
//! round) and a small MLP. All are written here, deterministic for a seed.

use serde::{Deserialize, Serialize};

use crate::flat::TreeEnsemble;
use crate::rng::Rng;
use crate::tree::{grow, Binned, Target, TreeParams};
use crate::{ClassifyError, Result};

/// A multiclass probabilistic classifier.
pub trait Classifier {
    /// Fits on rows `x` with classes `y` in `0..n_classes`; `weights` (one
    /// per row) express class weights for imbalance.
    fn fit(
        &mut self,
        x: &[Vec<f32>],
        y: &[usize],
        n_classes: usize,
        weights: Option<&[f32]>,
    ) -> Result<()>;
    /// Class probabilities of one row (sum 1).
    fn predict_proba(&self, x: &[f32]) -> Vec<f32>;
    /// Class probabilities of one row into `out` (one per class), without
    /// allocating where the model allows it.
    fn predict_proba_into(&self, x: &[f32], out: &mut [f32]) {
        out.copy_from_slice(&self.predict_proba(x));
    }
    /// Most probable class.
    fn predict(&self, x: &[f32]) -> usize {
        argmax(&self.predict_proba(x))
    }
    /// Most probable class of many rows (the forest walks tree by tree:
    /// faster than row by row).
    fn predict_batch(&self, x: &[Vec<f32>]) -> Vec<usize> {
        x.iter().map(|r| self.predict(r)).collect()
    }
}

pub fn argmax(p: &[f32]) -> usize {
    let mut b = 0;
    for (i, &v) in p.iter().enumerate() {
        if v > p[b] {
            b = i;
        }
    }
    b
}

/// "Balanced" class weights per row: n / (k · count(class)).
pub fn class_weights(y: &[usize], n_classes: usize) -> Vec<f32> {
    let mut c = vec![0usize; n_classes];
    for &v in y {
        c[v] += 1;
    }
    let present = c.iter().filter(|&&x| x > 0).count().max(1);
    y.iter()
        .map(|&v| y.len() as f32 / (present as f32 * c[v] as f32))
        .collect()
}

fn check(x: &[Vec<f32>], y: &[usize], k: usize, w: Option<&[f32]>) -> Result<()> {
    if x.is_empty() || x.len() != y.len() || w.is_some_and(|w| w.len() != y.len()) {
        return Err(ClassifyError::Training(format!(
            "need equal non-zero rows, labels and weights (rows {}, labels {})",
            x.len(),
            y.len()
        )));
    }
    if let Some(&bad) = y.iter().find(|&&c| c >= k) {
        return Err(ClassifyError::Training(format!(
            "label {bad} >= {k} classes"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RfParams {
    pub n_trees: usize,
    pub max_depth: usize,
    pub min_leaf: usize,
    /// Features per split; 0 = sqrt(d).
    pub mtry: usize,
    pub seed: u64,
    /// Threads growing trees, 0 = one per available core; the forest is
    /// the same for any number (not stored in model files).
    #[serde(skip)]
    pub threads: usize,
}

impl Default for RfParams {
    fn default() -> Self {
        RfParams {
            n_trees: 50,
            max_depth: 14,
            min_leaf: 1,
            mtry: 0,
            seed: 42,
            threads: 0,
        }
    }
}

/// Random forest: bootstrap samples, random feature subsets, Gini splits.
/// The trees are stored flattened ([`TreeEnsemble`]); leaves hold class
/// frequencies, the prediction is their mean.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RandomForest {
    pub params: RfParams,
    pub n_classes: usize,
    trees: TreeEnsemble,
}

impl RandomForest {
    pub fn new(params: RfParams) -> Self {
        RandomForest {
            params,
            n_classes: 0,
            trees: TreeEnsemble::empty(1),
        }
    }

    /// The flattened trees.
    pub fn ensemble(&self) -> &TreeEnsemble {
        &self.trees
    }

    /// Summed leaf values of rows (in tree order), `k` per row, into `acc`.
    fn sums(&self, rows: &[Vec<f32>], k: usize, acc: &mut [f32]) {
        if self.trees.width() == k {
            self.trees.sum_rows(rows, acc);
            return;
        }
        // Leaves of another width than asked: as many values as fit.
        acc.iter_mut().for_each(|v| *v = 0.0);
        self.trees.for_each_leaf_rows(rows, |_, r, v| {
            for (s, x) in acc[r * k..(r + 1) * k].iter_mut().zip(v) {
                *s += x;
            }
        });
    }

    /// Class probabilities of many rows, `n_classes` per row, in `out`.
    pub fn predict_proba_batch(&self, x: &[Vec<f32>], out: &mut Vec<f32>) {
        let k = self.n_classes;
        out.clear();
        out.resize(x.len() * k, 0.0);
        self.sums(x, k, out);
        for p in out.chunks_mut(k.max(1)) {
            normalize(p);
        }
    }
}

/// Rows per batch chunk (bounds the memory of batch prediction).
const BATCH_ROWS: usize = 4096;

fn normalize(p: &mut [f32]) {
    let s: f32 = p.iter().sum();
    if s > 0.0 {
        p.iter_mut().for_each(|v| *v /= s);
    }
}

impl Classifier for RandomForest {
    fn fit(
        &mut self,
        x: &[Vec<f32>],
        y: &[usize],
        k: usize,
        weights: Option<&[f32]>,
    ) -> Result<()> {
        check(x, y, k, weights)?;
        let data = Binned::new(x);
        let ones = vec![1f32; y.len()];
        let w = weights.unwrap_or(&ones);
        let mtry = if self.params.mtry == 0 {
            ((data.d as f64).sqrt().ceil() as usize).max(1)
        } else {
            self.params.mtry
        };
        let tp = TreeParams {
            max_depth: self.params.max_depth,
            min_leaf: self.params.min_leaf.max(1),
            mtry,
        };
        let mut rng = Rng::new(self.params.seed);
        self.n_classes = k;
        let n = y.len();
        // One generator per tree, drawn in order: the trees do not depend on
        // how many threads grow them.
        let forks: Vec<Rng> = (0..self.params.n_trees).map(|_| rng.fork()).collect();
        let grow_one = |mut r: Rng| {
            let mut idx: Vec<u32> = (0..n).map(|_| r.below(n) as u32).collect();
            let target = Target::Class { y, w, k };
            grow(&data, &target, &mut idx, &tp, &mut r)
        };
        let trees = par_map(forks, self.params.threads, grow_one);
        self.trees = TreeEnsemble::from_trees(&trees);
        Ok(())
    }

    fn predict_proba(&self, x: &[f32]) -> Vec<f32> {
        let mut p = vec![0f32; self.n_classes];
        self.predict_proba_into(x, &mut p);
        p
    }

    fn predict_proba_into(&self, x: &[f32], p: &mut [f32]) {
        if p.len() == self.trees.width() {
            self.trees.sum_row(x, p);
        } else {
            p.iter_mut().for_each(|v| *v = 0.0);
            self.trees.for_each_leaf(x, |_, v| {
                for (a, b) in p.iter_mut().zip(v) {
                    *a += b;
                }
            });
        }
        normalize(p);
    }

    fn predict_batch(&self, x: &[Vec<f32>]) -> Vec<usize> {
        let k = self.n_classes.max(1);
        let mut acc = vec![0f32; x.len().min(BATCH_ROWS) * k];
        let mut out = Vec::with_capacity(x.len());
        for chunk in x.chunks(BATCH_ROWS) {
            let acc = &mut acc[..chunk.len() * k];
            self.sums(chunk, k, acc);
            // The argmax of the sums is that of the probabilities.
            out.extend(acc.chunks(k).map(argmax));
        }
        out
    }
}

// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GbtParams {
    pub rounds: usize,
    pub learning_rate: f32,
    pub max_depth: usize,
    pub min_leaf: usize,
    pub lambda: f32,
    /// Fraction of rows per round.
    pub subsample: f32,
    /// Fraction of features per split.
    pub colsample: f32,
    pub seed: u64,
    /// Threads growing a round's trees (one per class), 0 = one per
    /// available core; the model is the same for any number (not stored in
    /// model files).
    #[serde(skip)]
    pub threads: usize,
}

impl Default for GbtParams {
    fn default() -> Self {
        GbtParams {
            rounds: 120,
            learning_rate: 0.15,
            max_depth: 5,
            min_leaf: 2,
            lambda: 1.0,
            subsample: 0.8,
            colsample: 0.3,
            seed: 42,
            threads: 0,
        }
    }
}

/// Multiclass gradient boosting with the softmax loss: each round fits one
/// regression tree per class on the gradient / hessian of the cross-entropy
/// (Newton leaves, L2 regularised).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GradientBoosting {
    pub params: GbtParams,
    pub n_classes: usize,
    base: Vec<f32>,
    /// rounds × classes, row-major, flattened.
    trees: TreeEnsemble,
}

impl GradientBoosting {
    pub fn new(params: GbtParams) -> Self {
        GradientBoosting {
            params,
            n_classes: 0,
            base: vec![],
            trees: TreeEnsemble::empty(1),
        }
    }

    /// The flattened trees (tree `i` adds `learning_rate` × its leaf value
    /// to class `i % n_classes`).
    pub fn ensemble(&self) -> &TreeEnsemble {
        &self.trees
    }

    /// Initial scores (log class priors), before the trees.
    pub fn base(&self) -> &[f32] {
        &self.base
    }

    /// Raw scores (before the softmax) into `f`.
    fn raw_into(&self, x: &[f32], f: &mut [f32]) {
        let k = self.n_classes;
        f.copy_from_slice(&self.base);
        let lr = self.params.learning_rate;
        // Tree `i` adds to class `i % k`; trees come in order.
        let mut c = 0;
        self.trees.for_each_leaf(x, |_, v| {
            f[c] += lr * v[0];
            c = if c + 1 == k { 0 } else { c + 1 };
        });
    }
}

fn softmax(v: &mut [f32]) {
    let m = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0;
    for x in v.iter_mut() {
        *x = (*x - m).exp();
        s += *x;
    }
    v.iter_mut().for_each(|x| *x /= s);
}

impl Classifier for GradientBoosting {
    fn fit(
        &mut self,
        x: &[Vec<f32>],
        y: &[usize],
        k: usize,
        weights: Option<&[f32]>,
    ) -> Result<()> {
        check(x, y, k, weights)?;
        let n = y.len();
        let data = Binned::new(x);
        let ones = vec![1f32; n];
        let w = weights.unwrap_or(&ones);
        let p = self.params.clone();
        let mut rng = Rng::new(p.seed);
        // Base score: log of weighted class priors.
        let mut prior = vec![1e-3f32; k];
        for (&c, &wi) in y.iter().zip(w) {
            prior[c] += wi;
        }
        let ps: f32 = prior.iter().sum();
        self.base = prior.iter().map(|v| (v / ps).ln()).collect();
        self.n_classes = k;
        let mut trees = Vec::with_capacity(p.rounds * k);
        let mut f: Vec<f32> = (0..n).flat_map(|_| self.base.clone()).collect();
        let mtry = ((data.d as f32 * p.colsample).ceil() as usize).clamp(1, data.d);
        let tp = TreeParams {
            max_depth: p.max_depth,
            min_leaf: p.min_leaf.max(1),
            mtry,
        };
        let mut prob = vec![0f32; n * k];
        for _ in 0..p.rounds {
            for i in 0..n {
                let row = &mut prob[i * k..(i + 1) * k];
                row.copy_from_slice(&f[i * k..(i + 1) * k]);
                softmax(row);
            }
            let mut idx: Vec<u32> = (0..n as u32)
                .filter(|_| rng.unit() < p.subsample as f64)
                .collect();
            if idx.is_empty() {
                idx = (0..n as u32).collect();
            }
            // A round's class trees depend only on the probabilities before
            // it: they grow on parallel threads, each with its own
            // generator drawn in order, so the model does not depend on the
            // thread count.
            let forks: Vec<(usize, Rng)> = (0..k).map(|c| (c, rng.fork())).collect();
            let grow_class = |(c, mut r): (usize, Rng)| {
                let (g, h): (Vec<f32>, Vec<f32>) = (0..n)
                    .map(|i| {
                        let pi = prob[i * k + c];
                        let yi = (y[i] == c) as u8 as f32;
                        (w[i] * (pi - yi), w[i] * (pi * (1.0 - pi)).max(1e-6))
                    })
                    .unzip();
                let target = Target::Grad {
                    g: &g,
                    h: &h,
                    lambda: p.lambda,
                };
                let t = grow(&data, &target, &mut idx.clone(), &tp, &mut r);
                let step = t.first_values_binned(&data);
                (t, step)
            };
            for (c, (t, step)) in par_map(forks, p.threads, grow_class)
                .into_iter()
                .enumerate()
            {
                for (i, v) in step.into_iter().enumerate() {
                    f[i * k + c] += p.learning_rate * v;
                }
                trees.push(t);
            }
        }
        self.trees = TreeEnsemble::from_trees(&trees);
        Ok(())
    }

    fn predict_proba(&self, x: &[f32]) -> Vec<f32> {
        let mut v = vec![0f32; self.n_classes];
        self.predict_proba_into(x, &mut v);
        v
    }

    fn predict_proba_into(&self, x: &[f32], out: &mut [f32]) {
        self.raw_into(x, out);
        softmax(out);
    }

    fn predict_batch(&self, x: &[Vec<f32>]) -> Vec<usize> {
        let k = self.n_classes.max(1);
        let lr = self.params.learning_rate;
        // Tree `t` adds to class `t % k`.
        let class: Vec<usize> = (0..self.trees.n_trees()).map(|t| t % k).collect();
        let mut acc = vec![0f32; x.len().min(BATCH_ROWS) * k];
        let mut out = Vec::with_capacity(x.len());
        for chunk in x.chunks(BATCH_ROWS) {
            let acc = &mut acc[..chunk.len() * k];
            for row in acc.chunks_mut(k) {
                row.copy_from_slice(&self.base);
            }
            self.trees
                .for_each_leaf_rows(chunk, |t, r, v| acc[r * k + class[t]] += lr * v[0]);
            for row in acc.chunks_mut(k) {
                softmax(row);
                out.push(argmax(row));
            }
        }
        out
    }
}

/// `items.map(f)` in order, on `threads` threads (0: one per core), item
/// `i` on thread `i % threads`: results never depend on the thread count.
fn par_map<T: Send, R: Send>(items: Vec<T>, threads: usize, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |t| t.get());
    let threads = match threads {
        0 => cores,
        t => t,
    }
    .min(items.len());
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let n = items.len();
    let mut per_thread: Vec<Vec<(usize, T)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        per_thread[i % threads].push((i, item));
    }
    let mut slots: Vec<Option<R>> = (0..n).map(|_| None).collect();
    std::thread::scope(|sc| {
        let f = &f;
        let handles: Vec<_> = per_thread
            .into_iter()
            .map(|mine| {
                sc.spawn(move || {
                    mine.into_iter()
                        .map(|(i, item)| (i, f(item)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().expect("worker thread") {
                slots[i] = Some(r);
            }
        }
    });
    slots
        .into_iter()
        .map(|r| r.expect("every item mapped"))
        .collect()
}

// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MlpParams {
    pub hidden: Vec<usize>,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f32,
    pub weight_decay: f32,
    pub seed: u64,
    /// Networks trained from different initialisations and shuffles whose
    /// probabilities are averaged. One net's answer moves by points with
    /// its seed on small training sets; the average does not.
    #[serde(default = "one")]
    pub members: usize,
    /// Inputs pass through sign(v)·ln(1 + |v|) before standardisation.
    /// Byte counts, durations and rates are heavy-tailed: a z-score alone
    /// leaves most rows packed near the mean and a few far out, which the
    /// network fits poorly. Trees are blind to monotone transforms, so only
    /// the MLP has it. Files written before it load without it.
    #[serde(default)]
    pub log_inputs: bool,
    /// Most optimiser steps (mini-batches) per network, 0 = no limit.
    /// `epochs` is the unit for small sets; on a large one a single epoch
    /// is already thousands of steps, and 60 of them would take minutes
    /// without fitting better. Files written before it load without it.
    #[serde(default)]
    pub max_steps: usize,
    /// Label smoothing ε: the network learns (1 − ε) on the true class and
    /// ε / k on every class instead of a hard one-hot, so it stops short of
    /// certainty on its training flows, and prior evidence such as the
    /// catalogue's can still move its answer on flows unlike them.
    #[serde(default)]
    pub label_smoothing: f32,
}

fn one() -> usize {
    1
}

/// Mixed into the seed for the generators of members after the first.
const MEMBER_SEEDS: u64 = 0x6d65_6d62_6572_7321;

impl Default for MlpParams {
    fn default() -> Self {
        MlpParams {
            hidden: vec![64, 32],
            epochs: 60,
            batch: 32,
            learning_rate: 2e-3,
            weight_decay: 1e-4,
            seed: 42,
            members: 5,
            log_inputs: true,
            max_steps: 15_000,
            label_smoothing: 0.1,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Layer {
    n_in: usize,
    n_out: usize,
    /// n_out × n_in, row-major.
    w: Vec<f32>,
    b: Vec<f32>,
}

/// Multilayer perceptron: standardised inputs, ReLU hidden layers, softmax
/// output, class-weighted cross-entropy, Adam, mini-batches; an average of
/// `members` such networks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mlp {
    pub params: MlpParams,
    pub n_classes: usize,
    mean: Vec<f32>,
    scale: Vec<f32>,
    /// The first network (the only one in files written before members).
    layers: Vec<Layer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    more_members: Vec<Vec<Layer>>,
}

/// Dot product in eight independent lanes: a single running sum is one
/// long dependency chain the compiler may not reorder, eight lanes let it
/// use vector registers.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for q in 0..8 {
            lanes[q] += x[q] * y[q];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Activations of every layer of one network for input `x` (the output
/// probabilities last). Where the CPU has AVX the same code runs on 8-wide
/// registers instead of two 4-wide ones (checked once per call, not per
/// dot product); the lanes and the order of every addition are the same,
/// and multiplies are not fused with adds, so the result is bit for bit
/// the same on any x86-64.
fn forward(layers: &[Layer], x: &[f32]) -> Vec<Vec<f32>> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX, checked just above.
        return unsafe { forward_avx(layers, x) };
    }
    forward_lanes(layers, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn forward_avx(layers: &[Layer], x: &[f32]) -> Vec<Vec<f32>> {
    forward_lanes(layers, x)
}

#[inline(always)]
fn forward_lanes(layers: &[Layer], x: &[f32]) -> Vec<Vec<f32>> {
    let mut acts: Vec<Vec<f32>> = Vec::with_capacity(layers.len());
    for (li, l) in layers.iter().enumerate() {
        let a = acts.last().map_or(x, Vec::as_slice);
        let mut o = l.b.clone();
        for (j, oj) in o.iter_mut().enumerate() {
            *oj += dot(&l.w[j * l.n_in..(j + 1) * l.n_in], a);
        }
        if li + 1 < layers.len() {
            o.iter_mut().for_each(|v| *v = v.max(0.0));
        } else {
            softmax(&mut o);
        }
        acts.push(o);
    }
    acts
}

/// Trains one network on standardised rows `xs`; on 8-wide registers
/// where the CPU has AVX, to the same bits (see [`forward`]).
fn train_net(
    p: &MlpParams,
    rng: &mut Rng,
    xs: &[Vec<f32>],
    y: &[usize],
    k: usize,
    w: &[f32],
) -> Vec<Layer> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX, checked just above.
        return unsafe { train_net_avx(p, rng, xs, y, k, w) };
    }
    train_net_lanes(p, rng, xs, y, k, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn train_net_avx(
    p: &MlpParams,
    rng: &mut Rng,
    xs: &[Vec<f32>],
    y: &[usize],
    k: usize,
    w: &[f32],
) -> Vec<Layer> {
    train_net_lanes(p, rng, xs, y, k, w)
}

#[inline(always)]
fn train_net_lanes(
    p: &MlpParams,
    rng: &mut Rng,
    xs: &[Vec<f32>],
    y: &[usize],
    k: usize,
    w: &[f32],
) -> Vec<Layer> {
    let n = xs.len();
    let d = xs[0].len();
    // He initialisation.
    let mut sizes = vec![d];
    sizes.extend(&p.hidden);
    sizes.push(k);
    let mut layers: Vec<Layer> = sizes
        .windows(2)
        .map(|s| {
            let std = (2.0 / s[0] as f64).sqrt();
            Layer {
                n_in: s[0],
                n_out: s[1],
                w: (0..s[0] * s[1])
                    .map(|_| (rng.normal() * std) as f32)
                    .collect(),
                b: vec![0.0; s[1]],
            }
        })
        .collect();
    let wmean = w.iter().sum::<f32>() / n as f32;
    // Adam state.
    let mut mw: Vec<Vec<f32>> = layers.iter().map(|l| vec![0.0; l.w.len()]).collect();
    let mut vw = mw.clone();
    let mut mb: Vec<Vec<f32>> = layers.iter().map(|l| vec![0.0; l.b.len()]).collect();
    let mut vb = mb.clone();
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut step = 0i32;
    let mut order: Vec<usize> = (0..n).collect();
    let batch = p.batch.max(1);
    // Gradient sums of a mini-batch, zeroed before each.
    let mut gw: Vec<Vec<f32>> = layers.iter().map(|l| vec![0.0; l.w.len()]).collect();
    let mut gb: Vec<Vec<f32>> = layers.iter().map(|l| vec![0.0; l.b.len()]).collect();
    let max_steps = if p.max_steps == 0 {
        i32::MAX
    } else {
        p.max_steps.min(i32::MAX as usize) as i32
    };
    for _ in 0..p.epochs {
        if step >= max_steps {
            break;
        }
        rng.shuffle(&mut order);
        for chunk in order.chunks(batch) {
            if step >= max_steps {
                break;
            }
            gw.iter_mut().chain(gb.iter_mut()).for_each(|g| g.fill(0.0));
            for &i in chunk {
                // Already on AVX where the CPU has it (see `train_net`).
                let acts = forward_lanes(&layers, &xs[i]);
                let scale = w[i] / wmean / chunk.len() as f32;
                // Output delta: p - onehot.
                let mut delta: Vec<f32> = acts.last().unwrap().clone();
                // Target: the smoothed one-hot, (1 - ε) on the class and
                // ε / k everywhere.
                let eps_k = p.label_smoothing / k as f32;
                delta.iter_mut().for_each(|v| *v -= eps_k);
                delta[y[i]] -= 1.0 - p.label_smoothing;
                delta.iter_mut().for_each(|v| *v *= scale);
                for li in (0..layers.len()).rev() {
                    let l = &layers[li];
                    // This layer's input.
                    let a = if li == 0 { &xs[i] } else { &acts[li - 1] };
                    for (j, &dj) in delta.iter().enumerate().take(l.n_out) {
                        if dj == 0.0 {
                            continue;
                        }
                        gb[li][j] += dj;
                        let g = &mut gw[li][j * l.n_in..(j + 1) * l.n_in];
                        for (gi, ai) in g.iter_mut().zip(a) {
                            *gi += dj * ai;
                        }
                    }
                    if li > 0 {
                        let mut nd = vec![0f32; l.n_in];
                        for (&dj, row) in delta.iter().zip(l.w.chunks(l.n_in)) {
                            if dj == 0.0 {
                                continue;
                            }
                            for (n, wv) in nd.iter_mut().zip(row) {
                                *n += dj * wv;
                            }
                        }
                        // ReLU derivative.
                        for (q, v) in nd.iter_mut().enumerate() {
                            if a[q] <= 0.0 {
                                *v = 0.0;
                            }
                        }
                        delta = nd;
                    }
                }
            }
            step += 1;
            let lr = p.learning_rate * (1.0 - b2.powi(step)).sqrt() / (1.0 - b1.powi(step));
            // Zipped slices rather than indices: no bounds checks, so the
            // update (a square root and a division per weight) vectorises.
            let adam = |w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], decay: f32| {
                for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let g = g + decay * *w;
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *w -= lr * *m / (v.sqrt() + eps);
                }
            };
            for (li, l) in layers.iter_mut().enumerate() {
                adam(&mut l.w, &gw[li], &mut mw[li], &mut vw[li], p.weight_decay);
                adam(&mut l.b, &gb[li], &mut mb[li], &mut vb[li], 0.0);
            }
        }
    }
    layers
}

impl Mlp {
    pub fn new(params: MlpParams) -> Self {
        Mlp {
            params,
            n_classes: 0,
            mean: vec![],
            scale: vec![],
            layers: vec![],
            more_members: vec![],
        }
    }

    /// The input as the network sees it before standardisation: finite,
    /// and compressed by `log_inputs`.
    fn transformed(&self, v: f32) -> f32 {
        let v = if v.is_finite() { v } else { 0.0 };
        if self.params.log_inputs {
            v.signum() * v.abs().ln_1p()
        } else {
            v
        }
    }

    fn standardize(&self, x: &[f32]) -> Vec<f32> {
        x.iter()
            .zip(self.mean.iter().zip(&self.scale))
            .map(|(&v, (&m, &s))| ((self.transformed(v) - m) * s).clamp(-10.0, 10.0))
            .collect()
    }
}

impl Classifier for Mlp {
    fn fit(
        &mut self,
        x: &[Vec<f32>],
        y: &[usize],
        k: usize,
        weights: Option<&[f32]>,
    ) -> Result<()> {
        check(x, y, k, weights)?;
        let n = x.len();
        let d = x[0].len();
        let p = self.params.clone();
        self.n_classes = k;
        // Standardisation.
        self.mean = vec![0.0; d];
        self.scale = vec![1.0; d];
        for j in 0..d {
            let col = x.iter().map(|r| self.transformed(r[j]) as f64);
            let m = col.clone().sum::<f64>() / n as f64;
            let v = col.map(|c| (c - m) * (c - m)).sum::<f64>() / n as f64;
            self.mean[j] = m as f32;
            self.scale[j] = if v > 1e-12 {
                (1.0 / v.sqrt()) as f32
            } else {
                0.0
            };
        }
        let xs: Vec<Vec<f32>> = x.iter().map(|r| self.standardize(r)).collect();
        let ones = vec![1f32; n];
        let w = weights.unwrap_or(&ones);
        // Member 0 draws from the seed itself, so it is the net a one-member
        // model trains; the others from generators forked off a second one.
        // Each member has its own generator: they train on parallel threads
        // and the result does not depend on how many.
        let mut forks = Rng::new(p.seed ^ MEMBER_SEEDS);
        let rngs: Vec<Rng> = std::iter::once(Rng::new(p.seed))
            .chain((1..p.members.max(1)).map(|_| forks.fork()))
            .collect();
        let mut nets = par_map(rngs, 0, |mut r| train_net(&p, &mut r, &xs, y, k, w)).into_iter();
        self.layers = nets.next().expect("one member at least");
        self.more_members = nets.collect();
        Ok(())
    }

    fn predict_proba(&self, x: &[f32]) -> Vec<f32> {
        let x = self.standardize(x);
        let mut out = forward(&self.layers, &x).pop().unwrap();
        for net in &self.more_members {
            let q = forward(net, &x).pop().unwrap();
            out.iter_mut().zip(q).for_each(|(o, q)| *o += q);
        }
        let n = 1 + self.more_members.len();
        out.iter_mut().for_each(|o| *o /= n as f32);
        out
    }
}

// ---------------------------------------------------------------------------

/// Which learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    Forest,
    Gbt,
    Mlp,
}

impl ModelKind {
    pub const ALL: [ModelKind; 3] = [ModelKind::Forest, ModelKind::Gbt, ModelKind::Mlp];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Forest => "random-forest",
            ModelKind::Gbt => "gbt",
            ModelKind::Mlp => "mlp",
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "rf" | "forest" | "random-forest" | "randomforest" => Ok(ModelKind::Forest),
            "gbt" | "gbdt" | "boosting" | "gradient-boosting" => Ok(ModelKind::Gbt),
            "mlp" | "nn" => Ok(ModelKind::Mlp),
            _ => Err(format!("unknown model {s:?} (rf, gbt, mlp)")),
        }
    }
}

/// Any of the learners (what a model file stores).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Model {
    Forest(RandomForest),
    Gbt(GradientBoosting),
    Mlp(Mlp),
}

impl Model {
    /// An untrained model with default parameters and this seed.
    pub fn new(kind: ModelKind, seed: u64) -> Self {
        match kind {
            ModelKind::Forest => Model::Forest(RandomForest::new(RfParams {
                seed,
                ..Default::default()
            })),
            ModelKind::Gbt => Model::Gbt(GradientBoosting::new(GbtParams {
                seed,
                ..Default::default()
            })),
            ModelKind::Mlp => Model::Mlp(Mlp::new(MlpParams {
                seed,
                ..Default::default()
            })),
        }
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            Model::Forest(_) => ModelKind::Forest,
            Model::Gbt(_) => ModelKind::Gbt,
            Model::Mlp(_) => ModelKind::Mlp,
        }
    }

    /// Classes it answers (the length of its probability rows).
    pub fn n_classes(&self) -> usize {
        match self {
            Model::Forest(m) => m.n_classes,
            Model::Gbt(m) => m.n_classes,
            Model::Mlp(m) => m.n_classes,
        }
    }

    fn inner(&self) -> &dyn Classifier {
        match self {
            Model::Forest(m) => m,
            Model::Gbt(m) => m,
            Model::Mlp(m) => m,
        }
    }
}

impl Classifier for Model {
    fn fit(&mut self, x: &[Vec<f32>], y: &[usize], k: usize, w: Option<&[f32]>) -> Result<()> {
        match self {
            Model::Forest(m) => m.fit(x, y, k, w),
            Model::Gbt(m) => m.fit(x, y, k, w),
            Model::Mlp(m) => m.fit(x, y, k, w),
        }
    }
    fn predict_proba(&self, x: &[f32]) -> Vec<f32> {
        self.inner().predict_proba(x)
    }
    fn predict_proba_into(&self, x: &[f32], out: &mut [f32]) {
        self.inner().predict_proba_into(x, out)
    }
    fn predict_batch(&self, x: &[Vec<f32>]) -> Vec<usize> {
        self.inner().predict_batch(x)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Four Gaussian blobs in 6 dimensions (2 informative, 4 noise), well separated.
    pub fn blobs(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut r = Rng::new(seed);
        let centers = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (10.0, 10.0)];
        let mut x = vec![];
        let mut y = vec![];
        for i in 0..n {
            // Imbalanced: class 3 rare.
            let c = if i % 10 == 0 { 3 } else { i % 3 };
            let (a, b) = centers[c];
            let mut row = vec![(a + r.normal()) as f32, (b + r.normal()) as f32];
            for _ in 0..4 {
                row.push(r.normal() as f32 * 3.0);
            }
            x.push(row);
            y.push(c);
        }
        (x, y)
    }

    fn acc(m: &dyn Classifier, x: &[Vec<f32>], y: &[usize]) -> f64 {
        x.iter().zip(y).filter(|(r, &c)| m.predict(r) == c).count() as f64 / y.len() as f64
    }

    #[test]
    fn every_model_separates_blobs_and_is_deterministic() {
        let (x, y) = blobs(800, 1);
        let (xt, yt) = blobs(400, 2);
        let w = class_weights(&y, 4);
        for kind in ModelKind::ALL {
            let mut m = Model::new(kind, 7);
            if let Model::Forest(f) = &mut m {
                f.params.n_trees = 30;
            }
            if let Model::Gbt(g) = &mut m {
                g.params.rounds = 40;
            }
            if let Model::Mlp(g) = &mut m {
                g.params.epochs = 30;
            }
            let mut m2 = m.clone();
            m.fit(&x, &y, 4, Some(&w)).unwrap();
            let a = acc(&m, &xt, &yt);
            assert!(a >= 0.99, "{kind:?} accuracy {a}");
            m2.fit(&x, &y, 4, Some(&w)).unwrap();
            assert_eq!(m, m2, "{kind:?} is deterministic for a seed");
            let single: Vec<usize> = xt.iter().map(|r| m.predict(r)).collect();
            assert_eq!(m.predict_batch(&xt), single, "{kind:?} batch = single");
            let p = m.predict_proba(&xt[0]);
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn forest_does_not_depend_on_the_number_of_threads() {
        let (x, y) = blobs(500, 3);
        let fit = |threads| {
            let mut f = RandomForest::new(RfParams {
                n_trees: 9,
                threads,
                ..Default::default()
            });
            f.fit(&x, &y, 4, None).unwrap();
            f
        };
        let one = fit(1);
        assert!(one.ensemble().n_trees() == 9 && one.ensemble().n_nodes() > 9);
        for t in [2, 4, 0] {
            assert!(fit(t).ensemble() == one.ensemble(), "{t} threads");
        }
    }

    #[test]
    fn gbt_does_not_depend_on_the_number_of_threads() {
        let (x, y) = blobs(400, 4);
        let fit = |threads| {
            let mut g = GradientBoosting::new(GbtParams {
                rounds: 6,
                threads,
                ..Default::default()
            });
            g.fit(&x, &y, 4, None).unwrap();
            g
        };
        let one = fit(1);
        assert_eq!(one.ensemble().n_trees(), 24);
        for t in [2, 3, 0] {
            let g = fit(t);
            assert!(
                g.ensemble() == one.ensemble() && g.base() == one.base(),
                "{t} threads"
            );
        }
    }

    #[test]
    fn gbt_is_multiclass_on_xor_like_data() {
        // Class depends on an interaction: needs depth > 1 and > 2 classes.
        let mut r = Rng::new(3);
        let mut x = vec![];
        let mut y = vec![];
        for _ in 0..1200 {
            let a = r.unit() as f32;
            let b = r.unit() as f32;
            let c = ((a > 0.5) as usize) * 2 + (b > 0.5) as usize;
            x.push(vec![a, b]);
            y.push(c);
        }
        let mut g = GradientBoosting::new(GbtParams {
            rounds: 30,
            colsample: 1.0,
            ..Default::default()
        });
        g.fit(&x, &y, 4, None).unwrap();
        assert!(acc(&g, &x, &y) >= 0.99);
    }

    /// `m` as a build without the parameter `field` wrote it (the field
    /// removed from its file) loads as `m`: the field's default is the
    /// behaviour of files written before it.
    fn assert_loads_without_param(m: &Mlp, field: &str) {
        let mut old = serde_json::to_value(m).unwrap();
        old["params"].as_object_mut().unwrap().remove(field);
        let loaded: Mlp = serde_json::from_value(old).unwrap();
        assert_eq!(&loaded, m, "without {field}");
    }

    /// A feature spanning six orders of magnitude whose class boundary
    /// lies among the small values: after a plain z-score those values sit
    /// within a hair of each other, after the signed log they spread out.
    /// Files written before the transform load without it.
    #[test]
    fn mlp_log_inputs_separate_a_heavy_tailed_feature() {
        let rows = |n: usize, seed: u64| {
            let mut r = Rng::new(seed);
            let mut x = vec![];
            let mut y = vec![];
            for _ in 0..n {
                let z = r.normal();
                x.push(vec![(3.0 * z).exp() as f32, r.normal() as f32]);
                y.push((z > 0.0) as usize);
            }
            (x, y)
        };
        let (x, y) = rows(600, 5);
        let (xt, yt) = rows(400, 6);
        let fit = |log_inputs| {
            let mut m = Mlp::new(MlpParams {
                epochs: 10,
                members: 1,
                log_inputs,
                ..Default::default()
            });
            m.fit(&x, &y, 2, None).unwrap();
            m
        };
        let (logged, plain) = (fit(true), fit(false));
        let (a_log, a_plain) = (acc(&logged, &xt, &yt), acc(&plain, &xt, &yt));
        assert!(a_log >= 0.97, "with the log: {a_log}");
        assert!(a_plain < a_log - 0.05, "plain {a_plain}, log {a_log}");

        assert_loads_without_param(&plain, "log_inputs");
    }

    /// A file written before MLPs had members (no `members`, no
    /// `more_members`) loads as the one network it holds, and that network
    /// is the first member of an averaged MLP with the same seed.
    #[test]
    fn mlp_members_extend_the_single_network() {
        let (x, y) = blobs(300, 3);
        let single_params = MlpParams {
            epochs: 8,
            members: 1,
            ..Default::default()
        };
        let mut single = Mlp::new(single_params.clone());
        single.fit(&x, &y, 4, None).unwrap();
        assert!(serde_json::to_value(&single)
            .unwrap()
            .get("more_members")
            .is_none());
        assert_loads_without_param(&single, "members");

        let mut avg = Mlp::new(MlpParams {
            members: 3,
            ..single_params
        });
        avg.fit(&x, &y, 4, None).unwrap();
        assert_eq!(avg.layers, single.layers);
        assert_eq!(avg.more_members.len(), 2);
        assert_ne!(avg.more_members[0], avg.layers, "members differ");
        // The average lies between its members' probabilities.
        let p = avg.predict_proba(&x[0]);
        let z = avg.standardize(&x[0]);
        let nets = std::iter::once(&avg.layers).chain(&avg.more_members);
        let each: Vec<Vec<f32>> = nets.map(|n| forward(n, &z).pop().unwrap()).collect();
        for c in 0..4 {
            let lo = each.iter().map(|q| q[c]).fold(f32::INFINITY, f32::min);
            let hi = each.iter().map(|q| q[c]).fold(f32::NEG_INFINITY, f32::max);
            assert!(p[c] >= lo - 1e-6 && p[c] <= hi + 1e-6, "{p:?} {each:?}");
        }
    }

    #[test]
    fn par_map_keeps_order_for_any_thread_count() {
        let want: Vec<u64> = (0..23u64).map(|i| i * i + 1).collect();
        for threads in [0, 1, 2, 3, 7, 40] {
            let got = par_map((0..23u64).collect(), threads, |i| i * i + 1);
            assert_eq!(got, want, "{threads} threads");
        }
        assert!(par_map(Vec::<u8>::new(), 4, |i| i).is_empty());
    }

    /// The AVX build of the forward pass gives the very bits of the
    /// portable one (model files must not depend on the CPU).
    #[test]
    fn forward_is_the_same_with_and_without_avx() {
        let mut r = Rng::new(11);
        for n in [1, 7, 8, 9, 63, 424, 1000] {
            let mut normals = |len: usize, scale: f64| -> Vec<f32> {
                (0..len).map(|_| (r.normal() * scale) as f32).collect()
            };
            let layers = vec![
                Layer {
                    n_in: n,
                    n_out: 5,
                    w: normals(5 * n, 1.0),
                    b: normals(5, 1.0),
                },
                Layer {
                    n_in: 5,
                    n_out: 3,
                    w: normals(15, 1.0),
                    b: normals(3, 1.0),
                },
            ];
            let x = normals(n, 1e3);
            let bits = |acts: Vec<Vec<f32>>| -> Vec<u32> {
                acts.concat().iter().map(|v| v.to_bits()).collect()
            };
            assert_eq!(
                bits(forward(&layers, &x)),
                bits(forward_lanes(&layers, &x)),
                "n {n}"
            );
        }
    }

    /// Training on 8-wide registers gives the very network the portable
    /// build trains.
    #[test]
    fn mlp_training_is_the_same_with_and_without_avx() {
        let (x, y) = blobs(200, 8);
        let p = MlpParams {
            epochs: 3,
            members: 1,
            ..Default::default()
        };
        let w = vec![1f32; x.len()];
        let a = train_net(&p, &mut Rng::new(3), &x, &y, 4, &w);
        let b = train_net_lanes(&p, &mut Rng::new(3), &x, &y, 4, &w);
        assert!(a == b);
    }

    /// With label smoothing ε the network stops short of certainty on
    /// flows it separates perfectly: its top probability sits near
    /// 1 − ε + ε / k instead of 1. Files written before it load without it.
    #[test]
    fn mlp_label_smoothing_bounds_confidence() {
        let (x, y) = blobs(400, 12);
        let fit = |label_smoothing| {
            let mut m = Mlp::new(MlpParams {
                epochs: 30,
                members: 1,
                label_smoothing,
                ..Default::default()
            });
            m.fit(&x, &y, 4, None).unwrap();
            m
        };
        let top = |m: &Mlp| {
            x.iter()
                .map(|r| m.predict_proba(r).into_iter().fold(0f32, f32::max))
                .sum::<f32>()
                / x.len() as f32
        };
        let (hard, smooth) = (fit(0.0), fit(0.1));
        assert!(acc(&smooth, &x, &y) >= 0.99);
        let (t_hard, t_smooth) = (top(&hard), top(&smooth));
        assert!(t_hard > 0.98, "hard targets: {t_hard}");
        let target = 1.0 - 0.1 + 0.1 / 4.0;
        assert!((t_smooth - target).abs() < 0.03, "smoothed: {t_smooth}");

        assert_loads_without_param(&hard, "label_smoothing");
    }

    /// The step budget stops training mid-epoch: 10 steps of 32 rows of
    /// 200 are fewer than 3 epochs, and give another network than 3 epochs.
    #[test]
    fn mlp_step_budget_ends_training() {
        let (x, y) = blobs(200, 8);
        let w = vec![1f32; x.len()];
        let p = |max_steps| MlpParams {
            epochs: 3,
            members: 1,
            max_steps,
            ..Default::default()
        };
        let full = train_net(&p(0), &mut Rng::new(3), &x, &y, 4, &w);
        let same = train_net(&p(21), &mut Rng::new(3), &x, &y, 4, &w);
        let cut = train_net(&p(10), &mut Rng::new(3), &x, &y, 4, &w);
        assert!(full == same, "3 epochs of 7 batches are 21 steps");
        assert!(full != cut);
    }

    #[test]
    fn dot_matches_a_plain_sum_at_every_tail_length() {
        for n in 0..40 {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 7) as f32).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(&a, &b) as f64 - plain).abs() < 1e-3, "n {n}");
        }
    }

    #[test]
    fn fit_rejects_bad_input() {
        let mut f = RandomForest::new(RfParams::default());
        assert!(f.fit(&[vec![1.0]], &[3], 2, None).is_err());
        assert!(f.fit(&[], &[], 2, None).is_err());
        assert_eq!(
            class_weights(&[0, 0, 0, 1], 2),
            vec![4.0 / 6.0, 4.0 / 6.0, 4.0 / 6.0, 2.0]
        );
    }
}
