"""`tigertwin train-rqvae`: gold.item_embeddings -> artifacts/rqvae/<version>/ (torch; GPU when present).

Trains TIGER's RQ-VAE (3 levels of 256 codes by default) and writes the
weights, a JSON card (config, the Delta version read, metrics) and a PNG of
code usage. Checkpoints every --checkpoint-every epochs; rerunning the same
version resumes where it stopped. Needs no Spark: it reads Delta with delta-rs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from jobs.runtime import (
    add_common_args,
    artifacts_from,
    catalog_from,
    job_parser,
    run_job,
    set_torch_threads,
    setup_logging,
)
from models.config import RQVAEConfig, RQVAETrainConfig
from pipelines.items.rqvae_job import TrainRQVAEJobConfig, run_train_rqvae


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("train-rqvae", __doc__, parser)
    m, t = RQVAEConfig(), RQVAETrainConfig()
    parser.add_argument("--levels", type=int, default=m.levels)
    parser.add_argument("--codebook-size", type=int, default=m.codebook_size)
    parser.add_argument("--latent-dim", type=int, default=m.latent_dim)
    parser.add_argument("--epochs", type=int, default=t.epochs)
    parser.add_argument("--batch-size", type=int, default=t.batch_size)
    parser.add_argument("--lr", type=float, default=t.lr)
    parser.add_argument("--checkpoint-every", type=int, default=t.checkpoint_every, help="epochs (0: never)")
    parser.add_argument("--seed", type=int, default=t.seed)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--version", default=None, help="artifact version (default <run date>-e<table version>)")
    add_common_args(parser, spark=False, torch=True)
    return parser


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    set_torch_threads(args)
    config = TrainRQVAEJobConfig(
        run_date=args.run_date,
        model=RQVAEConfig(levels=args.levels, codebook_size=args.codebook_size, latent_dim=args.latent_dim),
        train=RQVAETrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                               checkpoint_every=args.checkpoint_every, device=args.device),
        version=args.version,
    )
    result = run_train_rqvae(catalog_from(args), artifacts_from(args), config)
    print(json.dumps(result, indent=2))
    print(f"artifact: {os.path.join(result['directory'], 'card.json')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "train-rqvae")


if __name__ == "__main__":
    sys.exit(main())
