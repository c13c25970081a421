//! The PNG plots: decoded with an independent decoder (the `png` crate) and
//! checked against the geometry the SVG of the same figure states.
use selfsim::plot::{colors, diagnostic_figure, Rgb};
use selfsim::DiagnosticPlot;

struct Image {
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Image {
    fn decode(bytes: &[u8]) -> Image {
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "PNG signature");
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = dec.read_info().expect("valid PNG header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader
            .next_frame(&mut buf)
            .expect("valid PNG data (CRCs, zlib)");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        Image {
            width: info.width as usize,
            height: info.height as usize,
            rgb: buf,
        }
    }

    fn at(&self, x: usize, y: usize) -> Rgb {
        let i = (y * self.width + x) * 3;
        Rgb(self.rgb[i], self.rgb[i + 1], self.rgb[i + 2])
    }
}

/// The numbers in attribute `name="…"` of an SVG element.
fn attr(el: &str, name: &str) -> Option<f64> {
    let key = format!(" {name}=\"");
    let start = el.find(&key)? + key.len();
    let end = start + el[start..].find('"')?;
    el[start..end].parse().ok()
}

fn attr_str<'a>(el: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = el.find(&key)? + key.len();
    let end = start + el[start..].find('"')?;
    Some(&el[start..end])
}

/// The SVG's elements, one per line as the writer puts them.
fn elements(svg: &str) -> Vec<&str> {
    svg.lines().filter(|l| l.starts_with('<')).collect()
}

/// A linear map pixel = a * value + b, fitted through tick marks.
#[derive(Debug, Clone, Copy)]
struct Axis {
    a: f64,
    b: f64,
}

impl Axis {
    fn px(&self, v: f64) -> f64 {
        self.a * v + self.b
    }
    fn value(&self, px: f64) -> f64 {
        (px - self.b) / self.a
    }
}

/// The axis mappings as the SVG states them: each 5-unit tick mark is
/// followed by its number; x ticks are vertical marks, y ticks horizontal.
/// Checks that all ticks of an axis lie on one straight map.
fn axes_from_svg(svg: &str) -> (Axis, Axis) {
    let els = elements(svg);
    let (mut xt, mut yt) = (Vec::new(), Vec::new());
    for w in els.windows(2) {
        let (line, text) = (w[0], w[1]);
        if !(line.starts_with("<line") && text.starts_with("<text")) {
            continue;
        }
        let (x1, y1, x2, y2) = (
            attr(line, "x1").unwrap(),
            attr(line, "y1").unwrap(),
            attr(line, "x2").unwrap(),
            attr(line, "y2").unwrap(),
        );
        let label = &text[text.find('>').unwrap() + 1..text.find("</text>").unwrap()];
        let Ok(v) = label.parse::<f64>() else {
            continue;
        };
        if x1 == x2 && (y2 - y1).abs() == 5.0 {
            xt.push((v, x1));
        } else if y1 == y2 && (x2 - x1).abs() == 5.0 {
            yt.push((v, y1));
        }
    }
    let fit = |t: &[(f64, f64)]| {
        assert!(t.len() >= 3, "ticks {t:?}");
        let (v0, p0) = t[0];
        let (v1, p1) = t[t.len() - 1];
        let a = (p1 - p0) / (v1 - v0);
        let ax = Axis { a, b: p0 - a * v0 };
        for (v, p) in t {
            // Coordinates are written with one decimal.
            assert!(
                (ax.px(*v) - p).abs() <= 0.1,
                "tick {v} at {p}, map says {}",
                ax.px(*v)
            );
        }
        ax
    };
    (fit(&xt), fit(&yt))
}

fn is_fit_colour(c: Rgb) -> bool {
    // FIT is (221, 34, 34); at >= 75% coverage over white the channels
    // stay within these bounds.
    c.0 >= 215 && c.1 <= 100 && c.2 <= 100
}

/// y = 2x + 1 at x = 0, 1, ..., 4 with the fit (2, 1): the fitted line's
/// pixels are where the tick marks say, and everything else in the plot area
/// away from the line, the points and the legend is background.
#[test]
fn png_fit_line_lies_where_the_axis_mapping_puts_it() {
    let x: Vec<f64> = (0..5).map(f64::from).collect();
    let p = DiagnosticPlot {
        y: x.iter().map(|x| 2.0 * x + 1.0).collect(),
        x,
        fit: Some((2.0, 1.0)),
        x_label: "x".into(),
        y_label: "y".into(),
        ..Default::default()
    };
    let (fig, _) = diagnostic_figure(&p, "known slope 2", false);
    let svg = fig.to_svg();
    let img = Image::decode(&fig.to_png());
    assert_eq!((img.width, img.height), (640, 420));
    assert_eq!(
        attr(svg.lines().next().unwrap(), "width"),
        Some(img.width as f64)
    );
    let (ax, ay) = axes_from_svg(&svg);
    // The plot area (frame) from the SVG.
    let frame = elements(&svg)
        .into_iter()
        .find(|e| e.starts_with("<rect x="))
        .unwrap();
    let (fx0, fy0) = (attr(frame, "x").unwrap(), attr(frame, "y").unwrap());
    let (fx1, fy1) = (
        fx0 + attr(frame, "width").unwrap(),
        fy0 + attr(frame, "height").unwrap(),
    );
    // The line in pixel space: py = k * px + m.
    let line_y = |px: f64| ay.px(2.0 * ax.value(px) + 1.0);
    let k = line_y(1.0) - line_y(0.0);
    let dist_to_line = |px: f64, py: f64| (py - line_y(px)).abs() / (1.0 + k * k).sqrt();
    let points: Vec<(f64, f64)> =
        p.x.iter()
            .zip(&p.y)
            .map(|(x, y)| (ax.px(*x), ay.px(*y)))
            .collect();
    let near_point = |px: f64, py: f64| {
        points
            .iter()
            .any(|(x, y)| (px - x).hypot(py - y) <= 2.5 + 2.0)
    };
    let mut checked = 0;
    for col in (fx0.ceil() as usize + 2)..(fx1.floor() as usize - 2) {
        let cx = col as f64 + 0.5;
        let py = line_y(cx);
        if py <= fy0 + 2.0 || py >= fy1 - 2.0 || near_point(cx, py) {
            continue;
        }
        let row = py.floor() as usize;
        assert!(
            is_fit_colour(img.at(col, row)),
            "column {col}: line predicted at y {py:.2}, pixel {:?}",
            img.at(col, row)
        );
        checked += 1;
    }
    assert!(checked > 300, "only {checked} columns checked");
    // Background: the plot area inset by 3 pixels (frame stroke), away from
    // the line (> 2.5 px: half width 0.75 plus antialiasing), the points and
    // the "slope" legend in the top left corner.
    let mut background = 0;
    for row in (fy0 as usize + 3)..(fy1 as usize - 3) {
        for col in (fx0 as usize + 3)..(fx1 as usize - 3) {
            let (cx, cy) = (col as f64 + 0.5, row as f64 + 0.5);
            let legend = cx < fx0 + 100.0 && cy < fy0 + 22.0;
            if legend || dist_to_line(cx, cy) <= 2.5 || near_point(cx, cy) {
                continue;
            }
            assert_eq!(img.at(col, row), colors::BACKGROUND, "pixel ({col}, {row})");
            background += 1;
        }
    }
    assert!(background > 100_000, "{background}");
    // The legend, tick numbers and title are drawn: the legend in the fit
    // colour, the rest in ink, near where the SVG anchors them.
    let inked = |x0: f64, y0: f64, x1: f64, y1: f64, c: Rgb| {
        (y0.max(0.0) as usize..(y1 as usize).min(img.height))
            .flat_map(|y| (x0.max(0.0) as usize..(x1 as usize).min(img.width)).map(move |x| (x, y)))
            .any(|(x, y)| img.at(x, y) == c)
    };
    for el in elements(&svg)
        .into_iter()
        .filter(|e| e.starts_with("<text x="))
    {
        let (x, y) = (attr(el, "x").unwrap(), attr(el, "y").unwrap());
        let colour = if attr_str(el, "fill") == Some("#dd2222") {
            colors::FIT
        } else {
            colors::INK
        };
        let span = match attr_str(el, "text-anchor") {
            Some("start") => (x, x + 12.0),
            Some("end") => (x - 12.0, x),
            _ => (x - 6.0, x + 6.0),
        };
        assert!(
            inked(span.0, y - 8.0, span.1, y + 3.0, colour),
            "no text drawn for {el}"
        );
    }
}

/// Points, error bars, a series line and the fitted line of one figure:
/// every SVG circle centre is a point-coloured PNG pixel, every polyline
/// vertex is a blue-tinted pixel, and the clipped fit line's pixels are red.
#[test]
fn svg_and_png_agree_on_geometry() {
    let x: Vec<f64> = (0..40).map(|i| 1.0 + i as f64 * 0.05).collect();
    // Points 0.6 off the line y = -0.7x + 3 (about 20 px), alternately.
    let y: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, x)| -0.7 * x + 3.0 + if i % 2 == 0 { 0.6 } else { -0.6 })
        .collect();
    let dots = DiagnosticPlot {
        x: x.clone(),
        y: y.clone(),
        fit: Some((-0.7, 3.0)),
        x_label: "log10 m".into(),
        y_label: "log10 v".into(),
        y_err: vec![0.1; 40],
        ..Default::default()
    };
    let (fig, _) = diagnostic_figure(&dots, "dots", false);
    let svg = fig.to_svg();
    let img = Image::decode(&fig.to_png());
    let mut circles = 0;
    for el in elements(&svg)
        .into_iter()
        .filter(|e| e.starts_with("<circle"))
    {
        let (cx, cy) = (attr(el, "cx").unwrap(), attr(el, "cy").unwrap());
        assert_eq!(attr_str(el, "fill"), Some("#1f5fbf"));
        assert_eq!(
            img.at(cx as usize, cy as usize),
            colors::POINTS,
            "circle at ({cx}, {cy})"
        );
        circles += 1;
    }
    assert_eq!(circles, 40);
    let fit = elements(&svg)
        .into_iter()
        .find(|e| e.contains("clip-path"))
        .expect("fit line");
    assert_eq!(attr_str(fit, "stroke"), Some("#dd2222"));
    let (x1, y1, x2, y2) = (
        attr(fit, "x1").unwrap(),
        attr(fit, "y1").unwrap(),
        attr(fit, "x2").unwrap(),
        attr(fit, "y2").unwrap(),
    );
    let mut red = 0;
    for col in (x1.ceil() as usize + 2)..(x2.floor() as usize - 2) {
        let cx = col as f64 + 0.5;
        let py = y1 + (y2 - y1) * (cx - x1) / (x2 - x1);
        assert!(
            is_fit_colour(img.at(col, py.floor() as usize)),
            "fit at column {col}, y {py:.2}: {:?}",
            img.at(col, py.floor() as usize)
        );
        red += 1;
    }
    assert!(red > 100, "{red}");

    let series = DiagnosticPlot {
        x: (0..300).map(f64::from).collect(),
        y: (0..300).map(|i| ((i * 37) % 101) as f64).collect(),
        x_label: "bin".into(),
        y_label: "bytes".into(),
        ..Default::default()
    };
    let (fig, _) = diagnostic_figure(&series, "series", true);
    let svg = fig.to_svg();
    let img = Image::decode(&fig.to_png());
    let poly = elements(&svg)
        .into_iter()
        .find(|e| e.starts_with("<polyline"))
        .expect("polyline");
    let pts: Vec<(f64, f64)> = attr_str(poly, "points")
        .unwrap()
        .split(' ')
        .map(|p| {
            let (a, b) = p.split_once(',').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    assert_eq!(pts.len(), 300);
    for (x, y) in pts {
        let c = img.at(x as usize, y as usize);
        // A 1-pixel line covers at least 1 - 0.71 - 0.07 (rounding in the
        // SVG) = 22% of the pixel holding a vertex: blue minus red >= 35.
        assert!(
            c != colors::BACKGROUND && c.2 as i32 - c.0 as i32 >= 30,
            "vertex ({x}, {y}): {c:?}"
        );
    }
}
