//! Delivery of a tick's rows, in one place: queue a persona tick's batches
//! ([`deliver`]), post what is queued ([`drain`], [`drain_until`]), and keep
//! in memory what the outbox could not take ([`Unsaved`]) until it can
//! ([`persist_unsaved`]) or the platform takes it ([`drain_unsaved`]).
//!
//! How an answer is read, per batch:
//! - any 2xx: the platform took it; it leaves the outbox;
//! - 401/403: the service key is refused — an operator's error, not the
//!   batch's: it stays pending, the drain stops and says what to check;
//! - no answer, 408, 429, 502/503/504 (after the client's retries): the
//!   platform is not there; the drain stops at the first one and leaves the
//!   rest for the next tick instead of spending every entry's retry budget;
//! - another 5xx (500: the platform's answer to a wrong-typed optional
//!   field, forever): kept, unless it has had
//!   [`outbox::DEAD_AFTER_SERVER_ERRORS`] of them over
//!   [`outbox::DEAD_AFTER_SPAN`]; then dead;
//! - any other 4xx (400, 404; the contract has no 409 or 422 for these
//!   endpoints, so they too mean "never with these bytes"): dead at once.
//!
//! A dead batch is never silent: an error line with the answer, `/health`'s
//! `outboxDead`, the `outbox_dead` metric and `mana-personas outbox`.
//! A tick's feedback is never posted while its actions batch is anywhere
//! but delivered.

use std::sync::Mutex;

use serde::Serialize;

use super::Runner;
use super::state_until;
use crate::http::{HttpError, cut};
use crate::metrics::Metrics;
use crate::platform::internal::InternalClient;
use crate::platform::internal::{
    ActionRow, ActionsBatch, DuePersona, FeedbackBatch, FeedbackRow, batch_path,
};
use crate::shutdown::Shutdown;
use crate::state::outbox::{self, ActionsState, Entry};
use crate::state::{State, StateError};

/// Where a tick's rows are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum Delivery {
    /// Every batch got a 2xx.
    Posted,
    /// Stored in the outbox; the next tick posts it.
    Queued(String),
    /// The platform refused a batch for good (kept in the outbox as dead).
    Refused(String),
    /// The outbox could not be written (disk full, read-only): the rows are
    /// in this process's memory only, not durable, and not delivered yet.
    Unsaved(String),
    /// Nothing to post.
    Nothing,
}

impl Delivery {
    /// The log value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Delivery::Posted => "posted",
            Delivery::Queued(_) => "queued",
            Delivery::Refused(_) => "refused",
            Delivery::Unsaved(_) => "unsaved",
            Delivery::Nothing => "nothing",
        }
    }
}

/// A batch that did not get a 2xx in this drain.
#[derive(Debug, Clone)]
pub struct Undelivered {
    pub persona_id: String,
    pub tick_id: String,
    pub error: String,
}

impl Undelivered {
    fn new(persona_id: &str, tick_id: &str, error: String) -> Undelivered {
        Undelivered {
            persona_id: persona_id.to_string(),
            tick_id: tick_id.to_string(),
            error,
        }
    }
}

/// Why a batch is not even tried: the drain halted at an earlier one (the
/// platform did not take it, or refused the key), or a stop aborted it.
fn held_back(halted: &Option<String>, stop: &Shutdown) -> Option<String> {
    match halted {
        Some(why) => Some(why.clone()),
        None => stop.is_aborted().then(|| "interrupted".to_string()),
    }
}

/// Result of draining the outbox (or the in-memory batches).
#[derive(Debug, Default)]
pub struct DrainReport {
    pub delivered: usize,
    /// Batches left for a later drain: failed, waiting for their actions,
    /// or not tried because the platform did not answer.
    pub still_pending: Vec<Undelivered>,
    /// Batches the platform refused for good (kept in the outbox as dead).
    pub refused: Vec<Undelivered>,
    /// The platform refused the service key: the drain stopped there.
    pub key_refused: Option<HttpError>,
    /// The outbox could not be read: which personas have rows waiting is
    /// unknown, so the tick must not run anyone (it could pay for a day
    /// whose record cannot be delivered yet).
    pub unreadable: Option<StateError>,
}

/// The service key was refused while posting a queued batch.
#[derive(Debug, thiserror::Error)]
#[error(
    "the platform refused the service key (HTTP {status}) when posting a queued batch ({error}): check MANA_SERVICE_KEY (or MANA_SERVICE_KEY_FILE) — was it rotated? Nothing was dropped: {pending} batches stay in the outbox for the next tick"
)]
pub struct KeyRefused {
    pub status: u16,
    pub error: HttpError,
    pub pending: u64,
}

/// How one answer is taken (see the module's table).
enum Verdict {
    Delivered,
    KeyRefused,
    /// No answer, or an answer that says nothing about the batch: stop.
    Unavailable,
    /// A server error about this batch: counts toward death.
    ServerError,
    Refused,
}

fn verdict<T>(res: &Result<T, HttpError>) -> Verdict {
    match res {
        Ok(_) => Verdict::Delivered,
        Err(HttpError::Status { status, .. }) => match *status {
            401 | 403 => Verdict::KeyRefused,
            408 | 429 | 502 | 503 | 504 | 529 => Verdict::Unavailable,
            500..=599 => Verdict::ServerError,
            _ => Verdict::Refused,
        },
        Err(HttpError::Transport { .. }) => Verdict::Unavailable,
        Err(HttpError::Decode { .. } | HttpError::BadId { .. }) => Verdict::Refused,
    }
}

/// What posting the outbox needs, and no more: the runner has it, and so
/// has `outbox retry`, which must work without an LLM key or seed secret.
#[derive(Clone, Copy)]
pub struct Poster<'a> {
    pub internal: &'a InternalClient,
    pub state: &'a State,
    pub metrics: &'a Metrics,
}

impl<'a> Poster<'a> {
    pub fn of(r: &'a Runner) -> Poster<'a> {
        Poster {
            internal: &r.internal,
            state: &r.state,
            metrics: &r.metrics,
        }
    }

    /// [`drain_until`] with these clients, never aborted.
    pub async fn drain(self, persona: Option<&str>) -> DrainReport {
        drain_outbox(self, persona, &Shutdown::new()).await
    }
}

/// Posts every queued batch (of one persona, or all), oldest first, actions
/// before feedback; ended at once by `stop`'s abort, even mid-request: what was
/// not delivered stays queued for the next start (a batch cut mid-POST is
/// idempotent to send again). Stops at the first batch the platform does not
/// answer (or refuses the key for), leaving the rest for the next tick.
pub async fn drain_until(r: &Runner, persona: Option<&str>, stop: &Shutdown) -> DrainReport {
    drain_outbox(Poster::of(r), persona, stop).await
}

async fn drain_outbox(r: Poster<'_>, persona: Option<&str>, stop: &Shutdown) -> DrainReport {
    let mut report = DrainReport::default();
    // Every state call runs off the runtime (`State::off_runtime`): another
    // process holding state.db's lock must not freeze the daemon.
    let persona = persona.map(str::to_owned);
    let entries = match state_until(r.state, stop, move |s| s.pending(persona.as_deref())).await {
        Some(Ok(e)) => e,
        Some(Err(e)) => {
            tracing::error!(error = %e, "cannot read the outbox");
            report.unreadable = Some(e);
            return report;
        }
        None => return report,
    };
    let mut halted: Option<String> = None;
    // Batches not delivered from the first one the platform did not take.
    let mut left = 0usize;
    let mut unavailable: Option<String> = None;
    for entry in entries {
        let undelivered = |error| Undelivered::new(&entry.persona_id, &entry.tick_id, error);
        if let Some(why) = held_back(&halted, stop) {
            left += usize::from(halted.is_some());
            report.still_pending.push(undelivered(why));
            continue;
        }
        if entry.kind == "feedback" {
            let tick = entry.tick_id.clone();
            match r.state.off_runtime(move |s| s.actions_state(&tick)).await {
                Ok(ActionsState::Gone) => {}
                Ok(ActionsState::Pending) => {
                    report
                        .still_pending
                        .push(undelivered("waiting for its actions batch".into()));
                    continue;
                }
                Ok(ActionsState::Dead) => {
                    let id = entry.id;
                    if let Err(e) = r.state.off_runtime(move |s| s.dead_with_actions(id)).await {
                        tracing::error!(error = %e, "cannot update the outbox");
                    }
                    report
                        .refused
                        .push(undelivered("its actions batch is dead".into()));
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    report.still_pending.push(undelivered(e.to_string()));
                    continue;
                }
            }
        }
        let res = tokio::select! {
            res = post(r, &entry) => res,
            _ = stop.aborted() => {
                report.still_pending.push(undelivered("interrupted".into()));
                continue;
            }
        };
        let v = verdict(&res);
        let id = entry.id;
        let Err(e) = res else {
            report.delivered += 1;
            if let Err(e) = r.state.off_runtime(move |s| s.delivered(id)).await {
                tracing::error!(error = %e, "cannot update the outbox");
            }
            continue;
        };
        let bookkeeping = match v {
            Verdict::Delivered => unreachable!("only a 2xx is delivered"),
            Verdict::KeyRefused => {
                let msg = e.to_string();
                report.still_pending.push(undelivered(msg.clone()));
                halted = Some(format!("not tried: the service key was refused ({msg})"));
                report.key_refused = Some(e);
                r.state
                    .off_runtime(move |s| s.attempt_failed(id, &msg))
                    .await
            }
            Verdict::Unavailable => {
                let msg = e.to_string();
                report.still_pending.push(undelivered(msg.clone()));
                halted = Some(format!(
                    "not tried: the platform did not take the batch before it ({msg})"
                ));
                left += 1;
                unavailable = Some(msg.clone());
                r.state
                    .off_runtime(move |s| s.attempt_failed(id, &msg))
                    .await
            }
            Verdict::ServerError => {
                let msg = e.to_string();
                let m = msg.clone();
                let now = chrono::Utc::now();
                match r
                    .state
                    .off_runtime(move |s| s.server_error(id, &m, now))
                    .await
                {
                    Ok(true) => {
                        went_dead(&entry, &msg);
                        report.refused.push(undelivered(msg));
                        Ok(())
                    }
                    Ok(false) => {
                        tracing::warn!(persona = %entry.email, tick = %entry.tick_id, kind = %entry.kind, error = %msg, "batch stays in the outbox (server error)");
                        report.still_pending.push(undelivered(msg));
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Verdict::Refused => {
                let msg = e.to_string();
                went_dead(&entry, &msg);
                report.refused.push(undelivered(msg.clone()));
                r.state.off_runtime(move |s| s.dead(id, &msg)).await
            }
        };
        if let Err(e) = bookkeeping {
            tracing::error!(error = %e, "cannot update the outbox");
        }
    }
    if let Some(error) = unavailable {
        // Once per drain, not once per batch: the platform is down, and
        // trying every batch would spend each one's retries for nothing.
        tracing::warn!(
            left, error = %error,
            "the platform did not take a queued batch; {left} batches left for the next tick"
        );
    }
    report
}

/// The error line of a batch that went dead: who, which tick, the answer
/// (redacted and cut by [`HttpError`]) and how to resend it.
fn went_dead(entry: &Entry, answer: &str) {
    let id = entry.id;
    tracing::error!(
        persona = %entry.email, tick = %entry.tick_id, kind = %entry.kind, rows = entry.rows, outbox_id = id, answer = %answer,
        "the platform refused the batch for good: kept in the outbox as dead; `mana-personas outbox list` shows it, `mana-personas outbox retry {id}` resends it"
    );
}

async fn post(
    r: Poster<'_>,
    entry: &Entry,
) -> Result<Option<crate::platform::internal::WriteResponse>, HttpError> {
    let path = entry.path()?;
    r.internal
        .post_bytes(&path, entry.body.clone(), |e, d| {
            r.metrics.retry("platform", 1);
            tracing::info!(persona = %entry.email, tick = %entry.tick_id, kind = %entry.kind, error = %e, retry_in_ms = d.as_millis() as u64, "retrying batch");
        })
        .await
}

/// One batch the outbox could not take.
#[derive(Debug, Clone)]
struct MemBatch {
    persona_id: String,
    email: String,
    tick_id: String,
    kind: &'static str,
    body: Vec<u8>,
    rows: usize,
    server_errors: u32,
    first_server_error: Option<chrono::DateTime<chrono::Utc>>,
}

/// Batches that exist only in this process's memory, because the outbox
/// could not be written (ENOSPC, a read-only database). Posted with retries
/// at once and again at the start of every tick while the process lives;
/// personas with such batches are not run again. Shared across a daemon's
/// configuration reloads (the runner is rebuilt, these are not).
#[derive(Debug, Default)]
pub struct Unsaved(Mutex<Vec<MemBatch>>);

impl Unsaved {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<MemBatch>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many batches wait in memory.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Rows in the batches waiting in memory.
    pub fn rows(&self) -> usize {
        self.lock().iter().map(|b| b.rows).sum()
    }

    /// Whether `persona_id` has rows waiting in memory.
    pub fn holds(&self, persona_id: &str) -> bool {
        self.lock().iter().any(|b| b.persona_id == persona_id)
    }

    fn remove(&self, tick_id: &str, kind: &str) {
        self.lock()
            .retain(|b| !(b.tick_id == tick_id && b.kind == kind));
    }

    /// Whether the batch is still held (a refusal of its actions removes its
    /// feedback too, while a drain walks its own snapshot).
    fn contains(&self, tick_id: &str, kind: &str) -> bool {
        self.lock()
            .iter()
            .any(|b| b.tick_id == tick_id && b.kind == kind)
    }
}

/// Moves the in-memory batches into the outbox, a tick's batches in one
/// transaction, once it can be written again (the disk was freed): from
/// there on they are durable, and the outbox drain posts them. Returns how
/// many batches moved.
pub async fn persist_unsaved(r: &Runner) -> usize {
    let held: Vec<MemBatch> = r.unsaved.lock().clone();
    let mut ticks: Vec<&str> = held.iter().map(|b| b.tick_id.as_str()).collect();
    ticks.dedup();
    let mut moved = 0;
    for tick in ticks {
        let of_tick: Vec<&MemBatch> = held.iter().filter(|b| b.tick_id == tick).collect();
        let first = of_tick[0];
        let batches: Vec<(&'static str, Vec<u8>, usize)> = of_tick
            .iter()
            .map(|b| (b.kind, b.body.clone(), b.rows))
            .collect();
        let (id, email, t) = (
            first.persona_id.clone(),
            first.email.clone(),
            tick.to_string(),
        );
        let queued = r
            .state
            .off_runtime(move |s| {
                let borrowed: Vec<(&str, &[u8], usize)> = batches
                    .iter()
                    .map(|(k, b, n)| (*k, b.as_slice(), *n))
                    .collect();
                s.enqueue_bytes(&id, &email, &t, &borrowed)
            })
            .await;
        match queued {
            Ok(()) => {
                for b in &of_tick {
                    r.unsaved.remove(&b.tick_id, b.kind);
                }
                moved += of_tick.len();
                tracing::info!(persona = %first.email, tick = %tick, "batches held in memory are in the outbox now: durable again");
            }
            // Still full: they stay in memory, posted from there.
            Err(_) => break,
        }
    }
    moved
}

/// Posts the in-memory batches (of one persona, or all), oldest first,
/// actions before feedback, with the outbox's reading of each answer. A
/// batch the platform refuses for good cannot be kept as dead (there is no
/// disk to keep it on): its whole body goes into an error line, the only
/// record left, and it leaves memory.
pub async fn drain_unsaved(r: &Runner, persona: Option<&str>, stop: &Shutdown) -> DrainReport {
    let mut report = DrainReport::default();
    let batches: Vec<MemBatch> = r
        .unsaved
        .lock()
        .iter()
        .filter(|b| persona.is_none_or(|p| b.persona_id == p))
        .cloned()
        .collect();
    let mut halted: Option<String> = None;
    for b in batches {
        let undelivered = |error| Undelivered::new(&b.persona_id, &b.tick_id, error);
        if let Some(why) = held_back(&halted, stop) {
            report.still_pending.push(undelivered(why));
            continue;
        }
        // Gone since the snapshot: its actions were refused for good, and
        // dead actions take their feedback with them.
        if !r.unsaved.contains(&b.tick_id, b.kind) {
            continue;
        }
        if b.kind == "feedback" && r.unsaved.contains(&b.tick_id, "actions") {
            report
                .still_pending
                .push(undelivered("waiting for its actions batch".into()));
            continue;
        }
        let path = match batch_path(&b.persona_id, b.kind) {
            Ok(path) => path,
            Err(e) => {
                lost(r, &b, &e.to_string());
                report.refused.push(undelivered(e.to_string()));
                continue;
            }
        };
        let post = r.internal.post_bytes(&path, b.body.clone(), |e, d| {
            r.metrics.retry("platform", 1);
            tracing::warn!(persona = %b.email, tick = %b.tick_id, kind = b.kind, error = %e, retry_in_ms = d.as_millis() as u64, "retrying a batch kept in memory only");
        });
        let res = tokio::select! {
            res = post => res,
            _ = stop.aborted() => {
                report.still_pending.push(undelivered("interrupted".into()));
                continue;
            }
        };
        let v = verdict(&res);
        let Err(e) = res else {
            r.unsaved.remove(&b.tick_id, b.kind);
            report.delivered += 1;
            tracing::info!(persona = %b.email, tick = %b.tick_id, kind = b.kind, rows = b.rows, "a batch kept in memory reached the platform");
            if b.kind == "actions" {
                // Its tool-call journal (if the disk took it) must not post
                // these rows again at the next start.
                let t = b.tick_id.clone();
                if let Err(e) = r.state.off_runtime(move |s| s.journal_forget(&t)).await {
                    tracing::warn!(persona = %b.email, error = %e, "cannot clear the tool-call journal; the next start posts the rows again (harmless: same ids)");
                }
            }
            continue;
        };
        match v {
            Verdict::Delivered => unreachable!("only a 2xx is delivered"),
            Verdict::KeyRefused => {
                report.still_pending.push(undelivered(e.to_string()));
                halted = Some(format!("not tried: the service key was refused ({e})"));
                report.key_refused = Some(e);
            }
            Verdict::Unavailable => {
                report.still_pending.push(undelivered(e.to_string()));
                halted = Some(format!(
                    "not tried: the platform did not take the batch before it ({e})"
                ));
            }
            Verdict::ServerError => {
                let now = chrono::Utc::now();
                let died = {
                    let mut all = r.unsaved.lock();
                    match all
                        .iter_mut()
                        .find(|m| m.tick_id == b.tick_id && m.kind == b.kind)
                    {
                        Some(m) => {
                            m.server_errors += 1;
                            let first = *m.first_server_error.get_or_insert(now);
                            outbox::dies(m.server_errors, Some(first), now)
                        }
                        None => false,
                    }
                };
                if died {
                    lost(r, &b, &e.to_string());
                    report.refused.push(undelivered(e.to_string()));
                } else {
                    report.still_pending.push(undelivered(e.to_string()));
                }
            }
            Verdict::Refused => {
                lost(r, &b, &e.to_string());
                report.refused.push(undelivered(e.to_string()));
            }
        }
    }
    report
}

/// A batch refused for good that no outbox can keep: logged whole (the
/// only record left), then forgotten, with its tick's feedback.
fn lost(r: &Runner, b: &MemBatch, answer: &str) {
    let mut gone = vec![b.clone()];
    if b.kind == "actions" {
        gone.extend(
            r.unsaved
                .lock()
                .iter()
                .filter(|m| m.tick_id == b.tick_id && m.kind == "feedback")
                .cloned(),
        );
    }
    for m in gone {
        tracing::error!(
            persona = %m.email, tick = %m.tick_id, kind = m.kind, rows = m.rows, answer = %answer,
            body = %crate::redact::redact(&String::from_utf8_lossy(&m.body)),
            "the platform refused a batch the outbox could not store: its rows are only in this log line"
        );
        r.unsaved.remove(&m.tick_id, m.kind);
    }
}

/// Queues the tick's batches, then drains this persona's outbox. When the
/// outbox cannot be written, the batches are kept in memory (not durable)
/// and posted from there.
pub async fn deliver(
    r: &Runner,
    p: &DuePersona,
    tick_id: &str,
    actions: &[ActionRow],
    feedback: &[FeedbackRow],
    stop: &Shutdown,
) -> Delivery {
    // After an abort the process is about to exit: queue only, so the stop
    // is not held up by posting; the next start posts the rows. A POST
    // under way when the abort comes is given up (the batch stays queued).
    let post_now = !stop.is_aborted();
    let a = ActionsBatch {
        actions: actions.to_vec(),
    };
    let f = FeedbackBatch {
        feedback: feedback.to_vec(),
    };
    let (id, email, tick, qa, qf) = (
        p.user_id.clone(),
        p.email.clone(),
        tick_id.to_string(),
        a.clone(),
        f.clone(),
    );
    if let Err(e) = r
        .state
        .off_runtime(move |s| s.enqueue(&id, &email, &tick, &qa, &qf))
        .await
    {
        let rows = a.actions.len() + f.feedback.len();
        tracing::error!(
            persona = %p.email, tick = %tick_id, rows, error = %e,
            "cannot write the outbox: this tick's rows are kept in memory only and are NOT durable (a restart or crash loses them); posting them from memory"
        );
        {
            let mut mem = r.unsaved.lock();
            for (kind, body, n) in [
                ("actions", serde_json::to_vec(&a), a.actions.len()),
                ("feedback", serde_json::to_vec(&f), f.feedback.len()),
            ] {
                if n == 0 {
                    continue;
                }
                mem.push(MemBatch {
                    persona_id: p.user_id.clone(),
                    email: p.email.clone(),
                    tick_id: tick_id.to_string(),
                    kind,
                    body: body.expect("serialisable"),
                    rows: n,
                    server_errors: 0,
                    first_server_error: None,
                });
            }
        }
        let unsaved = |why: &str| {
            Delivery::Unsaved(format!(
                "the outbox could not be written ({}); rows kept in memory only, NOT durable: {why}",
                cut(&e.to_string(), 200)
            ))
        };
        if !post_now {
            return unsaved("runner shutting down before they were posted");
        }
        let report = drain_unsaved(r, Some(&p.user_id), stop).await;
        if let Some(u) = report.refused.iter().find(|u| u.tick_id == tick_id) {
            return Delivery::Refused(u.error.clone());
        }
        return match report.still_pending.iter().find(|u| u.tick_id == tick_id) {
            Some(u) => unsaved(&format!(
                "not delivered yet, retried at the next tick ({})",
                u.error
            )),
            // (drain_unsaved cleared the tick's tool-call journal)
            None => Delivery::Posted,
        };
    }
    if !post_now {
        return Delivery::Queued("runner shutting down; posted at the next start".into());
    }
    let report = drain_until(r, Some(&p.user_id), stop).await;
    if let Some(u) = report.refused.iter().find(|u| u.tick_id == tick_id) {
        return Delivery::Refused(u.error.clone());
    }
    match report.still_pending.iter().find(|u| u.tick_id == tick_id) {
        Some(u) => Delivery::Queued(match &report.key_refused {
            Some(k) => format!(
                "the platform refused the service key (HTTP {}): check MANA_SERVICE_KEY; kept in the outbox",
                k.status().unwrap_or(401)
            ),
            None => u.error.clone(),
        }),
        None => Delivery::Posted,
    }
}
