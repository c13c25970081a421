//! Flattened tree ensembles for fast inference.
//!
//! Every tree of a forest (or of a boosting) lives in one contiguous array
//! of 16-byte nodes: feature index, threshold, index of the left child (the
//! right child follows it) and, for a leaf, the offset of its values in one
//! shared value array. A leaf points at itself with an infinite threshold,
//! so a walk can take a fixed number of steps without branching on the node
//! kind; several walks (rows of a batch, or trees of one row) advance in
//! lockstep, which lets the processor overlap their memory loads.
//!
//! The partition is exactly that of [`Tree::leaf`]: a value goes left when
//! `value <= threshold`, NaN inputs count as 0.

use serde::{Deserialize, Serialize};

use crate::tree::{Node, Tree};

/// Walks advanced together.
const LANES: usize = 8;
/// Rows per block in batch prediction (the block's accumulators and the
/// trees stay in cache).
pub const BLOCK: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct FlatNode {
    feature: u32,
    threshold: f32,
    /// Left child (right = left + 1); a leaf: its own index.
    child: u32,
    /// A leaf: offset of its values in `values`.
    value: u32,
}

impl FlatNode {
    #[inline]
    fn is_leaf(&self, index: usize) -> bool {
        self.child as usize == index
    }
}

/// An ensemble of trees in one node array. Leaves hold `width` values each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "EnsembleRepr", into = "EnsembleRepr")]
pub struct TreeEnsemble {
    width: usize,
    nodes: Vec<FlatNode>,
    roots: Vec<u32>,
    /// Longest root-to-leaf path (edges) per tree.
    depths: Vec<u32>,
    /// Shortest root-to-leaf path per tree: every walk takes that many
    /// steps without meeting a leaf.
    shallow: Vec<u32>,
    values: Vec<f32>,
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
        let n = e.nodes.len();
        let mut r = EnsembleRepr {
            width: e.width,
            roots: e.roots,
            feature: Vec::with_capacity(n),
            threshold: Vec::with_capacity(n),
            child: Vec::with_capacity(n),
            values: e.values,
        };
        for (i, nd) in e.nodes.iter().enumerate() {
            if nd.is_leaf(i) {
                r.feature.push(-1);
                r.threshold.push(0.0);
                r.child.push(nd.value / e.width.max(1) as u32);
            } else {
                r.feature.push(nd.feature as i32);
                r.threshold.push(nd.threshold);
                r.child.push(nd.child);
            }
        }
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
        if n >= u32::MAX as usize / 2 || r.values.len() >= u32::MAX as usize {
            return Err("ensemble too large".into());
        }
        let mut nodes = Vec::with_capacity(n);
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
                    let off = c * r.width;
                    if off + r.width > r.values.len() {
                        return Err(format!("node {i}: leaf {c} beyond the values"));
                    }
                    nodes.push(FlatNode {
                        feature: 0,
                        threshold: f32::INFINITY,
                        child: i as u32,
                        value: off as u32,
                    });
                    max_depth = max_depth.max(depth[i]);
                    min_depth = min_depth.min(depth[i]);
                } else {
                    if c <= i || c + 1 >= end {
                        return Err(format!("node {i}: child {c} outside tree {t}"));
                    }
                    depth[c] = depth[c].max(depth[i] + 1);
                    depth[c + 1] = depth[c + 1].max(depth[i] + 1);
                    n_features = n_features.max(r.feature[i] as usize + 1);
                    nodes.push(FlatNode {
                        feature: r.feature[i] as u32,
                        threshold: r.threshold[i],
                        child: c as u32,
                        value: 0,
                    });
                }
            }
            depths.push(max_depth);
            shallow.push(min_depth);
        }
        Ok(TreeEnsemble {
            width: r.width,
            nodes,
            roots: r.roots,
            depths,
            shallow,
            values: r.values,
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

impl TreeEnsemble {
    /// An ensemble without trees.
    pub fn empty(width: usize) -> Self {
        TreeEnsemble {
            width: width.max(1),
            nodes: vec![],
            roots: vec![],
            depths: vec![],
            shallow: vec![],
            values: vec![],
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
                    .map_or(self.nodes.len(), |&x| x as usize);
                let span = start..end;
                let offsets = span
                    .clone()
                    .filter(|&i| self.nodes[i].is_leaf(i))
                    .map(|i| self.nodes[i].value as usize);
                let base = offsets.clone().min().unwrap_or(0);
                let top = offsets.max().map_or(0, |o| o + w);
                let leaves = self.values[base..top].to_vec();
                let nodes = span
                    .map(|i| {
                        let nd = &self.nodes[i];
                        if nd.is_leaf(i) {
                            Node {
                                f: u32::MAX,
                                t: 0.0,
                                l: ((nd.value as usize - base) / w) as u32,
                                r: 0,
                            }
                        } else {
                            let l = nd.child - start as u32;
                            Node {
                                f: nd.feature,
                                t: nd.threshold,
                                l,
                                r: l + 1,
                            }
                        }
                    })
                    .collect();
                Tree {
                    nodes,
                    leaves,
                    width: w,
                }
            })
            .collect()
    }

    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    pub fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows must have at least this many values.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Calls `f(tree, leaf values)` for every tree, in tree order, for one
    /// row (NaN counts as 0).
    #[inline]
    pub fn for_each_leaf(&self, x: &[f32], mut f: impl FnMut(usize, &[f32])) {
        assert!(
            x.len() >= self.n_features,
            "row shorter than the model's features"
        );
        // A NaN would move a walk off its leaf (the leaf test is `v <= inf`).
        let mut buf = Vec::new();
        let x = sanitized(x, &mut buf);
        let w = self.width;
        let nt = self.roots.len();
        let xs = [x.as_ptr(); LANES];
        let mut t0 = 0;
        while t0 < nt {
            let lanes = (nt - t0).min(LANES);
            // Spare lanes repeat the last tree; their result is ignored.
            let mut idx = [self.roots[t0 + lanes - 1]; LANES];
            let (mut sure, mut steps) = (u32::MAX, 0);
            let group = t0..t0 + lanes;
            for ((i, &root), (&deep, &short)) in idx
                .iter_mut()
                .zip(&self.roots[group.clone()])
                .zip(self.depths[group.clone()].iter().zip(&self.shallow[group]))
            {
                *i = root;
                steps = steps.max(deep);
                sure = sure.min(short);
            }
            // SAFETY: roots are nodes; `x` was checked above.
            unsafe { self.walk(&mut idx, &xs, sure, steps) };
            for (l, &i) in idx.iter().enumerate().take(lanes) {
                let v = self.nodes[i as usize].value as usize;
                f(t0 + l, &self.values[v..v + w]);
            }
            t0 += lanes;
        }
    }

    /// Calls `f(tree, row, leaf values)` for every tree and row of a block
    /// of at most [`BLOCK`] rows (NaN counts as 0); for each row, trees
    /// come in order.
    #[inline]
    pub fn for_each_leaf_block(&self, block: &[Vec<f32>], mut f: impl FnMut(usize, usize, &[f32])) {
        assert!(block.len() <= BLOCK);
        for r in block {
            assert!(
                r.len() >= self.n_features,
                "row shorter than the model's features"
            );
        }
        // A NaN would move a walk off its leaf (the leaf test is `v <= inf`).
        let mut clean: Vec<Vec<f32>> = Vec::new();
        let rows: &[Vec<f32>] = if block.iter().any(|r| r.iter().any(|v| v.is_nan())) {
            clean.extend(
                block
                    .iter()
                    .map(|r| r.iter().map(|&v| clean_value(v)).collect()),
            );
            &clean
        } else {
            block
        };
        let Some(first) = rows.first() else {
            return;
        };
        let w = self.width;
        let trees = self.roots.iter().zip(self.depths.iter().zip(&self.shallow));
        for (t, (&root, (&depth, &sure))) in trees.enumerate() {
            for (c, chunk) in rows.chunks(LANES).enumerate() {
                // Spare lanes repeat the first row; their result is ignored.
                let mut xs = [first.as_ptr(); LANES];
                for (p, r) in xs.iter_mut().zip(chunk) {
                    *p = r.as_ptr();
                }
                let mut idx = [root; LANES];
                // SAFETY: the root is a node; the rows were checked above.
                unsafe { self.walk(&mut idx, &xs, sure, depth) };
                for (l, &i) in idx.iter().enumerate().take(chunk.len()) {
                    let v = self.nodes[i as usize].value as usize;
                    f(t, c * LANES + l, &self.values[v..v + w]);
                }
            }
        }
    }

    /// Advances `LANES` walks (node `idx[l]` on the row at `xs[l]`) in
    /// lockstep: `sure` steps where no walk can be at a leaf yet, then
    /// until all are at a leaf (at most `steps` in all: the depth of the
    /// deepest tree among them).
    ///
    /// # Safety
    /// Every `idx[l]` is a node of this ensemble and every `xs[l]` points
    /// at a row of at least `n_features` values.
    #[inline(always)]
    unsafe fn walk(&self, idx: &mut [u32; LANES], xs: &[*const f32; LANES], sure: u32, steps: u32) {
        let nodes = self.nodes.as_ptr();
        // One step of every walk; whether any of them was not at a leaf.
        let step = |idx: &mut [u32; LANES]| {
            let mut moved = false;
            for l in 0..LANES {
                let i = idx[l];
                // SAFETY: walks start at nodes and only follow children,
                // all checked to lie inside `nodes` when the ensemble was
                // built (`try_from`); a leaf keeps its own index. Feature
                // indices are below `n_features` (the caller's promise).
                let (nd, v) = unsafe {
                    let nd = &*nodes.add(i as usize);
                    (nd, *xs[l].add(nd.feature as usize))
                };
                moved |= nd.child != i;
                // Left when `v <= threshold` (false for a NaN threshold).
                let left = v <= nd.threshold;
                idx[l] = nd.child + (!left) as u32;
            }
            moved
        };
        let sure = sure.min(steps);
        for _ in 0..sure {
            step(idx);
        }
        for _ in sure..steps {
            if !step(idx) {
                break;
            }
        }
    }
}

/// `x` itself when it has no NaN, else a copy in `buf` with NaN → 0.
#[inline]
pub fn sanitized<'a>(x: &'a [f32], buf: &'a mut Vec<f32>) -> &'a [f32] {
    if x.iter().any(|v| v.is_nan()) {
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

    #[test]
    fn flat_walk_reaches_the_same_leaf_as_the_tree_walk() {
        let (mut x, trees) = trees(4);
        let e = TreeEnsemble::from_trees(&trees);
        assert!(e.to_trees() == trees, "flattening loses nothing");
        assert!(e.n_trees() == 13 && e.n_features() <= 5);
        // NaN and infinities take the same path as in the tree walk.
        x[0][1] = f32::NAN;
        x[1][0] = f32::INFINITY;
        x[2][3] = f32::NEG_INFINITY;
        // NaN in every feature a leaf test could read (feature 0).
        x[3][0] = f32::NAN;
        x[BLOCK + 1][0] = f32::NAN;
        for row in &x {
            let mut seen = 0;
            e.for_each_leaf(row, |t, v| {
                assert_eq!(t, seen);
                assert_eq!(v, trees[t].leaf(row));
                seen += 1;
            });
            assert_eq!(seen, trees.len());
        }
        for (b, block) in x.chunks(BLOCK).enumerate() {
            let mut count = vec![0usize; block.len()];
            e.for_each_leaf_block(block, |t, r, v| {
                assert_eq!(count[r], t, "trees in order for each row");
                count[r] += 1;
                assert_eq!(v, trees[t].leaf(&x[b * BLOCK + r]));
            });
            assert!(count.iter().all(|&c| c == trees.len()));
        }
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
}
