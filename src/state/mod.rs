//! Local state that makes the runner safe to kill and cheap to rerun, in one
//! SQLite file (`state.db` in the state directory):
//! - [`outbox`]: a tick's batches, written before posting, removed after a 2xx;
//! - [`journal`]: each tool call of a running persona tick, until its batches
//!   are in the outbox (a killed tick's calls are queued at the next start);
//! - [`memory`]: when each persona ran and how it ended (zero-action and
//!   failure backoff, so no persona burns LLM money in a loop);
//! - [`ledger`]: each persona tick's transcript, pruned by age;
//! - [`summary`]: each persona tick's summary, kept much longer (reports).
//! - [`lock`]: one process per state directory (an OS file lock);
//! - [`meta`]: the database's own bookkeeping (when the ledger was pruned).
//!
//! Why SQLite: a transaction makes "the batch is queued" atomic, and an
//! operator can read all of it with `sqlite3`. Statements on a persona tick's
//! path are `prepare_cached`: parsing their SQL again every time was ~4 % of a
//! persona-tick's CPU (BENCHMARKS.md, overhead).
//!
//! The methods are synchronous (the CLI commands and tests call them as they
//! are); async code (`tick`, `daemon`) goes through [`State::off_runtime`],
//! so a statement waiting on another process's lock never holds up the
//! runtime thread: invariant "no SQLite call on the runtime thread".

pub mod error_class;
pub mod journal;
pub mod ledger;
pub mod lock;
pub mod memory;
pub mod meta;
pub mod outbox;
pub mod summary;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// How long a statement waits for another connection's lock before it fails
/// as [`StateError::Locked`]: long enough for any of our own statements (a
/// few rows) to end, short enough that a tick reports a stuck lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another process (a `sqlite3` shell in a transaction, a backup tool)
    /// holds the write lock past [`BUSY_TIMEOUT`]: said as such, since
    /// "database is locked" alone does not tell an operator where to look.
    #[error("{} is locked by another process (waited {} s)", path.display(), waited.as_secs())]
    Locked { path: PathBuf, waited: Duration },
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
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        conn.execute_batch(journal::SCHEMA).map_err(db)?;
        conn.execute_batch(meta::SCHEMA).map_err(db)?;
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
        f(&mut c).map_err(|source| match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StateError::Locked {
                    path: self.path.clone(),
                    waited: BUSY_TIMEOUT,
                }
            }
            _ => StateError::Db {
                path: self.path.clone(),
                source,
            },
        })
    }

    /// Runs `f` (any of the synchronous methods) on tokio's blocking pool and
    /// awaits it: the way async code reaches the database.
    ///
    /// Why: `tick` and `daemon` run on a current-thread runtime, and a
    /// statement waits up to [`BUSY_TIMEOUT`] for another process's lock;
    /// on the runtime thread that wait froze `/health`, `/diag/tick` and the
    /// watchdog ping. Why `spawn_blocking` and not a thread owning the
    /// connection behind a channel (or `tokio-rusqlite`, which is that): the
    /// synchronous methods stay as they are for the CLI and tests, the
    /// mutex already serialises statements as one owner thread would, and
    /// the blocking pool has threads of its own even on a current-thread
    /// runtime (`block_in_place` panics there). The cost is a thread hop per
    /// call, microseconds beside a persona tick.
    ///
    /// Dropping the future does not stop `f`: a call already running ends
    /// (within one busy timeout) on its own, so a write that started commits.
    pub async fn off_runtime<T, F>(&self, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&State) -> Result<T, StateError> + Send + 'static,
    {
        let state = self.clone();
        match tokio::task::spawn_blocking(move || f(&state)).await {
            Ok(res) => res,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StateError::Dir {
                path: self.path.clone(),
                message: "the runtime is shutting down".into(),
            }),
        }
    }

    /// Takes the write lock and lets it go at once: `Err(Locked)` when
    /// another process holds it past the busy timeout. A tick checks this
    /// first, so a locked database fails the tick with that reason before
    /// any persona spends LLM money on rows that could not be queued.
    pub fn writable(&self) -> Result<(), StateError> {
        self.call(|c| c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;"))
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
