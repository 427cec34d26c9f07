"""`tigertwin sql`: read-only SQL over the catalog's tables (views: silver_items, silver_events, gold_candidates, ...).

DuckDB answers by default, in this process, in well under a second; each
table a query names is one view pinned to one Delta version (the current
one, --as-of a time, or --version for a query naming one table).
--engine spark runs the same query on Spark SQL for data too large for one
process. Either way only reads run: SELECT / WITH / VALUES / SHOW / DESCRIBE
/ EXPLAIN over the views; file functions, other catalogs and writes are
refused, as one line.

Examples:
  tigertwin sql "SELECT event_date, count(*) AS n FROM silver_events GROUP BY 1 ORDER BY 1 DESC LIMIT 5"
  tigertwin sql "SELECT source, count(*) FROM gold_candidates WHERE rank <= 10 GROUP BY 1" --format csv
  tigertwin sql "SELECT count(*) FROM silver_events" --version 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from jobs.runtime import (
    add_common_args,
    catalog_from,
    job_parser,
    run_job,
    setup_logging,
    spark_from,
)
from pipelines.lakehouse.sql import check_spark_query, read_only_sql, register_views, views_named_in


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("sql", __doc__, parser)
    parser.add_argument("query", help="a read-only SQL query over the catalog's views")
    parser.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb",
                        help="duckdb: in this process (default); spark: Spark SQL, for queries too large for one")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table",
                        help="table: aligned, numbers to 4 significant digits (default); csv; json (one array)")
    parser.add_argument("--limit", type=int, default=50, help="rows to print (default %(default)s)")
    parser.add_argument("--version", type=int, default=None, help="read the one table the query names at this version")
    parser.add_argument("--as-of", type=dt.datetime.fromisoformat, default=None,
                        help="read every table as it was at this time (ISO, UTC when no zone is given)")
    add_common_args(parser, run_date=False)
    return parser


def render(frame, fmt: str) -> str:
    """The result as an aligned table (floats to 4 significant digits), CSV or a JSON array."""
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    if fmt == "json":
        return frame.to_json(orient="records", date_format="iso")
    if frame.empty:
        return "(no rows)\n" + "  ".join(frame.columns)
    return frame.to_string(index=False, float_format=lambda v: f"{v:.4g}", max_colwidth=60)


def run(args: argparse.Namespace) -> int:
    setup_logging("WARNING" if args.log_level == "INFO" else args.log_level)
    catalog = catalog_from(args)
    as_of = args.as_of if args.as_of is None or args.as_of.tzinfo else args.as_of.replace(tzinfo=dt.UTC)
    named = views_named_in(args.query)
    versions = None
    if args.version is not None:
        if not named or len(named) != 1:
            raise SystemExit("sql: --version needs a query that names exactly one table (use --as-of for several)")
        versions = {next(iter(named)): args.version}
    if args.engine == "duckdb":
        from pipelines.lakehouse.sql import duckdb_query

        frame = duckdb_query(catalog, args.query, versions=versions, as_of=as_of).to_pandas()
    else:
        spark = spark_from(args, "tigertwin-sql")
        check_spark_query(spark, args.query)  # before any table is opened
        if not register_views(spark, catalog, names=named, versions=versions, as_of=as_of):
            print(f"no tables under {args.lakehouse}; run `tigertwin ingest` first", file=sys.stderr)
            return 1
        frame = read_only_sql(spark, args.query).limit(args.limit).toPandas()
    shown = frame.head(args.limit)
    print(render(shown, args.format))
    if len(frame) > len(shown) and args.format == "table":
        print(f"({len(frame):,} rows, {len(shown)} shown; --limit to see more)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "sql")


if __name__ == "__main__":
    sys.exit(main())
