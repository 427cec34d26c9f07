"""The ranker's training examples at several cut points per user (pure pandas/numpy + the clustering function).

One positive per user (the validation event) is too little signal for a
ranker. Instead each user's training events are cut at up to `cuts_per_user`
points: the events before a cut are clustered exactly as cluster-behaviors
clusters a whole history (`cluster_history`, same settings), their last
`recent` events become the short-term keys, and the next `positives_per_cut`
events after the cut are positives. Only training events are used, so the
validation and test events never reach the ranker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.behavior.clustering import cluster_history
from pipelines.behavior.config import ClusteringConfig
from pipelines.ranking.examples import UserClusters, cluster_key_features
from pipelines.retrieval.sequences import ItemIndex, right_aligned
from pipelines.splits import assign_roles, in_event_order

CUT_SEPARATOR = "\x1f"  # "<user>\x1f<events before the cut>": a key per cut, never a real user id


@dataclass(frozen=True)
class CutExamples:
    keys: UserClusters  # per cut: clusters of the events before it (short-term keys are added later)
    users: np.ndarray  # per cut: the user's id
    histories: np.ndarray  # [cuts, width] item rows before the cut (TIGER's input; short-term keys' source)
    positives: list[np.ndarray]  # per cut: item rows of the events after it

    def __len__(self) -> int:
        return len(self.users)


def cut_points(n_events: int, cuts: int, positives: int, min_history: int) -> np.ndarray:
    """Event counts before each cut, spread evenly from `min_history` to the last cut that still has
    `positives` events after it (fewer when the history is short)."""
    last = n_events - positives
    if last < min_history or cuts <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(min_history, last, num=min(cuts, last - min_history + 1)).round().astype(np.int64))


def training_cuts(events: pd.DataFrame, vectors: np.ndarray, index: ItemIndex, clustering: ClusteringConfig,
                  cuts_per_user: int, positives_per_cut: int, width: int, min_history: int = 3) -> CutExamples:
    """events (user_id, item_id, ts, completion, rating): every event of every user; the held-out ones
    (the split's validation and test events) are dropped here. Items without a semantic ID are skipped."""
    frame = events.assign(row=index.rows(events["item_id"]))
    frame = frame[(assign_roles(frame) == "train").to_numpy() & (frame["row"] >= 0).to_numpy()]
    frame = in_event_order(frame)
    seconds = ((pd.to_datetime(frame["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1))
    frame = frame.assign(seconds=seconds.to_numpy(np.float64))
    keys, items, sizes, cross, users, histories, positives = [], [], [], [], [], [], []
    for user, group in frame.groupby("user_id", sort=True):
        rows = group["row"].to_numpy(np.int64)
        completion = group["completion"].to_numpy(np.float64)
        rating = group["rating"].to_numpy(np.float64)
        ts = group["seconds"].to_numpy()
        for t in cut_points(len(rows), cuts_per_user, positives_per_cut, min_history):
            result = cluster_history(rows[:t], vectors[rows[:t]], completion[:t], rating[:t], ts[:t], clustering)
            clusters = result.clusters
            keys.append(f"{user}{CUT_SEPARATOR}{t}")
            items.append(clusters["representative_item_id"].to_numpy(np.int64))
            sizes.append(clusters["size"].to_numpy(np.int64))
            cross.append(cluster_key_features(clusters))
            users.append(user)
            histories.append(rows[:t])
            positives.append(rows[t:t + positives_per_cut])
    order = np.argsort(np.asarray(keys, dtype=object), kind="stable")  # UserClusters keeps users sorted
    pick = lambda values: [values[i] for i in order]  # noqa: E731
    return CutExamples(
        UserClusters(np.asarray(keys, dtype=object)[order], pick(items), pick(sizes), pick(cross)),
        np.asarray(users, dtype=object)[order], right_aligned(pick(histories), width), pick(positives))
