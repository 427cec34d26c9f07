"""Analyst access: the catalog's tables as read-only SQL views, in Spark and in DuckDB.

Writes happen through jobs only. A query here may read the views
(`silver_events`, `gold_candidates`, ...) and nothing else: statements other
than SELECT / WITH / VALUES / TABLE / SHOW / DESCRIBE / EXPLAIN, file-path
relations (`` text.`/etc/hostname` ``, `read_csv(...)`), table functions other
than row generators, and JVM reflection are refused with ReadOnlySqlError
before anything runs. Both engines check the parsed statement, not its text.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pipelines.errors import QueryError, ReadOnlySqlError
from pipelines.lakehouse.catalog import TABLES, Catalog
from pipelines.lakehouse.delta.location import normalize_location

if TYPE_CHECKING:
    import duckdb
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# Spark's parsed-plan nodes a read-only query is made of (simple class names).
_SPARK_QUERY_NODES = frozenset({
    "Project", "Filter", "Aggregate", "Sort", "GlobalLimit", "LocalLimit", "Offset", "Tail", "Join", "LateralJoin",
    "Union", "Intersect", "Except", "Distinct", "Deduplicate", "SubqueryAlias", "UnresolvedWith", "WithCTE",
    "CTERelationDef", "CTERelationRef", "UnresolvedRelation", "OneRowRelation", "LocalRelation", "Window",
    "UnresolvedHaving", "Generate", "Pivot", "Unpivot", "Sample", "Repartition", "RepartitionByExpression",
    "Expand", "UnresolvedSubqueryColumnAliases", "UnresolvedInlineTable", "UnresolvedTableValuedFunction",
    "WithWindowDefinition", "Range", "UnresolvedTVFAliases",
})
# Statements allowed at the root only: they list or describe, never change anything.
_SPARK_READ_STATEMENTS = frozenset({
    "ShowTables", "ShowViews", "ShowColumns", "ShowFunctions", "ShowNamespaces", "DescribeRelation",
    "DescribeColumn", "DescribeFunction", "DescribeQueryCommand", "ExplainCommand",
})
_SPARK_STATEMENT_ARGS = frozenset({
    "CurrentNamespace$", "UnresolvedTableOrView", "UnresolvedNamespace", "ResolvedNamespace",
})
_ROW_GENERATORS = frozenset({"range", "explode", "explode_outer", "inline", "inline_outer", "posexplode",
                             "posexplode_outer", "stack", "generate_series", "unnest"})
_SUBQUERY_EXPRESSIONS = frozenset({"ScalarSubquery", "Exists", "ListQuery", "LateralSubquery"})
_REFLECTION = frozenset({"reflect", "java_method", "try_reflect"})
ALLOWED = "SELECT / WITH / VALUES / SHOW / DESCRIBE / EXPLAIN over the catalog's views"


def _seq(scala_seq) -> Iterator[Any]:
    for i in range(scala_seq.size()):
        yield scala_seq.apply(i)


def _check_spark_expression(expr, query: str) -> None:
    name = expr.getClass().getSimpleName()
    if name == "UnresolvedFunction":
        function = ".".join(_seq(expr.nameParts())).lower()
        if function.split(".")[-1] in _REFLECTION:
            raise ReadOnlySqlError(f"refused: {function}() calls JVM code; analyst SQL runs {ALLOWED}")
    if name in _SUBQUERY_EXPRESSIONS:
        _check_spark_plan(expr.plan(), query, root=False)
    for child in _seq(expr.children()):
        _check_spark_expression(child, query)


def _check_spark_plan(plan, query: str, *, root: bool) -> None:
    name = plan.getClass().getSimpleName()
    if name == "ExplainCommand" and root:
        _check_spark_plan(plan.logicalPlan(), query, root=False)
        return
    if root and name in _SPARK_READ_STATEMENTS or name in _SPARK_STATEMENT_ARGS:
        return
    if name not in _SPARK_QUERY_NODES:
        raise ReadOnlySqlError(f"refused: {name} is not a query; analyst SQL runs {ALLOWED}")
    if name == "UnresolvedRelation":
        parts = list(_seq(plan.multipartIdentifier()))
        if len(parts) != 1:
            raise ReadOnlySqlError(f"refused: {'.'.join(parts)} is not one of the catalog's views "
                                   "(files and other catalogs cannot be read here)")
    if name == "UnresolvedTableValuedFunction":
        function = ".".join(_seq(plan.name())).lower()
        if function not in _ROW_GENERATORS:
            raise ReadOnlySqlError(f"refused: table function {function}() reads outside the catalog's views")
    for expr in _seq(plan.expressions()):
        _check_spark_expression(expr, query)
    for child in _seq(plan.children()):
        _check_spark_plan(child, query, root=False)


def check_spark_query(spark: SparkSession, query: str) -> None:
    """Raise ReadOnlySqlError unless `query` only reads; nothing is run."""
    parser = spark._jsparkSession.sessionState().sqlParser()  # type: ignore[union-attr]
    try:
        plan = parser.parsePlan(query)
    except Exception as exc:  # py4j wraps Spark's ParseException
        raise QueryError(f"cannot parse the query: {_first_line(exc)}") from None
    _check_spark_plan(plan, query, root=True)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if line.strip() and not line.startswith(("An error occurred", "Trace", "\tat ")):
            return line.strip().removeprefix("org.apache.spark.sql.catalyst.parser.ParseException: ")
    return type(exc).__name__


def read_only_sql(spark: SparkSession, query: str) -> DataFrame:
    """`spark.sql(query)` after the read-only check, with SQL over file paths switched off."""
    from pyspark.errors import AnalysisException

    check_spark_query(spark, query)
    spark.conf.set("spark.sql.runSQLOnFiles", "false")
    try:
        return spark.sql(query)
    except AnalysisException as exc:
        raise QueryError(_first_line(exc)) from None


def views_named_in(query: str) -> set[str] | None:
    """The catalog views a query names (only those need opening); None when it names none (SHOW TABLES)."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", query.lower()))
    named = {spec.view_name for spec in TABLES.values() if spec.view_name in words}
    return named or None


def register_views(spark: SparkSession, catalog: Catalog, names: set[str] | None = None,
                   versions: Mapping[str, int] | None = None, as_of: dt.datetime | None = None) -> list[str]:
    """Existing catalog tables as temp views named like `silver_events` (only `names` when given), each at
    one version: `versions[view]`, the last one at or before `as_of`, or the current one."""
    from pipelines.lakehouse.table_io import read_table

    registered = []
    for spec in TABLES.values():
        if names is not None and spec.view_name not in names:
            continue
        version = _pinned_version(catalog.location(spec.name), catalog.storage_options or None,
                                  (versions or {}).get(spec.view_name), as_of)
        if version is None:
            continue
        read_table(spark, catalog, spec.name, version=version).createOrReplaceTempView(spec.view_name)
        registered.append(spec.view_name)
    return registered


# ---- DuckDB ---------------------------------------------------------------------------------

_DUCKDB_READ_STATEMENTS = ("SELECT", "EXPLAIN")


def _duckdb_nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _duckdb_nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _duckdb_nodes(value)


class ReadOnlyDuckDB:
    """A DuckDB connection that only answers queries over the catalog's views.

    File access is limited to the lakehouse and locked (no COPY elsewhere, ATTACH, INSTALL);
    `sql()` refuses every statement but SELECT/EXPLAIN, and table functions that read files.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, views: list[str]) -> None:
        self._con = con
        self.views = views

    def check(self, query: str) -> None:
        import duckdb

        try:
            statements = self._con.extract_statements(query)
        except duckdb.Error as exc:
            raise QueryError(f"cannot parse the query: {str(exc).strip().splitlines()[0]}") from None
        for statement in statements:
            kind = statement.type.name
            if kind not in _DUCKDB_READ_STATEMENTS:
                raise ReadOnlySqlError(f"refused: a {kind} statement; analyst SQL runs {ALLOWED}")
        serialized = self._con.execute("SELECT json_serialize_sql(?)", [query]).fetchone()
        tree = json.loads(serialized[0]) if serialized else {"error": True}
        if tree.get("error"):
            if all(s.type.name == "EXPLAIN" for s in statements):
                return
            raise ReadOnlySqlError(f"refused: {tree.get('error_message', 'not a plain query')}")
        for node in _duckdb_nodes(tree):
            if node.get("type") == "TABLE_FUNCTION":
                function = node["function"].get("function_name", "").lower()
                if function not in _ROW_GENERATORS:
                    raise ReadOnlySqlError(f"refused: table function {function}() reads outside the catalog's views")
            if node.get("type") == "BASE_TABLE" and any(c in node.get("table_name", "") for c in "/.\\:"):
                raise ReadOnlySqlError(f"refused: {node['table_name']!r} is a file, not one of the views {self.views}")

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        self.check(query)
        return self._con.sql(query)

    def execute(self, query: str, parameters: list[Any] | None = None) -> duckdb.DuckDBPyConnection:
        self.check(query)
        return self._con.execute(query, parameters or [])


def _duckdb_with_delta() -> duckdb.DuckDBPyConnection:
    """DuckDB with the `delta` extension loaded from its PyPI wheel (no download at run time)."""
    import duckdb
    import duckdb_extension_delta

    con = duckdb.connect()
    _load_wheel_extension(con, duckdb_extension_delta.__file__, "delta")
    return con


def _load_wheel_extension(con: duckdb.DuckDBPyConnection, package_file: str, name: str) -> None:
    """Install and load extension `name` from the PyPI wheel whose `__file__` is `package_file`."""
    import pathlib

    import duckdb

    folder = pathlib.Path(package_file).parent / "extensions"
    extension = next(folder.glob(f"v{duckdb.__version__}/{name}.duckdb_extension"), None)
    if extension is None:
        raise RuntimeError(f"no {name} extension for DuckDB {duckdb.__version__} under {folder}; "
                           f"pin duckdb and duckdb-extension-{name} to the same version")
    con.install_extension(str(extension))
    con.load_extension(name)


def duckdb_connection(catalog: Catalog, names: set[str] | None = None,
                      versions: Mapping[str, int] | None = None, as_of: dt.datetime | None = None) -> ReadOnlyDuckDB:
    """A read-only DuckDB whose views (silver_events, ...) scan the catalog's Delta tables, each pinned to one
    version: `versions[view]`, else the last one committed at or before `as_of`, else the current one. Only
    the views in `names` when given (a query opens only the tables it names)."""
    import duckdb

    con = _duckdb_with_delta()
    root = normalize_location(catalog.config.root)
    if root.startswith("s3://"):
        _add_s3_secret(con, catalog.storage_options or None)
    views = []
    for spec in TABLES.values():
        if names is not None and spec.view_name not in names:
            continue
        location = catalog.location(spec.name)
        version = _pinned_version(location, catalog.storage_options or None, (versions or {}).get(spec.view_name),
                                  as_of)
        if version is None:
            continue
        # the location comes from the catalog (never from a query) and is quoted as a SQL string literal
        literal = _duckdb_location(location).replace("'", "''")
        try:
            con.execute(f"CREATE VIEW {spec.view_name} AS SELECT * FROM delta_scan('{literal}', version := {int(version)})")
        except duckdb.Error as exc:  # e.g. an object store refusing DuckDB's credentials: one line naming the table
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise QueryError(f"DuckDB cannot open {spec.name} at {location}: {first}") from None
        views.append(spec.view_name)
    if "://" not in root:
        con.execute("SET allowed_directories = ?", [[root.rstrip("/") + "/"]])
        con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return ReadOnlyDuckDB(con, views)


def _add_s3_secret(con: duckdb.DuckDBPyConnection, storage_options: dict[str, str] | None) -> None:
    """DuckDB's S3 secret from the credentials and endpoint delta-rs and pyarrow use (the AWS_* variables,
    overridden by the catalog's storage options): DuckDB reads neither the variables' endpoint nor, without a
    secret, anything but the cloud's instance metadata."""
    from urllib.parse import urlparse

    import duckdb_extension_httpfs

    from pipelines.lakehouse.delta.files import object_store_options

    _load_wheel_extension(con, duckdb_extension_httpfs.__file__, "httpfs")  # S3 secrets are httpfs's
    options = object_store_options(storage_options)
    fields = {"KEY_ID": options.get("AWS_ACCESS_KEY_ID"), "SECRET": options.get("AWS_SECRET_ACCESS_KEY"),
              "SESSION_TOKEN": options.get("AWS_SESSION_TOKEN"),
              "REGION": options.get("AWS_REGION") or options.get("AWS_DEFAULT_REGION")}
    endpoint = options.get("AWS_ENDPOINT_URL")
    if endpoint:  # an S3-compatible server: host:port, path-style URLs, TLS as its scheme says
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        fields.update({"ENDPOINT": parsed.netloc, "URL_STYLE": "path",
                       "USE_SSL": "true" if parsed.scheme == "https" else "false"})
    settings = ", ".join(f"{key} {value}" if key == "USE_SSL" else f"{key} '{value.replace(chr(39), chr(39) * 2)}'"
                         for key, value in fields.items() if value)
    con.execute(f"CREATE SECRET tigertwin_s3 (TYPE s3{', ' if settings else ''}{settings})")


def _pinned_version(location: str, storage_options: dict[str, str] | None, version: int | None,
                    as_of: dt.datetime | None) -> int | None:
    """The version a view reads; None when there is no table (or none yet at `as_of`)."""
    from pipelines.lakehouse.delta.commit import open_table

    table = open_table(location, storage_options)
    if table is None:
        return None
    if version is not None:
        if not 0 <= version <= table.version():
            raise QueryError(f"{location} has versions 0..{table.version()}, not {version}")
        return version
    if as_of is None:
        return table.version()
    committed = [(h["version"], h["timestamp"]) for h in table.history()]
    cutoff = as_of.timestamp() * 1000
    eligible = [v for v, ts in committed if ts <= cutoff]
    return max(eligible) if eligible else None


def duckdb_query(catalog: Catalog, query: str, *, versions: Mapping[str, int] | None = None,
                 as_of: dt.datetime | None = None) -> pa.Table:
    """A read-only query over the views it names, as Arrow; a query DuckDB cannot run is one QueryError line."""
    import duckdb

    con = duckdb_connection(catalog, views_named_in(query), versions, as_of)
    try:
        return con.sql(query).to_arrow_table()
    except duckdb.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QueryError(message) from None


def duckdb_scan(uri: str) -> pa.Table:
    """One Delta table, read by DuckDB's delta extension, as Arrow (tests and tools)."""
    return _duckdb_with_delta().table_function("delta_scan", [_duckdb_location(uri)]).to_arrow_table()


def _duckdb_location(location: str) -> str:
    """The delta extension percent-decodes plain paths (`50%` breaks): local tables go as file:// URIs."""
    import pathlib

    location = normalize_location(location)
    return location if "://" in location else pathlib.Path(location).as_uri()
