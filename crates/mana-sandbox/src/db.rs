//! The sandbox's SQLite database: users, sessions, spaces, personas and the
//! rows the runner posts, under the table names an operator would look for
//! (`persona_actions`, `persona_feedback`).
//!
//! One connection behind a mutex: the sandbox is a test double, its queries are
//! tiny, and a single writer keeps ON CONFLICT semantics exactly like the
//! platform's.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

const SCHEMA: &str = r#"
PRAGMA journal_mode = WAL;
-- No fsync per commit (WAL + NORMAL stays consistent, only a power cut can
-- lose the newest commits): with FULL, every request paid ~0.4 ms of fsync
-- under the one connection's lock, and the sandbox, not the runner, capped a
-- tick at ~60 persona-ticks/s whatever the cores (BENCHMARKS.md, scaling).
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token   TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE
);
-- Every login attempt, so tests can count them per persona and tick.
CREATE TABLE IF NOT EXISTS login_attempts (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    email   TEXT NOT NULL,
    at      TEXT NOT NULL,
    -- ok | invalid_credentials | account_locked | email_not_verified
    outcome TEXT NOT NULL
);
-- The platform's lockout: failures in a row, and until when the account is locked.
CREATE TABLE IF NOT EXISTS login_locks (
    email        TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT
);
-- Accounts not stamped as personas (login answers 403 EMAIL_NOT_VERIFIED).
CREATE TABLE IF NOT EXISTS unverified_emails (
    email TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS spaces (
    id       TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    -- stored as the JSON *string* mana-auth returns
    metadata TEXT,
    seq      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
    space_id TEXT NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (space_id, user_id)
);
CREATE TABLE IF NOT EXISTS personas (
    user_id        TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    -- apps/api keeps the email on the persona row and no name
    email          TEXT NOT NULL UNIQUE,
    archetype      TEXT NOT NULL,
    system_prompt  TEXT NOT NULL,
    -- the JSON as sent (an object, or whatever `typeof 'object'` let in)
    module_mix     TEXT NOT NULL,
    tick_cadence   TEXT NOT NULL,
    last_active_at TEXT,
    created_at     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS persona_actions (
    id            TEXT PRIMARY KEY,
    persona_id    TEXT NOT NULL REFERENCES personas(user_id) ON DELETE CASCADE,
    tick_id       TEXT NOT NULL,
    tool_name     TEXT NOT NULL,
    input_hash    TEXT,
    result        TEXT NOT NULL,
    error_message TEXT,
    latency_ms    INTEGER,
    created_at    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS persona_feedback (
    id         TEXT PRIMARY KEY,
    persona_id TEXT NOT NULL REFERENCES personas(user_id) ON DELETE CASCADE,
    tick_id    TEXT NOT NULL,
    module     TEXT NOT NULL,
    rating     INTEGER NOT NULL,
    notes      TEXT,
    created_at TEXT NOT NULL
);
"#;

#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    pub fn open(path: &Path) -> anyhow::Result<Db> {
        let conn = Connection::open(path)
            .map_err(|e| anyhow::anyhow!("cannot open sandbox database {}: {e}", path.display()))?;
        Self::init(conn)
    }

    pub fn in_memory() -> anyhow::Result<Db> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> anyhow::Result<Db> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection. Keep `f` short: it holds the lock.
    pub fn call<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }

    /// The user a bearer token belongs to.
    pub fn user_for_token(&self, token: &str) -> Option<String> {
        self.call(|c| {
            c.query_row(
                "SELECT user_id FROM sessions WHERE token = ?1",
                params![token],
                |r| r.get(0),
            )
            .optional()
        })
        .ok()
        .flatten()
    }

    /// How many logins were tried for `email` (any outcome).
    pub fn login_attempts(&self, email: &str) -> i64 {
        self.call(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM login_attempts WHERE email = ?1",
                params![email],
                |r| r.get(0),
            )
        })
        .unwrap_or(-1)
    }

    /// Marks `email` as (not) verified: an unverified account's login
    /// answers 403 `EMAIL_NOT_VERIFIED`, as one the platform never stamped
    /// as a persona.
    pub fn set_email_verified(&self, email: &str, verified: bool) {
        let sql = if verified {
            "DELETE FROM unverified_emails WHERE email = ?1"
        } else {
            "INSERT OR IGNORE INTO unverified_emails (email) VALUES (?1)"
        };
        let _ = self.call(|c| c.execute(sql, params![email]));
    }

    /// Whether `user_id` is a member of `space_id`.
    pub fn is_member(&self, user_id: &str, space_id: &str) -> bool {
        self.call(|c| {
            c.query_row(
                "SELECT 1 FROM members WHERE user_id = ?1 AND space_id = ?2",
                params![user_id, space_id],
                |_| Ok(()),
            )
            .optional()
        })
        .ok()
        .flatten()
        .is_some()
    }

    /// A single integer from a query, for tests and the smoke check.
    pub fn count(&self, sql: &str) -> i64 {
        self.call(|c| c.query_row(sql, [], |r| r.get(0)))
            .unwrap_or(-1)
    }
}

/// Now as the platform writes timestamps (RFC 3339, milliseconds, `Z`).
pub fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
