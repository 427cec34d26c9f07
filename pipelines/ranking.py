"""Top-k metrics, the baselines TIGER is compared with, and the blend of retrieval and ranker scores
(pure numpy).

Full ranking over all items, as in the TIGER paper; items already in the
history can be excluded (the same rule for every method in one evaluation).
"""

from __future__ import annotations

import math

import numpy as np


def ranking_metrics(ranked: np.ndarray, targets: np.ndarray, ks: tuple[int, ...] = (5, 10)) -> dict[str, float]:
    """ranked [E, K] item rows best first (-1 = empty); targets [E] -> recall@k and ndcg@k."""
    hits = ranked == targets[:, None]
    position = np.where(hits.any(1), hits.argmax(1), np.iinfo(np.int64).max)
    out = {}
    for k in ks:
        within = position < k
        out[f"recall@{k}"] = float(within.mean()) if len(targets) else 0.0
        gains = np.where(within, 1.0 / np.log2(np.minimum(position, k) + 2.0), 0.0)
        out[f"ndcg@{k}"] = float(gains.mean()) if len(targets) else 0.0
    return out


def _drop_seen(candidates: np.ndarray, histories: np.ndarray, k: int, exclude_history: bool) -> np.ndarray:
    """First k of each row of `candidates` that are not in that row's history (when excluding)."""
    out = np.full((len(candidates), k), -1, dtype=np.int64)
    for row, (items, history) in enumerate(zip(candidates, histories, strict=True)):
        if exclude_history:
            items = items[~np.isin(items, history[history >= 0])]
        items = items[items >= 0][:k]
        out[row, : len(items)] = items
    return out


def popularity_topk(counts: np.ndarray, histories: np.ndarray, k: int, exclude_history: bool = True) -> np.ndarray:
    order = np.argsort(-counts, kind="stable")[: k + histories.shape[1]]
    return _drop_seen(np.broadcast_to(order, (len(histories), len(order))), histories, k, exclude_history)


def knn_topk(vectors: np.ndarray, histories: np.ndarray, k: int, exclude_history: bool = True,
             chunk_rows: int = 2048) -> np.ndarray:
    """Items nearest (cosine, exact search) to the last item of each history.

    Exact brute force in numpy, chunked so that a chunk's score matrix stays small;
    no faiss, so evaluation also runs where faiss is not installed (GPU workers)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    x = np.divide(vectors, norms, out=np.zeros(vectors.shape, dtype=np.float32), where=norms > 0).astype(np.float32)
    last = histories[:, -1]
    has_last = last >= 0
    ranked = np.full((len(histories), k), -1, dtype=np.int64)
    queries = last[has_last]
    wanted = min(len(x), k + histories.shape[1] + 1)
    for start in range(0, len(queries), chunk_rows):
        rows = queries[start: start + chunk_rows]
        scores = x[rows] @ x.T
        scores[np.arange(len(rows)), rows] = -np.inf  # never the query itself
        top = np.argpartition(-scores, wanted - 1, axis=1)[:, :wanted]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        neighbours = np.take_along_axis(top, order, axis=1)
        neighbours = np.where(neighbours == rows[:, None], -1, neighbours)
        target = np.flatnonzero(has_last)[start: start + chunk_rows]
        ranked[target] = _drop_seen(neighbours, histories[target], k, exclude_history)
    return ranked


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
                        targets: np.ndarray, k: int = 10, min_z: float = 2.0) -> tuple[float, dict[str, float]]:
    """The weight of BLEND_WEIGHTS with the best Recall@k (then NDCG@k) on these held-out users, ties to the
    smaller weight; it replaces the retrieval order (weight 0) only when its gain in hits is at least `min_z`
    standard errors of the per-user paired difference: on a few hundred users a handful of hits is noise."""
    by_weight: dict[str, float] = {}
    hits: dict[float, np.ndarray] = {}
    best, best_key = 0.0, (-1.0, -1.0)
    for weight in BLEND_WEIGHTS:
        order = blended_order(retrieval_scores, ranker_logits, weight)[:, :k]
        ranked = np.take_along_axis(candidates, order, 1)
        metrics = ranking_metrics(ranked, targets, ks=(k,))
        hits[weight] = (ranked == targets[:, None]).any(1).astype(np.float64)
        key = (metrics[f"recall@{k}"], metrics[f"ndcg@{k}"])
        by_weight[str(weight)] = round(metrics[f"recall@{k}"], 4)
        if key > best_key:
            best, best_key = weight, key
    gain = hits[best] - hits[0.0]
    standard_error = gain.std(ddof=1) / math.sqrt(len(gain)) if len(gain) > 1 else math.inf
    if not gain.mean() > 0 or gain.mean() < min_z * standard_error:
        best = 0.0
    return best, by_weight
