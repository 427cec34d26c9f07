"""Runs Airflow in its own process (own AIRFLOW_HOME, SQLite) for the DAG tests; prints one JSON line.

    python airflow_runner.py inspect
    python airflow_runner.py test DAG_ID YYYY-MM-DD '{"path": ...}'
"""

import json
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]


def inspect() -> dict:
    heavy = ("pyspark", "torch", "pandas", "deltalake", "sentence_transformers", "faiss")
    import airflow.sdk  # noqa: F401  (Airflow's own import time is not the DAG files')
    from airflow.dag_processing.dagbag import DagBag

    started = time.perf_counter()
    bag = DagBag(dag_folder=str(REPO / "dags"))
    seconds = time.perf_counter() - started
    dags = {}
    for dag_id, dag in bag.dags.items():
        dags[dag_id] = {
            "schedule": str(dag.schedule),
            "tasks": {
                t.task_id: {
                    "downstream": sorted(t.downstream_task_ids), "retries": t.retries,
                    "queue": t.queue, "pool": t.pool, "outlets": [getattr(o, "name", str(o)) for o in t.outlets],
                    "timeout_s": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                }
                for t in dag.tasks
            },
        }
    return {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "parse_seconds": seconds,
            "heavy_modules": [m for m in heavy if m in sys.modules], "dags": dags}


def test(dag_id: str, date: str, conf: str) -> dict:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    from jobs.demo import migrate, run_dag

    migrate()
    state = run_dag(dag_id, date, json.loads(conf))
    with create_session() as session:
        tasks = {ti.task_id: str(ti.state) for ti in session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id)}
    return {"state": state, "tasks": tasks}


if __name__ == "__main__":
    mode = sys.argv[1]
    result = inspect() if mode == "inspect" else test(*sys.argv[2:5])
    print("RESULT " + json.dumps(result))
