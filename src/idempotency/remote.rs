//! What the stores that talk to a server share: expiry in milliseconds, releasing and
//! completing in the background with back-off, the namespace check, redacted URLs.

use std::time::Duration;

use super::{ClaimToken, IdempotencyStore, MAX_STORE_DURATION, TAKEN_OVER};

/// Milliseconds for a store's expiry or interval: at least 1 (Redis refuses `PX 0`), at
/// most [`MAX_STORE_DURATION`], so that now plus it stays a valid time in every store.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn store_millis(duration: Duration) -> i64 {
    // A year in milliseconds fits in an `i64` many times over.
    i64::try_from(duration.min(MAX_STORE_DURATION).as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

/// Starts `store.release` on the current Tokio runtime and returns at once: what a store
/// that talks to a server does from `Drop`. Outside a runtime the lease lapses instead.
///
/// It releases twice: now, and once more a second later. A claim dropped on its way may
/// still be waiting in the server (behind a lock, on another pooled connection) when the
/// first release arrives; the token is this delivery's alone, so the second can only free
/// a claim nobody will use.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn release_on_runtime<S: IdempotencyStore + Clone>(
    store: &S,
    key: &str,
    token: &ClaimToken,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let (store, key, token) = (store.clone(), key.to_owned(), *token);
    runtime.spawn(async move {
        for pause in [Duration::ZERO, LATE_CLAIM_WAIT] {
            tokio::time::sleep(pause).await;
            if let Err(e) = store.release(&key, &token).await {
                crate::observe::store_trouble(&key, &format!("releasing the claim failed: {e}"));
            }
        }
    });
}

/// How long after a dropped claim [`release_on_runtime`] releases it a second time.
#[cfg(any(feature = "redis", feature = "postgres"))]
const LATE_CLAIM_WAIT: Duration = Duration::from_secs(1);

/// The pauses between the attempts of a detached done mark: doubling from 100 ms to 30 s,
/// about two and a half minutes in all, within the default five-minute lease. Past the
/// lease the mark still lands unless another delivery took the key over.
#[cfg(any(feature = "redis", feature = "postgres"))]
const COMPLETE_BACKOFF: [Duration; 11] = {
    let mut pauses = [Duration::ZERO; 11];
    let mut i = 1;
    while i < pauses.len() {
        let millis = 100u64 << (i - 1);
        pauses[i] = Duration::from_millis(if millis > 30_000 { 30_000 } else { millis });
        i += 1;
    }
    pauses
};

/// Finishes `store.complete` on the current Tokio runtime, retrying with back-off while the
/// store fails: what a store that talks to a server does when a delivery whose handlers
/// succeeded was dropped, or its done mark failed. Outside a runtime the lease lapses.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn complete_on_runtime<S: IdempotencyStore + Clone>(
    store: &S,
    key: &str,
    token: &ClaimToken,
    retention: Duration,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        crate::observe::store_trouble(key, "no runtime to finish the done mark on");
        return;
    };
    let (store, key, token) = (store.clone(), key.to_owned(), *token);
    runtime.spawn(async move {
        let mut last = None;
        for pause in COMPLETE_BACKOFF {
            tokio::time::sleep(pause).await;
            match store.complete(&key, &token, retention).await {
                Ok(true) => return,
                Ok(false) => return crate::observe::store_trouble(&key, TAKEN_OVER),
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            crate::observe::store_trouble(
                &key,
                &format!(
                    "marking done failed {} times, giving up: {e}",
                    COMPLETE_BACKOFF.len()
                ),
            );
        }
    });
}

/// Checks the namespace a shared store is given: what keeps two services on one Redis or
/// one database from taking each other's events for their own (both receive event `E` on
/// subscriptions of their own; whichever handles it first would mark `evt:E` done for both).
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn checked_namespace(namespace: &str) -> crate::error::Result<std::sync::Arc<str>> {
    let valid = !namespace.is_empty()
        && namespace.len() <= 64
        && namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(namespace.into())
    } else {
        Err(crate::error::Error::new(
            crate::error::ErrorKind::Misconfigured,
            format!(
                "{:?} is not a store namespace",
                namespace.chars().take(64).collect::<String>()
            ),
        ))
    }
}

/// What a connection string prints as: scheme, host, port and path of a URL, never a user
/// name, password or query; `<connection string redacted>` for anything else (a libpq
/// `key=value` string, a URL with no host, a part that looks like more than a name).
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn redact_url(url: &str) -> String {
    const REDACTED: &str = "<connection string redacted>";
    let Ok(parsed) = url::Url::parse(url.trim()) else {
        return REDACTED.to_owned();
    };
    // A name, an address or a socket path; anything else (`=`, spaces, quotes) may be a
    // password pasted where it does not belong.
    let plain = |part: &str, extra: &[char]| {
        part.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-~/".contains(c) || extra.contains(&c))
    };
    let host = parsed.host_str().unwrap_or("");
    let path = parsed.path();
    if parsed.cannot_be_a_base() || !plain(host, &['[', ']', ':', '%']) || !plain(path, &[]) {
        return REDACTED.to_owned();
    }
    let port = parsed
        .port()
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    format!("{}://{host}{port}{path}", parsed.scheme())
}

/// The secrets a connection string holds, as they may appear in a driver's message: the
/// URL's password and every query value whose key names a password (`password`, `pass`,
/// `sslpassword`), raw and decoded; for a libpq `key=value` string, the values of such keys.
#[cfg(any(feature = "redis", feature = "postgres"))]
fn secrets_in(url: &str) -> Vec<String> {
    let names_a_password = |key: &str| key.to_ascii_lowercase().contains("pass");
    let mut secrets = Vec::new();
    if let Ok(parsed) = url::Url::parse(url.trim()) {
        if let Some(password) = parsed.password() {
            secrets.push(password.to_owned());
            if let Ok(decoded) = percent_decoded(password) {
                secrets.push(decoded);
            }
        }
        for (key, value) in parsed.query_pairs() {
            if names_a_password(&key) {
                secrets.push(value.into_owned());
            }
        }
        if let Some(query) = parsed.query() {
            for pair in query.split('&') {
                if let Some((key, value)) = pair.split_once('=')
                    && names_a_password(key)
                {
                    secrets.push(value.to_owned());
                }
            }
        }
    }
    // libpq's `key = value` form, values optionally quoted; also catches a URL's `?pass=`.
    let spaced = url.replace(" =", "=").replace("= ", "=");
    for word in spaced.split(|c: char| c.is_whitespace() || c == '&' || c == '?') {
        if let Some((key, value)) = word.split_once('=')
            && names_a_password(key)
        {
            secrets.push(value.trim_matches(['\'', '"']).to_owned());
        }
    }
    secrets.retain(|secret| !secret.is_empty());
    secrets
}

#[cfg(any(feature = "redis", feature = "postgres"))]
fn percent_decoded(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'%'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

/// The error for a store that could not connect to `url`: the connection string redacted,
/// and the driver's error as the source, unless its message or `Debug` holds one of the
/// string's secrets (then only its absence is said).
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn connect_error<E>(server: &str, url: &str, source: E) -> crate::error::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    use crate::error::{Error, ErrorKind};
    let shown = redact_url(url);
    let told = format!("{source} {source:?}");
    if secrets_in(url)
        .iter()
        .any(|secret| told.contains(secret.as_str()))
    {
        return Error::new(
            ErrorKind::StoreUnavailable,
            format!(
                "cannot connect to {server} at {shown}: the driver's error names the \
                 password, so it is left out"
            ),
        );
    }
    Error::new(
        ErrorKind::StoreUnavailable,
        format!("cannot connect to {server} at {shown}: {source}"),
    )
    .with_source(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_intervals_stay_in_range() {
        assert_eq!(store_millis(Duration::ZERO), 1);
        assert_eq!(store_millis(Duration::from_secs(2)), 2000);
        assert_eq!(
            store_millis(Duration::MAX),
            i64::try_from(MAX_STORE_DURATION.as_millis()).unwrap()
        );
    }

    #[test]
    fn connection_strings_print_no_secret() {
        let forms = [
            (
                "postgres://app:hunter2@db:5432/app",
                "postgres://db:5432/app",
            ),
            (
                "postgresql://app:hunter2@db/app?sslmode=require&sslpassword=hunter2",
                "postgresql://db/app",
            ),
            (
                "postgres://db/app?user=app&password=hunter2",
                "postgres://db/app",
            ),
            ("postgres://app:hunter%32@db/app", "postgres://db/app"),
            (
                "postgresql:///app?host=/run/postgresql&password=hunter2",
                "postgresql:///app",
            ),
            (
                "host=db port=5432 user=app password=hunter2 dbname=app",
                "<connection string redacted>",
            ),
            (
                "host=db password = 'hunter2'",
                "<connection string redacted>",
            ),
            ("redis://:hunter2@cache:6379/0", "redis://cache:6379/0"),
            (
                "rediss://user:hunter2@cache:6380/0",
                "rediss://cache:6380/0",
            ),
            (
                "redis+unix:///run/redis.sock?db=0&pass=hunter2",
                "redis+unix:///run/redis.sock",
            ),
            (
                "unix:///run/redis.sock?pass=hunter2",
                "unix:///run/redis.sock",
            ),
            (
                "postgres://db/app password=hunter2",
                "<connection string redacted>",
            ),
        ];
        for (url, shown) in forms {
            assert_eq!(redact_url(url), shown, "{url}");
            assert!(
                secrets_in(url).iter().any(|s| s == "hunter2"),
                "{url}: {:?}",
                secrets_in(url)
            );
        }
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(
            redact_url("postgresql://app:hunter2@%2Frun%2Fpostgresql/app"),
            "postgresql://%2Frun%2Fpostgresql/app",
            "a socket directory as the host"
        );
        // No URL at all, only a scheme-like word: nothing of it is printed.
        assert_eq!(
            redact_url("password:hunter2@db"),
            "<connection string redacted>"
        );
    }
}
