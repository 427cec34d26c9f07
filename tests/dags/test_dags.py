"""DAGs: they import cleanly and fast, the graphs are as meant, and dag.test() runs them end to end."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from pipelines.ingest.synthetic import SynthConfig, write_raw
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import LakehouseConfig
from pipelines.lakehouse.sql import duckdb_connection
from pipelines.presets import PRESETS

RUNNER = pathlib.Path(__file__).with_name("airflow_runner.py")
REPO = RUNNER.parents[2]


def _succeeded(result):
    """True for a successful run; otherwise the assertion shows each task's state and the log's end."""
    assert result["state"] == "success", (result.get("tasks"), result["log"][-6000:])
    return True


def _airflow(args, tmp_path, lakehouse, artifacts=None, **extra_env):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},  # object stores: through extra_env
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "local[2]"}',
        "TIGERTWIN_LAKEHOUSE_ROOT": str(lakehouse),
        "TIGERTWIN_ARTIFACTS_ROOT": str(artifacts or pathlib.Path(lakehouse).parent / "artifacts"),
        "PYSPARK_PYTHON": sys.executable,
        # spark-submit is installed beside this interpreter
        "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        **extra_env,
    }
    out = subprocess.run([sys.executable, str(RUNNER), *args], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=900)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    assert out.returncode == 0 and lines, out.stdout[-3000:] + out.stderr[-3000:]
    return {**json.loads(lines[-1][len("RESULT "):]), "log": out.stdout + out.stderr}


@pytest.fixture(scope="module")
def dag_info(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dags")
    return _airflow(["inspect"], tmp, tmp / "lakehouse")


def test_dags_import_without_errors_fast_and_light(dag_info):
    assert dag_info["errors"] == {}
    assert dag_info["parse_seconds"] < 2.0
    assert dag_info["heavy_modules"] == []  # no Spark, torch, pandas at DAG parse time


def test_task_graphs(dag_info):
    items = dag_info["dags"]["item_semantic_ids"]["tasks"]
    assert items["ingest"]["downstream"] == ["embed_items"]
    assert items["embed_items"]["downstream"] == ["decide_rqvae_retrain"]
    assert items["decide_rqvae_retrain"]["downstream"] == ["assign_semantic_ids", "train_rqvae"]
    assert items["train_rqvae"]["downstream"] == ["assign_semantic_ids"]
    assert items["embed_items"]["queue"] == items["train_rqvae"]["queue"] == "gpu"
    assert items["train_rqvae"]["pool"] == "gpu"
    assert items["embed_items"]["outlets"] == ["gold.item_embeddings"]
    assert items["assign_semantic_ids"]["outlets"] == ["gold.semantic_ids"]
    clusters = dag_info["dags"]["user_behavior_clusters"]["tasks"]
    assert clusters["ingest"]["downstream"] == ["cluster_behaviors"]
    assert clusters["cluster_behaviors"]["outlets"] == ["gold.user_clusters"]
    nightly = dag_info["dags"]["nightly_candidates"]
    tasks = nightly["tasks"]
    assert tasks["check_upstream_tables"]["downstream"] == ["train_popularity", "train_sasrec", "train_tiger"]
    assert tasks["train_tiger"]["downstream"] == ["gate_tiger"] and tasks["train_sasrec"]["downstream"] == ["gate_sasrec"]
    for before in ("gate_tiger", "gate_sasrec", "train_popularity"):  # the ranker trains on the promoted retrievers
        assert tasks[before]["downstream"] == ["train_twin"]
    chain = ["train_twin", "generate_candidates", "evaluate"]
    for a, b in zip(chain[:-1], chain[1:], strict=True):
        assert tasks[a]["downstream"] == [b]
    gpu = ("train_tiger", "train_sasrec", "train_twin", "generate_candidates")
    assert {tasks[t]["queue"] for t in gpu} == {"gpu"}
    # a training task's timeout leaves room above its default budget
    assert tasks["train_tiger"]["timeout_s"] > 60 * PRESETS["paper"].tiger_train.max_minutes
    assert tasks["generate_candidates"]["outlets"] == ["gold.candidates"]
    assert "gold.semantic_ids" in nightly["schedule"] and "gold.user_clusters" in nightly["schedule"]
    maintenance = dag_info["dags"]["lakehouse_maintenance"]
    assert maintenance["schedule"] == "@daily" and list(maintenance["tasks"]) == ["optimize", "vacuum"]
    assert maintenance["tasks"]["optimize"]["downstream"] == ["vacuum"]
    assert all(task["queue"] != "gpu" for task in maintenance["tasks"].values())
    for dag_id, dag in dag_info["dags"].items():
        if dag_id != "nightly_candidates":
            assert dag["schedule"] == "@daily"
        for task in dag["tasks"].values():
            assert task["timeout_s"]
            assert task["retries"] >= 1 or task is tasks["check_upstream_tables"]  # a stale input needs a person


TABLES = ["silver_items", "silver_events", "gold_item_embeddings", "gold_semantic_ids", "gold_user_clusters",
          "gold_user_cluster_members", "gold_candidates"]
CONF = PRESETS["test"].dag_conf("test")


def _counts(lakehouse):
    con = duckdb_connection(Catalog(LakehouseConfig(root=str(lakehouse))))
    return {t: con.sql(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


@pytest.mark.integration
def test_nightly_fails_clearly_without_upstream_tables(tmp_path):
    result = _airflow(["test", "nightly_candidates", "2026-01-02", json.dumps(CONF)], tmp_path, tmp_path / "empty")
    assert result["state"] == "failed"
    assert result["tasks"]["check_upstream_tables"] == "failed"
    assert result["tasks"]["train_tiger"] == "upstream_failed"  # nothing trains on missing inputs
    assert "upstream tables are not ready for this run" in result["log"]
    for table in ("gold.semantic_ids", "gold.user_clusters", "gold.item_embeddings", "silver.events"):
        assert f"{table}: no table at" in result["log"], table


@pytest.mark.integration
def test_dag_test_fills_every_table_and_reruns_are_idempotent(tmp_path):
    raw = write_raw(SynthConfig(n_items=60, n_users=8, median_history=20, seed=2), str(tmp_path / "raw"))
    conf = json.dumps({"path": str(pathlib.Path(raw["items"]).parent), **CONF})
    lakehouse = tmp_path / "lakehouse"
    order = ("item_semantic_ids", "user_behavior_clusters", "nightly_candidates")
    for dag_id in order:
        assert _succeeded(_airflow(["test", dag_id, "2026-01-02", conf], tmp_path, lakehouse))
    first = _counts(lakehouse)
    assert all(n > 0 for n in first.values()), first
    assert first["gold_candidates"] == 8 * PRESETS["test"].rerank.final_k
    for dag_id in order:
        assert _succeeded(_airflow(["test", dag_id, "2026-01-02", conf], tmp_path, lakehouse))
    assert _counts(lakehouse) == first
    # The reruns replaced files and appended metrics; maintenance (vacuum window 0 here) compacts, then
    # removes every file no version needs.
    assert _orphans(lakehouse) and _most_files_in_a_partition(lakehouse) > 1
    vacuum = json.dumps({"retention_hours": 0, "force_short_window": True})
    assert _succeeded(_airflow(["test", "lakehouse_maintenance", "2026-01-04", vacuum], tmp_path, lakehouse))
    assert _orphans(lakehouse) == set()
    assert _counts(lakehouse) == first
    assert _most_files_in_a_partition(lakehouse) == 1


@pytest.mark.integration
def test_the_jobs_reach_an_object_store_with_the_airflow_connections_credentials(spark, tmp_path, s3):
    """No AWS_* in the scheduler's or the tasks' environment: the DAG renders them from the connection."""
    from benchmarks.bench_cluster import FlowInputs
    from pipelines.lakehouse.local_s3 import ACCESS_KEY, SECRET_KEY
    from pipelines.lakehouse.table_io import read_table_arrow

    lakehouse = "s3://lake/airflow/lakehouse"
    catalog = Catalog(LakehouseConfig(root=lakehouse))  # this process reaches S3 with the s3 fixture's AWS_*
    inputs = FlowInputs.synthetic(tmp_path / "raw", users=10, items=40)
    inputs.write_embeddings(spark, catalog)  # what item_semantic_ids would have written
    conf = json.dumps({"path": str(inputs.raw), **CONF})
    connection = {"conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY,
                  "extra": {"endpoint_url": s3.endpoint, "region_name": "us-east-1"}}
    result = _airflow(["test", "user_behavior_clusters", "2026-01-02", conf], tmp_path, lakehouse,
                      artifacts="s3://lake/airflow/models", TIGERTWIN_OBJECT_STORE_CONN="tigertwin_s3",
                      AIRFLOW_CONN_TIGERTWIN_S3=json.dumps(connection))
    assert _succeeded(result)
    assert SECRET_KEY not in result["log"]  # rendered into the job's environment, masked in the task logs
    assert read_table_arrow(catalog, "silver.events")[0].num_rows == inputs.events
    assert read_table_arrow(catalog, "gold.user_clusters")[0].num_rows > 0


def _most_files_in_a_partition(lakehouse):
    from collections import Counter

    import pyarrow as pa
    from deltalake import DeltaTable

    counts = Counter()
    for log in pathlib.Path(lakehouse).glob("*/*/_delta_log"):
        for add in pa.table(DeltaTable(str(log.parent)).get_add_actions(flatten=False)).to_pylist():
            counts[(str(log.parent), tuple(sorted((add.get("partition") or {}).items())))] += 1
    return max(counts.values())


def _orphans(lakehouse):
    """Data files under the lakehouse that the current version of no table references."""
    from deltalake import DeltaTable

    from pipelines.lakehouse.delta import data_files

    on_disk = {str(p) for p in pathlib.Path(lakehouse).rglob("*.parquet")}
    referenced = set()
    for log in pathlib.Path(lakehouse).rglob("_delta_log"):
        referenced |= set(data_files(DeltaTable(str(log.parent)), str(log.parent)))
    return on_disk - referenced
