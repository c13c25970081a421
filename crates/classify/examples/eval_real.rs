//! Benchmark on the real labelled captures, held out by capture file.
//!
//! cargo run -p classify --release --example eval_real -- \
//!     [--data DIR[,DIR…]] [--labels CSV[,CSV…]] [--folds K] [--seeds N] [--export CSV] [--no-bench]
//!     [--train-prefix] [--group-weight] [--by-file] [--show FILE|'*']
//!
//! Builds the dataset (whole flows plus 8-packet prefixes for early
//! classification) from every capture under DIR with labels.csv, runs
//! k-fold cross-validation grouped by capture file for several seeds,
//! trains the random forest, gradient-boosted trees and MLP on the whole
//! flows of identical folds, prints the pooled benchmark table, then
//! streams the held-out captures through a forest trained on whole flows
//! and prefixes (`StreamingClassifier`) and reports per-packet accuracy
//! with 5 s windows. `--export` writes the features and
//! fold assignments for scripts/classify_baseline.py. `--by-file` counts
//! each model's misses per capture file; `--show` prints every missed flow
//! of one capture (`'*'`: of all), with its evidence and tokens.

use std::io::Write;
use std::time::Instant;

use capture::CaptureReader;
use classify::labels::base_name;
use classify::{
    class_weights, Classifier, Dataset, DatasetBuilder, DatasetOptions, Evaluation, Labels, Model,
    ModelFile, ModelKind, Report, ReportRow, StreamingClassifier, StreamingConfig, TrainingSummary,
    WindowStats, WindowedEvaluator,
};

fn captures(dir: &str) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![std::path::PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let s = p.to_string_lossy().to_string();
                if s.ends_with(".pcap") || s.ends_with(".pcapng") {
                    out.push(s);
                }
            }
        }
    }
    out.sort();
    out
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let data = arg(&args, "--data", "/work/shared/data/pcap-apps/ndpi");
    let labels_path = arg(&args, "--labels", "/work/shared/data/labelled/labels.csv");
    let folds: usize = arg(&args, "--folds", "5").parse()?;
    let seeds: u64 = arg(&args, "--seeds", "3").parse()?;
    let export = arg(&args, "--export", "");
    let threshold: f32 = arg(&args, "--threshold", "0.5").parse()?;
    let prefix: usize = arg(&args, "--prefix", "8").parse()?;
    let rf_trees: usize = arg(&args, "--rf-trees", "50").parse()?;
    let rf_depth: usize = arg(&args, "--rf-depth", "14").parse()?;
    let rf_mtry: usize = arg(&args, "--rf-mtry", "0").parse()?;
    let group_weight = args.iter().any(|a| a == "--group-weight");
    let evidence = !args.iter().any(|a| a == "--no-evidence");
    let catalogue_weight: f32 = arg(
        &args,
        "--catalogue-weight",
        &classify::model_file::CATALOGUE_WEIGHT.to_string(),
    )
    .parse()?;
    // Benchmark models also learn the prefix rows of the training flows.
    let train_prefix = args.iter().any(|a| a == "--train-prefix");

    // Several data directories and label files: comma-separated.
    let files: Vec<String> = data.split(',').flat_map(captures).collect();
    let labels = load_labels(&labels_path)?;
    let t = Instant::now();
    let mut b = DatasetBuilder::new(
        labels,
        DatasetOptions {
            prefix_packets: if prefix > 0 { vec![prefix] } else { vec![] },
            ..Default::default()
        },
    );
    for f in &files {
        // A damaged capture keeps what came before the damage (as `train`).
        if let (_, Some(e)) = b.add_capture_partial(f) {
            eprintln!("warning: {e}; skipping the rest of it");
        }
    }
    let (ds, stats) = b.finish();
    println!(
        "{} captures, {} rows ({} whole flows) in {:.2} s; {stats}",
        files.len(),
        ds.len(),
        ds.prefix.iter().filter(|&&p| p == 0).count(),
        t.elapsed().as_secs_f64()
    );
    let whole: Vec<u64> = {
        let mut c = vec![0u64; ds.class_names.len()];
        for (i, &y) in ds.y.iter().enumerate() {
            if ds.prefix[i] == 0 {
                c[y] += 1;
            }
        }
        c
    };
    println!(
        "classes {:?}, whole flows per class {:?}",
        ds.class_names, whole
    );

    let k = ds.class_names.len();
    let mut pooled: Vec<Option<Evaluation>> = vec![None; 3];
    let mut fold_f1: Vec<Vec<f64>> = vec![vec![]; 3];
    let mut train_s = [0f64; 3];
    let mut pred_time = [0f64; 3];
    let mut pred_n = [0u64; 3];
    // (answered at the confidence threshold, answered correctly)
    let mut answered = [(0u64, 0u64); 3];
    let mut fold_of: Vec<Vec<usize>> = vec![];
    // Per capture file: held-out whole flows and each model's misses, pooled over seeds.
    let mut by_file: std::collections::BTreeMap<String, (u64, [u64; 3])> = Default::default();
    // Streaming (forest) on held-out captures.
    let mut stream_total = WindowStats::default();
    let mut stream_windows = 0usize;
    let mut stream_flows = (0u64, 0u64); // (flows with a truth, flows predicted right at end)

    for seed in 0..seeds {
        let splits = ds.kfold_by_group(folds, seed);
        let mut assign = vec![0usize; ds.len()];
        for (fi, s) in splits.iter().enumerate() {
            for &i in &s.test {
                assign[i] = fi;
            }
        }
        fold_of.push(assign);
        for split in &splits {
            // Benchmark models learn whole flows; the streaming forest below
            // also learns the prefix rows.
            let whole_train: Vec<usize> = split
                .train
                .iter()
                .copied()
                .filter(|&i| train_prefix || ds.prefix[i] == 0)
                .collect();
            let test: Vec<usize> = split
                .test
                .iter()
                .copied()
                .filter(|&i| ds.prefix[i] == 0)
                .collect();
            if test.is_empty() {
                continue;
            }
            let (xtr, ytr, xte, yte) = if evidence {
                let (xtr, ytr, ev) = ds.training_rows(&whole_train);
                let (xte, yte) = ds.rows_with_evidence(&test, &ev);
                (xtr, ytr, xte, yte)
            } else {
                let (xtr, ytr) = ds.subset(&whole_train);
                let (xte, yte) = ds.subset(&test);
                (xtr, ytr, xte, yte)
            };
            let mut w = class_weights(&ytr, k);
            if group_weight {
                // Each capture counts about equally: 1/sqrt(rows of its group), renormalised per class.
                let mut size: std::collections::HashMap<&str, f32> = Default::default();
                for &i in &whole_train {
                    *size.entry(ds.groups[i].as_str()).or_default() += 1.0;
                }
                let mut cls = vec![(0f32, 0f32); k];
                for (j, &i) in whole_train.iter().enumerate() {
                    let g = 1.0 / size[ds.groups[i].as_str()].sqrt();
                    cls[ytr[j]].0 += w[j];
                    w[j] *= g;
                    cls[ytr[j]].1 += w[j];
                }
                for (j, wj) in w.iter_mut().enumerate() {
                    *wj *= cls[ytr[j]].0 / cls[ytr[j]].1;
                }
            }
            for (mi, kind) in ModelKind::ALL.iter().enumerate() {
                let mut m = Model::new(*kind, seed);
                if let Model::Forest(f) = &mut m {
                    f.params.n_trees = rf_trees;
                    f.params.max_depth = rf_depth;
                    f.params.mtry = rf_mtry;
                }
                let t = Instant::now();
                m.fit(&xtr, &ytr, k, Some(&w))?;
                train_s[mi] += t.elapsed().as_secs_f64();
                let t = Instant::now();
                std::hint::black_box(m.predict_batch(&xte));
                pred_time[mi] += t.elapsed().as_secs_f64();
                pred_n[mi] += xte.len() as u64;
                // Probabilities as the model file gives them (catalogue ratio included).
                let probs: Vec<Vec<f32>> = xte
                    .iter()
                    .map(|x| {
                        let mut p = m.predict_proba(x);
                        if evidence {
                            classify::model_file::catalogue_adjust(&mut p, x, catalogue_weight);
                        }
                        p
                    })
                    .collect();
                let pred: Vec<usize> = probs.iter().map(|p| classify::models::argmax(p)).collect();
                for (p, &t) in probs.iter().zip(&yte) {
                    let best = classify::models::argmax(p);
                    if p[best] >= threshold {
                        answered[mi].0 += 1;
                        answered[mi].1 += (best == t) as u64;
                    }
                }
                for (j, &i) in test.iter().enumerate() {
                    let f = by_file.entry(ds.groups[i].clone()).or_default();
                    if mi == 0 {
                        f.0 += 1;
                    }
                    f.1[mi] += (pred[j] != yte[j]) as u64;
                }
                if let Some(show) = args
                    .iter()
                    .position(|a| a == "--show")
                    .and_then(|i| args.get(i + 1))
                {
                    for (j, &i) in test.iter().enumerate() {
                        if (show == "*" || &ds.groups[i] == show) && pred[j] != yte[j] {
                            println!(
                                "{} {}: truth {} predicted {} ev {:?} tokens {:?}",
                                kind.name(),
                                ds.groups[i],
                                ds.class_names[yte[j]],
                                ds.class_names[pred[j]],
                                &xte[j][xte[j].len() - 9..],
                                ds.tokens[i]
                            );
                        }
                    }
                }
                let e = Evaluation::new(&ds.class_names, &yte, &pred);
                fold_f1[mi].push(e.macro_f1);
                pooled[mi] = Some(match &pooled[mi] {
                    None => e,
                    Some(p) => p.merge(&e),
                });
                if *kind == ModelKind::Forest && seed == 0 {
                    let mut m = Model::new(ModelKind::Forest, seed);
                    let mf = if evidence {
                        let (xs, ys, ev) = ds.training_rows(&split.train);
                        m.fit(&xs, &ys, k, Some(&class_weights(&ys, k)))?;
                        let mut mf = ModelFile::flow_with_evidence(
                            m,
                            ds.class_names.clone(),
                            TrainingSummary::default(),
                            ev,
                        );
                        mf.catalogue_weight = catalogue_weight;
                        mf
                    } else {
                        let (xs, ys) = ds.subset(&split.train);
                        m.fit(&xs, &ys, k, Some(&class_weights(&ys, k)))?;
                        ModelFile::flow(m, ds.class_names.clone(), TrainingSummary::default())
                    };
                    let test_files: std::collections::BTreeSet<&str> =
                        split.test.iter().map(|&i| ds.groups[i].as_str()).collect();
                    for f in files.iter().filter(|f| test_files.contains(base_name(f))) {
                        stream_eval(
                            &mf,
                            f,
                            &labels_path,
                            threshold,
                            &mut stream_total,
                            &mut stream_windows,
                            &mut stream_flows,
                        )?;
                    }
                }
            }
        }
    }

    let mut report = Report {
        title: format!(
            "real captures, {folds}-fold grouped by capture file x {seeds} seeds (pooled confusion over held-out whole flows)"
        ),
        rows: vec![],
    };
    for (mi, kind) in ModelKind::ALL.iter().enumerate() {
        let e = pooled[mi].clone().expect("evaluated");
        report.rows.push(ReportRow {
            model: kind.name().to_string(),
            eval: e,
            train_s: train_s[mi] / fold_f1[mi].len() as f64,
            predictions_per_s: pred_n[mi] as f64 / pred_time[mi].max(1e-9),
        });
    }
    println!("\n{report}");
    for (mi, kind) in ModelKind::ALL.iter().enumerate() {
        let f = &fold_f1[mi];
        let mean = f.iter().sum::<f64>() / f.len() as f64;
        let sd = (f.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / f.len() as f64).sqrt();
        println!(
            "{:<14} per-fold macro-F1 mean {mean:.4} sd {sd:.4} over {} folds; at confidence >= {threshold}: coverage {:.3}, accuracy of answered {:.4}",
            kind.name(),
            f.len(),
            answered[mi].0 as f64 / pred_n[mi].max(1) as f64,
            answered[mi].1 as f64 / answered[mi].0.max(1) as f64
        );
    }
    for r in &report.rows {
        println!("\n== {} ==\n{}", r.model, r.eval);
    }
    if args.iter().any(|a| a == "--by-file") {
        println!(
            "held-out whole flows and misses per capture file (RF, GBT, MLP), pooled over seeds:"
        );
        for (g, (n, m)) in &by_file {
            println!("  {g:<40} {n:>5} {:>5} {:>5} {:>5}", m[0], m[1], m[2]);
        }
    }
    println!(
        "streaming (random forest, seed 0 folds, k=8, threshold {threshold}): labelled packets {}, hits {}, misses {}, unknown/pending {}, accuracy {:.4}, accuracy of answered {:.4}; {} windows of 5 s; flows right at their last packet {}/{}",
        stream_total.hits + stream_total.misses + stream_total.unknown,
        stream_total.hits,
        stream_total.misses,
        stream_total.unknown,
        stream_total.accuracy().unwrap_or(0.0),
        stream_total.answered_accuracy().unwrap_or(0.0),
        stream_windows,
        stream_flows.1,
        stream_flows.0,
    );
    if !args.iter().any(|a| a == "--no-bench") {
        inference_rate(&ds)?;
    }

    if !export.is_empty() {
        write_export(&export, &ds, &fold_of)?;
        println!("features exported to {export}");
    }
    Ok(())
}

fn stream_eval(
    mf: &ModelFile,
    path: &str,
    labels_path: &str,
    threshold: f32,
    total: &mut WindowStats,
    windows: &mut usize,
    flows: &mut (u64, u64),
) -> Result<(), Box<dyn std::error::Error>> {
    let mut labels = load_labels(labels_path)?;
    // Class ids of this label file are those of the dataset (same file, same order).
    let mut sc = StreamingClassifier::new(
        mf.clone(),
        StreamingConfig {
            threshold,
            ..Default::default()
        },
    )?;
    let mut ev = WindowedEvaluator::default();
    let mut truth: std::collections::HashMap<u64, Option<usize>> = Default::default();
    let mut last: std::collections::HashMap<u64, Option<usize>> = Default::default();
    let mut reader = CaptureReader::open(path)?;
    let name = base_name(path).to_string();
    loop {
        let fr = match reader.next_frame() {
            Ok(Some(fr)) => fr,
            Ok(None) => break,
            // Damaged: what came before counts, as in `train`.
            Err(_) => break,
        };
        let pkt = decode::decode(fr.linktype, fr.data);
        let Some(v) = sc.push(&pkt, fr.ts_ns, fr.wire_len) else {
            continue;
        };
        let t = *truth.entry(v.flow_id).or_insert_with(|| {
            let (p, a, pa, b, pb) = v.tuple;
            labels
                .lookup_tuple(Some(&name), p, (a, pa), (b, pb), v.flow_start_ns)
                .map(|m| m.class)
        });
        let pred = v.prediction.class();
        last.insert(v.flow_id, pred);
        ev.record(fr.ts_ns, pred, t);
    }
    *windows += ev.finish().len();
    let s = ev.total();
    total.hits += s.hits;
    total.misses += s.misses;
    total.unknown += s.unknown;
    total.unlabelled += s.unlabelled;
    for (id, t) in truth {
        if let Some(t) = t {
            flows.0 += 1;
            if last.get(&id).copied().flatten() == Some(t) {
                flows.1 += 1;
            }
        }
    }
    Ok(())
}

/// Labels from comma-separated CSV paths (class ids in first-seen order,
/// the same for every call with the same paths).
fn load_labels(paths: &str) -> Result<Labels, Box<dyn std::error::Error>> {
    let mut l = Labels::new(Vec::new());
    for p in paths.split(',') {
        l.add_csv(p)?;
    }
    Ok(l)
}

/// Single-thread flow predictions per second of each model trained on all rows.
fn inference_rate(ds: &Dataset) -> Result<(), Box<dyn std::error::Error>> {
    let k = ds.class_names.len();
    let w = class_weights(&ds.y, k);
    for kind in ModelKind::ALL {
        let mut m = Model::new(kind, 0);
        let t = Instant::now();
        m.fit(&ds.x, &ds.y, k, Some(&w))?;
        let fit = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut n = 0u64;
        let mut sink = 0usize;
        while t.elapsed().as_secs_f64() < 0.5 {
            sink += m.predict_batch(&ds.x).iter().sum::<usize>();
            n += ds.x.len() as u64;
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        let json =
            ModelFile::flow(m, ds.class_names.clone(), TrainingSummary::default()).to_json()?;
        println!(
            "{:<14} all {} rows: train {fit:.2} s, {rate:.0} flow predictions/s (1 thread), model file {} KiB (checksum {sink})",
            kind.name(),
            ds.len(),
            json.len() / 1024
        );
    }
    // Training-time scale check: 100 k rows resampled from the real ones
    // with ±5 % jitter on every feature.
    let mut r = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        r
    };
    let n = 100_000;
    let mut x = Vec::with_capacity(n);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
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
    let cores = std::thread::available_parallelism().map_or(1, |t| t.get());
    for kind in ModelKind::ALL {
        let mut m = Model::new(kind, 0);
        let t = Instant::now();
        m.fit(&x, &y, k, Some(&w))?;
        let fit = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let p = m.predict_batch(&x);
        let rate = x.len() as f64 / t.elapsed().as_secs_f64();
        println!(
            "{:<14} on {n} resampled rows: train {fit:.2} s wall on {cores} cores, {rate:.0} flow predictions/s (1 thread, checksum {})",
            kind.name(),
            p.iter().sum::<usize>()
        );
    }
    Ok(())
}

fn write_export(path: &str, ds: &Dataset, fold_of: &[Vec<usize>]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    write!(f, "group,class,prefix")?;
    for s in 0..fold_of.len() {
        write!(f, ",fold_seed{s}")?;
    }
    for n in classify::flow_feature_names() {
        write!(f, ",{n}")?;
    }
    writeln!(f)?;
    for i in 0..ds.len() {
        write!(
            f,
            "{},{},{}",
            ds.groups[i], ds.class_names[ds.y[i]], ds.prefix[i]
        )?;
        for a in fold_of {
            write!(f, ",{}", a[i])?;
        }
        for v in &ds.x[i] {
            write!(f, ",{v}")?;
        }
        writeln!(f)?;
    }
    Ok(())
}
