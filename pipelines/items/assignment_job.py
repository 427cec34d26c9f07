"""gold.item_embeddings + an RQ-VAE version -> gold.semantic_ids, in Spark.

Codes are computed with mapInPandas (the model loaded once per Python worker);
collision tokens per 3-code group with applyInPandas, keeping every token
already given under the same model version (see semantic_ids.py). Items new
since the model was trained get IDs from their content alone: cold start
without retraining. The table is rewritten in one commit.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from pipelines.items.rqvae_job import MODEL, new_item_share
from pipelines.items.semantic_ids import (
    CODE_COLUMNS,
    TOKEN_COLUMN,
    SemanticIdCapacityError,
    assign_collision_tokens_of_groups,
    code_metrics,
)
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import GOLD_ITEM_EMBEDDINGS, GOLD_SEMANTIC_IDS, Catalog
from pipelines.lakehouse.config import logical_time
from pipelines.lakehouse.delta import table_version
from pipelines.lakehouse.table_io import read_table, write_table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

_CODES = "item_id string, c0 int, c1 int, c2 int"
_ASSIGNED = "item_id string, c0 int, c1 int, c2 int, c3 int"


@dataclass(frozen=True)
class AssignSemanticIdsConfig:
    run_date: dt.date
    rqvae_version: str | None = None  # None: the latest trained version
    collision_capacity: int = 256  # tokens at the 4th level
    torch_threads: int = 1  # per Spark Python worker (one worker per core)

    @property
    def run_id(self) -> str:
        return f"assign-semantic-ids-{self.run_date.isoformat()}"


_LOADED: dict[tuple[str, str], Any] = {}


def _load(store: ArtifactStore, version: str, torch_threads: int):
    """The RQ-VAE `version`, loaded once per Python worker from the artifact store itself (for an object-store
    root, into this machine's copy): an executor never reads a path of the driver's."""
    key = (store.root, version)
    if key not in _LOADED:
        import torch

        from models.rqvae import load_rqvae

        if not torch.cuda.is_available():
            torch.set_num_threads(torch_threads)
        store.verify(MODEL, version)
        _LOADED[key] = load_rqvae(str(store.directory(MODEL, version).resolve()))
    return _LOADED[key]


def encode_spark(embeddings: DataFrame, store: ArtifactStore, version: str, torch_threads: int) -> DataFrame:
    def encode(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import numpy as np

        from models.rqvae import encode_codes

        model, train = _load(store, version, torch_threads)
        for batch in batches:
            if batch.empty:
                continue
            codes = encode_codes(model, np.stack(batch["embedding"].to_numpy()), train.normalize_inputs)
            yield pd.DataFrame({"item_id": batch["item_id"].to_numpy(),
                                **{c: codes[:, i] for i, c in enumerate(CODE_COLUMNS)}})

    return embeddings.select("item_id", "embedding").mapInPandas(encode, _CODES)


def _previous_assignment(
    spark: SparkSession, catalog: Catalog, version: str, table_version_read: int | None
) -> DataFrame | None:
    from pyspark.sql import functions as F

    if table_version_read is None:
        return None
    previous = read_table(spark, catalog, GOLD_SEMANTIC_IDS.name, version=table_version_read).filter(
        F.col("rqvae_version") == version)
    return previous.select(
        "item_id", *[F.col("codes")[i].alias(c) for i, c in enumerate((*CODE_COLUMNS, TOKEN_COLUMN))]
    )


def run_assign_semantic_ids(
    spark: SparkSession, catalog: Catalog, store: ArtifactStore, config: AssignSemanticIdsConfig
) -> dict[str, float]:
    from pyspark.sql import functions as F

    from pipelines.lakehouse.ops import write_metrics

    version = store.resolve(MODEL, config.rqvae_version)
    card = store.read_card(MODEL, version)
    embeddings = read_table(spark, catalog, GOLD_ITEM_EMBEDDINGS.name)
    codes = encode_spark(embeddings, store.for_executors(), version, config.torch_threads).localCheckpoint()

    ids_version = table_version(catalog.location(GOLD_SEMANTIC_IDS.name), catalog.storage_options or None)
    previous = _previous_assignment(spark, catalog, version, ids_version)
    if previous is None:
        candidates = codes.withColumn("previous_token", F.lit(None).cast("int"))
    else:
        candidates = codes.join(
            previous.withColumnRenamed(TOKEN_COLUMN, "previous_token"), ["item_id", *CODE_COLUMNS], "left"
        )
    crowded = (candidates.groupBy(*CODE_COLUMNS).count()
               .filter(F.col("count") > config.collision_capacity).orderBy(F.desc("count")).limit(5).collect())
    if crowded:
        groups = ", ".join(f"{r.c0}-{r.c1}-{r.c2} ({r['count']} items)" for r in crowded)
        raise SemanticIdCapacityError(
            f"RQ-VAE {version}: 3-code group(s) {groups} exceed the {config.collision_capacity} collision "
            "tokens of the 4th level; retrain with more epochs or codes"
        )

    capacity = config.collision_capacity

    def assign(groups: pd.DataFrame) -> pd.DataFrame:
        return assign_collision_tokens_of_groups(groups, capacity)

    # by first code: ~256 pandas calls of many 3-code groups each, not one call per group (10^5 items
    # made ~9*10^4 calls, 300 s of per-call overhead)
    assigned = candidates.groupBy(CODE_COLUMNS[0]).applyInPandas(assign, _ASSIGNED)
    all_codes = [*CODE_COLUMNS, TOKEN_COLUMN]
    rows = assigned.select(
        "item_id",
        F.array(*[F.col(c) for c in all_codes]).alias("codes"),
        F.concat_ws("-", *[F.col(c).cast("string") for c in all_codes]).alias("semantic_id"),
        F.lit(version).alias("rqvae_version"),
    ).localCheckpoint()
    write_table(spark, catalog, GOLD_SEMANTIC_IDS.name, rows, mode="overwrite", read_version=ids_version,
                custom_metadata={"run_id": config.run_id, "rqvae_version": version})

    code_frame = cast(pd.DataFrame, codes.toPandas())
    codebook_size = int(card["config"]["model"]["codebook_size"])
    metrics = code_metrics(code_frame[list(CODE_COLUMNS)].to_numpy(), codebook_size)
    kept = 0 if previous is None else candidates.filter(F.col("previous_token").isNotNull()).count()
    metrics["ids_kept"] = float(kept)
    metrics["ids_new"] = metrics["items"] - kept
    metrics["new_item_share"] = new_item_share(store, version, code_frame["item_id"].to_numpy())
    metrics["reconstruction_loss"] = float(card["metrics"]["reconstruction_loss"])
    unique_ids = rows.select("semantic_id").distinct().count()
    if unique_ids != metrics["items"]:  # guarded by construction; a failure here is a bug, not bad data
        raise RuntimeError(f"{unique_ids} distinct semantic IDs for {metrics['items']:.0f} items")
    write_metrics(spark, catalog, "assign_semantic_ids", config.run_id, metrics, logical_time(config.run_date))
    log.info("semantic IDs from RQ-VAE %s: %d items, %d kept, %d new", version, metrics["items"], kept,
             metrics["ids_new"])
    return metrics
