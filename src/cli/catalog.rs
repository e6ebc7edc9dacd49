//! `catalog check [PATH]` and `catalog list [PATH]`.

use std::path::PathBuf;

use clap::Subcommand;

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
        CatalogCmd::Check { path, mcp, persona } => {
            let cat = catalog::load(&path)?;
            for w in &cat.warnings {
                eprintln!("warning: {}: {w}", path.display());
            }
            let archetypes: std::collections::BTreeSet<_> =
                cat.personas.iter().map(|p| p.archetype.as_str()).collect();
            println!(
                "{}: ok, {} personas, {} archetypes",
                path.display(),
                cat.personas.len(),
                archetypes.len()
            );
            if mcp {
                check_mcp(g, &cat, persona).await?;
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

/// `catalog check --mcp`: which catalog modules have no tools on the
/// platform (personas weighting them get a day without them), and which
/// platform modules no persona uses (untested by the personas).
async fn check_mcp(
    g: &GlobalArgs,
    cat: &catalog::Catalog,
    persona: Option<String>,
) -> anyhow::Result<()> {
    use std::collections::{BTreeMap, BTreeSet};
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
    let mut live: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &tools {
        *live
            .entry(crate::runner::tool_names::module_of(&t.name))
            .or_default() += 1;
    }
    // Catalog modules with the personas that weight them.
    let mut used: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in &cat.personas {
        for (m, w) in &p.module_mix {
            if *w > 0.0 {
                used.entry(m.as_str()).or_default().push(p.email.as_str());
            }
        }
    }
    println!(
        "{}/mcp as {email}: {} tools over {} modules ({})",
        cfg.mcp_url,
        tools.len(),
        live.len(),
        live.iter()
            .map(|(m, n)| format!("{m} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let toolless: Vec<_> = used.keys().filter(|m| !live.contains_key(*m)).collect();
    if toolless.is_empty() {
        println!("every catalog module has tools on this platform");
    } else {
        println!("catalog modules without tools on this platform (left out of the prompt):");
        for m in toolless {
            println!("  {m}: weighted by {}", used[*m].join(", "));
        }
    }
    let unused: BTreeSet<_> = live.keys().filter(|m| !used.contains_key(*m)).collect();
    if unused.is_empty() {
        println!("every platform module is used by a persona");
    } else {
        println!(
            "platform modules no persona uses: {}",
            unused.into_iter().copied().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
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
