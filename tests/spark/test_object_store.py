"""The lakehouse and the model store on S3 (a local SeaweedFS server, loopback only): Delta tables written
and read by Spark's executors without Hadoop's S3 connector, artifacts uploaded and loaded by any process.
The jobs from ingest to tonight's candidates with `s3://` roots run in test_cluster.py."""

import datetime as dt

import pyarrow as pa
import pytest

from pipelines.lakehouse.artifacts import ArtifactStore

pytestmark = pytest.mark.integration



def test_spark_writes_and_reads_a_partitioned_delta_table_on_s3(spark, s3):
    from deltalake import DeltaTable

    from pipelines.lakehouse.delta import read_delta, write_delta

    schema = pa.schema([("user_id", pa.string()), ("score", pa.float64()), ("day", pa.date32())])
    rows = [(f"u{i}", float(i), dt.date(2026, 1, 1 + i % 3)) for i in range(50)]
    df = spark.createDataFrame(rows, "user_id string, score double, day date").repartition(4)
    uri = "s3://lake/spark/scores"
    assert write_delta(spark, df, uri, mode="overwrite", schema=schema, partition_by=("day",)) == 0
    back = read_delta(spark, uri)
    assert back.count() == 50 and sorted(map(tuple, back.collect())) == sorted(rows)
    assert read_delta(spark, uri, partitions=lambda p: p["day"] == "2026-01-02").count() == 17
    # the same table for delta-rs (another reader), and an append keeps every row
    write_delta(spark, df.limit(5), uri, mode="append", schema=schema, partition_by=("day",))
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 55



def test_analyst_sql_reads_a_lakehouse_on_s3(spark, s3, monkeypatch):
    """`tigertwin sql` on DuckDB (its S3 secret from the AWS_* variables), as a fresh process would; wrong
    credentials are one error naming the table."""
    from pipelines.errors import StorageAccessError
    from pipelines.lakehouse.catalog import SILVER_ITEMS, Catalog
    from pipelines.lakehouse.config import LakehouseConfig
    from pipelines.lakehouse.sql import duckdb_query
    from pipelines.lakehouse.table_io import write_table

    catalog = Catalog(LakehouseConfig(root="s3://lake/analyst/lakehouse"))
    rows = [("i1", "Blue mug", None, ["home"], None, 3.5), ("i2", "Red mug", "acme", [], "a mug", None)]
    write_table(spark, catalog, "silver.items", spark.createDataFrame(
        [(*r, "hash", dt.datetime(2026, 1, 1)) for r in rows], SILVER_ITEMS.spark_schema()),
        mode="overwrite")
    answer = duckdb_query(catalog, "SELECT item_id, title FROM silver_items ORDER BY item_id")
    assert answer.to_pylist() == [{"item_id": "i1", "title": "Blue mug"}, {"item_id": "i2", "title": "Red mug"}]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(StorageAccessError, match=r"s3://lake/analyst/lakehouse/silver/items.*403 Forbidden"):
        duckdb_query(catalog, "SELECT count(*) FROM silver_items")


def test_artifacts_round_trip_through_the_object_store(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("TIGERTWIN_ARTIFACT_CACHE", str(tmp_path / "machine-a"))
    store = ArtifactStore(root="s3://lake/models")
    folder = store.directory("toy", "v1")
    folder.mkdir(parents=True)
    (folder / "best.pt").write_bytes(b"weights")
    (folder / "plot.png").write_bytes(b"png")
    store.write_card("toy", "v1", {"metrics": {"auc": 0.9}})
    assert store.versions("toy") == ["v1"] and store.latest_version("toy") == "v1"
    # another machine: an empty local copy, filled from the store and checked against the card
    monkeypatch.setenv("TIGERTWIN_ARTIFACT_CACHE", str(tmp_path / "machine-b"))
    assert store.resolve("toy", None) == "v1"
    assert (store.directory("toy", "v1") / "best.pt").read_bytes() == b"weights"
    assert store.read_card("toy", "v1")["metrics"] == {"auc": 0.9}
    second = store.directory("toy", "v2")
    second.mkdir(parents=True)
    (second / "best.pt").write_bytes(b"other weights")
    store.write_card("toy", "v2", {}, promote=True)
    assert store.rollback("toy") == "v1"
    assert [e["version"] for e in store.served_history("toy")] == ["v1", "v2", "v1"]
    assert store.models() == ["toy"]
