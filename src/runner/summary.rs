//! The persona tick's summary for the long-lived ledger (`state::summary`):
//! what the transcript holds, plus what only the runner knows — the
//! persona's archetype and module mix, the stage a failure happened at, the
//! model and what its tokens cost.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Runner;
use super::persona::PersonaReport;
use crate::platform::internal::DuePersona;
use crate::state::summary::{self, Extra};

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
