"""Daily `orders` with warden's publication gate: stage → gate → swap → publish.

The pipeline writes each day into a staging table (the dataset's
`gate: {table: staging.orders}`), asks warden whether that partition may be
published, swaps it into `analytics.orders` only on an allow, and then records
the publication, so consumers that read
`GET /api/v1/datasets/orders/published` move to the new day.

`warden gate` exits 0 on an allow, 1 when a blocking check failed (a breach:
retrying the same data cannot help, so the task fails without retries and the
partition stays quarantined until the data is fixed or a person overrides),
and 2 when there is no decision or the gate denied for an error or a timeout
(retrying may help: Airflow's retries apply).

Needs the `warden` binary on the workers, `WARDEN_SERVER` (or `agent.listen`
in the worker's warden.yaml) pointing at the agent, `WARDEN_API_TOKEN` when
the API has tokens, and an Airflow connection `warehouse` to the warehouse.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta

from airflow import DAG
from airflow.exceptions import AirflowException, AirflowFailException
from airflow.operators.python import PythonOperator
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

DATASET = "orders"


def gate(ds: str, run_id: str, ti, **_) -> None:
    """Asks the gate about partition `ds`; pushes the allowing gate's id."""
    # The try number is part of the run id: a retry after an error, or a
    # manual re-run once the data is fixed, is evaluated again, while the
    # client's own retries of a lost connection find the same gate.
    gate_run_id = f"{run_id}-try{ti.try_number}"
    proc = subprocess.run(
        [
            "warden", "gate", DATASET,
            "--partition", ds,
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
            f"warden quarantined {DATASET} {ds}: " + "; ".join(decision["reasons"])
        )
    raise AirflowException(f"no gate decision for {DATASET} {ds}; retrying may help")


def publish(ds: str, ti, **_) -> None:
    """Records the publication on the strength of the gate that allowed it."""
    gate_id = ti.xcom_pull(task_ids="gate", key="gate_id")
    subprocess.run(
        [
            "warden", "publish", DATASET,
            "--partition", ds,
            "--gate-id", gate_id,
            "--by", "airflow",
        ],
        check=True,
    )


with DAG(
    dag_id="orders_publish",
    schedule="0 4 * * *",
    start_date=datetime(2026, 11, 1),
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
        sql="""
            DELETE FROM staging.orders WHERE order_date = '{{ ds }}';
            INSERT INTO staging.orders
            SELECT order_id, customer_id, amount, coupon, referrer, order_date, updated_at
            FROM raw.orders WHERE order_date = '{{ ds }}';
        """,
    )

    check = PythonOperator(task_id="gate", python_callable=gate)

    # Runs only after an allow: the published table never holds rows the
    # gate has not passed.
    swap = SQLExecuteQueryOperator(
        task_id="swap",
        conn_id="warehouse",
        sql="""
            DELETE FROM analytics.orders WHERE order_date = '{{ ds }}';
            INSERT INTO analytics.orders SELECT * FROM staging.orders WHERE order_date = '{{ ds }}';
        """,
    )

    record = PythonOperator(task_id="publish", python_callable=publish)

    stage >> check >> swap >> record
