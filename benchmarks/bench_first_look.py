"""A new user's first look, timed as they would live it: `make demo` after the install, then five
one-table questions, each a fresh `tigertwin sql` process, on DuckDB (the default) and on Spark.

    python -m benchmarks.bench_first_look [--skip-demo]

The demo runs as the Makefile's `demo` target runs it (jobs.demo: synthetic data, the three DAGs with
dag.test(), tonight's candidates and the evaluation table) in a scratch folder, with its own
AIRFLOW_HOME. Targets: the demo <= 300 s on 2 cores; the slowest DuckDB answer <= 1.5 s. Merges
`demo_seconds_after_install`, `demo_task_seconds` and `analyst.sql_cli_seconds` into
benchmarks/results/pipeline.json (the DAG figures of bench_pipeline.py keep their own date).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pathlib
import shutil
import subprocess
import sys
import time

from benchmarks.common import RESULTS, airflow_env, write_results

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work" / "first_look"
QUESTIONS = {
    "count": "SELECT count(*) AS n FROM gold_candidates",
    "one_user": "SELECT * FROM gold_candidates WHERE user_id = (SELECT min(user_id) FROM gold_candidates) "
                "ORDER BY rank LIMIT 10",
    "by_source": "SELECT source, count(*) AS n FROM gold_candidates GROUP BY 1 ORDER BY 2 DESC",
    "events_per_day": "SELECT event_date, count(*) AS n FROM silver_events GROUP BY 1 ORDER BY 1 DESC LIMIT 7",
    "evaluation": "SELECT metric, value FROM ops_metrics WHERE job = 'evaluate' ORDER BY metric LIMIT 20",
}


def run_demo() -> tuple[float, str]:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "jobs.demo", "--date", "2026-01-01", "--path", str(WORK / "synthetic"),
                           "--timings", str(WORK / "timings.json")],
                          env=airflow_env(WORK, "airflow_home"), cwd=WORK, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"the demo failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return seconds, done.stdout


def ask(engine: str) -> dict[str, float]:
    """Each question as a fresh `tigertwin sql` process; wall seconds from the shell's point of view."""
    cli = str(pathlib.Path(sys.executable).parent / "tigertwin")
    seconds = {}
    for name, query in QUESTIONS.items():
        started = time.perf_counter()
        done = subprocess.run([cli, "sql", query, "--lakehouse", str(WORK / "lakehouse"), "--engine", engine],
                              env=airflow_env(WORK, "airflow_home"), capture_output=True, text=True)
        seconds[name] = round(time.perf_counter() - started, 2)
        if done.returncode:
            raise SystemExit(f"{engine}: {name} failed: {done.stderr[-2000:]}")
        if engine == "duckdb" and done.stderr.strip():
            raise SystemExit(f"{engine}: {name} printed to stderr: {done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-demo", action="store_true", help="reuse the last demo's lakehouse; time the queries")
    args = parser.parse_args()
    previous_path = RESULTS / "pipeline.json"
    previous = json.loads(previous_path.read_text()) if previous_path.exists() else {}
    # the DAG figures came from bench_pipeline.py on their own day
    previous["dags_written"] = previous.get("dags_written") or previous.get("written")
    if not args.skip_demo:
        seconds, stdout = run_demo()
        print(stdout[-3000:])
        previous["demo_seconds_after_install"] = round(seconds, 1)
        previous["demo_task_seconds"] = {dag: {task: round(s, 1) for task, s in tasks.items()} for dag, tasks
                                         in json.loads((WORK / "timings.json").read_text()).items()}
        previous["demo_written"] = dt.date.today().isoformat()
        print(f"demo: {seconds:.0f} s (target <= 300)")
    cli = {engine: ask(engine) for engine in ("duckdb", "spark")}
    analyst = previous.setdefault("analyst", {})
    analyst["sql_cli_seconds"] = cli
    analyst["sql_cli_seconds_max"] = {engine: max(s.values()) for engine, s in cli.items()}
    analyst["sql_cli_spark_over_duckdb"] = round(sum(cli["spark"].values()) / sum(cli["duckdb"].values()), 1)
    print(json.dumps(analyst["sql_cli_seconds_max"]), f"spark / duckdb: {analyst['sql_cli_spark_over_duckdb']}x")
    write_results("pipeline", previous)


if __name__ == "__main__":
    main()
