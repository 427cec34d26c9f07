"""The one rule for what a recommendation may not hold: the items the user already had (numpy / torch).

`seen[i]` is example i's item rows before its target (serving: every item the user ever had), built once
by `pipelines.retrieval.sequences.build_sequences`; every method's top-k takes it and applies it here, so
TIGER, SASRec, popularity, kNN and tonight's candidates exclude the very same set. None: exclude nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Seen = Sequence[np.ndarray]  # per example: item rows (int64), any order, no padding


def flat_seen(seen: Seen, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """(row within [start, stop), item) pairs of examples start..stop-1: one fancy-index for a whole chunk."""
    parts = [np.asarray(seen[i], dtype=np.int64) for i in range(start, stop)]
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    rows = np.repeat(np.arange(len(parts), dtype=np.int64), lengths)
    items = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    keep = items >= 0
    return rows[keep], items[keep]


def top_k_unseen(scores_of: Callable[[int, int], np.ndarray], n_examples: int, k: int, seen: Seen | None,
                 chunk_rows: int = 2048) -> np.ndarray:
    """Top-k item rows per example [E, k] (-1 where fewer than k items may be recommended) from dense
    scores: `scores_of(start, stop)` gives [stop - start, N] float scores; seen items and -inf never show."""
    out = np.full((n_examples, k), -1, dtype=np.int64)
    for start in range(0, n_examples, chunk_rows):
        stop = min(start + chunk_rows, n_examples)
        scores = np.array(scores_of(start, stop), dtype=np.float64, copy=True)
        if seen is not None:
            rows, items = flat_seen(seen, start, stop)
            scores[rows, items] = -np.inf
        width = min(k, scores.shape[1])
        if width:
            top = _top_rows(scores, width)
            out[start:stop, :width] = np.where(np.isfinite(np.take_along_axis(scores, top, axis=1)), top, -1)
    return out


def _top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """[B, k] columns of the k largest scores per row, best first; ties go to the lower item row, so the
    list is the same whatever the chunking (argpartition alone picks among ties at random)."""
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1:k]
    above, tied = scores > kth, scores == kth
    take_tied = tied & (np.cumsum(tied, axis=1) <= k - above.sum(axis=1, keepdims=True))
    top = np.nonzero(above | take_tied)[1].reshape(len(scores), k)  # exactly k per row, in column order
    order = np.lexsort((top, -np.take_along_axis(scores, top, axis=1)), axis=1)
    return np.take_along_axis(top, order, axis=1)


def mask_seen_torch(scores, seen: Seen, start: int) -> None:
    """In place: scores [B, N] (torch) of examples start..start+B-1 get -inf at their seen items."""
    import torch

    rows, items = flat_seen(seen, start, start + scores.shape[0])
    if len(rows):
        scores[torch.as_tensor(rows, device=scores.device), torch.as_tensor(items, device=scores.device)] = -torch.inf
