//! `trafficscope train` and `trafficscope classify`: flow classification with
//! the `classify` crate (features, random forest / gradient-boosted trees /
//! MLP, model files, streaming evaluation per window).

use std::io::{self, BufWriter, Write};

use clap::Args;
use classify::{
    Labels, ModelFile, Prediction, StreamingClassifier, StreamingConfig, WindowedEvaluator,
};

use crate::input::Event;
use crate::{parse_duration_ns, Failure, InputArgs};

fn err(e: classify::ClassifyError) -> Failure {
    Failure::Input(e.into())
}

/// Labels from CSV files, whole captures, or rules.
#[derive(Args, Debug, Clone)]
pub struct LabelArgs {
    /// Labels CSV (five-tuple → class; the generator's and labels.csv's formats), repeatable.
    #[arg(long = "labels", value_name = "CSV")]
    pub labels: Vec<String>,
    /// One class for whole captures: `video=a.pcap,b.pcap`, repeatable.
    #[arg(long = "label", value_name = "CLASS=FILES")]
    pub label: Vec<String>,
    /// Rule such as 'port 443 -> web', 'sni *.netflix.com -> video', 'net 10.0.0.0/8 -> voip'.
    #[arg(long = "rule", value_name = "RULE")]
    pub rule: Vec<String>,
}

impl LabelArgs {
    /// `classes`: class ids to keep (a model's), new names are appended.
    pub fn build(&self, classes: Vec<String>) -> Result<Labels, Failure> {
        let mut labels = Labels::new(classes);
        for p in &self.labels {
            labels.add_csv(p).map_err(err)?;
        }
        for spec in &self.label {
            let (class, files) = spec.split_once('=').ok_or_else(|| {
                Failure::Usage(format!("--label {spec:?}: write CLASS=file1,file2"))
            })?;
            for f in files.split(',').filter(|f| !f.is_empty()) {
                let name = std::path::Path::new(f)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| f.to_string());
                labels.label_capture(&name, class);
            }
        }
        for r in &self.rule {
            labels
                .add_rule(r)
                .map_err(|e| Failure::Usage(e.to_string()))?;
        }
        Ok(labels)
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.label.is_empty() && self.rule.is_empty()
    }
}

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Model file written by `trafficscope train`; without it, the default
    /// model built into the binary (models/default.json: a random forest
    /// trained on generated web, video, VoIP, DNS and bulk traffic by
    /// scripts/train-default-model).
    #[arg(long, value_name = "MODEL.json")]
    pub model: Option<String>,
    #[command(flatten)]
    pub labels: LabelArgs,
    /// Rolling evaluation window (capture time), with labels.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration_ns)]
    pub windows: u64,
    /// First prediction after this many packets of a flow.
    #[arg(long = "first-packets", default_value_t = 8)]
    pub first_packets: usize,
    /// Below this probability the answer is `unknown`.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// Also write one CSV row per flow as it ends: five-tuple, times,
    /// packets, bytes, the final prediction (`unknown` below the threshold;
    /// a flow that ended before --first-packets is judged on what it had at
    /// its end, so never `pending`), its confidence, every class
    /// probability and, with labels, the true class.
    #[arg(long = "flows", value_name = "CSV")]
    pub flows: Option<String>,
}

/// Writes per-flow verdicts as CSV.
struct FlowVerdictWriter {
    out: BufWriter<std::fs::File>,
    path: String,
    names: Vec<String>,
}

impl FlowVerdictWriter {
    fn create(path: &str, names: &[String], labelled: bool) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path)
            .map_err(|e| anyhow::anyhow!("cannot create {path}: {e}"))?;
        let mut w = FlowVerdictWriter {
            out: BufWriter::new(file),
            path: path.to_string(),
            names: names.to_vec(),
        };
        let mut header = String::from(
            "flow_id,start,end,protocol,src,src_port,dst,dst_port,packets,bytes,prediction,confidence",
        );
        for n in names {
            header.push_str(",p_");
            header.push_str(n);
        }
        if labelled {
            header.push_str(",label");
        }
        writeln!(w.out, "{header}").map_err(|e| w.error(e))?;
        Ok(w)
    }

    fn error(&self, e: io::Error) -> anyhow::Error {
        anyhow::anyhow!("{}: {e} (is the disk full?)", self.path)
    }

    fn write(
        &mut self,
        v: &classify::FlowVerdict,
        label: Option<Option<&str>>,
    ) -> anyhow::Result<()> {
        let (proto, a, pa, b, pb) = v.tuple;
        let (pred, conf) = match v.prediction {
            Prediction::Pending => ("pending", None),
            Prediction::Unknown { confidence, .. } => ("unknown", Some(confidence)),
            Prediction::Class { class, confidence } => {
                (self.names[class].as_str(), Some(confidence))
            }
        };
        let mut row = format!(
            "{},{},{},{},{a},{pa},{b},{pb},{},{},{pred},{}",
            v.flow_id,
            capture::Utc(v.start_ns),
            capture::Utc(v.end_ns),
            decode::protocol_name(proto),
            v.packets,
            v.bytes,
            conf.map_or(String::new(), |c| format!("{c:.4}")),
        );
        for i in 0..self.names.len() {
            row.push(',');
            if let Some(p) = v.probabilities.get(i) {
                row.push_str(&format!("{p:.4}"));
            }
        }
        if let Some(l) = label {
            row.push(',');
            // The labels' class name: it may be one the model cannot answer.
            if let Some(c) = l {
                row.push_str(c);
            }
        }
        writeln!(self.out, "{row}").map_err(|e| self.error(e))
    }
}

/// The shipped default model (see scripts/train-default-model).
pub const DEFAULT_MODEL: &str = include_str!("../../../models/default.json");

/// The model file at `path`, or the built-in default model.
pub fn load_model(path: Option<&str>) -> Result<ModelFile, Failure> {
    match path {
        Some(path) => ModelFile::load(path),
        None => ModelFile::from_json(DEFAULT_MODEL).map_err(|e| {
            classify::ClassifyError::ModelFile(format!("built-in default model: {e}"))
        }),
    }
    .map_err(err)
}

pub fn classify(args: ClassifyArgs) -> Result<(), Failure> {
    let model = load_model(args.model.as_deref())?;
    let names = model.class_names.clone();
    let mut streaming = StreamingClassifier::new(
        model,
        StreamingConfig {
            min_packets: args.first_packets,
            threshold: args.threshold,
            ..StreamingConfig::default()
        },
    )
    .map_err(err)?;
    let mut labels = if args.labels.is_empty() {
        None
    } else {
        Some(args.labels.build(names.clone())?)
    };
    let pcap = args
        .input
        .read
        .as_deref()
        .and_then(|p| std::path::Path::new(p).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let mut input = crate::input::open(&args.input)?;
    let mut flows_out = match &args.flows {
        Some(path) => Some(FlowVerdictWriter::create(path, &names, labels.is_some())?),
        None => None,
    };
    let mut write_verdicts = |streaming: &mut StreamingClassifier,
                              labels: &mut Option<classify::Labels>|
     -> anyhow::Result<()> {
        let Some(w) = flows_out.as_mut() else {
            streaming.drain_verdicts().for_each(drop);
            return Ok(());
        };
        for v in streaming.drain_verdicts() {
            let label = labels.as_mut().map(|l| {
                let (p, a, pa, b, pb) = v.tuple;
                l.truth_of_tuple(pcap.as_deref(), p, (a, pa), (b, pb), v.start_ns)
                    .map(|c| l.class_names()[c].clone())
            });
            w.write(&v, label.as_ref().map(|l| l.as_deref()))?;
        }
        Ok(())
    };
    // Packets by their flow's answer when they arrived: classes, unknown, pending.
    let mut by_class = vec![0u64; names.len() + 2];
    let mut windows = WindowedEvaluator::new(args.windows);
    let mut out = BufWriter::new(io::stdout().lock());
    writeln!(out, "window_start,packets,hits,misses,unknown,accuracy")?;
    let result = input.for_each(|ev| {
        let Event::Frame(f, _) = ev else {
            return Ok(());
        };
        let pkt = decode::decode(f.linktype, f.data);
        let Some(v) = streaming.push(&pkt, f.ts_ns, f.wire_len) else {
            return Ok(());
        };
        let predicted = match v.prediction {
            Prediction::Class { class, .. } => Some(class),
            _ => None,
        };
        by_class[v.prediction.slot(names.len())] += 1;
        let truth = labels.as_mut().and_then(|l| {
            let (p, a, pa, b, pb) = v.tuple;
            l.truth_of_tuple(pcap.as_deref(), p, (a, pa), (b, pb), v.flow_start_ns)
        });
        windows.record(f.ts_ns, predicted, truth);
        for w in windows.drain_closed() {
            write_window(&mut out, &w)?;
        }
        write_verdicts(&mut streaming, &mut labels).map_err(io::Error::other)?;
        Ok(())
    });
    streaming.finish();
    write_verdicts(&mut streaming, &mut labels)?;
    if let Some(w) = flows_out.as_mut() {
        w.out.flush().map_err(|e| w.error(e))?;
    }
    for w in windows.finish() {
        write_window(&mut out, &w)?;
    }
    out.flush()?;
    let class_keys = names
        .iter()
        .map(String::as_str)
        .chain(["unknown", "pending"]);
    eprintln!(
        "trafficscope: packets by class: {}",
        class_keys
            .zip(&by_class)
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let t = windows.total();
    eprintln!(
        "trafficscope: classes {:?}; {} labelled packets: {} hits, {} misses, {} unknown or pending; accuracy {}",
        names,
        t.hits + t.misses + t.unknown,
        t.hits,
        t.misses,
        t.unknown,
        t.accuracy().map_or("-".into(), |a| format!("{a:.4}"))
    );
    result?;
    Ok(())
}

fn write_window(out: &mut impl Write, w: &classify::WindowStats) -> io::Result<()> {
    writeln!(
        out,
        "{},{},{},{},{},{}",
        capture::Utc(w.start_ns),
        w.hits + w.misses + w.unknown + w.unlabelled,
        w.hits,
        w.misses,
        w.unknown,
        w.accuracy().map_or(String::new(), |a| format!("{a:.4}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use classify::Model;

    const SCRIPT: &str = include_str!("../../../scripts/train-default-model");

    /// The words of `NAME="..."` in scripts/train-default-model.
    fn script_args(name: &str) -> Vec<String> {
        let prefix = format!("{name}=\"");
        let line = SCRIPT
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{name} not in the script"));
        line.trim_end_matches('"')
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    fn run(args: Vec<String>) {
        let cli = crate::Cli::try_parse_from(args).expect("arguments parse");
        match cli.command {
            crate::Command::Generate(a) => crate::generate_cmd::run(a),
            crate::Command::Train(a) => crate::train_cmd::train(a),
            _ => unreachable!(),
        }
        .expect("command succeeds");
    }

    #[test]
    fn shipped_model_loads_with_this_builds_features() {
        let m = ModelFile::from_json(DEFAULT_MODEL).expect("default model loads");
        assert_eq!(m.format_version, classify::MODEL_FORMAT_VERSION);
        assert_eq!(
            m.feature_schema_version,
            classify::FEATURE_SCHEMA_VERSION,
            "run scripts/train-default-model after changing the features"
        );
        // The schema's flow features, then the learned evidence's.
        let ev = m.evidence.as_ref().expect("trained with token evidence");
        let mut names = classify::flow_feature_names();
        names.extend(classify::evidence::evidence_feature_names(&m.class_names));
        assert_eq!(m.feature_names, names);
        assert_eq!(ev.classes, m.class_names.len());
        assert_eq!(m.feature_kind, "flow");
        for c in ["web", "video", "voip"] {
            assert!(m.class_names.iter().any(|n| n == c), "{:?}", m.class_names);
        }
        assert!(matches!(m.model, Model::Forest(_)));
        assert!(
            DEFAULT_MODEL.len() < 1 << 20,
            "{} bytes",
            DEFAULT_MODEL.len()
        );
        // A prediction is a probability vector over its classes.
        let p = m.predict_proba(&vec![0.0; m.feature_names.len()]);
        assert_eq!(p.len(), m.class_names.len());
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    /// Runs the script's `generate` and `train` (about 400 MB of capture in
    /// the temporary directory, a few seconds) and compares the model file
    /// with the shipped one byte for byte.
    #[test]
    fn default_model_script_reproduces_the_shipped_file() {
        let dir = std::env::temp_dir().join(format!("ts-default-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
        let mut g = vec!["trafficscope".to_string(), "generate".into()];
        g.extend(script_args("GENERATE_ARGS"));
        g.extend(["-w".into(), p("default-train.pcap")]);
        g.extend(["--labels".into(), p("default-train.labels.csv")]);
        run(g);
        let mut t = vec!["trafficscope".to_string(), "train".into()];
        t.push(p("default-train.pcap"));
        t.extend(["--labels".into(), p("default-train.labels.csv")]);
        t.extend(script_args("TRAIN_ARGS"));
        t.extend(["-o".into(), p("default.json")]);
        run(t);
        let got = std::fs::read_to_string(p("default.json")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            got == DEFAULT_MODEL,
            "scripts/train-default-model no longer reproduces models/default.json ({} vs {} bytes): rerun it",
            got.len(),
            DEFAULT_MODEL.len()
        );
    }
}
