"""TWIN-V2's offline stage for one user: hierarchical clustering of a lifelong history.

Pure numpy/faiss, no Spark (the Spark job calls it per user through applyInPandas).

1. Guard the inputs: keep the most recent `max_events`; completion ratios above
   1 are clipped to 1, negative or non-finite ones become unknown; events
   whose embedding is missing or not finite are rejected with a reason.
2. Group events by completion ratio into `n_groups` equal-width buckets; events
   with no ratio form a group of their own.
3. Inside each group, split recursively with k-means (k = ceil(n / gamma),
   capped at `max_branching` so each level stays linear in n) until every
   cluster has at most `gamma` events. A node k-means cannot split (identical
   embeddings) stays whole.
4. Each cluster: size n, centroid, the member nearest the centroid as its
   representative, mean completion / rating / recency, first and last time.
   Recency is days before the user's latest kept event, not before the run
   date: it orders a user's clusters in the user's own timeline, which is what
   target attention compares, and a replayed history (MovieLens, 1998) would
   otherwise put every cluster ~10^4 days back, where log1p flattens them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipelines.behavior.config import UNKNOWN_GROUP, ClusteringConfig


@dataclass(frozen=True)
class UserClusters:
    """Result for one user. `event_index` are positions in the input; `cluster_of_event` aligns with it."""

    event_index: np.ndarray
    cluster_of_event: np.ndarray
    clusters: pd.DataFrame
    rejected: pd.DataFrame  # position, reason
    clipped_ratios: int = 0
    stats: dict[str, float] = field(default_factory=dict)


def completion_groups(completion: np.ndarray, n_groups: int) -> np.ndarray:
    """Bucket in [0, n_groups) by ratio; UNKNOWN_GROUP where the ratio is NaN."""
    groups = np.minimum(np.floor(np.nan_to_num(completion, nan=0.0) * n_groups), n_groups - 1).astype(np.int64)
    groups[np.isnan(completion)] = UNKNOWN_GROUP
    return groups


def _kmeans_assign(x: np.ndarray, k: int, config: ClusteringConfig, seed: int) -> np.ndarray:
    if config.spherical:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if config.backend == "sklearn":  # no spherical variant: Euclidean k-means on the unit vectors
        from sklearn.cluster import KMeans

        model = KMeans(n_clusters=k, n_init=1, max_iter=config.kmeans_iters, random_state=seed)
        return model.fit_predict(x).astype(np.int64)
    import faiss

    km = faiss.Kmeans(
        x.shape[1], k, niter=config.kmeans_iters, nredo=config.kmeans_restarts, seed=seed, verbose=False,
        min_points_per_centroid=1, max_points_per_centroid=config.max_points_per_centroid,
        spherical=config.spherical,
    )
    if config.kmeans_plus_plus:  # k-means++ seeding, as scikit-learn's default (not its greedy variant)
        km.cp.init_method = faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(config.kmeans_threads)
    try:
        km.train(x)
        _, labels = km.index.search(x, 1)
    finally:
        faiss.omp_set_num_threads(threads)  # the setting is process-wide: leave it as found
    return labels[:, 0].astype(np.int64)


def split_recursively(x: np.ndarray, config: ClusteringConfig, seed: int) -> np.ndarray:
    """Cluster labels (0..m-1) such that every cluster has <= gamma rows or identical rows."""
    labels = np.zeros(len(x), dtype=np.int64)
    next_label = 1
    stack = [np.arange(len(x))]
    node = 0
    while stack:
        members = stack.pop()
        n = len(members)
        if n <= config.gamma:
            continue
        points = x[members]
        if np.all(points == points[0]):
            continue  # identical embeddings: k-means cannot split them
        k = min(math.ceil(n / config.gamma), config.max_branching, n)
        sub = _kmeans_assign(points, k, config, seed + node)
        node += 1
        parts = [members[sub == j] for j in np.unique(sub)]
        if len(parts) == 1:
            # k-means put everything together (near-duplicates): split by a random hyperplane order
            order = np.argsort(points @ np.random.default_rng(seed + node).standard_normal(x.shape[1]))
            parts = [members[order[: n // 2]], members[order[n // 2 :]]]
        # the first part keeps the node's label, the others get new ones
        for part in parts[1:]:
            labels[part] = next_label
            next_label += 1
        stack.extend(parts)
    return labels


def cluster_history(
    item_ids: np.ndarray,
    embeddings: np.ndarray,
    completion: np.ndarray,
    rating: np.ndarray,
    ts_seconds: np.ndarray,
    config: ClusteringConfig = ClusteringConfig(),
) -> UserClusters:
    """Cluster one user's events (arrays aligned, any order). Deterministic for a config and input."""
    n_in = len(item_ids)
    positions = np.arange(n_in)
    x = np.asarray(embeddings, dtype=np.float32)
    ts_seconds = np.asarray(ts_seconds, dtype=np.float64)

    # 1. guards
    if n_in > config.max_events:
        keep = np.sort(np.argsort(-ts_seconds, kind="stable")[: config.max_events])
    else:
        keep = positions
    bad = np.zeros(n_in, dtype=bool)
    if x.ndim == 2 and x.shape[0]:
        bad = np.logical_not(np.isfinite(x).all(axis=1))
    rejected = pd.DataFrame({"position": keep[bad[keep]], "reason": "missing embedding"})
    keep = keep[~bad[keep]]
    ratio = np.asarray(completion, dtype=np.float64)[keep].copy()
    clipped = int(np.sum(ratio > 1.0))
    ratio[ratio > 1.0] = 1.0
    ratio[(ratio < 0) | ~np.isfinite(ratio)] = np.nan

    # 2-3. group, then split each group
    groups = completion_groups(ratio, config.n_groups)
    labels = np.empty(len(keep), dtype=np.int64)
    offset = 0
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        local = split_recursively(x[keep[members]], config, config.seed + 1000 * (int(g) + 1))
        labels[members] = local + offset
        offset += int(local.max()) + 1 if len(local) else 0

    # 4. cluster features
    clusters = _cluster_features(
        labels, groups, item_ids[keep], x[keep], ratio, np.asarray(rating, np.float64)[keep],
        ts_seconds[keep],
    )
    # relabel clusters 0..m-1 in order of first event, so ids read naturally and are stable
    order = clusters["first_ts"].rank(method="first").astype(np.int64).to_numpy() - 1
    remap = np.empty(len(order), dtype=np.int64)
    remap[clusters["cluster_id"].to_numpy()] = order
    clusters["cluster_id"] = order
    clusters = clusters.sort_values("cluster_id").reset_index(drop=True)
    labels = remap[labels]
    stats = {
        "events": float(len(keep)),
        "clusters": float(len(clusters)),
        "compression": len(keep) / max(len(clusters), 1),
    }
    return UserClusters(keep, labels, clusters, rejected, clipped, stats)


def _cluster_features(
    labels: np.ndarray, groups: np.ndarray, item_ids: np.ndarray, x: np.ndarray,
    ratio: np.ndarray, rating: np.ndarray, ts: np.ndarray,
) -> pd.DataFrame:
    m = int(labels.max()) + 1 if len(labels) else 0
    sizes = np.bincount(labels, minlength=m)
    sums = sum_by_label(x.reshape(len(labels), x.shape[1] if x.ndim == 2 else 0), labels, m)
    centroids = (sums / np.maximum(sizes, 1)[:, None]).astype(np.float32)
    # representative: the member nearest its centroid (ties -> earliest position)
    dist = np.einsum("ij,ij->i", x - centroids[labels], x - centroids[labels])
    order = np.lexsort((np.arange(len(labels)), dist, labels))
    first_of = order[np.r_[0, np.flatnonzero(np.diff(labels[order])) + 1]] if len(order) else order

    def mean_of(values: np.ndarray) -> np.ndarray:
        ok = np.isfinite(values)
        total = np.bincount(labels[ok], weights=values[ok], minlength=m)
        count = np.bincount(labels[ok], minlength=m)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    recency_days = (ts.max() - ts) / 86_400.0 if len(ts) else ts
    first_ts = np.full(m, np.inf)
    last_ts = np.full(m, -np.inf)
    np.minimum.at(first_ts, labels, ts)
    np.maximum.at(last_ts, labels, ts)
    group_of = np.zeros(m, dtype=np.int64)
    group_of[labels] = groups
    return pd.DataFrame({
        "cluster_id": np.arange(m),
        "completion_group": group_of,
        "size": sizes,
        "centroid": list(centroids),
        "representative_item_id": item_ids[first_of],
        "completion_mean": mean_of(ratio),
        "rating_mean": mean_of(rating),
        "recency_days_mean": mean_of(recency_days),
        "first_ts": first_ts,
        "last_ts": last_ts,
    })


def sum_by_label(values: np.ndarray, labels: np.ndarray, m: int) -> np.ndarray:
    """[m, d] float64 row sums of `values` [n, d] per label in 0..m-1. Sorts once and adds runs with
    reduceat: np.add.at did the same a row at a time and was a quarter of cluster_history's time."""
    out = np.zeros((m, values.shape[1]), dtype=np.float64)
    if len(labels) == 0:
        return out
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    out[ordered[starts]] = np.add.reduceat(values[order].astype(np.float64), starts, axis=0)
    return out


def mean_within_cluster_cosine(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean pairwise cosine between members of the same cluster, weighted by cluster size.

    For unit vectors the pairwise mean of a cluster is (|sum|^2 - n) / (n (n - 1)),
    so this is linear in n. Singleton clusters have no pairs and are left out.
    """
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    m = int(labels.max()) + 1
    sums = sum_by_label(unit, labels, m)
    n = np.bincount(labels, minlength=m).astype(np.float64)
    pairs = n > 1
    if not pairs.any():
        return 1.0
    pairwise = (np.einsum("ij,ij->i", sums[pairs], sums[pairs]) - n[pairs]) / (n[pairs] * (n[pairs] - 1))
    return float(np.average(pairwise, weights=n[pairs]))
