//! The emulator's API: every answer against Monite's OpenAPI schemas (copies of the parts
//! used, in `tests/data/`), pagination over many events on one timestamp, the rate limit,
//! an object's `GET` after its events.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use std::collections::HashSet;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use monite_webhooks::client::{Client, Environment, ListQuery};
use monite_webhooks::testing::Emulator;
use serde_json::{Value, json};

use super::http::{JsonBody as _, json_of};
use crate::support::fake_monite::fixture_at;
use crate::support::openapi::{answer_schema, violations};

const ENTITY: &str = "c381e88f-7019-4f06-9fbb-3bab8d88348a";

#[test]
fn the_emulator_is_clone_send_sync() {
    fn shared<T: Clone + Send + Sync + 'static>() {}
    shared::<Emulator>();
}

/// A raw HTTP client of the emulator, with a token, checking each answer's schema.
struct Raw {
    http: reqwest::Client,
    base: String,
    token: String,
    checked: Vec<String>,
}

impl Raw {
    async fn new(emulator: &Emulator) -> Self {
        let http = super::http::client();
        let base = emulator.base_url();
        let answer = http
            .post(format!("{base}/auth/token"))
            .header("x-monite-version", "2024-05-25")
            .json_body(&json!({"grant_type": "client_credentials",
                "client_id": emulator.client_id(), "client_secret": emulator.client_secret()}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let token: Value = json_of(answer).await;
        let mut raw = Self {
            http,
            base,
            token: token["access_token"].as_str().unwrap().to_owned(),
            checked: Vec::new(),
        };
        raw.check("post", "/auth/token", 200, &token);
        raw
    }

    /// `method path` with `body`, answered `status`; its body checked against the
    /// document's schema for `template` (the path as the document spells it).
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        template: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let url = format!("{}{path}", self.base);
        let mut request = match method {
            "get" => self.http.get(url),
            "post" => self.http.post(url),
            "patch" => self.http.patch(url),
            "delete" => self.http.delete(url),
            other => panic!("{other}"),
        }
        .bearer_auth(&self.token)
        .header("x-monite-version", "2024-05-25")
        .header("x-monite-entity-id", ENTITY);
        if let Some(body) = body {
            request = request.json_body(&body);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), status, "{method} {path}");
        assert!(
            answer.headers().contains_key("date"),
            "{method} {path}: no Date"
        );
        if status == 204 {
            return Value::Null;
        }
        let value: Value = json_of(answer).await;
        self.check(method, template, status, &value);
        value
    }

    fn check(&mut self, method: &str, template: &str, status: u16, value: &Value) {
        let document = if template.starts_with("/entities") {
            fixture_at("monite-openapi-entities.json")
        } else {
            fixture_at("monite-openapi-webhooks.json")
        };
        let schema = answer_schema(&document, method, template, status)
            .unwrap_or_else(|| panic!("{method} {template} {status}: no schema"));
        let found = violations(&document, &schema, value, "$");
        assert!(
            found.is_empty(),
            "{method} {template} {status}: {found:#?}\n{value:#}"
        );
        self.checked.push(format!("{method} {template} {status}"));
    }
}

#[tokio::test]
async fn every_answer_matches_monites_schemas() {
    let emulator = Emulator::builder().rate_limit(None).start().await.unwrap();
    let mut raw = Raw::new(&emulator).await;
    let subs = "/webhook_subscriptions";
    let one = "/webhook_subscriptions/{webhook_subscription_id}";
    let (url, _receiver) = super::receiver::start(200).await;
    let url = url.as_str();

    let created = raw
        .call(
            "post",
            subs,
            subs,
            Some(json!({"object_type": "payable", "url": url})),
            201,
        )
        .await;
    assert!(
        created["secret"]
            .as_str()
            .unwrap()
            .starts_with(monite_webhooks::testing::emulator::SECRET_PREFIX)
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("{subs}/{id}");
    raw.call("get", subs, subs, None, 200).await;
    raw.call(
        "get",
        &format!("{subs}?object_type=payable&limit=1&sort=created_at&order=desc"),
        subs,
        None,
        200,
    )
    .await;
    raw.call("get", &path, one, None, 200).await;
    raw.call(
        "patch",
        &path,
        one,
        Some(json!({"event_types": ["payable.paid"]})),
        200,
    )
    .await;
    raw.call(
        "post",
        &format!("{path}/disable"),
        &format!("{one}/disable"),
        None,
        200,
    )
    .await;
    raw.call(
        "post",
        &format!("{path}/enable"),
        &format!("{one}/enable"),
        None,
        200,
    )
    .await;
    let regenerated = raw
        .call(
            "post",
            &format!("{path}/regenerate_secret"),
            &format!("{one}/regenerate_secret"),
            None,
            200,
        )
        .await;
    assert_ne!(regenerated["secret"], created["secret"]);
    raw.call(
        "post",
        subs,
        subs,
        Some(json!({"object_type": "payable", "url": "http://plain"})),
        422,
    )
    .await;
    raw.call(
        "post",
        subs,
        subs,
        Some(json!({"object_type": "no_such_type", "url": url})),
        422,
    )
    .await;
    raw.call("get", &format!("{subs}/nope"), one, None, 404)
        .await;

    emulator
        .trigger(
            "payable.paid",
            ENTITY,
            Some(json!({"id": "0b000000-0000-4000-8000-000000000001"})),
        )
        .unwrap();
    emulator.deliver_due().await;
    let events = raw
        .call(
            "get",
            "/events?limit=10&sort=created_at&order=asc",
            "/events",
            None,
            200,
        )
        .await;
    let event_id = events["data"][0]["id"].as_str().unwrap().to_owned();
    raw.call(
        "get",
        &format!("/events/{event_id}"),
        "/events/{event_id}",
        None,
        200,
    )
    .await;
    raw.call(
        "get",
        "/events/ee000000-0000-4000-8000-ffffffffffff",
        "/events/{event_id}",
        None,
        404,
    )
    .await;
    raw.call(
        "get",
        "/events?created_at__gte=yesterday",
        "/events",
        None,
        422,
    )
    .await;
    let log = raw
        .call(
            "get",
            "/webhook_deliveries",
            "/webhook_deliveries",
            None,
            200,
        )
        .await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1);
    raw.call("get", "/entities", "/entities", None, 200).await;
    raw.call(
        "get",
        &format!("/entities/{ENTITY}"),
        "/entities/{entity_id}",
        None,
        200,
    )
    .await;
    raw.call("delete", &path, one, None, 204).await;

    let checked: HashSet<&str> = raw
        .checked
        .iter()
        .map(|c| c.rsplit_once(' ').unwrap().0)
        .collect();
    assert_eq!(checked.len(), 13, "{checked:?}");
}

#[tokio::test]
async fn pagination_returns_250_events_of_one_timestamp_once_each() {
    // A clock that barely moves: every event is created at the same microsecond.
    let emulator = Emulator::builder()
        .time_scale(1e-9)
        .rate_limit(None)
        .start()
        .await
        .unwrap();
    let down = super::receiver::nobody().await;
    let _subscription = emulator.add_subscription("payable", &down, true);
    let mut ids = HashSet::new();
    for _ in 0..250 {
        let event = emulator.trigger("payable.paid", ENTITY, None).unwrap();
        ids.insert(event.event().unwrap()["id"].as_str().unwrap().to_owned());
    }
    let at = emulator.now();
    let client = Client::builder(Environment::Custom(emulator.base_url()))
        .credentials(emulator.client_id(), emulator.client_secret())
        .build()
        .unwrap();
    let events: Vec<_> = client
        .events(ENTITY)
        .list(
            ListQuery::new()
                .created_at_or_after(at - Duration::from_secs(1))
                .created_at_or_before(at + Duration::from_secs(1))
                .limit(100),
        )
        .try_collect()
        .await
        .unwrap();
    let stamps: HashSet<_> = events
        .iter()
        .map(|e| e.created_at().unwrap().to_owned())
        .collect();
    assert_eq!(stamps.len(), 1, "{stamps:?}");
    let listed: HashSet<String> = events.iter().map(|e| e.id().unwrap().to_owned()).collect();
    assert_eq!(events.len(), 250);
    assert_eq!(listed, ids);
}

#[tokio::test]
async fn beyond_the_rate_limit_a_429_with_retry_after_and_ratelimit_headers() {
    let emulator = Emulator::builder()
        .rate_limit(Some(5))
        .start()
        .await
        .unwrap();
    let http = super::http::client();
    let url = format!("{}/auth/token", emulator.base_url());
    let body = json!({"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"});
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let answer = http
            .post(&url)
            .header("x-monite-version", "2024-05-25")
            .json_body(&body)
            .send()
            .await
            .unwrap();
        assert!(answer.headers().contains_key("date"));
        assert!(answer.headers().contains_key("ratelimit-limit"));
        if answer.status() == 429 {
            assert_eq!(answer.headers()["retry-after"], "1");
            assert_eq!(answer.headers()["ratelimit-remaining"], "0");
        }
        statuses.push(answer.status().as_u16());
    }
    // Eight requests well within a second (the limit is checked on the wall clock).
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(emulator.throttled(), 3);
}

#[tokio::test]
async fn an_objects_get_answers_its_last_state_and_404_after_its_delete_event() {
    let emulator = Emulator::builder().start().await.unwrap();
    let down = super::receiver::nobody().await;
    let _subscription = emulator.add_subscription("counterpart", &down, true);
    let id = "0c000000-0000-4000-8000-000000000001";
    let client = Client::builder(Environment::Custom(emulator.base_url()))
        .credentials(emulator.client_id(), emulator.client_secret())
        .build()
        .unwrap();
    let read = || async {
        let event = monite_webhooks::Event::parse(
            json!({"id": "e", "action": "counterpart.updated", "object_type": "counterpart",
                "entity_id": ENTITY, "object": {"id": id}})
            .to_string(),
        )
        .unwrap();
        client.fetch(&event).await.unwrap()
    };

    emulator
        .trigger(
            "counterpart.created",
            ENTITY,
            Some(json!({"id": id, "name": "first"})),
        )
        .unwrap();
    assert_eq!(read().await.found().unwrap()["name"], "first");
    emulator
        .trigger(
            "counterpart.updated",
            ENTITY,
            Some(json!({"id": id, "name": "second"})),
        )
        .unwrap();
    assert_eq!(read().await.found().unwrap()["name"], "second");
    emulator
        .trigger("counterpart.deleted", ENTITY, Some(json!({"id": id})))
        .unwrap();
    assert!(read().await.found().is_none());
    let reads = emulator.object_reads();
    assert_eq!(
        reads.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 404]
    );
    assert!(
        reads
            .iter()
            .all(|r| r.path == format!("/v1/counterparts/{id}")
                && r.entity_id.as_deref() == Some(ENTITY))
    );
}
