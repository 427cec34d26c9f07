"""Behavior: TWIN-V2's offline clustering of each user's lifelong history.

clustering.py (pure: grouping and recursive k-means), clustering_job.py (Spark
-> gold.user_clusters, gold.user_cluster_members), config.py (defaults the DAGs read).
"""

from pipelines.lazy_exports import lazy_exports

_EXPORTS = {
    "ClusteringConfig": "config",
    "HOLDOUTS": "config",
    "cluster_history": "clustering",
    "BehaviorClusterConfig": "clustering_job",
    "run_cluster_behaviors": "clustering_job",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
