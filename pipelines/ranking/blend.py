"""The blend of TIGER's score and the ranker's logit (numpy): `retrieval score + w * logit`, w chosen on
held-out users, and the `Blend` a ranker's card records."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from models.metrics import per_user_gains, ranking_metrics
from pipelines.ranking.config import RerankConfig

# Weights tried for `retrieval score + w * ranker logit`; inf = the ranker's order alone.
BLEND_WEIGHTS = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, math.inf)


def blended_score(retrieval_scores: np.ndarray, ranker_logits: np.ndarray, weight: float) -> np.ndarray:
    """retrieval score + weight * ranker logit (weight inf: the logit alone); -inf stays -inf."""
    if math.isinf(weight):
        return ranker_logits
    with np.errstate(invalid="ignore"):
        blended = retrieval_scores + (weight * ranker_logits if weight else 0.0)  # 0 * -inf would be nan
    return np.where(np.isnan(blended), -np.inf, blended)


def blended_order(retrieval_scores: np.ndarray, ranker_logits: np.ndarray, weight: float) -> np.ndarray:
    """Order [U, K] of each row's candidates by blended_score, best first; the other score breaks ties
    (weight 0 keeps the retrieval order, inf is the ranker's). Candidates scored -inf stay last."""
    primary = blended_score(retrieval_scores, ranker_logits, weight)
    secondary = retrieval_scores if math.isinf(weight) else ranker_logits
    return np.lexsort((-secondary, -primary), axis=-1) if primary.size else np.zeros(primary.shape, np.int64)


def choose_blend_weight(retrieval_scores: np.ndarray, ranker_logits: np.ndarray, candidates: np.ndarray,
                        targets: np.ndarray, k: int = 10,
                        min_z: float = 2.0) -> tuple[float, dict[str, float], dict[str, float]]:
    """(weight, Recall@k by weight, list NDCG by weight) on these held-out users.

    The weight of BLEND_WEIGHTS with the best NDCG over the whole list (every candidate, not the top k), ties
    to the smaller weight; it replaces the retrieval order (weight 0) only when its gain is at least `min_z`
    standard errors of the per-user paired difference. Why the whole list: every user whose target was
    retrieved then says whether the reorder moved it up or down, where Recall@k only hears from the few whose
    target crossed the k boundary; on a few hundred calibration users that was too little to tell a real
    gain (+9 hits in 182 users) from noise."""
    recall_by_weight: dict[str, float] = {}
    ndcg_by_weight: dict[str, float] = {}
    gains: dict[float, np.ndarray] = {}
    best = 0.0
    for weight in BLEND_WEIGHTS:
        ranked = np.take_along_axis(candidates, blended_order(retrieval_scores, ranker_logits, weight), 1)
        _, gains[weight] = per_user_gains(ranked, targets, ranked.shape[1])
        recall_by_weight[str(weight)] = round(ranking_metrics(ranked[:, :k], targets, ks=(k,))[f"recall@{k}"], 4)
        ndcg_by_weight[str(weight)] = round(float(gains[weight].mean()), 4) if len(targets) else 0.0
        if gains[weight].mean() > gains[best].mean():
            best = weight
    gain = gains[best] - gains[0.0]
    standard_error = gain.std(ddof=1) / math.sqrt(len(gain)) if len(gain) > 1 else math.inf
    if not gain.mean() > 0 or gain.mean() < min_z * standard_error:
        best = 0.0
    return best, recall_by_weight, ndcg_by_weight


def calibration_users(users: np.ndarray, share: float, seed: int) -> np.ndarray:
    """bool mask of the users held out of ranker training to choose the blend (stable per user id)."""
    return np.array([zlib.crc32(f"{seed}:{u}".encode()) % 10_000 < share * 10_000 for u in users], dtype=bool)


@dataclass(frozen=True)
class Blend:
    weight: float  # inf: the ranker's order alone
    calibration_users: int
    recall_by_weight: dict[str, float]
    depth: int = RerankConfig.depth  # the length of TIGER's list the weight was chosen for
    ndcg_by_weight: dict[str, float] = field(default_factory=dict)  # over the whole list: what chose the weight

    def to_card(self) -> dict[str, object]:
        return {"weight": None if math.isinf(self.weight) else self.weight, "depth": self.depth,
                "calibration_users": self.calibration_users, "recall@10_by_weight": self.recall_by_weight,
                "list_ndcg_by_weight": self.ndcg_by_weight}


RANKER_ONLY = Blend(math.inf, 0, {})


def blend_of(card: dict) -> Blend:
    """The card's blend; a card without one (or a ranker trained without TIGER) ranks by the logit alone."""
    blend = card.get("blend") or {}
    depth = int(blend.get("depth") or RerankConfig.depth)
    if blend.get("weight") is None:
        return Blend(math.inf, 0, {}, depth)
    return Blend(float(blend["weight"]), int(blend["calibration_users"]), dict(blend["recall@10_by_weight"]), depth,
                 dict(blend.get("list_ndcg_by_weight") or {}))
