"""Any lakehouse path a user can type works everywhere; analyst SQL only reads."""

import argparse
import datetime as dt

import pytest
from deltalake import DeltaTable

from jobs.sql import run as run_sql
from pipelines.errors import LakehousePathError, QueryError, ReadOnlySqlError
from pipelines.ingest.pipeline import IngestConfig, run_ingest
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import LakehouseConfig
from pipelines.lakehouse.sql import check_spark_query, duckdb_connection, duckdb_scan
from pipelines.lakehouse.table_io import read_table, read_table_arrow

ODD_NAMES = ["with space", "hash#tag", "100% sure", "it's \"quoted\"", "ünïcødé ✓", "brace{s}", "star*?"]


def _ingest_small(spark, catalog, tmp_path):
    events = tmp_path / "user_sequence.txt"
    events.write_text("u1 a b c\nu2 b c d\n")
    run_ingest(spark, catalog, IngestConfig(format="sequences", dataset="s", run_date=dt.date(2026, 11, 24),
                                            events_paths=(str(events),)))


@pytest.mark.parametrize("name", ODD_NAMES)
def test_lakehouse_root_with_odd_characters_works_in_every_reader_and_writer(spark, tmp_path, name):
    catalog = Catalog(LakehouseConfig(root=str(tmp_path / name / "lake")))
    _ingest_small(spark, catalog, tmp_path)
    _ingest_small(spark, catalog, tmp_path)  # a second write reads the first (merge)
    location = catalog.location("silver.events")
    assert read_table(spark, catalog, "silver.events").count() == 6  # Spark
    assert read_table_arrow(catalog, "silver.events")[0].num_rows == 6  # pyarrow, no Spark
    assert DeltaTable(location).count() == 6  # delta-rs
    assert duckdb_scan(location).num_rows == 6  # DuckDB's delta extension
    assert duckdb_connection(catalog).sql("SELECT count(*) FROM silver_events").fetchone() == (6,)


@pytest.mark.parametrize("name", ["a%20b", "x[1]", "back\\slash"])
def test_a_root_the_delta_library_cannot_open_is_refused_up_front(spark, tmp_path, name):
    catalog = Catalog(LakehouseConfig(root=str(tmp_path / name)))
    with pytest.raises(LakehousePathError, match="choose a path without it"):
        _ingest_small(spark, catalog, tmp_path)


WRITES = [
    "INSERT OVERWRITE DIRECTORY '{root}/silver/items' USING parquet SELECT 1 AS x",
    "CREATE TABLE t (a INT) USING parquet LOCATION '{root}/x'",
    "WITH a AS (SELECT 1 AS x) INSERT INTO silver_items SELECT * FROM a",
    "SELECT * FROM text.`/etc/hostname`",
    "SELECT reflect('java.lang.System', 'exit', 1)",
    "SELECT * FROM silver_items WHERE item_id IN (SELECT java_method('java.lang.System', 'getenv', 'HOME'))",
    "SELECT * FROM read_files('/etc/hostname')",
    "SET spark.sql.runSQLOnFiles = true",
    "DROP VIEW silver_items",
    "CACHE TABLE c AS SELECT 1",
]


@pytest.mark.parametrize("query", WRITES)
def test_spark_sql_refuses_everything_but_reads(spark, catalog, query):
    with pytest.raises(ReadOnlySqlError, match="refused"):
        check_spark_query(spark, query.format(root=catalog.config.root))


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_tigertwin_sql_answers_reads_and_leaves_the_tables_alone(spark, catalog, tmp_path, capsys, engine):
    _ingest_small(spark, catalog, tmp_path)
    args = argparse.Namespace(lakehouse=catalog.config.root, master=None, log_level="WARNING", limit=5,
                              artifacts="artifacts", engine=engine, format="table", version=None, as_of=None)
    version = DeltaTable(catalog.location("silver.items")).version()
    assert run_sql(argparse.Namespace(**vars(args), query=(
        "WITH n AS (SELECT item_id, count(*) AS c FROM silver_events GROUP BY 1) "
        "SELECT i.item_id, n.c FROM silver_items i JOIN n USING (item_id) ORDER BY n.c DESC, 1"))) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["item_id", "c"] and lines[1].split() == ["b", "2"]
    write = WRITES[0] if engine == "spark" else "COPY (SELECT 1 AS x) TO '{root}/silver/items/x.parquet'"
    with pytest.raises(ReadOnlySqlError):
        run_sql(argparse.Namespace(**vars(args), query=write.format(root=catalog.config.root)))
    with pytest.raises(QueryError, match="cannot parse"):
        run_sql(argparse.Namespace(**vars(args), query="SELEC nothing"))
    with pytest.raises(QueryError):
        run_sql(argparse.Namespace(**vars(args), query="SELECT no_such_column FROM silver_items"))
    assert DeltaTable(catalog.location("silver.items")).version() == version


def test_tigertwin_sql_pins_versions_and_formats(spark, catalog, tmp_path, capsys):
    from jobs.sql import render
    from tigertwin import lakehouse

    for name, lines in (("first.txt", "u1 a b c\nu2 b c\n"), ("second.txt", "u3 d\n")):  # 5 events, then 1
        (tmp_path / name).write_text(lines)
        run_ingest(spark, catalog, IngestConfig(format="sequences", dataset="s", run_date=dt.date(2026, 11, 24),
                                                events_paths=(str(tmp_path / name),)))
    args = argparse.Namespace(lakehouse=catalog.config.root, master=None, log_level="WARNING", limit=50,
                              artifacts="artifacts", engine="duckdb", version=0, as_of=None, format="json")
    assert run_sql(argparse.Namespace(**vars(args), query="SELECT count(*) AS n FROM silver_events")) == 0
    assert capsys.readouterr().out.strip() == '[{"n":5}]'  # version 0: before the second batch
    now = lakehouse.sql("SELECT count(*) AS n FROM silver_events", root=catalog.config.root)
    assert now["n"].tolist() == [6]
    assert lakehouse.sql("SELECT count(*) AS n FROM silver_events", root=catalog.config.root, version=0)["n"][0] == 5
    with pytest.raises(QueryError, match="silver_events"):  # no version existed then: no such view
        lakehouse.sql("SELECT count(*) AS n FROM silver_events", root=catalog.config.root, as_of="2000-01-01")
    assert set(lakehouse.tables(catalog.config.root)["view"]) >= {"silver_events", "gold_candidates"}
    import pandas as pd

    assert render(pd.DataFrame({"x": [0.123456789, 12345.678]}), "table").splitlines()[1:] == ["   0.1235", "1.235e+04"]  # right-aligned


DUCKDB_WRITES = [
    "CREATE TABLE t AS SELECT 1",
    "COPY (SELECT 1) TO '{root}/silver/items/x.parquet'",
    "INSERT INTO silver_items SELECT * FROM silver_items",
    "SELECT * FROM read_csv('/etc/hostname')",
    "SELECT * FROM '/etc/hostname'",
    "SELECT * FROM delta_scan('{root}/silver/items')",
    "SELECT * FROM query('SELECT 1')",
    "ATTACH '/tmp/x.db'",
    "SET enable_external_access = true",
    "SELECT 1; DROP VIEW silver_items",
]


def test_duckdb_helper_refuses_everything_but_reads(spark, catalog, tmp_path):
    _ingest_small(spark, catalog, tmp_path)
    con = duckdb_connection(catalog)
    for query in DUCKDB_WRITES:
        with pytest.raises(ReadOnlySqlError, match="refused"):
            con.sql(query.format(root=catalog.config.root))
    assert con.sql("SELECT count(*) FROM silver_events JOIN silver_items USING (item_id)").fetchone() == (6,)
    assert con.sql("EXPLAIN SELECT * FROM silver_events") is not None
