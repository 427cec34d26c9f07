"""Optimistic concurrency: writers in separate processes never lose or duplicate each other's rows."""

import datetime as dt
import multiprocessing
import subprocess

import pyarrow as pa
import pytest

from pipelines.lakehouse.delta import (
    ConcurrentWriteError,
    read_delta_arrow,
    table_version,
    upsert_arrow,
    write_delta_arrow,
)
from pipelines.lakehouse.delta.commit import WriteScope, find_conflict
from pipelines.lakehouse.table_io import read_table
from tests.conftest import job_command, job_env

SCHEMA = pa.schema([pa.field("id", pa.string(), nullable=False), pa.field("writer", pa.int64()),
                    pa.field("day", pa.date32(), nullable=False)])
DAY = dt.date(2026, 11, 1)


def _rows(ids, writer, day=DAY):
    return pa.table({"id": list(ids), "writer": [writer] * len(ids), "day": [day] * len(ids)}, schema=SCHEMA)


def _upserts(uri, writer, rounds):
    for r in range(rounds):
        upsert_arrow(_rows([f"w{writer}-r{r}-{k}" for k in range(3)], writer), uri, key=["id"], schema=SCHEMA)


def _replace_day(uri, writer, start, barrier):
    barrier.wait()  # all writers read "no rows for this day" before any of them commits
    try:
        write_delta_arrow(_rows([f"w{writer}-{k}" for k in range(5)], writer), uri, mode="overwrite",
                          schema=SCHEMA, partition_by=["day"], replace_partitions=[{"day": DAY}], read_version=start)
        return "committed"
    except ConcurrentWriteError:
        return "conflict"


def _spawn():
    return multiprocessing.get_context("spawn")  # deltalake must not run in a forked child


def test_concurrent_upserts_from_four_processes_keep_every_row(tmp_path):
    uri = str(tmp_path / "items")
    write_delta_arrow(_rows(["seed"], -1), uri, mode="append", schema=SCHEMA)
    with _spawn().Pool(4) as pool:
        pool.starmap(_upserts, [(uri, w, 4) for w in range(4)])
    ids = read_delta_arrow(uri)[0].column("id").to_pylist()
    expected = {"seed"} | {f"w{w}-r{r}-{k}" for w in range(4) for r in range(4) for k in range(3)}
    assert sorted(ids) == sorted(expected)  # nothing lost, nothing twice


def test_concurrent_replacements_of_one_new_partition_keep_exactly_one_writer(tmp_path):
    uri = str(tmp_path / "events")
    write_delta_arrow(_rows(["other-day"], -1, dt.date(2026, 10, 1)), uri, mode="append", schema=SCHEMA,
                      partition_by=["day"])
    start = table_version(uri)
    ctx = _spawn()
    with ctx.Manager() as manager:
        barrier = manager.Barrier(3)
        with ctx.Pool(3) as pool:
            outcomes = pool.starmap(_replace_day, [(uri, w, start, barrier) for w in range(3)])
    assert sorted(outcomes) == ["committed", "conflict", "conflict"]
    table = read_delta_arrow(uri)[0].to_pylist()
    day_rows = [r for r in table if r["day"] == DAY]
    assert len(day_rows) == 5 and len({r["writer"] for r in day_rows}) == 1  # one writer's rows, once
    assert [r["id"] for r in table if r["day"] != DAY] == ["other-day"]


def test_conflict_rules(tmp_path):
    uri = str(tmp_path / "t")
    other_day = dt.date(2026, 10, 1)
    write_delta_arrow(_rows(["a"], 0), uri, mode="append", schema=SCHEMA, partition_by=["day"])  # v0
    write_delta_arrow(_rows(["b"], 1, other_day), uri, mode="append", schema=SCHEMA, partition_by=["day"])  # v1
    day = WriteScope("overwrite", frozenset({(("day", DAY.isoformat()),)}))
    assert find_conflict(uri, None, WriteScope("append"), 0, 1) is None  # appends commute
    assert find_conflict(uri, None, day, 0, 1) is None  # v1 touched another partition
    assert "added" in find_conflict(uri, None, WriteScope("overwrite"), 0, 1)  # the whole table changed
    assert "added" in find_conflict(uri, None, day, None, 1)  # read before the table existed
    write_delta_arrow(_rows(["c"], 2), uri, mode="overwrite", schema=SCHEMA, partition_by=["day"],
                      replace_partitions=[{"day": DAY}], read_version=1)  # v2 replaces DAY
    assert "which this write replaces" in find_conflict(uri, None, day, 1, 2)
    with pytest.raises(ConcurrentWriteError, match="conflicts with a concurrent write"):
        write_delta_arrow(_rows(["d"], 3), uri, mode="overwrite", schema=SCHEMA, partition_by=["day"],
                          replace_partitions=[{"day": DAY}], read_version=1)
    assert sorted(r["id"] for r in read_delta_arrow(uri)[0].to_pylist()) == ["b", "c"]  # as v2 left it


def _tabular_dataset(folder, k, n_items=20, n_events=60):
    folder.mkdir()
    items = folder / "items.csv"
    items.write_text("sku,name\n" + "".join(f"d{k}-i{j},Item {k}.{j}\n" for j in range(n_items)))
    events = folder / "events.csv"
    day = dt.datetime(2026, 11, k + 1, 12, tzinfo=dt.UTC)
    events.write_text("uid,sku,at\n" + "".join(
        f"d{k}-u{m % 7},d{k}-i{m % n_items},{(day + dt.timedelta(seconds=m)).isoformat()}\n" for m in range(n_events)))
    return items, events


# 90 s of three JVMs on two cores: `make test` proves concurrent ingest jobs with two batches
# (test_ingest_batches.py), bench_reliability with four writers on every run of it
@pytest.mark.slow
def test_three_ingest_jobs_started_together_lose_nothing(spark, catalog, tmp_path):
    procs = []
    for k in range(3):
        items, events = _tabular_dataset(tmp_path / f"d{k}", k)
        args = ["--format", "tabular", "--events", str(events), "--items", str(items), "--dataset", f"d{k}",
                "--events-mapping", '{"user_id": "uid", "item_id": "sku", "ts": "at"}',
                "--items-mapping", '{"item_id": "sku", "title": "name"}',
                "--run-date", f"2026-11-{10 + k}", "--lakehouse", catalog.config.root]
        procs.append(subprocess.Popen(job_command("ingest", *args), env=job_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(o[-2000:] for o in outputs)
    items = {r.item_id for r in read_table(spark, catalog, "silver.items").collect()}
    assert items == {f"d{k}-i{j}" for k in range(3) for j in range(20)}
    events = read_table(spark, catalog, "silver.events").collect()
    assert len(events) == 3 * 60 and {r.event_date for r in events} == {dt.date(2026, 11, k + 1) for k in range(3)}
    runs = {r.run_id for r in read_table(spark, catalog, "ops.metrics").filter("job = 'ingest'").collect()}
    assert {run.rsplit(".", 1)[0] for run in runs} == {f"ingest-d{k}.2026-11-{10 + k}" for k in range(3)}
