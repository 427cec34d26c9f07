"""`tigertwin`: one command, one sub-command per job (each also runs as `python -m jobs.<name>`)."""

from __future__ import annotations

import argparse
import importlib
import sys

from jobs.runtime import run_job

# sub-command -> job module; each module has build_parser(parser) and run(args).
COMMANDS = {
    "synth": "jobs.synth",
    "ingest": "jobs.ingest",
    "embed-items": "jobs.embed_items",
    "sql": "jobs.sql",
    "cluster-behaviors": "jobs.cluster_behaviors",
    "train-rqvae": "jobs.train_rqvae",
    "assign-semantic-ids": "jobs.assign_semantic_ids",
    "train-tiger": "jobs.train_tiger",
    "train-sasrec": "jobs.train_sasrec",
    "train-popularity": "jobs.train_popularity",
    "train-twin": "jobs.train_twin",
    "generate-candidates": "jobs.generate_candidates",
    "evaluate": "jobs.evaluate",
    "models": "jobs.model_registry",
    "optimize": "jobs.optimize",
    "vacuum": "jobs.vacuum",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # a named command imports its own module only: every module's imports together (pandas, the ingest
    # and training code) cost about half a second, most of a quick `tigertwin sql`; `--help` lists them all
    chosen = [argv[0]] if argv and argv[0] in COMMANDS else list(COMMANDS)
    parser = argparse.ArgumentParser(prog="tigertwin", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name in chosen:
        module = importlib.import_module(COMMANDS[name])
        summary = (module.__doc__ or "").strip().splitlines()[0]
        modules[name] = module
        module.build_parser(sub.add_parser(name, help=summary.split(": ", 1)[-1]))
    args = parser.parse_args(argv)
    return run_job(modules[args.command].run, args, args.command)


if __name__ == "__main__":
    sys.exit(main())
