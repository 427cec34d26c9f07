"""`tigertwin vacuum`: remove data files that no table version references (delta-rs, no Spark).

Files an overwrite replaced and files a killed or failed write left behind are
deleted once older than the retention window, so time travel and writes in
flight within the window keep working.

Examples:
  tigertwin vacuum --dry-run                 # list what would go
  tigertwin vacuum --retention-hours 168     # the default: 7 days
  tigertwin vacuum --tables silver.events ops.quarantine
"""

from __future__ import annotations

import argparse
import sys

from jobs.runtime import (
    add_common_args,
    add_tables_arg,
    catalog_from,
    job_parser,
    run_job,
    setup_logging,
)
from pipelines.lakehouse.config import VACUUM_RETENTION_HOURS
from pipelines.lakehouse.delta.maintenance import vacuum_table


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("vacuum", __doc__, parser)
    add_tables_arg(parser, "vacuum")
    parser.add_argument("--retention-hours", type=float, default=VACUUM_RETENTION_HOURS,
                        help="keep unreferenced files younger than this (default %(default)s = 7 days)")
    parser.add_argument("--dry-run", action="store_true", help="list the files, delete nothing")
    parser.add_argument("--force-short-window", action="store_true",
                        help="allow a window under 1 hour (only when no job is writing: it would lose their files)")
    add_common_args(parser, spark=False)
    return parser


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    catalog = catalog_from(args)
    for name in args.tables:
        result = vacuum_table(catalog.location(name), retention_hours=args.retention_hours, dry_run=args.dry_run,
                              force=args.force_short_window, storage_options=catalog.storage_options or None)
        if result is None:
            continue
        verb = "would remove" if args.dry_run else "removed"
        print(f"{name}: {verb} {len(result.files)} file(s)")
        for path in result.files if args.dry_run else ():
            print(f"  {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "vacuum")


if __name__ == "__main__":
    sys.exit(main())
