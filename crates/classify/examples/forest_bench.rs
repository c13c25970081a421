//! Forest training and inference benchmark (one thread).
//!
//! cargo run -p classify --release --example forest_bench -- \
//!     [--data DIR] [--labels CSV] [--rows 100000] [--seconds 1] [--reps 5] [--forest-only]
//!
//! Builds flow rows from the labelled real captures, resamples them to
//! `--rows` rows with ±5 % jitter on every feature (so that the trees grow
//! as deep as on a large set of distinct flows), trains the random forest
//! and the gradient-boosted trees with default parameters and prints their
//! training time (boosting: wall time on all cores) and flow predictions
//! per second: batch prediction on the flattened trees, one row at a time
//! on the flattened trees, the same two on a frozen copy of the previous
//! flattened layout (16-byte nodes, eight walks in lockstep, module
//! `previous`), and the node-by-node tree walk as reference. `--rows 0`
//! uses the real rows as they are. Current and previous are measured
//! alternately `--reps` times (default 5) in this one process, so that both
//! see the same machine load; best and median rates and the median of the
//! per-round ratios are printed, with the load average. Times are this
//! thread's CPU time (from /proc/thread-self/schedstat where readable, else
//! wall clock), so other load on the machine does not count.
//!
//! cargo run -p classify --release --example forest_bench -- \
//!     --rows 0 --forest-only --reps 9 --seconds 0.5

use std::time::Instant;

use classify::tree::Tree;
use classify::{
    class_weights, Classifier, DatasetBuilder, DatasetOptions, GbtParams, GradientBoosting, Labels,
    RandomForest, RfParams,
};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// This thread's CPU time in seconds, or wall-clock seconds since `wall`.
fn cpu_s(wall: Instant) -> (f64, &'static str) {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .filter(|&ns| ns > 0)
        .map_or((wall.elapsed().as_secs_f64(), "wall"), |ns| {
            (ns as f64 / 1e9, "cpu")
        })
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let w = Instant::now();
    let (a, _) = cpu_s(w);
    let r = f();
    let (b, _) = cpu_s(w);
    (r, b - a)
}

/// Repeats `f` (which predicts `n` rows) for about `secs` s; predictions/s.
fn rate(n: usize, secs: f64, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let w = Instant::now();
    let (start, _) = cpu_s(w);
    let mut done = 0usize;
    let mut sink = 0usize;
    loop {
        sink = sink.wrapping_add(f());
        done += n;
        let (now, _) = cpu_s(w);
        if now - start >= secs {
            return (done as f64 / (now - start), sink);
        }
    }
}

fn walk_forest(trees: &[Tree], k: usize, x: &[Vec<f32>]) -> Vec<usize> {
    // The previous RandomForest::predict_batch: blocks of rows, tree by tree.
    let mut acc = vec![0f32; x.len() * k];
    for (bi, block) in x.chunks(256).enumerate() {
        let base = bi * 256 * k;
        for t in trees {
            for (i, r) in block.iter().enumerate() {
                let a = &mut acc[base + i * k..base + (i + 1) * k];
                for (s, v) in a.iter_mut().zip(t.leaf(r)) {
                    *s += v;
                }
            }
        }
    }
    acc.chunks(k).map(classify::models::argmax).collect()
}

/// Nodes visited below the root by a walk of `t` on `x`.
fn path_len(t: &Tree, x: &[f32]) -> usize {
    let mut i = 0;
    let mut n = 0;
    while t.nodes[i].f != u32::MAX {
        let nd = &t.nodes[i];
        let v = x[nd.f as usize];
        i = if v.is_nan() || v <= nd.t { nd.l } else { nd.r } as usize;
        n += 1;
    }
    n
}

fn sum(p: &[usize]) -> usize {
    p.iter().fold(0, |a, &b| a.wrapping_add(b))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let data = arg(&args, "--data", "/work/shared/data/pcap-apps/ndpi");
    let labels = arg(&args, "--labels", "/work/shared/data/labelled/labels.csv");
    let rows: usize = arg(&args, "--rows", "100000").parse()?;
    let secs: f64 = arg(&args, "--seconds", "1").parse()?;

    let mut files = vec![];
    let mut stack = vec![std::path::PathBuf::from(&data)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
                files.push(p.to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    let mut b = DatasetBuilder::new(Labels::from_csv(&labels)?, DatasetOptions::default());
    for f in &files {
        b.add_capture(f)?;
    }
    let (ds, _) = b.finish();
    let k = ds.class_names.len();
    // Resample with jitter (xorshift, fixed seed).
    let mut r = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        r
    };
    let mut x = Vec::with_capacity(rows);
    let mut y = Vec::with_capacity(rows);
    if rows == 0 {
        // The real rows as they are.
        x = ds.x.clone();
        y = ds.y.clone();
    }
    let rows = x.len().max(rows);
    for _ in x.len()..rows {
        let i = (next() % ds.len() as u64) as usize;
        x.push(
            ds.x[i]
                .iter()
                .map(|v| v * (0.95 + 0.1 * (next() % 1000) as f32 / 1000.0))
                .collect::<Vec<f32>>(),
        );
        y.push(ds.y[i]);
    }
    let w = class_weights(&y, k);
    let clock = cpu_s(Instant::now()).1;
    println!(
        "{rows} rows ({} distinct real flows, {} features, {k} classes); times: {clock} time of one thread",
        ds.len(),
        x[0].len()
    );

    let mut rf = RandomForest::new(RfParams {
        threads: 1,
        ..Default::default()
    });
    let (res, train) = timed(|| rf.fit(&x, &y, k, Some(&w)));
    res?;
    let cores = std::thread::available_parallelism().map_or(1, |t| t.get());
    let mut par = RandomForest::new(RfParams::default());
    let t = Instant::now();
    par.fit(&x, &y, k, Some(&w))?;
    let wall = t.elapsed().as_secs_f64();
    assert!(
        par.ensemble() == rf.ensemble(),
        "the same forest on any number of threads"
    );
    let e = rf.ensemble();
    println!(
        "random-forest: {} trees, {} nodes, train {train:.2} s on one thread ({clock}), {wall:.2} s wall on {cores} threads",
        e.n_trees(),
        e.n_nodes()
    );
    let trees = e.to_trees();
    assert_eq!(
        rf.predict_batch(&x),
        walk_forest(&trees, k, &x),
        "flat and tree-walk predictions agree"
    );
    // Steps per walk: each its own path, and in lockstep groups of rows (a
    // group steps until its longest path ends): `flat::LANES` rows now, 8
    // in the previous layout.
    let lanes = classify::flat::LANES;
    let (mut own, mut lock, mut lock8) = (0usize, 0usize, 0usize);
    for t in &trees {
        let p: Vec<usize> = x.iter().map(|r| path_len(t, r)).collect();
        own += p.iter().sum::<usize>();
        for (n, sum) in [(lanes, &mut lock), (8, &mut lock8)] {
            for g in p.chunks(n) {
                *sum += g.iter().max().unwrap_or(&0) * g.len();
            }
        }
    }
    let walks = (trees.len() * x.len()) as f64;
    println!(
        "steps per tree walk: {:.2} own path, {:.2} in lockstep groups of {lanes} rows ({:.2} in groups of 8)",
        own as f64 / walks,
        lock as f64 / walks,
        lock8 as f64 / walks
    );
    let old = previous::Forest::new(&trees, k);
    assert_eq!(
        old.predict_batch(&x),
        walk_forest(&trees, k, &x),
        "the previous layout agrees"
    );
    let mut p = vec![0f32; k];
    let mut singles = vec![];
    for r in &x {
        rf.predict_proba_into(r, &mut p);
        let mut q = vec![0f32; k];
        old.predict_proba_into(r, &mut q);
        assert_eq!(p, q, "one row: the same probabilities");
        singles.push(classify::models::argmax(&p));
    }
    assert_eq!(singles, rf.predict_batch(&x), "one row at a time = batch");
    let reps: usize = arg(&args, "--reps", "5").parse::<usize>()?.max(1);
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    println!(
        "load average before: {}; {reps} rounds of {secs} s per measurement",
        load()
    );
    // Batch, then one row at a time, each current then previous, in rounds.
    let mut m = vec![vec![]; 4];
    let mut sink = 0usize;
    for _ in 0..reps {
        let (r, c) = rate(rows, secs, || sum(&rf.predict_batch(&x)));
        m[0].push(r);
        let (r, c2) = rate(rows, secs, || sum(&old.predict_batch(&x)));
        m[1].push(r);
        let (r, c3) = rate(rows, secs, || {
            x.iter()
                .map(|r| {
                    rf.predict_proba_into(r, &mut p);
                    classify::models::argmax(&p)
                })
                .fold(0, |a: usize, b| a.wrapping_add(b))
        });
        m[2].push(r);
        let (r, c4) = rate(rows, secs, || {
            x.iter()
                .map(|r| {
                    old.predict_proba_into(r, &mut p);
                    classify::models::argmax(&p)
                })
                .fold(0, |a: usize, b| a.wrapping_add(b))
        });
        m[3].push(r);
        sink = sink.wrapping_add(c ^ c2 ^ c3 ^ c4);
    }
    let (walk, _) = rate(rows, secs, || sum(&walk_forest(&trees, k, &x)));
    let stats = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        (v[v.len() - 1], v[v.len() / 2], v[0])
    };
    let ratio = |a: &[f64], b: &[f64]| {
        let mut r: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
        r.sort_by(|a, b| a.total_cmp(b));
        (r[r.len() / 2], r[0], r[r.len() - 1])
    };
    for (name, cur, prev) in [("batch", &m[0], &m[1]), ("one row at a time", &m[2], &m[3])] {
        let (cb, cm, cl) = stats(cur);
        let (pb, pm, pl) = stats(prev);
        let (rm, rl, rh) = ratio(cur, prev);
        println!(
            "random-forest {name}: {:.3} M/s best, {:.3} median, {:.3} worst; previous layout {:.3} best, {:.3} median, {:.3} worst; ratio median x{rm:.2} ({rl:.2}-{rh:.2})",
            cb / 1e6,
            cm / 1e6,
            cl / 1e6,
            pb / 1e6,
            pm / 1e6,
            pl / 1e6
        );
    }
    println!(
        "random-forest tree walk (node by node): {:.3} M/s; load average after: {} (checksum {sink})",
        walk / 1e6,
        load()
    );

    if args.iter().any(|a| a == "--forest-only") {
        return Ok(());
    }
    // The class trees of a round grow on all cores: wall time, as the
    // other threads' CPU time would not count on this one.
    let mut gbt = GradientBoosting::new(GbtParams::default());
    let t = Instant::now();
    gbt.fit(&x, &y, k, Some(&w))?;
    let train = t.elapsed().as_secs_f64();
    let gold = previous::Forest::new(&gbt.ensemble().to_trees(), 1);
    let lr = gbt.params.learning_rate;
    let gbatch = gbt.predict_batch(&x);
    assert_eq!(gold.gbt_predict_batch(&x, gbt.base(), lr), gbatch);
    let mut m = vec![vec![]; 4];
    for _ in 0..reps {
        let (r, c) = rate(rows, secs, || sum(&gbt.predict_batch(&x)));
        m[0].push(r);
        let (r, c2) = rate(rows, secs, || {
            sum(&gold.gbt_predict_batch(&x, gbt.base(), lr))
        });
        m[1].push(r);
        let (r, c3) = rate(rows, secs, || {
            x.iter()
                .map(|r| {
                    gbt.predict_proba_into(r, &mut p);
                    classify::models::argmax(&p)
                })
                .fold(0, |a: usize, b| a.wrapping_add(b))
        });
        m[2].push(r);
        let (r, c4) = rate(rows, secs, || {
            x.iter()
                .map(|r| gold.gbt_predict(r, gbt.base(), lr, &mut p))
                .fold(0, |a: usize, b| a.wrapping_add(b))
        });
        m[3].push(r);
        sink = sink.wrapping_add(c ^ c2 ^ c3 ^ c4);
    }
    println!(
        "gbt: {} trees, train {train:.2} s wall on {cores} threads (checksum {sink})",
        gbt.ensemble().n_trees()
    );
    for (name, cur, prev) in [("batch", &m[0], &m[1]), ("one row at a time", &m[2], &m[3])] {
        let (cb, cm, cl) = stats(cur);
        let (pb, pm, pl) = stats(prev);
        let (rm, rl, rh) = ratio(cur, prev);
        println!(
            "gbt {name}: {:.3} M/s best, {:.3} median, {:.3} worst; previous layout {:.3} best, {:.3} median, {:.3} worst; ratio median x{rm:.2} ({rl:.2}-{rh:.2})",
            cb / 1e6,
            cm / 1e6,
            cl / 1e6,
            pb / 1e6,
            pm / 1e6,
            pl / 1e6
        );
    }
    Ok(())
}

/// The flattened layout before this one, frozen for comparison: 16-byte
/// nodes (feature, threshold, left child, leaf value offset), a leaf its
/// own child with an infinite threshold, eight walks in lockstep with an
/// early exit, blocks of 16 rows down one tree at a time (the forest's
/// `predict_batch` and `predict_proba_into` as they were).
mod previous {
    use classify::tree::Tree;

    const LANES: usize = 8;
    const BLOCK: usize = 16;

    #[derive(Clone, Copy)]
    struct FlatNode {
        feature: u32,
        threshold: f32,
        child: u32,
        value: u32,
    }

    pub struct Forest {
        k: usize,
        nodes: Vec<FlatNode>,
        roots: Vec<u32>,
        depths: Vec<u32>,
        shallow: Vec<u32>,
        values: Vec<f32>,
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

    fn clean_value(v: f32) -> f32 {
        if v.is_nan() {
            0.0
        } else {
            v
        }
    }

    impl Forest {
        pub fn new(trees: &[Tree], k: usize) -> Forest {
            let mut f = Forest {
                k,
                nodes: vec![],
                roots: vec![],
                depths: vec![],
                shallow: vec![],
                values: vec![],
            };
            for t in trees {
                assert_eq!(t.width, k);
                let base = f.nodes.len() as u32;
                let vbase = f.values.len() as u32;
                f.roots.push(base);
                let mut depth = vec![0u32; t.nodes.len()];
                let (mut deep, mut short) = (0, u32::MAX);
                for (i, nd) in t.nodes.iter().enumerate() {
                    if nd.f == u32::MAX {
                        f.nodes.push(FlatNode {
                            feature: 0,
                            threshold: f32::INFINITY,
                            child: base + i as u32,
                            value: vbase + nd.l * k as u32,
                        });
                        deep = deep.max(depth[i]);
                        short = short.min(depth[i]);
                    } else {
                        let l = nd.l as usize;
                        depth[l] = depth[i] + 1;
                        depth[l + 1] = depth[i] + 1;
                        f.nodes.push(FlatNode {
                            feature: nd.f,
                            threshold: nd.t,
                            child: base + nd.l,
                            value: 0,
                        });
                    }
                }
                f.depths.push(deep);
                f.shallow.push(short);
                f.values.extend_from_slice(&t.leaves);
            }
            f
        }

        /// # Safety
        /// Every `idx[l]` is a node and every `xs[l]` a row with every
        /// feature of the trees.
        #[inline(always)]
        unsafe fn walk(
            &self,
            idx: &mut [u32; LANES],
            xs: &[*const f32; LANES],
            sure: u32,
            steps: u32,
        ) {
            let nodes = self.nodes.as_ptr();
            let step = |idx: &mut [u32; LANES]| {
                let mut moved = false;
                for l in 0..LANES {
                    let i = idx[l];
                    // SAFETY: the caller's promise.
                    let (nd, v) = unsafe {
                        let nd = &*nodes.add(i as usize);
                        (nd, *xs[l].add(nd.feature as usize))
                    };
                    moved |= nd.child != i;
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

        fn leaf_values(&self, i: u32) -> &[f32] {
            let v = self.nodes[i as usize].value as usize;
            &self.values[v..v + self.k]
        }

        pub fn predict_proba_into(&self, x: &[f32], p: &mut [f32]) {
            p.iter_mut().for_each(|v| *v = 0.0);
            self.row_leaves(x, |_, v| {
                for (a, b) in p.iter_mut().zip(v) {
                    *a += b;
                }
            });
            let s: f32 = p.iter().sum();
            if s > 0.0 {
                p.iter_mut().for_each(|v| *v /= s);
            }
        }

        /// Leaf of every tree for one row, in tree order (as the
        /// boosting's `predict_proba_into` walked them).
        fn row_leaves(&self, x: &[f32], mut f: impl FnMut(usize, &[f32])) {
            let buf: Vec<f32>;
            let x = if x.iter().any(|v| v.is_nan()) {
                buf = x.iter().map(|&v| clean_value(v)).collect();
                &buf[..]
            } else {
                x
            };
            let xs = [x.as_ptr(); LANES];
            let nt = self.roots.len();
            let mut t0 = 0;
            while t0 < nt {
                let lanes = (nt - t0).min(LANES);
                let mut idx = [self.roots[t0 + lanes - 1]; LANES];
                let group = t0..t0 + lanes;
                idx[..lanes].copy_from_slice(&self.roots[group.clone()]);
                let steps = self.depths[group.clone()]
                    .iter()
                    .max()
                    .copied()
                    .unwrap_or(0);
                let sure = self.shallow[group].iter().min().copied().unwrap_or(0);
                // SAFETY: roots are nodes; the row has every feature.
                unsafe { self.walk(&mut idx, &xs, sure, steps) };
                for (l, &i) in idx[..lanes].iter().enumerate() {
                    f(t0 + l, self.leaf_values(i));
                }
                t0 += lanes;
            }
        }

        /// The boosting's `predict_proba_into` and argmax as they were
        /// (`self` holds its trees, leaf width 1).
        pub fn gbt_predict(&self, x: &[f32], base: &[f32], lr: f32, p: &mut [f32]) -> usize {
            let k = base.len();
            p.copy_from_slice(base);
            self.row_leaves(x, |i, v| p[i % k] += lr * v[0]);
            softmax(p);
            classify::models::argmax(p)
        }

        /// The boosting's `predict_batch` as it was.
        pub fn gbt_predict_batch(&self, x: &[Vec<f32>], base: &[f32], lr: f32) -> Vec<usize> {
            let k = base.len();
            let mut acc = vec![0f32; BLOCK * k];
            let mut out = Vec::with_capacity(x.len());
            for block in x.chunks(BLOCK) {
                let acc = &mut acc[..block.len() * k];
                for row in acc.chunks_mut(k) {
                    row.copy_from_slice(base);
                }
                self.block_leaves(block, |t, r, v| acc[r * k + t % k] += lr * v[0]);
                for row in acc.chunks_mut(k) {
                    softmax(row);
                    out.push(classify::models::argmax(row));
                }
            }
            out
        }

        /// `f(tree, row, leaf values)` for a block of at most `BLOCK` rows.
        fn block_leaves(&self, block: &[Vec<f32>], mut f: impl FnMut(usize, usize, &[f32])) {
            let clean: Vec<Vec<f32>>;
            let rows: &[Vec<f32>] = if block.iter().any(|r| r.iter().any(|v| v.is_nan())) {
                clean = block
                    .iter()
                    .map(|r| r.iter().map(|&v| clean_value(v)).collect())
                    .collect();
                &clean
            } else {
                block
            };
            let trees = self.roots.iter().zip(self.depths.iter().zip(&self.shallow));
            for (t, (&root, (&depth, &sure))) in trees.enumerate() {
                for (c, chunk) in rows.chunks(LANES).enumerate() {
                    let mut xs = [rows[0].as_ptr(); LANES];
                    for (p, r) in xs.iter_mut().zip(chunk) {
                        *p = r.as_ptr();
                    }
                    let mut idx = [root; LANES];
                    // SAFETY: the root is a node; rows have every feature.
                    unsafe { self.walk(&mut idx, &xs, sure, depth) };
                    for (l, &i) in idx.iter().enumerate().take(chunk.len()) {
                        f(t, c * LANES + l, self.leaf_values(i));
                    }
                }
            }
        }

        pub fn predict_batch(&self, x: &[Vec<f32>]) -> Vec<usize> {
            let k = self.k;
            let mut acc = vec![0f32; BLOCK * k];
            let mut out = Vec::with_capacity(x.len());
            for block in x.chunks(BLOCK) {
                let acc = &mut acc[..block.len() * k];
                acc.iter_mut().for_each(|v| *v = 0.0);
                self.block_leaves(block, |_, r, v| {
                    for (s, v) in acc[r * k..(r + 1) * k].iter_mut().zip(v) {
                        *s += v;
                    }
                });
                out.extend(acc.chunks(k).map(classify::models::argmax));
            }
            out
        }
    }
}
