"""The lakehouse from a notebook: read-only SQL over the catalog's Delta tables, answered by DuckDB in this
process, the same engine and rules as `tigertwin sql`.

    from tigertwin import lakehouse

    lakehouse.tables()                                       # every table, its version and description
    lakehouse.sql("SELECT source, count(*) AS n FROM gold_candidates WHERE rank <= 10 GROUP BY 1")
    lakehouse.sql("SELECT count(*) FROM silver_events", version=3)          # time travel, one table
    lakehouse.sql("SELECT ... FROM gold_candidates JOIN silver_items USING (item_id)", as_of="2026-01-02")

`root` defaults to $TIGERTWIN_LAKEHOUSE_ROOT, else `lakehouse`; results are pandas DataFrames
(`arrow=True`: pyarrow Tables). Writes, file functions and other catalogs are refused.
"""

from __future__ import annotations

import datetime as dt
import os

import pandas as pd
import pyarrow as pa

from pipelines.lakehouse.catalog import TABLES, Catalog
from pipelines.lakehouse.config import ENV_LAKEHOUSE_ROOT, LakehouseConfig
from pipelines.lakehouse.delta import table_version
from pipelines.lakehouse.sql import duckdb_query, views_named_in


def _catalog(root: str | None) -> Catalog:
    return Catalog(LakehouseConfig(root=root or os.environ.get(ENV_LAKEHOUSE_ROOT, LakehouseConfig.root)))


def sql(query: str, root: str | None = None, *, version: int | None = None,
        as_of: str | dt.datetime | None = None, arrow: bool = False) -> pd.DataFrame | pa.Table:
    """Run a read-only query; `version` pins the one table it names, `as_of` every table to that time."""
    when = dt.datetime.fromisoformat(as_of) if isinstance(as_of, str) else as_of
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    versions = None
    if version is not None:
        named = views_named_in(query) or set()
        if len(named) != 1:
            raise ValueError("version= needs a query that names exactly one table; use as_of= for several")
        versions = {named.pop(): version}
    table = duckdb_query(_catalog(root), query, versions=versions, as_of=when)
    return table if arrow else table.to_pandas()


def tables(root: str | None = None) -> pd.DataFrame:
    """Every catalog table: its SQL view name, current Delta version (None: not written yet), description."""
    catalog = _catalog(root)
    return pd.DataFrame([
        {"view": spec.view_name, "table": spec.name,
         "version": table_version(catalog.location(spec.name), catalog.storage_options or None),
         "description": spec.description}
        for spec in TABLES.values()])
