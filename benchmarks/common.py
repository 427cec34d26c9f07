"""What the benchmarks share: where results go and how a figure is timed."""

from __future__ import annotations

import json
import pathlib
import platform
import statistics
import time
from collections.abc import Callable

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Fastest of `repeats` runs, in seconds (the least disturbed by the machine)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) if repeats < 5 else statistics.median(times)


def write_results(name: str, payload: dict) -> pathlib.Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()}, **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")
    return path
