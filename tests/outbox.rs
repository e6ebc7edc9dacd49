//! Dead batches never lose rows silently, and a full disk does not lose a
//! tick: `tick --once` (the real binary) and the runner (in process) against
//! a sandbox whose internal routes are made to answer 401, 400, 500, 503 or
//! a 2xx without JSON; the `outbox` command lists, retries and drops.

#[path = "common/tick.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Seed, json_stdout as json_of, output as run, requests_seen, run_once};
use mana_personas::runner::delivery::Delivery;
use mana_sandbox::{Fault, FaultKind, RouteGroup, Sandbox};
use serde_json::Value;

#[track_caller]
fn code(o: &Output, want: i32) {
    assert_eq!(
        o.status.code(),
        Some(want),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

struct Env {
    sb: Sandbox,
    home: tempfile::TempDir,
    ids: BTreeMap<String, String>,
}

impl Env {
    async fn new(directive: &str) -> Env {
        let sb = common::sandbox(None).await;
        let home = tempfile::tempdir().unwrap();
        let cfg = common::config(&sb.url(), &home.path().join("seed-state"), &[]);
        let ids = common::seed(&cfg, &[Seed::daily("box@mana.test", directive)]).await;
        Env { sb, home, ids }
    }

    async fn tick(&self) -> Output {
        run(common::binary(
            &self.sb.url(),
            self.home.path(),
            &["tick", "--once", "--json"],
        ))
        .await
    }

    async fn outbox(&self, args: &[&str]) -> Output {
        let mut all = vec!["outbox"];
        all.extend_from_slice(args);
        run(common::binary(&self.sb.url(), self.home.path(), &all)).await
    }

    /// `outbox list --json`'s entries.
    async fn entries(&self) -> Vec<Value> {
        let o = self.outbox(&["list", "--json"]).await;
        code(&o, 0);
        json_of(&o)["entries"].as_array().unwrap().clone()
    }

    fn uid(&self) -> &str {
        &self.ids["box@mana.test"]
    }

    fn rows(&self, table: &str) -> i64 {
        self.sb.db().count(&format!(
            "SELECT COUNT(*) FROM {table} WHERE persona_id = '{}'",
            self.uid()
        ))
    }

    /// The next `count` POSTs to paths containing `path` get `kind`.
    fn fault(&self, path: &str, kind: FaultKind, count: u32) {
        self.sb.faults().push(Fault {
            route: RouteGroup::Internal,
            kind,
            count,
            path_contains: Some(path.into()),
        });
    }
}

fn status(status: u16) -> FaultKind {
    FaultKind::Status {
        status,
        retry_after: None,
    }
}

fn state_db(home: &Path) -> PathBuf {
    home.join("state").join("state.db")
}

/// The platform is down: the start-up drain tries the first queued batch
/// (with its retries) and leaves the rest for the next tick, saying so
/// once — it does not spend every batch's retries before the due list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_stops_at_the_first_batch_the_platform_does_not_take() {
    let sb = common::sandbox(None).await;
    let home = tempfile::tempdir().unwrap();
    let cfg = common::config(&sb.url(), &home.path().join("seed-state"), &[]);
    let seeds: Vec<Seed> = (0..3)
        .map(|i| Seed::daily(&format!("down{i}@mana.test"), "[sandbox:tools=1]"))
        .collect();
    common::seed(&cfg, &seeds).await;
    let env = Env {
        sb,
        home,
        ids: BTreeMap::new(),
    };
    env.fault("/actions", status(503), 10_000);
    code(&env.tick().await, 3);
    assert_eq!(
        env.entries().await.len(),
        6,
        "3 ticks, actions and feedback"
    );
    let before = requests_seen(&env.sb, "/actions");

    let o = env.tick().await;
    code(&o, 3);
    let tried = requests_seen(&env.sb, "/actions") - before;
    // One batch's attempts (the client retries a 503 up to 5 times), not three.
    assert!((1..=5).contains(&tried), "{tried} actions POSTs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        stderr.matches("6 batches left for the next tick").count(),
        1,
        "{stderr}"
    );
    assert_eq!(json_of(&o)["outboxPending"], 6);
}

/// A rotated service key: the queued batches are answered 401. They stay
/// pending (never dead), the tick stops with an error naming the status and
/// MANA_SERVICE_KEY and exits 1; with the key accepted again the next tick
/// posts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_on_a_queued_batch_keeps_it_pending_and_stops_the_tick() {
    let env = Env::new("[sandbox:tools=2]").await;
    env.fault("/actions", status(503), 1000);
    code(&env.tick().await, 3);
    assert!(!env.entries().await.is_empty());
    env.sb.faults().clear();

    // Only the queued batch's POST is refused: the due list would answer
    // 401 with the same words, and must not be what this test sees.
    env.fault("/actions", status(401), 1000);
    let o = env.tick().await;
    code(&o, 1);
    let all = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        all.contains("HTTP 401") && all.contains("MANA_SERVICE_KEY"),
        "{all}"
    );
    let entries = env.entries().await;
    assert_eq!(entries.len(), 2, "actions and feedback: {entries:?}");
    assert!(
        entries.iter().all(|e| e["dead"] == false),
        "a 401 never dead-letters: {entries:?}"
    );
    assert_eq!(env.rows("persona_actions"), 0);

    env.sb.faults().clear();
    let o = env.tick().await;
    code(&o, 0);
    assert!(env.entries().await.is_empty());
    assert_eq!(env.rows("persona_actions"), 2);
    assert!(env.rows("persona_feedback") >= 1);
}

/// A 2xx whose body is empty or not JSON means the platform took the batch:
/// it leaves the outbox, the persona is fine, the tick exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_without_json_is_delivered() {
    let env = Env::new("[sandbox:tools=2]").await;
    env.fault(
        "/actions",
        FaultKind::Rebody {
            body: String::new(),
        },
        1,
    );
    env.fault("/feedback", FaultKind::Rebody { body: "OK".into() }, 1);
    let o = env.tick().await;
    code(&o, 0);
    let s = json_of(&o);
    assert_eq!(s["outboxPending"], 0, "{s}");
    assert_eq!(s["outboxDead"], 0, "{s}");
    assert_eq!(env.sb.faults().injected(), 2, "both answers were rewritten");
    assert_eq!(env.rows("persona_actions"), 2);
    assert!(env.rows("persona_feedback") >= 1);
}

/// Actions refused for good (400): the tick's feedback is not posted while
/// its actions are undelivered — it waits, dead with them. `outbox retry`
/// of the actions revives both and posts actions, then feedback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_waits_for_its_actions_and_retry_posts_both() {
    let env = Env::new("[sandbox:tools=2]").await;
    env.fault(
        "/actions",
        FaultKind::Respond {
            status: 400,
            body: serde_json::json!({"error": "One or more action rows failed validation"}),
        },
        1,
    );
    let o = env.tick().await;
    code(&o, 1);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("refused the batch for good") && stderr.contains("failed validation"),
        "an error line with the answer: {stderr}"
    );
    assert_eq!(
        env.rows("persona_feedback"),
        0,
        "feedback went before its actions"
    );
    let entries = env.entries().await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries.iter().all(|e| e["dead"] == true), "{entries:?}");
    let actions = entries.iter().find(|e| e["kind"] == "actions").unwrap();
    assert!(
        actions["lastError"].as_str().unwrap().contains("HTTP 400"),
        "{actions}"
    );

    let id = actions["id"].as_i64().unwrap().to_string();
    let o = env.outbox(&["retry", &id, "--json"]).await;
    code(&o, 0);
    let r = json_of(&o);
    assert_eq!(r["revived"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["delivered"], 2, "{r}");
    assert!(env.entries().await.is_empty());
    assert_eq!(env.rows("persona_actions"), 2);
    assert!(env.rows("persona_feedback") >= 1);
}

/// A batch answered 500 on every drain is dead only after 5 attempts that
/// span at least an hour (the hour is made to pass by moving the first
/// error's time back in state.db): before that it stays pending and the
/// tick exits 3. Then `outbox list`, `drop` (refused without `--yes` when
/// stdin is not a terminal) and `drop --yes --json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_kills_a_batch_only_after_five_attempts_over_an_hour() {
    let env = Env::new("[sandbox:tools=1]").await;
    env.fault("/actions", status(500), 10_000);
    let o = env.tick().await;
    code(&o, 3);
    let actions_state = || async {
        let e = env.entries().await;
        let a = e.iter().find(|e| e["kind"] == "actions").unwrap().clone();
        (
            a["attempts"].as_u64().unwrap(),
            a["dead"].as_bool().unwrap(),
        )
    };
    assert_eq!(actions_state().await, (1, false));
    // Four more drains within the hour: still pending.
    for n in 2..=4 {
        code(&env.tick().await, 3);
        assert_eq!(actions_state().await, (n, false));
    }
    // The first error was two hours ago: still not dead before the fifth.
    let db = rusqlite::Connection::open(state_db(env.home.path())).unwrap();
    db.execute(
        "UPDATE outbox SET first_server_error_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-2 hours')",
        [],
    )
    .unwrap();
    let o = env.tick().await;
    code(&o, 3);
    assert_eq!(actions_state().await, (5, true));
    let s = json_of(&o);
    assert_eq!(
        s["outboxDead"], 2,
        "actions and the feedback waiting for them: {s}"
    );
    // No longer held back by its undeliverable day, the persona ran again.
    assert_eq!(s["ran"], 1, "{s}");

    // The operator looks, then gives the actions up.
    let list = env.outbox(&["list"]).await;
    code(&list, 0);
    let table = String::from_utf8_lossy(&list.stdout);
    assert!(
        table.contains("dead") && table.contains("box@mana.test"),
        "{table}"
    );
    let id = env
        .entries()
        .await
        .iter()
        .find(|e| e["kind"] == "actions")
        .unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let refused = env.outbox(&["drop", &id]).await;
    code(&refused, 2);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    let o = env.outbox(&["drop", &id, "--yes", "--json"]).await;
    code(&o, 0);
    assert_eq!(json_of(&o)["dropped"]["id"].to_string(), id);
    let dead: Vec<Value> = env
        .entries()
        .await
        .into_iter()
        .filter(|e| e["dead"] == true)
        .collect();
    assert_eq!(
        dead.len(),
        1,
        "the feedback stays until dropped or retried: {dead:?}"
    );
    assert_eq!(dead[0]["kind"], "feedback");
}

/// A persona making 40 calls, a runner whose state database is full, and
/// an apps/api that answers every actions POST 503 (until the faults are
/// cleared).
async fn full_disk_and_outage(
    email: &str,
) -> (
    Sandbox,
    tempfile::TempDir,
    mana_personas::runner::Runner,
    String,
) {
    let sb = common::sandbox(None).await;
    let home = tempfile::tempdir().unwrap();
    // One call per model turn: 40 calls need 40 turns.
    let cfg = common::config(
        &sb.url(),
        &home.path().join("state"),
        &[("max_turns", "50")],
    );
    let ids = common::seed(&cfg, &[Seed::daily(email, "[sandbox:tools=40]")]).await;
    let r = common::runner(&cfg);
    r.state.limit_pages(r.state.page_count().unwrap()).unwrap();
    sb.faults().push(Fault {
        route: RouteGroup::Internal,
        kind: status(503),
        count: 10_000,
        path_contains: Some("/actions".into()),
    });
    let uid = ids[email].clone();
    (sb, home, r, uid)
}

/// Disk full plus an outage: the outbox cannot be written and the platform
/// answers 503. The rows are kept in memory (not "refused", not lost), the
/// tick says they are not durable and would exit 3; when the platform is
/// back, the next tick of the same process delivers them from memory.
///
/// The full disk is SQLite's own `max_page_count` on the runner's
/// connection (`State::limit_pages`): a write that needs one more page fails
/// with `SQLITE_FULL`, the very error SQLite returns when the kernel says
/// ENOSPC, through the same `enqueue` error path. (As root, which the tests
/// may be, a read-only file or directory stops no write.) The persona makes
/// 40 calls, so its actions batch (> 4 KiB) cannot fit in the outbox's
/// existing page and needs a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_keeps_the_rows_in_memory_and_delivers_them_later() {
    let (sb, home, r, uid) = full_disk_and_outage("full@mana.test").await;
    let uid = &uid;
    let s = run_once(&r).await;
    let rep = &s.reports[0];
    assert_eq!(rep.actions, 40, "{rep:?}");
    assert!(
        matches!(&rep.delivery, Delivery::Unsaved(why) if why.contains("NOT durable")),
        "{:?}",
        rep.delivery
    );
    assert!(
        s.failed.is_empty(),
        "a 503 is not a refusal: {:?}",
        s.failed
    );
    assert!(s.unsaved_batches >= 1, "{s:?}");
    assert_eq!(s.outbox_pending, 0);
    assert_eq!(mana_personas::cli::tick::exit_code(&s), 3);
    assert_eq!(r.unsaved.len(), s.unsaved_batches);
    let actions = |sb: &Sandbox| common::actions_of(sb, uid).len();
    assert_eq!(actions(&sb), 0);

    // The platform is back (the disk is still full): the next tick of this
    // process posts them from memory.
    sb.faults().clear();
    let s = run_once(&r).await;
    assert_eq!(s.unsaved_batches, 0, "{s:?}");
    assert!(s.outbox_delivered >= 1, "{s:?}");
    assert_eq!(mana_personas::cli::tick::exit_code(&s), 0);
    assert_eq!(actions(&sb), 40);
    assert!(!common::feedback_of(&sb, uid).is_empty());
    // Delivered from memory: no tool-call journal is left to post them again.
    let journal: i64 = rusqlite::Connection::open(state_db(home.path()))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM journal", [], |r| r.get(0))
        .unwrap();
    assert_eq!(journal, 0);
}

/// Disk full plus an outage, then the disk is freed while the platform is
/// still down: the next tick moves the rows held in memory into the outbox
/// (durable again: pending there, nothing left in memory), and once the
/// platform is back they are posted from the outbox. Same full disk as
/// above (`State::limit_pages`), lifted by raising the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_held_in_memory_go_back_to_the_outbox_once_the_disk_has_room() {
    let (sb, _home, r, uid) = full_disk_and_outage("freed@mana.test").await;
    let uid = &uid;
    let s = run_once(&r).await;
    assert!(s.unsaved_batches >= 1, "{s:?}");
    assert_eq!(s.outbox_pending, 0);

    r.state.limit_pages(1_000_000).unwrap();
    let s = run_once(&r).await;
    assert_eq!(s.unsaved_batches, 0, "{s:?}");
    assert_eq!(r.unsaved.len(), 0);
    assert_eq!(s.outbox_pending, 2, "actions and feedback, durable: {s:?}");
    assert_eq!(mana_personas::cli::tick::exit_code(&s), 3);

    sb.faults().clear();
    let s = run_once(&r).await;
    assert_eq!(s.outbox_pending, 0, "{s:?}");
    assert_eq!(s.outbox_delivered, 2, "{s:?}");
    assert_eq!(common::actions_of(&sb, uid).len(), 40);
}

/// Disk full and the actions refused for good (400): with no outbox to keep
/// them dead, the actions are logged whole and dropped — and their tick's
/// feedback goes with them, never posted on its own (the drain of the
/// in-memory batches walks a snapshot taken before the refusal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_full_disk_refused_actions_take_their_feedback_with_them() {
    let (sb, _home, r, uid) = full_disk_and_outage("refused-full@mana.test").await;
    sb.faults().clear();
    sb.faults().push(Fault {
        route: RouteGroup::Internal,
        kind: status(400),
        count: 10_000,
        path_contains: Some("/actions".into()),
    });
    let s = run_once(&r).await;
    let rep = &s.reports[0];
    assert!(
        matches!(&rep.delivery, Delivery::Refused(_)),
        "{:?}",
        rep.delivery
    );
    assert!(
        common::feedback_of(&sb, &uid).is_empty(),
        "feedback of refused actions reached the platform"
    );
    assert_eq!(r.unsaved.len(), 0, "nothing left in memory");
}

/// Rows held in memory need no database: while another process keeps
/// state.db locked (a backup, a `sqlite3` shell), the tick fails naming the
/// lock — and still posts them, instead of waiting for the lock to go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_held_in_memory_are_posted_while_state_db_is_locked() {
    let (sb, home, r, uid) = full_disk_and_outage("locked-full@mana.test").await;
    let s = run_once(&r).await;
    assert!(s.unsaved_batches >= 1, "{s:?}");
    assert!(common::actions_of(&sb, &uid).is_empty());
    sb.faults().clear();
    let db = rusqlite::Connection::open(state_db(home.path())).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    let res = common::try_run_once(&r).await;
    let e = res.expect_err("the tick cannot use a locked state.db");
    assert!(e.to_string().contains("locked"), "{e}");
    assert_eq!(
        common::actions_of(&sb, &uid).len(),
        40,
        "posted from memory"
    );
    assert_eq!(r.unsaved.len(), 0);
    db.execute_batch("ROLLBACK;").unwrap();
}
