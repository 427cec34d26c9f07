"""The DAGs end to end on MovieLens-100K with dag.test(): each task's wall time; then what an analyst
sees on the resulting lakehouse (files per partition, `tigertwin sql` latency once the session is up).

    python -m benchmarks.bench_pipeline [--tiger-size demo] [--tiger-epochs 2]

Airflow runs in a scratch AIRFLOW_HOME (SQLite) on Spark local[*]; the
lakehouse and artifacts go to benchmarks/.work/pipeline/. The nightly models
are kept small (stated in the results): this measures the orchestration and
the jobs' wall time, bench_tiger.py measures model quality. Writes
benchmarks/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pathlib
import shutil
import subprocess
import sys

from benchmarks.common import RESULTS, airflow_env, write_results
from benchmarks.datasets import DATA_DIR
from pipelines.presets import PRESETS

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work" / "pipeline"
DATE = "2026-11-24"
ORDER = ("item_semantic_ids", "user_behavior_clusters", "nightly_candidates", "lakehouse_maintenance")


def child(conf: dict) -> None:
    """Runs inside the Airflow environment set up by main()."""
    from jobs.demo import migrate, run_dag

    migrate()
    out = {}
    for dag_id in ORDER:
        durations: dict[str, float] = {}
        state = run_dag(dag_id, DATE, conf, durations)
        out[dag_id] = {"state": state, "task_seconds": {k: round(v, 1) for k, v in durations.items()},
                       "dag_seconds": round(sum(durations.values()), 1)}
        print(f"{dag_id}: {state}, " + ", ".join(f"{k} {v:.0f}s" for k, v in durations.items()), flush=True)
    print("RESULT " + json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiger-size", default="demo", choices=list(PRESETS))
    parser.add_argument("--tiger-epochs", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    if not (DATA_DIR / "ml-100k" / "u.data").exists():
        raise SystemExit(f"ml-100k not found under {DATA_DIR}")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    # the nightly lists at their real depth and length, small models (this measures the jobs, not quality)
    paper = PRESETS["paper"]
    conf = {"format": "movielens", "path": str(DATA_DIR / "ml-100k"), **PRESETS[args.tiger_size].dag_conf(args.tiger_size),
            "tiger_epochs": args.tiger_epochs, "tiger_max_minutes": 30, "twin_epochs": 5,
            "rerank_depth": paper.rerank.depth, "final_k": paper.rerank.final_k, "rqvae_epochs": 300}
    env = airflow_env(WORK)
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_pipeline", "--child", json.dumps(conf)], env=env, cwd=WORK,
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(done.stdout[-4000:] + done.stderr[-4000:])
    dags = json.loads(lines[-1][len("RESULT "):])
    for dag_id, result in dags.items():
        print(f"{dag_id} ({result['state']}, {result['dag_seconds']:.0f}s): {result['task_seconds']}")
    analyst = analyst_view(WORK / "lakehouse")
    print(json.dumps(analyst, indent=1))
    previous_path = RESULTS / "pipeline.json"
    previous = json.loads(previous_path.read_text()) if previous_path.exists() else {}
    first_look = {k: v for k, v in previous.items() if k.startswith("demo_")}  # bench_first_look.py's, kept
    analyst.update({k: v for k, v in previous.get("analyst", {}).items() if k.startswith("sql_cli_")})
    write_results("pipeline", {**first_look, "dags_written": dt.date.today().isoformat(), "dataset": "ml-100k",
                               "logical_date": DATE, "conf": conf, "dags": dags,
                               "total_seconds": round(sum(d["dag_seconds"] for d in dags.values()), 1),
                               "analyst": analyst})


def analyst_view(lakehouse: pathlib.Path) -> dict:
    """Most live files in one partition per table, and each gold table's `SELECT count(*)` as `tigertwin sql`
    runs it (check, open only the named view, run), timed after the Spark session is up."""
    import time
    from collections import Counter

    import pyarrow as pa

    from pipelines.lakehouse.catalog import TABLES, Catalog
    from pipelines.lakehouse.config import LakehouseConfig, SparkConfig
    from pipelines.lakehouse.delta.commit import open_table
    from pipelines.lakehouse.spark import build_spark_session
    from pipelines.lakehouse.sql import (
        check_spark_query,
        read_only_sql,
        register_views,
        views_named_in,
    )

    catalog = Catalog(LakehouseConfig(root=str(lakehouse)))
    files_per_partition = {}
    for name in TABLES:
        table = open_table(catalog.location(name))
        if table is not None:
            adds = pa.table(table.get_add_actions(flatten=False)).to_pylist()
            counts = Counter(tuple(sorted((a.get("partition") or {}).items())) for a in adds)
            files_per_partition[name] = max(counts.values(), default=0)
    started = time.perf_counter()
    spark = build_spark_session(SparkConfig(app_name="tigertwin-sql"))
    session_seconds = time.perf_counter() - started
    query_seconds = {}
    for spec in TABLES.values():
        if not spec.name.startswith("gold.") or spec.name not in files_per_partition:
            continue
        query = f"SELECT count(*) FROM {spec.view_name}"
        started = time.perf_counter()
        check_spark_query(spark, query)
        register_views(spark, catalog, names=views_named_in(query))
        read_only_sql(spark, query).collect()
        query_seconds[spec.name] = round(time.perf_counter() - started, 2)
    spark.stop()
    return {"max_files_per_partition": files_per_partition, "sql_session_seconds": round(session_seconds, 1),
            "sql_query_seconds": query_seconds, "sql_query_seconds_max": max(query_seconds.values())}


if __name__ == "__main__":
    main()
