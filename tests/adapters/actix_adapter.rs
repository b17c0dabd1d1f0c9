//! The actix-web adapter: the shared table over real HTTP on loopback, in-process requests,
//! mounting inside an existing app, the extractor, and a hostile-input soak.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use support::fixture;

use std::net::SocketAddr;

use actix_web::http::StatusCode;
use actix_web::{App, HttpServer, test, web};
use monite_webhooks::Receiver;
use monite_webhooks::actix::VerifiedEvent;
use monite_webhooks::testing::signed_request;

/// Serves the receiver on a free loopback port from a background actix system.
fn serve(receiver: Receiver) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new().service(monite_webhooks::actix::resource(
                    fixture::PATH,
                    receiver.clone(),
                ))
            })
            .workers(2)
            .bind("127.0.0.1:0")
            .unwrap();
            tx.send(server.addrs()[0]).unwrap();
            server.run().await.unwrap();
        });
    });
    rx.recv().unwrap()
}

#[test]
fn the_shared_table_over_real_http() {
    let seen = fixture::Seen::default();
    let addr = serve(fixture::receiver(&seen));
    fixture::assert_table(addr, "actix-web");
    let seen = seen.lock().unwrap();
    assert!(seen.contains(&"counterpart.created".to_owned()), "{seen:?}");
    assert!(
        seen.contains(&"invoice_batch.sealed".to_owned()),
        "{seen:?}"
    );
}

#[test]
fn hostile_input_gets_no_5xx() {
    let addr = serve(fixture::receiver(&fixture::Seen::default()));
    fixture::assert_survives_hostile_input(addr, "actix-web");
}

/// Turns a signed `http` 1.x request into an actix test request.
fn to_actix(request: http::Request<bytes::Bytes>, path: &str) -> test::TestRequest {
    let mut actix = test::TestRequest::post().uri(path);
    for (name, value) in request.headers() {
        actix = actix.insert_header((name.as_str(), value.as_bytes()));
    }
    actix.set_payload(request.into_body())
}

async fn own_handler(VerifiedEvent(event): VerifiedEvent) -> String {
    format!("{} {}", event.object_type(), event.event_type())
}

#[test]
fn mounts_inside_an_existing_app_with_state_in_process() {
    actix_web::rt::System::new().block_on(async {
        let receiver = fixture::receiver(&fixture::Seen::default());
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new("hi"))
                .app_data(receiver.clone())
                .route(
                    "/hello",
                    web::get().to(|s: web::Data<&'static str>| async move { **s }),
                )
                .service(
                    web::scope("/hooks")
                        .service(monite_webhooks::actix::resource("/monite", receiver)),
                )
                .route("/custom", web::post().to(own_handler)),
        )
        .await;

        let hello =
            test::call_and_read_body(&app, test::TestRequest::get().uri("/hello").to_request())
                .await;
        assert_eq!(hello, "hi");

        let secret = fixture::secret(fixture::CURRENT);
        let body = fixture::current_envelope("counterpart", "counterpart.created");
        let request = to_actix(signed_request(&secret, body.clone()), "/hooks/monite");
        assert_eq!(
            test::call_service(&app, request.to_request())
                .await
                .status(),
            StatusCode::OK
        );

        let request = to_actix(signed_request(&secret, body), "/custom");
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(test::read_body(response).await, "counterpart created");

        let forged = to_actix(
            signed_request(&fixture::secret("whsec_forged"), "{}"),
            "/custom",
        );
        let response = test::call_service(&app, forged.to_request()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(test::read_body(response).await, "invalid signature");
    });
}

#[test]
fn the_extractor_without_a_receiver_is_a_clear_500() {
    actix_web::rt::System::new().block_on(async {
        let app =
            test::init_service(App::new().route("/custom", web::post().to(own_handler))).await;
        let request = to_actix(
            signed_request(&fixture::secret(fixture::CURRENT), "{}"),
            "/custom",
        );
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    });
}
