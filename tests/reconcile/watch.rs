//! The subscription watchdog against the fake Monite: a disabled subscription reported at
//! the next check and re-enabled when asked, the lost interval reported as such, the
//! receiver's failed deliveries reported, and a deep sweep requested after the outage,
//! even when the delivery log cannot be read; the delivery log listed from a margin before
//! the last scan, not whole.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use std::sync::{Arc, Mutex};

use http::StatusCode;
use monite_webhooks::jiff::{SignedDuration, Timestamp};
use monite_webhooks::reconcile::{MemoryCheckpoints, Reconciler};
use monite_webhooks::watchdog::{Report, Watchdog};
use support::client::{client, counting_receiver, fault};
use support::fake_monite;

fn recorder() -> (
    Arc<Mutex<Vec<Report>>>,
    impl Fn(&Report) + Send + Sync + 'static,
) {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let seen = reports.clone();
    (reports, move |r: &Report| {
        seen.lock().unwrap().push(r.clone())
    })
}

#[tokio::test]
async fn a_disabled_subscription_is_reported_and_left_without_reenable() {
    let (addr, fake) = fake_monite::start().await;
    let id = fake.seed("payable", "https://example.com/hook", "disabled");
    fake.seed("receivable", "https://example.com/hook", "enabled");
    let (reports, record) = recorder();
    let watchdog = Watchdog::builder(client(addr))
        .on_report(record)
        .build()
        .unwrap();
    let check = watchdog.run_once().await.unwrap();
    assert_eq!(check.disabled.len(), 1);
    assert_eq!(check.disabled[0].id, id);
    assert!(check.any_still_disabled());
    assert!(matches!(
        &reports.lock().unwrap()[..],
        [Report::SubscriptionDisabled { subscription_id, object_type, last_seen_enabled: None }]
            if *subscription_id == id && object_type == "payable"
    ));
    assert_eq!(fake.subscriptions()[0]["status"], "disabled");
}

#[tokio::test]
async fn reenabling_reports_the_lost_interval_and_asks_for_a_deep_sweep() {
    let (addr, fake) = fake_monite::start().await;
    let id = fake.seed("payable", "https://example.com/hook", "enabled");
    fake.add_entities(1);
    let runs = Arc::default();
    let reconciler = Reconciler::builder(
        client(addr),
        counting_receiver(&runs, None),
        MemoryCheckpoints::default(),
    )
    .allow_process_local_store()
    .build()
    .unwrap();
    assert!(
        !reconciler.run_once().await.unwrap().deep,
        "the first deep sweep comes a day after start"
    );
    assert!(!reconciler.run_once().await.unwrap().deep);
    let (reports, record) = recorder();
    let watchdog = Watchdog::builder(client(addr))
        .reenable(true)
        .on_report(record)
        .deep_sweep_with(reconciler.clone())
        .build()
        .unwrap();
    assert!(watchdog.run_once().await.unwrap().disabled.is_empty());
    fake.set_status(&id, "disabled");
    let check = watchdog.run_once().await.unwrap();
    assert_eq!(check.reenabled, std::slice::from_ref(&id));
    assert!(!check.any_still_disabled());
    assert_eq!(fake.subscriptions()[0]["status"], "enabled");
    let reports = reports.lock().unwrap().clone();
    let Some(Report::SubscriptionReenabled {
        lost_from: Some(from),
        lost_until,
        ..
    }) = reports
        .iter()
        .find(|r| matches!(r, Report::SubscriptionReenabled { .. }))
    else {
        panic!("no re-enable report with its lost interval: {reports:?}");
    };
    assert!(from <= lost_until);
    assert!(
        reconciler.run_once().await.unwrap().deep,
        "no deep sweep after the outage"
    );
}

#[tokio::test]
async fn the_receivers_failures_are_reported_at_the_next_check() {
    let (addr, _fake) = fake_monite::start().await;
    let (reports, record) = recorder();
    let watchdog = Watchdog::builder(client(addr))
        .on_report(record)
        .build()
        .unwrap();
    watchdog.record_failure("sub-1");
    watchdog.record_failure("sub-1");
    watchdog.run_once().await.unwrap();
    assert_eq!(
        reports.lock().unwrap()[..],
        [Report::DeliveriesFailing {
            subscription_id: "sub-1".to_owned(),
            count: 2
        }]
    );
    watchdog.run_once().await.unwrap();
    assert_eq!(reports.lock().unwrap().len(), 1, "reported once");
}

#[tokio::test]
async fn failed_deliveries_in_monites_log_are_reported_once() {
    let (addr, _fake) = fake_monite::start().await;
    let (reports, record) = recorder();
    let watchdog = Watchdog::builder(client(addr))
        .on_report(record)
        .delivery_log([fake_monite::ENTITY_ID], 1)
        .build()
        .unwrap();
    watchdog.run_once().await.unwrap();
    let found: usize = reports
        .lock()
        .unwrap()
        .iter()
        .map(|r| match r {
            Report::DeliveryLogFailures {
                count, entity_id, ..
            } => {
                assert_eq!(entity_id, fake_monite::ENTITY_ID);
                *count
            }
            other => panic!("unexpected {other:?}"),
        })
        .sum();
    // The fixture's log has two failed deliveries.
    assert_eq!(found, 2);
    watchdog.run_once().await.unwrap();
    let after = reports.lock().unwrap().len();
    watchdog.run_once().await.unwrap();
    assert_eq!(reports.lock().unwrap().len(), after, "reported again");
}

/// The failed deliveries reported so far.
fn log_failures(reports: &Mutex<Vec<Report>>) -> usize {
    reports
        .lock()
        .unwrap()
        .iter()
        .map(|r| match r {
            Report::DeliveryLogFailures { count, .. } => *count,
            _ => 0,
        })
        .sum()
}

#[tokio::test]
async fn the_delivery_log_is_listed_from_a_margin_before_the_last_scan() {
    let (addr, fake) = fake_monite::start().await;
    // A failure of a month ago: past Monite's week of retries, reported long since.
    let month_ago = Timestamp::now() - SignedDuration::from_hours(30 * 24);
    fake.add_delivery(&month_ago.to_string(), false);
    let (reports, record) = recorder();
    let watchdog = Watchdog::builder(client(addr))
        .on_report(record)
        .delivery_log([fake_monite::ENTITY_ID], 1)
        .build()
        .unwrap();
    watchdog.run_once().await.unwrap();
    // The fixture's two failures (an hour old), not the month-old one.
    assert_eq!(log_failures(&reports), 2);
    let from = |query: &std::collections::HashMap<String, String>| -> Timestamp {
        query
            .get("created_at__gte")
            .expect("the whole log listed")
            .parse()
            .unwrap()
    };
    let first = from(&fake.delivery_queries()[0]);
    let week = SignedDuration::from_hours(7 * 24);
    let nine_days = SignedDuration::from_hours(9 * 24);
    assert!(first < Timestamp::now() - week, "{first}: within the week");
    assert!(
        first > Timestamp::now() - nine_days,
        "{first}: too far back"
    );
    // A new failure is reported, once; the earlier ones are not again.
    fake.add_delivery(&Timestamp::now().to_string(), false);
    watchdog.run_once().await.unwrap();
    assert_eq!(log_failures(&reports), 3);
    watchdog.run_once().await.unwrap();
    assert_eq!(log_failures(&reports), 3);
    let queries = fake.delivery_queries();
    assert_eq!(queries.len(), 3);
    assert!(from(&queries[2]) >= first, "the scan went further back");
}

#[tokio::test]
async fn a_failed_delivery_log_scan_keeps_the_deep_sweep_of_a_reenable() {
    let (addr, fake) = fake_monite::start().await;
    let id = fake.seed("payable", "https://example.com/hook", "enabled");
    fake.add_entities(1);
    let runs = Arc::default();
    let reconciler = Reconciler::builder(
        client(addr),
        counting_receiver(&runs, None),
        MemoryCheckpoints::default(),
    )
    .allow_process_local_store()
    .build()
    .unwrap();
    assert!(!reconciler.run_once().await.unwrap().deep);
    let (reports, record) = recorder();
    let watchdog = Watchdog::builder(client(addr))
        .reenable(true)
        .on_report(record)
        .deep_sweep_with(reconciler.clone())
        .delivery_log([fake_monite::ENTITY_ID], 1)
        .build()
        .unwrap();
    watchdog.run_once().await.unwrap();
    fake.set_status(&id, "disabled");
    // The delivery log fails past the client's retries at the check that re-enables.
    for _ in 0..4 {
        fake.inject(fault(
            "/v1/webhook_deliveries",
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
        ));
    }
    let check = watchdog.run_once().await.unwrap();
    assert_eq!(check.reenabled, std::slice::from_ref(&id));
    assert_eq!(check.delivery_log_failed.len(), 1, "{check:?}");
    assert_eq!(check.delivery_log_failed[0].0, fake_monite::ENTITY_ID);
    assert!(reports.lock().unwrap().iter().any(|r| matches!(
        r,
        Report::DeliveryLogUnreadable { entity_id, .. } if entity_id == fake_monite::ENTITY_ID
    )));
    assert!(
        reconciler.run_once().await.unwrap().deep,
        "the re-enable's deep sweep was dropped"
    );
    // The next scan reads the log from where the failed one would have.
    watchdog.run_once().await.unwrap();
    assert_eq!(log_failures(&reports), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_watchdog_checks_at_its_pace_and_stops_at_shutdown() {
    let (addr, fake) = fake_monite::start().await;
    fake.seed("payable", "https://example.com/hook", "disabled");
    let (reports, record) = recorder();
    // One report per check: the subscription stays disabled.
    let running = Watchdog::builder(client(addr))
        .every(std::time::Duration::from_millis(50))
        .on_report(record)
        .start()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reports.lock().unwrap().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        reports.lock().unwrap().len() >= 2,
        "checks repeat at the pace"
    );
    running.service().record_failure("sub-1");
    running.shutdown().await;
    let checks = reports.lock().unwrap().len();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        reports.lock().unwrap().len(),
        checks,
        "a check after shutdown"
    );
    assert!(reports.lock().unwrap().iter().all(|r| matches!(
        r,
        Report::SubscriptionDisabled { .. } | Report::DeliveriesFailing { .. }
    )));
}
