"""Every quality metric the project reports (numpy): top-k retrieval metrics and the ranker's AUC/GAUC.

Full ranking over all items, as in the TIGER paper; a target ranked beyond k, or
not at all, is a miss.
"""

from __future__ import annotations

import numpy as np


def per_user_gains(ranked: np.ndarray, targets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (hit within k as 0/1, NDCG@k gain); the means are recall@k and ndcg@k, and their spread gives
    standard errors and paired differences between methods on the same users."""
    hits = ranked[:, :k] == targets[:, None]
    position = np.where(hits.any(1), hits.argmax(1), k)
    within = position < k
    return within.astype(np.float64), np.where(within, 1.0 / np.log2(position + 2.0), 0.0)


def ranking_metrics(ranked: np.ndarray, targets: np.ndarray, ks: tuple[int, ...] = (5, 10),
                    unreachable: int = 0) -> dict[str, float]:
    """ranked [E, K] item rows best first (-1 = empty); targets [E] -> recall@k and ndcg@k.

    `unreachable`: further held-out users whose target no method can rank (an item without a semantic ID,
    e.g. first seen in test): misses in every mean, so figures are over every held-out user."""
    out = {}
    users = len(targets) + unreachable
    for k in ks:
        hits, gains = per_user_gains(ranked, targets, k)
        out[f"recall@{k}"] = float(hits.sum() / users) if users else 0.0
        out[f"ndcg@{k}"] = float(gains.sum() / users) if users else 0.0
    return out


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of `values` (0 for fewer than 2)."""
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def recall_at(ranked: np.ndarray, targets: np.ndarray) -> float:
    """Share of rows whose target is anywhere in `ranked` (Recall@K for K = ranked's width)."""
    return ranking_metrics(ranked, targets, ks=(ranked.shape[1],))[f"recall@{ranked.shape[1]}"]


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); nan without both classes."""
    positives, negatives = labels == 1, labels == 0
    n_pos, n_neg = int(positives.sum()), int(negatives.sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def gauc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """Per-user AUC averaged with each user's number of pairs as weight (users with one class skipped)."""
    _, user_rows = np.unique(np.asarray(users, dtype=object), return_inverse=True)
    total, weight = 0.0, 0
    order = np.argsort(user_rows, kind="stable")
    bounds = np.flatnonzero(np.diff(user_rows[order])) + 1
    for rows in np.split(order, bounds) if len(order) else []:
        value = auc(labels[rows], scores[rows])
        if not np.isnan(value):
            total += value * len(rows)
            weight += len(rows)
    return total / weight if weight else float("nan")


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (as scipy's rankdata 'average')."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    average = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(average, ends - starts)
    return ranks
