//! The database's own bookkeeping: a small key/value table (`meta`), today
//! only when the ledger was last pruned and with which retention.
//!
//! Why a table of its own and not a column of `runs`: `runs` has one row per
//! persona, and a process-wide fact there would be a fake persona that run
//! memory, `report` and an operator's `sqlite3` would all have to step over.
//! Key/value, because the next such fact should not need a migration.

use rusqlite::{OptionalExtension, params};

use super::{State, StateError};

/// Created at every open (`CREATE … IF NOT EXISTS`), like the other tables.
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#;

impl State {
    /// The value stored under `key`, if any.
    pub fn meta_get(&self, key: &str) -> Result<Option<String>, StateError> {
        self.call(|c| {
            c.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row(params![key], |r| r.get(0))
                .optional()
        })
    }

    /// Stores (or replaces) `value` under `key`.
    pub fn meta_set(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.call(|c| {
            c.prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])
            .map(|_| ())
        })
    }
}
