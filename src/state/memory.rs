//! Run memory: when each persona last ran and how it ended.
//!
//! Why: the server keeps a persona due until an actions batch is accepted, so a
//! persona that made no tool call — or keeps failing — would be run (and paid
//! for) at every tick, forever. Memory decides, before any LLM call, whether a
//! due persona should really run now.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::{State, StateError, parse_ts, ts};
use crate::catalog::Cadence;

/// First retry of a failed persona after this long, doubling per failure,
/// capped at the persona's cadence.
pub const FIRST_FAILURE_BACKOFF: Duration = Duration::from_secs(5 * 60);

/// How a persona tick ended, as remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Actions were produced (and posted or queued).
    Ok,
    /// The model made no tool call: nothing to post, the server keeps it due.
    ZeroActions,
    Failed,
}

impl Outcome {
    fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ZeroActions => "zero_actions",
            Outcome::Failed => "failed",
        }
    }
}

/// Why a due persona is not run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Last run made no tool call; wait one cadence period.
    ZeroActions { until: DateTime<Utc> },
    /// Failed `failures` times in a row; backing off.
    BackingOff {
        failures: u32,
        until: DateTime<Utc>,
        last_error: String,
    },
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::ZeroActions { until } => write!(
                f,
                "made no tool call last time; next run after {}",
                ts(*until)
            ),
            Skip::BackingOff {
                failures,
                until,
                last_error,
            } => write!(
                f,
                "failed {failures}× in a row (last: {last_error}); next try after {}",
                ts(*until)
            ),
        }
    }
}

/// The wait after `failures` consecutive failures: 5 min, 10, 20, … capped at
/// the cadence period.
pub fn failure_backoff(failures: u32, cadence: Cadence) -> Duration {
    let exp = FIRST_FAILURE_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    exp.min(cadence.period())
}

impl State {
    /// `Ok(())` when the persona may run at `now`; otherwise why not.
    pub fn may_run(
        &self,
        persona_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Skip>, StateError> {
        let row = self.call(|c| {
            c.prepare_cached(
                "SELECT outcome, next_eligible_at, consecutive_failures, COALESCE(last_error, '') FROM runs WHERE persona_id = ?1",
            )?
            .query_row(
                params![persona_id],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()
        })?;
        let Some((outcome, next, failures, last_error)) = row else {
            return Ok(Ok(()));
        };
        let Some(until) = next.as_deref().and_then(parse_ts) else {
            return Ok(Ok(()));
        };
        if now >= until {
            return Ok(Ok(()));
        }
        Ok(Err(match outcome.as_deref() {
            Some("zero_actions") => Skip::ZeroActions { until },
            _ => Skip::BackingOff {
                failures: failures as u32,
                until,
                last_error,
            },
        }))
    }

    pub fn record_start(
        &self,
        persona_id: &str,
        email: &str,
        tick_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.call(|c| {
            c.prepare_cached(
                "INSERT INTO runs (persona_id, email, last_tick_id, started_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(persona_id) DO UPDATE SET email = excluded.email, last_tick_id = excluded.last_tick_id,
                   started_at = excluded.started_at",
            )?
            .execute(params![persona_id, email, tick_id, ts(now)])
            .map(|_| ())
        })
    }

    /// Records the end of a run and when the persona may run next.
    pub fn record_finish(
        &self,
        persona_id: &str,
        outcome: Outcome,
        actions: usize,
        cadence: Cadence,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let error = error.map(crate::redact::redact);
        self.call(|c| {
            let failures: i64 = c
                .prepare_cached("SELECT consecutive_failures FROM runs WHERE persona_id = ?1")?
                .query_row(params![persona_id], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            let (failures, next) = match outcome {
                Outcome::Ok => (0, None),
                Outcome::ZeroActions => (0, Some(now + cadence.period())),
                Outcome::Failed => {
                    let n = failures + 1;
                    (n, Some(now + failure_backoff(n as u32, cadence)))
                }
            };
            c.prepare_cached(
                "UPDATE runs SET finished_at = ?2, outcome = ?3, actions = ?4, consecutive_failures = ?5,
                   next_eligible_at = ?6, last_error = ?7 WHERE persona_id = ?1",
            )?
            .execute(params![persona_id, ts(now), outcome.as_str(), actions as i64, failures, next.map(ts), error.as_deref()])
            .map(|_| ())
        })
    }
}

impl State {
    /// Keeps a persona from running before `until`, on top of the failure
    /// backoff [`State::record_finish`] set (the later of the two wins): a
    /// locked account's `Retry-After`, a refused login's longer wait.
    pub fn hold_until(&self, persona_id: &str, until: DateTime<Utc>) -> Result<(), StateError> {
        let until = ts(until);
        self.call(|c| {
            c.prepare_cached(
                "UPDATE runs SET next_eligible_at = ?2
                 WHERE persona_id = ?1 AND (next_eligible_at IS NULL OR next_eligible_at < ?2)",
            )?
            .execute(params![persona_id, until])
            .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_backoff_doubles_from_five_minutes_up_to_the_cadence() {
        let m = |n| failure_backoff(n, Cadence::Daily).as_secs() / 60;
        assert_eq!([m(1), m(2), m(3), m(4)], [5, 10, 20, 40]);
        assert_eq!(m(30), 24 * 60);
        assert_eq!(
            failure_backoff(5, Cadence::Hourly),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn memory_skips_zero_action_and_failing_personas_until_due_again() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        let t0 = chrono::Utc::now();
        assert!(
            s.may_run("u1", t0).unwrap().is_ok(),
            "unknown personas may run"
        );
        s.record_start("u1", "a@mana.test", "t1", t0).unwrap();
        s.record_finish("u1", Outcome::ZeroActions, 0, Cadence::Hourly, None, t0)
            .unwrap();
        assert!(matches!(
            s.may_run("u1", t0 + chrono::Duration::minutes(59)).unwrap(),
            Err(Skip::ZeroActions { .. })
        ));
        assert!(
            s.may_run("u1", t0 + chrono::Duration::minutes(61))
                .unwrap()
                .is_ok()
        );

        s.record_start("u2", "b@mana.test", "t2", t0).unwrap();
        s.record_finish(
            "u2",
            Outcome::Failed,
            0,
            Cadence::Daily,
            Some("HTTP 401"),
            t0,
        )
        .unwrap();
        s.record_finish(
            "u2",
            Outcome::Failed,
            0,
            Cadence::Daily,
            Some("HTTP 401"),
            t0,
        )
        .unwrap();
        match s.may_run("u2", t0 + chrono::Duration::minutes(9)).unwrap() {
            Err(Skip::BackingOff {
                failures,
                last_error,
                ..
            }) => assert_eq!((failures, last_error.as_str()), (2, "HTTP 401")),
            other => panic!("expected a backoff, got {other:?}"),
        }
        assert!(
            s.may_run("u2", t0 + chrono::Duration::minutes(11))
                .unwrap()
                .is_ok()
        );
        // A lock's Retry-After outlasts the first 5-minute backoff.
        s.record_finish("u3", Outcome::Failed, 0, Cadence::Daily, None, t0)
            .unwrap();
        s.record_start("u3", "c@mana.test", "t3", t0).unwrap();
        s.record_finish("u3", Outcome::Failed, 0, Cadence::Daily, Some("locked"), t0)
            .unwrap();
        s.hold_until("u3", t0 + chrono::Duration::minutes(30))
            .unwrap();
        assert!(
            s.may_run("u3", t0 + chrono::Duration::minutes(29))
                .unwrap()
                .is_err()
        );
        assert!(
            s.may_run("u3", t0 + chrono::Duration::minutes(31))
                .unwrap()
                .is_ok()
        );
        s.hold_until("u3", t0).unwrap();
        assert!(
            s.may_run("u3", t0 + chrono::Duration::minutes(29))
                .unwrap()
                .is_err(),
            "an earlier hold does not shorten a later one"
        );
        s.record_finish("u2", Outcome::Ok, 3, Cadence::Daily, None, t0)
            .unwrap();
        assert!(
            s.may_run("u2", t0).unwrap().is_ok(),
            "success clears the backoff"
        );
    }
}
