//! Small numerical helpers shared by the estimators: validation, least
//! squares, a bounded 1-D minimiser, log-spaced grids and special functions.
use crate::error::SelfSimError;

/// Arithmetic mean (0 for an empty slice).
pub fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    x.iter().sum::<f64>() / x.len() as f64
}

/// Unbiased sample variance (n - 1 denominator); 0 for fewer than 2 values.
pub fn variance(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64
}

/// Checks a series before estimation: non-empty, finite, long enough and
/// not constant. Every estimator calls this so bad input gives an error
/// naming the method instead of a NaN.
pub fn validate(x: &[f64], method: &'static str, min: usize) -> Result<(), SelfSimError> {
    if x.is_empty() {
        return Err(SelfSimError::Empty { method });
    }
    if let Some((index, &value)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(SelfSimError::NonFinite {
            method,
            index,
            value,
        });
    }
    if x.len() < min {
        return Err(SelfSimError::TooShort {
            method,
            n: x.len(),
            min,
        });
    }
    let first = x[0];
    // Relative tolerance: a series whose spread is at rounding level is constant.
    let scale = x.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-300);
    if x.iter().all(|v| ((v - first) / scale).abs() < 1e-13) {
        return Err(SelfSimError::Constant { method });
    }
    Ok(())
}

/// Result of a straight-line least-squares fit y = slope * x + intercept.
#[derive(Debug, Clone, Copy)]
pub struct LineFit {
    pub slope: f64,
    pub intercept: f64,
    /// Standard error of the slope from the residual variance (None if n < 3).
    pub slope_se: Option<f64>,
    /// Sxx = sum (x - xbar)^2, useful when the noise variance is known.
    pub sxx: f64,
}

/// Ordinary least squares. Requires at least 2 distinct x values.
pub fn ols(x: &[f64], y: &[f64]) -> Option<LineFit> {
    let n = x.len();
    if n < 2 || y.len() != n {
        return None;
    }
    let mx = mean(x);
    let my = mean(y);
    let mut sxx = 0.0;
    let mut sxy = 0.0;
    for (a, b) in x.iter().zip(y) {
        sxx += (a - mx) * (a - mx);
        sxy += (a - mx) * (b - my);
    }
    if sxx <= 0.0 || !sxx.is_finite() || !sxy.is_finite() {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let slope_se = if n > 2 {
        let rss: f64 = x
            .iter()
            .zip(y)
            .map(|(a, b)| {
                let r = b - (slope * a + intercept);
                r * r
            })
            .sum();
        Some((rss / (n - 2) as f64 / sxx).sqrt())
    } else {
        None
    };
    Some(LineFit {
        slope,
        intercept,
        slope_se,
        sxx,
    })
}

/// Weighted least squares with known variances `var` of y (weights 1/var).
/// Returns (slope, intercept, variance of slope) where the slope variance is
/// the exact one for independent y with those variances.
pub fn wls(x: &[f64], y: &[f64], var: &[f64]) -> Option<(f64, f64, f64)> {
    let n = x.len();
    if n < 2 || y.len() != n || var.len() != n {
        return None;
    }
    let (mut s, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        let w = 1.0 / var[i];
        s += w;
        sx += w * x[i];
        sy += w * y[i];
        sxx += w * x[i] * x[i];
        sxy += w * x[i] * y[i];
    }
    let det = s * sxx - sx * sx;
    if det <= 0.0 || !det.is_finite() {
        return None;
    }
    let slope = (s * sxy - sx * sy) / det;
    let intercept = (sxx * sy - sx * sxy) / det;
    Some((slope, intercept, s / det))
}

/// Minimises a unimodal function on [a, b] by golden-section search.
/// Returns the abscissa of the minimum.
pub fn golden_min(mut f: impl FnMut(f64) -> f64, mut a: f64, mut b: f64, tol: f64) -> f64 {
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let mut fc = f(c);
    let mut fd = f(d);
    while (b - a).abs() > tol {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    0.5 * (a + b)
}

/// Minimises the convex function F(t) = ln sum_j w_j exp(t z_j) (w_j > 0)
/// over [lo, hi] by Newton's method on F'(t) = E_t[z], F''(t) = Var_t[z]
/// (moments under the weights w_j exp(t z_j)), safeguarded by bisection.
/// Each iteration is one pass with one exp per term, and it converges in a
/// handful of iterations; the Local Whittle objective and the FARIMA Whittle
/// objective both have this form.
pub fn min_log_sum_exp(w: &[f64], z: &[f64], mut lo: f64, mut hi: f64) -> f64 {
    let zmax = z.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    let mut t = 0.5 * (lo + hi);
    for _ in 0..100 {
        // Shift the exponent by |t| zmax so no term overflows.
        let shift = t.abs() * zmax;
        let (mut s0, mut s1, mut s2) = (0.0, 0.0, 0.0);
        for (wi, zi) in w.iter().zip(z) {
            let e = wi * (t * zi - shift).exp();
            s0 += e;
            s1 += e * zi;
            s2 += e * zi * zi;
        }
        if s0 <= 0.0 || !s0.is_finite() {
            break;
        }
        let d1 = s1 / s0;
        let d2 = (s2 / s0 - d1 * d1).max(0.0);
        if d1 > 0.0 {
            hi = t;
        } else {
            lo = t;
        }
        let newton = if d2 > 0.0 { t - d1 / d2 } else { f64::NAN };
        let next = if newton.is_finite() && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - t).abs() < 1e-12 || hi - lo < 1e-12 {
            return next;
        }
        t = next;
    }
    t
}

/// Brent's method (golden section with parabolic steps; Brent 1973,
/// "Algorithms for Minimization without Derivatives", ch. 5) for a
/// unimodal function on [a, b]. Far fewer evaluations than pure golden
/// section on smooth functions.
pub fn brent_min(mut f: impl FnMut(f64) -> f64, mut a: f64, mut b: f64, tol: f64) -> f64 {
    let c = (3.0 - 5f64.sqrt()) / 2.0;
    let mut x = a + c * (b - a);
    let (mut w, mut v) = (x, x);
    let mut fx = f(x);
    let (mut fw, mut fv) = (fx, fx);
    let (mut d, mut e) = (0.0f64, 0.0f64);
    for _ in 0..200 {
        let m = 0.5 * (a + b);
        let tol1 = tol + 1e-10 * x.abs();
        let tol2 = 2.0 * tol1;
        if (x - m).abs() <= tol2 - 0.5 * (b - a) {
            break;
        }
        let mut golden = true;
        if e.abs() > tol1 {
            // Parabola through (v, fv), (w, fw), (x, fx).
            let r = (x - w) * (fx - fv);
            let mut q = (x - v) * (fx - fw);
            let mut p = (x - v) * q - (x - w) * r;
            q = 2.0 * (q - r);
            if q > 0.0 {
                p = -p;
            }
            q = q.abs();
            if p.abs() < (0.5 * q * e).abs() && p > q * (a - x) && p < q * (b - x) {
                e = d;
                d = p / q;
                let u = x + d;
                if u - a < tol2 || b - u < tol2 {
                    d = if m >= x { tol1 } else { -tol1 };
                }
                golden = false;
            }
        }
        if golden {
            e = if x < m { b - x } else { a - x };
            d = c * e;
        }
        let u = if d.abs() >= tol1 {
            x + d
        } else if d > 0.0 {
            x + tol1
        } else {
            x - tol1
        };
        let fu = f(u);
        if fu <= fx {
            if u < x {
                b = x;
            } else {
                a = x;
            }
            (v, fv, w, fw, x, fx) = (w, fw, x, fx, u, fu);
        } else {
            if u < x {
                a = u;
            } else {
                b = u;
            }
            if fu <= fw || w == x {
                (v, fv, w, fw) = (w, fw, u, fu);
            } else if fu <= fv || v == x || v == w {
                (v, fv) = (u, fu);
            }
        }
    }
    x
}

/// Up to `count` distinct integers, logarithmically spaced in [lo, hi].
pub fn log_spaced(lo: usize, hi: usize, count: usize) -> Vec<usize> {
    let lo = lo.max(1);
    if hi < lo || count == 0 {
        return Vec::new();
    }
    if count == 1 || hi == lo {
        return vec![lo];
    }
    let (l0, l1) = ((lo as f64).ln(), (hi as f64).ln());
    let mut out: Vec<usize> = (0..count)
        .map(|i| {
            (l0 + (l1 - l0) * i as f64 / (count - 1) as f64)
                .exp()
                .round() as usize
        })
        .map(|v| v.clamp(lo, hi))
        .collect();
    out.dedup();
    out
}

/// Digamma function psi(x) for x > 0 (recurrence + asymptotic series).
pub fn digamma(mut x: f64) -> f64 {
    let mut r = 0.0;
    while x < 12.0 {
        r -= 1.0 / x;
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    r + x.ln()
        - 0.5 / x
        - f * (1.0 / 12.0 - f * (1.0 / 120.0 - f * (1.0 / 252.0 - f * (1.0 / 240.0 - f / 132.0))))
}

/// Trigamma function psi'(x) = zeta(2, x) for x > 0.
pub fn trigamma(mut x: f64) -> f64 {
    let mut r = 0.0;
    while x < 12.0 {
        r += 1.0 / (x * x);
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    r + 1.0 / x + f / 2.0 + f / x * (1.0 / 6.0 - f * (1.0 / 30.0 - f * (1.0 / 42.0 - f / 30.0)))
}

/// ln Gamma(x) for x > 0 (Lanczos, g = 7, n = 9).
pub fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Data-quality warnings shared by all estimators: linear trend and level
/// shift. Both are judged against the within-segment spread, so a genuinely
/// long-memory series with H up to about 0.9 rarely triggers them, while a
/// deterministic trend or step of the order of one standard deviation does.
pub fn data_warnings(x: &[f64]) -> Vec<String> {
    let mut w = Vec::new();
    let n = x.len();
    if n < 8 {
        return w;
    }
    // Linear trend: total fitted change versus residual standard deviation.
    let t: Vec<f64> = (0..n).map(|i| i as f64).collect();
    if let Some(fit) = ols(&t, x) {
        let rss: f64 = x
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let r = v - (fit.slope * i as f64 + fit.intercept);
                r * r
            })
            .sum();
        let sd = (rss / (n - 2) as f64).sqrt();
        let change = fit.slope * (n - 1) as f64;
        if sd > 0.0 && change.abs() > 1.0 * sd {
            w.push(format!(
                "linear trend: fitted change over the series {:.3} = {:.2} residual standard deviations; \
                 detrend or difference before trusting H",
                change,
                change.abs() / sd
            ));
        }
    }
    // Level shift: difference of half means versus pooled within-half sd.
    let (a, b) = x.split_at(n / 2);
    let sd = ((variance(a) + variance(b)) / 2.0).sqrt();
    let diff = mean(b) - mean(a);
    if sd > 0.0 && diff.abs() > 1.0 * sd {
        w.push(format!(
            "level shift: mean of second half differs from first half by {:.3} = {:.2} within-half \
             standard deviations; a shift in level inflates every H estimate",
            diff,
            diff.abs() / sd
        ));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_functions_match_known_values() {
        // psi(1) = -Euler gamma; psi'(1) = pi^2/6; ln Gamma(0.5) = ln sqrt(pi).
        assert!((digamma(1.0) + 0.577_215_664_901_532_9).abs() < 1e-12);
        assert!((digamma(0.5) + 1.963_510_026_021_423_5).abs() < 1e-12);
        let pi = std::f64::consts::PI;
        assert!((trigamma(1.0) - pi * pi / 6.0).abs() < 1e-12);
        assert!((trigamma(0.5) - pi * pi / 2.0).abs() < 1e-11);
        assert!((ln_gamma(0.5) - pi.sqrt().ln()).abs() < 1e-12);
        assert!((ln_gamma(10.0) - 362_880f64.ln()).abs() < 1e-10);
    }

    #[test]
    fn ols_recovers_exact_line() {
        let x = [1.0, 2.0, 3.0, 4.0];
        let y: Vec<f64> = x.iter().map(|v| 2.0 * v - 1.0).collect();
        let f = ols(&x, &y).unwrap();
        assert!((f.slope - 2.0).abs() < 1e-12 && (f.intercept + 1.0).abs() < 1e-12);
        let (s, i, _) = wls(&x, &y, &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((s - 2.0).abs() < 1e-12 && (i + 1.0).abs() < 1e-12);
    }

    #[test]
    fn brent_and_newton_find_known_minima() {
        let mut evals = 0;
        let m = brent_min(
            |x| {
                evals += 1;
                (x - 0.3).powi(2) + (x - 0.3).powi(4)
            },
            0.0,
            1.0,
            1e-9,
        );
        assert!((m - 0.3).abs() < 1e-7 && evals < 30, "{m} {evals}");
        // ln(e^{-t} + e^{t}) has its minimum at 0; with weights (1, 4) at
        // t = -ln(4)/2.
        let t = min_log_sum_exp(&[1.0, 4.0], &[-1.0, 1.0], -3.0, 3.0);
        assert!((t + 4f64.ln() / 2.0).abs() < 1e-10, "{t}");
    }

    #[test]
    fn golden_finds_parabola_minimum() {
        let m = golden_min(|x| (x - 0.3).powi(2), 0.0, 1.0, 1e-9);
        assert!((m - 0.3).abs() < 1e-8);
    }
}
