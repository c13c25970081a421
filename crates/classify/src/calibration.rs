//! Honest confidence: temperature scaling fitted on held-out predictions,
//! the expected calibration error, a reliability diagram and accuracy
//! against coverage as the `unknown` threshold moves.
//!
//! A model's probabilities are calibrated when, of the answers given with
//! confidence about c, a share c is right. Trees vote and MLPs trained on
//! smoothed targets are both off (usually under-confident here), so the
//! `unknown` threshold would not mean what it says. Temperature scaling
//! (Guo et al., 2017) raises each probability to 1/T and renormalises:
//! one parameter, fitted by minimising the negative log-likelihood of
//! held-out predictions, that keeps the argmax (and so accuracy) unchanged.

use std::fmt::Write as _;

/// `p` raised to `1/t` and renormalised (on the log scale: logits / t).
/// `t = 1` leaves `p` as it is.
pub fn apply_temperature(p: &mut [f32], t: f32) {
    if t == 1.0 || !t.is_finite() || t <= 0.0 {
        return;
    }
    let inv = 1.0 / t;
    // Relative to the largest, so small probabilities do not underflow.
    let max = p.iter().copied().fold(0f32, f32::max);
    if max <= 0.0 {
        return;
    }
    let mut sum = 0f32;
    for v in p.iter_mut() {
        *v = if *v > 0.0 { (*v / max).powf(inv) } else { 0.0 };
        sum += *v;
    }
    for v in p.iter_mut() {
        *v /= sum;
    }
}

/// `p` times per-class weights `w` (a decision rule: how much more a class
/// must be believed to be answered), renormalised. Empty `w`: unchanged.
pub fn apply_class_weights(p: &mut [f32], w: &[f32]) {
    if w.len() != p.len() {
        return;
    }
    let mut sum = 0f32;
    for (v, &wi) in p.iter_mut().zip(w) {
        *v *= wi;
        sum += *v;
    }
    if sum > 0.0 {
        p.iter_mut().for_each(|v| *v /= sum);
    }
}

/// Macro-F1 of the argmax answers of `probs` weighted by `w`.
fn weighted_macro_f1(probs: &[Vec<f32>], truth: &[usize], w: &[f64]) -> f64 {
    let k = w.len();
    let mut tp = vec![0u64; k];
    let mut said = vec![0u64; k];
    let mut support = vec![0u64; k];
    for (p, &y) in probs.iter().zip(truth) {
        let mut best = 0;
        let mut bv = f64::MIN;
        for (j, (&v, &wj)) in p.iter().zip(w).enumerate() {
            let s = v as f64 * wj;
            if s > bv {
                bv = s;
                best = j;
            }
        }
        said[best] += 1;
        support[y] += 1;
        tp[best] += (best == y) as u64;
    }
    let (mut sum, mut n) = (0.0, 0);
    for j in 0..k {
        if support[j] == 0 {
            continue;
        }
        n += 1;
        let denom = said[j] + support[j];
        if denom > 0 {
            sum += 2.0 * tp[j] as f64 / denom as f64;
        }
    }
    sum / n.max(1) as f64
}

/// Per-class weights on the probabilities that maximise the macro-F1 of
/// held-out answers (coordinate ascent over ln w in [-2, 2], steps of 0.1,
/// the first class fixed at 1). Balanced training weights equalise the
/// classes' totals, not their errors: a broad class such as `other` (many
/// unrelated protocols) still wins the flows it overlaps with. None when
/// the weights do not raise the held-out macro-F1 by at least 0.005.
pub fn fit_class_weights(probs: &[Vec<f32>], truth: &[usize], k: usize) -> Option<Vec<f32>> {
    if probs.is_empty() || k < 2 {
        return None;
    }
    let mut lw = vec![0f64; k];
    let score = |lw: &[f64]| {
        let w: Vec<f64> = lw.iter().map(|v| v.exp()).collect();
        weighted_macro_f1(probs, truth, &w)
    };
    let start = score(&lw);
    let mut best = start;
    for _ in 0..4 {
        let mut moved = false;
        for j in 1..k {
            let keep = lw[j];
            let mut bj = keep;
            for step in -20..=20 {
                lw[j] = step as f64 / 10.0;
                let s = score(&lw);
                // Ties: the smaller change.
                if s > best + 1e-12 || (s >= best - 1e-12 && lw[j].abs() < bj.abs()) {
                    if s > best + 1e-12 {
                        moved = true;
                    }
                    best = best.max(s);
                    bj = lw[j];
                }
            }
            lw[j] = bj;
        }
        if !moved {
            break;
        }
    }
    (best >= start + 0.005).then(|| lw.iter().map(|v| v.exp() as f32).collect())
}

/// Smallest probability taken for the true class in the log-likelihood:
/// trees give exact zeros, and one of them must not dominate the fit.
const P_FLOOR: f64 = 1e-4;

/// Mean negative log-likelihood of `truth` under `probs` at temperature `t`.
pub fn nll(probs: &[Vec<f32>], truth: &[usize], t: f32) -> f64 {
    let mut s = 0.0;
    let mut q = Vec::new();
    for (p, &y) in probs.iter().zip(truth) {
        q.clear();
        q.extend_from_slice(p);
        apply_temperature(&mut q, t);
        s -= (q.get(y).copied().unwrap_or(0.0) as f64).max(P_FLOOR).ln();
    }
    s / probs.len().max(1) as f64
}

/// Held-out wrong answers needed to fit a temperature. With (almost) none,
/// the likelihood only grows as the temperature falls to 0, which would
/// make the model certain of everything on the next, harder traffic.
pub const MIN_ERRORS_TO_FIT: usize = 20;

/// The temperature in [0.2, 20] that minimises the held-out negative
/// log-likelihood (golden-section search on ln T; the NLL is unimodal in
/// it for all but degenerate inputs). None with fewer than
/// [`MIN_ERRORS_TO_FIT`] wrong answers: nothing to learn confidence from.
pub fn fit_temperature(probs: &[Vec<f32>], truth: &[usize]) -> Option<f32> {
    let errors = probs
        .iter()
        .zip(truth)
        .filter(|(p, &y)| crate::models::argmax(p) != y)
        .count();
    if errors < MIN_ERRORS_TO_FIT {
        return None;
    }
    let f = |lt: f64| nll(probs, truth, lt.exp() as f32);
    let (mut a, mut b) = (0.2f64.ln(), 20f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..60 {
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
    let t = ((a + b) / 2.0).exp() as f32;
    // Keep 1 unless the fit is really better (no change for noise).
    Some(if nll(probs, truth, t) < nll(probs, truth, 1.0) - 1e-9 {
        t
    } else {
        1.0
    })
}

/// One confidence bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq)]
pub struct ReliabilityBin {
    pub lo: f64,
    pub hi: f64,
    /// Predictions whose confidence (top probability) falls in [lo, hi).
    pub n: u64,
    pub mean_confidence: f64,
    /// Share of them that are right.
    pub accuracy: f64,
}

/// Confidence against accuracy in equal-width bins, and the expected
/// calibration error: Σ (n_b / n) · |accuracy_b − confidence_b|.
#[derive(Debug, Clone, PartialEq)]
pub struct Reliability {
    pub bins: Vec<ReliabilityBin>,
    pub ece: f64,
    pub n: u64,
}

impl Reliability {
    pub fn new(probs: &[Vec<f32>], truth: &[usize], n_bins: usize) -> Self {
        let n_bins = n_bins.max(1);
        let mut acc = vec![(0u64, 0f64, 0u64); n_bins];
        for (p, &y) in probs.iter().zip(truth) {
            let best = crate::models::argmax(p);
            let c = p.get(best).copied().unwrap_or(0.0) as f64;
            let b = ((c * n_bins as f64) as usize).min(n_bins - 1);
            acc[b].0 += 1;
            acc[b].1 += c;
            acc[b].2 += (best == y) as u64;
        }
        let n: u64 = acc.iter().map(|a| a.0).sum();
        let mut ece = 0.0;
        let bins = acc
            .iter()
            .enumerate()
            .map(|(i, &(k, sc, right))| {
                let (mc, a) = if k > 0 {
                    (sc / k as f64, right as f64 / k as f64)
                } else {
                    (0.0, 0.0)
                };
                if n > 0 {
                    ece += k as f64 / n as f64 * (a - mc).abs();
                }
                ReliabilityBin {
                    lo: i as f64 / n_bins as f64,
                    hi: (i + 1) as f64 / n_bins as f64,
                    n: k,
                    mean_confidence: mc,
                    accuracy: a,
                }
            })
            .collect();
        Reliability { bins, ece, n }
    }
}

/// At one `unknown` threshold: the share of flows answered and the
/// accuracy of those answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoveragePoint {
    pub threshold: f32,
    pub coverage: f64,
    pub accuracy: f64,
}

/// Accuracy of the answered flows against coverage for each threshold.
pub fn coverage_curve(
    probs: &[Vec<f32>],
    truth: &[usize],
    thresholds: &[f32],
) -> Vec<CoveragePoint> {
    thresholds
        .iter()
        .map(|&t| {
            let (mut answered, mut right) = (0u64, 0u64);
            for (p, &y) in probs.iter().zip(truth) {
                let best = crate::models::argmax(p);
                if p.get(best).copied().unwrap_or(0.0) >= t {
                    answered += 1;
                    right += (best == y) as u64;
                }
            }
            CoveragePoint {
                threshold: t,
                coverage: answered as f64 / probs.len().max(1) as f64,
                accuracy: if answered > 0 {
                    right as f64 / answered as f64
                } else {
                    0.0
                },
            }
        })
        .collect()
}

/// A reliability diagram (before and after calibration) and the
/// accuracy-coverage curve side by side, as a standalone SVG.
pub fn reliability_svg(
    title: &str,
    before: &Reliability,
    after: &Reliability,
    coverage_before: &[CoveragePoint],
    coverage_after: &[CoveragePoint],
) -> String {
    let (w, h, pad) = (880.0, 420.0, 50.0);
    let side = 320.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{pad}" y="22" font-size="14">{}</text>"##,
        escape(title)
    );
    // Panel 1: reliability. x = confidence, y = accuracy.
    let (x0, y0) = (pad, 50.0);
    axes(&mut s, x0, y0, side, "confidence", "accuracy");
    let _ = write!(
        s,
        r##"<line x1="{x0}" y1="{}" x2="{}" y2="{y0}" stroke="#999" stroke-dasharray="4 3"/>"##,
        y0 + side,
        x0 + side
    );
    let bw = side / before.bins.len().max(1) as f64;
    for (i, (b, a)) in before.bins.iter().zip(&after.bins).enumerate() {
        for (bin, dx, colour) in [(b, 0.0, "#E69F00"), (a, bw / 2.0, "#0072B2")] {
            if bin.n == 0 {
                continue;
            }
            let hgt = bin.accuracy * side;
            let _ = write!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}" fill-opacity="0.8"><title>{:.2}-{:.2}: {} flows, confidence {:.3}, accuracy {:.3}</title></rect>"##,
                x0 + i as f64 * bw + dx,
                y0 + side - hgt,
                bw / 2.0 - 1.0,
                hgt,
                bin.lo,
                bin.hi,
                bin.n,
                bin.mean_confidence,
                bin.accuracy
            );
        }
    }
    // Bottom left: confidence under 1/k never occurs, the corner is free.
    legend(
        &mut s,
        x0 + 8.0,
        y0 + side - 24.0,
        &[
            ("#E69F00", format!("raw, ECE {:.3}", before.ece)),
            ("#0072B2", format!("calibrated, ECE {:.3}", after.ece)),
        ],
    );
    // Panel 2: accuracy of answered flows against coverage.
    let (x1, y1) = (pad * 2.0 + side + 60.0, 50.0);
    axes(
        &mut s,
        x1,
        y1,
        side,
        "coverage (share answered)",
        "accuracy of answers",
    );
    for (pts, colour) in [(coverage_before, "#E69F00"), (coverage_after, "#0072B2")] {
        let path: Vec<String> = pts
            .iter()
            .map(|p| {
                format!(
                    "{:.1},{:.1}",
                    x1 + p.coverage * side,
                    y1 + side - p.accuracy * side
                )
            })
            .collect();
        let _ = write!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"##,
            path.join(" ")
        );
        for p in pts {
            let _ = write!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"><title>threshold {:.2}: coverage {:.3}, accuracy {:.3}</title></circle>"##,
                x1 + p.coverage * side,
                y1 + side - p.accuracy * side,
                p.threshold,
                p.coverage,
                p.accuracy
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn axes(s: &mut String, x: f64, y: f64, side: f64, xl: &str, yl: &str) {
    let _ = write!(
        s,
        r##"<rect x="{x}" y="{y}" width="{side}" height="{side}" fill="none" stroke="#333"/>"##
    );
    for i in 0..=5 {
        let v = i as f64 / 5.0;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{v:.1}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.1}</text>"##,
            x + v * side,
            y + side + 15.0,
            x - 4.0,
            y + side - v * side + 4.0
        );
    }
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
        x + side / 2.0,
        y + side + 32.0,
        escape(xl),
        x - 32.0,
        y + side / 2.0,
        escape(yl)
    );
}

fn legend(s: &mut String, x: f64, y: f64, items: &[(&str, String)]) {
    for (i, (c, t)) in items.iter().enumerate() {
        let yy = y + i as f64 * 16.0;
        let _ = write!(
            s,
            r##"<rect x="{x}" y="{:.1}" width="10" height="10" fill="{c}"/><text x="{:.1}" y="{:.1}">{}</text>"##,
            yy - 9.0,
            x + 14.0,
            yy,
            escape(t)
        );
    }
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn temperature_keeps_the_argmax_and_sums_to_one() {
        let mut p = vec![0.6f32, 0.3, 0.1, 0.0];
        apply_temperature(&mut p, 2.0);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(crate::models::argmax(&p), 0);
        // T = 2: square roots renormalised.
        let r = [0.6f32.sqrt(), 0.3f32.sqrt(), 0.1f32.sqrt()];
        let sum: f32 = r.iter().sum();
        assert!((p[1] - r[1] / sum).abs() < 1e-6 && p[3] == 0.0);
        let mut q = vec![0.6f32, 0.4];
        apply_temperature(&mut q, 1.0);
        assert_eq!(q, vec![0.6, 0.4]);
    }

    /// Draws predictions whose true confidence is known: the model says
    /// `p_said` but is right with probability `p_true`.
    fn overconfident(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut r = Rng::new(seed);
        let (mut probs, mut truth) = (vec![], vec![]);
        for _ in 0..n {
            // True accuracy 0.6..0.9, said as its square root (over-confident).
            let p_true = 0.6 + 0.3 * r.unit();
            let p_said = p_true.sqrt() as f32;
            let pred = r.below(3);
            let y = if r.unit() < p_true {
                pred
            } else {
                (pred + 1 + r.below(2)) % 3
            };
            let mut p = vec![(1.0 - p_said) / 2.0; 3];
            p[pred] = p_said;
            probs.push(p);
            truth.push(y);
        }
        (probs, truth)
    }

    #[test]
    fn fitted_temperature_lowers_the_held_out_calibration_error() {
        let (fit_p, fit_y) = overconfident(4000, 1);
        let (test_p, test_y) = overconfident(4000, 2);
        let t = fit_temperature(&fit_p, &fit_y).expect("enough errors");
        // Over-confident: the fit must soften (T > 1).
        assert!(t > 1.2, "temperature {t}");
        let before = Reliability::new(&test_p, &test_y, 10);
        let calibrated: Vec<Vec<f32>> = test_p
            .iter()
            .map(|p| {
                let mut q = p.clone();
                apply_temperature(&mut q, t);
                q
            })
            .collect();
        let after = Reliability::new(&calibrated, &test_y, 10);
        assert!(before.ece > 0.08, "before {}", before.ece);
        assert!(
            after.ece < before.ece / 2.0,
            "{} -> {}",
            before.ece,
            after.ece
        );
        // Same answers: accuracy unchanged.
        let acc = |ps: &[Vec<f32>]| coverage_curve(ps, &test_y, &[0.0])[0].accuracy;
        assert_eq!(acc(&test_p), acc(&calibrated));
        assert!(nll(&test_p, &test_y, t) < nll(&test_p, &test_y, 1.0));
        // All right: nothing to fit (not a temperature near 0).
        let right: Vec<usize> = fit_p.iter().map(|p| crate::models::argmax(p)).collect();
        assert_eq!(fit_temperature(&fit_p, &right), None);
    }

    #[test]
    fn class_weights_recover_a_class_the_model_under_answers() {
        // Class 1 is always said with 0.4 against class 0's 0.6 when it is
        // the truth; class 0 flows are said 0.8 / 0.2. Weighting class 1 by
        // more than 1.5 and less than 4 answers every flow right.
        let mut probs = vec![];
        let mut truth = vec![];
        for i in 0..200 {
            if i % 4 == 0 {
                probs.push(vec![0.6f32, 0.4]);
                truth.push(1);
            } else {
                probs.push(vec![0.8f32, 0.2]);
                truth.push(0);
            }
        }
        let w = fit_class_weights(&probs, &truth, 2).expect("improves");
        let r = w[1] / w[0];
        assert!(r > 1.5 && r < 4.0, "{w:?}");
        let mut p = vec![0.6f32, 0.4];
        apply_class_weights(&mut p, &w);
        assert_eq!(crate::models::argmax(&p), 1);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // Already right: nothing to fit.
        let right: Vec<usize> = probs.iter().map(|p| crate::models::argmax(p)).collect();
        assert_eq!(fit_class_weights(&probs, &right, 2), None);
    }

    #[test]
    fn ece_and_coverage_by_hand() {
        // Two flows at 0.95 (one right), two at 0.65 (both right).
        let p = vec![
            vec![0.95f32, 0.05],
            vec![0.95, 0.05],
            vec![0.35, 0.65],
            vec![0.35, 0.65],
        ];
        let y = [0, 1, 1, 1];
        let r = Reliability::new(&p, &y, 10);
        // |0.5 - 0.95| * 0.5 + |1.0 - 0.65| * 0.5 = 0.4
        assert!((r.ece - 0.4).abs() < 1e-6, "{}", r.ece);
        assert_eq!(r.bins[9].n, 2);
        assert_eq!(r.bins[6].n, 2);
        let c = coverage_curve(&p, &y, &[0.5, 0.7, 0.99]);
        assert_eq!((c[0].coverage, c[0].accuracy), (1.0, 0.75));
        assert_eq!((c[1].coverage, c[1].accuracy), (0.5, 0.5));
        assert_eq!(c[2].coverage, 0.0);
        let svg = reliability_svg("<x>", &r, &r, &c, &c);
        assert!(svg.starts_with("<svg") && svg.contains("&lt;x&gt;") && svg.contains("ECE 0.400"));
    }
}
