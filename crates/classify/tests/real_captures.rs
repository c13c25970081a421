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
    let windows = ev.finish();
    assert!(!windows.is_empty());
    assert_eq!(windows.iter().map(|w| w.unlabelled).sum::<u64>(), packets);
}
