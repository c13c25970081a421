//! The generators against their closed-form autocovariances.
use selfsim::stats::ln_gamma;
use selfsim::{synth_farima, synth_fgn};

/// Averages the known-mean sample autocovariance (1/(N-k)) sum x_t x_{t+k}
/// (unbiased for a zero-mean process) over seeds and checks every lag
/// against `expect` within 4 standard errors of the seed average.
fn check_acov(sample: impl Fn(u64) -> Vec<f64>, expect: &[f64], seeds: u64, label: &str) {
    let lags = expect.len();
    let mut per_seed: Vec<Vec<f64>> = vec![Vec::new(); lags];
    for seed in 0..seeds {
        let x = sample(seed);
        let n = x.len();
        for (k, v) in per_seed.iter_mut().enumerate() {
            let s: f64 = (0..n - k).map(|t| x[t] * x[t + k]).sum();
            v.push(s / (n - k) as f64);
        }
    }
    for (k, v) in per_seed.iter().enumerate() {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
        let se = sd / (v.len() as f64).sqrt();
        assert!(
            (m - expect[k]).abs() < 4.0 * se + 1e-3,
            "{label} lag {k}: sample {m:.4} vs theory {:.4} (se {se:.4})",
            expect[k]
        );
    }
}

#[test]
fn davies_harte_fgn_has_the_fgn_autocovariance() {
    for &h in &[0.55, 0.75, 0.95] {
        // gamma(k) = (|k+1|^{2H} - 2|k|^{2H} + |k-1|^{2H}) / 2, written out here.
        let expect: Vec<f64> = (0..12)
            .map(|k| {
                let k = k as f64;
                0.5 * ((k + 1.0).powf(2.0 * h) - 2.0 * k.powf(2.0 * h)
                    + (k - 1.0).abs().powf(2.0 * h))
            })
            .chain([100.0, 1000.0].iter().map(|&k: &f64| {
                0.5 * ((k + 1.0).powf(2.0 * h) - 2.0 * k.powf(2.0 * h) + (k - 1.0).powf(2.0 * h))
            }))
            .collect();
        // Lags 100 and 1000 are checked through a separate pass below.
        check_acov(
            |s| synth_fgn(h, 4096, s).unwrap(),
            &expect[..12],
            200,
            &format!("fGn H={h}"),
        );
        // Long lags: compare the lag-100 and lag-1000 averages.
        let mut acc = [0.0f64; 2];
        let mut sq = [0.0f64; 2];
        let seeds = 200;
        for s in 0..seeds {
            let x = synth_fgn(h, 4096, 10_000 + s).unwrap();
            for (i, &k) in [100usize, 1000].iter().enumerate() {
                let v =
                    (0..x.len() - k).map(|t| x[t] * x[t + k]).sum::<f64>() / (x.len() - k) as f64;
                acc[i] += v;
                sq[i] += v * v;
            }
        }
        for i in 0..2 {
            let m = acc[i] / seeds as f64;
            let se = ((sq[i] / seeds as f64 - m * m) / seeds as f64).sqrt();
            assert!(
                (m - expect[12 + i]).abs() < 4.0 * se + 1e-3,
                "H={h} long lag {i}: {m} vs {}",
                expect[12 + i]
            );
        }
    }
}

#[test]
fn davies_harte_farima_has_the_farima_autocorrelation() {
    for &d in &[0.1, 0.3, 0.45] {
        // gamma(0) = Gamma(1-2d)/Gamma(1-d)^2 and
        // rho(k) = Gamma(k+d) Gamma(1-d) / (Gamma(k-d+1) Gamma(d)) (Hosking 1981).
        let g0 = (ln_gamma(1.0 - 2.0 * d) - 2.0 * ln_gamma(1.0 - d)).exp();
        let expect: Vec<f64> = (0..12)
            .map(|k| {
                if k == 0 {
                    g0
                } else {
                    let k = k as f64;
                    g0 * (ln_gamma(k + d) + ln_gamma(1.0 - d) - ln_gamma(k - d + 1.0) - ln_gamma(d))
                        .exp()
                }
            })
            .collect();
        check_acov(
            |s| synth_farima(d, 4096, s).unwrap(),
            &expect,
            200,
            &format!("FARIMA d={d}"),
        );
    }
}

#[test]
fn generators_are_seeded_and_reject_bad_parameters() {
    assert_eq!(
        synth_fgn(0.7, 1000, 5).unwrap(),
        synth_fgn(0.7, 1000, 5).unwrap()
    );
    assert_ne!(
        synth_fgn(0.7, 1000, 5).unwrap(),
        synth_fgn(0.7, 1000, 6).unwrap()
    );
    assert_eq!(synth_fgn(0.7, 1000, 5).unwrap().len(), 1000);
    assert_eq!(synth_fgn(0.7, 1001, 5).unwrap().len(), 1001);
    assert!(synth_fgn(1.0, 10, 1).is_err());
    assert!(synth_fgn(0.0, 10, 1).is_err());
    assert!(synth_farima(0.5, 10, 1).is_err());
    assert!(synth_fgn(0.7, 0, 1).unwrap().is_empty());
}
