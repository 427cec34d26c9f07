"""Models promoted only when better: a candidate retriever version is scored against the served one on the
same validation users (paired, per user), and served only when it is not worse by more than `max_worse_se`
standard errors of the difference. Otherwise the served version stays, and the reason is logged and written
to ops.metrics by the caller."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from models.metrics import standard_error
from models.selection import selection_score, selection_split
from pipelines.lakehouse.artifacts import ArtifactStore
from pipelines.lakehouse.catalog import Catalog
from pipelines.ranking.nightly import UNION_WIDTH
from pipelines.retrieval.inputs import RetrievalInputs, sequences_at_width
from pipelines.retrieval.registry import retriever_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateConfig:
    max_worse_se: float = 2.0  # promote unless the candidate is worse by more than this many standard errors
    eval_users: int | None = None  # validation users scored (the selection users of this size); None: all
    seed: int = 0


@dataclass(frozen=True)
class GateDecision:
    model: str
    candidate: str
    served: str | None
    promoted: bool
    candidate_ndcg: float
    served_ndcg: float | None
    difference: float | None  # candidate - served, mean over users
    difference_se: float | None
    reason: str

    def metrics(self) -> dict[str, float | None]:
        return {"promoted": float(self.promoted), "candidate_valid_ndcg@10": self.candidate_ndcg,
                "served_valid_ndcg@10": self.served_ndcg, "difference": self.difference,
                "difference_se": self.difference_se}


def gate(catalog: Catalog, store: ArtifactStore, model: str, candidate: str, inputs: RetrievalInputs,
         config: GateConfig = GateConfig(), device: str | None = None) -> GateDecision:
    """Promote `candidate` of retriever `model` when it is not worse than the served version (see module)."""
    served = store.latest_version(model)
    spec = retriever_spec(model)
    sequences = sequences_at_width(catalog, inputs, UNION_WIDTH)
    valid, seen = selection_split(sequences.valid, sequences.seen("valid"), config.eval_users, config.seed)

    def per_user(version: str) -> tuple[float, np.ndarray]:
        retriever = spec.load(store, version, inputs, device, False)  # held-out weights: validation is unseen
        return selection_score(retriever.top_k(valid, 10, seen).items, valid.targets)

    candidate_ndcg, candidate_gains = per_user(candidate)
    if served is None or served == candidate:
        decision = GateDecision(model, candidate, served, True, candidate_ndcg, None, None, None,
                                "nothing served yet" if served is None else "already served")
    else:
        served_ndcg, served_gains = per_user(served)
        diff = candidate_gains - served_gains
        mean, se = float(diff.mean()) if len(diff) else 0.0, standard_error(diff)
        promoted = mean >= -config.max_worse_se * se
        reason = (f"valid NDCG@10 {candidate_ndcg:.4f} vs {served_ndcg:.4f} served ({mean:+.4f} +- {se:.4f} on "
                  f"{len(diff):,} users): " + ("not worse beyond " if promoted else "worse by more than ")
                  + f"{config.max_worse_se:g} standard errors")
        decision = GateDecision(model, candidate, served, promoted, candidate_ndcg, served_ndcg, mean, se, reason)
    if decision.promoted:
        if served != candidate:
            store.promote(model, candidate, f"gate: {decision.reason}")
        log.info("%s %s promoted: %s", model, candidate, decision.reason)
    else:
        log.warning("%s %s NOT promoted; still serving %s: %s", model, candidate, served, decision.reason)
    return decision
