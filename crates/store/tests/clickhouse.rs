//! The ClickHouse store against a real server (`scripts/services up`,
//! then `eval "$(scripts/services env)"`): the same outputs written to it
//! and to the embedded store give the same answers to every query; a
//! server that goes away is ridden out through the spool, nothing lost or
//! doubled; old days go as whole partitions.

mod common;
mod relay;

use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::*;
use pipeline::{Bin, Dim, EvalWindow, Output, SeriesName};
use relay::Relay;
use serde_json::Value;
use store::clickhouse::{ClickHouse, ClickHouseUrl};
use store::{FlowQuery, FlowSort, History, Metric, OutputSink, SeriesQuery, StoreOptions};

/// The server from `TS_CLICKHOUSE` with a database of this test's own;
/// `None` (skip) without one, except in CI, where that is a failure.
fn server(tag: &str) -> Option<(String, String)> {
    match std::env::var("TS_CLICKHOUSE") {
        Ok(base) => {
            let db = format!("ts_test_{tag}_{}", std::process::id());
            let http = base.replace("clickhouse://", "http://");
            let _ = sql(&http, &format!("DROP DATABASE IF EXISTS {db}"));
            Some((base, db))
        }
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!(
                "TS_CLICKHOUSE is not set: scripts/test starts the services (scripts/services up)"
            )
        }
        Err(_) => {
            eprintln!("skipped: no TS_CLICKHOUSE (run scripts/services up; eval \"$(scripts/services env)\")");
            None
        }
    }
}

fn sql(http: &str, q: &str) -> String {
    let mut r = ureq::post(&format!("{http}/")).send(q).expect(q);
    r.body_mut().read_to_string().unwrap()
}

fn url(base: &str, db: &str) -> ClickHouseUrl {
    ClickHouseUrl::parse(&format!("{base}/{db}")).unwrap()
}

fn part(o: &Output, source: &str) -> Output {
    match o {
        Output::Bin(b) => Output::Bin(Bin {
            source: source.into(),
            ..b.clone()
        }),
        Output::Window(w) => Output::Window(EvalWindow {
            source: source.into(),
            ..w.clone()
        }),
        o => o.clone(),
    }
}

/// A history with every kind of output: bins over three minutes, a gap,
/// more bins, bins summed from two sources, windows, Hurst points, flows.
fn history() -> Vec<Vec<Output>> {
    let mut batches = Vec::new();
    let all = bins(T0 + 5 * S, 170, 1);
    for chunk in all.chunks(37) {
        batches.push(chunk.to_vec());
    }
    batches.push(bins(T0 + 300 * S, 20, 500));
    let a = bins(T0 + 600 * S, 10, 900);
    let b = bins(T0 + 600 * S, 10, 950);
    batches.push(a.iter().map(|o| part(o, "t:0:n1")).collect());
    batches.push(b.iter().map(|o| part(o, "t:1:n2")).collect());
    let mut misc = Vec::new();
    for k in 0..6 {
        misc.push(Output::Window(window(T0 + 5 * S + k * 5 * S)));
    }
    misc.push(part(&Output::Window(window(T0 + 600 * S)), "t:0:n1"));
    misc.push(part(&Output::Window(window(T0 + 600 * S)), "t:1:n2"));
    for (k, s) in SeriesName::ALL.iter().enumerate() {
        misc.push(Output::Hurst(hurst(*s, T0 + 100 * S + k as u64 * S)));
        misc.push(Output::Hurst(hurst(*s, T0 + 200 * S)));
    }
    let flows = [
        flow(
            T0 + 6 * S,
            T0 + 9 * S,
            "10.0.0.1",
            50_000,
            "192.0.2.7",
            443,
            "video",
            90_000,
        ),
        flow(
            T0 + 7 * S,
            T0 + 7 * S,
            "2001:db8::1",
            5353,
            "2001:db8::53",
            53,
            "web",
            300,
        ),
        flow(
            T0 + 8 * S,
            T0 + 120 * S,
            "10.0.0.2",
            40_000,
            "192.0.2.8",
            443,
            "web",
            7_000,
        ),
        flow(
            T0 + 8 * S,
            T0 + 20 * S,
            "10.0.0.3",
            40_001,
            "192.0.2.8",
            443,
            "video",
            7_000,
        ),
        flow(
            T0 + 301 * S,
            T0 + 302 * S,
            "10.0.0.1",
            5353,
            "10.0.0.53",
            53,
            "unknown",
            90,
        ),
    ];
    misc.extend(flows.into_iter().map(flow_out));
    batches.push(misc);
    batches
}

/// Equal, numbers within a relative 1e-9 (sums of floats may be added in
/// another order by the two engines).
fn same(a: &Value, b: &Value, path: &str) -> Result<(), String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            if (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0) {
                Ok(())
            } else {
                Err(format!("{path}: {x} vs {y}"))
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Err(format!("{path}: {} vs {} items", x.len(), y.len()));
            }
            for (k, (p, q)) in x.iter().zip(y).enumerate() {
                same(p, q, &format!("{path}[{k}]"))?;
            }
            Ok(())
        }
        (Value::Object(x), Value::Object(y)) => {
            let kx: Vec<_> = x.keys().collect();
            let ky: Vec<_> = y.keys().collect();
            if kx != ky {
                return Err(format!("{path}: keys {kx:?} vs {ky:?}"));
            }
            for (k, v) in x {
                same(v, &y[k], &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        _ if a == b => Ok(()),
        _ => Err(format!("{path}: {a} vs {b}")),
    }
}

fn answer<T: serde::Serialize>(r: Result<T, store::StoreError>) -> Value {
    match r {
        Ok(v) => serde_json::to_value(v).unwrap(),
        Err(e) => Value::String(format!("error: {e}")),
    }
}

fn compare(what: &str, a: Value, b: Value, diffs: &mut Vec<String>) {
    if let Err(d) = same(&a, &b, what) {
        diffs.push(d);
    }
}

#[test]
fn answers_equal_the_embedded_store() {
    let Some((base, db)) = server("parity") else {
        return;
    };
    let dir = TempDir::new("ch-parity");
    let lite = open(&dir.path().join("lite"));
    let mut lw = lite.writer().unwrap();
    let (ch, summary) = ClickHouse::open(url(&base, &db), StoreOptions::default()).unwrap();
    assert!(summary.contains("created"), "{summary}");
    let mut cw = ch.writer(&dir.path().join("spool"), 1 << 30).unwrap();
    for b in history() {
        lw.write(&b).unwrap();
        OutputSink::write(&mut cw, &b).unwrap();
    }
    // Written twice: replaced, not doubled.
    let again = history();
    OutputSink::write(&mut cw, &again[0]).unwrap();
    OutputSink::write(&mut cw, again.last().unwrap()).unwrap();

    let l = lite.history().unwrap();
    let c = ch.history();
    // Where the bins go on after each gap of the history written above.
    for (t, want) in [
        (0, Some(T0 + 5 * S)),
        (T0 + 100 * S, Some(T0 + 100 * S)),
        (T0 + 175 * S, Some(T0 + 300 * S)),
        (T0 + 320 * S, Some(T0 + 600 * S)),
        (T0 + 610 * S, None),
    ] {
        assert_eq!(l.first_bin_from(t).unwrap(), want, "embedded, from {t}");
        assert_eq!(c.first_bin_from(t).unwrap(), want, "ClickHouse, from {t}");
    }
    let mut diffs = Vec::new();
    let ranges = [
        (T0, T0 + 700 * S),
        (T0 + 30 * S, T0 + 75 * S),
        (T0 + 59 * S, T0 + 181 * S),
        (0, u64::MAX),
        (T0 + 1000 * S, T0 + 2000 * S),
    ];
    let totals = l.totals(T0, T0 + 700 * S).unwrap();
    assert!(totals.packets > 0);
    let mut filters: Vec<Vec<(Dim, String)>> = vec![vec![]];
    for d in [Dim::Class, Dim::Protocol, Dim::App, Dim::Direction] {
        if let Some(x) = totals.by_dim.iter().find(|x| x.0 == d) {
            filters.push(vec![(d, x.1.clone())]);
        }
    }
    let mut n = 0;
    for &(from, to) in &ranges {
        for f in &filters {
            let w = format!("totals_where {from}..{to} {f:?}");
            compare(
                &w,
                answer(l.totals_where(from, to, f)),
                answer(c.totals_where(from, to, f)),
                &mut diffs,
            );
            n += 1;
        }
        compare(
            "totals",
            answer(l.totals(from, to)),
            answer(c.totals(from, to)),
            &mut diffs,
        );
        compare(
            "windows",
            answer(l.windows(from, to)),
            answer(c.windows(from, to)),
            &mut diffs,
        );
        for s in SeriesName::ALL {
            compare(
                "hurst",
                answer(l.hurst(s, from, to)),
                answer(c.hurst(s, from, to)),
                &mut diffs,
            );
        }
        for step in [S, 60 * S, 120 * S, S / 10, 7 * S] {
            for metric in Metric::ALL {
                let mut dims = vec![None];
                if matches!(metric, Metric::Packets | Metric::Bytes) {
                    dims.extend(Dim::ALL.iter().copied().map(Some));
                }
                for dim in dims {
                    // Filters on packets and bytes only (the others refuse them alike).
                    let fs = if matches!(metric, Metric::Packets | Metric::Bytes) {
                        &filters[..]
                    } else {
                        &filters[..2]
                    };
                    for f in fs {
                        let q = SeriesQuery {
                            metric,
                            dim,
                            from_ns: from,
                            to_ns: to,
                            step_ns: step,
                            top: 3,
                            filter: f.clone(),
                        };
                        let w = format!("series {q:?}");
                        compare(&w, answer(l.series(&q)), answer(c.series(&q)), &mut diffs);
                        n += 1;
                    }
                }
            }
        }
        for (class, app, addr, port) in [
            (None, None, None, None),
            (Some("web"), None, None, None),
            (None, Some("tls"), None, None),
            (None, Some("example.COM"), None, None),
            (None, Some("https"), None, None),
            (None, None, Some("192.0.2.8"), None),
            (None, None, None, Some(53)),
            (Some("video"), Some("tls"), Some("10.0.0.1"), Some(443)),
        ] {
            for (sort, descending) in [
                (FlowSort::Start, false),
                (FlowSort::Bytes, true),
                (FlowSort::Duration, true),
            ] {
                for (limit, offset) in [(100, 0), (2, 1), (0, 0)] {
                    let q = FlowQuery {
                        from_ns: from,
                        to_ns: to,
                        class: class.map(String::from),
                        app: app.map(String::from),
                        addr: addr.map(|a: &str| a.parse().unwrap()),
                        port,
                        sort,
                        descending,
                        limit,
                        offset,
                    };
                    compare(
                        &format!("flows {q:?}"),
                        answer(l.flows(&q)),
                        answer(c.flows(&q)),
                        &mut diffs,
                    );
                    n += 1;
                }
            }
        }
    }
    let mut le = l.extent().unwrap();
    let mut ce = c.extent().unwrap();
    assert!(ce.size_bytes > 0, "ClickHouse reports the database's size");
    (le.size_bytes, ce.size_bytes) = (0, 0);
    compare(
        "extent",
        answer(Ok::<_, store::StoreError>(le)),
        answer(Ok::<_, store::StoreError>(ce)),
        &mut diffs,
    );
    assert!(
        diffs.is_empty(),
        "{} of {n} answers differ; first ones:\n{}",
        diffs.len(),
        diffs.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
    // The source parts are known to both (an analysis node resumes from them).
    assert_eq!(lite.source_extents().unwrap(), ch.source_extents().unwrap());
    let http = base.replace("clickhouse://", "http://");
    sql(&http, &format!("DROP DATABASE {db}"));
}

#[test]
fn an_outage_is_spooled_and_replayed_in_order_nothing_lost_or_doubled() {
    let Some((base, db)) = server("spool") else {
        return;
    };
    let target: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let relay = Relay::start(target);
    let via = format!("clickhouse://127.0.0.1:{}", relay.port);
    let dir = TempDir::new("ch-spool");
    let spool = dir.path().join("spool");
    let (ch, _) = ClickHouse::open(url(&via, &db), StoreOptions::default()).unwrap();
    let stats = Arc::new(store::StoreStats::default());
    let mut w = ch.writer(&spool, 1 << 30).unwrap();
    w.set_stats(stats.clone());
    let all = bins(T0, 90, 7);
    let want: u64 = all
        .iter()
        .map(|o| match o {
            Output::Bin(b) => b.packets,
            _ => 0,
        })
        .sum();
    OutputSink::write(&mut w, &all[..30]).unwrap();
    relay.cut();
    // The server is away: the batches are kept on disk and reported written.
    OutputSink::write(&mut w, &all[30..50]).unwrap();
    OutputSink::write(&mut w, &all[50..60]).unwrap();
    assert_eq!(stats.spooled_batches.load(Ordering::Relaxed), 2);
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 2);
    // A new process with the same spool finds them (a restart during the outage).
    drop(w);
    let mut w = ch.writer(&spool, 1 << 30).unwrap();
    w.set_stats(stats.clone());
    OutputSink::write(&mut w, &all[60..75]).unwrap();
    assert_eq!(stats.spooled_batches.load(Ordering::Relaxed), 3);
    // A tiny spool refuses more: the caller (the writer loop) holds outputs
    // in memory and counts what it must drop.
    let mut tiny = ch.writer(&dir.path().join("tiny"), 100).unwrap();
    let err = OutputSink::write(&mut tiny, &all[75..76]).unwrap_err();
    assert!(err.to_string().contains("spool"), "{err}");
    relay.restore();
    OutputSink::write(&mut w, &all[75..]).unwrap();
    assert_eq!(stats.spooled_batches.load(Ordering::Relaxed), 0);
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    let t = ch.history().totals(T0, T0 + 90 * S).unwrap();
    assert_eq!(t.bins, 90);
    assert_eq!(t.packets, want, "every bin once, none lost, none doubled");
    let http = base.replace("clickhouse://", "http://");
    sql(&http, &format!("DROP DATABASE {db}"));
}

#[test]
fn old_days_are_dropped_as_whole_partitions() {
    let Some((base, db)) = server("retention") else {
        return;
    };
    let dir = TempDir::new("ch-retention");
    let opts = StoreOptions {
        bin_1s_retention_ns: DAY,
        ..StoreOptions::default()
    };
    let (ch, _) = ClickHouse::open(url(&base, &db), opts).unwrap();
    let mut w = ch.writer(&dir.path().join("spool"), 1 << 30).unwrap();
    OutputSink::write(&mut w, &bins(T0, 5, 1)).unwrap();
    OutputSink::write(&mut w, &bins(T0 + DAY, 5, 1)).unwrap();
    let h = ch.history();
    assert_eq!(
        h.totals(T0, T0 + 10 * S).unwrap().bins,
        5,
        "one day back is kept"
    );
    OutputSink::write(&mut w, &bins(T0 + 3 * DAY, 5, 1)).unwrap();
    let ext = h.extent().unwrap();
    assert_eq!(ext.tiers[0].first_ns, Some(T0 + 3 * DAY), "{ext:?}");
    assert_eq!(
        ext.tiers[1].first_ns,
        Some(T0),
        "the 1 min tier keeps its 90 days"
    );
    let http = base.replace("clickhouse://", "http://");
    sql(&http, &format!("DROP DATABASE {db}"));
}

#[test]
fn a_bad_url_or_a_missing_server_is_a_clear_error() {
    for (u, want) in [
        ("clickhouse://host:8123", "names no database"),
        (
            "clickhouse://u:secret@host/db",
            "TRAFFICSCOPE_CLICKHOUSE_PASSWORD",
        ),
        ("clickhouse://host:x/db", "port"),
        ("clickhouse://host/db-1", "letters, digits"),
        ("http://host/db", "expected clickhouse://"),
    ] {
        let e = ClickHouseUrl::parse(u).unwrap_err();
        assert!(e.contains(want), "{u}: {e}");
        assert!(!e.contains("secret"), "{e}");
    }
    // Nothing listens on a port just freed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let u = ClickHouseUrl::parse(&format!("clickhouse://127.0.0.1:{port}/x")).unwrap();
    let e = ClickHouse::open(u, StoreOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains(&format!("127.0.0.1:{port}")) && e.contains("scripts/services up"),
        "{e}"
    );
}
