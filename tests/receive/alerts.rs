//! The shipped Prometheus rules (`alerts/monite-webhooks.rules.yml`) pass `promtool check
//! rules`, and every metric they name is one the crate records (the reconciler's or the
//! inbox's). Without promtool the check is skipped with a message (Debian's `prometheus`
//! package ships it).

use std::process::Command;

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/alerts/monite-webhooks.rules.yml"
);

#[test]
fn the_rules_name_only_metrics_the_crate_records() {
    let rules = std::fs::read_to_string(RULES).unwrap_or_default();
    let recorded: String = [
        "src/observe/metrics.rs",
        "src/observe/metrics/reconcile.rs",
        "src/observe/metrics/inbox.rs",
    ]
    .iter()
    .map(|source| {
        std::fs::read_to_string(format!("{}/{source}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_default()
    })
    .collect();
    let mut named = 0;
    for word in rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("monite_webhooks_") {
            named += 1;
            assert!(
                recorded.contains(&format!("\"{word}\"")),
                "{word} is not recorded"
            );
        }
    }
    assert!(named >= 6, "the rules name {named} metrics");
}

#[test]
fn promtool_accepts_the_rules() {
    let output = match Command::new("promtool")
        .args(["check", "rules", RULES])
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            eprintln!("skipped: promtool is not installed ({e}); apt-get install prometheus");
            return;
        }
    };
    assert!(
        output.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("10 rules found"), "{said}");
}
