"""The three DAGs end to end on MovieLens-100K with dag.test(): each task's wall time.

    python -m benchmarks.bench_pipeline [--tiger-size demo] [--tiger-epochs 2]

Airflow runs in a scratch AIRFLOW_HOME (SQLite) on Spark local[*]; the
lakehouse and artifacts go to benchmarks/.work/pipeline/. The nightly models
are kept small (stated in the results): this measures the orchestration and
the jobs' wall time, bench_tiger.py measures model quality. Writes
benchmarks/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys

from benchmarks.common import write_results
from pipelines.lakehouse.config import ENV_ARTIFACTS_ROOT, ENV_LAKEHOUSE_ROOT
from pipelines.presets import PRESETS

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WORK = ROOT / "benchmarks" / ".work" / "pipeline"
DATE = "2026-11-24"
ORDER = ("item_semantic_ids", "user_behavior_clusters", "nightly_candidates")


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
    if not (SHARED / "ml-100k" / "u.data").exists():
        raise SystemExit(f"ml-100k not found under {SHARED}")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    # the nightly lists at their real depth and length, small models (this measures the jobs, not quality)
    paper = PRESETS["paper"]
    conf = {"format": "movielens", "path": str(SHARED / "ml-100k"), **PRESETS[args.tiger_size].dag_conf(args.tiger_size),
            "tiger_epochs": args.tiger_epochs, "tiger_max_minutes": 30, "twin_epochs": 5,
            "rerank_depth": paper.rerank.depth, "final_k": paper.rerank.final_k, "rqvae_epochs": 300}
    env = {**os.environ, "AIRFLOW_HOME": str(WORK / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "local[*]"}',
           ENV_LAKEHOUSE_ROOT: str(WORK / "lakehouse"), ENV_ARTIFACTS_ROOT: str(WORK / "artifacts"),
           "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(ROOT),
           "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_pipeline", "--child", json.dumps(conf)], env=env, cwd=WORK,
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(done.stdout[-4000:] + done.stderr[-4000:])
    dags = json.loads(lines[-1][len("RESULT "):])
    for dag_id, result in dags.items():
        print(f"{dag_id} ({result['state']}, {result['dag_seconds']:.0f}s): {result['task_seconds']}")
    write_results("pipeline", {"dataset": "ml-100k", "logical_date": DATE, "conf": conf, "dags": dags,
                               "total_seconds": round(sum(d["dag_seconds"] for d in dags.values()), 1)})


if __name__ == "__main__":
    main()
