//! The ledger: each persona tick's transcript (prompts, model turns, tool calls
//! with arguments and results, errors, timings, token usage), kept for later
//! inspection and pruned by age. Secrets never enter it: the transcript holds
//! what the model and the tools saw, never credentials, and it is redacted
//! (`crate::redact`) on the way in, since an error in it may quote a body.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{State, StateError, parse_ts, ts};

/// The ledger and its summaries are pruned at most this often.
pub const PRUNE_EVERY: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// The `meta` key of the last prune: when, and with which retention.
const LAST_PRUNE: &str = "last_prune";

/// What a prune removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub transcripts: usize,
    pub summaries: usize,
}

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

    /// Prunes transcripts (`ledger_days`) and summaries (`summary_days`)
    /// unless that was done less than [`PRUNE_EVERY`] ago with the same
    /// retention; `None` when skipped.
    ///
    /// Why once a day: retention is counted in days, so pruning every tick
    /// (every few minutes) only rescanned both tables to delete nothing. The
    /// time and the retention are kept in `meta`, so a restart does not prune
    /// again, while a changed retention (or a clock set back) prunes at once.
    pub fn prune_daily(
        &self,
        ledger_days: u32,
        summary_days: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<Pruned>, StateError> {
        let stamp = serde_json::json!({"ledgerDays": ledger_days, "summaryDays": summary_days});
        if let Some(last) = self.meta_get(LAST_PRUNE)? {
            let last: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
            let at = last["at"].as_str().and_then(parse_ts);
            let same = last["ledgerDays"] == stamp["ledgerDays"]
                && last["summaryDays"] == stamp["summaryDays"];
            if same && at.is_some_and(|at| at <= now && now - at < PRUNE_EVERY) {
                return Ok(None);
            }
        }
        let pruned = Pruned {
            transcripts: self.ledger_prune(ledger_days, now)?,
            summaries: self.summary_prune(summary_days, now)?,
        };
        let mut stamp = stamp;
        stamp["at"] = ts(now).into();
        self.meta_set(LAST_PRUNE, &stamp.to_string())?;
        Ok(Some(pruned))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn old_entry(s: &State, tick: &str, now: DateTime<Utc>) {
        let then = now - chrono::TimeDelta::days(30);
        s.ledger_write(tick, "p", "p@x", then, then, "ok", &serde_json::json!({}))
            .unwrap();
    }

    #[test]
    fn prunes_once_a_day_unless_the_retention_changes() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        let now = chrono::Utc::now();
        old_entry(&s, "t1", now);
        let first = s.prune_daily(7, 400, now).unwrap();
        assert_eq!(first.map(|p| p.transcripts), Some(1));
        // Within the day: skipped, the old entry stays.
        old_entry(&s, "t2", now);
        let hour = now + chrono::TimeDelta::hours(1);
        assert_eq!(s.prune_daily(7, 400, hour).unwrap(), None);
        assert!(s.ledger_get("t2").unwrap().is_some());
        // A reopened database remembers (a restart does not prune again).
        drop(s);
        let s = State::open(dir.path()).unwrap();
        assert_eq!(s.prune_daily(7, 400, hour).unwrap(), None);
        // A changed retention prunes at once.
        assert!(s.prune_daily(8, 400, hour).unwrap().is_some());
        assert!(s.ledger_get("t2").unwrap().is_none());
        // A day later: pruned again.
        old_entry(&s, "t3", now);
        assert_eq!(
            s.prune_daily(8, 400, hour + PRUNE_EVERY - chrono::TimeDelta::seconds(1))
                .unwrap(),
            None
        );
        let next = s.prune_daily(8, 400, hour + PRUNE_EVERY).unwrap();
        assert_eq!(next.map(|p| p.transcripts), Some(1));
        // A clock set back prunes rather than waiting a day from the future.
        old_entry(&s, "t4", now);
        assert!(s.prune_daily(8, 400, now).unwrap().is_some());
    }
}
