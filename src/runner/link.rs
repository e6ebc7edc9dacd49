//! A persona's way into the product for one tick: its login (the JWT) and
//! the MCP session opened with that JWT — renewed when the JWT runs out.
//!
//! Why a module of its own: the platform's JWT lasts 15 minutes and a
//! persona-tick can outlive it (a slow LLM, long backoffs). mana-mcp binds a
//! session to the JWT it was opened with, so a new JWT needs a new session.
//! The rules, all here:
//! - between model turns, a JWT with less than a minute left is renewed
//!   ahead of time (sign in again, open a new session, close the old one);
//! - a 401 from MCP means "sign in again" once: new login, new session, the
//!   failed request repeated once; a second 401 fails the persona;
//! - concurrent calls that all saw the same 401 renew once (a generation
//!   counter, as `mcp` does for its 404 re-initialization), so a tick costs
//!   one login per renewal, never one per call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;

use super::Runner;
use super::persona::{Fail, Step, Work};
use crate::mcp::{McpError, McpSession, ToolInfo};
use crate::platform::auth::{AuthError, SignInError, SignedIn, Space};

/// A refused login (401: wrong password) waits at least this long before the
/// persona tries again: the platform locks an account after five failures,
/// and a wrong secret is not fixed by retrying.
pub const LOGIN_REFUSED_HOLD: Duration = Duration::from_secs(30 * 60);

/// How long a superseded session's DELETE may take.
const CLOSE_BOUND: Duration = Duration::from_secs(5);

/// Why a new JWT was needed.
#[derive(Debug, Clone, Copy)]
enum Why {
    /// Less than a minute left.
    Expiring,
    /// MCP answered 401.
    Refused,
}

struct Current {
    signed: SignedIn,
    mcp: Arc<McpSession>,
    /// Counts renewals, so callers that saw the same 401 renew once.
    generation: u64,
}

pub(super) struct Link {
    email: String,
    current: tokio::sync::Mutex<Current>,
}

impl Fail {
    fn sign_in(e: SignInError) -> Fail {
        let hold = match &e {
            SignInError::Auth(a) if a.retry_after().is_some() => a.retry_after(),
            SignInError::Auth(AuthError::WrongPassword { .. }) => Some(LOGIN_REFUSED_HOLD),
            _ => None,
        };
        Fail {
            reason: e.to_string(),
            hold,
        }
    }
}

async fn sign_in(r: &Runner, email: &str, w: &Work) -> Result<SignedIn, Fail> {
    w.stage(Step::Login);
    let t0 = Instant::now();
    let res = r
        .auth
        .sign_in(&r.settings.seed_secret, email, r.settings.production)
        .await;
    w.with(|w| w.waits.platform += t0.elapsed());
    if let Err(SignInError::Auth(AuthError::Spaces { .. } | AuthError::NoSpace { .. })) = &res {
        // One call signs in and finds the space; the error says which half
        // failed, so the stage does too.
        w.stage(Step::Spaces);
    }
    res.map_err(Fail::sign_in)
}

/// initialize with the session's JWT and space; the session is kept in the
/// work so it is closed at the end whatever happens.
async fn connect(r: &Runner, s: &SignedIn, w: &Work) -> Result<Arc<McpSession>, McpError> {
    w.stage(Step::McpSession);
    let t0 = Instant::now();
    let res = McpSession::connect(&r.mcp, r.http.clone(), &s.session.jwt, &s.space.id).await;
    w.with(|w| w.waits.mcp += t0.elapsed());
    let mcp = Arc::new(res?);
    w.with(|w| w.sessions.push((mcp.clone(), true)));
    Ok(mcp)
}

async fn connect_and_list(
    r: &Runner,
    s: &SignedIn,
    w: &Work,
) -> Result<(Arc<McpSession>, Vec<ToolInfo>), McpError> {
    let mcp = connect(r, s, w).await?;
    let t0 = Instant::now();
    let tools = mcp.list_tools().await;
    w.with(|w| w.waits.mcp += t0.elapsed());
    match tools {
        Ok(t) => Ok((mcp, t)),
        Err(e) => {
            if e.is_unauthorized() {
                w.retire(&mcp);
            }
            Err(e)
        }
    }
}

impl Link {
    /// Signs in, opens the MCP session and lists the tools; a 401 from MCP
    /// here, too, is answered by one new sign-in.
    pub(super) async fn open(
        r: &Runner,
        email: &str,
        w: &Work,
    ) -> Result<(Link, Vec<ToolInfo>), Fail> {
        let mut signed = sign_in(r, email, w).await?;
        let (mcp, tools) = match connect_and_list(r, &signed, w).await {
            Ok(ok) => ok,
            Err(e) if e.is_unauthorized() => {
                note(w, email, Why::Refused, &e.to_string());
                signed = sign_in(r, email, w).await?;
                connect_and_list(r, &signed, w).await.map_err(|e| {
                    if e.is_unauthorized() {
                        Fail::from(format!("{e} — again right after signing in again; the platform refuses this persona's fresh JWT"))
                    } else {
                        Fail::from(e.to_string())
                    }
                })?
            }
            Err(e) => return Err(e.to_string().into()),
        };
        Ok((
            Link {
                email: email.to_string(),
                current: tokio::sync::Mutex::new(Current {
                    signed,
                    mcp,
                    generation: 0,
                }),
            },
            tools,
        ))
    }

    /// The session to call through now, and its generation.
    pub(super) async fn current(&self) -> (Arc<McpSession>, u64) {
        let c = self.current.lock().await;
        (c.mcp.clone(), c.generation)
    }

    /// The space the persona writes to.
    pub(super) async fn space(&self) -> Space {
        self.current.lock().await.signed.space.clone()
    }

    /// Renews ahead of time when the JWT has less than a minute left. Called
    /// between model turns, when no call is in flight, so the old session
    /// can be closed at once.
    pub(super) async fn renew_if_due(&self, r: &Runner, w: &Work) -> Result<(), Fail> {
        let generation = {
            let c = self.current.lock().await;
            if !c.signed.session.renewal_due(Utc::now()) {
                return Ok(());
            }
            c.generation
        };
        self.renew(r, w, generation, Why::Expiring, "")
            .await
            .map(|_| ())
    }

    /// After a 401 on a session of generation `seen`: one new sign-in and
    /// session (unless another call already renewed), to repeat the call on.
    pub(super) async fn renew_after_401(
        &self,
        r: &Runner,
        w: &Work,
        seen: u64,
        error: &McpError,
    ) -> Result<Arc<McpSession>, Fail> {
        self.renew(r, w, seen, Why::Refused, &error.to_string())
            .await
    }

    async fn renew(
        &self,
        r: &Runner,
        w: &Work,
        seen: u64,
        why: Why,
        detail: &str,
    ) -> Result<Arc<McpSession>, Fail> {
        let mut c = self.current.lock().await;
        if c.generation != seen {
            return Ok(c.mcp.clone());
        }
        note(w, &self.email, why, detail);
        let signed = sign_in(r, &self.email, w).await?;
        let mcp = connect(r, &signed, w).await.map_err(|e| {
            Fail::from(format!(
                "{e} — on the new MCP session right after signing in again"
            ))
        })?;
        let old = std::mem::replace(&mut c.mcp, mcp.clone());
        c.signed = signed;
        c.generation += 1;
        drop(c);
        w.retire(&old);
        if matches!(why, Why::Expiring) {
            // Its JWT is still valid: free it on the server now.
            let t0 = Instant::now();
            let _ = tokio::time::timeout(CLOSE_BOUND, old.close()).await;
            w.with(|w| w.waits.mcp += t0.elapsed());
        }
        Ok(mcp)
    }
}

/// Logs and records (in the ledger's transcript) why the persona signs in again.
fn note(w: &Work, email: &str, why: Why, detail: &str) {
    let reason = match why {
        Why::Expiring => "the JWT has less than a minute left",
        Why::Refused => "MCP answered 401",
    };
    tracing::info!(persona = %email, reason, detail, "signing in again and opening a new MCP session");
    w.log(json!({"event": "sign_in_again", "reason": reason, "detail": detail}));
}
