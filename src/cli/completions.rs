//! `completions SHELL` and `man`: generated from the clap definitions that
//! also make `--help`, so they always match the real flags. Both print to
//! stdout for the operator to redirect where their system looks.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, EXIT_OK};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for (e.g. `mana-personas completions bash >
    /// /etc/bash_completion.d/mana-personas`).
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn completions(a: CompletionsArgs) -> anyhow::Result<u8> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "mana-personas", &mut std::io::stdout());
    Ok(EXIT_OK)
}

/// The man page in roff (`mana-personas man > mana-personas.1`).
pub fn man() -> anyhow::Result<u8> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(EXIT_OK)
}
