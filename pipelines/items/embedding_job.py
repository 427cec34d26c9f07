"""silver.items (+ silver.events) -> gold.item_embeddings, in Spark.

Sources: `text` (a sentence-transformers model over the item's content),
`als` (collaborative vectors, for catalogs without text), `concat` (both).
Text is embedded incrementally: only items whose content hash or model changed
are encoded again; the table is rewritten (reused + new vectors) in one commit.
Items left without a vector go to ops.quarantine with the reason.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from pipelines.items.collab_embeddings import AlsConfig, als_item_vectors
from pipelines.items.config import DEFAULT_SOURCE, SOURCES, EmbeddingSource
from pipelines.items.text_embeddings import TextEmbeddingConfig, embed_frame
from pipelines.lakehouse.catalog import GOLD_ITEM_EMBEDDINGS, SILVER_EVENTS, SILVER_ITEMS, Catalog
from pipelines.lakehouse.config import logical_time
from pipelines.lakehouse.delta import table_version
from pipelines.lakehouse.table_io import read_table, write_table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

_EMBEDDED = "item_id string, content_hash string, embedding array<float>, error string"
_CHUNK_ROWS = 2048  # rows per encode call inside a task: progress lines stay frequent




@dataclass(frozen=True)
class EmbedItemsConfig:
    run_date: dt.date
    source: EmbeddingSource = DEFAULT_SOURCE
    text: TextEmbeddingConfig = field(default_factory=TextEmbeddingConfig)
    als: AlsConfig = field(default_factory=AlsConfig)
    full_refresh: bool = False

    @property
    def run_id(self) -> str:
        return f"embed-items-{self.run_date.isoformat()}"

    @property
    def model_name(self) -> str:
        return {"text": self.text.model, "als": self.als.model_name,
                "concat": f"{self.text.model}+{self.als.model_name}"}[self.source]


def embed_items_spark(items: DataFrame, config: TextEmbeddingConfig, partitions: int) -> DataFrame:
    """mapInPandas over the items; each Python worker loads the model once (see embeddings.load_model)."""

    def encode(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            for start in range(0, len(batch), _CHUNK_ROWS):
                yield embed_frame(batch.iloc[start : start + _CHUNK_ROWS], config)

    columns = ["item_id", "content_hash", *(name for name, _ in config.template)]
    return items.select(*columns).repartition(partitions).mapInPandas(encode, _EMBEDDED)


def _text_vectors(
    spark: SparkSession, catalog: Catalog, items: DataFrame, config: EmbedItemsConfig, version: int | None
) -> tuple[DataFrame, DataFrame, dict[str, float]]:
    """(item_id, content_hash, embedding) for every item with text, re-embedding only new or
    changed ones; and the items without text."""
    from pyspark.sql import functions as F

    reuse = None
    if not config.full_refresh and version is not None:
        existing = read_table(spark, catalog, GOLD_ITEM_EMBEDDINGS.name, version=version).filter(
            (F.col("model") == config.model_name) & (F.col("source") == config.source)
        )
        if config.source == "concat":  # the text half leads; the ALS half is refitted every run
            existing = existing.withColumn(
                "embedding", F.slice("embedding", 1, F.size("embedding") - config.als.rank)
            )
        reuse = existing.join(items.select("item_id", "content_hash"), ["item_id", "content_hash"], "left_semi")
        items = items.join(reuse.select("item_id"), "item_id", "left_anti")
    todo = items.localCheckpoint()
    n_todo = todo.count()
    log.info("embedding %d new or changed item(s) with %s", n_todo, config.text.model)
    started = time.perf_counter()
    embedded = embed_items_spark(todo, config.text, spark.sparkContext.defaultParallelism).localCheckpoint()
    seconds = time.perf_counter() - started
    good = embedded.filter(F.col("error").isNull()).select("item_id", "content_hash", "embedding")
    vectors = good if reuse is None else reuse.select(*good.columns).unionByName(good)
    bad = embedded.filter(F.col("error").isNotNull()).select("item_id", F.col("error").alias("reason"))
    n_bad = bad.count()
    return vectors, bad, {
        "items_embedded": float(n_todo - n_bad),
        "items_reused": float(reuse.count() if reuse is not None else 0),
        "embed_seconds": seconds,
        "items_per_second": n_todo / seconds if seconds > 0 else 0.0,
    }


def _als_vectors(
    spark: SparkSession, catalog: Catalog, items: DataFrame, config: EmbedItemsConfig
) -> tuple[DataFrame, DataFrame, dict[str, float]]:
    from pyspark.sql import functions as F

    started = time.perf_counter()
    events = read_table(spark, catalog, SILVER_EVENTS.name)
    factors = als_item_vectors(events, config.als).localCheckpoint()
    vectors = items.select("item_id", "content_hash").join(factors, "item_id")
    missing = items.join(factors, "item_id", "left_anti").select(
        "item_id", F.lit("no training events, so ALS has no vector (a cold item: use --source text or concat)")
        .alias("reason"),
    )
    return vectors, missing, {"als_seconds": time.perf_counter() - started, "als_items": float(factors.count())}


def _concat(text: DataFrame, als: DataFrame) -> DataFrame:
    """[text / |text|, als / |als|]: each half unit length, so neither dominates by scale."""
    from pyspark.sql import functions as F

    def unit(column: str):
        norm = F.sqrt(F.aggregate(F.col(column), F.lit(0.0), lambda acc, v: acc + v * v))
        return F.transform(F.col(column), lambda v: (v / F.greatest(norm, F.lit(1e-12))).cast("float"))

    return text.join(als.select("item_id", F.col("embedding").alias("als")), "item_id").select(
        "item_id", "content_hash", F.concat(unit("embedding"), unit("als")).alias("embedding")
    )


def run_embed_items(spark: SparkSession, catalog: Catalog, config: EmbedItemsConfig) -> dict[str, float]:
    from pyspark.sql import functions as F

    from pipelines.lakehouse.ops import write_metrics, write_quarantine

    if config.source not in SOURCES:
        raise ValueError(f"embedding source {config.source!r} is not one of {SOURCES}")
    items = read_table(spark, catalog, SILVER_ITEMS.name)
    # pinned: the reused vectors come from this version, and the rewrite commits against it
    version = table_version(catalog.location(GOLD_ITEM_EMBEDDINGS.name), catalog.storage_options or None)
    metrics: dict[str, float] = {}
    parts = []
    if config.source in ("text", "concat"):
        text, no_text, text_metrics = _text_vectors(spark, catalog, items, config, version)
        parts.append(no_text)
        metrics |= text_metrics
    if config.source in ("als", "concat"):
        als, no_als, als_metrics = _als_vectors(spark, catalog, items, config)
        parts.append(no_als)
        metrics |= als_metrics
    if config.source == "text":
        vectors = text
    elif config.source == "als":
        vectors = als
    else:
        vectors = _concat(text, als)
    rows = vectors.select(
        "item_id", "content_hash", F.lit(config.model_name).alias("model"),
        F.lit(config.source).alias("source"), "embedding",
    )
    write_table(spark, catalog, GOLD_ITEM_EMBEDDINGS.name, rows, mode="overwrite", read_version=version,
                custom_metadata={"run_id": config.run_id, "model": config.model_name, "source": config.source})
    rejected = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
    rejected = rejected.groupBy("item_id").agg(F.concat_ws("; ", F.sort_array(F.collect_set("reason"))).alias("reason"))
    bad = rejected.select(
        F.lit(SILVER_ITEMS.name).alias("source"), F.lit(0).cast("long").alias("row_number"),
        "reason", F.to_json(F.struct("item_id")).alias("raw"),
    )
    write_quarantine(spark, catalog, GOLD_ITEM_EMBEDDINGS.name, config.run_id, bad)
    metrics["items_without_vector"] = float(rejected.count())
    metrics["items_written"] = float(read_table(spark, catalog, GOLD_ITEM_EMBEDDINGS.name).count())
    write_metrics(spark, catalog, "embed_items", config.run_id, metrics, logical_time(config.run_date))
    return metrics
