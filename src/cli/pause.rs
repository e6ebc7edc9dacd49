//! `pause` / `resume`: flip the daemon's pause switch without a restart.
//!
//! The switch is a file in the state directory, which the daemon reads every
//! second; if this user cannot write it (systemd's DynamicUser owns the state
//! directory), the daemon's loopback control endpoint is used with the
//! service key. Either way the command then asks `/health` whether the daemon
//! took it, and says so.

use std::time::Duration;

use clap::Args;
use secrecy::ExposeSecret;

use super::{EXIT_FAILED, EXIT_OK, GlobalArgs};
use crate::config::{Config, Need};
use crate::daemon::http::SERVICE_KEY_HEADER;
use crate::daemon::pause::{self, Switch};
use crate::http::HttpError;

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The daemon's address (default: the configured `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

pub async fn run(g: &GlobalArgs, a: PauseArgs, switch: Switch) -> anyhow::Result<u8> {
    let cfg = g.load_config(|ov| ov.set("listen", a.listen.clone(), "--listen"))?;
    let want = switch == Switch::Paused;
    let word = if want { "paused" } else { "running" };
    let file = pause::path(&cfg.state_dir);
    let base = format!("http://{}", cfg.listen);
    let http = crate::http::client(Duration::from_secs(2), Duration::from_secs(5));
    match pause::write(&file, switch, "mana-personas CLI") {
        Ok(()) => println!("switch set to {word} in {}", file.display()),
        Err(e) => {
            eprintln!(
                "cannot write {}: {e}; asking the daemon instead",
                file.display()
            );
            control(&http, &base, &cfg, switch).await?;
        }
    }
    // Did a daemon take it? It reads the switch every second.
    for _ in 0..30 {
        if let Some(paused) = daemon_paused(&http, &base).await {
            if paused == want {
                println!("daemon at {} is {word}", cfg.listen);
                return Ok(EXIT_OK);
            }
        } else {
            println!(
                "no daemon answers at {}; the switch applies when it starts",
                cfg.listen
            );
            return Ok(EXIT_OK);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the daemon at {} still reports paused = {}: does it use the state directory {}?",
        cfg.listen,
        !want,
        cfg.state_dir.display()
    );
    Ok(EXIT_FAILED)
}

async fn daemon_paused(http: &reqwest::Client, base: &str) -> Option<bool> {
    let v: serde_json::Value = http
        .get(format!("{base}/health"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["paused"].as_bool()
}

async fn control(
    http: &reqwest::Client,
    base: &str,
    cfg: &Config,
    switch: Switch,
) -> anyhow::Result<()> {
    cfg.require(&[Need::ServiceKey])?;
    let Some(key) = cfg.service_key.as_ref() else {
        unreachable!("required above")
    };
    let path = match switch {
        Switch::Paused => "/control/pause",
        Switch::Running => "/control/resume",
    };
    let url = format!("{base}{path}");
    let resp = http
        .post(&url)
        .header(SERVICE_KEY_HEADER, key.expose_secret())
        .send()
        .await
        .map_err(|e| HttpError::from_reqwest("POST", &url, &e))?;
    if !resp.status().is_success() {
        return Err(crate::http::status_error("POST", &url, resp).await.into());
    }
    Ok(())
}
