//! `/metrics` parses as Prometheus text and reports the live counters.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// A strict reader of the text format: HELP/TYPE comments, then samples
/// whose family was declared by a TYPE line before them.
fn parse(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
            })
    };
    let (mut types, mut samples) = (BTreeMap::new(), Vec::new());
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(valid_name(name), "{line}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "twice: {line}"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let mut labels = BTreeMap::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
                    assert!(valid_name(&key), "{line}");
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut v = String::new();
                    loop {
                        match chars.next().unwrap() {
                            '\\' => match chars.next().unwrap() {
                                'n' => v.push('\n'),
                                c => v.push(c),
                            },
                            '"' => break,
                            c => v.push(c),
                        }
                    }
                    labels.insert(key, v);
                    if chars.peek() == Some(&',') {
                        chars.next();
                    }
                }
                (name, labels)
            }
        };
        assert!(valid_name(name), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "no TYPE before {line}");
        samples.push((name.to_string(), labels, value));
    }
    (types, samples)
}

#[test]
fn metrics_are_valid_text_with_the_live_values() {
    let s = start(None, 16);
    s.status.packet_latency.observe_ns(3_000);
    s.status.packet_latency.observe_ns(3_000);
    s.status.packet_latency.observe_ns(2_000_000_000);
    s.status.bin_latency.observe_ns(700_000);
    s.stats
        .failing
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let (types, samples) = parse(&r.body);
    let get = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        samples
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .unwrap_or_else(|| panic!("no {name} {labels:?}"))
            .2
    };
    for (name, kind) in [
        ("trafficscope_packets_total", "counter"),
        ("trafficscope_class_packets_total", "counter"),
        ("trafficscope_protocol_bytes_total", "counter"),
        ("trafficscope_flows_total", "counter"),
        ("trafficscope_drops_total", "counter"),
        ("trafficscope_queue_fill_ratio", "gauge"),
        ("trafficscope_stage_latency_seconds", "histogram"),
        ("trafficscope_store_failing", "gauge"),
        ("trafficscope_uptime_seconds", "gauge"),
        ("trafficscope_malformed_packets_total", "counter"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
    }
    assert_eq!(get("trafficscope_packets_total", &[]), 12_345.0);
    assert_eq!(get("trafficscope_bytes_total", &[]), 6_789_000.0);
    assert_eq!(get("trafficscope_malformed_packets_total", &[]), 2.0);
    assert_eq!(
        get("trafficscope_class_packets_total", &[("class", "web")]),
        100.0
    );
    assert_eq!(
        get("trafficscope_class_bytes_total", &[("class", "video")]),
        20_000.0
    );
    assert_eq!(
        get(
            "trafficscope_protocol_packets_total",
            &[("protocol", "TCP")]
        ),
        100.0
    );
    assert_eq!(
        get(
            "trafficscope_service_bytes_total",
            &[("service", "odd \"name\"\\x")]
        ),
        2.0
    );
    assert_eq!(get("trafficscope_flows_total", &[("class", "web")]), 7.0);
    for (cause, n) in [
        ("kernel", 3.0),
        ("queue", 4.0),
        ("flows_to", 6.0),
        ("store", 5.0),
    ] {
        assert_eq!(get("trafficscope_drops_total", &[("cause", cause)]), n);
    }
    assert_eq!(get("trafficscope_queue_fill_ratio", &[]), 0.25);
    assert_eq!(get("trafficscope_store_failing", &[]), 1.0);
    assert_eq!(get("trafficscope_store_size_bytes", &[]), 123_456.0);
    assert_eq!(get("trafficscope_store_commit_lag_seconds", &[]), 0.25);
    let h = "trafficscope_stage_latency_seconds";
    assert_eq!(get(&format!("{h}_count"), &[("stage", "packet")]), 3.0);
    assert!((get(&format!("{h}_sum"), &[("stage", "packet")]) - 2.000006).abs() < 1e-9);
    assert_eq!(
        get(
            &format!("{h}_bucket"),
            &[("stage", "packet"), ("le", "0.000005")]
        ),
        2.0
    );
    assert_eq!(
        get(&format!("{h}_bucket"), &[("stage", "packet"), ("le", "1")]),
        2.0
    );
    assert_eq!(
        get(
            &format!("{h}_bucket"),
            &[("stage", "packet"), ("le", "+Inf")]
        ),
        3.0
    );
    assert_eq!(get(&format!("{h}_count"), &[("stage", "bin")]), 1.0);
    // Buckets are cumulative for both stages.
    for stage in ["packet", "bin"] {
        let b: Vec<f64> = samples
            .iter()
            .filter(|(n, l, _)| n == &format!("{h}_bucket") && l["stage"] == stage)
            .map(|s| s.2)
            .collect();
        assert_eq!(b.len(), 13);
        assert!(b.windows(2).all(|w| w[0] <= w[1]), "{stage}: {b:?}");
    }
    let names: BTreeSet<&str> = samples.iter().map(|s| s.0.as_str()).collect();
    assert!(names.iter().all(|n| n.starts_with("trafficscope_")));
}
