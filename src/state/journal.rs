//! The tool-call journal: each tool call of a running persona tick, written
//! durably as it starts and again as it ends, until the tick's batches reach
//! the outbox (which removes them in the same transaction).
//!
//! Why: a tool call changes the platform the moment MCP runs it, but its
//! action row lived only in memory until the tick's end. A SIGKILL (OOM, a
//! node drained without grace) mid-persona lost the rows of every call already
//! made, and the persona simply ran again. With the journal, the next start
//! turns an interrupted tick's entries into that tick's actions batch (same
//! tick id, rows in call order: the row ids the platform would have given a
//! normal batch) and queues it: every call that reached the platform has its
//! row.
//!
//! Why at the start too, not only when the call answers: a call in flight at
//! the kill may well have run on the platform; its entry, written before the
//! request left, becomes an error row ("in flight when the runner stopped"),
//! exactly as a call in flight at the persona's deadline does.
//!
//! Durability: `state.db` is WAL with `synchronous = NORMAL`. A commit is in
//! the WAL file (the OS's page cache) when the INSERT returns; the process can
//! die any way it likes and the next open replays it. Only a power loss or a
//! kernel crash before the OS writes the page back can lose the last commits —
//! and those take the in-memory tick with them anyway. No fsync per call, so
//! a journal write is tens of microseconds against a tool call's milliseconds.
//!
//! Keyed by (tick id, call index): writing an entry again replaces it, so the
//! "done" write after the "started" write, or a repeated one, is harmless.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{State, StateError, ts};
use crate::platform::internal::{ActionResult, ActionRow, ActionsBatch, FeedbackBatch};

pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS journal (
    tick_id    TEXT NOT NULL,
    -- the call's index in the tick (its slot): rows are posted in this order
    idx        INTEGER NOT NULL,
    persona_id TEXT NOT NULL,
    email      TEXT NOT NULL,
    started_at TEXT NOT NULL,
    -- the process that wrote it: ticks of this process may still be running
    writer     TEXT NOT NULL,
    -- 0 while the call is in flight, 1 once it answered
    done       INTEGER NOT NULL,
    -- the action row (JSON), exactly as it goes into the actions batch
    row        TEXT NOT NULL,
    PRIMARY KEY (tick_id, idx)
);
"#;

/// The error message of a call the runner was killed during: it may or may
/// not have run on the platform.
pub const IN_FLIGHT_MESSAGE: &str =
    "in flight when the runner stopped (killed?): the call may or may not have run on the platform";

/// This process, as the journal's `writer`: entries written by another
/// process are of a tick that process will never finish (one process per
/// state directory, `state::lock`), entries of this one may be running.
static WRITER: LazyLock<String> = LazyLock::new(|| uuid::Uuid::now_v7().to_string());

/// Which persona tick an entry belongs to.
#[derive(Debug, Clone)]
pub struct JournalTick {
    pub persona_id: String,
    pub email: String,
    pub tick_id: String,
    pub started_at: DateTime<Utc>,
}

/// An interrupted tick whose journal became its queued actions batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Requeued {
    pub persona_id: String,
    pub email: String,
    pub tick_id: String,
    /// Tool calls recorded before the interruption (rows of the batch).
    pub calls: usize,
}

/// The row of a call that has started and not answered yet.
pub fn in_flight_row(tick_id: &str, tool_name: &str, input_hash: &str) -> ActionRow {
    ActionRow {
        tick_id: tick_id.to_string(),
        tool_name: tool_name.to_string(),
        input_hash: Some(input_hash.to_string()),
        result: ActionResult::Error,
        error_message: Some(IN_FLIGHT_MESSAGE.into()),
        latency_ms: None,
    }
}

impl State {
    /// Records call `index` of `tick`: `done` false when it starts (the row
    /// is then [`in_flight_row`]), true with its real row once it answered.
    /// One prepared statement, one small commit.
    pub fn journal_call(
        &self,
        tick: &JournalTick,
        index: usize,
        row: &ActionRow,
        done: bool,
    ) -> Result<(), StateError> {
        let json = serde_json::to_string(row).expect("an action row serialises");
        self.call(|c| {
            c.prepare_cached(
                "INSERT INTO journal (tick_id, idx, persona_id, email, started_at, writer, done, row)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (tick_id, idx) DO UPDATE SET done = excluded.done, row = excluded.row",
            )?
            .execute(params![
                tick.tick_id,
                index as i64,
                tick.persona_id,
                tick.email,
                ts(tick.started_at),
                WRITER.as_str(),
                done,
                json
            ])
            .map(|_| ())
        })
    }

    /// Call `index` of `tick_id` is not an action row after all (a 401 that
    /// could not be repeated: it did not run).
    pub fn journal_void(&self, tick_id: &str, index: usize) -> Result<(), StateError> {
        self.call(|c| {
            c.prepare_cached("DELETE FROM journal WHERE tick_id = ?1 AND idx = ?2")?
                .execute(params![tick_id, index as i64])
                .map(|_| ())
        })
    }

    /// The tick's rows reached the platform some other way than the outbox
    /// (posted directly when the outbox could not be written): forget them.
    pub fn journal_forget(&self, tick_id: &str) -> Result<(), StateError> {
        self.call(|c| forget(c, tick_id))
    }

    /// Turns the journal of every tick another process left unfinished into
    /// that tick's actions batch in the outbox (no feedback batch: the rating
    /// turn never happened), removing the entries in the same transaction.
    /// A tick that already has an outbox entry only loses its entries (the
    /// outbox's `UNIQUE (tick_id, kind)` keeps the queued batch).
    pub fn requeue_interrupted(&self) -> Result<Vec<Requeued>, StateError> {
        self.requeue_interrupted_except(WRITER.as_str())
    }

    fn requeue_interrupted_except(&self, writer: &str) -> Result<Vec<Requeued>, StateError> {
        type Entry = (String, String, String, String);
        let entries: Vec<Entry> = self.call(|c| {
            let mut st = c.prepare_cached(
                "SELECT tick_id, persona_id, email, row FROM journal WHERE writer <> ?1
                 ORDER BY started_at, tick_id, idx",
            )?;
            st.query_map(params![writer], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect()
        })?;
        let mut ticks: Vec<(Requeued, Vec<ActionRow>)> = Vec::new();
        for (tick_id, persona_id, email, row) in entries {
            if ticks.last().is_none_or(|(t, _)| t.tick_id != tick_id) {
                ticks.push((
                    Requeued {
                        persona_id,
                        email,
                        tick_id: tick_id.clone(),
                        calls: 0,
                    },
                    Vec::new(),
                ));
            }
            let (t, rows) = ticks.last_mut().expect("just pushed");
            match serde_json::from_str::<ActionRow>(&row) {
                Ok(r) => rows.push(r),
                // Never written by this code; kept out rather than sent broken.
                Err(e) => {
                    tracing::error!(tick = %tick_id, error = %e, "unreadable journal entry skipped")
                }
            }
            t.calls = rows.len();
        }
        let mut done = Vec::new();
        for (t, rows) in ticks {
            if rows.is_empty() {
                self.journal_forget(&t.tick_id)?;
                continue;
            }
            self.enqueue(
                &t.persona_id,
                &t.email,
                &t.tick_id,
                &ActionsBatch { actions: rows },
                &FeedbackBatch {
                    feedback: Vec::new(),
                },
            )?;
            done.push(t);
        }
        Ok(done)
    }
}

/// Removes a tick's entries; also called inside [`State::enqueue`]'s
/// transaction, so "queued in the outbox" and "gone from the journal" are one
/// commit.
pub(super) fn forget(c: &rusqlite::Connection, tick_id: &str) -> rusqlite::Result<()> {
    c.prepare_cached("DELETE FROM journal WHERE tick_id = ?1")?
        .execute(params![tick_id])
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(id: &str) -> JournalTick {
        JournalTick {
            persona_id: "u1".into(),
            email: "a@mana.test".into(),
            tick_id: id.into(),
            started_at: Utc::now(),
        }
    }

    fn ok_row(tick_id: &str, tool: &str) -> ActionRow {
        ActionRow {
            tick_id: tick_id.into(),
            tool_name: tool.into(),
            input_hash: Some("00ff".into()),
            result: ActionResult::Ok,
            error_message: None,
            latency_ms: Some(12),
        }
    }

    fn actions_in_outbox(s: &State) -> Vec<(String, Vec<ActionRow>)> {
        s.pending(None)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "actions")
            .map(|e| {
                let b: ActionsBatch = serde_json::from_slice(&e.body).unwrap();
                (e.tick_id, b.actions)
            })
            .collect()
    }

    #[test]
    fn an_interrupted_tick_becomes_its_actions_batch_in_call_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        let t = tick("t1");
        // Call 0 answered, call 1 voided (a 401), call 2 answered, call 3 in
        // flight; call 0 written twice (harmless).
        s.journal_call(&t, 0, &in_flight_row("t1", "todo.create", "00ff"), false)
            .unwrap();
        s.journal_call(&t, 1, &in_flight_row("t1", "notes.create", "00ff"), false)
            .unwrap();
        s.journal_call(&t, 2, &ok_row("t1", "mood.log"), true)
            .unwrap();
        s.journal_call(&t, 0, &ok_row("t1", "todo.create"), true)
            .unwrap();
        s.journal_call(&t, 0, &ok_row("t1", "todo.create"), true)
            .unwrap();
        s.journal_void("t1", 1).unwrap();
        s.journal_call(&t, 3, &in_flight_row("t1", "habits.log", "00ff"), false)
            .unwrap();

        // This process's own ticks may still be running: left alone.
        assert_eq!(s.requeue_interrupted().unwrap(), vec![]);
        assert!(actions_in_outbox(&s).is_empty());

        let got = s.requeue_interrupted_except("another process").unwrap();
        assert_eq!(
            got,
            vec![Requeued {
                persona_id: "u1".into(),
                email: "a@mana.test".into(),
                tick_id: "t1".into(),
                calls: 3
            }]
        );
        let queued = actions_in_outbox(&s);
        assert_eq!(queued.len(), 1);
        assert_eq!(
            queued[0].1,
            vec![
                ok_row("t1", "todo.create"),
                ok_row("t1", "mood.log"),
                in_flight_row("t1", "habits.log", "00ff"),
            ]
        );
        // No feedback batch for a tick that never rated.
        assert_eq!(s.pending(None).unwrap().len(), 1);
        // The entries went with the same commit: a second start finds nothing.
        assert_eq!(s.requeue_interrupted_except("another").unwrap(), vec![]);
    }

    #[test]
    fn queueing_a_tick_removes_its_journal_in_the_same_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        s.journal_call(&tick("t1"), 0, &ok_row("t1", "todo.create"), true)
            .unwrap();
        s.journal_call(&tick("t2"), 0, &ok_row("t2", "todo.create"), true)
            .unwrap();
        s.enqueue(
            "u1",
            "a@mana.test",
            "t1",
            &ActionsBatch {
                actions: vec![ok_row("t1", "todo.create")],
            },
            &FeedbackBatch { feedback: vec![] },
        )
        .unwrap();
        let got = s.requeue_interrupted_except("another").unwrap();
        assert_eq!(
            got.iter().map(|r| r.tick_id.as_str()).collect::<Vec<_>>(),
            ["t2"],
            "t1 is queued already: its journal went with the enqueue"
        );
        assert_eq!(actions_in_outbox(&s).len(), 2);

        // Entries of a tick whose batch is queued already (the outbox's
        // UNIQUE (tick_id, kind)): the queued bytes stay, nothing is doubled.
        s.journal_call(&tick("t1"), 0, &ok_row("t1", "notes.create"), true)
            .unwrap();
        s.requeue_interrupted_except("another").unwrap();
        let queued = actions_in_outbox(&s);
        assert_eq!(queued.len(), 2);
        assert_eq!(queued[0].1, vec![ok_row("t1", "todo.create")]);
        assert_eq!(s.requeue_interrupted_except("another").unwrap(), vec![]);
    }
}
