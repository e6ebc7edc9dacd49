//! The persona tick's summary for the long-lived ledger (`state::summary`):
//! what the transcript holds, plus what only the runner knows — the
//! persona's archetype and module mix, the stage a failure happened at, the
//! model and what its tokens cost.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Runner;
use super::delivery::Delivery;
use super::persona::{PersonaReport, RunOutcome};
use crate::platform::internal::DuePersona;
use crate::state::summary::{self, Extra, Stage};

/// Maps the runner's stage label (`Work::stage`) and the failure to a
/// [`Stage`]; `None` when the tick did not fail.
pub fn stage_of(report: &PersonaReport, label: &str) -> Option<Stage> {
    if report.outcome != RunOutcome::Failed {
        return None;
    }
    if matches!(report.delivery, Delivery::Refused(_)) && report.error.is_some() {
        let e = report.error.as_deref().unwrap_or_default();
        if e.starts_with("the platform refused the batch") {
            return Some(Stage::Delivery);
        }
    }
    let error = report.error.as_deref().unwrap_or_default().to_lowercase();
    Some(match label {
        "login" if error.contains("space") => Stage::Spaces,
        "login" => Stage::SignIn,
        "MCP session" => Stage::Mcp,
        "tool names" => Stage::ToolNames,
        "rating turn" => Stage::Rating,
        l if l.starts_with("main turn") => Stage::Llm,
        _ => Stage::Delivery,
    })
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
