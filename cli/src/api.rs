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
    let environment = environment(
        std::env::var("MONITE_ENVIRONMENT")
            .unwrap_or_default()
            .trim(),
    )?;
    Ok(Client::builder(environment).credentials(id, secret))
}

/// `sandbox` (the default), `eu` or `production`, `na` or `us`, or a base URL.
fn environment(name: &str) -> Result<Environment, Failure> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "" | "sandbox" => Environment::Sandbox,
        "eu" | "production" => Environment::Eu,
        "na" | "us" => Environment::Na,
        url if url.starts_with("http://") || url.starts_with("https://") => {
            Environment::Custom(name.to_owned())
        }
        _ => {
            return Err(Failure::usage(format!(
                "MONITE_ENVIRONMENT {name:?} is not sandbox, eu, na or a base URL"
            )));
        }
    })
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
