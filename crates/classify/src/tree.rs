//! Histogram-based decision trees shared by the forest and the boosting.
//!
//! Features are cut into at most 255 bins (edges halfway between distinct
//! values); a split "bin <= b" is stored as "value <= edge[b]", so
//! prediction on raw values follows exactly the training partition.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

pub const MAX_BINS: usize = 255;

/// Column-major binned copy of a feature matrix.
pub struct Binned {
    pub n: usize,
    pub d: usize,
    pub bins: Vec<u8>,
    pub edges: Vec<Vec<f32>>,
    /// Per feature, its most common bin, and when that bin holds at least
    /// [`SPARSE_SHARE`] of the rows, the other rows in order (else empty).
    /// Most flow features are sparse (token buckets, protocol flags, the
    /// sequence of a short flow): the boosting builds their histograms from
    /// these rows and gets the common bin by subtraction.
    pub common_bin: Vec<u8>,
    pub other_rows: Vec<Option<Vec<u32>>>,
}

/// Share of rows in one bin from which a feature's other rows are listed.
pub const SPARSE_SHARE: f64 = 0.8;

impl Binned {
    pub fn new(x: &[Vec<f32>]) -> Self {
        let n = x.len();
        let d = x.first().map(|r| r.len()).unwrap_or(0);
        let mut bins = vec![0u8; n * d];
        let mut edges = Vec::with_capacity(d);
        let mut common_bin = Vec::with_capacity(d);
        let mut other_rows = Vec::with_capacity(d);
        let mut col: Vec<f32> = Vec::with_capacity(n);
        for j in 0..d {
            col.clear();
            col.extend(x.iter().map(|r| sanitize(r[j])));
            let mut s = col.clone();
            s.sort_unstable_by(|a, b| a.total_cmp(b));
            s.dedup();
            // Cut points halfway between distinct values: every distinct
            // value when there are few, else at quantiles of the column.
            let mid = |q: f32| {
                let k = s.partition_point(|&v| v <= q);
                match s.get(k) {
                    Some(&next) => q + (next - q) / 2.0,
                    None => q,
                }
            };
            let e: Vec<f32> = if s.len() <= MAX_BINS {
                s.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0).collect()
            } else {
                let mut sorted = col.clone();
                sorted.sort_unstable_by(|a, b| a.total_cmp(b));
                let mut e: Vec<f32> = (1..MAX_BINS)
                    .map(|k| sorted[(k * n / MAX_BINS).min(n - 1)])
                    .filter(|&q| Some(&q) != s.last())
                    .map(mid)
                    .collect();
                e.dedup();
                e
            };
            let mut per_bin = [0usize; 256];
            for (i, &v) in col.iter().enumerate() {
                let b = bin_of(&e, v) as u8;
                bins[j * n + i] = b;
                per_bin[b as usize] += 1;
            }
            edges.push(e);
            let common = (0..256).max_by_key(|&b| (per_bin[b], 255 - b)).unwrap_or(0) as u8;
            common_bin.push(common);
            let sparse = n > 0 && per_bin[common as usize] as f64 >= SPARSE_SHARE * n as f64;
            other_rows.push(sparse.then(|| {
                (0..n as u32)
                    .filter(|&i| bins[j * n + i as usize] != common)
                    .collect()
            }));
        }
        Binned {
            n,
            d,
            bins,
            edges,
            common_bin,
            other_rows,
        }
    }

    #[inline]
    pub fn col(&self, j: usize) -> &[u8] {
        &self.bins[j * self.n..(j + 1) * self.n]
    }
}

#[inline]
fn sanitize(v: f32) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

/// First edge index with `v <= edge`, or `edges.len()`.
fn bin_of(edges: &[f32], v: f32) -> usize {
    edges.partition_point(|&e| e < v)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Node {
    /// Feature index, or `u32::MAX` for a leaf.
    pub f: u32,
    pub t: f32,
    /// Left child, or for a leaf the index of its value block.
    pub l: u32,
    pub r: u32,
}

/// A tree whose leaves hold `width` values each.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tree {
    pub nodes: Vec<Node>,
    pub leaves: Vec<f32>,
    pub width: usize,
}

impl Tree {
    /// Checks the layout [`grow`] writes (and flattening relies on):
    /// children after their parent, the right one next to the left one,
    /// leaf values present.
    pub fn check(&self) -> Result<(), String> {
        if self.nodes.is_empty() || self.width == 0 {
            return Err("empty tree or leaf width 0".into());
        }
        let n = self.nodes.len();
        for (i, nd) in self.nodes.iter().enumerate() {
            let (l, r) = (nd.l as usize, nd.r as usize);
            if nd.f == u32::MAX {
                if (l + 1) * self.width > self.leaves.len() {
                    return Err(format!("node {i}: leaf {l} beyond the values"));
                }
            } else if l <= i || r != l + 1 || r >= n || nd.f > i32::MAX as u32 {
                return Err(format!("node {i}: children {l}, {r} of {n} nodes"));
            }
        }
        Ok(())
    }

    #[inline]
    pub fn leaf(&self, x: &[f32]) -> &[f32] {
        let mut i = 0usize;
        loop {
            let n = &self.nodes[i];
            if n.f == u32::MAX {
                let s = n.l as usize * self.width;
                return &self.leaves[s..s + self.width];
            }
            i = if sanitize(x[n.f as usize]) <= n.t {
                n.l
            } else {
                n.r
            } as usize;
        }
    }
}

impl Tree {
    /// First leaf value of every row of `data`, the binned rows the tree
    /// was grown from: the same as [`Tree::leaf`] on the raw rows (a
    /// split's threshold is one of its feature's bin edges), but it reads
    /// a few byte columns instead of whole rows.
    pub fn first_values_binned(&self, data: &Binned) -> Vec<f32> {
        // Split bin of each inner node: "value <= edges[f][b]" is "bin <= b".
        let split_bin: Vec<usize> = self
            .nodes
            .iter()
            .map(|n| match data.edges.get(n.f as usize) {
                Some(e) if n.f != u32::MAX => e.partition_point(|&v| v < n.t),
                _ => 0,
            })
            .collect();
        (0..data.n)
            .map(|i| {
                let mut j = 0usize;
                loop {
                    let n = &self.nodes[j];
                    if n.f == u32::MAX {
                        break self.leaves[n.l as usize * self.width];
                    }
                    let bin = data.bins[n.f as usize * data.n + i] as usize;
                    j = if bin <= split_bin[j] { n.l } else { n.r } as usize;
                }
            })
            .collect()
    }
}

pub struct TreeParams {
    pub max_depth: usize,
    pub min_leaf: usize,
    /// Features tried per node.
    pub mtry: usize,
}

/// What a tree fits: class counts (forest) or gradient statistics (boosting).
pub enum Target<'a> {
    /// Classes and sample weights.
    Class {
        y: &'a [usize],
        w: &'a [f32],
        k: usize,
    },
    /// Gradient and hessian per sample, L2 regularisation.
    Grad {
        g: &'a [f32],
        h: &'a [f32],
        lambda: f32,
    },
}

impl Target<'_> {
    fn width(&self) -> usize {
        match self {
            Target::Class { k, .. } => *k,
            Target::Grad { .. } => 2,
        }
    }
    fn stats_width(&self) -> usize {
        self.width()
    }
    #[inline]
    fn add(&self, acc: &mut [f64], i: usize) {
        match self {
            Target::Class { y, w, .. } => acc[y[i]] += w[i] as f64,
            Target::Grad { g, h, .. } => {
                acc[0] += g[i] as f64;
                acc[1] += h[i] as f64;
            }
        }
    }
    /// Score of a node's statistics (higher is better; sums are additive).
    fn score(&self, s: &[f64]) -> f64 {
        match self {
            Target::Class { .. } => {
                // Weighted Gini "purity": sum c^2 / total (maximise).
                let t: f64 = s.iter().sum();
                if t <= 0.0 {
                    0.0
                } else {
                    s.iter().map(|c| c * c).sum::<f64>() / t
                }
            }
            Target::Grad { lambda, .. } => s[0] * s[0] / (s[1] + *lambda as f64),
        }
    }
    fn leaf_value(&self, s: &[f64], out: &mut Vec<f32>) {
        match self {
            Target::Class { .. } => {
                let t: f64 = s.iter().sum();
                for &c in s {
                    out.push(if t > 0.0 { (c / t) as f32 } else { 0.0 });
                }
            }
            Target::Grad { lambda, .. } => out.push((-s[0] / (s[1] + *lambda as f64)) as f32),
        }
    }
    fn out_width(&self) -> usize {
        match self {
            Target::Class { k, .. } => *k,
            Target::Grad { .. } => 1,
        }
    }
    fn pure(&self, s: &[f64]) -> bool {
        match self {
            Target::Class { .. } => s.iter().filter(|&&c| c > 0.0).count() <= 1,
            Target::Grad { .. } => false,
        }
    }
}

/// Grows one tree on the samples `idx` (repeats allowed for
/// [`Target::Class`]: bootstrap; the rows of a [`Target::Grad`] are
/// distinct, as its sparse histograms count each listed row once).
pub fn grow(
    data: &Binned,
    target: &Target<'_>,
    idx: &mut [u32],
    p: &TreeParams,
    rng: &mut Rng,
) -> Tree {
    let sw = target.stats_width();
    let mut tree = Tree {
        nodes: vec![],
        leaves: vec![],
        width: target.out_width(),
    };
    // Stack of (node index, range start, range end, depth).
    tree.nodes.push(Node {
        f: 0,
        t: 0.0,
        l: 0,
        r: 0,
    });
    let mut stack = vec![(0usize, 0usize, idx.len(), 0usize)];
    // Node of each row (u32::MAX: not in this tree's sample), for the
    // sparse histograms of the boosting.
    let mut node_of: Vec<u32> = Vec::new();
    if let Target::Grad { .. } = target {
        node_of = vec![u32::MAX; data.n];
        for &i in idx.iter() {
            node_of[i as usize] = 0;
        }
    }
    let mut feats: Vec<usize> = (0..data.d).collect();
    let mut hist = vec![0f64; MAX_BINS * sw];
    let mut counts = vec![0u32; MAX_BINS];
    let mut total = vec![0f64; sw];
    let mut left = vec![0f64; sw];
    let mut right = vec![0f64; sw];
    // The node's per-row statistics, gathered once per node so that each
    // feature's pass reads them in order (only its bin column is random).
    let mut grad_rows: Vec<[f32; 2]> = Vec::new();
    const LANES: usize = 4;
    let mut grad_parts = vec![[0f64; 2 * 256]; LANES];
    let mut count_parts = vec![[0u32; 256]; LANES];
    let mut class_rows: Vec<(u32, f32)> = Vec::new();
    while let Some((node, a, b, depth)) = stack.pop() {
        let rows = &idx[a..b];
        total.iter_mut().for_each(|v| *v = 0.0);
        for &i in rows {
            target.add(&mut total, i as usize);
        }
        let n = rows.len();
        let make_leaf = |tree: &mut Tree, total: &[f64]| {
            let li = (tree.leaves.len() / tree.width) as u32;
            target.leaf_value(total, &mut tree.leaves);
            tree.nodes[node] = Node {
                f: u32::MAX,
                t: 0.0,
                l: li,
                r: 0,
            };
        };
        if depth >= p.max_depth || n < 2 * p.min_leaf || target.pure(&total) {
            make_leaf(&mut tree, &total);
            continue;
        }
        let parent = target.score(&total);
        let mut best: Option<(f64, usize, usize)> = None; // gain, feature, bin
                                                          // Partial Fisher–Yates: first `mtry` of `feats` are the candidates.
        let m = p.mtry.min(data.d).max(1);
        for k in 0..m {
            let j = k + rng.below(data.d - k);
            feats.swap(k, j);
        }
        match target {
            Target::Grad { g, h, .. } => {
                grad_rows.clear();
                grad_rows.extend(rows.iter().map(|&i| [g[i as usize], h[i as usize]]));
            }
            Target::Class { y, w, .. } => {
                class_rows.clear();
                class_rows.extend(rows.iter().map(|&i| (y[i as usize] as u32, w[i as usize])));
            }
        }
        for &f in &feats[..m] {
            let col = data.col(f);
            let nb = data.edges[f].len() + 1;
            if nb < 2 {
                continue;
            }
            hist[..nb * sw].iter_mut().for_each(|v| *v = 0.0);
            counts[..nb].iter_mut().for_each(|v| *v = 0);
            // The hottest loop of training: one pass per candidate feature,
            // specialised per target so the inner loop has no dispatch.
            // Sums are taken in row order, as `Target::add` would.
            match target {
                Target::Grad { g, h, .. }
                    if data.other_rows[f]
                        .as_ref()
                        .is_some_and(|o| o.len() < rows.len()) =>
                {
                    // Sparse feature: the listed rows of this node, then
                    // the common bin as the node's total minus the others.
                    let others = data.other_rows[f].as_deref().unwrap_or(&[]);
                    hist[..2 * nb].fill(0.0);
                    counts[..nb].fill(0);
                    for &r in others {
                        if node_of[r as usize] == node as u32 {
                            let (r, bi) = (r as usize, col[r as usize] as usize);
                            hist[2 * bi] += g[r] as f64;
                            hist[2 * bi + 1] += h[r] as f64;
                            counts[bi] += 1;
                        }
                    }
                    let cb = data.common_bin[f] as usize;
                    let (mut sg, mut sh, mut sc) = (0f64, 0f64, 0u32);
                    for b in 0..nb {
                        sg += hist[2 * b];
                        sh += hist[2 * b + 1];
                        sc += counts[b];
                    }
                    hist[2 * cb] = total[0] - sg;
                    hist[2 * cb + 1] = total[1] - sh;
                    counts[cb] = n as u32 - sc;
                }
                Target::Grad { .. } => {
                    // Four partial histograms, rows taken in turn: most rows
                    // of a sparse feature fall in one bin, and adds into
                    // one memory slot wait for each other.
                    for q in 0..LANES {
                        grad_parts[q][..2 * nb].fill(0.0);
                        count_parts[q][..nb].fill(0);
                    }
                    let whole = rows.len() / LANES * LANES;
                    for (ri, si) in rows[..whole]
                        .chunks_exact(LANES)
                        .zip(grad_rows[..whole].chunks_exact(LANES))
                    {
                        for q in 0..LANES {
                            let bi = col[ri[q] as usize] as usize;
                            grad_parts[q][2 * bi] += si[q][0] as f64;
                            grad_parts[q][2 * bi + 1] += si[q][1] as f64;
                            count_parts[q][bi] += 1;
                        }
                    }
                    for (&i, s) in rows[whole..].iter().zip(&grad_rows[whole..]) {
                        let bi = col[i as usize] as usize;
                        grad_parts[0][2 * bi] += s[0] as f64;
                        grad_parts[0][2 * bi + 1] += s[1] as f64;
                        count_parts[0][bi] += 1;
                    }
                    for j in 0..2 * nb {
                        hist[j] = (grad_parts[0][j] + grad_parts[1][j])
                            + (grad_parts[2][j] + grad_parts[3][j]);
                    }
                    for b in 0..nb {
                        counts[b] = count_parts.iter().map(|c| c[b]).sum();
                    }
                }
                Target::Class { .. } => {
                    for (&i, &(c, wi)) in rows.iter().zip(&class_rows) {
                        let bi = col[i as usize] as usize;
                        hist[bi * sw + c as usize] += wi as f64;
                        counts[bi] += 1;
                    }
                }
            }
            left.iter_mut().for_each(|v| *v = 0.0);
            let mut nl = 0usize;
            for bi in 0..nb - 1 {
                // An empty bin moves nothing: same split as the bin before,
                // which wins ties.
                if counts[bi] == 0 {
                    continue;
                }
                for c in 0..sw {
                    left[c] += hist[bi * sw + c];
                }
                nl += counts[bi] as usize;
                if nl < p.min_leaf {
                    continue;
                }
                if n - nl < p.min_leaf {
                    break;
                }
                for c in 0..sw {
                    right[c] = total[c] - left[c];
                }
                let gain = target.score(&left) + target.score(&right) - parent;
                if gain > 1e-9 && best.is_none_or(|(g, _, _)| gain > g) {
                    best = Some((gain, f, bi));
                }
            }
        }
        let Some((_, f, bi)) = best else {
            make_leaf(&mut tree, &total);
            continue;
        };
        // Partition rows: bin <= bi to the left.
        let col = data.col(f);
        let rows = &mut idx[a..b];
        let mut lo = 0usize;
        for r in 0..rows.len() {
            if col[rows[r] as usize] as usize <= bi {
                rows.swap(lo, r);
                lo += 1;
            }
        }
        let l = tree.nodes.len();
        tree.nodes.push(Node {
            f: 0,
            t: 0.0,
            l: 0,
            r: 0,
        });
        tree.nodes.push(Node {
            f: 0,
            t: 0.0,
            l: 0,
            r: 0,
        });
        tree.nodes[node] = Node {
            f: f as u32,
            t: data.edges[f][bi],
            l: l as u32,
            r: l as u32 + 1,
        };
        if !node_of.is_empty() {
            for (q, &r) in rows.iter().enumerate() {
                node_of[r as usize] = if q < lo { l } else { l + 1 } as u32;
            }
        }
        stack.push((l + 1, a + lo, b, depth + 1));
        stack.push((l, a, a + lo, depth + 1));
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Boosting trees on sparse and dense features (NaN included) follow
    /// the same path on the binned rows as on the raw ones.
    #[test]
    fn binned_walk_matches_the_raw_walk() {
        let mut r = Rng::new(9);
        let x: Vec<Vec<f32>> = (0..2000)
            .map(|i| {
                vec![
                    r.normal() as f32,
                    if i % 13 == 0 {
                        1.0 + (i % 5) as f32
                    } else {
                        0.0
                    },
                    if i % 17 == 0 {
                        f32::NAN
                    } else {
                        (i % 300) as f32
                    },
                ]
            })
            .collect();
        let g: Vec<f32> = x
            .iter()
            .map(|v| v[0] + v[1] - 0.01 * v[2].max(0.0))
            .collect();
        let h = vec![1f32; x.len()];
        let data = Binned::new(&x);
        assert!(data.other_rows[1].is_some() && data.other_rows[0].is_none());
        let p = TreeParams {
            max_depth: 6,
            min_leaf: 2,
            mtry: 3,
        };
        let target = Target::Grad {
            g: &g,
            h: &h,
            lambda: 1.0,
        };
        let mut idx: Vec<u32> = (0..x.len() as u32).filter(|i| i % 4 != 0).collect();
        let t = grow(&data, &target, &mut idx, &p, &mut r);
        assert!(t.nodes.len() > 20);
        let raw: Vec<f32> = x.iter().map(|row| t.leaf(row)[0]).collect();
        assert_eq!(t.first_values_binned(&data), raw);
    }

    /// The sparse histograms (listed rows, common bin by subtraction) grow
    /// the tree the dense ones grow: the same splits on the same data.
    #[test]
    fn sparse_and_dense_histograms_grow_the_same_tree() {
        let mut r = Rng::new(4);
        let x: Vec<Vec<f32>> = (0..3000)
            .map(|i| {
                let tok = if i % 11 == 0 {
                    (i % 3) as f32 + 1.0
                } else {
                    0.0
                };
                vec![tok, r.normal() as f32, if i % 29 == 0 { 5.0 } else { 0.0 }]
            })
            .collect();
        let g: Vec<f32> = x.iter().map(|v| v[0] - v[1] + v[2]).collect();
        let h: Vec<f32> = x.iter().map(|v| 0.5 + v[0] * 0.1).collect();
        let sparse = Binned::new(&x);
        assert!(sparse.other_rows[0].is_some() && sparse.other_rows[2].is_some());
        let mut dense = Binned::new(&x);
        dense.other_rows.iter_mut().for_each(|o| *o = None);
        let p = TreeParams {
            max_depth: 5,
            min_leaf: 3,
            mtry: 3,
        };
        let target = Target::Grad {
            g: &g,
            h: &h,
            lambda: 1.0,
        };
        let idx: Vec<u32> = (0..x.len() as u32).filter(|i| i % 5 != 1).collect();
        let a = grow(&sparse, &target, &mut idx.clone(), &p, &mut Rng::new(1));
        let b = grow(&dense, &target, &mut idx.clone(), &p, &mut Rng::new(1));
        let shape = |t: &Tree| {
            t.nodes
                .iter()
                .map(|n| (n.f, n.t, n.l, n.r))
                .collect::<Vec<_>>()
        };
        assert_eq!(shape(&a), shape(&b));
        for (u, v) in a.leaves.iter().zip(&b.leaves) {
            assert!((u - v).abs() <= 1e-5 * v.abs().max(1.0), "{u} {v}");
        }
    }

    #[test]
    fn binning_respects_raw_thresholds() {
        let x: Vec<Vec<f32>> = (0..500)
            .map(|i| vec![(i % 97) as f32, (i as f32).sin()])
            .collect();
        let b = Binned::new(&x);
        for j in 0..2 {
            for (i, r) in x.iter().enumerate() {
                let bin = b.col(j)[i] as usize;
                for (e_i, &e) in b.edges[j].iter().enumerate() {
                    assert_eq!(bin <= e_i, r[j] <= e, "feature {j} row {i}");
                }
            }
        }
    }
}
