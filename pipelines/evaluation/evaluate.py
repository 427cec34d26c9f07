"""Offline evaluation on the test split: TIGER vs. most-popular and embedding kNN, same run.

Recall@5/10 and NDCG@5/10 with full ranking over all items (as in the TIGER
paper); items in the history excluded for every method alike. Results go to
ops.metrics (`<method>/<metric>`) and a PNG.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import pathlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from models.metrics import ranking_metrics
from pipelines.evaluation.baselines import knn_topk, popularity_topk
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import logical_time
from pipelines.lakehouse.ops import write_metrics
from pipelines.plots import plot_method_comparison
from pipelines.ranking.inputs import load_ranker_inputs
from pipelines.ranking.serving import MODEL as RANKER
from pipelines.ranking.serving import RankerFeatures, evaluate_ranker, load_ranker, rerank
from pipelines.retrieval.inputs import RetrievalInputs, item_vectors_by_row, load_retrieval_inputs
from pipelines.retrieval.sequences import training_item_counts
from pipelines.retrieval.serving import load_tiger, tiger_top_k

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateConfig:
    run_date: dt.date
    tiger_version: str | None = None
    beam_width: int = 20
    exclude_history: bool = True
    plot_dir: str = "plots"
    role: str = "test"  # or "valid"
    ranker: bool = True  # also TIGER + TWIN-V2 rerank (and the ranker's AUC/GAUC) when a ranker exists
    ranker_version: str | None = None  # the ranker's card says how deep into TIGER's list it reorders

    @property
    def run_id(self) -> str:
        return f"evaluate-{self.run_date.isoformat()}"


def evaluate_methods(
    catalog: Catalog, store: ArtifactStore, config: EvaluateConfig, inputs: RetrievalInputs | None = None
) -> tuple[dict[str, dict[str, float]], str]:
    """{method: {recall@5, ndcg@5, recall@10, ndcg@10, ...}} and the TIGER version evaluated."""
    inputs = inputs or load_retrieval_inputs(catalog)
    examples = getattr(inputs.sequences, config.role)
    model, version, _ = load_tiger(store, config.tiger_version, inputs.rqvae_version, None)
    started = time.perf_counter()
    tiger = tiger_top_k(model, inputs.index, examples, 10, config.beam_width, config.exclude_history)
    tiger_seconds = time.perf_counter() - started
    counts = training_item_counts(inputs.sequences.train, len(inputs.index.item_ids))
    ranked = {
        "tiger": tiger.items.numpy(),
        "popularity": popularity_topk(counts, examples.histories, 10, config.exclude_history),
        "knn": knn_topk(item_vectors_by_row(catalog, inputs.index), examples.histories, 10, config.exclude_history),
    }
    if config.ranker and store.latest_version(RANKER) is not None:
        ranked["tiger+twin"], ranker_quality = rerank_tiger(catalog, store, config, inputs, model, examples)
    results = {name: ranking_metrics(r, examples.targets) for name, r in ranked.items()}
    results["tiger"]["users_per_s"] = len(examples) / tiger_seconds if tiger_seconds else 0.0
    if "tiger+twin" in ranked:
        results["tiger+twin"].update(ranker_quality)
    for name, metrics in results.items():
        log.info("%s on %d %s users: %s", name, len(examples), config.role,
                 {k: round(v, 4) for k, v in metrics.items()})
    return results, version


def rerank_tiger(catalog, store, config: EvaluateConfig, inputs: RetrievalInputs, model, examples):
    """TIGER's top-N (the depth the ranker's blend was chosen at) reordered by the ranker -> top-10; plus the
    ranker's AUC/GAUC on the same users."""
    ranker, _, blend = load_ranker(store, config.ranker_version, inputs.rqvae_version)
    ranker_inputs = load_ranker_inputs(catalog, inputs, check_holdout=True)
    top = tiger_top_k(model, inputs.index, examples, blend.depth, None, config.exclude_history)
    items, _, _ = rerank(ranker, RankerFeatures.of(ranker_inputs), examples.users, top.items.numpy(), 10,
                         retrieval_scores=top.scores.numpy().astype(np.float64), blend_weight=blend.weight)
    quality = evaluate_ranker(ranker, ranker_inputs, examples, negatives=20, seed=7)
    return items, {**quality, "blend_weight": -1.0 if math.isinf(blend.weight) else blend.weight}


def run_evaluate(spark: SparkSession, catalog: Catalog, store: ArtifactStore, config: EvaluateConfig) -> dict:
    results, version = evaluate_methods(catalog, store, config)
    flat = {f"{method}/{metric}": value for method, metrics in results.items() for metric, value in metrics.items()}
    write_metrics(spark, catalog, "evaluate", config.run_id, flat, logical_time(config.run_date))
    plot = plot_method_comparison(
        {m: {k: v for k, v in r.items() if "@" in k} for m, r in results.items()},
        pathlib.Path(config.plot_dir) / f"evaluation_{config.run_date.isoformat()}.png",
        f"{config.role} split, TIGER {version} vs. baselines",
    )
    return {"tiger_version": version, "results": results, "plot": plot}
