//! The publication gate through `warden::gate::GateService`, on a real
//! warehouse and a real registry: every case runs with a SQLite warehouse and
//! registry, and with PostgreSQL for both (`WARDEN_TEST_POSTGRES_URL`;
//! skipped with a note when unset). `gate/http.rs` drives the same through
//! the HTTP API, the `warden gate`/`warden publish` commands, and a
//! `warden run` killed in the middle of a gate.

mod http;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::Utc;
use warden::check::Outcome;
use warden::domain::{Caller, DatasetName};
use warden::gate::{
    ABANDONED, Admission, Gate, GateError, GateOptions, GateService, NewGate, OverrideRequest,
    PublishRequest, Start,
};
use warden::registry::{GateBasis, GateStatus, PartitionState, Transition};

use crate::support::agent::eventually;
use crate::support::gate::{Project, Setup, request};

const WAIT: Duration = Duration::from_secs(60);

on_both_setups!(
    stage_gate_publish_and_consumers_read_the_last_good_partition,
    repeats_replay_the_decision_without_running_the_checks,
    fifty_concurrent_gates_over_ten_partitions_stay_consistent,
    agents_sharing_a_registry_take_turns_on_a_partition,
    a_backfill_keeps_the_old_publication_until_the_new_one,
    errors_deny_and_a_repeat_evaluates_again,
    a_gate_past_its_deadline_denies_with_timeout,
    an_agent_restarted_mid_gate_denies_it_and_frees_the_partition,
    a_registry_that_is_down_denies,
    bad_requests_name_their_field,
    an_error_or_a_timeout_returns_the_partition_to_its_state_before,
    a_breach_records_its_quarantine_alert_with_the_decision,
    a_partition_later_than_the_current_one_is_refused,
    an_empty_partition_is_a_breach_unless_the_dataset_allows_it,
    any_agent_sharing_the_registry_sweeps_an_abandoned_gate,
);

async fn publish(p: &Project, svc: &GateService, day: &str, gate: &Gate) -> Result<(), GateError> {
    svc.publish(
        &p.config,
        "orders",
        day,
        PublishRequest {
            gate_id: gate.gate_id.clone(),
            by: Some("etl".into()),
        },
        &Caller::Open,
    )
    .await
    .map(drop)
}

async fn gate(p: &Project, svc: &GateService, partition: &str, run_id: &str) -> Gate {
    let submitted = svc
        .submit(
            p.config.clone(),
            p.runner.clone(),
            request("orders", partition, Some(run_id)),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("gate {partition} {run_id}: {e}"));
    svc.wait(&submitted.gate_id, WAIT).await.unwrap()
}

fn states(history: &[Transition]) -> Vec<&'static str> {
    history.iter().map(|t| t.to.as_str()).collect()
}

/// Every change starts where the previous one ended, and each gate's
/// decision directly follows its own `validating`.
fn assert_valid_history(history: &[Transition]) {
    let mut previous = None;
    for (i, t) in history.iter().enumerate() {
        assert_eq!(t.from, previous, "transition {i} of {history:#?}");
        previous = Some(t.to);
        if matches!(t.to, PartitionState::Passed | PartitionState::Quarantined) && t.actor == "gate"
        {
            let before = &history[i - 1];
            assert_eq!(before.to, PartitionState::Validating, "{history:#?}");
            assert_eq!(before.gate_id, t.gate_id, "interleaved gates: {history:#?}");
        }
    }
}

async fn stage_gate_publish_and_consumers_read_the_last_good_partition(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    let svc = p.service("agent-1");
    let orders = DatasetName::parse("orders").unwrap();
    p.stage_good("2026-11-19", 1).await;
    p.stage_bad("2026-11-20", 10).await;

    // The good partition: allowed, swapped in, published.
    let good = gate(&p, &svc, "2026-11-19", "run-19").await;
    assert_eq!(good.status, GateStatus::Allowed, "{good:#?}");
    assert_eq!(good.basis, Some(GateBasis::Checks));
    assert_eq!(good.progress, 1.0);
    assert!(good.reasons.is_empty(), "{:?}", good.reasons);
    let outcomes: BTreeMap<&str, Outcome> = good
        .results
        .iter()
        .map(|r| (r.check.as_str(), r.outcome))
        .collect();
    // Partition checks ran on the staging table; freshness (whole relation)
    // does not run in a gate; the non-blocking coupon check failed and did
    // not deny.
    assert_eq!(
        outcomes,
        BTreeMap::from([
            ("orders.row_count", Outcome::Pass),
            ("orders.null_rate_customer_id", Outcome::Pass),
            ("orders.unique_order_id", Outcome::Pass),
            ("orders.null_rate_coupon", Outcome::Fail),
        ])
    );
    assert!(
        good.results
            .iter()
            .all(|r| r.partition.as_deref() == Some("2026-11-19"))
    );
    let record = p
        .registry
        .partition(&orders, "2026-11-19")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, PartitionState::Passed);
    p.swap("2026-11-19").await;
    publish(&p, &svc, "2026-11-19", &good).await.unwrap();
    let published = svc.published(&p.config, "orders").await.unwrap();
    assert_eq!(
        (published.partition.as_str(), published.gate_id.as_str()),
        ("2026-11-19", good.gate_id.as_str())
    );
    // Publishing again with the same gate changes nothing.
    publish(&p, &svc, "2026-11-19", &good).await.unwrap();

    // The bad partition: denied for a breach, quarantined, owner told once.
    let bad = gate(&p, &svc, "2026-11-20", "run-20").await;
    assert_eq!(bad.status, GateStatus::Denied, "{bad:#?}");
    assert_eq!(bad.basis, Some(GateBasis::Checks));
    assert_eq!(bad.reasons.len(), 1, "{:?}", bad.reasons);
    assert!(
        bad.reasons[0].starts_with("orders.null_rate_customer_id failed: "),
        "{:?}",
        bad.reasons
    );
    let view = svc
        .partition(&p.config, "orders", "2026-11-20")
        .await
        .unwrap();
    assert_eq!(view.record.state, PartitionState::Quarantined);
    assert_eq!(states(&view.record.history), ["validating", "quarantined"]);
    let quarantine = &view.record.history[1];
    assert_eq!(quarantine.actor, "gate");
    assert_eq!(quarantine.gate_id.as_deref(), Some(bad.gate_id.as_str()));
    assert_eq!(quarantine.reason.as_deref(), Some(bad.reasons[0].as_str()));
    assert_eq!(view.gates.len(), 1);
    assert_eq!(view.gates[0].gate_id, bad.gate_id);
    {
        let seen = p.quarantines.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:#?}");
        assert_eq!(seen[0].dataset, "orders");
        assert_eq!(seen[0].partition, "2026-11-20");
        assert_eq!(seen[0].gate_id, bad.gate_id);
        assert_eq!(seen[0].owner.as_deref(), Some("revenue-team"));
        assert_eq!(seen[0].tier, Some(1));
        assert_eq!(seen[0].basis, GateBasis::Checks);
    }

    // Publishing the denied partition is refused; consumers still read the
    // last good one.
    let err = publish(&p, &svc, "2026-11-20", &bad).await.unwrap_err();
    assert_eq!(err.status(), 409, "{err}");
    assert!(err.to_string().contains("denied it (checks)"), "{err}");
    let err = publish(&p, &svc, "2026-11-20", &good).await.unwrap_err();
    assert_eq!(err.status(), 409, "{err}");
    assert!(
        err.to_string()
            .contains("was for orders partition `2026-11-19`"),
        "{err}"
    );
    assert_eq!(
        svc.published(&p.config, "orders").await.unwrap().partition,
        "2026-11-19"
    );

    // A person reviews it and overrides; the same request now allows, and
    // the partition can be published.
    let view = svc
        .override_(
            &p.config,
            "orders",
            "2026-11-20",
            OverrideRequest {
                decision: "allow".into(),
                reason: "the missing customer is a known test order".into(),
                by: Some("ana".into()),
            },
            &Caller::Open,
        )
        .await
        .unwrap();
    assert_eq!(view.record.state, PartitionState::Passed);
    let last = view.record.history.last().unwrap();
    assert_eq!(
        (last.actor.as_str(), last.reason.as_deref()),
        ("ana", Some("the missing customer is a known test order"))
    );
    let replay = gate(&p, &svc, "2026-11-20", "run-20").await;
    assert_eq!(replay.gate_id, bad.gate_id);
    assert_eq!(
        (replay.status, replay.basis),
        (GateStatus::Allowed, Some(GateBasis::Override))
    );
    assert_eq!(
        replay.reasons.last().unwrap(),
        "quarantine overridden by ana: the missing customer is a known test order"
    );
    publish(&p, &svc, "2026-11-20", &replay).await.unwrap();
    assert_eq!(
        svc.published(&p.config, "orders").await.unwrap().partition,
        "2026-11-20"
    );

    let metrics = p.metrics.render();
    for line in [
        "warden_gate_decisions_total{dataset=\"orders\",decision=\"allow\"} 1",
        "warden_gate_decisions_total{dataset=\"orders\",decision=\"deny\"} 1",
        "warden_gate_duration_seconds_count{dataset=\"orders\"} 2",
        "warden_queue_depth{stage=\"gate\"} 0",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    p.finish().await;
}

async fn repeats_replay_the_decision_without_running_the_checks(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    let svc = p.service("agent-1");
    p.stage_good("2026-11-19", 1).await;
    let first = gate(&p, &svc, "2026-11-19", "r1").await;
    assert_eq!(first.status, GateStatus::Allowed);

    let statements = p.runner.statement_count();
    let again = gate(&p, &svc, "2026-11-19", "r1").await;
    assert_eq!(again, first);
    assert_eq!(
        p.runner.statement_count(),
        statements,
        "the checks ran again"
    );

    // The Idempotency-Key finds the gate too; reused for another body it is
    // refused (422).
    let submit = |partition: &str, run_id: Option<&str>, key: Option<&str>| {
        svc.submit(
            p.config.clone(),
            p.runner.clone(),
            request("orders", partition, run_id),
            key.map(str::to_owned),
        )
    };
    let keyed = submit("2026-11-19", Some("r2"), Some("key-1"))
        .await
        .unwrap();
    assert_ne!(keyed.gate_id, first.gate_id);
    let keyed = svc.wait(&keyed.gate_id, WAIT).await.unwrap();
    let statements = p.runner.statement_count();
    let same = submit("2026-11-19", Some("r2"), Some("key-1"))
        .await
        .unwrap();
    assert_eq!(same, keyed);
    let err = submit("2026-11-20", Some("r2"), Some("key-1"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), 422, "{err}");
    assert!(err.to_string().contains(&keyed.gate_id), "{err}");
    // The same run id under another key is the same request.
    let other_key = submit("2026-11-19", Some("r2"), Some("key-2"))
        .await
        .unwrap();
    assert_eq!(other_key.gate_id, keyed.gate_id);
    assert_eq!(p.runner.statement_count(), statements);

    // Without a run id, a key is the only way to repeat a request.
    let a = submit("2026-11-19", None, Some("key-3")).await.unwrap();
    let b = submit("2026-11-19", None, Some("key-3")).await.unwrap();
    assert_eq!(a.gate_id, b.gate_id);
    let c = submit("2026-11-19", None, None).await.unwrap();
    let d = submit("2026-11-19", None, None).await.unwrap();
    assert_ne!(c.gate_id, d.gate_id);
    for g in [&a, &c, &d] {
        assert_eq!(
            svc.wait(&g.gate_id, WAIT).await.unwrap().status,
            GateStatus::Allowed
        );
    }
    p.finish().await;
}

async fn fifty_concurrent_gates_over_ten_partitions_stay_consistent(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    let svc = p.service("agent-1");
    let days: Vec<String> = (1..=10).map(|d| format!("2026-11-{d:02}")).collect();
    for (i, day) in days.iter().enumerate() {
        // Odd days are good, even days lack a customer.
        if i % 2 == 0 {
            p.stage_good(day, 100 * i as i64).await;
        } else {
            p.stage_bad(day, 100 * i as i64).await;
        }
    }
    // Five calls per partition: three runs, and a repeat of two of them.
    let calls: Vec<(String, String)> = days
        .iter()
        .flat_map(|day| {
            ["a", "b", "c", "a", "b"]
                .into_iter()
                .map(move |run| (day.clone(), run.to_owned()))
        })
        .collect();
    assert_eq!(calls.len(), 50);
    let tasks: Vec<_> = calls
        .iter()
        .cloned()
        .map(|(day, run)| {
            let svc = svc.clone();
            let (config, runner) = (p.config.clone(), p.runner.clone());
            tokio::spawn(async move {
                let g = svc
                    .submit(config, runner, request("orders", &day, Some(&run)), None)
                    .await
                    .unwrap();
                let g = svc.wait(&g.gate_id, WAIT).await.unwrap();
                (day, run, g)
            })
        })
        .collect();
    let mut gates: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for task in tasks {
        let (day, run, g) = task.await.unwrap();
        assert!(g.is_decided(), "{g:#?}");
        let good = days.iter().position(|d| *d == day).unwrap() % 2 == 0;
        let expected = if good {
            GateStatus::Allowed
        } else {
            GateStatus::Denied
        };
        assert_eq!(
            (g.status, g.basis),
            (expected, Some(GateBasis::Checks)),
            "{g:#?}"
        );
        gates.entry((day, run)).or_default().insert(g.gate_id);
    }
    // A repeat got the gate of its run.
    assert_eq!(gates.len(), 30);
    assert!(gates.values().all(|ids| ids.len() == 1), "{gates:#?}");

    let orders = DatasetName::parse("orders").unwrap();
    for (i, day) in days.iter().enumerate() {
        let record = p.registry.partition(&orders, day).await.unwrap().unwrap();
        assert_valid_history(&record.history);
        let decision = if i % 2 == 0 { "passed" } else { "quarantined" };
        assert_eq!(
            states(&record.history),
            [
                "validating",
                decision,
                "validating",
                decision,
                "validating",
                decision
            ],
            "{day}"
        );
        let gate_ids: BTreeSet<&str> = record
            .history
            .iter()
            .filter_map(|t| t.gate_id.as_deref())
            .collect();
        let expected: BTreeSet<&str> = ["a", "b", "c"]
            .iter()
            .map(|run| {
                gates[&(day.clone(), (*run).to_owned())]
                    .iter()
                    .next()
                    .unwrap()
                    .as_str()
            })
            .collect();
        assert_eq!(gate_ids, expected, "{day}");
    }
    assert_eq!(p.quarantines.lock().unwrap().len(), 15);
    let metrics = p.metrics.render();
    for line in [
        "warden_gate_decisions_total{dataset=\"orders\",decision=\"allow\"} 15",
        "warden_gate_decisions_total{dataset=\"orders\",decision=\"deny\"} 15",
        "warden_queue_depth{stage=\"gate\"} 0",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    p.finish().await;
}

async fn agents_sharing_a_registry_take_turns_on_a_partition(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    p.stage_good("2026-11-19", 1).await;
    let agents = [p.service("agent-1"), p.service("agent-2")];
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let svc = agents[i % 2].clone();
            let (config, runner) = (p.config.clone(), p.runner.clone());
            tokio::spawn(async move {
                let run = format!("run-{i}");
                let g = svc
                    .submit(
                        config,
                        runner,
                        request("orders", "2026-11-19", Some(&run)),
                        None,
                    )
                    .await
                    .unwrap();
                svc.wait(&g.gate_id, WAIT).await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        let g = task.await.unwrap();
        assert_eq!(g.status, GateStatus::Allowed, "{g:#?}");
    }
    let orders = DatasetName::parse("orders").unwrap();
    let record = p
        .registry
        .partition(&orders, "2026-11-19")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.history.len(), 16, "{:#?}", record.history);
    assert_valid_history(&record.history);
    p.finish().await;
}

async fn a_backfill_keeps_the_old_publication_until_the_new_one(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    let svc = p.service("agent-1");
    let orders = DatasetName::parse("orders").unwrap();
    p.stage_good("2026-11-19", 1).await;
    let first = gate(&p, &svc, "2026-11-19", "daily").await;
    publish(&p, &svc, "2026-11-19", &first).await.unwrap();

    // The backfill restages the partition with a bad row: denied, and
    // consumers keep reading the first publication.
    p.stage("2026-11-19", &[(99, None, None)]).await;
    let backfill = gate(&p, &svc, "2026-11-19", "backfill-1").await;
    assert_eq!(backfill.status, GateStatus::Denied);
    let published = p.registry.latest_published(&orders).await.unwrap().unwrap();
    assert_eq!(published.gate_id, first.gate_id);
    let err = publish(&p, &svc, "2026-11-19", &backfill)
        .await
        .unwrap_err();
    assert_eq!(err.status(), 409);
    // The first gate no longer stands behind the partition either.
    let err = publish(&p, &svc, "2026-11-19", &first).await.unwrap_err();
    assert_eq!(err.status(), 409, "{err}");

    // Fixed and gated again: the new publication replaces the old.
    p.db.exec("DELETE FROM {s}.orders_staging WHERE order_id = 99;")
        .await;
    let fixed = gate(&p, &svc, "2026-11-19", "backfill-2").await;
    assert_eq!(fixed.status, GateStatus::Allowed);
    let record = p
        .registry
        .partition(&orders, "2026-11-19")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.published_gate_id.as_deref(),
        Some(first.gate_id.as_str())
    );
    publish(&p, &svc, "2026-11-19", &fixed).await.unwrap();
    let record = p
        .registry
        .partition(&orders, "2026-11-19")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        states(&record.history),
        [
            "validating",
            "passed",
            "published",
            "validating",
            "quarantined",
            "validating",
            "passed",
            "published"
        ]
    );
    assert_valid_history(&record.history);
    assert_eq!(record.history[2].actor, "etl");
    assert_eq!(
        p.registry
            .latest_published(&orders)
            .await
            .unwrap()
            .unwrap()
            .gate_id,
        fixed.gate_id
    );
    p.finish().await;
}

async fn errors_deny_and_a_repeat_evaluates_again(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    let svc = p.service("agent-1");
    // `events` has no table yet: every check errors.
    let submit = || {
        svc.submit(
            p.config.clone(),
            p.runner.clone(),
            request("events", "batch-7", Some("load-7")),
            None,
        )
    };
    let first = submit().await.unwrap();
    let first = svc.wait(&first.gate_id, WAIT).await.unwrap();
    assert_eq!(
        (first.status, first.basis),
        (GateStatus::Denied, Some(GateBasis::Error)),
        "{first:#?}"
    );
    assert!(
        first.reasons[0].starts_with("events.row_count could not be evaluated: "),
        "{:?}",
        first.reasons
    );
    assert_eq!(first.results[0].outcome, Outcome::Error);
    // No breach, no quarantine: the partition is as before the gate (it
    // had no state).
    assert!(p.quarantines.lock().unwrap().is_empty());
    let events = DatasetName::parse("events").unwrap();
    assert_eq!(
        p.registry.partition(&events, "batch-7").await.unwrap(),
        None
    );

    // The table appears; the same request evaluates again as a new gate.
    p.db.exec("CREATE TABLE {s}.events (id BIGINT); INSERT INTO {s}.events VALUES (1);")
        .await;
    let second = submit().await.unwrap();
    assert_ne!(second.gate_id, first.gate_id);
    let second = svc.wait(&second.gate_id, WAIT).await.unwrap();
    assert_eq!(second.status, GateStatus::Allowed, "{second:#?}");
    let old = svc.get(&first.gate_id).await.unwrap();
    assert_eq!(old.retried_by.as_deref(), Some(second.gate_id.as_str()));
    assert_eq!(old.status, GateStatus::Denied);
    // The allow is final: a third request replays it.
    let third = submit().await.unwrap();
    assert_eq!(third.gate_id, second.gate_id);
    p.finish().await;
}

async fn a_gate_past_its_deadline_denies_with_timeout(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    let svc = p.service("agent-1");
    let started = std::time::Instant::now();
    let g = svc
        .submit_within(
            p.config.clone(),
            p.runner.clone(),
            request("slow", "b1", Some("r1")),
            None,
            Duration::from_millis(500),
        )
        .await
        .unwrap();
    let g = svc.wait(&g.gate_id, WAIT).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        (g.status, g.basis),
        (GateStatus::Denied, Some(GateBasis::Timeout)),
        "{g:#?}"
    );
    assert_eq!(
        g.reasons,
        ["no decision within 500ms: the checks were still running"]
    );
    // A timeout is no breach: the partition returns to its state before the
    // gate (none), and nobody is told of a quarantine.
    let slow = DatasetName::parse("slow").unwrap();
    assert_eq!(p.registry.partition(&slow, "b1").await.unwrap(), None);
    assert!(p.quarantines.lock().unwrap().is_empty());

    // A gate queued behind it on the same partition times out waiting.
    let holder = svc
        .submit_within(
            p.config.clone(),
            p.runner.clone(),
            request("slow", "b2", Some("hold")),
            None,
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    let queued = svc
        .submit_within(
            p.config.clone(),
            p.runner.clone(),
            request("slow", "b2", Some("queued")),
            None,
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    let queued = svc.wait(&queued.gate_id, WAIT).await.unwrap();
    assert_eq!(queued.basis, Some(GateBasis::Timeout));
    assert_eq!(
        queued.reasons,
        ["no decision within 300ms: it was still waiting for earlier gates on this partition"]
    );
    let holder = svc.wait(&holder.gate_id, WAIT).await.unwrap();
    assert_eq!(holder.basis, Some(GateBasis::Timeout));
    p.finish().await;
}

async fn an_agent_restarted_mid_gate_denies_it_and_frees_the_partition(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    p.stage_good("2026-11-19", 1).await;
    let orders = DatasetName::parse("orders").unwrap();
    // What a killed agent leaves behind: a running gate holding its
    // partition in `validating`, another agent's gate past its deadline, and
    // another agent's gate that is still within its deadline.
    let leave =
        |gate_id: &'static str, partition: &'static str, agent: &'static str, minutes: i64| {
            let registry = p.registry.clone();
            let orders = orders.clone();
            async move {
                let new = NewGate {
                    gate_id,
                    dataset: &orders,
                    partition,
                    run_id: "run-1",
                    request_key: None,
                    request_hash: "h",
                    agent,
                    deadline_at: Utc::now() + chrono::Duration::minutes(minutes),
                };
                let Admission::Created(record) = registry.admit_gate(&new, false).await.unwrap()
                else {
                    panic!("not admitted")
                };
                assert_eq!(record.status, GateStatus::Queued);
                assert!(matches!(
                    registry.start_gate(&record, agent).await.unwrap(),
                    Start::Started(_)
                ));
            }
        };
    leave("killed", "2026-11-19", "agent-1", 5).await;
    leave("expired", "2026-11-18", "agent-2", -1).await;
    leave("alive", "2026-11-17", "agent-2", 5).await;
    let state = |day: &'static str| {
        let registry = p.registry.clone();
        let orders = orders.clone();
        async move {
            registry
                .partition(&orders, day)
                .await
                .unwrap()
                .unwrap()
                .state
        }
    };
    assert_eq!(state("2026-11-19").await, PartitionState::Validating);

    let svc = p.service("agent-1");
    let recovered = svc.recover_on_startup(&p.config).await.unwrap();
    let ids: BTreeSet<&str> = recovered.iter().map(|g| g.gate_id.as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["killed", "expired"]));
    let killed = svc.get("killed").await.unwrap();
    assert_eq!(
        (killed.status, killed.basis),
        (GateStatus::Denied, Some(GateBasis::Error))
    );
    assert_eq!(killed.reasons, [ABANDONED]);
    // An abandoned gate is no breach: its partition returns to its state
    // before the gate (these had none), and nobody is told of a quarantine.
    let gone = |day: &'static str| {
        let registry = p.registry.clone();
        let orders = orders.clone();
        async move { registry.partition(&orders, day).await.unwrap().is_none() }
    };
    assert!(gone("2026-11-19").await);
    assert!(gone("2026-11-18").await);
    assert_eq!(state("2026-11-17").await, PartitionState::Validating);
    assert_eq!(svc.get("alive").await.unwrap().status, GateStatus::Running);
    assert!(p.quarantines.lock().unwrap().is_empty());

    // The pipeline's retry of the same run evaluates again.
    let retry = gate(&p, &svc, "2026-11-19", "run-1").await;
    assert_ne!(retry.gate_id, "killed");
    assert_eq!(retry.status, GateStatus::Allowed);
    assert_eq!(
        svc.get("killed").await.unwrap().retried_by.as_deref(),
        Some(retry.gate_id.as_str())
    );
    let record = p
        .registry
        .partition(&orders, "2026-11-19")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(states(&record.history), ["validating", "passed"]);
    assert_valid_history(&record.history);
    p.finish().await;
}

async fn a_registry_that_is_down_denies(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    p.stage_good("2026-11-19", 1).await;
    let svc = p.service("agent-1");
    // Down between the request and the decision: the gate denies, the
    // caller hears that the registry is unavailable.
    let g = svc
        .submit_within(
            p.config.clone(),
            p.runner.clone(),
            request("slow", "b1", Some("r1")),
            None,
            Duration::from_millis(800),
        )
        .await
        .unwrap();
    p.registry.close().await;
    let err = svc.wait(&g.gate_id, WAIT).await.unwrap_err();
    assert_eq!(err.status(), 503, "{err}");
    let live = svc.get(&g.gate_id).await.unwrap();
    assert_eq!(
        (live.status, live.basis),
        (GateStatus::Denied, Some(GateBasis::Error))
    );
    assert!(live.unrecorded().is_some());

    // Down at the request: no gate, 503.
    let err = svc
        .submit(
            p.config.clone(),
            p.runner.clone(),
            request("orders", "2026-11-19", Some("r2")),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 503, "{err}");
    assert!(err.is_unavailable());
    let metrics = p.metrics.render();
    assert!(
        metrics.contains("warden_gate_decisions_total{dataset=\"slow\",decision=\"deny\"} 1"),
        "{metrics}"
    );
    p.finish().await;
}

async fn bad_requests_name_their_field(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    let svc = p.service("agent-1");
    let submit = |dataset: &str, partition: &str, run_id: Option<&str>, key: Option<&str>| {
        svc.submit(
            p.config.clone(),
            p.runner.clone(),
            request(dataset, partition, run_id),
            key.map(str::to_owned),
        )
    };
    let cases: Vec<(GateError, u16, &str)> = vec![
        (
            submit("shipments", "2026-11-19", None, None)
                .await
                .unwrap_err(),
            404,
            "unknown dataset `shipments`",
        ),
        (
            submit("bad name", "2026-11-19", None, None)
                .await
                .unwrap_err(),
            400,
            "dataset: dataset name `bad name` may only hold",
        ),
        (
            submit("orders", "2026-11-19'; DROP TABLE x", None, None)
                .await
                .unwrap_err(),
            400,
            "partition: invalid partition `2026-11-19'; DROP TABLE x`: expected a day like 2026-11-20",
        ),
        (
            submit("orders", "2026-11-19T13", None, None)
                .await
                .unwrap_err(),
            400,
            "partition: invalid partition",
        ),
        (
            submit("events", "a/b", None, None).await.unwrap_err(),
            400,
            "partition: invalid partition `a/b`: dataset `events` is not partitioned",
        ),
        (
            submit("orders", "2026-11-19", Some(""), None)
                .await
                .unwrap_err(),
            400,
            "run_id: must not be empty",
        ),
        (
            submit("orders", "2026-11-19", Some("r"), Some("k\n"))
                .await
                .unwrap_err(),
            400,
            "Idempotency-Key: must not contain control characters",
        ),
    ];
    for (err, status, message) in cases {
        assert_eq!(err.status(), status, "{err}");
        assert!(
            err.to_string().starts_with(message),
            "{err}\nwanted: {message}"
        );
    }

    // Partitions and publications.
    let err = svc
        .partition(&p.config, "orders", "2026-11-19")
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.to_string().as_str()),
        (404, "orders partition `2026-11-19` has never been gated")
    );
    let err = svc.published(&p.config, "orders").await.unwrap_err();
    assert_eq!(
        (err.status(), err.to_string().as_str()),
        (404, "no partition of orders has been published yet")
    );
    let publish_with = |gate_id: &str| {
        svc.publish(
            &p.config,
            "orders",
            "2026-11-19",
            PublishRequest {
                gate_id: gate_id.to_owned(),
                by: None,
            },
            &Caller::Open,
        )
    };
    let err = publish_with("no-such-gate").await.unwrap_err();
    assert_eq!(err.status(), 409, "{err}");
    assert!(
        err.to_string().contains("gate no-such-gate does not exist"),
        "{err}"
    );
    // A gate still running has not allowed anything.
    let running = svc
        .submit_within(
            p.config.clone(),
            p.runner.clone(),
            request("slow", "b1", None),
            None,
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    let err = svc
        .publish(
            &p.config,
            "slow",
            "b1",
            PublishRequest {
                gate_id: running.gate_id.clone(),
                by: None,
            },
            &Caller::Open,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 409, "{err}");
    let override_with = |decision: &str, reason: &str, by: &str| {
        svc.override_(
            &p.config,
            "orders",
            "2026-11-19",
            OverrideRequest {
                decision: decision.to_owned(),
                reason: reason.to_owned(),
                by: Some(by.to_owned()),
            },
            &Caller::Open,
        )
    };
    let err = override_with("deny", "x", "ana").await.unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(
        err.to_string()
            .starts_with("decision: unknown decision `deny`"),
        "{err}"
    );
    let err = override_with("allow", "  ", "ana").await.unwrap_err();
    assert_eq!(err.to_string(), "reason: an override needs a reason");
    let err = override_with("allow", "ok", "").await.unwrap_err();
    assert_eq!(err.to_string(), "by: must not be empty");
    // Only a quarantined partition can be overridden.
    p.stage_good("2026-11-19", 1).await;
    let allowed = gate(&p, &svc, "2026-11-19", "r1").await;
    assert_eq!(allowed.status, GateStatus::Allowed);
    let err = override_with("allow", "ok", "ana").await.unwrap_err();
    assert_eq!(err.status(), 409, "{err}");
    assert!(
        err.to_string()
            .contains("expected it to be quarantined, but it is passed"),
        "{err}"
    );
    assert_eq!(
        svc.wait(&running.gate_id, WAIT).await.unwrap().basis,
        Some(GateBasis::Timeout)
    );
    p.finish().await;
}

async fn gate_within(
    p: &Project,
    svc: &GateService,
    dataset: &str,
    partition: &str,
    run_id: &str,
    within: Duration,
) -> Gate {
    let submitted = svc
        .submit_within(
            p.config.clone(),
            p.runner.clone(),
            request(dataset, partition, Some(run_id)),
            None,
            within,
        )
        .await
        .unwrap_or_else(|e| panic!("gate {dataset} {partition} {run_id}: {e}"));
    svc.wait(&submitted.gate_id, WAIT).await.unwrap()
}

async fn an_error_or_a_timeout_returns_the_partition_to_its_state_before(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    let svc = p.service("agent-1");
    let slow = DatasetName::parse("slow").unwrap();

    // Published on the strength of a first allow.
    p.set_slowness(false).await;
    let first = gate_within(&p, &svc, "slow", "b1", "r1", WAIT).await;
    assert_eq!(first.status, GateStatus::Allowed, "{first:#?}");
    svc.publish(
        &p.config,
        "slow",
        "b1",
        PublishRequest {
            gate_id: first.gate_id.clone(),
            by: None,
        },
        &Caller::Open,
    )
    .await
    .unwrap();

    // A re-gate that times out: no breach, so the partition is published
    // again, behind the first gate, and consumers still read it.
    p.set_slowness(true).await;
    let timed_out = gate_within(&p, &svc, "slow", "b1", "r2", Duration::from_millis(500)).await;
    assert_eq!(timed_out.basis, Some(GateBasis::Timeout), "{timed_out:#?}");
    let record = p.registry.partition(&slow, "b1").await.unwrap().unwrap();
    assert_eq!(record.state, PartitionState::Published);
    assert_eq!(record.gate_id.as_deref(), Some(first.gate_id.as_str()));
    assert_eq!(
        record.published_gate_id.as_deref(),
        Some(first.gate_id.as_str())
    );
    assert_eq!(
        states(&record.history),
        [
            "validating",
            "passed",
            "published",
            "validating",
            "published"
        ]
    );
    assert_valid_history(&record.history);
    let back = record.history.last().unwrap();
    assert_eq!(back.actor, "gate");
    let reason = back.reason.as_deref().unwrap();
    assert!(
        reason.starts_with(&format!(
            "gate {} denied on timeout (no breach, no quarantine): no decision within 500ms",
            timed_out.gate_id
        )),
        "{reason}"
    );
    let published = svc.published(&p.config, "slow").await.unwrap();
    assert_eq!(published.gate_id, first.gate_id);
    assert!(p.quarantines.lock().unwrap().is_empty());
    assert_eq!(
        p.registry
            .alert("quarantine:slow", Some("b1"))
            .await
            .unwrap(),
        None
    );

    // A new allow passes it; its publication replaces the first.
    p.set_slowness(false).await;
    let third = gate_within(&p, &svc, "slow", "b1", "r3", WAIT).await;
    assert_eq!(third.status, GateStatus::Allowed, "{third:#?}");
    svc.publish(
        &p.config,
        "slow",
        "b1",
        PublishRequest {
            gate_id: third.gate_id.clone(),
            by: None,
        },
        &Caller::Open,
    )
    .await
    .unwrap();
    let published = svc.published(&p.config, "slow").await.unwrap();
    assert_eq!(published.gate_id, third.gate_id);

    // A quarantined partition whose re-gate errors stays quarantined behind
    // the gate that quarantined it, and can still be overridden.
    p.stage_bad("2026-11-20", 10).await;
    let breach = gate(&p, &svc, "2026-11-20", "run-a").await;
    assert_eq!(breach.basis, Some(GateBasis::Checks), "{breach:#?}");
    p.db.exec("DROP TABLE {s}.orders_staging;").await;
    let errored = gate(&p, &svc, "2026-11-20", "run-b").await;
    assert_eq!(errored.basis, Some(GateBasis::Error), "{errored:#?}");
    let orders = DatasetName::parse("orders").unwrap();
    let record = p
        .registry
        .partition(&orders, "2026-11-20")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, PartitionState::Quarantined);
    assert_eq!(record.gate_id.as_deref(), Some(breach.gate_id.as_str()));
    assert_eq!(
        states(&record.history),
        ["validating", "quarantined", "validating", "quarantined"]
    );
    assert_eq!(p.quarantines.lock().unwrap().len(), 1, "one breach");
    let view = svc
        .override_(
            &p.config,
            "orders",
            "2026-11-20",
            OverrideRequest {
                decision: "allow".into(),
                reason: "known late customers".into(),
                by: Some("ana".into()),
            },
            &Caller::Open,
        )
        .await
        .unwrap();
    assert_eq!(view.record.state, PartitionState::Passed);
    let overridden = svc.get(&breach.gate_id).await.unwrap();
    assert_eq!(overridden.basis, Some(GateBasis::Override));
    p.finish().await;
}

async fn a_breach_records_its_quarantine_alert_with_the_decision(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    // A service with no hook of its own: the alert is in the registry the
    // moment the decision is.
    let svc = GateService::with_options(
        p.registry.clone(),
        p.metrics.clone(),
        GateOptions {
            agent_id: "agent-x".into(),
            ..GateOptions::default()
        },
    );
    p.stage_bad("2026-11-20", 10).await;
    assert_eq!(
        p.registry
            .alert("quarantine:orders", Some("2026-11-20"))
            .await
            .unwrap(),
        None
    );
    let denied = gate(&p, &svc, "2026-11-20", "run-1").await;
    assert_eq!(denied.basis, Some(GateBasis::Checks), "{denied:#?}");
    let alert = p
        .registry
        .alert("quarantine:orders", Some("2026-11-20"))
        .await
        .unwrap()
        .expect("the quarantine alert is recorded with the decision");
    assert_eq!(alert.state, warden::registry::AlertState::Firing);
    assert_eq!(alert.dataset.as_deref(), Some("orders"));
    assert_eq!(
        alert.details["annotations"]["gate_id"],
        denied.gate_id.as_str()
    );
    p.finish().await;
}

async fn a_partition_later_than_the_current_one_is_refused(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    let svc = p.service("agent-1");
    let today = Utc::now().date_naive();
    let tomorrow = (today + chrono::Duration::days(1)).to_string();
    let err = svc
        .submit(
            p.config.clone(),
            p.runner.clone(),
            request("orders", &tomorrow, Some("r1")),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400, "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "partition: partition `{tomorrow}` of orders is in the future: the current one is `{today}` (UTC)"
        )
    );
    let err = svc
        .submit(
            p.config.clone(),
            p.runner.clone(),
            request("orders", "9999-12-31", None),
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("partition: "), "{err}");
    let err = svc
        .publish(
            &p.config,
            "orders",
            "9999-12-31",
            PublishRequest {
                gate_id: "g".into(),
                by: None,
            },
            &Caller::Open,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400, "{err}");
    assert!(err.to_string().starts_with("partition: "), "{err}");
    // Today is not in the future: it may be gated (it has no rows: a breach).
    let g = gate(&p, &svc, &today.to_string(), "r-today").await;
    assert_eq!(g.status, GateStatus::Denied, "{g:#?}");
    assert!(svc.published(&p.config, "orders").await.is_err());
    p.finish().await;
}

async fn an_empty_partition_is_a_breach_unless_the_dataset_allows_it(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    let svc = p.service("agent-1");
    // Nothing staged for the day: every check passes on no rows (null
    // rates, unique) but the row count, and the gate's own count denies.
    let staging = format!("{}.orders_staging", p.db.schema);
    let denied = gate(&p, &svc, "2026-11-21", "run-1").await;
    assert_eq!(
        (denied.status, denied.basis),
        (GateStatus::Denied, Some(GateBasis::Checks)),
        "{denied:#?}"
    );
    assert_eq!(
        denied.reasons[0],
        format!("no rows in {staging} for 2026-11-21")
    );
    assert!(
        denied
            .results
            .iter()
            .all(|r| !r.check.contains("_gate_rows")),
        "{:?}",
        denied.results
    );
    assert_eq!(p.quarantines.lock().unwrap().len(), 1);

    // `events` (no `gate:`) with an empty table: a breach even without a
    // row_count check that could say so.
    p.db.exec("CREATE TABLE {s}.events (id BIGINT);").await;
    let events = svc
        .submit(
            p.config.clone(),
            p.runner.clone(),
            request("events", "batch-1", Some("b1")),
            None,
        )
        .await
        .unwrap();
    let events = svc.wait(&events.gate_id, WAIT).await.unwrap();
    assert_eq!(events.basis, Some(GateBasis::Checks), "{events:#?}");
    assert!(
        events
            .reasons
            .contains(&format!("no rows in {}.events for batch-1", p.db.schema)),
        "{:?}",
        events.reasons
    );

    // `slow` sets `gate: { allow_empty: true }`: its empty table passes.
    p.set_slowness(false).await;
    let allowed = gate_within(&p, &svc, "slow", "b1", "r1", WAIT).await;
    assert_eq!(allowed.status, GateStatus::Allowed, "{allowed:#?}");
    assert!(allowed.reasons.is_empty(), "{:?}", allowed.reasons);
    p.finish().await;
}

async fn any_agent_sharing_the_registry_sweeps_an_abandoned_gate(setup: Setup) {
    let Some(p) = Project::new(setup).await else {
        return;
    };
    let orders = DatasetName::parse("orders").unwrap();
    p.stage_good("2026-11-19", 1).await;
    // A published partition whose re-gate by agent `gone` was abandoned
    // 31 s past its deadline, and a gate of agent `late` 5 s past it.
    let svc = p.service("agent-1");
    let good = gate(&p, &svc, "2026-11-19", "run-0").await;
    publish(&p, &svc, "2026-11-19", &good).await.unwrap();
    let leave = |gate_id: &'static str, partition: &'static str, agent: &'static str, secs: i64| {
        let registry = p.registry.clone();
        let orders = orders.clone();
        async move {
            let new = NewGate {
                gate_id,
                dataset: &orders,
                partition,
                run_id: gate_id,
                request_key: None,
                request_hash: "h",
                agent,
                deadline_at: Utc::now() - chrono::Duration::seconds(secs),
            };
            let Admission::Created(record) = registry.admit_gate(&new, true).await.unwrap() else {
                panic!("not admitted")
            };
            assert_eq!(record.status, GateStatus::Running);
        }
    };
    leave("gone", "2026-11-19", "gone", 31).await;
    leave("late", "2026-11-18", "late", 5).await;

    // Another agent's service sweeps (not at start-up: periodically).
    let sweeper = GateService::with_options(
        p.registry.clone(),
        p.metrics.clone(),
        GateOptions {
            agent_id: "agent-2".into(),
            sweep_every: Duration::from_millis(100),
            ..GateOptions::default()
        },
    );
    let gone = eventually(
        Duration::from_secs(10),
        "the abandoned gate is swept",
        || {
            let sweeper = sweeper.clone();
            async move {
                let g = sweeper.get("gone").await.unwrap();
                g.is_decided().then_some(g)
            }
        },
    )
    .await;
    assert_eq!(
        (gone.status, gone.basis),
        (GateStatus::Denied, Some(GateBasis::Error))
    );
    assert_eq!(gone.reasons, [ABANDONED]);
    // Its partition is published again, behind the gate that allowed it.
    let record = p
        .registry
        .partition(&orders, "2026-11-19")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, PartitionState::Published);
    assert_eq!(record.gate_id.as_deref(), Some(good.gate_id.as_str()));
    assert_valid_history(&record.history);
    // Only 5 s past its deadline: not swept.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sweeper.get("late").await.unwrap().status,
        GateStatus::Running
    );
    assert!(sweeper.sweep().await.unwrap().is_empty());
    assert!(p.quarantines.lock().unwrap().is_empty());
    sweeper.shutdown().await;
    p.finish().await;
}
