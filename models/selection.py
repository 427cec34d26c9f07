"""The one model-selection rule every trained retriever follows (numpy): the same validation users, the
same metric, the same seen set. TIGER and SASRec keep the epoch (and SASRec the dropout) that scores best
here, so a comparison between them is not a comparison between two selection rules."""

from __future__ import annotations

import numpy as np

from models.examples import Examples
from models.metrics import per_user_gains
from models.seen import Seen

METRIC = "ndcg@10"  # what "best on validation" means for every method


def selection_users(n_valid: int, max_users: int | None, seed: int) -> np.ndarray:
    """Sorted rows of the validation examples that selection scores: all of them, or the same seeded
    sample of `max_users` for every method trained with that seed."""
    return np.sort(np.random.default_rng(seed).permutation(n_valid)[:max_users])


def selection_split(valid: Examples, seen: Seen | None, max_users: int | None, seed: int
                    ) -> tuple[Examples, list[np.ndarray] | None]:
    rows = selection_users(len(valid), max_users, seed)
    return valid.take(rows), (None if seen is None else [seen[i] for i in rows])


def selection_score(ranked: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean NDCG@10, per-user gains) of a top-10 list per validation user."""
    _, gains = per_user_gains(ranked, targets, 10)
    return (float(gains.mean()) if len(gains) else 0.0), gains
