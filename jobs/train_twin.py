"""`tigertwin train-twin`: gold.user_clusters + item embeddings + semantic IDs -> artifacts/twin/<version>/.

Trains the TWIN-V2 ranker (cluster-aware target attention with ln(n), plus the
user's last raw events as short-term keys) on the events after several cut
points of each user's training history (the history before a cut clustered as
cluster-behaviors does) and on each user's validation event, against sampled
negatives (part from the union of the served retrievers' candidates for the
same history), then reports AUC and GAUC on the test events. A share of the
validation users is held out of training: on half of them the fusion of the
ranker's logit and each retriever's rank is chosen, on the other half it is
gated (it replaces the best single retriever's own order only when it beats it
by 2 standard errors); the card keeps the fusion and the retrievers' versions.
Needs clusters built without held-out events: run
`cluster-behaviors --holdout valid_test` first. GPU when present.
"""

from __future__ import annotations

import argparse
import json
import sys

from jobs.runtime import (
    add_common_args,
    add_distributed_arg,
    artifacts_from,
    catalog_from,
    job_parser,
    run_job,
    set_torch_threads,
    setup_logging,
    training_processes,
)
from models.config import TwinConfig, TwinTrainConfig
from pipelines.behavior.config import ClusteringConfig
from pipelines.ranking.config import RerankConfig
from pipelines.ranking.training import TrainTwinJobConfig, run_train_twin


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("train-twin", __doc__, parser)
    m, t = TwinConfig(), TwinTrainConfig()
    parser.add_argument("--heads", type=int, default=m.heads)
    parser.add_argument("--top-k-clusters", type=int, default=m.top_k_clusters)
    parser.add_argument("--no-log-n", action="store_true", help="drop TWIN-V2's ln(n) term (ablation)")
    parser.add_argument("--recent-events", type=int, default=m.recent_events,
                        help="short-term keys: the user's last N raw events next to the clusters (0: none)")
    parser.add_argument("--item-id-buckets", type=int, default=m.item_id_buckets,
                        help="rows of the hashed item-ID embedding (0: content and semantic IDs only)")
    parser.add_argument("--cuts-per-user", type=int, default=t.cuts_per_user,
                        help="training cuts per user's history (0: the validation events alone)")
    parser.add_argument("--positives-per-cut", type=int, default=t.positives_per_cut)
    parser.add_argument("--gamma", type=int, default=ClusteringConfig.gamma,
                        help="largest cluster of the training cuts: cluster-behaviors' --gamma")
    parser.add_argument("--epochs", type=int, default=t.epochs)
    parser.add_argument("--max-minutes", type=float, default=t.max_minutes,
                        help="wall-clock training budget; epochs stop before passing it (default: none)")
    parser.add_argument("--negatives", type=int, default=t.negatives)
    parser.add_argument("--no-hard-negatives", action="store_true", help="catalog negatives only")
    parser.add_argument("--retrievers", nargs="+", default=list(TrainTwinJobConfig.retrievers),
                        help="the union the ranker orders (their served versions; default %(default)s)")
    r = RerankConfig()
    parser.add_argument("--calibration-share", type=float, default=r.calibration_share,
                        help="validation users kept out of training to choose and gate the fusion (default %(default)s)")
    parser.add_argument("--rerank-depth", type=int, default=r.depth,
                        help="candidates per retriever in the union the fusion is chosen over; generate-candidates --top-k "
                             "should match (default %(default)s)")
    parser.add_argument("--seed", type=int, default=t.seed)
    parser.add_argument("--device", default=None)
    parser.add_argument("--version", default=None)
    add_distributed_arg(parser)
    add_common_args(parser, spark=False, torch=True)
    return parser


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    set_torch_threads(args)
    with training_processes(args, "tigertwin-train-twin") as processes:
        return _train(args, processes)


def _train(args: argparse.Namespace, processes: int) -> int:
    config = TrainTwinJobConfig(
        run_date=args.run_date,
        model=TwinConfig(heads=args.heads, top_k_clusters=args.top_k_clusters, use_log_n=not args.no_log_n,
                         recent_events=args.recent_events, item_id_buckets=args.item_id_buckets),
        train=TwinTrainConfig(epochs=args.epochs, max_minutes=args.max_minutes, negatives=args.negatives,
                              seed=args.seed, device=args.device, cuts_per_user=args.cuts_per_user,
                              positives_per_cut=args.positives_per_cut),
        clustering=ClusteringConfig(gamma=args.gamma),
        version=args.version, hard_negatives=not args.no_hard_negatives, retrievers=tuple(args.retrievers),
        rerank=RerankConfig(depth=args.rerank_depth, calibration_share=args.calibration_share),
        processes=processes,
    )
    print(json.dumps(run_train_twin(catalog_from(args), artifacts_from(args), config), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "train-twin")


if __name__ == "__main__":
    sys.exit(main())
