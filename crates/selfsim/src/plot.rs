//! Plots of a [`SeriesReport`] as SVG and PNG.
//!
//! Layout happens once: [`diagnostic_figure`] maps data to figure
//! coordinates (one unit = one PNG pixel), picks ticks and places every
//! stroke, dot and label in a [`Figure`]; the SVG writer ([`Figure::to_svg`])
//! and the rasteriser (`plot/raster.rs`, see [`Figure::to_png`]) only draw
//! that list.
use crate::analyze::SeriesReport;
use crate::estimate::DiagnosticPlot;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

mod font;
mod raster;

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

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// Colours of the plots.
pub mod colors {
    use super::Rgb;
    pub const BACKGROUND: Rgb = Rgb(255, 255, 255);
    pub const INK: Rgb = Rgb(0, 0, 0);
    /// Point clouds (e.g. every block of the R/S pox plot).
    pub const CLOUD: Rgb = Rgb(0x99, 0x99, 0x99);
    /// Error bars.
    pub const ERROR_BAR: Rgb = Rgb(0x66, 0xaa, 0x88);
    /// Fitted points and series lines.
    pub const POINTS: Rgb = Rgb(0x1f, 0x5f, 0xbf);
    /// Fitted line and its legend.
    pub const FIT: Rgb = Rgb(0xdd, 0x22, 0x22);
}

/// Horizontal placement of a text relative to its anchor point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// One drawing primitive in figure coordinates (y down, origin top left).
#[derive(Debug, Clone)]
pub enum Shape {
    /// A straight stroke; `clipped` ones are cut to the plot area.
    Line {
        from: (f64, f64),
        to: (f64, f64),
        color: Rgb,
        width: f64,
        clipped: bool,
    },
    Polyline {
        points: Vec<(f64, f64)>,
        color: Rgb,
        width: f64,
    },
    /// A filled disc.
    Dot { at: (f64, f64), r: f64, color: Rgb },
    /// A 1-unit rectangle outline.
    Rect {
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        color: Rgb,
    },
    /// Text with its baseline at `at.1`; `title` is the larger (SVG) or bold
    /// (PNG) face; `vertical` reads upwards, rotated about `at`.
    Text {
        at: (f64, f64),
        text: String,
        anchor: Anchor,
        color: Rgb,
        title: bool,
        vertical: bool,
    },
}

/// A laid-out plot: what both the SVG and the PNG backends draw.
#[derive(Debug, Clone)]
pub struct Figure {
    pub width: f64,
    pub height: f64,
    pub background: Rgb,
    /// Plot area (x, y, w, h): the frame, and the clip of clipped lines.
    pub plot_area: (f64, f64, f64, f64),
    pub shapes: Vec<Shape>,
}

/// Data-to-figure mapping of one plot: data ranges (padded) onto the plot
/// area.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub x0: f64,
    pub x1: f64,
    pub y0: f64,
    pub y1: f64,
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
    /// Figure x of data x.
    pub fn sx(&self, x: f64) -> f64 {
        ML + (x - self.x0) / (self.x1 - self.x0) * (W - ML - MR)
    }
    /// Figure y of data y.
    pub fn sy(&self, y: f64) -> f64 {
        H - MB - (y - self.y0) / (self.y1 - self.y0) * (H - MT - MB)
    }
}

impl Figure {
    fn text(&mut self, at: (f64, f64), text: impl Into<String>, anchor: Anchor) {
        self.shapes.push(Shape::Text {
            at,
            text: text.into(),
            anchor,
            color: colors::INK,
            title: false,
            vertical: false,
        });
    }

    fn line(&mut self, from: (f64, f64), to: (f64, f64), color: Rgb) {
        self.shapes.push(Shape::Line {
            from,
            to,
            color,
            width: 1.0,
            clipped: false,
        });
    }

    /// Title, frame, ticks with their numbers and the axis labels.
    fn axes(fr: &Frame, title: &str, xl: &str, yl: &str) -> Figure {
        let plot_area = (ML, MT, W - ML - MR, H - MT - MB);
        let mut f = Figure {
            width: W,
            height: H,
            background: colors::BACKGROUND,
            plot_area,
            shapes: Vec::new(),
        };
        f.shapes.push(Shape::Text {
            at: (W / 2.0, 20.0),
            text: title.to_string(),
            anchor: Anchor::Middle,
            color: colors::INK,
            title: true,
            vertical: false,
        });
        f.shapes.push(Shape::Rect {
            x: plot_area.0,
            y: plot_area.1,
            w: plot_area.2,
            h: plot_area.3,
            color: colors::INK,
        });
        for t in ticks(fr.x0, fr.x1) {
            let x = fr.sx(t);
            f.line((x, H - MB), (x, H - MB + 5.0), colors::INK);
            f.text((x, H - MB + 18.0), fmt_tick(t), Anchor::Middle);
        }
        for t in ticks(fr.y0, fr.y1) {
            let y = fr.sy(t);
            f.line((ML - 5.0, y), (ML, y), colors::INK);
            f.text((ML - 8.0, y + 4.0), fmt_tick(t), Anchor::End);
        }
        f.text(((ML + W - MR) / 2.0, H - 12.0), xl, Anchor::Middle);
        f.shapes.push(Shape::Text {
            at: (16.0, (MT + H - MB) / 2.0),
            text: yl.to_string(),
            anchor: Anchor::Middle,
            color: colors::INK,
            title: false,
            vertical: true,
        });
        f
    }

    /// The figure as an SVG document.
    pub fn to_svg(&self) -> String {
        let (w, h) = (self.width, self.height);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"{}\"/>",
            self.background.hex()
        );
        let (ax, ay, aw, ah) = self.plot_area;
        let _ = writeln!(
            s,
            "<clipPath id=\"plot\"><rect x=\"{ax}\" y=\"{ay}\" width=\"{aw}\" height=\"{ah}\"/></clipPath>"
        );
        for shape in &self.shapes {
            match shape {
                Shape::Line {
                    from,
                    to,
                    color,
                    width,
                    clipped,
                } => {
                    let _ = writeln!(
                        s,
                        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"{width}\"{}/>",
                        from.0,
                        from.1,
                        to.0,
                        to.1,
                        color.hex(),
                        if *clipped { " clip-path=\"url(#plot)\"" } else { "" }
                    );
                }
                Shape::Polyline {
                    points,
                    color,
                    width,
                } => {
                    let pts: Vec<String> = points
                        .iter()
                        .map(|(x, y)| format!("{x:.1},{y:.1}"))
                        .collect();
                    let _ = writeln!(
                        s,
                        "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{width}\"/>",
                        pts.join(" "),
                        color.hex()
                    );
                }
                Shape::Dot { at, r, color } => {
                    let _ = writeln!(
                        s,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{r}\" fill=\"{}\"/>",
                        at.0,
                        at.1,
                        color.hex()
                    );
                }
                Shape::Rect { x, y, w, h, color } => {
                    let _ = writeln!(
                        s,
                        "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"{}\"/>",
                        color.hex()
                    );
                }
                Shape::Text {
                    at,
                    text,
                    anchor,
                    color,
                    title,
                    vertical,
                } => {
                    let anchor = match anchor {
                        Anchor::Start => "start",
                        Anchor::Middle => "middle",
                        Anchor::End => "end",
                    };
                    let size = if *title { " font-size=\"14\"" } else { "" };
                    let place = if *vertical {
                        format!(
                            "transform=\"translate({:.1},{:.1}) rotate(-90)\"",
                            at.0, at.1
                        )
                    } else {
                        format!("x=\"{:.1}\" y=\"{:.1}\"", at.0, at.1)
                    };
                    let _ = writeln!(
                        s,
                        "<text {place} text-anchor=\"{anchor}\" fill=\"{}\"{size}>{}</text>",
                        color.hex(),
                        esc(text)
                    );
                }
            }
        }
        s.push_str("</svg>\n");
        s
    }

    /// The figure as a PNG file (one figure unit per pixel).
    pub fn to_png(&self) -> Vec<u8> {
        raster::encode_png(&raster::render(self))
    }
}

/// Lays out a diagnostic plot: cloud (grey), points (blue dots, or a blue
/// line when `lines`), error bars (green) and the fitted line (red, with
/// its slope as legend). Returns the figure and its data mapping.
pub fn diagnostic_figure(p: &DiagnosticPlot, title: &str, lines: bool) -> (Figure, Frame) {
    let xs = p.x.iter().copied().chain(p.cloud.iter().map(|c| c.0));
    let ys =
        p.y.iter()
            .zip(p.y_err.iter().chain(std::iter::repeat(&0.0)))
            .flat_map(|(y, e)| [y - e, y + e])
            .chain(p.cloud.iter().map(|c| c.1));
    let fr = Frame::new(xs, ys);
    let mut f = Figure::axes(&fr, title, &p.x_label, &p.y_label);
    for (x, y) in &p.cloud {
        f.shapes.push(Shape::Dot {
            at: (fr.sx(*x), fr.sy(*y)),
            r: 1.5,
            color: colors::CLOUD,
        });
    }
    for (i, e) in p.y_err.iter().enumerate().take(p.x.len()) {
        let x = fr.sx(p.x[i]);
        f.line(
            (x, fr.sy(p.y[i] - e)),
            (x, fr.sy(p.y[i] + e)),
            colors::ERROR_BAR,
        );
    }
    if lines && p.x.len() > 1 {
        f.shapes.push(Shape::Polyline {
            points: p
                .x
                .iter()
                .zip(&p.y)
                .map(|(x, y)| (fr.sx(*x), fr.sy(*y)))
                .collect(),
            color: colors::POINTS,
            width: 1.0,
        });
    } else {
        for (x, y) in p.x.iter().zip(&p.y) {
            f.shapes.push(Shape::Dot {
                at: (fr.sx(*x), fr.sy(*y)),
                r: 2.5,
                color: colors::POINTS,
            });
        }
    }
    if let Some((a, b)) = p.fit {
        let (xa, xb) = (fr.x0, fr.x1);
        f.shapes.push(Shape::Line {
            from: (fr.sx(xa), fr.sy(a * xa + b)),
            to: (fr.sx(xb), fr.sy(a * xb + b)),
            color: colors::FIT,
            width: 1.5,
            clipped: true,
        });
        f.shapes.push(Shape::Text {
            at: (ML + 8.0, MT + 14.0),
            text: format!("slope {a:.3}"),
            anchor: Anchor::Start,
            color: colors::FIT,
            title: false,
            vertical: false,
        });
    }
    (f, fr)
}

/// SVG of a diagnostic plot (see [`diagnostic_figure`]).
pub fn diagnostic_svg(p: &DiagnosticPlot, title: &str, lines: bool) -> String {
    diagnostic_figure(p, title, lines).0.to_svg()
}

/// PNG of a diagnostic plot (see [`diagnostic_figure`]), 640 × 420 pixels.
pub fn diagnostic_png(p: &DiagnosticPlot, title: &str, lines: bool) -> Vec<u8> {
    diagnostic_figure(p, title, lines).0.to_png()
}

/// Writes the plots of a report into `dir` as `{stem}-{kind}.svg` and
/// `{stem}-{kind}.png` (same figure) and returns the paths, SVG then PNG
/// for each plot: series, R/S pox plot, periodogram, variance-time plot,
/// wavelet log-scale diagram, DFA fluctuation plot, V statistic and Local
/// Whittle H vs M (whichever are available).
pub fn write_plots(
    report: &SeriesReport,
    dir: impl AsRef<Path>,
    stem: &str,
) -> std::io::Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    let mut put = |kind: &str, (fig, _): (Figure, Frame)| -> std::io::Result<()> {
        let svg = dir.join(format!("{stem}-{kind}.svg"));
        std::fs::write(&svg, fig.to_svg())?;
        out.push(svg);
        let png = dir.join(format!("{stem}-{kind}.png"));
        std::fs::write(&png, fig.to_png())?;
        out.push(png);
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
    put("series", diagnostic_figure(&series, &report.name, true))?;
    let title = |m: &str, e: &crate::Estimate| format!("{}: {m}, H = {:.3}", report.name, e.h);
    for (method, kind, label) in [
        ("rs", "rs-pox", "R/S pox plot"),
        ("periodogram", "periodogram", "periodogram regression"),
        ("aggvar", "variance-time", "variance-time plot"),
        ("wavelet", "wavelet-logscale", "wavelet log-scale diagram"),
        ("dfa1", "dfa1", "DFA-1 fluctuation"),
    ] {
        if let Some(e) = report.get(method) {
            put(kind, diagnostic_figure(&e.plot, &title(label, e), false))?;
        }
    }
    if let Some(v) = &report.v_statistic {
        put(
            "v-statistic",
            diagnostic_figure(v, &format!("{}: Hurst V statistic", report.name), true),
        )?;
    }
    if let Some(v) = &report.h_vs_m {
        put(
            "lw-h-vs-m",
            diagnostic_figure(v, &format!("{}: Local Whittle H vs M", report.name), true),
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
