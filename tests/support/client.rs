//! What the client tests share: a client of the fake, the faults it is given, and a
//! receiver that counts runs per event.

#![allow(dead_code, reason = "each client test uses what it needs")]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::StatusCode;
use monite_webhooks::client::{Client, Environment};
use monite_webhooks::{Dispatcher, Event, Receiver, Verifier};

use super::fake_monite::{CLIENT_ID, CLIENT_SECRET, Effect, Fault};

/// A failure the fake gives the next request under `path_prefix`, without acting on it.
pub(crate) fn fault(
    path_prefix: &'static str,
    status: StatusCode,
    retry_after: Option<u64>,
) -> Fault {
    Fault::new(
        path_prefix,
        Effect::Refuse {
            status,
            retry_after,
        },
    )
}

/// Something the fake does to the next request under `path_prefix`.
pub(crate) fn effect(path_prefix: &'static str, effect: Effect) -> Fault {
    Fault::new(path_prefix, effect)
}

pub(crate) fn client(addr: SocketAddr) -> Client {
    Client::builder(Environment::Custom(format!("http://{addr}/v1")))
        .credentials(CLIENT_ID, CLIENT_SECRET)
        .build()
        .unwrap()
}

/// A receiver whose handlers count runs per event id, failing once for `fail_once`; its
/// idempotency store is the default, in memory.
pub(crate) fn counting_receiver(
    runs: &Arc<Mutex<HashMap<String, usize>>>,
    fail_once: Option<String>,
) -> Receiver {
    Receiver::new(
        Verifier::new(monite_webhooks::Secret::new("whsec_recovery").unwrap()),
        counting_dispatcher(runs, fail_once),
    )
}

/// [`counting_receiver`], deduplicating in `idempotency`.
pub(crate) fn counting_receiver_over(
    runs: &Arc<Mutex<HashMap<String, usize>>>,
    idempotency: monite_webhooks::Idempotency,
) -> Receiver {
    Receiver::builder(
        Verifier::new(monite_webhooks::Secret::new("whsec_recovery").unwrap()),
        counting_dispatcher(runs, None),
    )
    .idempotency(idempotency)
    .build()
}

fn counting_dispatcher(
    runs: &Arc<Mutex<HashMap<String, usize>>>,
    fail_once: Option<String>,
) -> Dispatcher {
    let runs = runs.clone();
    Dispatcher::builder()
        .fallback(move |event: Event, _| {
            let runs = runs.clone();
            let fail_once = fail_once.clone();
            async move {
                let id = event.id().unwrap_or_default().to_owned();
                let run = {
                    let mut runs = runs.lock().unwrap();
                    let run = runs.entry(id.clone()).or_default();
                    *run += 1;
                    *run
                };
                if fail_once.as_deref() == Some(id.as_str()) && run == 1 {
                    return Err(std::io::Error::other("ledger unavailable"));
                }
                Ok(())
            }
        })
        .build()
}
