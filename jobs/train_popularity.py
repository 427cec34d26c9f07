"""`tigertwin train-popularity`: silver.events -> artifacts/popularity/<version>/ (training-split item counts).

The fallback retriever: tonight's list for users with no usable history.
Seconds, no torch training.
"""

from __future__ import annotations

import argparse
import json
import sys

from jobs.runtime import (
    add_common_args,
    artifacts_from,
    catalog_from,
    job_parser,
    run_job,
    setup_logging,
)
from pipelines.retrieval.inputs import load_retrieval_inputs
from pipelines.retrieval.popularity import fit_popularity
from pipelines.retrieval.retriever import FitContext


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("train-popularity", __doc__, parser)
    parser.add_argument("--version", default=None, help="artifact version (default <date>-s<ids>-e<events>)")
    add_common_args(parser, spark=False)
    return parser


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    catalog = catalog_from(args)
    context = FitContext(catalog, artifacts_from(args), load_retrieval_inputs(catalog), args.run_date,
                         version=args.version)
    version = fit_popularity(context)
    print(json.dumps({"version": version, **context.store.read_card("popularity", version)["metrics"]}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "train-popularity")


if __name__ == "__main__":
    sys.exit(main())
