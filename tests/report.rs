//! `report`: ledgers written through the state API with chosen timestamps
//! (four weeks of them), aggregated and rendered; the trend rules, the mix
//! adherence and the cost against numbers computed by hand; old ledgers
//! migrated; the HTML opened in a real headless browser.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, TimeZone, Utc};
use mana_personas::llm::pricing::PriceTable;
use mana_personas::report::{self, Format, Query};
use mana_personas::state::State;
use mana_personas::state::summary::{
    self, CallSummary, ErrorClass, RatingSummary, Stage, Summary, Tokens, WaitsMs,
};

fn until() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn call(tool: &str, ok: bool) -> CallSummary {
    CallSummary {
        tool: tool.to_string(),
        ok,
        error_class: (!ok).then_some(ErrorClass::Handler),
        latency_ms: Some(40),
    }
}

fn rating(module: &str, r: u8, notes: &str) -> RatingSummary {
    RatingSummary {
        module: module.to_string(),
        rating: r,
        notes: Some(notes.to_string()),
        action_ids: Vec::new(),
    }
}

fn tick(
    n: usize,
    email: &str,
    at: DateTime<Utc>,
    calls: Vec<CallSummary>,
    ratings: Vec<RatingSummary>,
) -> Summary {
    Summary {
        tick_id: format!("tick-{n:05}"),
        persona_id: format!("id-{email}"),
        email: email.to_string(),
        archetype: "tester".to_string(),
        module_mix: [("todo".to_string(), 0.5), ("notes".to_string(), 0.5)]
            .into_iter()
            .collect(),
        started_at: at,
        finished_at: at + Duration::seconds(30),
        outcome: "ok".to_string(),
        stage: None,
        error: None,
        calls,
        ratings,
        tokens: Tokens::default(),
        model: Some("claude-sandbox".to_string()),
        cost_usd: None,
        retries: 0,
        waits_ms: WaitsMs::default(),
        duration_ms: 30_000,
    }
}

fn query(dirs: &[&Path]) -> Query {
    Query {
        until: until(),
        days: 28,
        persona: None,
        archetype: None,
        ledgers: dirs.iter().map(|d| d.to_path_buf()).collect(),
    }
}

/// Four weeks: `todo` rated 4.5, 4.0, 3.5, 3.0 by week; `notes` 3 and 5
/// alternating (mean 4 every week); `notes.create` fails 0, 1, 2, 4 of 10
/// calls by week, `todo.create` 1 of 10 every week.
fn four_weeks(dir: &Path) {
    let st = State::open(dir).unwrap();
    let todo_weekly: [[u8; 4]; 4] = [[5, 4, 5, 4], [4, 4, 4, 4], [4, 3, 4, 3], [3, 3, 3, 3]];
    let notes_failures = [0, 1, 2, 4];
    let mut n = 0;
    for (week, (todo_week, failures)) in todo_weekly.iter().zip(notes_failures).enumerate() {
        let start = until() - Duration::days(28 - 7 * week as i64);
        for (p, &r) in todo_week.iter().enumerate() {
            let at = start + Duration::hours(24 + 6 * p as i64);
            let email = format!("p{p}@example.com");
            // 10 calls of each tool per week: 3, 3, 2, 2 over the personas.
            let k = if p < 2 { 3 } else { 2 };
            let before: usize = (0..p).map(|q| if q < 2 { 3 } else { 2 }).sum();
            let mut calls = Vec::new();
            for i in 0..k {
                calls.push(call("todo.create", !(p == 0 && i == 0)));
                calls.push(call("notes.create", before + i >= failures));
            }
            let ratings = vec![
                rating(
                    "todo",
                    r,
                    &format!("todo week {} persona {p}: {r}", week + 1),
                ),
                rating("notes", if p % 2 == 0 { 3 } else { 5 }, "notes are fine"),
            ];
            st.summary_write(&tick(n, &email, at, calls, ratings))
                .unwrap();
            n += 1;
        }
    }
}

#[test]
fn exactly_the_declining_module_and_the_failing_tool_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    four_weeks(dir.path());
    let r = report::load(&query(&[dir.path()]));
    assert_eq!(r.shards.len(), 1);
    assert_eq!(r.shards[0].persona_ticks, 16);
    assert_eq!(r.weeks.len(), 4);

    let flagged: Vec<&str> = r
        .trends
        .modules
        .iter()
        .map(|f| f.subject.as_str())
        .collect();
    assert_eq!(flagged, ["todo"], "{:#?}", r.trends.modules);
    let f = &r.trends.modules[0];
    let means: Vec<Option<f64>> = f.weeks.iter().map(|p| p.value).collect();
    assert_eq!(means, [Some(4.5), Some(4.0), Some(3.5), Some(3.0)]);
    assert!(f.weeks.iter().all(|p| p.count == 4));
    assert_eq!(
        f.rules,
        [
            report::trends::Rule::ThreeWeeksInARow,
            report::trends::Rule::AgainstBaseline
        ]
    );
    // Baseline: the 12 ratings of weeks 1–3, mean 4.0; last week 3.0.
    assert_eq!(f.baseline, Some(4.0));
    assert_eq!(f.last, 3.0);
    assert_eq!(f.change, -1.0);
    assert_eq!(f.example_notes.len(), 3);
    assert!(
        f.example_notes
            .iter()
            .all(|n| n.notes.starts_with("todo week 4"))
    );

    let tools: Vec<&str> = r.trends.tools.iter().map(|f| f.subject.as_str()).collect();
    assert_eq!(tools, ["notes.create"], "{:#?}", r.trends.tools);
    let t = &r.trends.tools[0];
    let rates: Vec<Option<f64>> = t.weeks.iter().map(|p| p.value).collect();
    assert_eq!(rates, [Some(0.0), Some(0.1), Some(0.2), Some(0.4)]);

    // The module table: notes' spread is 1 (3s and 5s), its mean 4.
    let notes = r.modules.iter().find(|m| m.module == "notes").unwrap();
    assert_eq!(notes.ratings.mean, Some(4.0));
    assert_eq!(notes.ratings.spread, 1.0);
    assert_eq!(notes.tool_calls, 40);
    assert_eq!(notes.errors, 7);
    assert_eq!(notes.share_of_calls, 0.5);
    assert_eq!(notes.errors_by_class.get(&ErrorClass::Handler), Some(&7));
    assert_eq!(notes.latency.p50_ms, Some(40));
    let todo = r.modules.iter().find(|m| m.module == "todo").unwrap();
    assert_eq!(todo.worst_notes[0].rating, 3);

    // The renderers say the same.
    let md = report::render(&r, Format::Md);
    assert!(md.contains("**todo** is rated worse"), "{md}");
    assert!(!md.contains("**notes** is rated worse"), "{md}");
    assert!(md.contains("**notes.create** fails more"), "{md}");
    let json: serde_json::Value = serde_json::from_str(&report::render(&r, Format::Json)).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["trends"]["modules"][0]["subject"], "todo");
    assert_eq!(json["trends"]["modules"][0]["baseline"], 4.0);
}

#[test]
fn a_flat_module_with_a_dip_inside_the_baseline_is_not_flagged() {
    // Week means 4, 3, 4, 3.5: no three-week fall, 3.5 vs baseline 3.67.
    let dir = tempfile::tempdir().unwrap();
    let st = State::open(dir.path()).unwrap();
    let weekly = [[4, 4, 4], [3, 3, 3], [4, 4, 4], [4, 3, 4]];
    let mut n = 0;
    for (w, rs) in weekly.iter().enumerate() {
        for (p, r) in rs.iter().enumerate() {
            let at = until() - Duration::days(27 - 7 * w as i64) + Duration::hours(p as i64);
            let s = tick(
                n,
                "a@example.com",
                at,
                vec![call("mood.log", true)],
                vec![rating("mood", *r as u8, "ok")],
            );
            st.summary_write(&s).unwrap();
            n += 1;
        }
    }
    let r = report::load(&query(&[dir.path()]));
    assert!(r.trends.modules.is_empty(), "{:#?}", r.trends.modules);
}

#[test]
fn mix_adherence_and_cost_match_the_hand_computed_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let st = State::open(dir.path()).unwrap();
    let prices = PriceTable::default();
    let day1 = until() - Duration::days(3);
    // A: target todo .6 / notes .4 (calendar has no tools: dropped);
    // 3 todo + 1 notes calls. 10k input, 2k output, 50k cache read, 4k
    // cache write on Sonnet: 0.03 + 0.03 + 0.015 + 0.015 = $0.09.
    let a_tokens = Tokens {
        input: 10_000,
        output: 2_000,
        cache_read: 50_000,
        cache_write: 4_000,
    };
    let mut a = tick(
        1,
        "a@example.com",
        day1,
        vec![
            call("todo.create", true),
            call("todo.list", true),
            call("todo.complete", true),
            call("notes.create", true),
        ],
        vec![],
    );
    a.module_mix = [("todo", 0.6), ("notes", 0.4), ("calendar", 0.5)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    a.tokens = a_tokens;
    a.model = Some("claude-sonnet-4-5".into());
    a.cost_usd = prices.cost("claude-sonnet-4-5", usage(a_tokens));
    assert!((a.cost_usd.unwrap() - 0.09).abs() < 1e-12);
    // B: target mood 1.0; 1 mood + 1 todo call; Haiku 4.5, 20k in, 1k out:
    // 0.02 + 0.005 = $0.025.
    let b_tokens = Tokens {
        input: 20_000,
        output: 1_000,
        ..Tokens::default()
    };
    let mut b = tick(
        2,
        "b@example.com",
        day1 + Duration::hours(1),
        vec![call("mood.log", true), call("todo.list", true)],
        vec![],
    );
    b.module_mix = BTreeMap::from([("mood".to_string(), 1.0)]);
    b.tokens = b_tokens;
    b.model = Some("claude-haiku-4-5".into());
    b.cost_usd = prices.cost("claude-haiku-4-5", usage(b_tokens));
    assert!((b.cost_usd.unwrap() - 0.025).abs() < 1e-12);
    // B again the next day: failed at the LLM, a model without a price.
    let mut b2 = tick(3, "b@example.com", day1 + Duration::days(1), vec![], vec![]);
    b2.module_mix = b.module_mix.clone();
    b2.outcome = "failed".into();
    b2.stage = Some(Stage::Llm);
    b2.tokens = Tokens {
        input: 1_000,
        ..Tokens::default()
    };
    b2.retries = 2;
    for s in [&a, &b, &b2] {
        st.summary_write(s).unwrap();
    }
    let r = report::load(&query(&[dir.path()]));

    let mix = &r.mix;
    assert_eq!(mix.modules_with_tools, ["mood", "notes", "todo"]);
    let pa = mix
        .personas
        .iter()
        .find(|p| p.email == "a@example.com")
        .unwrap();
    assert_eq!(
        pa.target,
        BTreeMap::from([("notes".into(), 0.4), ("todo".into(), 0.6)])
    );
    assert_eq!(
        pa.actual,
        BTreeMap::from([("notes".into(), 0.25), ("todo".into(), 0.75)])
    );
    assert_eq!(pa.drift, 0.15);
    let pb = mix
        .personas
        .iter()
        .find(|p| p.email == "b@example.com")
        .unwrap();
    assert_eq!(pb.drift, 0.5);
    assert_eq!(mix.furthest, ["b@example.com", "a@example.com"]);
    // Overall target: A's weights × 4 calls + B's × 2 = todo 2.4, notes 1.6,
    // mood 2 of 6; actual todo 4, notes 1, mood 1 of 6.
    let all = mix.overall.as_ref().unwrap();
    assert_eq!(all.target["todo"], 0.4);
    assert_eq!(all.target["notes"], 0.2667);
    assert_eq!(all.target["mood"], 0.3333);
    assert_eq!(all.actual["todo"], 0.6667);
    // ½ (0.2667 + 0.1 + 0.1667)
    assert_eq!(all.drift, 0.2667);

    let h = &r.health;
    assert_eq!(h.persona_ticks, 3);
    assert_eq!(h.persona_days, 3);
    assert_eq!(h.by_outcome["ok"], 2);
    assert_eq!(h.failed_by_stage["llm"], 1);
    assert_eq!(h.cost_usd, 0.115);
    assert_eq!(h.cost_per_persona_day, 0.038333);
    assert_eq!(h.unpriced_ticks, 1);
    assert_eq!(h.unpriced_models, ["claude-sandbox"]);
    assert_eq!(h.llm_retries, 2);
    assert_eq!(h.tokens.total(), 66_000 + 21_000 + 1_000);
    // Per module: A's $0.09 over 4 calls, B's $0.025 over 2.
    let cost = |m: &str| r.modules.iter().find(|x| x.module == m).unwrap().cost_usd;
    assert_eq!(cost("todo"), 0.08);
    assert_eq!(cost("notes"), 0.0225);
    assert_eq!(cost("mood"), 0.0125);
    let md = report::render(&r, Format::Md);
    assert!(md.contains("tokens only"), "{md}");
}

#[test]
fn shards_are_merged_and_named() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    four_weeks(a.path());
    let st = State::open(b.path()).unwrap();
    st.summary_write(&tick(
        99_999,
        "other@example.com",
        until() - Duration::days(1),
        vec![call("mood.log", true)],
        vec![rating("mood", 2, "meh")],
    ))
    .unwrap();
    let missing = PathBuf::from("/nonexistent/state");
    let r = report::load(&query(&[a.path(), b.path(), &missing]));
    assert_eq!(r.health.persona_ticks, 17);
    assert_eq!(r.shards[0].persona_ticks, 16);
    assert_eq!(r.shards[1].persona_ticks, 1);
    assert!(
        r.shards[2]
            .error
            .as_deref()
            .unwrap()
            .contains("no state.db")
    );
    let mut q = query(&[a.path(), b.path()]);
    q.persona = Some("OTHER@example.com".into());
    assert_eq!(report::load(&q).health.persona_ticks, 1);
}

/// The transcript shape of today's runner (`persona::run`), as an old ledger
/// holds it.
fn old_transcript(tick_id: &str) -> serde_json::Value {
    serde_json::json!({
        "tickId": tick_id, "email": "old@example.com", "userId": "u-old",
        "systemPrompt": "You are old.",
        "events": [{"event": "model", "turn": 1, "retries": 1}],
        "actions": [
            {"tickId": tick_id, "toolName": "todo.create", "inputHash": "ab", "result": "ok", "latencyMs": 12},
            {"tickId": tick_id, "toolName": "todo.create", "inputHash": "cd", "result": "error",
             "errorMessage": "MCP error -32602: Input validation error: Invalid arguments for tool todo.create: Required at title", "latencyMs": 7},
            {"tickId": tick_id, "toolName": "notes.create", "inputHash": "ef", "result": "error",
             "errorMessage": "Tool notes.create not allowed: rate-limit-exceeded", "latencyMs": 3}
        ],
        "feedback": [{"tickId": tick_id, "module": "todo", "rating": 2, "notes": "title is required?"}],
        "report": {"outcome": "ok", "tokens": {"input": 100, "output": 20, "cacheRead": 0, "cacheWrite": 0},
                   "durationMs": 900, "waits": {"llmMs": 500, "mcpMs": 300, "platformMs": 50}}
    })
}

/// Today's schema, before summaries (a copy: the test must not follow it).
const OLD_SCHEMA: &str = "
CREATE TABLE ledger (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tick_id     TEXT NOT NULL UNIQUE,
    persona_id  TEXT NOT NULL,
    email       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    transcript  TEXT NOT NULL
);";

fn old_ledger(dir: &Path, at: DateTime<Utc>) {
    std::fs::create_dir_all(dir).unwrap();
    let c = rusqlite::Connection::open(dir.join("state.db")).unwrap();
    c.execute_batch(OLD_SCHEMA).unwrap();
    let t = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    c.execute(
        "INSERT INTO ledger (tick_id, persona_id, email, started_at, finished_at, outcome, transcript)
         VALUES ('old-1', 'u-old', 'old@example.com', ?1, ?1, 'ok', ?2)",
        rusqlite::params![t, old_transcript("old-1").to_string()],
    )
    .unwrap();
}

#[test]
fn an_old_ledger_is_read_as_it_is_and_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    old_ledger(dir.path(), until() - Duration::days(2));

    // report reads it read-only, summarising in memory: the file is untouched.
    let r = report::load(&query(&[dir.path()]));
    assert_eq!(r.health.persona_ticks, 1);
    let c = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let tables: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'ledger_summary'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "a report must not write to the ledger");
    drop(c);

    // Opening the state migrates it: summaries built from the transcripts.
    let st = State::open(dir.path()).unwrap();
    let s = st.summary_get("old-1").unwrap().expect("migrated summary");
    assert_eq!(s.email, "old@example.com");
    assert_eq!(s.calls.len(), 3);
    assert_eq!(s.calls[1].error_class, Some(ErrorClass::Validation));
    assert_eq!(s.calls[2].error_class, Some(ErrorClass::Policy));
    assert_eq!(
        s.ratings[0].action_ids,
        ["old-1-0-todo.create", "old-1-1-todo.create"]
    );
    assert_eq!(s.retries, 1);
    assert_eq!(s.waits_ms.llm, 500);
    assert_eq!(s.tokens.input, 100);
    assert_eq!(s.cost_usd, None);
    let version: i64 = rusqlite::Connection::open(dir.path().join("state.db"))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, summary::SCHEMA_VERSION);
    drop(st);
    // Opening again does not duplicate anything.
    let st = State::open(dir.path()).unwrap();
    assert_eq!(st.summaries(&summary::Filter::default()).unwrap().len(), 1);
}

#[test]
fn summaries_outlive_pruned_transcripts() {
    let dir = tempfile::tempdir().unwrap();
    let st = State::open(dir.path()).unwrap();
    let now = until();
    let old = now - Duration::days(30);
    st.ledger_write(
        "t-old",
        "u",
        "a@example.com",
        old,
        old,
        "ok",
        &old_transcript("t-old"),
    )
    .unwrap();
    let s = summary::from_transcript(
        "t-old",
        "u",
        "a@example.com",
        old,
        old,
        "ok",
        &old_transcript("t-old"),
        summary::Extra::default(),
    );
    st.summary_write(&s).unwrap();
    assert_eq!(st.ledger_prune(14, now).unwrap(), 1);
    assert_eq!(st.summary_prune(400, now).unwrap(), 0);
    assert!(st.ledger_get("t-old").unwrap().is_none());
    assert!(st.summary_get("t-old").unwrap().is_some());
    let mut q = query(&[dir.path()]);
    q.days = 60;
    assert_eq!(report::load(&q).health.persona_ticks, 1);
    assert_eq!(st.summary_prune(20, now).unwrap(), 1);
    // The report's row goes with the summary.
    assert_eq!(report::load(&q).health.persona_ticks, 0);
}

/// The target directory (CARGO_TARGET_DIR aware): tests' tmp dir's parent.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf()
}

fn chromium() -> PathBuf {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = std::process::Command::new("which").arg(c).output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!(
        "no chromium: this test opens the HTML report in a real headless browser. Install it with \
         `apt-get install -y --no-install-recommends chromium` (.ci/run does)"
    );
}

#[test]
fn the_html_report_renders_offline_in_a_headless_browser() {
    let browser = chromium();
    let dir = tempfile::tempdir().unwrap();
    four_weeks(dir.path());
    let r = report::load(&query(&[dir.path()]));
    let html = report::render(&r, Format::Html);

    // Self-contained: no scripts, no stylesheets or fonts from elsewhere, no
    // URL in any src or href.
    assert!(!html.contains("<script"), "scripts in the report");
    assert!(!html.contains("<link"), "linked resources in the report");
    for attr in ["src=", "href=", "url("] {
        for (i, _) in html.match_indices(attr) {
            let v = &html[i..(i + 80).min(html.len())];
            assert!(
                !v.contains("http://") && !v.contains("https://") && !v.contains("//"),
                "a network reference: {v}"
            );
        }
    }

    let out = target_dir();
    let page = out.join("report.html");
    std::fs::write(&page, &html).unwrap();
    let shot = out.join("report-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            // Any name lookup fails: a chart that needs the network is missing.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--window-size=1280,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "chromium failed: {stderr}");
    assert!(
        !stderr.contains("CONSOLE"),
        "console messages while loading the report: {stderr}"
    );
    // One chart per module, each an SVG with its line drawn.
    let charts = dom.matches("<figure class=\"chart\"").count();
    assert_eq!(charts, r.modules.len(), "{dom}");
    for m in &r.modules {
        let at = dom
            .find(&format!("data-module=\"{}\"", m.module))
            .unwrap_or_else(|| panic!("no chart of {}", m.module));
        let fig = &dom[at..];
        let end = fig.find("</figure>").unwrap();
        assert!(
            fig[..end].contains("<svg"),
            "chart of {} has no SVG",
            m.module
        );
        assert!(fig[..end].contains("<polyline") || fig[..end].contains("<path"));
    }
    assert!(dom.contains("data-flag=\"module\" data-subject=\"todo\""));
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        png.len() > 10_000,
        "a blank screenshot ({} bytes)",
        png.len()
    );
}

/// The stored tokens as the price table takes them (the runner prices the
/// LLM's `Usage` before it stores the summary's `Tokens`).
fn usage(t: Tokens) -> mana_personas::llm::Usage {
    mana_personas::llm::Usage {
        input: t.input,
        output: t.output,
        cache_read: t.cache_read,
        cache_write: t.cache_write,
    }
}

/// The report as JSON without what differs between two loads of the same
/// ticks (when it was made, which directories were read).
fn numbers(r: &report::Report) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&report::render(r, Format::Json)).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("generatedAt");
    o.remove("shards");
    v
}

/// A ledger of schema version 1 (the JSON summaries only, no
/// `ledger_report`) gives the same report read as it is (read-only: the file
/// stays version 1) and after opening the state migrates it; the report from
/// `ledger_report` equals the one from the JSON, notes and all.
#[test]
fn a_version_1_ledger_reads_the_same_before_and_after_its_report_rows_are_filled() {
    let new = tempfile::tempdir().unwrap();
    four_weeks(new.path());
    let mut extra = tick(
        77,
        "p9@example.com",
        until() - Duration::days(2),
        vec![call("mood.log", false), call("mood.log", true)],
        vec![rating("mood", 1, "the worst of all")],
    );
    extra.stage = Some(Stage::Rating);
    extra.outcome = "failed".into();
    extra.cost_usd = Some(0.25);
    extra.tokens = Tokens {
        input: 7,
        output: 5,
        cache_read: 3,
        cache_write: 1,
    };
    extra.retries = 3;
    extra.waits_ms = WaitsMs {
        llm: 10,
        mcp: 20,
        platform: 30,
    };
    State::open(new.path())
        .unwrap()
        .summary_write(&extra)
        .unwrap();
    let from_columns = numbers(&report::load(&query(&[new.path()])));
    assert_eq!(from_columns["health"]["personaTicks"], 17);

    // The same summaries in a version-1 file.
    let old = tempfile::tempdir().unwrap();
    let db = old.path().join("state.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "CREATE TABLE ledger_summary (
             tick_id TEXT PRIMARY KEY, persona_id TEXT NOT NULL, email TEXT NOT NULL,
             archetype TEXT NOT NULL DEFAULT '', started_at TEXT NOT NULL, outcome TEXT NOT NULL,
             summary TEXT NOT NULL);
         CREATE INDEX ledger_summary_started ON ledger_summary(started_at);
         PRAGMA user_version = 1;",
    )
    .unwrap();
    c.execute(
        "ATTACH DATABASE ?1 AS new",
        [new.path().join("state.db").to_str().unwrap()],
    )
    .unwrap();
    c.execute_batch(
        "INSERT INTO ledger_summary SELECT tick_id, persona_id, email, archetype, started_at, outcome, summary
         FROM new.ledger_summary; DETACH DATABASE new;",
    )
    .unwrap();
    drop(c);
    let columns = |db: &Path| {
        let c = rusqlite::Connection::open(db).unwrap();
        let n: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'ledger_report'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        (n, v)
    };

    assert_eq!(numbers(&report::load(&query(&[old.path()]))), from_columns);
    assert_eq!(
        columns(&db),
        (0, 1),
        "a report must not write to the ledger"
    );

    drop(State::open(old.path()).unwrap());
    assert_eq!(columns(&db), (1, summary::SCHEMA_VERSION));
    assert_eq!(summary::SCHEMA_VERSION, 2);
    let migrated = numbers(&report::load(&query(&[old.path()])));
    assert_eq!(migrated, from_columns);
    let mood = migrated["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["module"] == "mood")
        .unwrap();
    assert_eq!(mood["worstNotes"][0]["notes"], "the worst of all");
    assert_eq!(migrated["health"]["failedByStage"]["rating"], 1);
    assert_eq!(migrated["health"]["costUsd"], 0.25);
}
