//! The JWTs the sandbox hands out as `accessToken`: the platform's shape
//! (three base64url parts; payload `sub`, `email`, `role`, `aud: "mana"`,
//! `iat`, `exp`), signed with HS256 under a key the sandbox draws at start.
//!
//! Why signed at all: mana-mcp and apps/api accept only a valid, unexpired
//! JWT, and a twin that accepted any three-part string could not catch a
//! client that sends the session token or a token it made up.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The audience every platform JWT carries.
pub const AUDIENCE: &str = "mana";

/// What a sandbox JWT says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub email: String,
    pub role: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Why a token is not accepted, in the words of the platform's `jose` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not three base64url parts (e.g. the opaque session token).
    NotCompact,
    BadSignature,
    BadClaims,
    Expired,
}

impl Invalid {
    /// mana-mcp's 401 body text after `Invalid token: `.
    pub fn jose_message(self) -> &'static str {
        match self {
            Invalid::NotCompact => "Invalid Compact JWS",
            Invalid::BadSignature => "signature verification failed",
            Invalid::BadClaims => "unexpected \"aud\" claim value",
            Invalid::Expired => "\"exp\" claim timestamp check failed",
        }
    }
}

fn mac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length")
}

/// Signs `claims` into a compact JWS.
pub fn sign(key: &[u8], claims: &Claims) -> String {
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(key);
    m.update(signing_input.as_bytes());
    let sig = B64.encode(m.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Checks shape, signature, audience and expiry (`now` in epoch seconds).
pub fn verify(key: &[u8], token: &str, now: i64) -> Result<Claims, Invalid> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, sig] = parts[..] else {
        return Err(Invalid::NotCompact);
    };
    let sig = B64.decode(sig).map_err(|_| Invalid::NotCompact)?;
    let bytes = B64.decode(payload).map_err(|_| Invalid::NotCompact)?;
    if header.is_empty() {
        return Err(Invalid::NotCompact);
    }
    let mut m = mac(key);
    m.update(format!("{header}.{payload}").as_bytes());
    m.verify_slice(&sig).map_err(|_| Invalid::BadSignature)?;
    let claims: Claims = serde_json::from_slice(&bytes).map_err(|_| Invalid::BadClaims)?;
    if claims.aud != AUDIENCE {
        return Err(Invalid::BadClaims);
    }
    if now >= claims.exp {
        return Err(Invalid::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "u1".into(),
            email: "a@mana.test".into(),
            role: "user".into(),
            aud: AUDIENCE.into(),
            iat: 0,
            exp,
        }
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let t = sign(b"k", &claims(100));
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(verify(b"k", &t, 99), Ok(claims(100)));
        assert_eq!(verify(b"k", &t, 100), Err(Invalid::Expired));
        assert_eq!(verify(b"other", &t, 0), Err(Invalid::BadSignature));
        assert_eq!(
            verify(b"k", "abcdefabcdefabcdefabcdefabcdefab", 0),
            Err(Invalid::NotCompact)
        );
    }
}
