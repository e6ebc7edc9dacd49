//! What each of the platform's 21 tools does here, over the caller's
//! per-(user, space) items (`store`). Arguments arrive already parsed by
//! `validate` (defaults filled in), so a handler reads them without checks.
//!
//! Output shapes: the ones the contract read from the platform's source
//! (`todo.create` → `{"task"}`, `todo.list` → `{"tasks"}`, `todo.complete` →
//! `{"ok": true}`, `mood.log` → `{"entry"}`, `mood.today` → `{"entries"}`,
//! `spaces.list` → `{"spaces", "activeSpaceId"}`); the others are shaped
//! the same way (one created thing under its singular name, lists under the
//! plural). Ids are UUIDs. `Err` is the reason of a handler failure, which
//! the server reports as `Tool X failed: <reason>`.

use chrono::{Duration, NaiveDate, Utc};
use serde_json::{Map, Value, json};

use super::McpCaller;
use super::store;
use crate::db::{Db, now_iso};

/// Runs tool `name` (one of the catalog's) with parsed `args`.
pub fn call(
    db: &Db,
    who: &McpCaller,
    name: &str,
    args: &Map<String, Value>,
) -> Result<Value, String> {
    let a = Args(args);
    match name {
        "todo.create" => todo_create(db, who, a),
        "todo.list" => todo_list(db, who, a),
        "todo.complete" => todo_complete(db, who, a),
        "journal.add" => journal_add(db, who, a),
        "notes.create" => notes_create(db, who, a),
        "notes.search" => notes_search(db, who, a),
        "mood.log" => mood_log(db, who, a),
        "mood.today" => mood_today(db, who, a),
        "mood.recent" => mood_recent(db, who, a),
        "habits.create" => habits_create(db, who, a),
        "habits.list" => habits_list(db, who, a),
        "habits.update" => habits_update(db, who, a),
        "habits.archive" => habits_archive(db, who, a),
        "spaces.list" => Ok(json!({
            "spaces": store::spaces(db, &who.user_id)?,
            "activeSpaceId": who.space_id,
        })),
        "me.listReferenceImages" => Ok(json!({ "images": [] })),
        // The paid tool: the sandbox never pretends to have generated images.
        "me.generateWithReference" => {
            Err("image generation is not available in the sandbox".into())
        }
        "augur.captureSign" => augur_capture(db, who, a),
        "augur.resolveSign" => augur_resolve(db, who, a),
        "augur.listOpenSigns" => augur_open(db, who, a),
        "augur.consultOracle" => augur_oracle(db, who, a),
        "augur.yearRecap" => augur_recap(db, who, a),
        // The catalog and this table are kept in step by a test.
        other => Err(format!("no sandbox handler for {other}")),
    }
}

/// Typed reads of parsed arguments.
#[derive(Clone, Copy)]
struct Args<'a>(&'a Map<String, Value>);

impl<'a> Args<'a> {
    fn value(self, k: &str) -> Value {
        self.0.get(k).cloned().unwrap_or(Value::Null)
    }
    fn str(self, k: &str) -> Option<&'a str> {
        self.0.get(k).and_then(Value::as_str)
    }
    fn bool(self, k: &str) -> bool {
        self.0.get(k).and_then(Value::as_bool).unwrap_or(false)
    }
    fn limit(self, k: &str) -> usize {
        self.0
            .get(k)
            .and_then(Value::as_f64)
            .map_or(usize::MAX, |n| n as usize)
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn today() -> String {
    Utc::now().format("%Y-%m-%d").to_string()
}

fn newest_first(mut items: Vec<Value>) -> Vec<Value> {
    items.reverse();
    items
}

fn todo_create(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let now = now_iso();
    let task = json!({
        "id": new_id(),
        "title": a.value("title"),
        "description": a.value("description"),
        "priority": a.value("priority"),
        "dueDate": a.value("dueDate"),
        "completed": false,
        "completedAt": null,
        "createdAt": now,
        "updatedAt": now,
    });
    store::insert(db, who, "todo", &task)?;
    Ok(json!({ "task": task }))
}

fn todo_list(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let all = a.bool("includeCompleted");
    let tasks: Vec<Value> = store::list(db, who, "todo")?
        .into_iter()
        .filter(|t| all || t["completed"] != json!(true))
        .take(a.limit("limit"))
        .collect();
    Ok(json!({ "tasks": tasks }))
}

/// Idempotent: completing a completed task keeps its first `completedAt`.
fn todo_complete(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let id = a.str("id").unwrap_or_default();
    let Some(mut task) = store::get(db, who, "todo", id)? else {
        return Err(format!("Todo not found: {id}"));
    };
    if task["completed"] != json!(true) {
        let now = now_iso();
        task["completed"] = json!(true);
        task["completedAt"] = json!(now);
        task["updatedAt"] = json!(now);
        store::update(db, who, &task)?;
    }
    Ok(json!({ "ok": true }))
}

fn journal_add(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let entry = json!({
        "id": new_id(),
        "title": a.value("title"),
        "content": a.value("content"),
        "entryDate": a.str("entryDate").map_or_else(today, str::to_string),
        "mood": a.value("mood"),
        "tags": a.value("tags"),
        "createdAt": now_iso(),
    });
    store::insert(db, who, "journal", &entry)?;
    Ok(json!({ "entry": entry }))
}

fn notes_create(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let now = now_iso();
    let note = json!({
        "id": new_id(),
        "title": a.value("title"),
        "content": a.value("content"),
        "color": a.value("color"),
        "isPinned": a.bool("isPinned"),
        "isArchived": false,
        "createdAt": now,
        "updatedAt": now,
    });
    store::insert(db, who, "note", &note)?;
    Ok(json!({ "note": note }))
}

/// Case-insensitive substring over title + content; an empty query lists
/// the most recent notes.
fn notes_search(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let q = a.str("query").unwrap_or_default().to_lowercase();
    let archived = a.bool("includeArchived");
    let hit = |n: &Value, k: &str| n[k].as_str().is_some_and(|v| v.to_lowercase().contains(&q));
    let notes: Vec<Value> = newest_first(store::list(db, who, "note")?)
        .into_iter()
        .filter(|n| archived || n["isArchived"] != json!(true))
        .filter(|n| q.is_empty() || hit(n, "title") || hit(n, "content"))
        .take(a.limit("limit"))
        .collect();
    Ok(json!({ "notes": notes }))
}

fn mood_log(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let now = Utc::now();
    let entry = json!({
        "id": new_id(),
        "level": a.value("level"),
        "emotion": a.value("emotion"),
        "secondaryEmotions": a.value("secondaryEmotions"),
        "activity": a.value("activity"),
        "withWhom": a.value("withWhom"),
        "notes": a.value("notes"),
        "tags": a.value("tags"),
        "date": a.str("date").map_or_else(today, str::to_string),
        "time": a.str("time").map_or_else(|| now.format("%H:%M").to_string(), str::to_string),
        "createdAt": now_iso(),
    });
    store::insert(db, who, "mood", &entry)?;
    Ok(json!({ "entry": entry }))
}

fn mood_today(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let day = a.str("date").map_or_else(today, str::to_string);
    let entries: Vec<Value> = store::list(db, who, "mood")?
        .into_iter()
        .filter(|m| m["date"] == json!(day))
        .collect();
    Ok(json!({ "entries": entries }))
}

/// Entries of the last `days` days (today included), newest first.
fn mood_recent(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let days = a.0.get("days").and_then(Value::as_i64).unwrap_or(7);
    let since = (Utc::now().date_naive() - Duration::days(days - 1))
        .format("%Y-%m-%d")
        .to_string();
    let entries: Vec<Value> = newest_first(store::list(db, who, "mood")?)
        .into_iter()
        .filter(|m| m["date"].as_str().is_some_and(|d| d >= since.as_str()))
        .take(a.limit("limit"))
        .collect();
    Ok(json!({ "entries": entries }))
}

fn habits_create(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let now = now_iso();
    let habit = json!({
        "id": new_id(),
        "title": a.value("title"),
        "icon": a.value("icon"),
        "color": a.value("color"),
        "targetPerDay": a.value("targetPerDay"),
        "defaultDuration": a.value("defaultDuration"),
        "isArchived": false,
        "createdAt": now,
        "updatedAt": now,
    });
    store::insert(db, who, "habit", &habit)?;
    Ok(json!({ "habit": habit }))
}

fn habits_list(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let archived = a.bool("includeArchived");
    let habits: Vec<Value> = store::list(db, who, "habit")?
        .into_iter()
        .filter(|h| archived || h["isArchived"] != json!(true))
        .collect();
    Ok(json!({ "habits": habits }))
}

fn habit(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let id = a.str("id").unwrap_or_default();
    store::get(db, who, "habit", id)?.ok_or_else(|| format!("Habit not found: {id}"))
}

/// Only the fields given change.
fn habits_update(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let mut h = habit(db, who, a)?;
    for k in ["title", "icon", "color", "targetPerDay", "defaultDuration"] {
        if let Some(v) = a.0.get(k) {
            h[k] = v.clone();
        }
    }
    h["updatedAt"] = json!(now_iso());
    store::update(db, who, &h)?;
    Ok(json!({ "habit": h }))
}

fn habits_archive(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let mut h = habit(db, who, a)?;
    h["isArchived"] = json!(a.bool("archived"));
    h["updatedAt"] = json!(now_iso());
    store::update(db, who, &h)?;
    Ok(json!({ "habit": h }))
}

fn augur_capture(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let mut entry = Map::new();
    entry.insert("id".into(), json!(new_id()));
    for k in [
        "kind",
        "source",
        "claim",
        "sourceCategory",
        "vibe",
        "feltMeaning",
        "expectedOutcome",
        "expectedBy",
        "probability",
        "tags",
    ] {
        entry.insert(k.into(), a.value(k));
    }
    let encountered = a.str("encounteredAt").map_or_else(today, str::to_string);
    entry.insert("encounteredAt".into(), json!(encountered));
    entry.insert("outcome".into(), json!("open"));
    entry.insert("outcomeNote".into(), Value::Null);
    entry.insert("resolvedAt".into(), Value::Null);
    entry.insert("createdAt".into(), json!(now_iso()));
    let entry = Value::Object(entry);
    store::insert(db, who, "augur", &entry)?;
    Ok(json!({ "entry": entry }))
}

fn augur_resolve(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let id = a.str("entryId").unwrap_or_default();
    let Some(mut entry) = store::get(db, who, "augur", id)? else {
        return Err(format!("Sign not found: {id}"));
    };
    entry["outcome"] = a.value("outcome");
    entry["outcomeNote"] = a.value("note");
    entry["resolvedAt"] = json!(now_iso());
    store::update(db, who, &entry)?;
    Ok(json!({ "entry": entry }))
}

/// When an open sign is due for a look: `expectedBy`, else 30 days after
/// it was encountered.
fn reminder(entry: &Value) -> String {
    if let Some(by) = entry["expectedBy"].as_str() {
        return by.to_string();
    }
    entry["encounteredAt"]
        .as_str()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .map(|d| (d + Duration::days(30)).format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn augur_open(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let kind = a.str("kind");
    let mut open: Vec<Value> = store::list(db, who, "augur")?
        .into_iter()
        .filter(|e| e["outcome"] == json!("open"))
        .filter(|e| kind.is_none_or(|k| e["kind"] == json!(k)))
        .collect();
    open.sort_by_key(reminder);
    open.truncate(a.limit("limit"));
    Ok(json!({ "entries": open }))
}

/// Share of resolved signs that came true (`partly` counts half), or null
/// when none is resolved.
fn hit_rate(resolved: &[&Value]) -> Value {
    if resolved.is_empty() {
        return Value::Null;
    }
    let score: f64 = resolved
        .iter()
        .map(|e| match e["outcome"].as_str() {
            Some("fulfilled") => 1.0,
            Some("partly") => 0.5,
            _ => 0.0,
        })
        .sum();
    json!((score / resolved.len() as f64 * 100.0).round() / 100.0)
}

/// Deterministic: the track record of the caller's resolved signs of the
/// same kind and source category.
fn augur_oracle(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let all = store::list(db, who, "augur")?;
    let similar: Vec<&Value> = all
        .iter()
        .filter(|e| e["outcome"] != json!("open"))
        .filter(|e| {
            e["kind"] == a.value("kind") && e["sourceCategory"] == a.value("sourceCategory")
        })
        .collect();
    let rate = hit_rate(&similar);
    let verdict = match rate.as_f64() {
        None => "Noch keine Erfahrung mit solchen Zeichen.",
        Some(r) if r >= 0.6 => "Solche Zeichen haben sich oft bewahrheitet.",
        Some(r) if r >= 0.3 => "Solche Zeichen treffen manchmal zu.",
        Some(_) => "Solche Zeichen haben sich selten bewahrheitet.",
    };
    Ok(json!({
        "oracle": {
            "kind": a.value("kind"),
            "sourceCategory": a.value("sourceCategory"),
            "vibe": a.value("vibe"),
            "similarResolved": similar.len(),
            "hitRate": rate,
            "verdict": verdict,
        }
    }))
}

fn augur_recap(db: &Db, who: &McpCaller, a: Args) -> Result<Value, String> {
    let year =
        a.0.get("year")
            .and_then(Value::as_i64)
            .unwrap_or_else(|| Utc::now().format("%Y").to_string().parse().unwrap_or(2026));
    let prefix = format!("{year}-");
    let all = store::list(db, who, "augur")?;
    let of_year: Vec<&Value> = all
        .iter()
        .filter(|e| {
            e["encounteredAt"]
                .as_str()
                .is_some_and(|d| d.starts_with(&prefix))
        })
        .collect();
    let resolved: Vec<&Value> = of_year
        .iter()
        .copied()
        .filter(|e| e["outcome"] != json!("open"))
        .collect();
    let count_by = |k: &str| {
        let mut m = Map::new();
        for e in &of_year {
            let key = e[k].as_str().unwrap_or("other").to_string();
            let n = m.get(&key).and_then(Value::as_u64).unwrap_or(0);
            m.insert(key, json!(n + 1));
        }
        Value::Object(m)
    };
    Ok(json!({
        "recap": {
            "year": year,
            "total": of_year.len(),
            "resolved": resolved.len(),
            "open": of_year.len() - resolved.len(),
            "hitRate": hit_rate(&resolved),
            "byKind": count_by("kind"),
            "byVibe": count_by("vibe"),
            "byOutcome": count_by("outcome"),
            "bySourceCategory": count_by("sourceCategory"),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::catalog;

    /// Every catalog tool has a handler (none falls to "no sandbox handler").
    #[test]
    fn every_catalog_tool_is_handled() {
        let db = Db::in_memory().unwrap();
        store::init(&db).unwrap();
        let who = McpCaller {
            user_id: "u".into(),
            space_id: "s".into(),
        };
        for t in catalog::tools() {
            let r = call(&db, &who, &t.name, &Map::new());
            if let Err(e) = r {
                assert!(!e.starts_with("no sandbox handler"), "{}: {e}", t.name);
            }
        }
    }
}
