//! One persona tick: derive password → login → personal space → MCP session →
//! tools → main turn → rating turn → outbox → post (the last two in
//! [`super::delivery`]).
//!
//! The work writes everything it produces into a [`Work`] that lives outside
//! the future, so when the deadline passes (or the daemon shuts down) the
//! future is dropped and what was already done is still posted: calls that
//! were in flight become error rows, calls never started never appear.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::shutdown::Shutdown;
use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use super::batch::{ERROR_MESSAGE_CHARS, cut_chars, input_hash};
use super::delivery::{Delivery, deliver};
use super::link::Link;
use super::prompts::{Vars, name_from_email};
use super::rating;
use super::tool_names::{ToolNames, module_of};
use super::{Runner, TOOL_CALLS_IN_PARALLEL};
use crate::llm::{Block, ChatRequest, Message, Role, StopReason, ToolSpec, Usage};
use crate::mcp::McpSession;
use crate::platform::internal::{ActionResult, ActionRow, DuePersona, FeedbackRow};
use crate::state::StateError;
use crate::state::journal::{JournalTick, in_flight_row};
use crate::state::memory::Outcome;
use crate::state::summary::Stage;

/// How a persona tick ended, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Ok,
    /// No tool call: nothing posted; run memory keeps it from running again
    /// before its cadence has elapsed.
    ZeroActions,
    Failed,
}

impl RunOutcome {
    /// The metrics label and log value.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Ok => "ok",
            RunOutcome::ZeroActions => "zero_actions",
            RunOutcome::Failed => "failed",
        }
    }
}

/// Time spent waiting on each dependency (for the runner's own share).
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waits {
    pub llm_ms: u64,
    pub mcp_ms: u64,
    pub platform_ms: u64,
}

/// The waits as they are summed: exact durations, rounded to milliseconds
/// once in the report. Summing each wait's truncated milliseconds lost ~0.5 ms
/// per wait, ~6 ms per persona tick — most of what then looked like the
/// runner's own time (BENCHMARKS.md, occupancy).
#[derive(Default, Clone, Copy)]
pub(super) struct WaitTimes {
    pub(super) llm: Duration,
    pub(super) mcp: Duration,
    pub(super) platform: Duration,
}

/// Milliseconds, rounded: the duration and the waits round alike, so the
/// runner's own share (duration − waits) carries no rounding bias.
fn rounded_ms(d: Duration) -> u64 {
    (d.as_micros() as u64 + 500) / 1000
}

impl WaitTimes {
    fn report(&self) -> Waits {
        let ms = rounded_ms;
        Waits {
            llm_ms: ms(self.llm),
            mcp_ms: ms(self.mcp),
            platform_ms: ms(self.platform),
        }
    }
}

/// What one persona tick did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonaReport {
    pub email: String,
    pub user_id: String,
    pub tick_id: String,
    pub outcome: RunOutcome,
    pub error: Option<String>,
    /// Where a failed tick stopped (sign-in, spaces, MCP, tool names, LLM,
    /// rating, delivery): counted by stage in the metrics, carried by the
    /// `persona run` event, `--json` and the ledger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    pub actions: usize,
    pub action_errors: usize,
    pub modules: Vec<String>,
    pub ratings: usize,
    pub tokens: Usage,
    pub duration_ms: u64,
    pub delivery: Delivery,
    pub warnings: Vec<String>,
    pub waits: Waits,
}

/// A tool call's slot: started calls are `InFlight` until they finish.
enum Slot {
    InFlight {
        tool: String,
        hash: String,
        started: Instant,
    },
    Done(ActionRow),
    /// A call answered 401 that could not be repeated: not an action row.
    Void,
}

/// Why a persona tick failed: the reason, phrased for an operator, and how
/// long the platform asked us to stay away (a locked account), if it did.
#[derive(Debug)]
pub(super) struct Fail {
    pub reason: String,
    pub hold: Option<Duration>,
}

impl From<String> for Fail {
    fn from(reason: String) -> Fail {
        Fail { reason, hold: None }
    }
}

/// The step a persona tick is at, set as each step begins: a failure is
/// reported at the [`Stage`] of the step it stopped in, and a deadline or a
/// shutdown names the step in words ("… passed during main turn 3").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Step {
    #[default]
    Login,
    /// Sign-in got its session but not the persona's space (one call does
    /// both; the error says which half failed).
    Spaces,
    McpSession,
    ToolNames,
    MainTurn(u32),
    Rating,
}

impl Step {
    fn stage(self) -> Stage {
        match self {
            Step::Login => Stage::SignIn,
            Step::Spaces => Stage::Spaces,
            Step::McpSession => Stage::Mcp,
            Step::ToolNames => Stage::ToolNames,
            Step::MainTurn(_) => Stage::Llm,
            Step::Rating => Stage::Rating,
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Login => f.write_str("login"),
            Step::Spaces => f.write_str("spaces"),
            Step::McpSession => f.write_str("MCP session"),
            Step::ToolNames => f.write_str("tool names"),
            Step::MainTurn(n) => write!(f, "main turn {n}"),
            Step::Rating => f.write_str("rating turn"),
        }
    }
}

#[derive(Default)]
pub(super) struct Inner {
    stage: Step,
    slots: Vec<Slot>,
    feedback: Vec<FeedbackRow>,
    usage: Usage,
    pub(super) waits: WaitTimes,
    warnings: Vec<String>,
    transcript: Vec<Value>,
    /// Every MCP session opened, and whether it should be closed at the end
    /// (`false` once its JWT was refused or it was closed already).
    pub(super) sessions: Vec<(Arc<McpSession>, bool)>,
}

/// What the work produced so far; outlives the work's future.
#[derive(Default)]
pub(super) struct Work {
    inner: Mutex<Inner>,
    /// Each journal write holds a read guard until it has landed; the tick
    /// takes the write guard before it queues its batches. A write whose
    /// call was dropped (deadline, shutdown) keeps running on the blocking
    /// pool: without this it could land *after* the enqueue cleared the
    /// journal and bring back one row of a queued tick, which the next start
    /// would post again under another index.
    journal_writes: Arc<tokio::sync::RwLock<()>>,
}

impl Work {
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
    pub(super) fn stage(&self, s: Step) {
        self.with(|w| w.stage = s);
    }
    pub(super) fn log(&self, v: Value) {
        self.with(|w| w.transcript.push(v));
    }
    /// `s` is not to be closed at the end (superseded by a new session).
    pub(super) fn retire(&self, s: &Arc<McpSession>) {
        self.with(|w| {
            for (open, closable) in &mut w.sessions {
                if Arc::ptr_eq(open, s) {
                    *closable = false;
                }
            }
        });
    }
    fn void_call(&self, i: usize) {
        self.with(|w| w.slots[i] = Slot::Void);
    }
    fn warn(&self, s: String) {
        self.with(|w| w.warnings.push(s));
    }
    fn start_call(&self, tool: &str, hash: &str) -> usize {
        self.with(|w| {
            w.slots.push(Slot::InFlight {
                tool: tool.to_string(),
                hash: hash.to_string(),
                started: Instant::now(),
            });
            w.slots.len() - 1
        })
    }
    fn finish_call(&self, i: usize, row: ActionRow) {
        self.with(|w| w.slots[i] = Slot::Done(row));
    }
    fn used_modules(&self) -> Vec<String> {
        self.with(|w| {
            let set: BTreeSet<String> = w
                .slots
                .iter()
                .filter_map(|s| match s {
                    Slot::Done(r) => Some(module_of(&r.tool_name).to_string()),
                    Slot::InFlight { .. } | Slot::Void => None,
                })
                .collect();
            set.into_iter().collect()
        })
    }
}

/// Runs one persona tick to the end: it never returns an error, it reports.
pub async fn run(r: &Runner, p: &DuePersona, tick_id: &str, stop: &Shutdown) -> PersonaReport {
    let started = Instant::now();
    let started_at = Utc::now();
    let (id, email, tick) = (p.user_id.clone(), p.email.clone(), tick_id.to_string());
    if let Err(e) = r
        .state
        .off_runtime(move |s| s.record_start(&id, &email, &tick, started_at))
        .await
    {
        tracing::warn!(persona = %p.email, error = %e, "cannot record the run start");
    }
    let work = Work::default();
    let journal = JournalTick {
        persona_id: p.user_id.clone(),
        email: p.email.clone(),
        tick_id: tick_id.to_string(),
        started_at,
    };
    let deadline = r.settings.persona_timeout;
    let result: Result<(), Fail> = tokio::select! {
        res = play(r, p, &journal, &work) => res,
        _ = tokio::time::sleep(deadline) => Err(format!(
            "persona deadline of {}s passed during {}; work done so far is kept",
            deadline.as_secs(), work.with(|w| w.stage)
        ).into()),
        _ = stop.aborted() => Err(format!(
            "cancelled by shutdown during {}; work done so far is kept",
            work.with(|w| w.stage)
        ).into()),
    };
    // Close the MCP sessions (best effort, bounded): waiting on MCP too.
    let bound = if stop.is_aborted() {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    for (s, closable) in work.with(|w| std::mem::take(&mut w.sessions)) {
        if closable {
            let t0 = Instant::now();
            let _ = tokio::time::timeout(bound, s.close()).await;
            work.with(|w| w.waits.mcp += t0.elapsed());
        }
    }
    // Every journal write of this tick has landed before its batches are
    // queued (and the journal cleared with them).
    drop(work.journal_writes.write().await);
    let (actions, feedback) = work.with(|w| {
        let actions: Vec<ActionRow> = w
            .slots
            .drain(..)
            .filter_map(|s| match s {
                Slot::Done(row) => Some(row),
                Slot::Void => None,
                Slot::InFlight { tool, hash, started } => Some(ActionRow {
                    tick_id: tick_id.to_string(),
                    tool_name: tool,
                    input_hash: Some(hash),
                    result: ActionResult::Error,
                    error_message: Some("cancelled while in flight: the persona's deadline passed or the runner shut down".into()),
                    latency_ms: Some(started.elapsed().as_millis() as u64),
                }),
            })
            .collect();
        (actions, std::mem::take(&mut w.feedback))
    });

    let t0 = Instant::now();
    let delivery = if actions.is_empty() {
        Delivery::Nothing
    } else {
        deliver(r, p, tick_id, &actions, &feedback, stop).await
    };
    work.with(|w| w.waits.platform += t0.elapsed());

    // A failed tick stopped at the step it was at, or at delivery when every
    // step succeeded but the platform refused the batch.
    let (outcome, error, stage) = match (&result, &delivery) {
        (Err(e), _) => (
            RunOutcome::Failed,
            Some(e.reason.clone()),
            Some(work.with(|w| w.stage.stage())),
        ),
        (Ok(()), Delivery::Refused(e)) => (
            RunOutcome::Failed,
            Some(format!("the platform refused the batch: {e}")),
            Some(Stage::Delivery),
        ),
        (Ok(()), _) if actions.is_empty() => (RunOutcome::ZeroActions, None, None),
        (Ok(()), _) => (RunOutcome::Ok, None, None),
    };
    let memory_outcome = match outcome {
        RunOutcome::Ok => Outcome::Ok,
        RunOutcome::ZeroActions => Outcome::ZeroActions,
        RunOutcome::Failed => Outcome::Failed,
    };
    let finished = Utc::now();
    let (id, count, cadence, err) = (p.user_id.clone(), actions.len(), p.cadence(), error.clone());
    if let Err(e) = r
        .state
        .off_runtime(move |s| {
            s.record_finish(
                &id,
                memory_outcome,
                count,
                cadence,
                err.as_deref(),
                finished,
            )
        })
        .await
    {
        tracing::warn!(persona = %p.email, error = %e, "cannot record the run end");
    }
    if let Err(Fail {
        hold: Some(hold), ..
    }) = &result
    {
        let until =
            finished + chrono::Duration::from_std(*hold).unwrap_or(chrono::Duration::days(1));
        let id = p.user_id.clone();
        if let Err(e) = r.state.off_runtime(move |s| s.hold_until(&id, until)).await {
            tracing::warn!(persona = %p.email, error = %e, "cannot record the backoff");
        }
    }
    let modules: BTreeSet<String> = actions
        .iter()
        .map(|a| module_of(&a.tool_name).to_string())
        .collect();
    let report = work.with(|w| PersonaReport {
        email: p.email.clone(),
        user_id: p.user_id.clone(),
        tick_id: tick_id.to_string(),
        outcome,
        error,
        stage,
        actions: actions.len(),
        action_errors: actions
            .iter()
            .filter(|a| a.result == ActionResult::Error)
            .count(),
        modules: modules.into_iter().collect(),
        ratings: feedback.len(),
        tokens: w.usage,
        duration_ms: rounded_ms(started.elapsed()),
        delivery,
        warnings: w.warnings.clone(),
        waits: w.waits.report(),
    });
    let transcript = work.with(|w| {
        json!({
            "tickId": tick_id, "email": p.email, "userId": p.user_id,
            "systemPrompt": p.system_prompt,
            "events": std::mem::take(&mut w.transcript),
            "actions": actions, "feedback": feedback, "report": report,
        })
    });
    let outcome_str = report.outcome.as_str();
    let summary = super::summary::build(r, p, &report, started_at, finished, &transcript);
    // One trip off the runtime for both; the transcript moves, not copied.
    let (id, email, tick) = (p.user_id.clone(), p.email.clone(), tick_id.to_string());
    let written = r
        .state
        .off_runtime(move |s| {
            let ledger = s.ledger_write(
                &tick,
                &id,
                &email,
                started_at,
                finished,
                outcome_str,
                &transcript,
            );
            Ok((ledger, s.summary_write(&summary)))
        })
        .await;
    let (ledger, summary) = match written {
        Ok(both) => both,
        Err(e) => (Err(e), Ok(())),
    };
    if let Err(e) = ledger {
        tracing::warn!(persona = %p.email, error = %e, "cannot write the ledger");
    }
    if let Err(e) = summary {
        tracing::warn!(persona = %p.email, error = %e, "cannot write the ledger summary");
    }
    report
}

/// The persona's day. Errors are reasons, already phrased for an operator.
async fn play(r: &Runner, p: &DuePersona, tick: &JournalTick, w: &Work) -> Result<(), Fail> {
    let s = &r.settings;
    let tick_id = tick.tick_id.as_str();
    let (link, tools) = Link::open(r, &p.email, w).await?;
    let space = link.space().await;
    w.stage(Step::ToolNames);
    // The table knows every listed tool, offered or not, so a call of a
    // denied tool maps back to its MCP name and is refused by name.
    let names =
        ToolNames::build(tools.iter().map(|t| t.name.as_str())).map_err(|e| e.to_string())?;
    let tool_count = tools.len();
    let modules = offered_modules(p, &tools, &s.tools, w);
    // Moved, not cloned: only the request needs them from here on (the
    // schemas themselves are the process's shared `Arc`s, `mcp::shared`).
    let specs: Vec<ToolSpec> = tools
        .into_iter()
        .filter(|t| s.tools.refusal(&t.name).is_none() && s.tools.offers(&t.name, &p.module_mix))
        .map(|t| ToolSpec {
            name: names.llm_name(&t.name).unwrap_or(&t.name).to_string(),
            description: t.description,
            input_schema: t.input_schema,
        })
        .collect();
    let preferred: Vec<String> = modules
        .iter()
        .map(|(m, weight)| format!("{m} ({weight})"))
        .collect();
    let name = name_from_email(&p.email);
    let today = Utc::now().date_naive();
    let vars = Vars {
        date: today,
        name: &name,
        modules: &preferred,
        min_tools: s.min_tools,
        max_tools: s.max_tools,
        used_modules: &[],
    };
    let main_prompt = r.prompts.main(&vars);
    w.log(json!({"event": "session", "spaceId": space.id, "tools": tool_count, "offered": specs.len(), "prompt": main_prompt}));

    // One request, grown in place: the history and the tool set are not
    // copied again for every turn.
    let mut req = ChatRequest {
        system: p.system_prompt.clone(),
        messages: vec![Message::user_text(main_prompt)],
        tools: specs,
        max_tokens: s.max_tokens,
    };
    let mut calls: u32 = 0;
    for turn in 1..=s.max_turns {
        w.stage(Step::MainTurn(turn));
        let t0 = Instant::now();
        let resp = complete(r, &req).await.map_err(|e| e.to_string())?;
        w.with(|w| {
            w.waits.llm += t0.elapsed();
            w.usage.add(resp.usage);
        });
        w.log(json!({"event": "model", "turn": turn, "stopReason": resp.stop_reason, "content": resp.content,
                     "usage": resp.usage, "retries": resp.retries, "ms": t0.elapsed().as_millis() as u64}));
        let uses: Vec<(String, String, Value)> = resp
            .content
            .iter()
            .filter_map(|b| match b {
                Block::ToolUse { id, name, input } => {
                    Some((id.clone(), name.clone(), input.clone()))
                }
                _ => None,
            })
            .collect();
        if resp.stop_reason == StopReason::MaxTokens {
            w.warn(format!(
                "main turn {turn} hit max_tokens; its tool calls were not run"
            ));
            break;
        }
        if uses.is_empty() {
            break;
        }
        req.messages.push(Message {
            role: Role::Assistant,
            content: resp.content.clone(),
        });
        let budget = (s.max_tool_calls - calls) as usize;
        let run_now = uses.len().min(budget);
        // Between turns no call is in flight: the moment to renew a JWT
        // that is about to run out.
        link.renew_if_due(r, w).await?;
        let t0 = Instant::now();
        let results: Vec<Result<Block, Fail>> =
            futures::stream::iter(uses[..run_now].iter().cloned())
                .map(|(id, llm_name, input)| {
                    call_tool(r, &link, &names, w, tick, id, llm_name, input)
                })
                .buffered(TOOL_CALLS_IN_PARALLEL)
                .collect()
                .await;
        w.with(|w| w.waits.mcp += t0.elapsed());
        let mut results = results.into_iter().collect::<Result<Vec<Block>, Fail>>()?;
        for (id, _, _) in &uses[run_now..] {
            results.push(Block::ToolResult {
                tool_use_id: id.clone(),
                content: format!(
                    "not run: this day's budget of {} tool calls is spent",
                    s.max_tool_calls
                ),
                is_error: true,
            });
        }
        calls += run_now as u32;
        req.messages.push(Message {
            role: Role::User,
            content: results,
        });
        if calls >= s.max_tool_calls {
            // A day that made exactly the calls its prompt asked for at most,
            // with the budget set to that, is complete, not cut: say nothing.
            if run_now < uses.len() || calls > s.max_tools {
                w.warn(format!(
                    "stopped at the tool-call budget of {}",
                    s.max_tool_calls
                ));
            }
            break;
        }
        if turn == s.max_turns {
            w.warn(format!("stopped at the turn budget of {}", s.max_turns));
        }
    }

    let used = w.used_modules();
    if used.is_empty() {
        return Ok(());
    }
    w.stage(Step::Rating);
    let rating_prompt = r.prompts.rating(&Vars {
        used_modules: &used,
        ..vars
    });
    let req = ChatRequest {
        system: p.system_prompt.clone(),
        messages: vec![Message::user_text(rating_prompt.clone())],
        tools: Vec::new(),
        max_tokens: 1024,
    };
    let t0 = Instant::now();
    match complete(r, &req).await {
        Ok(resp) => {
            w.with(|w| {
                w.waits.llm += t0.elapsed();
                w.usage.add(resp.usage);
            });
            let text: String = resp
                .content
                .iter()
                .filter_map(|b| match b {
                    Block::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n");
            let ratings = rating::parse(&text, &used);
            w.log(json!({"event": "rating", "prompt": rating_prompt, "answer": text, "usage": resp.usage}));
            let rows = rating::rows(tick_id, ratings);
            w.with(|w| w.feedback = rows);
        }
        Err(e) => w.warn(format!("rating turn failed, no feedback this tick: {e}")),
    }
    Ok(())
}

/// One tool call through MCP, recorded as an action row by its own result.
/// A denied tool is refused here (an error row, no MCP call). A 401 signs in
/// again and repeats the call once on a new session; only the repeated
/// call's result is a row. `Err` fails the persona (a second 401, or the new
/// sign-in failed). The call is journaled before it is sent and again with
/// its row (`state::journal`), so a kill cannot lose the row of a call that
/// reached the platform.
#[allow(clippy::too_many_arguments)]
async fn call_tool(
    r: &Runner,
    link: &Link,
    names: &ToolNames,
    w: &Work,
    tick: &JournalTick,
    id: String,
    llm_name: String,
    input: Value,
) -> Result<Block, Fail> {
    let result = |content: String, is_error: bool| Block::ToolResult {
        tool_use_id: id.clone(),
        content,
        is_error,
    };
    let Some(mcp_name) = names.mcp_name(&llm_name) else {
        w.log(json!({"event": "unknown_tool", "name": llm_name, "input": input}));
        return Ok(result(
            format!("unknown tool `{llm_name}`: use one of the tools listed"),
            true,
        ));
    };
    let hash = input_hash(&input);
    let slot = w.start_call(mcp_name, &hash);
    let entry = (tick.clone(), in_flight_row(&tick.tick_id, mcp_name, &hash));
    journaled(r, w, move |s| {
        s.journal_call(&entry.0, slot, &entry.1, false)
    })
    .await;
    let mut started = Instant::now();
    let (is_error, text) = match (r.settings.tools.refusal(mcp_name), &input) {
        (Some(why), _) => (
            true,
            format!(
                "refused locally: {mcp_name} may not be called by personas ({why}); it was not sent to the platform"
            ),
        ),
        (None, Value::Object(args)) => {
            let (mcp, generation) = link.current().await;
            let mut res = mcp.call_tool(mcp_name, args.clone()).await;
            if let Err(e) = &res
                && e.is_unauthorized()
            {
                let mcp = match link.renew_after_401(r, w, generation, e).await {
                    Ok(m) => m,
                    Err(f) => {
                        w.void_call(slot);
                        let tick_id = tick.tick_id.clone();
                        journaled(r, w, move |s| s.journal_void(&tick_id, slot)).await;
                        return Err(f);
                    }
                };
                started = Instant::now();
                res = mcp.call_tool(mcp_name, args.clone()).await;
                if let Err(e) = &res
                    && e.is_unauthorized()
                {
                    w.void_call(slot);
                    let tick_id = tick.tick_id.clone();
                    journaled(r, w, move |s| s.journal_void(&tick_id, slot)).await;
                    return Err(format!(
                        "{e} — again on a new session right after signing in again; the platform refuses this persona's fresh JWT"
                    )
                    .into());
                }
            }
            match res {
                Ok(out) => (out.is_error, out.text),
                Err(e) => (true, e.to_string()),
            }
        }
        (None, other) => (
            true,
            format!("arguments must be a JSON object, got {other}"),
        ),
    };
    let took = started.elapsed();
    r.metrics.tool_call(mcp_name, !is_error, took);
    let latency = took.as_millis() as u64;
    let row = ActionRow {
        tick_id: tick.tick_id.clone(),
        tool_name: mcp_name.to_string(),
        input_hash: Some(hash),
        result: if is_error {
            ActionResult::Error
        } else {
            ActionResult::Ok
        },
        error_message: is_error.then(|| cut_chars(&text, ERROR_MESSAGE_CHARS)),
        latency_ms: Some(latency),
    };
    let entry = (tick.clone(), row.clone());
    journaled(r, w, move |s| {
        s.journal_call(&entry.0, slot, &entry.1, true)
    })
    .await;
    w.finish_call(slot, row);
    w.log(json!({"event": "tool", "index": slot, "tool": mcp_name, "input": input, "ok": !is_error, "ms": latency, "result": cut_chars(&text, 2000)}));
    Ok(result(text, is_error))
}

/// A journal write, off the runtime like every state call. One that failed
/// is logged, not fatal: the call's row is still in memory and posted at the
/// tick's end; only a crash before then loses it.
async fn journaled(
    r: &Runner,
    w: &Work,
    write: impl FnOnce(&crate::state::State) -> Result<(), StateError> + Send + 'static,
) {
    let landing = w.journal_writes.clone().read_owned().await;
    let write = move |s: &crate::state::State| {
        let _landing = landing;
        write(s)
    };
    if let Err(e) = r.state.off_runtime(write).await {
        tracing::warn!(error = %e, "cannot journal the tool call; a crash before the tick's end would lose its row");
    }
}

/// The persona's preferred modules that have offered tools in this session,
/// heaviest first, with their weights. Modules without any tool are left
/// out and reported once, at warn ("persona.lena: moduleMix 'articles' has
/// no tools on this platform").
fn offered_modules(
    p: &DuePersona,
    tools: &[crate::mcp::ToolInfo],
    policy: &super::tool_policy::ToolPolicy,
    w: &Work,
) -> Vec<(String, f64)> {
    let with_tools: BTreeSet<&str> = tools
        .iter()
        .filter(|t| policy.refusal(&t.name).is_none())
        .map(|t| module_of(&t.name))
        .collect();
    let who = p.email.split('@').next().unwrap_or(&p.email);
    let mut kept = Vec::new();
    for m in crate::catalog::preferred_modules(&p.module_mix) {
        if with_tools.contains(m.as_str()) {
            let weight = p.module_mix[&m];
            kept.push((m, weight));
        } else {
            let msg = format!("{who}: moduleMix '{m}' has no tools on this platform");
            tracing::warn!(persona = %p.email, module = %m, "{msg}");
            w.warn(msg);
        }
    }
    kept
}

/// One model call, counted in the metrics by its final status.
async fn complete(
    r: &Runner,
    req: &ChatRequest,
) -> Result<crate::llm::ChatResponse, crate::llm::LlmError> {
    let provider = r.llm.provider();
    let res = r.llm.complete(req).await;
    match &res {
        Ok(resp) => r
            .metrics
            .llm_request(provider, "200".into(), resp.retries, resp.usage),
        Err(e) => r
            .metrics
            .llm_request(provider, e.status_label(), e.retries(), Usage::default()),
    }
    res
}
