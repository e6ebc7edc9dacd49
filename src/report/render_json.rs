//! The report as JSON: stable and versioned, for scripts and dashboards.
//!
//! Schema (`version` 1; fields are only added within a version):
//! - `version`, `generatedAt`, `since`, `until` (RFC 3339), `persona`?,
//!   `archetype`? (the filters);
//! - `shards[]`: `{dir, personaTicks, error?}` — every state directory read;
//! - `weeks[]`: `{index, start, end}`, oldest first, the last ending at `until`;
//! - `modules[]`: `{module, ratings: {count, mean, spread}, weekly[]: {count,
//!   mean, spread} (one per week), worstNotes[]: {rating, notes, email,
//!   tickId, at}, toolCalls, shareOfCalls, errors, errorRate,
//!   errorsByClass: {validation|handler|policy|transport|auth|other: n},
//!   latency: {p50Ms, p95Ms}, tokens, costUsd}` (tokens and cost attributed
//!   by the module's share of each tick's calls);
//! - `trends.modules[]` / `trends.tools[]`: `{subject, rules[]
//!   (three_weeks_in_a_row|against_baseline), weeks[]: {week, start, count,
//!   value}, baseline, last, change, exampleNotes[]}` (see `report::trends`);
//! - `mix`: `{modulesWithTools[], overall: {target, actual, drift}, personas[]:
//!   {email, archetype, toolCalls, target, actual, drift}, furthest[]}`
//!   (weights as shares summing to 1; drift = total variation distance);
//! - `health`: `{personaTicks, byOutcome, failedByStage, personaDays, tokens:
//!   {input, output, cacheRead, cacheWrite}, tokensPerPersonaDay, costUsd,
//!   costPerPersonaDay, unpricedTicks, unpricedModels[], llmRetries, waitMs:
//!   {llm, mcp, platform}, durationMs}`.

use super::model::Report;

pub fn render(r: &Report) -> String {
    serde_json::to_string_pretty(r).expect("a report always serialises")
}
