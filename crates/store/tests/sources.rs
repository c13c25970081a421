//! Several sources (analysis nodes' partitions) feeding one store: each
//! source's bin is kept and the bin is their sum, whatever the order and
//! however often a source's bin is written again.

mod common;

use common::*;
use pipeline::{Bin, Dim, EvalWindow, Output};
use store::History;

fn part(b: &Bin, source: &str) -> Output {
    Output::Bin(Bin {
        source: source.into(),
        ..b.clone()
    })
}

/// Packets per (dim, key) over bins, added up by hand.
fn by_dim(bins: &[&Bin]) -> Vec<(Dim, String, u64, u64)> {
    let mut m = std::collections::BTreeMap::new();
    for b in bins {
        for c in &b.counts {
            if c.dim == Dim::Cross {
                continue;
            }
            let e = m.entry((c.dim, c.key.clone())).or_insert((0, 0));
            e.0 += c.packets;
            e.1 += c.bytes;
        }
    }
    m.into_iter().map(|((d, k), (p, b))| (d, k, p, b)).collect()
}

#[test]
fn a_bin_is_the_sum_of_its_sources_and_a_rewrite_replaces_a_source() {
    let dir = TempDir::new("sources");
    let store = open(dir.path());
    let mut w = store.writer().unwrap();
    let (a0, b0) = (bin(T0, 1), bin(T0, 2));
    let (a1, b1) = (bin(T0 + S, 3), bin(T0 + S, 4));
    // Out of order, across transactions, one source's bin written twice.
    w.write(&[part(&a0, "p0/n"), part(&a1, "p0/n")]).unwrap();
    w.write(&[part(&b1, "p1/n")]).unwrap();
    w.write(&[part(&a0, "p0/n"), part(&b0, "p1/n")]).unwrap();
    let h = store.history().unwrap();
    let t = h.totals(T0, T0 + 2 * S).unwrap();
    let all = [&a0, &b0, &a1, &b1];
    assert_eq!(t.packets, all.iter().map(|b| b.packets).sum::<u64>());
    assert_eq!(t.bytes, all.iter().map(|b| b.bytes).sum::<u64>());
    assert_eq!(
        t.flows_started,
        all.iter().map(|b| b.flows_started).sum::<u64>()
    );
    let got: Vec<_> = t
        .by_dim
        .iter()
        .filter(|x| x.0 != Dim::Cross)
        .cloned()
        .collect();
    assert_eq!(got, by_dim(&all));
    assert_eq!(t.bins, 2, "two bins, not four");

    // The fine statistics are those of the summed 0.1 s values.
    let mut sum = a0.fine_bytes[0].clone();
    for (x, y) in sum.iter_mut().zip(&b0.fine_bytes[0]) {
        *x += y;
    }
    let want = fine_stats(&sum);
    let t0 = h.totals(T0, T0 + S).unwrap();
    let got = t0.fine[0].1.unwrap();
    assert!((got.mean - want.mean).abs() < 1e-9 && got.peak == want.peak);
    assert!((got.cv.unwrap() - want.cv.unwrap()).abs() < 1e-9);

    // A replay of one source with different content replaces its part only.
    let a0b = bin(T0, 9);
    w.write(&[part(&a0b, "p0/n")]).unwrap();
    let t = h.totals(T0, T0 + S).unwrap();
    assert_eq!(t.packets, a0b.packets + b0.packets);

    let ext = store.source_extents().unwrap();
    let bins_end = |s: &str| (ext[s].bins_end_ns, ext[s].windows_end_ns, ext[s].ended);
    assert_eq!(bins_end("p0/n"), (T0 + 2 * S, 0, false));
    assert_eq!(bins_end("p1/n"), (T0 + 2 * S, 0, false));
    assert_eq!(
        (ext["p0/n"].bins_start_ns, ext["p1/n"].bins_start_ns),
        (T0, T0)
    );
}

#[test]
fn windows_from_several_sources_add_up() {
    let dir = TempDir::new("sources-w");
    let store = open(dir.path());
    let mut w = store.writer().unwrap();
    let x = window(T0);
    let mut y = window(T0);
    y.hits = 3;
    y.by_class.truncate(1);
    for (src, win) in [("p0/a", &x), ("p1/a", &y), ("p0/a", &x)] {
        w.write(&[Output::Window(EvalWindow {
            source: src.into(),
            ..win.clone()
        })])
        .unwrap();
    }
    let got = store.history().unwrap().windows(T0, T0 + 5 * S).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].hits, x.hits + y.hits);
    assert_eq!(got[0].misses, x.misses + y.misses);
    let video = got[0].by_class.iter().find(|c| c.class == "video").unwrap();
    assert_eq!(video.hits, x.by_class[0].hits + y.by_class[0].hits);
}
