"""`tigertwin assign-semantic-ids`: gold.item_embeddings + an RQ-VAE -> gold.semantic_ids (Spark).

Every item gets 3 RQ-VAE codes and a 4th token that makes its ID unique. IDs
are stable: under the same model version an item keeps its ID across runs,
and items added later (cold start, no retraining) take free tokens without
renumbering anyone. --rqvae-version defaults to the latest trained one.
"""

from __future__ import annotations

import argparse
import sys

from jobs.runtime import (
    add_common_args,
    artifacts_from,
    catalog_from,
    job_parser,
    run_job,
    setup_logging,
    spark_from,
)
from pipelines.items.assignment_job import AssignSemanticIdsConfig, run_assign_semantic_ids


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("assign-semantic-ids", __doc__, parser)
    parser.add_argument("--rqvae-version", default=None, help="artifact version (default: the latest)")
    parser.add_argument("--collision-capacity", type=int, default=AssignSemanticIdsConfig.collision_capacity,
                        help="tokens of the 4th level (default %(default)s)")
    add_common_args(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    config = AssignSemanticIdsConfig(run_date=args.run_date, rqvae_version=args.rqvae_version,
                                     collision_capacity=args.collision_capacity)
    metrics = run_assign_semantic_ids(spark_from(args, "tigertwin-assign-semantic-ids"), catalog_from(args),
                                      artifacts_from(args), config)
    for key, value in metrics.items():
        print(f"{key:>26}: {value:,.4g}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "assign-semantic-ids")


if __name__ == "__main__":
    sys.exit(main())
