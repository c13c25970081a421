//! `trafficscope train`: learners compared by grouped cross-validation
//! (every capture file or session held out once per seed), figures with
//! bootstrap intervals over captures and the spread over seeds, the model
//! chosen by them, its probabilities calibrated on the held-out
//! predictions, and written retrained on everything.

use std::collections::HashMap;
use std::time::Instant;

use clap::Args;
use classify::calibration::{
    apply_class_weights, coverage_curve, fit_class_weights, fit_temperature, reliability_svg,
    Reliability,
};
use classify::crossval::{self, CvOptions, Figures, HeldOut, Weighting};
use classify::labels::base_name;
use classify::{
    Classifier, DatasetBuilder, DatasetOptions, Model, ModelFile, ModelKind, Report, ReportRow,
    TrainingSummary,
};

use crate::classify_cmd::LabelArgs;
use crate::Failure;

fn err(e: classify::ClassifyError) -> Failure {
    Failure::Input(e.into())
}

/// Bins of the expected calibration error (the usual 15 of Guo et al.).
const ECE_BINS: usize = 15;
/// Thresholds of the accuracy-coverage table.
const THRESHOLDS: [f32; 8] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Training captures (files). Flows are grouped by capture file for the
    /// cross-validation.
    #[arg(value_name = "CAPTURE", required = true)]
    pub captures: Vec<String>,
    #[command(flatten)]
    pub labels: LabelArgs,
    /// Models to train and compare: rf, gbt, mlp.
    #[arg(long, value_delimiter = ',', default_value = "rf,gbt,mlp")]
    pub models: Vec<String>,
    /// K-fold cross-validation over groups: each capture file (or session)
    /// is held out once per seed, never split; figures pool the folds.
    #[arg(long, default_value_t = 5, value_name = "K")]
    pub folds: usize,
    /// Repeat the cross-validation for this many seeds (--seed, --seed + 1,
    /// …): other folds and other draws, to show the spread over seeds.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seeds: u64,
    /// Group by the labels' session (generator labels) instead of capture file.
    #[arg(long = "group-by-session")]
    pub group_by_session: bool,
    /// Train without learned token evidence (only the schema's flow features).
    #[arg(long = "no-evidence")]
    pub no_evidence: bool,
    /// Training row weights: `class` (every class weighs the same in
    /// total), `class-group` (and within a class each capture about the
    /// same, rows of a capture of n rows weighing 1/√n) or `none` (the
    /// training mix's own class shares).
    #[arg(long, default_value = "class", value_parser = parse_weighting)]
    pub weighting: Weighting,
    /// Bootstrap resamples of the held-out captures for the 95 % intervals.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub bootstrap: usize,
    /// Answer by the learner's most probable class, without per-class
    /// decision weights fitted on the held-out predictions.
    #[arg(long = "no-decision-weights")]
    pub no_decision_weights: bool,
    /// Leave the probabilities as the learner gives them (no temperature
    /// fitted on the held-out predictions).
    #[arg(long = "no-calibration")]
    pub no_calibration: bool,
    /// Write the chosen model's reliability diagram and accuracy-coverage
    /// curve (reliability.svg) to this directory.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<String>,
    /// Write every held-out flow's answer by the chosen model (capture,
    /// seed, true class, answer, each class probability before calibration,
    /// the flow's application names) as CSV, to see where it goes wrong.
    #[arg(long = "held-out", value_name = "CSV")]
    pub held_out: Option<String>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the best model (by held-out macro-F1 over the folds and
    /// seeds), calibrated and retrained on all data.
    #[arg(short = 'o', long = "output", value_name = "MODEL.json")]
    pub output: Option<String>,
    /// Leave timings out of the model file, so that the same captures,
    /// labels and seed give the same bytes (scripts/train-default-model).
    #[arg(long)]
    pub reproducible: bool,
    /// Stop at the first damaged capture instead of skipping the rest of it
    /// with a warning.
    #[arg(long)]
    pub strict: bool,
}

fn parse_weighting(s: &str) -> Result<Weighting, String> {
    match s {
        "none" => Ok(Weighting::None),
        "class" => Ok(Weighting::Class),
        "class-group" => Ok(Weighting::ClassAndGroup),
        _ => Err(format!("{s:?}: write none, class or class-group")),
    }
}

/// A damaged training capture: the packets before the damage are kept, the
/// rest is skipped (`train` without `--strict`).
struct Skipped {
    path: String,
    error: String,
    flows_kept: u64,
}

/// The data set of each capture: its first directory below the captures'
/// common directory (`pcap-apps`, `pcap-ndpi-more`), by base name. Empty
/// when the captures do not come from two or more such directories.
fn capture_sets(captures: &[String]) -> HashMap<String, String> {
    let dirs: Vec<Vec<&str>> = captures
        .iter()
        .map(|c| {
            let mut parts: Vec<&str> = c.split('/').filter(|p| !p.is_empty()).collect();
            parts.pop();
            parts
        })
        .collect();
    let common = (0..)
        .take_while(|&i| {
            dirs.first()
                .and_then(|d| d.get(i))
                .is_some_and(|p| dirs.iter().all(|d| d.get(i) == Some(p)))
        })
        .count();
    let sets: HashMap<String, String> = captures
        .iter()
        .zip(&dirs)
        .filter_map(|(c, d)| Some((base_name(c).to_string(), d.get(common)?.to_string())))
        .collect();
    let distinct: std::collections::HashSet<&String> = sets.values().collect();
    if distinct.len() >= 2 && sets.len() == captures.len() {
        sets
    } else {
        HashMap::new()
    }
}

pub fn train(args: TrainArgs) -> Result<(), Failure> {
    if args.labels.is_empty() {
        return Err(Failure::Usage(
            "no labels: give --labels CSV, --label CLASS=FILES or --rule".into(),
        ));
    }
    if args.folds < 2 || args.seeds == 0 {
        return Err(Failure::Usage(
            "--folds needs 2 or more and --seeds 1 or more".into(),
        ));
    }
    let kinds: Vec<ModelKind> = args
        .models
        .iter()
        .map(|m| {
            m.parse::<ModelKind>()
                .map_err(|e| Failure::Usage(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let labels = args.labels.build(Vec::new())?;
    let mut b = DatasetBuilder::new(
        labels,
        DatasetOptions {
            group_by_session: args.group_by_session,
            // Rows for the first k packets of each flow too, so the model
            // also knows flows as streaming classification first sees them.
            prefix_packets: vec![8, 16, 32],
            ..DatasetOptions::default()
        },
    );
    let mut skipped: Vec<Skipped> = Vec::new();
    for c in &args.captures {
        let (st, e) = b.add_capture_partial(c);
        let Some(e) = e else { continue };
        // A file that cannot be opened is a mistake in the command line, not
        // damage: it stops training either way.
        let unopenable = matches!(
            &e,
            classify::ClassifyError::Capture { source, .. }
                if matches!(**source, capture::CaptureError::Open { .. })
        );
        if unopenable {
            return Err(err(e));
        }
        let e = match e {
            classify::ClassifyError::Capture { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        if args.strict {
            return Err(Failure::Input(anyhow::anyhow!(
                "{e}\n--strict stops at the first damaged capture: leave it out, cut it \
                 before the damage (editcap -r), or train without --strict to keep its \
                 packets before the damage and skip the rest"
            )));
        }
        eprintln!(
            "trafficscope: warning: {e}; skipping the rest of this capture (kept its {} packets before the damage: {} flows, {} labelled; --strict stops here instead)",
            st.frames, st.flows, st.labelled
        );
        skipped.push(Skipped {
            path: c.clone(),
            error: e,
            flows_kept: st.flows,
        });
    }
    let skipped_note = (!skipped.is_empty()).then(|| {
        format!(
            "{} of {} captures damaged, read up to the damage and the rest skipped: {}",
            skipped.len(),
            args.captures.len(),
            skipped
                .iter()
                .map(|s| format!("{} ({} flows kept)", base_name(&s.path), s.flows_kept))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    let (ds, stats) = b.finish();
    let whole = ds.prefix.iter().filter(|&&p| p == 0).count();
    eprintln!(
        "trafficscope: {} rows ({whole} whole flows, the rest their first 8/16/32 packets); {stats}",
        ds.len()
    );
    if ds.class_names.len() < 2 {
        return Err(Failure::Input(anyhow::anyhow!(
            "training needs at least two classes, found {:?}",
            ds.class_names
        )));
    }
    let k = ds.class_names.len();
    let n_groups = ds
        .groups
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    if n_groups < 2 {
        return Err(Failure::Input(anyhow::anyhow!(
            "too few groups ({n_groups}) to hold some out: give more captures or sessions"
        )));
    }
    let group_word = if args.group_by_session {
        "session"
    } else {
        "capture file"
    };
    let opts = CvOptions {
        folds: args.folds.min(n_groups),
        seeds: (args.seed..args.seed + args.seeds).collect(),
        evidence: !args.no_evidence,
        weighting: args.weighting,
        ..CvOptions::default()
    };
    let t = Instant::now();
    let held = crossval::cross_validate(&ds, &kinds, &opts, |_| {}).map_err(err)?;
    eprintln!(
        "trafficscope: cross-validated {} model(s) × {} fold(s) × {} seed(s) in {:.1} s",
        kinds.len(),
        opts.folds,
        opts.seeds.len(),
        t.elapsed().as_secs_f64()
    );
    let of =
        |kind: ModelKind| -> Vec<&HeldOut> { held.iter().filter(|h| h.kind == kind).collect() };
    let all = |_: &str| true;
    let figures: Vec<Figures> = kinds
        .iter()
        .map(|&kind| {
            crossval::figures(&ds, &of(kind), &all, args.bootstrap, args.seed)
                .expect("every flow is held out once")
        })
        .collect();
    let held_flows = figures[0].eval.n;
    let mut report = Report {
        title: format!(
            "{held_flows} whole flows held out by {group_word} ({} folds × {} seed{}, {n_groups} {group_word}s, pooled)",
            opts.folds,
            opts.seeds.len(),
            if opts.seeds.len() == 1 { "" } else { "s" }
        ),
        rows: Vec::new(),
    };
    for (kind, f) in kinds.iter().zip(&figures) {
        let hs = of(*kind);
        let (train_s, fits) = hs
            .iter()
            .fold((0.0, 0), |a, h| (a.0 + h.train_s, a.1 + h.fits));
        let (pred_s, preds) = hs
            .iter()
            .fold((0.0, 0), |a, h| (a.0 + h.predict_s, a.1 + h.predictions));
        report.rows.push(ReportRow {
            model: kind.name().to_string(),
            eval: f.eval.clone(),
            train_s: train_s / fits.max(1) as f64,
            predictions_per_s: preds as f64 / pred_s.max(1e-9),
        });
    }
    println!("{report}");
    println!(
        "95 % intervals: bootstrap over the held-out {group_word}s ({} resamples); spread: macro-F1 of each seed's {}-fold",
        args.bootstrap, opts.folds
    );
    for (kind, f) in kinds.iter().zip(&figures) {
        println!("{}", interval_line(kind.name(), f, &ds.class_names));
    }
    // Each data set on its own, when the captures come from several.
    let sets = if args.group_by_session {
        HashMap::new()
    } else {
        capture_sets(&args.captures)
    };
    let set_names: Vec<&String> = sets
        .values()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for set in &set_names {
        println!("\ncaptures under {set}/ only:");
        for &kind in &kinds {
            let keep = |g: &str| sets.get(g) == Some(*set);
            if let Some(f) = crossval::figures(&ds, &of(kind), &keep, args.bootstrap, args.seed) {
                println!("{}", interval_line(kind.name(), &f, &ds.class_names));
            }
        }
    }

    // The choice, by the pooled held-out macro-F1.
    let best = (0..kinds.len())
        .max_by(|&a, &b| {
            figures[a]
                .eval
                .macro_f1
                .total_cmp(&figures[b].eval.macro_f1)
                .then(b.cmp(&a))
        })
        .expect("at least one model");
    let kind = kinds[best];
    let fb = &figures[best];
    let mut why = format!(
        "{} chosen by held-out macro-F1 {:.3} {} ({} folds × {} seed(s) by {group_word})",
        kind.name(),
        fb.eval.macro_f1,
        fb.macro_f1_ci,
        opts.folds,
        opts.seeds.len()
    );
    if let Some(next) = (0..kinds.len()).filter(|&i| i != best).max_by(|&a, &b| {
        figures[a]
            .eval
            .macro_f1
            .total_cmp(&figures[b].eval.macro_f1)
    }) {
        let fnext = figures[next].eval.macro_f1;
        why.push_str(&format!(
            "; next {} {:.3}{}",
            kinds[next].name(),
            fnext,
            if fnext >= fb.macro_f1_ci.lo {
                ", inside the interval: at this data size the two are not told apart"
            } else {
                ""
            }
        ));
    }
    println!("\n{why}");
    println!(
        "held-out confusion of {} (rows truth, columns answer):",
        kind.name()
    );
    print_confusion(&fb.eval);
    for set in &set_names {
        let keep = |g: &str| sets.get(g) == Some(*set);
        if let Some(f) = crossval::figures(&ds, &of(kind), &keep, 0, args.seed) {
            println!("  captures under {set}/:");
            print_confusion(&f.eval);
        }
    }

    if let Some(path) = &args.held_out {
        write_held_out(path, &ds, &of(kind))
            .map_err(|e| Failure::Input(anyhow::anyhow!("cannot write {path}: {e}")))?;
        eprintln!(
            "trafficscope: wrote the held-out answers of {} to {path}",
            kind.name()
        );
    }

    // Decision weights and calibration of the chosen model, fitted on its
    // held-out predictions; judged on each half of the groups answered by
    // what was fitted on the other half.
    let chosen = of(kind);
    let (raw_p, raw_y) = crossval::pooled_probabilities(&ds, &chosen);
    let raw = Reliability::new(&raw_p, &raw_y, ECE_BINS);
    let cov_raw = coverage_curve(&raw_p, &raw_y, &THRESHOLDS);
    let try_weights = !args.no_decision_weights;
    let try_temperature = !args.no_calibration;
    let with_weights = cross_fitted(&ds, &chosen, try_weights, try_temperature);
    let with_fig = crossval::figures(&ds, &refs(&with_weights), &all, args.bootstrap, args.seed)
        .expect("held-out flows");
    // Weights only where they raise the cross-fitted macro-F1.
    let keep_weights = try_weights && with_fig.eval.macro_f1 > fb.eval.macro_f1 + 1e-9;
    let adjusted = if keep_weights {
        with_weights
    } else {
        cross_fitted(&ds, &chosen, false, try_temperature)
    };
    let class_weights = if keep_weights {
        fit_class_weights(&raw_p, &raw_y, k).unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut weighted_p = raw_p.clone();
    for p in weighted_p.iter_mut() {
        apply_class_weights(p, &class_weights);
    }
    let fitted = if try_temperature {
        fit_temperature(&weighted_p, &raw_y)
    } else {
        None
    };
    let (adj_p, adj_y) = crossval::pooled_probabilities(&ds, &refs(&adjusted));
    let mut calibrated = Reliability::new(&adj_p, &adj_y, ECE_BINS);
    let mut cov_cal = coverage_curve(&adj_p, &adj_y, &THRESHOLDS);
    // The temperature only where it lowers the error on held-out captures
    // (each half by the temperature of the other) against none.
    let mut temperature_dropped: Option<(f64, f64)> = None;
    if fitted.is_some() {
        let plain = cross_fitted(&ds, &chosen, keep_weights, false);
        let (p, y) = crossval::pooled_probabilities(&ds, &refs(&plain));
        let without = Reliability::new(&p, &y, ECE_BINS);
        if without.ece <= calibrated.ece {
            temperature_dropped = Some((without.ece, calibrated.ece));
            calibrated = without;
            cov_cal = coverage_curve(&p, &y, &THRESHOLDS);
        }
    }
    let temperature = if temperature_dropped.is_some() {
        1.0
    } else {
        fitted.unwrap_or(1.0)
    };
    let decision_line = if !try_weights {
        "decision weights: none (--no-decision-weights)".to_string()
    } else if keep_weights {
        format!(
            "decision weights: {} (fitted on the held-out answers to maximise macro-F1); held-out macro-F1 {:.3} → {:.3} {}, accuracy {:.3} → {:.3}, judged on each half of the {group_word}s with weights fitted on the other half",
            ds.class_names
                .iter()
                .zip(&class_weights)
                .map(|(n, w)| format!("{n} {w:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            fb.eval.macro_f1,
            with_fig.eval.macro_f1,
            with_fig.macro_f1_ci,
            fb.eval.accuracy,
            with_fig.eval.accuracy
        )
    } else {
        format!(
            "decision weights: none, fitted on half the {group_word}s they did not raise the other half's macro-F1 ({:.3} → {:.3})",
            fb.eval.macro_f1, with_fig.eval.macro_f1
        )
    };
    println!("{decision_line}");
    if keep_weights {
        println!(
            "{}",
            interval_line(&format!("{}+w", kind.name()), &with_fig, &ds.class_names)
        );
        for set in &set_names {
            let keep = |g: &str| sets.get(g) == Some(*set);
            if let Some(f) =
                crossval::figures(&ds, &refs(&adjusted), &keep, args.bootstrap, args.seed)
            {
                println!("  captures under {set}/:");
                println!(
                    "{}",
                    interval_line(&format!("{}+w", kind.name()), &f, &ds.class_names)
                );
            }
        }
        println!("held-out confusion with the decision weights:");
        print_confusion(&with_fig.eval);
    }
    let calibration_line = if args.no_calibration {
        format!(
            "calibration: none (--no-calibration); expected calibration error ({ECE_BINS} bins) {:.3}",
            raw.ece
        )
    } else if fitted.is_none() {
        format!(
            "calibration: none, fewer than {} wrong held-out answers to learn confidence from; expected calibration error ({ECE_BINS} bins) {:.3}",
            classify::calibration::MIN_ERRORS_TO_FIT,
            raw.ece
        )
    } else if let Some((without, with)) = temperature_dropped {
        format!(
            "calibration: none; the temperature fitted on half the {group_word}s ({:.3} on all) did not lower the other half's expected calibration error ({ECE_BINS} bins): {without:.3} without, {with:.3} with; raw {:.3}",
            fitted.unwrap_or(1.0),
            raw.ece
        )
    } else {
        format!(
            "calibration: temperature {temperature:.3}; expected calibration error ({ECE_BINS} bins) {:.3} raw, {:.3} calibrated (each half of the {group_word}s calibrated by what was fitted on the other half)",
            raw.ece, calibrated.ece
        )
    };
    println!("{calibration_line}");
    let shown = if fitted.is_none() && !keep_weights {
        &cov_raw
    } else {
        &cov_cal
    };
    println!("unknown threshold → flows answered, accuracy of the answers:");
    for c in shown {
        println!(
            "  {:.2}  {:>6.1} %  {:.3}",
            c.threshold,
            c.coverage * 100.0,
            c.accuracy
        );
    }
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::Input(anyhow::anyhow!("cannot create {dir}: {e}")))?;
        let path = std::path::Path::new(dir).join("reliability.svg");
        let svg = reliability_svg(
            &format!(
                "{}: reliability ({} held-out flows) and accuracy against coverage",
                kind.name(),
                raw.n
            ),
            &raw,
            &calibrated,
            &cov_raw,
            &cov_cal,
        );
        std::fs::write(&path, svg)
            .map_err(|e| Failure::Input(anyhow::anyhow!("cannot write {}: {e}", path.display())))?;
        eprintln!("trafficscope: wrote {}", path.display());
    }

    if let Some(path) = &args.output {
        let mut m = Model::new(kind, args.seed);
        let every: Vec<usize> = (0..ds.len()).collect();
        let (xall, yall, ev) = if args.no_evidence {
            let (x, y) = ds.subset(&every);
            (x, y, None)
        } else {
            let (x, y, ev) = ds.training_rows(&every);
            (x, y, Some(ev))
        };
        let w = crossval::row_weights(&ds, &every, args.weighting);
        let t = Instant::now();
        m.fit(&xall, &yall, k, Some(&w)).map_err(err)?;
        let summary = TrainingSummary {
            rows: yall.len() as u64,
            rows_per_class: ds.class_counts(),
            groups: n_groups as u64,
            seed: args.seed,
            train_s: if args.reproducible {
                0.0
            } else {
                t.elapsed().as_secs_f64()
            },
            notes: [
                why.clone(),
                decision_line.clone(),
                calibration_line.clone(),
                format!(
                    "captures: {}",
                    args.captures
                        .iter()
                        .map(|c| base_name(c))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            ]
            .into_iter()
            .chain(skipped_note.clone())
            .collect(),
        };
        let mut file = match ev {
            Some(ev) => ModelFile::flow_with_evidence(m, ds.class_names.clone(), summary, ev),
            None => ModelFile::flow(m, ds.class_names.clone(), summary),
        };
        file.temperature = temperature;
        file.class_weights = class_weights.clone();
        file.save(path).map_err(err)?;
        eprintln!(
            "trafficscope: wrote {} model to {path} (temperature {temperature:.3})",
            kind.name()
        );
    }
    if let Some(note) = &skipped_note {
        eprintln!("trafficscope: {note}");
        for s in &skipped {
            eprintln!("trafficscope:   {}", s.error);
        }
    }
    Ok(())
}

fn write_held_out(path: &str, ds: &classify::Dataset, held: &[&HeldOut]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    write!(f, "capture,seed,class,answer,confidence")?;
    for n in &ds.class_names {
        write!(f, ",p_{n}")?;
    }
    writeln!(f, ",names")?;
    for h in held {
        for (&i, p) in h.rows.iter().zip(&h.proba) {
            let a = classify::models::argmax(p);
            write!(
                f,
                "{},{},{},{},{:.4}",
                csv_field(&ds.groups[i]),
                h.seed,
                ds.class_names[ds.y[i]],
                ds.class_names[a],
                p[a]
            )?;
            for v in p {
                write!(f, ",{v:.4}")?;
            }
            writeln!(f, ",{}", csv_field(&ds.tokens[i].join(" ")))?;
        }
    }
    f.flush()
}

/// A CSV field, quoted when it holds a comma, quote or line break (names
/// come from the traffic).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn print_confusion(e: &classify::Evaluation) {
    print!("  {:<10}", "");
    for n in &e.class_names {
        print!(" {n:>7}");
    }
    println!();
    for (n, row) in e.class_names.iter().zip(&e.confusion) {
        print!("  {n:<10}");
        for v in &row[..e.class_names.len()] {
            print!(" {v:>7}");
        }
        println!();
    }
}

/// "mlp  macro-F1 0.796 [0.752, 0.838]  accuracy …  per class F1 …".
fn interval_line(name: &str, f: &Figures, classes: &[String]) -> String {
    let (m, sd) = f.seed_spread();
    let mut s = format!(
        "  {name:<14} {:>5} flows {:>4} groups  macro-F1 {:.3} {}  accuracy {:.3} {}  seeds {m:.3} ± {sd:.3}",
        f.eval.n,
        f.groups,
        f.eval.macro_f1,
        f.macro_f1_ci,
        f.eval.accuracy,
        f.accuracy_ci
    );
    let parts: Vec<String> = classes
        .iter()
        .zip(&f.eval.per_class)
        .zip(&f.class_f1_ci)
        .filter(|((_, c), _)| c.support > 0)
        .map(|((n, c), ci)| format!("{n} {:.3} {ci}", c.f1))
        .collect();
    s.push_str("\n      per class F1: ");
    s.push_str(&parts.join(", "));
    s
}

fn refs(h: &[HeldOut]) -> Vec<&HeldOut> {
    h.iter().collect()
}

/// Held-out answers adjusted honestly: the groups split in two halves
/// (alternately, by name), each half adjusted by the decision weights
/// (`weights`) and temperature (`temperature`) fitted on the other half,
/// so no prediction is adjusted by what was fitted on itself.
fn cross_fitted(
    ds: &classify::Dataset,
    held: &[&HeldOut],
    weights: bool,
    temperature: bool,
) -> Vec<HeldOut> {
    let k = ds.class_names.len();
    let mut names: Vec<&str> = ds.groups.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    let half: HashMap<&str, usize> = names.iter().enumerate().map(|(i, g)| (*g, i % 2)).collect();
    let mut parts: [(Vec<Vec<f32>>, Vec<usize>); 2] = Default::default();
    for h in held {
        for (&i, p) in h.rows.iter().zip(&h.proba) {
            let side = half[ds.groups[i].as_str()];
            parts[side].0.push(p.clone());
            parts[side].1.push(ds.y[i]);
        }
    }
    // What each half is adjusted with: fitted on the other.
    let fits: Vec<(Vec<f32>, f32)> = [1usize, 0]
        .iter()
        .map(|&other| {
            let (p, y) = &parts[other];
            let w = if weights {
                fit_class_weights(p, y, k).unwrap_or_default()
            } else {
                Vec::new()
            };
            let t = if temperature {
                let wp: Vec<Vec<f32>> = p
                    .iter()
                    .map(|q| {
                        let mut q = q.clone();
                        apply_class_weights(&mut q, &w);
                        q
                    })
                    .collect();
                fit_temperature(&wp, y).unwrap_or(1.0)
            } else {
                1.0
            };
            (w, t)
        })
        .collect();
    held.iter()
        .map(|h| {
            let mut out = (*h).clone();
            for (&i, p) in out.rows.iter().zip(out.proba.iter_mut()) {
                let (w, t) = &fits[half[ds.groups[i].as_str()]];
                apply_class_weights(p, w);
                classify::calibration::apply_temperature(p, *t);
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_sets_are_the_first_directory_below_the_common_one() {
        let caps: Vec<String> = [
            "/d/pcap-apps/ndpi/web/a.pcap",
            "/d/pcap-apps/ndpi/video/b.pcap",
            "/d/pcap-ndpi-more/c.pcap",
        ]
        .map(String::from)
        .to_vec();
        let s = capture_sets(&caps);
        assert_eq!(s["a.pcap"], "pcap-apps");
        assert_eq!(s["b.pcap"], "pcap-apps");
        assert_eq!(s["c.pcap"], "pcap-ndpi-more");
        // Below one directory: its subdirectories.
        assert_eq!(capture_sets(&caps[..2])["b.pcap"], "video");
        // All in one directory: no sets.
        assert!(capture_sets(&["/d/x/a.pcap".into(), "/d/x/b.pcap".into()]).is_empty());
        assert!(capture_sets(&["a.pcap".into(), "b.pcap".into()]).is_empty());
    }
}
