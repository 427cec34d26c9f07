"""The lakehouse under fire: concurrent writers, random kills, then a full audit of every row.

    python -m benchmarks.bench_reliability [--writers 8] [--rounds 5] [--kills 20] [--rows 200]

Writers are separate processes using the Delta bridge's own write path (the
Parquet writer the Spark tasks run, and the driver's commit) on two tables:
`events` (partitioned by day; appends to append days, whole-day overwrites of
overwrite days) and `items` (read-modify-write upserts, some keys shared by
every writer). Alongside them, victim processes start one random write each
and are SIGKILLed at a random moment. Then every table is audited:

- every acknowledged write is there in full (rows_lost = 0), nothing twice
  (duplicated_rows = 0), and every killed write is there in full or not at all
  (partial_writes = 0); an overwritten day holds exactly one write's rows;
- every table reads with delta-rs, pyarrow and DuckDB (unreadable_tables = 0);
- after a vacuum with a 0-hour window no data file is left that the current
  version does not reference (orphan_files_after_vacuum = 0).

Then the same promise one level up, through real ingest jobs (`late_events`, see
late_events_audit.py): writers whose daily batches carry late events for each
other's days, reruns, corrections and kills; every event of every batch's latest
delivery is in silver.events exactly once. `--late-events-only` reruns just that
block and keeps the rest of the last results.

Writes `benchmarks/results/reliability.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

import pyarrow as pa

from benchmarks.common import RESULTS, write_results
from pipelines.lakehouse.delta import (
    data_files,
    read_delta_arrow,
    retry_on_conflict,
    upsert_arrow,
    write_delta_arrow,
)
from pipelines.lakehouse.delta.commit import open_table
from pipelines.lakehouse.delta.maintenance import vacuum_table

EVENTS = pa.schema([pa.field("id", pa.string(), nullable=False), pa.field("op", pa.string(), nullable=False),
                    pa.field("day", pa.date32(), nullable=False)])
ITEMS = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("op", pa.string(), nullable=False)])
APPEND_DAYS = [dt.date(2026, 1, d) for d in range(1, 11)]
OVERWRITE_DAYS = [dt.date(2026, 2, d) for d in range(1, 6)]
SHARED_KEYS = 10


def plan(op_id: str, kind: str, rng: random.Random, rows: int) -> dict:
    """What one write will do, decided before it starts (the audit needs it even if the writer is killed)."""
    if kind == "append":
        return {"op": op_id, "kind": kind, "day": rng.choice(APPEND_DAYS).isoformat(), "rows": rows}
    if kind == "overwrite":
        return {"op": op_id, "kind": kind, "day": rng.choice(OVERWRITE_DAYS).isoformat(), "rows": rows}
    keys = [f"{op_id}-k{k}" for k in range(rows // 10)] + [f"shared-{k}" for k in rng.sample(range(SHARED_KEYS), 3)]
    return {"op": op_id, "kind": kind, "keys": keys}


def execute(root: str, write: dict) -> None:
    if write["kind"] in ("append", "overwrite"):
        day = dt.date.fromisoformat(write["day"])
        table = pa.table({"id": [f"{write['op']}-{k}" for k in range(write["rows"])], "op": [write["op"]] * write["rows"],
                          "day": [day] * write["rows"]}, schema=EVENTS)
        replace = [{"day": day}] if write["kind"] == "overwrite" else None
        retry_on_conflict(lambda: write_delta_arrow(
            table, f"{root}/events", mode=write["kind"], schema=EVENTS, partition_by=["day"],
            replace_partitions=replace), what=write["op"], attempts=20)
    else:
        table = pa.table({"key": write["keys"], "op": [write["op"]] * len(write["keys"])}, schema=ITEMS)
        upsert_arrow(table, f"{root}/items", key=["key"], schema=ITEMS)


def writer(root: str, writer_id: int, rounds: int, rows: int, log_path: str) -> None:
    rng = random.Random(writer_id)
    with open(log_path, "a") as log:
        for r in range(rounds):
            for kind in rng.sample(["append", "overwrite", "upsert"], 3):
                write = plan(f"w{writer_id}r{r}{kind[0]}", kind, rng, rows)
                execute(root, write)
                log.write(json.dumps(write) + "\n")  # acknowledged: the commit returned
                log.flush()


def victims(root: str, kills: int, rows: int) -> list[dict]:
    """Start one write at a time in its own process and SIGKILL it at a random moment."""
    rng = random.Random(12345)
    planned = []
    for k in range(kills):
        write = plan(f"v{k}", rng.choice(["append", "overwrite", "upsert"]), rng, rows)
        planned.append(write)
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_reliability", "--victim", root,
                                 json.dumps(write)], start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1])})
        time.sleep(rng.uniform(0.1, 1.2))  # imports take ~0.5 s: some die before writing, some mid-write, some after
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return planned


def audit(root: str, acked: list[dict], killed: list[dict]) -> dict:
    events, _ = read_delta_arrow(f"{root}/events")
    items, _ = read_delta_arrow(f"{root}/items")
    ids = Counter(events.column("id").to_pylist())
    keys = Counter(items.column("key").to_pylist())
    by_day: dict[str, Counter] = defaultdict(Counter)
    for row in events.select(["op", "day"]).to_pylist():
        by_day[row["day"].isoformat()][row["op"]] += 1
    item_op = dict(zip(items.column("key").to_pylist(), items.column("op").to_pylist(), strict=True))

    expected = lost = partial = 0
    killed_landed = 0
    for write, was_acked in [(w, True) for w in acked] + [(w, False) for w in killed]:
        if write["kind"] == "append":
            present = sum(1 for k in range(write["rows"]) if f"{write['op']}-{k}" in ids)
            if present not in (0, write["rows"]):
                partial += 1
            killed_landed += int(not was_acked and present > 0)
            if was_acked or present:
                expected += write["rows"]
                lost += write["rows"] - present
        elif write["kind"] == "upsert":
            own = [k for k in write["keys"] if not k.startswith("shared-")]
            present = sum(1 for k in own if k in keys)
            if present not in (0, len(own)):
                partial += 1
            killed_landed += int(not was_acked and present > 0)
            if was_acked or present:
                expected += len(own)
                lost += len(own) - present
    overwrites = [w for w in acked + killed if w["kind"] == "overwrite"]
    planned_rows = {w["op"]: w["rows"] for w in overwrites}
    for day in {w["day"] for w in overwrites}:
        ops = by_day.get(day, Counter())
        whole = len(ops) == 1 and all(planned_rows.get(op) == n for op, n in ops.items())
        if ops and not whole:
            partial += 1  # an overwritten day holds exactly one write's rows, all of them
        killed_landed += sum(1 for op in ops if op.startswith("v"))
        if ops or any(w["day"] == day for w in acked if w["kind"] == "overwrite"):
            rows = max(planned_rows.values())
            expected += rows
            lost += 0 if whole else rows
    writers_of = defaultdict(set)
    for write in acked + killed:
        for key in write.get("keys", ()):
            writers_of[key].add(write["op"])
    for k in range(SHARED_KEYS):
        key = f"shared-{k}"
        if key in keys or writers_of[key] & {w["op"] for w in acked}:
            expected += 1
            lost += 0 if key in keys and item_op[key] in writers_of[key] else 1
    return {
        "rows_expected": expected,
        "rows_found": events.num_rows + items.num_rows,
        "rows_lost": lost,
        "duplicated_rows": sum(n - 1 for n in ids.values() if n > 1) + sum(n - 1 for n in keys.values() if n > 1),
        "partial_writes": partial,
        "killed_writes_that_had_committed": killed_landed,  # the rest died before their commit: no trace
    }


def unreadable(root: str) -> int:
    from pipelines.lakehouse.sql import duckdb_scan

    failures = 0
    for name in ("events", "items"):
        try:
            expected = read_delta_arrow(f"{root}/{name}")[0].num_rows
            if duckdb_scan(f"{root}/{name}").num_rows != expected:
                failures += 1
        except Exception as exc:  # any reader failing is what this counts
            print(f"  {name} unreadable: {exc}")
            failures += 1
    return failures


def orphans(root: str) -> int:
    count = 0
    for name in ("events", "items"):
        uri = f"{root}/{name}"
        on_disk = {str(p) for p in pathlib.Path(uri).rglob("*.parquet")}
        count += len(on_disk - set(data_files(open_table(uri), uri)))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--rows", type=int, default=200, help="rows per append/overwrite (upserts: a tenth)")
    parser.add_argument("--late-writers", type=int, default=4, help="ingest writers in the late-events audit")
    parser.add_argument("--late-events-only", action="store_true", help="rerun only the late-events audit")
    parser.add_argument("--victim", nargs=2, metavar=("ROOT", "WRITE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.victim:
        execute(args.victim[0], json.loads(args.victim[1]))
        return

    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-reliability-"))
    if args.late_events_only:
        previous = json.loads((RESULTS / "reliability.json").read_text()) if (RESULTS / "reliability.json").exists() else {}
        previous.pop("machine", None)
        previous["writers_written"] = previous.get("writers_written") or previous.get("written")  # that part's date
        write_results("reliability", {**previous, "late_events": _late_events(work, args.late_writers)})
        return
    root = str(work / "lake with spaces")
    execute(root, {"op": "seed", "kind": "append", "day": APPEND_DAYS[0].isoformat(), "rows": 1})
    execute(root, {"op": "seed", "kind": "upsert", "keys": ["seed"]})
    logs = [str(work / f"writer{w}.jsonl") for w in range(args.writers)]
    started = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(args.writers) as pool:
        pending = pool.starmap_async(writer, [(root, w, args.rounds, args.rows, logs[w]) for w in range(args.writers)])
        killed = victims(root, args.kills, args.rows)
        pending.get()
    seconds = time.perf_counter() - started
    acked = [json.loads(line) for path in logs for line in pathlib.Path(path).read_text().splitlines()]
    acked += [{"op": "seed", "kind": "append", "day": APPEND_DAYS[0].isoformat(), "rows": 1},
              {"op": "seed", "kind": "upsert", "keys": ["seed"]}]
    figures = audit(root, acked, killed)
    figures["unreadable_tables"] = unreadable(root)
    before = orphans(root)
    for name in ("events", "items"):
        vacuum_table(f"{root}/{name}", retention_hours=0, force=True)  # every writer has finished
    figures["orphan_files_before_vacuum"] = before
    figures["orphan_files_after_vacuum"] = orphans(root)
    figures["unreadable_tables"] += unreadable(root)
    commits = sum(open_table(f"{root}/{n}").version() + 1 for n in ("events", "items"))
    result = {"writers": args.writers, "rounds": args.rounds, "kills": args.kills, "acknowledged_writes": len(acked),
              **figures, "commits": commits, "seconds": round(seconds, 1),
              "commits_per_s": round(commits / seconds, 2)}
    result["late_events"] = _late_events(work, args.late_writers)
    for key, value in result.items():
        print(f"  {key:>28}: {value}")
    ok = all(result[k] == 0 for k in ("rows_lost", "duplicated_rows", "partial_writes", "unreadable_tables",
                                      "orphan_files_after_vacuum")) and _late_events_ok(result["late_events"])
    print("PASS: no row lost or duplicated, every table readable, no orphan" if ok else "FAIL")
    write_results("reliability", {**result, "writers_written": dt.date.today().isoformat()})


def _late_events(work: pathlib.Path, writers: int) -> dict:
    from benchmarks.late_events_audit import run_audit

    print(f"late-events audit: {writers} ingest writers, reruns, corrections and kills (a few minutes)")
    figures = run_audit(work / "late-events", writers=writers)
    print(f"  late_events: {figures}")
    print("  PASS" if _late_events_ok(figures) else "  FAIL")
    return figures


def _late_events_ok(figures: dict) -> bool:
    return figures["rows_lost"] == 0 and figures["duplicated_rows"] == 0 and figures["failed_ingests"] == 0 \
        and figures["unexpected_rows"] == 0


if __name__ == "__main__":
    main()
