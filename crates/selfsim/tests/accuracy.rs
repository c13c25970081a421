//! Bias and RMSE of the estimators on exact fGn (Davies-Harte).
//!
//! Where the bounds come from:
//! * Reference figures at N = 2^16, H = 0.75, 20 seeds (measured on the
//!   Python peers): Local Whittle (M = N^0.65) RMSE 0.014, nolds DFA-1 RMSE
//!   0.010, nolds R/S bias -0.036 / RMSE 0.037, hurst.compute_Hc RMSE 0.029.
//! * Estimators with an asymptotic standard error (Local Whittle
//!   1/(2 sqrt M), Robinson 1995; GPH pi/sqrt(6 Sxx), Geweke & Porter-Hudak
//!   1983; the periodogram regression likewise; Abry-Veitch wavelet, Veitch &
//!   Abry 1999; Whittle fGn Fisher information, Beran 1994): RMSE must not
//!   exceed 1.3 x the mean reported s.e. (30% covers the sampling error of an
//!   RMSE from 20-50 seeds and finite-N effects) and |bias| < 0.5 x s.e. + 0.005.
//! * Aggregated variance, absolute moments, R/S and DFA have no honest
//!   s.e.; Taqqu, Teverovsky & Willinger (1995) report that aggvar/absmom/R-S
//!   underestimate H increasingly as H -> 1 in samples of this size. Their
//!   bounds are ours, loose enough for that known bias and tight enough to
//!   catch a scaling or slope error (those move H by more than 0.2).
use selfsim::{analyze, synth_fgn, AnalyzeConfig};
use std::collections::BTreeMap;

const HS: [f64; 5] = [0.55, 0.65, 0.75, 0.85, 0.95];

struct Stat {
    bias: f64,
    rmse: f64,
    mean_se: f64,
}

/// Runs `analyze` on `seeds` fGn samples per H and returns per (method, H)
/// bias, RMSE and mean reported s.e.
fn study(log2n: u32, seeds: u64, hs: &[f64], seed0: u64) -> BTreeMap<(String, u64), Stat> {
    let cfg = AnalyzeConfig {
        h_vs_m_points: 0,
        ..Default::default()
    };
    let mut raw: BTreeMap<(String, u64), Vec<(f64, f64)>> = BTreeMap::new();
    for &h in hs {
        for s in 0..seeds {
            let x = synth_fgn(h, 1 << log2n, seed0 + s).unwrap();
            let r = analyze(&x, &cfg);
            for m in &r.estimates {
                let e = m
                    .estimate
                    .as_ref()
                    .unwrap_or_else(|| panic!("{} failed: {:?}", m.method, m.error));
                raw.entry((m.method.clone(), (h * 100.0).round() as u64))
                    .or_default()
                    .push((e.h, e.std_err.unwrap_or(f64::NAN)));
            }
        }
    }
    let mut out = BTreeMap::new();
    println!("N = 2^{log2n}, {seeds} seeds: method, H, bias, RMSE, mean s.e.");
    for (k, v) in raw {
        let h = k.1 as f64 / 100.0;
        let n = v.len() as f64;
        let bias = v.iter().map(|p| p.0 - h).sum::<f64>() / n;
        let rmse = (v.iter().map(|p| (p.0 - h).powi(2)).sum::<f64>() / n).sqrt();
        let mean_se = v.iter().map(|p| p.1).sum::<f64>() / n;
        println!("{:<15} {h:.2} {bias:+.4} {rmse:.4} {mean_se:.4}", k.0);
        out.insert(
            k,
            Stat {
                bias,
                rmse,
                mean_se,
            },
        );
    }
    out
}

fn check(stats: &BTreeMap<(String, u64), Stat>, hs: &[f64]) {
    for &h in hs {
        let key = |m: &str| (m.to_string(), (h * 100.0).round() as u64);
        for m in [
            "local-whittle",
            "gph",
            "periodogram",
            "wavelet",
            "whittle-fgn",
        ] {
            let s = &stats[&key(m)];
            assert!(
                s.rmse <= 1.3 * s.mean_se,
                "{m} H={h}: RMSE {:.4} > 1.3 x s.e. {:.4}",
                s.rmse,
                s.mean_se
            );
            assert!(
                s.bias.abs() <= 0.5 * s.mean_se + 0.005,
                "{m} H={h}: bias {:+.4}",
                s.bias
            );
        }
        for m in ["dfa1", "dfa2"] {
            let s = &stats[&key(m)];
            assert!(
                s.bias.abs() <= 0.02 && s.rmse <= 0.035,
                "{m} H={h}: {:+.4} {:.4}",
                s.bias,
                s.rmse
            );
        }
        let rs = &stats[&key("rs")];
        assert!(
            rs.bias.abs() <= 0.1 && rs.rmse <= 0.11,
            "rs H={h}: {:+.4} {:.4}",
            rs.bias,
            rs.rmse
        );
        for m in ["aggvar", "absmom"] {
            let s = &stats[&key(m)];
            assert!(
                s.bias > -0.16 && s.bias < 0.03 && s.rmse < 0.17,
                "{m} H={h}: {:+.4} {:.4}",
                s.bias,
                s.rmse
            );
        }
    }
}

/// 50 seeds at N = 2^12 for all five H and every estimator.
#[test]
fn fgn_study_n4096_50_seeds() {
    let stats = study(12, 50, &HS, 7_000);
    check(&stats, &HS);
}

/// 20 seeds at N = 2^16 for all five H; at H = 0.75 against the peers'
/// reference figures.
#[test]
fn fgn_study_n65536_20_seeds_against_reference_figures() {
    let stats = study(16, 20, &HS, 9_000);
    check(&stats, &HS);
    let at = |m: &str| &stats[&(m.to_string(), 75)];
    // Local Whittle against the peers' 0.014: see
    // local_whittle_rmse_against_reference_figure (300 seeds, so the bound
    // is the reference plus our own stated Monte-Carlo error).
    // DFA-1 at least as good as nolds (0.010).
    assert!(at("dfa1").rmse <= 0.010, "DFA-1 RMSE {}", at("dfa1").rmse);
    // R/S at least as good as nolds (bias -0.036, RMSE 0.037) and
    // hurst.compute_Hc (RMSE 0.029).
    assert!(at("rs").bias.abs() <= 0.036, "R/S bias {}", at("rs").bias);
    assert!(at("rs").rmse <= 0.029, "R/S RMSE {}", at("rs").rmse);
}

/// Local Whittle at the reference setting (N = 2^16, H = 0.75, M = N^0.65 =
/// 1351) against the peers' RMSE 0.014.
///
/// The bound is the reference plus the Monte-Carlo error of our own RMSE
/// estimate, computed from the sample: with e_i = H_i - H over n seeds,
/// MSE = mean(e^2) has standard error sd(e^2)/sqrt(n), and by the delta
/// method SE(RMSE) = SE(MSE) / (2 RMSE). With n = 300 that is about
/// RMSE/sqrt(2n) = 0.0006 (for normal errors), so the test fails if the
/// estimator's true RMSE exceeds the reference by more than ~0.0012, while a
/// correct estimator (asymptotic RMSE 1/(2 sqrt 1351) = 0.0136) fails with
/// probability below 2.3% (one-sided 2 SE) for a random choice of seeds;
/// the seeds are fixed, so the outcome is deterministic. The reference
/// itself comes from 20 seeds (its own sampling error is ~16%), which is
/// why it is a bound to stay under rather than a value to match.
/// Only Local Whittle runs here (no full `analyze`): 300 series of 2^16
/// take about 4.5 s of CPU in the test profile (opt-level 2), ~15 ms each.
#[test]
fn local_whittle_rmse_against_reference_figure() {
    use selfsim::estimators::local_whittle;
    const REFERENCE_RMSE: f64 = 0.014;
    const H: f64 = 0.75;
    const SEEDS: u64 = 300;
    let sq: Vec<f64> = (0..SEEDS)
        .map(|s| {
            let x = synth_fgn(H, 1 << 16, 50_000 + s).unwrap();
            let e = local_whittle(&x, &Default::default()).unwrap();
            (e.h - H).powi(2)
        })
        .collect();
    let n = sq.len() as f64;
    let mse = sq.iter().sum::<f64>() / n;
    let rmse = mse.sqrt();
    let var_sq = sq.iter().map(|v| (v - mse).powi(2)).sum::<f64>() / (n - 1.0);
    let se_rmse = (var_sq / n).sqrt() / (2.0 * rmse);
    let bound = REFERENCE_RMSE + 2.0 * se_rmse;
    println!("Local Whittle, {SEEDS} seeds: RMSE {rmse:.5} (s.e. {se_rmse:.5}), bound {bound:.5}");
    // The tolerance must be small for the comparison to mean anything.
    assert!(se_rmse < 0.001, "Monte-Carlo s.e. {se_rmse}");
    assert!(
        rmse <= bound,
        "LW RMSE {rmse:.5} > reference {REFERENCE_RMSE} + 2 x {se_rmse:.5}"
    );
}

/// FARIMA(0,d,0) data: the FARIMA Whittle fit is correctly specified there
/// (Fisher-information s.e. sqrt(6/(pi^2 N)), Beran 1994), and Local
/// Whittle is semiparametric (s.e. 1/(2 sqrt M)).
#[test]
fn farima_study_n4096_20_seeds() {
    use selfsim::estimators::{local_whittle, whittle_farima};
    for &d in &[0.1, 0.25, 0.4] {
        let h = d + 0.5;
        let mut est: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
        for s in 0..20 {
            let x = selfsim::synth_farima(d, 4096, 500 + s).unwrap();
            let w = whittle_farima(&x, &Default::default()).unwrap();
            let l = local_whittle(&x, &Default::default()).unwrap();
            est[0].push((w.h, w.std_err.unwrap()));
            est[1].push((l.h, l.std_err.unwrap()));
        }
        for (name, v) in ["whittle-farima", "local-whittle"].iter().zip(&est) {
            let n = v.len() as f64;
            let bias = v.iter().map(|p| p.0 - h).sum::<f64>() / n;
            let rmse = (v.iter().map(|p| (p.0 - h).powi(2)).sum::<f64>() / n).sqrt();
            let se = v.iter().map(|p| p.1).sum::<f64>() / n;
            println!("FARIMA d={d}: {name} bias {bias:+.4} RMSE {rmse:.4} s.e. {se:.4}");
            assert!(rmse <= 1.3 * se, "{name} d={d}: RMSE {rmse} vs s.e. {se}");
            assert!(bias.abs() <= 0.5 * se + 0.005, "{name} d={d}: bias {bias}");
        }
    }
}

/// Heavier study: 50 seeds at N = 2^16 for all five H (about 1-2 minutes
/// of CPU in the dev profile; run with `cargo test -p selfsim --release
/// --test accuracy -- --ignored --nocapture`).
#[test]
#[ignore = "heavy: 250 series of 2^16; run on demand"]
fn fgn_study_n65536_50_seeds() {
    let stats = study(16, 50, &HS, 30_000);
    check(&stats, &HS);
    let at = |m: &str| &stats[&(m.to_string(), 75)];
    assert!(at("dfa1").rmse <= 0.010, "DFA-1 RMSE {}", at("dfa1").rmse);
    assert!(at("rs").rmse <= 0.029, "R/S RMSE {}", at("rs").rmse);
    assert!(
        at("local-whittle").rmse <= 0.0155,
        "LW RMSE {}",
        at("local-whittle").rmse
    );
}
