import datetime as dt

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from pipelines.config import LakehouseConfig
from pipelines.freshness import StaleUpstreamError, require_fresh, table_problems
from pipelines.tables import Catalog


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
