"""`tigertwin evaluate`: tonight's list (the retrievers' union ranked by TWIN-V2) against every retriever
alone and the kNN baseline, on the same held-out users with the same seen set.

Full ranking over all items, over every held-out user (a target without a
semantic ID is a miss for every method). Evaluates the served models (or the
versions given with --version); trains nothing. Each metric is printed with
its standard error, and each method with its paired per-user difference to
the best other method. Writes ops.metrics (job=evaluate) and
plots/evaluation_<date>.png.
"""

from __future__ import annotations

import argparse
import logging
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
from pipelines.evaluation.evaluate import HEADLINE, EvaluateConfig, Evaluation, run_evaluate

log = logging.getLogger("jobs.evaluate")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("evaluate", __doc__, parser)
    parser.add_argument("--role", choices=["test", "valid"], default="test",
                        help="valid scores the users the models were selected on: optimistic")
    parser.add_argument("--retrievers", nargs="+", default=list(EvaluateConfig.retrievers))
    parser.add_argument("--version", action="append", default=[], metavar="MODEL=VERSION",
                        help="evaluate this version instead of the served one (repeatable; MODEL twin = the ranker)")
    parser.add_argument("--no-knn", action="store_true", help="skip the content kNN baseline")
    parser.add_argument("--plot-dir", default=EvaluateConfig.plot_dir)
    add_common_args(parser, torch=True)
    return parser


def format_table(evaluation: Evaluation) -> str:
    """Aligned rows: each metric as value +- standard error (4 significant digits), the paired difference."""
    lines = [f"{'method':<12}" + "".join(f"{m:>12}" for m in HEADLINE) + f"{'NDCG@10 SE':>12}"
             + "   NDCG@10 vs best other (paired)"]
    for method, r in evaluation.results.items():
        other = evaluation.compared_with.get(method)
        diff = (f"   {r['vs_best_other/ndcg@10']:+.4g} +- {r['vs_best_other/ndcg@10_se']:.2g} vs {other}"
                if other else "")
        lines.append(f"{method:<12}" + "".join(f"{r[m]:>12.4g}" for m in HEADLINE) + f"{r['ndcg@10_se']:>12.2g}" + diff)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    set_torch_threads(args)
    pins = tuple(tuple(v.split("=", 1)) for v in args.version)
    if any(len(p) != 2 for p in pins):
        raise SystemExit("evaluate: --version takes MODEL=VERSION")
    config = EvaluateConfig(run_date=args.run_date, role=args.role, retrievers=tuple(args.retrievers),
                            versions=pins, knn=not args.no_knn, plot_dir=args.plot_dir)  # type: ignore[arg-type]
    if args.role == "valid":
        log.warning("--role valid scores the users every model was selected on: the figures are optimistic")
    report = run_evaluate(spark_from(args, "tigertwin-evaluate"), catalog_from(args), artifacts_from(args), config)
    print(f"{args.role} split, {report['users']:,} users; models: {report['versions']}")
    print(format_table(report["evaluation"]))
    print(f"plot: {report['plot']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "evaluate")


if __name__ == "__main__":
    sys.exit(main())
