//! One persona tick as a readable story, from the ledger alone: the prompt
//! (system prompt shortened), each model turn, each tool call with its
//! arguments, result or error and latency, the rating turn, what was posted
//! (row ids), tokens and cost. When the transcript has been pruned only the
//! summary is told, and the story says so.

use std::fmt::Write;

use serde_json::Value;

use crate::state::summary::{Summary, action_row_id};

/// The system prompt is shown up to this many characters.
pub const SYSTEM_PROMPT_CHARS: usize = 240;
/// Tool results and model texts are shown up to this many characters.
pub const TEXT_CHARS: usize = 600;

fn cut(s: &str, n: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}… ({} chars)", &s[..i], s.chars().count()),
        None => s.to_string(),
    }
}

fn indent(s: &str, by: &str) -> String {
    s.lines()
        .map(|l| format!("{by}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The story of one tick; `transcript` is `None` once pruned.
pub fn story(tick_id: &str, transcript: Option<&Value>, summary: Option<&Summary>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "━━ persona tick {tick_id}");
    if let Some(s) = summary {
        let _ = writeln!(
            o,
            "{} ({}), {} → {} ({:.1} s), outcome {}{}",
            s.email,
            if s.archetype.is_empty() {
                "archetype unknown"
            } else {
                s.archetype.as_str()
            },
            s.started_at.format("%Y-%m-%d %H:%M:%S"),
            s.finished_at.format("%H:%M:%S"),
            s.duration_ms as f64 / 1000.0,
            s.outcome,
            match (&s.stage, &s.error) {
                (Some(st), Some(e)) => format!(", failed at {}: {e}", st.as_str()),
                (Some(st), None) => format!(", failed at {}", st.as_str()),
                (None, Some(e)) => format!(": {e}"),
                _ => String::new(),
            }
        );
    }
    match transcript {
        Some(t) => transcript_story(&mut o, tick_id, t),
        None => {
            let _ = writeln!(
                o,
                "\nThe transcript has been pruned (LEDGER_RETENTION_DAYS); only the summary is left."
            );
            if let Some(s) = summary {
                for (i, c) in s.calls.iter().enumerate() {
                    let _ = writeln!(
                        o,
                        "  tool {} #{i} {}{} {} ms",
                        c.tool,
                        if c.ok { "ok" } else { "error" },
                        c.error_class
                            .map(|e| format!(" ({})", e.as_str()))
                            .unwrap_or_default(),
                        c.latency_ms.map_or("?".into(), |l| l.to_string())
                    );
                }
                posted_from_summary(&mut o, s);
            }
        }
    }
    if let Some(s) = summary {
        let _ = writeln!(
            o,
            "\ntokens: input {}, output {}, cache read {}, cache write {}; model {}; cost {}",
            s.tokens.input,
            s.tokens.output,
            s.tokens.cache_read,
            s.tokens.cache_write,
            s.model.as_deref().unwrap_or("unknown"),
            s.cost_usd.map_or(
                "unknown (no price for this model: tokens only)".into(),
                |c| format!("${c:.5}")
            )
        );
    } else if let Some(t) = transcript {
        let u = &t["report"]["tokens"];
        let _ = writeln!(
            o,
            "\ntokens: input {}, output {}, cache read {}, cache write {}; cost unknown (no summary)",
            u["input"], u["output"], u["cacheRead"], u["cacheWrite"]
        );
    }
    if transcript.is_none() && summary.is_none() {
        let _ = writeln!(
            o,
            "The ledger has neither a transcript nor a summary of this tick."
        );
    }
    o
}

fn posted_from_summary(o: &mut String, s: &Summary) {
    let _ = writeln!(o, "\nposted action rows:");
    for (i, c) in s.calls.iter().enumerate() {
        let _ = writeln!(o, "  {}", action_row_id(&s.tick_id, i, &c.tool));
    }
    let _ = writeln!(o, "posted ratings:");
    for r in &s.ratings {
        let _ = writeln!(
            o,
            "  {} {}★ {} (about {})",
            r.module,
            r.rating,
            r.notes.as_deref().unwrap_or(""),
            r.action_ids.join(", ")
        );
    }
}

fn transcript_story(o: &mut String, tick_id: &str, t: &Value) {
    let sys = t["systemPrompt"].as_str().unwrap_or_default();
    let _ = writeln!(o, "\nsystem prompt: {}", cut(sys, SYSTEM_PROMPT_CHARS));
    for e in t["events"].as_array().into_iter().flatten() {
        match e["event"].as_str().unwrap_or_default() {
            "session" => {
                let _ = writeln!(
                    o,
                    "\nsession: space {}, {} tools\nprompt:\n{}",
                    e["spaceId"].as_str().unwrap_or("?"),
                    e["tools"],
                    indent(e["prompt"].as_str().unwrap_or_default(), "  ")
                );
            }
            "model" => {
                let u = &e["usage"];
                let _ = writeln!(
                    o,
                    "\nmodel turn {} ({} ms, stop {}, retries {}, tokens in {} out {}):",
                    e["turn"],
                    e["ms"],
                    e["stopReason"].as_str().unwrap_or("?"),
                    e["retries"],
                    u["input"],
                    u["output"]
                );
                for b in e["content"].as_array().into_iter().flatten() {
                    match b["type"].as_str() {
                        Some("text") => {
                            let _ = writeln!(
                                o,
                                "  says: {}",
                                cut(b["text"].as_str().unwrap_or_default(), TEXT_CHARS)
                            );
                        }
                        Some("tool_use") => {
                            let _ = writeln!(
                                o,
                                "  calls {} {}",
                                b["name"].as_str().unwrap_or("?"),
                                b["input"]
                            );
                        }
                        _ => {}
                    }
                }
            }
            "tool" => {
                let ok = e["ok"].as_bool().unwrap_or(false);
                let _ = writeln!(
                    o,
                    "  → {}{} {} in {} ms{}\n{}",
                    e["tool"].as_str().unwrap_or("?"),
                    e["index"]
                        .as_u64()
                        .map(|i| format!(" #{i}"))
                        .unwrap_or_default(),
                    if ok { "ok" } else { "ERROR" },
                    e["ms"],
                    if e["input"].is_null() {
                        String::new()
                    } else {
                        format!(", arguments {}", e["input"])
                    },
                    indent(
                        &cut(e["result"].as_str().unwrap_or_default(), TEXT_CHARS),
                        "      "
                    )
                );
            }
            "unknown_tool" => {
                let _ = writeln!(o, "  → unknown tool {} {}", e["name"], e["input"]);
            }
            "rating" => {
                let _ = writeln!(
                    o,
                    "\nrating turn:\n  prompt: {}\n  answer: {}",
                    cut(e["prompt"].as_str().unwrap_or_default(), TEXT_CHARS),
                    cut(e["answer"].as_str().unwrap_or_default(), TEXT_CHARS)
                );
            }
            other => {
                let _ = writeln!(o, "\n{other}: {}", cut(&e.to_string(), TEXT_CHARS));
            }
        }
    }
    let _ = writeln!(o, "\nposted action rows:");
    for (i, a) in t["actions"].as_array().into_iter().flatten().enumerate() {
        let tool = a["toolName"].as_str().unwrap_or("?");
        let _ = writeln!(
            o,
            "  {} {}{}",
            action_row_id(tick_id, i, tool),
            a["result"].as_str().unwrap_or("?"),
            a["errorMessage"]
                .as_str()
                .map(|m| format!(": {}", cut(m, 200)))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(o, "posted ratings:");
    for f in t["feedback"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  {} {}★ {}",
            f["module"].as_str().unwrap_or("?"),
            f["rating"],
            f["notes"].as_str().unwrap_or("")
        );
    }
    let rep = &t["report"];
    let _ = writeln!(
        o,
        "delivery: {}{}",
        rep["delivery"]["state"].as_str().unwrap_or("?"),
        rep["delivery"]["detail"]
            .as_str()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default()
    );
    for w in rep["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(o, "warning: {}", w.as_str().unwrap_or_default());
    }
}
