"""The baselines every evaluation compares with (numpy): most popular and embedding kNN.

Full ranking over all items, as in the TIGER paper; the items a user already had are excluded by the one
seen set every method takes (models/seen.py).
"""

from __future__ import annotations

import numpy as np

from models.seen import Seen, top_k_unseen


def popularity_topk(counts: np.ndarray, n_examples: int, k: int, seen: Seen | None) -> np.ndarray:
    """The k most frequent training items per example, the example's seen items left out."""
    scores = np.asarray(counts, dtype=np.float64)[None, :]
    return top_k_unseen(lambda start, stop: np.broadcast_to(scores, (stop - start, scores.shape[1])),
                        n_examples, k, seen)


def knn_topk(vectors: np.ndarray, histories: np.ndarray, k: int, seen: Seen | None,
             chunk_rows: int = 2048) -> np.ndarray:
    """Items nearest (cosine, exact search) to the last item of each history, seen items left out.

    Exact brute force in numpy, chunked so that a chunk's score matrix stays small; no faiss, so
    evaluation also runs where faiss is not installed (GPU workers). A user with no history gets -1s."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    x = np.divide(vectors, norms, out=np.zeros(vectors.shape, dtype=np.float32), where=norms > 0).astype(np.float32)
    last = histories[:, -1]

    def scores(start: int, stop: int) -> np.ndarray:
        rows = last[start:stop]
        out = x[np.maximum(rows, 0)] @ x.T
        out[np.arange(len(rows)), np.maximum(rows, 0)] = -np.inf  # never the query itself
        out[rows < 0] = -np.inf
        return out

    return top_k_unseen(scores, len(histories), k, seen, chunk_rows)
