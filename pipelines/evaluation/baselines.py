"""The baselines TIGER is compared with in every evaluation (numpy): most popular and embedding kNN.

Full ranking over all items, as in the TIGER paper; items already in the
history can be excluded (the same rule for every method in one evaluation).
"""

from __future__ import annotations

import numpy as np


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
