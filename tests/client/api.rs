//! The API client against a local fake of Monite's API (testkit/src/fake_monite.rs):
//! subscriptions, events and deliveries, tokens, retries and typed errors, pagination, and
//! the client and the fake against Monite's OpenAPI document.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use http::StatusCode;
use monite_webhooks::client::{
    Client, Environment, ListQuery, NewSubscription, SubscriptionStatus, SubscriptionUpdate,
};
use monite_webhooks::testing::signed_request;
use monite_webhooks::{ErrorKind, Event, EventType, ObjectType, Secret, Verifier};

use support::client::{client, counting_receiver, effect, fault};
use support::fake_monite::{self, CLIENT_ID, CLIENT_SECRET, ENTITY_ID, Effect};
use support::openapi::{Looseness, answer_schema, instance, openapi, violations};

/// A bare HTTP client, to ask the fake what the library's client would not. reqwest's TLS
/// needs a process-wide provider without its aws-lc-rs default: the library's own
/// (*ring*).
fn plain_http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
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
    assert!(
        !format!("{first:?}").contains(monite_webhooks::testing::emulator::SECRET_PREFIX),
        "{first:?}"
    );
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
    fake.set_token_lifetime_secs(2);
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();

    for _ in 0..3 {
        list_all(&subscriptions).await;
    }
    assert_eq!(fake.token_requests(), 1, "the token is cached");

    // A 2 s token is refreshed halfway through its life.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    list_all(&subscriptions).await;
    assert_eq!(fake.token_requests(), 2, "refreshed before expiry");

    // Revoked early: the 401 gets one fresh token and the request goes through.
    fake.revoke_tokens();
    list_all(&subscriptions).await;
    assert_eq!(fake.token_requests(), 3, "renewed on 401");

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
    let before = fake.requests();
    let error = subscriptions.get("x").await.unwrap_err();
    assert_eq!(error.api_status(), Some(StatusCode::BAD_GATEWAY));
    assert_eq!(fake.requests() - before, 4, "one try and three retries");

    // A 4xx is not retried.
    let before = fake.requests();
    let _ = subscriptions.get("missing").await.unwrap_err();
    assert_eq!(fake.requests() - before, 1);
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
    let answer = plain_http()
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
        let status = plain_http()
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
    let before = fake.requests();
    let error = subscriptions
        .create(&https_hook(ObjectType::Payable))
        .await
        .unwrap_err();
    assert_eq!(error.api_status(), Some(StatusCode::GATEWAY_TIMEOUT));
    assert!(error.to_string().contains("may have acted"), "{error}");
    assert_eq!(fake.requests() - before, 1);
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
    let before = fake.requests();
    let error = subscriptions
        .create(&https_hook(ObjectType::Entity))
        .await
        .unwrap_err();
    assert_eq!(error.api_status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(fake.requests() - before, 1);

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
    let before = fake.requests();
    let error = subscriptions.regenerate_secret(&id).await.unwrap_err();
    assert_eq!(error.api_status(), Some(StatusCode::GATEWAY_TIMEOUT));
    assert_eq!(fake.requests() - before, 1);

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
    fake.revoke_on_issue(true);
    let client = client(addr);
    let subscriptions = client.webhook_subscriptions();
    list_all(&subscriptions).await;
    assert_eq!(fake.token_requests(), 1);

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
        fake.token_requests(),
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
        fake.set_expires_in(Some(expires_in.clone()));
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
    fake.echo_page_tokens(50);
    let before = fake.requests();
    let error = subscriptions
        .list(ListQuery::new().limit(1))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Api);
    assert!(error.to_string().contains("second time"), "{error}");
    assert_eq!(fake.requests() - before, 2);

    // A recovery too.
    fake.echo_page_tokens(50);
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
    fake.empty_pages_with_new_tokens(1_000);
    let before = fake.requests();
    let error = subscriptions
        .list(ListQuery::new())
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Api);
    assert!(error.to_string().contains("16 empty pages"), "{error}");
    assert_eq!(fake.requests() - before, 16);

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
    fake.empty_pages_with_new_tokens(0);
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
    let before = fake.requests();
    for id in ["", ".", ".."] {
        let error = subscriptions.delete(id).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Misconfigured, "{id:?}");
    }
    assert_eq!(fake.requests(), before);
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
    let http = plain_http();
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

/// The client carries its own TLS provider (*ring*, not aws-lc-rs, which needs CMake):
/// against an `https` URL it opens a TLS handshake, and a peer that does not speak TLS is a
/// transport error, not a panic for want of a provider.
#[tokio::test]
async fn https_starts_a_tls_handshake_with_the_built_in_provider() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut record_header = [0_u8; 3];
        socket.read_exact(&mut record_header).await.unwrap();
        socket
            .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
        record_header
    });
    let client = Client::builder(Environment::Custom(format!("https://{addr}/v1")))
        .credentials(CLIENT_ID, CLIENT_SECRET)
        .max_retries(0)
        .build()
        .unwrap();
    let error = client
        .entities()
        .list(ListQuery::new())
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    // A TLS record of type handshake (22), version 3.x: the ClientHello.
    assert_eq!(peer.await.unwrap()[..2], [0x16, 0x03]);
    assert_eq!(error.kind(), ErrorKind::Transport, "{error}");
}
