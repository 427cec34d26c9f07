"""`tigertwin train-tiger`: gold.semantic_ids + silver.events -> artifacts/tiger/<version>/ (torch; GPU when present).

Builds every prefix of each user's training sequence (shared leave-one-out
split, histories cut to the last 20 items), trains TIGER's encoder-decoder
with AdamW and warm-up + cosine decay, scores validation NDCG@10 after each
epoch (the selection rule SASRec follows too) and keeps the best weights. Resumes from the version's checkpoint;
bf16 autocast on GPU. --size demo or test trains in seconds. --dense-head on adds LIGER's dense head
(gold.item_embeddings vectors in every token, a dense next-item loss, the beam's items and the cold items
re-scored at serving).
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
from pipelines.presets import PRESETS
from pipelines.retrieval.training import TrainTigerJobConfig, run_train_tiger


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("train-tiger", __doc__, parser)
    parser.add_argument("--size", choices=list(PRESETS), default="paper",
                        help="model and schedule preset (pipelines/presets.py); the flags below override its "
                             "schedule (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--warmup-steps", type=int, default=None)
    parser.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget (stops after an epoch)")
    parser.add_argument("--eval-users", type=int, default=None, help="validation users scored per epoch (default: all)")
    parser.add_argument("--patience", type=int, default=None,
                        help="stop after this many epochs without a better validation NDCG@10")
    parser.add_argument("--label-smoothing", type=float, default=None)
    parser.add_argument("--ema-decay", type=float, default=None,
                        help="validate, keep and serve a moving average of the weights with this decay per step "
                             "(default: the size's)")
    parser.add_argument("--causal-encoder", choices=["on", "off"], default=None,
                        help="on: each history item attends to earlier ones only, so one encoder pass trains every "
                             "next-item target of a 20-item window (default: the size's)")
    parser.add_argument("--dense-head", choices=["on", "off"], default=None,
                        help="on: also read each item's gold.item_embeddings vector and train a dense next-item "
                             "head that re-scores the beam's items and the cold items (default: the size's)")
    parser.add_argument("--dense-loss-weight", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--warm-start", action="store_true", help="start from the latest TIGER on the same IDs")
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
    preset = PRESETS[args.size]
    given = {name: getattr(args, name) for name in ("epochs", "batch_size", "lr", "warmup_steps", "max_minutes",
                                                    "eval_users", "seed", "device", "patience", "label_smoothing",
                                                    "ema_decay", "dense_loss_weight")}
    train = dataclasses.replace(preset.tiger_train, **{k: v for k, v in given.items() if v is not None})
    switches = {name: getattr(args, name) == "on" for name in ("causal_encoder", "dense_head")
                if getattr(args, name) is not None}
    model = dataclasses.replace(preset.tiger, **switches)
    with training_processes(args, "tigertwin-train-tiger") as processes:
        config = TrainTigerJobConfig(run_date=args.run_date, model=model, train=train, version=args.version,
                                     warm_start=args.warm_start, refit=args.refit, processes=processes)
        result = run_train_tiger(catalog_from(args), artifacts_from(args), config, promote=not args.candidate)
    print(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "train-tiger")


if __name__ == "__main__":
    sys.exit(main())
