//! `doctor`: a first-contact check of a real deployment, in the order a tick
//! needs things — configuration, mana-auth, one persona's login and space,
//! mana-mcp, the admin JWT, the service key, apps/api's request budget, the
//! LLM key and model, the model's end of life. Each step is timed and, when
//! it fails, says why in plain words and what to do; a step whose
//! prerequisite failed is skipped, never guessed.
//!
//! Secrets: no step result holds a secret. Errors shown are the servers'
//! answers (paths, statuses, bodies), which never echo our credentials.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{Config, Need};
use crate::http::{HttpError, RetryPolicy};
use crate::llm::{ChatRequest, LlmError, Message};
use crate::mcp::{McpError, McpSession};
use crate::platform::auth::{AuthError, Session};
use crate::platform::jwt;
use crate::runner::clients;
use crate::runner::tool_policy::ToolPolicy;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    /// A step it depends on failed or was not configured.
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub step: &'static str,
    pub status: Status,
    pub ms: u64,
    /// What was found (ok) or what went wrong (failed/skipped).
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The whole check.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub steps: Vec<Step>,
}

/// What to check with.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The persona to sign in as; else the catalog's first, else the first due.
    pub persona: Option<String>,
    /// The catalog whose first persona is used (when it exists).
    pub catalog: Option<PathBuf>,
}

struct Timer(Instant);

impl Timer {
    fn start() -> Timer {
        Timer(Instant::now())
    }
    fn ok(&self, step: &'static str, detail: impl Into<String>) -> Step {
        self.step(step, Status::Ok, detail.into(), None)
    }
    fn failed(
        &self,
        step: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Step {
        self.step(step, Status::Failed, detail.into(), Some(fix.into()))
    }
    fn step(
        &self,
        step: &'static str,
        status: Status,
        detail: String,
        fix: Option<String>,
    ) -> Step {
        Step {
            step,
            status,
            ms: self.0.elapsed().as_millis() as u64,
            detail,
            fix,
        }
    }
}

fn skipped(step: &'static str, why: impl Into<String>) -> Step {
    Step {
        step,
        status: Status::Skipped,
        ms: 0,
        detail: why.into(),
        fix: None,
    }
}

/// "JWT, expires in 14m 58s" / "JWT, expired 3m ago" / "not a JWT; lifetime
/// unknown" (the sandbox's dev admin token is not JWT-shaped).
pub fn lifetime(token: &str) -> String {
    if !jwt::is_jwt_shaped(token) {
        return "not a JWT; lifetime unknown".into();
    }
    match jwt::times(token).1 {
        None => "JWT without exp; lifetime unknown".into(),
        Some(exp) => {
            let now = chrono::Utc::now();
            let when = jwt::describe_remaining(exp, now);
            if exp > now {
                format!("JWT, expires {when}")
            } else {
                format!("JWT, expired {when}")
            }
        }
    }
}

/// The platform's answer in plain words for the usual HTTP failures.
fn http_cause(e: &HttpError, who: &str) -> String {
    match e {
        HttpError::Transport { message, .. } => format!("cannot reach {who}: {message}"),
        _ => e.to_string(),
    }
}

/// Runs every step against `cfg`.
pub async fn run(cfg: &Config, opts: &Options) -> Report {
    let mut steps = Vec::new();
    steps.push(configuration(cfg));

    // mana-auth: any HTTP answer proves it is there.
    let t = Timer::start();
    let http = clients::http();
    let auth_up = match http
        .get(crate::http::join(&cfg.auth_url, "/health"))
        .send()
        .await
    {
        Ok(r) => {
            steps.push(t.ok(
                "auth reachable",
                format!(
                    "{} answers (GET /health → HTTP {})",
                    crate::http::shown_url(&cfg.auth_url),
                    r.status().as_u16()
                ),
            ));
            true
        }
        Err(e) => {
            steps.push(t.failed(
                "auth reachable",
                format!("cannot reach mana-auth at {}: {}", crate::http::shown_url(&cfg.auth_url), crate::http::describe_reqwest(&e)),
                "check MANA_AUTH_URL (the platform's default is http://localhost:3001) and that mana-auth is running",
            ));
            false
        }
    };

    // The persona: flag, catalog, or the due list (needs the service key).
    let internal = clients::internal(cfg).ok();
    let persona = match &opts.persona {
        Some(p) => Some(p.clone()),
        None => first_catalog_persona(opts).or(match &internal {
            Some(i) => i
                .due()
                .await
                .ok()
                .and_then(|d| d.personas.first().map(|p| p.email.clone())),
            None => None,
        }),
    };
    let session = match (&persona, auth_up) {
        (None, _) => {
            steps.push(skipped(
                "persona login",
                "no persona to sign in as: pass --persona EMAIL, or --catalog PATH, or seed personas so the due list has one",
            ));
            None
        }
        (Some(_), false) => {
            steps.push(skipped("persona login", "mana-auth is not reachable"));
            None
        }
        (Some(email), true) => login(cfg, email, &mut steps).await,
    };

    let space = match &session {
        None => {
            steps.push(skipped("spaces", "no persona signed in"));
            None
        }
        Some((email, s)) => {
            let t = Timer::start();
            match clients::auth(cfg).personal_space(email, s).await {
                Ok((sp, bearer)) => {
                    steps.push(t.ok(
                        "spaces",
                        format!(
                            "{email} writes to space \"{}\" ({}, {}); the organization list accepted {}",
                            sp.name,
                            sp.kind.as_deref().unwrap_or("no type"),
                            sp.id,
                            bearer.as_str()
                        ),
                    ));
                    Some(sp)
                }
                Err(e) => {
                    let fix = match &e {
                        AuthError::NoSpace { .. } => {
                            "the persona has no space: re-seed it (`mana-personas seed --only EMAIL`)"
                        }
                        _ => {
                            "check that mana-auth's organization list accepts the persona's bearer (Bearer accessToken, or the session token with Better Auth's bearer plugin)"
                        }
                    };
                    steps.push(t.failed("spaces", e.to_string(), fix));
                    None
                }
            }
        }
    };

    mcp(
        cfg,
        session.as_ref().map(|(_, s)| s),
        space.as_ref().map(|s| s.id.as_str()),
        &mut steps,
    )
    .await;

    // Admin JWT.
    let t = Timer::start();
    match clients::admin(cfg, None) {
        Err(_) => steps.push(skipped(
            "admin JWT",
            "MANA_ADMIN_JWT / MANA_ADMIN_JWT_FILE is not set",
        )),
        Ok(admin) => match admin.list().await {
            Ok(list) => {
                let token = cfg
                    .admin_jwt
                    .as_ref()
                    .map(|j| lifetime(secrecy::ExposeSecret::expose_secret(j)))
                    .unwrap_or_default();
                steps.push(t.ok(
                    "admin JWT",
                    format!("valid ({} personas listed); {token}", list.len()),
                ));
            }
            Err(e) => {
                let fix = match e.status() {
                    Some(401) => {
                        "apps/api refused the admin JWT (expired or not a JWT it issued): sign in as an admin and put the fresh accessToken (it lasts 15 minutes) into MANA_ADMIN_JWT_FILE"
                    }
                    Some(403) => {
                        "the token is valid but not an admin's: use the accessToken of an account whose role is admin"
                    }
                    Some(404) => {
                        "no admin endpoint there: check MANA_API_URL and MANA_ADMIN_PREFIX (legacy layout: /api/v1/admin/personas on mana-auth)"
                    }
                    _ => {
                        "check MANA_API_URL (the platform's default is http://localhost:3060) and that apps/api is running"
                    }
                };
                steps.push(t.failed("admin JWT", http_cause(&e, "apps/api"), fix));
            }
        },
    }

    // Service key.
    let t = Timer::start();
    match &internal {
        None => steps.push(skipped(
            "service key",
            "MANA_SERVICE_KEY / MANA_SERVICE_KEY_FILE is not set",
        )),
        Some(i) => match i.due().await {
            Ok(d) => steps.push(t.ok(
                "service key",
                format!("valid; {} personas due now", d.personas.len()),
            )),
            Err(e) => {
                let fix = match e.status() {
                    Some(401 | 403) => {
                        "apps/api refused the service key: set MANA_SERVICE_KEY to apps/api's MANA_SERVICE_KEY"
                    }
                    Some(404) => {
                        "no internal endpoint there: check MANA_API_URL and MANA_INTERNAL_PREFIX"
                    }
                    Some(500) => {
                        "apps/api failed to build the due list (a misconfigured platform database driver); see apps/api's log"
                    }
                    _ => {
                        "check MANA_API_URL (the platform's default is http://localhost:3060) and that apps/api is running"
                    }
                };
                steps.push(t.failed("service key", http_cause(&e, "apps/api"), fix));
            }
        },
    }

    // The request budget, from the headers of the answers above.
    let t = Timer::start();
    let budget = clients::budget(cfg);
    match budget.last_seen() {
        Some(s) if s.remaining == 0 => {
            let wait = s
                .reset
                .saturating_sub(chrono::Utc::now().timestamp().max(0) as u64);
            steps.push(t.failed(
                "request budget",
                format!("apps/api's budget is used up: 0 of {} left, resets in {wait} s", s.limit),
                "another client on this address is spending apps/api's budget (200 requests/min per address); runs will wait for it",
            ))
        }
        Some(s) => {
            let wait = s
                .reset
                .saturating_sub(chrono::Utc::now().timestamp().max(0) as u64);
            steps.push(t.ok(
                "request budget",
                format!(
                    "{} of {} requests left in this window (resets in {wait} s); pacing to {}",
                    s.remaining,
                    s.limit,
                    pacing(cfg)
                ),
            ))
        }
        None if cfg.api_rate_limit_per_min == 0 && budget.stats().requests == 0 => {
            steps.push(skipped("request budget", "no apps/api request was made"))
        }
        None => steps.push(t.ok(
            "request budget",
            format!(
                "apps/api sent no X-RateLimit-* headers; pacing to {}",
                pacing(cfg)
            ),
        )),
    }

    llm(cfg, &mut steps).await;

    let ok = steps.iter().all(|s| s.status == Status::Ok);
    Report { ok, steps }
}

fn pacing(cfg: &Config) -> String {
    match cfg.api_rate_limit_per_min {
        0 => "nothing (API_RATE_LIMIT_PER_MIN=0; 429s are still waited out)".into(),
        n => format!("{n}/min (API_RATE_LIMIT_PER_MIN)"),
    }
}

fn configuration(cfg: &Config) -> Step {
    let t = Timer::start();
    let mut missing = Vec::new();
    for (need, what) in [
        (Need::ServiceKey, "MANA_SERVICE_KEY"),
        (Need::AdminJwt, "MANA_ADMIN_JWT"),
        (Need::LlmKey, "the LLM key"),
        (Need::SeedSecret, "PERSONA_SEED_SECRET"),
    ] {
        if cfg.require(&[need]).is_err() {
            missing.push(what);
        }
    }
    let source = cfg
        .file
        .as_ref()
        .map(|p| format!("file {}", p.display()))
        .unwrap_or_else(|| "no config file".into());
    let where_ = format!(
        "auth {}, api {}, mcp {}/mcp ({source})",
        crate::http::shown_url(&cfg.auth_url),
        crate::http::shown_url(cfg.platform_api_base()),
        crate::http::shown_url(&cfg.mcp_url)
    );
    if missing.is_empty() {
        let note = if cfg.seed_secret_is_dev_fallback() {
            "; PERSONA_SEED_SECRET is the development fallback"
        } else {
            ""
        };
        t.ok("configuration", format!("{where_}{note}"))
    } else {
        t.failed(
            "configuration",
            format!("{where_}; not set: {}", missing.join(", ")),
            "set them in the environment, as *_FILE variables, or in the config file (`mana-personas config` shows every setting and its source)",
        )
    }
}

fn first_catalog_persona(opts: &Options) -> Option<String> {
    let path = opts
        .catalog
        .clone()
        .unwrap_or_else(|| PathBuf::from("catalog.json"));
    let cat = crate::catalog::load(&path).ok()?;
    cat.personas.first().map(|p| p.email.clone())
}

/// One login, never retried on 401 (five failures lock the account).
async fn login(cfg: &Config, email: &str, steps: &mut Vec<Step>) -> Option<(String, Session)> {
    let t = Timer::start();
    let auth = clients::auth(cfg);
    let password = match crate::password::derive(&cfg.seed_secret, email, cfg.production) {
        Ok(p) => p,
        Err(e) => {
            steps.push(t.failed(
                "persona login",
                format!("{email}: {e}"),
                "set PERSONA_SEED_SECRET to the secret the personas were seeded with",
            ));
            return None;
        }
    };
    match auth.login(email, &password).await {
        Ok(s) => {
            let bearer = lifetime(secrecy::ExposeSecret::expose_secret(&s.jwt));
            steps.push(t.ok(
                "persona login",
                format!(
                    "{email} (user {}); bearer from {}: {bearer}",
                    s.user_id,
                    s.bearer.as_str()
                ),
            ));
            Some((email.to_string(), s))
        }
        Err(e) => {
            let fix = match &e {
                AuthError::WrongPassword { .. } => {
                    "set PERSONA_SEED_SECRET to the secret the personas were seeded with, or re-seed them with this one"
                }
                AuthError::Locked { .. } => {
                    "wait for the lock to end (Retry-After, 30 minutes) and fix PERSONA_SEED_SECRET first"
                }
                AuthError::NotVerified { .. } => {
                    "re-seed this persona (`mana-personas seed --only EMAIL`)"
                }
                AuthError::Incomplete { .. } => {
                    "mana-auth's login answer lacks a field the platform sends: check MANA_AUTH_URL points at mana-auth"
                }
                _ => {
                    "check MANA_AUTH_URL (the platform's default is http://localhost:3001) and mana-auth's log"
                }
            };
            steps.push(t.failed("persona login", e.to_string(), fix));
            None
        }
    }
}

/// The MCP config `doctor` and `catalog check --mcp` use: no retries (a
/// check reports what it sees), short timeouts.
fn mcp_config(cfg: &Config) -> crate::mcp::McpConfig {
    crate::mcp::McpConfig {
        base_url: cfg.mcp_url.clone(),
        connect_timeout: Duration::from_secs(15),
        call_timeout: Duration::from_secs(30),
        result_cap_bytes: cfg.mcp_result_cap_bytes,
        retry: RetryPolicy::NONE,
    }
}

/// The live tool list of the configured platform as `email` sees it: sign
/// in, open an MCP session, list the tools, DELETE the session.
pub async fn live_tools(cfg: &Config, email: &str) -> anyhow::Result<Vec<crate::mcp::ToolInfo>> {
    let signed = clients::auth(cfg)
        .sign_in(&cfg.seed_secret, email, cfg.production)
        .await?;
    let http = crate::http::client(Duration::from_secs(5), Duration::from_secs(30));
    let sess = McpSession::connect(
        &mcp_config(cfg),
        http,
        &signed.session.jwt,
        &signed.space.id,
    )
    .await?;
    let tools = sess.list_tools().await;
    sess.close().await;
    Ok(tools?)
}

/// initialize, tools/list (count and modules), DELETE.
async fn mcp(cfg: &Config, session: Option<&Session>, space: Option<&str>, steps: &mut Vec<Step>) {
    let (Some(s), Some(space)) = (session, space) else {
        for step in ["MCP initialize", "MCP tools", "MCP DELETE"] {
            steps.push(skipped(step, "no persona signed in with a space"));
        }
        return;
    };
    let mcfg = mcp_config(cfg);
    let t = Timer::start();
    let http = crate::http::client(Duration::from_secs(5), Duration::from_secs(30));
    let sess = match McpSession::connect(&mcfg, http, &s.jwt, space).await {
        Ok(x) => {
            steps.push(t.ok(
                "MCP initialize",
                format!(
                    "{}/mcp accepted the persona's bearer and space",
                    crate::http::shown_url(&cfg.mcp_url)
                ),
            ));
            x
        }
        Err(e) => {
            let fix = match &e {
                McpError::Status { status: 401, .. } => {
                    "mana-mcp refused the persona's bearer: it accepts only the JWT (login's accessToken); check that mana-auth and mana-mcp share the JWT keys"
                }
                McpError::Status { status: 404, .. } => {
                    "no MCP endpoint there: check MANA_MCP_URL (the platform's default is http://localhost:3069; the endpoint is {MANA_MCP_URL}/mcp)"
                }
                _ => {
                    "check MANA_MCP_URL (the platform's default is http://localhost:3069) and that mana-mcp is running"
                }
            };
            steps.push(t.failed("MCP initialize", e.to_string(), fix));
            steps.push(skipped("MCP tools", "no MCP session"));
            steps.push(skipped("MCP DELETE", "no MCP session"));
            return;
        }
    };
    let t = Timer::start();
    match sess.list_tools().await {
        Ok(tools) => {
            let modules: BTreeSet<&str> = tools
                .iter()
                .map(|t| crate::runner::tool_names::module_of(&t.name))
                .collect();
            let (offered, denied) = ToolPolicy::from_config(cfg).partition(&tools);
            let names = |ts: &[&crate::mcp::ToolInfo]| {
                ts.iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let detail = format!(
                "{} tools over {} modules ({}); offered {}: {}; denied {}: {}",
                tools.len(),
                modules.len(),
                modules.iter().copied().collect::<Vec<_>>().join(", "),
                offered.len(),
                names(&offered),
                denied.len(),
                if denied.is_empty() {
                    "none".to_string()
                } else {
                    names(&denied)
                },
            );
            if tools.is_empty() {
                steps.push(t.failed(
                    "MCP tools",
                    "the server lists no tools",
                    "check mana-mcp's tool registration for this user and space",
                ));
            } else {
                steps.push(t.ok("MCP tools", detail));
            }
        }
        Err(e) => steps.push(t.failed("MCP tools", e.to_string(), "see mana-mcp's log")),
    }
    let t = Timer::start();
    match sess.end().await {
        Ok(None) => steps.push(t.ok("MCP DELETE", "stateless server: no session to end")),
        Ok(Some(st)) if (200..300).contains(&st) => steps.push(t.ok("MCP DELETE", format!("session ended (HTTP {st})"))),
        Ok(Some(st)) => steps.push(t.failed(
            "MCP DELETE",
            format!("DELETE /mcp answered HTTP {st}"),
            "mana-mcp keeps sessions until DELETE; without it sessions pile up — check mana-mcp's version",
        )),
        Err(e) => steps.push(t.failed("MCP DELETE", e, "check MANA_MCP_URL and mana-mcp's log")),
    }
}

/// One minimal model call (max_tokens 1), then the model's end of life.
async fn llm(cfg: &Config, steps: &mut Vec<Step>) {
    let t = Timer::start();
    if cfg.require(&[Need::LlmKey]).is_err() {
        steps.push(skipped("LLM key and model", "no LLM key is configured"));
    } else {
        let client = crate::runner::llm_client(cfg, RetryPolicy::NONE);
        let req = ChatRequest {
            system: String::new(),
            messages: vec![Message::user_text("ping")],
            tools: Vec::new(),
            max_tokens: 1,
        };
        match client.complete(&req).await {
            Ok(_) => steps.push(t.ok(
                "LLM key and model",
                format!(
                    "{} accepted the key and model {}",
                    client.provider(),
                    client.model()
                ),
            )),
            Err(e) => {
                let status = match &e {
                    LlmError::Status { status, .. } => Some(*status),
                    LlmError::RetriesExhausted { last, .. } => match last.as_ref() {
                        LlmError::Status { status, .. } => Some(*status),
                        _ => None,
                    },
                    _ => None,
                };
                let fix = match status {
                    Some(401 | 403) => {
                        "the provider refused the key: set ANTHROPIC_API_KEY (or OPENAI_API_KEY with LLM_PROVIDER=openai) to a valid key"
                    }
                    Some(404) => {
                        "the provider does not know the model: set LLM_MODEL to a current model id"
                    }
                    Some(400) => {
                        "the provider refused the request: check LLM_MODEL and the base URL"
                    }
                    _ => {
                        "check the LLM base URL (ANTHROPIC_BASE_URL / OPENAI_BASE_URL) and the provider's status"
                    }
                };
                steps.push(t.failed("LLM key and model", e.to_string(), fix));
            }
        }
    }
    let t = Timer::start();
    let model = crate::runner::llm_client(cfg, RetryPolicy::NONE)
        .model()
        .to_string();
    match crate::llm::models::deprecation_warning(&model, chrono::Utc::now().date_naive()) {
        None => steps.push(t.ok(
            "model not deprecated",
            format!("{model} is on no known deprecation list"),
        )),
        Some(w) => steps.push(t.failed(
            "model not deprecated",
            w,
            "set LLM_MODEL to a current model (the warning names the replacement)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn jwt(payload: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b(r#"{"alg":"EdDSA"}"#), b(payload))
    }

    #[test]
    fn lifetime_reads_exp_of_jwt_shaped_tokens_only() {
        assert_eq!(lifetime("sandbox-admin-jwt"), "not a JWT; lifetime unknown");
        let soon = chrono::Utc::now().timestamp() + 125;
        let l = lifetime(&jwt(&format!(r#"{{"exp":{soon}}}"#)));
        assert!(l.starts_with("JWT, expires in 2m"), "{l}");
        let l = lifetime(&jwt(r#"{"exp":1000}"#));
        assert!(l.starts_with("JWT, expired ") && l.ends_with(" ago"), "{l}");
    }
}
