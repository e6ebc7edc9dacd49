//! `catalog check [PATH]` and `catalog list [PATH]`.

use std::path::PathBuf;

use clap::Subcommand;

use super::output::table;
use super::{EXIT_OK, UsageError};
use crate::catalog;

#[derive(Debug, Subcommand)]
pub enum CatalogCmd {
    /// Validate a catalog; every problem is reported at once.
    Check {
        /// The catalog file.
        #[arg(default_value = "catalog.json")]
        path: PathBuf,
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

pub fn run(c: CatalogCmd) -> anyhow::Result<u8> {
    match c {
        CatalogCmd::Check { path } => {
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
