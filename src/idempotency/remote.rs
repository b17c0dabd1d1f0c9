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

/// A store's URL without its password, for error messages.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) fn redact_url(url: &str) -> String {
    // PostgreSQL also takes `?password=…`; drop a query that names one.
    let url = match url.split_once('?') {
        Some((base, query)) if query.contains("password") => base,
        _ => url,
    };
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://[redacted]@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
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
}
