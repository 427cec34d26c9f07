"""Examples for the TWIN-V2 ranker (pure pandas/numpy).

Each user's clusters (gold.user_clusters) become arrays in item rows; cross
features are scaled to comparable ranges (completion in [0, 1], rating / 5,
log1p of recency days / 10) with unknown values as 0, plus a short-term flag.
Next to the clusters, as in TWIN-V2's production model, the user's last few
raw events are keys of their own (n = 1, flag 1): `with_recent_events`.
Labelled pairs: a positive event; negatives are catalog items the user never
had, part of them from TIGER's candidates when given (hard ones).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.retrieval.sequences import ItemIndex

CROSS_FEATURES = ("completion_mean", "rating_mean", "recency_days_mean")
# The ranker's cross features: the three above, then the short-term position: 1 for the latest raw event,
# falling by 1/R per step back over the last R; 0 for a cluster. A recent event's other cross features are 0
# (unknown): the histories it comes from hold item rows only.
KEY_FEATURES = len(CROSS_FEATURES) + 1


@dataclass(frozen=True)
class UserClusters:
    users: np.ndarray  # str, sorted
    items: list[np.ndarray]  # per user: representative item rows
    sizes: list[np.ndarray]  # per user: n
    cross: list[np.ndarray]  # per user: [C, 3]

    def position(self, user_ids: np.ndarray) -> np.ndarray:
        return np.asarray(pd.Index(self.users).get_indexer(user_ids), dtype=np.int64)

    def arrays(self) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """(items, sizes, cross) as the ranker's scoring and training functions take them."""
        return self.items, self.sizes, self.cross


def item_tokens(index: ItemIndex) -> np.ndarray:
    """[N, levels + 1] by item row: the semantic-ID codes, then a CRC-32 of the item id (the ranker's hashed
    item-ID feature: stable across runs and catalogs, unlike the row)."""
    hashes = np.fromiter((zlib.crc32(str(item).encode()) for item in index.item_ids), dtype=np.int64,
                         count=len(index.item_ids))
    return np.c_[index.codes, hashes]


def scale_cross_features(frame: pd.DataFrame) -> np.ndarray:
    completion = frame["completion_mean"].to_numpy(dtype=float)
    rating = frame["rating_mean"].to_numpy(dtype=float) / 5.0
    recency = np.log1p(np.clip(frame["recency_days_mean"].to_numpy(dtype=float), 0, None)) / 10.0
    return np.nan_to_num(np.stack([completion, rating, recency], axis=1), nan=0.0).astype(np.float32)


def cluster_key_features(frame: pd.DataFrame) -> np.ndarray:
    """[C, KEY_FEATURES] cross features of cluster rows (short-term position 0)."""
    return np.c_[scale_cross_features(frame), np.zeros(len(frame), np.float32)]


def user_clusters(clusters: pd.DataFrame, index: ItemIndex) -> UserClusters:
    """gold.user_clusters rows -> per-user arrays; clusters whose representative has no semantic ID are left
    out (load_ranker_inputs counts and logs them, and the ranker's card records the count)."""
    frame = clusters.assign(row=index.rows(clusters["representative_item_id"]))
    frame = frame[frame["row"] >= 0].sort_values(["user_id", "cluster_id"], kind="stable")
    cross = cluster_key_features(frame)
    users, starts = np.unique(frame["user_id"].to_numpy(dtype=object), return_index=True)
    bounds = [*starts[1:], len(frame)]
    rows, sizes = frame["row"].to_numpy(), frame["size"].to_numpy()
    return UserClusters(
        users=users,
        items=[rows[a:b] for a, b in zip(starts, bounds, strict=True)],
        sizes=[sizes[a:b] for a, b in zip(starts, bounds, strict=True)],
        cross=[cross[a:b] for a, b in zip(starts, bounds, strict=True)],
    )


def with_recent_events(clusters: UserClusters, users: np.ndarray, histories: np.ndarray, recent: int) -> UserClusters:
    """The keys the ranker attends over for each of `users` (unique): their clusters, then the last `recent`
    items of their history row (item rows, right-aligned, -1 = padding) as keys of n = 1, oldest first."""
    positions = clusters.position(users)
    tail = histories[:, histories.shape[1] - min(recent, histories.shape[1]):] if recent else histories[:, :0]
    items, sizes, cross = [], [], []
    empty_cross = np.zeros((0, KEY_FEATURES), np.float32)
    for position, row in zip(positions, tail, strict=True):
        latest = row[row >= 0]
        short_term = np.zeros((len(latest), KEY_FEATURES), np.float32)
        short_term[:, -1] = (recent - np.arange(len(latest))[::-1]) / recent  # latest 1, then 1 - 1/R, ...
        has = position >= 0
        items.append(np.r_[clusters.items[position] if has else np.zeros(0, np.int64), latest].astype(np.int64))
        sizes.append(np.r_[clusters.sizes[position] if has else np.zeros(0, np.int64), np.ones(len(latest), np.int64)])
        cross.append(np.r_[clusters.cross[position] if has else empty_cross, short_term])
    order = np.argsort(np.asarray(users, dtype=object), kind="stable")
    return UserClusters(np.asarray(users, dtype=object)[order], [items[i] for i in order], [sizes[i] for i in order],
                        [cross[i] for i in order])


def merge_keys(*parts: UserClusters) -> UserClusters:
    """One UserClusters of several with disjoint user keys."""
    users = np.concatenate([p.users for p in parts]) if parts else np.zeros(0, dtype=object)
    order = np.argsort(users, kind="stable")
    pick = lambda name: [v for p in parts for v in getattr(p, name)]  # noqa: E731
    items, sizes, cross = pick("items"), pick("sizes"), pick("cross")
    return UserClusters(users[order], [items[i] for i in order], [sizes[i] for i in order], [cross[i] for i in order])


@dataclass(frozen=True)
class Pairs:
    user_positions: np.ndarray  # rows of UserClusters (-1: user has no clusters)
    users: np.ndarray  # str
    items: np.ndarray  # target item rows
    labels: np.ndarray  # 1.0 positive, 0.0 negative


def labelled_pairs(
    users: np.ndarray, positives: np.ndarray, seen: list[np.ndarray], clusters: UserClusters, n_items: int,
    negatives: int, rng: np.random.Generator, hard: list[np.ndarray] | None = None, hard_share: float = 0.5,
) -> Pairs:
    """One positive and `negatives` negatives per user; negatives avoid the user's items and the positive."""
    out_users, out_items, out_labels = [], [], []
    n_hard = int(round(negatives * hard_share)) if hard is not None else 0
    for k, (user, positive) in enumerate(zip(users, positives, strict=True)):
        banned = set(seen[k].tolist()) | {int(positive)}
        chosen: list[int] = []
        if hard is not None and n_hard:
            chosen += [int(i) for i in hard[k] if i >= 0 and int(i) not in banned][:n_hard]
        while len(chosen) < negatives and len(banned) + len(chosen) < n_items:
            draw = int(rng.integers(n_items))
            if draw not in banned and draw not in chosen:
                chosen.append(draw)
        out_users += [user] * (1 + len(chosen))
        out_items += [int(positive), *chosen]
        out_labels += [1.0] + [0.0] * len(chosen)
    users_arr = np.asarray(out_users, dtype=object)
    return Pairs(clusters.position(users_arr), users_arr, np.asarray(out_items, dtype=np.int64),
                 np.asarray(out_labels, dtype=np.float32))
