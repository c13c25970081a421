//! Short-memory controls and data-quality warnings.
//!
//! White noise has H = 1/2 for every estimator. AR(1) with phi = 0.9 has
//! short memory (H = 1/2) but a spectrum that is flat only below
//! lambda ~ 1 - phi = 0.1, so only estimators confined to low frequencies or
//! large scales read 1/2: GPH with M = N^0.5 (Geweke & Porter-Hudak 1983),
//! Local Whittle with M = N^0.5, the wavelet method from octave 8 on
//! (Abry & Veitch 1998 recommend choosing j1 above the short-range scales),
//! DFA-1 with boxes >= 256 (still +0.06: the crossover is slow). R/S,
//! Local Whittle at the default M = N^0.65 and the Whittle fGn fit (a
//! misspecified model) are clearly biased upward; the aggregated variance
//! from blocks of 10 on only slightly at N = 2^16 (Taqqu et al. 1995;
//! Mandelbrot & Wallis 1969 note R/S is not robust to short-range
//! dependence).
use selfsim::estimators::*;
use selfsim::synth::{synth_ar1, synth_white};
use selfsim::{analyze, AnalyzeConfig};

#[test]
fn white_noise_reads_one_half_everywhere() {
    let x = synth_white(1 << 14, 3);
    let r = analyze(&x, &AnalyzeConfig::default());
    println!("{r}");
    for m in &r.estimates {
        let e = m.estimate.as_ref().unwrap();
        // Three standard errors where the s.e. is honest, else 0.06. R/S
        // with blocks >= 32 carries the small-sample upward bias of
        // E[R/S] (Anis & Lloyd 1976), about +0.05 at these sizes.
        let tol = match m.method.as_str() {
            "rs" => 0.08,
            "aggvar" | "absmom" | "dfa1" | "dfa2" => 0.06,
            _ => 3.0 * e.std_err.unwrap() + 0.01,
        };
        assert!(
            (e.h - 0.5).abs() < tol,
            "{}: H = {} (tol {tol})",
            m.method,
            e.h
        );
    }
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn ar1_phi_09_is_short_memory_for_low_frequency_estimators() {
    let n = 1 << 16;
    let mut robust = Vec::new();
    let mut biased = Vec::new();
    for seed in 0..4 {
        let x = synth_ar1(0.9, n, 100 + seed);
        let narrow = LocalWhittleConfig {
            m_exponent: 0.5,
            m: None,
        };
        let g = gph(&x, &PeriodogramConfig::default()).unwrap();
        let lw = local_whittle(&x, &narrow).unwrap();
        let wv = wavelet_abry_veitch(
            &x,
            &WaveletConfig {
                j1: 8,
                ..Default::default()
            },
        )
        .unwrap();
        let d = dfa(
            &x,
            &DfaConfig {
                min_box: Some(256),
                max_fraction: 0.02,
                ..Default::default()
            },
        )
        .unwrap();
        robust.push([g.h, lw.h, wv.h, d.h]);
        let r = analyze(
            &x,
            &AnalyzeConfig {
                h_vs_m_points: 0,
                ..Default::default()
            },
        );
        biased.push([
            r.get("rs").unwrap().h,
            r.get("aggvar").unwrap().h,
            r.get("whittle-fgn").unwrap().h,
            r.get("local-whittle").unwrap().h,
        ]);
    }
    println!("AR(1) robust [gph, lw M=N^0.5, wavelet j1=8, dfa1 n>=256]: {robust:?}");
    println!("AR(1) default [rs, aggvar, whittle-fgn, lw M=N^0.65]: {biased:?}");
    for row in &robust {
        for (i, h) in row.iter().enumerate() {
            assert!((h - 0.5).abs() < 0.1, "robust estimator {i}: H = {h}");
        }
    }
    let mean = |i: usize| biased.iter().map(|r| r[i]).sum::<f64>() / biased.len() as f64;
    assert!(
        mean(0) > 0.6,
        "R/S should be biased upward by AR(1): {}",
        mean(0)
    );
    assert!(
        mean(1) > 0.5,
        "aggvar should be biased upward by AR(1): {}",
        mean(1)
    );
    assert!(
        mean(2) > 0.9,
        "Whittle fGn should be biased upward by AR(1): {}",
        mean(2)
    );
    assert!(
        mean(3) > 0.58,
        "LW at M = N^0.65 should be biased upward: {}",
        mean(3)
    );
}

#[test]
fn level_shift_and_trend_are_warned_about() {
    let n = 1 << 13;
    let base = synth_white(n, 9);
    let shifted: Vec<f64> = base
        .iter()
        .enumerate()
        .map(|(i, v)| v + if i >= n / 2 { 3.0 } else { 0.0 })
        .collect();
    let trend: Vec<f64> = base
        .iter()
        .enumerate()
        .map(|(i, v)| v + 4.0 * i as f64 / n as f64)
        .collect();
    let cfg = AnalyzeConfig::default();
    let r = analyze(&shifted, &cfg);
    assert!(
        r.warnings.iter().any(|w| w.starts_with("level shift")),
        "{:?}",
        r.warnings
    );
    let r = analyze(&trend, &cfg);
    assert!(
        r.warnings.iter().any(|w| w.starts_with("linear trend")),
        "{:?}",
        r.warnings
    );
    // Exact fGn with H = 0.75 raises neither.
    let x = selfsim::synth_fgn(0.75, n, 4).unwrap();
    let r = analyze(&x, &cfg);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}
