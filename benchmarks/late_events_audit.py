"""The ingest batches under fire: writers whose daily batches carry late events for each other's days.

Used by bench_reliability (`late_events` block). Each writer is a thread that runs real `tigertwin
ingest` processes (Spark local[1], tabular click logs) one after another: its own days' batches, each
with late events dated on the other writers' days and some events another writer also delivers; then
a rerun of one batch (same file) and a correction of another (same batch id, new content). Beside
them, victim ingests are SIGKILLed at a random moment and then rerun to completion. The audit: every
event of every batch's latest delivery is in silver.events exactly once (rows_lost, duplicated_rows).
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

REPO = pathlib.Path(__file__).resolve().parents[1]
MAPPING = '{"user_id": "uid", "item_id": "sku", "ts": "at"}'
N_ITEMS = 50
Event = tuple[str, str, str]  # user, item, ISO time


def _event(rng: random.Random, day: dt.date, user_prefix: str) -> Event:
    at = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=rng.randrange(86_400))
    return (f"{user_prefix}{rng.randrange(20)}", f"i{rng.randrange(N_ITEMS)}", at.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _delivery(rng: random.Random, writer: int, day: dt.date, days: list[dt.date], rows: int,
              shared: list[Event]) -> list[Event]:
    """A day's batch: mostly its own day, a late tail on earlier days (other writers' too; ingest refuses
    events after its run date), and a few shared events."""
    own = [_event(rng, day, f"w{writer}u") for _ in range(rows)]
    earlier = [d for d in days if d < day]
    late = [_event(rng, rng.choice(earlier), f"w{writer}late") for _ in range(rows // 5)] if earlier else []
    return own + late + rng.sample(shared, 3)


def _write(path: pathlib.Path, events: list[Event]) -> pathlib.Path:
    path.write_text("uid,sku,at\n" + "".join(f"{u},{i},{t}\n" for u, i, t in events))
    return path


def _command(lakehouse: str, items: pathlib.Path, events: pathlib.Path, batch: str, run_date: dt.date) -> list[str]:
    return [sys.executable, "-m", "jobs.ingest", "--format", "tabular", "--events", str(events), "--items", str(items),
            "--events-mapping", MAPPING, "--items-mapping", '{"item_id": "sku", "title": "name"}',
            "--dataset", "clicks", "--batch-id", batch, "--run-date", run_date.isoformat(), "--lakehouse", lakehouse,
            "--log-level", "WARNING"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(REPO), "TIGERTWIN_SPARK_MASTER": "local[1]"}


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ingest failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr[-1500:]}")


def run_audit(work: pathlib.Path, writers: int = 4, batches_per_writer: int = 2, kills: int = 2,
              rows: int = 40, seed: int = 7) -> dict:
    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    lakehouse = str(work / "lakehouse")
    items = work / "items.csv"
    items.write_text("sku,name\n" + "".join(f"i{k},Item {k}\n" for k in range(N_ITEMS)))
    days = [dt.date(2024, 3, 1) + dt.timedelta(days=d) for d in range(writers * batches_per_writer)]
    shared = [_event(rng, days[0], "shared") for _ in range(10)]  # on the first day: any batch may carry them
    latest: dict[str, list[Event]] = {}  # each batch's last acknowledged delivery
    plans: dict[int, list[tuple[str, dt.date, list[pathlib.Path]]]] = {}
    for w in range(writers):
        plans[w] = []
        for b in range(batches_per_writer):
            day = days[w * batches_per_writer + b]
            first = _write(work / f"w{w}b{b}.csv", _delivery(rng, w, day, days, rows, shared))
            deliveries = [first]
            if b == 0:  # a rerun of the same file
                deliveries.append(first)
            else:  # a correction: the same batch id, some events withdrawn, some added
                events = first.read_text().splitlines()[1:]
                kept: list[Event] = [tuple(e.split(",")) for e in events[: len(events) // 2]]  # type: ignore[misc]
                fixed = kept + [_event(rng, rng.choice([d for d in days if d <= day]), f"w{w}fix") for _ in range(5)]
                deliveries.append(_write(work / f"w{w}b{b}-fixed.csv", fixed))
            plans[w].append((f"w{w}-b{b}", day, deliveries))

    failures: list[str] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        try:
            for batch, day, deliveries in plans[w]:
                for path in deliveries:
                    _run(_command(lakehouse, items, path, batch, day))
                    with lock:
                        latest[batch] = _read_csv(path)
        except Exception as exc:  # noqa: BLE001  reported in the result
            failures.append(str(exc))

    def victims() -> int:
        landed_then_rerun = 0
        for k in range(kills):
            day = rng.choice(days)
            path = _write(work / f"victim{k}.csv", _delivery(rng, 99, day, days, rows, shared))
            cmd = _command(lakehouse, items, path, f"victim-{k}", day)
            proc = subprocess.Popen(cmd, env=_env(), start_new_session=True, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(10, 40))  # start-up is ~15 s: some die before writing, some mid-write
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            try:
                _run(cmd)  # the rerun after a kill
            except RuntimeError as exc:
                failures.append(str(exc))
                continue
            landed_then_rerun += 1
            with lock:
                latest[f"victim-{k}"] = _read_csv(path)
        return landed_then_rerun

    started = time.perf_counter()
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    reruns_after_kill = victims()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started

    stored = _stored_keys(lakehouse)
    expected = {e for events in latest.values() for e in events}
    counts = Counter(stored)
    return {
        "writers": writers, "batches": len(latest), "deliveries": sum(len(p[2]) for ps in plans.values() for p in ps)
        + 2 * kills, "killed_then_rerun": reruns_after_kill, "failed_ingests": len(failures),
        "failures": failures[:3], "events_expected": len(expected), "events_found": len(stored),
        "rows_lost": len(expected - set(stored)), "duplicated_rows": sum(n - 1 for n in counts.values() if n > 1),
        "unexpected_rows": len(set(stored) - expected), "seconds": round(seconds, 1),
    }


def _read_csv(path: pathlib.Path) -> list[Event]:
    return [tuple(line.split(",")) for line in path.read_text().splitlines()[1:]]  # type: ignore[misc]


def _stored_keys(lakehouse: str) -> list[Event]:
    from pipelines.lakehouse.catalog import Catalog
    from pipelines.lakehouse.config import LakehouseConfig
    from pipelines.lakehouse.table_io import read_table_arrow

    events, _ = read_table_arrow(Catalog(LakehouseConfig(root=lakehouse)), "silver.events",
                                 columns=["user_id", "item_id", "ts"])
    return [(u, i, t.strftime("%Y-%m-%dT%H:%M:%SZ")) for u, i, t in zip(
        events.column("user_id").to_pylist(), events.column("item_id").to_pylist(), events.column("ts").to_pylist(),
        strict=True)]
