//! The table of every setting: its TOML key, environment variables, default and
//! kind. One table so `config` can print all of them with their sources, and so
//! a new setting cannot forget one of its layers.

/// The default of `TOOLS_DENY`: `me.generateWithReference` generates images
/// through a paid service (the first real tick called it). Here, with the
/// setting, so configuration need not import the runner's tool policy.
pub const DEFAULT_TOOLS_DENY: &str = "me.generateWithReference";

/// How a raw string becomes a typed value, and how it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Url,
    Text,
    /// Shown as `<set>` / `<unset>`; readable from `<key>_file` / `<ENV>_FILE`.
    Secret,
    /// An integer within `min..=max`, checked before any cast: a value
    /// outside is a configuration error naming the setting, never a wrap, a
    /// panic later (a date far in the past) or a silent default.
    Int {
        min: u64,
        max: u64,
    },
    Bool,
    Path,
    OneOf(&'static [&'static str]),
}

#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// TOML key (flat, top level).
    pub name: &'static str,
    /// Environment variables, first match wins.
    pub env: &'static [&'static str],
    pub default: Option<&'static str>,
    pub kind: Kind,
    pub help: &'static str,
}

/// One day in milliseconds (bounds of the millisecond settings).
const DAY_MS: u64 = 86_400_000;

macro_rules! key {
    ($name:literal, [$($env:literal),*], $default:expr, $kind:expr, $help:literal) => {
        Key { name: $name, env: &[$($env),*], default: $default, kind: $kind, help: $help }
    };
}

pub const KEYS: &[Key] = &[
    key!(
        "auth_url",
        ["MANA_AUTH_URL"],
        Some("http://localhost:3001"),
        Kind::Url,
        "mana-auth base URL (login, spaces)"
    ),
    key!(
        "api_url",
        ["MANA_API_URL"],
        Some("http://localhost:3060"),
        Kind::Url,
        "apps/api base URL (persona admin + internal endpoints)"
    ),
    key!(
        "mcp_url",
        ["MANA_MCP_URL"],
        Some("http://localhost:3069"),
        Kind::Url,
        "mana-mcp base URL; the endpoint is {mcp_url}/mcp"
    ),
    key!(
        "admin_prefix",
        ["MANA_ADMIN_PREFIX"],
        Some("/api/v1/personas/admin"),
        Kind::Text,
        "path prefix of the admin endpoints (legacy mana-auth layout: /api/v1/admin/personas)"
    ),
    key!(
        "internal_prefix",
        ["MANA_INTERNAL_PREFIX"],
        Some("/api/v1/personas/internal"),
        Kind::Text,
        "path prefix of the internal endpoints (legacy: /api/v1/internal/personas)"
    ),
    key!(
        "admin_on_auth",
        ["MANA_ADMIN_ON_AUTH"],
        Some("false"),
        Kind::Bool,
        "send admin and internal calls to auth_url instead of api_url (legacy layout)"
    ),
    key!(
        "service_key",
        ["MANA_SERVICE_KEY"],
        None,
        Kind::Secret,
        "X-Service-Key for the internal endpoints"
    ),
    key!(
        "admin_jwt",
        ["MANA_ADMIN_JWT"],
        None,
        Kind::Secret,
        "admin bearer token for seed/list/show/cleanup"
    ),
    key!(
        "seed_secret",
        ["PERSONA_SEED_SECRET"],
        Some(crate::password::DEV_FALLBACK_SECRET),
        Kind::Secret,
        "HMAC key of the persona password derivation"
    ),
    key!(
        "llm_provider",
        ["LLM_PROVIDER"],
        Some("anthropic"),
        Kind::OneOf(&["anthropic", "openai"]),
        "which LLM API drives the personas"
    ),
    key!(
        "llm_model",
        ["LLM_MODEL"],
        None,
        Kind::Text,
        "model id (default: the provider's default)"
    ),
    key!(
        "anthropic_api_key",
        ["ANTHROPIC_API_KEY"],
        None,
        Kind::Secret,
        "Anthropic API key"
    ),
    key!(
        "anthropic_base_url",
        ["ANTHROPIC_BASE_URL"],
        Some("https://api.anthropic.com"),
        Kind::Url,
        "Anthropic API base URL"
    ),
    key!(
        "openai_api_key",
        ["OPENAI_API_KEY"],
        None,
        Kind::Secret,
        "key for the OpenAI-compatible endpoint (optional for Ollama)"
    ),
    key!(
        "openai_base_url",
        ["OPENAI_BASE_URL"],
        Some("http://localhost:11434/v1"),
        Kind::Url,
        "OpenAI-compatible base URL, including /v1"
    ),
    key!(
        "tick_interval_ms",
        ["TICK_INTERVAL_MS"],
        Some("60000"),
        Kind::Int {
            min: 1,
            max: 7 * DAY_MS
        },
        "daemon: milliseconds between ticks"
    ),
    key!(
        "shutdown_grace_ms",
        ["SHUTDOWN_GRACE_MS"],
        Some("30000"),
        Kind::Int {
            min: 1,
            max: DAY_MS
        },
        "daemon: on SIGTERM, how long in-flight personas may finish before they are cancelled"
    ),
    key!(
        "api_rate_limit_per_min",
        ["API_RATE_LIMIT_PER_MIN"],
        Some("200"),
        Kind::Int {
            min: 0,
            max: 1_000_000
        },
        "apps/api requests per window (the platform's budget, 200/min); requests wait for it; the server's X-RateLimit-* headers win; 0 = do not pace"
    ),
    key!(
        "concurrency",
        ["PERSONA_CONCURRENCY"],
        Some("2"),
        Kind::Int { min: 1, max: 256 },
        "personas in flight at once"
    ),
    key!(
        "paused",
        ["RUNNER_PAUSED"],
        Some("false"),
        Kind::Bool,
        "daemon: start paused"
    ),
    key!(
        "production",
        ["MANA_PRODUCTION"],
        Some("false"),
        Kind::Bool,
        "production mode (also MANA_ENV=production or NODE_ENV=production)"
    ),
    key!(
        "state_dir",
        ["STATE_DIRECTORY"],
        None,
        Kind::Path,
        "outbox, run memory and ledger (default $XDG_STATE_HOME/mana-personas)"
    ),
    key!(
        "prompts_dir",
        ["MANA_PERSONAS_PROMPTS"],
        None,
        Kind::Path,
        "prompt templates directory (default: built-in copies of personas/)"
    ),
    key!(
        "language",
        ["MANA_PERSONAS_LANGUAGE"],
        Some("de"),
        Kind::OneOf(&["de", "en"]),
        "prompt language"
    ),
    key!(
        "max_turns",
        ["MAX_TURNS"],
        Some("15"),
        Kind::Int { min: 1, max: 1_000 },
        "model turns per main turn"
    ),
    key!(
        "max_tool_calls",
        ["MAX_TOOL_CALLS"],
        Some("40"),
        Kind::Int {
            min: 1,
            max: super::MAX_TOOL_CALLS_CEILING as u64
        },
        "tool calls per persona tick (hard ceiling 500)"
    ),
    key!(
        "day_tools_min",
        ["DAY_TOOLS_MIN"],
        Some("3"),
        Kind::Int { min: 1, max: 500 },
        "the fewest tool calls the day's prompt asks for ({{min_tools}}; at most day_tools_max)"
    ),
    key!(
        "day_tools_max",
        ["DAY_TOOLS_MAX"],
        Some("8"),
        Kind::Int { min: 1, max: 500 },
        "the most tool calls the day's prompt asks for ({{max_tools}}; at most max_tool_calls): the day's length, and so most of its cost"
    ),
    key!(
        "persona_timeout_secs",
        ["PERSONA_TIMEOUT_SECS"],
        Some("600"),
        Kind::Int {
            min: 1,
            max: 86_400
        },
        "deadline of one persona tick"
    ),
    key!(
        "mcp_result_cap_bytes",
        ["MCP_RESULT_CAP_BYTES"],
        Some("16384"),
        Kind::Int {
            min: 1,
            max: 16 * 1024 * 1024
        },
        "tool results longer than this are cut before the LLM sees them"
    ),
    key!(
        "tools_deny",
        ["TOOLS_DENY"],
        Some(DEFAULT_TOOLS_DENY),
        Kind::Text,
        "MCP tools personas may not call: glob patterns (`me.*`), comma-separated; empty denies nothing"
    ),
    key!(
        "tools_allow",
        ["TOOLS_ALLOW"],
        None,
        Kind::Text,
        "when set, only MCP tools matching one of these glob patterns may be called"
    ),
    key!(
        "tools_offer",
        ["TOOLS_OFFER"],
        Some("all"),
        Kind::OneOf(&["all", "preferred"]),
        "tools offered to the LLM: all permitted, or only the persona's moduleMix modules plus spaces.list"
    ),
    key!(
        "ledger_retention_days",
        ["LEDGER_RETENTION_DAYS"],
        Some("14"),
        Kind::Int {
            min: 1,
            max: 36_500
        },
        "ledger entries older than this are pruned"
    ),
    key!(
        "ledger_summary_days",
        ["LEDGER_SUMMARY_DAYS"],
        Some("400"),
        Kind::Int {
            min: 1,
            max: 36_500
        },
        "per-tick summaries (what `report` reads) older than this are pruned"
    ),
    key!(
        "llm_prices",
        ["LLM_PRICES"],
        None,
        Kind::Text,
        "extra model prices, US$ per million tokens: MODEL_PREFIX=INPUT/OUTPUT;..."
    ),
    key!(
        "listen",
        ["MANA_PERSONAS_LISTEN"],
        Some("127.0.0.1:3070"),
        Kind::Text,
        "daemon: health/metrics address (PORT=n means 127.0.0.1:n)"
    ),
];

pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}
