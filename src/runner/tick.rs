//! A whole tick: drain the outbox, fetch who is due, decide who really runs
//! (shard, run memory, undelivered rows), keep `concurrency` personas in
//! flight — a pool, not fixed chunks — and summarise.

use std::collections::HashSet;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::delivery::{self, KeyRefused};
use super::persona::{self, PersonaReport, RunOutcome};
use super::{Runner, state_until};
use crate::http::HttpError;
use crate::llm::Usage;
use crate::platform::internal::DuePersona;
use crate::shutdown::Shutdown;
use crate::state::StateError;

/// `--shard K/N`: this machine runs the personas whose stable hash of userId
/// mod N is K.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("expected K/N, got {s:?}"))?;
        let index: u32 = k
            .trim()
            .parse()
            .map_err(|_| format!("shard index {k:?} is not a number"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("shard count {n:?} is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: need 0 <= K < N"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// SHA-256 based, so every machine (and every Rust version) agrees.
    pub fn owns(&self, user_id: &str) -> bool {
        let d = Sha256::digest(user_id.as_bytes());
        let n = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
        (n % self.count as u64) as u32 == self.index
    }
}

/// What to run this tick.
#[derive(Debug, Clone, Default)]
pub struct TickOptions {
    /// Only these personas (still only if due); also overrides run memory.
    pub personas: Vec<String>,
    /// Ignore run memory (zero-action and failure backoff).
    pub force: bool,
    pub shard: Option<Shard>,
    pub max_personas: Option<usize>,
    /// Overrides the configured concurrency.
    pub concurrency: Option<usize>,
    /// `--persona X --force`: personas to run even when the platform does not
    /// list them as due, with their descriptors read from the admin API.
    pub forced: Vec<DuePersona>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub persona: String,
    pub error: String,
    /// Where it stopped (`sign_in`, `spaces`, `mcp`, `tool_names`, `llm`,
    /// `rating`, `delivery`).
    pub stage: Option<crate::state::summary::Stage>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub persona: String,
    pub reason: String,
}

/// The summary `tick --once` prints.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TickSummary {
    pub due: usize,
    pub ran: usize,
    pub ok: usize,
    pub failed: Vec<Failure>,
    pub skipped: Vec<Skipped>,
    pub actions: usize,
    pub action_errors: usize,
    pub ratings: usize,
    pub tokens: Usage,
    pub duration_ms: u64,
    /// Batches posted from earlier ticks' outbox at the start of this one.
    pub outbox_delivered: usize,
    /// Batches still waiting after this tick.
    pub outbox_pending: u64,
    /// Batches the platform refused for good, kept in the outbox as dead
    /// (`mana-personas outbox list`, `retry`, `drop`).
    pub outbox_dead: u64,
    /// Batches the outbox could not take (disk full), in this process's
    /// memory only and not delivered: lost when the process exits.
    pub unsaved_batches: usize,
    /// Times an apps/api request of this tick waited for the platform's
    /// request budget, and answers that were 429 anyway (waited out, not
    /// failures).
    pub api_waits: u64,
    pub api_rate_limited: u64,
    /// A stop (SIGTERM, Ctrl-C) ended the tick before the due list was read:
    /// nothing ran.
    pub interrupted: bool,
    #[serde(skip)]
    pub reports: Vec<PersonaReport>,
}

/// Why a tick stopped before running anyone.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// The due list could not be fetched: nothing ran.
    #[error("cannot fetch the due personas: {0}")]
    Due(#[from] HttpError),
    /// `state.db` cannot be written (another process holds its lock), so no
    /// persona's rows could be queued: nothing ran.
    #[error("{0}; no persona ran")]
    State(#[from] StateError),
    /// A queued batch was answered 401/403: the service key is wrong (an
    /// operator's error). The batches stay pending; nothing ran.
    #[error(transparent)]
    KeyRefused(#[from] KeyRefused),
}

/// The outbox's pending and dead counts, into the metrics too; waited for
/// at most a second (another process may hold the database): else the last
/// counts read.
pub(crate) async fn outbox_now(r: &Runner) -> (u64, u64) {
    read_outbox_counts(r, std::time::Duration::from_secs(1), ())
        .await
        .unwrap_or_else(|| (r.metrics.outbox_pending(), r.metrics.outbox_dead()))
}

/// The outbox's counts read off the runtime and set into the metrics by the
/// read itself, so a read that ends after `wait` still updates them; `None`
/// if it did not end within `wait`. `guard` is dropped when the read ends,
/// however it ends (`/health` lets the next probe read again then).
pub(crate) async fn read_outbox_counts(
    r: &Runner,
    wait: std::time::Duration,
    guard: impl Send + 'static,
) -> Option<(u64, u64)> {
    let metrics = r.metrics.clone();
    let read = r.state.off_runtime(move |s| {
        let _guard = guard;
        let counts = s.outbox_counts()?;
        metrics.set_outbox_pending(counts.0);
        metrics.set_outbox_dead(counts.1);
        Ok(counts)
    });
    match tokio::time::timeout(wait, read).await {
        Ok(Ok(counts)) => Some(counts),
        _ => None,
    }
}

/// Queues the tool calls of persona ticks a killed process left unfinished
/// (`state::journal`) as those ticks' actions batches, so the drain that
/// follows posts them. No feedback batch: their rating turn never happened.
async fn requeue_interrupted(r: &Runner, stop: &Shutdown) {
    match state_until(&r.state, stop, |s| s.requeue_interrupted()).await {
        None => {}
        Some(Ok(ticks)) => {
            for t in ticks {
                tracing::warn!(
                    persona = %t.email, tick = %t.tick_id, calls = t.calls,
                    "persona {}: tick {} was interrupted; {} tool calls recorded before the crash are posted now",
                    t.email, t.tick_id, t.calls
                );
            }
        }
        Some(Err(e)) => tracing::error!(error = %e, "cannot read the tool-call journal"),
    }
}

/// A new tick id: time-ordered (UUIDv7), unique per persona tick.
pub fn new_tick_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Runs one tick. `on_done` sees each persona report as it finishes (progress
/// lines). Only a failure to fetch the due list, or a `state.db` that cannot
/// be written, is an `Err`.
///
/// `stop` drains (no persona starts once it drains) and aborts (in-flight
/// personas stop, their rows are queued for the next start).
pub async fn run_once(
    r: &Runner,
    opts: &TickOptions,
    stop: &Shutdown,
    on_start: &(dyn Fn(usize) + Sync),
    on_done: &(dyn Fn(&PersonaReport) + Sync),
) -> Result<TickSummary, TickError> {
    let started = Instant::now();
    let budget_before = r.internal.budget().stats();
    let now = chrono::Utc::now();
    // Every database call of the tick runs off the runtime and races the
    // abort; a database another process keeps locked ends the tick here,
    // saying so, before anything is spent.
    if let Some(Err(e)) = state_until(&r.state, stop, |s| s.writable()).await {
        // Rows held in memory need no database to be posted: a locked or
        // full state.db must not keep them from the platform.
        if !r.unsaved.is_empty() {
            delivery::drain_unsaved(r, None, stop).await;
        }
        return Err(e.into());
    }
    let (ledger_days, summary_days) = (
        r.settings.ledger_retention_days,
        r.settings.ledger_summary_days,
    );
    match state_until(&r.state, stop, move |s| {
        s.prune_daily(ledger_days, summary_days, now)
    })
    .await
    {
        Some(Ok(Some(p))) => tracing::info!(
            transcripts = p.transcripts,
            summaries = p.summaries,
            "ledger pruned (once a day)"
        ),
        Some(Err(e)) => tracing::warn!(error = %e, "cannot prune the ledger"),
        Some(Ok(None)) | None => {}
    }
    requeue_interrupted(r, stop).await;
    // Rows held in memory while the disk was full go into the outbox first,
    // if it can take them now: durable again, posted in order.
    if !r.unsaved.is_empty() {
        delivery::persist_unsaved(r).await;
    }
    let mut drained = delivery::drain_until(r, None, stop).await;
    if let Some(e) = drained.unreadable.take() {
        return Err(e.into());
    }
    let from_memory = if drained.key_refused.is_none() && !r.unsaved.is_empty() {
        delivery::drain_unsaved(r, None, stop).await
    } else {
        delivery::DrainReport::default()
    };
    if let Some(error) = drained.key_refused.or(from_memory.key_refused) {
        let (pending, _) = outbox_now(r).await;
        return Err(KeyRefused {
            status: error.status().unwrap_or(401),
            error,
            pending,
        }
        .into());
    }
    // Personas whose rows are still queued (or only in memory) are not run
    // again: their server-side lastActiveAt has not moved, and running them
    // would pay for a day whose record cannot be delivered yet.
    let blocked: HashSet<&str> = drained
        .still_pending
        .iter()
        .chain(&from_memory.still_pending)
        .map(|u| u.persona_id.as_str())
        .collect();

    // Cancellation reaches every await: a stop during the drain or a hanging
    // due fetch ends the tick here, with nothing started.
    let due = if stop.is_aborted() {
        None
    } else {
        tokio::select! {
            due = r.internal.due() => Some(due?),
            _ = stop.aborted() => None,
        }
    };
    let Some(due) = due else {
        let mut summary = TickSummary {
            outbox_delivered: drained.delivered + from_memory.delivered,
            interrupted: true,
            ..TickSummary::default()
        };
        (summary.outbox_pending, summary.outbox_dead) = outbox_now(r).await;
        summary.unsaved_batches = r.unsaved.len();
        summary.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(summary);
    };
    let mut summary = TickSummary {
        due: due.personas.len() + due.malformed.len(),
        outbox_delivered: drained.delivered + from_memory.delivered,
        ..TickSummary::default()
    };
    // One bad entry skips that entry, not the tick.
    for (i, why) in &due.malformed {
        let why = crate::http::cut(why, 200);
        tracing::warn!(index = i, error = %why, "due entry #{i} skipped: not a persona");
        summary.skipped.push(Skipped {
            persona: format!("due entry #{i}"),
            reason: format!("malformed due entry: {why}"),
        });
    }
    let explicit = !opts.personas.is_empty();
    let mut run: Vec<DuePersona> = Vec::new();
    // The first entry of a userId runs; a repeat (even under another
    // spelling of the email) would run the persona twice, and a copy's
    // failed login would land in the real persona's run memory.
    let mut seen: HashSet<String> = HashSet::new();
    let mut duplicates = 0usize;
    for p in due.personas {
        let skip = |summary: &mut TickSummary, reason: String| {
            summary.skipped.push(Skipped {
                persona: p.email.clone(),
                reason,
            })
        };
        if !seen.insert(p.user_id.clone()) {
            duplicates += 1;
            skip(
                &mut summary,
                "duplicate due entry: an earlier entry has the same userId".into(),
            );
            continue;
        }
        // A userId is put into URL paths; one that is not a plain id
        // (`../admin/…`) would send the service key elsewhere.
        if !crate::http::is_plain_id(&p.user_id) {
            tracing::warn!(persona = %p.email, user_id = %crate::http::cut(&p.user_id, 80), "due entry skipped: its userId is not a plain id");
            skip(
                &mut summary,
                "its userId is not a plain id (1 to 64 of A-Z, a-z, 0-9, _ and -)".into(),
            );
            continue;
        }
        if explicit
            && !opts
                .personas
                .iter()
                .any(|e| e.eq_ignore_ascii_case(&p.email))
        {
            continue;
        }
        if opts.shard.is_some_and(|s| !s.owns(&p.user_id)) {
            continue;
        }
        if blocked.contains(p.user_id.as_str()) || r.unsaved.holds(&p.user_id) {
            skip(
                &mut summary,
                "rows of an earlier tick are still waiting in the outbox".into(),
            );
            continue;
        }
        if !opts.force && !explicit {
            let id = p.user_id.clone();
            match state_until(&r.state, stop, move |s| s.may_run(&id, now)).await {
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(why))) => {
                    skip(&mut summary, why.to_string());
                    continue;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "run memory unreadable; running anyway")
                }
                // Aborted: nothing starts any more.
                None => continue,
            }
        }
        if opts.max_personas.is_some_and(|m| run.len() >= m) {
            skip(&mut summary, "--max-personas reached".into());
            continue;
        }
        run.push(p);
    }
    if duplicates > 0 {
        tracing::warn!(
            duplicates,
            "the due list repeats personas (same userId); each runs once, as its first entry"
        );
    }
    // Forced personas the due list did not have: run them all the same
    // (the operator named them and said --force).
    for p in &opts.forced {
        if run.iter().any(|q| q.user_id == p.user_id)
            || summary
                .skipped
                .iter()
                .any(|s| s.persona.eq_ignore_ascii_case(&p.email))
        {
            continue;
        }
        // --force overrides the due list and run memory, never the rules
        // that keep rows whole: a persona with undelivered rows waits.
        if blocked.contains(p.user_id.as_str()) || r.unsaved.holds(&p.user_id) {
            summary.skipped.push(Skipped {
                persona: p.email.clone(),
                reason: "rows of an earlier tick are still waiting in the outbox".into(),
            });
            continue;
        }
        run.push(p.clone());
    }
    for wanted in &opts.personas {
        if !summary
            .skipped
            .iter()
            .any(|s| s.persona.eq_ignore_ascii_case(wanted))
            && !run.iter().any(|p| p.email.eq_ignore_ascii_case(wanted))
        {
            summary.skipped.push(Skipped {
                persona: wanted.clone(),
                reason: "not due on the platform (or not in this shard); --force runs it anyway"
                    .into(),
            });
        }
    }
    on_start(run.len());

    let concurrency = opts.concurrency.unwrap_or(r.settings.concurrency).max(1);
    // Owned items: a stream over references trips the compiler's
    // higher-ranked lifetime check once the tick runs in a spawned task.
    let reports: Vec<PersonaReport> = futures::stream::iter(run)
        .map(|p| async move {
            if stop.is_draining() {
                return None;
            }
            r.metrics.persona_started();
            let tick_id = new_tick_id();
            // Every log line of this persona's day (LLM and MCP retries, the
            // clients' warnings) carries who and which tick, even with 64 in
            // flight. At error level so that no log filter disables the span
            // itself: it only carries fields, each event keeps its own level.
            let span = tracing::error_span!("persona", persona = %p.email, tick_id = %tick_id);
            let report = persona::run(r, &p, &tick_id, stop).instrument(span).await;
            r.metrics.persona_ended();
            r.metrics.persona_run(report.outcome.as_str());
            if let Some(stage) = report.stage {
                r.metrics.persona_failed(stage.as_str());
            }
            log_run(&report);
            on_done(&report);
            Some(report)
        })
        .buffer_unordered(concurrency)
        .filter_map(|r| async move { r })
        .collect()
        .await;

    for rep in &reports {
        summary.ran += 1;
        match rep.outcome {
            RunOutcome::Ok | RunOutcome::ZeroActions => summary.ok += 1,
            RunOutcome::Failed => summary.failed.push(Failure {
                persona: rep.email.clone(),
                stage: rep.stage,
                error: rep.error.clone().unwrap_or_else(|| "unknown error".into()),
            }),
        }
        summary.actions += rep.actions;
        summary.action_errors += rep.action_errors;
        summary.ratings += rep.ratings;
        summary.tokens.add(rep.tokens);
    }
    summary.reports = reports;
    (summary.outbox_pending, summary.outbox_dead) = outbox_now(r).await;
    summary.unsaved_batches = r.unsaved.len();
    let budget_after = r.internal.budget().stats();
    summary.api_waits = budget_after.waits - budget_before.waits;
    summary.api_rate_limited = budget_after.limited - budget_before.limited;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

/// The one structured event per persona run (journald / Loki): who, which
/// tick, how it ended, what it did, what it cost, how long it took.
fn log_run(rep: &PersonaReport) {
    let delivery = rep.delivery.as_str();
    let t = rep.tokens;
    // At info even when it failed: `tick --once` already prints a ✗ line,
    // and the daemon logs at info.
    tracing::info!(
        persona = %rep.email, tick_id = %rep.tick_id, outcome = rep.outcome.as_str(),
        actions = rep.actions, action_errors = rep.action_errors, ratings = rep.ratings,
        tokens_in = t.input, tokens_out = t.output, cache_read = t.cache_read, cache_write = t.cache_write,
        duration_ms = rep.duration_ms, delivery, error = rep.error.as_deref().unwrap_or(""),
        stage = rep.stage.map_or("", |s| s.as_str()),
        "persona run"
    );
}
