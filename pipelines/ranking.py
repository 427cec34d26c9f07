"""Top-k metrics and the baselines TIGER is compared with (pure numpy/faiss).

Full ranking over all items, as in the TIGER paper; items already in the
history can be excluded (the same rule for every method in one evaluation).
"""

from __future__ import annotations

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


def knn_topk(vectors: np.ndarray, histories: np.ndarray, k: int, exclude_history: bool = True) -> np.ndarray:
    """Items nearest (cosine, exact faiss search) to the last item of each history."""
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32).copy()
    faiss.normalize_L2(x)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    last = histories[:, -1]
    has_last = last >= 0
    ranked = np.full((len(histories), k), -1, dtype=np.int64)
    if has_last.any():
        _, neighbours = index.search(x[last[has_last]], k + histories.shape[1] + 1)
        neighbours = np.where(neighbours == last[has_last][:, None], -1, neighbours)  # never the query itself
        ranked[has_last] = _drop_seen(neighbours, histories[has_last], k, exclude_history)
    return ranked
