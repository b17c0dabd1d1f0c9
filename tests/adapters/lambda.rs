//! AWS Lambda: the three request shapes Lambda delivers (API Gateway HTTP API v2 with a
//! base64 body, REST API v1, Application Load Balancer), converted by `lambda_http` itself,
//! answered by the receiver as a tower service; then examples/lambda.rs run as a real
//! process under `lambda_http::run`, against a Lambda Runtime API served on loopback.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use support::fixture;

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use monite_webhooks::testing::sign;

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// API Gateway HTTP API, payload format 2.0: lower-case headers, body in base64.
    HttpApiV2,
    /// API Gateway REST API, payload format 1.0: headers twice, body as text.
    RestApiV1,
    /// Application Load Balancer target group.
    Alb,
}

const SHAPES: [Shape; 3] = [Shape::HttpApiV2, Shape::RestApiV1, Shape::Alb];

/// The Lambda event of `shape` carrying `body`, signed with the header value `signature`.
fn lambda_event(shape: Shape, body: &str, signature: &str) -> Value {
    let text = match shape {
        Shape::HttpApiV2 => include_str!("../data/lambda/apigw_http_v2.json"),
        Shape::RestApiV1 => include_str!("../data/lambda/apigw_rest_v1.json"),
        Shape::Alb => include_str!("../data/lambda/alb.json"),
    };
    let mut event: Value = serde_json::from_str(text).unwrap();
    let length = body.len().to_string();
    match shape {
        Shape::HttpApiV2 => {
            event["body"] = base64::engine::general_purpose::STANDARD
                .encode(body)
                .into();
            event["headers"]["monite-signature"] = signature.into();
            event["headers"]["content-length"] = length.into();
        }
        Shape::RestApiV1 => {
            event["body"] = body.into();
            event["headers"]["Monite-Signature"] = signature.into();
            event["headers"]["Content-Length"] = length.clone().into();
            event["multiValueHeaders"]["Monite-Signature"] = json!([signature]);
            event["multiValueHeaders"]["Content-Length"] = json!([length]);
        }
        Shape::Alb => {
            event["body"] = body.into();
            event["headers"]["monite-signature"] = signature.into();
            event["headers"]["content-length"] = length.into();
        }
    }
    event
}

fn signed(body: &str, secret: &str) -> String {
    sign(&fixture::secret(secret), fixture::now(), body.as_bytes())
}

#[tokio::test]
async fn each_lambda_shape_converted_by_lambda_http_is_answered_as_the_table_says() {
    for shape in SHAPES {
        let seen = fixture::Seen::default();
        let receiver = fixture::receiver(&seen);
        let body = fixture::current_envelope("counterpart", "counterpart.created");
        let event = lambda_event(shape, &body, &signed(&body, fixture::CURRENT));
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        assert_eq!(request.method(), "POST", "{shape:?}");

        // A valid delivery: 200, its handler run once.
        let response = receiver.clone().oneshot(request.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{shape:?}");
        assert_eq!(*seen.lock().unwrap(), ["counterpart.created"], "{shape:?}");

        // Monite's retry of it: 200, and the handler does not run again.
        let response = receiver.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{shape:?}");
        assert_eq!(seen.lock().unwrap().len(), 1, "{shape:?}");

        // A forged one: 401, no handler.
        let forged = fixture::current_envelope("counterpart", "counterpart.deleted");
        let event = lambda_event(shape, &forged, &signed(&forged, "whsec_forged"));
        let request = lambda_http::request::from_str(&event.to_string()).unwrap();
        let response = receiver.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{shape:?}");
        assert_eq!(seen.lock().unwrap().len(), 1, "{shape:?}");
    }
}

/// What the function sent for an invocation: its id, `response` or `error`, the JSON.
type Answer = (String, &'static str, Value);

/// A Lambda Runtime API on loopback: hands out queued invocations, collects what the
/// function answered to each.
#[derive(Clone, Default)]
struct RuntimeApi {
    invocations: Arc<Mutex<VecDeque<(String, Value)>>>,
    answers: Arc<Mutex<Vec<Answer>>>,
}

async fn next_invocation(State(api): State<RuntimeApi>) -> (HeaderMap, String) {
    let next = api.invocations.lock().unwrap().pop_front();
    let Some((id, event)) = next else {
        // Nothing more: the function waits here, as it would between invocations.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let deadline = (fixture::now() + 60) * 1000;
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
    headers.insert("lambda-runtime-deadline-ms", deadline.into());
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:eu-central-1:123456789012:function:monite-webhooks"
            .parse()
            .unwrap(),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        "Root=1-65e62a28-1a2b3c4d5e6f708192a3b4c5".parse().unwrap(),
    );
    (headers, event.to_string())
}

fn answered(
    kind: &'static str,
) -> impl Fn(State<RuntimeApi>, Path<String>, String) -> std::future::Ready<StatusCode> + Clone {
    move |State(api): State<RuntimeApi>, Path(id): Path<String>, body: String| {
        let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
        api.answers.lock().unwrap().push((id, kind, body));
        std::future::ready(StatusCode::ACCEPTED)
    }
}

fn serve_runtime_api(api: RuntimeApi) -> std::net::SocketAddr {
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(answered("response")),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(answered("error")),
        )
        .with_state(api);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

#[test]
fn the_lambda_example_answers_each_shape_under_lambda_http_run() {
    let api = RuntimeApi::default();
    let mut expected = Vec::new();
    for (n, shape) in SHAPES.into_iter().enumerate() {
        let body = fixture::current_envelope("counterpart", "counterpart.created");
        let event = lambda_event(shape, &body, &signed(&body, fixture::CURRENT));
        let id = serde_json::from_str::<Value>(&body).unwrap()["id"].clone();
        api.invocations
            .lock()
            .unwrap()
            .push_back((format!("valid-{n}"), event));
        expected.push((format!("valid-{n}"), 200, "ok", Some(id)));

        let forged = fixture::current_envelope("counterpart", "counterpart.created");
        let event = lambda_event(shape, &forged, &signed(&forged, "whsec_forged"));
        api.invocations
            .lock()
            .unwrap()
            .push_back((format!("forged-{n}"), event));
        expected.push((format!("forged-{n}"), 401, "invalid signature", None));
    }
    let addr = serve_runtime_api(api.clone());

    let mut child = Command::new(fixture::example_binary("lambda"))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "monite-webhooks")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("MONITE_WEBHOOK_SECRET", fixture::CURRENT)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while api.answers.lock().unwrap().len() < expected.len() && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let stdout = child.stdout.take().unwrap();
    let handled: Vec<Value> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str(&line).ok())
        .collect();
    let _ = child.wait();

    let answers = api.answers.lock().unwrap().clone();
    assert_eq!(answers.len(), expected.len(), "answers: {answers:?}");
    for ((id, kind, answer), (expected_id, status, text, _)) in answers.iter().zip(&expected) {
        assert_eq!((id, *kind), (expected_id, "response"), "{answer}");
        assert_eq!(answer["statusCode"], *status, "{id}: {answer}");
        assert_eq!(answer["body"], *text, "{id}: {answer}");
    }
    // Each valid delivery's handler ran once; no forged one reached a handler.
    let handled_ids: Vec<&Value> = handled.iter().map(|line| &line["id"]).collect();
    let valid_ids: Vec<&Value> = expected.iter().filter_map(|e| e.3.as_ref()).collect();
    assert_eq!(handled_ids, valid_ids);
}
