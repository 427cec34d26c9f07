"""The Delta layer against real Spark, delta-rs and DuckDB."""

import datetime as dt
import os
import threading

import pyarrow as pa
import pytest
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from pyspark.sql import functions as F

from pipelines.lakehouse.catalog import SILVER_EVENTS
from pipelines.lakehouse.delta import (
    DeltaWriteError,
    EmptyOverwriteError,
    SchemaMismatchError,
    read_delta,
    table_version,
    write_delta,
)
from pipelines.lakehouse.sql import duckdb_scan
from pipelines.lakehouse.table_io import write_table

SCHEMA = pa.schema([
    pa.field("id", pa.int64(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("score", pa.float64()),
    pa.field("tags", pa.list_(pa.field("element", pa.string()))),
    pa.field("ts", pa.timestamp("us", tz="UTC")),
    pa.field("day", pa.date32(), nullable=False),
])


def _frame(spark, ids, day=dt.date(2024, 1, 1)):
    from pipelines.lakehouse.catalog import TableSpec

    spark_schema = TableSpec("t.t", SCHEMA, ("id",)).spark_schema()
    rows = [
        (i, f"n{i}", i / 2, [f"t{i}"], dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i), day)
        for i in ids
    ]
    return spark.createDataFrame(rows, spark_schema)


def _write(spark, df, uri, **kw):
    return write_delta(spark, df, uri, schema=SCHEMA, partition_by=("day",), **kw)


def _utc_naive(value):
    # Spark hands back naive datetimes in the session zone (UTC); delta-rs and DuckDB aware ones.
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _sorted_rows(rows):
    rows = rows.select(SCHEMA.names).to_pylist() if isinstance(rows, pa.Table) else rows
    return sorted(({k: _utc_naive(v) for k, v in r.items()} for r in rows), key=lambda r: r["id"])


def _data_files(uri):
    return sorted(
        os.path.join(d, f) for d, _, files in os.walk(uri) for f in files if f.endswith(".parquet")
    )


def test_spark_write_reads_back_identically_in_delta_rs_and_duckdb(spark, tmp_path):
    uri = str(tmp_path / "t")
    df = _frame(spark, range(50))
    assert _write(spark, df, uri, mode="append") == 0
    expected = _sorted_rows([r.asDict() for r in df.collect()])

    table = DeltaTable(uri)
    assert table.count() == 50  # from the stats we wrote
    by_delta_rs = pa.table(QueryBuilder().register("t", table).execute("SELECT * FROM t").read_all())
    assert _sorted_rows(by_delta_rs) == expected

    by_duckdb = duckdb_scan(uri)
    assert _sorted_rows(by_duckdb) == expected

    assert _sorted_rows([r.asDict() for r in read_delta(spark, uri).collect()]) == expected


def test_delta_rs_write_reads_back_in_spark(spark, tmp_path):
    uri = str(tmp_path / "rs")
    data = pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "name": ["a", None, "c"],
        "day": pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 2)]),
    })
    write_deltalake(uri, data, partition_by=["day"])
    rows = sorted(read_delta(spark, uri).collect(), key=lambda r: r.id)
    assert [(r.id, r.name, r.day) for r in rows] == [
        (1, "a", dt.date(2024, 1, 1)), (2, None, dt.date(2024, 1, 2)), (3, "c", dt.date(2024, 1, 2)),
    ]


def test_failed_task_leaves_version_contents_and_directory_unchanged(spark, tmp_path):
    uri = str(tmp_path / "t")
    _write(spark, _frame(spark, range(10)), uri, mode="append")
    files_before = _data_files(uri)
    # id is NOT NULL: the task that meets the null row fails after others wrote files.
    bad = _frame(spark, range(100, 400)).repartition(4).withColumn(
        "id", F.when(F.col("id") == 399, None).otherwise(F.col("id"))
    )
    with pytest.raises(DeltaWriteError, match="column 'id' is NOT NULL"):
        _write(spark, bad, uri, mode="overwrite")
    assert table_version(uri) == 0
    assert sorted(r.id for r in read_delta(spark, uri).collect()) == list(range(10))
    assert _data_files(uri) == files_before


def test_schema_mismatch_names_the_column(spark, tmp_path):
    df = _frame(spark, range(3)).withColumn("score", F.col("score").cast("string"))
    with pytest.raises(SchemaMismatchError, match="column 'score'"):
        _write(spark, df, str(tmp_path / "t"), mode="append")
    with pytest.raises(SchemaMismatchError, match="column 'user_id' is missing"):
        write_table(spark, _catalog(tmp_path), SILVER_EVENTS.name,
                    _frame(spark, range(3)), mode="append")


def _catalog(tmp_path):
    from pipelines.lakehouse.catalog import Catalog
    from pipelines.lakehouse.config import LakehouseConfig

    return Catalog(LakehouseConfig(root=str(tmp_path / "lh")))


def test_two_concurrent_appends_both_land(spark, tmp_path):
    uri = str(tmp_path / "t")
    _write(spark, _frame(spark, [0]), uri, mode="append")
    errors = []

    def append(ids):
        try:
            _write(spark, _frame(spark, ids), uri, mode="append")
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(range(s, s + 20),)) for s in (100, 200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert table_version(uri) == 2
    assert sorted(r.id for r in read_delta(spark, uri).collect()) == [0, *range(100, 120), *range(200, 220)]


def test_partition_overwrite_touches_only_its_partition_and_time_travel(spark, tmp_path):
    uri = str(tmp_path / "t")
    day1, day2 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)
    _write(spark, _frame(spark, range(5), day1).unionByName(_frame(spark, range(5, 10), day2)), uri, mode="append")
    day2_files = [f for f in _data_files(uri) if "day=2024-01-02" in f]
    _write(spark, _frame(spark, [42], day1), uri, mode="overwrite", replace_partitions=[{"day": day1}])
    now = {(r.id, r.day) for r in read_delta(spark, uri).collect()}
    assert now == {(42, day1), *((i, day2) for i in range(5, 10))}
    assert all(f in DeltaTable(uri).file_uris() for f in day2_files)
    assert {r.id for r in read_delta(spark, uri, version=0).collect()} == set(range(10))
    with pytest.raises(DeltaWriteError, match="outside the replaced partitions"):
        _write(spark, _frame(spark, [7], day2), uri, mode="overwrite", replace_partitions=[{"day": day1}])
    assert table_version(uri) == 1


def test_empty_overwrite_is_refused_unless_allowed_and_empty_table_reads(spark, tmp_path):
    uri = str(tmp_path / "t")
    _write(spark, _frame(spark, range(5)), uri, mode="append")
    with pytest.raises(EmptyOverwriteError, match="refusing to replace .* with an empty table"):
        _write(spark, _frame(spark, range(3)).limit(0), uri, mode="overwrite")
    assert table_version(uri) == 0 and read_delta(spark, uri).count() == 5
    _write(spark, _frame(spark, range(3)).limit(0), uri, mode="overwrite", allow_empty=True)
    assert read_delta(spark, uri).count() == 0
    assert DeltaTable(uri).version() == 1


def test_a_write_adds_one_file_per_partition_and_compaction_keeps_every_reader_s_rows(spark, tmp_path):
    from pipelines.lakehouse.delta.compaction import compact_table

    uri = str(tmp_path / "t")
    days = [dt.date(2024, 1, d) for d in (1, 2, 3)]
    for run in range(3):  # three nightly appends, each spread over several tasks and all three days
        frame = _frame(spark, range(run * 30, run * 30 + 30)).repartition(4)
        frame = frame.withColumn("day", F.element_at(F.array(*[F.lit(d) for d in days]), (F.col("id") % 3 + 1).cast("int")))
        _write(spark, frame, uri, mode="append")
    assert len(DeltaTable(uri).file_uris()) == 9  # 3 writes x 3 days, not x 4 tasks
    before = _sorted_rows([r.asDict() for r in read_delta(spark, uri).collect()])

    result = compact_table(uri)

    assert (result.files_before, result.files_after, result.partitions_compacted) == (9, 3, 3)
    assert result.version == table_version(uri) == 3
    assert _sorted_rows([r.asDict() for r in read_delta(spark, uri).collect()]) == before
    assert _sorted_rows(DeltaTable(uri).to_pyarrow_table()) == before
    assert _sorted_rows(duckdb_scan(uri)) == before
    assert {r.id for r in read_delta(spark, uri, version=2).collect()} == set(range(90))  # time travel
