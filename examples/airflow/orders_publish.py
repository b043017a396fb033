"""Daily `orders` with warden's publication gate: stage → gate → swap → publish.

The pipeline writes each day into a staging table (the dataset's
`gate: {table: staging.orders}`), asks warden whether that partition may be
published, swaps it into `analytics.orders` only on an allow, and then records
the publication, so consumers that read
`GET /api/v1/datasets/orders/published` move to the new day.

Which day: the run at 04:00 UTC on day D handles day D-1, which is complete
by then. The timetable is set explicitly, as a `CronTriggerTimetable` (Airflow
3's default) with a data interval of one day: the run at 04:00 on D has the
interval [D-1 04:00, D 04:00), and every task uses the day its interval
starts, `{{ data_interval_start | ds }}`. (Under the default timetable without
an interval, `{{ ds }}` is D itself, a day still loading.) A manual run with
logical date D, like `airflow dags test orders_publish D`, also handles D-1; a
manual run needs a logical date, since without one it has no data interval.
Dates are in UTC, as with warden's `agent.timezone: UTC`; for another zone,
set the timetable's `timezone` and `DAY` below to
`{{ data_interval_start.in_timezone("<zone>") | ds }}`.

`warden gate` exits 0 on an allow, 1 when a blocking check failed (a breach:
retrying the same data cannot help, so the task fails without retries and the
partition stays quarantined until the data is fixed and the day re-run, or a
person overrides), and 2 when there is no decision or the gate denied for an
error or a timeout (retrying may help: Airflow's retries apply).

Needs the `warden` binary on the workers, `WARDEN_SERVER` (or `agent.listen`
in the worker's warden.yaml) pointing at the agent, `WARDEN_API_TOKEN` when
the API has tokens, and an Airflow connection `warehouse` to the warehouse.
Runs on Airflow 3 with the standard and common-sql providers (and the one for
the warehouse, e.g. postgres).
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, CronTriggerTimetable
from airflow.sdk.exceptions import AirflowException, AirflowFailException

DATASET = "orders"

# The partition a run handles: the day its data interval starts (the day
# before the run).
DAY = "{{ data_interval_start | ds }}"


def gate(day: str, run_id: str, ti, **_) -> None:
    """Asks the gate about partition `day`; pushes the allowing gate's id."""
    # The try number is part of the run id: a retry after an error, or a
    # re-run (clearing the task) once the data is fixed, is evaluated again,
    # while the client's own retries of a lost connection find the same gate.
    gate_run_id = f"{run_id}-try{ti.try_number}"
    proc = subprocess.run(
        [
            "warden", "gate", DATASET,
            "--partition", day,
            "--run-id", gate_run_id,
            "--wait", "300s",
            "--format", "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.stderr:
        print(proc.stderr)
    if proc.returncode == 0:
        decision = json.loads(proc.stdout)
        print(f"gate {decision['gate_id']}: {decision['status']} ({decision['basis']})")
        ti.xcom_push(key="gate_id", value=decision["gate_id"])
        return
    if proc.returncode == 1:
        decision = json.loads(proc.stdout)
        raise AirflowFailException(
            f"warden quarantined {DATASET} {day}: " + "; ".join(decision["reasons"])
        )
    raise AirflowException(f"no gate decision for {DATASET} {day}; retrying may help")


def publish(day: str, ti, **_) -> None:
    """Records the publication on the strength of the gate that allowed it."""
    gate_id = ti.xcom_pull(task_ids="gate", key="gate_id")
    subprocess.run(
        [
            "warden", "publish", DATASET,
            "--partition", day,
            "--gate-id", gate_id,
            "--by", "airflow",
        ],
        check=True,
    )


with DAG(
    dag_id="orders_publish",
    # Runs at 04:00 UTC; the interval reaches one day back (see above).
    schedule=CronTriggerTimetable("0 4 * * *", timezone="UTC", interval=timedelta(days=1)),
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    catchup=True,
    max_active_runs=1,
    default_args={
        "retries": 3,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
    },
) as dag:
    # Idempotent: rerunning the day rebuilds its staged rows.
    stage = SQLExecuteQueryOperator(
        task_id="stage",
        conn_id="warehouse",
        sql=f"""
            DELETE FROM staging.orders WHERE order_date = '{DAY}';
            INSERT INTO staging.orders
            SELECT order_id, customer_id, amount, coupon, referrer, order_date, updated_at
            FROM raw.orders WHERE order_date = '{DAY}';
        """,
    )

    check = PythonOperator(task_id="gate", python_callable=gate, op_kwargs={"day": DAY})

    # Runs only after an allow: the published table never holds rows the
    # gate has not passed.
    swap = SQLExecuteQueryOperator(
        task_id="swap",
        conn_id="warehouse",
        sql=f"""
            DELETE FROM analytics.orders WHERE order_date = '{DAY}';
            INSERT INTO analytics.orders SELECT * FROM staging.orders WHERE order_date = '{DAY}';
        """,
    )

    record = PythonOperator(task_id="publish", python_callable=publish, op_kwargs={"day": DAY})

    stage >> check >> swap >> record
