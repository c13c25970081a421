//! Store benchmark: writes N days (default 7) of 1 s bins with a realistic
//! 25 dimension rows each, as fast as it can, then times the queries the
//! dashboard makes most: 24 h at a 60 s step and 1 h at a 1 s step (the
//! total, and by class with the top 10), median of several runs.
//!
//! ```sh
//! cargo run --release -p store --example store_bench -- [DAYS] [DIR]
//! ```
//!
//! DIR defaults to a fresh directory under the system temp dir (removed at
//! the end). It prints numbers; it never fails on a timing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pipeline::{Bin, Dim, DimCount, Output};
use store::{History, Metric, SeriesQuery, Store, StoreOptions};

const S: u64 = 1_000_000_000;
const DAY: u64 = 86_400 * S;
/// 2024-01-01T00:00:00Z.
const T0: u64 = 1_704_067_200 * S;

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// 25 keys: 6 classes, 4 true classes, 5 protocols, 8 services, 2 directions.
const KEYS: [(Dim, &str); 25] = [
    (Dim::Class, "no-flow"),
    (Dim::Class, "pending"),
    (Dim::Class, "unknown"),
    (Dim::Class, "video"),
    (Dim::Class, "voip"),
    (Dim::Class, "web"),
    (Dim::TrueClass, "unlabelled"),
    (Dim::TrueClass, "video"),
    (Dim::TrueClass, "voip"),
    (Dim::TrueClass, "web"),
    (Dim::Protocol, "ARP"),
    (Dim::Protocol, "ICMP"),
    (Dim::Protocol, "ICMPv6"),
    (Dim::Protocol, "TCP"),
    (Dim::Protocol, "UDP"),
    (Dim::Service, "dns"),
    (Dim::Service, "http"),
    (Dim::Service, "https"),
    (Dim::Service, "imaps"),
    (Dim::Service, "ntp"),
    (Dim::Service, "other"),
    (Dim::Service, "quic"),
    (Dim::Service, "ssh"),
    (Dim::Direction, "down"),
    (Dim::Direction, "up"),
];

fn bin(start: u64) -> Bin {
    let r = |k: u64| mix(start / S * 64 + k);
    let fine: Vec<u64> = (0..10).map(|k| 50_000 + r(k) % 200_000).collect();
    let tcp: Vec<u64> = fine.iter().map(|v| v * 7 / 10).collect();
    let udp: Vec<u64> = fine.iter().map(|v| v * 25 / 100).collect();
    let bytes: u64 = fine.iter().sum();
    let packets = bytes / 700;
    let counts = KEYS
        .iter()
        .enumerate()
        .map(|(k, (dim, key))| DimCount {
            dim: *dim,
            key: key.to_string(),
            packets: 1 + r(20 + k as u64) % packets.max(1),
            bytes: 60 + r(50 + k as u64) % bytes.max(1),
        })
        .collect();
    Bin {
        start_ns: start,
        width_ns: S,
        packets,
        bytes,
        counts,
        flows_started: r(90) % 40,
        flows_ended: vec![("fin".into(), r(91) % 30), ("idle".into(), r(92) % 10)],
        flows_active: 500 + r(93) % 100,
        fine_width_ns: S / 10,
        fine: [&fine, &tcp, &udp].map(|v| pipeline::aggregate::fine_stats(v)),
        fine_bytes: [fine, tcp, udp],
        source: String::new(),
        source_ended: false,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let days: u64 = args
        .first()
        .map_or(7, |d| d.parse().expect("DAYS: a whole number"));
    let (dir, temp) = match args.get(1) {
        Some(d) => (PathBuf::from(d), false),
        None => (
            std::env::temp_dir().join(format!("ts-store-bench-{}", std::process::id())),
            true,
        ),
    };
    let opts = StoreOptions {
        // Keep every second of the run: the queries are timed on a full week.
        bin_1s_retention_ns: (days + 1) * DAY,
        ..StoreOptions::default()
    };
    let (store, report) = Store::open(&dir, opts).expect("opening the store");
    println!("{}", report.summary());
    let mut w = store.writer().expect("the writer");

    // Bulk: 10 minutes of bins per transaction.
    let batch = 600u64;
    let total = days * 86_400;
    let t = Instant::now();
    let mut written = 0u64;
    let mut outs = Vec::with_capacity(batch as usize);
    while written < total {
        outs.clear();
        let n = batch.min(total - written);
        outs.extend((0..n).map(|k| Output::Bin(bin(T0 + (written + k) * S))));
        w.write(&outs).expect("writing");
        written += n;
        if written.is_multiple_of(86_400) {
            eprintln!(
                "  day {} written ({:.0} s)",
                written / 86_400,
                t.elapsed().as_secs_f64()
            );
        }
    }
    let bulk = t.elapsed();
    let rows_per_bin = 1 + 25 + 2 + 1;
    println!(
        "write: {days} days = {total} bins ({} rows) in {:.1} s: {:.0} bins/s, {:.0} rows/s \
         ({batch} bins per transaction, 1 min rollup included)",
        total * rows_per_bin,
        bulk.as_secs_f64(),
        total as f64 / bulk.as_secs_f64(),
        (total * rows_per_bin) as f64 / bulk.as_secs_f64(),
    );

    // Live pattern: one bin per transaction (synchronous=FULL: one fsync each).
    let mut lat = Vec::new();
    for k in 0..120 {
        let b = Output::Bin(bin(T0 + (total + k) * S));
        let t = Instant::now();
        w.write(std::slice::from_ref(&b)).expect("writing");
        lat.push(t.elapsed());
    }
    let end = T0 + (total + 120) * S;
    println!(
        "live commit of one bin (+ rollup, fsync): median {}, max {}",
        ms(median(lat.clone())),
        ms(*lat.iter().max().unwrap())
    );
    drop(w);

    let size = store::schema::file_size(store.path());
    println!(
        "size: {:.1} MB in all, {:.1} MB per day",
        size as f64 / 1e6,
        size as f64 / 1e6 / days as f64
    );
    {
        let c = rusqlite::Connection::open(store.path()).unwrap();
        let mut st = c
            .prepare("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
            .unwrap();
        let mut by_kind: std::collections::BTreeMap<String, u64> = Default::default();
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .unwrap();
        for row in rows {
            let (name, bytes) = row.unwrap();
            let kind = match name.rfind('_') {
                Some(i)
                    if name[i + 1..].len() == 8
                        && name[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
                {
                    name[..i].to_string()
                }
                _ if name.starts_with("sqlite_autoindex_flows") => "flows".into(),
                _ => name.clone(),
            };
            *by_kind.entry(kind).or_default() += bytes as u64;
        }
        let parts: Vec<String> = by_kind
            .iter()
            .filter(|(_, b)| **b > 100_000)
            .map(|(k, b)| format!("{k} {:.1}", *b as f64 / 1e6 / days as f64))
            .collect();
        println!("  per day by table, MB: {}", parts.join(", "));
    }

    // Queries through the History a server would hold.
    let pool = store.reader_pool();
    let h: &dyn History = &pool;
    let runs = 9;
    for (label, span, step, dim) in [
        ("24 h at 60 s, total", DAY, 60 * S, None),
        (
            "24 h at 60 s, by class (top 10)",
            DAY,
            60 * S,
            Some(Dim::Class),
        ),
        ("1 h at 1 s, total", 3600 * S, S, None),
        (
            "1 h at 1 s, by class (top 10)",
            3600 * S,
            S,
            Some(Dim::Class),
        ),
        ("1 h at 1 s, fine bytes", 3600 * S, S, None),
        ("5 min at 0.1 s, fine bytes", 300 * S, S / 10, None),
    ] {
        let metric = if label.contains("fine") {
            Metric::FineBytes
        } else {
            Metric::Bytes
        };
        let q = SeriesQuery {
            metric,
            dim,
            from_ns: end - span,
            to_ns: end,
            step_ns: step,
            top: 10,
            filter: Vec::new(),
        };
        let mut times = Vec::new();
        let mut points = 0;
        let mut tier = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let s = h.series(&q).expect("series");
            times.push(t.elapsed());
            points = s.times_ns.len() * s.lines.len();
            tier = s.tier_ns;
        }
        println!(
            "query {label}: median {} over {runs} runs ({points} values, tier {} s)",
            ms(median(times)),
            tier as f64 / 1e9
        );
    }
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        h.totals(end - DAY, end).expect("totals");
        times.push(t.elapsed());
    }
    println!("query totals over 24 h: median {}", ms(median(times)));
    drop(pool);
    drop(store);
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
