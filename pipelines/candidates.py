"""Tonight's candidates: TIGER's top-K per user, reranked by the TWIN-V2 ranker into the final list
(switchable off) -> gold.candidates, one atomic overwrite of the run_date partition (a rerun of a
date replaces it; never duplicates). Rows keep both scores and both model versions."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import GOLD_CANDIDATES, Catalog
from pipelines.lakehouse.config import logical_time
from pipelines.lakehouse.ops import write_metrics
from pipelines.lakehouse.table_io import write_table
from pipelines.ranking.blend import blended_score
from pipelines.ranking.config import RerankConfig
from pipelines.ranking.inputs import load_ranker_inputs
from pipelines.ranking.serving import load_ranker, rerank
from pipelines.retrieval.inputs import RetrievalInputs, load_retrieval_inputs
from pipelines.retrieval.serving import load_tiger, tiger_top_k
from pipelines.splits import SplitConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CandidatesConfig:
    run_date: dt.date
    # TIGER's list per user. With the ranker on, keep it at the depth the ranker's blend was chosen for
    # (its card's `blend.depth`, RerankConfig.depth by default): the weight is only right for that list.
    top_k: int = RerankConfig.depth
    beam_width: int | None = None  # None: top_k
    tiger_version: str | None = None  # None: the latest
    exclude_history: bool = True
    batch_size: int | None = None  # users per beam-search batch; None: what memory holds (256 on CPU)
    device: str | None = None
    rerank: bool = True  # TWIN-V2 reorders TIGER's top_k and keeps final_k
    final_k: int = RerankConfig.final_k
    ranker_version: str | None = None  # None: the latest

    @property
    def run_id(self) -> str:
        return f"generate-candidates-{self.run_date.isoformat()}"


def candidate_rows(inputs: RetrievalInputs, users: np.ndarray, items: np.ndarray, retrieval_scores: np.ndarray,
                   run_date: dt.date, version: str, ranker_scores: np.ndarray | None = None,
                   ranker_version: str | None = None, blend_weight: float = math.inf) -> pd.DataFrame:
    """One row per (user, rank) for the valid beams (users with short catalogs may get fewer than K);
    `score` is what the rank follows: TIGER's, or TIGER's + blend_weight * the ranker's."""
    valid = items >= 0
    user_rows, rank = np.nonzero(valid)
    chosen = items[valid]
    final = retrieval_scores if ranker_scores is None else blended_score(retrieval_scores, ranker_scores, blend_weight)
    return pd.DataFrame({
        "run_date": run_date,
        "user_id": users[user_rows],
        "rank": (rank + 1).astype(np.int32),
        "item_id": inputs.index.item_ids[chosen],
        "semantic_id": inputs.index.semantic_ids[chosen],
        "score": final[valid].astype(np.float64),
        "retrieval_score": retrieval_scores[valid].astype(np.float64),
        "ranker_score": None if ranker_scores is None else ranker_scores[valid].astype(np.float64),
        "source": "tiger" if ranker_scores is None else "tiger+twin",
        "model_version": version,
        "ranker_version": ranker_version,
    }, columns=list(GOLD_CANDIDATES.schema.names))


def run_generate_candidates(
    spark: SparkSession, catalog: Catalog, store: ArtifactStore, config: CandidatesConfig
) -> dict[str, float]:
    inputs = load_retrieval_inputs(catalog, SplitConfig())
    model, version, _ = load_tiger(store, config.tiger_version, inputs, config.device)
    serve = inputs.sequences.serve
    started = time.perf_counter()
    result = tiger_top_k(model, inputs, serve, config.top_k, config.beam_width, config.exclude_history,
                         config.batch_size, exclude_items=inputs.sequences.serve_seen)
    items, scores = result.items.numpy(), result.scores.numpy().astype(np.float64)
    ranker_scores = ranker_version = None
    blend_weight = math.inf
    if config.rerank:
        ranker, ranker_version, blend = load_ranker(store, config.ranker_version, inputs, config.device)
        if blend.depth != config.top_k and not math.isinf(blend.weight):
            log.warning("ranker %s chose its blend weight on TIGER lists of %d, but tonight's are %d long: "
                        "pass --top-k %d (or retrain the ranker with --rerank-depth %d)", ranker_version,
                        blend.depth, config.top_k, blend.depth, config.top_k)
        blend_weight = blend.weight
        ranker_inputs = load_ranker_inputs(catalog, inputs, check_holdout=False)
        items, ranker_scores, order = rerank(ranker, ranker_inputs, serve.users, items, config.final_k,
                                             retrieval_scores=scores, blend_weight=blend.weight)
        scores = np.take_along_axis(scores, order, 1)
    seconds = time.perf_counter() - started
    rows = candidate_rows(inputs, serve.users, items, scores, config.run_date, version, ranker_scores,
                          ranker_version, blend_weight)
    frame = spark.createDataFrame(rows, GOLD_CANDIDATES.spark_schema())
    write_table(spark, catalog, GOLD_CANDIDATES.name, frame, mode="overwrite",
                replace_partitions=[{"run_date": config.run_date}],
                custom_metadata={"run_id": config.run_id, "model_version": version})
    metrics = {
        "users": float(len(serve)), "candidates": float(len(rows)),
        "users_with_fewer_than_k": float((items < 0).any(1).sum()),
        "reranked": float(config.rerank),
        "generate_seconds": seconds, "users_per_s": len(serve) / seconds if seconds else 0.0,
    }
    write_metrics(spark, catalog, "generate_candidates", config.run_id, metrics, logical_time(config.run_date))
    log.info("wrote %d candidates for %d users (TIGER %s, ranker %s, %.1f users/s)", len(rows), len(serve),
             version, ranker_version, metrics["users_per_s"])
    return metrics
