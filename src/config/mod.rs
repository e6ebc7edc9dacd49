//! One `Config`, built in layers: built-in defaults < TOML file < environment <
//! command-line flags. Every value remembers where it came from, so
//! `mana-personas config` can answer "why is it talking to *that* URL?".
//!
//! Secrets are read into [`SecretString`] and shown only as `<set>`/`<unset>`.

pub mod keys;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

pub use keys::{KEYS, Key, Kind};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    Default,
    File { path: PathBuf, line: usize },
    Env { name: String },
    Flag { name: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File { path, line } => write!(f, "{}:{line}", path.display()),
            Source::Env { name } => write!(f, "env {name}"),
            Source::Flag { name } => write!(f, "flag {name}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
    #[error("production mode refuses to start:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Production(Vec<String>),
}

/// Values given on the command line, applied last.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config PATH`: must exist.
    pub config_path: Option<PathBuf>,
    /// `(key, value, flag name)`, e.g. `("api_url", "http://…", "--api")`.
    pub flags: Vec<(&'static str, String, &'static str)>,
}

impl Overrides {
    pub fn set(&mut self, key: &'static str, value: Option<impl ToString>, flag: &'static str) {
        if let Some(v) = value {
            self.flags.push((key, v.to_string(), flag));
        }
    }
}

/// A raw value and its source, before typing.
#[derive(Clone)]
struct Raw {
    value: String,
    source: Source,
}

/// Which LLM API drives personas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Anthropic,
    OpenAi,
}

/// What a command needs; [`Config::require`] checks them all at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    ServiceKey,
    AdminJwt,
    LlmKey,
    SeedSecret,
}

/// The effective configuration.
pub struct Config {
    raw: BTreeMap<&'static str, Raw>,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    pub auth_url: String,
    pub api_url: String,
    pub mcp_url: String,
    pub admin_prefix: String,
    pub internal_prefix: String,
    pub admin_on_auth: bool,
    pub service_key: Option<SecretString>,
    pub admin_jwt: Option<SecretString>,
    /// `MANA_ADMIN_JWT_FILE`, when the admin JWT came from it: re-read on a 401.
    pub admin_jwt_file: Option<PathBuf>,
    pub seed_secret: SecretString,
    pub llm_provider: Provider,
    pub llm_model: Option<String>,
    pub anthropic_api_key: Option<SecretString>,
    pub anthropic_base_url: String,
    pub openai_api_key: Option<SecretString>,
    pub openai_base_url: String,
    pub tick_interval: Duration,
    pub shutdown_grace: Duration,
    pub concurrency: usize,
    /// apps/api requests per window; 0 = do not pace.
    pub api_rate_limit_per_min: u32,
    pub paused: bool,
    pub production: bool,
    pub state_dir: PathBuf,
    pub prompts_dir: Option<PathBuf>,
    pub language: String,
    pub max_turns: u32,
    pub max_tool_calls: u32,
    /// The range the day's prompt asks for (`{{min_tools}}`–`{{max_tools}}`)
    /// as configured; the runner bounds it by `max_tool_calls`.
    pub day_tools_min: u32,
    pub day_tools_max: u32,
    pub persona_timeout: Duration,
    pub mcp_result_cap_bytes: usize,
    /// `TOOLS_DENY`, `TOOLS_ALLOW`, `TOOLS_OFFER` as given; the runner's
    /// `tool_policy` reads them.
    pub tools_deny: String,
    pub tools_allow: String,
    pub tools_offer: String,
    pub ledger_retention_days: u32,
    pub ledger_summary_days: u32,
    /// `LLM_PRICES` as written; parsed by `llm::pricing`.
    pub llm_prices: String,
    pub listen: String,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Config");
        for e in self.entries() {
            d.field(e.key, &e.value);
        }
        d.finish()
    }
}

/// One line of `mana-personas config`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub key: &'static str,
    /// Secrets are `<set>` / `<unset>`.
    pub value: String,
    pub source: Source,
    pub env: &'static [&'static str],
}

/// The hard ceiling of tool calls in one tick: a tick's actions must fit one
/// request, and the server refuses more than 500 rows. The platform client
/// takes its batch limit from here (`platform::internal::MAX_ACTIONS_PER_BATCH`):
/// configuration sits below the clients and must not import them.
pub const MAX_TOOL_CALLS_CEILING: u32 = 500;

impl Config {
    /// Loads from the process environment.
    pub fn load(ov: &Overrides) -> Result<Config, ConfigError> {
        Self::load_with(ov, &|k| std::env::var(k).ok())
    }

    /// Loads with an explicit environment (tests).
    pub fn load_with(
        ov: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut raw: BTreeMap<&'static str, Raw> = BTreeMap::new();
        for k in KEYS {
            if let Some(d) = k.default {
                raw.insert(
                    k.name,
                    Raw {
                        value: d.to_string(),
                        source: Source::Default,
                    },
                );
            }
        }
        let file = match &ov.config_path {
            Some(p) => {
                if !p.is_file() {
                    return Err(ConfigError::File {
                        path: p.clone(),
                        message: "no such file".into(),
                    });
                }
                Some(p.clone())
            }
            None => default_file_locations(env)
                .into_iter()
                .find(|p| p.is_file()),
        };
        if let Some(path) = &file {
            read_file(path, &mut raw)?;
        }
        apply_env(env, &mut raw)?;
        for (key, value, flag) in &ov.flags {
            raw.insert(
                key,
                Raw {
                    value: value.clone(),
                    source: Source::Flag {
                        name: flag.to_string(),
                    },
                },
            );
        }
        // Default state dir depends on the environment, not on a constant.
        if !raw.contains_key("state_dir")
            && let Some(p) = default_state_dir(env)
        {
            raw.insert(
                "state_dir",
                Raw {
                    value: p.display().to_string(),
                    source: Source::Default,
                },
            );
        }
        let admin_jwt_file = match raw.get("admin_jwt").map(|r| &r.source) {
            Some(Source::Env { name }) if name.ends_with("_FILE") => env(name).map(PathBuf::from),
            _ => None,
        };
        let cfg = Self::typed(raw, file)?;
        Ok(Config {
            admin_jwt_file,
            ..cfg
        })
    }

    fn typed(
        raw: BTreeMap<&'static str, Raw>,
        file: Option<PathBuf>,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut p = Parser {
            raw: &raw,
            problems: &mut problems,
        };
        let cfg = Config {
            file,
            auth_url: p.url("auth_url"),
            api_url: p.url("api_url"),
            mcp_url: p.url("mcp_url"),
            admin_prefix: p.text("admin_prefix").unwrap_or_default(),
            internal_prefix: p.text("internal_prefix").unwrap_or_default(),
            admin_on_auth: p.bool("admin_on_auth"),
            service_key: p.secret("service_key"),
            admin_jwt: p.secret("admin_jwt"),
            admin_jwt_file: None,
            seed_secret: p
                .secret("seed_secret")
                .unwrap_or_else(|| SecretString::from(String::new())),
            llm_provider: match p.text("llm_provider").as_deref() {
                Some("openai") => Provider::OpenAi,
                _ => Provider::Anthropic,
            },
            llm_model: p.text("llm_model").filter(|s| !s.is_empty()),
            anthropic_api_key: p.secret("anthropic_api_key"),
            anthropic_base_url: p.url("anthropic_base_url"),
            openai_api_key: p.secret("openai_api_key"),
            openai_base_url: p.url("openai_base_url"),
            tick_interval: Duration::from_millis(p.int("tick_interval_ms")),
            shutdown_grace: Duration::from_millis(p.int("shutdown_grace_ms")),
            concurrency: p.int("concurrency") as usize,
            api_rate_limit_per_min: p.int("api_rate_limit_per_min") as u32,
            paused: p.bool("paused"),
            production: p.bool("production"),
            state_dir: p
                .text("state_dir")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".mana-personas-state")),
            prompts_dir: p
                .text("prompts_dir")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            language: p.text("language").unwrap_or_else(|| "de".into()),
            max_turns: p.int("max_turns") as u32,
            max_tool_calls: p.int("max_tool_calls") as u32,
            day_tools_min: p.int("day_tools_min") as u32,
            day_tools_max: p.int("day_tools_max") as u32,
            persona_timeout: Duration::from_secs(p.int("persona_timeout_secs")),
            mcp_result_cap_bytes: p.int("mcp_result_cap_bytes") as usize,
            tools_deny: p.text("tools_deny").unwrap_or_default(),
            tools_allow: p.text("tools_allow").unwrap_or_default(),
            tools_offer: p.text("tools_offer").unwrap_or_else(|| "all".into()),
            ledger_retention_days: p.int("ledger_retention_days") as u32,
            ledger_summary_days: p.int("ledger_summary_days") as u32,
            llm_prices: p.text("llm_prices").unwrap_or_default(),
            listen: p.listen("listen"),
            raw: BTreeMap::new(),
        };
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        cfg.register_secrets(&raw);
        Ok(Config { raw, ..cfg })
    }

    /// Every setting with its shown value and source, in table order.
    pub fn entries(&self) -> Vec<Entry> {
        KEYS.iter()
            .map(|k| {
                let r = self.raw.get(k.name);
                let value = match (k.kind, r) {
                    (Kind::Secret, Some(r)) if !r.value.is_empty() => "<set>".to_string(),
                    (Kind::Secret, _) => "<unset>".to_string(),
                    (Kind::Url, Some(r)) => crate::http::redact_url(&r.value),
                    (_, Some(r)) => r.value.clone(),
                    (_, None) => String::new(),
                };
                let value = if k.name == "seed_secret" && self.seed_secret_is_dev_fallback() {
                    "<set: development fallback>".to_string()
                } else {
                    value
                };
                Entry {
                    key: k.name,
                    value,
                    source: r.map(|r| r.source.clone()).unwrap_or(Source::Default),
                    env: k.env,
                }
            })
            .collect()
    }

    /// Every secret and URL password of this configuration goes into the
    /// process's redaction registry (`crate::redact`), before any request
    /// can echo one back.
    fn register_secrets(&self, raw: &BTreeMap<&'static str, Raw>) {
        for k in KEYS {
            match (k.kind, raw.get(k.name)) {
                (Kind::Secret, Some(r)) => crate::redact::register(&r.value),
                (Kind::Url, Some(r)) => crate::http::register_url_secrets(&r.value),
                _ => {}
            }
        }
    }

    /// The typed value of an integer setting as the program uses it (`None`
    /// for a name that is not one): what the property tests compare with
    /// what was given, so a cast or a unit cannot silently change it.
    pub fn int_setting(&self, key: &str) -> Option<u64> {
        Some(match key {
            "tick_interval_ms" => self.tick_interval.as_millis() as u64,
            "shutdown_grace_ms" => self.shutdown_grace.as_millis() as u64,
            "concurrency" => self.concurrency as u64,
            "api_rate_limit_per_min" => self.api_rate_limit_per_min.into(),
            "max_turns" => self.max_turns.into(),
            "max_tool_calls" => self.max_tool_calls.into(),
            "day_tools_min" => self.day_tools_min.into(),
            "day_tools_max" => self.day_tools_max.into(),
            "persona_timeout_secs" => self.persona_timeout.as_secs(),
            "mcp_result_cap_bytes" => self.mcp_result_cap_bytes as u64,
            "ledger_retention_days" => self.ledger_retention_days.into(),
            "ledger_summary_days" => self.ledger_summary_days.into(),
            _ => return None,
        })
    }

    pub fn seed_secret_is_dev_fallback(&self) -> bool {
        self.seed_secret.expose_secret() == crate::password::DEV_FALLBACK_SECRET
    }

    /// The base URL of the admin and internal endpoints (legacy layout: mana-auth).
    pub fn platform_api_base(&self) -> &str {
        if self.admin_on_auth {
            &self.auth_url
        } else {
            &self.api_url
        }
    }

    /// The LLM key of the configured provider.
    pub fn llm_key(&self) -> Option<&SecretString> {
        match self.llm_provider {
            Provider::Anthropic => self.anthropic_api_key.as_ref(),
            Provider::OpenAi => self.openai_api_key.as_ref(),
        }
    }

    /// Checks what a command needs. In production every missing piece is an
    /// error, all listed at once; outside production only what the command
    /// cannot work without (admin JWT, service key) is.
    pub fn require(&self, needs: &[Need]) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let empty =
            |s: &Option<SecretString>| s.as_ref().is_none_or(|s| s.expose_secret().is_empty());
        for need in needs {
            match need {
                Need::ServiceKey if empty(&self.service_key) => {
                    problems.push("the service key is missing: set MANA_SERVICE_KEY (or service_key_file in the config file)".to_string())
                }
                Need::AdminJwt if empty(&self.admin_jwt) => problems.push(
                    "the admin JWT is missing: set MANA_ADMIN_JWT or pass --jwt-file PATH".to_string(),
                ),
                Need::LlmKey if self.production && empty(&self.llm_key().cloned()) => problems.push(match self.llm_provider {
                    Provider::Anthropic => "the LLM key is missing: set ANTHROPIC_API_KEY".to_string(),
                    Provider::OpenAi => "the LLM key is missing: set OPENAI_API_KEY".to_string(),
                }),
                Need::SeedSecret if self.seed_secret.expose_secret().is_empty() => {
                    problems.push("the persona seed secret is empty: set PERSONA_SEED_SECRET".to_string())
                }
                Need::SeedSecret if self.production && self.seed_secret_is_dev_fallback() => problems.push(
                    "the persona seed secret is the development fallback: set PERSONA_SEED_SECRET to the platform's secret".to_string(),
                ),
                _ => {}
            }
        }
        match (problems.is_empty(), self.production) {
            (true, _) => Ok(()),
            (false, true) => Err(ConfigError::Production(problems)),
            (false, false) => Err(ConfigError::Invalid(problems)),
        }
    }
}

/// `./mana-personas.toml`, `$XDG_CONFIG_HOME/mana-personas/config.toml`,
/// `/etc/mana-personas/config.toml`, in that order.
pub fn default_file_locations(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut v = vec![PathBuf::from("mana-personas.toml")];
    let xdg = env("XDG_CONFIG_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")));
    if let Some(x) = xdg {
        v.push(x.join("mana-personas/config.toml"));
    }
    v.push(PathBuf::from("/etc/mana-personas/config.toml"));
    v
}

/// `$STATE_DIRECTORY` (systemd) is handled as the `state_dir` env layer; this is
/// the fallback: `$XDG_STATE_HOME/mana-personas`, else `~/.local/state/mana-personas`.
fn default_state_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(x) = env("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        return Some(Path::new(&x).join("mana-personas"));
    }
    env("HOME").map(|h| Path::new(&h).join(".local/state/mana-personas"))
}

fn read_file(path: &Path, raw: &mut BTreeMap<&'static str, Raw>) -> Result<(), ConfigError> {
    let err = |message: String| ConfigError::File {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let table = toml::de::DeTable::parse(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!("line {}: ", line_of(s.start)))
            .unwrap_or_default();
        err(format!("{at}{}", e.message()))
    })?;
    for (key, value) in table.get_ref().iter() {
        let line = line_of(key.span().start);
        let name = key.get_ref().as_ref();
        let (base, from_file) = match name.strip_suffix("_file") {
            Some(b) if keys::find(b).is_some_and(|k| k.kind == Kind::Secret) => (b, true),
            _ => (name, false),
        };
        let Some(k) = keys::find(base) else {
            let known: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
            return Err(err(format!(
                "line {line}: unknown key `{name}` (known keys: {})",
                known.join(", ")
            )));
        };
        let v = value.get_ref();
        let text_value = if let Some(s) = v.as_str() {
            s.to_string()
        } else if let Some(i) = v.as_integer() {
            i.as_str().replace('_', "")
        } else if let Some(b) = v.as_bool() {
            b.to_string()
        } else {
            return Err(err(format!(
                "line {line}: `{name}` must be a string, integer or boolean, not {}",
                v.type_str()
            )));
        };
        let value = if from_file {
            read_secret_file(Path::new(&text_value))
                .map_err(|m| err(format!("line {line}: `{name}`: {m}")))?
        } else {
            text_value
        };
        raw.insert(
            k.name,
            Raw {
                value,
                source: Source::File {
                    path: path.to_path_buf(),
                    line,
                },
            },
        );
    }
    Ok(())
}

/// Longest secret file read: a key or a token is a few hundred bytes; a file
/// without end (`/dev/zero`, a log given by mistake) must be refused, not read
/// into memory.
pub const SECRET_FILE_MAX_BYTES: u64 = 64 * 1024;

/// Reads a secret from a file, trimming the trailing newline editors add.
/// At most [`SECRET_FILE_MAX_BYTES`]: one byte more is an error naming the file.
pub fn read_secret_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(SECRET_FILE_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > SECRET_FILE_MAX_BYTES {
        return Err(format!(
            "{} is too big for a secret file (more than {} KiB)",
            path.display(),
            SECRET_FILE_MAX_BYTES / 1024
        ));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

fn apply_env(
    env: &dyn Fn(&str) -> Option<String>,
    raw: &mut BTreeMap<&'static str, Raw>,
) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    for k in KEYS {
        for name in k.env {
            if k.kind == Kind::Secret {
                let file_var = format!("{name}_FILE");
                if let Some(p) = env(&file_var).filter(|s| !s.is_empty()) {
                    match read_secret_file(Path::new(&p)) {
                        Ok(v) => {
                            raw.insert(
                                k.name,
                                Raw {
                                    value: v,
                                    source: Source::Env { name: file_var },
                                },
                            );
                        }
                        Err(m) => problems.push(format!("{file_var}: {m}")),
                    }
                }
            }
            if let Some(v) = env(name) {
                raw.insert(
                    k.name,
                    Raw {
                        value: v,
                        source: Source::Env {
                            name: name.to_string(),
                        },
                    },
                );
                break;
            }
        }
    }
    for var in ["MANA_ENV", "NODE_ENV"] {
        if env(var).as_deref() == Some("production") {
            raw.insert(
                "production",
                Raw {
                    value: "true".into(),
                    source: Source::Env { name: var.into() },
                },
            );
        }
    }
    if let Some(port) = env("PORT").filter(|s| !s.is_empty()) {
        raw.insert(
            "listen",
            Raw {
                value: format!("127.0.0.1:{port}"),
                source: Source::Env {
                    name: "PORT".into(),
                },
            },
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// What an integer setting must be, for its error line.
fn int_rule(key: &str, min: u64, max: u64) -> String {
    let mut why = format!("must be an integer from {min} to {max}");
    if key == "max_tool_calls" {
        why.push_str(" (at most 500, because one tick's actions must fit one request)");
    }
    why
}

/// Typed access that collects every problem instead of stopping at the first.
struct Parser<'a> {
    raw: &'a BTreeMap<&'static str, Raw>,
    problems: &'a mut Vec<String>,
}

impl Parser<'_> {
    fn bad(&mut self, key: &str, r: &Raw, why: &str) {
        let kind = keys::find(key).map(|k| k.kind);
        let shown = if kind == Some(Kind::Secret) {
            "<secret>".to_string()
        } else if kind == Some(Kind::Url) {
            format!("{:?}", crate::http::redact_url(&r.value))
        } else {
            format!("{:?}", r.value)
        };
        let who = match &r.source {
            Source::Env { name } => name.clone(),
            Source::Flag { name } => name.clone(),
            s => format!("{key} ({s})"),
        };
        self.problems.push(format!("{who}={shown}: {why}"));
    }

    fn text(&mut self, key: &str) -> Option<String> {
        let r = self.raw.get(key)?;
        if let Some(Kind::OneOf(allowed)) = keys::find(key).map(|k| k.kind)
            && !allowed.contains(&r.value.as_str())
        {
            let r = r.clone();
            self.bad(key, &r, &format!("must be one of {}", allowed.join(", ")));
            return None;
        }
        Some(r.value.clone())
    }

    fn url(&mut self, key: &str) -> String {
        let Some(r) = self.raw.get(key).cloned() else {
            return String::new();
        };
        match reqwest::Url::parse(&r.value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {
                r.value.trim_end_matches('/').to_string()
            }
            _ => {
                self.bad(key, &r, "not an http(s) URL");
                String::new()
            }
        }
    }

    /// `HOST:PORT` for the daemon's HTTP server (`PORT=n` became
    /// `127.0.0.1:n`): checked here, so `config` shows the problem and every
    /// command exits 2 before anything starts, instead of the daemon failing
    /// to bind later.
    fn listen(&mut self, key: &str) -> String {
        let Some(r) = self.raw.get(key).cloned() else {
            return String::new();
        };
        let ok = r
            .value
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            self.bad(
                key,
                &r,
                "must be HOST:PORT with a port from 0 to 65535 (e.g. 127.0.0.1:3070)",
            );
        }
        r.value
    }

    fn secret(&mut self, key: &str) -> Option<SecretString> {
        self.raw
            .get(key)
            .map(|r| SecretString::from(r.value.clone()))
    }

    /// An integer within its setting's bounds (the table's `Kind::Int`),
    /// checked on the `u64` before any narrowing cast: a value outside is a
    /// problem naming the setting, never a wrap or a later panic. A name that
    /// is not an integer setting of the table is a problem too (a typo here
    /// must not silently give a default).
    fn int(&mut self, key: &str) -> u64 {
        let Some((min, max)) = keys::find(key).and_then(|k| match k.kind {
            Kind::Int { min, max } => Some((min, max)),
            _ => None,
        }) else {
            self.problems
                .push(format!("internal: `{key}` is not an integer setting"));
            return 1;
        };
        let Some(r) = self.raw.get(key).cloned() else {
            return min;
        };
        match r.value.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                let why = int_rule(key, min, max);
                self.bad(key, &r, &why);
                min
            }
        }
    }

    fn bool(&mut self, key: &str) -> bool {
        let Some(r) = self.raw.get(key).cloned() else {
            return false;
        };
        match r.value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" | "" => false,
            _ => {
                self.bad(key, &r, "must be true or false");
                false
            }
        }
    }
}
