//! The persona endpoints of apps/api as `contract/mana-platform.md` states
//! them ("Admin endpoints", "Internal endpoints"), one fact per test, status
//! and body exact, over real HTTP against a started sandbox.

use mana_sandbox::platform::internal::is_due;
use mana_sandbox::platform::{
    ADMIN_PREFIX, INTERNAL_PREFIX, LEGACY_ADMIN_PREFIX, LEGACY_INTERNAL_PREFIX, LOGIN_PATH,
    ORGANIZATIONS_PATH, REGISTER_PATH,
};
use mana_sandbox::{DEV_ADMIN_JWT, DEV_SERVICE_KEY, Sandbox, SandboxOptions};
use serde_json::{Value, json};

struct Twin {
    sb: Sandbox,
    http: reqwest::Client,
}

enum Auth<'a> {
    None,
    Bearer(&'a str),
    ServiceKey(&'a str),
}

impl Twin {
    async fn start() -> Twin {
        Twin {
            sb: Sandbox::start(SandboxOptions::default()).await.unwrap(),
            http: reqwest::Client::new(),
        }
    }

    /// One request; `body` is sent as is (so it may be broken JSON).
    async fn call(
        &self,
        method: &str,
        path: &str,
        auth: Auth<'_>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.http.request(m, format!("{}{path}", self.sb.url()));
        rb = match auth {
            Auth::None => rb,
            Auth::Bearer(t) => rb.bearer_auth(t),
            Auth::ServiceKey(k) => rb.header("X-Service-Key", k),
        };
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn admin(&self, method: &str, rest: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        self.call(
            method,
            &format!("{ADMIN_PREFIX}{rest}"),
            Auth::Bearer(DEV_ADMIN_JWT),
            body.as_deref(),
        )
        .await
    }

    async fn internal(&self, method: &str, rest: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        self.call(
            method,
            &format!("{INTERNAL_PREFIX}{rest}"),
            Auth::ServiceKey(DEV_SERVICE_KEY),
            body.as_deref(),
        )
        .await
    }

    /// Seeds a persona, returns its user id.
    async fn persona(&self, email: &str, cadence: &str) -> String {
        let (st, v) = self.admin("POST", "", Some(upsert(email, cadence))).await;
        assert_eq!(st, 200, "{v}");
        v["userId"].as_str().unwrap().to_string()
    }

    /// Signs `email` in; its bearer for apps/api (the JWT where the login
    /// gives one).
    async fn login_bearer(&self, email: &str) -> String {
        let b = json!({"email": email, "password": "password-123"}).to_string();
        let (st, login) = self.call("POST", LOGIN_PATH, Auth::None, Some(&b)).await;
        assert_eq!(st, 200, "{login}");
        login["accessToken"]
            .as_str()
            .or(login["token"].as_str())
            .unwrap()
            .to_string()
    }

    fn count(&self, sql: &str) -> i64 {
        self.sb.db().count(sql)
    }

    fn sql(&self, sql: &str) {
        self.sb.db().call(|c| c.execute_batch(sql)).unwrap();
    }
}

fn upsert(email: &str, cadence: &str) -> Value {
    json!({"email": email, "name": "N", "password": "password-123", "archetype": "solo-dev",
           "systemPrompt": "Du bist eine Testperson.", "moduleMix": {"todo": 3, "mood": 1},
           "tickCadence": cadence})
}

fn action(tick: &str, tool: &str) -> Value {
    json!({"tickId": tick, "toolName": tool, "inputHash": "0123456789abcdef", "result": "ok", "latencyMs": 12})
}

fn feedback(tick: &str, module: &str, rating: Value) -> Value {
    json!({"tickId": tick, "module": module, "rating": rating, "notes": "gut"})
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

const INTERNAL_500: &str = r#"{"error":"Internal server error","status":500}"#;

fn body(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

// ─── admin ──────────────────────────────────────────────────────────────

#[tokio::test]
async fn admin_401_without_or_with_a_bad_token_403_for_a_persona_token() {
    let t = Twin::start().await;
    t.persona("p@mana.test", "daily").await;
    let persona_token = t.login_bearer("p@mana.test").await;
    for prefix in [ADMIN_PREFIX, LEGACY_ADMIN_PREFIX] {
        for (method, rest, b) in [
            ("GET", "", None),
            ("POST", "", Some("{}")),
            ("GET", "/x", None),
            ("DELETE", "/x", None),
        ] {
            let path = format!("{prefix}{rest}");
            let want401 = body(r#"{"error":"Invalid or expired token","status":401}"#);
            assert_eq!(
                t.call(method, &path, Auth::None, b).await,
                (401, want401.clone()),
                "{method} {path}"
            );
            assert_eq!(
                t.call(method, &path, Auth::Bearer("not-a-token"), b).await,
                (401, want401),
                "{method} {path}"
            );
            assert_eq!(
                t.call(method, &path, Auth::Bearer(&persona_token), b).await,
                (
                    403,
                    body(r#"{"error":"Forbidden","message":"Admin access required"}"#)
                ),
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn upsert_answers_ok_user_id_email_and_is_idempotent_by_email() {
    let t = Twin::start().await;
    let (st, v) = t
        .admin("POST", "", Some(upsert("a@mana.test", "daily")))
        .await;
    assert_eq!(st, 200);
    assert_eq!(keys(&v), ["email", "ok", "userId"]);
    assert_eq!(
        (v["ok"].clone(), v["email"].clone()),
        (json!(true), json!("a@mana.test"))
    );
    let id = v["userId"].as_str().unwrap();
    // The platform's user ids: 32 alphanumerics.
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_alphanumeric()),
        "{id}"
    );
    let mut again = upsert("a@mana.test", "hourly");
    again["archetype"] = json!("researcher");
    let (st, v2) = t.admin("POST", "", Some(again)).await;
    assert_eq!((st, v2["userId"].as_str()), (200, Some(id)));
    assert_eq!(t.count("SELECT COUNT(*) FROM personas WHERE archetype = 'researcher' AND tick_cadence = 'hourly'"), 1);
    // Through the older prefix too.
    let b = upsert("b@mana.test", "daily").to_string();
    let (st, _) = t
        .call(
            "POST",
            LEGACY_ADMIN_PREFIX,
            Auth::Bearer(DEV_ADMIN_JWT),
            Some(&b),
        )
        .await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn upsert_validates_only_what_the_server_validates() {
    let t = Twin::start().await;
    let (st, v) = t.admin("POST", "", Some(json!({}))).await;
    assert_eq!(
        (st, v),
        (
            400,
            json!({"error": "ValidationError", "details": [
            "email required", "password ≥ 8 chars required", "archetype required",
            "systemPrompt required", "moduleMix object required"]})
        )
    );
    let mut bad = upsert("no-at-sign", "monthly");
    bad["password"] = json!("1234567");
    bad["archetype"] = json!("");
    bad["moduleMix"] = json!("todo");
    let (st, v) = t.admin("POST", "", Some(bad)).await;
    assert_eq!(
        (st, v),
        (
            400,
            json!({"error": "ValidationError", "details": [
            "email required", "password ≥ 8 chars required", "archetype required",
            "moduleMix object required", "tickCadence must be one of daily, weekdays, hourly"]})
        )
    );
    // The client's catalog policy (an @mana.test address, a prompt of ≥ 20
    // characters, weights ≥ 0) is not the server's: all of this is accepted.
    let mut lax = upsert("someone@example.com", "");
    lax["systemPrompt"] = json!("kurz");
    lax["moduleMix"] = json!({"todo": -1});
    lax.as_object_mut().unwrap().remove("name");
    let (st, v) = t.admin("POST", "", Some(lax)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(t.count("SELECT COUNT(*) FROM personas WHERE email = 'someone@example.com' AND tick_cadence = 'daily'"), 1);
    let (st, v) = t
        .call(
            "POST",
            ADMIN_PREFIX,
            Auth::Bearer(DEV_ADMIN_JWT),
            Some("{\"email\": "),
        )
        .await;
    assert_eq!((st, v), (400, json!({"error": "Invalid JSON body"})));
}

#[tokio::test]
async fn list_has_the_platform_fields_newest_first_and_no_name() {
    let t = Twin::start().await;
    let a = t.persona("a@mana.test", "daily").await;
    let b = t.persona("b@mana.test", "hourly").await;
    t.internal(
        "POST",
        &format!("/{a}/actions"),
        Some(json!({"actions": [action("t1", "todo.list")]})),
    )
    .await;
    let (st, v) = t.admin("GET", "", None).await;
    assert_eq!(st, 200);
    let ps = v["personas"].as_array().unwrap();
    assert_eq!(ps.len(), 2);
    assert_eq!(
        keys(&ps[0]),
        [
            "actions7d",
            "archetype",
            "createdAt",
            "email",
            "lastActiveAt",
            "tickCadence",
            "userId"
        ]
    );
    assert_eq!(
        (ps[0]["userId"].as_str(), ps[1]["userId"].as_str()),
        (Some(b.as_str()), Some(a.as_str()))
    );
    assert_eq!(
        (ps[0]["actions7d"].clone(), ps[1]["actions7d"].clone()),
        (json!(0), json!(1))
    );
    assert!(ps[1]["lastActiveAt"].is_string() && ps[0]["lastActiveAt"].is_null());
}

#[tokio::test]
async fn show_gives_raw_rows_and_a_count_named_avg_rating() {
    let t = Twin::start().await;
    let id = t.persona("a@mana.test", "daily").await;
    let actions: Vec<Value> = (0..25)
        .map(|i| action("t1", &format!("todo.t{i:02}")))
        .collect();
    t.internal(
        "POST",
        &format!("/{id}/actions"),
        Some(json!({"actions": actions})),
    )
    .await;
    for (tick, rating) in [("t1", 5), ("t2", 5), ("t3", 4)] {
        let (st, _) = t
            .internal(
                "POST",
                &format!("/{id}/feedback"),
                Some(json!({"feedback": [feedback(tick, "todo", json!(rating))]})),
            )
            .await;
        assert_eq!(st, 200);
    }
    t.internal(
        "POST",
        &format!("/{id}/feedback"),
        Some(json!({"feedback": [feedback("t1", "mood", json!(1))]})),
    )
    .await;
    let (st, v) = t.admin("GET", &format!("/{id}"), None).await;
    assert_eq!(st, 200);
    assert_eq!(keys(&v), ["feedbackByModule", "persona", "recentActions"]);
    assert_eq!(
        keys(&v["persona"]),
        [
            "archetype",
            "createdAt",
            "email",
            "lastActiveAt",
            "moduleMix",
            "systemPrompt",
            "tickCadence",
            "userId"
        ]
    );
    assert_eq!(v["persona"]["moduleMix"], json!({"todo": 3, "mood": 1}));
    let rows = v["recentActions"].as_array().unwrap();
    assert_eq!(rows.len(), 20, "the 20 newest");
    assert_eq!(
        keys(&rows[0]),
        [
            "createdAt",
            "errorMessage",
            "id",
            "inputHash",
            "latencyMs",
            "personaId",
            "result",
            "tickId",
            "toolName"
        ]
    );
    assert_eq!(rows[0]["personaId"], json!(id));
    assert_eq!(rows[0]["id"], json!("t1-24-todo.t24"), "newest first");
    // The platform's bug, mirrored: avgRating counts rows (todo: 3 ratings
    // averaging 4.67; mood: one rating of 1).
    let mut fb = v["feedbackByModule"].as_array().unwrap().clone();
    fb.sort_by_key(|f| f["module"].as_str().unwrap().to_string());
    assert_eq!(
        fb,
        vec![
            json!({"module": "mood", "avgRating": 1}),
            json!({"module": "todo", "avgRating": 3})
        ]
    );

    let (st, v) = t.admin("GET", "/nobody", None).await;
    assert_eq!((st, v), (404, json!({"error": "Not found"})));
}

#[tokio::test]
async fn delete_answers_ok_deleted_then_404_and_spares_non_personas() {
    let t = Twin::start().await;
    let id = t.persona("a@mana.test", "daily").await;
    t.internal(
        "POST",
        &format!("/{id}/actions"),
        Some(json!({"actions": [action("t1", "todo.list")]})),
    )
    .await;
    let (st, v) = t.admin("DELETE", &format!("/{id}"), None).await;
    assert_eq!((st, v), (200, json!({"ok": true, "deleted": id})));
    assert_eq!(
        t.count("SELECT COUNT(*) FROM persona_actions") + t.count("SELECT COUNT(*) FROM users"),
        0
    );
    let (st, v) = t.admin("DELETE", &format!("/{id}"), None).await;
    assert_eq!((st, v), (404, json!({"error": "Not found"})));
    // A user who is not a persona is not this endpoint's to delete.
    let (st, reg) = t
        .call(
            "POST",
            REGISTER_PATH,
            Auth::None,
            Some(r#"{"email":"human@example.com","password":"password-123"}"#),
        )
        .await;
    assert_eq!(st, 200);
    let human = reg["user"]["id"].as_str().unwrap();
    let (st, v) = t.admin("DELETE", &format!("/{human}"), None).await;
    assert_eq!((st, v), (404, json!({"error": "Not found"})));
    assert_eq!(t.count("SELECT COUNT(*) FROM users"), 1);
}

#[tokio::test]
async fn spaces_have_nanoid_ids_and_string_metadata() {
    let t = Twin::start().await;
    t.persona("a@mana.test", "daily").await;
    // mana-auth's organization list takes the session token (Better Auth's
    // bearer plugin), not the JWT the login's `accessToken` holds.
    let b = json!({"email": "a@mana.test", "password": "password-123"}).to_string();
    let (_, login) = t.call("POST", LOGIN_PATH, Auth::None, Some(&b)).await;
    let session = login["token"].as_str().unwrap().to_string();
    let (st, v) = t
        .call("GET", ORGANIZATIONS_PATH, Auth::Bearer(&session), None)
        .await;
    assert_eq!(st, 200, "{v}");
    let nanoid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    for s in v.as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        assert!(id.len() == 21 && id.chars().all(nanoid), "{id}");
        // mana-auth sends metadata as a string holding JSON.
        let meta: Value = serde_json::from_str(s["metadata"].as_str().unwrap()).unwrap();
        let ty = meta["type"].as_str().unwrap();
        assert!(
            ["personal", "brand", "club", "family", "team", "practice"].contains(&ty),
            "{ty}"
        );
    }
}

// ─── internal ───────────────────────────────────────────────────────────

#[tokio::test]
async fn internal_401_for_a_missing_or_wrong_service_key() {
    let t = Twin::start().await;
    let id = t.persona("a@mana.test", "daily").await;
    let want = body(r#"{"error":"Invalid service key","status":401}"#);
    let batch = json!({"actions": [action("t", "todo.list")]}).to_string();
    for prefix in [INTERNAL_PREFIX, LEGACY_INTERNAL_PREFIX] {
        for (method, rest) in [
            ("GET", "/due".to_string()),
            ("POST", format!("/{id}/actions")),
            ("POST", format!("/{id}/feedback")),
        ] {
            let path = format!("{prefix}{rest}");
            let b = (method == "POST").then_some(batch.as_str());
            assert_eq!(
                t.call(method, &path, Auth::None, b).await,
                (401, want.clone()),
                "{path}"
            );
            assert_eq!(
                t.call(method, &path, Auth::ServiceKey("wrong"), b).await,
                (401, want.clone()),
                "{path}"
            );
        }
    }
    assert_eq!(t.count("SELECT COUNT(*) FROM persona_actions"), 0);
}

#[tokio::test]
async fn unknown_persona_is_404_before_the_body_is_read() {
    let t = Twin::start().await;
    for kind in ["actions", "feedback"] {
        let path = format!("{INTERNAL_PREFIX}/nobody/{kind}");
        let (st, v) = t
            .call(
                "POST",
                &path,
                Auth::ServiceKey(DEV_SERVICE_KEY),
                Some("not json"),
            )
            .await;
        assert_eq!(
            (st, v),
            (404, json!({"error": "Persona not found"})),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn batches_are_refused_with_the_platforms_400s() {
    let t = Twin::start().await;
    let id = t.persona("a@mana.test", "daily").await;
    let err = |m: &str| (400, json!({"error": m}));
    for (kind, noun, max, row) in [
        ("actions", "action", 500, action("t", "todo.list")),
        ("feedback", "feedback", 100, feedback("t", "todo", json!(4))),
    ] {
        let path = format!("{INTERNAL_PREFIX}/{id}/{kind}");
        let post = |b: String| {
            let path = path.clone();
            let t = &t;
            async move {
                t.call("POST", &path, Auth::ServiceKey(DEV_SERVICE_KEY), Some(&b))
                    .await
            }
        };
        assert_eq!(post("{".into()).await, err("Invalid JSON"));
        let required = format!("`{kind}` array required");
        for b in [
            json!({}),
            json!({kind: []}),
            json!({kind: {"0": row}}),
            json!([row]),
            json!(null),
        ] {
            assert_eq!(post(b.to_string()).await, err(&required), "{b}");
        }
        let too_many = vec![row.clone(); max + 1];
        assert_eq!(
            post(json!({kind: too_many}).to_string()).await,
            err(&format!("`{kind}` batch size must be ≤ {max}"))
        );
        let failed = format!("One or more {noun} rows failed validation");
        let mut bad_rows = vec![json!("row"), json!(null)];
        for field in ["tickId", "toolName", "result", "module", "rating"] {
            if row.get(field).is_none() {
                continue;
            }
            let mut missing = row.clone();
            missing.as_object_mut().unwrap().remove(field);
            bad_rows.push(missing);
            let mut wrong = row.clone();
            wrong[field] = json!(7);
            bad_rows.push(wrong);
        }
        if kind == "actions" {
            bad_rows.push(json!({"tickId": "t", "toolName": "x", "result": "maybe"}));
        } else {
            for r in [json!(0), json!(6), json!(5.5), json!("5")] {
                bad_rows.push(feedback("t", "todo", r));
            }
        }
        for bad in bad_rows {
            assert_eq!(
                post(json!({kind: [row.clone(), bad.clone()]}).to_string()).await,
                err(&failed),
                "{bad}"
            );
        }
        assert_eq!(
            post(json!({kind: vec![row.clone(); max]}).to_string())
                .await
                .0,
            200,
            "the limit itself"
        );
    }
    // Only the required fields' presence and type: an empty tickId is a string.
    let (st, _) = t
        .internal(
            "POST",
            &format!("/{id}/actions"),
            Some(json!({"actions": [action("", "todo.list")]})),
        )
        .await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn a_wrong_typed_optional_field_is_a_500_that_stores_nothing() {
    let t = Twin::start().await;
    let id = t.persona("a@mana.test", "daily").await;
    let want = (500, body(INTERNAL_500));
    let bad_actions = [
        ("latencyMs", json!("slow")),
        ("latencyMs", json!(12.5)),
        ("latencyMs", json!(3_000_000_000u64)),
        ("inputHash", json!(5)),
        ("errorMessage", json!({"a": 1})),
    ];
    for (field, v) in bad_actions {
        let mut bad = action("t9", "todo.list");
        bad[field] = v.clone();
        let rows = json!({"actions": [action("t9", "todo.create"), bad]});
        assert_eq!(
            t.internal("POST", &format!("/{id}/actions"), Some(rows))
                .await,
            want,
            "{field}: {v}"
        );
    }
    for (field, v) in [("rating", json!(3.5)), ("notes", json!(5))] {
        let mut bad = feedback("t9", "mood", json!(3));
        bad[field] = v.clone();
        let rows = json!({"feedback": [feedback("t9", "todo", json!(4)), bad]});
        assert_eq!(
            t.internal("POST", &format!("/{id}/feedback"), Some(rows))
                .await,
            want,
            "{field}: {v}"
        );
    }
    assert_eq!(
        t.count("SELECT COUNT(*) FROM persona_actions")
            + t.count("SELECT COUNT(*) FROM persona_feedback"),
        0
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM personas WHERE last_active_at IS NULL"),
        1,
        "not moved"
    );
    // Integral numbers are integers, null is absent.
    let mut ok = action("t9", "todo.list");
    ok["latencyMs"] = json!(12.0);
    ok["inputHash"] = Value::Null;
    let (st, _) = t
        .internal(
            "POST",
            &format!("/{id}/actions"),
            Some(json!({"actions": [ok]})),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = t
        .internal(
            "POST",
            &format!("/{id}/feedback"),
            Some(json!({"feedback": [feedback("t9", "todo", json!(4.0))]})),
        )
        .await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn written_counts_rows_sent_and_a_resend_stores_nothing_but_moves_last_active() {
    let t = Twin::start().await;
    let id = t.persona("a@mana.test", "daily").await;
    let batch = json!({"actions": [action("t1", "todo.create"), action("t1", "todo.list"), action("t1", "todo.create")]});
    let ok3 = (200, json!({"ok": true, "written": 3}));
    assert_eq!(
        t.internal("POST", &format!("/{id}/actions"), Some(batch.clone()))
            .await,
        ok3
    );
    t.sql("UPDATE personas SET last_active_at = '2020-01-01T00:00:00.000Z'");
    assert_eq!(
        t.internal("POST", &format!("/{id}/actions"), Some(batch))
            .await,
        ok3,
        "resent"
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM persona_actions"), 3);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM personas WHERE last_active_at > '2021'"),
        1,
        "an all-duplicate batch moves lastActiveAt"
    );
    // Feedback: the same module twice in one tick collides; written says 2.
    t.sql("UPDATE personas SET last_active_at = '2020-01-01T00:00:00.000Z'");
    let fb =
        json!({"feedback": [feedback("t1", "todo", json!(4)), feedback("t1", "todo", json!(2))]});
    let (st, v) = t
        .internal("POST", &format!("/{id}/feedback"), Some(fb))
        .await;
    assert_eq!((st, v), (200, json!({"ok": true, "written": 2})));
    assert_eq!(t.count("SELECT COUNT(*) FROM persona_feedback"), 1);
    assert_eq!(
        t.count("SELECT rating FROM persona_feedback"),
        4,
        "the first row won"
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM personas WHERE last_active_at > '2021'"),
        0,
        "feedback does not move lastActiveAt"
    );
}

#[tokio::test]
async fn row_ids_follow_the_platform_and_are_cut_to_255() {
    let t = Twin::start().await;
    let id = t.persona("a@mana.test", "daily").await;
    let long_tick = "x".repeat(300);
    let batch = json!({"actions": [action("tick-7", "todo.create"), action("tick-7", "mood.log"), action(&long_tick, "todo.list")]});
    t.internal("POST", &format!("/{id}/actions"), Some(batch))
        .await;
    let ids: Vec<String> =
        t.sb.db()
            .call(|c| {
                let mut st = c.prepare("SELECT id FROM persona_actions ORDER BY rowid")?;
                st.query_map([], |r| r.get(0))?.collect()
            })
            .unwrap();
    assert_eq!(
        ids,
        vec![
            "tick-7-0-todo.create".to_string(),
            "tick-7-1-mood.log".into(),
            "x".repeat(255)
        ]
    );
    t.internal(
        "POST",
        &format!("/{id}/feedback"),
        Some(json!({"feedback": [feedback("tick-7", "mood", json!(3))]})),
    )
    .await;
    let fid: String =
        t.sb.db()
            .call(|c| c.query_row("SELECT id FROM persona_feedback", [], |r| r.get(0)))
            .unwrap();
    assert_eq!(fid, "tick-7-mood");
}

#[tokio::test]
async fn due_lists_by_the_cadence_rules_never_active_first_with_server_time() {
    let t = Twin::start().await;
    let fresh = t.persona("fresh@mana.test", "daily").await;
    let hourly_old = t.persona("hourly-old@mana.test", "hourly").await;
    let daily_recent = t.persona("daily-recent@mana.test", "daily").await;
    let daily_old = t.persona("daily-old@mana.test", "daily").await;
    let hourly_recent = t.persona("hourly-recent@mana.test", "hourly").await;
    let ago = |mins: i64| {
        (chrono::Utc::now() - chrono::Duration::minutes(mins))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    for (id, last) in [
        (&hourly_old, ago(61)),
        (&daily_recent, ago(23 * 60)),
        (&daily_old, ago(25 * 60)),
        (&hourly_recent, ago(59)),
    ] {
        t.sql(&format!(
            "UPDATE personas SET last_active_at = '{last}' WHERE user_id = '{id}'"
        ));
    }
    let (st, v) = t.internal("GET", "/due", None).await;
    assert_eq!(st, 200);
    assert_eq!(keys(&v), ["personas", "serverTime"]);
    assert!(chrono::DateTime::parse_from_rfc3339(v["serverTime"].as_str().unwrap()).is_ok());
    let due: Vec<&str> = v["personas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["userId"].as_str().unwrap())
        .collect();
    assert_eq!(
        due,
        vec![fresh.as_str(), daily_old.as_str(), hourly_old.as_str()],
        "nulls first, then oldest"
    );
    assert_eq!(
        keys(&v["personas"][0]),
        [
            "archetype",
            "email",
            "lastActiveAt",
            "moduleMix",
            "systemPrompt",
            "tickCadence",
            "userId"
        ]
    );
}

#[test]
fn weekdays_are_due_only_monday_to_friday_utc() {
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    // 2025-06-06 is a Friday, 06-07 a Saturday.
    assert!(is_due("weekdays", None, at("2025-06-06T23:59:00Z")));
    assert!(!is_due("weekdays", None, at("2025-06-07T00:01:00Z")));
    assert!(!is_due(
        "weekdays",
        Some("2025-06-01T00:00:00.000Z"),
        at("2025-06-08T12:00:00Z")
    ));
    assert!(is_due(
        "weekdays",
        Some("2025-06-08T12:00:00.000Z"),
        at("2025-06-09T12:00:00Z")
    ));
    assert!(!is_due(
        "weekdays",
        Some("2025-06-08T12:00:01.000Z"),
        at("2025-06-09T12:00:00Z")
    ));
    assert!(
        is_due(
            "daily",
            Some("2025-06-06T00:00:00.000Z"),
            at("2025-06-07T00:00:00Z")
        ),
        "exactly 24 h"
    );
    assert!(
        is_due(
            "hourly",
            Some("2025-06-06T00:00:00.000Z"),
            at("2025-06-06T01:00:00Z")
        ),
        "exactly 1 h"
    );
}
