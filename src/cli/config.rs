//! `config`: every setting, its value (secrets as `<set>`/`<unset>`) and where
//! it came from.

use clap::Args;

use super::output::table;
use super::{EXIT_OK, GlobalArgs};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print every setting, its value (secrets as set/unset) and source as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: &GlobalArgs, a: ConfigArgs) -> anyhow::Result<u8> {
    let cfg = g.load_config(|_| {})?;
    let entries = cfg.entries();
    if a.json {
        let v = serde_json::json!({
            "file": cfg.file.as_ref().map(|p| p.display().to_string()),
            "settings": entries,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        match &cfg.file {
            Some(p) => println!("config file: {}", p.display()),
            None => println!("config file: none found"),
        }
        let rows = entries
            .into_iter()
            .map(|e| {
                vec![
                    e.key.to_string(),
                    e.value,
                    e.source.to_string(),
                    e.env.join(", "),
                ]
            })
            .collect();
        println!("{}", table(&["key", "value", "source", "env"], rows));
    }
    Ok(EXIT_OK)
}
