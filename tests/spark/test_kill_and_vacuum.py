"""A SIGKILL at any point leaves every table readable at a committed version; a rerun repairs the pair;
vacuum removes the debris; every job error reaches the user as one line."""

import datetime as dt
import os
import pathlib
import signal
import subprocess
import time

import pytest

from pipelines.ingest.pipeline import IngestConfig, run_ingest
from pipelines.ingest.synthetic import SynthConfig, write_raw
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import LakehouseConfig
from pipelines.lakehouse.delta import table_version
from pipelines.lakehouse.table_io import read_table
from tests.conftest import job_command, job_env

RUN = "2026-01-01"


def _base(spark, catalog, tmp_path, lines="b-u1 b-i1 b-i2 b-i3\nb-u2 b-i2 b-i3\n"):
    """silver.items and silver.events with a first dataset (its own ids and dates)."""
    events = tmp_path / "base.txt"
    events.write_text(lines)
    run_ingest(spark, catalog, IngestConfig(format="sequences", dataset="base", run_date=dt.date(2026, 1, 1),
                                            events_paths=(str(events),)))


def _synthetic_ingest(catalog, tmp_path):
    folder = tmp_path / "synth"
    if not folder.exists():
        write_raw(SynthConfig(n_items=400, n_users=150, median_history=120, seed=3), str(folder))
    args = ["--format", "synthetic", "--path", str(folder), "--run-date", RUN, "--lakehouse", catalog.config.root]
    return subprocess.Popen(job_command("ingest", *args), env=job_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_when(proc, condition, timeout=300):
    """SIGKILL the job's whole process tree (driver, JVM, Python workers) as soon as `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the job ended before the chosen point: " + proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "the chosen point never came"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _log_versions(uri):
    log = pathlib.Path(uri) / "_delta_log"
    return len(list(log.glob("*.json"))) if log.exists() else 0


def _parquet_files(uri):
    return {str(p) for p in pathlib.Path(uri).rglob("*.parquet")}


def _referenced(uri):
    from deltalake import DeltaTable

    from pipelines.lakehouse.delta import data_files

    return set(data_files(DeltaTable(uri), uri))


def _state(spark, catalog):
    items = sorted(tuple(r) for r in read_table(spark, catalog, "silver.items").select("item_id", "content_hash").collect())
    events = sorted(tuple(r) for r in read_table(spark, catalog, "silver.events").select("user_id", "item_id", "ts").collect())
    return items, events


def test_kill_between_items_and_events_then_rerun_repairs(spark, catalog, tmp_path):
    _base(spark, catalog, tmp_path)
    items_uri = catalog.location("silver.items")
    items_before, events_before = _state(spark, catalog)
    items_log = _log_versions(items_uri)
    proc = _synthetic_ingest(catalog, tmp_path)
    _kill_when(proc, lambda: _log_versions(items_uri) > items_log)  # right after the items commit

    # Both tables readable at a committed version: the new items beside the old events.
    items_now, events_now = _state(spark, catalog)
    assert set(items_before) < set(items_now) and events_now == events_before

    # The rerun of the same date repairs the pair, and equals an uninterrupted run.
    rerun = _synthetic_ingest(catalog, tmp_path)
    assert rerun.wait(timeout=600) == 0, rerun.stderr.read()[-2000:]
    repaired = _state(spark, catalog)
    clean = Catalog(LakehouseConfig(root=str(tmp_path / "clean")))
    _base(spark, clean, tmp_path)
    uninterrupted = _synthetic_ingest(clean, tmp_path)
    assert uninterrupted.wait(timeout=600) == 0
    assert repaired == _state(spark, clean)


def test_kill_during_the_events_write_leaves_the_table_and_vacuum_removes_the_debris(spark, catalog, tmp_path):
    _base(spark, catalog, tmp_path)
    events_uri = catalog.location("silver.events")
    version, before = table_version(events_uri), _state(spark, catalog)[1]
    committed = _parquet_files(events_uri)
    proc = _synthetic_ingest(catalog, tmp_path)
    _kill_when(proc, lambda: len(_parquet_files(events_uri) - committed) >= 3)  # tasks are writing files

    assert table_version(events_uri) == version and _state(spark, catalog)[1] == before
    orphans = _parquet_files(events_uri) - _referenced(events_uri)
    assert orphans  # the killed write's files: no version references them

    dry = subprocess.run(job_command("vacuum", "--lakehouse", catalog.config.root, "--retention-hours", "0",
                                     "--dry-run", "--tables", "silver.events"),
                         env=job_env(), capture_output=True, text=True, timeout=300)
    listed = {line.strip() for line in dry.stdout.splitlines()[1:]}
    assert dry.returncode == 0 and {str(pathlib.Path(o).relative_to(events_uri)) for o in orphans} <= listed
    assert _parquet_files(events_uri) - _referenced(events_uri) == orphans  # a dry run deletes nothing
    unforced = subprocess.run(job_command("vacuum", "--lakehouse", catalog.config.root, "--retention-hours", "0"),
                              env=job_env(), capture_output=True, text=True, timeout=300)
    assert unforced.returncode == 2 and "UnsafeVacuumError" in unforced.stderr  # a 0 h window is a footgun
    assert _parquet_files(events_uri) - _referenced(events_uri) == orphans
    real = subprocess.run(job_command("vacuum", "--lakehouse", catalog.config.root, "--retention-hours", "0",
                                      "--force-short-window"), env=job_env(), capture_output=True, text=True,
                          timeout=300)
    assert real.returncode == 0, real.stderr
    assert _parquet_files(events_uri) == _referenced(events_uri)  # no orphan left
    assert _state(spark, catalog)[1] == before


def test_vacuum_keeps_files_inside_the_retention_window(spark, catalog, tmp_path):
    _base(spark, catalog, tmp_path)
    _base(spark, catalog, tmp_path, "b-u1 b-i1 b-i3\nb-u2 b-i2 b-i3\n")  # a correction of the same batch replaced its files
    uri = catalog.location("silver.events")
    replaced = _parquet_files(uri) - _referenced(uri)
    assert replaced
    from pipelines.lakehouse.config import VACUUM_RETENTION_HOURS
    from pipelines.lakehouse.delta.maintenance import vacuum_table

    # the project's 7-day window: yesterday's versions stay readable
    assert vacuum_table(uri, retention_hours=VACUUM_RETENTION_HOURS).files == ()
    assert _parquet_files(uri) - _referenced(uri) == replaced
    assert read_table(spark, catalog, "silver.events", version=0).count() == 5  # time travel still works


@pytest.mark.parametrize("debug", [False, True])
def test_a_job_error_is_one_line_and_exit_2(tmp_path, debug):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    args = ["--format", "tabular", "--events", str(empty), "--events-mapping", '{"user_id": "u"}',
            "--lakehouse", str(tmp_path / "lake")] + (["--log-level", "DEBUG"] if debug else [])
    done = subprocess.run(job_command("ingest", *args), env=job_env(), capture_output=True, text=True, timeout=300)
    ours = [line for line in done.stderr.splitlines() if line.startswith("tigertwin ingest:")]
    assert done.returncode == 2
    assert ours == [f"tigertwin ingest: IngestError: CSV file {empty} is empty: it needs a header line "
                    "naming its columns"]
    assert ("Traceback" in done.stderr) is debug


@pytest.mark.parametrize(("engine", "refusal"), [
    ("duckdb", "a DROP statement"), ("spark", "DropView is not a query")])
def test_refused_sql_is_one_line_and_exit_2(tmp_path, engine, refusal):
    done = subprocess.run(job_command("sql", "DROP VIEW silver_items", "--lakehouse", str(tmp_path),
                                      "--engine", engine), env=job_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert [line for line in done.stderr.splitlines() if line.strip()] == [
        f"tigertwin sql: ReadOnlySqlError: refused: {refusal}; analyst SQL runs SELECT / WITH / "
        "VALUES / SHOW / DESCRIBE / EXPLAIN over the catalog's views"]  # that line and nothing else
    assert done.stdout == ""


def test_a_failing_query_is_one_line_at_the_default_log_level(spark, catalog, tmp_path):
    (tmp_path / "seq.txt").write_text("u1 a b\n")
    run_ingest(spark, catalog, IngestConfig(format="sequences", dataset="s", run_date=dt.date(2026, 1, 1),
                                            events_paths=(str(tmp_path / "seq.txt"),)))
    done = subprocess.run(job_command("sql", "SELECT no_such_column FROM silver_items", "--lakehouse",
                                      catalog.config.root), env=job_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tigertwin sql: QueryError: ") and "no_such_column" in lines[0]
