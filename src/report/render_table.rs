//! The report for a terminal: the module table (comfy-table, like the other
//! commands' tables) and the rest as the Markdown text, which reads fine as
//! plain text.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::model::Report;

fn opt(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

pub fn render(r: &Report) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "module", "mean", "ratings", "spread", "weekly", "calls", "share", "errors", "p50 ms",
        "p95 ms", "cost $",
    ]);
    for m in &r.modules {
        t.add_row(vec![
            m.module.clone(),
            opt(m.ratings.mean),
            m.ratings.count.to_string(),
            format!("{:.2}", m.ratings.spread),
            m.weekly
                .iter()
                .map(|w| w.mean.map_or("–".into(), |v| format!("{v:.1}")))
                .collect::<Vec<_>>()
                .join(" "),
            m.tool_calls.to_string(),
            format!("{:.1}%", m.share_of_calls * 100.0),
            format!("{:.1}%", m.error_rate * 100.0),
            m.latency.p50_ms.map_or("–".into(), |v| v.to_string()),
            m.latency.p95_ms.map_or("–".into(), |v| v.to_string()),
            format!("{:.4}", m.cost_usd),
        ]);
    }
    let md = super::render_md::render(r);
    // The Markdown's module table is the comfy table here.
    let rest: String = md
        .split("\n### Modules\n")
        .next()
        .unwrap_or_default()
        .to_string()
        + "\n"
        + md.split_once("\n### Module mix\n")
            .map(|(_, b)| format!("### Module mix\n{b}"))
            .unwrap_or_default()
            .as_str();
    format!("{rest}\n{t}\n")
}
