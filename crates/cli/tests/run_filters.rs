//! Filtered views of the store (what the dashboard's click-to-filter
//! reads): the bins' cross dimension (class × protocol × app × direction)
//! must agree with every dimension counted on its own, and filtered by a
//! protocol or a direction with what `stats` counts for it, on real
//! captures.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use pipeline::Dim;
use serde_json::Value;
use store::{History, Metric, SeriesQuery};

fn by(t: &store::Totals, dim: Dim) -> BTreeMap<String, (u64, u64)> {
    t.by_dim
        .iter()
        .filter(|x| x.0 == dim)
        .map(|x| (x.1.clone(), (x.2, x.3)))
        .collect()
}

#[test]
fn filtered_totals_and_series_agree_with_each_dimension_and_with_stats() {
    let Some(data) = data_if_present() else {
        eprintln!("SKIP: no ../shared/data");
        return;
    };
    let labels = data.join("labelled/labels.csv");
    let mut checked = 0;
    for name in [
        "video/netflix.pcap",
        "voip-conferencing/signal.pcap",
        "other/bittorrent.pcap",
        "voip-conferencing/sip.pcap",
    ] {
        let cap = data.join("pcap-apps/ndpi").join(name);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("run-filters")
            .join(name.replace('/', "-"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        run_offline(&cap, &labels, &dir);
        let h = store::open_history(&dir).unwrap();
        let all = h.totals(0, u64::MAX / 2).unwrap();
        let stats: Value =
            serde_json::from_slice(&run(&["stats", "--json", "-r", cap.to_str().unwrap()]).stdout)
                .unwrap();

        // Each class, app, protocol and direction alone: the cross
        // dimension gives what that dimension counted itself.
        for dim in [Dim::Class, Dim::App, Dim::Protocol, Dim::Direction] {
            for (key, counted) in by(&all, dim) {
                let t = h
                    .totals_where(0, u64::MAX / 2, &[(dim, key.clone())])
                    .unwrap();
                assert_eq!((t.packets, t.bytes), counted, "{name}: {dim:?} {key}");
                // Split by another dimension, it adds up again.
                let other = if dim == Dim::Class {
                    Dim::Protocol
                } else {
                    Dim::Class
                };
                let split: u64 = by(&t, other).values().map(|v| v.0).sum();
                assert_eq!(split, counted.0, "{name}: {dim:?} {key} by {other:?}");
                checked += 1;
            }
        }
        // Against stats: a protocol's and a direction's packets and bytes.
        for (proto, v) in stats["protocols"].as_object().unwrap() {
            let t = h
                .totals_where(0, u64::MAX / 2, &[(Dim::Protocol, proto.clone())])
                .unwrap();
            assert_eq!(t.packets, v["packets"].as_u64().unwrap(), "{name}: {proto}");
            assert_eq!(t.bytes, v["bytes"].as_u64().unwrap(), "{name}: {proto}");
        }
        for (d, v) in stats["directions"].as_object().unwrap() {
            let t = h
                .totals_where(0, u64::MAX / 2, &[(Dim::Direction, d.clone())])
                .unwrap();
            assert_eq!(
                t.packets,
                v["packets"].as_u64().unwrap(),
                "{name}: direction {d}"
            );
        }
        // Two filters: the series per second sums to the filtered totals.
        if let Some((class, _)) = by(&all, Dim::Class).into_iter().max_by_key(|x| x.1 .0) {
            let filter = vec![
                (Dim::Class, class.clone()),
                (Dim::Protocol, "TCP".to_string()),
            ];
            let t = h.totals_where(0, u64::MAX / 2, &filter).unwrap();
            let e = h.extent().unwrap();
            let (from, to) = (e.first_ns.unwrap(), e.last_ns.unwrap());
            let step = 60_000_000_000;
            let s = h
                .series(&SeriesQuery {
                    metric: Metric::Bytes,
                    dim: Some(Dim::App),
                    from_ns: from / step * step,
                    to_ns: to.div_ceil(step) * step,
                    step_ns: step,
                    top: 100,
                    filter: filter.clone(),
                })
                .unwrap();
            let sum: f64 = s.lines.iter().flat_map(|l| l.values.iter().flatten()).sum();
            let apps: u64 = by(&t, Dim::App).values().map(|v| v.1).sum();
            assert_eq!(sum as u64, apps, "{name}: {class} TCP bytes by app");
        }
    }
    eprintln!("{checked} filtered totals checked");
    assert!(checked > 30, "{checked}");
}
