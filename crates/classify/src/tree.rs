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
}

impl Binned {
    pub fn new(x: &[Vec<f32>]) -> Self {
        let n = x.len();
        let d = x.first().map(|r| r.len()).unwrap_or(0);
        let mut bins = vec![0u8; n * d];
        let mut edges = Vec::with_capacity(d);
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
            for (i, &v) in col.iter().enumerate() {
                bins[j * n + i] = bin_of(&e, v) as u8;
            }
            edges.push(e);
        }
        Binned { n, d, bins, edges }
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

/// Grows one tree on the samples `idx` (repeats allowed: bootstrap).
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
    let mut feats: Vec<usize> = (0..data.d).collect();
    let mut hist = vec![0f64; MAX_BINS * sw];
    let mut counts = vec![0u32; MAX_BINS];
    let mut total = vec![0f64; sw];
    let mut left = vec![0f64; sw];
    let mut right = vec![0f64; sw];
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
        for &f in &feats[..m] {
            let col = data.col(f);
            let nb = data.edges[f].len() + 1;
            if nb < 2 {
                continue;
            }
            hist[..nb * sw].iter_mut().for_each(|v| *v = 0.0);
            counts[..nb].iter_mut().for_each(|v| *v = 0);
            for &i in rows {
                let bi = col[i as usize] as usize;
                target.add(&mut hist[bi * sw..(bi + 1) * sw], i as usize);
                counts[bi] += 1;
            }
            left.iter_mut().for_each(|v| *v = 0.0);
            let mut nl = 0usize;
            for bi in 0..nb - 1 {
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
        stack.push((l + 1, a + lo, b, depth + 1));
        stack.push((l, a, a + lo, depth + 1));
    }
    tree
}

#[cfg(test)]
mod tests {
    use super::*;

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
