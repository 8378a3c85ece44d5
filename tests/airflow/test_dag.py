"""The example DAG in pipelines/airflow/, loaded by Airflow's own DagBag (no database,
no scheduler, no network): it must import cleanly, chain one task per step, and each
task's command, rendered for a data interval as Airflow renders it, must run against
the real `cdp` binary (CDP_BIN, set by `make test-airflow`) and record the interval.
"""

import atexit
import csv
import json
import os
import pathlib
import shutil
import subprocess
import tempfile

import pendulum
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
CDP = os.environ.get("CDP_BIN")
WORK = tempfile.mkdtemp(prefix="cdp-airflow-")
atexit.register(shutil.rmtree, WORK, ignore_errors=True)

# Before Airflow is imported: its home in a temp dir, and the DAG's settings.
os.environ["AIRFLOW_HOME"] = os.path.join(WORK, "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["CDP_PIPELINE_FILE"] = str(REPO / "pipelines" / "customer360.toml")
if CDP:
    os.environ["CDP_BIN"] = CDP

from airflow.dag_processing.dagbag import DagBag  # noqa: E402

STEPS = ["ingest", "clean", "resolve", "load"]


@pytest.fixture(scope="module")
def dag():
    bag = DagBag(dag_folder=str(REPO / "pipelines" / "airflow"))
    assert bag.import_errors == {}
    assert list(bag.dags) == ["cdp_customer360"]
    return bag.dags["cdp_customer360"]


def rendered(task, start, end):
    context = {
        "data_interval_start": pendulum.parse(start),
        "data_interval_end": pendulum.parse(end),
    }
    return task.render_template(task.bash_command, context)


def test_the_dag_imports_cleanly_with_one_task_per_step_in_order(dag):
    assert [t.task_id for t in dag.topological_sort()] == STEPS
    for before, after in zip(STEPS, STEPS[1:]):
        assert dag.get_task(before).downstream_task_ids == {after}
    assert dag.max_active_runs == 1, "one lease per pipeline: runs never overlap"


def test_each_command_passes_the_data_interval_as_airflow_renders_it(dag):
    for step in STEPS:
        command = rendered(dag.get_task(step), "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
        assert f" {step} " in command
        assert "--interval-start '2026-01-01 00:00:00+00:00'" in command
        assert "--interval-end '2026-01-02 00:00:00+00:00'" in command


@pytest.mark.skipif(not CDP, reason="CDP_BIN is not set; run through `make test-airflow`")
def test_the_commands_run_against_the_real_cli_and_record_the_interval(dag):
    env = dict(
        os.environ,
        CDP_DATA_DIR=str(REPO / "sample-data"),
        CDP_LAKE=f"file://{WORK}/lake",
        CDP_WAREHOUSE=f"duckdb://{WORK}/warehouse.duckdb",
        CDP_NO_PROGRESS="1",
    )
    # The first day of 2025 owns the sample's 2025 CRM file; the second day owns none.
    days = [("2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"), ("2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z")]
    for start, end in days:
        for step in STEPS:
            command = rendered(dag.get_task(step), start, end)
            run = subprocess.run(
                ["bash", "-c", command], cwd=WORK, env=env, capture_output=True, text=True
            )
            assert run.returncode == 0, f"{command}\n{run.stderr}"
            for line in run.stderr.splitlines():
                json.loads(line)  # --log-format json: one object a line
    status = subprocess.run(
        [CDP, "status", os.environ["CDP_PIPELINE_FILE"], "--format", "json"],
        cwd=WORK, env=env, capture_output=True, text=True, check=True,
    )
    intervals = json.loads(status.stdout)["intervals"]
    assert [i["start"] for i in intervals] == ["2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"]
    assert all(i["done"] for i in intervals)
    with open(REPO / "sample-data" / "crm" / "contacts_2025.csv", newline="") as f:
        crm_2025 = sum(1 for _ in csv.DictReader(f))
    ingest = [i["steps"]["ingest"]["figures"]["rows.crm_contacts"] for i in intervals]
    assert ingest == [crm_2025, 0]
