"""`tigertwin train-sasrec`: silver.events (+ the item rows of gold.semantic_ids) -> artifacts/sasrec/<version>/.

SASRec, a retriever beside TIGER: causal self-attention over item ids, the
full-catalog softmax loss, histories of the last 50 items. Dropout is chosen
from --dropout on validation and each candidate keeps its best epoch by
validation NDCG@10 on the same selection users TIGER is selected on
(models/selection.py). torch; GPU when present.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from models.config import SASRecConfig
from pipelines.retrieval.inputs import load_retrieval_inputs
from pipelines.retrieval.retriever import FitContext
from pipelines.retrieval.sasrec import fit_sasrec


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("train-sasrec", __doc__, parser)
    d = SASRecConfig()
    parser.add_argument("--max-minutes", type=float, default=d.max_minutes,
                        help="wall-clock budget per dropout candidate (default %(default)s)")
    parser.add_argument("--dropout", type=float, nargs="+", default=list(d.dropout_grid),
                        help="dropout candidates chosen between on validation (default %(default)s)")
    parser.add_argument("--max-epochs", type=int, default=d.max_epochs)
    parser.add_argument("--patience", type=int, default=d.patience)
    parser.add_argument("--eval-users", type=int, default=None, help="validation users that select (default: all)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--version", default=None, help="artifact version (default <date>-s<ids>-e<events>)")
    parser.add_argument("--refit", action="store_true",
                        help="after selection, fit the served weights on every event for the chosen epochs")
    parser.add_argument("--candidate", action="store_true",
                        help="write a candidate version: served only once `tigertwin models gate` promotes it")
    add_distributed_arg(parser)
    add_common_args(parser, spark=False, torch=True)
    return parser


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    set_torch_threads(args)
    catalog = catalog_from(args)
    config = dataclasses.replace(SASRecConfig(), dropout_grid=tuple(args.dropout), max_epochs=args.max_epochs,
                                 patience=args.patience, eval_users=args.eval_users)
    with training_processes(args, "tigertwin-train-sasrec") as processes:
        context = FitContext(catalog, artifacts_from(args), load_retrieval_inputs(catalog), args.run_date,
                             minutes=args.max_minutes, seed=args.seed, device=args.device, version=args.version,
                             promote=not args.candidate, refit=args.refit, processes=processes)
        version = fit_sasrec(context, config)
    print(json.dumps({"version": version, **context.store.read_card("sasrec", version)["metrics"]}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "train-sasrec")


if __name__ == "__main__":
    sys.exit(main())
