//! The runner bridges the leaves: platform clients, MCP, the LLM and local
//! state. [`persona`] runs one persona tick; [`tick`] runs a whole tick
//! (drain the outbox, fetch who is due, keep N personas in flight, summarise);
//! [`delivery`] queues and posts the batches.

pub mod batch;
pub mod clients;
pub mod delivery;
mod link;
pub mod persona;
pub mod prompts;
pub mod rating;
pub mod summary;
pub mod tick;
pub mod tool_names;
pub mod tool_policy;

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{Config, Need, Provider};
use crate::http::RetryPolicy;
use crate::llm::LlmClient;
use crate::llm::anthropic::{AnthropicClient, AnthropicConfig};
use crate::llm::openai::{OpenAiClient, OpenAiConfig};
use crate::mcp::McpConfig;
use crate::metrics::Metrics;
use crate::platform::auth::AuthClient;
use crate::platform::internal::InternalClient;
use crate::shutdown::Shutdown;
use crate::state::{State, StateError};
use prompts::Prompts;

/// Tool calls of one model turn run concurrently, at most this many at once.
pub const TOOL_CALLS_IN_PARALLEL: usize = 4;

/// Everything one persona tick needs, shared by all of them.
pub struct Runner {
    pub auth: AuthClient,
    pub internal: InternalClient,
    pub llm: Arc<dyn LlmClient>,
    pub mcp: McpConfig,
    pub http: reqwest::Client,
    pub prompts: Prompts,
    pub state: State,
    pub settings: Settings,
    /// Shared with the daemon's `/metrics`; survives a configuration reload.
    pub metrics: Arc<Metrics>,
    /// Batches the outbox could not take (disk full), in memory only;
    /// survives a configuration reload too.
    pub unsaved: Arc<delivery::Unsaved>,
}

/// The knobs of a persona tick, from configuration.
#[derive(Clone)]
pub struct Settings {
    pub seed_secret: SecretString,
    pub production: bool,
    pub max_turns: u32,
    pub max_tool_calls: u32,
    pub persona_timeout: Duration,
    pub concurrency: usize,
    pub ledger_retention_days: u32,
    pub ledger_summary_days: u32,
    /// Prices per model, for each tick's cost in the ledger summary.
    pub prices: crate::llm::pricing::PriceTable,
    /// The range the day's prompt asks for (`DAY_TOOLS_MIN`/`_MAX`, bounded
    /// so the prompt never asks for more calls than `MAX_TOOL_CALLS` lets
    /// run, nor for a minimum above its maximum): the day's length, which
    /// sets most of what a tick costs (BENCHMARKS.md §5).
    pub min_tools: u32,
    pub max_tools: u32,
    /// `max_tokens` of a main-turn model call.
    pub max_tokens: u32,
    /// Which tools personas may call and which are offered.
    pub tools: tool_policy::ToolPolicy,
}

/// The most tool calls the day's prompt asks for: `DAY_TOOLS_MAX`, but never
/// more than the `MAX_TOOL_CALLS` budget lets run (an operator who lowers the
/// budget to shorten days gets a prompt that agrees with it).
fn day_tools_max(cfg: &Config) -> u32 {
    cfg.day_tools_max.min(cfg.max_tool_calls)
}

/// The configured provider's client (key, base URL, model; the provider's
/// default model when none is configured): for the runner and `doctor`.
pub fn llm_client(cfg: &Config, retry: RetryPolicy) -> Arc<dyn LlmClient> {
    // LLM streams can run for minutes; the per-persona deadline bounds them.
    let llm_http = crate::http::client(Duration::from_secs(10), Duration::from_secs(300));
    match cfg.llm_provider {
        Provider::Anthropic => Arc::new(AnthropicClient::new(
            llm_http,
            AnthropicConfig {
                base_url: cfg.anthropic_base_url.clone(),
                api_key: cfg
                    .anthropic_api_key
                    .clone()
                    .unwrap_or_else(|| SecretString::from(String::new())),
                model: cfg
                    .llm_model
                    .clone()
                    .unwrap_or_else(|| crate::llm::anthropic::DEFAULT_MODEL.to_string()),
                retry,
            },
        )),
        Provider::OpenAi => Arc::new(OpenAiClient::new(
            llm_http,
            OpenAiConfig {
                base_url: cfg.openai_base_url.clone(),
                api_key: cfg.openai_api_key.clone(),
                model: cfg
                    .llm_model
                    .clone()
                    .unwrap_or_else(|| "gpt-4o-mini".to_string()),
                retry,
            },
        )),
    }
}

impl Runner {
    /// Builds every client from `cfg`; refuses (listing every problem) what a
    /// tick cannot run without.
    pub fn from_config(cfg: &Config) -> anyhow::Result<Runner> {
        cfg.require(&[Need::ServiceKey, Need::LlmKey, Need::SeedSecret])?;
        let retry = RetryPolicy::default();
        // At every start (tick, daemon, reload): a retired model fails
        // every request, so say so before the first persona pays for it.
        let llm = llm_client(cfg, retry);
        if let Some(w) =
            crate::llm::models::deprecation_warning(llm.model(), chrono::Utc::now().date_naive())
        {
            tracing::warn!("{w}");
        }
        let state = State::open(&cfg.state_dir)?;
        Ok(Runner {
            auth: clients::auth(cfg),
            internal: clients::internal(cfg)?,
            llm,
            mcp: McpConfig {
                base_url: cfg.mcp_url.clone(),
                connect_timeout: Duration::from_secs(15),
                call_timeout: Duration::from_secs(60),
                result_cap_bytes: cfg.mcp_result_cap_bytes,
                retry,
            },
            http: crate::http::client(Duration::from_secs(5), Duration::from_secs(90)),
            prompts: Prompts::load(cfg.prompts_dir.as_deref(), &cfg.language)?,
            state,
            settings: Settings {
                seed_secret: cfg.seed_secret.clone(),
                production: cfg.production,
                max_turns: cfg.max_turns,
                max_tool_calls: cfg.max_tool_calls,
                persona_timeout: cfg.persona_timeout,
                concurrency: cfg.concurrency,
                ledger_retention_days: cfg.ledger_retention_days,
                ledger_summary_days: cfg.ledger_summary_days,
                prices: crate::llm::pricing::PriceTable::parse(&cfg.llm_prices)
                    .map_err(anyhow::Error::msg)?,
                min_tools: cfg.day_tools_min.min(day_tools_max(cfg)),
                max_tools: day_tools_max(cfg),
                max_tokens: 2048,
                tools: tool_policy::ToolPolicy::from_config(cfg),
            },
            metrics: Arc::new(Metrics::new()),
            unsaved: Arc::default(),
        })
    }

    /// [`Runner::from_config`] on the blocking pool, for async callers (the
    /// daemon's start and reload, `tick --once`): it opens `state.db`, which
    /// may wait on another process's lock, and no SQLite call runs on the
    /// runtime thread. Gives the configuration back.
    pub async fn build(cfg: Config) -> anyhow::Result<(Runner, Config)> {
        tokio::task::spawn_blocking(move || Runner::from_config(&cfg).map(|r| (r, cfg))).await?
    }

    /// The same runner recording into `metrics` (the daemon keeps one registry
    /// across configuration reloads).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Runner {
        self.metrics = metrics;
        self
    }

    /// The same runner keeping `unsaved` (a reload must not forget rows
    /// that exist only in memory).
    pub fn with_unsaved(mut self, unsaved: Arc<delivery::Unsaved>) -> Runner {
        self.unsaved = unsaved;
        self
    }
}

/// A state call off the runtime ([`State::off_runtime`]), given up when
/// `stop` aborts (`None`): the call itself still ends on its own within one
/// busy timeout, so a write that started commits. After the abort no call
/// is started at all.
pub(crate) async fn state_until<T, F>(
    state: &State,
    stop: &Shutdown,
    f: F,
) -> Option<Result<T, StateError>>
where
    T: Send + 'static,
    F: FnOnce(&State) -> Result<T, StateError> + Send + 'static,
{
    if stop.is_aborted() {
        return None;
    }
    tokio::select! {
        biased;
        res = state.off_runtime(f) => Some(res),
        _ = stop.aborted() => None,
    }
}
