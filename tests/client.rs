//! The API client against a local fake of Monite's API (tests/fake_monite): pagination,
//! tokens, retries, typed errors, and recovering missed events through a receiver.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

mod fake_monite;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use http::StatusCode;
use monite_webhooks::client::{
    Client, Environment, ListQuery, NewSubscription, SubscriptionStatus, SubscriptionUpdate,
};
use monite_webhooks::{
    Dispatcher, ErrorKind, Event, EventType, ObjectType, Receiver, Verifier, signed_request,
};

use fake_monite::{CLIENT_ID, CLIENT_SECRET, ENTITY_ID, Fault};

/// A failure the fake gives the next request under `path_prefix`.
fn fault(path_prefix: &'static str, status: StatusCode, retry_after: Option<u64>) -> Fault {
    Fault {
        path_prefix,
        status,
        retry_after,
    }
}

/// Lists every subscription, so that a test can count the requests that takes.
async fn list_all(
    subscriptions: &monite_webhooks::client::Subscriptions<'_>,
) -> Vec<monite_webhooks::client::WebhookSubscription> {
    subscriptions
        .list(ListQuery::new())
        .try_collect()
        .await
        .unwrap()
}

fn client(addr: SocketAddr) -> Client {
    Client::builder(Environment::Custom(format!("http://{addr}/v1")))
        .credentials(CLIENT_ID, CLIENT_SECRET)
        .build()
        .unwrap()
}

#[tokio::test]
async fn subscriptions_round_trip_and_paginate() {
    let (addr, _fake) = fake_monite::start().await;
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();

    let mut created = Vec::new();
    for object_type in [
        ObjectType::Payable,
        ObjectType::Counterpart,
        ObjectType::Entity,
        ObjectType::Tag,
        ObjectType::Receivable,
    ] {
        let new = NewSubscription::new(object_type, "https://example.com/webhooks/monite")
            .event_types([EventType::Created, EventType::Updated]);
        created.push(subscriptions.create(&new).await.unwrap());
    }
    // The secret is typed, never prints, and verifies what it signs.
    let first = &created[0];
    assert!(!format!("{first:?}").contains("whsec_fake"), "{first:?}");
    let verifier = Verifier::new(first.secret.clone());
    let request = signed_request(&first.secret, "{}");
    assert!(verifier.verify(request.headers(), request.body()).is_ok());
    assert_eq!(first.secret.label(), Some(first.subscription.id.as_str()));

    // Five subscriptions over three pages of two.
    let listed: Vec<_> = subscriptions
        .list(ListQuery::new().limit(2))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 5);
    assert_eq!(listed[4].object_type, ObjectType::Receivable);
    assert_eq!(
        listed[0].event_types,
        [EventType::Created, EventType::Updated]
    );

    let id = &first.subscription.id;
    let fetched = subscriptions.get(id).await.unwrap();
    assert_eq!(fetched, first.subscription);
    let updated = subscriptions
        .update(
            id,
            &SubscriptionUpdate::new().url("https://example.com/v2/webhooks"),
        )
        .await
        .unwrap();
    assert_eq!(updated.url, "https://example.com/v2/webhooks");
    assert_eq!(
        subscriptions.disable(id).await.unwrap().status,
        SubscriptionStatus::Disabled
    );
    assert_eq!(
        subscriptions.enable(id).await.unwrap().status,
        SubscriptionStatus::Enabled
    );

    // A regenerated secret replaces the old one.
    let regenerated = subscriptions.regenerate_secret(id).await.unwrap();
    let old_signed = signed_request(&first.secret, "{}");
    let new_verifier = Verifier::new(regenerated.secret.clone());
    let refused = new_verifier
        .verify(old_signed.headers(), old_signed.body())
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::SignatureMismatch);

    subscriptions.delete(id).await.unwrap();
    let gone = subscriptions.get(id).await.unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::Api);
    assert_eq!(gone.api_status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(gone.api_message(), Some("Webhook subscription not found"));
}

#[tokio::test]
async fn the_legacy_webhook_settings_api_works_alike() {
    let (addr, _fake) = fake_monite::start().await;
    let client = client(addr);
    let settings = client.webhook_settings();
    let created = settings
        .create(&NewSubscription::new(
            ObjectType::Payable,
            "https://example.com/hooks",
        ))
        .await
        .unwrap();
    let listed: Vec<_> = settings.list(ListQuery::new()).try_collect().await.unwrap();
    assert_eq!(listed, [created.subscription]);
}

#[tokio::test]
async fn a_422_surfaces_every_invalid_field() {
    let (addr, _fake) = fake_monite::start().await;
    let error = client(addr)
        .webhook_subscriptions()
        .create(&NewSubscription::new(
            ObjectType::Payable,
            "http://plain.example.com",
        ))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Api);
    assert_eq!(error.api_status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    assert_eq!(
        error.api_message(),
        Some("body.url: URL scheme should be 'https'")
    );
}

#[tokio::test]
async fn tokens_are_cached_refreshed_before_expiry_and_renewed_on_401() {
    let (addr, fake) = fake_monite::start().await;
    *fake.token_lifetime_secs.lock().unwrap() = 2;
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();

    for _ in 0..3 {
        list_all(&subscriptions).await;
    }
    assert_eq!(
        fake.token_requests.load(Ordering::SeqCst),
        1,
        "the token is cached"
    );

    // A 2 s token is refreshed halfway through its life.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    list_all(&subscriptions).await;
    assert_eq!(
        fake.token_requests.load(Ordering::SeqCst),
        2,
        "refreshed before expiry"
    );

    // Revoked early: the 401 gets one fresh token and the request goes through.
    fake.revoke_tokens();
    list_all(&subscriptions).await;
    assert_eq!(
        fake.token_requests.load(Ordering::SeqCst),
        3,
        "renewed on 401"
    );

    // A token of the user's own is not renewed: the 401 is the answer.
    let with_token = Client::builder(Environment::Custom(format!("http://{addr}/v1")))
        .token("revoked-token")
        .build()
        .unwrap();
    let error = with_token
        .webhook_subscriptions()
        .get("x")
        .await
        .unwrap_err();
    assert_eq!(error.api_status(), Some(StatusCode::UNAUTHORIZED));

    // Wrong credentials say so.
    let wrong = Client::builder(Environment::Custom(format!("http://{addr}/v1")))
        .credentials(CLIENT_ID, "wrong")
        .build()
        .unwrap();
    let error = wrong.webhook_subscriptions().get("x").await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("could not obtain an access token"),
        "{error}"
    );
    assert!(
        !error.to_string().contains("wrong"),
        "the secret leaked: {error}"
    );
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_then_reported() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    let path_prefix = "/v1/webhook_subscriptions";

    fake.inject(fault(path_prefix, StatusCode::TOO_MANY_REQUESTS, Some(1)));
    let started = Instant::now();
    list_all(&subscriptions).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );

    for _ in 0..2 {
        fake.inject(fault(path_prefix, StatusCode::SERVICE_UNAVAILABLE, None));
    }
    list_all(&subscriptions).await;

    // Past the retry budget (3), the failure is reported with its status.
    for _ in 0..4 {
        fake.inject(fault(path_prefix, StatusCode::BAD_GATEWAY, None));
    }
    let before = fake.requests.load(Ordering::SeqCst);
    let error = subscriptions.get("x").await.unwrap_err();
    assert_eq!(error.api_status(), Some(StatusCode::BAD_GATEWAY));
    assert_eq!(
        fake.requests.load(Ordering::SeqCst) - before,
        4,
        "one try and three retries"
    );

    // A 4xx is not retried.
    let before = fake.requests.load(Ordering::SeqCst);
    let _ = subscriptions.get("missing").await.unwrap_err();
    assert_eq!(fake.requests.load(Ordering::SeqCst) - before, 1);
}

#[tokio::test]
async fn the_fake_answers_missing_headers_as_monite_does() {
    let (addr, _fake) = fake_monite::start().await;
    let client = client(addr);
    // The client always sends the headers; this checks the fake would catch it if not.
    let _: Vec<_> = client
        .events(ENTITY_ID)
        .list(ListQuery::new())
        .try_collect()
        .await
        .unwrap();
    let credentials = serde_json::json!({
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "client_credentials",
    });
    let answer = reqwest::Client::new()
        .post(format!("http://{addr}/v1/auth/token"))
        .headers(fake_monite::raw_headers(None, true, false))
        .header("content-type", "application/json")
        .body(credentials.to_string())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let token: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    let token = token["access_token"].as_str().unwrap();
    for (version, entity, expected) in [(false, true, 400), (true, false, 400), (true, true, 200)] {
        let status = reqwest::Client::new()
            .get(format!("http://{addr}/v1/events"))
            .headers(fake_monite::raw_headers(Some(token), version, entity))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(
            status.as_u16(),
            expected,
            "version {version}, entity {entity}"
        );
    }
}

#[tokio::test]
async fn events_and_deliveries_stream_and_filter() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let events = client.events(ENTITY_ID);

    let all: Vec<Event> = events
        .list(ListQuery::new().limit(3))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), fake.events().len());
    assert_eq!(
        all[3].event_type(),
        &EventType::OnboardingRequirementsUpdated
    );
    assert_eq!(all[3].entity_id(), Some(ENTITY_ID));
    assert!(
        all.windows(2)
            .all(|w| w[0].created_at() <= w[1].created_at())
    );

    let payables: Vec<Event> = events
        .list(
            ListQuery::new()
                .object_type(&ObjectType::Payable)
                .created_since("2024-05-03T00:00:00Z"),
        )
        .try_collect()
        .await
        .unwrap();
    let actions: Vec<&str> = payables.iter().map(Event::action).collect();
    assert_eq!(actions, ["payable.submitted_for_approval", "payable.paid"]);

    let one = events.get(all[1].id().unwrap()).await.unwrap();
    assert_eq!(one.action(), "payable.created");
    assert_eq!(one.object_id(), all[1].object_id());

    let deliveries: Vec<_> = client
        .webhook_deliveries(ENTITY_ID)
        .list(ListQuery::new().limit(1))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 4);
    assert_eq!(deliveries[1].response_status_code, Some(503));
    assert_eq!(deliveries[1].was_successful, Some(false));
    let for_one: Vec<_> = client
        .webhook_deliveries(ENTITY_ID)
        .list(ListQuery::new().event_id(all[0].id().unwrap()))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(for_one.len(), 1);
}

/// A receiver whose handlers count runs per event id, failing once for `fail_once`.
fn counting_receiver(
    runs: &Arc<Mutex<HashMap<String, usize>>>,
    fail_once: Option<String>,
) -> Receiver {
    let runs = runs.clone();
    let dispatcher = Dispatcher::builder()
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
        .build();
    Receiver::new(
        Verifier::new(monite_webhooks::Secret::new("whsec_recovery").unwrap()),
        dispatcher,
    )
}

const SUBSCRIPTION: &str = "f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba";

#[tokio::test]
async fn recovery_runs_each_event_once_even_when_some_were_delivered() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let runs = Arc::default();
    let receiver = counting_receiver(&runs, None);
    let secret = monite_webhooks::Secret::new("whsec_recovery").unwrap();

    // Three of the seven events arrived as webhooks before the listener went down.
    for event in &fake.events()[..3] {
        let mut delivered = event.clone();
        delivered["webhook_subscription_id"] = serde_json::json!(SUBSCRIPTION);
        let response = receiver
            .handle(signed_request(&secret, delivered.to_string()))
            .await;
        assert_eq!(response.status(), 200);
    }

    let mut reports = Vec::new();
    let progress = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .as_subscription(SUBSCRIPTION)
        .page_size(3)
        .on_progress(|p| reports.push(p.clone()))
        .run()
        .await
        .unwrap();
    assert_eq!(
        (progress.events, progress.handled, progress.duplicates),
        (7, 4, 3)
    );
    assert_eq!(progress.pages, 3);
    assert_eq!(reports.len(), 3);
    assert!(reports[0].resume_from.is_some() && reports[2].resume_from.is_none());
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 7);
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
}

#[tokio::test]
async fn recovery_resumes_from_the_last_completed_page() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let runs = Arc::default();
    // Pages of two: [0, 1], [2, 3], [4, 5], [6]. Event 5 fails after event 4 was handled.
    let failing = fake.events()[5]["id"].as_str().unwrap().to_owned();
    let receiver = counting_receiver(&runs, Some(failing.clone()));

    let last_checkpoint = Mutex::new(None);
    let error = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .page_size(2)
        .on_progress(|p| *last_checkpoint.lock().unwrap() = p.resume_from.clone())
        .run()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Handler);
    assert!(
        error.to_string().contains("resume with resume_from"),
        "{error}"
    );
    let checkpoint = last_checkpoint.lock().unwrap().clone().unwrap();

    // Monite fails too, once, on the way: retried.
    fake.inject(fault("/v1/events", StatusCode::SERVICE_UNAVAILABLE, None));
    let progress = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .resume_from(checkpoint)
        .run()
        .await
        .unwrap();
    // Resumed at the page of events 4 and 5: 4 is a duplicate now, 5 and 6 run.
    assert_eq!((progress.handled, progress.duplicates), (2, 1));
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 7);
    for (id, count) in runs.iter() {
        let expected = if *id == failing { 2 } else { 1 };
        assert_eq!(*count, expected, "{id}");
    }
}
