//! The API client against a local fake of Monite's API (tests/support/fake_monite): pagination,
//! tokens, retries, typed errors, recovering missed events through a receiver, and setting
//! up one endpoint's subscriptions with their secrets in a keyring.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use http::StatusCode;
use monite_webhooks::client::{
    Client, Ensured, Environment, ListQuery, NewSubscription, SecretStatus, SubscriptionPlan,
    SubscriptionStatus, SubscriptionUpdate,
};
use monite_webhooks::testing::signed_request;
use monite_webhooks::{
    Dispatcher, ErrorKind, Event, EventType, Keyring, ObjectType, Receiver, Secret, Verifier,
};

use support::fake_monite::{self, CLIENT_ID, CLIENT_SECRET, ENTITY_ID, Effect, Fault};

/// A failure the fake gives the next request under `path_prefix`, without acting on it.
fn fault(path_prefix: &'static str, status: StatusCode, retry_after: Option<u64>) -> Fault {
    Fault {
        path_prefix,
        effect: Effect::Refuse {
            status,
            retry_after,
        },
    }
}

/// Something the fake does to the next request under `path_prefix`.
fn effect(path_prefix: &'static str, effect: Effect) -> Fault {
    Fault {
        path_prefix,
        effect,
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

const SUBSCRIPTIONS: &str = "/v1/webhook_subscriptions";

fn https_hook(object_type: ObjectType) -> NewSubscription {
    NewSubscription::new(object_type, "https://example.com/webhooks/monite")
}

#[tokio::test]
async fn a_create_or_regenerate_that_may_have_acted_is_not_sent_again() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    let existing = subscriptions
        .create(&https_hook(ObjectType::Tag))
        .await
        .unwrap();

    // A gateway's 504 after Monite created it: one subscription, one request, and a
    // message that says to check before creating it again.
    fake.inject(effect(
        SUBSCRIPTIONS,
        Effect::AfterCommit(StatusCode::GATEWAY_TIMEOUT),
    ));
    let before = fake.requests.load(Ordering::SeqCst);
    let error = subscriptions
        .create(&https_hook(ObjectType::Payable))
        .await
        .unwrap_err();
    assert_eq!(error.api_status(), Some(StatusCode::GATEWAY_TIMEOUT));
    assert!(error.to_string().contains("may have acted"), "{error}");
    assert_eq!(fake.requests.load(Ordering::SeqCst) - before, 1);
    assert_eq!(fake.subscriptions().len(), 2);

    // The connection reset after `201 Created`: not sent again either.
    fake.inject(effect(SUBSCRIPTIONS, Effect::ResetAfterHeaders));
    let error = subscriptions
        .create(&https_hook(ObjectType::Counterpart))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport, "{error}");
    assert!(error.to_string().contains("201"), "{error}");
    assert_eq!(fake.subscriptions().len(), 3);

    // A plain 503 may come from a backend that acted: reported, not retried.
    fake.inject(fault(SUBSCRIPTIONS, StatusCode::SERVICE_UNAVAILABLE, None));
    let before = fake.requests.load(Ordering::SeqCst);
    let error = subscriptions
        .create(&https_hook(ObjectType::Entity))
        .await
        .unwrap_err();
    assert_eq!(error.api_status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(fake.requests.load(Ordering::SeqCst) - before, 1);

    // A 429 with Retry-After was certainly not acted on: sent again, created once.
    fake.inject(fault(SUBSCRIPTIONS, StatusCode::TOO_MANY_REQUESTS, Some(0)));
    subscriptions
        .create(&https_hook(ObjectType::Entity))
        .await
        .unwrap();
    assert_eq!(fake.subscriptions().len(), 4);

    // Regenerating a secret is not repeated after a 504 either: the caller learns that the
    // secret changed and that the answer is lost.
    let id = existing.subscription.id.clone();
    fake.inject(effect(
        SUBSCRIPTIONS,
        Effect::AfterCommit(StatusCode::GATEWAY_TIMEOUT),
    ));
    let before = fake.requests.load(Ordering::SeqCst);
    let error = subscriptions.regenerate_secret(&id).await.unwrap_err();
    assert_eq!(error.api_status(), Some(StatusCode::GATEWAY_TIMEOUT));
    assert_eq!(fake.requests.load(Ordering::SeqCst) - before, 1);

    // A read cut off after its status is simply read again.
    fake.inject(effect(SUBSCRIPTIONS, Effect::ResetAfterHeaders));
    assert_eq!(list_all(&subscriptions).await.len(), 4);

    // A DELETE whose 204 was lost: the retry finds it gone, which is the success asked for.
    fake.inject(effect(
        SUBSCRIPTIONS,
        Effect::AfterCommit(StatusCode::GATEWAY_TIMEOUT),
    ));
    subscriptions.delete(&id).await.unwrap();
    assert_eq!(fake.subscriptions().len(), 3);
    // A DELETE of what never existed is still a 404.
    let error = subscriptions.delete(&id).await.unwrap_err();
    assert_eq!(error.api_status(), Some(StatusCode::NOT_FOUND));
}

#[tokio::test]
async fn a_401_to_many_requests_at_once_fetches_one_token() {
    let (addr, fake) = fake_monite::start().await;
    // As if Monite revoked earlier tokens when it issues a new one: a storm of refreshes
    // would then refuse requests that had just been given a fresh token.
    fake.revoke_on_issue.store(true, Ordering::SeqCst);
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    list_all(&subscriptions).await;
    assert_eq!(fake.token_requests.load(Ordering::SeqCst), 1);

    fake.revoke_tokens();
    let requests = (0..8).map(|_| async move {
        subscriptions
            .list(ListQuery::new())
            .try_collect::<Vec<_>>()
            .await
    });
    for answer in futures_util::future::join_all(requests).await {
        answer.unwrap();
    }
    assert_eq!(
        fake.token_requests.load(Ordering::SeqCst),
        2,
        "eight requests refused with one token fetch one new token"
    );
}

#[tokio::test]
async fn any_token_lifetime_is_taken_without_a_panic() {
    let (addr, fake) = fake_monite::start().await;
    for expires_in in [
        Some(serde_json::json!(u64::MAX)),
        Some(serde_json::json!(i64::MIN)),
        Some(serde_json::json!(-1)),
        Some(serde_json::json!(0)),
        Some(serde_json::Value::Null),
        None,
    ] {
        *fake.expires_in.lock().unwrap() = Some(expires_in.clone());
        let client = client(addr);
        for _ in 0..2 {
            let listed = client
                .webhook_subscriptions()
                .list(ListQuery::new())
                .try_collect::<Vec<_>>()
                .await;
            assert!(listed.is_ok(), "expires_in {expires_in:?}: {listed:?}");
        }
    }
}

#[tokio::test]
async fn a_pagination_token_given_twice_stops_the_listing() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    for object_type in [ObjectType::Payable, ObjectType::Entity, ObjectType::Tag] {
        subscriptions
            .create(&https_hook(object_type))
            .await
            .unwrap();
    }
    // The fake would echo the token 50 times and then go on; the client stops at once.
    fake.echo_page_tokens.store(50, Ordering::SeqCst);
    let before = fake.requests.load(Ordering::SeqCst);
    let error = subscriptions
        .list(ListQuery::new().limit(1))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Api);
    assert!(error.to_string().contains("second time"), "{error}");
    assert_eq!(fake.requests.load(Ordering::SeqCst) - before, 2);

    // A recovery too.
    fake.echo_page_tokens.store(50, Ordering::SeqCst);
    let runs = Arc::default();
    let receiver = counting_receiver(&runs, None);
    let error = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .page_size(2)
        .run()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("second time"), "{error}");
}

/// A listing that hands out a new token with every empty page would never end: it stops
/// after `MAX_EMPTY_PAGES` (16) of them in a row, and so does a recovery.
#[tokio::test]
async fn endless_empty_pages_with_new_tokens_stop_the_listing() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    subscriptions
        .create(&https_hook(ObjectType::Payable))
        .await
        .unwrap();
    fake.empty_pages_with_new_tokens
        .store(1_000, Ordering::SeqCst);
    let before = fake.requests.load(Ordering::SeqCst);
    let error = subscriptions
        .list(ListQuery::new())
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Api);
    assert!(error.to_string().contains("16 empty pages"), "{error}");
    assert_eq!(fake.requests.load(Ordering::SeqCst) - before, 16);

    // A recovery too, with its resume token.
    let runs = Arc::default();
    let receiver = counting_receiver(&runs, None);
    let error = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .page_size(2)
        .run()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("16 empty pages"), "{error}");

    // Empty pages between full ones do not count against a listing that moves on.
    fake.empty_pages_with_new_tokens.store(0, Ordering::SeqCst);
    let listed = subscriptions
        .list(ListQuery::new())
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn an_id_stays_one_path_segment() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let created = client
        .webhook_settings()
        .create(&https_hook(ObjectType::Payable))
        .await
        .unwrap();
    let id = &created.subscription.id;
    let subscriptions = client.webhook_subscriptions();

    // `../webhook_settings/<id>` is one (unknown) id, not a way up the path.
    let error = subscriptions
        .delete(&format!("../webhook_settings/{id}"))
        .await
        .unwrap_err();
    assert_eq!(error.api_status(), Some(StatusCode::NOT_FOUND), "{error}");
    assert_eq!(fake.subscriptions().len(), 1, "deleted through `..`");
    // Neither `?` nor `#` end the segment.
    for suffix in ["?x=1", "#x"] {
        let error = subscriptions
            .get(&format!("{id}{suffix}"))
            .await
            .unwrap_err();
        assert_eq!(error.api_status(), Some(StatusCode::NOT_FOUND), "{suffix}");
    }
    let error = client
        .events(ENTITY_ID)
        .get("../webhook_deliveries")
        .await
        .unwrap_err();
    assert_eq!(error.api_status(), Some(StatusCode::NOT_FOUND));
    // `.` and `..` are dot segments even percent-encoded: refused before sending.
    let before = fake.requests.load(Ordering::SeqCst);
    for id in ["", ".", ".."] {
        let error = subscriptions.delete(id).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Misconfigured, "{id:?}");
    }
    assert_eq!(fake.requests.load(Ordering::SeqCst), before);
    // An ordinary id works as before.
    assert_eq!(subscriptions.get(id).await.unwrap(), created.subscription);
}

#[tokio::test]
async fn the_one_time_secret_survives_an_answer_that_is_not_fully_readable() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    let id = "f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba";

    // `event_types: null`: read as every event, fully.
    let answer = serde_json::json!({"id": id, "object_type": "payable", "event_types": null,
        "status": "enabled", "url": "https://example.com/h", "secret": "whsec_fakeNull"});
    fake.inject(effect(
        SUBSCRIPTIONS,
        Effect::Answer(StatusCode::CREATED, answer.to_string()),
    ));
    let created = subscriptions
        .create(&https_hook(ObjectType::Payable))
        .await
        .unwrap();
    assert!(created.subscription.event_types.is_empty());
    assert_eq!(created.incomplete, None);

    // No `url`, a number for `status`: the secret still reaches the caller, the rest comes
    // from the request, and `incomplete` says why.
    let answer = serde_json::json!({"id": id, "object_type": "payable", "status": 5,
        "secret": "whsec_fakeKept"});
    fake.inject(effect(
        SUBSCRIPTIONS,
        Effect::Answer(StatusCode::CREATED, answer.to_string()),
    ));
    let asked = https_hook(ObjectType::Payable).event_types([EventType::Created]);
    let created = subscriptions.create(&asked).await.unwrap();
    assert!(created.incomplete.is_some());
    assert_eq!(created.subscription.id, id);
    assert_eq!(
        created.subscription.url,
        "https://example.com/webhooks/monite"
    );
    assert_eq!(created.subscription.event_types, [EventType::Created]);
    assert_eq!(created.secret.label(), Some(id));
    let signed = signed_request(&Secret::new("whsec_fakeKept").unwrap(), "{}");
    assert!(
        Verifier::new(created.secret)
            .verify(signed.headers(), signed.body())
            .is_ok()
    );

    // Regenerating: only `secret` is needed.
    fake.inject(effect(
        SUBSCRIPTIONS,
        Effect::Answer(StatusCode::OK, r#"{"secret": "whsec_fakeOnly"}"#.to_owned()),
    ));
    let regenerated = subscriptions.regenerate_secret(id).await.unwrap();
    assert!(regenerated.incomplete.is_some());
    assert_eq!(regenerated.secret.label(), None);
}

/// A secret Monite returns with whitespace around it (a trailing newline, say) is the one
/// it will sign with, trimmed: after a create that succeeded it must reach the caller, not
/// be refused as an invalid secret.
#[tokio::test]
async fn a_secret_with_surrounding_whitespace_is_kept_trimmed() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    let id = "f3c64af7-4a2f-4ed2-8160-d66b6a8ac4ba";
    let answer = serde_json::json!({"id": id, "object_type": "payable", "event_types": [],
        "status": "enabled", "url": "https://example.com/webhooks/monite",
        "secret": " whsec_fakePadded\n"});
    fake.inject(effect(
        SUBSCRIPTIONS,
        Effect::Answer(StatusCode::CREATED, answer.to_string()),
    ));
    let created = subscriptions
        .create(&https_hook(ObjectType::Payable))
        .await
        .unwrap();
    assert_eq!(created.secret.expose_text(), "whsec_fakePadded");
    assert_eq!(created.secret.label(), Some(id));

    fake.inject(effect(
        SUBSCRIPTIONS,
        Effect::Answer(
            StatusCode::OK,
            r#"{"secret": "whsec_fakeRegenerated\r\n"}"#.to_owned(),
        ),
    ));
    let regenerated = subscriptions.regenerate_secret(id).await.unwrap();
    assert_eq!(regenerated.secret.expose_text(), "whsec_fakeRegenerated");
}

/// A receiver on a `MemoryStore` in which `held` events are claimed, as by a delivery that
/// died mid-handler: the claim stays until `lease` runs out.
async fn receiver_with_held_claims(
    runs: &Arc<Mutex<HashMap<String, usize>>>,
    held: &[&str],
    lease: Duration,
) -> Receiver {
    use monite_webhooks::idempotency::{Claim, ClaimToken};
    use monite_webhooks::{Idempotency, IdempotencyStore as _, MemoryStore};

    let store = MemoryStore::new();
    for id in held {
        let claim = store
            .claim(&format!("evt:{id}"), &ClaimToken::new(), lease)
            .await
            .unwrap();
        assert_eq!(claim, Claim::Acquired);
    }
    let runs = runs.clone();
    let dispatcher = Dispatcher::builder()
        .fallback(move |event: Event, _| {
            let runs = runs.clone();
            async move {
                let id = event.id().unwrap_or_default().to_owned();
                *runs.lock().unwrap().entry(id).or_default() += 1;
                Ok::<(), std::io::Error>(())
            }
        })
        .build();
    Receiver::builder(
        Verifier::new(Secret::new("whsec_recovery").unwrap()),
        dispatcher,
    )
    .idempotency(Idempotency::new(store))
    .build()
}

/// An event a dead delivery holds "in flight" is never skipped: past the wait, the run stops
/// with an error naming it and the token of its page, and the resumed run handles it.
#[tokio::test]
async fn recovery_stops_at_an_event_held_in_flight_past_the_wait() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let ids: Vec<String> = fake
        .events()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    // Pages of two: [0, 1], [2, 3], ... Event 3 is held for two seconds.
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let receiver = receiver_with_held_claims(&runs, &[&ids[3]], Duration::from_secs(2)).await;

    let checkpoints = Mutex::new(Vec::new());
    let started = Instant::now();
    let error = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .page_size(2)
        .in_flight_wait(Duration::from_millis(300))
        .on_progress(|p| checkpoints.lock().unwrap().push(p.resume_from.clone()))
        .run()
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited past the wait"
    );
    assert_eq!(error.kind(), ErrorKind::InFlight);
    let message = error.to_string();
    assert!(message.contains(&ids[3]), "{message}");
    // Only the first page was done: the resume token is the one before the held event's.
    let checkpoints = checkpoints.lock().unwrap().clone();
    assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
    let token = checkpoints[0].clone().unwrap();
    assert!(
        message.contains(&format!("resume_from({token:?})")),
        "{message}"
    );
    assert!(!runs.lock().unwrap().contains_key(&ids[3]));

    // Once the lease has run out, the resumed run handles it, and every event ran once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let progress = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .resume_from(token)
        .in_flight_wait(Duration::ZERO)
        .run()
        .await
        .unwrap();
    assert_eq!(progress.in_flight, 0);
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 7, "{runs:?}");
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
}

/// Within the wait, an event held in flight is retried with back-off until its claim runs
/// out, and handled in the same run.
#[tokio::test]
async fn recovery_retries_an_event_held_in_flight_until_its_lease_runs_out() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let ids: Vec<String> = fake
        .events()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    // Two on the first page of three.
    let held = [ids[1].as_str(), ids[2].as_str()];
    let receiver = receiver_with_held_claims(&runs, &held, Duration::from_millis(1200)).await;

    let progress = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .page_size(3)
        .in_flight_wait(Duration::from_secs(20))
        .run()
        .await
        .unwrap();
    assert_eq!(progress.handled, 7, "{progress}");
    // Both were found in flight, waited for, and handled.
    assert_eq!(progress.in_flight, 2, "{progress}");
    assert_eq!(progress.resume_from, None);
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 7, "{runs:?}");
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
}

/// Dispatches `raw` as Monite would deliver it through `subscription`.
async fn deliver(receiver: &Receiver, event: &serde_json::Value, subscription: &str) {
    let secret = Secret::new("whsec_recovery").unwrap();
    let mut delivered = event.clone();
    delivered["webhook_subscription_id"] = serde_json::json!(subscription);
    let response = receiver
        .handle(signed_request(&secret, delivered.to_string()))
        .await;
    assert_eq!(response.status(), 200);
}

/// The issue's reproduction: one subscription per object type, three events delivered, then
/// a recovery over those three and four missed ones.
#[tokio::test]
async fn recovery_after_deliveries_from_three_subscriptions_runs_each_handler_once() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let count = |runs: &Arc<Mutex<HashMap<String, usize>>>| {
        let runs = runs.clone();
        move |event: Event| {
            let runs = runs.clone();
            async move {
                let key = format!("{}:{}", event.object_type(), event.id().unwrap());
                *runs.lock().unwrap().entry(key).or_default() += 1;
            }
        }
    };
    let dispatcher = Dispatcher::builder()
        .on_object(ObjectType::Payable, count(&runs))
        .on_object(ObjectType::Counterpart, count(&runs))
        .on_object(ObjectType::Entity, count(&runs))
        .build();
    let receiver = Receiver::new(
        Verifier::new(Secret::new("whsec_recovery").unwrap()),
        dispatcher,
    );
    // Events 0 (counterpart), 1 (payable) and 3 (entity), each through its object type's
    // subscription.
    let events = fake.events();
    let delivered = [
        (0, "f3c64af7-4a2f-4ed2-8160-000000000001"),
        (1, "f3c64af7-4a2f-4ed2-8160-000000000002"),
        (3, "f3c64af7-4a2f-4ed2-8160-000000000003"),
    ];
    for (index, subscription) in delivered {
        deliver(&receiver, &events[index], subscription).await;
    }
    assert_eq!(runs.lock().unwrap().len(), 3);

    let progress = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .run()
        .await
        .unwrap();
    // Seven events: three already handled, three handled now (2, 4 and 6), and the
    // receivable (5) has no handler.
    assert_eq!(progress.events, 7);
    assert_eq!(
        (progress.duplicates, progress.handled, progress.unhandled),
        (3, 3, 1)
    );
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 6, "{runs:?}");
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
}

#[tokio::test]
async fn recovery_reports_an_unparsable_event_and_goes_on() {
    // Event 3 has lost its `action` and `object_type`: no parser can route it.
    let poison_id = "0b7e6a9c-1d2e-4f50-9a8b-000000000003";
    let (addr, _fake) = fake_monite::start_with(|fake| {
        let event = &mut fake.events[3];
        let object = event.as_object_mut().unwrap();
        object.remove("action");
        object.remove("object_type");
    })
    .await;
    let client = client(addr);
    let runs = Arc::default();
    let receiver = counting_receiver(&runs, None);

    let mut reports = Vec::new();
    let progress = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .page_size(2)
        .on_progress(|p| reports.push(p.clone()))
        .run()
        .await
        .unwrap();
    assert_eq!((progress.events, progress.handled), (6, 6));
    assert_eq!(progress.unparsable.len(), 1);
    assert_eq!(progress.unparsable[0].id.as_deref(), Some(poison_id));
    assert!(
        progress.unparsable[0].error.contains("action"),
        "{:?}",
        progress.unparsable
    );
    // Reported with the page it was on, and in the summary.
    assert!(reports[0].unparsable.is_empty() && reports[1].unparsable.len() == 1);
    assert!(progress.to_string().contains(poison_id), "{progress}");
    assert_eq!(runs.lock().unwrap().len(), 6);

    // Or stop there, if asked.
    let error = client
        .recover_missed_events(&receiver, ENTITY_ID)
        .page_size(2)
        .stop_on_unparsable()
        .run()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotAnEnvelope);
    assert!(
        error.to_string().contains("resume with resume_from"),
        "{error}"
    );
}

/// Monite's OpenAPI document, webhook part (API 2024-05-25).
fn openapi() -> serde_json::Value {
    fake_monite::fixture_at("monite-openapi-webhooks.json")
}

/// The schema `#/components/schemas/<name>` or the one `schema` refers to.
fn resolve<'a>(
    root: &'a serde_json::Value,
    schema: &'a serde_json::Value,
) -> &'a serde_json::Value {
    match schema.get("$ref").and_then(|r| r.as_str()) {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            resolve(root, &root["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// Where `value` breaks `schema` (the subset the document uses), as `path: reason` lines.
fn violations(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    value: &serde_json::Value,
    at: &str,
) -> Vec<String> {
    use serde_json::Value;
    let schema = resolve(root, schema);
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        return if options
            .iter()
            .any(|o| violations(root, o, value, at).is_empty())
        {
            Vec::new()
        } else {
            vec![format!("{at}: {value} matches no anyOf option")]
        };
    }
    if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return Vec::new();
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return vec![format!("{at}: {value} is not one of the enum")];
    }
    let mut found = Vec::new();
    let type_ok = match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("null") => value.is_null(),
        Some("array") => value.is_array(),
        Some("object") => value.is_object(),
        Some(other) => panic!("type {other} is not in the walker's subset"),
    };
    if !type_ok {
        return vec![format!("{at}: {value} is not of type {}", schema["type"])];
    }
    if schema.get("format").and_then(Value::as_str) == Some("uuid") {
        let text = value.as_str().unwrap_or_default();
        let shape_ok = text.len() == 36
            && text.char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
        if !shape_ok {
            found.push(format!("{at}: {value} is not a uuid"));
        }
    }
    if let Some(items) = schema.get("items")
        && let Some(array) = value.as_array()
    {
        for (i, item) in array.iter().enumerate() {
            found.extend(violations(root, items, item, &format!("{at}[{i}]")));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !object.contains_key(name.as_str().unwrap()) {
                found.push(format!("{at}: required {name} is missing"));
            }
        }
        for (name, field) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(property) => {
                    found.extend(violations(root, property, field, &format!("{at}.{name}")));
                }
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    found.push(format!("{at}: {name} is not allowed"));
                }
                None => {}
            }
        }
    }
    found
}

/// How loose an instance [`instance`] makes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Looseness {
    /// Only the required fields; integers beyond `u64`.
    RequiredOnly,
    /// Every field, `null` wherever allowed; integers below `i64`.
    NullWherePossible,
    /// Every field, with a value; integers `u64::MAX`.
    Present,
}

/// A JSON text the schema allows, as loose as `looseness` says.
fn instance(
    root: &serde_json::Value,
    schema: &serde_json::Value,
    name: &str,
    looseness: Looseness,
) -> String {
    use serde_json::Value;
    let schema = resolve(root, schema);
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        let nullable = options.iter().any(|o| o["type"] == "null");
        // A pagination token that is not null would be followed: the fake knows no such token.
        if nullable && (looseness != Looseness::Present || name.ends_with("pagination_token")) {
            return "null".to_owned();
        }
        let option = options.iter().find(|o| o["type"] != "null").unwrap();
        return instance(root, option, name, looseness);
    }
    if let Some(first) = schema.get("enum").and_then(Value::as_array) {
        return first[0].to_string();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => match schema.get("format").and_then(Value::as_str) {
            Some("uuid") => "\"3fa85f64-5717-4562-b3fc-2c963f66afa6\"".to_owned(),
            Some("uri") => "\"https://example.com/hooks\"".to_owned(),
            Some("date-time") => "\"2024-05-25T00:00:00Z\"".to_owned(),
            _ if name == "secret" => "\"whsec_loosest\"".to_owned(),
            _ => "\"text\"".to_owned(),
        },
        Some("integer") => match looseness {
            Looseness::RequiredOnly => "18446744073709551616".to_owned(),
            Looseness::NullWherePossible => "-9223372036854775809".to_owned(),
            Looseness::Present => u64::MAX.to_string(),
        },
        Some("boolean") => "true".to_owned(),
        Some("array") => format!("[{}]", instance(root, &schema["items"], name, looseness)),
        Some("object") => {
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let fields: Vec<String> = schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(field, _)| {
                    looseness != Looseness::RequiredOnly || required.contains(&field.as_str())
                })
                .map(|(field, property)| {
                    format!(
                        "\"{field}\": {}",
                        instance(root, property, field, looseness)
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        // `{}`: any JSON.
        _ => "{}".to_owned(),
    }
}

/// The schema of the answer `status` to `method path` (a path template of the document);
/// statuses the document does not list are Monite's error body.
fn answer_schema(
    root: &serde_json::Value,
    method: &str,
    path: &str,
    status: u16,
) -> Option<serde_json::Value> {
    let responses = &root["paths"][path][method]["responses"];
    assert!(
        responses.is_object(),
        "{method} {path} is not in the document"
    );
    match responses.get(status.to_string()) {
        Some(response) => response["content"]["application/json"]
            .get("schema")
            .cloned(),
        None => {
            assert!(status >= 400, "{method} {path}: undocumented {status}");
            Some(serde_json::json!({"$ref": "#/components/schemas/ErrorSchemaResponse"}))
        }
    }
}

#[tokio::test]
async fn the_client_reads_the_loosest_answers_the_openapi_document_allows() {
    let root = openapi();
    let schema = |name: &str| serde_json::json!({ "$ref": format!("#/components/schemas/{name}") });
    for looseness in [
        Looseness::RequiredOnly,
        Looseness::NullWherePossible,
        Looseness::Present,
    ] {
        let (addr, fake) = fake_monite::start().await;
        let client = client(addr);
        let answer = |name: &str, status: StatusCode| {
            Effect::Answer(status, instance(&root, &schema(name), "", looseness))
        };
        let what = format!("{looseness:?}");

        // The token answer, then the 401 its made-up token gets, then a real token.
        fake.inject(effect(
            "/v1/auth/token",
            answer("AccessTokenResponse", StatusCode::OK),
        ));
        let subscriptions = client.webhook_subscriptions();
        subscriptions.get("x").await.unwrap_err();

        fake.inject(effect(
            SUBSCRIPTIONS,
            answer("WebhookSubscriptionResourceWithSecret", StatusCode::CREATED),
        ));
        let created = subscriptions
            .create(&https_hook(ObjectType::Payable))
            .await
            .unwrap();
        assert_eq!(created.incomplete, None, "{what}");
        fake.inject(effect(
            SUBSCRIPTIONS,
            answer("WebhookSubscriptionResourceWithSecret", StatusCode::OK),
        ));
        let regenerated = subscriptions.regenerate_secret("x").await.unwrap();
        assert_eq!(regenerated.incomplete, None, "{what}");
        fake.inject(effect(
            SUBSCRIPTIONS,
            answer("WebhookSubscriptionResource", StatusCode::OK),
        ));
        subscriptions.get("x").await.unwrap();
        fake.inject(effect(
            SUBSCRIPTIONS,
            answer("WebhookSubscriptionPaginationResource", StatusCode::OK),
        ));
        assert_eq!(list_all(&subscriptions).await.len(), 1, "{what}");

        fake.inject(effect(
            "/v1/events",
            answer("EventPaginationResource", StatusCode::OK),
        ));
        let events: Vec<Event> = client
            .events(ENTITY_ID)
            .list(ListQuery::new())
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(events.len(), 1);
        fake.inject(effect(
            "/v1/events",
            answer("EventResource", StatusCode::OK),
        ));
        client
            .events(ENTITY_ID)
            .get("3fa85f64-5717-4562-b3fc-2c963f66afa6")
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));

        fake.inject(effect(
            "/v1/webhook_deliveries",
            answer("WebhookDeliveryPaginationResource", StatusCode::OK),
        ));
        let deliveries: Vec<_> = client
            .webhook_deliveries(ENTITY_ID)
            .list(ListQuery::new())
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let expected_count = if looseness == Looseness::NullWherePossible {
            0
        } else {
            u32::MAX
        };
        assert_eq!(deliveries[0].requests_made_count, expected_count, "{what}");

        // Error bodies, loosest too: typed errors with their status.
        for (name, status) in [
            ("HTTPValidationError", StatusCode::UNPROCESSABLE_ENTITY),
            ("ErrorSchemaResponse", StatusCode::METHOD_NOT_ALLOWED),
        ] {
            fake.inject(effect(SUBSCRIPTIONS, answer(name, status)));
            let error = subscriptions.get("x").await.unwrap_err();
            assert_eq!(error.api_status(), Some(status), "{what} {name}");
        }
    }
}

#[tokio::test]
async fn the_fake_answers_as_the_openapi_document_says() {
    let root = openapi();
    // The walker itself catches what it should.
    let delivery = serde_json::json!({"$ref": "#/components/schemas/WebhookDeliveryResource"});
    for bad in [
        serde_json::json!({"id": "3fa85f64-5717-4562-b3fc-2c963f66afa6"}),
        serde_json::json!({"id": "not-a-uuid", "event_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "requests_made_count": 1, "url": "https://x"}),
        serde_json::json!({"id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "event_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "requests_made_count": 1.5,
            "url": "https://x"}),
        serde_json::json!({"id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "event_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "requests_made_count": 1,
            "url": "https://x", "extra": true}),
    ] {
        assert!(!violations(&root, &delivery, &bad, "$").is_empty(), "{bad}");
    }
    let (addr, _fake) = fake_monite::start().await;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/v1");
    let call = |method: http::Method,
                path: String,
                token: Option<String>,
                entity: bool,
                body: Option<serde_json::Value>| {
        let mut request = http
            .request(method, format!("{base}{path}"))
            .headers(fake_monite::raw_headers(token.as_deref(), true, entity));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let bytes = response.bytes().await.unwrap();
            (status, bytes)
        }
    };
    let check = |method: &str, template: &str, status: u16, body: &[u8]| {
        let schema = answer_schema(&root, method, template, status);
        match schema {
            None => assert!(body.is_empty(), "{method} {template} {status}"),
            Some(schema) => {
                let value: serde_json::Value = serde_json::from_slice(body).unwrap();
                let found = violations(&root, &schema, &value, "$");
                assert!(
                    found.is_empty(),
                    "{method} {template} {status}: {found:#?}\n{value:#}"
                );
            }
        }
    };
    use http::Method;

    let credentials = serde_json::json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "grant_type": "client_credentials"});
    let (status, body) = call(
        Method::POST,
        "/auth/token".into(),
        None,
        false,
        Some(credentials.clone()),
    )
    .await;
    check("post", "/auth/token", status, &body);
    let token: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let token = Some(token["access_token"].as_str().unwrap().to_owned());
    let mut wrong = credentials;
    wrong["client_secret"] = "wrong".into();
    let (status, body) = call(Method::POST, "/auth/token".into(), None, false, Some(wrong)).await;
    assert_eq!(status, 401);
    check("post", "/auth/token", status, &body);

    let subscriptions = "/webhook_subscriptions";
    let one = "/webhook_subscriptions/{webhook_subscription_id}";
    let new = serde_json::json!({"object_type": "payable", "url": "https://example.com/h",
        "event_types": ["created"]});
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, body) = call(
            Method::POST,
            subscriptions.into(),
            token.clone(),
            false,
            Some(new.clone()),
        )
        .await;
        assert_eq!(status, 201);
        check("post", subscriptions, status, &body);
        let created: serde_json::Value = serde_json::from_slice(&body).unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let (status, body) = call(
        Method::POST,
        subscriptions.into(),
        token.clone(),
        false,
        Some(serde_json::json!({"object_type": "payable", "url": "http://plain"})),
    )
    .await;
    assert_eq!(status, 422);
    check("post", subscriptions, status, &body);

    for path in [
        format!("{subscriptions}?limit=2"),
        format!("{subscriptions}?limit=0"),
    ] {
        let (status, body) = call(Method::GET, path, token.clone(), false, None).await;
        check("get", subscriptions, status, &body);
    }
    let id = &ids[0];
    for (method, template, path, body) in [
        (
            Method::GET,
            one,
            format!("/webhook_subscriptions/{id}"),
            None,
        ),
        (
            Method::GET,
            one,
            "/webhook_subscriptions/missing".to_owned(),
            None,
        ),
        (
            Method::PATCH,
            one,
            format!("/webhook_subscriptions/{id}"),
            Some(serde_json::json!({"url": "https://example.com/v2", "event_types": null})),
        ),
        (
            Method::POST,
            "/webhook_subscriptions/{webhook_subscription_id}/disable",
            format!("/webhook_subscriptions/{id}/disable"),
            None,
        ),
        (
            Method::POST,
            "/webhook_subscriptions/{webhook_subscription_id}/enable",
            format!("/webhook_subscriptions/{id}/enable"),
            None,
        ),
        (
            Method::POST,
            "/webhook_subscriptions/{webhook_subscription_id}/regenerate_secret",
            format!("/webhook_subscriptions/{id}/regenerate_secret"),
            None,
        ),
        (
            Method::DELETE,
            one,
            format!("/webhook_subscriptions/{id}"),
            None,
        ),
        (
            Method::DELETE,
            one,
            format!("/webhook_subscriptions/{id}"),
            None,
        ),
    ] {
        let method_name = method.as_str().to_ascii_lowercase();
        let (status, answer) = call(method, path, token.clone(), false, body).await;
        check(&method_name, template, status, &answer);
    }

    for (template, path) in [
        ("/events", "/events?limit=3".to_owned()),
        (
            "/events",
            "/events?object_type=payable&order=desc".to_owned(),
        ),
        (
            "/events/{event_id}",
            "/events/0b7e6a9c-1d2e-4f50-9a8b-000000000001".to_owned(),
        ),
        ("/events/{event_id}", "/events/missing".to_owned()),
        (
            "/webhook_deliveries",
            "/webhook_deliveries?limit=1".to_owned(),
        ),
    ] {
        let (status, body) = call(Method::GET, path.clone(), token.clone(), true, None).await;
        check("get", template, status, &body);
        // Follow one pagination token, so later pages are checked too.
        let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if let Some(next) = page.get("next_pagination_token").and_then(|t| t.as_str()) {
            let path = format!("{template}?pagination_token={next}");
            let (status, body) = call(Method::GET, path, token.clone(), true, None).await;
            check("get", template, status, &body);
        }
    }
    // Refusals without a token or an entity are Monite's error body.
    let (status, body) = call(Method::GET, "/events".into(), None, true, None).await;
    assert_eq!(status, 401);
    check("get", "/events", status, &body);
    let (status, body) = call(Method::GET, "/events".into(), token, false, None).await;
    assert_eq!(status, 400);
    check("get", "/events", status, &body);
}

// ---- One endpoint for every event: `ensure` and rotation -------------------------------

const HOOK_URL: &str = "https://example.com/webhooks/monite";

/// A delivery naming subscription `id`, signed with `secret` now.
fn delivery_from(id: &str, secret: &Secret) -> http::Request<bytes::Bytes> {
    let body = serde_json::json!({"id": "f8130c42-0000-4000-8000-000000000001",
        "object_type": "payable", "action": "payable.created",
        "object": {"id": "587fd280"}, "webhook_subscription_id": id});
    signed_request(secret, body.to_string())
}

fn verifies(keyring: &Keyring, request: &http::Request<bytes::Bytes>) -> Result<(), ErrorKind> {
    Verifier::from_keyring(keyring.clone())
        .verify(request.headers(), request.body())
        .map(drop)
        .map_err(|e| e.kind())
}

/// The subscriptions the fake holds for `url`, by object type.
fn at_fake(fake: &fake_monite::Fake, url: &str) -> HashMap<String, Vec<serde_json::Value>> {
    let mut by_type: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for subscription in fake.subscriptions() {
        if subscription["url"] == url {
            let object_type = subscription["object_type"].as_str().unwrap().to_owned();
            by_type.entry(object_type).or_default().push(subscription);
        }
    }
    by_type
}

/// A keyring file of its own for one test.
struct KeyringFile(std::path::PathBuf);

impl KeyringFile {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "monite-webhooks-{}-{name}.json",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }
}

impl Drop for KeyringFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn every_object_type_is_what_the_api_takes() {
    let root = openapi();
    let accepted: Vec<&str> = root["components"]["schemas"]["WebhookObjectType"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let plan = SubscriptionPlan::every_object_type(HOOK_URL);
    let planned: Vec<&str> = plan.object_types().map(ObjectType::as_str).collect();
    assert_eq!(planned, accepted);
    assert!(plan.object_types().all(ObjectType::is_known));
}

#[tokio::test]
async fn ensure_sets_up_every_object_type_over_many_pages_and_a_second_run_changes_nothing() {
    let (addr, fake) = fake_monite::start().await;
    // Four to a page: the fifty subscriptions below take thirteen pages.
    *fake.page_size_cap.lock().unwrap() = Some(4);
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    let every = SubscriptionPlan::every_object_type(HOOK_URL);
    let object_types: Vec<ObjectType> = every.object_types().cloned().collect();

    // 20 subscriptions whose secrets the keyring holds, 5 of them disabled by Monite.
    let mut keyring = Keyring::new();
    let mut held = Vec::new();
    for object_type in &object_types[..20] {
        let created = subscriptions
            .create(&NewSubscription::new(object_type.clone(), HOOK_URL))
            .await
            .unwrap();
        keyring.insert(created.subscription.id.clone(), created.secret);
        held.push(created.subscription.id);
    }
    for id in &held[..5] {
        fake.set_status(id, "disabled");
    }
    // 5 whose secrets it does not hold (made by another tool), 2 disabled; a duplicate of
    // a held one; one of an object type this crate does not know, for the same URL; and 8
    // for another URL.
    let mut not_held = Vec::new();
    for (n, object_type) in object_types[20..25].iter().enumerate() {
        let status = if n < 2 { "disabled" } else { "enabled" };
        not_held.push(fake.seed(object_type.as_str(), HOOK_URL, status));
    }
    let duplicate = fake.seed(object_types[7].as_str(), HOOK_URL, "enabled");
    let unplanned = fake.seed("invoice_batch", HOOK_URL, "enabled");
    for object_type in &object_types[..8] {
        fake.seed(
            object_type.as_str(),
            "https://other.example.com/hooks",
            "disabled",
        );
    }
    assert_eq!(fake.subscriptions().len(), 35);

    let before = fake.requests.load(Ordering::SeqCst);
    let report = subscriptions.ensure(&every, &mut keyring).await.unwrap();
    println!("{report}");
    // Nine pages of four, 17 creates, 7 enables; nothing else.
    assert_eq!(fake.requests.load(Ordering::SeqCst) - before, 9 + 17 + 7);
    assert_eq!(report.subscriptions.len(), 42);
    let created: Vec<&ObjectType> = report.created().map(|e| &e.object_type).collect();
    assert_eq!(created, object_types[25..].iter().collect::<Vec<_>>());
    let mut reenabled: Vec<&str> = report
        .reenabled()
        .map(|e| e.subscription.as_ref().unwrap().id.as_str())
        .collect();
    reenabled.sort_unstable();
    let mut expected: Vec<&str> = held[..5]
        .iter()
        .chain(&not_held[..2])
        .map(String::as_str)
        .collect();
    expected.sort_unstable();
    assert_eq!(reenabled, expected);
    let missing: Vec<&str> = report
        .secrets_not_held()
        .map(|e| e.subscription.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(missing, not_held);
    assert!(
        report
            .secrets_not_held()
            .all(|e| e.secret == SecretStatus::NotHeld)
    );
    let with_duplicate = &report.subscriptions[7];
    assert_eq!(with_duplicate.subscription.as_ref().unwrap().id, held[7]);
    assert_eq!(with_duplicate.duplicates.len(), 1);
    assert_eq!(with_duplicate.duplicates[0].id, duplicate);
    assert_eq!(report.unplanned.len(), 1);
    assert_eq!(report.unplanned[0].id, unplanned);
    assert!(report.changed());
    assert!(!report.is_complete(), "five secrets are not held");
    assert_eq!(report.refused().count(), 0);

    // At Monite: one subscription per object type (plus the duplicate), all enabled; the
    // other URL's untouched.
    let now = at_fake(&fake, HOOK_URL);
    assert_eq!(now.len(), 43);
    for object_type in &object_types {
        let expected = if *object_type == object_types[7] {
            2
        } else {
            1
        };
        let these = &now[object_type.as_str()];
        assert_eq!(these.len(), expected, "{object_type}");
        assert!(
            these.iter().all(|s| s["status"] == "enabled"),
            "{object_type}"
        );
    }
    let other = at_fake(&fake, "https://other.example.com/hooks");
    assert!(other.values().flatten().all(|s| s["status"] == "disabled"));
    // The keyring holds the 20 it had and the 17 created, each verifying its deliveries.
    assert_eq!(keyring.len(), 37);
    for entry in report.created() {
        let id = &entry.subscription.as_ref().unwrap().id;
        assert_eq!(entry.secret, SecretStatus::Issued);
        let secret = keyring.get(id).unwrap().current().clone();
        assert_eq!(verifies(&keyring, &delivery_from(id, &secret)), Ok(()));
    }

    // A second run changes nothing, creates nothing.
    let count = fake.subscriptions().len();
    let again = subscriptions.ensure(&every, &mut keyring).await.unwrap();
    assert!(!again.changed(), "{again}");
    assert_eq!(fake.subscriptions().len(), count);
    assert_eq!(keyring.len(), 37);
    assert_eq!(again.secrets_not_held().count(), 5);

    // Asked to, it regenerates the five missing secrets; then the setup is complete.
    let regenerate = every.clone().regenerate_missing_secrets(true);
    let regenerated = subscriptions
        .ensure(&regenerate, &mut keyring)
        .await
        .unwrap();
    let ids: Vec<&str> = regenerated
        .subscriptions
        .iter()
        .filter(|e| e.secret == SecretStatus::Regenerated)
        .map(|e| e.subscription.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(ids, not_held);
    assert!(regenerated.is_complete(), "{regenerated}");
    assert_eq!(keyring.len(), 42);
    let last = subscriptions
        .ensure(&regenerate, &mut keyring)
        .await
        .unwrap();
    assert!(!last.changed() && last.is_complete(), "{last}");
    assert_eq!(fake.subscriptions().len(), count);
}

#[tokio::test]
async fn a_failure_in_the_middle_of_ensure_loses_no_secret_and_a_second_run_finishes() {
    let (addr, fake) = fake_monite::start().await;
    *fake.page_size_cap.lock().unwrap() = Some(3);
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    let plan = SubscriptionPlan::new(
        HOOK_URL,
        SubscriptionPlan::every_object_type(HOOK_URL)
            .object_types()
            .take(10)
            .cloned(),
    );
    let file = KeyringFile::new("ensure-failure");
    let save = |keyring: &Keyring| keyring.save(&file.0);

    // The fourth create fails with a 503 Monite did not act on: the run stops there, and
    // the keyring file holds the three secrets obtained before.
    fake.inject_on_create(
        4,
        Effect::Refuse {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: None,
        },
    );
    let mut keyring = Keyring::new();
    let error = subscriptions
        .ensure_with(&plan, &mut keyring, save)
        .await
        .unwrap_err();
    assert_eq!(error.api_status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(error.to_string().contains("run it again"), "{error}");
    assert_eq!(fake.subscriptions().len(), 3);
    let saved = Keyring::load(&file.0).unwrap();
    assert_eq!(saved.len(), 3);
    for subscription in fake.subscriptions() {
        assert!(saved.contains(subscription["id"].as_str().unwrap()));
    }

    // The process restarts from the file. This time the second create is carried out but
    // its answer is lost (a gateway's 504), and the fifth one's connection is cut after
    // its 201: neither is sent again; each is found by listing again, its secret not held.
    let mut keyring = Keyring::load(&file.0).unwrap();
    fake.inject_on_create(2, Effect::AfterCommit(StatusCode::GATEWAY_TIMEOUT));
    fake.inject_on_create(5, Effect::ResetAfterHeaders);
    let report = subscriptions
        .ensure_with(&plan, &mut keyring, save)
        .await
        .unwrap();
    println!("{report}");
    let lost: Vec<&Ensured> = report
        .subscriptions
        .iter()
        .filter(|e| e.create_answer_lost.is_some())
        .collect();
    assert_eq!(lost.len(), 2, "{report}");
    assert!(
        lost.iter()
            .all(|e| e.secret == SecretStatus::NotHeld && !e.created)
    );
    assert_eq!(report.created().count(), 5);
    assert_eq!(fake.subscriptions().len(), 10, "no duplicate");
    assert!(at_fake(&fake, HOOK_URL).values().all(|s| s.len() == 1));
    assert_eq!(Keyring::load(&file.0).unwrap().len(), 8);

    // A run that may regenerate completes the setup; the file holds all ten.
    let plan = plan.regenerate_missing_secrets(true);
    let report = subscriptions
        .ensure_with(&plan, &mut keyring, save)
        .await
        .unwrap();
    assert!(report.is_complete(), "{report}");
    let saved = Keyring::load(&file.0).unwrap();
    assert_eq!(saved.len(), 10);
    for subscription in fake.subscriptions() {
        let id = subscription["id"].as_str().unwrap();
        let secret = saved.get(id).unwrap().current().clone();
        assert_eq!(verifies(&saved, &delivery_from(id, &secret)), Ok(()));
    }
    assert_eq!(fake.subscriptions().len(), 10);
}

#[tokio::test]
async fn a_keyring_that_cannot_be_saved_stops_the_run_at_once() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let plan = SubscriptionPlan::new(HOOK_URL, [ObjectType::Payable, ObjectType::Counterpart]);
    let mut keyring = Keyring::new();
    let error = client
        .webhook_subscriptions()
        .ensure_with(&plan, &mut keyring, |keyring| {
            keyring.save("/nonexistent-directory/keyring.json")
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::KeyringFile);
    assert!(error.to_string().contains("not saved"), "{error}");
    // One subscription was created, and its secret is in the keyring in memory.
    assert_eq!(fake.subscriptions().len(), 1);
    assert_eq!(keyring.len(), 1);
}

#[tokio::test]
async fn a_refused_object_type_is_reported_and_the_run_goes_on() {
    let (addr, fake) = fake_monite::start().await;
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    // `payable_line_item` is the events table's spelling; the API takes only
    // `payable.line_item`.
    let plan = SubscriptionPlan::new(HOOK_URL, [ObjectType::PayableLineItem, ObjectType::Payable]);
    let mut keyring = Keyring::new();
    // It can run on a spawned task.
    fn assert_send<T: Send>(_: &T) {}
    let run = subscriptions.ensure(&plan, &mut keyring);
    assert_send(&run);
    let report = run.await.unwrap();
    let refused = report.subscriptions[0].refused.as_ref().unwrap();
    assert_eq!(refused.api_status(), Some(StatusCode::UNPROCESSABLE_ENTITY));
    assert_eq!(report.subscriptions[0].secret, SecretStatus::NoSubscription);
    assert!(report.subscriptions[1].is_ready());
    assert!(!report.is_complete());
    assert_eq!(fake.subscriptions().len(), 1);

    // Event types named in the plan are brought into line, once.
    let plan = SubscriptionPlan::new(HOOK_URL, [ObjectType::Payable])
        .event_types(ObjectType::Payable, [EventType::Paid, EventType::Approved]);
    let report = subscriptions.ensure(&plan, &mut keyring).await.unwrap();
    assert!(report.subscriptions[0].event_types_updated);
    assert_eq!(
        report.subscriptions[0]
            .subscription
            .as_ref()
            .unwrap()
            .event_types,
        [EventType::Paid, EventType::Approved]
    );
    let plan = SubscriptionPlan::new(HOOK_URL, [ObjectType::Payable])
        .event_types(ObjectType::Payable, [EventType::Approved, EventType::Paid]);
    assert!(
        !subscriptions
            .ensure(&plan, &mut keyring)
            .await
            .unwrap()
            .changed()
    );
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_beside_the_new_one_until_forgotten() {
    let (addr, _fake) = fake_monite::start().await;
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    let mut keyring = Keyring::new();
    let report = subscriptions
        .ensure(
            &SubscriptionPlan::new(HOOK_URL, [ObjectType::Payable]),
            &mut keyring,
        )
        .await
        .unwrap();
    let id = report.subscriptions[0]
        .subscription
        .as_ref()
        .unwrap()
        .id
        .clone();
    let old = keyring.get(&id).unwrap().current().clone();
    // A delivery Monite signed just before the rotation, still in flight.
    let in_flight = delivery_from(&id, &old);

    let rotated = subscriptions
        .rotate_secret(&id, &mut keyring)
        .await
        .unwrap();
    let held = keyring.get(&id).unwrap();
    assert_eq!(held.current().expose_text(), rotated.secret.expose_text());
    assert_eq!(held.previous().unwrap().expose_text(), old.expose_text());
    assert_ne!(old.expose_text(), rotated.secret.expose_text());
    let after = delivery_from(&id, &rotated.secret);
    assert_eq!(verifies(&keyring, &in_flight), Ok(()));
    assert_eq!(verifies(&keyring, &after), Ok(()));

    // Once the rotation is over, the old secret is refused.
    assert!(keyring.forget_previous(&id));
    assert_eq!(
        verifies(&keyring, &in_flight),
        Err(ErrorKind::SignatureMismatch)
    );
    assert_eq!(verifies(&keyring, &after), Ok(()));
}
