//! The report as one self-contained HTML file: no network, no scripts, no
//! external fonts; the charts are inline SVG drawn by `plotters` (SVG
//! backend) and the page is a `maud` template, which escapes every text.
//!
//! Each module gets exactly one chart (`<figure class="chart"
//! data-module="…">`): its weekly mean rating with the count per week.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use plotters::prelude::*;

use super::model::{ModuleReport, Report};
use super::trends::Rule;

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem;color:#222}\
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}\
td:first-child,th:first-child{text-align:left}.flag{background:#fff3f0;border-left:4px solid #c0392b;padding:.5rem 1rem;margin:.5rem 0}\
.charts{display:flex;flex-wrap:wrap;gap:1rem}figure.chart{margin:0;border:1px solid #ddd;padding:.25rem}\
figcaption{font-size:.9rem;text-align:center}.muted{color:#777}";

fn opt(v: Option<f64>, d: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.d$}"))
}

fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// One module's weekly mean ratings as an SVG line chart (1..5).
fn chart(m: &ModuleReport) -> String {
    let mut svg = String::new();
    if let Err(e) = draw(m, &mut svg) {
        tracing::warn!(module = %m.module, error = %e, "cannot draw the chart");
    }
    svg
}

fn draw(m: &ModuleReport, svg: &mut String) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::with_string(svg, (340, 200)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let weeks = m.weekly.len().max(1) as f64;
    let mut c = ChartBuilder::on(&root)
        .caption(
            format!("{}: weekly mean rating", m.module),
            ("sans-serif", 14),
        )
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(28)
        .build_cartesian_2d(0.5f64..weeks + 0.5, 1f64..5f64)
        .map_err(|e| err(&e))?;
    c.configure_mesh()
        .x_labels(m.weekly.len().max(1))
        .y_labels(5)
        .x_label_formatter(&|x| format!("w{}", x.round() as i64))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .disable_x_mesh()
        .draw()
        .map_err(|e| err(&e))?;
    let points: Vec<(f64, f64)> = m
        .weekly
        .iter()
        .enumerate()
        .filter_map(|(i, w)| w.mean.map(|v| ((i + 1) as f64, v)))
        .collect();
    c.draw_series(LineSeries::new(points.iter().copied(), &BLUE))
        .map_err(|e| err(&e))?;
    c.draw_series(points.iter().map(|p| Circle::new(*p, 3, BLUE.filled())))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

fn trends(r: &Report) -> Markup {
    html! {
        h2 { "Trends" }
        @if r.trends.modules.is_empty() && r.trends.tools.is_empty() {
            p.muted { "No module is rated worse and no tool fails more, by the trend rules." }
        }
        @for f in &r.trends.modules {
            div.flag data-flag="module" data-subject=(f.subject) {
                strong { (f.subject) } " is rated worse: "
                @for (i, rule) in f.rules.iter().enumerate() {
                    @if i > 0 { "; " }
                    @match rule {
                        Rule::ThreeWeeksInARow => "fell in each of the last 3 weeks",
                        Rule::AgainstBaseline => "last week against its baseline",
                    }
                }
                ". Last week " (format!("{:.2}", f.last)) ", baseline " (opt(f.baseline, 2))
                " (" (format!("{:+.2}", f.change)) ")."
                ul {
                    @for p in &f.weeks {
                        li { "week " (p.week + 1) ": " (opt(p.value, 2)) " (" (p.count) " ratings)" }
                    }
                    @for n in &f.example_notes {
                        li { (n.rating) "★ " (n.email) ": “" (n.notes) "”" }
                    }
                }
            }
        }
        @for f in &r.trends.tools {
            div.flag data-flag="tool" data-subject=(f.subject) {
                strong { (f.subject) } " fails more: last week " (pct(f.last))
                ", baseline " (f.baseline.map_or("–".into(), pct)) "."
            }
        }
    }
}

fn modules(r: &Report) -> Markup {
    html! {
        h2 { "Modules" }
        div.charts {
            @for m in &r.modules {
                figure.chart data-module=(m.module) {
                    (PreEscaped(chart(m)))
                    figcaption {
                        (m.module) ": " (opt(m.ratings.mean, 2)) " over " (m.ratings.count)
                        " ratings, spread " (format!("{:.2}", m.ratings.spread))
                    }
                }
            }
        }
        table {
            tr { th { "module" } th { "calls" } th { "share" } th { "error rate" } th { "by class" }
                 th { "p50 ms" } th { "p95 ms" } th { "tokens" } th { "cost $" } }
            @for m in &r.modules {
                tr {
                    td { (m.module) } td { (m.tool_calls) } td { (pct(m.share_of_calls)) }
                    td { (pct(m.error_rate)) }
                    td { @for (c, n) in &m.errors_by_class { (c.as_str()) " " (n) " " } }
                    td { (m.latency.p50_ms.map_or("–".into(), |v| v.to_string())) }
                    td { (m.latency.p95_ms.map_or("–".into(), |v| v.to_string())) }
                    td { (format!("{:.0}", m.tokens)) } td { (format!("{:.4}", m.cost_usd)) }
                }
            }
        }
        h3 { "Notes behind the worst ratings" }
        ul {
            @for m in &r.modules {
                @for n in &m.worst_notes {
                    li { code { (m.module) } " " (n.rating) "★ " (n.email) ": “" (n.notes) "”" }
                }
            }
        }
    }
}

fn mix(r: &Report) -> Markup {
    html! {
        h2 { "Module mix" }
        @match &r.mix.overall {
            Some(all) => {
                p { "Overall drift " (pct(all.drift)) " (0 % = the catalog's weights exactly)." }
                table {
                    tr { th { "module" } th { "target" } th { "actual" } }
                    @for m in &r.mix.modules_with_tools {
                        tr { td { (m) } td { (pct(*all.target.get(m).unwrap_or(&0.0))) }
                             td { (pct(*all.actual.get(m).unwrap_or(&0.0))) } }
                    }
                }
                p { "Furthest from their mix:" }
                ul {
                    @for p in r.mix.personas.iter().filter(|p| r.mix.furthest.contains(&p.email)) {
                        li { (p.email) " (" (p.archetype) "): drift " (pct(p.drift)) }
                    }
                }
            }
            None => p.muted { "No persona with a module mix made a tool call." }
        }
    }
}

fn health(r: &Report) -> Markup {
    let h = &r.health;
    html! {
        h2 { "Health and cost" }
        table {
            tr { th { "persona-ticks" } td { (h.persona_ticks) } }
            @for (k, v) in &h.by_outcome { tr { th { "outcome " (k) } td { (v) } } }
            @for (k, v) in &h.failed_by_stage { tr { th { "failed at " (k) } td { (v) } } }
            tr { th { "persona-days" } td { (h.persona_days) } }
            tr { th { "tokens (in / out / cache read / cache write)" }
                 td { (h.tokens.input) " / " (h.tokens.output) " / " (h.tokens.cache_read) " / " (h.tokens.cache_write) } }
            tr { th { "tokens per persona-day" } td { (format!("{:.0}", h.tokens_per_persona_day)) } }
            tr { th { "cost $" } td { (format!("{:.4}", h.cost_usd)) } }
            tr { th { "cost $ per persona-day" } td { (format!("{:.4}", h.cost_per_persona_day)) } }
            @if h.unpriced_ticks > 0 {
                tr { th { "ticks without a price (tokens only)" } td { (h.unpriced_ticks) " (" (h.unpriced_models.join(", ")) ")" } }
            }
            tr { th { "LLM retries" } td { (h.llm_retries) } }
            tr { th { "waiting on LLM / MCP / platform, s" }
                 td { (format!("{:.1} / {:.1} / {:.1}", h.wait_ms.llm as f64 / 1e3, h.wait_ms.mcp as f64 / 1e3, h.wait_ms.platform as f64 / 1e3)) } }
        }
    }
}

pub fn render(r: &Report) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "What did the personas think?" }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "What did the personas think?" }
                p.muted {
                    (r.health.persona_ticks) " persona-ticks, " (r.since.format("%Y-%m-%d %H:%M")) " – "
                    (r.until.format("%Y-%m-%d %H:%M")) " UTC. Shards: "
                    @for (i, s) in r.shards.iter().enumerate() {
                        @if i > 0 { ", " }
                        code { (s.dir) } " (" (s.error.clone().unwrap_or_else(|| s.persona_ticks.to_string())) ")"
                    }
                }
                (trends(r))
                (modules(r))
                (mix(r))
                (health(r))
            }
        }
    }
    .into_string()
}
