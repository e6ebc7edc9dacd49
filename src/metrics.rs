//! Prometheus metrics: one explicit registry (no globals), shared by the
//! runner, which records what happens, and the daemon, which serves it on
//! `/metrics`.
//!
//! Why prometheus-client: an explicit registry is easy to assert in tests and
//! cannot collide with another library's globals; it writes OpenMetrics text,
//! appends `_total` to counters and the unit to names, so our names follow the
//! conventions by construction. Every name starts with `mana_personas_`.
//!
//! Labels are bounded: tools come from the platform's tool list (tens), LLM
//! statuses are HTTP codes or a handful of error kinds, outcomes are three.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::llm::Usage;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LlmLabels {
    provider: &'static str,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: &'static str,
}

/// Why a scheduled tick did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The previous tick was still running: never two at once.
    Overlap,
    /// The runner is paused.
    Paused,
}

/// Every metric of the process. Cheap to share (`Arc<Metrics>`); the
/// handles inside are atomics.
pub struct Metrics {
    registry: Registry,
    ticks_started: Counter,
    ticks_skipped: Family<Reason, Counter>,
    ticks_failed: Counter,
    persona_runs: Family<OutcomeLabel, Counter>,
    persona_failures: Family<StageLabel, Counter>,
    tool_calls: Family<ToolLabels, Counter>,
    tool_call_duration: Histogram,
    llm_requests: Family<LlmLabels, Counter>,
    llm_tokens: Family<KindLabel, Counter>,
    retries: Family<TargetLabel, Counter>,
    tick_duration: Histogram,
    outbox_pending: Gauge,
    outbox_dead: Gauge,
    last_success: Gauge<f64, AtomicU64>,
    paused: Gauge,
    in_flight: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics { .. }")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `mana_personas` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mana_personas");
        let m = Metrics {
            ticks_started: Counter::default(),
            ticks_skipped: Family::default(),
            ticks_failed: Counter::default(),
            persona_runs: Family::default(),
            persona_failures: Family::default(),
            tool_calls: Family::default(),
            // 5 ms … ~80 s: MCP tool calls are usually fast, a slow one is news.
            tool_call_duration: Histogram::new(exponential_buckets(0.005, 2.0, 15)),
            llm_requests: Family::default(),
            llm_tokens: Family::default(),
            retries: Family::default(),
            // 0.1 s … ~55 min: a tick of many personas runs for minutes.
            tick_duration: Histogram::new(exponential_buckets(0.1, 2.0, 16)),
            outbox_pending: Gauge::default(),
            outbox_dead: Gauge::default(),
            last_success: Gauge::default(),
            paused: Gauge::default(),
            in_flight: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register("ticks_started", "Ticks started", m.ticks_started.clone());
        r.register(
            "ticks_skipped",
            "Scheduled ticks not started (overlap: the previous one was still running; paused)",
            m.ticks_skipped.clone(),
        );
        r.register(
            "ticks_failed",
            "Ticks that could not fetch the due personas",
            m.ticks_failed.clone(),
        );
        r.register(
            "persona_runs",
            "Persona ticks by outcome (ok, zero_actions, failed)",
            m.persona_runs.clone(),
        );
        r.register(
            "persona_failures",
            "Failed persona ticks by the stage they stopped at (sign_in, spaces, mcp, tool_names, llm, rating, delivery)",
            m.persona_failures.clone(),
        );
        r.register(
            "tool_calls",
            "MCP tool calls by tool and outcome (ok, error)",
            m.tool_calls.clone(),
        );
        r.register_with_unit(
            "tool_call_duration",
            "Duration of MCP tool calls",
            Unit::Seconds,
            m.tool_call_duration.clone(),
        );
        r.register(
            "llm_requests",
            "LLM calls by provider and final status (HTTP code, or connect / stream)",
            m.llm_requests.clone(),
        );
        r.register(
            "llm_tokens",
            "LLM tokens by kind (input, output, cache_read, cache_write)",
            m.llm_tokens.clone(),
        );
        r.register(
            "retries",
            "Retried requests by target (llm, platform)",
            m.retries.clone(),
        );
        r.register_with_unit(
            "tick_duration",
            "Duration of whole ticks",
            Unit::Seconds,
            m.tick_duration.clone(),
        );
        r.register(
            "outbox_pending",
            "Batches waiting in the outbox",
            m.outbox_pending.clone(),
        );
        r.register(
            "outbox_dead",
            "Batches the platform refused for good, kept in the outbox (mana-personas outbox list)",
            m.outbox_dead.clone(),
        );
        r.register_with_unit(
            "last_successful_tick_timestamp",
            "Unix time of the end of the last tick that fetched the due list",
            Unit::Seconds,
            m.last_success.clone(),
        );
        r.register("paused", "1 when the runner is paused", m.paused.clone());
        r.register(
            "personas_in_flight",
            "Persona ticks running now",
            m.in_flight.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text `/metrics` serves.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub fn tick_started(&self) {
        self.ticks_started.inc();
    }

    pub fn tick_skipped(&self, why: SkipReason) {
        let reason = match why {
            SkipReason::Overlap => "overlap",
            SkipReason::Paused => "paused",
        };
        self.ticks_skipped.get_or_create(&Reason { reason }).inc();
    }

    /// Overlap skips so far (for the log line and tests through `/metrics`).
    pub fn overlaps(&self) -> u64 {
        self.ticks_skipped
            .get_or_create(&Reason { reason: "overlap" })
            .get()
    }

    pub fn tick_failed(&self) {
        self.ticks_failed.inc();
    }

    /// A tick that fetched the due list ended.
    pub fn tick_finished(&self, took: Duration, at_unix: f64) {
        self.tick_duration.observe(took.as_secs_f64());
        self.last_success.set(at_unix);
    }

    pub fn persona_run(&self, outcome: &'static str) {
        self.persona_runs
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub fn persona_failed(&self, stage: &'static str) {
        self.persona_failures
            .get_or_create(&StageLabel { stage })
            .inc();
    }

    pub fn tool_call(&self, tool: &str, ok: bool, took: Duration) {
        self.tool_calls
            .get_or_create(&ToolLabels {
                tool: tool.to_string(),
                outcome: if ok { "ok" } else { "error" },
            })
            .inc();
        self.tool_call_duration.observe(took.as_secs_f64());
    }

    /// One model call: its final status, its retries and its tokens.
    pub fn llm_request(&self, provider: &'static str, status: String, retries: u32, usage: Usage) {
        self.llm_requests
            .get_or_create(&LlmLabels { provider, status })
            .inc();
        self.retry("llm", retries);
        for (kind, n) in [
            ("input", usage.input),
            ("output", usage.output),
            ("cache_read", usage.cache_read),
            ("cache_write", usage.cache_write),
        ] {
            if n > 0 {
                self.llm_tokens.get_or_create(&KindLabel { kind }).inc_by(n);
            }
        }
    }

    pub fn retry(&self, target: &'static str, n: u32) {
        if n > 0 {
            self.retries
                .get_or_create(&TargetLabel { target })
                .inc_by(n as u64);
        }
    }

    pub fn set_outbox_pending(&self, n: u64) {
        self.outbox_pending.set(n as i64);
    }

    /// The last outbox count set: what `/health` serves while `state.db`
    /// does not answer at once.
    pub fn outbox_pending(&self) -> u64 {
        self.outbox_pending.get().max(0) as u64
    }

    pub fn set_outbox_dead(&self, n: u64) {
        self.outbox_dead.set(n as i64);
    }

    /// The last dead-batch count set (what `/health` serves while `state.db`
    /// does not answer at once).
    pub fn outbox_dead(&self) -> u64 {
        self.outbox_dead.get().max(0) as u64
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.set(paused as i64);
    }

    pub fn persona_started(&self) {
        self.in_flight.inc();
    }

    pub fn persona_ended(&self) {
        self.in_flight.dec();
    }

    /// Persona ticks running now (for `/health`).
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let m = Metrics::new();
        m.tick_started();
        m.tool_call("todo.create", true, Duration::from_millis(20));
        m.persona_failed("sign_in");
        m.persona_failed("sign_in");
        m.llm_request(
            "anthropic",
            "200".into(),
            2,
            Usage {
                input: 10,
                output: 5,
                cache_read: 0,
                cache_write: 0,
            },
        );
        let text = m.encode();
        assert!(
            text.contains("mana_personas_ticks_started_total 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"mana_personas_tool_calls_total{tool="todo.create",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(text.contains("mana_personas_tool_call_duration_seconds_bucket"));
        assert!(
            text.contains(r#"mana_personas_persona_failures_total{stage="sign_in"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"mana_personas_retries_total{target="llm"} 2"#));
        assert!(text.contains(r#"mana_personas_llm_tokens_total{kind="input"} 10"#));
        assert!(text.contains("mana_personas_last_successful_tick_timestamp_seconds"));
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
