"""`tigertwin synth`: write a synthetic catalog and user histories as raw Parquet files."""

from __future__ import annotations

import argparse
import logging
import sys

from jobs.runtime import run_job
from pipelines.ingest.synthetic import SynthConfig, write_raw

log = logging.getLogger("jobs.synth")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="tigertwin synth", description=__doc__)
    d = SynthConfig()
    parser.add_argument("--out", default="data/synthetic", help="output folder (default %(default)s)")
    parser.add_argument("--items", type=int, default=d.n_items, help="catalog size (default %(default)s)")
    parser.add_argument("--users", type=int, default=d.n_users, help="number of users (default %(default)s)")
    parser.add_argument("--median-history", type=int, default=d.median_history,
                        help="median events per user (default %(default)s)")
    parser.add_argument("--max-history", type=int, default=d.max_history,
                        help="cap on events per user (default %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "synth")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = SynthConfig(n_items=args.items, n_users=args.users, median_history=args.median_history,
                         max_history=args.max_history, seed=args.seed)
    paths = write_raw(config, args.out)
    log.info("wrote %s", paths)
    print(f"synthetic data in {args.out}: ingest it with\n  tigertwin ingest --format synthetic --path {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
