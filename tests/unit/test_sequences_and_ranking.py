import datetime as dt

import numpy as np
import pandas as pd

from models.metrics import ranking_metrics
from pipelines.evaluation.baselines import knn_topk, popularity_topk
from pipelines.ranking.examples import item_tokens
from pipelines.retrieval.sequences import ItemIndex, build_sequences, training_item_counts
from pipelines.splits import SplitConfig


def _events(rows):
    return pd.DataFrame([
        (u, i, dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=t)) for u, i, t in rows
    ], columns=["user_id", "item_id", "ts"])


INDEX = ItemIndex.from_semantic_ids(pd.DataFrame({
    "item_id": ["a", "b", "c", "d", "e"],
    "codes": [[0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0], [2, 0, 0, 0], [3, 0, 0, 0]],
    "semantic_id": ["0-0-0-0", "0-0-0-1", "1-0-0-0", "2-0-0-0", "3-0-0-0"],
}))


def test_sequences_follow_the_shared_split():
    events = _events([("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u1", "d", 4), ("u1", "e", 5),
                      ("u2", "e", 1), ("u2", "a", 2)])
    data = build_sequences(events, INDEX, SplitConfig(max_history=2))
    # u1: train a b c -> prefixes (a)->b, (a b)->c; valid (b c)->d; test (c d)->e; u2 has too few to hold out
    assert data.train.targets.tolist() == [1, 2, 0]  # u1: b, c; u2: a (history e)
    assert data.train.histories.tolist() == [[-1, 0], [0, 1], [-1, 4]]
    assert data.valid.histories.tolist() == [[1, 2]] and data.valid.targets.tolist() == [3]
    assert data.test.histories.tolist() == [[2, 3]] and data.test.targets.tolist() == [4]
    assert data.serve.users.tolist() == ["u1", "u2"] and data.serve.histories.tolist() == [[3, 4], [4, 0]]
    assert data.stats["users_too_short_to_hold_out"] == 1
    assert training_item_counts(data.train, 5).tolist() == [2, 1, 1, 0, 1]


def test_unknown_items_are_counted_not_hidden():
    events = _events([("u1", "a", 1), ("u1", "zzz", 2), ("u1", "b", 3), ("u1", "c", 4), ("u1", "zzz", 5)])
    data = build_sequences(events, INDEX)
    assert data.stats["events_without_semantic_id"] == 2
    assert data.stats["test_targets_without_semantic_id"] == 1 and len(data.test) == 0
    assert data.valid.histories[0][-2:].tolist() == [0, 1]  # zzz skipped inside the history


def test_ranking_metrics():
    ranked = np.array([[3, 1, 2], [0, 1, 2], [5, 6, 7]])
    m = ranking_metrics(ranked, np.array([3, 2, 9]), ks=(1, 3))
    assert m["recall@1"] == 1 / 3 and m["recall@3"] == 2 / 3
    assert np.isclose(m["ndcg@3"], (1 + 1 / np.log2(4)) / 3)


def test_baselines_exclude_the_seen_set():
    histories = np.array([[-1, 0], [1, 2]])
    seen = [np.array([0]), np.array([1, 2])]
    pop = popularity_topk(np.array([10.0, 9, 8, 7, 6]), len(histories), 2, seen)
    assert pop.tolist() == [[1, 2], [0, 3]]
    # the seen set, not the (cut) history, is what is left out: item 0 was seen before the window
    assert popularity_topk(np.array([10.0, 9, 8, 7, 6]), 1, 2, [np.array([0, 1, 2])]).tolist() == [[3, 4]]
    assert popularity_topk(np.array([5.0, 9, 9, 9]), 1, 2, None).tolist() == [[1, 2]]  # ties: lower row first
    vectors = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.7, 0.7]], dtype=np.float32)
    knn = knn_topk(vectors, histories, 2, seen)
    assert knn[0].tolist() == [1, 4]  # nearest to item 0, itself excluded
    assert 2 not in knn[1] and 1 not in knn[1] and knn[1][0] == 3


def test_knn_matches_a_naive_search_across_chunks():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    vectors[5] = 0.0  # an item without a vector scores 0 against every query
    histories = rng.integers(-1, 60, size=(40, 4))
    histories[:, -1] = np.where(histories[:, -1] == 5, 6, histories[:, -1])
    seen = [h[h >= 0] for h in histories]
    got = knn_topk(vectors, histories, 5, seen, chunk_rows=7)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    for row, history in enumerate(histories):
        if history[-1] < 0:
            assert (got[row] == -1).all()
            continue
        scores = unit @ unit[history[-1]]
        order = [int(i) for i in np.argsort(-scores, kind="stable") if i != history[-1] and i not in history]
        assert got[row].tolist() == order[:5]


def test_item_tokens_hash_the_item_id_not_its_row():
    """The ranker's item-ID feature must survive a catalog change: the same id gets the same hash in another
    catalog, where its row differs."""
    tokens = item_tokens(INDEX)
    assert np.array_equal(tokens[:, :-1], INDEX.codes)
    grown = ItemIndex.from_semantic_ids(pd.DataFrame({
        "item_id": ["0", *INDEX.item_ids], "codes": [[9, 9, 9, 0], *INDEX.codes.tolist()],
        "semantic_id": ["9-9-9-0", *INDEX.semantic_ids]}))
    moved = item_tokens(grown)
    assert np.array_equal(moved[grown.rows(INDEX.item_ids), -1], tokens[:, -1])
    assert (tokens[:, -1] >= 0).all() and len(set(tokens[:, -1])) == len(INDEX.item_ids)
