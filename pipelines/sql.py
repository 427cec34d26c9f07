"""Analyst access: the catalog's tables as SQL views, in Spark and in DuckDB."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pipelines.delta import read_table, table_version
from pipelines.tables import TABLES, Catalog

if TYPE_CHECKING:
    import duckdb
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


def register_views(spark: SparkSession, catalog: Catalog) -> list[str]:
    """Every existing catalog table as a temp view named like `silver_events`; returns the names."""
    names = []
    for spec in TABLES.values():
        if table_version(catalog.location(spec.name), catalog.storage_options or None) is None:
            continue
        read_table(spark, catalog, spec.name).createOrReplaceTempView(spec.view_name)
        names.append(spec.view_name)
    return names


def duckdb_connection(catalog: Catalog | None = None) -> duckdb.DuckDBPyConnection:
    """DuckDB with the `delta` extension loaded from its PyPI wheel (no download at run time).

    With a catalog, every existing table is also a view (silver_events, ...) over `delta_scan`.
    """
    import pathlib

    import duckdb
    import duckdb_extension_delta

    con = duckdb.connect()
    folder = pathlib.Path(duckdb_extension_delta.__file__).parent / "extensions"
    extension = next(folder.glob(f"v{duckdb.__version__}/delta.duckdb_extension"), None)
    if extension is None:
        raise RuntimeError(f"no delta extension for DuckDB {duckdb.__version__} under {folder}; "
                           "pin duckdb and duckdb-extension-delta to the same version")
    con.install_extension(str(extension))
    con.load_extension("delta")
    if catalog is not None:
        for spec in TABLES.values():
            location = catalog.location(spec.name)
            if table_version(location, catalog.storage_options or None) is not None:
                con.execute(f"CREATE VIEW {spec.view_name} AS SELECT * FROM delta_scan('{location}')")
    return con
