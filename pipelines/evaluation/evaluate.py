"""Offline evaluation, fair by construction: every retriever, the kNN baseline and tonight's list (the union
ranked by the TWIN-V2 ranker's fusion) on the same held-out users, with the same seen set excluded.

- The seen set is the one `SequenceData.seen(role)` builds: all of the user's items before the target, as
  serving excludes everything a user had (models/seen.py applies it for every method).
- Models are the served versions (or pinned ones): the evaluation trains nothing.
- Recall@5/10 and NDCG@5/10 with full ranking over all items (as in the TIGER paper), over every held-out
  user: a target without a semantic ID (an item first seen in test) is a miss for every method; the figures
  over users whose target has an ID sit beside them.
- Every method carries the standard error of its NDCG@10 and Recall@10 over users, and its paired per-user
  difference to the best other method with that difference's standard error.

Results go to ops.metrics (`<method>/<metric>`) and a PNG with error bars.
"""

from __future__ import annotations

import datetime as dt
import logging
import pathlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from models.metrics import per_user_gains, ranking_metrics, standard_error
from pipelines.evaluation.baselines import knn_topk
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import Catalog
from pipelines.lakehouse.config import logical_time
from pipelines.lakehouse.ops import write_metrics
from pipelines.plots import plot_method_comparison
from pipelines.ranking.examples import with_recent_events
from pipelines.ranking.nightly import (
    FALLBACK,
    UNION_WIDTH,
    NightlyModels,
    load_retrievers,
    nightly_lists,
)
from pipelines.retrieval.inputs import (
    RetrievalInputs,
    item_vectors_by_row,
    load_retrieval_inputs,
    sequences_at_width,
)
from pipelines.retrieval.registry import DEFAULT_RETRIEVERS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

NIGHTLY = "nightly"  # the method name of tonight's list in every report
HEADLINE = ("recall@5", "ndcg@5", "recall@10", "ndcg@10")


@dataclass(frozen=True)
class EvaluateConfig:
    run_date: dt.date
    role: Literal["test", "valid"] = "test"  # valid: what the models were selected on (optimistic)
    retrievers: tuple[str, ...] = (*DEFAULT_RETRIEVERS, FALLBACK)
    versions: tuple[tuple[str, str], ...] = ()  # model -> version ("twin" for the ranker); default: served
    knn: bool = True  # the content kNN baseline (item vectors nearest the last item)
    nightly: bool = True  # tonight's list: the union ranked by the served ranker (when a ranker exists)
    plot_dir: str = "plots"

    @property
    def run_id(self) -> str:
        return f"evaluate-{self.run_date.isoformat()}"


@dataclass(frozen=True)
class Evaluation:
    results: dict[str, dict[str, float]]  # method -> metrics (see module docstring)
    versions: dict[str, str]  # model -> version evaluated
    users: int  # every held-out user of the role
    per_user: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # method -> {recall@10, ndcg@10}
    compared_with: dict[str, str] = field(default_factory=dict)  # method -> the best other method (NDCG@10)

    def best(self, metric: str = "ndcg@10", exclude: tuple[str, ...] = ()) -> str | None:
        candidates = [m for m in self.results if m not in exclude]
        return max(candidates, key=lambda m: self.results[m][metric]) if candidates else None

    def paired(self, method: str, other: str, metric: str = "ndcg@10") -> tuple[float, float]:
        """(mean per-user difference method - other, its standard error) on the same users."""
        diff = self.per_user[method][metric] - self.per_user[other][metric]
        return float(diff.mean()), standard_error(diff)


def method_metrics(ranked: np.ndarray, targets: np.ndarray, unreachable: int) -> tuple[dict[str, float],
                                                                                        dict[str, np.ndarray]]:
    """(metrics over every held-out user + with_id/..., per-user Recall@10 and NDCG@10 over every user)."""
    hits, gains = per_user_gains(ranked, targets, 10)
    pad = np.zeros(unreachable)
    per_user = {"recall@10": np.r_[hits, pad], "ndcg@10": np.r_[gains, pad]}
    with_id = {f"with_id/{k}": v for k, v in ranking_metrics(ranked, targets).items()}
    metrics = ranking_metrics(ranked, targets, unreachable=unreachable) | with_id | {
        "ndcg@10_se": standard_error(per_user["ndcg@10"]), "recall@10_se": standard_error(per_user["recall@10"]),
        "users": float(len(per_user["ndcg@10"]))}
    return metrics, per_user


def evaluate_methods(catalog: Catalog, store: ArtifactStore, config: EvaluateConfig,
                     inputs: RetrievalInputs | None = None) -> Evaluation:
    inputs = inputs or load_retrieval_inputs(catalog)
    sequences = sequences_at_width(catalog, inputs, UNION_WIDTH)
    examples, seen = getattr(sequences, config.role), sequences.seen(config.role)
    unreachable = int(inputs.sequences.stats[f"{config.role}_targets_without_semantic_id"])
    pinned = dict(config.versions)
    retrievers = load_retrievers(store, config.retrievers, inputs, pinned, missing_ok=True)
    ranked: dict[str, np.ndarray] = {}
    extra: dict[str, dict[str, float]] = {}
    for name, retriever in retrievers.items():
        started = time.perf_counter()
        ranked[name] = retriever.top_k(examples, 10, seen).items
        extra[name] = {"users_per_s": len(examples) / max(time.perf_counter() - started, 1e-9)}
    if config.knn:
        ranked["knn"] = knn_topk(item_vectors_by_row(catalog, inputs.index), examples.histories, 10, seen)
    versions = {name: r.version for name, r in retrievers.items()}
    if config.nightly:
        nightly = _nightly(catalog, store, inputs, retrievers, pinned, examples, seen)
        if nightly is not None:
            ranked[NIGHTLY], extra[NIGHTLY], versions["twin"] = nightly
    results, per_user = {}, {}
    for name, lists in ranked.items():
        results[name], per_user[name] = method_metrics(lists, examples.targets, unreachable)
        results[name] |= extra.get(name, {})
    evaluation = Evaluation(results, versions, len(examples) + unreachable, per_user)
    for name in results:
        other = evaluation.best(exclude=(name,))
        if other is not None:
            for metric in ("ndcg@10", "recall@10"):
                diff, se = evaluation.paired(name, other, metric)
                results[name] |= {f"vs_best_other/{metric}": diff, f"vs_best_other/{metric}_se": se}
            evaluation.compared_with[name] = other
        log.info("%s on %d %s users (%d whose target no method can rank): %s", name, evaluation.users,
                 config.role, unreachable, {k: round(v, 4) for k, v in results[name].items() if "/" not in k})
    return evaluation


def _nightly(catalog, store, inputs, retrievers, pinned, examples, seen):
    """(top-10 of tonight's list, its extra metrics, the ranker version), or None without a ranker."""
    from pipelines.ranking.inputs import load_ranker_inputs
    from pipelines.ranking.serving import MODEL as RANKER
    from pipelines.ranking.serving import load_ranker
    from pipelines.ranking.union import union_of

    if store.latest_version(RANKER) is None and RANKER not in pinned:
        log.warning("no ranker trained yet: the nightly list is not evaluated (run train-twin)")
        return None
    ranker, version, fusion = load_ranker(store, pinned.get(RANKER), inputs.rqvae_version)
    ranker_inputs = load_ranker_inputs(catalog, inputs, check_holdout=True)
    union_members = {n: r for n, r in retrievers.items() if n != FALLBACK}
    models = NightlyModels(union_members, fusion, ranker, ranker_inputs.vectors, ranker_inputs.tokens,
                           retrievers.get(FALLBACK))
    keys = with_recent_events(ranker_inputs.clusters, examples.users, examples.histories, ranker.config.recent_events)
    lists = nightly_lists(models, examples, seen, keys)
    found = union_of({n: r.top_k(examples, fusion.depth, seen) for n, r in union_members.items()})
    union_hit = (found.items == examples.targets[:, None]).any(1)
    extra = {"union_recall@depth": float(union_hit.mean()) if len(union_hit) else 0.0,
             "union_depth": float(found.items.shape[1]), "ranker_weight": fusion.ranker_weight}
    return lists.items(10), extra, version


def run_evaluate(spark: SparkSession, catalog: Catalog, store: ArtifactStore, config: EvaluateConfig) -> dict:
    evaluation = evaluate_methods(catalog, store, config)
    flat = {f"{method}/{metric}": value for method, metrics in evaluation.results.items()
            for metric, value in metrics.items()}
    write_metrics(spark, catalog, "evaluate", config.run_id, flat, logical_time(config.run_date))
    plot = plot_method_comparison(
        {m: {k: r[k] for k in HEADLINE} for m, r in evaluation.results.items()},
        pathlib.Path(config.plot_dir) / f"evaluation_{config.run_date.isoformat()}.png",
        f"{config.role} split ({evaluation.users:,} users), bars: +- 1 standard error",
        errors={m: {"ndcg@10": r["ndcg@10_se"], "recall@10": r["recall@10_se"]} for m, r in evaluation.results.items()},
    )
    return {"versions": evaluation.versions, "results": evaluation.results, "plot": plot, "users": evaluation.users,
            "evaluation": evaluation}
