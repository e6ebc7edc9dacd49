//! `login EMAIL`: proves a persona can log in with its derived password and
//! shows which bearer it got (and when the JWT expires), which bearer the
//! space list accepted, and which space it writes to. No token is printed.

use clap::Args;

use super::{EXIT_OK, GlobalArgs};
use crate::config::Need;
use crate::platform::auth::SpacesBearer;
use crate::runner::clients;

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
    let signed = auth
        .sign_in(&cfg.seed_secret, &a.email, cfg.production)
        .await?;
    let (session, space) = (&signed.session, &signed.space);
    let now = chrono::Utc::now();
    if a.json {
        let v = serde_json::json!({
            "email": a.email, "userId": session.user_id,
            "bearer": session.bearer.as_str(),
            "jwtExpiresAt": session.expires_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            "spacesBearer": signed.spaces_bearer,
            "spaceId": space.id, "spaceName": space.name, "spaceType": space.kind,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("email:   {}", a.email);
        println!("userId:  {}", session.user_id);
        let expiry = match session.expires_at {
            Some(t) => format!(
                "expires {} ({})",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                crate::platform::jwt::describe_remaining(t, now)
            ),
            None => "no exp claim".to_string(),
        };
        println!("bearer:  {} (JWT, {expiry})", session.bearer.as_str());
        println!(
            "spaces:  accepted {}",
            match signed.spaces_bearer {
                SpacesBearer::Jwt => "the JWT",
                SpacesBearer::SessionToken => "the session token (the JWT got 401)",
            }
        );
        println!("spaceId: {}", space.id);
        println!(
            "space:   {} ({})",
            space.name,
            space.kind.as_deref().unwrap_or("no type")
        );
    }
    Ok(EXIT_OK)
}
