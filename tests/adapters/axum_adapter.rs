//! The axum adapter: the shared table over real HTTP on loopback, in-process requests,
//! mounting inside an existing app, the extractor, and a hostile-input soak.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use support::fixture;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use monite_webhooks::Receiver;
use monite_webhooks::axum::VerifiedEvent;
use monite_webhooks::testing::signed_request;
use tower::ServiceExt as _;

/// Serves `app` on a free loopback port from a background runtime.
fn serve(app: Router) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
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

fn app(seen: &fixture::Seen) -> Router {
    Router::new().route(
        fixture::PATH,
        monite_webhooks::axum::route(fixture::receiver(seen)),
    )
}

#[test]
fn the_shared_table_over_real_http() {
    let seen = fixture::Seen::default();
    let addr = serve(app(&seen));
    fixture::assert_table(addr, "axum");
    let seen = seen.lock().unwrap();
    assert!(seen.contains(&"counterpart.created".to_owned()), "{seen:?}");
    assert!(
        seen.contains(&"invoice_batch.sealed".to_owned()),
        "{seen:?}"
    );
}

#[test]
fn hostile_input_gets_no_5xx() {
    let addr = serve(app(&fixture::Seen::default()));
    fixture::assert_survives_hostile_input(addr, "axum");
}

#[tokio::test]
async fn in_process_with_oneshot() {
    let app = app(&fixture::Seen::default());
    let body = fixture::current_envelope("counterpart", "counterpart.created");
    let request = signed_request(&fixture::secret(fixture::CURRENT), body).map(Body::from);
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let forged = signed_request(&fixture::secret("whsec_forged"), "{}").map(Body::from);
    let response = app.oneshot(forged).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let text = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(text, "invalid signature");
}

/// An application's own state, with the receiver as one part of it.
#[derive(Clone)]
struct AppState {
    greeting: &'static str,
    receiver: Receiver,
}

impl FromRef<AppState> for Receiver {
    fn from_ref(state: &AppState) -> Self {
        state.receiver.clone()
    }
}

async fn own_handler(VerifiedEvent(event): VerifiedEvent) -> String {
    format!("{} {}", event.object_type(), event.event_type())
}

#[tokio::test]
async fn mounts_inside_an_existing_app_with_state() {
    let receiver = fixture::receiver(&fixture::Seen::default());
    let app: Router = Router::new()
        .route(
            "/hello",
            get(|State(s): State<AppState>| async move { s.greeting }),
        )
        .route(
            fixture::PATH,
            monite_webhooks::axum::route(receiver.clone()),
        )
        .route("/custom", post(own_handler))
        .with_state(AppState {
            greeting: "hi",
            receiver,
        });

    let hello = Request::get("/hello").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(hello).await.unwrap();
    assert_eq!(
        axum::body::to_bytes(response.into_body(), 64)
            .await
            .unwrap(),
        "hi"
    );

    let body = fixture::current_envelope("counterpart", "counterpart.created");
    let request = signed_request(&fixture::secret(fixture::CURRENT), body.clone()).map(Body::from);
    assert_eq!(
        app.clone().oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );

    // The extractor: verified and parsed, the handler writes the answer itself.
    let mut request = signed_request(&fixture::secret(fixture::CURRENT), body).map(Body::from);
    *request.uri_mut() = "/custom".parse().unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = axum::body::to_bytes(response.into_body(), 64)
        .await
        .unwrap();
    assert_eq!(text, "counterpart created");

    // And its rejection answers like the route does.
    let mut forged = signed_request(&fixture::secret("whsec_forged"), "{}").map(Body::from);
    *forged.uri_mut() = "/custom".parse().unwrap();
    assert_eq!(
        app.oneshot(forged).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}
