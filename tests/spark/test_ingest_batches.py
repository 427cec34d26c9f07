"""Daily ingest keyed by batch: late events, reruns, corrections and redeliveries keep every row exactly once."""

import datetime as dt
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.ingest.pipeline import IngestConfig, run_ingest
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import LakehouseConfig
from pipelines.lakehouse.delta import table_version
from pipelines.lakehouse.table_io import read_table, write_table
from tests.conftest import job_command, job_env

MAPPING = (("user_id", "uid"), ("item_id", "sku"), ("ts", "at"))
ITEMS = [f"i{k}" for k in range(10)]


def _items(folder):
    path = folder / "items.csv"
    if not path.exists():
        path.write_text("sku,name\n" + "".join(f"{i},Item {i}\n" for i in ITEMS))
    return path


def _clicks(path, rows):
    """rows: (user, item, 'YYYY-MM-DDTHH:MM:SS') -> a click-log CSV."""
    path.write_text("uid,sku,at\n" + "".join(f"{u},{i},{t}Z\n" for u, i, t in rows))
    return path


def _ingest(spark, catalog, events, run_date, **kw):
    return run_ingest(spark, catalog, IngestConfig(
        format="tabular", dataset="clicks", run_date=run_date, events_paths=(str(events),),
        items_paths=(str(_items(events.parent)),), events_mapping=MAPPING,
        items_mapping=(("item_id", "sku"), ("title", "name")), **kw))


def _events(spark, catalog):
    return sorted((r.user_id, r.item_id, r.ts.isoformat(), r.ingest_batch)
                  for r in read_table(spark, catalog, "silver.events").collect())


def _per_day(spark, catalog):
    rows = read_table(spark, catalog, "silver.events").groupBy("event_date").count().collect()
    return {r["event_date"].isoformat(): r["count"] for r in rows}


def _day(date, n, user="u", minute0=0):
    return [(f"{user}{k % 5}", ITEMS[k % 10], f"{date}T10:{minute0 + k:02d}:00") for k in range(n)]


def test_late_events_for_an_earlier_day_keep_that_days_rows(spark, catalog, tmp_path):
    """The README's daily pattern: day 2's file carries 10 late events of day 1; day 1 keeps its 40."""
    day1 = _clicks(tmp_path / "day1.csv", _day("2024-03-01", 40))
    _ingest(spark, catalog, day1, dt.date(2024, 3, 1))
    late = [(f"late{k % 5}", ITEMS[k], f"2024-03-01T23:{k:02d}:00") for k in range(10)]
    day2 = _clicks(tmp_path / "day2.csv", _day("2024-03-02", 30) + late)
    report = _ingest(spark, catalog, day2, dt.date(2024, 3, 2))
    assert _per_day(spark, catalog) == {"2024-03-01": 50, "2024-03-02": 30}
    assert report.counts["events_added"] == 40 and report.counts["events_removed"] == 0
    batches = {r.ingest_batch for r in read_table(spark, catalog, "silver.events").collect()}
    assert len(batches) == 2 and all(b.startswith("clicks.2024-03-0") for b in batches)
    # every row says where it came from: the file and its 1-based line (the header is line 1)
    lines = {(r.source_file.rsplit("/", 1)[-1], r.source_line)
             for r in read_table(spark, catalog, "silver.events").collect()}
    assert ("day1.csv", 2) in lines and ("day1.csv", 41) in lines and ("day2.csv", 41) in lines


def test_the_same_batch_twice_changes_nothing(spark, catalog, tmp_path):
    day1 = _clicks(tmp_path / "day1.csv", _day("2024-03-01", 20) + _day("2024-02-28", 3, user="late"))
    first = _ingest(spark, catalog, day1, dt.date(2024, 3, 1))
    before, version = _events(spark, catalog), table_version(catalog.location("silver.events"))
    metrics = sorted(map(tuple, read_table(spark, catalog, "ops.metrics").filter("job = 'ingest'").collect()))
    second = _ingest(spark, catalog, day1, dt.date(2024, 3, 1))
    assert _events(spark, catalog) == before
    assert table_version(catalog.location("silver.events")) == version  # not even a new version
    assert sorted(map(tuple, read_table(spark, catalog, "ops.metrics").filter("job = 'ingest'").collect())) == metrics
    assert second.counts["events_added"] == 0 and first.counts["events_written"] == 23


def test_two_batches_with_overlapping_dates_keep_both(spark, catalog, tmp_path):
    a = _clicks(tmp_path / "a.csv", _day("2024-03-01", 12, user="a") + _day("2024-03-02", 5, user="a"))
    b = _clicks(tmp_path / "b.csv", _day("2024-03-01", 7, user="b") + _day("2024-03-02", 9, user="b"))
    _ingest(spark, catalog, a, dt.date(2024, 3, 2), batch_id="a")
    _ingest(spark, catalog, b, dt.date(2024, 3, 2), batch_id="b")
    assert _per_day(spark, catalog) == {"2024-03-01": 19, "2024-03-02": 14}


def test_a_corrected_batch_replaces_only_itself(spark, catalog, tmp_path):
    a = _clicks(tmp_path / "a.csv", _day("2024-03-01", 10, user="a"))
    b = _clicks(tmp_path / "b.csv", _day("2024-03-01", 6, user="b") + _day("2024-03-02", 4, user="b"))
    _ingest(spark, catalog, a, dt.date(2024, 3, 1), batch_id="day-1")
    _ingest(spark, catalog, b, dt.date(2024, 3, 2), batch_id="day-2")
    # day 2 re-delivered, corrected: one event fixed, the 2024-03-02 events withdrawn, one added on 2024-02-29
    fixed = _day("2024-03-01", 5, user="b") + [("b9", "i9", "2024-03-01T12:00:00"), ("b7", "i1", "2024-02-29T08:00:00")]
    report = _ingest(spark, catalog, _clicks(tmp_path / "b-fixed.csv", fixed), dt.date(2024, 3, 2), batch_id="day-2")
    assert report.counts["events_added"] == 2 and report.counts["events_removed"] == 5
    rows = _events(spark, catalog)
    assert [r for r in rows if r[3] == "day-1"] == sorted((u, i, t, "day-1")
                                                          for u, i, t in _day("2024-03-01", 10, user="a"))
    assert sorted(r[:3] for r in rows if r[3] == "day-2") == sorted((u, i, t) for u, i, t in fixed)
    metrics = {r.metric: r.value for r in read_table(spark, catalog, "ops.metrics")
               .filter("job = 'ingest' AND run_id = 'ingest-day-2'").collect()}
    assert metrics["events_added"] == 2 and metrics["events_removed"] == 5


def test_an_event_delivered_twice_is_kept_once_counted_and_restored(spark, catalog, tmp_path):
    shared = _day("2024-03-01", 4, user="s")
    _ingest(spark, catalog, _clicks(tmp_path / "a.csv", shared + _day("2024-03-01", 3, user="a")),
            dt.date(2024, 3, 1), batch_id="a")
    report = _ingest(spark, catalog, _clicks(tmp_path / "b.csv", shared + _day("2024-03-01", 2, user="b")),
                     dt.date(2024, 3, 2), batch_id="b")
    assert report.counts["events_duplicate_across_batches"] == 4
    assert report.counts["events_duplicate_across_batches[a]"] == 4 and report.counts["events_written"] == 2
    rows = _events(spark, catalog)
    assert len(rows) == 9 and len({r[:3] for r in rows}) == 9  # each event once, the first delivery's
    assert {r[3] for r in rows if r[0].startswith("s")} == {"a"}
    # a's correction drops the shared events: b delivered them too, so they stay, now as b's
    _ingest(spark, catalog, _clicks(tmp_path / "a2.csv", _day("2024-03-01", 3, user="a")), dt.date(2024, 3, 1),
            batch_id="a")
    rows = _events(spark, catalog)
    assert len(rows) == 9 and {r[3] for r in rows if r[0].startswith("s")} == {"b"}
    assert read_table(spark, catalog, "silver.event_redeliveries").count() == 0


def test_keep_repeats_keeps_every_delivery(spark, catalog, tmp_path):
    shared = _day("2024-03-01", 3, user="s")
    _ingest(spark, catalog, _clicks(tmp_path / "a.csv", shared), dt.date(2024, 3, 1), batch_id="a")
    _ingest(spark, catalog, _clicks(tmp_path / "b.csv", shared + shared[:1]), dt.date(2024, 3, 2), batch_id="b",
            keep_repeats=True)
    assert len(_events(spark, catalog)) == 3 + 4


def test_two_batches_ingested_concurrently_keep_both(spark, catalog, tmp_path):
    """Two processes, each with late events on the other's day: neither erases nor doubles the other's rows."""
    shared = _day("2024-03-01", 3, user="s")  # both deliver these: kept once
    files = [
        _clicks(tmp_path / "a.csv", _day("2024-03-01", 15, user="a") + _day("2024-03-02", 4, user="al") + shared),
        _clicks(tmp_path / "b.csv", _day("2024-03-02", 12, user="b") + _day("2024-03-01", 6, user="bl") + shared),
    ]
    items = _items(tmp_path)
    procs = [subprocess.Popen(job_command(
        "ingest", "--format", "tabular", "--events", str(f), "--items", str(items), "--dataset", "clicks",
        "--events-mapping", '{"user_id": "uid", "item_id": "sku", "ts": "at"}',
        "--items-mapping", '{"item_id": "sku", "title": "name"}', "--batch-id", f.stem,
        "--run-date", "2024-03-02", "--lakehouse", catalog.config.root), env=job_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True) for f in files]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    rows = _events(spark, catalog)
    assert len(rows) == 15 + 4 + 12 + 6 + 3 and len({r[:3] for r in rows}) == len(rows)


# Property: any sequence of deliveries (new batches, reruns, corrections) leaves silver.events equal to the
# union of each batch's latest delivery, one row per event key.
POOL = [(f"u{k % 4}", ITEMS[k % 10], f"2024-03-0{1 + k % 3}T0{k % 7}:00:00") for k in range(14)]
deliveries = st.lists(st.tuples(st.sampled_from(["b0", "b1", "b2"]),
                                st.sets(st.integers(0, len(POOL) - 1), min_size=1, max_size=8)),
                      min_size=2, max_size=4)


@pytest.mark.integration
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=deliveries)
def test_silver_events_is_the_union_of_each_batchs_latest_delivery(spark, tmp_path_factory, steps):
    folder = tmp_path_factory.mktemp("batches")
    catalog = Catalog(LakehouseConfig(root=str(folder / "lakehouse")))
    latest: dict[str, set[int]] = {}
    for n, (batch, rows) in enumerate(steps):
        events = _clicks(folder / f"{n}-{batch}.csv", [POOL[k] for k in sorted(rows)])
        _ingest(spark, catalog, events, dt.date(2024, 3, 3), batch_id=batch)
        latest[batch] = rows
    expected = sorted({(u, i, t) for rows in latest.values() for u, i, t in (POOL[k] for k in rows)})
    assert sorted(r[:3] for r in _events(spark, catalog)) == expected


def test_an_identical_rerun_skips_spark_and_a_changed_file_does_not(spark, catalog, tmp_path, monkeypatch, capsys):
    """The second DAG's ingest of tonight's batch: same files, same settings -> done before Spark starts."""
    from jobs import ingest as job
    from pipelines.ingest.pipeline import already_ingested, ingest_fingerprint

    day1 = _clicks(tmp_path / "day1.csv", _day("2024-03-01", 20))
    argv = ["--format", "tabular", "--dataset", "clicks", "--run-date", "2024-03-01", "--events", str(day1),
            "--items", str(_items(tmp_path)), "--events-mapping", '{"user_id": "uid", "item_id": "sku", "ts": "at"}',
            "--items-mapping", '{"item_id": "sku", "title": "name"}', "--lakehouse", catalog.config.root]
    config = job.config_from(job.build_parser().parse_args(argv))
    fingerprint = ingest_fingerprint(config)
    assert already_ingested(catalog, config, fingerprint) is None  # nothing written yet
    run_ingest(spark, catalog, config, fingerprint)
    version = table_version(catalog.location("silver.events"))
    assert already_ingested(catalog, config, fingerprint) == version
    assert already_ingested(catalog, config, "another fingerprint") is None
    # a run killed after silver's commits but before its metrics is not done: the rerun takes the full path
    metrics = read_table(spark, catalog, "ops.metrics").localCheckpoint()
    write_table(spark, catalog, "ops.metrics", metrics.filter(f"run_id != '{config.run_id}'"), mode="overwrite",
                allow_empty=True)
    assert already_ingested(catalog, config, fingerprint) is None
    write_table(spark, catalog, "ops.metrics", metrics, mode="overwrite")
    assert already_ingested(catalog, config, fingerprint) == version

    class SparkStarted(Exception):
        pass

    def no_spark(*_args, **_kw):
        raise SparkStarted

    monkeypatch.setattr(job, "spark_from", no_spark)
    assert job.main(argv) == 0
    assert "nothing to do" in capsys.readouterr().out
    # one changed byte, or another batch written since, and the rerun is a real one
    day1.write_text(day1.read_text().replace("u1,", "u9,", 1))
    with pytest.raises(SparkStarted):
        job.main(argv)
    _clicks(day1, _day("2024-03-01", 20))
    _ingest(spark, catalog, _clicks(tmp_path / "day2.csv", _day("2024-03-02", 5)), dt.date(2024, 3, 2))
    with pytest.raises(SparkStarted):
        job.main(argv)
