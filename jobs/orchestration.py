"""How Airflow launches the jobs, the same way in every DAG.

Spark jobs: one SparkSubmitOperator each; `spark_default` decides where they
run (AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "local[*]"}'
locally, a cluster's master URL in a deployment). Torch jobs (no Spark): a
`python -m jobs.<job>` on the `gpu` queue and pool, so a deployment routes them
to GPU workers. Every job gets the run's logical date, never now().
Kept out of dags/ so DAG files stay wiring only; nothing heavy imports here.
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import sys

from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.config import ENV_ARTIFACTS_ROOT, ENV_LAKEHOUSE_ROOT, LakehouseConfig

JOBS_DIR = pathlib.Path(__file__).resolve().parent
LAKEHOUSE = os.environ.get(ENV_LAKEHOUSE_ROOT, LakehouseConfig.root)
ARTIFACTS = os.environ.get(ENV_ARTIFACTS_ROOT, ArtifactStore.root)
# The Airflow connection (type aws) whose credentials and endpoint the jobs use for s3:// roots; unset: the
# workers' own AWS_* environment (or instance role) applies.
ENV_OBJECT_STORE_CONN = "TIGERTWIN_OBJECT_STORE_CONN"
OBJECT_STORE_CONN = os.environ.get(ENV_OBJECT_STORE_CONN)
# The run's date: asset-triggered runs have no logical date in Airflow 3, so fall back to run_after.
RUN_DATE = "{{ (logical_date or dag_run.run_after).strftime('%Y-%m-%d') }}"

DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=20),
    "execution_timeout": dt.timedelta(hours=2),
}
GPU_QUEUE = "gpu"  # a deployment routes these tasks to GPU workers (Celery/K8s queue)
GPU_POOL = "gpu"  # and caps how many run at once (`airflow pools set gpu 1 ...`)


def _routing(queue: str | None) -> dict:
    return {"queue": queue, "pool": GPU_POOL} if queue == GPU_QUEUE else ({"queue": queue} if queue else {})


def _env() -> dict[str, str]:
    return {"PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
            ENV_LAKEHOUSE_ROOT: LAKEHOUSE, ENV_ARTIFACTS_ROOT: ARTIFACTS, **object_store_env(OBJECT_STORE_CONN)}


def object_store_env(conn_id: str | None) -> dict[str, str]:
    """The AWS_* variables a job reads for s3:// roots, from the Airflow connection `conn_id` (type aws: login =
    access key, password = secret key, extra {"endpoint_url": ..., "region_name": ...}); none without one.
    Templates, rendered when the task runs: the secret stays in Airflow's connection store (its value is
    masked in task logs), never in the DAG file or the scheduler's environment."""
    if not conn_id:
        return {}
    conn = f"conn.get({conn_id!r})"
    endpoint = f"{conn}.extra_dejson.get('endpoint_url', '')"
    return {
        "AWS_ACCESS_KEY_ID": f"{{{{ {conn}.login or '' }}}}",
        "AWS_SECRET_ACCESS_KEY": f"{{{{ {conn}.password or '' }}}}",
        "AWS_REGION": f"{{{{ {conn}.extra_dejson.get('region_name', 'us-east-1') }}}}",
        "AWS_ENDPOINT_URL": f"{{{{ {endpoint} }}}}",
        "AWS_ALLOW_HTTP": f"{{{{ 'true' if {endpoint}.startswith('http://') else 'false' }}}}",
    }


def spark_job(task_id: str, job: str, args: list[str], *, queue: str | None = None, **kwargs):
    """A spark-submit of `jobs/<job>.py` with the run's logical date and the lakehouse root."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    return SparkSubmitOperator(
        task_id=task_id,
        application=str(JOBS_DIR / f"{job}.py"),
        application_args=[*args, "--run-date", RUN_DATE, "--lakehouse", LAKEHOUSE],
        conn_id="spark_default",
        name=f"tigertwin-{job}",
        # Python workers must import this project: run them on the interpreter that has it.
        env_vars=_env(),
        **_routing(queue),
        **kwargs,
    )


def python_job(task_id: str, job: str, args: list[str], *, queue: str | None = None, **kwargs):
    """`python -m jobs.<job>` (no Spark) with the run's date, the lakehouse and the artifacts root."""
    import shlex

    from airflow.providers.standard.operators.bash import BashOperator

    command = [sys.executable, "-m", f"jobs.{job}", *args, "--run-date", RUN_DATE,
               "--lakehouse", LAKEHOUSE, "--artifacts", ARTIFACTS]
    return BashOperator(
        task_id=task_id,
        bash_command=" ".join(a if "{{" in a else shlex.quote(a) for a in command),
        cwd=str(JOBS_DIR.parent),
        env=_env(),
        append_env=True,
        **_routing(queue),
        **kwargs,
    )


def torch_job(task_id: str, job: str, args: list[str], *, queue: str | None = GPU_QUEUE, **kwargs):
    """A torch job: `python_job` on the GPU queue and pool by default."""
    return python_job(task_id, job, args, queue=queue, **kwargs)


def table_asset(table: str):
    """The Airflow Asset of a catalog table (`gold.user_clusters` -> file:///.../gold/user_clusters)."""
    from airflow.sdk import Asset

    layer, name = table.split(".", 1)
    if "://" in LAKEHOUSE:
        return Asset(name=table, uri=f"{LAKEHOUSE.rstrip('/')}/{layer}/{name}")
    # percent-encoded, so a root with spaces or '#' still gives every table its own URI
    return Asset(name=table, uri=(pathlib.Path(os.path.abspath(LAKEHOUSE)) / layer / name).as_uri())


def rqvae_branch(train_task: str, assign_task: str):
    """A branch task: train a new RQ-VAE (asked, none yet, or too many new items) or go straight to assignment."""
    from airflow.sdk import task

    @task.branch(task_id="decide_rqvae_retrain")
    def decide(params=None) -> str:
        from pipelines.items.rqvae_job import retrain_decision
        from pipelines.lakehouse.catalog import Catalog
        from pipelines.lakehouse.config import LakehouseConfig

        retrain, reason = retrain_decision(Catalog(LakehouseConfig(root=LAKEHOUSE)), ArtifactStore(root=ARTIFACTS),
                                           bool(params["retrain_rqvae"]), float(params["retrain_threshold"]))
        print(f"RQ-VAE {'retrain' if retrain else 'kept'}: {reason}")
        return train_task if retrain else assign_task

    return decide()


def upstream_check(tables: list[str], max_age_hours: int = 36):
    """Fails the run with one clear message when an input table is missing, empty or stale."""
    from airflow.sdk import task

    @task(task_id="check_upstream_tables", retries=0)
    def check(dag_run=None, logical_date=None) -> None:
        from airflow.exceptions import AirflowFailException

        from pipelines.errors import StaleUpstreamError
        from pipelines.lakehouse.catalog import Catalog
        from pipelines.lakehouse.freshness import require_fresh

        as_of = logical_date or dag_run.run_after
        try:
            require_fresh(Catalog(LakehouseConfig(root=LAKEHOUSE)), tables, as_of, dt.timedelta(hours=max_age_hours))
        except StaleUpstreamError as exc:
            raise AirflowFailException(str(exc)) from None  # no retry: retrying cannot fix the upstream

    return check()


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
