"""`tigertwin generate-candidates`: every retriever's top-K per user, their union ordered by TWIN-V2 -> gold.candidates.

Each retriever (--retrievers, default TIGER and SASRec) gives its top-K; items
the user already had are left out of every list unless --keep-history. The
union is ordered by the fusion the served ranker chose and gated on
validation users (its logit over the user's behaviour clusters, and each
retriever's rank), and the first --final-k are kept (--no-rerank: the
retrievers' ranks alone). Users with no usable history get the popularity
model's list. The run_date partition is replaced in one commit: rerunning a
date never duplicates. Each row records which retrievers found the item,
their ranks and scores, and every model version.

--engine spark (default) spreads the users over the Spark executors' Python
workers; each loads the models once and uses its task's GPU when Spark
assigns one (spark.executor.resource.gpu.amount / spark.task.resource.gpu.amount).
--engine local scores every user in this process (debugging); both write the
same rows.
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
    set_torch_threads,
    setup_logging,
    spark_from,
)
from pipelines.candidates import CandidatesConfig, run_generate_candidates


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {text}")
    return value


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("generate-candidates", __doc__, parser)
    parser.add_argument("--top-k", type=int, default=CandidatesConfig.top_k,
                        help="candidates per retriever and user; with the ranker, the depth its fusion was chosen "
                             "at (train-twin --rerank-depth; default %(default)s)")
    parser.add_argument("--retrievers", nargs="+", default=list(CandidatesConfig.retrievers),
                        help="the union's members (default %(default)s)")
    parser.add_argument("--version", action="append", default=[], metavar="RETRIEVER=VERSION",
                        help="serve this version instead of the served one (repeatable)")
    parser.add_argument("--no-fallback", action="store_true", help="no popularity list for users without history")
    parser.add_argument("--keep-history", action="store_true", help="allow items the user already has")
    parser.add_argument("--no-rerank", action="store_true", help="the retrievers' ranks alone (no TWIN-V2 ranker)")
    parser.add_argument("--final-k", type=int, default=CandidatesConfig.final_k, help="list length after reranking")
    parser.add_argument("--ranker-version", default=None, help="default: the latest")
    parser.add_argument("--device", default=None,
                        help="default: the Spark task's GPU, else CUDA when present, else CPU")
    parser.add_argument("--engine", choices=["spark", "local"], default=CandidatesConfig.engine,
                        help="spark: users scored in the executors; local: in this process (default %(default)s)")
    parser.add_argument("--tasks", type=int, default=None,
                        help="Spark tasks the users are spread over (default: 4 per core)")
    parser.add_argument("--cold-share", type=_share, default=None, metavar="SHARE",
                        help="the share of TIGER's list kept for items with a semantic ID and no training event "
                             "(new items; 0 turns it off; default 0.1, the TIGER paper's)")
    add_common_args(parser, torch=True)
    return parser


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    set_torch_threads(args)
    pins = tuple(tuple(v.split("=", 1)) for v in args.version)
    if any(len(p) != 2 for p in pins):
        raise SystemExit("generate-candidates: --version takes RETRIEVER=VERSION")
    config = CandidatesConfig(run_date=args.run_date, top_k=args.top_k, retrievers=tuple(args.retrievers),
                              versions=pins, fallback=not args.no_fallback,  # type: ignore[arg-type]
                              exclude_history=not args.keep_history, device=args.device, rerank=not args.no_rerank,
                              final_k=args.final_k, ranker_version=args.ranker_version, engine=args.engine,
                              tasks=args.tasks, cold_share=args.cold_share)
    metrics = run_generate_candidates(spark_from(args, "tigertwin-generate-candidates"), catalog_from(args),
                                      artifacts_from(args), config)
    for key, value in metrics.items():
        print(f"{key:>24}: {value:,.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "generate-candidates")


if __name__ == "__main__":
    sys.exit(main())
