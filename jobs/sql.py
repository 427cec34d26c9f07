"""`tigertwin sql`: run Spark SQL over the catalog's tables (views: silver_items, silver_events, ops_quarantine, ...).

Example:
  tigertwin sql "SELECT event_date, count(*) AS n FROM silver_events GROUP BY 1 ORDER BY 1 DESC LIMIT 5"
"""

from __future__ import annotations

import argparse
import sys

from jobs.runtime import add_common_args, catalog_from, run_job, setup_logging, spark_from
from pipelines.lakehouse.sql import check_spark_query, read_only_sql, register_views, views_named_in


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="tigertwin sql")
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("query", help="a Spark SQL query")
    parser.add_argument("--limit", type=int, default=50, help="rows to print (default %(default)s)")
    add_common_args(parser, run_date=False)
    return parser


def run(args: argparse.Namespace) -> int:
    setup_logging("WARNING" if args.log_level == "INFO" else args.log_level)
    spark = spark_from(args, "tigertwin-sql")
    check_spark_query(spark, args.query)  # before any table is opened
    views = register_views(spark, catalog_from(args), names=views_named_in(args.query))
    if not views:
        print(f"no tables under {args.lakehouse}; run `tigertwin ingest` first", file=sys.stderr)
        return 1
    read_only_sql(spark, args.query).show(args.limit, truncate=60)
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "sql")


if __name__ == "__main__":
    sys.exit(main())
