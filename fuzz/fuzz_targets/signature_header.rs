//! `Monite-Signature`: the verifier's fast path, the full parser and a plain reference
//! parser written from the protocol agree on every header, and `Verifier::verify_at`
//! answers what an independent HMAC says, by the fast path and by the full parser alike.
//!
//! Input: a flags byte, a clock-skew byte, then the header up to the first `\n`, then the
//! body. Flags: 1 = put the right tag in place of the first `v1` value, 2 = in upper case,
//! 4 = set the clock near the header's own `t`, 8 = sign with the base64-keyed secret,
//! 16 = send no header at all.

#![no_main]

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use monite_webhooks::{ErrorKind, Secret, Verifier, fuzzing};
use monite_webhooks::signature::SignatureHeader;
use sha2::Sha256;

/// The secret of tests/data/monite-signature.json, read both ways: as its bytes (what
/// the vectors use) and as base64 of what follows `whsec_`.
const SECRET: &str = "whsec_IpHYzcMQQR5+wnN4pmHJNRh8B+TVY26b";
/// The vectors' clock.
const NOW: u64 = 1_713_773_729;
const TOLERANCE: u64 = 300;
const BODY_LIMIT: usize = 512;

fuzz_target!(|data: &[u8]| {
    let [flags, skew, rest @ ..] = data else {
        return;
    };
    let (header, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let keys = [
        SECRET.as_bytes().to_vec(),
        base64::engine::general_purpose::STANDARD
            .decode(&SECRET["whsec_".len()..])
            .expect("the secret is base64 after whsec_"),
    ];

    let mut header = header.to_vec();
    if flags & 1 != 0
        && let Some(reference) = Reference::parse(&header)
    {
        let key = &keys[usize::from(flags & 8 != 0)];
        let mut tag = hex(&hmac(key, reference.text, body));
        if flags & 2 != 0 {
            tag.make_ascii_uppercase();
        }
        let (start, end) = reference.v1[0];
        header.splice(start..end, tag.into_bytes());
    }
    let header = &header[..];

    parsers_agree(header);

    let reference = Reference::parse(header);
    let base = match (flags & 4 != 0, &reference) {
        (true, Some(reference)) => reference.timestamp,
        _ => NOW,
    };
    let now = base.saturating_add_signed(i64::from(*skew as i8) * 3);
    let verifier = Verifier::with_secrets([
        Secret::new(SECRET).expect("valid secret"),
        Secret::whsec_base64(SECRET).expect("valid secret"),
    ])
    .expect("two secrets")
    .with_max_body_bytes(BODY_LIMIT);

    let expected = expected(&keys, header, flags & 16 == 0, body, now);
    // A leading space keeps the header's meaning and sends it down the full parser.
    let mut spaced = b" ".to_vec();
    spaced.extend_from_slice(header);
    for raw in [header, &spaced[..]] {
        let headers: &[(&str, &[u8])] = if flags & 16 == 0 {
            &[("Monite-Signature", raw)]
        } else {
            &[]
        };
        let got = match verifier.verify_at(headers, body, now) {
            Ok(verified) => Ok((verified.timestamp(), verified.secret_index())),
            Err(error) => {
                let message = error.to_string();
                assert!(!message.contains(SECRET), "an error names the secret");
                Err(error.kind())
            }
        };
        assert_eq!(
            got,
            expected,
            "verify_at({:?}, {} body bytes, now {now})",
            String::from_utf8_lossy(raw),
            body.len()
        );
    }
});

/// The fast path, the full parser and the reference read a header the same way.
fn parsers_agree(raw: &[u8]) {
    let full = SignatureHeader::parse(raw);
    let reference = Reference::parse(raw);
    match (&full, &reference) {
        (Ok(full), Some(reference)) => {
            assert_eq!(full.timestamp(), reference.timestamp);
            assert_eq!(fuzzing::timestamp_text(full), reference.text);
            assert_eq!(
                full.signatures().collect::<Vec<_>>(),
                reference.signatures(raw)
            );
        }
        (Err(error), None) => assert_eq!(error.kind(), ErrorKind::MalformedSignature),
        _ => panic!(
            "full parser {:?}, reference {:?} for {:?}",
            full.as_ref().map(SignatureHeader::timestamp),
            reference.map(|r| r.timestamp),
            String::from_utf8_lossy(raw)
        ),
    }
    match fuzzing::parse_usual(raw) {
        Some((timestamp, text, tag)) => {
            let full = full.expect("the full parser reads what the fast path reads");
            assert_eq!(full.timestamp(), timestamp);
            assert_eq!(fuzzing::timestamp_text(&full), text);
            assert_eq!(full.signatures().collect::<Vec<_>>(), [tag]);
        }
        None => assert!(
            !is_usual(raw),
            "the fast path refused Monite's own shape: {:?}",
            String::from_utf8_lossy(raw)
        ),
    }
}

/// `t=<digits fitting u64>,v1=<64 hex digits>`, nothing else: what the fast path is for.
fn is_usual(raw: &[u8]) -> bool {
    let Some(rest) = raw.strip_prefix(b"t=") else {
        return false;
    };
    let Some(comma) = rest.iter().position(|&b| b == b',') else {
        return false;
    };
    let (digits, tail) = rest.split_at(comma);
    timestamp(digits).is_some() && tail.strip_prefix(b",v1=").and_then(unhex).is_some()
}

/// The header read as the protocol describes it, plainly: comma-separated `key=value`
/// elements, whitespace around keys and values ignored, exactly one `t`, one or more `v1`.
#[derive(Debug)]
struct Reference<'a> {
    timestamp: u64,
    text: &'a [u8],
    /// Where each `v1` value is in the header.
    v1: Vec<(usize, usize)>,
}

impl<'a> Reference<'a> {
    fn parse(raw: &'a [u8]) -> Option<Self> {
        let mut t = None;
        let mut v1 = Vec::new();
        let mut start = 0;
        for element in raw.split(|&b| b == b',') {
            let end = start + element.len();
            if let Some(eq) = element.iter().position(|&b| b == b'=') {
                let key = trim(raw, start, start + eq);
                let value = trim(raw, start + eq + 1, end);
                match &raw[key.0..key.1] {
                    b"t" if t.is_some() => return None,
                    b"t" => t = Some(value),
                    b"v1" => v1.push(value),
                    _ => {}
                }
            }
            start = end + 1;
        }
        let (start, end) = t?;
        let text = &raw[start..end];
        if v1.is_empty() {
            return None;
        }
        Some(Self {
            timestamp: timestamp(text)?,
            text,
            v1,
        })
    }

    fn signatures(&self, raw: &[u8]) -> Vec<[u8; 32]> {
        self.v1
            .iter()
            .filter_map(|&(start, end)| unhex(&raw[start..end]))
            .collect()
    }
}

fn trim(raw: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && raw[start].is_ascii_whitespace() {
        start += 1;
    }
    while end > start && raw[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    (start, end)
}

fn timestamp(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn unhex(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        // `from_str_radix` takes a sign; a tag does not.
        if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], timestamp: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(timestamp);
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// What verification must answer, in the order the verifier documents its checks.
fn expected(
    keys: &[Vec<u8>],
    raw: &[u8],
    sent: bool,
    body: &[u8],
    now: u64,
) -> Result<(u64, usize), ErrorKind> {
    if body.len() > BODY_LIMIT {
        return Err(ErrorKind::BodyTooLarge);
    }
    if !sent {
        return Err(ErrorKind::MissingSignature);
    }
    let reference = Reference::parse(raw).ok_or(ErrorKind::MalformedSignature)?;
    if reference.timestamp.abs_diff(now) > TOLERANCE {
        return Err(if reference.timestamp < now {
            ErrorKind::TimestampTooOld
        } else {
            ErrorKind::TimestampInFuture
        });
    }
    let tags = reference.signatures(raw);
    keys.iter()
        .position(|key| tags.contains(&hmac(key, reference.text, body)))
        .map(|index| (reference.timestamp, index))
        .ok_or(ErrorKind::SignatureMismatch)
}
