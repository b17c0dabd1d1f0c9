//! Property tests: no header string or body can panic the parser, the verifier or the
//! receiver, and signing round-trips for any body.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use bytes::Bytes;
use monite_webhooks::testing::sign;
use monite_webhooks::{Dispatcher, ErrorKind, Event, Receiver, Secret, Verifier};
use proptest::prelude::*;

const NOW: u64 = 1_713_773_729;

fn verifier() -> Verifier {
    Verifier::new(Secret::new("whsec_IpHYzcMQQR5+wnN4pmHJNRh8B+TVY26b").unwrap())
        .with_secret(Secret::whsec_base64("whsec_aGVsbG8gd29ybGQ=").unwrap())
}

/// Header values near the real shape: elements from a small alphabet of keys and values.
fn header_like() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        Just(b"t".to_vec()),
        Just(b"v1".to_vec()),
        Just(b"v0".to_vec()),
        Just(b" t ".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..4),
    ];
    let value = prop_oneof![
        "[0-9]{0,25}".prop_map(String::into_bytes),
        "-[0-9]{1,20}".prop_map(String::into_bytes),
        "[0-9a-fA-F]{60,68}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..80),
    ];
    let element = (key, any::<bool>(), value).prop_map(|(mut k, eq, v)| {
        if eq {
            k.push(b'=');
        }
        k.extend(v);
        k
    });
    proptest::collection::vec(element, 0..6).prop_map(|elements| elements.join(&b","[..]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_headers_and_bodies_never_panic_the_verifier(
        header in prop_oneof![header_like(), proptest::collection::vec(any::<u8>(), 0..200)],
        body in proptest::collection::vec(any::<u8>(), 0..512),
        now in any::<u64>(),
    ) {
        let headers: [(&str, &[u8]); 1] = [("monite-signature", &header)];
        if let Err(error) = verifier().verify_at(&headers, &body, now) {
            prop_assert!(matches!(
                error.kind(),
                ErrorKind::MalformedSignature
                    | ErrorKind::SignatureMismatch
                    | ErrorKind::TimestampTooOld
                    | ErrorKind::TimestampInFuture
            ), "{error:?}");
            prop_assert!(error.status().is_client_error());
        }
    }

    #[test]
    fn arbitrary_bodies_never_panic_the_parser(
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            r#"\{("(id|action|object_type|object|entity_id|name)":("[a-z._\\u00e9]{0,12}"|[0-9]|null|\{\}|\[\]),?){0,7}\}"#
                .prop_map(String::into_bytes),
        ],
    ) {
        match Event::parse(body) {
            Ok(event) => {
                // Whatever parsed must read back without panicking.
                let _ = (event.id(), event.object_id(), event.object_json(), event.entity_id());
                // The event name is always a suffix of the action it came from.
                prop_assert!(event.action().ends_with(event.event_type().as_str()));
            }
            Err(error) => prop_assert_eq!(error.kind(), ErrorKind::NotAnEnvelope),
        }
    }

    #[test]
    fn signing_round_trips_for_any_body_and_time(
        body in proptest::collection::vec(any::<u8>(), 0..1024),
        t in 0u64..=u64::MAX,
    ) {
        let secret = Secret::new("whsec_IpHYzcMQQR5+wnN4pmHJNRh8B+TVY26b").unwrap();
        let header = sign(&secret, t, &body);
        let verifier = verifier();
        let verified = verifier.verify_at(&[("Monite-Signature", header.as_str())], &body, t);
        prop_assert_eq!(verified.map(|v| v.timestamp()).ok(), Some(t));
    }

    #[test]
    fn the_receiver_answers_hostile_requests_with_4xx(
        header in header_like(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let receiver = Receiver::new(verifier(), Dispatcher::builder().build());
        let mut request = http::Request::post("/").body(Bytes::from(body)).unwrap();
        if let Ok(value) = http::HeaderValue::from_bytes(&header) {
            request.headers_mut().insert("monite-signature", value);
        }
        let status = runtime.block_on(receiver.handle(request)).status();
        prop_assert!(status.is_client_error(), "{status}");
    }
}

#[test]
fn timestamps_at_the_edges_of_u64_are_handled() {
    let v = verifier();
    for t in [
        "0",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
    ] {
        let header = format!("t={t},v1={}", "a".repeat(64));
        let result = v.verify_at(&[("monite-signature", header.as_str())], b"{}", NOW);
        assert!(result.is_err(), "{t}");
    }
}
