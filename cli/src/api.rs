//! Monite's API client, configured from the environment.

use monite_webhooks::client::{Client, ClientBuilder, Environment};

use crate::failure::Failure;

/// The client, from `MONITE_CLIENT_ID`, `MONITE_CLIENT_SECRET` and `MONITE_ENVIRONMENT`.
pub(crate) fn client() -> Result<Client, Failure> {
    Ok(builder()?.build()?)
}

/// The client's builder, for a command that sets more (a rate budget).
pub(crate) fn builder() -> Result<ClientBuilder, Failure> {
    let id = required("MONITE_CLIENT_ID")?;
    let secret = required("MONITE_CLIENT_SECRET")?;
    let environment: Environment = std::env::var("MONITE_ENVIRONMENT")
        .unwrap_or_default()
        .parse()
        .map_err(|e: monite_webhooks::Error| Failure::usage(e.to_string()))?;
    Ok(Client::builder(environment).credentials(id, secret))
}

fn required(name: &str) -> Result<String, Failure> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Failure::usage(format!(
                "{name} is not set: the API needs partner credentials"
            ))
        })
}
