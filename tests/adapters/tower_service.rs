//! The receiver as a tower service: the shared status table in process (streamed bodies
//! included) and over real HTTP through bare hyper, answered exactly as `Receiver::handle`
//! answers it; the 413 before a byte is read; and `VerifyLayer` in front of a plain tower
//! service and of an axum router.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use support::fixture;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use monite_webhooks::testing::signed_request;
use monite_webhooks::tower::VerifyLayer;
use monite_webhooks::{BoxError, Event, Receiver};
use tower::{Service, ServiceBuilder, ServiceExt as _, service_fn};

fn assert_service<S: Service<Request<Full<Bytes>>, Error = Infallible> + Clone + Send + 'static>(
    _: &S,
) {
}

/// A case's request with a whole body, and its `Content-Length` as a client would send it.
fn whole(case: &fixture::Case) -> Request<Full<Bytes>> {
    let mut request = Request::builder()
        .method(case.method)
        .uri(fixture::PATH)
        .header("content-length", case.body.len());
    for (name, value) in &case.headers {
        request = request.header(name, value);
    }
    request
        .body(Full::new(Bytes::from(case.body.clone())))
        .unwrap()
}

/// A case's request with its body streamed in 16 KiB chunks and no `Content-Length`, so
/// only reading can find its size.
fn streamed(case: &fixture::Case) -> Request<Channel<Bytes, BoxError>> {
    let (mut sender, body) = Channel::new(4);
    let chunks: Vec<Bytes> = case
        .body
        .chunks(16 * 1024)
        .map(Bytes::copy_from_slice)
        .collect();
    tokio::spawn(async move {
        for chunk in chunks {
            // The receiver stops reading past the limit and drops the body: sending fails.
            if sender.send_data(chunk).await.is_err() {
                break;
            }
        }
    });
    let mut request = Request::builder().method(case.method).uri(fixture::PATH);
    for (name, value) in &case.headers {
        request = request.header(name, value);
    }
    request.body(body).unwrap()
}

#[tokio::test]
async fn the_shared_table_in_process_as_handle_answers_it() {
    let seen = fixture::Seen::default();
    let receiver = fixture::receiver(&seen);
    assert_service(&receiver);
    // A second receiver for `handle`, given the same sequence: the same idempotency state.
    let handling = fixture::receiver(&fixture::Seen::default());
    for case in fixture::cases() {
        let response = if case.chunked {
            receiver.clone().oneshot(streamed(&case)).await.unwrap()
        } else {
            receiver.clone().oneshot(whole(&case)).await.unwrap()
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        assert_eq!(parts.status, case.status, "{}: {body:?}", case.name);

        // `Receiver::handle`, given the same request whole, answers the same, byte for byte.
        let request = whole(&case).map(|_| Bytes::from(case.body.clone()));
        let handled = handling.handle(request).await;
        assert_eq!(handled.status(), parts.status, "{}", case.name);
        assert_eq!(handled.headers(), &parts.headers, "{}", case.name);
        assert_eq!(handled.body(), &body, "{}", case.name);
    }
    let seen = seen.lock().unwrap();
    assert!(seen.contains(&"counterpart.created".to_owned()), "{seen:?}");
}

/// Serves the receiver through hyper alone on a free loopback port.
fn serve(receiver: Receiver) -> SocketAddr {
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
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let service = TowerToHyperService::new(receiver.clone());
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

#[test]
fn the_shared_table_over_real_http_through_hyper() {
    let seen = fixture::Seen::default();
    let addr = serve(fixture::receiver(&seen));
    fixture::assert_table(addr, "hyper");
    let seen = seen.lock().unwrap();
    assert!(seen.contains(&"counterpart.created".to_owned()), "{seen:?}");
}

#[test]
fn hostile_input_gets_no_5xx_through_hyper() {
    let addr = serve(fixture::receiver(&fixture::Seen::default()));
    fixture::assert_survives_hostile_input(addr, "hyper");
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_reading() {
    let receiver = fixture::receiver(&fixture::Seen::default());
    // A body that never yields a byte: reading it would never end.
    let (_sender, body) = Channel::<Bytes, BoxError>::new(1);
    let request = Request::post(fixture::PATH)
        .header("content-length", 256 * 1024 + 1)
        .body(body)
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), receiver.oneshot(request))
        .await
        .expect("answered without reading the body")
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_body_failing_mid_way_is_a_400() {
    let receiver = fixture::receiver(&fixture::Seen::default());
    let (mut sender, body) = Channel::<Bytes, BoxError>::new(1);
    sender
        .send_data(Bytes::from_static(b"{\"id\":"))
        .await
        .unwrap();
    sender.abort("connection reset".into());
    let request = Request::post(fixture::PATH).body(body).unwrap();
    let response = receiver.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_layer_hands_the_event_and_the_raw_body_to_the_inner_service() {
    let receiver = fixture::receiver(&fixture::Seen::default());
    let calls = Arc::new(AtomicUsize::new(0));
    let inner_calls = calls.clone();
    let inner = service_fn(move |request: Request<Full<Bytes>>| {
        inner_calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let event = request.extensions().get::<Event>().cloned().unwrap();
            let body = request.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(event.body(), &body, "the raw body, unchanged");
            let reply = format!("{} {}", event.action(), body.len());
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(reply))))
        }
    });
    let service = ServiceBuilder::new()
        .layer(VerifyLayer::new(receiver))
        .service(inner);

    // Spaces and a key order of Monite's own: the inner service sees them as sent.
    let body = fixture::current_envelope("counterpart", "counterpart.created").replace(',', ", ");
    let request = signed_request(&fixture::secret(fixture::CURRENT), body.clone()).map(Full::new);
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text, format!("counterpart.created {}", body.len()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Rejections are answered by the layer, as the receiver answers them, and the inner
    // service never runs.
    for case in fixture::cases()
        .into_iter()
        .filter(|case| case.status >= 400)
    {
        if case.status >= 500 {
            continue; // handler failures: the layer runs no handler
        }
        let response = service.clone().oneshot(whole(&case)).await.unwrap();
        assert_eq!(response.status(), case.status, "{}", case.name);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_layer_in_an_axum_router_and_route_service() {
    use axum::Extension;
    use axum::routing::post;

    async fn own_handler(Extension(event): Extension<Event>, body: Bytes) -> String {
        format!("{} {}", event.event_type(), body.len())
    }

    let receiver = fixture::receiver(&fixture::Seen::default());
    let app = axum::Router::new()
        .route(
            "/own",
            post(own_handler).layer(VerifyLayer::new(receiver.clone())),
        )
        .route_service(fixture::PATH, receiver);

    let secret = fixture::secret(fixture::CURRENT);
    let body = fixture::current_envelope("counterpart", "counterpart.updated");
    let mut request = signed_request(&secret, body.clone()).map(axum::body::Body::from);
    *request.uri_mut() = "/own".parse().unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(text, format!("updated {}", body.len()));

    let forged = signed_request(&fixture::secret("whsec_forged"), body.clone());
    let mut forged = forged.map(axum::body::Body::from);
    *forged.uri_mut() = "/own".parse().unwrap();
    assert_eq!(
        app.clone().oneshot(forged).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // The receiver itself, mounted with `route_service`.
    let request = signed_request(&secret, body).map(axum::body::Body::from);
    assert_eq!(app.oneshot(request).await.unwrap().status(), StatusCode::OK);
}
