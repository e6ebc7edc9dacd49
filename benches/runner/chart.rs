//! The scaling chart as a hand-written SVG: throughput against concurrency
//! on log–log axes, where linear growth is a straight line of slope 1 (drawn
//! dashed from the concurrency-1 point) and the knee is where the measured
//! points leave it. Each point is labelled with its throughput, the share of
//! all cores busy with runner + sandbox (and the runner alone), and the busy
//! share of the whole machine, other users included.

use std::fmt::Write;

/// One measured level.
pub struct Point {
    pub concurrency: f64,
    pub throughput: f64,
    /// (runner CPU + sandbox CPU) / (wall × cores).
    pub cpu_busy: f64,
    /// Runner CPU / (wall × cores).
    pub runner_busy: f64,
    /// Busy share of the whole machine, other users included.
    pub machine_busy: f64,
}

const W: f64 = 820.0;
const H: f64 = 540.0;
const L: f64 = 80.0;
const R: f64 = 30.0;
const T: f64 = 50.0;
const B: f64 = 150.0;

fn decades(lo: f64, hi: f64) -> (f64, f64) {
    (lo.log10().floor(), hi.log10().ceil())
}

/// The SVG text for `points` (at least one), titled `title`.
pub fn svg(title: &str, points: &[Point]) -> String {
    let cmax = points.iter().map(|p| p.concurrency).fold(1.0, f64::max);
    let base = points.first().map_or(1.0, |p| p.throughput / p.concurrency);
    let tmax = points
        .iter()
        .map(|p| p.throughput)
        .fold(base * cmax, f64::max);
    let tmin = points
        .iter()
        .map(|p| p.throughput)
        .fold(base, f64::min)
        .max(1e-3);
    let (x0, x1) = (0.0f64, (cmax.log2()).ceil().max(1.0));
    let (y0, y1) = decades(tmin, tmax);
    let px = |c: f64| L + (c.log2() - x0) / (x1 - x0) * (W - L - R);
    let py = |t: f64| H - B - (t.log10() - y0) / (y1 - y0) * (H - T - B);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="15" font-weight="bold">{title}</text>"#,
        W / 2.0
    );
    // Grid and ticks: powers of two on x, 1-2-5 per decade on y.
    let mut k = x0 as i32;
    while k as f64 <= x1 {
        let c = 2f64.powi(k);
        let x = px(c);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{T}" x2="{x:.1}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{c}</text>"##,
            H - B,
            H - B + 18.0
        );
        k += 1;
    }
    let mut d = y0 as i32;
    while d as f64 <= y1 {
        for m in [1.0, 2.0, 5.0] {
            let t = m * 10f64.powi(d);
            if t.log10() > y1 + 1e-9 {
                break;
            }
            let y = py(t);
            let _ = writeln!(
                s,
                r##"<line x1="{L}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - R,
                L - 6.0,
                y + 4.0,
                trim(t)
            );
        }
        d += 1;
    }
    let _ = writeln!(
        s,
        r##"<line x1="{L}" y1="{}" x2="{}" y2="{}" stroke="#333"/><line x1="{L}" y1="{T}" x2="{L}" y2="{}" stroke="#333"/>"##,
        H - B,
        W - R,
        H - B,
        H - B
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">concurrency (personas in flight), log scale</text>"#,
        (L + W - R) / 2.0,
        H - B + 40.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(22 {}) rotate(-90)" text-anchor="middle">persona-ticks per second, log scale</text>"#,
        (T + H - B) / 2.0
    );
    // Ideal: linear from the first point.
    let _ = writeln!(
        s,
        r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="6 4"/>"##,
        px(1.0),
        py(base),
        px(cmax),
        py(base * cmax)
    );
    let path: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", px(p.concurrency), py(p.throughput)))
        .collect();
    let _ = writeln!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#1f6fb4" stroke-width="2"/>"##,
        path.join(" ")
    );
    // Each point's numbers in a column under the axis, at its x.
    for (i, p) in points.iter().enumerate() {
        let (x, y) = (px(p.concurrency), py(p.throughput));
        let anchor = if i == 0 {
            "start"
        } else if i + 1 == points.len() {
            "end"
        } else {
            "middle"
        };
        // The value above-left of its point; the first one right of it, off the axis.
        let (vx, va) = if i == 0 {
            (x + 8.0, "start")
        } else {
            (x - 6.0, "end")
        };
        let _ = writeln!(
            s,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="#1f6fb4"/><text x="{vx:.1}" y="{:.1}" text-anchor="{va}" fill="#1f6fb4">{:.1}</text>"##,
            y - 8.0,
            p.throughput
        );
        for (k, line) in [
            format!("{:.1} /s", p.throughput),
            format!(
                "CPU {:.0} % ({:.0} %)",
                p.cpu_busy * 100.0,
                p.runner_busy * 100.0
            ),
            format!("machine {:.0} %", p.machine_busy * 100.0),
        ]
        .iter()
        .enumerate()
        {
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="{anchor}">{line}</text>"#,
                H - B + 66.0 + 15.0 * k as f64
            );
        }
    }
    let _ = writeln!(
        s,
        r##"<text x="{L}" y="{:.1}" fill="#555">Under each point: throughput; CPU: share of all cores busy with runner + sandbox (runner alone); machine: all users.</text>"##,
        H - 12.0
    );
    let _ = writeln!(
        s,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="6 4"/><text x="{}" y="{}">linear from concurrency 1</text>"##,
        L + 20.0,
        T + 14.0,
        L + 60.0,
        T + 14.0,
        L + 66.0,
        T + 18.0
    );
    let _ = writeln!(
        s,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#1f6fb4" stroke-width="2"/><text x="{}" y="{}">measured</text>"##,
        L + 20.0,
        T + 34.0,
        L + 60.0,
        T + 34.0,
        L + 66.0,
        T + 38.0
    );
    s.push_str("</svg>\n");
    s
}

fn trim(t: f64) -> String {
    if t >= 1.0 {
        format!("{t:.0}")
    } else {
        format!("{t}")
    }
}
