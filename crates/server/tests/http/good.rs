//! Well-formed requests: answers carry the numbers the history holds,
//! computed here from the closed forms in `fake`, not from the fake.

use std::sync::atomic::Ordering::Relaxed;

use serde_json::Value;

use super::*;

fn line<'a>(body: &'a Value, key: &str) -> &'a Vec<Value> {
    body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == key)
        .unwrap_or_else(|| panic!("no line {key} in {body}"))["values"]
        .as_array()
        .unwrap()
}

fn sum(range: std::ops::Range<u64>, f: impl Fn(u64) -> u64) -> u64 {
    range.filter(|&i| present(i)).map(f).sum()
}

fn num(v: &Value) -> u64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")) as u64
}

#[test]
fn series_by_class_at_ten_seconds() {
    let s = start(None, 16);
    let r = s.get(&format!(
        "/api/v1/series?metric=packets&by=class&from={}&to={}&step=10s",
        T0_S,
        T0_S + 60
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let b = r.json();
    assert_eq!(b["from_ns"], T0);
    assert_eq!(b["to_ns"], T0 + 60 * S);
    assert_eq!(b["from"], "2026-12-04T15:00:00Z");
    assert_eq!(b["step"], "10s");
    assert_eq!(b["step_ns"], 10 * S);
    let times: Vec<u64> = (0..6).map(|k| T0 + k * 10 * S).collect();
    assert_eq!(b["times_ns"], serde_json::json!(times));
    for k in 0..6 {
        let r = k * 10..k * 10 + 10;
        assert_eq!(
            num(&line(&b, "web")[k as usize]),
            sum(r.clone(), web_packets)
        );
        assert_eq!(num(&line(&b, "video")[k as usize]), sum(r, video_packets));
    }
}

#[test]
fn series_gap_is_null_and_top_folds_the_rest() {
    let s = start(None, 16);
    let b = s
        .get(&format!(
            "/api/v1/series?metric=bytes&from={}&to={}&step=10s",
            T0_S + 290,
            T0_S + 320
        ))
        .json();
    let lines = b["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    let v = lines[0]["values"].as_array().unwrap();
    let bytes = |i| web_packets(i) * 100 + video_packets(i) * 1000;
    assert_eq!(num(&v[0]), sum(290..300, bytes));
    assert!(v[1].is_null(), "the gap is not a zero: {v:?}");
    assert_eq!(num(&v[2]), sum(310..320, bytes));

    let b = s
        .get(&format!(
            "/api/v1/series?metric=packets&by=class&top=1&from={T0_S}&to={}&step=1m",
            T0_S + 60
        ))
        .json();
    let keys: Vec<&str> = b["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["web", "other"]);
    assert_eq!(num(&line(&b, "other")[0]), sum(0..60, video_packets));
}

#[test]
fn series_relative_times_and_automatic_step() {
    let s = start(None, 16);
    // now = end of the newest bin held (capture time), T0 + 600 s.
    let b = s.get("/api/v1/series?from=now-1m&to=now&step=1s").json();
    assert_eq!(b["from_ns"], T0 + 540 * S);
    assert_eq!(b["to_ns"], T0 + 600 * S);
    let v = b["lines"][0]["values"].as_array().unwrap().clone();
    assert_eq!(v.len(), 60);
    for (k, x) in v.iter().enumerate() {
        let i = 540 + k as u64;
        assert_eq!(num(x), web_packets(i) + video_packets(i));
    }
    // No range, no step: the last hour at the first round step giving at most 1000 points.
    let b = s.get("/api/v1/series").json();
    assert_eq!(b["metric"], "packets");
    assert_eq!(b["step_ns"], 5 * S);
    assert_eq!(b["from_ns"], T0 + 600 * S - 3600 * S);
    assert_eq!(b["times_ns"].as_array().unwrap().len(), 720);
    let v = b["lines"][0]["values"].as_array().unwrap();
    assert!(v[0].is_null(), "before the history starts: a gap");
    assert_eq!(
        num(&v[600]),
        sum(0..5, |i| web_packets(i) + video_packets(i))
    );
}

#[test]
fn time_spellings_agree() {
    let s = start(None, 16);
    let q = |from: &str, to: &str| {
        let r = s.get(&format!("/api/v1/totals?from={from}&to={to}"));
        assert_eq!(r.status, 200, "{from} {to}: {}", r.body);
        r.json()
    };
    let base = q(&(T0_S + 10).to_string(), &(T0_S + 20).to_string());
    assert_eq!(
        base["packets"],
        sum(10..20, |i| web_packets(i) + video_packets(i))
    );
    for (f, t) in [
        ("2026-12-04T15:00:10Z", "2026-12-04T15:00:20.000Z"),
        ("2026-12-04T16:00:10%2B01:00", "2026-12-04t15:00:20z"),
        ("1796396410.0", "2026-12-04T14:00:20-01:00"),
        ("now-590s", "now-9m40s"),
    ] {
        assert_eq!(q(f, t), base, "{f} {t}");
    }
}

#[test]
fn totals_over_a_range_and_by_default() {
    let s = start(None, 16);
    let b = s
        .get(&format!(
            "/api/v1/totals?from={}&to={}",
            T0_S + 100,
            T0_S + 400
        ))
        .json();
    let r = 100..400;
    assert_eq!(b["bins"], 290);
    assert_eq!(
        b["packets"],
        sum(r.clone(), |i| web_packets(i) + video_packets(i))
    );
    assert_eq!(
        b["bytes"],
        sum(r.clone(), |i| web_packets(i) * 100
            + video_packets(i) * 1000)
    );
    assert_eq!(b["flows_started"], sum(r.clone(), flows_started));
    assert_eq!(b["flows_ended"][0]["reason"], "fin");
    assert_eq!(b["flows_ended"][0]["flows"], sum(r.clone(), flows_fin));
    let by = |dim: &str, key: &str| -> Value {
        b["by"][dim]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == key)
            .cloned()
            .unwrap()
    };
    assert_eq!(by("class", "web")["packets"], sum(r.clone(), web_packets));
    assert_eq!(
        by("protocol", "UDP")["bytes"],
        sum(r, |i| video_packets(i) * 1000)
    );
    // No range: the last hour before now covers everything held.
    let b = s.get("/api/v1/totals").json();
    assert_eq!(b["bins"], NBINS - (GAP.end - GAP.start));
    assert_eq!(b["to"], "2026-12-04T15:10:00Z");
}

#[test]
fn windows_hurst_and_extent() {
    let s = start(None, 16);
    let b = s
        .get(&format!("/api/v1/windows?from={T0_S}&to={}", T0_S + 60))
        .json();
    let w = b["windows"].as_array().unwrap();
    assert_eq!(w.len(), 12);
    assert_eq!(
        w.iter().map(|w| num(&w["hits"])).sum::<u64>(),
        (0..12u64).map(|k| 10 + k).sum::<u64>()
    );
    assert_eq!(w[0]["start"], "2026-12-04T15:00:00Z");
    assert_eq!(w[0]["end"], "2026-12-04T15:00:05Z");
    assert!((w[0]["accuracy"].as_f64().unwrap() - 10.0 / 14.0).abs() < 1e-12);
    assert_eq!(b["truncated"], false);

    let b = s
        .get(&format!(
            "/api/v1/hurst?series=tcp&from={T0_S}&to={}",
            T0_S + 10
        ))
        .json();
    let p = b["points"].as_array().unwrap();
    assert_eq!(p.len(), 9);
    assert!(p.iter().all(|p| p["series"] == "tcp"));
    assert_eq!(p[0]["end"], "2026-12-04T15:00:01Z");
    assert_eq!(p[0]["local_whittle"], 0.5);
    assert_eq!(p[0]["local_whittle_ci"], serde_json::json!([0.4, 0.6]));

    let b = s.get("/api/v1/extent").json();
    assert_eq!(b["first"], "2026-12-04T15:00:00Z");
    assert_eq!(b["last"], "2026-12-04T15:10:00Z");
    assert_eq!(b["tiers"][0]["width"], "1s");
    assert_eq!(b["tiers"][1]["width"], "1m");
    assert_eq!(b["tiers"][1]["retention"], "30d");
    assert_eq!(b["size_bytes"], 123_456);
}

#[test]
fn flows_filtered_sorted_paged() {
    let s = start(None, 16);
    let range = format!("from={T0_S}&to={}", T0_S + 400);
    let ids = |b: &Value| -> Vec<u64> {
        b["flows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| num(&f["record"]["id"]))
            .collect()
    };
    let b = s
        .get(&format!(
            "/api/v1/flows?{range}&class=web&port=443&sort=bytes&order=desc&limit=5&offset=1"
        ))
        .json();
    assert_eq!(b["total"], 20);
    assert_eq!(ids(&b), [36, 34, 32, 30, 28]);
    assert_eq!(b["flows"][0]["record"]["start"], "2026-12-04T15:06:00Z");
    assert_eq!(b["flows"][0]["class"], "web");
    let b = s
        .get(&format!(
            "/api/v1/flows?{range}&addr=10.0.0.1&sort=start&order=asc"
        ))
        .json();
    let odd: Vec<u64> = (0..NFLOWS).filter(|k| k % 4 == 1).collect();
    assert_eq!(ids(&b), odd);
    let b = s
        .get(&format!("/api/v1/flows?{range}&app=https&limit=1000"))
        .json();
    assert_eq!(b["total"], NFLOWS / 2);
    assert_eq!(b["flows"].as_array().unwrap().len(), (NFLOWS / 2) as usize);
    // Default: newest first, 100 at most.
    let b = s.get(&format!("/api/v1/flows?{range}")).json();
    assert_eq!(ids(&b)[0], NFLOWS - 1);
    assert_eq!(b["limit"], 100);
}

#[test]
fn summary_and_health_from_the_live_counters() {
    let s = start(None, 16);
    let b = s.get("/api/v1/summary").json();
    assert_eq!(b["source"], "file test.pcap");
    assert_eq!(b["totals"]["packets"], 12_345);
    assert_eq!(b["totals"]["bytes"], 6_789_000);
    assert_eq!(b["totals"]["malformed"], 2);
    assert_eq!(b["totals"]["open_flows"], 17);
    assert_eq!(b["totals"]["by"]["class"][1]["key"], "web");
    assert_eq!(b["totals"]["by"]["class"][1]["packets"], 100);
    assert_eq!(b["totals"]["flows_by_class"]["video"], 3);
    assert_eq!(
        b["drops"],
        serde_json::json!({"kernel": 3, "queue": 4, "flows_to": 6, "store": 5})
    );
    assert_eq!(b["queue"]["fill_ratio"], 0.25);
    assert_eq!(b["store"]["failing"], false);
    assert_eq!(b["store"]["commit_lag_s"], 0.25);
    assert_eq!(b["store"]["size_bytes"], 123_456);
    assert_eq!(b["classes"], serde_json::json!(["web", "video", "voip"]));
    assert_eq!(b["info"]["bin_ns"], S);
    assert_eq!(b["last_packet"], "2026-12-04T15:09:59.500Z");
    assert!(b["uptime_s"].as_f64().unwrap() >= 0.0);

    let h = s.get("/api/v1/health").json();
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["queue_fill_ratio"], 0.25);
    s.stats.failing.store(true, Relaxed);
    *s.stats.last_error.lock().unwrap() = Some("disk full".into());
    s.status.source_done.store(true, Relaxed);
    let h = s.get("/api/v1/health").json();
    assert_eq!(h["status"], "degraded");
    let reasons = h["reasons"].to_string();
    assert!(
        reasons.contains("disk full") && reasons.contains("source ended"),
        "{reasons}"
    );
}

#[test]
fn rates_over_the_last_seconds() {
    let s = start(None, 16);
    // Samples at about 0 s and 1 s, a jump of 1000 packets, a sample at 2 s.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    s.status.packets.fetch_add(1000, Relaxed);
    s.status.bytes.fetch_add(64_000, Relaxed);
    s.status.drops_queue.fetch_add(1, Relaxed);
    // Poll rather than trust the timing: a loaded machine may delay a sample.
    let t = std::time::Instant::now();
    let r = loop {
        let r = s.get("/api/v1/summary").json()["rates"].clone();
        let moved =
            r["packets_per_s"].as_f64().unwrap_or(0.0) * r["window_s"].as_f64().unwrap_or(0.0);
        if (moved - 1000.0).abs() < 1e-6 || t.elapsed() > std::time::Duration::from_secs(8) {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let secs = r["window_s"].as_f64().unwrap();
    assert!(secs > 0.5 && secs <= 11.0, "{r}");
    assert!(
        (r["packets_per_s"].as_f64().unwrap() * secs - 1000.0).abs() < 1e-6,
        "{r}"
    );
    assert!(
        (r["bytes_per_s"].as_f64().unwrap() * secs - 64_000.0).abs() < 1e-6,
        "{r}"
    );
    let h = s.get("/api/v1/health").json();
    assert_eq!(h["status"], "degraded");
    assert!(h["reasons"][0].as_str().unwrap().contains("queue 1"), "{h}");
}

#[test]
fn store_failure_is_503_and_live_views_still_work() {
    let s = start(None, 16);
    s.fake.fail.store(true, Relaxed);
    for target in [
        format!("/api/v1/totals?from={T0_S}&to={}", T0_S + 10),
        "/api/v1/series?from=now-1m".to_string(),
        "/api/v1/extent".to_string(),
        format!("/api/v1/flows?from={T0_S}&to={}", T0_S + 10),
    ] {
        let r = s.get(&target);
        assert_eq!(r.status, 503, "{target}: {}", r.body);
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("disk I/O error"));
    }
    assert_eq!(s.get("/api/v1/summary").status, 200);
    assert_eq!(s.get("/metrics").status, 200);
}

#[test]
fn pointers_index_and_unknown_paths() {
    let s = start(None, 16);
    // `/` is the dashboard: HTML that loads only this origin's files,
    // under a policy that forbids inline script and other origins.
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(
        r.body.contains("/api/v1/") && !r.body.contains("http://") && !r.body.contains("https://")
    );
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    // Every response carries the policy, API answers too.
    assert!(s
        .get("/api/v1/summary")
        .header("content-security-policy")
        .is_some());
    // Compressed when asked, revalidated by ETag.
    let js = request(
        s.addr(),
        "GET",
        "/assets/js/main.js",
        &[("Accept-Encoding", "gzip, br")],
    );
    assert_eq!(js.header("content-encoding"), Some("gzip"));
    let etag = js.header("etag").unwrap().to_string();
    let again = request(
        s.addr(),
        "GET",
        "/assets/js/main.js",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304);
    let b = s.get("/api/v1/").json();
    let paths: Vec<&str> = b["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"/api/v1/hurst/hvsm") && paths.contains(&"/api/v1/summary"),
        "{paths:?}"
    );
    let r = s.get("/api/v2/summary");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("/api/v2/summary"));
    let r = request(
        s.addr(),
        "POST",
        "/api/v1/summary",
        &[("Content-Length", "0")],
    );
    assert_eq!(r.status, 405);
    assert!(r.json()["error"].as_str().unwrap().contains("use GET"));
    let r = request(s.addr(), "HEAD", "/api/v1/health", &[]);
    assert_eq!(r.status, 200);
}
