"""The ranker's training cuts and short-term keys (pure pandas/numpy + the clustering function)."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipelines.behavior.config import ClusteringConfig
from pipelines.ranking.cuts import cut_points, training_cuts
from pipelines.ranking.examples import KEY_FEATURES, UserClusters, merge_keys, with_recent_events
from pipelines.retrieval.sequences import ItemIndex

ITEMS = [f"i{k:02d}" for k in range(30)]
INDEX = ItemIndex.from_semantic_ids(pd.DataFrame({
    "item_id": ITEMS, "codes": [[k % 4, k // 4, 0, 0] for k in range(30)],
    "semantic_id": [f"{k % 4}-{k // 4}-0-0" for k in range(30)]}))


def test_cut_points_spread_over_the_history_and_leave_room_for_positives():
    assert cut_points(10, cuts=3, positives=3, min_history=3).tolist() == [3, 5, 7]
    assert cut_points(10, cuts=20, positives=3, min_history=3).tolist() == [3, 4, 5, 6, 7]
    assert cut_points(5, cuts=3, positives=3, min_history=3).tolist() == []


def test_training_cuts_never_see_held_out_events():
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = [("u1", ITEMS[k], start + dt.timedelta(hours=k), 0.5, 4.0) for k in range(12)]
    rows += [("u2", ITEMS[k], start + dt.timedelta(hours=k), np.nan, np.nan) for k in range(20, 27)]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "ts", "completion", "rating"])
    vectors = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32)
    cuts = training_cuts(events, vectors, INDEX, ClusteringConfig(gamma=2, backend="sklearn"), cuts_per_user=3,
                         positives_per_cut=2, width=5)
    # u1: 10 training events (its last 2 are validation and test) -> cuts after 3, 6, 8; u2: 5 -> after 3
    assert [k.replace("\x1f", "@") for k in cuts.keys.users] == ["u1@3", "u1@6", "u1@8", "u2@3"]
    held_out = {INDEX.rows(np.array([ITEMS[10], ITEMS[11], ITEMS[25], ITEMS[26]]))[k] for k in range(4)}
    for key_items, history, positives in zip(cuts.keys.items, cuts.histories, cuts.positives, strict=True):
        before = history[history >= 0]
        assert not held_out & set(positives.tolist()) and not held_out & set(before.tolist())
        # item rows grow with time here: positives are the events right after the cut, keys come before it
        assert positives.tolist() == list(range(before[-1] + 1, before[-1] + 1 + len(positives)))
        assert key_items.max() < positives[0]
    t_of = [int(k.split("\x1f")[1]) for k in cuts.keys.users]
    assert [int(s.sum()) for s in cuts.keys.sizes] == t_of  # the clusters cover exactly the events before the cut
    assert all(c.shape[1] == KEY_FEATURES and (c[:, -1] == 0).all() for c in cuts.keys.cross)


def test_recent_events_follow_the_clusters_as_keys_of_one_event():
    clusters = UserClusters(np.array(["a", "b"], dtype=object), [np.array([7]), np.array([8, 9])],
                            [np.array([5]), np.array([2, 3])], [np.zeros((1, KEY_FEATURES), np.float32),
                                                                 np.zeros((2, KEY_FEATURES), np.float32)])
    histories = np.array([[-1, 1, 2, 3], [4, 5, 6, 0], [-1, -1, -1, 2]])
    keys = with_recent_events(clusters, np.array(["b", "a", "new"], dtype=object), histories, recent=3)
    assert keys.users.tolist() == ["a", "b", "new"]
    a, b, new = (keys.position(np.array([u], dtype=object))[0] for u in ("a", "b", "new"))
    assert keys.items[a].tolist() == [7, 5, 6, 0] and keys.sizes[a].tolist() == [5, 1, 1, 1]
    assert keys.cross[a][:, -1] == pytest.approx([0, 1 / 3, 2 / 3, 1])  # latest event 1, clusters 0
    assert keys.items[b].tolist() == [8, 9, 1, 2, 3]
    assert keys.items[new].tolist() == [2] and keys.cross[new][:, -1].tolist() == [1.0]  # no clusters yet
    merged = merge_keys(clusters, UserClusters(np.array(["0"], dtype=object), [np.array([1])], [np.array([1])],
                                               [np.zeros((1, KEY_FEATURES), np.float32)]))
    assert merged.users.tolist() == ["0", "a", "b"] and merged.items[2].tolist() == [8, 9]
