"""The lakehouse: where tables live and how every job reads and writes them.

config.py (roots, Spark settings), catalog.py (every table's schema, key and
partitioning), table_io.py (catalog tables through the Delta bridge), delta/
(the bridge: location + schema in, atomic Delta commits out), spark.py,
sql.py (read-only SQL for analysts), ops.py (metrics and quarantine tables),
freshness.py (upstream checks), artifacts.py (versioned model artifacts).
"""

from pipelines.lazy_exports import lazy_exports

_EXPORTS = {
    "LakehouseConfig": "config",
    "SparkConfig": "config",
    "logical_time": "config",
    "Catalog": "catalog",
    "TableSpec": "catalog",
    "TABLES": "catalog",
    "get_spec": "catalog",
    "read_table": "table_io",
    "read_table_arrow": "table_io",
    "write_table": "table_io",
    "build_spark_session": "spark",
    "duckdb_connection": "sql",
    "read_only_sql": "sql",
    "register_views": "sql",
    "write_metrics": "ops",
    "write_quarantine": "ops",
    "require_fresh": "freshness",
    "ArtifactStore": "artifacts",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
