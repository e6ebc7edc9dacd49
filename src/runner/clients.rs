//! Builds the platform clients from the configuration: the one place that
//! decides their timeouts, retry policy and credentials, for the commands and
//! the runner alike.
//!
//! Here, in the runner (the composition root of a tick, which also builds
//! the MCP and LLM clients), and not in `platform`: the clients know their
//! wire, not where their settings come from.

use std::time::Duration;

use secrecy::SecretString;

use crate::config::{Config, Need};
use crate::http::RetryPolicy;
use crate::platform::admin::AdminClient;
use crate::platform::auth::AuthClient;
use crate::platform::budget::Budget;
use crate::platform::internal::InternalClient;

/// Platform calls are small JSON requests: fail fast on connect, allow a slow
/// server 30 s.
pub fn http() -> reqwest::Client {
    crate::http::client(Duration::from_secs(5), Duration::from_secs(30))
}

/// The process's pacer for the configured apps/api, set to the configured
/// budget (`API_RATE_LIMIT_PER_MIN`). Admin and internal clients draw from it.
pub fn budget(cfg: &Config) -> Budget {
    let b = Budget::for_url(cfg.platform_api_base());
    b.configure(cfg.api_rate_limit_per_min);
    b
}

pub fn auth(cfg: &Config) -> AuthClient {
    AuthClient::new(http(), cfg.auth_url.clone(), RetryPolicy::default())
}

/// The admin client; `jwt` wins over the configured admin JWT. A JWT from
/// `MANA_ADMIN_JWT_FILE` is re-read from there on a 401 (a `--jwt-file`
/// caller adds its path with `with_jwt_file`).
pub fn admin(cfg: &Config, jwt: Option<SecretString>) -> anyhow::Result<AdminClient> {
    let (jwt, file) = match jwt {
        Some(j) => (j, None),
        None => {
            cfg.require(&[Need::AdminJwt])?;
            (
                cfg.admin_jwt.clone().expect("checked by require"),
                cfg.admin_jwt_file.clone(),
            )
        }
    };
    budget(cfg);
    Ok(AdminClient::new(
        http(),
        cfg.platform_api_base(),
        &cfg.admin_prefix,
        jwt,
        RetryPolicy::default(),
    )
    .with_jwt_file(file))
}

pub fn internal(cfg: &Config) -> anyhow::Result<InternalClient> {
    cfg.require(&[Need::ServiceKey])?;
    budget(cfg);
    Ok(InternalClient::new(
        http(),
        cfg.platform_api_base(),
        &cfg.internal_prefix,
        cfg.service_key.clone().expect("checked by require"),
        RetryPolicy::default(),
    ))
}
