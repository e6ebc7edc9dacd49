//! The outbox: a tick's batches are stored here *before* they are posted and
//! removed only after a 2xx, so a crash, a kill or a platform outage between the
//! LLM work and the POST loses nothing. The stored bytes are exactly what is
//! sent, every time: same tickId, same row order, so the server's row ids make
//! a resend harmless.

use rusqlite::params;

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
    /// The internal endpoint path below the prefix (refused for a persona id
    /// that is not a plain id: see [`crate::http::id_segment`]).
    pub fn path(&self) -> Result<String, crate::http::HttpError> {
        Ok(format!(
            "/{}/{}",
            crate::http::id_segment("POST", &self.persona_id)?,
            self.kind
        ))
    }
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
        self.call(|c| {
            let tx = c.transaction()?;
            let now = ts(now());
            for (kind, body, rows) in [("actions", &a, actions.actions.len()), ("feedback", &f, feedback.feedback.len())] {
                if rows == 0 {
                    continue;
                }
                tx.prepare_cached(
                    "INSERT INTO outbox (persona_id, email, tick_id, kind, body, rows, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT(tick_id, kind) DO NOTHING",
                )?
                .execute(params![persona_id, email, tick_id, kind, body, rows as i64, now])?;
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

    /// How many batches wait to be posted.
    pub fn pending_count(&self) -> Result<u64, StateError> {
        self.call(|c| {
            c.query_row("SELECT COUNT(*) FROM outbox WHERE dead = 0", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|n| n as u64)
    }

    /// The server took it: forget it.
    pub fn delivered(&self, id: i64) -> Result<(), StateError> {
        self.call(|c| {
            c.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute(params![id])
                .map(|_| ())
        })
    }

    /// A transient failure: keep it for the next drain.
    pub fn attempt_failed(&self, id: i64, error: &str) -> Result<(), StateError> {
        self.call(|c| {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, crate::redact::redact(error)],
            )
            .map(|_| ())
        })
    }

    /// The server refused it for good (4xx): keep it for inspection, never resend.
    pub fn dead(&self, id: i64, error: &str) -> Result<(), StateError> {
        self.call(|c| {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, dead = 1 WHERE id = ?1",
                params![id, crate::redact::redact(error)],
            )
            .map(|_| ())
        })
    }
}
