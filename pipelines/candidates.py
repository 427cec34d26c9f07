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

from pipelines.artifacts import ArtifactStore
from pipelines.config import logical_time
from pipelines.delta import write_table
from pipelines.ranking import blended_score
from pipelines.retrieval import MODEL, RetrievalInputs, UpstreamTableError, load_retrieval_inputs
from pipelines.splits import SplitConfig
from pipelines.tables import GOLD_CANDIDATES, GOLD_SEMANTIC_IDS, Catalog

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CandidatesConfig:
    run_date: dt.date
    top_k: int = 100
    beam_width: int | None = None  # None: top_k
    tiger_version: str | None = None  # None: the latest
    exclude_history: bool = True
    batch_size: int = 64  # users per beam-search batch (x beam width sequences)
    device: str | None = None
    rerank: bool = True  # TWIN-V2 reorders TIGER's top_k and keeps final_k
    final_k: int = 20
    ranker_version: str | None = None  # None: the latest

    @property
    def run_id(self) -> str:
        return f"generate-candidates-{self.run_date.isoformat()}"


def load_tiger(store: ArtifactStore, version: str | None, inputs: RetrievalInputs, device: str | None):
    """(model, version); fails clearly when the IDs table was rebuilt under another RQ-VAE."""
    from models.config import TigerConfig
    from models.tiger_training import load_weights

    version = store.resolve(MODEL, version)
    card = store.read_card(MODEL, version)
    if card["rqvae_version"] != inputs.rqvae_version:
        raise UpstreamTableError(
            f"TIGER {version} was trained on RQ-VAE {card['rqvae_version']} IDs but {GOLD_SEMANTIC_IDS.name} "
            f"now holds RQ-VAE {inputs.rqvae_version} IDs: train TIGER again"
        )
    model_config = dict(card["config"]["model"])
    model = load_weights(TigerConfig(**model_config), store.directory(MODEL, version) / card["weights"], device)
    return model, version, card


def tiger_top_k(model, inputs: RetrievalInputs, examples, top_k: int, beam_width: int | None,
                exclude_history: bool, batch_size: int, progress: bool = True, exclude_items=None):
    import torch

    from models.beam_search import SemanticIdTrie
    from models.tiger_training import Sequences, recommend

    device = next(model.parameters()).device
    trie = SemanticIdTrie(inputs.index.codes, model.config.codebook_size).to(device)
    codes = torch.as_tensor(inputs.index.codes, device=device)
    return recommend(model, codes, trie, Sequences(examples.users, examples.histories, examples.targets),
                     top_k=top_k, beam_width=beam_width or top_k, exclude_history=exclude_history,
                     batch_size=batch_size, progress=progress, exclude_items=exclude_items)


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
    from pipelines.ops import write_metrics

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
        from pipelines.ranker import load_ranker, load_ranker_inputs, rerank

        ranker, ranker_version, blend = load_ranker(store, config.ranker_version, inputs, config.device)
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
