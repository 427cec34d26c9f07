"""silver.items -> gold.item_embeddings with a sentence-transformers model, in Spark.

Only items whose content hash or model changed are embedded again; the table is
rewritten (reused + new vectors) in one commit. Items with no text at all go to
ops.quarantine with the reason.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from pipelines.config import logical_time
from pipelines.delta import read_table, table_version, write_table
from pipelines.embeddings import TextEmbeddingConfig, embed_frame
from pipelines.tables import GOLD_ITEM_EMBEDDINGS, SILVER_ITEMS, Catalog

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

_EMBEDDED = "item_id string, content_hash string, embedding array<float>, error string"
_CHUNK_ROWS = 2048  # rows per encode call inside a task: progress lines stay frequent


@dataclass(frozen=True)
class EmbedItemsConfig:
    run_date: dt.date
    text: TextEmbeddingConfig = field(default_factory=TextEmbeddingConfig)
    full_refresh: bool = False

    @property
    def run_id(self) -> str:
        return f"embed-items-{self.run_date.isoformat()}"


def embed_items_spark(items: DataFrame, config: TextEmbeddingConfig, partitions: int) -> DataFrame:
    """mapInPandas over the items; each Python worker loads the model once (see embeddings.load_model)."""

    def encode(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for start in range(0, len(batch), _CHUNK_ROWS):
                yield embed_frame(batch.iloc[start : start + _CHUNK_ROWS], config)

    columns = ["item_id", "content_hash", *(name for name, _ in config.template)]
    return items.select(*columns).repartition(partitions).mapInPandas(encode, _EMBEDDED)


def run_embed_items(spark: SparkSession, catalog: Catalog, config: EmbedItemsConfig) -> dict[str, float]:
    from pyspark.sql import functions as F

    from pipelines.ops import write_metrics, write_quarantine

    items = read_table(spark, catalog, SILVER_ITEMS.name)
    uri = catalog.location(GOLD_ITEM_EMBEDDINGS.name)
    reuse = None
    if not config.full_refresh and table_version(uri, catalog.storage_options or None) is not None:
        existing = read_table(spark, catalog, GOLD_ITEM_EMBEDDINGS.name).filter(
            (F.col("model") == config.text.model) & (F.col("source") == "text")
        )
        reuse = existing.join(items.select("item_id", "content_hash"), ["item_id", "content_hash"], "left_semi")
        items = items.join(reuse.select("item_id"), "item_id", "left_anti")
    todo = items.localCheckpoint()
    n_todo = todo.count()
    log.info("embedding %d new or changed item(s) with %s", n_todo, config.text.model)

    started = time.perf_counter()
    embedded = embed_items_spark(todo, config.text, spark.sparkContext.defaultParallelism).localCheckpoint()
    seconds = time.perf_counter() - started
    good = embedded.filter(F.col("error").isNull()).select(
        "item_id", "content_hash", F.lit(config.text.model).alias("model"), F.lit("text").alias("source"),
        "embedding",
    )
    rows = good if reuse is None else reuse.select(*GOLD_ITEM_EMBEDDINGS.schema.names).unionByName(good)
    write_table(spark, catalog, GOLD_ITEM_EMBEDDINGS.name, rows, mode="overwrite",
                custom_metadata={"run_id": config.run_id, "model": config.text.model})
    bad = embedded.filter(F.col("error").isNotNull()).select(
        F.lit(SILVER_ITEMS.name).alias("source"), F.lit(0).cast("long").alias("row_number"),
        F.col("error").alias("reason"), F.to_json(F.struct("item_id")).alias("raw"),
    )
    write_quarantine(spark, catalog, GOLD_ITEM_EMBEDDINGS.name, config.run_id, bad)
    n_bad = bad.count()
    metrics = {
        "items_embedded": float(n_todo - n_bad),
        "items_reused": float(reuse.count() if reuse is not None else 0),
        "items_without_text": float(n_bad),
        "embed_seconds": seconds,
        "items_per_second": n_todo / seconds if seconds > 0 else 0.0,
    }
    write_metrics(spark, catalog, "embed_items", config.run_id, metrics, logical_time(config.run_date))
    return metrics
