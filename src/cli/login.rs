//! `login EMAIL`: proves a persona can log in with its derived password and
//! shows which space it writes to. The JWT is never printed.

use clap::Args;

use super::{EXIT_OK, GlobalArgs};
use crate::config::Need;
use crate::platform::clients;

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The persona's email (its password is derived, never typed).
    pub email: String,
    /// mana-auth base URL (overrides MANA_AUTH_URL).
    #[arg(long, value_name = "URL")]
    pub auth: Option<String>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(g: &GlobalArgs, a: LoginArgs) -> anyhow::Result<u8> {
    let cfg = g.load_config(|ov| ov.set("auth_url", a.auth.clone(), "--auth"))?;
    cfg.require(&[Need::SeedSecret])?;
    let auth = clients::auth(&cfg);
    let (session, space) = auth
        .sign_in(&cfg.seed_secret, &a.email, cfg.production)
        .await?;
    if a.json {
        let v = serde_json::json!({
            "email": a.email, "userId": session.user_id,
            "spaceId": space.id, "spaceName": space.name, "spaceType": space.kind,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("email:   {}", a.email);
        println!("userId:  {}", session.user_id);
        println!("spaceId: {}", space.id);
        println!(
            "space:   {} ({})",
            space.name,
            space.kind.as_deref().unwrap_or("no type")
        );
    }
    Ok(EXIT_OK)
}
