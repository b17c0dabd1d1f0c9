//! Why a signature does not verify: the header's shape, the timestamp's skew, which secret
//! and key convention would match, and whether the body was re-serialised or trimmed. Used
//! by `verify` and by `listen` for each rejection. Only labels of secrets are ever reported.

use monite_webhooks::signature::{KeyConvention, SignatureHeader};
use monite_webhooks::testing::sign;
use serde::Serialize;

use crate::json_format::{self, Layout};
use crate::secrets::NamedSecret;

/// What the diagnosis found.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Diagnosis {
    /// What is wrong with the header's shape, if anything.
    pub(crate) header_problem: Option<String>,
    /// The signed timestamp, if the header has one.
    pub(crate) timestamp: Option<u64>,
    /// How many `v1` values are 64 hex digits.
    pub(crate) well_formed_signatures: usize,
    /// `now - t`: positive when signed in the past.
    pub(crate) skew_seconds: Option<i64>,
    /// The tolerance the skew was judged against.
    pub(crate) tolerance_seconds: u64,
    /// Every (secret, convention, body form) that reproduces a `v1` value.
    pub(crate) matches: Vec<Match>,
    /// Plain sentences, most important first.
    pub(crate) findings: Vec<String>,
}

/// One way the signature can be reproduced.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Match {
    /// The secret's label.
    pub(crate) secret: String,
    /// `raw` or `whsec_base64`.
    pub(crate) convention: String,
    /// `as given`, or the re-encoding of the body that matched.
    pub(crate) body: String,
    /// The subscription the secret belongs to, if it is keyed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) subscription_id: Option<String>,
}

/// Explains the signature `header` over `body`, for `secrets` read with `convention`,
/// judged at `now`.
pub(crate) fn diagnose(
    header: &[u8],
    body: &[u8],
    secrets: &[NamedSecret],
    convention: KeyConvention,
    now: u64,
    tolerance: u64,
) -> Diagnosis {
    let mut diagnosis = Diagnosis {
        header_problem: None,
        timestamp: None,
        well_formed_signatures: 0,
        skew_seconds: None,
        tolerance_seconds: tolerance,
        matches: Vec::new(),
        findings: Vec::new(),
    };
    let parsed = match SignatureHeader::parse(header) {
        Ok(parsed) => parsed,
        Err(e) => {
            let problem = if header.is_empty() {
                "the Monite-Signature header is missing or empty".to_owned()
            } else {
                e.to_string()
            };
            diagnosis.findings.push(format!(
                "{problem}; Monite sends `t=<unix seconds>,v1=<64 hex digits>`"
            ));
            diagnosis.header_problem = Some(problem);
            return diagnosis;
        }
    };
    let tags: Vec<[u8; 32]> = parsed.signatures().collect();
    diagnosis.timestamp = Some(parsed.timestamp());
    diagnosis.well_formed_signatures = tags.len();
    if tags.is_empty() {
        let problem = "no `v1` value is 64 hex digits, so none can match".to_owned();
        diagnosis.findings.push(problem.clone());
        diagnosis.header_problem = Some(problem);
    }

    let skew = i128::from(now) - i128::from(parsed.timestamp());
    let skew = i64::try_from(skew).unwrap_or(if skew < 0 { i64::MIN } else { i64::MAX });
    diagnosis.skew_seconds = Some(skew);
    if skew.unsigned_abs() > tolerance {
        let (how, hint) = if skew > 0 {
            (
                "ago",
                "a delivery replayed or queued too long, or a slow clock here",
            )
        } else {
            (
                "in the future",
                "a clock running fast at the sender, or slow here",
            )
        };
        diagnosis.findings.push(format!(
            "the timestamp t={} is {} s {how}, past the {tolerance} s tolerance: {hint}",
            parsed.timestamp(),
            skew.unsigned_abs()
        ));
    }

    let forms = body_forms(body);
    for secret in secrets {
        for (reading, key) in secret.readings() {
            for (form, bytes) in &forms {
                let signed = sign(&key, parsed.timestamp(), bytes);
                let tag = SignatureHeader::parse(signed.as_bytes())
                    .ok()
                    .and_then(|h| h.signatures().next());
                if tag.is_some_and(|tag| tags.contains(&tag)) {
                    diagnosis.matches.push(Match {
                        secret: secret.label.clone(),
                        convention: reading.as_str().to_owned(),
                        body: form.clone(),
                        subscription_id: secret.subscription_id.clone(),
                    });
                }
            }
        }
    }
    let exact = diagnosis
        .matches
        .iter()
        .find(|m| m.convention == convention.as_str() && m.body == AS_GIVEN);
    let explanation = explain_matches(&diagnosis, exact, convention, secrets.len());
    let unrouted = exact.and_then(|m| routing(m, named_subscription(body).as_deref(), secrets));
    diagnosis.findings.extend(explanation);
    diagnosis.findings.extend(unrouted);
    diagnosis
}

/// The `webhook_subscription_id` the body names, as a keyring receiver reads it.
fn named_subscription(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value["webhook_subscription_id"].as_str().map(str::to_owned)
}

/// Why a matching secret is still not tried by a receiver that keys secrets by
/// subscription.
fn routing(m: &Match, named: Option<&str>, secrets: &[NamedSecret]) -> Option<String> {
    let keyed = m.subscription_id.as_deref()?;
    let unkeyed = secrets.iter().any(|s| s.subscription_id.is_none());
    match named {
        Some(named) if named != keyed => Some(format!(
            "but the body names subscription {named}, and a receiver keyed by subscription \
             checks that subscription's secrets only: are the ids in the keyring swapped, or \
             was the delivery meant for another endpoint?"
        )),
        None if !unkeyed => Some(
            "but the body names no subscription (a 2022 envelope?), and a receiver holding \
             only per-subscription secrets refuses it: add an unkeyed secret (--secret, \
             MONITE_WEBHOOK_SECRET, or the keyring file's `unkeyed`)"
                .to_owned(),
        ),
        _ => None,
    }
}

/// The finding about `diagnosis.matches`, given the `exact` one (the body as given, under
/// `convention`), if any.
fn explain_matches(
    diagnosis: &Diagnosis,
    exact: Option<&Match>,
    convention: KeyConvention,
    secrets: usize,
) -> Option<String> {
    if let Some(m) = exact {
        return Some(format!(
            "the signature matches {} (`{}` key)",
            m.secret, m.convention
        ));
    }
    if diagnosis.well_formed_signatures == 0 {
        return None;
    }
    if let Some(m) = diagnosis.matches.iter().find(|m| m.body == AS_GIVEN) {
        return Some(format!(
            "the signature matches {} only under the `{}` key convention, not `{}`: pass \
             --convention {} (in code, Secret::{})",
            m.secret,
            m.convention,
            convention.as_str(),
            m.convention.replace('_', "-"),
            if m.convention == "raw" {
                "new"
            } else {
                "whsec_base64"
            },
        ));
    }
    if let Some(m) = diagnosis.matches.first() {
        let fix = if m.body == WITHOUT_TRAILING_WHITESPACE {
            "the body given ends with whitespace the sender did not sign (a file saved by an \
             editor, or `echo` adding a newline?)"
                .to_owned()
        } else {
            format!(
                "the body looks re-serialised: the signature matches its {} re-encoding, not \
                 the bytes given. Verify the raw body exactly as received, before any JSON \
                 parsing",
                m.body
            )
        };
        return Some(format!(
            "{fix} (matched {} with the `{}` key)",
            m.secret, m.convention
        ));
    }
    Some(format!(
        "no signature matches any of {secrets} secret(s) under either key convention, with \
         the body as given or re-encoded: the secret is probably another subscription's or \
         environment's (sandbox and production differ), or was regenerated, or the body was \
         changed"
    ))
}

const AS_GIVEN: &str = "as given";
const WITHOUT_TRAILING_WHITESPACE: &str = "without trailing whitespace";

/// The body as given, then the forms a sender might have signed instead.
fn body_forms(body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut forms = vec![(AS_GIVEN.to_owned(), body.to_vec())];
    let trimmed = body.trim_ascii_end();
    if trimmed.len() != body.len() {
        forms.push((WITHOUT_TRAILING_WHITESPACE.to_owned(), trimmed.to_vec()));
    }
    let layouts = [
        Layout::Compact,
        Layout::Spaced,
        Layout::Indented(2),
        Layout::Indented(4),
    ];
    let mut encodings: Vec<(String, Vec<u8>)> = layouts
        .into_iter()
        .filter_map(|layout| Some((layout.describe(), json_format::reformat(body, layout)?)))
        .collect();
    if let Some(bytes) = json_format::sorted_keys(body) {
        encodings.push(("compact, keys sorted,".to_owned(), bytes));
    }
    // Each also with the newline many serialisers and files end with.
    for (name, bytes) in encodings {
        let mut with_newline = bytes.clone();
        with_newline.push(b'\n');
        forms.push((name.clone(), bytes));
        forms.push((format!("{name} + newline"), with_newline));
    }
    // Identical forms would report the same match twice.
    let mut seen = Vec::new();
    forms.retain(|(_, bytes)| {
        let fresh = !seen.contains(bytes);
        if fresh {
            seen.push(bytes.clone());
        }
        fresh
    });
    forms
}

#[cfg(test)]
mod tests {
    use super::*;
    use monite_webhooks::Secret;

    const NOW: u64 = 1_714_557_600;
    const BODY: &[u8] =
        br#"{"id": "e1", "action": "counterpart.created", "object_type": "counterpart"}"#;

    fn secrets() -> Vec<NamedSecret> {
        vec![
            NamedSecret::new("--secret #1", "whsec_b3RoZXI="),
            NamedSecret::new("--secret #2", "whsec_aGVsbG8="),
        ]
    }

    fn run(header: &str, body: &[u8]) -> Diagnosis {
        diagnose(
            header.as_bytes(),
            body,
            &secrets(),
            KeyConvention::Raw,
            NOW,
            300,
        )
    }

    #[test]
    fn names_the_secret_that_matches() {
        let header = sign(&Secret::new("whsec_aGVsbG8=").unwrap(), NOW - 5, BODY);
        let d = run(&header, BODY);
        assert_eq!(d.skew_seconds, Some(5));
        assert_eq!(d.matches[0].secret, "--secret #2");
        assert!(
            d.findings[0].contains("matches --secret #2"),
            "{:?}",
            d.findings
        );
    }

    #[test]
    fn tells_the_other_key_convention() {
        let header = sign(&Secret::whsec_base64("whsec_aGVsbG8=").unwrap(), NOW, BODY);
        let d = run(&header, BODY);
        assert!(
            d.findings[0].contains("--convention whsec-base64"),
            "{:?}",
            d.findings
        );
    }

    #[test]
    fn tells_a_re_serialised_body() {
        let compact = json_format::reformat(BODY, Layout::Compact).unwrap();
        let header = sign(&Secret::new("whsec_b3RoZXI=").unwrap(), NOW, &compact);
        let pretty = json_format::reformat(BODY, Layout::Indented(2)).unwrap();
        let d = run(&header, &pretty);
        assert!(d.findings[0].contains("re-serialised"), "{:?}", d.findings);
        assert!(d.findings[0].contains("compact"), "{:?}", d.findings);

        let mut with_newline = BODY.to_vec();
        with_newline.push(b'\n');
        let header = sign(&Secret::new("whsec_b3RoZXI=").unwrap(), NOW, BODY);
        let d = run(&header, &with_newline);
        assert!(d.findings[0].contains("whitespace"), "{:?}", d.findings);
    }

    #[test]
    fn tells_skew_and_shape() {
        let header = sign(&Secret::new("whsec_b3RoZXI=").unwrap(), NOW - 900, BODY);
        let d = run(&header, BODY);
        assert!(d.findings[0].contains("900 s ago"), "{:?}", d.findings);
        let d = run("v1=abc", BODY);
        assert!(d.header_problem.unwrap().contains("no `t`"));
        let d = run("t=1,v1=abc", BODY);
        assert_eq!(d.well_formed_signatures, 0);
    }

    #[test]
    fn no_match_says_so_and_never_prints_a_secret() {
        let header = sign(&Secret::new("whsec_unknown").unwrap(), NOW, BODY);
        let d = run(&header, BODY);
        let printed = format!("{d:?} {}", serde_json::to_string(&d).unwrap());
        assert!(
            printed.contains("no signature matches any of 2 secret(s)"),
            "{printed}"
        );
        assert!(
            !printed.contains("aGVsbG8") && !printed.contains("b3RoZXI"),
            "{printed}"
        );
    }
}
