//! Minimal hand-written SVG plots of a [`SeriesReport`]. PNG output is not
//! provided: it would need a rasteriser and a font; convert the SVG files
//! with any external tool if PNG is required.
use crate::analyze::SeriesReport;
use crate::estimate::DiagnosticPlot;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const W: f64 = 640.0;
const H: f64 = 420.0;
const ML: f64 = 70.0;
const MR: f64 = 20.0;
const MT: f64 = 36.0;
const MB: f64 = 52.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// "Nice" tick positions covering [lo, hi].
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 7.0)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1e5 || v.abs() < 1e-3 {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn new(xs: impl Iterator<Item = f64> + Clone, ys: impl Iterator<Item = f64> + Clone) -> Self {
        let fold = |it: &mut dyn Iterator<Item = f64>| {
            it.filter(|v| v.is_finite())
                .fold((f64::INFINITY, f64::NEG_INFINITY), |a, v| {
                    (a.0.min(v), a.1.max(v))
                })
        };
        let (mut x0, mut x1) = fold(&mut xs.clone());
        let (mut y0, mut y1) = fold(&mut ys.clone());
        if !x0.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        if !y0.is_finite() {
            (y0, y1) = (0.0, 1.0);
        }
        if x1 - x0 < 1e-12 {
            x0 -= 0.5;
            x1 += 0.5;
        }
        if y1 - y0 < 1e-12 {
            y0 -= 0.5;
            y1 += 0.5;
        }
        let (px, py) = ((x1 - x0) * 0.03, (y1 - y0) * 0.05);
        Frame {
            x0: x0 - px,
            x1: x1 + px,
            y0: y0 - py,
            y1: y1 + py,
        }
    }
    fn sx(&self, x: f64) -> f64 {
        ML + (x - self.x0) / (self.x1 - self.x0) * (W - ML - MR)
    }
    fn sy(&self, y: f64) -> f64 {
        H - MB - (y - self.y0) / (self.y1 - self.y0) * (H - MT - MB)
    }
}

fn axes(s: &mut String, fr: &Frame, title: &str, xl: &str, yl: &str) {
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">{}</text>",
        W / 2.0,
        esc(title)
    );
    let _ = writeln!(
        s,
        "<clipPath id=\"plot\"><rect x=\"{ML}\" y=\"{MT}\" width=\"{}\" height=\"{}\"/></clipPath>\n\
         <rect x=\"{ML}\" y=\"{MT}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>",
        W - ML - MR,
        H - MT - MB,
        W - ML - MR,
        H - MT - MB
    );
    for t in ticks(fr.x0, fr.x1) {
        let x = fr.sx(t);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"black\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            H - MB,
            H - MB + 5.0,
            H - MB + 18.0,
            fmt_tick(t)
        );
    }
    for t in ticks(fr.y0, fr.y1) {
        let y = fr.sy(t);
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{ML}\" y2=\"{y:.1}\" stroke=\"black\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            ML - 5.0,
            ML - 8.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        (ML + W - MR) / 2.0,
        H - 12.0,
        esc(xl)
    );
    let _ = writeln!(
        s,
        "<text transform=\"translate(16,{}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        (MT + H - MB) / 2.0,
        esc(yl)
    );
}

/// SVG of a diagnostic plot: cloud (grey), points (blue), error bars and
/// the fitted line (red).
pub fn diagnostic_svg(p: &DiagnosticPlot, title: &str, lines: bool) -> String {
    let xs = p.x.iter().copied().chain(p.cloud.iter().map(|c| c.0));
    let ys =
        p.y.iter()
            .zip(p.y_err.iter().chain(std::iter::repeat(&0.0)))
            .flat_map(|(y, e)| [y - e, y + e])
            .chain(p.cloud.iter().map(|c| c.1));
    let fr = Frame::new(xs, ys);
    let mut s = String::new();
    axes(&mut s, &fr, title, &p.x_label, &p.y_label);
    for (x, y) in &p.cloud {
        let _ = writeln!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.5\" fill=\"#999\"/>",
            fr.sx(*x),
            fr.sy(*y)
        );
    }
    for (i, e) in p.y_err.iter().enumerate().take(p.x.len()) {
        let x = fr.sx(p.x[i]);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#6a8\"/>",
            fr.sy(p.y[i] - e),
            fr.sy(p.y[i] + e)
        );
    }
    if lines && p.x.len() > 1 {
        let pts: Vec<String> =
            p.x.iter()
                .zip(&p.y)
                .map(|(x, y)| format!("{:.1},{:.1}", fr.sx(*x), fr.sy(*y)))
                .collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"1\"/>",
            pts.join(" ")
        );
    } else {
        for (x, y) in p.x.iter().zip(&p.y) {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#1f5fbf\"/>",
                fr.sx(*x),
                fr.sy(*y)
            );
        }
    }
    if let Some((a, b)) = p.fit {
        let (xa, xb) = (fr.x0, fr.x1);
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#d22\" stroke-width=\"1.5\" \
             clip-path=\"url(#plot)\"/>",
            fr.sx(xa),
            fr.sy(a * xa + b),
            fr.sx(xb),
            fr.sy(a * xb + b)
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"#d22\">slope {:.3}</text>",
            ML + 8.0,
            MT + 14.0,
            a
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Writes SVG plots of a report into `dir` as `{stem}-{kind}.svg` and
/// returns the paths: series, R/S pox plot, V statistic, periodogram,
/// Local Whittle H vs M, variance-time plot, wavelet log-scale diagram and
/// DFA fluctuation plot (whichever are available).
pub fn write_plots(
    report: &SeriesReport,
    dir: impl AsRef<Path>,
    stem: &str,
) -> std::io::Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    let mut put = |kind: &str, svg: String| -> std::io::Result<()> {
        let p = dir.join(format!("{stem}-{kind}.svg"));
        std::fs::write(&p, svg)?;
        out.push(p);
        Ok(())
    };
    let series = DiagnosticPlot {
        x: report.preview.iter().map(|p| p.0).collect(),
        y: report.preview.iter().map(|p| p.1).collect(),
        x_label: match report.bin_width_s {
            Some(w) => format!("bin index ({w} s bins)"),
            None => "index".into(),
        },
        y_label: "value".into(),
        ..Default::default()
    };
    put("series", diagnostic_svg(&series, &report.name, true))?;
    let title = |m: &str, e: &crate::Estimate| format!("{}: {m}, H = {:.3}", report.name, e.h);
    for (method, kind, label) in [
        ("rs", "rs-pox", "R/S pox plot"),
        ("periodogram", "periodogram", "periodogram regression"),
        ("aggvar", "variance-time", "variance-time plot"),
        ("wavelet", "wavelet-logscale", "wavelet log-scale diagram"),
        ("dfa1", "dfa1", "DFA-1 fluctuation"),
    ] {
        if let Some(e) = report.get(method) {
            put(kind, diagnostic_svg(&e.plot, &title(label, e), false))?;
        }
    }
    if let Some(v) = &report.v_statistic {
        put(
            "v-statistic",
            diagnostic_svg(v, &format!("{}: Hurst V statistic", report.name), true),
        )?;
    }
    if let Some(v) = &report.h_vs_m {
        put(
            "lw-h-vs-m",
            diagnostic_svg(v, &format!("{}: Local Whittle H vs M", report.name), true),
        )?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ticks_cover_range_with_round_steps() {
        let t = super::ticks(0.13, 2.9);
        assert_eq!(t.first().copied(), Some(0.5));
        assert!(t.windows(2).all(|w| ((w[1] - w[0]) - 0.5).abs() < 1e-12));
        assert!(*t.last().unwrap() <= 2.9);
    }
}
