//! The bearer token: given, or obtained with partner credentials, cached, and refreshed
//! once however many requests find it refused.

use std::fmt;
use std::time::{Duration, Instant};

use http::Method;
use serde::Deserialize;
use serde_json::Value;

use super::Client;
use super::request::{Redacted, Request, parse};
use crate::error::Result;

/// How the client authenticates.
pub(super) enum Auth {
    Credentials {
        client_id: String,
        client_secret: Redacted,
        cached: tokio::sync::Mutex<Option<CachedToken>>,
    },
    Token(Redacted),
}

pub(super) struct CachedToken {
    access_token: Redacted,
    refresh_at: Instant,
}

/// The lifetime Monite documents, assumed when `expires_in` is absent, and the longest a
/// token is kept whatever `expires_in` says (a 401 renews it anyway).
const LONGEST_LIFETIME: Duration = Duration::from_secs(86_400);

impl Auth {
    pub(super) fn credentials(client_id: String, client_secret: String) -> Self {
        Self::Credentials {
            client_id,
            client_secret: Redacted(client_secret),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    pub(super) fn can_refresh(&self) -> bool {
        matches!(self, Self::Credentials { .. })
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Credentials { client_id, .. } => {
                write!(f, "credentials({client_id}, [redacted])")
            }
            Self::Token(_) => f.write_str("token([redacted])"),
        }
    }
}

/// `AccessTokenResponse`, read leniently: `expires_in` is any integer, or absent.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<Value>,
}

/// How long to keep a token Monite says lives `expires_in` seconds: within zero and a day.
fn lifetime(expires_in: Option<&Value>) -> Duration {
    let seconds = match expires_in {
        Some(Value::Number(n)) => n.as_u64().or_else(|| {
            // Negative (already expired), or beyond u64 (read as a float): clamp.
            n.as_f64().map(|f| if f > 0.0 { u64::MAX } else { 0 })
        }),
        _ => None,
    };
    seconds.map_or(LONGEST_LIFETIME, |s| {
        Duration::from_secs(s).min(LONGEST_LIFETIME)
    })
}

impl Client {
    /// Drops the cached token if it is still `refused`: of many requests refused with one
    /// token, the first makes the next [`token`](Self::token) fetch a new one and the others
    /// then use that, rather than each throwing away the token another just fetched.
    pub(super) async fn forget_token(&self, refused: &Redacted) {
        if let Auth::Credentials { cached, .. } = &self.inner.auth {
            let mut cached = cached.lock().await;
            if cached
                .as_ref()
                .is_some_and(|token| token.access_token.0 == refused.0)
            {
                *cached = None;
            }
        }
    }

    /// The bearer token: the given one, or the cached one, fetched again a minute before it
    /// expires. Concurrent callers wait for one refresh rather than each making their own.
    pub(super) async fn token(&self) -> Result<Redacted> {
        let (client_id, client_secret, cached) = match &self.inner.auth {
            Auth::Token(token) => return Ok(Redacted(token.0.clone())),
            Auth::Credentials {
                client_id,
                client_secret,
                cached,
            } => (client_id, client_secret, cached),
        };
        let mut cached = cached.lock().await;
        let now = Instant::now();
        if let Some(token) = cached.as_ref().filter(|t| t.refresh_at > now) {
            return Ok(Redacted(token.access_token.0.clone()));
        }
        let body = serde_json::json!({
            "client_id": client_id,
            "client_secret": client_secret.0,
            "grant_type": "client_credentials",
        });
        // A second token harms nothing: safe to send again.
        let request = Request::new(Method::POST, "/auth/token".to_owned())
            .json(&body)
            .replay_safe();
        let response = self
            .attempt(&request, None)
            .await
            .map_err(|e| e.context("could not obtain an access token"))?;
        let token: TokenAnswer = parse(&request, &response)?;
        // Refresh a minute early (or halfway, for short-lived tokens).
        let lifetime = lifetime(token.expires_in.as_ref());
        let margin = Duration::from_secs(60).min(lifetime / 2);
        let refresh_at = Instant::now().checked_add(lifetime - margin).unwrap_or(now);
        *cached = Some(CachedToken {
            access_token: Redacted(token.access_token.clone()),
            refresh_at,
        });
        Ok(Redacted(token.access_token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_expires_in_gives_a_lifetime_within_a_day() {
        for (answer, expected) in [
            ("86400", 86_400),
            ("3600", 3_600),
            ("0", 0),
            ("-5", 0),
            ("18446744073709551615", 86_400),
            ("184467440737095516150", 86_400),
            ("-9223372036854775809", 0),
            ("null", 86_400),
            ("\"3600\"", 86_400),
        ] {
            let value: Value = serde_json::from_str(answer).unwrap_or(Value::Null);
            assert_eq!(
                lifetime(Some(&value)),
                Duration::from_secs(expected),
                "{answer}"
            );
        }
        assert_eq!(lifetime(None), LONGEST_LIFETIME);
    }
}
