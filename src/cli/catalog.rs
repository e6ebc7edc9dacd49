//! `catalog check [PATH]` and `catalog list [PATH]`.

use std::path::PathBuf;

use std::collections::BTreeMap;

use clap::Subcommand;
use serde::Serialize;

use super::output::table;
use super::{EXIT_OK, GlobalArgs, UsageError};
use crate::catalog;

#[derive(Debug, Subcommand)]
pub enum CatalogCmd {
    /// Validate a catalog; every problem is reported at once.
    Check {
        /// The catalog file.
        #[arg(default_value = "catalog.json")]
        path: PathBuf,
        /// Also compare its modules with the live tool list of the configured
        /// platform (signs in as one persona, opens an MCP session, lists the
        /// tools, ends the session).
        #[arg(long)]
        mcp: bool,
        /// The persona to sign in as with --mcp (default: the catalog's first).
        #[arg(long, value_name = "EMAIL", requires = "mcp")]
        persona: Option<String>,
        /// Print one JSON report on stdout (warnings included).
        #[arg(long)]
        json: bool,
    },
    /// List a catalog's personas.
    List {
        /// The catalog file.
        #[arg(default_value = "catalog.json")]
        path: PathBuf,
        /// Print the personas as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(g: &GlobalArgs, c: CatalogCmd) -> anyhow::Result<u8> {
    match c {
        CatalogCmd::Check {
            path,
            mcp,
            persona,
            json,
        } => {
            let cat = catalog::load(&path)?;
            for w in &cat.warnings {
                eprintln!("warning: {}: {w}", path.display());
            }
            let archetypes: std::collections::BTreeSet<_> =
                cat.personas.iter().map(|p| p.archetype.as_str()).collect();
            let live = if mcp {
                Some(check_mcp(g, &cat, persona).await?)
            } else {
                None
            };
            if json {
                // Stable keys (README, "JSON output"); `mcp` is null
                // without --mcp.
                let v = serde_json::json!({
                    "path": path.display().to_string(),
                    "ok": true,
                    "personas": cat.personas.len(),
                    "archetypes": archetypes.len(),
                    "warnings": cat.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
                    "mcp": live,
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(EXIT_OK);
            }
            println!(
                "{}: ok, {} personas, {} archetypes",
                path.display(),
                cat.personas.len(),
                archetypes.len()
            );
            if let Some(live) = &live {
                live.print();
            }
            Ok(EXIT_OK)
        }
        CatalogCmd::List { path, json } => {
            let cat = catalog::load(&path)?;
            for w in &cat.warnings {
                eprintln!("warning: {}: {w}", path.display());
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&cat.personas)?);
            } else {
                let rows = cat
                    .personas
                    .iter()
                    .map(|p| {
                        vec![
                            p.email.clone(),
                            p.name.clone(),
                            p.archetype.clone(),
                            p.tick_cadence.as_str().to_string(),
                            p.preferred_modules().join(", "),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(&["email", "name", "archetype", "cadence", "modules"], rows)
                );
            }
            Ok(EXIT_OK)
        }
    }
}

/// What `catalog check --mcp` found: which catalog modules have no tools on
/// the platform (personas weighting them get a day without them), and which
/// platform modules no persona uses (untested by the personas).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LiveCheck {
    /// The MCP endpoint (redacted).
    url: String,
    /// Who signed in to list the tools.
    persona: String,
    tools: usize,
    /// Live module → number of tools.
    modules: BTreeMap<String, usize>,
    /// Catalog module without tools → the personas that weight it.
    modules_without_tools: BTreeMap<String, Vec<String>>,
    /// Live modules no persona weights.
    unused_modules: Vec<String>,
}

impl LiveCheck {
    fn print(&self) {
        println!(
            "{}/mcp as {}: {} tools over {} modules ({})",
            self.url,
            self.persona,
            self.tools,
            self.modules.len(),
            self.modules
                .iter()
                .map(|(m, n)| format!("{m} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if self.modules_without_tools.is_empty() {
            println!("every catalog module has tools on this platform");
        } else {
            println!("catalog modules without tools on this platform (left out of the prompt):");
            for (m, who) in &self.modules_without_tools {
                println!("  {m}: weighted by {}", who.join(", "));
            }
        }
        if self.unused_modules.is_empty() {
            println!("every platform module is used by a persona");
        } else {
            println!(
                "platform modules no persona uses: {}",
                self.unused_modules.join(", ")
            );
        }
    }
}

/// `catalog check --mcp`: signs in, lists the live tools, compares modules.
async fn check_mcp(
    g: &GlobalArgs,
    cat: &catalog::Catalog,
    persona: Option<String>,
) -> anyhow::Result<LiveCheck> {
    let cfg = g.load_config(|_| {})?;
    cfg.require(&[crate::config::Need::SeedSecret])?;
    let email = match persona {
        Some(p) => p,
        None => cat
            .personas
            .first()
            .map(|p| p.email.clone())
            .ok_or_else(|| UsageError("the catalog has no persona to sign in as".into()))?,
    };
    let tools = crate::doctor::live_tools(&cfg, &email).await?;
    let mut live: BTreeMap<String, usize> = BTreeMap::new();
    for t in &tools {
        *live
            .entry(crate::runner::tool_names::module_of(&t.name).to_string())
            .or_default() += 1;
    }
    // Catalog modules with the personas that weight them.
    let mut used: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for p in &cat.personas {
        for (m, w) in &p.module_mix {
            if *w > 0.0 {
                used.entry(m.as_str()).or_default().push(p.email.clone());
            }
        }
    }
    let modules_without_tools = used
        .iter()
        .filter(|(m, _)| !live.contains_key(**m))
        .map(|(m, who)| (m.to_string(), who.clone()))
        .collect();
    let unused_modules = live
        .keys()
        .filter(|m| !used.contains_key(m.as_str()))
        .cloned()
        .collect();
    Ok(LiveCheck {
        url: crate::http::shown_url(&cfg.mcp_url),
        persona: email,
        tools: tools.len(),
        modules: live,
        modules_without_tools,
        unused_modules,
    })
}

/// Loads a catalog for a command that needs one, as a usage error if missing.
pub fn load_for(path: &std::path::Path) -> anyhow::Result<catalog::Catalog> {
    if !path.exists() {
        return Err(UsageError(format!(
            "catalog {} does not exist (pass --catalog PATH)",
            path.display()
        ))
        .into());
    }
    let cat = catalog::load(path)?;
    for w in &cat.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    Ok(cat)
}
