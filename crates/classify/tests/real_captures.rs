//! End-to-end on a few small real captures (skipped when the shared data
//! directory is absent): dataset, training, model file, streaming.

use capture::CaptureReader;
use classify::{
    class_weights, Classifier, DatasetBuilder, DatasetOptions, Labels, Model, ModelFile, ModelKind,
    Prediction, StreamingClassifier, StreamingConfig, TrainingSummary, WindowedEvaluator,
};

/// `../shared/data` beside the repository (override with TRAFFICSCOPE_DATA).
fn data() -> std::path::PathBuf {
    std::env::var_os("TRAFFICSCOPE_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
        })
}
const FILES: [&str; 5] = [
    "voip-conferencing/sip.pcap",
    "voip-conferencing/rtp.pcapng",
    "web/google_ssl.pcap",
    "web/chrome.pcap",
    "other/dns.pcap",
];

#[test]
fn dataset_train_save_load_and_stream() {
    let labels = data().join("labelled/labels.csv");
    if !labels.exists() {
        // In CI the data is always there: a missing copy must fail, not pass.
        assert!(
            std::env::var_os("CI").is_none(),
            "shared data not found at {}",
            labels.display()
        );
        eprintln!("shared data absent, skipped");
        return;
    }
    let labels = labels.to_str().unwrap().to_string();
    let dir = data().join("pcap-apps/ndpi");
    let dir = dir.to_str().unwrap().to_string();
    let mut b = DatasetBuilder::new(
        Labels::from_csv(&labels).unwrap(),
        DatasetOptions {
            prefix_packets: vec![8],
            ..Default::default()
        },
    );
    for f in FILES {
        let st = b.add_capture(&format!("{dir}/{f}")).unwrap();
        assert!(st.frames > 0 && st.flows > 0, "{f}: {st:?}");
    }
    let (ds, stats) = b.finish();
    assert!(stats.labelled_flows > 10, "{stats}");
    // Rows of other captures are in labels.csv but were not read.
    assert!(stats.unmatched_labels > 500, "{stats}");
    assert_eq!(ds.x.len(), ds.y.len());
    let groups: std::collections::BTreeSet<&String> = ds.groups.iter().collect();
    assert_eq!(groups.len(), FILES.len());

    let k = ds.class_names.len();
    let mut m = Model::new(ModelKind::Forest, 3);
    m.fit(&ds.x, &ds.y, k, Some(&class_weights(&ds.y, k)))
        .unwrap();
    let train_acc =
        ds.x.iter()
            .zip(&ds.y)
            .filter(|(x, &y)| m.predict(x) == y)
            .count() as f64
            / ds.len() as f64;
    assert!(train_acc > 0.95, "training accuracy {train_acc}");
    let mf = ModelFile::flow(m, ds.class_names.clone(), TrainingSummary::default());
    let path = std::env::temp_dir().join(format!("classify-model-{}.json", std::process::id()));
    mf.save(path.to_str().unwrap()).unwrap();
    let back = ModelFile::load(path.to_str().unwrap()).unwrap();
    assert_eq!(back, mf);
    let _ = std::fs::remove_file(&path);

    // Streaming: pending before 8 packets, a prediction from the 8th on.
    let mut sc = StreamingClassifier::new(back, StreamingConfig::default()).unwrap();
    let mut ev = WindowedEvaluator::default();
    let mut reader = CaptureReader::open(&format!("{dir}/voip-conferencing/sip.pcap")).unwrap();
    let mut packets = 0;
    let mut predicted = 0;
    while let Some(fr) = reader.next_frame().unwrap() {
        let pkt = decode::decode(fr.linktype, fr.data);
        let Some(v) = sc.push(&pkt, fr.ts_ns, fr.wire_len) else {
            continue;
        };
        packets += 1;
        if v.position < 8 {
            assert_eq!(v.prediction, Prediction::Pending, "{v:?}");
        } else {
            assert_ne!(v.prediction, Prediction::Pending, "{v:?}");
            predicted += 1;
        }
        ev.record(fr.ts_ns, v.prediction.class(), None);
    }
    assert!(packets > 0 && predicted > 0);
    assert!(sc.predictions() > 0);
    // At its end every flow has an answer: those that ended before the
    // 8th packet are judged on what they had.
    sc.finish();
    let verdicts: Vec<_> = sc.drain_verdicts().collect();
    assert!(
        verdicts.iter().any(|v| v.packets < 8),
        "short flows in sip.pcap"
    );
    for v in &verdicts {
        assert_ne!(v.prediction, Prediction::Pending, "{v:?}");
        assert!(
            (v.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4,
            "{v:?}"
        );
    }
    let windows = ev.finish();
    assert!(!windows.is_empty());
    assert_eq!(windows.iter().map(|w| w.unlabelled).sum::<u64>(), packets);
}

/// Every labelled flow of the development captures (None without the data).
fn real_dataset() -> Option<classify::Dataset> {
    let labels = data().join("labelled/labels.csv");
    if !labels.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "shared data not found at {}",
            labels.display()
        );
        eprintln!("shared data absent, skipped");
        return None;
    }
    let mut b = DatasetBuilder::new(
        Labels::from_csv(labels.to_str().unwrap()).unwrap(),
        DatasetOptions {
            prefix_packets: vec![8],
            ..Default::default()
        },
    );
    let mut stack = vec![data().join("pcap-apps/ndpi")];
    let mut files = vec![];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
                files.push(p);
            }
        }
    }
    files.sort();
    for f in &files {
        b.add_capture(f.to_str().unwrap()).unwrap();
    }
    Some(b.finish().0)
}

/// The previous prediction code: one tree at a time, node by node
/// (`Tree::leaf`), leaf values summed in tree order.
fn tree_walk_forest(trees: &[classify::tree::Tree], k: usize, x: &[f32]) -> Vec<f32> {
    let mut p = vec![0f32; k];
    for t in trees {
        for (a, b) in p.iter_mut().zip(t.leaf(x)) {
            *a += b;
        }
    }
    let s: f32 = p.iter().sum();
    if s > 0.0 {
        p.iter_mut().for_each(|v| *v /= s);
    }
    p
}

fn tree_walk_gbt(trees: &[classify::tree::Tree], base: &[f32], lr: f32, x: &[f32]) -> Vec<f32> {
    let k = base.len();
    let mut f = base.to_vec();
    for (i, t) in trees.iter().enumerate() {
        f[i % k] += lr * t.leaf(x)[0];
    }
    let m = f.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0;
    for v in f.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    f.iter_mut().for_each(|v| *v /= s);
    f
}

#[test]
fn flattened_trees_predict_exactly_like_the_tree_walk_on_real_flows() {
    use classify::{GbtParams, GradientBoosting, RandomForest, RfParams};
    let Some(ds) = real_dataset() else { return };
    let k = ds.class_names.len();
    let split = ds.split_by_group(0.4, 2);
    let (xtr, ytr) = ds.subset(&split.train);
    let (xte, _) = ds.subset(&split.test);
    assert!(xte.len() > 100, "{} held-out rows", xte.len());
    // A few NaN, as a damaged feature vector could carry.
    let mut xte = xte;
    for (i, r) in xte.iter_mut().enumerate().step_by(37) {
        let n = r.len();
        r[i % n] = f32::NAN;
    }
    let w = class_weights(&ytr, k);

    let mut rf = RandomForest::new(RfParams {
        n_trees: 40,
        seed: 5,
        ..Default::default()
    });
    rf.fit(&xtr, &ytr, k, Some(&w)).unwrap();
    let trees = rf.ensemble().to_trees();
    assert_eq!(trees.len(), 40);
    let mut batch_ref = vec![];
    let mut into = vec![0f32; k];
    for x in &xte {
        let want = tree_walk_forest(&trees, k, x);
        assert_eq!(rf.predict_proba(x), want, "forest probabilities");
        rf.predict_proba_into(x, &mut into);
        assert_eq!(into, want);
        // The previous batch prediction took the argmax of the sums.
        let mut sums = vec![0f32; k];
        for t in &trees {
            for (a, b) in sums.iter_mut().zip(t.leaf(x)) {
                *a += b;
            }
        }
        batch_ref.push(classify::models::argmax(&sums));
    }
    assert_eq!(rf.predict_batch(&xte), batch_ref, "forest batch");
    let mut proba = vec![];
    rf.predict_proba_batch(&xte, &mut proba);
    for (x, p) in xte.iter().zip(proba.chunks(k)) {
        assert_eq!(p, tree_walk_forest(&trees, k, x).as_slice());
    }

    let mut gbt = GradientBoosting::new(GbtParams {
        rounds: 25,
        seed: 5,
        ..Default::default()
    });
    gbt.fit(&xtr, &ytr, k, Some(&w)).unwrap();
    let gtrees = gbt.ensemble().to_trees();
    assert_eq!(gtrees.len(), 25 * k);
    let lr = gbt.params.learning_rate;
    let mut gbatch = vec![];
    for x in &xte {
        let want = tree_walk_gbt(&gtrees, gbt.base(), lr, x);
        assert_eq!(gbt.predict_proba(x), want, "boosting probabilities");
        gbatch.push(classify::models::argmax(&want));
    }
    assert_eq!(gbt.predict_batch(&xte), gbatch, "boosting batch");

    // A model file of format version 1 (a list of node objects per tree)
    // loads as the same model.
    for m in [Model::Forest(rf), Model::Gbt(gbt)] {
        let mf = ModelFile::flow(m, ds.class_names.clone(), TrainingSummary::default());
        let mut v: serde_json::Value = serde_json::from_str(&mf.to_json().unwrap()).unwrap();
        let old = match &mf.model {
            Model::Forest(f) => f.ensemble().to_trees(),
            Model::Gbt(g) => g.ensemble().to_trees(),
            Model::Mlp(_) => unreachable!(),
        };
        v["format_version"] = serde_json::json!(1);
        v["model"]["trees"] = serde_json::to_value(&old).unwrap();
        assert!(
            v["model"]["trees"][0]["nodes"][0]["f"].is_u64(),
            "v1 layout"
        );
        let back = ModelFile::from_json(&v.to_string()).unwrap();
        assert_eq!(back.format_version, classify::MODEL_FORMAT_VERSION);
        assert!(back == mf, "version 1 file converts to the same model");
        for x in &xte {
            assert_eq!(back.predict_proba(x), mf.predict_proba(x));
        }
    }
}

/// Streaming predictions reuse what a flow's names give its row between
/// predictions: on every packet of real flows (TLS, HTTP, DNS, SIP, RTP), the
/// cached row of the table's record so far equals the row computed afresh,
/// with the shipped model (which carries token evidence).
#[test]
fn cached_rows_equal_fresh_rows_on_every_packet_of_real_flows() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default.json");
    let model = ModelFile::from_json(&std::fs::read_to_string(model).unwrap()).unwrap();
    assert!(
        model.evidence.is_some(),
        "the shipped model carries evidence"
    );
    let dir = data().join("pcap-apps/ndpi");
    if !dir.exists() {
        assert!(std::env::var_os("CI").is_none(), "shared data not found");
        return;
    }
    let mut table = flow::FlowTable::new(flow::FlowConfig::default());
    let mut caches: std::collections::HashMap<u64, classify::RowNameCache> = Default::default();
    let mut memo = classify::NameMemo::default();
    let (mut rows, mut name_changes) = (0, 0);
    let more = [
        "video/1kxun.pcap",
        "web/sites.pcapng",
        "voip-conferencing/webex.pcap",
    ];
    for f in FILES.iter().chain(&more) {
        let mut r = CaptureReader::open(dir.join(f).to_str().unwrap()).unwrap();
        while let Some(fr) = r.next_frame().unwrap() {
            let pkt = decode::decode(fr.linktype, fr.data);
            let Some(placed) = table.process(&pkt, fr.ts_ns, fr.wire_len, &mut |_| {}) else {
                continue;
            };
            let rec = table.snapshot(&placed).unwrap();
            let cache = caches.entry(placed.flow_id).or_default();
            let before = format!("{cache:?}");
            let got = model.flow_row_cached(&rec, cache, &mut memo);
            name_changes += (format!("{cache:?}") != before) as usize;
            let want = model.flow_row(&rec);
            assert_eq!(got.len(), want.len());
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{f}: flow {} at packet {}",
                placed.flow_id,
                placed.position
            );
            rows += 1;
        }
    }
    eprintln!(
        "{rows} rows, {name_changes} refreshes, {} flows",
        caches.len()
    );
    // The cache was reused, and refreshed as flows revealed their names.
    assert!(rows > 1000, "{rows} rows");
    assert!(
        name_changes > caches.len() && name_changes < rows / 2,
        "{name_changes} refreshes, {} flows, {rows} rows",
        caches.len()
    );
}
