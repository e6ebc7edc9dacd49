//! The outbox: a tick's batches are stored here *before* they are posted and
//! removed only after a 2xx, so a crash, a kill or a platform outage between the
//! LLM work and the POST loses nothing. The stored bytes are exactly what is
//! sent, every time: same tickId, same row order, so the server's row ids make
//! a resend harmless.
//!
//! A batch leaves the live queue in three ways only: a 2xx (deleted), the
//! platform refusing it for good (kept as *dead*, visible in `/health`, the
//! metrics and `mana-personas outbox list`, resent by `outbox retry`), or an
//! operator's `outbox drop`. A batch whose actions are dead takes its tick's
//! feedback with it: feedback is never posted before its actions.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{State, StateError, now, ts};
use crate::platform::internal::{ActionsBatch, FeedbackBatch};

/// One queued batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: i64,
    pub persona_id: String,
    pub email: String,
    pub tick_id: String,
    /// `actions` or `feedback`.
    pub kind: String,
    pub body: Vec<u8>,
    pub rows: usize,
    pub attempts: u32,
}

impl Entry {
    /// The internal endpoint path below the prefix.
    pub fn path(&self) -> Result<String, crate::http::HttpError> {
        crate::platform::internal::batch_path(&self.persona_id, &self.kind)
    }
}

/// A batch answered with a server error (500: the platform's answer to a
/// wrong-typed optional field, which it gives forever) dies after this many
/// drains that got one…
pub const DEAD_AFTER_SERVER_ERRORS: u32 = 5;
/// …spread over at least this long: an hour outlasts a deploy or a database
/// restart, so a platform that is only briefly sick loses nothing, while a
/// batch it will never take blocks its persona (which is not run while its
/// rows wait) for about an hour, not forever.
pub const DEAD_AFTER_SPAN: Duration = Duration::from_secs(3600);

/// Whether a batch with `server_errors` server-error answers, the first at
/// `first`, is dead `now` (the outbox's rule, and the in-memory batches' too).
pub fn dies(
    server_errors: u32,
    first: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    server_errors >= DEAD_AFTER_SERVER_ERRORS
        && first.is_some_and(|f| (now - f).to_std().unwrap_or_default() >= DEAD_AFTER_SPAN)
}

/// One entry as `outbox list` shows it (the body left out).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub id: i64,
    pub persona_id: String,
    pub persona: String,
    pub tick_id: String,
    pub kind: String,
    pub rows: usize,
    pub attempts: u32,
    pub dead: bool,
    pub last_error: Option<String>,
    pub created_at: String,
}

/// Where a tick's actions batch is, for its feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionsState {
    /// Not in the outbox: delivered (or dropped by the operator).
    Gone,
    Pending,
    Dead,
}

/// Adds the columns of the server-error rule to an older outbox (idempotent).
pub(super) fn migrate(c: &Connection) -> rusqlite::Result<()> {
    let has: bool = c
        .prepare("SELECT 1 FROM pragma_table_info('outbox') WHERE name = 'server_errors'")?
        .exists([])?;
    if !has {
        c.execute_batch(
            "ALTER TABLE outbox ADD COLUMN server_errors INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE outbox ADD COLUMN first_server_error_at TEXT;",
        )?;
    }
    Ok(())
}

impl State {
    /// Queues one tick's batches in one transaction (actions first). Empty
    /// batches are not queued: the server rejects them. The tick's tool-call
    /// journal goes in the same transaction: its rows are in the outbox now.
    pub fn enqueue(
        &self,
        persona_id: &str,
        email: &str,
        tick_id: &str,
        actions: &ActionsBatch,
        feedback: &FeedbackBatch,
    ) -> Result<(), StateError> {
        let a = serde_json::to_vec(actions).expect("serialisable");
        let f = serde_json::to_vec(feedback).expect("serialisable");
        self.enqueue_bytes(
            persona_id,
            email,
            tick_id,
            &[
                ("actions", &a, actions.actions.len()),
                ("feedback", &f, feedback.feedback.len()),
            ],
        )
    }

    /// [`State::enqueue`] of batches already serialised — `(kind, body,
    /// rows)`, actions first — so batches held in memory while the disk was
    /// full are stored with the very bytes they were (and will be) sent as.
    pub fn enqueue_bytes(
        &self,
        persona_id: &str,
        email: &str,
        tick_id: &str,
        batches: &[(&str, &[u8], usize)],
    ) -> Result<(), StateError> {
        self.call(|c| {
            let tx = c.transaction()?;
            let now = ts(now());
            for (kind, body, rows) in batches {
                if *rows == 0 {
                    continue;
                }
                tx.prepare_cached(
                    "INSERT INTO outbox (persona_id, email, tick_id, kind, body, rows, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(tick_id, kind) DO NOTHING",
                )?
                .execute(params![persona_id, email, tick_id, kind, body, *rows as i64, now])?;
            }
            super::journal::forget(&tx, tick_id)?;
            tx.commit()
        })
    }

    /// Live entries in posting order (oldest tick first, actions before feedback).
    pub fn pending(&self, persona_id: Option<&str>) -> Result<Vec<Entry>, StateError> {
        self.call(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, persona_id, email, tick_id, kind, body, rows, attempts FROM outbox
                 WHERE dead = 0 AND (?1 IS NULL OR persona_id = ?1) ORDER BY id",
            )?;
            let rows = st.query_map(params![persona_id], |r| {
                Ok(Entry {
                    id: r.get(0)?,
                    persona_id: r.get(1)?,
                    email: r.get(2)?,
                    tick_id: r.get(3)?,
                    kind: r.get(4)?,
                    body: r.get(5)?,
                    rows: r.get::<_, i64>(6)? as usize,
                    attempts: r.get::<_, i64>(7)? as u32,
                })
            })?;
            rows.collect()
        })
    }

    /// How many batches wait to be posted, and how many the platform refused
    /// for good (kept for the operator): one scan, since every reader wants
    /// both.
    pub fn outbox_counts(&self) -> Result<(u64, u64), StateError> {
        self.call(|c| {
            c.query_row(
                "SELECT COUNT(*) FILTER (WHERE dead = 0), COUNT(*) FILTER (WHERE dead = 1)
                 FROM outbox",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
        })
    }

    /// The server took it: forget it.
    pub fn delivered(&self, id: i64) -> Result<(), StateError> {
        self.call(|c| {
            c.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute(params![id])
                .map(|_| ())
        })
    }

    /// Every entry, live and dead, oldest first (for `outbox list`).
    pub fn outbox_list(&self) -> Result<Vec<Listed>, StateError> {
        self.listed(None)
    }

    /// Entry `id`, live or dead (for `outbox drop`'s question).
    pub fn outbox_entry(&self, id: i64) -> Result<Option<Listed>, StateError> {
        Ok(self.listed(Some(id))?.pop())
    }

    fn listed(&self, id: Option<i64>) -> Result<Vec<Listed>, StateError> {
        self.call(|c| {
            let mut st = c.prepare(
                "SELECT id, persona_id, email, tick_id, kind, rows, attempts, dead, last_error, created_at
                 FROM outbox WHERE ?1 IS NULL OR id = ?1 ORDER BY id",
            )?;
            let rows = st.query_map(params![id], |r| {
                Ok(Listed {
                    id: r.get(0)?,
                    persona_id: r.get(1)?,
                    persona: r.get(2)?,
                    tick_id: r.get(3)?,
                    kind: r.get(4)?,
                    rows: r.get::<_, i64>(5)? as usize,
                    attempts: r.get::<_, i64>(6)? as u32,
                    dead: r.get::<_, i64>(7)? != 0,
                    last_error: r.get(8)?,
                    created_at: r.get(9)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Where the actions batch of `tick_id` is (its feedback waits for it).
    pub fn actions_state(&self, tick_id: &str) -> Result<ActionsState, StateError> {
        self.call(|c| {
            c.prepare_cached("SELECT dead FROM outbox WHERE tick_id = ?1 AND kind = 'actions'")?
                .query_row(params![tick_id], |r| r.get::<_, i64>(0))
                .optional()
        })
        .map(|d| match d {
            None => ActionsState::Gone,
            Some(0) => ActionsState::Pending,
            Some(_) => ActionsState::Dead,
        })
    }

    /// A failure that says nothing about the batch (no answer, a gateway's
    /// 502/503/504, 408, 429, a refused service key): keep it, count the
    /// attempt, never let it die of this.
    pub fn attempt_failed(&self, id: i64, error: &str) -> Result<(), StateError> {
        self.call(|c| {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, crate::redact::redact(error)],
            )
            .map(|_| ())
        })
    }

    /// A server error answered to this batch: kept, unless it has now had
    /// [`DEAD_AFTER_SERVER_ERRORS`] of them over at least [`DEAD_AFTER_SPAN`]
    /// (see [`dies`]); then it is dead, with its tick's feedback. `now` is
    /// the caller's, so the rule is testable without waiting an hour.
    /// Returns whether it died.
    pub fn server_error(
        &self,
        id: i64,
        error: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StateError> {
        let error = crate::redact::redact(error);
        self.call(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, server_errors = server_errors + 1,
                 first_server_error_at = COALESCE(first_server_error_at, ?3) WHERE id = ?1",
                params![id, error, ts(now)],
            )?;
            let (n, first): (i64, Option<String>) = tx.query_row(
                "SELECT server_errors, first_server_error_at FROM outbox WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let died = dies(n as u32, first.as_deref().and_then(super::parse_ts), now);
            if died {
                mark_dead(&tx, id)?;
            }
            tx.commit()?;
            Ok(died)
        })
    }

    /// The server refused it for good (a 4xx other than 401/403/408/429):
    /// keep it for inspection, never resend on its own; its tick's feedback
    /// goes with it.
    pub fn dead(&self, id: i64, error: &str) -> Result<(), StateError> {
        let error = crate::redact::redact(error);
        self.call(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, error],
            )?;
            mark_dead(&tx, id)?;
            tx.commit()
        })
    }

    /// Feedback whose actions batch is dead waits with it, dead too.
    pub fn dead_with_actions(&self, id: i64) -> Result<(), StateError> {
        self.call(|c| {
            c.execute(
                "UPDATE outbox SET dead = 1, last_error = 'waiting for its actions batch, which is dead' WHERE id = ?1",
                params![id],
            )
            .map(|_| ())
        })
    }

    /// `outbox retry ID`: the entry (and the dead entries of its tick, which
    /// died with it) are pending again with a fresh count of attempts.
    /// Returns the revived entries' ids; empty when there is no such entry.
    pub fn revive(&self, id: i64) -> Result<Vec<i64>, StateError> {
        self.call(|c| {
            let tx = c.transaction()?;
            let tick: Option<String> = tx
                .query_row("SELECT tick_id FROM outbox WHERE id = ?1", params![id], |r| {
                    r.get(0)
                })
                .optional()?;
            let Some(tick) = tick else {
                return Ok(Vec::new());
            };
            let ids: Vec<i64> = tx
                .prepare("SELECT id FROM outbox WHERE id = ?1 OR (tick_id = ?2 AND dead = 1) ORDER BY id")?
                .query_map(params![id, tick], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for i in &ids {
                revive_one(&tx, *i)?;
            }
            tx.commit()?;
            Ok(ids)
        })
    }

    /// `outbox retry --all-dead`: every dead entry is pending again.
    pub fn revive_all_dead(&self) -> Result<Vec<i64>, StateError> {
        self.call(|c| {
            let tx = c.transaction()?;
            let ids: Vec<i64> = tx
                .prepare("SELECT id FROM outbox WHERE dead = 1 ORDER BY id")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for i in &ids {
                revive_one(&tx, *i)?;
            }
            tx.commit()?;
            Ok(ids)
        })
    }

    /// `outbox drop ID`: the operator gives the entry up. Returns it, if
    /// there was one.
    pub fn drop_entry(&self, id: i64) -> Result<Option<Listed>, StateError> {
        let found = self.outbox_entry(id)?;
        if found.is_some() {
            self.call(|c| {
                c.execute("DELETE FROM outbox WHERE id = ?1", params![id])
                    .map(|_| ())
            })?;
        }
        Ok(found)
    }

    /// Caps the database at `pages` pages (SQLite's `max_page_count`, this
    /// connection only): past it every write fails with `SQLITE_FULL`, the
    /// error a full disk gives. How the tests reproduce ENOSPC without
    /// filling a disk (as root, a read-only file or directory stops nothing).
    pub fn limit_pages(&self, pages: u64) -> Result<(), StateError> {
        self.call(|c| c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(())))
    }

    /// The database's size in pages now (to cap it just above).
    pub fn page_count(&self) -> Result<u64, StateError> {
        self.call(|c| c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
    }
}

fn mark_dead(tx: &rusqlite::Transaction, id: i64) -> rusqlite::Result<()> {
    tx.execute("UPDATE outbox SET dead = 1 WHERE id = ?1", params![id])?;
    // The tick's feedback never goes before its actions: it waits, dead too.
    tx.execute(
        "UPDATE outbox SET dead = 1, last_error = 'waiting for its actions batch, which is dead'
         WHERE kind = 'feedback' AND dead = 0
           AND tick_id = (SELECT tick_id FROM outbox WHERE id = ?1 AND kind = 'actions')",
        params![id],
    )?;
    Ok(())
}

fn revive_one(tx: &rusqlite::Transaction, id: i64) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE outbox SET dead = 0, attempts = 0, server_errors = 0, first_server_error_at = NULL WHERE id = ?1",
        params![id],
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::internal::{ActionResult, ActionRow, FeedbackRow};

    fn queued(st: &State, tick: &str) -> (i64, i64) {
        let a = ActionsBatch {
            actions: vec![ActionRow {
                tick_id: tick.into(),
                tool_name: "todo.create".into(),
                input_hash: None,
                result: ActionResult::Ok,
                error_message: None,
                latency_ms: Some(1),
            }],
        };
        let f = FeedbackBatch {
            feedback: vec![FeedbackRow {
                tick_id: tick.into(),
                module: "todo".into(),
                rating: 4,
                notes: None,
            }],
        };
        st.enqueue("u1", "p@mana.test", tick, &a, &f).unwrap();
        let p = st.pending(None).unwrap();
        (p[0].id, p[1].id)
    }

    /// Five server errors within the hour keep the batch; the fifth past
    /// the hour kills it, and its feedback with it.
    #[test]
    fn server_errors_kill_a_batch_only_after_five_over_an_hour() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path()).unwrap();
        let (a, f) = queued(&st, "t1");
        let t0 = chrono::Utc::now();
        for i in 0..6 {
            let now = t0 + chrono::Duration::minutes(10 * i);
            assert!(!st.server_error(a, "HTTP 500", now).unwrap(), "attempt {i}");
        }
        assert_eq!(st.outbox_counts().unwrap().0, 2);
        assert!(
            st.server_error(a, "HTTP 500", t0 + chrono::Duration::minutes(61))
                .unwrap()
        );
        assert_eq!(st.outbox_counts().unwrap(), (0, 2));
        assert_eq!(st.actions_state("t1").unwrap(), ActionsState::Dead);
        // Retrying the actions revives its tick's feedback too, attempts reset.
        assert_eq!(st.revive(a).unwrap(), vec![a, f]);
        let l = st.outbox_list().unwrap();
        assert!(l.iter().all(|e| !e.dead && e.attempts == 0), "{l:?}");
        // And the count starts over: one more 500 past the hour is not death.
        assert!(
            !st.server_error(a, "HTTP 500", t0 + chrono::Duration::hours(3))
                .unwrap()
        );
    }

    /// Fewer than five, however long ago, is not death either.
    #[test]
    fn an_old_first_error_alone_does_not_kill() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path()).unwrap();
        let (a, _) = queued(&st, "t2");
        let t0 = chrono::Utc::now();
        for h in 0..4 {
            assert!(
                !st.server_error(a, "HTTP 500", t0 + chrono::Duration::hours(h * 5))
                    .unwrap()
            );
        }
        assert!(
            st.server_error(a, "HTTP 500", t0 + chrono::Duration::hours(30))
                .unwrap()
        );
    }
}
