//! Local state that makes the runner safe to kill and cheap to rerun, in one
//! SQLite file (`state.db` in the state directory):
//! - [`outbox`]: a tick's batches, written before posting, removed after a 2xx;
//! - [`memory`]: when each persona ran and how it ended (zero-action and
//!   failure backoff, so no persona burns LLM money in a loop);
//! - [`ledger`]: each persona tick's transcript, pruned by age;
//! - [`summary`]: each persona tick's summary, kept much longer (reports).
//! - [`lock`]: one process per state directory (an OS file lock).
//!
//! Why SQLite: a transaction makes "the batch is queued" atomic, and an
//! operator can read all of it with `sqlite3`. Statements on a persona tick's
//! path are `prepare_cached`: parsing their SQL again every time was ~4 % of a
//! persona-tick's CPU (BENCHMARKS.md, overhead).

pub mod error_class;
pub mod ledger;
pub mod lock;
pub mod memory;
pub mod outbox;
pub mod summary;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

const SCHEMA: &str = r#"
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    persona_id TEXT NOT NULL,
    email      TEXT NOT NULL,
    tick_id    TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('actions', 'feedback')),
    body       BLOB NOT NULL,
    rows       INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    -- set when the server refused the batch for good (a 4xx, or server errors past
    -- outbox::DEAD_AFTER_*; columns server_errors, first_server_error_at: outbox::migrate):
    -- kept for inspection and `outbox retry`, never resent on its own
    dead       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tick_id, kind)
);
CREATE TABLE IF NOT EXISTS runs (
    persona_id           TEXT PRIMARY KEY,
    email                TEXT NOT NULL,
    last_tick_id         TEXT,
    started_at           TEXT,
    finished_at          TEXT,
    outcome              TEXT,
    actions              INTEGER NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    next_eligible_at     TEXT,
    last_error           TEXT
);
CREATE TABLE IF NOT EXISTS ledger (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tick_id     TEXT NOT NULL UNIQUE,
    persona_id  TEXT NOT NULL,
    email       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    transcript  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_started ON ledger(started_at);
"#;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {path}: {message}")]
    Dir { path: PathBuf, message: String },
    #[error("state database {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// The state database. Cheap to clone; one connection behind a mutex (every
/// statement is a few rows, and one writer keeps the outbox's order simple).
#[derive(Clone)]
pub struct State {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl State {
    /// Opens (creating if needed) `state.db` in `dir`.
    pub fn open(dir: &Path) -> Result<State, StateError> {
        std::fs::create_dir_all(dir).map_err(|e| StateError::Dir {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let path = dir.join("state.db");
        let db = |source| StateError::Db {
            path: path.clone(),
            source,
        };
        private_files(&path).map_err(|e| StateError::Dir {
            path: dir.to_path_buf(),
            message: format!("cannot make state.db private (0600): {e}"),
        })?;
        let mut conn = Connection::open(&path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        outbox::migrate(&conn).map_err(db)?;
        summary::migrate(&mut conn).map_err(db)?;
        Ok(State {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn call<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c).map_err(|source| StateError::Db {
            path: self.path.clone(),
            source,
        })
    }
}

/// `state.db` is created 0600 (and an older one made so, with its WAL and
/// SHM files): it holds error texts and transcripts, which are redacted but
/// still the operator's business alone. SQLite gives the WAL and SHM files
/// the database file's mode when it creates them.
fn private_files(db: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(db)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Now, as stored in the state database (RFC 3339 UTC).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

pub(crate) fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub(crate) fn parse_ts(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}
