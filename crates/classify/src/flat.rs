//! Flattened tree ensembles for fast inference.
//!
//! Every tree of a forest (or of a boosting) lives in one contiguous node
//! array, trees one after the other. A node holds its feature, its
//! threshold and how far ahead its left child is (the right child follows
//! the left one); a leaf is its own left child (distance 0) with an
//! infinite threshold, so a walk can take more steps than its path without
//! leaving the leaf. Nodes take 8 bytes (16-bit feature and distance) when
//! every tree allows it, else 12. Leaf values are kept padded to a multiple
//! of four per leaf, so that summing them vectorises.
//!
//! Prediction advances several walks in lockstep, which lets the processor
//! overlap their memory loads: for a batch, a block of [`LANES`] rows down
//! one tree at a time (the rows are first copied, NaN → 0, at a fixed
//! stride, so that every walk reads its row at a constant offset from one
//! pointer; the leaves are summed per row afterwards); for one row, 16
//! trees at a time. A group stops as soon as no walk moved (a step only
//! ever moves a walk forward in the array).
//!
//! Measured on the real flows (`forest_bench`, 2 shared cores), against the
//! previous layout (16-byte nodes, eight walks, rows read in place, sums
//! through a callback): about 1.8× in batch and 1.5× one row at a time.
//! Tried and left out: a work queue that refills a lane as soon as its walk
//! ends (no idle lanes; measured 0.7× in a first form with branches, and a
//! branch-free one takes about twice the instructions of a lockstep step,
//! more than the 1.3–1.5× steps it saves), AVX2 gathers (eight walks in one
//! register: half the speed of scalar code here), copying only the features
//! the trees use (a gather costs more than the whole-row copy),
//! breadth-first node order (within noise), power-of-two row strides
//! (cache-set conflicts).
//!
//! The partition is exactly that of [`Tree::leaf`]: a value goes left when
//! `value <= threshold`, NaN inputs count as 0; sums of leaf values are
//! taken in tree order, so they are bit for bit those of a tree-by-tree
//! walk.

use serde::{Deserialize, Serialize};

use crate::tree::{Node, Tree};

/// Rows walked together in batch prediction (8 and 16 were not faster).
pub const LANES: usize = 12;
/// Trees walked together on one row (8, 12 and 24 were slower).
const ROW_LANES: usize = 16;
/// Lanes for the last trees of one row, when fewer than [`ROW_LANES`] are
/// left.
const TAIL_LANES: usize = 4;

/// A node in 8 bytes: feature, distance to the left child (0: a leaf),
/// threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Small {
    feature: u16,
    delta: u16,
    threshold: f32,
}

/// A node of a tree too large (or with too many features) for [`Small`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Wide {
    feature: u32,
    delta: u32,
    threshold: f32,
}

trait Step: Copy {
    fn feature(&self) -> usize;
    fn delta(&self) -> u32;
    fn threshold(&self) -> f32;
}

impl Step for Small {
    #[inline(always)]
    fn feature(&self) -> usize {
        self.feature as usize
    }
    #[inline(always)]
    fn delta(&self) -> u32 {
        self.delta as u32
    }
    #[inline(always)]
    fn threshold(&self) -> f32 {
        self.threshold
    }
}

impl Step for Wide {
    #[inline(always)]
    fn feature(&self) -> usize {
        self.feature as usize
    }
    #[inline(always)]
    fn delta(&self) -> u32 {
        self.delta
    }
    #[inline(always)]
    fn threshold(&self) -> f32 {
        self.threshold
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Nodes {
    Small(Vec<Small>),
    Wide(Vec<Wide>),
}

/// An ensemble of trees in one node array. Leaves hold `width` values each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "EnsembleRepr", into = "EnsembleRepr")]
pub struct TreeEnsemble {
    width: usize,
    nodes: Nodes,
    /// Per node: where a leaf's values start in `padded` (its number times
    /// `padded_width`; they start at its number times `width` in `values`);
    /// 0 for a split.
    leaf: Vec<u32>,
    roots: Vec<u32>,
    /// Longest root-to-leaf path (edges) per tree.
    depths: Vec<u32>,
    /// Shortest root-to-leaf path per tree: every walk takes that many
    /// steps without meeting a leaf.
    shallow: Vec<u32>,
    values: Vec<f32>,
    /// `values` with every leaf padded with zeros to `padded_width`.
    padded: Vec<f32>,
    /// `width` rounded up to a multiple of 4.
    padded_width: usize,
    /// 1 + the largest feature index used (0 without splits).
    n_features: usize,
}

/// How an ensemble is stored in a model file (format version 2): parallel
/// arrays in preorder, trees one after the other. `feature` is -1 for a
/// leaf, whose `child` is then its leaf number (values at
/// `child * width .. (child + 1) * width`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EnsembleRepr {
    width: usize,
    roots: Vec<u32>,
    feature: Vec<i32>,
    threshold: Vec<f32>,
    child: Vec<u32>,
    values: Vec<f32>,
}

impl From<TreeEnsemble> for EnsembleRepr {
    fn from(e: TreeEnsemble) -> Self {
        let n = e.n_nodes();
        let mut r = EnsembleRepr {
            width: e.width,
            roots: vec![],
            feature: Vec::with_capacity(n),
            threshold: Vec::with_capacity(n),
            child: Vec::with_capacity(n),
            values: vec![],
        };
        for i in 0..n {
            let (feature, delta, threshold) = e.node(i);
            if delta == 0 {
                r.feature.push(-1);
                r.threshold.push(0.0);
                r.child.push(e.leaf[i] / e.padded_width as u32);
            } else {
                r.feature.push(feature as i32);
                r.threshold.push(threshold);
                r.child.push(i as u32 + delta);
            }
        }
        r.roots = e.roots;
        r.values = e.values;
        r
    }
}

impl TryFrom<EnsembleRepr> for TreeEnsemble {
    type Error = String;

    /// Checks every index, so that prediction cannot go out of bounds or
    /// loop: children come after their parent and inside their tree.
    fn try_from(r: EnsembleRepr) -> Result<Self, String> {
        let n = r.feature.len();
        if r.threshold.len() != n || r.child.len() != n {
            return Err(format!(
                "tree arrays differ in length (feature {n}, threshold {}, child {})",
                r.threshold.len(),
                r.child.len()
            ));
        }
        if r.width == 0 {
            return Err("leaf width 0".into());
        }
        let padded_width = r.width.div_ceil(4) * 4;
        if n >= u32::MAX as usize / 2
            || r.values.len() >= u32::MAX as usize
            || r.values.len() / r.width * padded_width >= u32::MAX as usize
        {
            return Err("ensemble too large".into());
        }
        // (feature, distance to the left child, threshold) per node.
        let mut wide = Vec::with_capacity(n);
        let mut leaf = Vec::with_capacity(n);
        let mut depths = Vec::with_capacity(r.roots.len());
        let mut shallow = Vec::with_capacity(r.roots.len());
        let mut depth = vec![0u32; n];
        let mut n_features = 0usize;
        for (t, &root) in r.roots.iter().enumerate() {
            let start = root as usize;
            let end = r.roots.get(t + 1).map_or(n, |&x| x as usize);
            if start >= end || end > n || (t == 0 && start != 0) {
                return Err(format!("tree {t}: bad root {root} (nodes {n})"));
            }
            let mut max_depth = 0;
            let mut min_depth = u32::MAX;
            for i in start..end {
                let c = r.child[i] as usize;
                if r.feature[i] < 0 {
                    if (c + 1) * r.width > r.values.len() {
                        return Err(format!("node {i}: leaf {c} beyond the values"));
                    }
                    wide.push(Wide {
                        feature: 0,
                        delta: 0,
                        threshold: f32::INFINITY,
                    });
                    leaf.push((c * padded_width) as u32);
                    max_depth = max_depth.max(depth[i]);
                    min_depth = min_depth.min(depth[i]);
                } else {
                    if c <= i || c + 1 >= end {
                        return Err(format!("node {i}: child {c} outside tree {t}"));
                    }
                    depth[c] = depth[c].max(depth[i] + 1);
                    depth[c + 1] = depth[c + 1].max(depth[i] + 1);
                    n_features = n_features.max(r.feature[i] as usize + 1);
                    wide.push(Wide {
                        feature: r.feature[i] as u32,
                        delta: (c - i) as u32,
                        threshold: r.threshold[i],
                    });
                    leaf.push(0);
                }
            }
            depths.push(max_depth);
            shallow.push(min_depth);
        }
        let small = wide
            .iter()
            .all(|w| w.feature <= u16::MAX as u32 && w.delta <= u16::MAX as u32);
        let nodes = if small {
            Nodes::Small(
                wide.iter()
                    .map(|w| Small {
                        feature: w.feature as u16,
                        delta: w.delta as u16,
                        threshold: w.threshold,
                    })
                    .collect(),
            )
        } else {
            Nodes::Wide(wide)
        };
        let mut padded = Vec::with_capacity(r.values.len() / r.width * padded_width);
        for v in r.values.chunks_exact(r.width) {
            padded.extend_from_slice(v);
            padded.resize(padded.len() + padded_width - r.width, 0.0);
        }
        Ok(TreeEnsemble {
            width: r.width,
            nodes,
            leaf,
            roots: r.roots,
            depths,
            shallow,
            values: r.values,
            padded,
            padded_width,
            n_features,
        })
    }
}

/// NaN → 0, as in training.
#[inline]
fn clean_value(v: f32) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

/// `dst = src` with NaN → 0 (vectorises).
#[inline]
fn copy_clean(dst: &mut [f32], src: &[f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = clean_value(s);
    }
}

/// Asks for the cache line at `p` ahead of use (x86-64; elsewhere
/// nothing).
#[inline(always)]
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault, at any address.
    #[allow(unused_unsafe)]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Advances the walks `idx` (node indices) in lockstep, lane `l` reading
/// its row at `row(l)`: `sure` steps where no walk can be at a leaf yet,
/// then until no walk moves, `steps` at most in all (the depth of the
/// deepest tree among them).
///
/// # Safety
/// Every `idx[l]` is a node of `nodes` whose children (`index + delta`,
/// `index + delta + 1` for a split) are nodes too, and every `row(l)`
/// points at at least `1 + feature` values for every feature of a node the
/// walk can reach (and at least one value unless `steps` is 0).
#[inline(always)]
unsafe fn walk<N: Step, const L: usize>(
    nodes: *const N,
    idx: &mut [u32; L],
    sure: u32,
    steps: u32,
    row: impl Fn(usize) -> *const f32,
) {
    // One step of every walk; the sum of their new positions.
    let step = |idx: &mut [u32; L]| {
        let mut sum = 0u64;
        for (l, i) in idx.iter_mut().enumerate() {
            // SAFETY: the caller's promise; a leaf keeps its own index.
            let (nd, v) = unsafe {
                let nd = &*nodes.add(*i as usize);
                (nd, *row(l).add(nd.feature()))
            };
            // Left when `v <= threshold` (false for a NaN threshold).
            let left = v <= nd.threshold();
            *i += nd.delta() + (!left) as u32;
            sum += *i as u64;
        }
        sum
    };
    let sure = sure.min(steps);
    for _ in 0..sure {
        step(idx);
    }
    if sure < steps {
        // A walk that moves goes forward: the sum grows unless all are at
        // a leaf.
        let mut last: u64 = idx.iter().map(|&i| i as u64).sum();
        for _ in sure..steps {
            let sum = step(idx);
            if sum == last {
                break;
            }
            last = sum;
        }
    }
}

impl TreeEnsemble {
    /// An ensemble without trees.
    pub fn empty(width: usize) -> Self {
        let width = width.max(1);
        TreeEnsemble {
            width,
            nodes: Nodes::Small(vec![]),
            leaf: vec![],
            roots: vec![],
            depths: vec![],
            shallow: vec![],
            values: vec![],
            padded: vec![],
            padded_width: width.div_ceil(4) * 4,
            n_features: 0,
        }
    }

    /// Flattens trees grown by [`crate::tree::grow`] (children stored after
    /// their parent, the right one next to the left one). All trees must
    /// have the same leaf width.
    pub fn from_trees(trees: &[Tree]) -> Self {
        let width = trees.first().map_or(1, |t| t.width);
        let mut r = EnsembleRepr {
            width,
            roots: vec![],
            feature: vec![],
            threshold: vec![],
            child: vec![],
            values: vec![],
        };
        for t in trees {
            assert_eq!(t.width, width, "trees of one ensemble share the leaf width");
            let base = r.feature.len() as u32;
            let leaf_base = (r.values.len() / width) as u32;
            r.roots.push(base);
            for nd in &t.nodes {
                if nd.f == u32::MAX {
                    r.feature.push(-1);
                    r.threshold.push(0.0);
                    r.child.push(leaf_base + nd.l);
                } else {
                    assert_eq!(nd.r, nd.l + 1, "right child follows the left one");
                    r.feature.push(nd.f as i32);
                    r.threshold.push(nd.t);
                    r.child.push(base + nd.l);
                }
            }
            r.values.extend_from_slice(&t.leaves);
        }
        TreeEnsemble::try_from(r).expect("trees from grow() are well formed")
    }

    /// (feature, distance to the left child, threshold) of node `i`.
    fn node(&self, i: usize) -> (usize, u32, f32) {
        match &self.nodes {
            Nodes::Small(n) => (n[i].feature(), n[i].delta(), n[i].threshold()),
            Nodes::Wide(n) => (n[i].feature(), n[i].delta(), n[i].threshold()),
        }
    }

    /// The trees again, as [`crate::tree::grow`] wrote them (for reference
    /// walks in tests and benchmarks).
    pub fn to_trees(&self) -> Vec<Tree> {
        let w = self.width;
        (0..self.roots.len())
            .map(|t| {
                let start = self.roots[t] as usize;
                let end = self
                    .roots
                    .get(t + 1)
                    .map_or(self.n_nodes(), |&x| x as usize);
                let span = start..end;
                let leaves = span.clone().filter(|&i| self.node(i).1 == 0);
                let number = |i: usize| self.leaf[i] as usize / self.padded_width;
                let base = leaves.clone().map(number).min().unwrap_or(0);
                let top = leaves.map(|i| number(i) + 1).max().unwrap_or(0);
                let values = self.values[base * w..top.max(base) * w].to_vec();
                let nodes = span
                    .map(|i| match self.node(i) {
                        (_, 0, _) => Node {
                            f: u32::MAX,
                            t: 0.0,
                            l: (number(i) - base) as u32,
                            r: 0,
                        },
                        (f, delta, threshold) => {
                            let l = (i - start) as u32 + delta;
                            Node {
                                f: f as u32,
                                t: threshold,
                                l,
                                r: l + 1,
                            }
                        }
                    })
                    .collect();
                Tree {
                    nodes,
                    leaves: values,
                    width: w,
                }
            })
            .collect()
    }

    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    pub fn n_nodes(&self) -> usize {
        self.leaf.len()
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows must have at least this many values.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Values of the leaf at node `i` (padded array, `width` of them).
    #[inline]
    fn leaf_values(&self, i: u32) -> &[f32] {
        let o = self.leaf[i as usize] as usize;
        &self.padded[o..o + self.width]
    }

    /// Calls `f(tree, leaf values)` for every tree, in tree order, for one
    /// row (NaN counts as 0).
    #[inline]
    pub fn for_each_leaf(&self, x: &[f32], mut f: impl FnMut(usize, &[f32])) {
        self.row_leaves(x, |t0, leaves| {
            for (l, &i) in leaves.iter().enumerate() {
                f(t0 + l, self.leaf_values(i));
            }
        });
    }

    /// Sums of the leaf values of one row over the trees, in tree order,
    /// into `out` (`width` values; NaN counts as 0).
    pub fn sum_row(&self, x: &[f32], out: &mut [f32]) {
        assert_eq!(out.len(), self.width, "one sum per leaf value");
        match self.padded_width {
            4 => self.sum_row_padded::<4>(x, out),
            8 => self.sum_row_padded::<8>(x, out),
            _ => {
                out.iter_mut().for_each(|v| *v = 0.0);
                self.for_each_leaf(x, |_, v| {
                    for (s, v) in out.iter_mut().zip(v) {
                        *s += v;
                    }
                });
            }
        }
    }

    fn sum_row_padded<const P: usize>(&self, x: &[f32], out: &mut [f32]) {
        let mut sum = [0f32; P];
        self.row_leaves(x, |_, leaves| {
            for &i in leaves {
                let o = self.leaf[i as usize] as usize;
                let v: &[f32; P] = self.padded[o..o + P].try_into().expect("P values");
                for (s, v) in sum.iter_mut().zip(v) {
                    *s += v;
                }
            }
        });
        out.copy_from_slice(&sum[..self.width]);
    }

    /// Walks one row down every tree; calls `f(first tree, leaf node of
    /// each tree from it)` group by group, in tree order.
    #[inline]
    fn row_leaves(&self, x: &[f32], mut f: impl FnMut(usize, &[u32])) {
        assert!(
            x.len() >= self.n_features,
            "row shorter than the model's features"
        );
        // A NaN would move a walk off its leaf (the leaf test is `v <= inf`).
        let mut buf = Vec::new();
        let x = sanitized(x, &mut buf);
        match &self.nodes {
            Nodes::Small(n) => self.trees_of_row(n, x, &mut f),
            Nodes::Wide(n) => self.trees_of_row(n, x, &mut f),
        }
    }

    #[inline(always)]
    fn trees_of_row<N: Step>(&self, nodes: &[N], x: &[f32], f: &mut impl FnMut(usize, &[u32])) {
        let nt = self.roots.len();
        let mut t0 = 0;
        while nt - t0 >= ROW_LANES {
            self.tree_group::<N, ROW_LANES>(nodes, t0, ROW_LANES, x, f);
            t0 += ROW_LANES;
        }
        while t0 < nt {
            let n = (nt - t0).min(TAIL_LANES);
            self.tree_group::<N, TAIL_LANES>(nodes, t0, n, x, f);
            t0 += n;
        }
    }

    /// Trees `t0..t0 + n` (n ≤ L) on one row.
    #[inline(always)]
    fn tree_group<N: Step, const L: usize>(
        &self,
        nodes: &[N],
        t0: usize,
        n: usize,
        x: &[f32],
        f: &mut impl FnMut(usize, &[u32]),
    ) {
        let group = t0..t0 + n;
        // Spare lanes repeat the last tree; their result is ignored.
        let mut idx = [self.roots[t0 + n - 1]; L];
        idx[..n].copy_from_slice(&self.roots[group.clone()]);
        let steps = self.depths[group.clone()]
            .iter()
            .max()
            .copied()
            .unwrap_or(0);
        let sure = self.shallow[group].iter().min().copied().unwrap_or(0);
        let x = x.as_ptr();
        // SAFETY: roots are nodes, whose children were checked when the
        // ensemble was built (`try_from`); the row has `n_features`
        // values (checked by the caller), at least one if a tree splits.
        unsafe { walk::<N, L>(nodes.as_ptr(), &mut idx, sure, steps, |_| x) };
        f(t0, &idx[..n]);
    }

    /// Calls `f(tree, row, leaf values)` for every tree and row (NaN counts
    /// as 0): block by block of [`LANES`] rows, each tree in order over the
    /// block, so that for each row trees come in order.
    pub fn for_each_leaf_rows(&self, rows: &[Vec<f32>], mut f: impl FnMut(usize, usize, &[f32])) {
        self.rows_leaves(rows, &mut |r0, n, res| {
            for t in 0..self.roots.len() {
                for (r, &i) in res[t * LANES..t * LANES + n].iter().enumerate() {
                    f(t, r0 + r, self.leaf_values(i));
                }
            }
        });
    }

    /// Sums of the leaf values of each row over the trees, in tree order:
    /// `width` values per row into `out` (NaN counts as 0).
    pub fn sum_rows(&self, rows: &[Vec<f32>], out: &mut [f32]) {
        let w = self.width;
        assert_eq!(out.len(), rows.len() * w, "one sum per row and leaf value");
        self.rows_leaves(rows, &mut |r0, n, res| {
            let out = &mut out[r0 * w..(r0 + n) * w];
            match self.padded_width {
                4 => self.sum_block::<4>(res, n, out),
                8 => self.sum_block::<8>(res, n, out),
                12 => self.sum_block::<12>(res, n, out),
                16 => self.sum_block::<16>(res, n, out),
                _ => {
                    out.iter_mut().for_each(|v| *v = 0.0);
                    for t in 0..self.roots.len() {
                        for (s, &i) in out.chunks_mut(w).zip(&res[t * LANES..]) {
                            for (s, v) in s.iter_mut().zip(self.leaf_values(i)) {
                                *s += v;
                            }
                        }
                    }
                }
            }
        });
    }

    /// Sums over the trees for the `n` rows of a block (`res`: leaf node
    /// per tree and row), four rows at a time.
    #[inline(always)]
    fn sum_block<const P: usize>(&self, res: &[u32], n: usize, out: &mut [f32]) {
        let w = self.width;
        let nt = self.roots.len();
        let mut r = 0;
        while r < n {
            let m = (n - r).min(4);
            let mut sum = [[0f32; P]; 4];
            for t in 0..nt {
                let leaves = &res[t * LANES + r..t * LANES + r + m];
                for (s, &i) in sum.iter_mut().zip(leaves) {
                    let o = self.leaf[i as usize] as usize;
                    let v: &[f32; P] = self.padded[o..o + P].try_into().expect("P values");
                    for (s, v) in s.iter_mut().zip(v) {
                        *s += v;
                    }
                }
            }
            for (q, s) in sum.iter().enumerate().take(m) {
                out[(r + q) * w..(r + q + 1) * w].copy_from_slice(&s[..w]);
            }
            r += m;
        }
    }

    /// Walks every row down every tree, block by block of [`LANES`] rows;
    /// calls `f(first row, rows in the block, leaf nodes)` with the leaf of
    /// row `r0 + l` in tree `t` at `t * LANES + l`.
    fn rows_leaves(&self, rows: &[Vec<f32>], f: &mut dyn FnMut(usize, usize, &[u32])) {
        let nf = self.n_features;
        for r in rows {
            assert!(r.len() >= nf, "row shorter than the model's features");
        }
        let nodes = match &self.nodes {
            Nodes::Small(n) => n,
            Nodes::Wide(n) => return self.rows_in_place(n, rows, f),
        };
        // Row strides of the block copy, the first that holds the features:
        // odd numbers of 64-byte lines, so that the rows of a block spread
        // over the cache sets (strides of 512 values measured about 15 %
        // slower than 400 or 448 on 100 k rows of 398 features). Longer
        // rows are read in place.
        macro_rules! strided {
            ($($s:literal)*) => {
                $(
                    if nf <= $s {
                        return self.rows_strided::<$s>(nodes, rows, f);
                    }
                )*
            };
        }
        strided!(48 112 208 272 336 400 464 528 656 784 1040 1552 2064);
        self.rows_in_place(nodes, rows, f)
    }

    /// [`Self::rows_leaves`] with each block copied at stride `S` (at least
    /// `n_features`): every walk reads at a constant offset from one
    /// pointer.
    fn rows_strided<const S: usize>(
        &self,
        nodes: &[Small],
        rows: &[Vec<f32>],
        f: &mut dyn FnMut(usize, usize, &[u32]),
    ) {
        let nf = self.n_features;
        assert!(nf <= S);
        let mut buf = vec![0f32; LANES * S];
        let mut res = vec![0u32; self.roots.len() * LANES];
        // The next block's rows are fetched a few cache lines per tree, so
        // that their copy does not wait for memory.
        let lines = (nf * 4).div_ceil(64);
        let per_tree = (lines * LANES).div_ceil(self.roots.len().max(1));
        for (b, block) in rows.chunks(LANES).enumerate() {
            for (dst, row) in buf.chunks_exact_mut(S).zip(block) {
                copy_clean(&mut dst[..nf], &row[..nf]);
            }
            let next = rows.get((b + 1) * LANES..).unwrap_or(&[]);
            let mut ahead = next.iter().take(LANES).map(|r| r.as_ptr());
            let (mut row, mut line) = (ahead.next(), 0);
            let trees = self.roots.iter().zip(self.depths.iter().zip(&self.shallow));
            for ((&root, (&depth, &sure)), leaves) in trees.zip(res.chunks_exact_mut(LANES)) {
                for _ in 0..per_tree {
                    let Some(p) = row else { break };
                    prefetch(p.wrapping_add(line * 16));
                    line += 1;
                    if line == lines {
                        (row, line) = (ahead.next(), 0);
                    }
                }
                let mut idx = [root; LANES];
                let x = buf.as_ptr();
                // SAFETY: the root is a node (children checked in
                // `try_from`); lane `l` reads row `l` of `buf`, `S >= nf`
                // values (rows past the block hold earlier or zero values).
                unsafe {
                    walk::<Small, LANES>(nodes.as_ptr(), &mut idx, sure, depth, |l| {
                        x.wrapping_add(l * S)
                    })
                };
                leaves.copy_from_slice(&idx);
            }
            f(b * LANES, block.len(), &res);
        }
    }

    /// [`Self::rows_leaves`] reading the rows in place (copies of those with
    /// a NaN), one pointer per walk.
    fn rows_in_place<N: Step>(
        &self,
        nodes: &[N],
        rows: &[Vec<f32>],
        f: &mut dyn FnMut(usize, usize, &[u32]),
    ) {
        let nf = self.n_features;
        let mut clean = vec![0f32; LANES * nf.max(1)];
        let mut res = vec![0u32; self.roots.len() * LANES];
        for (b, block) in rows.chunks(LANES).enumerate() {
            // Spare lanes read the first row; their result is ignored.
            let mut xs = [block[0].as_ptr(); LANES];
            for ((p, row), dst) in xs
                .iter_mut()
                .zip(block)
                .zip(clean.chunks_exact_mut(nf.max(1)))
            {
                if row[..nf].iter().any(|v| v.is_nan()) {
                    copy_clean(&mut dst[..nf], &row[..nf]);
                    *p = dst.as_ptr();
                } else {
                    *p = row.as_ptr();
                }
            }
            let trees = self.roots.iter().zip(self.depths.iter().zip(&self.shallow));
            for ((&root, (&depth, &sure)), leaves) in trees.zip(res.chunks_exact_mut(LANES)) {
                let mut idx = [root; LANES];
                // SAFETY: the root is a node (children checked in
                // `try_from`); every lane's row has `nf` values (checked
                // above), at least one if the tree splits.
                unsafe { walk::<N, LANES>(nodes.as_ptr(), &mut idx, sure, depth, |l| xs[l]) };
                leaves.copy_from_slice(&idx);
            }
            f(b * LANES, block.len(), &res);
        }
    }
}

/// `x` itself when it has no NaN, else a copy in `buf` with NaN → 0.
#[inline]
pub fn sanitized<'a>(x: &'a [f32], buf: &'a mut Vec<f32>) -> &'a [f32] {
    // Whole chunks without an early exit, so that the test vectorises.
    let nan = x
        .chunks(16)
        .any(|c| c.iter().fold(false, |a, v| a | v.is_nan()));
    if nan {
        buf.clear();
        buf.extend(x.iter().map(|&v| clean_value(v)));
        buf
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::tree::{grow, Binned, Target, TreeParams};

    fn trees(seed: u64) -> (Vec<Vec<f32>>, Vec<Tree>) {
        let mut r = Rng::new(seed);
        let x: Vec<Vec<f32>> = (0..600)
            .map(|_| (0..5).map(|_| r.normal() as f32).collect())
            .collect();
        let y: Vec<usize> = x
            .iter()
            .map(|v| (v[0] > 0.0) as usize + 2 * (v[1] * v[2] > 0.3) as usize)
            .collect();
        let w = vec![1f32; y.len()];
        let data = Binned::new(&x);
        let p = TreeParams {
            max_depth: 9,
            min_leaf: 1,
            mtry: 3,
        };
        let t = (0..13)
            .map(|_| {
                let mut idx: Vec<u32> = (0..x.len()).map(|_| r.below(x.len()) as u32).collect();
                let target = Target::Class { y: &y, w: &w, k: 4 };
                grow(&data, &target, &mut idx, &p, &mut r)
            })
            .collect();
        (x, t)
    }

    /// A random tree in the layout of `grow` (children appended when their
    /// parent splits), features below `nf`; some leaves early, some trees a
    /// single leaf.
    fn random_tree(r: &mut Rng, depth: usize, nf: usize, width: usize) -> Tree {
        let blank = Node {
            f: 0,
            t: 0.0,
            l: 0,
            r: 0,
        };
        let mut nodes = vec![blank.clone()];
        let mut leaves = vec![];
        let mut stack = vec![(0usize, 0usize)];
        while let Some((i, d)) = stack.pop() {
            if d >= depth || r.unit() < 0.2 {
                let l = (leaves.len() / width) as u32;
                leaves.extend((0..width).map(|_| r.normal() as f32));
                nodes[i] = Node {
                    f: u32::MAX,
                    t: 0.0,
                    l,
                    r: 0,
                };
            } else {
                let l = nodes.len() as u32;
                nodes.push(blank.clone());
                nodes.push(blank.clone());
                // Now and then a feature near the top of the range.
                let f = if r.unit() < 0.2 {
                    nf - 1 - r.below(nf.min(3))
                } else {
                    r.below(nf)
                };
                nodes[i] = Node {
                    f: f as u32,
                    t: (r.normal() * 0.7) as f32,
                    l,
                    r: l + 1,
                };
                stack.push((l as usize + 1, d + 1));
                stack.push((l as usize, d + 1));
            }
        }
        let t = Tree {
            nodes,
            leaves,
            width,
        };
        t.check().unwrap();
        t
    }

    /// Rows of `nf` values, with NaN, infinities and exact thresholds mixed in.
    fn rows(r: &mut Rng, n: usize, nf: usize, trees: &[Tree]) -> Vec<Vec<f32>> {
        let thresholds: Vec<f32> = trees
            .iter()
            .flat_map(|t| t.nodes.iter().filter(|n| n.f != u32::MAX).map(|n| n.t))
            .collect();
        (0..n)
            .map(|_| {
                (0..nf)
                    .map(|_| match r.below(40) {
                        0 => f32::NAN,
                        1 => f32::INFINITY,
                        2 => f32::NEG_INFINITY,
                        3 if !thresholds.is_empty() => thresholds[r.below(thresholds.len())],
                        _ => r.normal() as f32,
                    })
                    .collect()
            })
            .collect()
    }

    /// Leaf sums in tree order, as a tree-by-tree walk takes them.
    fn reference_sums(trees: &[Tree], x: &[f32]) -> Vec<f32> {
        let mut s = vec![0f32; trees[0].width];
        for t in trees {
            for (a, b) in s.iter_mut().zip(t.leaf(x)) {
                *a += b;
            }
        }
        s
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    /// Every prediction path against the tree walk: leaves, order, sums.
    fn check_against_tree_walk(e: &TreeEnsemble, trees: &[Tree], x: &[Vec<f32>]) {
        let w = e.width();
        for row in x {
            let mut seen = 0;
            e.for_each_leaf(row, |t, v| {
                assert_eq!(t, seen);
                assert_eq!(bits(v), bits(trees[t].leaf(row)));
                seen += 1;
            });
            assert_eq!(seen, trees.len());
            let mut s = vec![0f32; w];
            e.sum_row(row, &mut s);
            assert_eq!(bits(&s), bits(&reference_sums(trees, row)));
        }
        let mut count = vec![0usize; x.len()];
        e.for_each_leaf_rows(x, |t, r, v| {
            assert_eq!(count[r], t, "trees in order for each row");
            count[r] += 1;
            assert_eq!(bits(v), bits(trees[t].leaf(&x[r])));
        });
        assert!(count.iter().all(|&c| c == trees.len()));
        let mut sums = vec![f32::NAN; x.len() * w];
        e.sum_rows(x, &mut sums);
        for (row, s) in x.iter().zip(sums.chunks(w)) {
            assert_eq!(bits(s), bits(&reference_sums(trees, row)));
        }
    }

    #[test]
    fn flat_walk_reaches_the_same_leaf_as_the_tree_walk() {
        let (mut x, trees) = trees(4);
        let e = TreeEnsemble::from_trees(&trees);
        assert!(e.to_trees() == trees, "flattening loses nothing");
        assert!(e.n_trees() == 13 && e.n_features() <= 5);
        assert!(matches!(e.nodes, Nodes::Small(_)));
        // NaN and infinities take the same path as in the tree walk.
        x[0][1] = f32::NAN;
        x[1][0] = f32::INFINITY;
        x[2][3] = f32::NEG_INFINITY;
        // NaN in every feature a leaf test could read (feature 0).
        x[3][0] = f32::NAN;
        x[LANES + 1][0] = f32::NAN;
        check_against_tree_walk(&e, &trees, &x);
        // Blocks cut anywhere, and no rows at all.
        for n in [0, 1, LANES - 1, LANES, LANES + 1, 3 * LANES + 5] {
            check_against_tree_walk(&e, &trees, &x[..n]);
        }
    }

    #[test]
    fn random_trees_of_any_shape_width_and_feature_count() {
        let mut r = Rng::new(11);
        // Feature counts at both sides of row strides, beyond the largest
        // (rows read in place), and beyond 16 bits (12-byte nodes).
        for (case, &(nf, width, n_trees, depth)) in [
            (1, 1, 3, 3),
            (5, 4, 13, 9),
            (48, 5, 30, 12),
            (49, 8, 30, 12),
            (400, 9, 25, 10),
            (700, 17, 7, 8),
            (2064, 2, 9, 14),
            (2065, 3, 11, 10),
            (70_000, 4, 6, 7),
        ]
        .iter()
        .enumerate()
        {
            let trees: Vec<Tree> = (0..n_trees)
                .map(|_| random_tree(&mut r, depth, nf, width))
                .collect();
            let e = TreeEnsemble::from_trees(&trees);
            assert!(
                e.to_trees() == trees,
                "case {case}: flattening loses nothing"
            );
            assert_eq!(
                matches!(e.nodes, Nodes::Wide(_)),
                nf > 65_536,
                "case {case}"
            );
            let back: TreeEnsemble =
                serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
            assert!(back == e, "case {case}: through JSON");
            let n_rows = if nf > 10_000 { 30 } else { 200 };
            let x = rows(&mut r, n_rows, nf, &trees);
            check_against_tree_walk(&e, &trees, &x);
        }
    }

    #[test]
    fn wide_nodes_predict_as_small_ones() {
        let mut r = Rng::new(12);
        let trees: Vec<Tree> = (0..20).map(|_| random_tree(&mut r, 11, 30, 4)).collect();
        let e = TreeEnsemble::from_trees(&trees);
        let Nodes::Small(small) = &e.nodes else {
            panic!("small trees");
        };
        let mut wide = e.clone();
        wide.nodes = Nodes::Wide(
            small
                .iter()
                .map(|n| Wide {
                    feature: n.feature as u32,
                    delta: n.delta as u32,
                    threshold: n.threshold,
                })
                .collect(),
        );
        assert!(wide.to_trees() == trees);
        let x = rows(&mut r, 100, 30, &trees);
        check_against_tree_walk(&wide, &trees, &x);
    }

    #[test]
    fn nan_thresholds_send_everything_right() {
        // A model file could hold a NaN threshold: `v <= NaN` is false.
        let mut r = Rng::new(13);
        let mut trees: Vec<Tree> = (0..9).map(|_| random_tree(&mut r, 8, 6, 2)).collect();
        for t in &mut trees {
            for n in t.nodes.iter_mut().filter(|n| n.f != u32::MAX).step_by(3) {
                n.t = f32::NAN;
            }
        }
        let e = TreeEnsemble::from_trees(&trees);
        let x = rows(&mut r, 50, 6, &trees);
        check_against_tree_walk(&e, &trees, &x);
    }

    #[test]
    fn malformed_arrays_are_rejected() {
        let (_, trees) = trees(5);
        let e = TreeEnsemble::from_trees(&trees[..2]);
        let good = serde_json::to_value(&e).unwrap();
        let back: TreeEnsemble = serde_json::from_value(good.clone()).unwrap();
        assert_eq!(back, e);
        // A child pointing back at the root would loop; one past the end would panic.
        for (field, i, v) in [
            ("child", 0, serde_json::json!(0)),
            ("child", 0, serde_json::json!(100_000)),
            ("roots", 1, serde_json::json!(0)),
            ("width", usize::MAX, serde_json::json!(0)),
        ] {
            let mut bad = good.clone();
            if i == usize::MAX {
                bad[field] = v;
            } else {
                bad[field][i] = v;
            }
            assert!(
                serde_json::from_value::<TreeEnsemble>(bad).is_err(),
                "{field}[{i}] accepted"
            );
        }
        let mut bad = good.clone();
        bad["threshold"].as_array_mut().unwrap().pop();
        assert!(serde_json::from_value::<TreeEnsemble>(bad).is_err());
    }

    #[test]
    fn an_empty_ensemble_predicts_zero_sums() {
        let e = TreeEnsemble::empty(3);
        let x = vec![vec![1.0f32; 4]; 5];
        let mut s = vec![f32::NAN; 15];
        e.sum_rows(&x, &mut s);
        assert!(s.iter().all(|&v| v == 0.0));
        let mut one = vec![f32::NAN; 3];
        e.sum_row(&x[0], &mut one);
        assert_eq!(one, vec![0.0; 3]);
        e.for_each_leaf(&x[0], |_, _| panic!("no trees"));
    }
}
