//! The whole receiver: any method, headers and body through `Receiver::handle`. It never
//! panics out of `handle`, answers exactly the status its documentation gives for the
//! request (always one of 200, 400, 401, 405, 409, 413, 500, 503), and its body is one of
//! its fixed public messages, never anything taken from the request.
//!
//! Input: a flags byte, a method byte, then `\n`-separated lines: the `Monite-Signature`
//! value, the `Content-Length` value, one more header (a byte choosing its name from a
//! short list, then its value), then the body.
//! Flags: 1 = sign the body properly now, 2 = signed 400 s ago instead, 4 = send no
//! `Monite-Signature`, 8 = send the `Content-Length` line, 16 = the receiver without
//! fallback nor idempotency, 32 = deliver twice.

#![no_main]

use std::cell::Cell;
use std::pin::pin;
use std::sync::Once;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use monite_webhooks::{
    Dispatcher, ErrorKind, Event, EventType, ObjectType, Receiver, Secret, Unhandled, Verifier,
};
use monite_webhooks::signature::SignatureHeader;
use monite_webhooks::testing::sign;

const SECRET: &str = "whsec_IpHYzcMQQR5+wnN4pmHJNRh8B+TVY26b";
const BODY_LIMIT: usize = 2048;
const DOCUMENTED: [u16; 8] = [200, 400, 401, 405, 409, 413, 500, 503];
const EXTRA_HEADERS: [&str; 5] = [
    "content-type",
    "monite-signature",
    "content-length",
    "transfer-encoding",
    "x-forwarded-for",
];
const METHODS: [&str; 9] = [
    "POST", "GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "post", "PROPFIND",
];

thread_local! {
    /// Set by the handler that panics on purpose, so the panic hook lets that one through.
    static PANICKING_ON_PURPOSE: Cell<bool> = const { Cell::new(false) };
}

fuzz_target!(|data: &[u8]| {
    let [flags, method, rest @ ..] = data else {
        return;
    };
    allow_the_handler_panic();
    let mut lines = rest.splitn(4, |&b| b == b'\n');
    let signature = lines.next().unwrap_or_default();
    let content_length = lines.next().unwrap_or_default();
    let extra = lines.next().unwrap_or_default();
    let body = Bytes::copy_from_slice(lines.next().unwrap_or_default());

    let secret = Secret::new(SECRET).expect("valid secret");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let signature = if flags & 1 != 0 {
        sign(&secret, now, &body).into_bytes()
    } else if flags & 2 != 0 {
        sign(&secret, now - 400, &body).into_bytes()
    } else {
        signature.to_vec()
    };

    let mut request = Request::new(body.clone());
    *request.method_mut() =
        Method::from_bytes(METHODS[usize::from(*method) % METHODS.len()].as_bytes())
            .expect("valid method");
    *request.uri_mut() = http::Uri::from_static("/webhooks/monite");
    let headers = request.headers_mut();
    if flags & 4 == 0
        && let Ok(value) = HeaderValue::from_bytes(&signature)
    {
        headers.insert("monite-signature", value);
    }
    if flags & 8 != 0
        && let Ok(value) = HeaderValue::from_bytes(content_length)
    {
        headers.insert(http::header::CONTENT_LENGTH, value);
    }
    // The name from a short list: parsing arbitrary names would only fuzz `http`.
    if let [name, value @ ..] = extra
        && let Ok(value) = HeaderValue::from_bytes(value)
    {
        headers.append(
            EXTRA_HEADERS[usize::from(*name) % EXTRA_HEADERS.len()],
            value,
        );
    }

    let bare = flags & 16 != 0;
    let receiver = receiver(secret, bare);
    // An extra header appends after ours, so ours stays the one the receiver reads.
    let signed_now = flags & 1 != 0 && flags & 4 == 0;
    let first = expected(&request, bare, signed_now, None);
    let twice = flags & 32 != 0;
    let copy = twice.then(|| clone_request(&request));
    check(&receiver, request, first);
    if let Some(request) = copy {
        let second = expected(&request, bare, signed_now, Some(first));
        check(&receiver, request, second);
    }
});

/// The status and body the documentation gives for `request`, whose first
/// `Monite-Signature` the harness made now if `signed_now`, delivered after a delivery of
/// the same request that was answered `earlier`.
fn expected(
    request: &Request<Bytes>,
    bare: bool,
    signed_now: bool,
    earlier: Option<(StatusCode, &'static str)>,
) -> (StatusCode, &'static str) {
    let error = |kind: ErrorKind| (kind.status(), kind.public_message());
    let headers = request.headers();
    let declared = headers.get(http::header::CONTENT_LENGTH).and_then(|v| {
        std::str::from_utf8(v.as_bytes())
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    });
    if request.method() != Method::POST {
        return error(ErrorKind::MethodNotAllowed);
    }
    if declared.is_some_and(|length| length > BODY_LIMIT as u64)
        || request.body().len() > BODY_LIMIT
    {
        return error(ErrorKind::BodyTooLarge);
    }
    let Some(signature) = headers.get("monite-signature") else {
        return error(ErrorKind::MissingSignature);
    };
    if SignatureHeader::parse(signature.as_bytes()).is_err() {
        return error(ErrorKind::MalformedSignature);
    }
    // Only the harness signs for now; any other header is stale or does not match.
    if !signed_now {
        return error(ErrorKind::SignatureMismatch);
    }
    let Ok(event) = Event::parse(request.body().clone()) else {
        return error(ErrorKind::NotAnEnvelope);
    };
    let outcome = match (event.object_type(), event.event_type()) {
        (ObjectType::Counterpart, EventType::Created) => (StatusCode::OK, "ok"),
        (ObjectType::Payable | ObjectType::Receivable, _) => error(ErrorKind::Handler),
        _ if bare => (StatusCode::OK, "ok (no handler)"),
        _ => (StatusCode::OK, "ok"),
    };
    // An id-less (2022) envelope names no event, so it is not deduplicated by default:
    // each delivery runs.
    match earlier {
        Some((StatusCode::OK, _)) if !bare && event.id().is_some() => {
            (StatusCode::OK, "ok (already handled)")
        }
        _ => outcome,
    }
}

fn check(receiver: &Receiver, request: Request<Bytes>, (status, text): (StatusCode, &str)) {
    let input = format!("{request:?}");
    let response = block_on(receiver.handle(request));
    assert!(
        DOCUMENTED.contains(&response.status().as_u16()),
        "undocumented status {}",
        response.status()
    );
    assert_eq!(
        (response.status(), &response.body()[..]),
        (status, text.as_bytes()),
        "for {input}"
    );
    assert_eq!(
        response.headers().get(http::header::ALLOW).is_some(),
        status == StatusCode::METHOD_NOT_ALLOWED
    );
}

fn receiver(secret: Secret, bare: bool) -> Receiver {
    let dispatcher = Dispatcher::builder()
        .on(
            ObjectType::Counterpart,
            EventType::Created,
            |_: Event| async {},
        )
        .on_object(ObjectType::Payable, |_: Event| async {
            Err::<(), _>(std::io::Error::other("the handler failed"))
        })
        .on_object(ObjectType::Receivable, |_: Event| async {
            PANICKING_ON_PURPOSE.set(true);
            panic!("the handler panicked");
            #[allow(unreachable_code)]
            ()
        });
    let dispatcher = if bare {
        dispatcher
    } else {
        dispatcher.fallback(|_: Event, _: Unhandled| async {})
    };
    let builder = Receiver::builder(
        Verifier::new(secret).with_max_body_bytes(BODY_LIMIT),
        dispatcher.build(),
    );
    if bare {
        builder.without_idempotency().build()
    } else {
        builder.build()
    }
}

/// Polls a future to completion on this thread. Nothing in the core waits on I/O, so a
/// future still pending after many polls is a bug.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
    panic!("the receiver's future never finished");
}

fn clone_request(request: &Request<Bytes>) -> Request<Bytes> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// libFuzzer's panic hook aborts on every panic, even one the receiver catches; let the
/// deliberate one through to the receiver's `catch_unwind`.
fn allow_the_handler_panic() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !PANICKING_ON_PURPOSE.replace(false) {
                fuzzer_hook(info);
            }
        }));
    });
}
