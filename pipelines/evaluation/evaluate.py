"""Offline evaluation on the test split: TIGER vs. most-popular, embedding kNN and SASRec, same run.

Recall@5/10 and NDCG@5/10 with full ranking over all items (as in the TIGER
paper); items in the history excluded for every method alike. The headline is
over every held-out user: a target without a semantic ID (an item first seen
in test has no vector) is a miss for every method; the figures over users
whose target has an ID sit beside it. Results go to ops.metrics
(`<method>/<metric>`, `<method>/with_id/<metric>`) and a PNG.
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

from models.examples import Examples
from models.metrics import per_user_gains, ranking_metrics, standard_error
from pipelines.evaluation.baselines import knn_topk, popularity_topk
from pipelines.evaluation.config import SASRecConfig
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import SILVER_EVENTS, Catalog
from pipelines.lakehouse.config import logical_time
from pipelines.lakehouse.ops import write_metrics
from pipelines.lakehouse.table_io import read_table_arrow
from pipelines.plots import plot_method_comparison
from pipelines.ranking.inputs import load_ranker_inputs
from pipelines.ranking.serving import MODEL as RANKER
from pipelines.ranking.serving import RankerFeatures, evaluate_ranker, load_ranker, rerank
from pipelines.retrieval.inputs import RetrievalInputs, item_vectors_by_row, load_retrieval_inputs
from pipelines.retrieval.sequences import SequenceData, build_sequences, training_item_counts
from pipelines.retrieval.serving import load_tiger, tiger_top_k
from pipelines.splits import SEQUENCE_COLUMNS, SplitConfig

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
    sasrec: SASRecConfig | None = SASRecConfig()  # None: no SASRec baseline

    @property
    def run_id(self) -> str:
        return f"evaluate-{self.run_date.isoformat()}"


def evaluate_methods(
    catalog: Catalog, store: ArtifactStore, config: EvaluateConfig, inputs: RetrievalInputs | None = None
) -> tuple[dict[str, dict[str, float]], str]:
    """{method: {recall@5, ndcg@5, recall@10, ndcg@10 (over every held-out user), with_id/... (over users
    whose target has a semantic ID), ndcg@10_se, ...}} and the TIGER version evaluated."""
    inputs = inputs or load_retrieval_inputs(catalog)
    examples = getattr(inputs.sequences, config.role)
    unreachable = int(inputs.sequences.stats[f"{config.role}_targets_without_semantic_id"])
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
    extra: dict[str, dict[str, float]] = {"tiger": {"users_per_s": len(examples) / tiger_seconds if tiger_seconds else 0.0}}
    if config.sasrec is not None:
        ranked["sasrec"], extra["sasrec"] = sasrec_ranking(catalog, inputs, config, examples)
    if config.ranker and store.latest_version(RANKER) is not None:
        ranked["tiger+twin"], extra["tiger+twin"] = rerank_tiger(catalog, store, config, inputs, model, examples)
    results = {name: method_metrics(r, examples.targets, unreachable) | extra.get(name, {})
               for name, r in ranked.items()}
    for name, metrics in results.items():
        log.info("%s on %d %s users (%d of them with a target no method can rank): %s", name,
                 len(examples) + unreachable, config.role, unreachable, {k: round(v, 4) for k, v in metrics.items()})
    return results, version


def method_metrics(ranked: np.ndarray, targets: np.ndarray, unreachable: int) -> dict[str, float]:
    """Headline metrics over every held-out user, the same over users whose target has an ID, and the
    standard error of NDCG@10 over users."""
    _, gains = per_user_gains(ranked, targets, 10)
    over_all = np.r_[gains, np.zeros(unreachable)]
    with_id = {f"with_id/{k}": v for k, v in ranking_metrics(ranked, targets).items()}
    return ranking_metrics(ranked, targets, unreachable=unreachable) | with_id | {
        "ndcg@10_se": standard_error(over_all), "users": float(len(over_all))}


def long_sequences(catalog: Catalog, inputs: RetrievalInputs, width: int) -> SequenceData:
    """The same split as `inputs` (same events version, same item rows) with histories `width` items wide."""
    events, _ = read_table_arrow(catalog, SILVER_EVENTS.name, columns=list(SEQUENCE_COLUMNS),
                                 version=inputs.table_versions[SILVER_EVENTS.name])
    return build_sequences(events.to_pandas(), inputs.index, SplitConfig(max_history=width))


def sasrec_ranking(catalog: Catalog, inputs: RetrievalInputs, config: EvaluateConfig,
                   examples: Examples) -> tuple[np.ndarray, dict[str, float]]:
    """SASRec trained on the training split (dropout chosen on validation) -> top-10 for `examples`' users."""
    from pipelines.evaluation.sasrec import (  # torch: only when SASRec runs
        sasrec_top_k,
        train_sasrec,
    )

    assert config.sasrec is not None
    sequences = long_sequences(catalog, inputs, config.sasrec.max_length)
    held = getattr(sequences, config.role)
    if not np.array_equal(held.targets, examples.targets):  # same split, same users: a bug otherwise
        raise AssertionError("SASRec's held-out examples differ from TIGER's")
    model, report = train_sasrec(sequences.train, sequences.valid, len(inputs.index.item_ids), config.sasrec,
                                 config.exclude_history)
    chosen = report["chosen"]
    return sasrec_top_k(model, held, 10, config.exclude_history), {
        "dropout": chosen["dropout"], "best_epoch": float(chosen["best_epoch"]),
        "train_seconds": float(sum(c["seconds"] for c in report["candidates"]))}


def rerank_tiger(catalog, store, config: EvaluateConfig, inputs: RetrievalInputs, model, examples):
    """TIGER's top-N (the depth the ranker's blend was chosen at) reordered by the ranker -> top-10; plus the
    ranker's AUC/GAUC on the same users."""
    ranker, _, blend = load_ranker(store, config.ranker_version, inputs.rqvae_version)
    ranker_inputs = load_ranker_inputs(catalog, inputs, check_holdout=True)
    top = tiger_top_k(model, inputs.index, examples, blend.depth, None, config.exclude_history)
    features = RankerFeatures.of(ranker_inputs, examples, ranker.config.recent_events)
    items, _, _ = rerank(ranker, features, examples.users, top.items.numpy(), 10,
                         retrieval_scores=top.scores.numpy().astype(np.float64), blend_weight=blend.weight)
    quality = evaluate_ranker(ranker, ranker_inputs, examples, negatives=20, seed=7)
    return items, {**quality, "blend_weight": -1.0 if math.isinf(blend.weight) else blend.weight}


def run_evaluate(spark: SparkSession, catalog: Catalog, store: ArtifactStore, config: EvaluateConfig) -> dict:
    results, version = evaluate_methods(catalog, store, config)
    flat = {f"{method}/{metric}": value for method, metrics in results.items() for metric, value in metrics.items()}
    write_metrics(spark, catalog, "evaluate", config.run_id, flat, logical_time(config.run_date))
    plot = plot_method_comparison(
        {m: {k: v for k, v in r.items() if "@" in k and "/" not in k and not k.endswith("_se")}
         for m, r in results.items()},
        pathlib.Path(config.plot_dir) / f"evaluation_{config.run_date.isoformat()}.png",
        f"{config.role} split, TIGER {version} vs. baselines",
    )
    return {"tiger_version": version, "results": results, "plot": plot}
