"""How Airflow launches the jobs: one SparkSubmitOperator per job, the same way everywhere.

Kept out of dags/ so DAG files stay wiring only. `spark_default` decides where
the job runs (AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "local[*]"}'
locally; a cluster's master URL in a deployment).
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import sys

JOBS_DIR = pathlib.Path(__file__).resolve().parent
LAKEHOUSE = os.environ.get("TIGERTWIN_LAKEHOUSE_ROOT", "lakehouse")

DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=20),
    "execution_timeout": dt.timedelta(hours=2),
}
GPU_QUEUE = "gpu"  # a deployment routes these tasks to GPU workers (Celery/K8s queue)


def spark_job(task_id: str, job: str, args: list[str], *, queue: str | None = None, **kwargs):
    """A spark-submit of `jobs/<job>.py` with the run's logical date and the lakehouse root."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    extra = {"queue": queue} if queue else {}
    return SparkSubmitOperator(
        task_id=task_id,
        application=str(JOBS_DIR / f"{job}.py"),
        application_args=[*args, "--run-date", "{{ ds }}", "--lakehouse", LAKEHOUSE],
        conn_id="spark_default",
        name=f"tigertwin-{job}",
        # Python workers must import this project: run them on the interpreter that has it.
        env_vars={"PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
                  "TIGERTWIN_LAKEHOUSE_ROOT": LAKEHOUSE},
        **extra,
        **kwargs,
    )


def table_asset(table: str):
    """The Airflow Asset of a catalog table (`gold.user_clusters` -> file:///.../gold/user_clusters)."""
    from airflow.sdk import Asset

    layer, name = table.split(".", 1)
    root = LAKEHOUSE if "://" in LAKEHOUSE else f"file://{os.path.abspath(LAKEHOUSE)}"
    return Asset(name=table, uri=f"{root}/{layer}/{name}")


def dag_args(**params) -> dict:
    """The `@dag(...)` arguments every tigertwin DAG shares (the schedule stays in the DAG file)."""
    import pendulum
    from airflow.sdk import Param

    return {
        "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": DEFAULT_ARGS,
        "tags": ["tigertwin"],
        "params": {
            "format": Param("synthetic", type="string", description="ingest --format"),
            "path": Param("data/synthetic", type="string", description="dataset folder"),
            **params,
        },
    }


def ingest_task():
    """Ingest of the DAG run's dataset (params format and path); idempotent per logical date."""
    return spark_job("ingest", "ingest", ["--format", "{{ params.format }}", "--path", "{{ params.path }}"])
