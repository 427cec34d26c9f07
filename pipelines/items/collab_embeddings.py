"""Collaborative item vectors from Spark MLlib ALS (implicit feedback) on silver.events.

For catalogs without usable text (amazon-beauty ships IDs only). ALS is fitted
on the training role of the shared leave-one-out split, so a user's validation
and test items never shape the vectors that the semantic IDs are built from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class AlsConfig:
    rank: int = 64
    max_iter: int = 15
    reg_param: float = 0.05
    alpha: float = 10.0  # confidence = 1 + alpha * interactions (Hu, Koren, Volinsky)
    seed: int = 0

    @property
    def model_name(self) -> str:
        return f"als-implicit(rank={self.rank},iter={self.max_iter},reg={self.reg_param},alpha={self.alpha})"


def als_item_vectors(events: DataFrame, config: AlsConfig) -> DataFrame:
    """events (user_id, item_id, ts) -> item_id, embedding array<float> for items with training events."""
    from pyspark.ml.feature import IndexToString, StringIndexer
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    from pipelines.splits import assign_roles_spark

    interactions = (
        assign_roles_spark(events.select("user_id", "item_id", "ts"))
        .filter(F.col("split") == "train")
        .groupBy("user_id", "item_id")
        .agg(F.count(F.lit(1)).cast("float").alias("interactions"))
    )
    # alphabetical order: the integer ids, and so the factors for a seed, do not depend on partitioning
    indexer = StringIndexer(
        inputCols=["user_id", "item_id"], outputCols=["user_index", "item_index"], stringOrderType="alphabetAsc"
    ).fit(interactions)
    als = ALS(
        rank=config.rank, maxIter=config.max_iter, regParam=config.reg_param, alpha=config.alpha,
        implicitPrefs=True, userCol="user_index", itemCol="item_index", ratingCol="interactions",
        seed=config.seed, coldStartStrategy="drop",
    )
    # Cut the input's plan (the split's window over every event) before ALS iterates over it: each
    # iteration's tasks carry that lineage, and on Beauty the task binaries grew until a deserialising
    # executor overflowed its stack. localCheckpoint keeps the rows in the executors (no checkpoint dir).
    model = als.fit(indexer.transform(interactions).localCheckpoint())
    to_item = IndexToString(inputCol="id", outputCol="item_id", labels=indexer.labelsArray[1])
    return to_item.transform(model.itemFactors).select(
        "item_id", F.col("features").cast("array<float>").alias("embedding")
    )
