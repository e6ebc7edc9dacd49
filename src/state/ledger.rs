//! The ledger: each persona tick's transcript (prompts, model turns, tool calls
//! with arguments and results, errors, timings, token usage), kept for later
//! inspection and pruned by age. Secrets never enter it: the transcript holds
//! what the model and the tools saw, never credentials, and it is redacted
//! (`crate::redact`) on the way in, since an error in it may quote a body.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{State, StateError, ts};

impl State {
    #[allow(clippy::too_many_arguments)] // one row's columns, all required
    pub fn ledger_write(
        &self,
        tick_id: &str,
        persona_id: &str,
        email: &str,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
        outcome: &str,
        transcript: &serde_json::Value,
    ) -> Result<(), StateError> {
        // Error texts in the transcript may quote a server's body.
        let text = crate::redact::redact(&transcript.to_string());
        self.call(|c| {
            c.prepare_cached(
                "INSERT INTO ledger (tick_id, persona_id, email, started_at, finished_at, outcome, transcript)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(tick_id) DO UPDATE SET finished_at = excluded.finished_at, outcome = excluded.outcome,
                   transcript = excluded.transcript",
            )?
            .execute(params![tick_id, persona_id, email, ts(started), ts(finished), outcome, text])
            .map(|_| ())
        })
    }

    /// Drops entries that started before `now - days`. Returns how many.
    pub fn ledger_prune(&self, days: u32, now: DateTime<Utc>) -> Result<usize, StateError> {
        // Checked: configuration bounds the days, and a bound that ever
        // slips must prune nothing rather than panic every tick.
        let cutoff = chrono::TimeDelta::try_days(days.into())
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let cutoff = ts(cutoff);
        self.call(|c| c.execute("DELETE FROM ledger WHERE started_at < ?1", params![cutoff]))
    }

    /// The transcript of one persona tick.
    pub fn ledger_get(&self, tick_id: &str) -> Result<Option<serde_json::Value>, StateError> {
        use rusqlite::OptionalExtension;
        self.call(|c| {
            c.query_row(
                "SELECT transcript FROM ledger WHERE tick_id = ?1",
                params![tick_id],
                |r| r.get::<_, String>(0),
            )
            .optional()
        })
        .map(|o| o.and_then(|t| serde_json::from_str(&t).ok()))
    }
}
