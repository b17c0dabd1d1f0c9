//! The reconciler's and the watchdog's metrics, read back through metrics-util's
//! debugging recorder: a known sweep and a re-enable give known counts, and no metric
//! carries an entity id; the crate's one `metrics::describe()` describes their series.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly where its setup is wrong"
)]

use crate::support;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use monite_webhooks::jiff::{SignedDuration, Timestamp};
use monite_webhooks::metrics as m;
use monite_webhooks::reconcile::{MemoryCheckpoints, Reconciler};
use monite_webhooks::watchdog::Watchdog;
use support::client::{client, counting_receiver};
use support::fake_monite;

#[test]
fn a_sweep_and_a_reenable_are_counted_without_entity_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let (addr, fake) = fake_monite::start().await;
            let entity = fake.add_entities(1).remove(0);
            let at = (Timestamp::now() - SignedDuration::from_secs(600)).to_string();
            fake.commit_event(&entity, Some(&at));
            fake.commit_event(&entity, Some(&at));
            fake.seed("payable", "https://example.com/hook", "disabled");
            let runs = Default::default();
            let reconciler = Reconciler::builder(
                client(addr),
                counting_receiver(&runs, None),
                MemoryCheckpoints::default(),
            )
            .allow_process_local_store()
            .build()
            .unwrap();
            reconciler.run_once().await.unwrap();
            Watchdog::builder(client(addr))
                .reenable(true)
                .build()
                .unwrap()
                .run_once()
                .await
                .unwrap();
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let value = |name: &str, label: Option<(&str, &str)>| {
        snapshot
            .iter()
            .find(|(key, _, _, _)| {
                let key = key.key();
                key.name() == name
                    && label
                        .is_none_or(|(k, v)| key.labels().any(|l| l.key() == k && l.value() == v))
            })
            .map(|entry| &entry.3)
    };
    assert_eq!(
        value(m::SWEEPS, Some(("result", "ok"))),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        value(m::EVENTS_RECOVERED, None),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(value(m::EVENTS_SEEN, None), Some(&DebugValue::Counter(2)));
    assert_eq!(
        value(m::SUBSCRIPTIONS_REENABLED, None),
        Some(&DebugValue::Counter(1))
    );
    let enabled = value(m::SUBSCRIPTION_ENABLED, Some(("object_type", "payable")));
    assert!(
        matches!(enabled, Some(DebugValue::Gauge(g)) if g.into_inner() == 1.0),
        "{enabled:?}"
    );
    assert!(value(m::LAST_SUCCESS, None).is_some());
    for (key, _, _, _) in &snapshot {
        assert!(
            key.key()
                .labels()
                .all(|l| l.key() != "entity_id" && !l.value().starts_with("e0000000")),
            "an entity id as a label: {key:?}"
        );
    }
}

#[test]
fn the_one_describe_gives_the_reconcilers_and_the_watchdogs_series_their_help() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        m::describe();
        runtime.block_on(async {
            let (addr, fake) = fake_monite::start().await;
            fake.add_entities(1);
            fake.seed("payable", "https://example.com/hook", "disabled");
            let runs = std::sync::Arc::default();
            let reconciler = Reconciler::builder(
                client(addr),
                counting_receiver(&runs, None),
                MemoryCheckpoints::default(),
            )
            .allow_process_local_store()
            .build()
            .unwrap();
            reconciler.run_once().await.unwrap();
            let watchdog = Watchdog::builder(client(addr)).build().unwrap();
            watchdog.run_once().await.unwrap();
        });
    });
    let text = handle.render();
    for name in [m::SWEEPS, m::CYCLE_DURATION, m::SUBSCRIPTION_ENABLED] {
        assert!(
            text.lines()
                .any(|line| line.starts_with(&format!("# HELP {name} "))),
            "{name} has no help text in:\n{text}"
        );
    }
}
