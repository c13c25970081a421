//! `train` over captures of which one is damaged (skipped with a warning,
//! or `--strict`), and flows that end before `--first-packets` answered at
//! their end, the same in `classify --flows` and in `run`'s stored flows.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use store::History;

fn temp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("classify-train")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn train_skips_a_damaged_capture_keeps_what_came_before_and_strict_aborts() {
    let data = data_dir();
    let labels = data.join("labelled/labels.csv");
    let apps = data.join("pcap-apps/ndpi");
    let fuzz = data.join("pcap-ndpi-more/fuzz-2021-10-13.pcap");
    // A real capture cut inside a packet, under its own name so that the
    // labels still find its flows: the packets before the cut are usable.
    let dir = temp_dir("damaged");
    let whole = std::fs::read(apps.join("web/firefox.pcap")).unwrap();
    let cut = dir.join("firefox.pcap");
    std::fs::write(&cut, &whole[..whole.len() * 2 / 3]).unwrap();
    let mut caps: Vec<PathBuf> = [
        "web/google_ssl.pcap",
        "web/facebook.pcap",
        "web/webdav.pcap",
        "voip-conferencing/sip.pcap",
        "voip-conferencing/iax.pcap",
        "voip-conferencing/h323.pcap",
        "video/rtmp.pcap",
        "video/mpeg-dash.pcap",
        "other/dns.pcap",
        "other/spotify_tcp.pcap",
    ]
    .iter()
    .map(|c| apps.join(c))
    .collect();
    caps.push(fuzz.clone());
    caps.push(cut.clone());
    let model = dir.join("model.json");
    let mut args: Vec<String> = vec!["train".into()];
    args.extend(caps.iter().map(|p| p.to_string_lossy().into_owned()));
    args.extend(
        [
            "--labels",
            labels.to_str().unwrap(),
            "--models",
            "rf",
            "-o",
            model.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&argv);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    // One warning per damaged capture, naming it, the offset and what was kept.
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    let fuzz_s = fuzz.to_string_lossy();
    assert!(
        warnings[0].contains(&*fuzz_s) && warnings[0].contains("byte offset 24"),
        "{err}"
    );
    assert!(warnings[0].contains("0 packets before the damage"), "{err}");
    let cut_s = cut.to_string_lossy();
    assert!(
        warnings[1].contains(&*cut_s) && warnings[1].contains("byte offset"),
        "{err}"
    );
    let kept = |w: &str| -> u64 {
        let (_, rest) = w.split_once("kept its ").unwrap();
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert!(kept(warnings[1]) > 0, "{err}");
    // The summary says how many captures were skipped, and which.
    assert!(
        err.contains("2 of 12 captures damaged")
            && err.contains("fuzz-2021-10-13.pcap (0 flows kept)"),
        "{err}"
    );
    assert!(model.is_file(), "{err}");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    let notes = m.to_string();
    assert!(notes.contains("2 of 12 captures damaged"), "{notes:.300}");

    // The packets before the cut are training rows: more rows than without
    // the cut capture.
    let rows = |err: &str| -> u64 {
        err.lines()
            .find_map(|l| l.strip_prefix("trafficscope: ")?.split_once(" rows ("))
            .unwrap_or_else(|| panic!("no rows line: {err}"))
            .0
            .parse()
            .unwrap()
    };
    let without: Vec<&str> = argv
        .iter()
        .copied()
        .filter(|a| *a != cut_s && *a != fuzz_s && *a != "-o" && *a != model.to_str().unwrap())
        .collect();
    let out2 = run(&without);
    assert!(out2.status.success(), "{}", stderr(&out2));
    assert!(rows(&err) > rows(&stderr(&out2)), "{err}");

    // --strict: the old behaviour, a clear error naming the file and offset.
    let mut strict = argv.clone();
    strict.push("--strict");
    let out = run(&strict);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&*fuzz_s) && err.contains("byte offset 24") && err.contains("--strict"),
        "{err}"
    );
    assert!(!err.contains("warning:"), "{err}");
}

/// A pcap with one UDP flow of three packets (Ethernet, IPv4).
fn three_packet_capture(path: &Path) {
    let mut f = Vec::new();
    f.extend(0xa1b2_c3d4u32.to_le_bytes());
    f.extend(2u16.to_le_bytes());
    f.extend(4u16.to_le_bytes());
    f.extend([0u8; 8]);
    f.extend(65535u32.to_le_bytes());
    f.extend(1u32.to_le_bytes());
    let a = [10, 0, 0, 1];
    let b = [10, 0, 0, 2];
    for (i, (src, dst, sp, dp, len)) in [
        (a, b, 40000u16, 5004u16, 160usize),
        (b, a, 5004, 40000, 160),
        (a, b, 40000, 5004, 172),
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = Vec::new();
        p.extend([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let ip_len = (20 + 8 + len) as u16;
        let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
        ip.extend(src);
        ip.extend(dst);
        let sum = ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum::<u32>();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend(ip);
        p.extend(sp.to_be_bytes());
        p.extend(dp.to_be_bytes());
        p.extend(((8 + len) as u16).to_be_bytes());
        p.extend([0, 0]);
        p.extend((0..len).map(|j| (j * 7 + i) as u8));
        f.extend(1_700_000_000u32.to_le_bytes());
        f.extend((20_000 * i as u32).to_le_bytes());
        f.extend((p.len() as u32).to_le_bytes());
        f.extend((p.len() as u32).to_le_bytes());
        f.extend(p);
    }
    std::fs::write(path, f).unwrap();
}

/// `classify --flows` on the capture: its single flow row.
fn classify_flow(
    cap: &Path,
    dir: &Path,
    threshold: &str,
) -> std::collections::HashMap<String, String> {
    let csv = dir.join(format!("flows-{threshold}.csv"));
    let out = run(&[
        "classify",
        "-r",
        cap.to_str().unwrap(),
        "--flows",
        csv.to_str().unwrap(),
        "--threshold",
        threshold,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = csv_rows(&std::fs::read_to_string(&csv).unwrap());
    assert_eq!(rows.len(), 1, "{rows:?}");
    // Its packets were pending when they arrived: per-packet figures are
    // streaming figures and stay so.
    assert!(stderr(&out).contains("pending 3"), "{}", stderr(&out));
    rows.into_iter().next().unwrap()
}

/// `run` on the capture: its single stored flow row.
fn run_flow(cap: &Path, dir: &Path, threshold: &str) -> serde_json::Value {
    let data = dir.join(format!("store-{threshold}"));
    let out = run(&[
        "run",
        "-r",
        cap.to_str().unwrap(),
        "--speed",
        "max",
        "--no-listen",
        "--threshold",
        threshold,
        "--data",
        data.to_str().unwrap(),
        "--bin-retention",
        "36500d",
        "--flow-retention",
        "36500d",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let h = store::open_history(&data).unwrap();
    let page = h
        .flows(&store::FlowQuery {
            from_ns: 0,
            to_ns: u64::MAX,
            class: None,
            app: None,
            addr: None,
            port: None,
            sort: store::FlowSort::Start,
            descending: false,
            limit: 10,
            offset: 0,
        })
        .unwrap();
    assert_eq!(page.flows.len(), 1, "{:?}", page.flows);
    page.flows[0].clone()
}

#[test]
fn a_flow_shorter_than_first_packets_is_answered_at_its_end() {
    let dir = temp_dir("short-flow");
    let cap = dir.join("three.pcap");
    three_packet_capture(&cap);

    let c = classify_flow(&cap, &dir, "0.5");
    assert_eq!(c["packets"], "3");
    assert_ne!(c["prediction"], "pending", "{c:?}");
    let conf: f32 = c["confidence"].parse().expect("a confidence");
    assert!(conf > 0.0 && conf <= 1.0, "{c:?}");
    let r = run_flow(&cap, &dir, "0.5");
    assert_eq!(r["class"].as_str(), Some(c["prediction"].as_str()), "{r}");
    let rconf = r["confidence"].as_f64().expect("a confidence") as f32;
    assert!((rconf - conf).abs() < 1e-4, "{r} vs {c:?}");
    let probs = r["probabilities"].to_string();
    assert!(probs.len() > 2, "{r}");

    // Above its best probability, the answer is `unknown`, in both.
    let above = format!("{:.4}", (conf + 0.001).min(1.0001));
    let c = classify_flow(&cap, &dir, &above);
    assert_eq!(c["prediction"], "unknown", "{c:?}");
    assert!(!c["confidence"].is_empty());
    let r = run_flow(&cap, &dir, &above);
    assert_eq!(r["class"], "unknown", "{r}");
}

/// `train` over real captures of the four classes: the model it writes is
/// the one with the best held-out macro-F1 in the table it prints, the
/// file carries the temperature it reports, the cross-fitted calibration
/// lowers the expected calibration error on held-out captures, and
/// `classify` answers with the calibrated probabilities.
#[test]
fn train_writes_the_model_that_is_best_on_held_out_captures_calibrated() {
    let data = data_dir();
    let labels = data.join("labelled/labels.csv");
    let apps = data.join("pcap-apps/ndpi");
    let dir = temp_dir("choice");
    let mut caps: Vec<String> = Vec::new();
    for class in ["web", "video", "voip-conferencing", "other"] {
        for c in files_with_ext(&apps.join(class), &["pcap", "pcapng"]) {
            caps.push(c.to_string_lossy().into_owned());
        }
    }
    let model = dir.join("model.json");
    let held = dir.join("held-out.csv");
    let plots = dir.join("plots");
    let mut args: Vec<&str> = vec!["train"];
    args.extend(caps.iter().map(String::as_str));
    args.extend([
        "--labels",
        labels.to_str().unwrap(),
        "--models",
        "rf,gbt",
        "-o",
        model.to_str().unwrap(),
        "--held-out",
        held.to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
    ]);
    let out = run(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", stderr(&out));
    // The table: model, accuracy, macro-F1, ...
    let table: Vec<(String, f64)> = text
        .lines()
        .filter(|l| l.starts_with("random-forest ") || l.starts_with("gbt "))
        .filter_map(|l| {
            // Table rows: model, accuracy, macro-F1, … (not the "chosen by" line).
            let f: Vec<&str> = l.split_whitespace().collect();
            f[1].parse::<f64>().ok()?;
            Some((f[0].to_string(), f[2].parse().ok()?))
        })
        .collect();
    assert_eq!(table.len(), 2, "{text}");
    let best = table
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap()
        .0
        .clone();
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    let kind = m["model"]["kind"].as_str().unwrap();
    let expect_kind = if best == "random-forest" {
        "forest"
    } else {
        "gbt"
    };
    assert_eq!(kind, expect_kind, "{text}");
    assert!(
        text.contains(&format!("{best} chosen by held-out macro-F1")),
        "{text}"
    );
    // Every labelled whole flow is in the held-out CSV once, with the
    // chosen model's answer; its accuracy is the table's.
    let rows = csv_rows(&std::fs::read_to_string(&held).unwrap());
    let right = rows.iter().filter(|r| r["class"] == r["answer"]).count();
    let acc_line = text
        .lines()
        .find(|l| {
            l.starts_with(&format!("{best} "))
                && l.split_whitespace()
                    .nth(1)
                    .is_some_and(|v| v.parse::<f64>().is_ok())
        })
        .unwrap();
    let acc: f64 = acc_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        (right as f64 / rows.len() as f64 - acc).abs() < 1e-4,
        "{right}/{} vs {acc}",
        rows.len()
    );
    // Calibration: the temperature in the file is the one reported, and
    // the calibrated error on held-out captures is lower than the raw.
    let cal = text
        .lines()
        .find(|l| l.starts_with("calibration: temperature "))
        .unwrap_or_else(|| panic!("no calibration line: {text}"));
    let t: f64 = cal["calibration: temperature ".len()..]
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let t_file = m["temperature"].as_f64().unwrap_or(1.0);
    assert!((t - t_file).abs() < 5e-4, "{t} vs {t_file}");
    let ece: Vec<f64> = cal
        .split("bins) ")
        .nth(1)
        .unwrap()
        .split(", ")
        .take(2)
        .map(|s| s.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(ece[1] < ece[0], "{cal}");
    assert!(plots.join("reliability.svg").is_file());

    // `classify` answers with the calibrated probabilities: on a capture it
    // was trained on, the confidence of each flow is the file's model
    // output at that temperature, so a temperature of 1 gives other values.
    let cap = apps.join("voip-conferencing/sip.pcap");
    let flows_at = |model: &Path, name: &str| {
        let csv = dir.join(name);
        let o = run(&[
            "classify",
            "-r",
            cap.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--flows",
            csv.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        csv_rows(&std::fs::read_to_string(&csv).unwrap())
    };
    let mut raw = m.clone();
    raw["temperature"] = serde_json::json!(1.0);
    raw["class_weights"] = serde_json::json!([]);
    let raw_path = dir.join("raw.json");
    std::fs::write(&raw_path, raw.to_string()).unwrap();
    let cal_rows = flows_at(&model, "cal.csv");
    let raw_rows = flows_at(&raw_path, "raw.csv");
    assert_eq!(cal_rows.len(), raw_rows.len());
    let classes: Vec<String> = m["class_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let mut differ = 0;
    for (c, r) in cal_rows.iter().zip(&raw_rows) {
        // p_cal ∝ (w · p_raw)^(1/T): check it from the raw row's probabilities.
        let w: Vec<f64> = m["class_weights"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_f64().unwrap()).collect())
            .unwrap_or_else(|| vec![1.0; classes.len()]);
        // The CSV rounds to 4 decimals: a raw probability printed as 0.0000
        // may be up to 0.00005, which a temperature above 1 raises to a
        // visible value, so each class is checked against the interval the
        // rounding allows (a class's calibrated value rises with its own raw
        // value and falls with the others').
        let raw_p: Vec<f64> = classes
            .iter()
            .map(|n| r[&format!("p_{n}")].parse::<f64>().unwrap())
            .collect();
        let cal = |p: &[f64]| -> Vec<f64> {
            let q: Vec<f64> = p
                .iter()
                .zip(&w)
                .map(|(v, w)| (w * v).powf(1.0 / t_file))
                .collect();
            let s: f64 = q.iter().sum();
            q.iter().map(|v| v / s).collect()
        };
        for (i, n) in classes.iter().enumerate() {
            let got: f64 = c[&format!("p_{n}")].parse().unwrap();
            let shifted = |own: f64| -> Vec<f64> {
                (0..raw_p.len())
                    .map(|j| {
                        let d = if j == i { own } else { -own };
                        (raw_p[j] + d).max(0.0)
                    })
                    .collect()
            };
            let lo = cal(&shifted(-5e-5))[i];
            let hi = cal(&shifted(5e-5))[i];
            assert!(
                got > lo - 2e-3 && got < hi + 2e-3,
                "{n}: {got} outside [{lo}, {hi}] (raw {}, T {t_file})",
                raw_p[i]
            );
        }
        differ += (c["confidence"] != r["confidence"]) as usize;
    }
    if (t_file - 1.0).abs() > 0.05 {
        assert!(differ > 0);
    }
}
