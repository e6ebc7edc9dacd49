//! The sandbox: a loopback stand-in for the Mana platform (mana-auth, the
//! persona admin and internal endpoints, mana-mcp) and for the LLM (Anthropic
//! Messages and OpenAI chat completions, scripted and deterministic).
//!
//! Why one port for everything: the platform's paths do not collide, so one
//! listener serves all of them and an operator needs one URL. Why SQLite: after
//! a run, `sqlite3 sandbox.db 'select * from persona_actions'` is how an operator
//! checks what the runner really posted.
//!
//! Its own crate with its own wire types: the twin must mirror the platform
//! (`contract/mana-platform.md`), never the runner's client, so it cannot see
//! the client's types at all. The product uses it only in its `sandbox` and
//! `demo` commands; tests use it as a dev-dependency; `mana-sandbox` runs it
//! alone.

pub mod breakage;
pub mod cli;
pub mod db;
pub mod faults;
pub mod llm;
pub mod mcp;
pub mod platform;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use breakage::Breakage;
pub use db::Db;
pub use faults::{Fault, FaultKind, Faults, RouteGroup};
pub use platform::ratelimit::{LimitReport, LimitStats, RateLimiter};

/// The sandbox's well-known development credentials. They are not secrets: they
/// only open the sandbox, which listens on loopback.
pub const DEV_ADMIN_JWT: &str = "sandbox-admin-jwt";
pub const DEV_SERVICE_KEY: &str = "sandbox-service-key";

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// 0 picks a free port.
    pub port: u16,
    /// `None`: an in-memory database (`--ephemeral`).
    pub db_path: Option<PathBuf>,
    pub admin_jwt: String,
    pub service_key: String,
    /// Seed of the scripted LLM: same seed, same conversation.
    pub seed: u64,
    /// Added to every LLM response, for benchmarks and overlap tests.
    pub llm_latency_ms: u64,
    /// apps/api's request budget per window on the admin and internal routes
    /// (the platform: 200); 0 switches the limit off.
    pub api_rate_limit: u32,
    /// The budget's window (the platform: 60 s); tests shorten it.
    pub api_rate_window: Duration,
    /// mana-mcp's policy gate (30 calls per 60 s per tool per user), which
    /// a deployment may run or not; off like one without it.
    pub mcp_policy_gate: bool,
    /// `None`: the whole tool list in one page, as mana-mcp answers. A page
    /// size makes `tools/list` page with `nextCursor`, for client tests.
    pub mcp_page_size: Option<usize>,
    /// Test-only: contract behaviours to break on purpose (`breakage.rs`).
    pub breakage: Vec<Breakage>,
    /// Lifetime of the `accessToken` (JWT) a login hands out; the platform's
    /// is 15 minutes. Short values let tests outlive a JWT mid-tick.
    pub jwt_ttl: Duration,
    /// Which bearer the organization list accepts (deployments differ).
    pub orgs_bearer: OrgsBearer,
    /// The share of the scripted LLM's tool calls (0–1) that get one
    /// deliberately invalid argument, as real models send now and then.
    /// Calls pinned by a `[sandbox:tools=N]` directive are always valid.
    pub llm_invalid_args_share: f64,
    /// `None`: any non-blank LLM API key is accepted. `Some(k)`: only `k`,
    /// anything else is a 401 in the API's shape.
    pub llm_api_key: Option<String>,
}

/// The bearer `GET /api/auth/organization/list` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OrgsBearer {
    /// The session token (Better Auth's bearer plugin), as mana-auth does.
    #[default]
    Session,
    /// Only the JWT, as behind a gateway that exchanges it.
    Jwt,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            port: 0,
            db_path: None,
            admin_jwt: DEV_ADMIN_JWT.to_string(),
            service_key: DEV_SERVICE_KEY.to_string(),
            seed: 42,
            llm_latency_ms: 0,
            api_rate_limit: 200,
            api_rate_window: Duration::from_secs(60),
            mcp_policy_gate: false,
            mcp_page_size: None,
            breakage: Vec::new(),
            jwt_ttl: Duration::from_secs(15 * 60),
            orgs_bearer: OrgsBearer::Session,
            llm_invalid_args_share: 0.1,
            llm_api_key: None,
        }
    }
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct SandboxState {
    pub db: Db,
    pub faults: Faults,
    /// apps/api's request budget and its tallies.
    pub ratelimit: RateLimiter,
    pub opts: Arc<SandboxOptions>,
    /// The HS256 key of the JWTs this sandbox signs; drawn at start, so a
    /// restarted sandbox rejects the tokens of the last one, like a key rotation.
    pub jwt_key: Arc<[u8; 32]>,
}

/// A running sandbox. Dropping it does not stop it; call [`Sandbox::shutdown`].
pub struct Sandbox {
    pub addr: SocketAddr,
    pub state: SandboxState,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Sandbox {
    /// Binds 127.0.0.1:`port`, opens the database and starts serving.
    pub async fn start(opts: SandboxOptions) -> anyhow::Result<Sandbox> {
        let db = match &opts.db_path {
            Some(p) => Db::open(p)?,
            None => Db::in_memory()?,
        };
        let state = SandboxState {
            db,
            faults: Faults::default(),
            ratelimit: RateLimiter::default(),
            opts: Arc::new(opts),
            jwt_key: Arc::new(rand::random()),
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", state.opts.port))
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind 127.0.0.1:{}: {e}", state.opts.port))?;
        let addr = listener.local_addr()?;
        let app = router(state.clone());
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        // Small JSON answers: without TCP_NODELAY, Nagle and delayed ACKs add
        // ~40 ms to every exchange and the sandbox would measure itself.
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        Ok(Sandbox {
            addr,
            state,
            cancel,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`: the auth, API, MCP and LLM base URL at once.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// apps/api's requests and 429s so far.
    pub fn rate_limit_report(&self) -> LimitReport {
        self.state.ratelimit.report()
    }

    /// An admin account's `accessToken`, valid for `ttl` (`Duration::ZERO`:
    /// already expired), as an operator would get it from a login.
    pub fn admin_access_token(&self, ttl: Duration) -> String {
        platform::auth::issue_access_token(
            &self.state,
            "admin0000000000000000000000000000",
            "admin@mana.test",
            "admin",
            ttl,
        )
    }

    /// The lines an operator pastes into a shell to point the runner here.
    pub fn export_lines(&self) -> Vec<String> {
        let u = self.url();
        vec![
            format!("export MANA_AUTH_URL={u}"),
            format!("export MANA_API_URL={u}"),
            format!("export MANA_MCP_URL={u}"),
            format!("export ANTHROPIC_BASE_URL={u}"),
            format!("export OPENAI_BASE_URL={u}/v1"),
        ]
    }

    /// Stops accepting, lets in-flight requests finish, waits for the server.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// The whole sandbox as one axum router, fault injection in front (and the
/// test-only breakages behind it).
pub fn router(state: SandboxState) -> Router {
    Router::new()
        .merge(platform::router(state.clone()))
        .merge(llm::router(state.clone()))
        .merge(mcp::router(state.clone()))
        .merge(faults::control_router(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            breakage::apply,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            faults::inject,
        ))
}
