//! What the tools read and write: one SQLite table of JSON items keyed by
//! (user, space, kind), in the sandbox's one database (`db.rs`).
//!
//! One table for every module: the twin needs the platform's isolation (a
//! persona sees only its own data, and only in the space its session was
//! opened for) and its answers' shapes, not its relational model. An operator
//! still finds everything with `select * from mcp_items`.

use rusqlite::{OptionalExtension, params};
use serde_json::{Value, json};

use super::McpCaller;
use crate::db::Db;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS mcp_items (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL,
    space_id   TEXT NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mcp_items_owner ON mcp_items(user_id, space_id, kind);
-- every tools/call that reached the server (past the transport: a faulted or
-- refused request is not here), whatever its result: what a test compares the
-- runner's action rows with
CREATE TABLE IF NOT EXISTS mcp_calls (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL,
    space_id   TEXT NOT NULL,
    tool       TEXT NOT NULL,
    arguments  TEXT NOT NULL,
    at         TEXT NOT NULL
);
"#;

/// Creates the table (idempotent).
pub fn init(db: &Db) -> rusqlite::Result<()> {
    db.call(|c| c.execute_batch(SCHEMA))
}

/// Logs one `tools/call` the server is about to run (arguments as received,
/// compact JSON). Why: the platform changes as a call runs; a test proves
/// every such call got its action row from the runner by comparing the two.
pub fn log_call(db: &Db, who: &McpCaller, tool: &str, arguments: &Value) {
    let res = db.call(|c| {
        c.execute(
            "INSERT INTO mcp_calls (user_id, space_id, tool, arguments, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                who.user_id,
                who.space_id,
                tool,
                arguments.to_string(),
                chrono::Utc::now().to_rfc3339()
            ],
        )
    });
    if let Err(e) = res {
        tracing::error!(error = %e, "sandbox MCP: cannot log the call");
    }
}

/// A failure the handler reports as `Tool X failed: ...`.
fn db_err(e: rusqlite::Error) -> String {
    format!("database error: {e}")
}

/// Stores `item` (which has `id` and `createdAt`) for the caller's space.
pub fn insert(db: &Db, who: &McpCaller, kind: &str, item: &Value) -> Result<(), String> {
    db.call(|c| {
        c.execute(
            "INSERT INTO mcp_items (id, user_id, space_id, kind, data, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                item["id"].as_str(),
                who.user_id,
                who.space_id,
                kind,
                item.to_string(),
                item["createdAt"].as_str()
            ],
        )
    })
    .map(|_| ())
    .map_err(db_err)
}

/// The caller's items of `kind` in this space, oldest first.
pub fn list(db: &Db, who: &McpCaller, kind: &str) -> Result<Vec<Value>, String> {
    db.call(|c| {
        let mut st = c.prepare(
            "SELECT data FROM mcp_items WHERE user_id = ?1 AND space_id = ?2 AND kind = ?3 ORDER BY seq",
        )?;
        st.query_map(params![who.user_id, who.space_id, kind], |r| {
            r.get::<_, String>(0)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(db_err)
    .map(|rows| {
        rows.iter()
            .filter_map(|d| serde_json::from_str(d).ok())
            .collect()
    })
}

/// One of the caller's items in this space; another user's or another
/// space's id is not found, as on the platform.
pub fn get(db: &Db, who: &McpCaller, kind: &str, id: &str) -> Result<Option<Value>, String> {
    db.call(|c| {
        c.query_row(
            "SELECT data FROM mcp_items WHERE id = ?1 AND user_id = ?2 AND space_id = ?3 AND kind = ?4",
            params![id, who.user_id, who.space_id, kind],
            |r| r.get::<_, String>(0),
        )
        .optional()
    })
    .map_err(db_err)
    .map(|d| d.and_then(|d| serde_json::from_str(&d).ok()))
}

/// Replaces an item the caller owns.
pub fn update(db: &Db, who: &McpCaller, item: &Value) -> Result<(), String> {
    db.call(|c| {
        c.execute(
            "UPDATE mcp_items SET data = ?4 WHERE id = ?1 AND user_id = ?2 AND space_id = ?3",
            params![
                item["id"].as_str(),
                who.user_id,
                who.space_id,
                item.to_string()
            ],
        )
    })
    .map(|_| ())
    .map_err(db_err)
}

/// The spaces `user_id` is a member of, as `spaces.list` shows them:
/// `{id, name, slug, type}`, the type read from the space's metadata.
pub fn spaces(db: &Db, user_id: &str) -> Result<Vec<Value>, String> {
    let rows = db
        .call(|c| {
            let mut st = c.prepare(
                "SELECT s.id, s.name, s.metadata FROM spaces s JOIN members m ON m.space_id = s.id
                 WHERE m.user_id = ?1 ORDER BY s.seq",
            )?;
            st.query_map(params![user_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db_err)?;
    Ok(rows
        .into_iter()
        .map(|(id, name, metadata)| {
            let meta: Value = metadata
                .and_then(|m| serde_json::from_str(&m).ok())
                .unwrap_or(Value::Null);
            let ty = meta["type"].as_str().unwrap_or("personal").to_string();
            // serde_json keeps insertion order (preserve_order): the
            // platform's order.
            json!({"id": id, "name": name, "slug": slug(&name), "type": ty})
        })
        .collect())
}

/// `Anna (persönlich)` → `anna-persönlich`: lower case, runs of anything but
/// letters and digits become one `-`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for ch in name.chars().flat_map(char::to_lowercase) {
        if ch.is_alphanumeric() {
            out.push(ch);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}
