//! Inline SVG for the status pages: line paths, sparklines and small
//! charts with axes. Pure string building; every label goes through
//! [`super::esc`].

use std::fmt::Write as _;

use super::esc;

/// Where data coordinates land: `x` and `y` ranges mapped onto a `w`×`h`
/// box (y grows upwards in the data, downwards in SVG).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub w: f64,
    pub h: f64,
}

impl Frame {
    /// The frame that fits every finite point, with `y` starting at zero
    /// when all values are positive and a flat or single-point range
    /// widened so nothing divides by zero.
    pub fn fit(series: &[&[(f64, f64)]], w: f64, h: f64) -> Self {
        let finite = || {
            series
                .iter()
                .flat_map(|s| s.iter())
                .filter(|(x, y)| x.is_finite() && y.is_finite())
        };
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, 0.0_f64, f64::MIN);
        for &(x, y) in finite() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            (x0, x1, y1) = (0.0, 1.0, 1.0);
        }
        if x1 <= x0 {
            x0 -= 1.0;
            x1 += 1.0;
        }
        if y1 <= y0 {
            y1 = y0 + 1.0;
        }
        Self {
            x: (x0, x1),
            y: (y0, y1),
            w,
            h,
        }
    }

    fn px(&self, x: f64) -> f64 {
        (x - self.x.0) / (self.x.1 - self.x.0) * self.w
    }

    fn py(&self, y: f64) -> f64 {
        self.h - (y - self.y.0) / (self.y.1 - self.y.0) * self.h
    }
}

/// The `d` of a path through `points`: a gap (NaN or infinite value) starts
/// a new segment, a lone point becomes a short tick so it stays visible.
/// With `steps`, the line holds each value until the next point.
pub fn path(points: &[(f64, f64)], f: Frame, steps: bool) -> String {
    let mut d = String::new();
    let mut segment: Vec<(f64, f64)> = Vec::new();
    let flush = |seg: &mut Vec<(f64, f64)>, d: &mut String| {
        match seg.as_slice() {
            [] => {}
            [(x, y)] => {
                let _ = write!(d, "M{:.1} {:.1}h2", x - 1.0, y);
            }
            [(x, y), rest @ ..] => {
                let _ = write!(d, "M{x:.1} {y:.1}");
                let mut prev_y = *y;
                for (x, y) in rest {
                    if steps {
                        let _ = write!(d, "H{x:.1}");
                        if (y - prev_y).abs() > f64::EPSILON {
                            let _ = write!(d, "V{y:.1}");
                        }
                    } else {
                        let _ = write!(d, "L{x:.1} {y:.1}");
                    }
                    prev_y = *y;
                }
            }
        }
        seg.clear();
    };
    for &(x, y) in points {
        if x.is_finite() && y.is_finite() {
            segment.push((f.px(x), f.py(y)));
        } else {
            flush(&mut segment, &mut d);
        }
    }
    flush(&mut segment, &mut d);
    d
}

/// A 120×24 sparkline of one series, or an empty box when there is no data.
pub fn sparkline(points: &[(f64, f64)]) -> String {
    let f = Frame::fit(&[points], 120.0, 24.0);
    format!(
        "<svg class=\"spark\" width=\"120\" height=\"24\" viewBox=\"-1 -1 122 26\" role=\"img\"><path fill=\"none\" stroke=\"#0969da\" stroke-width=\"1.5\" d=\"{}\"/></svg>",
        path(points, f, false)
    )
}

/// One line of a [`chart`].
pub struct Line<'a> {
    pub label: &'a str,
    pub points: &'a [(f64, f64)],
    pub steps: bool,
}

const COLORS: [&str; 6] = [
    "#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#57606a",
];

/// A 640×200 chart with a time axis (Unix seconds, labelled at both ends
/// in UTC), a value axis from the frame's bottom to its top, a legend, and
/// dashed horizontal `rules` (a threshold, a budget's zero).
pub fn chart(
    id: &str,
    title: &str,
    lines: &[Line<'_>],
    rules: &[(f64, &str)],
    unit: &str,
) -> String {
    let (w, h, left, top) = (640.0, 200.0, 60.0, 10.0);
    let all: Vec<&[(f64, f64)]> = lines.iter().map(|l| l.points).collect();
    let mut f = Frame::fit(&all, w, h);
    for (y, _) in rules {
        f.y = (f.y.0.min(*y), f.y.1.max(*y));
    }
    let mut s = String::new();
    let _ = write!(
        s,
        "<figure id=\"{id}\" class=\"chart\"><figcaption>{}</figcaption>\
<svg width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"{t}\">\
<g transform=\"translate({left},{top})\">\
<rect width=\"{w}\" height=\"{h}\" fill=\"#f6f8fa\" stroke=\"#d0d7de\"/>",
        esc(title),
        w + left + 10.0,
        h + top + 40.0,
        t = esc(title),
    );
    for (v, y) in [(f.y.1, 0.0), (f.y.0, h)] {
        let _ = write!(
            s,
            "<text x=\"-4\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\">{}{}</text>",
            y + 4.0,
            esc(&number(v)),
            esc(unit)
        );
    }
    for (t, x, anchor) in [(f.x.0, 0.0, "start"), (f.x.1, w, "end")] {
        let when = chrono::DateTime::from_timestamp(t as i64, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        let _ = write!(
            s,
            "<text x=\"{x}\" y=\"{:.1}\" text-anchor=\"{anchor}\" font-size=\"11\">{}</text>",
            h + 14.0,
            esc(&when)
        );
    }
    for (y, label) in rules {
        let py = f.py(*y);
        let _ = write!(
            s,
            "<line class=\"rule\" x1=\"0\" x2=\"{w}\" y1=\"{py:.1}\" y2=\"{py:.1}\" stroke=\"#cf222e\" stroke-dasharray=\"4 3\"/>\
<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"10\" fill=\"#cf222e\">{}</text>",
            w - 4.0,
            py - 3.0,
            esc(label)
        );
    }
    let mut legend_x = 0.0;
    for (i, l) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let _ = write!(
            s,
            "<path class=\"series\" data-series=\"{}\" {} fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" d=\"{}\"/>\
<text x=\"{legend_x}\" y=\"{:.1}\" font-size=\"11\" fill=\"{color}\">■ {}</text>",
            esc(l.label),
            // Where the line ends, for readers of the DOM.
            l.points
                .iter()
                .rev()
                .find(|(_, y)| y.is_finite())
                .map_or(String::new(), |(t, y)| format!(
                    "data-last=\"{y:.9}\" data-last-at=\"{t:.3}\""
                )),
            path(l.points, f, l.steps),
            h + 30.0,
            esc(l.label)
        );
        legend_x += 12.0 + 7.0 * l.label.chars().count() as f64;
    }
    s.push_str("</g></svg></figure>\n");
    s
}

/// Axis numbers: short, without trailing noise.
fn number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Frame = Frame {
        x: (0.0, 10.0),
        y: (0.0, 1.0),
        w: 100.0,
        h: 50.0,
    };

    #[test]
    fn a_line_maps_data_onto_the_box_with_y_upwards() {
        assert_eq!(
            path(&[(0.0, 0.0), (5.0, 1.0), (10.0, 0.5)], F, false),
            "M0.0 50.0L50.0 0.0L100.0 25.0"
        );
    }

    #[test]
    fn gaps_split_the_path_and_lone_points_become_ticks() {
        assert_eq!(
            path(
                &[(0.0, 0.0), (1.0, f64::NAN), (5.0, 1.0), (10.0, 1.0)],
                F,
                false
            ),
            "M-1.0 50.0h2M50.0 0.0L100.0 0.0"
        );
        assert_eq!(path(&[], F, false), "");
    }

    #[test]
    fn steps_hold_each_value_until_the_next_point() {
        assert_eq!(
            path(&[(0.0, 0.0), (5.0, 0.0), (10.0, 1.0)], F, true),
            "M0.0 50.0H50.0H100.0V0.0"
        );
    }

    #[test]
    fn fit_widens_flat_and_single_point_ranges() {
        let f = Frame::fit(&[&[(5.0, 2.0)]], 100.0, 50.0);
        assert_eq!(f.x, (4.0, 6.0));
        assert_eq!(f.y, (0.0, 2.0));
        let empty = Frame::fit(&[&[]], 100.0, 50.0);
        assert_eq!((empty.x, empty.y), ((0.0, 1.0), (0.0, 1.0)));
        let negative = Frame::fit(&[&[(0.0, -1.0), (1.0, 0.5)]], 100.0, 50.0);
        assert_eq!(negative.y, (-1.0, 0.5));
    }

    #[test]
    fn charts_escape_labels_and_draw_rules() {
        let pts = [(0.0, 1.0), (60.0, 2.0)];
        let c = chart(
            "c",
            "a <b>",
            &[Line {
                label: "g&\"1",
                points: &pts,
                steps: false,
            }],
            &[(14.4, "tier 1")],
            "×",
        );
        assert!(c.contains("<figcaption>a &lt;b&gt;</figcaption>"), "{c}");
        assert!(
            c.contains("data-series=\"g&amp;&quot;1\" data-last=\"2.000000000\""),
            "{c}"
        );
        assert!(c.contains("class=\"rule\""), "{c}");
        assert!(c.contains("14.40×"), "the frame reaches the rule: {c}");
        assert!(!c.contains("d=\"\""), "{c}");
    }

    #[test]
    fn sparklines_without_data_have_an_empty_path() {
        assert!(sparkline(&[]).contains("d=\"\""));
        assert!(sparkline(&[(0.0, 1.0), (1.0, 0.9)]).contains("d=\"M0.0 0.0L120.0 2.4\""));
    }
}
