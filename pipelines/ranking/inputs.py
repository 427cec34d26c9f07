"""The TWIN-V2 ranker's inputs from the lakehouse: TIGER's inputs, item vectors and each user's clusters.

Training respects the shared split: gold.user_clusters must be built without
each user's validation and test events (`cluster-behaviors --holdout
valid_test`), checked here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pipelines.errors import UpstreamTableError
from pipelines.lakehouse.catalog import GOLD_USER_CLUSTERS, Catalog
from pipelines.lakehouse.table_io import read_table_arrow
from pipelines.ranking.examples import CROSS_FEATURES, UserClusters, item_tokens, user_clusters
from pipelines.retrieval.inputs import RetrievalInputs, item_vectors_by_row, load_retrieval_inputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankerInputs:
    retrieval: RetrievalInputs
    vectors: np.ndarray  # [N, d] by item row
    tokens: np.ndarray  # [N, levels + 1] by item row: semantic-ID codes + item-id hash (`item_tokens`)
    clusters: UserClusters
    table_versions: dict[str, int]
    clusters_without_semantic_id: int  # left out of the ranker's view: their representative has no ID


def load_ranker_inputs(catalog: Catalog, retrieval: RetrievalInputs | None = None,
                       check_holdout: bool = True) -> RankerInputs:
    retrieval = retrieval or load_retrieval_inputs(catalog)
    columns = ["user_id", "cluster_id", "size", "representative_item_id", "history_events", *CROSS_FEATURES]
    table, version = read_table_arrow(catalog, GOLD_USER_CLUSTERS.name, columns=columns)
    if table.num_rows == 0:
        raise UpstreamTableError(f"{GOLD_USER_CLUSTERS.name} is empty (version {version}): run cluster-behaviors")
    frame = table.to_pandas()
    if check_holdout:
        check_no_held_out_events(frame, retrieval)
    clusters = user_clusters(frame, retrieval.index)
    unmapped = int((retrieval.index.rows(frame["representative_item_id"]) < 0).sum())
    if unmapped:
        log.warning("%d cluster(s) have a representative item without a semantic ID; the ranker skips them "
                    "(run assign-semantic-ids after embed-items)", unmapped)
    return RankerInputs(retrieval, item_vectors_by_row(catalog, retrieval.index), item_tokens(retrieval.index), clusters,
                        {**retrieval.table_versions, GOLD_USER_CLUSTERS.name: version}, unmapped)


def check_no_held_out_events(clusters, retrieval: RetrievalInputs) -> None:
    """Users with held-out events must have clusters built from at most (all events - 2)."""
    held = set(retrieval.sequences.test.users)
    per_user = clusters.groupby("user_id")["history_events"].first()
    totals = dict(zip(retrieval.sequences.serve.users, retrieval.sequences.serve_events, strict=True))
    leaking = [u for u, n in per_user.items() if u in held and n > max(totals.get(u, 0), 1) - 2]
    if leaking:
        raise UpstreamTableError(
            f"{GOLD_USER_CLUSTERS.name} includes held-out events for {len(leaking)} user(s) (e.g. {leaking[0]}): "
            "run cluster-behaviors --holdout valid_test before training or evaluating the ranker"
        )
