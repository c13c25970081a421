//! Forest training and inference benchmark (one thread).
//!
//! cargo run -p classify --release --example forest_bench -- \
//!     [--data DIR] [--labels CSV] [--rows 100000] [--seconds 1] [--forest-only]
//!
//! Builds flow rows from the labelled real captures, resamples them to
//! `--rows` rows with ±5 % jitter on every feature (so that the trees grow
//! as deep as on a large set of distinct flows), trains the random forest
//! and the gradient-boosted trees with default parameters and prints their
//! training time and flow predictions per second: batch prediction on the
//! flattened trees, one row at a time on the flattened trees, and the
//! previous node-by-node tree walk as reference. `--rows 0` uses the real
//! rows as they are. Times are this thread's
//! CPU time (from /proc/thread-self/schedstat where readable, else wall
//! clock), so other load on the machine does not count.

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
    // Steps per walk: each its own path, and in lockstep groups of 8 rows
    // (a group steps until its longest path ends).
    let (mut own, mut lock) = (0usize, 0usize);
    for t in &trees {
        for g in x.chunks(8) {
            let p: Vec<usize> = g.iter().map(|r| path_len(t, r)).collect();
            own += p.iter().sum::<usize>();
            lock += p.iter().max().unwrap_or(&0) * g.len();
        }
    }
    let walks = (trees.len() * x.len()) as f64;
    println!(
        "steps per tree walk: {:.2} own path, {:.2} in lockstep groups of 8 rows",
        own as f64 / walks,
        lock as f64 / walks
    );
    let (flat, s1) = rate(rows, secs, || sum(&rf.predict_batch(&x)));
    let mut p = vec![0f32; k];
    let (single, s2) = rate(rows, secs, || {
        x.iter()
            .map(|r| {
                rf.predict_proba_into(r, &mut p);
                classify::models::argmax(&p)
            })
            .fold(0, |a: usize, b| a.wrapping_add(b))
    });
    let (walk, s3) = rate(rows, secs, || sum(&walk_forest(&trees, k, &x)));
    println!(
        "random-forest predictions/s: flat batch {flat:.0}, flat one row at a time {single:.0}, tree walk (previous) {walk:.0} (checksums {s1} {s2} {s3})"
    );

    if args.iter().any(|a| a == "--forest-only") {
        return Ok(());
    }
    let mut gbt = GradientBoosting::new(GbtParams::default());
    let (res, train) = timed(|| gbt.fit(&x, &y, k, Some(&w)));
    res?;
    let (flat, _) = rate(rows, secs, || sum(&gbt.predict_batch(&x)));
    let (single, _) = rate(rows, secs, || {
        x.iter()
            .map(|r| {
                gbt.predict_proba_into(r, &mut p);
                classify::models::argmax(&p)
            })
            .fold(0, |a: usize, b| a.wrapping_add(b))
    });
    println!(
        "gbt: {} trees, train {train:.2} s; predictions/s: flat batch {flat:.0}, flat one row at a time {single:.0}",
        gbt.ensemble().n_trees()
    );
    Ok(())
}
