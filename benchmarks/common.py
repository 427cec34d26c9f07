"""What the benchmarks share: where results go and how a figure is timed."""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Callable

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def timings(fn: Callable[[], object], repeats: int) -> list[float]:
    """Seconds of each of `repeats` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` runs, in seconds (the least disturbed by the machine)."""
    times = timings(fn, repeats)
    return min(times) if repeats < 5 else statistics.median(times)


def machine() -> dict[str, object]:
    """What ran the benchmark: a figure means little without it (GPU runs name their device)."""
    import os
    import sys

    info: dict[str, object] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    torch = sys.modules.get("torch")  # only when the benchmark used torch
    if torch is not None and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["torch"] = torch.__version__
    return info


def write_results(name: str, payload: dict) -> pathlib.Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {k: v for k, v in payload.items() if k not in ("machine", "written")}  # a merged earlier run's
    payload = {"machine": machine(), "written": dt.date.today().isoformat(), **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def airflow_env(work: pathlib.Path, airflow_home: str = "airflow") -> dict[str, str]:
    """The Makefile's AIRFLOW_ENV for a scratch folder: this repo's DAGs, SQLite under `work`, Spark
    local[*], the lakehouse and artifacts in `work`, this interpreter for spark-submit and the workers."""
    from pipelines.lakehouse.config import ENV_ARTIFACTS_ROOT, ENV_LAKEHOUSE_ROOT

    root = pathlib.Path(__file__).resolve().parents[1]
    return {**os.environ, "AIRFLOW_HOME": str(work / airflow_home), "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_SPARK_DEFAULT": '{"conn_type": "spark", "host": "local[*]"}',
            ENV_LAKEHOUSE_ROOT: str(work / "lakehouse"), ENV_ARTIFACTS_ROOT: str(work / "artifacts"),
            "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(root),
            "PATH": f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def benchmark_logging() -> None:
    """INFO lines with times for the benchmark's own work; Spark's bridge, plotting and faiss at WARNING."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("py4j", "matplotlib", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
