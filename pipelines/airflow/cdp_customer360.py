"""cdp under Airflow: the sample Customer 360 pipeline once a day, one BashOperator task
per step, each passing the run's data interval so that ingest lands only that day's
partitions and every step records its run against the interval (`cdp status`).

Exit codes (see `cdp --help`): 0 ok, 1 failure, 2 bad usage or config, 3 quality gate
failed, 4 already running. Runs of one pipeline never overlap (one lease per pipeline),
so the DAG allows one active run; `--wait` lets a task wait out a manual run instead of
failing at once. A backfill is `cdp backfill` (or Airflow's own backfill of this DAG:
the same commands, the same warehouse state).

Set CDP_BIN (default `cdp` on PATH) and CDP_PIPELINE_FILE (default the sample pipeline
beside this folder) in the workers' environment.
"""

import os
from datetime import datetime, timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, chain

CDP = os.environ.get("CDP_BIN", "cdp")
PIPELINE = os.environ.get(
    "CDP_PIPELINE_FILE",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "customer360.toml"),
)
STEPS = ["ingest", "clean", "resolve", "load"]
# Airflow renders these as "2026-01-01 00:00:00+00:00"; cdp reads that form.
INTERVAL = (
    "--interval-start '{{ data_interval_start }}' "
    "--interval-end '{{ data_interval_end }}'"
)
WAIT_SECONDS = 600

with DAG(
    dag_id="cdp_customer360",
    description="cdp: ingest, clean, resolve, load for each day's data interval",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["cdp"],
) as dag:
    chain(
        *[
            BashOperator(
                task_id=step,
                bash_command=(
                    f"{CDP} --log-format json {step} '{PIPELINE}' {INTERVAL} --wait {WAIT_SECONDS}"
                ),
            )
            for step in STEPS
        ]
    )
