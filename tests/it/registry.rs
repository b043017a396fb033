//! The registry on both engines: every case runs on SQLite and on PostgreSQL
//! (`WARDEN_TEST_POSTGRES_URL`; skipped with a note when unset).

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use warden::check::Outcome;
use warden::domain::{CheckId, DatasetName};
use warden::gate::StateChange;
use warden::registry::{
    OutboxStatus, PartitionState, Registry, RegistryError, RunRecord, StoredColumn,
};

use crate::support::agent::free_port;
use crate::support::registry::{TestRegistry, at, record, result, stored};

fn check(id: &str) -> CheckId {
    CheckId::parse(id).unwrap()
}

fn dataset(name: &str) -> DatasetName {
    DatasetName::parse(name).unwrap()
}

async fn count_rows(registry: &Registry, check_id: &str) -> usize {
    registry
        .history(&check(check_id), 1000)
        .await
        .unwrap()
        .len()
}

on_both_engines!(
    rerunning_a_run_overwrites_it,
    a_backfill_twice_keeps_one_row_per_partition,
    latest_results_has_one_result_per_check,
    previous_and_day_baselines,
    schema_baselines_are_set_read_and_replaced,
    partition_state_machine,
    illegal_transitions_change_nothing,
    concurrent_transitions_are_serialised,
    a_failed_write_leaves_no_partial_run,
    a_cancelled_write_leaves_no_partial_run,
    scheduled_runs_are_claimed_once,
    a_lapsed_claim_is_taken_over_once,
    outbox_enqueue_due_and_mark,
    outbox_claims_are_leased,
    reopening_keeps_data_and_schema,
    chart_reads_take_the_last_values_and_a_range,
    a_datasets_partitions_come_with_their_history,
);

async fn rerunning_a_run_overwrites_it(db: &TestRegistry) {
    let t = at(6);
    let run = |rows: f64, nulls: f64| {
        vec![
            record("orders.row_count", None, rows, t),
            RunRecord::new(
                result(
                    "orders.nulls",
                    Some("2026-11-19"),
                    Outcome::Warn,
                    Some(nulls),
                ),
                t,
            ),
        ]
    };
    db.record_run(&run(100.0, 0.1)).await.unwrap();
    db.record_run(&run(120.0, 0.2)).await.unwrap();

    let rows = db
        .results_for(&check("orders.row_count"), None)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].result.observed, Some(120.0));
    assert_eq!(rows[0].result.partition, None);
    assert_eq!(rows[0].scheduled_at, t);

    let nulls = db
        .results_for(&check("orders.nulls"), Some("2026-11-19"))
        .await
        .unwrap();
    assert_eq!(nulls.len(), 1);
    assert_eq!(
        nulls[0].result,
        result("orders.nulls", Some("2026-11-19"), Outcome::Warn, Some(0.2))
    );
    assert!(
        db.results_for(&check("orders.nulls"), None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_backfill_twice_keeps_one_row_per_partition(db: &TestRegistry) {
    let partitions = [
        "2026-11-15",
        "2026-11-16",
        "2026-11-17",
        "2026-11-18",
        "2026-11-19",
    ];
    for pass in 1..=2 {
        for (i, p) in partitions.iter().enumerate() {
            // A backfill is scheduled for the partition's own slot.
            let scheduled = at(24 * i as i64 - 96);
            let value = f64::from(pass * 1000) + i as f64;
            db.record_run(&[
                record("events.row_count", Some(p), value, scheduled),
                record("events.distinct_users", Some(p), value / 10.0, scheduled),
            ])
            .await
            .unwrap();
        }
    }
    for id in ["events.row_count", "events.distinct_users"] {
        assert_eq!(count_rows(db, id).await, 5, "{id}");
    }
    for (i, p) in partitions.iter().enumerate() {
        let rows = db
            .results_for(&check("events.row_count"), Some(p))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].result.observed, Some(2000.0 + i as f64), "{p}");
    }
    let history = db.history(&check("events.row_count"), 3).await.unwrap();
    let order: Vec<_> = history
        .iter()
        .map(|r| r.result.partition.as_deref().unwrap())
        .collect();
    assert_eq!(
        order,
        ["2026-11-19", "2026-11-18", "2026-11-17"],
        "newest first, limited"
    );
}

async fn latest_results_has_one_result_per_check(db: &TestRegistry) {
    for hour in 0..3 {
        db.record_run(&[
            record(
                "shop.row_count",
                None,
                10.0 + f64::from(hour),
                at(hour.into()),
            ),
            record(
                "shop.freshness",
                None,
                60.0 * f64::from(hour),
                at(hour.into()),
            ),
        ])
        .await
        .unwrap();
    }
    db.record_run(&[record("other.row_count", None, 1.0, at(9))])
        .await
        .unwrap();

    let latest = db.latest_results(&dataset("shop")).await.unwrap();
    let got: Vec<_> = latest
        .iter()
        .map(|r| (r.result.check.as_str(), r.result.observed, r.scheduled_at))
        .collect();
    assert_eq!(
        got,
        [
            ("shop.freshness", Some(120.0), at(2)),
            ("shop.row_count", Some(12.0), at(2))
        ]
    );
    assert!(
        db.latest_results(&dataset("nothing"))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn previous_and_day_baselines(db: &TestRegistry) {
    let id = check("orders.row_count");
    // Unpartitioned: one run a day, the last one errored.
    for day in 0..4 {
        db.record_run(&[record(
            "orders.row_count",
            None,
            100.0 + f64::from(day),
            at(24 * i64::from(day)),
        )])
        .await
        .unwrap();
    }
    let error = result("orders.row_count", None, Outcome::Error, None);
    db.record_run(&[RunRecord::new(error, at(96))])
        .await
        .unwrap();
    // A failing result still observed a value: it is a usable baseline.
    let failed = result("orders.row_count", None, Outcome::Fail, Some(5.0));
    db.record_run(&[RunRecord::new(failed, at(97))])
        .await
        .unwrap();

    assert_eq!(
        db.prior_observed(&id, None, at(97)).await.unwrap(),
        Some((103.0, at(72))),
        "skips the error"
    );
    assert_eq!(
        db.prior_observed(&id, None, at(98)).await.unwrap(),
        Some((5.0, at(97)))
    );
    assert_eq!(
        db.prior_observed(&id, None, at(72)).await.unwrap(),
        Some((102.0, at(48))),
        "strictly before"
    );
    assert_eq!(db.prior_observed(&id, None, at(0)).await.unwrap(), None);
    assert_eq!(
        db.prior_observed(&id, Some("2026-11-20"), at(98))
            .await
            .unwrap(),
        None,
        "other partition"
    );

    // vs: 1d from the run at day 3: at or before day 2.
    assert_eq!(
        db.observed_at_or_before(&id, at(72 - 24)).await.unwrap(),
        Some((102.0, at(48)))
    );
    assert_eq!(
        db.observed_at_or_before(&id, at(50)).await.unwrap(),
        Some((102.0, at(48)))
    );
    // vs: 7d: nothing that old.
    assert_eq!(
        db.observed_at_or_before(&id, at(72 - 168)).await.unwrap(),
        None
    );

    // Partitioned: P against P-1d, whose latest run errored.
    let parts = check("events.row_count");
    db.record_run(&[record("events.row_count", Some("2026-11-18"), 50.0, at(1))])
        .await
        .unwrap();
    db.record_run(&[record("events.row_count", Some("2026-11-18"), 55.0, at(2))])
        .await
        .unwrap();
    let error = result("events.row_count", Some("2026-11-18"), Outcome::Error, None);
    db.record_run(&[RunRecord::new(error, at(3))])
        .await
        .unwrap();
    assert_eq!(
        db.observed_for_partition(&parts, "2026-11-18")
            .await
            .unwrap(),
        Some((55.0, at(2)))
    );
    assert_eq!(
        db.observed_for_partition(&parts, "2026-11-12")
            .await
            .unwrap(),
        None
    );
}

async fn schema_baselines_are_set_read_and_replaced(db: &TestRegistry) {
    let orders = dataset("orders");
    assert_eq!(db.schema_baseline(&orders).await.unwrap(), None);

    let first = vec![
        StoredColumn::new("id", "bigint"),
        StoredColumn::new("amount", "numeric(12,2)"),
    ];
    db.set_schema_baseline(&orders, &first, "ana")
        .await
        .unwrap();
    assert_eq!(
        db.schema_baseline(&orders).await.unwrap(),
        Some(first.clone())
    );

    let second = vec![
        StoredColumn::new("id", "bigint"),
        StoredColumn::new("total", "numeric(14,2)"),
    ];
    db.set_schema_baseline(&orders, &second, "ben")
        .await
        .unwrap();
    let record = db.schema_baseline_record(&orders).await.unwrap().unwrap();
    assert_eq!(record.columns, second, "column order is kept");
    assert_eq!(record.accepted_by, "ben");
    assert!(record.accepted_at <= Utc::now());
    assert_eq!(db.schema_baseline(&dataset("other")).await.unwrap(), None);
}

async fn partition_state_machine(db: &TestRegistry) {
    use PartitionState::*;
    let orders = dataset("orders");
    let p = "2026-11-19";
    assert!(db.partition(&orders, p).await.unwrap().is_none());
    assert!(db.latest_published(&orders).await.unwrap().is_none());

    db.transition(&orders, p, StateChange::new(Validating, "gate").gate("g1"))
        .await
        .unwrap();
    db.transition(
        &orders,
        p,
        StateChange::new(Passed, "gate")
            .gate("g1")
            .expecting(Validating),
    )
    .await
    .unwrap();
    db.transition(&orders, p, StateChange::new(Published, "etl").gate("g1"))
        .await
        .unwrap();
    let published = db.latest_published(&orders).await.unwrap().unwrap();
    assert_eq!(
        (published.partition.as_str(), published.gate_id.as_str()),
        (p, "g1")
    );

    // A backfill re-gates the published partition: the old publication
    // stays visible until the new one is published.
    db.transition(&orders, p, StateChange::new(Validating, "gate").gate("g2"))
        .await
        .unwrap();
    db.transition(
        &orders,
        p,
        StateChange::new(Quarantined, "gate")
            .gate("g2")
            .reason("row_count failed"),
    )
    .await
    .unwrap();
    let record = db.partition(&orders, p).await.unwrap().unwrap();
    assert_eq!(record.state, Quarantined);
    assert_eq!(record.published_gate_id.as_deref(), Some("g1"));
    assert_eq!(
        db.latest_published(&orders).await.unwrap().unwrap().gate_id,
        "g1"
    );

    // Override, then publish with the gate that was overridden.
    db.transition(
        &orders,
        p,
        StateChange::new(Passed, "ana").reason("late rows are expected today"),
    )
    .await
    .unwrap();
    db.transition(&orders, p, StateChange::new(Published, "etl").gate("g2"))
        .await
        .unwrap();
    assert_eq!(
        db.latest_published(&orders).await.unwrap().unwrap().gate_id,
        "g2"
    );

    // A newer partition in validation does not change what consumers read.
    db.transition(
        &orders,
        "2026-11-20",
        StateChange::new(Validating, "gate").gate("g3"),
    )
    .await
    .unwrap();
    assert_eq!(
        db.latest_published(&orders)
            .await
            .unwrap()
            .unwrap()
            .partition,
        p
    );

    let record = db.partition(&orders, p).await.unwrap().unwrap();
    assert_eq!(record.state, Published);
    assert_eq!(record.gate_id.as_deref(), Some("g2"));
    let log: Vec<_> = record
        .history
        .iter()
        .map(|t| (t.from, t.to, t.actor.as_str(), t.gate_id.as_deref()))
        .collect();
    assert_eq!(
        log,
        [
            (None, Validating, "gate", Some("g1")),
            (Some(Validating), Passed, "gate", Some("g1")),
            (Some(Passed), Published, "etl", Some("g1")),
            (Some(Published), Validating, "gate", Some("g2")),
            (Some(Validating), Quarantined, "gate", Some("g2")),
            (Some(Quarantined), Passed, "ana", None),
            (Some(Passed), Published, "etl", Some("g2")),
        ]
    );
    assert_eq!(
        record.history[5].reason.as_deref(),
        Some("late rows are expected today")
    );
    assert!(record.history.windows(2).all(|w| w[0].at <= w[1].at));
}

async fn illegal_transitions_change_nothing(db: &TestRegistry) {
    use PartitionState::*;
    let orders = dataset("orders");
    let p = "2026-11-19";
    let illegal = |e: RegistryError| match e {
        RegistryError::IllegalTransition {
            from, to, reason, ..
        } => (from, to, reason),
        other => panic!("expected an illegal transition, got {other}"),
    };

    let (from, to, _) = illegal(
        db.transition(&orders, p, StateChange::new(Passed, "gate"))
            .await
            .unwrap_err(),
    );
    assert_eq!((from, to), (None, Passed));
    assert!(
        db.partition(&orders, p).await.unwrap().is_none(),
        "nothing was created"
    );

    db.transition(&orders, p, StateChange::new(Validating, "gate").gate("g1"))
        .await
        .unwrap();
    let err = db
        .transition(&orders, p, StateChange::new(Published, "etl").gate("g1"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("from validating to published"),
        "{err}"
    );
    db.transition(&orders, p, StateChange::new(Quarantined, "gate").gate("g1"))
        .await
        .unwrap();

    let (from, to, reason) = illegal(
        db.transition(&orders, p, StateChange::new(Passed, "ana"))
            .await
            .unwrap_err(),
    );
    assert_eq!((from, to), (Some(Quarantined), Passed));
    assert!(reason.contains("override"), "{reason}");
    let err = db
        .transition(
            &orders,
            p,
            StateChange::new(Validating, "gate")
                .gate("g2")
                .expecting(Passed),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("expected it to be passed, but it is quarantined"),
        "{err}"
    );

    db.transition(
        &orders,
        p,
        StateChange::new(Passed, "ana").reason("checked by hand"),
    )
    .await
    .unwrap();
    let (_, _, reason) = illegal(
        db.transition(&orders, p, StateChange::new(Published, "etl").gate("g9"))
            .await
            .unwrap_err(),
    );
    assert!(reason.contains("g9 did not pass it"), "{reason}");

    let record = db.partition(&orders, p).await.unwrap().unwrap();
    assert_eq!(record.state, Passed);
    assert_eq!(record.history.len(), 3, "refused changes are not logged");
    assert!(db.latest_published(&orders).await.unwrap().is_none());
}

async fn concurrent_transitions_are_serialised(db: &TestRegistry) {
    use PartitionState::*;
    let orders = dataset("orders");
    let p = "2026-11-19";
    // Many first gates at once: each one starts a validation, none is lost.
    let starts = (0..6).map(|i| {
        let registry: Registry = db.registry.clone();
        let orders = orders.clone();
        tokio::spawn(async move {
            let gate = format!("g{i}");
            registry
                .transition(&orders, p, StateChange::new(Validating, "gate").gate(&gate))
                .await
        })
    });
    for started in futures::future::join_all(starts).await {
        started.unwrap().unwrap();
    }
    let record = db.partition(&orders, p).await.unwrap().unwrap();
    assert_eq!(record.history.len(), 6);
    assert_eq!(
        record.history.iter().filter(|t| t.from.is_none()).count(),
        1
    );

    // Many deciders at once, each expecting `validating`: exactly one wins.
    let decisions = (0..6).map(|i| {
        let registry = db.registry.clone();
        let orders = orders.clone();
        tokio::spawn(async move {
            let to = if i % 2 == 0 { Passed } else { Quarantined };
            registry
                .transition(
                    &orders,
                    p,
                    StateChange::new(to, "gate").expecting(Validating),
                )
                .await
        })
    });
    let results: Vec<_> = futures::future::join_all(decisions)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(refused, RegistryError::IllegalTransition { .. }),
            "{refused}"
        );
    }
    assert_eq!(
        db.partition(&orders, p)
            .await
            .unwrap()
            .unwrap()
            .history
            .len(),
        7
    );
}

async fn a_failed_write_leaves_no_partial_run(db: &TestRegistry) {
    db.record_run(&[
        record("orders.row_count", None, 1.0, at(0)),
        record("orders.nulls", None, 0.0, at(0)),
    ])
    .await
    .unwrap();

    // The last record breaks a constraint (a result without a check id):
    // neither the new rows nor the overwrites of the stored run are kept.
    let mut broken = record("orders.row_count", None, 9.0, at(1));
    broken.result.check = String::new();
    let err = db
        .record_run(&[
            record("orders.row_count", None, 2.0, at(1)),
            record("orders.row_count", None, 99.0, at(0)),
            record("orders.nulls", None, 99.0, at(0)),
            broken,
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Query {
                op: "record run",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_unavailable());

    let rows = db
        .results_for(&check("orders.row_count"), None)
        .await
        .unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.scheduled_at, r.result.observed))
            .collect::<Vec<_>>(),
        [(at(0), Some(1.0))]
    );
    assert_eq!(
        db.results_for(&check("orders.nulls"), None).await.unwrap()[0]
            .result
            .observed,
        Some(0.0)
    );

    // The next run goes through.
    db.record_run(&[record("orders.row_count", None, 3.0, at(1))])
        .await
        .unwrap();
    assert_eq!(count_rows(db, "orders.row_count").await, 2);
}

async fn a_cancelled_write_leaves_no_partial_run(db: &TestRegistry) {
    let batch: Vec<_> = (0..500)
        .map(|i| record(&format!("big.c{i}"), None, f64::from(i), at(0)))
        .collect();
    // Dropped while the transaction is open: rolled back, never half kept.
    let cancelled = tokio::time::timeout(Duration::from_millis(5), db.record_run(&batch)).await;
    let kept = db.latest_results(&dataset("big")).await.unwrap().len();
    match cancelled {
        Err(_) => assert_eq!(kept, 0, "a cancelled run left {kept} rows"),
        Ok(done) => {
            done.unwrap();
            assert_eq!(kept, 500);
        }
    }
    // The registry is still usable and the run can be redone.
    db.record_run(&batch).await.unwrap();
    assert_eq!(db.latest_results(&dataset("big")).await.unwrap().len(), 500);
}

/// How many of `agents` agents racing to claim (`dataset`, `tick`) won.
async fn claim_race(
    db: &TestRegistry,
    dataset: &DatasetName,
    tick: chrono::DateTime<Utc>,
    agents: usize,
    lease_until: chrono::DateTime<Utc>,
) -> usize {
    let racers = (0..agents).map(|i| {
        let registry = db.registry.clone();
        let dataset = dataset.clone();
        tokio::spawn(async move {
            registry
                .claim_scheduled_run(&dataset, tick, &format!("agent-{i}"), lease_until)
                .await
        })
    });
    futures::future::join_all(racers)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap().as_ref().unwrap())
        .count()
}

async fn scheduled_runs_are_claimed_once(db: &TestRegistry) {
    let orders = dataset("orders");
    // Leases far in the future: nothing lapses in this part.
    let held = Utc::now() + chrono::Duration::hours(1);
    let claim = |ds: &DatasetName, tick: i64, agent: &str| {
        let registry = db.registry.clone();
        let (ds, agent) = (ds.clone(), agent.to_owned());
        async move {
            registry
                .claim_scheduled_run(&ds, at(tick), &agent, held)
                .await
                .unwrap()
        }
    };
    assert!(claim(&orders, 1, "agent-a").await);
    assert!(!claim(&orders, 1, "agent-b").await);
    assert!(!claim(&orders, 1, "agent-a").await);
    assert!(claim(&orders, 2, "agent-b").await);
    assert!(claim(&dataset("events"), 1, "agent-b").await);

    assert_eq!(claim_race(db, &orders, at(3), 8, held).await, 1);

    assert_eq!(db.prune_claims(at(2)).await.unwrap(), 2);
    assert!(
        claim(&orders, 1, "agent-c").await,
        "pruned claims are forgotten"
    );
}

/// A claim is a lease: renewed by its agent only, taken over once it lapsed
/// unfinished (by one agent of several racing), never once finished.
async fn a_lapsed_claim_is_taken_over_once(db: &TestRegistry) {
    let orders = dataset("orders");
    let now = Utc::now();
    let lapsed = now - chrono::Duration::seconds(1);
    let held = now + chrono::Duration::minutes(10);
    let tick = now - chrono::Duration::minutes(2);
    assert!(
        db.claim_scheduled_run(&orders, tick, "agent-a", held)
            .await
            .unwrap()
    );
    assert!(
        db.renew_claim(&orders, tick, "agent-a", lapsed)
            .await
            .unwrap()
    );
    assert!(
        !db.renew_claim(&orders, tick, "agent-b", held)
            .await
            .unwrap(),
        "only the holder renews"
    );
    // agent-a stopped renewing: its claim is listed as lapsed…
    let listed = db
        .lapsed_claims(now, now - chrono::Duration::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].dataset.as_str(), listed[0].claimed_by.as_str()),
        ("orders", "agent-a")
    );
    assert_eq!(listed[0].scheduled_at, tick.trunc_subsecs(6));
    // …outside the horizon it is not.
    assert!(
        db.lapsed_claims(now, now - chrono::Duration::seconds(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Three agents race to take it over: one wins.
    assert_eq!(claim_race(db, &orders, tick, 3, held).await, 1);
    assert!(
        !db.renew_claim(&orders, tick, "agent-a", held)
            .await
            .unwrap(),
        "the old holder has lost it"
    );
    assert!(
        db.lapsed_claims(now, now - chrono::Duration::hours(1), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A finished run is never taken over, lease or not.
    let other = now - chrono::Duration::minutes(1);
    assert!(
        db.claim_scheduled_run(&orders, other, "agent-a", lapsed)
            .await
            .unwrap()
    );
    db.finish_claim(&orders, other).await.unwrap();
    assert!(
        !db.claim_scheduled_run(&orders, other, "agent-b", held)
            .await
            .unwrap()
    );
    assert!(
        db.lapsed_claims(Utc::now(), now - chrono::Duration::hours(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn outbox_enqueue_due_and_mark(db: &TestRegistry) {
    let payload = |n: i32| serde_json::json!({"summary": format!("orders failing ({n})"), "severity": "critical"});
    let first = db
        .enqueue(
            "pagerduty",
            &payload(1),
            Some("warden/orders.row_count/2026-11-19"),
        )
        .await
        .unwrap();
    let second = db.enqueue("slack", &payload(2), None).await.unwrap();
    let third = db.enqueue("slack", &payload(3), None).await.unwrap();
    assert!(first < second && second < third);

    let soon = Utc::now() + chrono::Duration::seconds(1);
    let due = db.due(soon, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|e| e.id).collect::<Vec<_>>(),
        [first, second, third]
    );
    assert_eq!(due[0].payload, payload(1));
    assert_eq!(
        due[0].dedup_key.as_deref(),
        Some("warden/orders.row_count/2026-11-19")
    );
    assert_eq!((due[0].attempts, due[0].status), (0, OutboxStatus::Pending));
    assert_eq!(db.due(soon, 2).await.unwrap().len(), 2);
    assert!(
        db.due(Utc::now() - chrono::Duration::hours(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.pending_by_receiver().await.unwrap(),
        [("pagerduty".to_owned(), 1), ("slack".to_owned(), 2)]
    );

    let retry_at = Utc::now() + chrono::Duration::minutes(5);
    db.mark_failed(first, retry_at, "503 Service Unavailable")
        .await
        .unwrap();
    db.mark_delivered(second).await.unwrap();
    db.mark_dead(third, "400 Bad Request: invalid routing key")
        .await
        .unwrap();

    assert!(
        db.due(soon, 10).await.unwrap().is_empty(),
        "retried later, delivered, dead"
    );
    let later = db.due(retry_at, 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!((later[0].id, later[0].attempts), (first, 1));
    assert_eq!(
        later[0].last_error.as_deref(),
        Some("503 Service Unavailable")
    );

    let dead = db.dead_letters(10).await.unwrap();
    assert_eq!(
        dead.iter()
            .map(|e| (e.id, e.status, e.attempts))
            .collect::<Vec<_>>(),
        [(third, OutboxStatus::Dead, 1)]
    );
    assert!(
        matches!(
            db.mark_delivered(second).await,
            Err(RegistryError::NotFound { .. })
        ),
        "settled twice"
    );
    assert!(matches!(
        db.mark_failed(third, retry_at, "x").await,
        Err(RegistryError::NotFound { .. })
    ));
    assert_eq!(
        db.pending_by_receiver().await.unwrap(),
        [("pagerduty".to_owned(), 1)]
    );
}

async fn outbox_claims_are_leased(db: &TestRegistry) {
    for n in 0..10 {
        db.enqueue("slack", &serde_json::json!({ "n": n }), None)
            .await
            .unwrap();
    }
    let now = Utc::now() + chrono::Duration::seconds(1);
    let lease_until = now + chrono::Duration::minutes(1);
    // Three deliverers at once: every entry goes to exactly one of them.
    let deliverers = (0..3).map(|_| {
        let registry = db.registry.clone();
        tokio::spawn(async move { registry.claim_due(now, lease_until, 4).await })
    });
    let mut claimed: Vec<i64> = Vec::new();
    for batch in futures::future::join_all(deliverers).await {
        let batch = batch.unwrap().unwrap();
        assert!(batch.len() <= 4);
        assert!(
            batch
                .iter()
                .all(|e| e.next_attempt_at == stored(lease_until))
        );
        claimed.extend(batch.iter().map(|e| e.id));
    }
    claimed.sort_unstable();
    claimed.dedup();
    assert_eq!(claimed.len(), 10, "all claimed once: {claimed:?}");
    assert!(
        db.claim_due(now, lease_until, 10).await.unwrap().is_empty(),
        "leased"
    );
    // A deliverer that died: its entries come back when the lease ends.
    assert_eq!(
        db.claim_due(lease_until, lease_until + chrono::Duration::minutes(1), 20)
            .await
            .unwrap()
            .len(),
        10
    );
}

async fn reopening_keeps_data_and_schema(db: &TestRegistry) {
    db.ping().await.unwrap();
    db.record_run(&[record("orders.row_count", None, 7.0, at(0))])
        .await
        .unwrap();
    // Migrations already applied are skipped.
    let again = Registry::open(&db.url).await.unwrap();
    again.ping().await.unwrap();
    assert_eq!(again.engine(), db.engine());
    assert_eq!(
        again
            .history(&check("orders.row_count"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    again.close().await;
    assert!(again.ping().await.unwrap_err().is_unavailable());
}

#[tokio::test]
async fn a_postgres_registry_that_is_down_is_a_clear_error() {
    let port = free_port();
    let url = format!("postgres://warden:hunter2@127.0.0.1:{port}/registry");
    let err = Registry::open(&url).await.unwrap_err();
    assert!(err.is_unavailable());
    assert_eq!(
        err.to_string(),
        format!(
            "registry postgres://warden:***@127.0.0.1:{port}/registry unreachable: connection refused"
        )
    );
}

#[tokio::test]
async fn a_sqlite_registry_that_cannot_be_opened_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/missing-dir/registry.db", dir.path().display());
    let err = Registry::open(&url).await.unwrap_err();
    assert!(err.is_unavailable());
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("registry {url} unreachable: ")),
        "{message}"
    );
    assert!(
        message.contains("unable to open database file"),
        "{message}"
    );
}

#[tokio::test]
async fn other_registry_urls_are_refused() {
    let err = Registry::open("mysql://u:pw@localhost/registry")
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::InvalidUrl { .. }), "{err}");
    assert!(!err.to_string().contains("pw@"), "{err}");
}

#[tokio::test]
async fn an_in_memory_registry_works() {
    let registry = Registry::open("sqlite::memory:").await.unwrap();
    registry
        .record_run(&[record("orders.row_count", None, 1.0, at(0))])
        .await
        .unwrap();
    assert_eq!(
        registry
            .history(&check("orders.row_count"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// An in-memory registry has no file, so it takes no lock file either: none
/// appears in the working directory (where sqlx's made-up name for the
/// database, `file:sqlx-in-memory-<n>`, used to get a `.lock` beside it).
#[tokio::test]
async fn an_in_memory_registry_creates_no_file() {
    let stray = || -> Vec<String> {
        std::fs::read_dir(".")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with("file:") || name.contains("memory"))
            .collect()
    };
    assert_eq!(stray(), Vec::<String>::new(), "left by an earlier open");
    for url in [
        "sqlite::memory:",
        "sqlite://:memory:",
        "sqlite://?mode=memory",
    ] {
        let registry = Registry::open(url).await.unwrap();
        registry.ping().await.unwrap();
        registry.close().await;
        assert_eq!(stray(), Vec::<String>::new(), "{url}");
    }
}

/// A SQLite registry's commits leave its WAL to the registry's own
/// checkpoints, which write it back into the database file soon after: a
/// copy of the file alone (as a careless backup takes it) then holds what
/// was committed, while the agent is still running.
#[tokio::test]
async fn a_sqlite_registry_writes_its_wal_back_soon_after_commits() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.db");
    let registry = Registry::open(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    let runs: Vec<_> = (0..200)
        .map(|h| record("orders.row_count", None, f64::from(h), at(h.into())))
        .collect();
    registry.record_run(&runs).await.unwrap();
    // What a copy of the database file alone holds, opened as a registry.
    let copied = async |n: usize| {
        let copy = dir.path().join(format!("copy-{n}.db"));
        std::fs::copy(&file, &copy).unwrap();
        let opened = Registry::open(&format!("sqlite://{}", copy.display()))
            .await
            .unwrap();
        let rows = count_rows(&opened, "orders.row_count").await;
        opened.close().await;
        rows
    };
    // The registry stays in use meanwhile: when its last connection closes,
    // SQLite writes the WAL back by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for n in 0.. {
        registry.ping().await.unwrap();
        let rows = copied(n).await;
        if rows == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database file alone holds {rows} of 200 results after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The registry goes on writing after its checkpoints.
    registry
        .record_run(&[record("orders.row_count", None, 1.0, at(500))])
        .await
        .unwrap();
    assert_eq!(count_rows(&registry, "orders.row_count").await, 201);
    registry.close().await;
}

/// The status page's reads: the last N values of every check in one
/// statement (errors, which have no value, left out), and one check's
/// results since a time, newest first.
async fn chart_reads_take_the_last_values_and_a_range(db: &TestRegistry) {
    for h in 0..40 {
        let mut runs = vec![record("orders.row_count", None, f64::from(h), at(h.into()))];
        if h % 2 == 0 {
            runs.push(record(
                "events.row_count",
                Some("2026-11-19"),
                1.0,
                at(h.into()),
            ));
        }
        if h == 39 {
            runs.push(RunRecord::new(
                result("orders.nulls", None, Outcome::Error, None),
                at(h.into()),
            ));
        }
        db.record_run(&runs).await.unwrap();
    }
    let recent = db.recent_results_all(30).await.unwrap();
    let of = |id: &str| -> Vec<f64> {
        recent
            .iter()
            .filter(|r| r.result.check == id)
            .map(|r| r.result.observed.unwrap())
            .collect()
    };
    let orders = of("orders.row_count");
    assert_eq!(orders.len(), 30);
    assert_eq!(orders.first(), Some(&10.0), "oldest first");
    assert_eq!(orders.last(), Some(&39.0));
    assert_eq!(of("events.row_count").len(), 20);
    assert!(
        of("orders.nulls").is_empty(),
        "an error has no value to draw"
    );

    let since = db
        .results_since(&check("orders.row_count"), at(35), 100)
        .await
        .unwrap();
    let values: Vec<f64> = since.iter().map(|r| r.result.observed.unwrap()).collect();
    assert_eq!(values, [39.0, 38.0, 37.0, 36.0, 35.0]);
    let capped = db
        .results_since(&check("orders.row_count"), at(0), 3)
        .await
        .unwrap();
    assert_eq!(capped.len(), 3);
    assert_eq!(capped[0].scheduled_at, at(39), "the newest kept");
}

async fn a_datasets_partitions_come_with_their_history(db: &TestRegistry) {
    use PartitionState::*;
    let orders = dataset("orders");
    for (i, p) in ["2026-11-17", "2026-11-18", "2026-11-19"]
        .iter()
        .enumerate()
    {
        let gate = format!("g{i}");
        db.transition(&orders, p, StateChange::new(Validating, "gate").gate(&gate))
            .await
            .unwrap();
        db.transition(
            &orders,
            p,
            StateChange::new(Quarantined, "gate")
                .gate(&gate)
                .reason("row_count failed"),
        )
        .await
        .unwrap();
    }
    db.transition(
        &orders,
        "2026-11-19",
        StateChange::new(Passed, "ana").reason("late rows are expected"),
    )
    .await
    .unwrap();
    db.transition(
        &dataset("events"),
        "2026-11-19",
        StateChange::new(Validating, "gate"),
    )
    .await
    .unwrap();

    let parts = db.dataset_partitions("orders", 2).await.unwrap();
    let keys: Vec<&str> = parts.iter().map(|p| p.partition.as_str()).collect();
    assert_eq!(
        keys,
        ["2026-11-19", "2026-11-18"],
        "newest first, at most 2"
    );
    assert_eq!(parts[0].state, Passed);
    let moves: Vec<(PartitionState, &str, Option<&str>)> = parts[0]
        .history
        .iter()
        .map(|t| (t.to, t.actor.as_str(), t.reason.as_deref()))
        .collect();
    assert_eq!(
        moves,
        [
            (Validating, "gate", None),
            (Quarantined, "gate", Some("row_count failed")),
            (Passed, "ana", Some("late rows are expected")),
        ]
    );
    assert_eq!(parts[1].history.len(), 2, "each partition its own history");
    assert!(
        db.dataset_partitions("nothing", 5)
            .await
            .unwrap()
            .is_empty()
    );
}
