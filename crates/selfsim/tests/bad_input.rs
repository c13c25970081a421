//! Bad input gives clear per-estimator errors, never a panic or a NaN.
use selfsim::estimators::*;
use selfsim::{analyze, AnalyzeConfig, SelfSimError};

type Est = fn(&[f64]) -> Result<selfsim::Estimate, SelfSimError>;

fn all() -> Vec<(&'static str, Est)> {
    vec![
        ("rs", |x| rescaled_range(x, &RsConfig::default())),
        ("periodogram", |x| {
            periodogram_regression(x, &PeriodogramConfig::default())
        }),
        ("gph", |x| gph(x, &PeriodogramConfig::default())),
        ("local-whittle", |x| {
            local_whittle(x, &LocalWhittleConfig::default())
        }),
        ("aggvar", |x| aggregated_variance(x, &AggConfig::default())),
        ("absmom", |x| abs_moment(x, &AggConfig::default())),
        ("dfa1", |x| dfa(x, &DfaConfig::default())),
        ("dfa2", |x| {
            dfa(
                x,
                &DfaConfig {
                    order: 2,
                    ..Default::default()
                },
            )
        }),
        ("wavelet", |x| {
            wavelet_abry_veitch(x, &WaveletConfig::default())
        }),
        ("whittle-fgn", |x| whittle_fgn(x, &WhittleConfig::default())),
        ("whittle-farima", |x| {
            whittle_farima(x, &WhittleConfig::default())
        }),
    ]
}

#[test]
fn every_estimator_rejects_bad_series_with_its_name() {
    let mut nan = selfsim::synth_fgn(0.7, 4096, 1).unwrap();
    nan[100] = f64::NAN;
    let mut inf = selfsim::synth_fgn(0.7, 4096, 1).unwrap();
    inf[7] = f64::INFINITY;
    for (name, f) in all() {
        let e = f(&[]).unwrap_err();
        assert!(matches!(e, SelfSimError::Empty { .. }), "{name}: {e}");
        let e = f(&vec![5.0; 4096]).unwrap_err();
        assert!(matches!(e, SelfSimError::Constant { .. }), "{name}: {e}");
        let e = f(&nan).unwrap_err();
        assert!(
            matches!(e, SelfSimError::NonFinite { index: 100, .. }),
            "{name}: {e}"
        );
        let e = f(&inf).unwrap_err();
        assert!(
            matches!(e, SelfSimError::NonFinite { index: 7, .. }),
            "{name}: {e}"
        );
        let e = f(&[1.0, 2.0, 3.0, 1.0, 2.0]).unwrap_err();
        assert!(
            matches!(e, SelfSimError::TooShort { n: 5, .. }),
            "{name}: {e}"
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with(name.split('1').next().unwrap().split('2').next().unwrap()),
            "{msg}"
        );
        // A valid series gives a finite H.
        let x = selfsim::synth_fgn(0.7, 4096, 2).unwrap();
        assert!(f(&x).unwrap().h.is_finite(), "{name}");
    }
}

#[test]
fn analyze_reports_errors_per_method_without_panicking() {
    let cfg = AnalyzeConfig::default();
    for x in [
        vec![],
        vec![3.0; 1000],
        vec![1.0, f64::NAN, 2.0],
        vec![1.0, 2.0, 4.0],
    ] {
        let r = analyze(&x, &cfg);
        assert!(!r.warnings.is_empty() || x.len() < 8);
        for m in &r.estimates {
            assert!(m.estimate.is_none() && m.error.is_some(), "{}", m.method);
        }
        let text = r.to_string();
        assert!(text.contains("error:"), "{text}");
        // NaN may appear only when an error or warning quotes the bad value.
        assert!(
            text.lines()
                .all(|l| !l.contains("NaN") || l.contains("error:") || l.contains("warning:")),
            "{text}"
        );
    }
    // A short but valid series: some methods work, the rest explain why not.
    let x = selfsim::synth_fgn(0.8, 150, 3).unwrap();
    let r = analyze(&x, &cfg);
    assert!(r.get("local-whittle").is_some());
    assert!(r.estimates.iter().any(|m| m
        .error
        .as_deref()
        .is_some_and(|e| e.contains("needs at least"))));
    assert!(r.warnings.iter().any(|w| w.contains("only 150 values")));
}
