"""Offline evaluation on the test split: TIGER vs. most-popular and embedding kNN, same run.

Recall@5/10 and NDCG@5/10 with full ranking over all items (as in the TIGER
paper); items in the history excluded for every method alike. Results go to
ops.metrics (`<method>/<metric>`) and a PNG.
"""

from __future__ import annotations

import datetime as dt
import logging
import pathlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.compute as pc

from pipelines.artifacts import ArtifactStore
from pipelines.candidates import load_tiger, tiger_top_k
from pipelines.config import logical_time
from pipelines.delta import read_table_arrow
from pipelines.plots import plot_method_comparison
from pipelines.ranking import knn_topk, popularity_topk, ranking_metrics
from pipelines.retrieval import RetrievalInputs, load_retrieval_inputs
from pipelines.sequences import training_item_counts
from pipelines.tables import GOLD_ITEM_EMBEDDINGS, Catalog

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

    @property
    def run_id(self) -> str:
        return f"evaluate-{self.run_date.isoformat()}"


def item_vectors_by_row(catalog: Catalog, inputs: RetrievalInputs) -> np.ndarray:
    """gold.item_embeddings aligned to the item rows; items without a vector get zeros (never a neighbour)."""
    table, _ = read_table_arrow(catalog, GOLD_ITEM_EMBEDDINGS.name, columns=["item_id", "embedding"])
    dim = int(pc.max(pc.list_value_length(table.column("embedding"))).as_py() or 0)
    vectors = np.zeros((len(inputs.index.item_ids), dim), dtype=np.float32)
    rows = inputs.index.rows(table.column("item_id").to_numpy(zero_copy_only=False))
    flat = pc.list_flatten(table.column("embedding")).to_numpy().reshape(table.num_rows, dim)
    vectors[rows[rows >= 0]] = flat[rows >= 0]
    return vectors


def evaluate_methods(
    catalog: Catalog, store: ArtifactStore, config: EvaluateConfig, inputs: RetrievalInputs | None = None
) -> tuple[dict[str, dict[str, float]], str]:
    """{method: {recall@5, ndcg@5, recall@10, ndcg@10, ...}} and the TIGER version evaluated."""
    inputs = inputs or load_retrieval_inputs(catalog)
    examples = getattr(inputs.sequences, config.role)
    model, version, _ = load_tiger(store, config.tiger_version, inputs, None)
    started = time.perf_counter()
    tiger = tiger_top_k(model, inputs, examples, 10, config.beam_width, config.exclude_history, batch_size=128)
    tiger_seconds = time.perf_counter() - started
    counts = training_item_counts(inputs.sequences.train, len(inputs.index.item_ids))
    ranked = {
        "tiger": tiger.items.numpy(),
        "popularity": popularity_topk(counts, examples.histories, 10, config.exclude_history),
        "knn": knn_topk(item_vectors_by_row(catalog, inputs), examples.histories, 10, config.exclude_history),
    }
    results = {name: ranking_metrics(r, examples.targets) for name, r in ranked.items()}
    results["tiger"]["users_per_s"] = len(examples) / tiger_seconds if tiger_seconds else 0.0
    for name, metrics in results.items():
        log.info("%s on %d %s users: %s", name, len(examples), config.role,
                 {k: round(v, 4) for k, v in metrics.items()})
    return results, version


def run_evaluate(spark: SparkSession, catalog: Catalog, store: ArtifactStore, config: EvaluateConfig) -> dict:
    from pipelines.ops import write_metrics

    results, version = evaluate_methods(catalog, store, config)
    flat = {f"{method}/{metric}": value for method, metrics in results.items() for metric, value in metrics.items()}
    write_metrics(spark, catalog, "evaluate", config.run_id, flat, logical_time(config.run_date))
    plot = plot_method_comparison(
        {m: {k: v for k, v in r.items() if "@" in k} for m, r in results.items()},
        pathlib.Path(config.plot_dir) / f"evaluation_{config.run_date.isoformat()}.png",
        f"{config.role} split, TIGER {version} vs. baselines",
    )
    return {"tiger_version": version, "results": results, "plot": plot}
