//! The keyring file and `MONITE_WEBHOOK_SECRETS` pairs: errors that never show a secret,
//! key conventions that survive a save and a load, and saves that a crash cannot block.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use std::error::Error as _;
use std::path::{Path, PathBuf};

use monite_webhooks::signature::KeyConvention;
use monite_webhooks::testing::sign;
use monite_webhooks::{Error, ErrorKind, Keyring, Secret, Verifier};

/// A fresh, empty directory of this test's own, and the keyring file's path in it.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("monite-keyring-file-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("keyring.json")
}

/// Everything an error prints: its `Display`, its `Debug`, and both of every source's.
fn everything_printed(error: &Error) -> String {
    let mut printed = format!("{error}\n{error:?}\n{error:#?}");
    let mut source = error.source();
    while let Some(cause) = source {
        printed.push_str(&format!("\n{cause}\n{cause:?}"));
        source = cause.source();
    }
    printed
}

fn assert_shows_no_secret(error: &Error, secret: &str, input: &str) {
    let printed = everything_printed(error);
    assert!(
        !printed.contains(secret),
        "{secret} leaked, from {input}:\n{printed}"
    );
}

// F3: no error path prints a secret.

#[test]
fn a_malformed_keyring_file_never_shows_its_secret() {
    let path = scratch("leak");
    for (secret, text) in [
        // A string where a list belongs.
        (
            "whsec_LEAKED_1",
            r#"{"monite_webhooks_keyring":1,"subscriptions":[{"id":"s","secrets":"whsec_LEAKED_1"}]}"#,
        ),
        (
            "whsec_LEAKED_2",
            r#"{"monite_webhooks_keyring":1,"unkeyed":"whsec_LEAKED_2"}"#,
        ),
        // A secret pasted into `convention` (an unknown variant).
        (
            "whsec_LEAKED_3",
            r#"{"monite_webhooks_keyring":1,"subscriptions":[{"id":"s","secrets":["whsec_x"],"convention":"whsec_LEAKED_3"}]}"#,
        ),
        // Truncated after a secret, and inside one.
        (
            "whsec_LEAKED_4",
            r#"{"monite_webhooks_keyring":1,"subscriptions":[{"id":"s","secrets":["whsec_LEAKED_4""#,
        ),
        (
            "whsec_LEAKED_4",
            r#"{"monite_webhooks_keyring":1,"subscriptions":[{"id":"s","secrets":["whsec_LEAKED_4"#,
        ),
        // A secret pasted as a field name (an unknown field), as the version, as a
        // subscription, after a stray comma.
        (
            "whsec_LEAKED_5",
            r#"{"monite_webhooks_keyring":1,"whsec_LEAKED_5":[]}"#,
        ),
        (
            "whsec_LEAKED_6",
            r#"{"monite_webhooks_keyring":"whsec_LEAKED_6"}"#,
        ),
        (
            "whsec_LEAKED_7",
            r#"{"monite_webhooks_keyring":1,"subscriptions":["whsec_LEAKED_7"]}"#,
        ),
        (
            "whsec_LEAKED_8",
            r#"{"monite_webhooks_keyring":1,"unkeyed":["whsec_LEAKED_8",]}"#,
        ),
        // A secret pasted as the subscription's id: refused, and not named.
        (
            "whsec_LEAKED_9",
            r#"{"monite_webhooks_keyring":1,"subscriptions":[{"id":"whsec_LEAKED_9","secrets":[]}]}"#,
        ),
        (
            "whsec_LEAKED_9",
            r#"{"monite_webhooks_keyring":1,"subscriptions":[{"id":"whsec_LEAKED_9","secrets":["whsec_y"]}]}"#,
        ),
        // Secrets the key convention refuses.
        (
            "whsec_LEAKED_10",
            r#"{"monite_webhooks_keyring":1,"subscriptions":[{"id":"s","secrets":[" whsec_LEAKED_10"]}]}"#,
        ),
        (
            "LEAKED@11",
            r#"{"monite_webhooks_keyring":1,"subscriptions":[{"id":"s","secrets":["whsec_LEAKED@11"],"convention":"whsec_base64"}]}"#,
        ),
        // A secret entry of the wrong shape.
        (
            "whsec_LEAKED_12",
            r#"{"monite_webhooks_keyring":1,"unkeyed":[{"secret":"whsec_LEAKED_12","convention":"whsec_LEAKED_12"}]}"#,
        ),
        (
            "whsec_LEAKED_13",
            r#"{"monite_webhooks_keyring":1,"unkeyed":[["whsec_LEAKED_13"]]}"#,
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let error = Keyring::load(&path).unwrap_err();
        assert!(
            matches!(
                error.kind(),
                ErrorKind::KeyringFile | ErrorKind::InvalidSecret
            ),
            "{error:?}"
        );
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
        assert_shows_no_secret(&error, secret, text);
    }
}

#[test]
fn a_keyring_file_error_says_where_and_what_went_wrong() {
    let path = scratch("where");
    for (text, says) in [
        (
            "{\"monite_webhooks_keyring\":1,\n \"unkeyed\":\"whsec_LEAKED\"}",
            "line 2",
        ),
        ("{\"monite_webhooks_keyring\":1,", "ends early"),
        ("{\"monite_webhooks_keyring\":1 x}", "not valid JSON"),
        ("{\"monite_webhooks_keyring\":1,\"x\":2}", "line 1"),
    ] {
        std::fs::write(&path, text).unwrap();
        let message = Keyring::load(&path).unwrap_err().to_string();
        assert!(message.contains(says), "{text}: {message}");
        assert!(message.contains("column"), "{text}: {message}");
        assert!(!message.contains("LEAKED"), "{text}: {message}");
    }
}

#[test]
fn a_pair_that_looks_like_a_secret_is_refused_and_never_shown() {
    for (secret, text) in [
        // A base64 secret given without its id, split at its first `=`.
        ("whsec_LEAKEDabc", "whsec_LEAKEDabc=="),
        ("whsec_LEAKEDabc", "sub-a=whsec_a, whsec_LEAKEDabc="),
        ("LEAKEDxyz+/Q", "LEAKEDxyz+/Q=="),
        ("LEAKEDxyz+/Q", "LEAKEDxyz+/Q="),
        // An id that is a secret, whatever follows.
        ("whsec_LEAKED", " whsec_LEAKED = whsec_other"),
        ("WHSEC_LEAKED", "WHSEC_LEAKED=x"),
        // A secret with no `=` at all.
        ("whsec_LEAKED", "sub-a=whsec_a,whsec_LEAKED"),
    ] {
        let error = Keyring::parse_pairs(text).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidSecret, "{text}");
        assert!(error.to_string().contains("pair"), "{error}");
        assert_shows_no_secret(&error, secret, text);
    }
    // Ids are still ids.
    let keyring = Keyring::parse_pairs("3f9c1a52-5b4e=whsec_a==,sub.b_2=whsec_b").unwrap();
    assert_eq!(
        keyring
            .get("3f9c1a52-5b4e")
            .unwrap()
            .current()
            .expose_text(),
        "whsec_a=="
    );
    assert!(keyring.contains("sub.b_2"));
}

#[test]
fn a_refused_secret_shows_no_character_of_it() {
    // `!` is byte 33, and not base64.
    for text in [
        "whsec_QUFB!QUFB",
        "whsec_QUFBQ",
        "whsec_QUFBQ===",
        "whsec_QUFBQR==",
    ] {
        let error = Secret::whsec_base64(text).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidSecret);
        let printed = everything_printed(&error);
        assert!(!printed.contains("QUFB"), "{text}: {printed}");
        assert!(
            !printed.contains('!') && !printed.contains("33"),
            "{text}: {printed}"
        );
    }
}

// F4: a save then a load keeps each secret's key convention.

const NOW: u64 = 1_713_773_729;

/// Whether a delivery naming `subscription` (or none), signed with `signer`, verifies
/// against `keyring`.
fn verifies(keyring: &Keyring, subscription: Option<&str>, signer: &Secret) -> bool {
    let body = match subscription {
        Some(id) => format!(
            r#"{{"id":"e","object_type":"tag","action":"tag.created","webhook_subscription_id":"{id}"}}"#
        ),
        None => r#"{"id":"e","object_type":"tag","action":"tag.created"}"#.to_owned(),
    };
    let headers = [("Monite-Signature", sign(signer, NOW, body.as_bytes()))];
    Verifier::from_keyring(keyring.clone())
        .verify_at(&headers, body.as_bytes(), NOW)
        .is_ok()
}

#[test]
fn unkeyed_secrets_keep_their_convention_through_a_file() {
    let path = scratch("unkeyed");
    let decoded = Secret::whsec_base64("whsec_dW5rZXllZCBiYXNlNjQ=").unwrap();
    let raw = Secret::new("whsec_unkeyed_raw").unwrap();
    Keyring::new()
        .with_unkeyed(decoded.clone())
        .with_unkeyed(raw.clone())
        .save(&path)
        .unwrap();
    let loaded = Keyring::load(&path).unwrap();
    let conventions: Vec<_> = loaded.unkeyed().iter().map(Secret::convention).collect();
    assert_eq!(
        conventions,
        [KeyConvention::WhsecBase64, KeyConvention::Raw]
    );
    assert!(verifies(&loaded, None, &decoded));
    assert!(verifies(&loaded, None, &raw));
    // A second round trip changes nothing.
    loaded.save(&path).unwrap();
    let again = Keyring::load(&path).unwrap();
    assert!(verifies(&again, None, &decoded) && verifies(&again, None, &raw));
}

#[test]
fn a_rotated_subscription_keeps_both_conventions_through_a_file() {
    let path = scratch("rotated");
    let raw = Secret::new("whsec_raw_secret").unwrap();
    let decoded = Secret::whsec_base64("whsec_cHJldmlvdXMgYmFzZTY0").unwrap();
    let mut keyring = Keyring::new()
        .with_subscription("sub-raw-now", decoded.clone())
        .with_subscription("sub-base64-now", raw.clone());
    keyring.rotate("sub-raw-now", raw.clone());
    keyring.rotate("sub-base64-now", decoded.clone());
    keyring.save(&path).unwrap();

    let loaded = Keyring::load(&path).unwrap();
    for (id, current, previous) in [
        ("sub-raw-now", &raw, &decoded),
        ("sub-base64-now", &decoded, &raw),
    ] {
        let held = loaded.get(id).unwrap();
        assert_eq!(held.current().convention(), current.convention(), "{id}");
        assert_eq!(
            held.previous().unwrap().convention(),
            previous.convention(),
            "{id}"
        );
        assert!(verifies(&loaded, Some(id), current), "{id}, current");
        assert!(verifies(&loaded, Some(id), previous), "{id}, previous");
    }
}

#[test]
fn a_keyring_file_in_the_first_format_still_loads() {
    // Written as 0.1 writes it: every secret a string, one convention per subscription.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keyring/format-1.json");
    let loaded = Keyring::load(&fixture).unwrap();
    let raw = loaded.get("3f9c1a52-5b4e-4d6f-9a0e-0b8c2f7d1e44").unwrap();
    let decoded = loaded.get("b7d2e013-5f4c-4a7e-9d51-3c0e8a2b6f90").unwrap();
    for (held, convention) in [
        (raw, KeyConvention::Raw),
        (decoded, KeyConvention::WhsecBase64),
    ] {
        assert_eq!(held.as_slice().len(), 2);
        for secret in held.as_slice() {
            assert_eq!(secret.convention(), convention);
        }
    }
    assert_eq!(raw.current().expose_text(), "whsec_raw_current");
    assert_eq!(loaded.unkeyed()[0].convention(), KeyConvention::Raw);

    let signer = Secret::whsec_base64("whsec_Zm9ybWF0LTEgcHJldmlvdXM=").unwrap();
    assert!(verifies(
        &loaded,
        Some("b7d2e013-5f4c-4a7e-9d51-3c0e8a2b6f90"),
        &signer
    ));
    let signer = Secret::new("whsec_unkeyed_raw").unwrap();
    assert!(verifies(&loaded, None, &signer));

    // One convention per subscription needs no per-secret object: saved as it was.
    let path = scratch("first-format");
    loaded.save(&path).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        std::fs::read_to_string(&fixture).unwrap()
    );
}

#[test]
fn a_secret_may_name_its_own_convention() {
    // The example in `Keyring::load`'s documentation.
    let path = scratch("documented");
    std::fs::write(
        &path,
        r#"{
          "monite_webhooks_keyring": 1,
          "subscriptions": [
            { "id": "3f9c1a52-5b4e-4d6f-9a0e-0b8c2f7d1e44", "secrets": ["whsec_new", "whsec_old"] },
            {
              "id": "b7d2e013-5f4c-4a7e-9d51-3c0e8a2b6f90",
              "secrets": ["whsec_bmV3", { "secret": "whsec_old", "convention": "raw" }],
              "convention": "whsec_base64"
            }
          ],
          "unkeyed": [
            "whsec_for_deliveries_naming_no_subscription",
            { "secret": "whsec_aGVsbG8=", "convention": "whsec_base64" },
            { "secret": "whsec_aGVsbG8=" }
          ]
        }"#,
    )
    .unwrap();
    let loaded = Keyring::load(&path).unwrap();
    let conventions = |secrets: &[Secret]| -> Vec<KeyConvention> {
        secrets.iter().map(Secret::convention).collect()
    };
    use KeyConvention::{Raw, WhsecBase64};
    let first = loaded.get("3f9c1a52-5b4e-4d6f-9a0e-0b8c2f7d1e44").unwrap();
    assert_eq!(conventions(first.as_slice()), [Raw, Raw]);
    let second = loaded.get("b7d2e013-5f4c-4a7e-9d51-3c0e8a2b6f90").unwrap();
    assert_eq!(conventions(second.as_slice()), [WhsecBase64, Raw]);
    assert_eq!(conventions(loaded.unkeyed()), [Raw, WhsecBase64, Raw]);
}

// F5: a stale temporary file never blocks a save, and a failure names its path.

#[test]
fn a_stale_temporary_file_does_not_block_a_save() {
    let path = scratch("stale");
    let stale = path.with_file_name(format!(".keyring.json.{}.tmp", std::process::id()));
    std::fs::write(&stale, "half a keyring").unwrap();
    let keyring = Keyring::new().with_subscription("s", Secret::new("whsec_new").unwrap());
    keyring.save(&path).unwrap();
    keyring.save(&path).unwrap();
    let loaded = Keyring::load(&path).unwrap();
    assert_eq!(
        loaded.get("s").unwrap().current().expose_text(),
        "whsec_new"
    );
    // The saves left no temporary file of their own behind.
    let mut left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [stale.file_name().unwrap(), path.file_name().unwrap()]
    );
}

#[test]
fn a_failed_save_names_the_path_that_failed() {
    let keyring = Keyring::new().with_subscription("s", Secret::new("whsec_unsaved").unwrap());

    // No directory to create the temporary file in.
    let missing = scratch("missing")
        .with_file_name("absent")
        .join("keyring.json");
    let error = keyring.save(&missing).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::KeyringFile);
    let message = error.to_string();
    let temporary = missing
        .with_file_name(".keyring.json.")
        .display()
        .to_string();
    assert!(message.contains(&temporary), "{message}");
    assert!(message.contains(".tmp"), "{message}");
    assert_shows_no_secret(&error, "whsec_unsaved", "a missing directory");

    // The keyring's path is a directory: the rename fails, and the temporary file goes.
    let path = scratch("is-a-directory");
    std::fs::create_dir(&path).unwrap();
    let error = keyring.save(&path).unwrap_err();
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("rename"), "{message}");
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        [path.file_name().unwrap()],
        "a temporary file was left"
    );
    assert_shows_no_secret(&error, "whsec_unsaved", "a directory in the way");
}
