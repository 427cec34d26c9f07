import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.behavior.clustering import (
    cluster_history,
    completion_groups,
    mean_within_cluster_cosine,
    sum_by_label,
)
from pipelines.behavior.config import UNKNOWN_GROUP, ClusteringConfig


def _history(n, dim=8, seed=0, n_items=50, nan_ratio=0.1):
    rng = np.random.default_rng(seed)
    catalog = rng.standard_normal((n_items, dim)).astype(np.float32)
    picks = rng.integers(0, n_items, n)
    completion = rng.random(n)
    completion[rng.random(n) < nan_ratio] = np.nan
    return dict(
        item_ids=np.array([f"i{p}" for p in picks]),
        embeddings=catalog[picks],
        completion=completion,
        rating=rng.integers(1, 6, n).astype(float),
        ts_seconds=np.sort(rng.integers(0, 10**7, n)).astype(float),
    )


def _check_invariants(result, x, gamma):
    labels = result.cluster_of_event
    sizes = result.clusters.set_index("cluster_id")["size"]
    assert len(labels) == len(result.event_index)  # every kept event in exactly one cluster
    assert sizes.sum() == len(labels)
    assert (np.bincount(labels) == sizes.sort_index().to_numpy()).all()
    for cid, size in sizes.items():
        if size > gamma:  # only allowed when the members cannot be told apart
            members = x[result.event_index[labels == cid]]
            assert np.all(members == members[0])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 400), gamma=st.integers(1, 50), dim=st.integers(1, 6),
       n_items=st.integers(1, 60), seed=st.integers(0, 10_000))
def test_invariants_hold_for_any_history(n, gamma, dim, n_items, seed):
    h = _history(n, dim=dim, seed=seed, n_items=n_items)
    config = ClusteringConfig(gamma=gamma, seed=seed)
    result = cluster_history(**h, config=config)
    _check_invariants(result, h["embeddings"], gamma)
    again = cluster_history(**h, config=config)
    assert np.array_equal(result.cluster_of_event, again.cluster_of_event)  # deterministic
    # each cluster stays inside one completion group
    groups = completion_groups(np.clip(h["completion"][result.event_index], 0, 1), config.n_groups)
    per_cluster = pd.Series(groups).groupby(result.cluster_of_event).nunique()
    assert (per_cluster == 1).all()


def test_single_event_and_gamma_at_least_n():
    h = _history(1)
    one = cluster_history(**h)
    assert one.clusters["size"].tolist() == [1] and one.cluster_of_event.tolist() == [0]
    h = _history(30, nan_ratio=0.0)
    result = cluster_history(**h, config=ClusteringConfig(gamma=100, n_groups=1))
    assert result.clusters["size"].tolist() == [30]


def test_identical_embeddings_stay_together():
    h = _history(100, nan_ratio=0.0)
    h["embeddings"] = np.ones((100, 8), np.float32)
    result = cluster_history(**h, config=ClusteringConfig(gamma=5, n_groups=1))
    assert result.clusters["size"].tolist() == [100]


def test_missing_embeddings_are_rejected_with_a_reason_and_ratios_guarded():
    h = _history(50, nan_ratio=0.0)
    h["embeddings"][[3, 7]] = np.nan
    h["completion"][0] = 1.7  # played longer than the item
    h["completion"][1] = -0.2
    result = cluster_history(**h, config=ClusteringConfig(gamma=10))
    assert result.rejected["position"].tolist() == [3, 7]
    assert set(result.rejected["reason"]) == {"missing embedding"}
    assert 3 not in result.event_index and len(result.event_index) == 48
    assert result.clipped_ratios == 1
    assert result.clusters["completion_mean"].dropna().between(0, 1).all()
    position_of_1 = int(np.flatnonzero(result.event_index == 1)[0])
    group = result.clusters.set_index("cluster_id").loc[result.cluster_of_event[position_of_1], "completion_group"]
    assert group == UNKNOWN_GROUP


def test_history_cap_keeps_most_recent():
    h = _history(200)
    result = cluster_history(**h, config=ClusteringConfig(max_events=50))
    assert sorted(result.event_index.tolist()) == list(range(150, 200))


def test_cluster_features():
    x = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], np.float32)
    result = cluster_history(
        item_ids=np.array(["a", "b", "c", "d"]), embeddings=x, completion=np.array([0.9, 0.95, 0.92, 0.99]),
        rating=np.array([5, 4, np.nan, 2.0]), ts_seconds=np.array([0, 86_400, 2 * 86_400, 3 * 86_400.0]),
        config=ClusteringConfig(gamma=2, n_groups=1),
    )
    c = result.clusters
    assert c["size"].tolist() == [2, 2]
    first = c.iloc[0]
    assert first["rating_mean"] == 4.5 and first["recency_days_mean"] == 2.5  # days before the latest event
    assert c.iloc[1]["recency_days_mean"] == 0.5
    assert first["first_ts"] == 0 and first["last_ts"] == 86_400
    assert first["representative_item_id"] in {"a", "b"}
    assert np.allclose(first["centroid"], [1, 0.05])
    assert c.iloc[1]["rating_mean"] == 2.0  # NaN ratings ignored


def test_sklearn_backend_gives_the_same_invariants():
    h = _history(300, nan_ratio=0.0)
    result = cluster_history(**h, config=ClusteringConfig(gamma=20, backend="sklearn"))
    _check_invariants(result, h["embeddings"], 20)


def test_within_cluster_cosine():
    x = np.array([[1, 0], [2, 0], [0, 1], [0, 3]], float)
    assert mean_within_cluster_cosine(x, np.array([0, 0, 1, 1])) == pytest.approx(1.0)
    assert mean_within_cluster_cosine(x, np.array([0, 1, 0, 1])) == pytest.approx(0.0)


def test_sum_by_label_matches_a_row_at_a_time_sum():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(50, 3))
    labels = rng.integers(0, 7, size=50)
    labels[labels == 4] = 5  # a label with no rows sums to zero
    expected = np.zeros((8, 3))
    np.add.at(expected, labels, values)
    assert np.allclose(sum_by_label(values, labels, 8), expected)
    assert sum_by_label(values[:0], labels[:0], 2).tolist() == [[0.0] * 3] * 2
