//! The report as Markdown: for a CI job summary (`$GITHUB_STEP_SUMMARY`) or
//! a chat post. Tables, no HTML, no images.

use std::fmt::Write;

use super::model::Report;
use super::trends::{Flag, Rule};

fn opt(v: Option<f64>, d: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.d$}"))
}

fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// One line: one table cell (pipes and newlines would break the table).
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn rules(f: &Flag, what: &str) -> String {
    f.rules
        .iter()
        .map(|r| match r {
            Rule::ThreeWeeksInARow => format!("{what} in each of the last 3 weeks"),
            Rule::AgainstBaseline => "last week against its baseline".to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn evidence(f: &Flag, d: usize) -> String {
    f.weeks
        .iter()
        .map(|p| format!("w{} {} (n={})", p.week + 1, opt(p.value, d), p.count))
        .collect::<Vec<_>>()
        .join(" → ")
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## What did the personas think?\n");
    let _ = writeln!(
        o,
        "{} persona-ticks from {} to {} ({} week(s)); shards: {}.\n",
        r.health.persona_ticks,
        r.since.format("%Y-%m-%d %H:%M"),
        r.until.format("%Y-%m-%d %H:%M"),
        r.weeks.len(),
        r.shards
            .iter()
            .map(|s| match &s.error {
                Some(e) => format!("`{}` (unreadable: {})", s.dir, cell(e)),
                None => format!("`{}` ({})", s.dir, s.persona_ticks),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );

    let _ = writeln!(o, "### Trends\n");
    if r.trends.modules.is_empty() && r.trends.tools.is_empty() {
        let _ = writeln!(
            o,
            "No module is rated worse and no tool fails more, by the trend rules.\n"
        );
    }
    for f in &r.trends.modules {
        let _ = writeln!(
            o,
            "- **{}** is rated worse: {}. Weekly means {}; last {:.2} vs baseline {} ({:+.2}).",
            f.subject,
            rules(f, "fell"),
            evidence(f, 2),
            f.last,
            opt(f.baseline, 2),
            f.change
        );
        for n in &f.example_notes {
            let _ = writeln!(o, "  - {}★ {}: “{}”", n.rating, n.email, cell(&n.notes));
        }
    }
    for f in &r.trends.tools {
        let _ = writeln!(
            o,
            "- **{}** fails more: {}. Weekly error rates {}; last {} vs baseline {}.",
            f.subject,
            rules(f, "rose"),
            evidence(f, 2),
            pct(f.last),
            f.baseline.map_or("–".into(), pct)
        );
    }

    let _ = writeln!(o, "\n### Modules\n");
    let _ = writeln!(
        o,
        "| module | mean rating | ratings | spread | weekly means | calls | share | error rate | errors by class | p50 / p95 ms | cost $ |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---|---:|---:|---:|---|---:|---:|");
    for m in &r.modules {
        let weekly = m
            .weekly
            .iter()
            .map(|w| opt(w.mean, 1))
            .collect::<Vec<_>>()
            .join(" · ");
        let classes = m
            .errors_by_class
            .iter()
            .map(|(c, n)| format!("{} {n}", c.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            o,
            "| {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} / {} | {:.4} |",
            m.module,
            opt(m.ratings.mean, 2),
            m.ratings.count,
            m.ratings.spread,
            weekly,
            m.tool_calls,
            pct(m.share_of_calls),
            pct(m.error_rate),
            classes,
            m.latency.p50_ms.map_or("–".into(), |v| v.to_string()),
            m.latency.p95_ms.map_or("–".into(), |v| v.to_string()),
            m.cost_usd
        );
    }
    let notes: Vec<_> = r
        .modules
        .iter()
        .filter(|m| !m.worst_notes.is_empty())
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(o, "\n**Notes behind the worst ratings**\n");
        for m in notes {
            for n in &m.worst_notes {
                let _ = writeln!(
                    o,
                    "- `{}` {}★ {}: “{}”",
                    m.module,
                    n.rating,
                    n.email,
                    cell(&n.notes)
                );
            }
        }
    }

    let _ = writeln!(o, "\n### Module mix\n");
    match &r.mix.overall {
        Some(all) => {
            let _ = writeln!(
                o,
                "Overall drift {:.1} % (0 % = the catalog's weights exactly). Furthest: {}.\n",
                all.drift * 100.0,
                r.mix
                    .personas
                    .iter()
                    .filter(|p| r.mix.furthest.contains(&p.email))
                    .map(|p| (p.drift, &p.email))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|(d, e)| format!("{e} ({:.0} %)", d * 100.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let _ = writeln!(o, "| module | target | actual |\n|---|---:|---:|");
            for m in &r.mix.modules_with_tools {
                let _ = writeln!(
                    o,
                    "| {m} | {} | {} |",
                    pct(*all.target.get(m).unwrap_or(&0.0)),
                    pct(*all.actual.get(m).unwrap_or(&0.0))
                );
            }
        }
        None => {
            let _ = writeln!(o, "No persona with a module mix made a tool call.");
        }
    }

    let h = &r.health;
    let _ = writeln!(o, "\n### Health and cost\n");
    let _ = writeln!(
        o,
        "- persona-ticks: {} ({}); failed by stage: {}",
        h.persona_ticks,
        h.by_outcome
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        if h.failed_by_stage.is_empty() {
            "none".into()
        } else {
            h.failed_by_stage
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let _ = writeln!(
        o,
        "- tokens: {} (input {}, output {}, cache read {}, cache write {}); {:.0} per persona-day over {} persona-days",
        h.tokens.total(),
        h.tokens.input,
        h.tokens.output,
        h.tokens.cache_read,
        h.tokens.cache_write,
        h.tokens_per_persona_day,
        h.persona_days
    );
    let _ = writeln!(
        o,
        "- cost: ${:.4} (${:.4} per persona-day){}",
        h.cost_usd,
        h.cost_per_persona_day,
        if h.unpriced_ticks > 0 {
            format!(
                "; {} tick(s) on a model without a price ({}): tokens only",
                h.unpriced_ticks,
                h.unpriced_models.join(", ")
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        o,
        "- LLM retries: {}; waiting: LLM {:.1} s, MCP {:.1} s, platform {:.1} s of {:.1} s in persona-ticks",
        h.llm_retries,
        h.wait_ms.llm as f64 / 1000.0,
        h.wait_ms.mcp as f64 / 1000.0,
        h.wait_ms.platform as f64 / 1000.0,
        h.duration_ms as f64 / 1000.0
    );
    o
}
