//! The tick engine through the library (`mana_personas::runner`), against the
//! sandbox on loopback: what an operator would check in the platform's tables
//! after a tick.

#[path = "common/tick.rs"]
mod common;

use std::collections::{BTreeSet, HashMap, HashSet};

use common::{Seed, actions_of, feedback_of, run_once};
use mana_personas::platform::internal::{ActionResult, ActionRow, ActionsBatch};
use mana_personas::runner::persona::RunOutcome;
use mana_personas::runner::tick::{self, TickOptions};
use mana_personas::runner::{Runner, batch::input_hash};
use mana_personas::shutdown::Shutdown;
use mana_sandbox::{Fault, FaultKind, RouteGroup, Sandbox};

fn is_hex16(s: &str) -> bool {
    s.len() == 16
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

/// A sandbox, a state dir and a runner pointing at it, with `seeds` seeded.
async fn setup(
    seeds: &[Seed],
    extra: &[(&'static str, &str)],
) -> (Sandbox, tempfile::TempDir, Runner, HashMap<String, String>) {
    let sb = common::sandbox(None).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(&sb.url(), &dir.path().join("state"), extra);
    let ids = common::seed(&cfg, seeds).await.into_iter().collect();
    let r = common::runner(&cfg);
    (sb, dir, r, ids)
}

/// The day is as long as configured: the prompt asks for `DAY_TOOLS_MIN` to
/// `DAY_TOOLS_MAX` calls (the scripted model plays what it is asked), and a
/// lower `MAX_TOOL_CALLS` shortens the prompt's range with it, so a day that
/// ends at that budget is complete, not cut, and nothing warns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_day_is_as_long_as_configured() {
    // Each its own prompt: the scripted model draws the day's length from it.
    let seeds: Vec<Seed> = (0..8)
        .map(|i| Seed::daily(&format!("day.p{i}@mana.test"), &format!("Persona {i}.")))
        .collect();
    for (extra, lo, hi) in [
        (&[("day_tools_min", "1"), ("day_tools_max", "2")][..], 1, 2),
        (&[("max_tool_calls", "2")][..], 2, 2),
        (&[][..], 3, 8),
    ] {
        let (sb, _dir, r, _ids) = setup(&seeds, extra).await;
        let s = run_once(&r).await;
        assert_eq!(s.ok, seeds.len(), "{extra:?}: {:?}", s.failed);
        let calls: Vec<i64> = sb
            .db()
            .call(|c| {
                let mut st = c.prepare("SELECT COUNT(*) FROM mcp_calls GROUP BY user_id")?;
                st.query_map([], |r| r.get(0))?.collect()
            })
            .unwrap();
        assert_eq!(calls.len(), seeds.len(), "{extra:?}");
        assert!(
            calls.iter().all(|&n| (lo..=hi).contains(&n)),
            "{extra:?}: calls per persona {calls:?}, asked for {lo}-{hi}"
        );
        if hi < 8 {
            assert!(
                calls.contains(&hi),
                "{extra:?}: no day reached {hi}: {calls:?}"
            );
        }
        let warned: Vec<&String> = s.reports.iter().flat_map(|p| &p.warnings).collect();
        assert!(warned.is_empty(), "{extra:?}: {warned:?}");
    }
}

/// Test 1: a full tick of our catalog posts every row exactly once, and every
/// row is well formed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_catalog_tick_posts_every_row_once() {
    full_catalog_tick("anthropic").await;
}

/// Test 10: the OpenAI-compatible provider passes the same full tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_catalog_tick_through_openai() {
    full_catalog_tick("openai").await;
}

async fn full_catalog_tick(provider: &str) {
    let seeds = common::catalog_seeds();
    let (sb, _dir, r, ids) =
        setup(&seeds, &[("concurrency", "4"), ("llm_provider", provider)]).await;
    let s = run_once(&r).await;

    // Who is due depends on the weekday: weekdays personas rest on weekends.
    let weekend = matches!(
        chrono::Datelike::weekday(&chrono::Utc::now().date_naive()),
        chrono::Weekday::Sat | chrono::Weekday::Sun
    );
    let expected_due = seeds
        .iter()
        .filter(|p| !(weekend && p.cadence == "weekdays"))
        .count();
    assert_eq!(s.due, expected_due, "due count");
    assert_eq!(s.ran, expected_due, "everybody due ran: {:?}", s.skipped);
    assert!(s.failed.is_empty(), "failures: {:?}", s.failed);
    assert_eq!(s.ok, expected_due);
    assert_eq!(s.outbox_pending, 0);
    assert!(s.actions > 0);

    let mut total_actions = 0usize;
    let mut total_feedback = 0usize;
    for rep in &s.reports {
        assert_eq!(
            rep.outcome,
            RunOutcome::Ok,
            "{}: {:?}",
            rep.email,
            rep.error
        );
        let uid = &ids[&rep.email];
        let rows = actions_of(&sb, uid);
        assert_eq!(rows.len(), rep.actions, "{}: rows vs report", rep.email);
        assert!(!rows.is_empty(), "{} made no call", rep.email);
        let mut modules = BTreeSet::new();
        for (tool, hash, result, err, tick) in &rows {
            assert_eq!(tick, &rep.tick_id);
            let (m, rest) = tool
                .split_once('.')
                .unwrap_or_else(|| panic!("{tool} is not a dotted MCP name"));
            assert!(
                !m.is_empty() && !rest.is_empty() && !tool.contains("__"),
                "{tool}"
            );
            assert!(!m.contains('_'), "{tool}: module part is an LLM encoding");
            assert!(
                hash.as_deref().is_some_and(is_hex16),
                "{tool}: input_hash {hash:?}"
            );
            assert!(result == "ok" || result == "error", "{result}");
            assert_eq!(result == "error", err.is_some(), "{tool}: {err:?}");
            modules.insert(m.to_string());
        }
        let errors = rows.iter().filter(|r| r.2 == "error").count();
        assert_eq!(errors, rep.action_errors, "{}", rep.email);

        let fb = feedback_of(&sb, uid);
        assert_eq!(fb.len(), rep.ratings, "{}: feedback vs report", rep.email);
        let mut seen = HashSet::new();
        for (tick, module, rating, _) in &fb {
            assert_eq!(tick, &rep.tick_id);
            assert!(
                modules.contains(module),
                "{}: rated {module}, used {modules:?}",
                rep.email
            );
            assert!((1..=5).contains(rating), "{module}: {rating}");
            assert!(
                seen.insert((tick.clone(), module.clone())),
                "two rows for {module}"
            );
        }
        total_actions += rows.len();
        total_feedback += fb.len();
    }
    assert_eq!(total_actions, s.actions);
    assert_eq!(total_feedback, s.ratings);
    // Nothing beyond what the reports account for (no duplicates elsewhere).
    assert_eq!(
        sb.db().count("SELECT COUNT(*) FROM persona_actions") as usize,
        total_actions
    );
    assert_eq!(
        sb.db()
            .count("SELECT COUNT(DISTINCT id) FROM persona_actions") as usize,
        total_actions
    );
    assert_eq!(
        sb.db().count("SELECT COUNT(*) FROM persona_feedback") as usize,
        total_feedback
    );
    let api = sb.db().count(&format!(
        "SELECT COUNT(*) FROM llm_requests WHERE api = '{provider}'"
    ));
    assert_eq!(
        api,
        sb.db().count("SELECT COUNT(*) FROM llm_requests"),
        "every LLM request went through {provider}"
    );
    assert!(api > 0);
    // Posted actions move lastActiveAt: nobody ran is due any more.
    assert_eq!(
        sb.db()
            .count("SELECT COUNT(*) FROM personas WHERE last_active_at IS NOT NULL")
            as usize,
        expected_due
    );
    sb.shutdown().await;
}

/// Test 2: the two parallel calls of one turn land on the right rows — the
/// error message belongs to the call that failed, not its neighbour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_calls_keep_their_own_results() {
    let seeds = [Seed::daily(
        "par.error@mana.test",
        "[sandbox:parallel-error]",
    )];
    let (sb, _dir, r, ids) = setup(&seeds, &[]).await;
    let s = run_once(&r).await;
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    let rep = &s.reports[0];
    assert_eq!((rep.actions, rep.action_errors), (2, 1));

    // What the model asked for, in order, from the runner's ledger.
    let ledger = r
        .state
        .ledger_get(&rep.tick_id)
        .unwrap()
        .expect("ledger row");
    let uses: Vec<(String, String)> = ledger["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "model" && e["turn"] == 1)
        .flat_map(|e| e["content"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["type"] == "tool_use")
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_string(),
                input_hash(&b["input"]),
            )
        })
        .collect();
    assert_eq!(uses.len(), 2, "two calls in one turn: {uses:?}");
    let (good_hash, bad_hash) = (&uses[0].1, &uses[1].1);
    assert_ne!(good_hash, bad_hash);

    let rows = actions_of(&sb, &ids["par.error@mana.test"]);
    assert_eq!(rows.len(), 2);
    let good = rows
        .iter()
        .find(|r| r.1.as_deref() == Some(good_hash))
        .expect("row of the valid call");
    let bad = rows
        .iter()
        .find(|r| r.1.as_deref() == Some(bad_hash))
        .expect("row of the invalid call");
    assert_eq!(good.2, "ok", "valid call: {good:?}");
    assert_eq!(good.3, None);
    assert_eq!(bad.2, "error", "invalid call: {bad:?}");
    let msg = bad.3.as_deref().expect("error message on the failing row");
    assert!(!msg.is_empty());
    // The LLM name maps back to this row's MCP tool name.
    assert_eq!(bad.0.replace('.', "_"), uses[1].0.replace('.', "_"));
    assert_eq!(good.0.replace('.', "_"), uses[0].0.replace('.', "_"));
    sb.shutdown().await;
}

/// Test 3a: out-of-range ratings are clamped/rounded, unused modules dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratings_out_of_range_are_clamped_and_unused_modules_dropped() {
    let mut seed = Seed::daily(
        "rating.range@mana.test",
        "[sandbox:rating-out-of-range] [sandbox:tools=8]",
    );
    seed.module_mix = [("todo", 0.4), ("notes", 0.3), ("mood", 0.3)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let (sb, _dir, r, ids) = setup(&[seed], &[]).await;
    let s = run_once(&r).await;
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    let rep = &s.reports[0];
    assert!(!rep.modules.contains(&"invoices".to_string()));
    let fb = feedback_of(&sb, &ids["rating.range@mana.test"]);
    assert!(
        fb.iter().all(|f| f.1 != "invoices"),
        "unused module rated: {fb:?}"
    );
    assert_eq!(
        fb.len(),
        rep.modules.len().min(3),
        "{fb:?} for {:?}",
        rep.modules
    );
    // The scripted model answers 7, 0, 3.6 in the prompt's order.
    let mut got: Vec<i64> = fb.iter().map(|f| f.2).collect();
    got.sort();
    let mut want: Vec<i64> = [5, 1, 4].into_iter().take(fb.len()).collect();
    want.sort();
    assert_eq!(got, want, "{fb:?}");
    assert!(
        fb.len() == 3,
        "precondition: three modules used, got {:?}",
        rep.modules
    );
    sb.shutdown().await;
}

/// Test 3b: an unreadable rating answer becomes one `__parse` row with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_rating_becomes_one_parse_row() {
    let seeds = [Seed::daily(
        "rating.garbage@mana.test",
        "[sandbox:rating-garbage] [sandbox:tools=3]",
    )];
    let (sb, _dir, r, ids) = setup(&seeds, &[]).await;
    let s = run_once(&r).await;
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    let fb = feedback_of(&sb, &ids["rating.garbage@mana.test"]);
    assert_eq!(fb.len(), 1, "{fb:?}");
    let (tick, module, rating, notes) = &fb[0];
    assert_eq!(tick, &s.reports[0].tick_id);
    assert_eq!(module, "__parse");
    assert_eq!(*rating, 3);
    let notes = notes.as_deref().expect("a reason in notes");
    assert!(notes.contains("ratings"), "{notes}");
    assert!(
        notes.contains("nothing stood out"),
        "the answer is quoted: {notes}"
    );
    assert_eq!(actions_of(&sb, &ids["rating.garbage@mana.test"]).len(), 3);
    sb.shutdown().await;
}

/// Test 6: a persona that cannot log in fails with a reason naming the login,
/// the others finish; the next tick backs off from it without any LLM call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_is_reported_and_backed_off() {
    let seeds = [
        Seed::daily("login.bad@mana.test", "[sandbox:tools=2]"),
        Seed::daily("login.good@mana.test", "[sandbox:tools=2]"),
    ];
    let (sb, _dir, r, ids) = setup(&seeds, &[]).await;
    // The platform's password no longer matches what the runner derives.
    let changed = sb
        .db()
        .call(|c| {
            c.execute(
                "UPDATE users SET password_hash = 'not-the-derived-one' WHERE email = 'login.bad@mana.test'",
                [],
            )
        })
        .unwrap();
    assert_eq!(changed, 1);

    let s = run_once(&r).await;
    assert_eq!(s.ran, 2);
    assert_eq!(s.ok, 1);
    assert_eq!(s.failed.len(), 1, "{:?}", s.failed);
    let f = &s.failed[0];
    assert_eq!(f.persona, "login.bad@mana.test");
    let e = f.error.to_lowercase();
    assert!(
        e.contains("login") || e.contains("sign-in") || e.contains("sign_in"),
        "reason names the login: {}",
        f.error
    );
    assert!(e.contains("401"), "reason names the status: {}", f.error);
    assert!(!actions_of(&sb, &ids["login.good@mana.test"]).is_empty());
    assert!(actions_of(&sb, &ids["login.bad@mana.test"]).is_empty());

    // Next tick: only the failed persona is still due, and it is backed off.
    let llm_before = sb.db().count("SELECT COUNT(*) FROM llm_requests");
    let s2 = run_once(&r).await;
    assert_eq!(s2.due, 1);
    assert_eq!(s2.ran, 0);
    assert_eq!(s2.skipped.len(), 1, "{:?}", s2.skipped);
    assert_eq!(s2.skipped[0].persona, "login.bad@mana.test");
    let reason = &s2.skipped[0].reason;
    assert!(
        reason.contains("failed") && reason.contains("next try after"),
        "{reason}"
    );
    assert_eq!(
        sb.db().count("SELECT COUNT(*) FROM llm_requests"),
        llm_before,
        "no LLM call for a backed-off persona"
    );
    sb.shutdown().await;
}

/// Test 7: a persona that makes no tool call posts nothing, stays due on the
/// server, and is not run (nor paid for) again before its cadence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_action_persona_posts_nothing_and_waits() {
    let seeds = [Seed::daily("zero.tools@mana.test", "[sandbox:no-tools]")];
    let (sb, _dir, r, ids) = setup(&seeds, &[]).await;
    let uid = &ids["zero.tools@mana.test"];
    let s = run_once(&r).await;
    assert_eq!(s.ran, 1);
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_eq!(s.reports[0].outcome, RunOutcome::ZeroActions);
    assert_eq!(s.actions, 0);
    assert_eq!(s.ratings, 0);
    assert!(actions_of(&sb, uid).is_empty());
    assert!(feedback_of(&sb, uid).is_empty());
    assert_eq!(
        sb.db()
            .count("SELECT COUNT(*) FROM personas WHERE last_active_at IS NULL"),
        1,
        "lastActiveAt untouched"
    );
    assert_eq!(s.outbox_pending, 0);

    let llm_before = sb.db().count("SELECT COUNT(*) FROM llm_requests");
    assert!(llm_before >= 1);
    let s2 = run_once(&r).await;
    assert_eq!(s2.due, 1, "still due on the server");
    assert_eq!(s2.ran, 0);
    assert_eq!(s2.skipped.len(), 1);
    assert!(
        s2.skipped[0].reason.contains("no tool call"),
        "{}",
        s2.skipped[0].reason
    );
    assert_eq!(
        sb.db().count("SELECT COUNT(*) FROM llm_requests"),
        llm_before,
        "no LLM request for a zero-action persona within its cadence"
    );
    sb.shutdown().await;
}

/// Test 4: posting the same batch twice writes nothing twice, and a second
/// tick right after the first runs nobody and adds no rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reruns_write_nothing_twice() {
    let seeds = [
        Seed::daily("rerun.a@mana.test", "[sandbox:tools=3]"),
        Seed::daily("rerun.b@mana.test", "[sandbox:tools=2]"),
    ];
    let (sb, _dir, r, ids) = setup(&seeds, &[]).await;
    let s = run_once(&r).await;
    assert_eq!((s.ran, s.ok, s.actions), (2, 2, 5), "{:?}", s.failed);
    let actions = sb.db().count("SELECT COUNT(*) FROM persona_actions");
    let feedback = sb.db().count("SELECT COUNT(*) FROM persona_feedback");
    assert_eq!(actions, 5);

    // The very batch the first tick posted, posted again (a retry after a lost answer).
    let uid = &ids["rerun.a@mana.test"];
    let rows = actions_of(&sb, uid);
    let batch = ActionsBatch {
        actions: rows
            .iter()
            .map(|(tool, hash, result, err, tick)| ActionRow {
                tick_id: tick.clone(),
                tool_name: tool.clone(),
                input_hash: hash.clone(),
                result: if result == "ok" {
                    ActionResult::Ok
                } else {
                    ActionResult::Error
                },
                error_message: err.clone(),
                latency_ms: Some(1),
            })
            .collect(),
    };
    // Rows come back in id order; the server's ids are {tickId}-{index}-{tool},
    // so re-sort by index to send the original order.
    let mut batch = batch;
    let ids_in_order: Vec<String> = sb
        .db()
        .call(|c| {
            let mut st = c.prepare("SELECT id FROM persona_actions WHERE persona_id = ?1")?;
            st.query_map([uid], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
    batch.actions.sort_by_key(|a| {
        ids_in_order
            .iter()
            .position(|id| id.starts_with(&a.tick_id) && id.ends_with(&a.tool_name))
            .unwrap_or(usize::MAX)
    });
    for _ in 0..2 {
        r.internal
            .post_actions(uid, &batch, |_, _| {})
            .await
            .expect("repost accepted");
    }
    assert_eq!(
        sb.db().count("SELECT COUNT(*) FROM persona_actions"),
        actions,
        "a reposted batch adds no rows"
    );

    // A fresh batch posted twice lands once.
    let fresh = ActionsBatch {
        actions: vec![ActionRow {
            tick_id: tick::new_tick_id(),
            tool_name: "todo.create".into(),
            input_hash: Some("0123456789abcdef".into()),
            result: ActionResult::Ok,
            error_message: None,
            latency_ms: Some(3),
        }],
    };
    for _ in 0..2 {
        r.internal
            .post_actions(uid, &fresh, |_, _| {})
            .await
            .unwrap();
    }
    assert_eq!(
        sb.db().count("SELECT COUNT(*) FROM persona_actions"),
        actions + 1
    );

    let llm_before = sb.db().count("SELECT COUNT(*) FROM llm_requests");
    let s2 = run_once(&r).await;
    assert_eq!((s2.due, s2.ran, s2.actions), (0, 0, 0));
    assert_eq!(
        sb.db().count("SELECT COUNT(*) FROM persona_actions"),
        actions + 1
    );
    assert_eq!(
        sb.db().count("SELECT COUNT(*) FROM persona_feedback"),
        feedback
    );
    assert_eq!(
        sb.db().count("SELECT COUNT(*) FROM llm_requests"),
        llm_before
    );
    sb.shutdown().await;
}

/// Test 5: transient faults of every dependency are survived: the tick ends
/// ok with all rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_survived() {
    let seeds = [
        Seed::daily("faults.a@mana.test", "[sandbox:tools=3]"),
        Seed::daily("faults.b@mana.test", "[sandbox:tools=3]"),
    ];
    let (sb, _dir, r, ids) = setup(&seeds, &[]).await;
    let status = |route, status, retry_after, count, path: Option<&str>| Fault {
        route,
        kind: FaultKind::Status {
            status,
            retry_after,
        },
        count,
        path_contains: path.map(str::to_string),
    };
    // First persona: 503 ×2 then 429 (retry-after 1 s) on its first LLM call,
    // 503 ×2 on MCP, 503 ×2 on the actions POST.
    sb.faults()
        .push(status(RouteGroup::Llm, 503, None, 2, None));
    sb.faults()
        .push(status(RouteGroup::Llm, 429, Some(1), 1, None));
    sb.faults()
        .push(status(RouteGroup::Mcp, 503, None, 2, None));
    sb.faults()
        .push(status(RouteGroup::Internal, 503, None, 2, Some("/actions")));
    let only = |email: &str| TickOptions {
        personas: vec![email.to_string()],
        ..TickOptions::default()
    };
    let cancel = Shutdown::new();
    let s = tick::run_once(&r, &only("faults.a@mana.test"), &cancel, &|_| {}, &|_| {})
        .await
        .unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    assert_eq!(sb.faults().injected(), 7, "every fault was hit");
    // Second persona: an overloaded 529, then an error event inside a 200 stream.
    sb.faults()
        .push(status(RouteGroup::Llm, 529, None, 1, None));
    sb.faults().push(Fault {
        route: RouteGroup::Llm,
        kind: FaultKind::SseError,
        count: 1,
        path_contains: None,
    });
    let s2 = tick::run_once(&r, &only("faults.b@mana.test"), &cancel, &|_| {}, &|_| {})
        .await
        .unwrap();
    assert!(s2.failed.is_empty(), "{:?}", s2.failed);
    assert_eq!(sb.faults().injected(), 9, "every fault was hit");

    for (s, email) in [(&s, "faults.a@mana.test"), (&s2, "faults.b@mana.test")] {
        assert_eq!(s.ran, 1);
        assert_eq!(s.ok, 1);
        assert_eq!(s.outbox_pending, 0);
        let rep = &s.reports[0];
        assert_eq!(rep.outcome, RunOutcome::Ok);
        let rows = actions_of(&sb, &ids[email]);
        assert_eq!(rows.len(), 3, "{email}: all rows");
        assert_eq!(rows.len(), rep.actions);
        assert_eq!(feedback_of(&sb, &ids[email]).len(), rep.ratings);
        assert!(rep.ratings > 0, "{email}: rating turn survived");
    }
    sb.shutdown().await;
}

/// Test 12: the per-persona deadline fails a persona stuck in a tool call with
/// a reason naming the deadline, and the calls finished before it are posted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persona_deadline_keeps_finished_calls() {
    let seeds = [Seed::daily("deadline@mana.test", "[sandbox:tools=4]")];
    let (sb, _dir, r, ids) = setup(&seeds, &[("persona_timeout_secs", "2")]).await;
    // Let the session setup and the first tool calls through, then stall one.
    sb.faults().push(Fault {
        route: RouteGroup::Mcp,
        kind: FaultKind::Delay { ms: 0 },
        count: MCP_REQUESTS_BEFORE_STALL,
        path_contains: None,
    });
    sb.faults().push(Fault {
        route: RouteGroup::Mcp,
        kind: FaultKind::Delay { ms: 5_000 },
        count: 1,
        path_contains: None,
    });
    let started = std::time::Instant::now();
    let s = run_once(&r).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(s.failed.len(), 1, "{:?}", s.reports[0]);
    let reason = &s.failed[0].error;
    assert!(reason.contains("deadline"), "{reason}");
    let rows = actions_of(&sb, &ids["deadline@mana.test"]);
    let in_flight =
        |r: &&common::ActionDbRow| r.3.as_deref().is_some_and(|e| e.contains("in flight"));
    let finished = rows.iter().filter(|r| !in_flight(r)).count();
    assert!(finished >= 1, "finished calls are posted: {rows:?}");
    let cut: Vec<_> = rows.iter().filter(in_flight).collect();
    assert_eq!(cut.len(), 1, "the stalled call is one error row: {rows:?}");
    assert_eq!(cut[0].2, "error");
    assert!(
        rows.len() < 4,
        "calls never started do not appear: {rows:?}"
    );
    assert_eq!(rows.len(), s.reports[0].actions);
    sb.shutdown().await;
}

/// MCP requests of a session before its second tool call: four of session
/// setup (initialize, the initialized notification, the server stream,
/// tools/list — a stall at the 5th request hits the first call), then the
/// first call. If the client's setup changes, the test fails loudly (no ok row).
const MCP_REQUESTS_BEFORE_STALL: u32 = 5;

/// Issue 12: the ledger and its summaries are pruned once a day, not at
/// every tick: an old transcript written after a tick's prune survives the
/// next tick (the time of the last prune is kept in state.db's `meta`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_is_pruned_once_a_day_not_every_tick() {
    let (_sb, _dir, r, _ids) = setup(&[], &[]).await;
    let old = chrono::Utc::now() - chrono::TimeDelta::days(400);
    let write_old = |tick: &str| {
        r.state
            .ledger_write(tick, "p", "p@x", old, old, "ok", &serde_json::json!({}))
            .unwrap()
    };
    write_old("old-1");
    run_once(&r).await;
    assert!(
        r.state.ledger_get("old-1").unwrap().is_none(),
        "first tick prunes"
    );
    write_old("old-2");
    run_once(&r).await;
    assert!(
        r.state.ledger_get("old-2").unwrap().is_some(),
        "a second tick within the day prunes nothing"
    );
    let last = r.state.meta_get("last_prune").unwrap().expect("recorded");
    assert!(last.contains("\"at\""), "{last}");
}
