//! The persona tick's summary for the long-lived ledger (`state::summary`):
//! what the transcript holds, plus what only the runner knows — the
//! persona's archetype and module mix, the stage a failure happened at, the
//! model and what its tokens cost.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Runner;
use super::persona::PersonaReport;
use crate::platform::internal::DuePersona;
use crate::state::summary::{self, Extra, Stage};

/// The [`Stage`] a failed run stopped at, from the runner's stage label
/// (`Work::stage`, set as each step begins; `spaces` when sign-in failed
/// finding the space). A run whose own steps all succeeded but whose batch
/// was refused is not asked: that is [`Stage::Delivery`], decided where the
/// refusal is known.
pub fn stage_at(label: &str) -> Stage {
    match label {
        "login" => Stage::SignIn,
        "spaces" => Stage::Spaces,
        "MCP session" => Stage::Mcp,
        "tool names" => Stage::ToolNames,
        "rating turn" => Stage::Rating,
        l if l.starts_with("main turn") => Stage::Llm,
        _ => Stage::Delivery,
    }
}

/// The summary of one persona tick, for `State::summary_write` (the caller
/// writes it off the runtime, beside the transcript).
pub fn build(
    r: &Runner,
    p: &DuePersona,
    report: &PersonaReport,
    started_at: DateTime<Utc>,
    finished: DateTime<Utc>,
    transcript: &Value,
) -> summary::Summary {
    let model = r.llm.model().to_string();
    let extra = Extra {
        archetype: p.archetype.clone(),
        module_mix: p.module_mix.clone(),
        stage: report.stage,
        cost_usd: r.settings.prices.cost(&model, report.tokens),
        model: Some(model),
        classes: Default::default(),
    };
    summary::from_transcript(
        &report.tick_id,
        &p.user_id,
        &p.email,
        started_at,
        finished,
        report.outcome.as_str(),
        transcript,
        extra,
    )
}
