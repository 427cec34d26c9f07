"""`python -m jobs.demo`: the three DAGs run with `dag.test()` on synthetic data, then tonight's candidates.

Runs item_semantic_ids and user_behavior_clusters for the logical date, then
nightly_candidates (small models so it finishes in minutes on a laptop),
and prints a sample of the candidates with item titles, the evaluation table
and where the plots are. Airflow uses its own AIRFLOW_HOME (SQLite); the
Makefile's `demo` target sets the environment (see README).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import subprocess
import sys
import time

from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.config import ENV_ARTIFACTS_ROOT, ENV_LAKEHOUSE_ROOT, LakehouseConfig
from pipelines.presets import PRESETS

DAG_ORDER = ("item_semantic_ids", "user_behavior_clusters", "nightly_candidates")
DEMO_CONF = PRESETS["demo"].dag_conf("demo")  # a small TIGER, a few ranker epochs, short lists
# The demo's synthetic data: 200 users with ~80 events each over 1,200 items (about 20k events). The first
# look is about the flow, not the figures: every task's work shrinks with it (jobs.synth's defaults are
# 300 users x 120 events x 2,000 items).
DEMO_DATA = ("--users", "200", "--median-history", "80", "--items", "1200")


def run_dag(dag_id: str, date: str, conf: dict, durations: dict[str, float] | None = None) -> str:
    """dag.test() of one DAG for `date` (YYYY-MM-DD); returns the run's state and, when given a dict,
    fills it with each task's wall time in seconds."""
    from airflow.dag_processing.dagbag import DagBag

    folder = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", str(pathlib.Path(__file__).resolve().parents[1] / "dags"))
    dag = DagBag(dag_folder=folder).get_dag(dag_id)
    if dag is None:
        raise SystemExit(f"no DAG {dag_id!r} in {folder}")
    known = set(dag.params.keys())
    logical = dt.datetime.fromisoformat(date).replace(tzinfo=dt.UTC)
    run = dag.test(logical_date=logical, run_conf={k: v for k, v in conf.items() if k in known})
    if durations is not None:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session

        with create_session() as session:
            for ti in session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id,
                                                         TaskInstance.run_id == run.run_id):
                durations[ti.task_id] = float(ti.duration or 0.0)
    return str(run.state)


def migrate() -> None:
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def show(lakehouse: str, date: str, plots: str) -> None:
    from pipelines.lakehouse.catalog import Catalog
    from pipelines.lakehouse.sql import duckdb_connection

    con = duckdb_connection(Catalog(LakehouseConfig(root=lakehouse)))
    print(f"\nTonight's candidates ({date}), three users:")
    print(con.sql(f"""
        SELECT c.user_id, c.rank, i.title, c.source AS found_by, c.retriever_ranks AS ranks,
               round(c.ranker_score, 3) AS twin, round(c.score, 3) AS score
        FROM gold_candidates c JOIN silver_items i USING (item_id)
        WHERE c.run_date = DATE '{date}'
          AND c.user_id IN (SELECT DISTINCT user_id FROM gold_candidates ORDER BY 1 LIMIT 3) AND c.rank <= 5
        ORDER BY c.user_id, c.rank"""))
    print("Evaluation (test split; se: standard error over users; vs best other: paired difference in NDCG@10):")
    print(con.sql(f"""
        SELECT split_part(metric, '/', 1) AS method,
               round(max(value) FILTER (WHERE metric LIKE '%/recall@10'), 4) AS "recall@10",
               round(max(value) FILTER (WHERE metric LIKE '%/recall@10_se'
                                        AND metric NOT LIKE '%vs_best_other%'), 4) AS se,
               round(max(value) FILTER (WHERE metric LIKE '%/ndcg@10'), 4) AS "ndcg@10",
               round(max(value) FILTER (WHERE metric LIKE '%/ndcg@10_se'
                                        AND metric NOT LIKE '%vs_best_other%'), 4) AS " se",
               round(max(value) FILTER (WHERE metric LIKE '%/vs_best_other/ndcg@10'), 4) AS "vs best other",
               round(max(value) FILTER (WHERE metric LIKE '%/vs_best_other/ndcg@10_se'), 4) AS "  se"
        FROM ops_metrics WHERE job = 'evaluate' AND run_id = 'evaluate-{date}'
          AND metric NOT LIKE '%/with_id/%' GROUP BY 1 ORDER BY 4 DESC"""))
    found = sorted(str(p) for p in pathlib.Path(plots).glob("*.png"))
    found += sorted(str(p) for p in pathlib.Path(os.environ.get(ENV_ARTIFACTS_ROOT, ArtifactStore.root)).rglob("*.png"))
    print("Plots:\n  " + "\n  ".join(found))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--date", default="2026-01-01", help="logical date (default %(default)s)")
    parser.add_argument("--path", default="data/synthetic", help="synthetic data folder (made if missing)")
    parser.add_argument("--conf", default="{}", help="extra DAG params as JSON")
    parser.add_argument("--timings", help="write each DAG's task seconds here as JSON")
    args = parser.parse_args(argv)
    if not pathlib.Path(args.path, "events.parquet").exists():
        subprocess.run([sys.executable, "-m", "jobs.synth", "--out", args.path, *DEMO_DATA], check=True)
    migrate()
    conf = {"format": "synthetic", "path": str(pathlib.Path(args.path).resolve()), **DEMO_CONF,
            **json.loads(args.conf)}
    timings: dict[str, dict[str, float]] = {}
    for dag_id in DAG_ORDER:
        durations = timings.setdefault(dag_id, {})
        started = time.perf_counter()
        state = run_dag(dag_id, args.date, conf, durations)
        tasks = ", ".join(f"{task} {seconds:.0f} s" for task, seconds in
                          sorted(durations.items(), key=lambda kv: -kv[1]))
        print(f"{dag_id}: {state} in {time.perf_counter() - started:.0f} s ({tasks})", flush=True)
        if args.timings:
            pathlib.Path(args.timings).write_text(json.dumps(timings, indent=1))
        if state != "success":
            return 1
    show(os.environ.get(ENV_LAKEHOUSE_ROOT, LakehouseConfig.root), args.date, "plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
