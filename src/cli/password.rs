//! `password EMAIL...`: what the platform will accept for each persona.

use clap::Args;
use secrecy::ExposeSecret;

use super::{EXIT_OK, GlobalArgs};
use crate::config::Need;

#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Persona emails (case does not matter: the platform lower-cases them).
    #[arg(required = true, value_name = "EMAIL")]
    pub emails: Vec<String>,
    /// Print `[{"email","password"}]`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(g: &GlobalArgs, a: PasswordArgs) -> anyhow::Result<u8> {
    let cfg = g.load_config(|_| {})?;
    cfg.require(&[Need::SeedSecret])?;
    let mut out = Vec::with_capacity(a.emails.len());
    for email in &a.emails {
        // The platform stores (and signs in with) the lower-cased email; a
        // password derived from another spelling would not open the account.
        let email = email.to_lowercase();
        let pw = crate::password::derive(&cfg.seed_secret, &email, cfg.production)?;
        out.push((email, pw));
    }
    if a.json {
        let v: Vec<_> = out
            .iter()
            .map(|(e, p)| serde_json::json!({"email": e, "password": p.expose_secret()}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for (_, p) in &out {
            println!("{}", p.expose_secret());
        }
    }
    Ok(EXIT_OK)
}
