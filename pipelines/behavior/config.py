"""TWIN-V2 clustering settings (no heavy imports: DAG files read these defaults for their Params)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Backend = Literal["faiss", "sklearn"]
UNKNOWN_GROUP = -1


@dataclass(frozen=True)
class ClusteringConfig:
    gamma: int = 20  # largest cluster, in events (TWIN-V2's threshold)
    n_groups: int = 5  # completion-ratio buckets; unknown ratios get one more
    max_branching: int = 32  # k cap per split: deeper trees instead of huge k
    kmeans_iters: int = 10
    # k-means trains on at most this many points per centroid (faiss subsampling); all are assigned.
    max_points_per_centroid: int = 256
    kmeans_plus_plus: bool = True
    # Spherical k-means: unit-length inputs and centroids, so splits follow cosine, the similarity the
    # ranker's attention reads. With it, 2 runs per split reach scikit-learn's within-cluster cosine
    # (faiss's k-means++ seeding is not scikit-learn's greedy one; bench_clustering.py measures both).
    spherical: bool = True
    kmeans_restarts: int = 2  # faiss nredo: best of this many runs per split
    # faiss threads per k-means. One: the Spark job already runs a user per core, splits are small
    # (OpenMP start-up outweighs the work), and idle OpenMP pools of other libraries spin against them.
    kmeans_threads: int = 1
    max_events: int = 100_000  # history cap, most recent kept (TWIN-V2 uses 10^5)
    seed: int = 0
    backend: Backend = "faiss"  # "sklearn" is the benchmark's baseline


# Which held-out events stay out of the clusters: the ranker trains on validation events and is
# evaluated on test events, so its DAG keeps both out.
Holdout = Literal["none", "test", "valid_test"]
HOLDOUTS: tuple[Holdout, ...] = ("none", "test", "valid_test")
