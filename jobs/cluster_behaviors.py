"""`tigertwin cluster-behaviors`: TWIN-V2 clustering of every user's lifelong history (Spark).

Reads silver.events and gold.item_embeddings; writes gold.user_clusters,
gold.user_cluster_members, ops.metrics, quarantines events without an
embedding, and saves a PNG histogram of cluster sizes. Only users whose
history changed since the last run are re-clustered (--full-refresh: all).
"""

from __future__ import annotations

import argparse
import logging
import sys

from jobs.runtime import (
    add_common_args,
    catalog_from,
    job_parser,
    run_job,
    setup_logging,
    spark_from,
)
from pipelines.behavior.clustering_job import BehaviorClusterConfig, run_cluster_behaviors
from pipelines.behavior.config import HOLDOUTS, ClusteringConfig
from pipelines.plots import plot_cluster_sizes

log = logging.getLogger("jobs.cluster_behaviors")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("cluster-behaviors", __doc__, parser)
    d = ClusteringConfig()
    parser.add_argument("--gamma", type=int, default=d.gamma, help="largest cluster in events (default %(default)s)")
    parser.add_argument("--groups", type=int, default=d.n_groups, help="completion-ratio buckets (default %(default)s)")
    parser.add_argument("--max-events", type=int, default=d.max_events,
                        help="history cap per user, most recent kept (default %(default)s)")
    parser.add_argument("--holdout", choices=HOLDOUTS, default=BehaviorClusterConfig.holdout,
                        help="leave the shared split's held-out events out of the clusters")
    parser.add_argument("--full-refresh", action="store_true", help="re-cluster every user")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--plots-dir", default="plots", help="where the PNG goes (default %(default)s)")
    add_common_args(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    config = BehaviorClusterConfig(
        run_date=args.run_date,
        clustering=ClusteringConfig(gamma=args.gamma, n_groups=args.groups, max_events=args.max_events, seed=args.seed),
        holdout=args.holdout,
        full_refresh=args.full_refresh,
    )
    spark = spark_from(args, "tigertwin-cluster-behaviors")
    report = run_cluster_behaviors(spark, catalog_from(args), config)
    for key, value in report.metrics.items():
        print(f"{key:>26}: {value:,.3f}")
    if report.cluster_size_counts:
        path = plot_cluster_sizes({f"run {args.run_date}": report.cluster_size_counts}, args.gamma,
                                  f"{args.plots_dir}/cluster_sizes_{args.run_date}.png")
        print(f"cluster-size histogram: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "cluster-behaviors")


if __name__ == "__main__":
    sys.exit(main())
