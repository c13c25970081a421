//! The dashboard in a real browser (headless chromium over WebDriver): the
//! numbers the page shows must be the API's, and the API's must be those
//! of the offline commands (`stats`, `classify`, `flows`) on the same
//! capture; live updates arrive from the stream; the page survives a
//! server restart; names from the traffic stay text. Every test writes a
//! full-page screenshot and one per panel under
//! `<target>/dashboard-screenshots/`.

mod browser;
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use browser::{browser_available, free_port, Browser, Service};
use common::{data_if_present, run};
use serde_json::Value;

fn temp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("dashboard")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Seconds with millisecond decimals, as the page sends times.
fn secs(ns: u64) -> String {
    format!(
        "{}.{:03}",
        ns / 1_000_000_000,
        ns % 1_000_000_000 / 1_000_000
    )
}

fn iso(ns: u64) -> String {
    // The page's URL takes ISO times; whole seconds are enough here.
    let s = (ns / 1_000_000_000) as i64;
    let days = s.div_euclid(86_400);
    let rem = s.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn raw_of(b: &Browser, css: &str) -> Vec<(String, f64)> {
    let v = b.eval(&format!(
        "return [...document.querySelectorAll({})].map(e => [e.closest('[data-key]') ? e.closest('[data-key]').dataset.key : '', Number(e.dataset.raw)]);",
        serde_json::json!(css)
    ));
    serde_json::from_value(v).unwrap()
}

#[test]
fn the_page_shows_what_the_api_and_the_offline_commands_count() {
    let Some(data) = data_if_present() else {
        eprintln!("SKIP: no ../shared/data");
        return;
    };
    if !browser_available() {
        return;
    }
    let cap = data.join("pcap-apps/ndpi/video/netflix.pcap");
    let labels = data.join("labelled/labels.csv");
    let dir = temp_dir("numbers");
    let svc = Service::start(&[
        "run",
        "-r",
        cap.to_str().unwrap(),
        "--speed",
        "max",
        "--labels",
        labels.to_str().unwrap(),
        "--data",
        dir.to_str().unwrap(),
        "--bin-retention",
        "36500d",
        "--flow-retention",
        "36500d",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    svc.wait_for("input ended", Duration::from_secs(60));
    let extent = svc.get("/api/v1/extent");
    let first = extent["tiers"][0]["first_ns"].as_u64().unwrap();
    let last = extent["last_ns"].as_u64().unwrap();
    // The whole capture, in whole seconds.
    let (from, to) = (
        first / 1_000_000_000 * 1_000_000_000,
        last.div_ceil(1_000_000_000) * 1_000_000_000,
    );

    // Tall enough that every panel is in view (panels out of view draw later).
    let b = Browser::start("numbers", 1440, 4000);
    b.goto(&svc.url(&format!("/?range=custom&from={}&to={}", iso(from), iso(to))));
    b.wait_for("document.body.dataset.rendered", Duration::from_secs(20));
    b.wait_for(
        "document.querySelector('#p-flows table.flows')",
        Duration::from_secs(10),
    );
    b.screenshot_page("page");
    b.screenshot_panels("panel");

    // The API over the same range (the page sends seconds with ms).
    let range = format!("from={}&to={}", secs(from), secs(to));
    let totals = svc.get(&format!("/api/v1/totals?{range}"));
    let stats: Value =
        serde_json::from_slice(&run(&["stats", "--json", "-r", cap.to_str().unwrap()]).stdout)
            .unwrap();

    // Totals: page = API = stats.
    let tiles: BTreeMap<String, f64> = serde_json::from_value(b.eval(
        "const o = {}; for (const t of document.querySelectorAll('[data-tile]')) o[t.dataset.tile] = Number(t.querySelector('.value').dataset.raw); return o;",
    ))
    .unwrap();
    assert_eq!(tiles["packets"], totals["packets"].as_f64().unwrap());
    assert_eq!(tiles["bytes"], totals["bytes"].as_f64().unwrap());
    assert_eq!(totals["packets"], stats["packets"]);
    assert_eq!(totals["bytes"], stats["wire_bytes"]);
    assert_eq!(tiles["flows"], totals["flows_started"].as_f64().unwrap());

    // Protocol shares (bytes): page = API = stats.
    let page_proto: BTreeMap<String, f64> = raw_of(&b, "#p-shares .share-protocol td[data-raw]")
        .into_iter()
        .collect();
    let api_proto: BTreeMap<String, f64> = totals["by"]["protocol"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["key"].as_str().unwrap().to_string(),
                x["bytes"].as_f64().unwrap(),
            )
        })
        .collect();
    let stats_proto: BTreeMap<String, f64> = stats["protocols"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["bytes"].as_f64().unwrap()))
        .collect();
    assert_eq!(page_proto, api_proto);
    assert_eq!(api_proto, stats_proto);

    // Packets per class: page = API = classify's streaming answers.
    let page_class: BTreeMap<String, f64> = raw_of(&b, "#p-shares .share-class td[data-raw]")
        .into_iter()
        .collect();
    let out = run(&[
        "classify",
        "-r",
        cap.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
    ]);
    let line = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| {
            l.strip_prefix("trafficscope: packets by class: ")
                .map(str::to_string)
        })
        .expect("classify prints its packets by class");
    let classify: BTreeMap<String, f64> = line
        .split(", ")
        .filter_map(|kv| {
            let (k, v) = kv.rsplit_once(' ')?;
            let v: f64 = v.parse().ok()?;
            (v > 0.0).then(|| (k.to_string(), v))
        })
        .collect();
    assert_eq!(page_class, classify, "packets per class: page vs classify");

    // The newest evaluation window's accuracy: page = API (same step).
    let acc = b.eval("const e = document.querySelector('#p-accuracy .last'); return [Number(e.dataset.raw), Number(e.dataset.start)];");
    let windows = svc.get(&format!("/api/v1/windows?{range}&step=5s"));
    let newest = windows["windows"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|w| !w["accuracy"].is_null())
        .unwrap();
    assert_eq!(
        acc[1].as_f64().unwrap(),
        newest["start_ns"].as_f64().unwrap()
    );
    assert!((acc[0].as_f64().unwrap() - newest["accuracy"].as_f64().unwrap()).abs() < 1e-12);

    // The top flow's bytes: page = API = `flows` on the capture.
    let top_page = raw_of(&b, "#p-flows tbody tr:first-child td[data-col=bytes]");
    let api_flows = svc.get(&format!("/api/v1/flows?{range}&sort=bytes&limit=1"));
    let rec = &api_flows["flows"][0]["record"];
    let api_top = rec["fwd"]["bytes"].as_f64().unwrap() + rec["bwd"]["bytes"].as_f64().unwrap();
    assert_eq!(top_page[0].1, api_top);
    let out = run(&["flows", "-r", cap.to_str().unwrap(), "--format", "jsonl"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let offline_top = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|f| f["fwd"]["bytes"].as_f64().unwrap() + f["bwd"]["bytes"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(api_top, offline_top);

    // No script error, CSP violation or failed load.
    let errors = b.errors();
    assert!(errors.is_empty(), "{errors:?}");
    // Every panel drew something: no API error shown anywhere.
    let failed = b.texts(".panel.failed h2");
    assert!(failed.is_empty(), "panels showing an error: {failed:?}");

    // Click the class `web`: the panels kept per class show web's traffic
    // (equal to the API's filtered totals), the others say they do not.
    let loads = b
        .eval("return Number(document.body.dataset.loads);")
        .as_f64()
        .unwrap();
    b.click("#p-class .keys .chip[data-key=web]");
    b.wait_for(
        &format!("Number(document.body.dataset.loads) > {loads}"),
        Duration::from_secs(20),
    );
    assert!(b
        .eval("return location.search;")
        .as_str()
        .unwrap()
        .contains("class=web"));
    let web = svc.get(&format!("/api/v1/totals?{range}&class=web"));
    let tiles: BTreeMap<String, f64> = serde_json::from_value(b.eval(
        "const o = {}; for (const t of document.querySelectorAll('[data-tile]')) o[t.dataset.tile] = Number(t.querySelector('.value').dataset.raw); return o;",
    ))
    .unwrap();
    assert_eq!(tiles["packets"], web["packets"].as_f64().unwrap());
    let class_web = totals["by"]["class"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "web")
        .unwrap();
    assert_eq!(web["packets"], class_web["packets"]);
    let page_proto: BTreeMap<String, f64> = raw_of(&b, "#p-shares .share-protocol td[data-raw]")
        .into_iter()
        .collect();
    let api_proto: BTreeMap<String, f64> = web["by"]["protocol"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["key"].as_str().unwrap().to_string(),
                x["bytes"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(page_proto, api_proto);
    assert!(api_proto.values().sum::<f64>() < stats["wire_bytes"].as_f64().unwrap());
    assert_eq!(b.texts("#p-protocol .scope")[0], "filtered: class web");
    assert!(b.texts("#p-rate .scope")[0].starts_with("all traffic"));
    b.screenshot_page("filtered-web");
    let errors = b.errors();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn live_updates_arrive_within_a_second_and_the_page_survives_a_restart() {
    if !browser_available() {
        return;
    }
    let dir = temp_dir("live");
    let listen = format!("127.0.0.1:{}", free_port());
    let args = [
        "run",
        "--generate",
        "web=2,video=1,voip=2",
        "--users",
        "4",
        "--data",
        dir.to_str().unwrap(),
        "--listen",
        &listen,
    ];
    let svc = Service::start(&args);
    let b = Browser::start("live", 1440, 1000);
    b.goto(&svc.url("/"));
    b.wait_for("document.body.dataset.rendered", Duration::from_secs(20));
    // Bins arrive from the stream and are drawn without a reload.
    let loads = b.eval("return document.body.dataset.loads;");
    let mut lags = Vec::new();
    let mut drawn = b
        .eval("return Number(document.body.dataset.drawnTo);")
        .as_f64()
        .unwrap();
    while lags.len() < 5 {
        let v = b.wait_for(
            &format!("Number(document.body.dataset.drawnTo) > {drawn} && [Number(document.body.dataset.drawnTo), Number(document.body.dataset.drawLagMs)]"),
            Duration::from_secs(5),
        );
        drawn = v[0].as_f64().unwrap();
        lags.push(v[1].as_f64().unwrap());
    }
    assert_eq!(
        b.eval("return document.body.dataset.loads;"),
        loads,
        "live bins must not reload the page"
    );
    lags.sort_by(f64::total_cmp);
    eprintln!("live: bin end → drawn on the page, ms: {lags:?}");
    assert!(lags[2] <= 1000.0, "median lag {} ms: {lags:?}", lags[2]);
    b.screenshot_page("live");
    check_live_series_equal_the_store(&b, &svc);

    // The server goes away: the page says so; it comes back on the same
    // port and store: the page reconnects by itself and says it was cut off.
    svc.stop();
    b.wait_for(
        "document.getElementById('banner').textContent.includes('Disconnected')",
        Duration::from_secs(10),
    );
    b.screenshot_el("#banner", "disconnected-banner");
    let svc = Service::start(&args);
    b.wait_for(
        "document.body.dataset.reconnects === '1'",
        Duration::from_secs(20),
    );
    let banner = b.texts("#banner")[0].clone();
    assert!(
        banner.contains("Reconnected") && banner.contains("lost for"),
        "{banner}"
    );
    let drawn_now = b
        .eval("return Number(document.body.dataset.drawnTo);")
        .as_f64()
        .unwrap();
    b.wait_for(
        &format!("Number(document.body.dataset.drawnTo) > {drawn_now}"),
        Duration::from_secs(5),
    );
    b.screenshot_page("reconnected");
    let errors: Vec<String> = b
        .errors()
        .into_iter()
        // Requests in flight when the server stopped fail: expected.
        .filter(|e| !e.contains("did not answer") && !e.contains("Failed to fetch"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    drop(svc);
}

/// What the page accumulated from the stream, bin by bin, must be what the
/// store answers for the same steps: the live path and the query path agree
/// (per class, per protocol, flows ended per reason, the 0.1 s series).
fn check_live_series_equal_the_store(b: &Browser, svc: &Service) {
    let st = b.eval(
        "const s = window.trafficscope.state();
         return {cls: s.data.cls, proto: s.data.proto, fEnded: s.data.fEnded, pk: s.data.pk, fine: s.data.fine};",
    );
    // The store commits at least every 0.5 s: leave the newest 2 s out.
    std::thread::sleep(Duration::from_millis(1500));
    let mut compared = 0;
    for (name, params) in [
        ("cls", "metric=packets&by=class"),
        ("proto", "metric=bytes&by=protocol"),
        ("fEnded", "metric=flows_ended"),
        ("pk", "metric=packets"),
        ("fine", "metric=fine_bytes"),
    ] {
        let page = &st[name];
        let times: Vec<u64> = serde_json::from_value(page["times_ns"].clone()).unwrap();
        let step = page["step_ns"].as_u64().unwrap();
        let (from, to) = (times[0], *times.last().unwrap() + step - 2_000_000_000);
        let api = svc.get(&format!(
            "/api/v1/series?{params}&from={}&to={}&step={}ms",
            secs(from),
            secs(to),
            step / 1_000_000
        ));
        let api_times: Vec<u64> = serde_json::from_value(api["times_ns"].clone()).unwrap();
        for line in page["lines"].as_array().unwrap() {
            let key = line["key"].as_str().unwrap();
            let api_line = api["lines"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["key"] == key);
            for (k, t) in api_times.iter().enumerate() {
                let Some(i) = times.iter().position(|x| x == t) else {
                    continue;
                };
                // A key absent from the store's answer is 0 there (only
                // non-zero keys are kept); a null is a bin not stored.
                let a = match api_line {
                    Some(l) if l["values"][k].is_null() => continue,
                    Some(l) => l["values"][k].as_f64().unwrap(),
                    None if api["lines"][0]["values"][k].is_null() => continue,
                    None => 0.0,
                };
                let p = line["values"][i].as_f64().unwrap_or(0.0);
                assert!(
                    (p - a).abs() <= 1e-6 * a.abs().max(1.0),
                    "{name} {key} at {t}: page {p}, store {a}"
                );
                compared += 1;
            }
        }
    }
    eprintln!("live: {compared} values accumulated from the stream equal the store's");
    assert!(compared > 50, "only {compared} values compared");
}

/// A pcap (Ethernet, IPv4) of the given frames, 10 ms apart.
fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        let t = 1_796_400_000u32;
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&(i as u32 * 10_000).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}

/// Ethernet + IPv4 + (TCP with PSH|ACK, or UDP) carrying `payload`.
fn frame(proto: u8, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&sport.to_be_bytes());
    l4.extend_from_slice(&dport.to_be_bytes());
    if proto == 6 {
        l4.extend_from_slice(&1u32.to_be_bytes());
        l4.extend_from_slice(&1u32.to_be_bytes());
        l4.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
    }
    l4.extend_from_slice(payload);
    let total = (20 + l4.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum::<u32>();
    let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

fn dns_query(name_labels: &[&[u8]]) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name_labels {
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

#[test]
fn names_from_the_traffic_stay_text() {
    if !browser_available() {
        return;
    }
    let dir = temp_dir("hostile");
    let cap = dir.join("hostile.pcap");
    let host = r#"<img src=x onerror="window.pwned=1">"'><svg onload=window.pwned=2>"#;
    let path = "/<script>window.pwned=3</script>";
    let http = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: t\r\n\r\n");
    let client = [10, 0, 0, 5];
    let frames = vec![
        frame(6, client, 40_000, [192, 0, 2, 80], 80, http.as_bytes()),
        frame(
            17,
            client,
            40_001,
            [192, 0, 2, 53],
            53,
            &dns_query(&[b"<script>window.pwned=4</script>", b"example"]),
        ),
        frame(
            6,
            client,
            40_002,
            [192, 0, 2, 81],
            80,
            b"GET / HTTP/1.1\r\nHost: \"onmouseover=\"window.pwned=5\r\n\r\n",
        ),
    ];
    write_pcap(&cap, &frames);
    let data = dir.join("store");
    let svc = Service::start(&[
        "run",
        "-r",
        cap.to_str().unwrap(),
        "--speed",
        "max",
        "--data",
        data.to_str().unwrap(),
        "--bin-retention",
        "36500d",
        "--flow-retention",
        "36500d",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    svc.wait_for("input ended", Duration::from_secs(30));
    // The decoder did read the names (else this test would prove nothing).
    let flows = svc.get("/api/v1/flows?from=1796399999&to=1796400010");
    let names: Vec<String> = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            let a = &f["record"]["app"];
            a["http_host"]
                .as_str()
                .or(a["dns_query"].as_str())
                .map(str::to_string)
        })
        .collect();
    assert!(names.iter().any(|n| n.contains("<img src=x")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("<script>")), "{names:?}");

    let b = Browser::start("hostile", 1440, 1000);
    b.goto(&svc.url("/?range=custom&from=2026-12-04T15:59:59Z&to=2026-12-04T16:00:10Z"));
    b.wait_for(
        "document.querySelector('#p-flows table.flows')",
        Duration::from_secs(20),
    );
    // A moment for anything that would run to run.
    std::thread::sleep(Duration::from_millis(500));
    b.screenshot_page("page");
    b.screenshot_el("#p-flows", "flows");
    assert_eq!(
        b.eval("return window.pwned === undefined;"),
        Value::Bool(true)
    );
    let shown = b.texts("#p-flows td[data-col=app]").join("\n");
    for n in &names {
        assert!(
            shown.contains(n.as_str()),
            "{n:?} not shown as text in:\n{shown}"
        );
    }
    // No element came from the traffic: one image (the logo), our scripts only.
    assert_eq!(
        b.eval("return document.querySelectorAll('img').length;"),
        Value::from(1)
    );
    assert_eq!(
        b.eval("return document.querySelectorAll('svg[onload], [onerror], [onmouseover]').length;"),
        Value::from(0)
    );
    assert_eq!(b.eval("return document.scripts.length;"), Value::from(2));
    let errors = b.errors();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn with_a_token_the_page_asks_once_and_keeps_it() {
    let Some(data) = data_if_present() else {
        eprintln!("SKIP: no ../shared/data");
        return;
    };
    if !browser_available() {
        return;
    }
    let dir = temp_dir("token");
    let cap = data.join("pcap-apps/ndpi/voip-conferencing/sip.pcap");
    let svc = Service::start(&[
        "run",
        "-r",
        cap.to_str().unwrap(),
        "--speed",
        "max",
        "--data",
        dir.to_str().unwrap(),
        "--bin-retention",
        "36500d",
        "--flow-retention",
        "36500d",
        "--token",
        "t0k-en.42",
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    svc.wait_for("input ended", Duration::from_secs(30));
    let (status, _) = browser::http_get(&svc.addr, "/api/v1/summary");
    assert_eq!(status, 401);
    let b = Browser::start("token", 1280, 900);
    b.goto(&svc.url("/"));
    b.wait_for(
        "!document.getElementById('token-dialog').hidden",
        Duration::from_secs(10),
    );
    b.screenshot_page("asks");
    // A wrong token is refused and asked again.
    b.eval("document.getElementById('token').value = 'wrong'; document.getElementById('token-form').requestSubmit(); return 1;");
    b.wait_for(
        "document.getElementById('token-why').textContent.includes('refused')",
        Duration::from_secs(10),
    );
    b.eval("document.getElementById('token').value = 't0k-en.42'; document.getElementById('token-form').requestSubmit(); return 1;");
    b.wait_for("document.body.dataset.rendered", Duration::from_secs(20));
    b.wait_for(
        "document.getElementById('conn').textContent === 'connected'",
        Duration::from_secs(10),
    );
    // Kept for the session: a reload does not ask again.
    b.goto(&svc.url("/"));
    b.wait_for("document.body.dataset.rendered", Duration::from_secs(20));
    assert_eq!(
        b.eval("return document.getElementById('token-dialog').hidden;"),
        Value::Bool(true)
    );
    let errors: Vec<String> = b
        .errors()
        .into_iter()
        .filter(|e| !e.starts_with("401 "))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// CPU seconds (user + system) of process `root` and all its descendants,
/// from /proc.
fn cpu_seconds(root: u32) -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let mut procs = Vec::new(); // (pid, ppid, seconds)
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        let ppid: u32 = f[1].parse().unwrap();
        let secs = (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / tick;
        procs.push((pid, ppid, secs));
    }
    let mut tree = vec![root];
    let mut total = 0.0;
    while let Some(p) = tree.pop() {
        for &(pid, ppid, secs) in &procs {
            if pid == p {
                total += secs;
            }
            if ppid == p {
                tree.push(pid);
            }
        }
    }
    total
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The dashboard's figures for the README: page weight, first full render
/// with 24 h of history, the live page's CPU and the server's cost of a
/// connected page. `cargo test --release -p trafficscope --test dashboard
/// -- --ignored --nocapture dashboard_figures` (bench/dashboard.sh).
#[test]
#[ignore]
fn dashboard_figures() {
    assert!(browser_available());
    // 24 h of history: the generator as fast as it goes (capture time runs ahead).
    let dir = temp_dir("bench-24h");
    let svc = Service::start(&[
        "run",
        "--generate",
        "web=4,video=2,voip=2,dns=1,bulk=1",
        "--users",
        "2",
        "--speed",
        "max",
        "--duration",
        "13s",
        "--data",
        dir.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    svc.wait_for("input ended", Duration::from_secs(120));
    let e = svc.get("/api/v1/extent");
    let span_h = (e["last_ns"].as_f64().unwrap() - e["first_ns"].as_f64().unwrap()) / 3.6e12;
    assert!(span_h >= 24.0, "only {span_h:.1} h of history");
    let (mut render, mut weight, mut requests) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..5 {
        // Tall: every panel is in view, so "full render" means all of them.
        let b = Browser::start(&format!("bench-{i}"), 1440, 4000);
        b.goto(&svc.url("/?range=24h"));
        let ms = b.wait_for(
            "Number(document.body.dataset.rendered)",
            Duration::from_secs(30),
        );
        render.push(ms.as_f64().unwrap());
        let t = b.eval(
            "const n = performance.getEntriesByType('navigation')[0];
             const r = performance.getEntriesByType('resource').filter(x => !x.name.includes('/api/'));
             return [n.transferSize + r.reduce((a, x) => a + x.transferSize, 0), 1 + r.length];",
        );
        weight.push(t[0].as_f64().unwrap());
        requests.push(t[1].as_f64().unwrap());
        assert!(b.errors().is_empty(), "{:?}", b.errors());
        if i == 0 {
            b.screenshot_page("24h");
        }
    }
    drop(svc);

    // The live page: all seven generator classes, real time.
    let dir = temp_dir("bench-live");
    let svc = Service::start(&[
        "run",
        "--generate",
        "web=4,video=2,voip=2,dns=1,bulk=1,video-download=1,voip-icmp=1",
        "--users",
        "20",
        "--data",
        dir.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    let measure = Duration::from_secs(30);
    std::thread::sleep(Duration::from_secs(5));
    let s0 = cpu_seconds(svc.pid());
    std::thread::sleep(measure);
    let server_alone = (cpu_seconds(svc.pid()) - s0) / measure.as_secs_f64();
    let b = Browser::start("bench-live", 1440, 1000);
    b.goto(&svc.url("/"));
    b.wait_for("document.body.dataset.rendered", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(5));
    let drawn0 = b
        .eval("return Number(document.body.dataset.drawnTo);")
        .as_f64()
        .unwrap();
    let keys = b.eval("return document.querySelectorAll('.keys .chip, .share tr').length;");
    let (c0, s0) = (cpu_seconds(b.driver_pid()), cpu_seconds(svc.pid()));
    std::thread::sleep(measure);
    let page = (cpu_seconds(b.driver_pid()) - c0) / measure.as_secs_f64();
    let server_with = (cpu_seconds(svc.pid()) - s0) / measure.as_secs_f64();
    let drawn1 = b
        .eval("return Number(document.body.dataset.drawnTo);")
        .as_f64()
        .unwrap();
    let updates = (drawn1 - drawn0) / 1e9 / measure.as_secs_f64();
    assert!(b.errors().is_empty(), "{:?}", b.errors());
    // The same browser on a blank page: what chromium costs anyway.
    b.goto("about:blank");
    std::thread::sleep(Duration::from_secs(3));
    let c0 = cpu_seconds(b.driver_pid());
    std::thread::sleep(measure);
    let blank = (cpu_seconds(b.driver_pid()) - c0) / measure.as_secs_f64();
    println!(
        "dashboard figures ({} runs; 24 h = {span_h:.1} h of generated history)",
        render.len()
    );
    println!("  page weight, first visit:     {:.0} KB transferred in {} requests (API answers not counted)", median(weight) / 1024.0, median(requests));
    println!(
        "  first full render, range 24h: {:.0} ms median (runs: {render:?})",
        median(render.clone())
    );
    println!("  live page CPU:                {:.1} % of a core (all chromium processes) at {updates:.2} updates/s, {keys} keys drawn; {:.1} % on a blank page", page * 100.0, blank * 100.0);
    println!("  server CPU:                   {:.1} % of a core alone, {:.1} % with one live page (+{:.1} %)", server_alone * 100.0, server_with * 100.0, (server_with - server_alone) * 100.0);
}

#[test]
fn the_demo_shows_live_classification_in_the_browser() {
    if !browser_available() {
        return;
    }
    let svc = Service::start(&["demo", "--listen", "127.0.0.1:0"]);
    let b = Browser::start("demo", 1440, 4000);
    b.goto(&svc.url("/"));
    b.wait_for("document.body.dataset.rendered", Duration::from_secs(20));
    // Two windows closed: the newest is a full one (the first may start
    // before the service did).
    b.wait_for(
        "(window.trafficscope.state().data.windows.windows.filter(w => w.accuracy != null).length >= 2)",
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_millis(600));
    let acc = b.eval("return Number(document.querySelector('#p-accuracy .last').dataset.raw);");
    let acc = acc.as_f64().unwrap();
    eprintln!("demo: newest window's accuracy on the page: {acc}");
    assert!(acc >= 0.95, "accuracy {acc}");
    // The page shows it, as a percentage, in the panel's note.
    let note = b.texts("#p-accuracy .note")[0].clone();
    assert!(note.contains(&format!("{:.1} %", acc * 100.0)), "{note}");
    // Web, video and VoIP are all on the page (packets per class). A call
    // rings for 1-6 s before its media flows, so VoIP may come after the
    // first windows.
    b.wait_for(
        "['web','video','voip'].every(c => [...document.querySelectorAll('#p-class .keys .chip')].some(k => k.textContent == c))",
        Duration::from_secs(40),
    );
    let keys = b.texts("#p-class .keys .chip");
    for class in ["web", "video", "voip"] {
        assert!(keys.iter().any(|k| k == class), "{class} not in {keys:?}");
    }
    let errors = b.errors();
    assert!(errors.is_empty(), "{errors:?}");
    b.screenshot_page("demo");
    b.screenshot_panels("panel");
}

/// The README's screenshot: the demo after a minute and a half, as a
/// 1440 px wide window shows it. `cargo test -p trafficscope --test
/// dashboard -- --ignored readme_screenshot` writes docs/dashboard.png.
#[test]
#[ignore]
fn readme_screenshot() {
    assert!(browser_available());
    let svc = Service::start(&["demo", "--listen", "127.0.0.1:0"]);
    std::thread::sleep(Duration::from_secs(90));
    let b = Browser::start("readme", 1440, 1700);
    b.goto(&svc.url("/"));
    b.wait_for("document.body.dataset.rendered", Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(3));
    let png = b.screenshot_view("readme");
    let dest = common::repo_dir().join("docs/dashboard.png");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(png, &dest).unwrap();
}

/// Records of a pcap file (little- or big-endian, µs or ns).
fn pcap_records(path: &Path) -> (u64, u64) {
    let b = std::fs::read(path).unwrap();
    let le = matches!(&b[..4], [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]);
    let u32_at = |o: usize| {
        let w = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let (mut off, mut n, mut wire) = (24, 0, 0);
    while off + 16 <= b.len() {
        let incl = u32_at(off + 8) as usize;
        wire += u64::from(u32_at(off + 12));
        off += 16 + incl;
        n += 1;
    }
    (n, wire)
}

#[test]
fn the_page_downloads_a_flows_packets_and_shows_api_errors_in_the_panel() {
    let Some(data) = data_if_present() else {
        eprintln!("SKIP: no ../shared/data");
        return;
    };
    if !browser_available() {
        return;
    }
    let dir = temp_dir("pcap");
    let cap = data.join("pcap-apps/ndpi/video/netflix.pcap");
    let ring = dir.join("ring");
    let store = dir.join("store");
    let svc = Service::start(&[
        "run",
        "-r",
        cap.to_str().unwrap(),
        "--speed",
        "max",
        "--data",
        store.to_str().unwrap(),
        "--bin-retention",
        "36500d",
        "--flow-retention",
        "36500d",
        "-w",
        ring.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]);
    svc.wait_for("input ended", Duration::from_secs(60));
    let downloads = dir.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let b = Browser::start_with_downloads("pcap", 1440, 4000, Some(&downloads));
    b.goto(&svc.url("/?range=custom&from=2017-01-13T14:50:00Z&to=2017-01-13T14:53:00Z"));
    b.wait_for(
        "document.querySelector('#p-flows td[data-col=pcap] button')",
        Duration::from_secs(20),
    );
    assert_eq!(
        b.eval("return document.getElementById('pcap-range').hidden;"),
        Value::Bool(false)
    );
    // The top flow's packets, as the table says, arrive as a pcap file.
    let want = raw_of(&b, "#p-flows tbody tr:first-child td[data-col=packets]")[0].1 as u64;
    let want_bytes = raw_of(&b, "#p-flows tbody tr:first-child td[data-col=bytes]")[0].1 as u64;
    b.click("#p-flows tbody tr:first-child td[data-col=pcap] button");
    let file = {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let done: Vec<PathBuf> = std::fs::read_dir(&downloads)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
                .collect();
            if let Some(f) = done.first() {
                break f.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no download; page says {:?}",
                b.texts("#pcap-msg")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        pcap_records(&file),
        (want, want_bytes),
        "{}",
        file.display()
    );
    assert!(b.texts("#pcap-msg")[0].starts_with("downloaded"));

    // A range the API refuses for windows (more than it lists): that panel
    // says why, the others still draw.
    b.goto(&svc.url("/?range=custom&from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"));
    b.wait_for("document.body.dataset.rendered", Duration::from_secs(20));
    let msg = b.texts("#p-accuracy .msg")[0].clone();
    assert!(
        msg.starts_with("Cannot show this panel:") && msg.contains("narrow it"),
        "{msg}"
    );
    assert_eq!(
        b.eval("return document.querySelector('#p-accuracy .msg').hidden;"),
        Value::Bool(false)
    );
    assert_eq!(
        b.eval("return document.querySelector('#p-class').classList.contains('failed');"),
        Value::Bool(false)
    );
    b.screenshot_el("#p-accuracy", "error-in-panel");
    let errors: Vec<String> = b
        .errors()
        .into_iter()
        .filter(|e| !e.starts_with("400 "))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}
