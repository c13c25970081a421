//! What goes in comes out: every output kind, read back through the
//! `History` queries and checked against what was written; idempotent
//! rewrites; gaps versus zeros; the 1 min rollup against sums computed here.

mod common;

use std::collections::BTreeMap;

use common::*;
use pipeline::{Bin, Dim, Output, SeriesName};
use store::{FlowQuery, FlowSort, History, Metric, SeriesQuery, StoreError};

fn sq(metric: Metric, dim: Option<Dim>, from: u64, to: u64, step: u64) -> SeriesQuery {
    SeriesQuery {
        metric,
        dim,
        from_ns: from,
        to_ns: to,
        step_ns: step,
        top: 10,
        filter: Vec::new(),
    }
}

fn all_flows(from: u64, to: u64) -> FlowQuery {
    FlowQuery {
        from_ns: from,
        to_ns: to,
        class: None,
        app: None,
        addr: None,
        port: None,
        sort: FlowSort::Start,
        descending: false,
        limit: 100,
        offset: 0,
    }
}

fn as_bins(outs: &[Output]) -> Vec<&Bin> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Bin(b) => Some(b),
            _ => None,
        })
        .collect()
}

#[test]
fn the_types_can_cross_threads() {
    fn send<T: Send>() {}
    fn share<T: Send + Sync>() {}
    send::<store::Reader>();
    send::<store::Writer>();
    share::<store::ReaderPool>();
    share::<store::Store>();
    let _: Option<std::sync::Arc<dyn History>> =
        None::<std::sync::Arc<store::ReaderPool>>.map(|p| p as _);
}

#[test]
fn every_output_kind_round_trips() {
    let dir = TempDir::new("roundtrip");
    let store = open(dir.path());
    let mut w = store.writer().unwrap();
    let outs = bins(T0, 10, 1);
    w.write(&outs).unwrap();
    let win = window(T0);
    let hp = hurst(SeriesName::Tcp, T0 + 5 * S);
    let f1 = flow(
        T0 + S,
        T0 + 4 * S,
        "10.0.0.1",
        50_000,
        "192.0.2.7",
        443,
        "video",
        90_000,
    );
    let f2 = flow(
        T0 + 2 * S,
        T0 + 2 * S,
        "2001:db8::1",
        5353,
        "2001:db8::53",
        53,
        "web",
        300,
    );
    w.write(&[
        Output::Window(win.clone()),
        Output::Hurst(hp.clone()),
        flow_out(f1.clone()),
        flow_out(f2.clone()),
    ])
    .unwrap();
    let r = store.reader().unwrap();
    let pool = store.reader_pool();
    let h: &dyn History = &pool;

    // Bins: per-second totals and per-dimension values.
    let bs = as_bins(&outs);
    let s = h
        .series(&sq(Metric::Packets, None, T0, T0 + 10 * S, S))
        .unwrap();
    assert_eq!(s.tier_ns, S);
    assert_eq!(s.times_ns, (0..10).map(|k| T0 + k * S).collect::<Vec<_>>());
    assert_eq!(s.lines.len(), 1);
    assert_eq!(s.lines[0].key, "total");
    let want: Vec<Option<f64>> = bs.iter().map(|b| Some(b.packets as f64)).collect();
    assert_eq!(s.lines[0].values, want);
    for (metric, get) in [
        (
            Metric::Bytes,
            Box::new(|b: &Bin| b.bytes as f64) as Box<dyn Fn(&Bin) -> f64>,
        ),
        (
            Metric::FlowsStarted,
            Box::new(|b: &Bin| b.flows_started as f64),
        ),
        (
            Metric::FlowsActive,
            Box::new(|b: &Bin| b.flows_active as f64),
        ),
        (
            Metric::FlowsEnded,
            Box::new(|b: &Bin| b.flows_ended.iter().map(|e| e.1).sum::<u64>() as f64),
        ),
    ] {
        let s = r.series(&sq(metric, None, T0, T0 + 10 * S, S)).unwrap();
        let want: Vec<Option<f64>> = bs.iter().map(|b| Some(get(b))).collect();
        assert_eq!(s.lines[0].values, want, "{metric:?}");
        if metric == Metric::FlowsEnded {
            // After the total, one line per end reason.
            let reasons: std::collections::BTreeSet<&str> = bs
                .iter()
                .flat_map(|b| b.flows_ended.iter().map(|e| e.0.as_str()))
                .collect();
            assert_eq!(s.lines.len(), 1 + reasons.len());
            for line in &s.lines[1..] {
                let want: Vec<Option<f64>> = bs
                    .iter()
                    .map(|b| {
                        let n = b
                            .flows_ended
                            .iter()
                            .filter(|e| e.0 == line.key)
                            .map(|e| e.1)
                            .sum::<u64>();
                        Some(n as f64)
                    })
                    .collect();
                assert_eq!(line.values, want, "flows ended {}", line.key);
            }
        }
    }
    for dim in Dim::ALL {
        let s = r
            .series(&sq(Metric::Bytes, Some(dim), T0, T0 + 10 * S, S))
            .unwrap();
        for line in &s.lines {
            let want: Vec<Option<f64>> = bs
                .iter()
                .map(|b| Some(b.count(dim, &line.key).1 as f64))
                .collect();
            assert_eq!(line.values, want, "{dim:?} {}", line.key);
        }
        let keys: std::collections::BTreeSet<String> = bs
            .iter()
            .flat_map(|b| {
                b.counts
                    .iter()
                    .filter(|c| c.dim == dim)
                    .map(|c| c.key.clone())
            })
            .collect();
        assert_eq!(s.lines.len(), keys.len(), "{dim:?}");
    }
    // Fine series at 0.1 s: exactly the values written.
    let s = r
        .series(&sq(Metric::FineBytes, None, T0, T0 + 10 * S, S / 10))
        .unwrap();
    assert_eq!(s.tier_ns, S / 10);
    assert_eq!(
        s.lines.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(),
        ["total", "tcp", "udp"]
    );
    for (k, line) in s.lines.iter().enumerate() {
        let want: Vec<Option<f64>> = bs
            .iter()
            .flat_map(|b| b.fine_bytes[k].iter().map(|v| Some(*v as f64)))
            .collect();
        assert_eq!(line.values, want, "{}", line.key);
    }
    // At 1 s: the per-bin means.
    let s = r
        .series(&sq(Metric::FineBytes, None, T0, T0 + 10 * S, S))
        .unwrap();
    assert_eq!(s.tier_ns, S);
    for (k, line) in s.lines.iter().enumerate() {
        for (b, v) in bs.iter().zip(&line.values) {
            assert!((v.unwrap() - b.fine[k].mean).abs() < 1e-9);
        }
    }
    // Totals.
    let t = h.totals(T0, T0 + 10 * S).unwrap();
    assert_eq!(t.bins, 10);
    assert_eq!(t.packets, bs.iter().map(|b| b.packets).sum::<u64>());
    assert_eq!(t.bytes, bs.iter().map(|b| b.bytes).sum::<u64>());
    assert_eq!(
        t.flows_started,
        bs.iter().map(|b| b.flows_started).sum::<u64>()
    );
    let mut by: BTreeMap<(Dim, String), (u64, u64)> = BTreeMap::new();
    let mut ended: BTreeMap<String, u64> = BTreeMap::new();
    for b in &bs {
        for c in &b.counts {
            let e = by.entry((c.dim, c.key.clone())).or_default();
            e.0 += c.packets;
            e.1 += c.bytes;
        }
        for (k, n) in &b.flows_ended {
            *ended.entry(k.clone()).or_default() += n;
        }
    }
    let want: Vec<(Dim, String, u64, u64)> = by
        .into_iter()
        .map(|((d, k), (p, b))| (d, k, p, b))
        .collect();
    assert_eq!(t.by_dim, want);
    assert_eq!(t.flows_ended, ended.into_iter().collect::<Vec<_>>());

    // Windows and Hurst points: equal to what was written.
    assert_eq!(h.windows(T0, T0 + DAY).unwrap(), vec![win]);
    assert_eq!(h.hurst(SeriesName::Tcp, T0, T0 + DAY).unwrap(), vec![hp]);
    assert!(h.hurst(SeriesName::Udp, T0, T0 + DAY).unwrap().is_empty());

    // Flows: the stored JSON is the row as serde writes it.
    let page = h.flows(&all_flows(T0, T0 + DAY)).unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(page.flows[0], serde_json::to_value(&f1).unwrap());
    assert_eq!(page.flows[1], serde_json::to_value(&f2).unwrap());

    // Extent.
    let e = h.extent().unwrap();
    assert_eq!(e.first_ns, Some(T0));
    assert_eq!(e.last_ns, Some(T0 + 10 * S));
    assert_eq!(e.tiers.len(), 2);
    assert_eq!((e.tiers[0].width_ns, e.tiers[1].width_ns), (S, MIN));
    assert_eq!(e.tiers[1].first_ns, Some(T0));
    assert_eq!(e.tiers[1].last_ns, Some(T0 + MIN));
    assert!(e.size_bytes > 0);
}

#[test]
fn writing_the_same_outputs_twice_replaces_them() {
    let dir = TempDir::new("idem");
    let store = open(dir.path());
    let mut w = store.writer().unwrap();
    let mut outs = bins(T0, 90, 5);
    outs.push(Output::Window(window(T0)));
    outs.push(Output::Hurst(hurst(SeriesName::Total, T0 + S)));
    outs.push(flow_out(flow(
        T0,
        T0 + 9 * S,
        "10.0.0.1",
        1,
        "10.0.0.2",
        443,
        "web",
        5000,
    )));
    w.write(&outs).unwrap();
    let r = store.reader().unwrap();
    let before = (
        r.totals(T0, T0 + DAY).unwrap(),
        r.series(&sq(
            Metric::Bytes,
            Some(Dim::Service),
            T0,
            T0 + 2 * MIN,
            MIN,
        ))
        .unwrap(),
        r.flows(&all_flows(T0, T0 + DAY)).unwrap().total,
        r.windows(T0, T0 + DAY).unwrap().len(),
        r.hurst(SeriesName::Total, T0, T0 + DAY).unwrap().len(),
    );
    // Again, in two different batches (a replay after a crash cuts anywhere).
    w.write(&outs[..37]).unwrap();
    w.write(&outs[37..]).unwrap();
    let after = (
        r.totals(T0, T0 + DAY).unwrap(),
        r.series(&sq(
            Metric::Bytes,
            Some(Dim::Service),
            T0,
            T0 + 2 * MIN,
            MIN,
        ))
        .unwrap(),
        r.flows(&all_flows(T0, T0 + DAY)).unwrap().total,
        r.windows(T0, T0 + DAY).unwrap().len(),
        r.hurst(SeriesName::Total, T0, T0 + DAY).unwrap().len(),
    );
    assert_eq!(before, after);
    assert_eq!(before.0.bins, 90);
    assert_eq!((before.2, before.3, before.4), (1, 1, 1));

    // A bin rewritten with other content loses the keys it no longer has.
    let mut b = bin(T0, 5);
    b.counts.retain(|c| c.dim != Dim::Service);
    b.flows_ended.clear();
    w.write(&[Output::Bin(b.clone())]).unwrap();
    let t = r.totals(T0, T0 + S).unwrap();
    assert!(t.by_dim.iter().all(|d| d.0 != Dim::Service));
    assert!(t.flows_ended.is_empty());
    assert_eq!(t.packets, b.packets);
    // …and its minute follows.
    let m = r
        .series(&sq(Metric::Bytes, Some(Dim::Service), T0, T0 + MIN, MIN))
        .unwrap();
    let want: u64 = as_bins(&outs[1..60]).iter().map(|b| b.bytes).sum();
    let got: f64 = m.lines.iter().map(|l| l.values[0].unwrap()).sum();
    assert_eq!(got as u64, want);
}

#[test]
fn a_missing_bin_is_a_gap_and_an_empty_bin_is_zero() {
    let dir = TempDir::new("gap");
    let store = open(dir.path());
    let mut w = store.writer().unwrap();
    // Seconds 0, 1 with traffic; 2 empty (running, no traffic); 3 missing; 4 with traffic.
    w.write(&[
        Output::Bin(bin(T0, 1)),
        Output::Bin(bin(T0 + S, 2)),
        Output::Bin(empty_bin(T0 + 2 * S)),
        Output::Bin(bin(T0 + 4 * S, 4)),
    ])
    .unwrap();
    let r = store.reader().unwrap();
    let s = r
        .series(&sq(Metric::Packets, None, T0, T0 + 5 * S, S))
        .unwrap();
    let v = &s.lines[0].values;
    assert!(v[0].unwrap() > 0.0 && v[1].unwrap() > 0.0 && v[4].unwrap() > 0.0);
    assert_eq!(v[2], Some(0.0));
    assert_eq!(v[3], None);
    // The same per dimension key: absent key in a present bin is 0.
    let s = r
        .series(&sq(Metric::Packets, Some(Dim::Protocol), T0, T0 + 5 * S, S))
        .unwrap();
    for line in &s.lines {
        assert_eq!(line.values[2], Some(0.0), "{}", line.key);
        assert_eq!(line.values[3], None, "{}", line.key);
    }
    let s = r
        .series(&sq(Metric::FineBytes, None, T0, T0 + 5 * S, S / 10))
        .unwrap();
    for line in &s.lines {
        assert!(line.values[20..30].iter().all(|v| *v == Some(0.0)));
        assert!(line.values[30..40].iter().all(|v| v.is_none()));
    }
    // A 2 s step with one bin present of two is present.
    let s = r
        .series(&sq(Metric::Packets, None, T0, T0 + 6 * S, 2 * S))
        .unwrap();
    assert_eq!(s.lines[0].values.len(), 3);
    assert!(s.lines[0].values.iter().all(Option::is_some));
    // Outside the data: all gaps.
    let s = r
        .series(&sq(Metric::Packets, None, T0 - 10 * S, T0, S))
        .unwrap();
    assert!(s.lines[0].values.iter().all(Option::is_none));
}

#[test]
fn minutes_are_the_sums_of_their_seconds() {
    let dir = TempDir::new("rollup");
    let store = open(dir.path());
    let mut w = store.writer().unwrap();
    // Three minutes minus a few seconds, written in uneven batches that cut
    // minutes (as a restart mid-minute would), with a hole in minute 1.
    let outs: Vec<Output> = bins(T0 + 3 * S, 177, 9)
        .into_iter()
        .filter(
            |o| !matches!(o, Output::Bin(b) if (T0 + 70 * S..T0 + 75 * S).contains(&b.start_ns)),
        )
        .collect();
    for chunk in outs.chunks(7) {
        w.write(chunk).unwrap();
    }
    let bs = as_bins(&outs);
    let r = store.reader().unwrap();
    for metric in [
        Metric::Packets,
        Metric::Bytes,
        Metric::FlowsStarted,
        Metric::FlowsEnded,
    ] {
        let s = r.series(&sq(metric, None, T0, T0 + 3 * MIN, MIN)).unwrap();
        assert_eq!(s.tier_ns, MIN);
        // Each minute says how many base bins it holds.
        for m in 0..3u64 {
            let held = bs
                .iter()
                .filter(|b| b.start_ns / MIN == (T0 + m * MIN) / MIN)
                .count();
            assert_eq!(s.covered[m as usize], held as u64, "minute {m}");
        }
        assert_eq!(s.covered_ns, S);
        for m in 0..3 {
            let inside = bs
                .iter()
                .filter(|b| b.start_ns / MIN == (T0 + m * MIN) / MIN);
            let want: u64 = inside
                .map(|b| match metric {
                    Metric::Packets => b.packets,
                    Metric::Bytes => b.bytes,
                    Metric::FlowsStarted => b.flows_started,
                    _ => b.flows_ended.iter().map(|e| e.1).sum(),
                })
                .sum();
            assert_eq!(
                s.lines[0].values[m as usize],
                Some(want as f64),
                "{metric:?} minute {m}"
            );
        }
    }
    // Per key.
    let s = r
        .series(&sq(Metric::Bytes, Some(Dim::Class), T0, T0 + 3 * MIN, MIN))
        .unwrap();
    for line in &s.lines {
        for m in 0..3u64 {
            let want: u64 = bs
                .iter()
                .filter(|b| b.start_ns / MIN == (T0 + m * MIN) / MIN)
                .map(|b| b.count(Dim::Class, &line.key).1)
                .sum();
            assert_eq!(
                line.values[m as usize],
                Some(want as f64),
                "{} {m}",
                line.key
            );
        }
    }
    // flows_active is averaged; the fine mean is the mean over every fine
    // value of the minute, σ/μ recomputed over them, peak the largest.
    let s = r
        .series(&sq(Metric::FlowsActive, None, T0, T0 + 3 * MIN, MIN))
        .unwrap();
    let c = rusqlite::Connection::open(store.path()).unwrap();
    for m in 0..3u64 {
        let inside: Vec<&&Bin> = bs
            .iter()
            .filter(|b| b.start_ns / MIN == (T0 + m * MIN) / MIN)
            .collect();
        let want = inside.iter().map(|b| b.flows_active as f64).sum::<f64>() / inside.len() as f64;
        assert!((s.lines[0].values[m as usize].unwrap() - want).abs() < 1e-9);
        let all: Vec<u64> = inside
            .iter()
            .flat_map(|b| b.fine_bytes[0].iter().copied())
            .collect();
        let f = fine_stats(&all);
        let (n, mean, cv, peak): (i64, f64, f64, f64) = c
            .query_row(
                "SELECT bins, total_mean, total_cv, total_peak FROM bins_1m WHERE start_ns = ?1",
                [(T0 + m * MIN) as i64],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(n as usize, inside.len());
        assert!((mean - f.mean).abs() < 1e-6 * f.mean, "{mean} {}", f.mean);
        assert!((cv - f.cv.unwrap()).abs() < 1e-9, "{cv} {:?}", f.cv);
        assert_eq!(peak, f.peak);
    }
    // Totals over ragged ends mix the tiers and still equal the seconds.
    let (from, to) = (T0 + 17 * S, T0 + 150 * S);
    let t = r.totals(from, to).unwrap();
    let inside: Vec<&&Bin> = bs
        .iter()
        .filter(|b| (from..to).contains(&b.start_ns))
        .collect();
    assert_eq!(t.bins as usize, inside.len());
    assert_eq!(t.bytes, inside.iter().map(|b| b.bytes).sum::<u64>());
    let video: u64 = inside.iter().map(|b| b.count(Dim::Class, "video").0).sum();
    assert!(t.by_dim.contains(&(
        Dim::Class,
        "video".into(),
        video,
        inside.iter().map(|b| b.count(Dim::Class, "video").1).sum()
    )));
    // The burstiness over the range, pooled from minute and second rows,
    // equals the statistics of every fine value in it (TCP as well).
    for (k, (name, got)) in t.fine.iter().enumerate() {
        let all: Vec<u64> = inside
            .iter()
            .flat_map(|b| b.fine_bytes[k].iter().copied())
            .collect();
        let f = fine_stats(&all);
        let got = got.unwrap();
        assert_eq!(got.fine_bins as usize, all.len(), "{name:?}");
        assert!(
            (got.mean - f.mean).abs() < 1e-6 * f.mean.max(1.0),
            "{name:?}"
        );
        match (got.cv, f.cv) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{name:?} {a} {b}"),
            (a, b) => assert_eq!(a, b, "{name:?}"),
        }
        assert_eq!(got.peak, f.peak, "{name:?}");
    }
}

#[test]
fn series_pick_tiers_fold_keys_and_refuse_odd_steps() {
    let dir = TempDir::new("series");
    let store = open(dir.path());
    let mut w = store.writer().unwrap();
    let outs = bins(T0, 240, 3);
    w.write(&outs).unwrap();
    let r = store.reader().unwrap();
    // Top 2 service keys plus `other` (which also takes the key named "other").
    let mut q = sq(Metric::Bytes, Some(Dim::Service), T0, T0 + 240 * S, 60 * S);
    q.top = 2;
    let s = r.series(&q).unwrap();
    assert_eq!(s.tier_ns, MIN);
    assert_eq!(s.lines.len(), 3);
    assert_eq!(s.lines[2].key, "other");
    let bs = as_bins(&outs);
    let mut sums: Vec<(u64, String)> = ["dns", "http", "https", "quic"]
        .iter()
        .map(|k| {
            (
                bs.iter().map(|b| b.count(Dim::Service, k).1).sum(),
                k.to_string(),
            )
        })
        .collect();
    sums.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(s.lines[0].key, sums[0].1);
    assert_eq!(s.lines[1].key, sums[1].1);
    for k in 0..4 {
        let total: f64 = s.lines.iter().map(|l| l.values[k].unwrap()).sum();
        let want: u64 = bs[k * 60..(k + 1) * 60].iter().map(|b| b.bytes).sum();
        assert_eq!(total as u64, want);
    }
    // 30 s: only the 1 s tier divides it.
    let s = r
        .series(&sq(Metric::Packets, None, T0, T0 + 240 * S, 30 * S))
        .unwrap();
    assert_eq!((s.tier_ns, s.lines[0].values.len()), (S, 8));
    // An unaligned range starts at a whole step.
    let s = r
        .series(&sq(Metric::Packets, None, T0 + 500_000_000, T0 + 3 * S, S))
        .unwrap();
    assert_eq!(s.times_ns, vec![T0, T0 + S, T0 + 2 * S]);
    // Steps no tier divides, and dimensions of total-only metrics.
    for bad in [
        sq(Metric::Packets, None, T0, T0 + S, S / 2),
        sq(Metric::Packets, None, T0, T0 + 10 * S, 1_500_000_000),
        sq(Metric::FineBytes, None, T0, T0 + S, S / 20),
        sq(Metric::FlowsActive, Some(Dim::Class), T0, T0 + S, S),
        sq(Metric::Packets, None, T0, T0 + S, 0),
    ] {
        match r.series(&bad) {
            Err(StoreError::Query(m)) => assert!(!m.is_empty()),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn flows_filter_sort_and_page() {
    let dir = TempDir::new("flows");
    let store = open(dir.path());
    let mut w = store.writer().unwrap();
    let mut outs = Vec::new();
    for k in 0..30u64 {
        let (dport, class) = if k % 3 == 0 {
            (53, "web")
        } else {
            (443, "video")
        };
        outs.push(flow_out(flow(
            T0 + k * S,
            T0 + k * S + (k % 7) * S,
            &format!("10.0.0.{}", k % 5),
            40_000 + k as u16,
            "192.0.2.1",
            dport,
            class,
            1000 + (k * 7919) % 50_000,
        )));
    }
    // A long flow that started the day before the range and overlaps it.
    outs.push(flow_out(flow(
        T0 - 3600 * S,
        T0 + 2 * S,
        "10.9.9.9",
        1,
        "192.0.2.1",
        443,
        "video",
        10,
    )));
    w.write(&outs).unwrap();
    let r = store.reader().unwrap();
    let base = all_flows(T0, T0 + DAY);
    assert_eq!(r.flows(&base).unwrap().total, 31);
    // Only flows overlapping the range: ended before → out.
    let q = FlowQuery {
        from_ns: T0 + 10 * S,
        to_ns: T0 + 12 * S,
        ..base.clone()
    };
    let page = r.flows(&q).unwrap();
    for f in &page.flows {
        let rec = &f["record"];
        assert!(rec["start_ns"].as_u64().unwrap() < T0 + 12 * S);
        assert!(rec["end_ns"].as_u64().unwrap() >= T0 + 10 * S);
    }
    let want = (0..30u64).filter(|k| *k < 12 && k + k % 7 >= 10).count() as u64;
    assert_eq!(page.total, want);
    // Class, app (detected, service, server-name substring), address, port.
    let count = |q: FlowQuery| r.flows(&q).unwrap().total;
    assert_eq!(
        count(FlowQuery {
            class: Some("web".into()),
            ..base.clone()
        }),
        10
    );
    assert_eq!(
        count(FlowQuery {
            app: Some("dns".into()),
            ..base.clone()
        }),
        10
    );
    assert_eq!(
        count(FlowQuery {
            app: Some("https".into()),
            ..base.clone()
        }),
        21
    );
    assert_eq!(
        count(FlowQuery {
            app: Some("example.COM".into()),
            ..base.clone()
        }),
        21
    );
    assert_eq!(
        count(FlowQuery {
            app: Some("ample.or".into()),
            ..base.clone()
        }),
        10
    );
    assert_eq!(
        count(FlowQuery {
            addr: Some("10.0.0.3".parse().unwrap()),
            ..base.clone()
        }),
        6
    );
    assert_eq!(
        count(FlowQuery {
            addr: Some("192.0.2.1".parse().unwrap()),
            ..base.clone()
        }),
        31
    );
    assert_eq!(
        count(FlowQuery {
            port: Some(40_005),
            ..base.clone()
        }),
        1
    );
    assert_eq!(
        count(FlowQuery {
            port: Some(53),
            class: Some("web".into()),
            ..base.clone()
        }),
        10
    );
    // Sorted by bytes, descending, in pages that neither overlap nor skip.
    let mut seen = Vec::new();
    for page in 0..4 {
        let q = FlowQuery {
            sort: FlowSort::Bytes,
            descending: true,
            limit: 8,
            offset: page * 8,
            ..base.clone()
        };
        let p = r.flows(&q).unwrap();
        assert_eq!(p.total, 31);
        seen.extend(p.flows);
    }
    assert_eq!(seen.len(), 31);
    let bytes: Vec<u64> = seen
        .iter()
        .map(|f| {
            f["record"]["fwd"]["bytes"].as_u64().unwrap()
                + f["record"]["bwd"]["bytes"].as_u64().unwrap()
        })
        .collect();
    assert!(bytes.windows(2).all(|w| w[0] >= w[1]), "{bytes:?}");
    let mut keys: Vec<String> = seen.iter().map(|f| f["record"].to_string()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 31);
    // Duration ascending.
    let p = r
        .flows(&FlowQuery {
            sort: FlowSort::Duration,
            limit: 31,
            ..base.clone()
        })
        .unwrap();
    let d: Vec<u64> = p
        .flows
        .iter()
        .map(|f| {
            f["record"]["end_ns"].as_u64().unwrap() - f["record"]["start_ns"].as_u64().unwrap()
        })
        .collect();
    assert!(d.windows(2).all(|w| w[0] <= w[1]));
}

/// The JSON `serde_json` writes for `f`, as a reader parses it: what the
/// API must answer for a stored flow (and what the ClickHouse store keeps).
fn as_text_json(f: &pipeline::FlowRow) -> serde_json::Value {
    serde_json::from_str(&serde_json::to_string(f).unwrap()).unwrap()
}

#[test]
fn a_flow_comes_back_as_the_json_of_what_was_stored_whatever_its_fields() {
    let dir = TempDir::new("flowjson");
    let store = open(dir.path());
    let mut w = store.writer().unwrap();
    let plain = flow(
        T0,
        T0 + S,
        "10.0.0.1",
        40_000,
        "192.0.2.1",
        443,
        "web",
        5000,
    );
    // Every optional field set, names that JSON must escape, IPv6.
    let mut full = flow(
        T0 + S,
        T0 + 3 * S,
        "2001:db8::1",
        5060,
        "2001:db8::ff",
        53,
        "voip",
        123_456,
    );
    full.record.vlan = 42;
    full.record.tunnel = Some("gre");
    full.record.fragments = 3;
    full.record.fwd.size = flow::Stat {
        min: 60.0,
        mean: 143.333_333_333_333_34,
        max: 1500.0,
        std: 0.1,
    };
    full.record.bwd.iat_us.mean = 2261.05;
    full.record.fwd.tcp_flags = [1, 2, 0, 3, 9, 0, 0, 1];
    let a = &mut full.record.app;
    a.tls_sni = Some("quote\"back\\slash<b>é\u{1}.example".into());
    a.tls_alpn = Some("h2".into());
    a.dns_qtype = Some("AAAA");
    a.http_method = Some("GET".into());
    a.http_host = Some("host.example".into());
    a.quic_version = Some("1".into());
    a.ssh_banner = Some("SSH-2.0-x".into());
    a.http_path = Some("/a/b.m3u8?q=\"1\"".into());
    a.http_content_type = Some("video/mp2t".into());
    a.tls_cert_name = Some("*.example".into());
    a.protocols = 0b101;
    full.confidence = Some(1.0 / 3.0);
    full.probabilities = vec![("voip".into(), 0.44), ("web".into(), 0.56)];
    full.true_class = None;
    full.record.end_reason = flow::EndReason::EndOfInput;
    // A first size of 0 cannot carry its direction as a sign; no
    // responder packet at all; nothing detected.
    let mut odd = flow(
        T0 + 2 * S,
        T0 + 2 * S,
        "10.0.0.2",
        1,
        "10.0.0.3",
        2,
        "unknown",
        0,
    );
    odd.record.first_sizes = vec![0, 60];
    odd.record.first_dirs = vec![-1, 1];
    odd.record.bwd = flow::DirStats::default();
    odd.record.app = flow::AppInfo::default();
    odd.confidence = None;
    odd.probabilities = Vec::new();
    let rows = [plain, full, odd];
    w.write(&rows.iter().cloned().map(flow_out).collect::<Vec<_>>())
        .unwrap();
    let page = store
        .reader()
        .unwrap()
        .flows(&all_flows(0, u64::MAX))
        .unwrap();
    assert_eq!(page.flows.len(), 3);
    for (got, want) in page.flows.iter().zip(&rows) {
        assert_eq!(got, &as_text_json(want));
    }
    // The row holds only what the columns do not: a third of the whole JSON.
    let c = rusqlite::Connection::open(store.path()).unwrap();
    let row: String = c
        .query_row("SELECT row FROM flows ORDER BY start_ns LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let whole = serde_json::to_string(&rows[0]).unwrap();
    assert!(
        row.len() * 2 < whole.len(),
        "{} vs {} bytes: {row}",
        row.len(),
        whole.len()
    );
}

#[test]
fn a_store_of_schema_1_is_upgraded_and_its_flows_read_as_they_were() {
    let dir = TempDir::new("schema1");
    let old = flow(
        T0,
        T0 + S,
        "10.0.0.1",
        40_000,
        "192.0.2.1",
        443,
        "web",
        5000,
    );
    let path = {
        let store = open(dir.path());
        let mut w = store.writer().unwrap();
        w.write(&[flow_out(old.clone())]).unwrap();
        store.path().to_path_buf()
    };
    // What version 1 wrote: the whole flow row as JSON, user_version 1.
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        let t: String = c
            .query_row(
                "SELECT name FROM partitions WHERE kind = 'flows'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        c.execute(
            &format!("UPDATE {t} SET row = ?1"),
            [serde_json::to_string(&old).unwrap()],
        )
        .unwrap();
        c.execute_batch(
            "PRAGMA user_version = 1; UPDATE meta SET value = 1 WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    let version = |p: &std::path::Path| -> i64 {
        rusqlite::Connection::open(p)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(version(&path), 1);
    let store = open(dir.path());
    let new = flow(
        T0 + S,
        T0 + 2 * S,
        "10.0.0.2",
        40_001,
        "192.0.2.1",
        53,
        "web",
        900,
    );
    store
        .writer()
        .unwrap()
        .write(&[flow_out(new.clone())])
        .unwrap();
    assert_eq!(version(&path), i64::from(store::schema::SCHEMA_VERSION));
    let page = store
        .reader()
        .unwrap()
        .flows(&all_flows(0, u64::MAX))
        .unwrap();
    assert_eq!(page.flows, vec![as_text_json(&old), as_text_json(&new)]);
}
