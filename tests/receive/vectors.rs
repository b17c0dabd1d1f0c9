//! Known-answer tests from signature vectors made with an independent implementation, and
//! the negative checklist every webhook verifier should pass.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use base64::Engine as _;
use monite_webhooks::signature::KeyConvention;
use monite_webhooks::testing::{sign, signed_request_at};
use monite_webhooks::{ErrorKind, Secret, Verifier};
use serde::Deserialize;
use std::time::Duration;

#[derive(Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    secret: String,
    key_format: String,
    header: String,
    body_base64: String,
    now: u64,
    tolerance_secs: u64,
    expect: String,
}

const NOW: u64 = 1_713_773_729;

fn vectors() -> Vec<Vector> {
    serde_json::from_str::<Vectors>(include_str!("../data/monite-signature.json"))
        .unwrap()
        .vectors
}

#[test]
fn every_vector_gets_its_expected_verdict() {
    let vectors = vectors();
    assert_eq!(
        vectors.len(),
        30,
        "the vector file changed; review the new cases"
    );
    for v in vectors {
        let convention = match v.key_format.as_str() {
            "raw" => KeyConvention::Raw,
            "whsec_base64" => KeyConvention::WhsecBase64,
            other => panic!("{}: unknown key format {other}", v.name),
        };
        let secret = Secret::with_convention(&v.secret, convention).unwrap();
        let verifier = Verifier::new(secret).with_tolerance(Duration::from_secs(v.tolerance_secs));
        let body = base64::engine::general_purpose::STANDARD
            .decode(&v.body_base64)
            .unwrap();
        let headers = [("Monite-Signature", v.header.as_str())];
        let got = verifier
            .verify_at(&headers, &body, v.now)
            .map(|_| ())
            .map_err(|e| e.kind());
        let expected = match v.expect.as_str() {
            "valid" => Ok(()),
            "invalid_signature" => Err(ErrorKind::SignatureMismatch),
            "stale" => Err(ErrorKind::TimestampTooOld),
            "future" => Err(ErrorKind::TimestampInFuture),
            "malformed" => Err(ErrorKind::MalformedSignature),
            other => panic!("{}: unknown verdict {other}", v.name),
        };
        assert_eq!(got, expected, "vector {}", v.name);
    }
}

#[test]
fn signing_reproduces_every_valid_vector() {
    for v in vectors().into_iter().filter(|v| v.expect == "valid") {
        let convention = if v.key_format == "raw" {
            KeyConvention::Raw
        } else {
            KeyConvention::WhsecBase64
        };
        let secret = Secret::with_convention(&v.secret, convention).unwrap();
        let body = base64::engine::general_purpose::STANDARD
            .decode(&v.body_base64)
            .unwrap();
        let canonical = v.header.trim().to_lowercase();
        let t = canonical
            .split(',')
            .find_map(|e| e.trim().strip_prefix("t="))
            .unwrap();
        let ours = sign(&secret, t.parse().unwrap(), &body);
        let tag = ours.split_once(",v1=").unwrap().1;
        assert!(
            canonical.contains(tag),
            "vector {}: {ours} vs {}",
            v.name,
            v.header
        );
    }
}

fn verifier() -> (Secret, Verifier) {
    let secret = Secret::new("whsec_IpHYzcMQQR5+wnN4pmHJNRh8B+TVY26b").unwrap();
    (secret.clone(), Verifier::new(secret))
}

fn verdict(verifier: &Verifier, header: &str, body: &[u8]) -> Result<(), ErrorKind> {
    verifier
        .verify_at(&[("Monite-Signature", header)], body, NOW)
        .map(|_| ())
        .map_err(|e| e.kind())
}

#[test]
fn negative_checklist() {
    let (secret, verifier) = verifier();
    let body = br#"{"id":"1","object_type":"tag","action":"tag.created"}"#;
    let good = sign(&secret, NOW, body);
    let tag = good.split_once(",v1=").unwrap().1;

    assert_eq!(verdict(&verifier, &good, body), Ok(()));
    // Partial and prefixed signatures.
    assert_eq!(
        verdict(&verifier, &format!("t={NOW},v1="), body),
        Err(ErrorKind::SignatureMismatch)
    );
    assert_eq!(
        verdict(&verifier, &format!("t={NOW},v1={}", &tag[..10]), body),
        Err(ErrorKind::SignatureMismatch)
    );
    assert_eq!(
        verdict(&verifier, &format!("t={NOW},v1={tag}00"), body),
        Err(ErrorKind::SignatureMismatch)
    );
    // Several signatures, none valid.
    let other = sign(&Secret::new("whsec_other").unwrap(), NOW, body);
    let other_tag = other.split_once(",v1=").unwrap().1;
    assert_eq!(
        verdict(
            &verifier,
            &format!("t={NOW},v1={other_tag},v1={other_tag}"),
            body
        ),
        Err(ErrorKind::SignatureMismatch)
    );
    // A tag for this body under a different timestamp does not carry over.
    assert_eq!(
        verdict(&verifier, &format!("t={},v1={tag}", NOW - 1), body),
        Err(ErrorKind::SignatureMismatch)
    );
    // The body must be byte-identical: re-serialised JSON fails.
    let reserialised =
        serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(body).unwrap()).unwrap();
    assert_ne!(reserialised, body);
    assert_eq!(
        verdict(&verifier, &good, &reserialised),
        Err(ErrorKind::SignatureMismatch)
    );
    // Missing header.
    let none: [(&str, &str); 0] = [];
    assert_eq!(
        verifier.verify_at(&none, body, NOW).unwrap_err().kind(),
        ErrorKind::MissingSignature
    );
    // A header value that is not even UTF-8.
    let bytes: [(&str, &[u8]); 1] = [("monite-signature", b"t=\xff,v1=\xfe")];
    assert_eq!(
        verifier.verify_at(&bytes, body, NOW).unwrap_err().kind(),
        ErrorKind::MalformedSignature
    );
}

#[test]
fn a_signed_request_verifies_through_a_real_header_map() {
    let (secret, verifier) = verifier();
    let request = signed_request_at(&secret, "{}", NOW);
    // http::HeaderMap stores names lower-cased; the lookup ignores case either way.
    assert!(request.headers().contains_key("Monite-Signature"));
    let verified = verifier
        .verify_at(request.headers(), request.body(), NOW)
        .unwrap();
    assert_eq!(verified.timestamp(), NOW);
}

#[test]
fn rejections_never_echo_secrets_or_expected_signatures() {
    let (secret, verifier) = verifier();
    let body = b"{}";
    let expected = sign(&secret, NOW, body);
    let expected_tag = expected.split_once(",v1=").unwrap().1;
    let wrong = format!("t={NOW},v1={}", "0".repeat(64));
    let err = verifier
        .verify_at(&[("Monite-Signature", wrong.as_str())], body, NOW)
        .unwrap_err();
    for text in [
        err.to_string(),
        format!("{err:?}"),
        err.public_message().to_owned(),
    ] {
        assert!(!text.contains(expected_tag), "{text}");
        assert!(!text.contains("IpHYzcMQQR5"), "{text}");
    }
}
