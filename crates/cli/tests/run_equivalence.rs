//! `trafficscope run` against the offline commands, on every capture of
//! `pcap-apps`: the store's totals per protocol, service, direction and
//! class equal `stats` and `classify` for the same file, its evaluation
//! windows equal `classify --windows 5s`, its flow records equal `flows`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use pipeline::Dim;
use store::History;

/// Captures of pcap-apps (pcap and pcapng), sorted.
fn captures() -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut stack = vec![data_dir().join("pcap-apps")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                v.push(p);
            }
        }
    }
    v.sort();
    assert!(v.len() >= 40, "pcap-apps holds {} captures", v.len());
    v
}

fn temp_store(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("run-eq")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.parent().unwrap()).unwrap();
    d
}

fn map_of(v: &serde_json::Value) -> BTreeMap<String, (u64, u64)> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, c)| {
            (
                k.clone(),
                (c["packets"].as_u64().unwrap(), c["bytes"].as_u64().unwrap()),
            )
        })
        .collect()
}

fn dim_map(t: &store::Totals, dim: Dim) -> BTreeMap<String, (u64, u64)> {
    t.by_dim
        .iter()
        .filter(|(d, _, _, _)| *d == dim)
        .map(|(_, k, p, b)| (k.clone(), (*p, *b)))
        .collect()
}

/// "packets by class: web 12, video 0, …" from classify's stderr, zeros left out.
fn classify_class_packets(stderr: &str) -> BTreeMap<String, u64> {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("trafficscope: packets by class: "))
        .unwrap_or_else(|| panic!("no class line in {stderr}"));
    line.split(", ")
        .map(|kv| {
            let (k, v) = kv.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse::<u64>().unwrap())
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

#[test]
fn run_store_equals_stats_classify_and_flows_on_every_pcap_apps_capture() {
    let labels = data_dir().join("labelled/labels.csv");
    let mut checked = 0;
    for cap in captures() {
        let name = cap.file_name().unwrap().to_string_lossy().to_string();
        let data = temp_store(&name);
        run_offline(&cap, &labels, &data);
        let history = store::open_history(&data).expect("store opens");
        let totals = history.totals(0, u64::MAX).unwrap();

        // stats: packets and bytes, by protocol, service and direction.
        let stats = run(&["stats", "-r", cap.to_str().unwrap(), "--json"]);
        assert!(stats.status.success(), "{name}");
        let s: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
        assert_eq!(totals.packets, s["packets"].as_u64().unwrap(), "{name}");
        assert_eq!(totals.bytes, s["wire_bytes"].as_u64().unwrap(), "{name}");
        assert_eq!(
            dim_map(&totals, Dim::Protocol),
            map_of(&s["protocols"]),
            "{name}"
        );
        assert_eq!(
            dim_map(&totals, Dim::Service),
            map_of(&s["services"]),
            "{name}"
        );
        assert_eq!(
            dim_map(&totals, Dim::Direction),
            map_of(&s["directions"]),
            "{name}"
        );
        assert_eq!(
            totals.flows_started,
            s["flows"]["flows"].as_u64().unwrap(),
            "{name}"
        );

        // classify: packets by their flow's class, and the 5 s windows.
        let flows_csv = temp_store(&format!("{name}.flows.csv"));
        let cl = run(&[
            "classify",
            "-r",
            cap.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
            "--windows",
            "5s",
            "--flows",
            flows_csv.to_str().unwrap(),
        ]);
        assert!(
            cl.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&cl.stderr)
        );
        let want = classify_class_packets(&String::from_utf8_lossy(&cl.stderr));
        let got: BTreeMap<String, u64> = dim_map(&totals, Dim::Class)
            .into_iter()
            .filter(|(k, _)| k != "no-flow")
            .map(|(k, (p, _))| (k, p))
            .collect();
        assert_eq!(got, want, "{name}: packets by class");
        let rows = csv_rows(&String::from_utf8_lossy(&cl.stdout));
        let windows = history.windows(0, u64::MAX).unwrap();
        assert_eq!(windows.len(), rows.len(), "{name}: windows");
        for (w, r) in windows.iter().zip(&rows) {
            assert_eq!(
                capture::Utc(w.start_ns).to_string(),
                r["window_start"],
                "{name}"
            );
            let packets = w.hits + w.misses + w.unknown + w.pending + w.unlabelled;
            assert_eq!(packets.to_string(), r["packets"], "{name}");
            assert_eq!(w.hits.to_string(), r["hits"], "{name}");
            assert_eq!(w.misses.to_string(), r["misses"], "{name}");
            assert_eq!((w.unknown + w.pending).to_string(), r["unknown"], "{name}");
        }

        // flows: the same records, field for field.
        let fl = run(&["flows", "-r", cap.to_str().unwrap(), "--format", "jsonl"]);
        assert!(fl.status.success(), "{name}");
        let mut want: Vec<serde_json::Value> = String::from_utf8_lossy(&fl.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let page = history
            .flows(&store::FlowQuery {
                from_ns: 0,
                to_ns: u64::MAX,
                class: None,
                app: None,
                addr: None,
                port: None,
                sort: store::FlowSort::Start,
                descending: false,
                limit: 1_000_000,
                offset: 0,
            })
            .unwrap();
        assert_eq!(page.total as usize, want.len(), "{name}: flows");
        let mut got: Vec<serde_json::Value> =
            page.flows.iter().map(|f| f["record"].clone()).collect();
        let key = |v: &serde_json::Value| v["id"].as_u64().unwrap();
        got.sort_by_key(key);
        want.sort_by_key(key);
        assert_eq!(got, want, "{name}: flow records");
        // Packets by application as known when they arrived: they add up
        // with the directions (IP packets in flows), and no application
        // holds more packets than the flows `flows` recognised it in (a
        // flow's earlier packets count as unrecognised; an HTTP CONNECT
        // flow is `http` until its TLS is seen).
        let apps = dim_map(&totals, Dim::App);
        let sum = |m: &BTreeMap<String, (u64, u64)>| {
            m.values().fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1))
        };
        assert_eq!(sum(&apps), sum(&dim_map(&totals, Dim::Direction)), "{name}");
        let mut by_app: BTreeMap<String, u64> = BTreeMap::new();
        for r in &want {
            let packets =
                r["fwd"]["packets"].as_u64().unwrap() + r["bwd"]["packets"].as_u64().unwrap();
            let protocols = r["app"]["protocols"].as_str().unwrap_or("");
            let mut seen: Vec<&str> = protocols.split('+').filter(|p| !p.is_empty()).collect();
            seen.extend(r["app"]["detected"].as_str());
            seen.sort();
            seen.dedup();
            if seen.is_empty() {
                seen.push("unrecognised");
            }
            for app in seen {
                *by_app.entry(app.to_string()).or_default() += packets;
            }
        }
        for (app, (p, _)) in &apps {
            let in_flows = by_app.get(app).copied().unwrap_or(0);
            if app == "unrecognised" {
                assert!(*p >= in_flows, "{name}: {app} {p} < {in_flows}");
            } else {
                assert!(*p <= in_flows && *p > 0, "{name}: {app} {p} > {in_flows}");
            }
        }
        // Every flow carries an answer, the one `classify --flows` gives it
        // (flows shorter than --first-packets included: never `pending`
        // once ended), with the same confidence.
        let verdicts: BTreeMap<u64, (String, String)> =
            csv_rows(&std::fs::read_to_string(&flows_csv).unwrap())
                .into_iter()
                .map(|r| {
                    (
                        r["flow_id"].parse().unwrap(),
                        (r["prediction"].clone(), r["confidence"].clone()),
                    )
                })
                .collect();
        assert_eq!(verdicts.len(), page.flows.len(), "{name}: flow verdicts");
        for f in &page.flows {
            let id = f["record"]["id"].as_u64().unwrap();
            let (class, conf) = &verdicts[&id];
            assert_eq!(f["class"].as_str(), Some(class.as_str()), "{name}: {f}");
            assert_ne!(class, "pending", "{name}: {f}");
            let got = f["confidence"].as_f64().map(|c| format!("{c:.4}"));
            assert_eq!(got.as_deref(), Some(conf.as_str()), "{name}: {f}");
        }
        checked += 1;
    }
    eprintln!("{checked} captures: run's store equals stats, classify and flows");
}

/// Labels naming a class the model does not have (nDPI's `other`) are
/// scored as misses and written as they are, in `classify --flows` and in
/// `run`; neither crashes.
#[test]
fn labels_with_a_class_the_model_lacks_are_scored_not_a_crash() {
    let labels = data_dir().join("labelled/labels.csv");
    let cap = captures()
        .into_iter()
        .find(|p| p.ends_with("bittorrent.pcap"))
        .expect("bittorrent.pcap in pcap-apps");
    let flows_csv = temp_store("lacks-class.csv");
    let out = run(&[
        "classify",
        "-r",
        cap.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--flows",
        flows_csv.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = csv_rows(&std::fs::read_to_string(&flows_csv).unwrap());
    let other = rows.iter().filter(|r| r["label"] == "other").count();
    assert!(other > 0, "the labels' own class is written: {rows:?}");
    // The model has no `other`: such flows can only be misses or unanswered.
    assert!(rows
        .iter()
        .filter(|r| r["label"] == "other")
        .all(|r| r["prediction"] != "other"));
    let data = temp_store("lacks-class");
    run_offline(&cap, &labels, &data);
    let h = store::open_history(&data).unwrap();
    let w = h.windows(0, u64::MAX / 2).unwrap();
    let other: u64 = w
        .iter()
        .flat_map(|w| &w.by_class)
        .filter(|c| c.class == "other")
        .map(|c| c.hits + c.misses + c.unknown + c.pending)
        .sum();
    assert!(other > 0, "`other` is scored per window: {w:?}");
    let hits: u64 = w
        .iter()
        .flat_map(|w| &w.by_class)
        .filter(|c| c.class == "other")
        .map(|c| c.hits)
        .sum();
    assert_eq!(hits, 0);
}
