import datetime as dt

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import LakehouseConfig
from pipelines.lakehouse.freshness import StaleUpstreamError, require_fresh, table_problems


def test_missing_empty_stale_and_fresh_tables(tmp_path):
    catalog = Catalog(LakehouseConfig(root=str(tmp_path)))
    write_deltalake(catalog.location("gold.semantic_ids"),
                    pa.table({"item_id": pa.array([], pa.string())}))  # a table with no rows
    write_deltalake(catalog.location("gold.user_clusters"), pa.table({"user_id": ["u1"]}))
    now = dt.datetime.now(dt.UTC)
    problems = table_problems(catalog, ["gold.semantic_ids", "gold.user_clusters", "gold.candidates"], now,
                              dt.timedelta(hours=36))
    assert problems[0].startswith("gold.semantic_ids: empty") and problems[1].startswith("gold.candidates: no table")
    assert len(problems) == 2  # user_clusters is fresh
    later = now + dt.timedelta(days=3)
    assert "more than" in table_problems(catalog, ["gold.user_clusters"], later, dt.timedelta(hours=36))[0]
    with pytest.raises(StaleUpstreamError, match="gold.user_clusters: last written"):
        require_fresh(catalog, ["gold.user_clusters"], later, dt.timedelta(hours=36))


def test_a_vacuum_does_not_make_a_stale_table_look_fresh(tmp_path):
    import time

    from deltalake import DeltaTable

    from pipelines.lakehouse.freshness import last_data_write

    catalog = Catalog(LakehouseConfig(root=str(tmp_path)))
    uri = catalog.location("gold.user_clusters")
    write_deltalake(uri, pa.table({"user_id": ["u1"]}))
    write_deltalake(uri, pa.table({"user_id": ["u2"]}), mode="overwrite")  # leaves a file to vacuum
    written = last_data_write(DeltaTable(uri))
    time.sleep(0.05)
    DeltaTable(uri).vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False, full=True)
    table = DeltaTable(uri)
    assert table.version() > 1 and table.history(1)[0]["operation"].startswith("VACUUM")
    assert last_data_write(table) == written
