"""How the ranker orders the union (numpy): a learned, gated fusion of the TWIN-V2 logit and each
retriever's rank, and the `Fusion` a ranker's card records.

    score(u, i) = ranker_weight * logit(u, i) + sum_r weight_r * 1 / log2(1 + rank_r(u, i))

where rank_r is i's rank in retriever r's list (the term is 0 when r did not find i). The weights are
chosen on one half of the calibration users (validation users the ranker never trained on) by NDCG over
the whole union list, and gated on the other half: the fusion replaces the best single retriever's own
order only when its gain there is at least `min_z` standard errors of the per-user paired difference.
A fixed rule (reciprocal-rank fusion, one weight) is in the grid too; what the ranker adds is the logit.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.metrics import per_user_gains
from pipelines.ranking.union import CandidateUnion

RETRIEVER_WEIGHTS = (0.0, 0.25, 0.5, 1.0)  # scaled so the largest is 1
RANKER_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 100.0)  # 100: the logit decides


def rank_feature(ranks: np.ndarray) -> np.ndarray:
    """1 / log2(1 + rank) for found candidates (1 at rank 1), 0 for the rest: a DCG-shaped vote."""
    return np.where(ranks > 0, 1.0 / np.log2(1.0 + np.maximum(ranks, 1)), 0.0)


@dataclass(frozen=True)
class Fusion:
    retrievers: tuple[str, ...]
    retriever_weights: tuple[float, ...]
    ranker_weight: float
    depth: int = 50  # each retriever's list length the weights were chosen for
    calibration_users: int = 0
    gate: dict[str, float] = field(default_factory=dict)  # what the held-out half measured

    def scores(self, union: CandidateUnion, logits: np.ndarray | None) -> np.ndarray:
        """[E, D] fused scores; -inf for padding."""
        index = [union.retrievers.index(r) if r in union.retrievers else -1 for r in self.retrievers]
        votes = np.zeros(union.items.shape)
        for weight, r in zip(self.retriever_weights, index, strict=True):
            if weight and r >= 0:
                votes += weight * rank_feature(union.ranks[..., r])
        if self.ranker_weight and logits is not None:
            with np.errstate(invalid="ignore"):
                votes = votes + self.ranker_weight * np.where(np.isfinite(logits), logits, 0.0)
        return np.where(union.items >= 0, votes, -np.inf)

    def order(self, union: CandidateUnion, logits: np.ndarray | None) -> np.ndarray:
        """[E, D] positions of each row's candidates, best first; ties keep the union's round-robin order."""
        scores = self.scores(union, logits)
        return np.argsort(-scores, axis=1, kind="stable")

    def ranked(self, union: CandidateUnion, logits: np.ndarray | None) -> np.ndarray:
        return np.take_along_axis(union.items, self.order(union, logits), 1)

    @property
    def uses_ranker(self) -> bool:
        return self.ranker_weight > 0

    def to_card(self) -> dict[str, object]:
        return {"retrievers": list(self.retrievers), "retriever_weights": list(self.retriever_weights),
                "ranker_weight": self.ranker_weight, "depth": self.depth,
                "calibration_users": self.calibration_users, "gate": self.gate}

    @classmethod
    def from_card(cls, card: dict) -> Fusion:
        f = card["fusion"]
        return cls(tuple(f["retrievers"]), tuple(float(w) for w in f["retriever_weights"]),
                   float(f["ranker_weight"]), int(f["depth"]), int(f["calibration_users"]), dict(f.get("gate") or {}))

    @classmethod
    def single(cls, retrievers: Sequence[str], name: str, depth: int) -> Fusion:
        """One retriever's own order (what the fusion falls back to)."""
        return cls(tuple(retrievers), tuple(1.0 if r == name else 0.0 for r in retrievers), 0.0, depth)


def calibration_users(users: np.ndarray, share: float, seed: int) -> np.ndarray:
    """bool mask of the users held out of ranker training to choose the fusion (stable per user id)."""
    return np.array([zlib.crc32(f"{seed}:{u}".encode()) % 10_000 < share * 10_000 for u in users], dtype=bool)


def halves(users: np.ndarray, seed: int) -> np.ndarray:
    """bool: the half of the calibration users that choose the weights (stable per user id); the rest gate."""
    return np.array([zlib.crc32(f"half:{seed}:{u}".encode()) % 2 == 0 for u in users], dtype=bool)


def _list_gains(fusion: Fusion, union: CandidateUnion, logits: np.ndarray | None, targets: np.ndarray) -> np.ndarray:
    ranked = fusion.ranked(union, logits)
    return per_user_gains(ranked, targets, ranked.shape[1])[1]


def choose_fusion(union: CandidateUnion, logits: np.ndarray | None, targets: np.ndarray, users: np.ndarray,
                  depth: int, seed: int = 0, min_z: float = 2.0) -> Fusion:
    """The fusion for these calibration users (their union lists, the ranker's logits, their targets)."""
    names = union.retrievers
    choose = halves(users, seed)
    if choose.all() or not choose.any():  # too few users to split: choose and gate on the same ones
        choose = np.ones(len(users), dtype=bool)
    gate = ~choose if (~choose).any() else choose
    pick = lambda rows: (union.take(rows), None if logits is None else logits[rows], targets[rows])  # noqa: E731
    a, b = pick(np.flatnonzero(choose)), pick(np.flatnonzero(gate))

    singles = [Fusion.single(names, n, depth) for n in names]
    best_single = max(singles, key=lambda f: _list_gains(f, *a).mean())
    grid = [w for w in itertools.product(RETRIEVER_WEIGHTS, repeat=len(names)) if max(w) == 1.0]  # scale-free
    ranker_grid = RANKER_WEIGHTS if logits is not None else (0.0,)
    best, best_mean = best_single, _list_gains(best_single, *a).mean()
    for weights, ranker in itertools.product(grid, ranker_grid):
        candidate = Fusion(names, tuple(weights), ranker, depth)
        mean = _list_gains(candidate, *a).mean()
        if mean > best_mean + 1e-12:
            best, best_mean = candidate, mean

    single_b = max(singles, key=lambda f: _list_gains(f, *b).mean())
    gain = _list_gains(best, *b) - _list_gains(single_b, *b)
    se = float(gain.std(ddof=1) / math.sqrt(len(gain))) if len(gain) > 1 else math.inf
    passed = bool(gain.mean() > 0 and gain.mean() >= min_z * se)
    chosen = best if passed else single_b
    report = {"list_ndcg_gain": float(gain.mean()), "list_ndcg_gain_se": se, "min_z": min_z,
              "passed": float(passed), "gate_users": float(len(gain)), "choose_users": float(choose.sum())}
    return Fusion(chosen.retrievers, chosen.retriever_weights, chosen.ranker_weight, depth, len(users), report)


# A ranker trained with no retriever to order: its logit alone decides (serving scores the union by it).
RANKER_ONLY = Fusion((), (), 1.0, 0)
