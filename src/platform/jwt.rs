//! What the client may read from a JWT without verifying it: its shape and
//! its `iat`/`exp` claims. Verification is the server's job; the client only
//! needs to know when to sign in again before the token expires, and to tell
//! a JWT from Better Auth's opaque session token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};

/// Three non-empty, dot-separated base64url parts (a compact JWS).
pub fn is_jwt_shaped(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
        })
}

/// `iat` and `exp` of a JWT's payload, as read (not verified); `None` for
/// what is not a JWT or has no such claim.
pub fn times(token: &str) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let claim = |v: &serde_json::Value, k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_f64)
            .and_then(|s| DateTime::from_timestamp(s as i64, 0))
    };
    let payload = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    match payload {
        Some(v) => (claim(&v, "iat"), claim(&v, "exp")),
        None => (None, None),
    }
}

/// The longest a token may have left and still be renewed ahead of time:
/// one minute, or a quarter of its lifetime for tokens shorter than four
/// minutes (else a 2-second test token would be renewed before every call).
pub fn renewal_margin(issued: Option<DateTime<Utc>>, expires: DateTime<Utc>) -> chrono::Duration {
    let minute = chrono::Duration::seconds(60);
    match issued {
        Some(iat) if expires > iat => minute.min((expires - iat) / 4),
        _ => minute,
    }
}

/// "in 14m 58s" / "2m ago", for operators.
pub fn describe_remaining(expires: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = expires - now;
    let secs = d.num_seconds().abs();
    let text = if secs >= 3600 {
        format!("{}h {}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m {}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    };
    if d.num_seconds() >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: &str) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA"}"#),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn shape_tells_a_jwt_from_a_session_token() {
        assert!(is_jwt_shaped(&token("{}")));
        assert!(!is_jwt_shaped("Xy7aQ0bLr2mN9sT4uV6wZ8cD1eF3gH5j"));
        assert!(!is_jwt_shaped("a..c"));
        assert!(!is_jwt_shaped("a.b.c.d"));
        assert!(!is_jwt_shaped("a.b c.d"));
    }

    #[test]
    fn times_reads_iat_and_exp() {
        let (iat, exp) = times(&token(r#"{"iat":1000,"exp":1900,"sub":"u"}"#));
        assert_eq!(iat.unwrap().timestamp(), 1000);
        assert_eq!(exp.unwrap().timestamp(), 1900);
        assert_eq!(times("opaque"), (None, None));
        assert_eq!(times(&token("not json")), (None, None));
    }

    #[test]
    fn margin_is_a_minute_or_a_quarter_of_a_short_lifetime() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        assert_eq!(renewal_margin(Some(t(0)), t(900)).num_seconds(), 60);
        assert_eq!(renewal_margin(Some(t(0)), t(8)).num_seconds(), 2);
        assert_eq!(renewal_margin(None, t(8)).num_seconds(), 60);
        assert_eq!(describe_remaining(t(898), t(0)), "in 14m 58s");
        assert_eq!(describe_remaining(t(0), t(5)), "5s ago");
    }
}
