//! PNG backend of the plots: an antialiased rasteriser for the few shapes a
//! [`Figure`] holds, and a PNG encoder.
//!
//! Why no rasterisation or image crate: a plot needs only straight strokes,
//! filled dots, a frame and text. Coverage computed from the distance of each
//! pixel centre to the shape gives antialiased strokes and dots in a few
//! dozen lines, text comes from the built-in bitmap font in [`super::font`],
//! and a PNG is a zlib stream plus CRC-32s, both of which `flate2` (already a
//! dependency for gzip input) provides. A rasteriser crate such as tiny-skia
//! would add about ten crates to the build for the same pictures.
use super::font;
use super::{Anchor, Figure, Rgb, Shape};
use std::io::Write as _;

/// An RGB canvas with straight-alpha blending in 8-bit sRGB values (like
/// SVG renderers without colour management).
pub(crate) struct Canvas {
    pub width: usize,
    pub height: usize,
    /// Row-major RGB bytes.
    pub rgb: Vec<u8>,
    /// Per-pixel coverage scratch for strokes (all zero between shapes).
    mask: Vec<f32>,
}

/// Pixel-space rectangle [x0, x1) × [y0, y1) that drawing may touch.
#[derive(Clone, Copy)]
struct Clip {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Canvas {
    pub(crate) fn new(width: usize, height: usize, bg: Rgb) -> Self {
        let mut rgb = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            rgb.extend_from_slice(&[bg.0, bg.1, bg.2]);
        }
        Canvas {
            width,
            height,
            rgb,
            mask: vec![0.0; width * height],
        }
    }

    fn blend(&mut self, x: usize, y: usize, c: Rgb, alpha: f64) {
        if alpha <= 0.0 {
            return;
        }
        let a = alpha.min(1.0);
        let i = (y * self.width + x) * 3;
        for (k, v) in [c.0, c.1, c.2].into_iter().enumerate() {
            let old = self.rgb[i + k] as f64;
            self.rgb[i + k] = (old + (v as f64 - old) * a).round() as u8;
        }
    }

    fn full(&self) -> Clip {
        Clip {
            x0: 0.0,
            y0: 0.0,
            x1: self.width as f64,
            y1: self.height as f64,
        }
    }

    /// Calls `f(x, y, centre_x, centre_y)` for every pixel of `bbox` whose
    /// centre lies inside `clip`.
    fn each_pixel(
        &self,
        bbox: (f64, f64, f64, f64),
        clip: Clip,
        mut f: impl FnMut(usize, usize, f64, f64),
    ) {
        let lo_x = bbox.0.max(clip.x0).floor().max(0.0) as usize;
        let lo_y = bbox.1.max(clip.y0).floor().max(0.0) as usize;
        let hi_x = (bbox.2.min(clip.x1).ceil().max(0.0) as usize).min(self.width);
        let hi_y = (bbox.3.min(clip.y1).ceil().max(0.0) as usize).min(self.height);
        for y in lo_y..hi_y {
            let cy = y as f64 + 0.5;
            if cy < clip.y0 || cy >= clip.y1 {
                continue;
            }
            for x in lo_x..hi_x {
                let cx = x as f64 + 0.5;
                if cx >= clip.x0 && cx < clip.x1 {
                    f(x, y, cx, cy);
                }
            }
        }
    }

    /// A polyline of `width` pixels: a pixel's coverage is how far its centre
    /// lies inside the stroke (from its distance to the nearest segment),
    /// clamped to [0, 1]. Coverage is collected in a mask first (maximum over
    /// segments), so joints are not blended twice.
    fn stroke(&mut self, pts: &[(f64, f64)], width: f64, c: Rgb, clip: Clip) {
        let finite: Vec<(f64, f64)> = pts
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        if finite.len() == 1 {
            self.dot(finite[0], width / 2.0, c, clip);
            return;
        }
        let reach = width / 2.0 + 0.5;
        let mut mask = std::mem::take(&mut self.mask);
        let mut touched = Vec::new();
        for w in finite.windows(2) {
            let (a, b) = (w[0], w[1]);
            let bbox = (
                a.0.min(b.0) - reach,
                a.1.min(b.1) - reach,
                a.0.max(b.0) + reach,
                a.1.max(b.1) + reach,
            );
            self.each_pixel(bbox, clip, |x, y, px, py| {
                let cov = (reach - seg_dist(px, py, a, b)).clamp(0.0, 1.0) as f32;
                let i = y * self.width + x;
                if cov > 0.0 {
                    if mask[i] == 0.0 {
                        touched.push(i);
                    }
                    mask[i] = mask[i].max(cov);
                }
            });
        }
        for i in touched {
            let a = std::mem::take(&mut mask[i]);
            self.blend(i % self.width, i / self.width, c, a as f64);
        }
        self.mask = mask;
    }

    /// A filled disc of radius `r`.
    fn dot(&mut self, c0: (f64, f64), r: f64, c: Rgb, clip: Clip) {
        if !(c0.0.is_finite() && c0.1.is_finite()) {
            return;
        }
        let reach = r + 0.5;
        let bbox = (c0.0 - reach, c0.1 - reach, c0.0 + reach, c0.1 + reach);
        let mut cover = Vec::new();
        self.each_pixel(bbox, clip, |x, y, px, py| {
            cover.push((x, y, (reach - (px - c0.0).hypot(py - c0.1)).clamp(0.0, 1.0)));
        });
        for (x, y, a) in cover {
            self.blend(x, y, c, a);
        }
    }

    /// Text in the bitmap font with its baseline at `y`; `vertical` turns it
    /// 90° counter-clockwise about (x, y) (reading upwards), as SVG's
    /// `rotate(-90)`. Bold repeats each cell one pixel to the right.
    fn text(
        &mut self,
        s: &str,
        at: (f64, f64),
        anchor: Anchor,
        bold: bool,
        vertical: bool,
        c: Rgb,
    ) {
        let adv = font::ADVANCE + bold as usize;
        let width = (s.chars().count() * adv).saturating_sub(1) as f64;
        let start = match anchor {
            Anchor::Start => 0.0,
            Anchor::Middle => -(width / 2.0).round(),
            Anchor::End => -width,
        };
        let (ox, oy) = (at.0.round() as i64, at.1.round() as i64);
        for (i, ch) in s.chars().enumerate() {
            let gx = start as i64 + (i * adv) as i64;
            for (col, row) in font::cells(ch) {
                for b in 0..=bold as i64 {
                    // Offsets along and across the text direction.
                    let along = gx + col as i64 + b;
                    let across = row as i64 - font::ASCENT as i64;
                    let (x, y) = if vertical {
                        (ox + across, oy - along)
                    } else {
                        (ox + along, oy + across)
                    };
                    if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
                        self.blend(x as usize, y as usize, c, 1.0);
                    }
                }
            }
        }
    }
}

/// Distance from (px, py) to the segment a–b.
fn seg_dist(px: f64, py: f64, a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (px - (a.0 + t * dx)).hypot(py - (a.1 + t * dy))
}

/// Draws a figure; one figure unit is one pixel.
pub(crate) fn render(fig: &Figure) -> Canvas {
    let mut cv = Canvas::new(fig.width as usize, fig.height as usize, fig.background);
    let area = Clip {
        x0: fig.plot_area.0,
        y0: fig.plot_area.1,
        x1: fig.plot_area.0 + fig.plot_area.2,
        y1: fig.plot_area.1 + fig.plot_area.3,
    };
    let full = cv.full();
    for s in &fig.shapes {
        match s {
            Shape::Line {
                from,
                to,
                color,
                width,
                clipped,
            } => cv.stroke(
                &[*from, *to],
                *width,
                *color,
                if *clipped { area } else { full },
            ),
            Shape::Polyline {
                points,
                color,
                width,
            } => cv.stroke(points, *width, *color, full),
            Shape::Dot { at, r, color } => cv.dot(*at, *r, *color, full),
            Shape::Rect { x, y, w, h, color } => {
                let pts = [(*x, *y), (x + w, *y), (x + w, y + h), (*x, y + h), (*x, *y)];
                cv.stroke(&pts, 1.0, *color, full)
            }
            Shape::Text {
                at,
                text,
                anchor,
                color,
                title,
                vertical,
            } => cv.text(text, *at, *anchor, *title, *vertical, *color),
        }
    }
    cv
}

/// Encodes an RGB canvas as a PNG (8-bit truecolour, no interlace, filter
/// type 0 on every row, one zlib-compressed IDAT chunk).
pub(crate) fn encode_png(cv: &Canvas) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(cv.width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(cv.height as u32).to_be_bytes());
    // Bit depth 8, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    for row in cv.rgb.chunks(cv.width * 3) {
        // Writing into a Vec cannot fail.
        let _ = z.write_all(&[0]);
        let _ = z.write_all(row);
    }
    let idat = z.finish().unwrap_or_default();
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(cv: &Canvas, x: usize, y: usize) -> [u8; 3] {
        let i = (y * cv.width + x) * 3;
        [cv.rgb[i], cv.rgb[i + 1], cv.rgb[i + 2]]
    }

    #[test]
    fn strokes_cover_pixels_by_distance_and_joints_once() {
        let mut cv = Canvas::new(30, 30, Rgb(255, 255, 255));
        let full = cv.full();
        // A 1-unit line along y = 10 covers half of rows 9 and 10.
        cv.stroke(&[(2.0, 10.0), (20.0, 10.0)], 1.0, Rgb(0, 0, 0), full);
        assert_eq!(at(&cv, 10, 9), [128; 3]);
        assert_eq!(at(&cv, 10, 10), [128; 3]);
        assert_eq!(at(&cv, 10, 8), [255; 3]);
        assert_eq!(at(&cv, 10, 11), [255; 3]);
        // A joint is blended once: pixel (26, 20) lies 1 unit from both
        // segments (half covered by each); blending twice would give
        // [214, 64, 64].
        let mut cv = Canvas::new(30, 30, Rgb(255, 255, 255));
        cv.stroke(
            &[(5.5, 20.5), (25.5, 20.5), (25.5, 5.5)],
            2.0,
            Rgb(200, 0, 0),
            full,
        );
        assert_eq!(at(&cv, 25, 20), [200, 0, 0]);
        assert_eq!(at(&cv, 26, 20), [228, 128, 128]);
        // Clipping keeps pixel centres outside the clip untouched.
        let mut cv = Canvas::new(30, 30, Rgb(255, 255, 255));
        let clip = Clip {
            x0: 0.0,
            y0: 0.0,
            x1: 15.0,
            y1: 30.0,
        };
        cv.stroke(&[(2.0, 10.5), (28.0, 10.5)], 1.0, Rgb(0, 0, 0), clip);
        assert_eq!(at(&cv, 14, 10), [0; 3]);
        assert_eq!(at(&cv, 15, 10), [255; 3]);
    }

    #[test]
    fn text_sits_on_its_baseline_and_turns_for_vertical_labels() {
        // '1' has cells (2, 0) (top of the stem) and (1..=3, 6) (its foot).
        let mut cv = Canvas::new(40, 40, Rgb(255, 255, 255));
        cv.text("1", (10.0, 20.0), Anchor::Start, false, false, Rgb(0, 0, 0));
        assert_eq!(at(&cv, 12, 13), [0; 3]);
        assert_eq!(at(&cv, 11, 19), [0; 3]);
        assert_eq!(at(&cv, 12, 20), [255; 3]);
        // Rotated -90 degrees about (10, 20): columns go up, rows go right.
        let mut cv = Canvas::new(40, 40, Rgb(255, 255, 255));
        cv.text("1", (10.0, 20.0), Anchor::Start, false, true, Rgb(0, 0, 0));
        assert_eq!(at(&cv, 3, 18), [0; 3]);
        assert_eq!(at(&cv, 9, 19), [0; 3]);
        assert_eq!(at(&cv, 12, 18), [255; 3]);
    }
}
