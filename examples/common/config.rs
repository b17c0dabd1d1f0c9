//! What the example servers read from the environment: their secrets (the development
//! secret only on explicit opt-in) and the address to listen on. Nothing here logs, as
//! hyper_server and lambda enable no `tracing`: common/mod.rs logs for the servers that do.

use std::net::SocketAddr;

use monite_webhooks::{BoxError, Keyring, Secret, Verifier};

/// The secret written here, for trying a server on your own machine: accepted only with
/// `--dev` (or `MONITE_WEBHOOK_DEV=1`) and no configured secret, never silently.
pub(crate) const DEVELOPMENT_SECRET: &str = "whsec_development_only_do_not_use_in_production";

/// What a server says when the environment configures no secret.
const NO_SECRET: &str = "no secret configured: set \
     MONITE_WEBHOOK_SECRETS=<subscription_id>=<secret>,... (one pair per subscription), \
     MONITE_WEBHOOK_KEYRING=<keyring file>, or MONITE_WEBHOOK_SECRET=<secret>";

/// Where a server's secrets come from.
pub(crate) enum Secrets {
    /// The environment: `Keyring::from_env` (`MONITE_WEBHOOK_SECRETS` pairs, a
    /// `MONITE_WEBHOOK_KEYRING` file, `MONITE_WEBHOOK_SECRET`).
    Configured(Keyring),
    /// No secret configured, and the development secret asked for.
    Development,
}

impl Secrets {
    /// The secrets the environment configures; if there are none and `offer_development`,
    /// the development secret when `--dev` or `MONITE_WEBHOOK_DEV=1` asks for it.
    ///
    /// # Errors
    /// The environment's secrets unreadable, or none configured (and the development
    /// secret not offered or not asked for).
    pub(crate) fn from_env(offer_development: bool) -> Result<Self, BoxError> {
        let keyring = Keyring::from_env()?;
        if !keyring.is_empty() {
            return Ok(Self::Configured(keyring));
        }
        if !offer_development {
            return Err(NO_SECRET.into());
        }
        if development_opt_in() {
            return Ok(Self::Development);
        }
        Err(format!(
            "{NO_SECRET}; or pass --dev to accept the development secret written in \
             examples/common/config.rs"
        )
        .into())
    }

    /// A verifier that accepts deliveries signed with these secrets.
    ///
    /// # Errors
    /// The development secret refused (it is not, being written here).
    pub(crate) fn verifier(self) -> Result<Verifier, BoxError> {
        Ok(match self {
            Self::Configured(keyring) => Verifier::from_keyring(keyring),
            Self::Development => {
                Verifier::new(Secret::new(DEVELOPMENT_SECRET)?.labeled("development"))
            }
        })
    }
}

/// Whether the development secret was asked for, with `--dev` or `MONITE_WEBHOOK_DEV=1`.
fn development_opt_in() -> bool {
    std::env::args().skip(1).any(|arg| arg == "--dev")
        || std::env::var("MONITE_WEBHOOK_DEV").is_ok_and(|v| v.trim() == "1")
}

/// `MONITE_WEBHOOK_ADDR`, or `127.0.0.1:3000`.
pub(crate) fn listen_addr() -> Result<SocketAddr, std::net::AddrParseError> {
    std::env::var("MONITE_WEBHOOK_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".to_owned())
        .parse()
}

/// A duration from the environment: `300ms`, `2s`, `5m`, `1h`, or seconds alone (`90`).
///
/// # Errors
/// Set to anything else, or to zero.
#[allow(dead_code, reason = "only the servers with background tasks read it")]
pub(crate) fn duration_var(name: &str) -> Result<Option<std::time::Duration>, BoxError> {
    let Some(text) = std::env::var(name).ok().map(|v| v.trim().to_owned()) else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let millis = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 && millis > 0 => Ok(Some(std::time::Duration::from_millis(
            n.saturating_mul(millis),
        ))),
        _ => Err(format!("{name}={text:?}: not a duration such as 500ms, 30s, 5m or 1h").into()),
    }
}

/// A rate from the environment, in requests per second: a positive number.
///
/// # Errors
/// Set to anything else.
#[allow(dead_code, reason = "only the servers with background tasks read it")]
pub(crate) fn rate_var(name: &str) -> Result<Option<f64>, BoxError> {
    let Some(text) = std::env::var(name).ok().map(|v| v.trim().to_owned()) else {
        return Ok(None);
    };
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(Some(rate)),
        _ => Err(format!("{name}={text:?}: not a positive number of requests per second").into()),
    }
}
