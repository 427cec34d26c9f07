"""`tigertwin evaluate`: Recall/NDCG@5/10 of TIGER vs. most-popular and embedding kNN on the test split.

Full ranking over all items; the baselines are computed in the same run on
the same users. Writes ops.metrics (job=evaluate) and plots/evaluation_<date>.png.
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
from pipelines.evaluation.evaluate import EvaluateConfig, run_evaluate


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="tigertwin evaluate")
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--tiger-version", default=None, help="default: the latest")
    parser.add_argument("--beam-width", type=int, default=EvaluateConfig.beam_width)
    parser.add_argument("--role", choices=["test", "valid"], default="test")
    parser.add_argument("--plot-dir", default=EvaluateConfig.plot_dir)
    add_common_args(parser, torch=True)
    return parser


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    set_torch_threads(args)
    config = EvaluateConfig(run_date=args.run_date, tiger_version=args.tiger_version, beam_width=args.beam_width,
                            role=args.role, plot_dir=args.plot_dir)
    report = run_evaluate(spark_from(args, "tigertwin-evaluate"), catalog_from(args), artifacts_from(args), config)
    print(f"TIGER {report['tiger_version']}, {args.role} split:")
    names = [k for k in report["results"]["tiger"] if "@" in k]
    print(f"{'method':<12}" + "".join(f"{n:>11}" for n in names))
    for method, metrics in report["results"].items():
        print(f"{method:<12}" + "".join(f"{metrics[n]:>11.4f}" for n in names))
    print(f"plot: {report['plot']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "evaluate")


if __name__ == "__main__":
    sys.exit(main())
