"""`tigertwin models`: what each model has, which version is served, and changing that.

  tigertwin models list                      every model's versions (served one marked *)
  tigertwin models show sasrec [VERSION]     a version's card: config, data versions read, metrics
  tigertwin models gate sasrec [--version V] score a candidate against the served version on validation
                                             users (paired) and promote it only when it is not worse
  tigertwin models promote sasrec VERSION    serve VERSION (logged in artifacts/<model>/SERVED.jsonl)
  tigertwin models rollback sasrec           serve again the version served before the current one
"""

from __future__ import annotations

import argparse
import json
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
)

log = logging.getLogger("jobs.model_registry")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("models", __doc__, parser)
    parser.add_argument("action", choices=["list", "show", "gate", "promote", "rollback"])
    parser.add_argument("model", nargs="?", help="tiger, sasrec, popularity, twin, rqvae")
    parser.add_argument("version", nargs="?", help="show/promote: the version (show: default the served one)")
    parser.add_argument("--candidate", default=None, help="gate: the version to judge (default: the newest)")
    parser.add_argument("--max-worse-se", type=float, default=2.0,
                        help="gate: promote unless worse by more than this many standard errors (default %(default)s)")
    parser.add_argument("--eval-users", type=int, default=None, help="gate: validation users scored (default all)")
    add_common_args(parser, spark=False, torch=True)
    return parser


def _list(store, model: str | None) -> None:
    for name in [model] if model else store.models():
        served = store.latest_version(name)
        print(f"{name}:")
        for version in store.versions(name):
            card = store.read_card(name, version)
            metrics = {k: round(v, 4) for k, v in (card.get("metrics") or {}).items()
                       if isinstance(v, float) and ("valid" in k or "auc" in k)}
            mark = "*" if version == served else " "
            print(f"  {mark} {version:<32} {card.get('run_date', ''):<11} data {card.get('data', {})} {metrics}")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    store = artifacts_from(args)
    if args.action == "list":
        _list(store, args.model)
        return 0
    if not args.model:
        raise SystemExit(f"models {args.action}: name the model")
    if args.action == "show":
        version = store.resolve(args.model, args.version)
        card = store.verify(args.model, version)
        card["served"] = version == store.latest_version(args.model)
        card.pop("history", None)
        print(json.dumps(card, indent=2, default=str))
    elif args.action == "promote":
        if not args.version:
            raise SystemExit("models promote: give the version")
        store.promote(args.model, args.version, "promoted by hand")
        print(f"{args.model}: now serving {args.version}")
    elif args.action == "rollback":
        print(f"{args.model}: now serving {store.rollback(args.model)}")
    else:
        _gate(args, store)
    return 0


def _gate(args: argparse.Namespace, store) -> None:
    from pipelines.lakehouse.config import logical_time
    from pipelines.lakehouse.ops import write_metrics_arrow
    from pipelines.retrieval.inputs import load_retrieval_inputs
    from pipelines.retrieval.promotion import GateConfig, gate

    set_torch_threads(args)
    catalog = catalog_from(args)
    versions = store.versions(args.model)
    candidate = args.candidate or (versions[-1] if versions else None)
    if candidate is None:
        raise FileNotFoundError(f"no {args.model} version to gate under {store.root}; train one first")
    decision = gate(catalog, store, args.model, candidate, load_retrieval_inputs(catalog),
                    GateConfig(max_worse_se=args.max_worse_se, eval_users=args.eval_users))
    write_metrics_arrow(catalog, "models_gate", f"gate-{args.model}-{candidate}", decision.metrics(),
                        logical_time(args.run_date))
    served = candidate if decision.promoted else decision.served
    print(f"{args.model} {candidate}: {'promoted' if decision.promoted else 'NOT promoted'} ({decision.reason}); "
          f"serving {served}")


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "models")


if __name__ == "__main__":
    sys.exit(main())
