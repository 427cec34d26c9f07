"""`tigertwin evaluate`: Recall/NDCG@5/10 of TIGER vs. most-popular, embedding kNN and SASRec on the test split.

Full ranking over all items, over every held-out user (a target without a
semantic ID is a miss for every method; the figures over users whose target
has an ID are logged beside). The baselines are computed in the same run on
the same users; SASRec is trained here, its dropout chosen on validation. Writes ops.metrics (job=evaluate) and plots/evaluation_<date>.png.
"""

from __future__ import annotations

import argparse
import sys

from jobs.runtime import (
    add_common_args,
    artifacts_from,
    catalog_from,
    run_job,
    set_torch_threads,
    setup_logging,
    spark_from,
)
from pipelines.evaluation.config import SASRecConfig
from pipelines.evaluation.evaluate import EvaluateConfig, run_evaluate


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="tigertwin evaluate")
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--tiger-version", default=None, help="default: the latest")
    parser.add_argument("--beam-width", type=int, default=EvaluateConfig.beam_width)
    parser.add_argument("--role", choices=["test", "valid"], default="test")
    parser.add_argument("--plot-dir", default=EvaluateConfig.plot_dir)
    parser.add_argument("--sasrec-minutes", type=float, default=SASRecConfig.max_minutes,
                        help="SASRec's training budget per dropout candidate, wall-clock minutes")
    parser.add_argument("--no-sasrec", action="store_true", help="skip the SASRec baseline")
    add_common_args(parser, torch=True)
    return parser


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    set_torch_threads(args)
    config = EvaluateConfig(run_date=args.run_date, tiger_version=args.tiger_version, beam_width=args.beam_width,
                            role=args.role, plot_dir=args.plot_dir,
                            sasrec=None if args.no_sasrec else SASRecConfig(max_minutes=args.sasrec_minutes))
    report = run_evaluate(spark_from(args, "tigertwin-evaluate"), catalog_from(args), artifacts_from(args), config)
    print(f"TIGER {report['tiger_version']}, {args.role} split:")
    names = [k for k in report["results"]["tiger"] if "@" in k and "/" not in k and not k.endswith("_se")]
    print(f"{'method':<12}" + "".join(f"{n:>11}" for n in names))
    for method, metrics in report["results"].items():
        print(f"{method:<12}" + "".join(f"{metrics[n]:>11.4f}" for n in names))
    print(f"plot: {report['plot']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "evaluate")


if __name__ == "__main__":
    sys.exit(main())
