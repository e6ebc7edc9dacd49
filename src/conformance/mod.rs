//! `conformance`: the platform contract (`contract/mana-platform.md`) as named
//! checks against a live deployment or the sandbox.
//!
//! Why its own raw probes and not the product's clients: a check must see the
//! status and body the platform really sent and judge them by the contract,
//! not by what our clients happen to tolerate (they retry, fall back and
//! decode leniently). Every probe is one attempt — a wrong password is sent
//! exactly once, so a check can never lock the account.
//!
//! The run works on a throw-away persona (`conformance-<random>@mana.test`)
//! that it creates through the admin API and always deletes again, even when
//! checks failed. Checks run in a fixed order; one that needs an earlier
//! check's result is skipped, with the reason, when that check did not pass.
//!
//! One file per check group: [`admin`], [`auth`], [`internal`], [`mcp`],
//! [`llm`]; this file holds the runner, the report and the probe.

pub mod admin;
pub mod auth;
pub mod internal;
pub mod llm;
pub mod mcp;

use std::str::FromStr;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

use crate::config::Provider;
use crate::http::{ERROR_BODY_CHARS, cut, describe_reqwest, path_of};

/// The deployment under test: `auth=URL,api=URL,mcp=URL[,llm=URL]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Targets {
    pub auth: String,
    pub api: String,
    /// mana-mcp's base URL; the endpoint is `{mcp}/mcp`.
    pub mcp: String,
    /// The LLM API's base URL as in ANTHROPIC_BASE_URL / OPENAI_BASE_URL
    /// (OpenAI-compatible: including `/v1`). Absent: no LLM check.
    pub llm: Option<String>,
}

impl FromStr for Targets {
    type Err = String;

    fn from_str(s: &str) -> Result<Targets, String> {
        let (mut auth, mut api, mut mcp, mut llm) = (None, None, None, None);
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, url)) = part.split_once('=') else {
                return Err(format!("`{part}` is not KEY=URL"));
            };
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => return Err(format!("{key}={url}: not an http(s) URL")),
            }
            let slot = match key.trim() {
                "auth" => &mut auth,
                "api" => &mut api,
                "mcp" => &mut mcp,
                "llm" => &mut llm,
                other => return Err(format!("unknown target `{other}` (auth, api, mcp, llm)")),
            };
            if slot.is_some() {
                return Err(format!("{key} is given twice"));
            }
            *slot = Some(url.trim_end_matches('/').to_string());
        }
        let need = |v: Option<String>, k: &str| v.ok_or_else(|| format!("{k}=URL is missing"));
        Ok(Targets {
            auth: need(auth, "auth")?,
            api: need(api, "api")?,
            mcp: need(mcp, "mcp")?,
            llm,
        })
    }
}

/// The credentials and settings the checks use (from the usual configuration).
pub struct Settings {
    pub admin_jwt: SecretString,
    pub service_key: SecretString,
    pub seed_secret: SecretString,
    pub production: bool,
    pub admin_prefix: String,
    pub internal_prefix: String,
    pub llm_provider: Provider,
    pub llm_key: Option<SecretString>,
    pub llm_model: Option<String>,
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub name: &'static str,
    pub status: Status,
    pub ms: u64,
    /// What a passing check saw (e.g. which bearer the space list took).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What came instead: status and a body cut to ~300 characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub got: Option<String>,
    /// Why a check was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// All checks of one run, in order.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub persona: String,
    pub checks: Vec<CheckResult>,
}

/// A check's verdict on what it saw.
pub type Outcome = Result<String, Mismatch>;

/// What the contract says vs. what came.
#[derive(Debug, Clone)]
pub struct Mismatch {
    pub expected: String,
    pub got: String,
}

/// Shorthand for a failed check.
pub fn mismatch(expected: impl Into<String>, got: impl Into<String>) -> Mismatch {
    Mismatch {
        expected: expected.into(),
        got: got.into(),
    }
}

/// One HTTP answer as the checks judge it: status, headers, the whole body.
pub struct Exchange {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    /// `METHOD /path`, for messages.
    pub what: String,
}

impl Exchange {
    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// `POST /path → HTTP 403: {body cut to ~300 chars}`.
    pub fn shown(&self) -> String {
        let body = if self.body.trim().is_empty() {
            "(empty body)".to_string()
        } else {
            cut(&self.body, ERROR_BODY_CHARS)
        };
        format!("{} → HTTP {}: {body}", self.what, self.status)
    }

    /// Fails unless the status is `want`.
    pub fn expect_status(&self, want: &[u16]) -> Result<(), Mismatch> {
        if want.contains(&self.status) {
            return Ok(());
        }
        let w: Vec<String> = want.iter().map(|s| format!("HTTP {s}")).collect();
        Err(mismatch(w.join(" or "), self.shown()))
    }

    /// Fails unless the status is `status` and the body `{"error": "…"}`
    /// (`shape` says which error the contract names).
    pub fn expect_error(&self, status: u16, shape: &str) -> Outcome {
        self.expect_status(&[status])?;
        match self.json() {
            Some(v) if v["error"].is_string() => Ok(String::new()),
            _ => Err(mismatch(format!("{status} {shape}"), self.shown())),
        }
    }

    /// The body as a JSON object, or a mismatch naming `expected`.
    pub fn expect_json(&self, expected: &str) -> Result<Value, Mismatch> {
        self.json()
            .ok_or_else(|| mismatch(format!("{expected} (a JSON body)"), self.shown()))
    }
}

/// Sends raw requests, once each, and keeps the answer whatever its status.
pub struct Probe {
    pub http: reqwest::Client,
}

impl Probe {
    pub fn new() -> Probe {
        Probe {
            http: crate::http::client(Duration::from_secs(5), Duration::from_secs(30)),
        }
    }

    /// Sends `req`; a transport failure is a mismatch ("an answer" vs. what
    /// went wrong), since no check can pass without an answer.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Result<Exchange, Mismatch> {
        let built = req
            .build()
            .map_err(|e| mismatch("a well-formed request", e.to_string()))?;
        let what = format!("{} {}", built.method(), path_of(built.url().as_str()));
        let resp = self.http.execute(built).await.map_err(|e| {
            mismatch(
                "an HTTP answer",
                format!("{what} → {}", describe_reqwest(&e)),
            )
        })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .text()
            .await
            .map_err(|e| mismatch("a whole body", format!("{what} → {}", describe_reqwest(&e))))?;
        Ok(Exchange {
            status,
            headers,
            body,
            what,
        })
    }
}

impl Default for Probe {
    fn default() -> Self {
        Probe::new()
    }
}

/// What earlier checks learned and later ones use.
#[derive(Default)]
pub struct Found {
    pub user_id: Option<String>,
    /// The `accessToken` JWT (or `token`, when that is the JWT-shaped one).
    pub jwt: Option<SecretString>,
    /// The opaque session token.
    pub session_token: Option<SecretString>,
    pub space_id: Option<String>,
    /// The open MCP session, until a DELETE ended it.
    pub mcp_session: Option<String>,
    /// The session a DELETE ended, for the 404 probe.
    pub deleted_session: Option<String>,
    pub protocol_version: Option<String>,
    pub tools: Vec<Value>,
}

/// Everything a check may use.
pub struct Cx {
    pub probe: Probe,
    pub targets: Targets,
    pub settings: Settings,
    /// The throw-away persona's email.
    pub email: String,
    /// The tickId of this run's action and feedback batches.
    pub tick_id: String,
    pub found: Found,
}

impl Cx {
    /// `{api}{admin prefix}{rest}`; `rest` is "" or starts with `/`.
    pub fn admin_url(&self, rest: &str) -> String {
        format!(
            "{}{}",
            crate::http::join(&self.targets.api, &self.settings.admin_prefix),
            rest
        )
    }

    /// `{api}{internal prefix}{rest}`.
    pub fn internal_url(&self, rest: &str) -> String {
        format!(
            "{}{}",
            crate::http::join(&self.targets.api, &self.settings.internal_prefix),
            rest
        )
    }

    /// The persona's derived password (the platform's own derivation).
    pub fn password(&self) -> Result<SecretString, Mismatch> {
        crate::password::derive(
            &self.settings.seed_secret,
            &self.email,
            self.settings.production,
        )
        .map_err(|e| mismatch("a derivable persona password", e.to_string()))
    }
}

/// Runs checks in order and records their results.
pub struct Runner {
    pub cx: Cx,
    pub results: Vec<CheckResult>,
    /// Called with each result as it is recorded (live progress).
    on_result: Box<dyn FnMut(&CheckResult) + Send>,
}

impl Runner {
    /// `Some(start)` if every check in `needs` passed; else records `name` as
    /// skipped with the reason and returns `None`.
    pub fn begin(&mut self, name: &'static str, needs: &[&str]) -> Option<Instant> {
        let blocked: Vec<&str> = needs
            .iter()
            .copied()
            .filter(|n| {
                !self
                    .results
                    .iter()
                    .any(|r| r.name == *n && r.status == Status::Pass)
            })
            .collect();
        if blocked.is_empty() {
            return Some(Instant::now());
        }
        self.push(CheckResult {
            name,
            status: Status::Skip,
            ms: 0,
            detail: None,
            expected: None,
            got: None,
            reason: Some(format!("needs {}, which did not pass", blocked.join(", "))),
        });
        None
    }

    /// Records the outcome of a check that started at `started`.
    pub fn finish(&mut self, name: &'static str, started: Instant, outcome: Outcome) {
        let ms = started.elapsed().as_millis() as u64;
        let (status, detail, expected, got) = match outcome {
            Ok(d) => (Status::Pass, Some(d).filter(|d| !d.is_empty()), None, None),
            Err(m) => (Status::Fail, None, Some(m.expected), Some(m.got)),
        };
        self.push(CheckResult {
            name,
            status,
            ms,
            detail,
            expected,
            got,
            reason: None,
        });
    }

    fn push(&mut self, r: CheckResult) {
        (self.on_result)(&r);
        self.results.push(r);
    }
}

/// Runs one named check unless a check it needs did not pass:
/// `check!(runner, "name", [needs...], future)`.
macro_rules! check {
    ($r:expr, $name:literal, [$($need:literal),*], $call:expr) => {
        if let Some(started) = $r.begin($name, &[$($need),*]) {
            let outcome = $call.await;
            $r.finish($name, started, outcome);
        }
    };
}
pub(crate) use check;

/// Runs every check against `targets`, calling `on_result` as each one ends,
/// and deletes the throw-away persona at the end whatever happened.
pub async fn run(
    targets: Targets,
    settings: Settings,
    on_result: impl FnMut(&CheckResult) + Send + 'static,
) -> Report {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let cx = Cx {
        probe: Probe::new(),
        targets,
        settings,
        email: format!("conformance-{}@mana.test", &nonce[..12]),
        tick_id: format!("conformance-{nonce}"),
        found: Found::default(),
    };
    let mut r = Runner {
        cx,
        results: Vec::new(),
        on_result: Box::new(on_result),
    };
    admin::create(&mut r).await;
    auth::run(&mut r).await;
    admin::run(&mut r).await;
    internal::run(&mut r).await;
    mcp::run(&mut r).await;
    if r.cx.targets.llm.is_some() {
        llm::run(&mut r).await;
    }
    admin::cleanup(&mut r).await;
    let count = |s| r.results.iter().filter(|c| c.status == s).count();
    let (passed, failed, skipped) = (
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Skip),
    );
    Report {
        ok: failed == 0 && skipped == 0,
        passed,
        failed,
        skipped,
        persona: r.cx.email.clone(),
        checks: r.results,
    }
}

/// Whether `s` has a JWT's shape: three non-empty base64url parts.
pub fn is_jwt_shaped(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The claims of a JWT-shaped token (the payload is not verified: the
/// checks only read `exp`).
pub fn jwt_claims(token: &str) -> Option<Value> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_name_what_is_wrong() {
        let t: Targets = "auth=http://a:1/,api=http://b:2,mcp=https://c"
            .parse()
            .unwrap();
        assert_eq!(t.auth, "http://a:1");
        assert_eq!(t.llm, None);
        for (bad, says) in [
            ("auth=http://a,api=http://b", "mcp=URL is missing"),
            (
                "auth=http://a,api=http://b,mcp=ftp://c",
                "not an http(s) URL",
            ),
            (
                "auth=http://a,api=http://b,mcp=http://c,db=http://d",
                "unknown target `db`",
            ),
            ("auth=http://a,auth=http://b", "auth is given twice"),
            ("http://a", "is not KEY=URL"),
        ] {
            let e = bad.parse::<Targets>().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn jwt_shape_and_claims() {
        use base64::Engine;
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let jwt = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"EdDSA"}"#),
            enc(r#"{"exp":123}"#)
        );
        assert!(is_jwt_shaped(&jwt));
        assert_eq!(jwt_claims(&jwt).unwrap()["exp"], 123);
        assert!(!is_jwt_shaped("sbx.0123456789abcdef"));
        assert!(!is_jwt_shaped("a..b"));
        assert!(!is_jwt_shaped("Zm9v.YmFy.YmF6+"));
    }
}
