"""`tigertwin optimize`: compact each table's small files into few large ones (delta-rs, no Spark).

Nightly appends add one file per partition they touch; this rewrites a
partition's files into ~128 MB ones in one commit that changes no data
(dataChange=false), so readers answer the same and open fewer files. The old
files stay for time travel until `tigertwin vacuum` removes them.

Examples:
  tigertwin optimize                                  # every table
  tigertwin optimize --tables silver.events ops.metrics
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
from pipelines.lakehouse.delta.compaction import TARGET_FILE_BYTES, compact_table


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("optimize", __doc__, parser)
    add_tables_arg(parser, "compact")
    parser.add_argument("--target-file-mb", type=float, default=TARGET_FILE_BYTES / 2**20,
                        help="size the rewritten files grow to (default %(default)s MB)")
    add_common_args(parser, spark=False)
    return parser


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    catalog = catalog_from(args)
    for name in args.tables:
        result = compact_table(catalog.location(name), target_file_bytes=int(args.target_file_mb * 2**20),
                               storage_options=catalog.storage_options or None)
        if result is not None:
            print(f"{name}: {result.files_before} -> {result.files_after} file(s)"
                  + (f" (version {result.version})" if result.version is not None else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "optimize")


if __name__ == "__main__":
    sys.exit(main())
